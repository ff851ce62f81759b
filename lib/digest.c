/* digest.c: SHA-256 through libcrypto's EVP interface. */
#include "digest.h"
#include "errors.h"
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

struct ud_sha256 {
	EVP_MD_CTX *md;
};

static void oom(void)
{
	fprintf(stderr, "fatal: cannot create a SHA-256 context\n");
	abort();
}

struct ud_sha256 *ud_sha256_new(void)
{
	struct ud_sha256 *c = ud_malloc(sizeof(*c));

	/* Failure here means libcrypto could not allocate: treat as OOM. */
	if (!(c->md = EVP_MD_CTX_new()) ||
	    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		oom();
	return c;
}

void ud_sha256_update(struct ud_sha256 *c, const void *data, size_t len)
{
	if (len)
		EVP_DigestUpdate(c->md, data, len);
}

void ud_sha256_final(struct ud_sha256 *c, char out[UD_SHA256_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	EVP_DigestFinal_ex(c->md, md, &n);
	for (i = 0; i < n && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * i] = '\0';
	EVP_MD_CTX_free(c->md);
	free(c);
}

void ud_sha256_mem(char out[UD_SHA256_HEX], const void *data, size_t len)
{
	struct ud_sha256 *c = ud_sha256_new();

	ud_sha256_update(c, data, len);
	ud_sha256_final(c, out);
}

int ud_sha256_file(char out[UD_SHA256_HEX], uint64_t *size, const char *path)
{
	struct ud_sha256 *c = NULL;
	uint64_t total = 0;
	char *chunk = NULL;
	ssize_t n;
	int fd, err = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ud_error_set_errno(errno == ENOENT ? UD_ENOTFOUND :
					  UD_ERROR, "cannot open %s", path);
	chunk = ud_malloc(65536);
	c = ud_sha256_new();
	for (;;) {
		n = read(fd, chunk, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = ud_error_set_errno(UD_ERROR, "cannot read %s",
						 path);
			goto done;
		}
		if (n == 0)
			break;
		ud_sha256_update(c, chunk, (size_t)n);
		total += (uint64_t)n;
	}
	ud_sha256_final(c, out);
	c = NULL;
	if (size)
		*size = total;

done:
	if (c) {
		char discard[UD_SHA256_HEX];

		ud_sha256_final(c, discard);
	}
	free(chunk);
	close(fd);
	return err;
}

int ud_sha256_valid(const char *s)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}
