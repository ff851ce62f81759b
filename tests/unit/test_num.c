/* test_num.c: the strict number parser (lib/num.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "errors.h"
#include "num.h"

static void test_valid(void **state)
{
	static const struct {
		const char *in;
		long long want;
	} cases[] = {
		{ "0", 0 }, { "3", 3 }, { "10", 10 }, { "65535", 65535 },
		{ "999999999999999999", 999999999999999999LL },
	};
	long long v;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		v = -1;
		assert_int_equal(ud_num_parse(cases[i].in, 0,
					      999999999999999999LL, &v),
				 0);
		assert_true(v == cases[i].want);
	}
}

/* What strtol/atoi would have taken as 3, and more. */
static void test_invalid(void **state)
{
	static const char *const cases[] = {
		"", " 3", "3 ", "\t3", "3\n", "+3", "-3", "03", "00", "3abc",
		"0x3", "3.0", "1e3", "٣", "1000000000000000000",
		"99999999999999999999999",
	};
	long long v = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		if (ud_num_parse(cases[i], 0, 999999999999999999LL, &v) !=
		    UD_EINVALID)
			fail_msg("'%s' was taken for %lld", cases[i], v);
		assert_true(v == 42); /* untouched */
	}
	assert_int_equal(ud_num_parse(NULL, 0, 10, &v), UD_EINVALID);
}

static void test_range(void **state)
{
	long long v = 0;

	(void)state;
	assert_int_equal(ud_num_parse("0", 1, 65535, &v), UD_EINVALID);
	assert_int_equal(ud_num_parse("65536", 1, 65535, &v), UD_EINVALID);
	assert_int_equal(ud_num_parse("1", 1, 65535, &v), 0);
	assert_true(v == 1);
}

/* A length bounds the number: "12\n" read as its first two bytes. */
static void test_len(void **state)
{
	long long v = 0;

	(void)state;
	assert_int_equal(ud_num_parse_n("12\n", 2, 0, 100, &v), 0);
	assert_true(v == 12);
	assert_int_equal(ud_num_parse_n("12\n", 3, 0, 100, &v), UD_EINVALID);
	assert_int_equal(ud_num_parse_n("12", 0, 0, 100, &v), UD_EINVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_len),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
