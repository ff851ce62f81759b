/*
 * ssh_internal.h: what ssh.c shares with known_hosts.c, which also needs
 * a libssh2 session (to own its knownhost collection). Not for use
 * outside those two files.
 */
#ifndef UD_SSH_INTERNAL_H
#define UD_SSH_INTERNAL_H

#include <libssh2.h>

/* libssh2_init, once for the process; 0 or UD_ERROR, message set. */
int ud_ssh__init(void);
/* $HOME, else the password database; NULL when neither knows. Caller
 * frees. */
char *ud_ssh__home_dir(void);
/* libssh2's last message for s; never NULL. */
const char *ud_ssh__errmsg(LIBSSH2_SESSION *s);

#endif
