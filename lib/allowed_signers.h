/*
 * allowed_signers.h: OpenSSH's allowed signers file (ssh-keygen(1),
 * "ALLOWED SIGNERS"), the one git reads for gpg.ssh.allowedSignersFile:
 *
 *	principals [options] keytype base64-key [comment]
 *
 * Options: namespaces="git,..." (a signature counts only in a listed
 * namespace), valid-after= / valid-before= (YYYYMMDD[HHMM[SS]][Z], checked
 * against the time the signature claims), cert-authority (certificates
 * are not supported: such a line never matches and says so).
 */
#ifndef UD_ALLOWED_SIGNERS_H
#define UD_ALLOWED_SIGNERS_H

#include <stddef.h>
#include <time.h>

#include "sshkey.h"

struct ud_allowed_signers;

/* Read `path`. A malformed line is UD_EINVALID naming path:line:column. */
int ud_allowed_signers_load(struct ud_allowed_signers **out,
			    const char *path);
/* The same from text; `name` stands for the file in messages. */
int ud_allowed_signers_parse(struct ud_allowed_signers **out,
			     const char *text, size_t len, const char *name);
void ud_allowed_signers_free(struct ud_allowed_signers *s);
size_t ud_allowed_signers_count(const struct ud_allowed_signers *s);

/* 0 when `key` may sign in namespace ns at time `when` (the principal of
 * the matching line in *principal, NULL allowed); UD_EAUTH otherwise, the
 * message naming the key's fingerprint and why. */
int ud_allowed_signers_check(const struct ud_allowed_signers *s,
			     const struct ud_sshkey *key, const char *ns,
			     time_t when, const char **principal);

#endif
