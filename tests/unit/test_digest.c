#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "digest.h"
#include "errors.h"

#define SHA_EMPTY \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_vectors(void **state)
{
	char hex[UD_SHA256_HEX];

	(void)state;
	ud_sha256_mem(hex, "", 0);
	assert_string_equal(hex, SHA_EMPTY);
	ud_sha256_mem(hex, "abc", 3);
	assert_string_equal(hex, SHA_ABC);
}

static void test_incremental(void **state)
{
	struct ud_sha256 *c = ud_sha256_new();
	char hex[UD_SHA256_HEX];

	(void)state;
	ud_sha256_update(c, "a", 1);
	ud_sha256_update(c, "", 0);
	ud_sha256_update(c, "bc", 2);
	ud_sha256_final(c, hex);
	assert_string_equal(hex, SHA_ABC);
}

static void test_file(void **state)
{
	char dir[] = "/tmp/ud-digest-XXXXXX";
	char hex[UD_SHA256_HEX], want[UD_SHA256_HEX];
	uint64_t size = 0;
	char *path, *data;
	size_t i, len = 200000;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = ud_asprintf("%s/f", dir);
	data = ud_malloc(len);
	for (i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 1000);
	assert_int_equal(ud_write_file_atomic(path, data, len, 0644), 0);
	ud_sha256_mem(want, data, len);

	assert_int_equal(ud_sha256_file(hex, &size, path), 0);
	assert_string_equal(hex, want);
	assert_int_equal(size, len);

	free(path);
	path = ud_asprintf("%s/missing", dir);
	assert_int_equal(ud_sha256_file(hex, &size, path), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), path));

	free(path);
	free(data);
	ud_rm_rf(dir);
}

static void test_valid(void **state)
{
	(void)state;
	assert_true(ud_sha256_valid(SHA_ABC));
	assert_false(ud_sha256_valid(""));
	assert_false(ud_sha256_valid(NULL));
	assert_false(ud_sha256_valid(SHA_ABC "0"));
	assert_false(ud_sha256_valid(
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
	assert_false(ud_sha256_valid(
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
	assert_false(ud_sha256_valid(
		"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
