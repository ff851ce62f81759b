/*
 * sshsig.h: SSH signatures in OpenSSH's PROTOCOL.sshsig format, the one
 * `ssh-keygen -Y sign` writes and git stores in a commit's gpgsig header
 * when gpg.format=ssh ("-----BEGIN SSH SIGNATURE-----", namespace "git").
 *
 * Checking who may sign is allowed_signers.h's; this module only makes a
 * signature and checks that it is sound and which key made it.
 */
#ifndef UD_SSHSIG_H
#define UD_SSHSIG_H

#include <stddef.h>

#include "buf.h"
#include "sshkey.h"

/* Append the armoured signature of msg by key in namespace ns to out
 * (lines of 70 columns, no final newline, as ssh-keygen writes it). */
int ud_sshsig_sign(struct ud_buf *out, const struct ud_sshkey *key,
		   const char *ns, const void *msg, size_t len);

/* Check the armoured signature `sig` of msg in namespace ns. On success
 * *signer is the public key that made it (caller frees). UD_EINVALID when
 * malformed, in another namespace or of an unsupported kind; UD_EAUTH when
 * the signature does not match the message. */
int ud_sshsig_verify(struct ud_sshkey **signer, const char *sig,
		     size_t siglen, const char *ns, const void *msg,
		     size_t len);

#endif
