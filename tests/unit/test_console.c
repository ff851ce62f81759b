/* test_console.c: the tail of a console log quoted in failure messages. */
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
#include "console.h"

static void tail(struct ud_strvec *sv, const char *text, size_t n,
		 size_t width)
{
	ud_strvec_free(sv);
	ud_strvec_init(sv);
	ud_console_tail_text(sv, text, strlen(text), n, width);
}

static void test_last_lines(void **state)
{
	struct ud_strvec sv = UD_STRVEC_INIT;

	(void)state;
	tail(&sv, "a\nb\nc\nd\ne\nf\ng\n", 5, 80);
	assert_int_equal(sv.n, 5);
	assert_string_equal(sv.v[0], "c");
	assert_string_equal(sv.v[4], "g");
	/* No newline at the end: the last line still counts. */
	tail(&sv, "one\ntwo", 5, 80);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "one");
	assert_string_equal(sv.v[1], "two");
	tail(&sv, "", 5, 80);
	assert_int_equal(sv.n, 0);
	ud_strvec_free(&sv);
}

static void test_blank_and_control(void **state)
{
	struct ud_strvec sv = UD_STRVEC_INIT;

	(void)state;
	tail(&sv, "first\n\n   \r\n\x1b[31mred\x1b[0m\r\n\tend  \n\n\n", 5,
	     80);
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "first");
	assert_string_equal(sv.v[1], "red");
	assert_string_equal(sv.v[2], " end");
	ud_strvec_free(&sv);
}

static void test_width(void **state)
{
	struct ud_strvec sv = UD_STRVEC_INIT;

	(void)state;
	tail(&sv, "0123456789abcdef\nshort\n", 5, 10);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "0123456...");
	assert_int_equal(strlen(sv.v[0]), 10);
	assert_string_equal(sv.v[1], "short");
	ud_strvec_free(&sv);
}

static void test_file(void **state)
{
	struct ud_strvec sv = UD_STRVEC_INIT;
	char path[] = "/tmp/ud-console-XXXXXX";
	int fd = mkstemp(path);
	FILE *f;
	int i;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	/* Past the 64 KiB read: only the end is looked at. */
	for (i = 0; i < 20000; i++)
		fprintf(f, "line %d\n", i);
	fclose(f);
	ud_console_tail(&sv, path, 3, 80);
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "line 19997");
	assert_string_equal(sv.v[2], "line 19999");
	unlink(path);
	ud_strvec_free(&sv);
	ud_strvec_init(&sv);
	/* Missing: nothing, no error. */
	ud_console_tail(&sv, path, 3, 80);
	assert_int_equal(sv.n, 0);
	ud_console_tail(&sv, NULL, 3, 80);
	assert_int_equal(sv.n, 0);
	ud_strvec_free(&sv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_last_lines),
		cmocka_unit_test(test_blank_and_control),
		cmocka_unit_test(test_width),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
