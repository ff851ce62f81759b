#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "compress.h"
#include "digest.h"
#include "errors.h"

struct fixture {
	char dir[32];
	char *image;   /* a few MB, compressible */
	char *empty;   /* zero bytes */
	char sha[UD_SHA256_HEX];
	uint64_t size;
};

static const enum ud_compression all[] = {
	UD_COMP_NONE, UD_COMP_GZIP, UD_COMP_XZ, UD_COMP_ZSTD,
};

static int setup(void **state)
{
	static const char *words[] = { "kernel ", "boot ", "unikernel ",
				       "\n", "page ", "0xdeadbeef ", "net ",
				       "\x01\x02\x03", "release " };
	struct fixture *f = ud_calloc(1, sizeof(*f));
	struct ud_buf b = UD_BUF_INIT;
	uint32_t x = 12345;

	strcpy(f->dir, "/tmp/ud-comp-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* Pseudo-random words: compressible, but not trivially so. */
	while (b.size < 3 * 1024 * 1024 + 17) {
		x = x * 1103515245u + 12345u;
		ud_buf_puts(&b, words[(x >> 16) % 9]);
		if ((x >> 8) % 7 == 0)
			ud_buf_printf(&b, "%u", x);
	}
	f->image = ud_asprintf("%s/image", f->dir);
	f->empty = ud_asprintf("%s/empty", f->dir);
	if (ud_write_file_atomic(f->image, b.ptr, b.size, 0644) < 0 ||
	    ud_write_file_atomic(f->empty, "", 0, 0644) < 0)
		return -1;
	ud_sha256_mem(f->sha, b.ptr, b.size);
	f->size = b.size;
	ud_buf_free(&b);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ud_rm_rf(f->dir);
	free(f->image);
	free(f->empty);
	free(f);
	return 0;
}

static void test_names(void **state)
{
	enum ud_compression c;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		assert_int_equal(ud_compression_parse(
					 &c, ud_compression_name(all[i])), 0);
		assert_int_equal(c, all[i]);
	}
	assert_string_equal(ud_compression_name(UD_COMP_ZSTD), "zstd");
	assert_string_equal(ud_compression_suffix(UD_COMP_NONE), "");
	assert_string_equal(ud_compression_suffix(UD_COMP_GZIP), ".gz");
	assert_string_equal(ud_compression_suffix(UD_COMP_XZ), ".xz");
	assert_string_equal(ud_compression_suffix(UD_COMP_ZSTD), ".zst");
	assert_int_equal(ud_compression_parse(&c, "bzip2"), UD_EINVALID);
	assert_string_equal(ud_error_last(), "unknown compression 'bzip2' "
			    "(expected none, gzip, xz or zstd)");
	assert_int_equal(ud_compression_parse(&c, "GZIP"), UD_EINVALID);
}

/* Decompress into a file and return its digest and size as read back. */
static int decompress_to_file(struct fixture *f, const struct ud_buf *in,
			      enum ud_compression c, char sha[UD_SHA256_HEX],
			      uint64_t *size, char ondisk[UD_SHA256_HEX],
			      uint64_t *ondisk_size)
{
	char *out = ud_asprintf("%s/out", f->dir);
	int fd, err;

	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	err = ud_decompress_to_fd(fd, in->ptr, in->size, c, sha, size);
	close(fd);
	if (err == 0)
		assert_int_equal(ud_sha256_file(ondisk, ondisk_size, out), 0);
	unlink(out);
	free(out);
	return err;
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	char sha[UD_SHA256_HEX], disk[UD_SHA256_HEX];
	uint64_t size, disk_size;
	size_t i;

	for (i = 0; i < 4; i++) {
		struct ud_buf z = UD_BUF_INIT;

		assert_int_equal(ud_compress_file(&z, f->image, all[i]), 0);
		if (all[i] == UD_COMP_NONE)
			assert_int_equal(z.size, f->size);
		else
			assert_true(z.size < f->size / 2);
		assert_int_equal(decompress_to_file(f, &z, all[i], sha, &size,
						    disk, &disk_size), 0);
		assert_string_equal(sha, f->sha);
		assert_int_equal(size, f->size);
		assert_string_equal(disk, f->sha);
		assert_int_equal(disk_size, f->size);
		ud_buf_free(&z);
	}
}

static void test_appends(void **state)
{
	struct fixture *f = *state;
	struct ud_buf z = UD_BUF_INIT;

	ud_buf_puts(&z, "prefix");
	assert_int_equal(ud_compress_file(&z, f->image, UD_COMP_GZIP), 0);
	assert_memory_equal(z.ptr, "prefix", 6);
	/* gzip magic right after what was there. */
	assert_int_equal((unsigned char)z.ptr[6], 0x1f);
	assert_int_equal((unsigned char)z.ptr[7], 0x8b);
	ud_buf_free(&z);
}

static void test_empty_image(void **state)
{
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < 4; i++) {
		struct ud_buf z = UD_BUF_INIT;

		assert_int_equal(ud_compress_file(&z, f->empty, all[i]),
				 UD_EINVALID);
		assert_non_null(strstr(ud_error_last(), "empty image"));
		assert_int_equal(z.size, 0);
		ud_buf_free(&z);
	}
}

static void test_missing_file(void **state)
{
	struct fixture *f = *state;
	struct ud_buf z = UD_BUF_INIT;
	char *path = ud_asprintf("%s/none", f->dir);

	assert_int_equal(ud_compress_file(&z, path, UD_COMP_XZ), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), path));
	free(path);
	ud_buf_free(&z);
}

static void expect_invalid(struct fixture *f, const void *data, size_t len,
			   enum ud_compression c)
{
	struct ud_buf in = UD_BUF_INIT;
	char sha[UD_SHA256_HEX], disk[UD_SHA256_HEX];
	uint64_t size, disk_size;

	ud_buf_put(&in, data, len);
	assert_int_equal(decompress_to_file(f, &in, c, sha, &size, disk,
					    &disk_size), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "cannot decompress"));
	ud_buf_free(&in);
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	static const char garbage[] = "this is not compressed data at all, "
				      "just some text that goes on and on";
	size_t i;

	for (i = 1; i < 4; i++) {
		struct ud_buf z = UD_BUF_INIT;

		expect_invalid(f, garbage, sizeof(garbage) - 1, all[i]);
		expect_invalid(f, "", 0, all[i]);
		assert_int_equal(ud_compress_file(&z, f->image, all[i]), 0);
		/* Cut short. */
		expect_invalid(f, z.ptr, z.size / 2, all[i]);
		/* Valid data of another codec. */
		expect_invalid(f, z.ptr, z.size,
			       all[i] == UD_COMP_GZIP ? UD_COMP_XZ :
						       UD_COMP_GZIP);
		/* A damaged byte in the middle: xz's check catches it
		 * (libarchive does not verify gzip's CRC, and zstd frames
		 * carry none by default; the manifest digest covers both). */
		if (all[i] == UD_COMP_XZ) {
			z.ptr[z.size / 2] ^= 0x55;
			expect_invalid(f, z.ptr, z.size, all[i]);
		}
		ud_buf_free(&z);
	}
}

static void test_capped_output(void **state)
{
	struct fixture *f = *state;
	struct ud_buf z = UD_BUF_INIT;

	ud_buf_init(&z, 1000);
	assert_int_equal(ud_compress_file(&z, f->image, UD_COMP_ZSTD),
			 UD_ETOOBIG);
	assert_non_null(strstr(ud_error_last(), "limit"));
	assert_true(z.size <= 1000);
	ud_buf_free(&z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_appends),
		cmocka_unit_test(test_empty_image),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_capped_output),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
