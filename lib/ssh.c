/* ssh.c: placeholder until the libssh2 client lands (see ssh.h). */
#include "ssh.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

void ud_ssh_opts_from_env(struct ud_ssh_opts *o)
{
	const char *kh = getenv("DEPLOY_KNOWN_HOSTS");
	const char *key = getenv("DEPLOY_SSH_KEY");

	memset(o, 0, sizeof(*o));
	if (key && *key)
		o->key_text = key;
	if (kh && *kh) {
		if (strpbrk(kh, " \n\t"))
			o->known_hosts_text = kh;
		else
			o->known_hosts = kh;
	}
}

int ud_ssh_exec(const struct ud_ssh_opts *o, const char *target,
		const char *command, int timeout_ms, struct ud_buf *out,
		struct ud_buf *err, int *status)
{
	(void)o;
	(void)command;
	(void)timeout_ms;
	(void)out;
	(void)err;
	*status = -1;
	return ud_error_set(UD_ERROR, "%s: ssh is not implemented yet",
			    target);
}
