/* test_sandbox.c: the build sandbox (lib/sandbox.c), with real bwrap. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "run.h"
#include "sandbox.h"

static void clear_env(void)
{
	unsetenv("DEPLOY_BUILD_SANDBOX");
	unsetenv("DEPLOY_BUILD_USER");
	unsetenv("DEPLOY_BUILD_RO_PATHS");
}

static int teardown(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

static void test_bad_settings(void **state)
{
	struct ud_sandbox sb;

	(void)state;
	setenv("DEPLOY_BUILD_SANDBOX", "maybe", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "DEPLOY_BUILD_SANDBOX is 'maybe': expected "
			    "'bwrap' (the default) or 'off'");
	clear_env();
	setenv("DEPLOY_BUILD_RO_PATHS", "/opt/tools:relative", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "DEPLOY_BUILD_RO_PATHS: 'relative' is not an "
			    "absolute path below /");
	setenv("DEPLOY_BUILD_RO_PATHS", "/", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), UD_EINVALID);
	setenv("DEPLOY_BUILD_RO_PATHS", "/home/../root", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), UD_EINVALID);
	clear_env();
	if (geteuid() != 0)
		return;
	setenv("DEPLOY_BUILD_USER", "no-such-user-here", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), UD_EINVALID);
	assert_string_equal(ud_error_last(), "DEPLOY_BUILD_USER: no user "
					     "'no-such-user-here' on this host");
	setenv("DEPLOY_BUILD_USER", "root", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), UD_EINVALID);
	assert_string_equal(ud_error_last(), "DEPLOY_BUILD_USER: 'root' is "
					     "root; builds run unprivileged");
}

static void test_off(void **state)
{
	struct ud_sandbox sb;

	(void)state;
	setenv("DEPLOY_BUILD_SANDBOX", "off", 1);
	assert_int_equal(ud_sandbox_from_env(&sb), 0);
	assert_true(sb.off);
	assert_int_equal(ud_sandbox_probe(&sb), 0);
	ud_sandbox_free(&sb);
}

/* No bwrap in PATH: refused, saying how to fix it. */
static void test_no_bwrap(void **state)
{
	char *path = ud_strdup(getenv("PATH"));
	struct ud_sandbox sb;
	int err;

	(void)state;
	setenv("PATH", "/nonexistent", 1);
	err = ud_sandbox_from_env(&sb);
	setenv("PATH", path, 1);
	free(path);
	assert_int_equal(err, UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), "set DEPLOY_BUILD_SANDBOX=off"));
}

/* A real sandboxed command: it sees only its own processes, is not root,
 * cannot read a file outside what is bound, can write where it may. */
static void test_isolated(void **state)
{
	char dir[] = "/tmp/ud-sandbox-XXXXXX";
	struct ud_sandbox sb;
	struct ud_strvec argv = UD_STRVEC_INIT;
	struct ud_buf out = UD_BUF_INIT;
	struct ud_run_opts ro = { 0 };
	char *work, *outside, *script;
	int status = -1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	work = ud_asprintf("%s/work", dir);
	outside = ud_asprintf("%s/secret", dir);
	assert_int_equal(ud_mkdir_p(work, 0700), 0);
	assert_int_equal(ud_write_file_atomic(outside, "s3cret\n", 7, 0644), 0);
	assert_int_equal(ud_sandbox_from_env(&sb), 0);
	assert_int_equal(ud_sandbox_probe(&sb), 0);
	assert_int_equal(ud_sandbox_chown(&sb, work, 1), 0);
	script = ud_asprintf(
		"echo uid=$(id -u); echo procs=$(ls /proc | grep -c '^[0-9]'); "
		"cat /proc/1/environ >/dev/null 2>&1 && echo init-environ; "
		"cat %s 2>/dev/null || echo no-secret; "
		"test -e /root && echo has-root; test -e /home && echo has-home; "
		"echo made > %s/made && echo wrote; "
		"echo t > /tmp/t && echo tmp-writable",
		outside, work);
	{
		const char *rw[] = { work, NULL };
		char *const cmd[] = { "/bin/sh", "-c", script, NULL };

		ud_sandbox_argv(&sb, &argv, rw, work, cmd);
	}
	ro.capture = &out;
	assert_int_equal(ud_run(argv.v, &ro, &status), 0);
	assert_int_equal(status, 0);
	if (geteuid() == 0)
		assert_non_null(strstr(out.ptr, "uid=65534\n"));
	/* bwrap's init, sh, and the pipeline's ls and grep at most */
	assert_null(strstr(out.ptr, "init-environ"));
	assert_non_null(strstr(out.ptr, "no-secret\n"));
	assert_null(strstr(out.ptr, "s3cret"));
	assert_null(strstr(out.ptr, "has-root"));
	assert_null(strstr(out.ptr, "has-home"));
	/* by its absolute path, through parents the sandbox made */
	assert_non_null(strstr(out.ptr, "wrote\n"));
	assert_non_null(strstr(out.ptr, "tmp-writable\n"));
	{
		int procs = atoi(strstr(out.ptr, "procs=") + 6);

		assert_true(procs >= 2 && procs <= 5);
	}
	ud_rm_rf(dir);
	ud_strvec_free(&argv);
	ud_buf_free(&out);
	ud_sandbox_free(&sb);
	free(work);
	free(outside);
	free(script);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bad_settings, teardown),
		cmocka_unit_test_teardown(test_off, teardown),
		cmocka_unit_test_teardown(test_no_bwrap, teardown),
		cmocka_unit_test_teardown(test_isolated, teardown),
	};

	clear_env();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
