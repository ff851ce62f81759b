/* Strict JSON reading: syntax errors with line and column, unknown and
 * missing keys named with their path, typed getters, stable output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "jsonutil.h"

static json_t *parse(const char *text)
{
	json_t *v = NULL;

	if (ud_json_parse(&v, "t.json", text, strlen(text)) < 0)
		fail_msg("%s", ud_error_last());
	return v;
}

static void syntax_errors_name_line_and_column(void **state)
{
	json_t *v = NULL;
	const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";

	(void)state;
	assert_int_equal(ud_json_parse(&v, "x.json", text, strlen(text)),
			 UD_EINVALID);
	assert_null(v);
	assert_string_equal(ud_error_last(),
			    "x.json:3:10: invalid token near 'tru'");
	text = "{\"a\": 1, \"a\": 2}";
	assert_int_equal(ud_json_parse(&v, "x.json", text, strlen(text)),
			 UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "duplicate object key"));
	/* len bounds the input: the trailing garbage is not read. */
	text = "{\"a\": 1} garbage";
	assert_int_equal(ud_json_parse(&v, "x.json", text, 8), 0);
	json_decref(v);
}

static void check_keys(void **state)
{
	static const char *const allowed[] = { "a", "b", NULL };
	json_t *v = parse("{\"a\": 1, \"b\": {\"c\": 1}, \"zz\": 2}");

	(void)state;
	assert_int_equal(ud_json_check_keys(v, "t.json", "", allowed),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(), "t.json: unknown key 'zz'");
	assert_int_equal(ud_json_check_keys(json_object_get(v, "b"), "t.json",
					    "b", allowed),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(), "t.json: unknown key 'b.c'");
	assert_int_equal(ud_json_check_keys(json_object_get(v, "a"), "t.json",
					    "a", allowed),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(), "t.json: a: must be an object");
	json_object_del(v, "zz");
	assert_int_equal(ud_json_check_keys(v, "t.json", "", allowed), 0);
	json_decref(v);
}

static void getters(void **state)
{
	json_t *v = parse("{\"s\": \"x\", \"n\": 5, \"t\": true, \"f\": 1.5}");
	const char *s = "untouched";
	long long n = 42;
	int b = 7;

	(void)state;
	assert_int_equal(ud_json_get_str(v, "s", "t.json", "o", 1, &s), 0);
	assert_string_equal(s, "x");
	assert_int_equal(ud_json_get_int(v, "n", "t.json", "o", 1, 1, 5, &n),
			 0);
	assert_int_equal(n, 5);
	assert_int_equal(ud_json_get_bool(v, "t", "t.json", "o", 1, &b), 0);
	assert_int_equal(b, 1);

	/* Absent and optional: the default stays. */
	s = "dflt";
	n = 42;
	b = 7;
	assert_int_equal(ud_json_get_str(v, "no", "t.json", "o", 0, &s), 0);
	assert_int_equal(ud_json_get_int(v, "no", "t.json", "o", 0, 0, 9, &n),
			 0);
	assert_int_equal(ud_json_get_bool(v, "no", "t.json", "o", 0, &b), 0);
	assert_string_equal(s, "dflt");
	assert_int_equal(n, 42);
	assert_int_equal(b, 7);

	assert_int_equal(ud_json_get_str(v, "no", "t.json", "o", 1, &s),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(), "t.json: missing key 'o.no'");
	assert_int_equal(ud_json_get_int(v, "no", "t.json", "", 1, 0, 9, &n),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(), "t.json: missing key 'no'");

	assert_int_equal(ud_json_get_str(v, "n", "t.json", "o", 1, &s),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(), "t.json: o.n: must be a string");
	assert_int_equal(ud_json_get_int(v, "n", "t.json", "o", 1, 6, 9, &n),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "t.json: o.n: must be an integer from 6 to 9");
	assert_int_equal(ud_json_get_int(v, "f", "t.json", "", 1, 0, 9, &n),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "t.json: f: must be an integer from 0 to 9");
	assert_int_equal(ud_json_get_bool(v, "s", "t.json", "o", 1, &b),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(), "t.json: o.s: must be true or false");
	assert_int_equal(n, 42);
	assert_int_equal(b, 7);
	json_decref(v);
}

static void format_keeps_order(void **state)
{
	struct ud_buf b = UD_BUF_INIT;
	json_t *v = json_object();

	(void)state;
	json_object_set_new(v, "z", json_integer(1));
	json_object_set_new(v, "a", json_pack("[s, n]", "x"));
	json_object_set_new(v, "e", json_array());
	assert_int_equal(ud_json_format(&b, v), 0);
	assert_string_equal(b.ptr, "{\n"
				   "  \"z\": 1,\n"
				   "  \"a\": [\n"
				   "    \"x\",\n"
				   "    null\n"
				   "  ],\n"
				   "  \"e\": []\n"
				   "}\n");
	ud_buf_free(&b);
	/* A capped buffer reports the cap instead of a truncated file. */
	ud_buf_init(&b, 8);
	assert_int_equal(ud_json_format(&b, v), UD_ETOOBIG);
	ud_buf_free(&b);
	json_decref(v);
}

static void load_file(void **state)
{
	char dir[] = "/tmp/ud-jsonutil-XXXXXX";
	char *path;
	json_t *v = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = ud_asprintf("%s/x.json", dir);
	assert_int_equal(ud_json_load_file(&v, path), UD_ENOTFOUND);
	assert_int_equal(ud_write_file_atomic(path, "[1,\n2,]", 7, 0644), 0);
	assert_int_equal(ud_json_load_file(&v, path), UD_EINVALID);
	assert_true(strncmp(ud_error_last(), path, strlen(path)) == 0);
	assert_string_equal(ud_error_last() + strlen(path),
			    ":2:3: unexpected token near ']'");
	assert_int_equal(ud_write_file_atomic(path, "[1, 2]", 6, 0644), 0);
	assert_int_equal(ud_json_load_file(&v, path), 0);
	assert_int_equal(json_array_size(v), 2);
	json_decref(v);
	ud_rm_rf(dir);
	free(path);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(syntax_errors_name_line_and_column),
		cmocka_unit_test(check_keys),
		cmocka_unit_test(getters),
		cmocka_unit_test(format_keeps_order),
		cmocka_unit_test(load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
