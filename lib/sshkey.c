/*
 * sshkey.c: OpenSSH keys read from memory, ed25519 signatures through
 * libcrypto (see sshkey.h). The private key format is OpenSSH's
 * PROTOCOL.key: "openssh-key-v1\0", cipher, kdf, kdf options, the number
 * of keys, their public blobs, then the private section (two equal check
 * words, per key its type, fields and comment, then padding).
 */
#include "sshkey.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "ssh.h"

#define ED25519_TYPE "ssh-ed25519"
#define ED25519_LEN 32
#define ED25519_SIGLEN 64

struct ud_sshkey {
	EVP_PKEY *pkey; /* NULL for a type we read but cannot use */
	char *type;
	unsigned char *blob;
	size_t bloblen;
};

/* ---- the wire format ---------------------------------------------------- */

const unsigned char *ud_ssh_string(const unsigned char **p,
				   const unsigned char *end, size_t *n)
{
	const unsigned char *s = *p;

	if (end - s < 4)
		return NULL;
	*n = (size_t)s[0] << 24 | (size_t)s[1] << 16 | (size_t)s[2] << 8 | s[3];
	if (*n > (size_t)(end - s) - 4)
		return NULL;
	*p = s + 4 + *n;
	return s + 4;
}

int ud_ssh_u32(const unsigned char **p, const unsigned char *end,
	       unsigned *out)
{
	const unsigned char *s = *p;

	if (end - s < 4)
		return -1;
	*out = (unsigned)s[0] << 24 | (unsigned)s[1] << 16 |
	       (unsigned)s[2] << 8 | s[3];
	*p = s + 4;
	return 0;
}

void ud_ssh_put_u32(struct ud_buf *b, unsigned v)
{
	unsigned char w[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
			       (unsigned char)(v >> 8), (unsigned char)v };

	ud_buf_put(b, w, 4);
}

void ud_ssh_put_string(struct ud_buf *b, const void *s, size_t n)
{
	ud_ssh_put_u32(b, (unsigned)n);
	ud_buf_put(b, s, n);
}

static int string_is(const unsigned char *s, size_t n, const char *want)
{
	return s && n == strlen(want) && !memcmp(s, want, n);
}

int ud_base64_decode(struct ud_buf *out, const char *text, size_t len)
{
	struct ud_buf clean = UD_BUF_INIT;
	EVP_ENCODE_CTX *ctx = NULL;
	int outl = 0, fin = 0, err = 0;
	size_t i;

	for (i = 0; i < len; i++)
		if (!isspace((unsigned char)text[i]))
			ud_buf_putc(&clean, text[i]);
	ud_buf_grow(out, clean.size + 3);
	ctx = EVP_ENCODE_CTX_new();
	EVP_DecodeInit(ctx);
	if (clean.size % 4 != 0 ||
	    EVP_DecodeUpdate(ctx, (unsigned char *)out->ptr + out->size, &outl,
			     (const unsigned char *)clean.ptr,
			     (int)clean.size) < 0 ||
	    EVP_DecodeFinal(ctx, (unsigned char *)out->ptr + out->size + outl,
			    &fin) < 0)
		err = ud_error_set(UD_EINVALID, "not valid base64");
	else
		out->size += (size_t)outl + (size_t)fin;
	EVP_ENCODE_CTX_free(ctx);
	ud_buf_free(&clean);
	return err;
}

/* ---- keys --------------------------------------------------------------- */

void ud_sshkey_free(struct ud_sshkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k->type);
	free(k->blob);
	free(k);
}

const unsigned char *ud_sshkey_blob(const struct ud_sshkey *k, size_t *len)
{
	*len = k->bloblen;
	return k->blob;
}

const char *ud_sshkey_type(const struct ud_sshkey *k)
{
	return k->type;
}

char *ud_sshkey_fingerprint(const struct ud_sshkey *k)
{
	return ud_ssh_fingerprint(k->blob, k->bloblen);
}

int ud_sshkey_equal(const struct ud_sshkey *a, const struct ud_sshkey *b)
{
	return a->bloblen == b->bloblen &&
	       !memcmp(a->blob, b->blob, a->bloblen);
}

int ud_sshkey_from_blob(struct ud_sshkey **out, const void *blob, size_t len)
{
	const unsigned char *p = blob, *end = p + len, *type, *pub;
	size_t tlen, plen;
	struct ud_sshkey *k;

	*out = NULL;
	if (!(type = ud_ssh_string(&p, end, &tlen)) || tlen == 0 ||
	    memchr(type, '\0', tlen))
		return ud_error_set(UD_EINVALID, "not an SSH public key");
	k = ud_calloc(1, sizeof(*k));
	k->type = ud_strndup((const char *)type, tlen);
	k->blob = ud_malloc(len);
	memcpy(k->blob, blob, len);
	k->bloblen = len;
	if (!strcmp(k->type, ED25519_TYPE)) {
		if (!(pub = ud_ssh_string(&p, end, &plen)) ||
		    plen != ED25519_LEN || p != end ||
		    !(k->pkey = EVP_PKEY_new_raw_public_key(
			      EVP_PKEY_ED25519, NULL, pub, plen))) {
			ud_sshkey_free(k);
			return ud_error_set(UD_EINVALID,
					    "malformed ssh-ed25519 public key");
		}
	}
	*out = k;
	return 0;
}

/* The base64 between OpenSSH's armour lines, decoded. */
static int unarmor(struct ud_buf *raw, const char *text, size_t len,
		   const char *label)
{
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
	const char *b = memmem(text, len, begin, sizeof(begin) - 1), *e;

	if (!b)
		return ud_error_set(UD_EINVALID,
				    "%s: not an OpenSSH private key (ssh-keygen "
				    "writes one with -t ed25519)", label);
	b += sizeof(begin) - 1;
	if (!(e = memmem(b, len - (size_t)(b - text), "-----END", 8)) ||
	    ud_base64_decode(raw, b, (size_t)(e - b)) < 0)
		return ud_error_set(UD_EINVALID,
				    "%s: malformed OpenSSH private key", label);
	return 0;
}

int ud_sshkey_parse_private(struct ud_sshkey **out, const char *text,
			    size_t len, const char *label)
{
	static const char magic[] = "openssh-key-v1"; /* with its NUL */
	struct ud_buf raw = UD_BUF_INIT;
	const unsigned char *p, *end, *s, *pub, *priv, *type, *blob;
	size_t n, publen, privlen, tlen, bloblen;
	unsigned nkeys, check1, check2;
	struct ud_sshkey *k = NULL;
	int err;

	*out = NULL;
	if ((err = unarmor(&raw, text, len, label)) < 0)
		goto done;
	p = (const unsigned char *)raw.ptr;
	end = p + raw.size;
	err = ud_error_set(UD_EINVALID, "%s: malformed OpenSSH private key",
			   label);
	if (raw.size < sizeof(magic) || memcmp(p, magic, sizeof(magic)))
		goto done;
	p += sizeof(magic);
	if (!(s = ud_ssh_string(&p, end, &n)))
		goto done;
	if (!string_is(s, n, "none")) {
		err = ud_error_set(UD_EINVALID,
				   "%s: the key is passphrase-protected; "
				   "signing needs a key without one",
				   label);
		goto done;
	}
	if (!ud_ssh_string(&p, end, &n) || !ud_ssh_string(&p, end, &n) ||
	    ud_ssh_u32(&p, end, &nkeys) < 0 || nkeys != 1 ||
	    !(blob = ud_ssh_string(&p, end, &bloblen)) ||
	    !(s = ud_ssh_string(&p, end, &n)))
		goto done;
	/* The private section. */
	end = s + n;
	p = s;
	if (ud_ssh_u32(&p, end, &check1) < 0 ||
	    ud_ssh_u32(&p, end, &check2) < 0 || check1 != check2 ||
	    !(type = ud_ssh_string(&p, end, &tlen)))
		goto done;
	if (!string_is(type, tlen, ED25519_TYPE)) {
		err = ud_error_set(UD_EINVALID,
				   "%s: a %.*s key; signing supports "
				   "ssh-ed25519 keys", label,
				   (int)(tlen > 40 ? 40 : tlen), type);
		goto done;
	}
	/* ssh-ed25519: the public key, then the 32-byte seed followed by
	 * the public key again. */
	if (!(pub = ud_ssh_string(&p, end, &publen)) ||
	    publen != ED25519_LEN ||
	    !(priv = ud_ssh_string(&p, end, &privlen)) ||
	    privlen != 2 * ED25519_LEN ||
	    memcmp(priv + ED25519_LEN, pub, ED25519_LEN))
		goto done;
	if ((err = ud_sshkey_from_blob(&k, blob, bloblen)) < 0) {
		ud_error_set(UD_EINVALID, "%s: malformed public key", label);
		goto done;
	}
	EVP_PKEY_free(k->pkey);
	if (!(k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
						      priv, ED25519_LEN))) {
		err = ud_error_set(UD_EINVALID, "%s: unusable ed25519 key",
				   label);
		goto done;
	}
	ud_error_clear();
	err = 0;
	*out = k;
	k = NULL;
done:
	/* The decoded key holds the secret: wipe it before freeing. */
	if (raw.ptr)
		OPENSSL_cleanse(raw.ptr, raw.size);
	ud_buf_free(&raw);
	ud_sshkey_free(k);
	return err;
}

/* ---- signatures --------------------------------------------------------- */

int ud_sshkey_sign(const struct ud_sshkey *k, struct ud_buf *sig,
		   const void *data, size_t len)
{
	unsigned char raw[ED25519_SIGLEN];
	size_t rawlen = sizeof(raw);
	EVP_MD_CTX *ctx;
	int ok;

	if (!k->pkey || strcmp(k->type, ED25519_TYPE))
		return ud_error_set(UD_EINVALID, "cannot sign with a %s key",
				    k->type);
	ctx = EVP_MD_CTX_new();
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestSign(ctx, raw, &rawlen, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return ud_error_set(UD_ERROR, "signing failed (libcrypto)");
	ud_ssh_put_string(sig, ED25519_TYPE, strlen(ED25519_TYPE));
	ud_ssh_put_string(sig, raw, rawlen);
	return 0;
}

int ud_sshkey_verify(const struct ud_sshkey *k, const void *sig,
		     size_t siglen, const void *data, size_t len)
{
	const unsigned char *p = sig, *end = p + siglen, *type, *raw;
	size_t tlen, rawlen;
	EVP_MD_CTX *ctx;
	int ok;

	if (!k->pkey)
		return ud_error_set(UD_EINVALID,
				    "signatures by %s keys are not supported "
				    "(use ssh-ed25519)", k->type);
	if (!(type = ud_ssh_string(&p, end, &tlen)) ||
	    !(raw = ud_ssh_string(&p, end, &rawlen)) || p != end)
		return ud_error_set(UD_EINVALID, "malformed signature");
	if (!string_is(type, tlen, k->type) || rawlen != ED25519_SIGLEN)
		return ud_error_set(UD_EINVALID,
				    "the signature's type is not the key's");
	ctx = EVP_MD_CTX_new();
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(ctx, raw, rawlen, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : ud_error_set(UD_EAUTH, "bad signature");
}

/* ---- what a private key says of itself ---------------------------------- */

void ud_sshkey_info(const char *text, size_t len, int *encrypted, int *rsa)
{
	static const char magic[] = "openssh-key-v1";
	struct ud_buf raw = UD_BUF_INIT;
	const unsigned char *p, *end, *cipher, *pub, *type;
	size_t clen, plen, tlen;

	*encrypted = *rsa = 0;
	if (!memmem(text, len, "-----BEGIN OPENSSH PRIVATE KEY-----", 35)) {
		const char *hend = memmem(text, len, "-----END", 8);

		*encrypted = memmem(text, hend ? (size_t)(hend - text) : len,
				    "ENCRYPTED", 9) != NULL;
		*rsa = memmem(text, len, "BEGIN RSA PRIVATE KEY", 21) != NULL;
		return;
	}
	if (unarmor(&raw, text, len, "key") < 0) {
		ud_error_clear();
		ud_buf_free(&raw);
		return;
	}
	p = (const unsigned char *)raw.ptr + sizeof(magic);
	end = (const unsigned char *)raw.ptr + raw.size;
	if (raw.size > sizeof(magic) && !memcmp(raw.ptr, magic, sizeof(magic)) &&
	    (cipher = ud_ssh_string(&p, end, &clen))) {
		*encrypted = !string_is(cipher, clen, "none");
		/* kdfname, kdfoptions, the number of keys (uint32), then
		 * the first public key, which starts with its type. */
		if (ud_ssh_string(&p, end, &plen) &&
		    ud_ssh_string(&p, end, &plen) && end - p >= 4) {
			p += 4;
			if ((pub = ud_ssh_string(&p, end, &plen)) &&
			    (type = ud_ssh_string(&pub, pub + plen, &tlen)))
				*rsa = string_is(type, tlen, "ssh-rsa");
		}
	}
	OPENSSL_cleanse(raw.ptr, raw.size);
	ud_buf_free(&raw);
}
