/*
 * sshsig.c: PROTOCOL.sshsig. What is signed is
 *
 *	"SSHSIG" string(namespace) string(reserved) string(hash) string(H(msg))
 *
 * and the signature is the blob
 *
 *	"SSHSIG" uint32(1) string(public key) string(namespace)
 *	string(reserved) string(hash) string(signature)
 *
 * in base64 between BEGIN/END SSH SIGNATURE lines.
 */
#include "sshsig.h"

#include <openssl/evp.h>
#include <string.h>

#include "errors.h"

#define MAGIC "SSHSIG"
#define MAGIC_LEN 6
#define VERSION 1
#define BEGIN "-----BEGIN SSH SIGNATURE-----"
#define END "-----END SSH SIGNATURE-----"
#define COLUMNS 70

/* The bytes the key signs: the preamble and the message's digest. */
static int signed_data(struct ud_buf *out, const char *ns, size_t nslen,
		       const char *hash, const void *msg, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const EVP_MD *alg = !strcmp(hash, "sha512") ? EVP_sha512() :
			    !strcmp(hash, "sha256") ? EVP_sha256() : NULL;

	if (!alg)
		return ud_error_set(UD_EINVALID,
				    "unsupported signature hash '%s'", hash);
	if (!EVP_Digest(msg, len, md, &mdlen, alg, NULL))
		return ud_error_set(UD_ERROR, "digest failed (libcrypto)");
	ud_buf_put(out, MAGIC, MAGIC_LEN);
	ud_ssh_put_string(out, ns, nslen);
	ud_ssh_put_string(out, "", 0);
	ud_ssh_put_string(out, hash, strlen(hash));
	ud_ssh_put_string(out, md, mdlen);
	return 0;
}

int ud_sshsig_sign(struct ud_buf *out, const struct ud_sshkey *key,
		   const char *ns, const void *msg, size_t len)
{
	struct ud_buf data = UD_BUF_INIT, sig = UD_BUF_INIT,
		      blob = UD_BUF_INIT;
	const unsigned char *pub;
	unsigned char *b64 = NULL;
	size_t publen, i, n;
	int err;

	if ((err = signed_data(&data, ns, strlen(ns), "sha512", msg, len)) <
		    0 ||
	    (err = ud_sshkey_sign(key, &sig, data.ptr, data.size)) < 0)
		goto done;
	pub = ud_sshkey_blob(key, &publen);
	ud_buf_put(&blob, MAGIC, MAGIC_LEN);
	ud_ssh_put_u32(&blob, VERSION);
	ud_ssh_put_string(&blob, pub, publen);
	ud_ssh_put_string(&blob, ns, strlen(ns));
	ud_ssh_put_string(&blob, "", 0);
	ud_ssh_put_string(&blob, "sha512", 6);
	ud_ssh_put_string(&blob, sig.ptr, sig.size);
	b64 = ud_malloc(4 * ((blob.size + 2) / 3) + 1);
	n = (size_t)EVP_EncodeBlock(b64, (const unsigned char *)blob.ptr,
				    (int)blob.size);
	ud_buf_puts(out, BEGIN "\n");
	for (i = 0; i < n; i += COLUMNS) {
		ud_buf_put(out, b64 + i, n - i < COLUMNS ? n - i : COLUMNS);
		ud_buf_putc(out, '\n');
	}
	ud_buf_puts(out, END);
done:
	free(b64);
	ud_buf_free(&data);
	ud_buf_free(&sig);
	ud_buf_free(&blob);
	return err;
}

int ud_sshsig_verify(struct ud_sshkey **signer, const char *sig,
		     size_t siglen, const char *ns, const void *msg,
		     size_t len)
{
	struct ud_buf raw = UD_BUF_INIT, data = UD_BUF_INIT;
	const char *b = memmem(sig, siglen, BEGIN, strlen(BEGIN)), *e;
	const unsigned char *p, *end, *pub, *sns, *hash, *s;
	size_t publen, nslen, hashlen, slen, n;
	struct ud_sshkey *key = NULL;
	unsigned version;
	char hashname[16];
	int err;

	*signer = NULL;
	if (!b || !(e = memmem(b, siglen - (size_t)(b - sig), END,
			       strlen(END)))) {
		err = ud_error_set(UD_EINVALID, "not an SSH signature");
		goto done;
	}
	b += strlen(BEGIN);
	if ((err = ud_base64_decode(&raw, b, (size_t)(e - b))) < 0) {
		ud_error_set(UD_EINVALID, "malformed SSH signature (base64)");
		goto done;
	}
	p = (const unsigned char *)raw.ptr;
	end = p + raw.size;
	err = ud_error_set(UD_EINVALID, "malformed SSH signature");
	if (raw.size < MAGIC_LEN || memcmp(p, MAGIC, MAGIC_LEN))
		goto done;
	p += MAGIC_LEN;
	if (ud_ssh_u32(&p, end, &version) < 0 || version != VERSION ||
	    !(pub = ud_ssh_string(&p, end, &publen)) ||
	    !(sns = ud_ssh_string(&p, end, &nslen)) ||
	    !ud_ssh_string(&p, end, &n) ||
	    !(hash = ud_ssh_string(&p, end, &hashlen)) ||
	    hashlen >= sizeof(hashname) ||
	    !(s = ud_ssh_string(&p, end, &slen)) || p != end)
		goto done;
	if (nslen != strlen(ns) || memcmp(sns, ns, nslen)) {
		err = ud_error_set(UD_EINVALID,
				   "signature for namespace '%.*s', not '%s'",
				   (int)(nslen > 32 ? 32 : nslen), sns, ns);
		goto done;
	}
	memcpy(hashname, hash, hashlen);
	hashname[hashlen] = '\0';
	if ((err = ud_sshkey_from_blob(&key, pub, publen)) < 0 ||
	    (err = signed_data(&data, ns, nslen, hashname, msg, len)) < 0 ||
	    (err = ud_sshkey_verify(key, s, slen, data.ptr, data.size)) < 0)
		goto done;
	ud_error_clear();
	*signer = key;
	key = NULL;
done:
	ud_sshkey_free(key);
	ud_buf_free(&raw);
	ud_buf_free(&data);
	return err;
}
