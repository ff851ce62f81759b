/*
 * backend.c: the command line of an instance per images[].target (see
 * agent.h). unix runs the image itself; the VM backends come next.
 */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "errors.h"

int backend_check(struct agent *a, const char *target, const char *arch)
{
	(void)a;
	(void)arch;
	if (!strcmp(target, "unix"))
		return 0;
	return ud_error_set(UD_EINVALID,
			    "target %s is not supported by this agent yet",
			    target);
}

int backend_command(struct agent *a, const struct app *app,
		    const struct ud_manifest *m, const char *target,
		    const struct instance *in, const char *rundir,
		    struct ud_strvec *argv)
{
	size_t i;

	(void)app;
	(void)rundir;
	if (strcmp(target, "unix"))
		return backend_check(a, target, NULL);
	ud_strvec_push(argv, "");
	free(argv->v[0]);
	argv->v[0] = image_path(a, in->sha256);
	for (i = 0; i < m->run.args.n; i++)
		ud_strvec_push(argv, m->run.args.v[i]);
	return 0;
}

int backend_shutdown(struct agent *a, const struct app *app,
		     const struct instance *in)
{
	(void)a;
	(void)app;
	(void)in;
	return 0;
}
