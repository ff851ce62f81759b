/*
 * backend_xen.c: a Xen domain from the rendered xen.cfg, run with
 * `xl create -F -c` (in the foreground, its console on stdout) and
 * stopped with `xl destroy`. No Xen host runs here: its tests check the
 * command line and config only.
 */
#include <stdlib.h>

#include "backend.h"
#include "buf.h"
#include "errors.h"
#include "log.h"

/* `xl destroy`: xl create -F exits once its domain is gone. */
static int xen_shutdown(const struct backend_env *env,
			const struct backend_inst *in)
{
	char *xl = backend_find_program("xl"), *name;
	const char *argv[] = { NULL, "destroy", NULL, NULL };
	struct ud_run_opts opts = { .timeout_ms = 10000 };
	int status = -1;

	(void)env;
	if (!xl)
		return 0;
	name = backend_vm_name(in);
	argv[0] = xl;
	argv[2] = name;
	if (ud_run((char *const *)argv, &opts, &status) < 0 || status != 0) {
		ud_log_warn("%s: xl destroy %s: %s", in->app, name,
			    status > 0 ? "failed" : ud_error_last());
		ud_error_clear();
	}
	free(xl);
	free(name);
	return status == 0;
}

const struct backend backend_xen = {
	.target = "xen",
	/* xl makes the vif itself ({{tap}} on {{bridge}}): the agent makes
	 * no tap for it. */
	.flags = BACKEND_TEMPLATE | BACKEND_OWN_ARCH,
	.config_ext = "cfg",
	.shutdown = xen_shutdown,
};
