/* compress.c: images through libarchive's raw format and its filters. */
#include "compress.h"
#include "errors.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#define CHUNK (64 * 1024)

static const struct {
	const char *name, *suffix;
	int filter; /* ARCHIVE_FILTER_* */
} codecs[] = {
	[UD_COMP_NONE] = { "none", "", ARCHIVE_FILTER_NONE },
	[UD_COMP_GZIP] = { "gzip", ".gz", ARCHIVE_FILTER_GZIP },
	[UD_COMP_XZ] = { "xz", ".xz", ARCHIVE_FILTER_XZ },
	[UD_COMP_ZSTD] = { "zstd", ".zst", ARCHIVE_FILTER_ZSTD },
};
#define NCODECS (sizeof(codecs) / sizeof(codecs[0]))

int ud_compression_parse(enum ud_compression *out, const char *name)
{
	size_t i;

	for (i = 0; name && i < NCODECS; i++)
		if (!strcmp(name, codecs[i].name)) {
			*out = (enum ud_compression)i;
			return 0;
		}
	return ud_error_set(UD_EINVALID, "unknown compression '%s' "
			    "(expected none, gzip, xz or zstd)",
			    name ? name : "");
}

const char *ud_compression_name(enum ud_compression c)
{
	return (size_t)c < NCODECS ? codecs[c].name : "unknown";
}

const char *ud_compression_suffix(enum ud_compression c)
{
	return (size_t)c < NCODECS ? codecs[c].suffix : "";
}

static int archive_err(int code, struct archive *a, const char *what,
		       const char *path)
{
	const char *msg = archive_error_string(a);

	return ud_error_set(code, "%s %s: %s", what, path,
			    msg ? msg : "unknown libarchive error");
}

struct sink {
	struct ud_buf *out;
	int err; /* why the buffer refused more, e.g. UD_ETOOBIG */
};

static la_ssize_t to_buf(struct archive *a, void *payload, const void *data,
			 size_t len)
{
	struct sink *s = payload;

	if ((s->err = ud_buf_put(s->out, data, len)) < 0) {
		archive_set_error(a, EFBIG, "%s", ud_error_last());
		return -1;
	}
	return (la_ssize_t)len;
}

static int add_filter(struct archive *a, enum ud_compression c)
{
	switch (c) {
	case UD_COMP_GZIP:
		return archive_write_add_filter_gzip(a);
	case UD_COMP_XZ:
		return archive_write_add_filter_xz(a);
	case UD_COMP_ZSTD:
		return archive_write_add_filter_zstd(a);
	default:
		return archive_write_add_filter_none(a);
	}
}

static ssize_t read_some(int fd, char *chunk, size_t len)
{
	ssize_t n;

	while ((n = read(fd, chunk, len)) < 0 && errno == EINTR)
		;
	return n;
}

int ud_compress_file(struct ud_buf *out, const char *path,
		     enum ud_compression c)
{
	struct sink sink = { out, 0 };
	struct archive *a = NULL;
	struct archive_entry *e = NULL;
	char *chunk = NULL;
	struct stat st;
	int fd, err = 0;
	ssize_t n;

	if ((size_t)c >= NCODECS)
		return ud_error_set(UD_EINVALID, "unknown compression %d",
				    (int)c);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ud_error_set_errno(errno == ENOENT ? UD_ENOTFOUND :
					  UD_ERROR, "cannot open %s", path);
	if (fstat(fd, &st) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot stat %s", path);
		goto done;
	}
	/* libarchive's raw reader cannot read back an empty entry, and an
	 * empty image boots nothing: refuse it here, at build time. */
	if (st.st_size == 0) {
		err = ud_error_set(UD_EINVALID, "cannot compress %s: empty image",
				   path);
		goto done;
	}
	chunk = ud_malloc(CHUNK);

	/* Raw bytes need no codec. */
	if (c == UD_COMP_NONE) {
		while ((n = read_some(fd, chunk, CHUNK)) > 0)
			if ((err = ud_buf_put(out, chunk, (size_t)n)) < 0)
				goto done;
		if (n < 0)
			err = ud_error_set_errno(UD_ERROR, "cannot read %s",
						 path);
		goto done;
	}

	a = archive_write_new();
	e = archive_entry_new();
	if (!a || !e) {
		err = ud_error_set(UD_ERROR, "cannot compress %s: out of memory",
				   path);
		goto done;
	}
	/* Unblocked: no padding after the last byte of the stream. */
	if (archive_write_set_format_raw(a) != ARCHIVE_OK ||
	    add_filter(a, c) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_open(a, &sink, NULL, to_buf, NULL) != ARCHIVE_OK) {
		err = archive_err(UD_ERROR, a, "cannot compress", path);
		goto done;
	}
	archive_entry_set_pathname(e, "image");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, st.st_size);
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		err = archive_err(UD_ERROR, a, "cannot compress", path);
		goto done;
	}
	while ((n = read_some(fd, chunk, CHUNK)) > 0)
		if (archive_write_data(a, chunk, (size_t)n) != n) {
			err = archive_err(UD_ERROR, a, "cannot compress", path);
			goto done;
		}
	if (n < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot read %s", path);
		goto done;
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		err = archive_err(UD_ERROR, a, "cannot compress", path);

done:
	if (err < 0 && sink.err < 0)
		err = sink.err;
	if (a)
		archive_write_free(a);
	archive_entry_free(e);
	free(chunk);
	close(fd);
	return err;
}

static int add_read_filter(struct archive *a, enum ud_compression c)
{
	switch (c) {
	case UD_COMP_GZIP:
		return archive_read_support_filter_gzip(a);
	case UD_COMP_XZ:
		return archive_read_support_filter_xz(a);
	default:
		return archive_read_support_filter_zstd(a);
	}
}

int ud_decompress_to_fd(int fd, const void *data, size_t len,
			enum ud_compression c, char sha256[UD_SHA256_HEX],
			uint64_t *size)
{
	const char *name = ud_compression_name(c);
	struct ud_sha256 *h = NULL;
	struct archive *a = NULL;
	struct archive_entry *e;
	uint64_t total = 0;
	char *chunk = NULL;
	la_ssize_t n;
	int err = 0, rc;

	if ((size_t)c >= NCODECS)
		return ud_error_set(UD_EINVALID, "unknown compression %d",
				    (int)c);
	h = ud_sha256_new();
	if (c == UD_COMP_NONE) {
		if ((err = ud_write_all(fd, data, len)) < 0)
			goto done;
		ud_sha256_update(h, data, len);
		total = len;
		goto finish;
	}

	chunk = ud_malloc(CHUNK);
	if (!(a = archive_read_new())) {
		err = ud_error_set(UD_ERROR, "cannot decompress: out of memory");
		goto done;
	}
	if (add_read_filter(a, c) != ARCHIVE_OK ||
	    archive_read_support_format_raw(a) != ARCHIVE_OK) {
		err = archive_err(UD_ERROR, a, "cannot decompress", name);
		goto done;
	}
	if (archive_read_open_memory(a, data, len) != ARCHIVE_OK ||
	    (rc = archive_read_next_header(a, &e)) < ARCHIVE_WARN) {
		err = archive_err(UD_EINVALID, a, "cannot decompress", name);
		goto done;
	}
	/* Data that is not in the codec we were told would pass through the
	 * raw reader unfiltered: refuse it instead. */
	if (rc == ARCHIVE_EOF || archive_filter_count(a) < 2 ||
	    archive_filter_code(a, 0) != codecs[c].filter) {
		err = ud_error_set(UD_EINVALID, "cannot decompress %s: "
				   "not %s data", name, name);
		goto done;
	}
	while ((n = archive_read_data(a, chunk, CHUNK)) > 0) {
		if ((err = ud_write_all(fd, chunk, (size_t)n)) < 0)
			goto done;
		ud_sha256_update(h, chunk, (size_t)n);
		total += (uint64_t)n;
	}
	if (n < 0) {
		err = archive_err(UD_EINVALID, a, "cannot decompress", name);
		goto done;
	}

finish:
	ud_sha256_final(h, sha256);
	h = NULL;
	if (size)
		*size = total;

done:
	if (h) {
		char discard[UD_SHA256_HEX];

		ud_sha256_final(h, discard);
	}
	if (a)
		archive_read_free(a);
	free(chunk);
	return err;
}
