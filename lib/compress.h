/*
 * compress.h: image compression with libarchive's raw format and its
 * filters (none, gzip, xz, zstd). The digest in a manifest is always of the
 * uncompressed image, the bytes that will be booted.
 */
#ifndef UD_COMPRESS_H
#define UD_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "digest.h"

enum ud_compression {
	UD_COMP_NONE,
	UD_COMP_GZIP,
	UD_COMP_XZ,
	UD_COMP_ZSTD,
};

/* "none", "gzip", "xz", "zstd"; UD_EINVALID otherwise (message names it). */
int ud_compression_parse(enum ud_compression *out, const char *name);
const char *ud_compression_name(enum ud_compression c);
/* File name suffix: "", ".gz", ".xz", ".zst". */
const char *ud_compression_suffix(enum ud_compression c);

/* Compress the file at `path` into `out` (appended). */
int ud_compress_file(struct ud_buf *out, const char *path,
		     enum ud_compression c);

/* Decompress `len` bytes to fd, computing the SHA-256 and size of what was
 * written (the uncompressed image). UD_EINVALID for corrupt data
 * (archive_error_string carried in the message). */
int ud_decompress_to_fd(int fd, const void *data, size_t len,
			enum ud_compression c, char sha256[UD_SHA256_HEX],
			uint64_t *size);

#endif
