/*
 * sshkey.h: SSH keys as OpenSSH writes them, through libcrypto.
 *
 * A private key in OpenSSH's own format ("-----BEGIN OPENSSH PRIVATE
 * KEY-----", what ssh-keygen writes today) is read from memory only: the
 * pipeline's key (SPEC §6) is never written to disk. A public key is the
 * wire blob of RFC 4253 §6.6 (string type, then the key's own fields), as
 * in authorized_keys, known_hosts and allowed_signers after base64.
 *
 * Signing and verifying support ssh-ed25519, the key type the README asks
 * for; other types are read (their blobs compare) but refused where a
 * signature has to be made or checked, naming the type.
 */
#ifndef UD_SSHKEY_H
#define UD_SSHKEY_H

#include <stddef.h>

#include "buf.h"

struct ud_sshkey;

/* The private key in `text` (OpenSSH format, unencrypted). `label` names
 * it in messages ("DEPLOY_SIGNING_KEY", a file name). UD_EINVALID for a
 * malformed key, a passphrase-protected one, or a type that cannot sign. */
int ud_sshkey_parse_private(struct ud_sshkey **out, const char *text,
			    size_t len, const char *label);
/* A public key from its wire blob. UD_EINVALID when malformed. */
int ud_sshkey_from_blob(struct ud_sshkey **out, const void *blob,
			size_t len);
void ud_sshkey_free(struct ud_sshkey *k); /* accepts NULL */

/* Its public blob, its type ("ssh-ed25519") and its SHA256 fingerprint
 * as ssh-keygen -l prints it (caller frees). */
const unsigned char *ud_sshkey_blob(const struct ud_sshkey *k, size_t *len);
const char *ud_sshkey_type(const struct ud_sshkey *k);
char *ud_sshkey_fingerprint(const struct ud_sshkey *k);
/* Whether a and b are the same public key. */
int ud_sshkey_equal(const struct ud_sshkey *a, const struct ud_sshkey *b);

/* An SSH signature blob (string type, string signature) of data. */
int ud_sshkey_sign(const struct ud_sshkey *k, struct ud_buf *sig,
		   const void *data, size_t len);
/* 0 when sig (a signature blob) is k's signature of data; UD_EAUTH when
 * it is not, UD_EINVALID when malformed or of a type we cannot check. */
int ud_sshkey_verify(const struct ud_sshkey *k, const void *sig,
		     size_t siglen, const void *data, size_t len);

/* What private key text says of itself without being decrypted: whether
 * it is passphrase-protected (OpenSSH's format names its cipher, "none"
 * when clear; PEM says ENCRYPTED) and whether it is RSA. */
void ud_sshkey_info(const char *text, size_t len, int *encrypted, int *rsa);

/* ---- the SSH wire format (RFC 4251 §5) ---------------------------------- */

/* The next string at *p (its length in *n), advancing *p; NULL when the
 * buffer ends first. */
const unsigned char *ud_ssh_string(const unsigned char **p,
				   const unsigned char *end, size_t *n);
/* The next uint32 at *p; -1 when the buffer ends first. */
int ud_ssh_u32(const unsigned char **p, const unsigned char *end,
	       unsigned *out);
void ud_ssh_put_u32(struct ud_buf *b, unsigned v);
void ud_ssh_put_string(struct ud_buf *b, const void *s, size_t n);

/* Base64 (RFC 4648) ignoring whitespace; UD_EINVALID for anything else. */
int ud_base64_decode(struct ud_buf *out, const char *text, size_t len);

#endif
