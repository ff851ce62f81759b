/* digest.h: SHA-256 with libcrypto's EVP interface, as lowercase hex. */
#ifndef UD_DIGEST_H
#define UD_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define UD_SHA256_HEX 65 /* 64 hex digits and a NUL */

struct ud_sha256; /* incremental context */
struct ud_sha256 *ud_sha256_new(void);
void ud_sha256_update(struct ud_sha256 *c, const void *data, size_t len);
void ud_sha256_final(struct ud_sha256 *c, char out[UD_SHA256_HEX]); /* frees */

void ud_sha256_mem(char out[UD_SHA256_HEX], const void *data, size_t len);
/* Digest and size of a file; UD_ENOTFOUND / UD_ERROR naming the path. */
int ud_sha256_file(char out[UD_SHA256_HEX], uint64_t *size, const char *path);
/* 1 if s is exactly 64 lowercase hex digits. */
int ud_sha256_valid(const char *s);

#endif
