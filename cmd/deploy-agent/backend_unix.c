/*
 * backend_unix.c: a native executable (MirageOS -t unix, any program)
 * that runs itself; its port comes in $PORT (supervise.c).
 */
#include "backend.h"
#include "buf.h"

static int unix_command(const struct backend_env *env,
			const struct backend_inst *in, struct ud_strvec *argv)
{
	size_t i;

	(void)env;
	ud_strvec_push(argv, in->image);
	for (i = 0; in->args && i < in->args->n; i++)
		ud_strvec_push(argv, in->args->v[i]);
	return 0;
}

const struct backend backend_unix = {
	.target = "unix",
	.flags = BACKEND_OWN_ARCH,
	.command = unix_command,
};
