/* Name checks: each rule's edges, and messages that quote the name and
 * the rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "buf.h"
#include "errors.h"
#include "names.h"

typedef int (*check_fn)(const char *);

static void expect_ok(check_fn fn, const char *const names[])
{
	size_t i;

	for (i = 0; names[i]; i++)
		if (fn(names[i]) != 0)
			fail_msg("'%s' refused: %s", names[i], ud_error_last());
}

static void expect_bad(check_fn fn, const char *const names[])
{
	size_t i;

	for (i = 0; names[i]; i++) {
		char *quoted = ud_asprintf("'%s'", names[i]);

		ud_error_clear();
		if (fn(names[i]) != UD_EINVALID)
			fail_msg("'%s' accepted", names[i]);
		if (!strstr(ud_error_last(), quoted))
			fail_msg("message for '%s' does not quote it: %s",
				 names[i], ud_error_last());
		free(quoted);
	}
}

static char *repeat(char c, size_t n)
{
	char *s = ud_malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void app(void **state)
{
	char *max = repeat('a', 63), *over = repeat('a', 64);
	const char *const ok[] = { "a", "hello", "0", "my-app-2", max, NULL };
	const char *const bad[] = { "", "../x", "Upper", "-lead", "a_b",
				    "a/b", "a.b", " a", "h\xc3\xa9", over,
				    NULL };

	(void)state;
	expect_ok(ud_name_check_app, ok);
	expect_bad(ud_name_check_app, bad);
	ud_name_check_app("../x");
	assert_string_equal(ud_error_last(),
			    "invalid app name '../x': must match "
			    "[a-z0-9][a-z0-9-]{0,62}");
	free(max);
	free(over);
}

static void host(void **state)
{
	const char *const ok[] = { "edge1", "a.b-c_d", "10.0.0.5", "0", NULL };
	const char *const bad[] = { "", ".", "..", "a..b", ".hidden", "-x",
				    "Edge", "a/b", NULL };

	(void)state;
	expect_ok(ud_name_check_host, ok);
	expect_bad(ud_name_check_host, bad);
	ud_name_check_host("a..b");
	assert_string_equal(ud_error_last(),
			    "invalid host name 'a..b': must not contain '..'");
}

static void image_file(void **state)
{
	char *max = repeat('F', 128), *over = repeat('F', 129);
	const char *const ok[] = { "unix-x86_64.img", "A.b_c-d.zst", "x",
				   "build.log2", max, NULL };
	const char *const bad[] = { "", ".img", "..", "a/b", "build.log",
				    "manifest.json", "-x", "a b", over, NULL };

	(void)state;
	expect_ok(ud_name_check_image_file, ok);
	expect_bad(ud_name_check_image_file, bad);
	free(max);
	free(over);
}

static void relpath(void **state)
{
	char *max = repeat('p', 1024), *over = repeat('p', 1025);
	const char *const ok[] = { "dist/hello", "a", ".hidden/x", "a/..b",
				   "x.../y", max, NULL };
	const char *const bad[] = { "", "/etc/passwd", "../etc/passwd",
				    "dist/../../x", "a/./b", ".", "a//b",
				    "a/", "a/..", NULL };

	(void)state;
	expect_ok(ud_name_check_relpath, ok);
	expect_bad(ud_name_check_relpath, bad);
	assert_int_equal(ud_name_check_relpath(over), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "at most 1024 bytes"));
	free(max);
	free(over);
}

static void target(void **state)
{
	const char *const ok[] = { "unix", "qemu", "hvt", "spt", "xen",
				   "firecracker", NULL };
	const char *const bad[] = { "", "Unix", "docker", "unix ", NULL };

	(void)state;
	expect_ok(ud_name_check_target, ok);
	expect_bad(ud_name_check_target, bad);
}

static void arch(void **state)
{
	const char *const ok[] = { "x86_64", "aarch64", "riscv64",
				   "abcdefghijklmnop", NULL };
	const char *const bad[] = { "", "x86-64", "ARM", "abcdefghijklmnopq",
				    "../x", NULL };

	(void)state;
	expect_ok(ud_name_check_arch, ok);
	expect_bad(ud_name_check_arch, bad);
}

static void env(void **state)
{
	const char *const ok[] = { "PATH", "_", "a1", "OPAM_YES_2", NULL };
	const char *const bad[] = { "", "1A", "A=B", "A-B", "A B", NULL };

	(void)state;
	expect_ok(ud_name_check_env, ok);
	expect_bad(ud_name_check_env, bad);
}

static void host_arch_is_uname(void **state)
{
	struct utsname u;

	(void)state;
	assert_int_equal(uname(&u), 0);
	assert_string_equal(ud_host_arch(), u.machine);
	assert_int_equal(ud_name_check_arch(ud_host_arch()), 0);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(app),
		cmocka_unit_test(host),
		cmocka_unit_test(image_file),
		cmocka_unit_test(relpath),
		cmocka_unit_test(target),
		cmocka_unit_test(arch),
		cmocka_unit_test(env),
		cmocka_unit_test(host_arch_is_uname),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
