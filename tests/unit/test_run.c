#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "run.h"

struct fixture {
	char dir[32];
};

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ud-run-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Gone means no /proc entry, or a zombie nobody reaped yet: either way it
 * runs no more. */
static int is_running(pid_t pid)
{
	unsigned long long t;

	return ud_proc_starttime(pid, &t) == 0;
}

/* Read the pids a shell wrote one per line, waiting (bounded) until
 * `want` of them are there. */
static int read_pids(const char *path, pid_t *pids, int want)
{
	int n = 0, tries;

	for (tries = 0; tries < 1000 && n < want; tries++) {
		struct ud_buf b = UD_BUF_INIT;
		char *p, *end;

		n = 0;
		if (ud_buf_read_file(&b, path) == 0) {
			for (p = b.ptr; n < want; p = end) {
				long v = strtol(p, &end, 10);

				if (end == p || v <= 0)
					break;
				pids[n++] = (pid_t)v;
			}
		}
		ud_buf_free(&b);
		if (n < want)
			sleep_ms(10);
	}
	return n;
}

static void test_strvec_env(void **state)
{
	struct ud_strvec sv = UD_STRVEC_INIT, env = UD_STRVEC_INIT;

	(void)state;
	ud_strvec_push(&sv, "a");
	ud_strvec_pushf(&sv, "%s-%d", "b", 2);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "a");
	assert_string_equal(sv.v[1], "b-2");
	assert_null(sv.v[2]);
	ud_strvec_free(&sv);
	assert_null(sv.v);
	assert_int_equal(sv.n, 0);
	ud_strvec_free(NULL);

	setenv("GIT_DIR", "/nowhere", 1);
	setenv("UD_TEST_VAR", "x", 1);
	ud_env_from_environ(&env, 1);
	assert_null(ud_env_get(&env, "GIT_DIR"));
	assert_string_equal(ud_env_get(&env, "UD_TEST_VAR"), "x");
	ud_env_set(&env, "UD_TEST_VAR", "y=z");
	assert_string_equal(ud_env_get(&env, "UD_TEST_VAR"), "y=z");
	ud_env_set(&env, "UD_NEW", "");
	assert_string_equal(ud_env_get(&env, "UD_NEW"), "");
	/* A prefix of a name is not the name. */
	assert_null(ud_env_get(&env, "UD_TEST"));
	ud_env_unset(&env, "UD_TEST_VAR");
	assert_null(ud_env_get(&env, "UD_TEST_VAR"));
	assert_null(env.v[env.n]);
	ud_strvec_free(&env);

	ud_env_from_environ(&env, 0);
	assert_string_equal(ud_env_get(&env, "GIT_DIR"), "/nowhere");
	ud_strvec_free(&env);
	unsetenv("GIT_DIR");
	unsetenv("UD_TEST_VAR");
}

static void test_exit_status(void **state)
{
	char *const ok[] = { "true", NULL };
	char *const three[] = { "sh", "-c", "exit 3", NULL };
	char *const killed[] = { "sh", "-c", "kill -9 $$", NULL };
	int status = -1;

	(void)state;
	assert_int_equal(ud_run(ok, NULL, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(ud_run(three, NULL, &status), 0);
	assert_int_equal(status, 3);
	assert_int_equal(ud_run(killed, NULL, &status), 0);
	assert_int_equal(status, 128 + SIGKILL);
}

static void collect(const char *data, size_t len, void *payload)
{
	ud_buf_put(payload, data, len);
}

/* A descriptor the parent holds open (not close-on-exec) does not reach
 * the child: a build must not find the hook's files on an inherited fd. */
static void test_fds_not_inherited(void **state)
{
	struct ud_buf out = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	char script[128];
	char *const argv[] = { "sh", "-c", script, NULL };
	int fd = open("/dev/null", O_RDONLY), status = -1;

	(void)state;
	assert_true(fd > 2);
	snprintf(script, sizeof(script),
		 "if [ -e /proc/self/fd/%d ]; then echo open; else echo closed; fi",
		 fd);
	o.capture = &out;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	assert_int_equal(status, 0);
	assert_string_equal(out.ptr, "closed\n");
	/* the parent's own copy is untouched */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);
	ud_buf_free(&out);
}

static void test_output_streamed_and_captured(void **state)
{
	char *const argv[] = { "sh", "-c",
			       "echo out; echo err >&2; read x || echo nostdin",
			       NULL };
	struct ud_buf streamed = UD_BUF_INIT, cap = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	int status;

	(void)state;
	o.on_output = collect;
	o.payload = &streamed;
	o.capture = &cap;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	assert_int_equal(status, 0);
	assert_string_equal(cap.ptr, "out\nerr\nnostdin\n");
	assert_string_equal(streamed.ptr, cap.ptr);
	ud_buf_free(&streamed);
	ud_buf_free(&cap);
}

static void test_capture_cap(void **state)
{
	char *const argv[] = { "sh", "-c",
			       "i=0; while [ $i -lt 2000 ]; do "
			       "echo 0123456789012345678901234567890123456789;"
			       " i=$((i+1)); done",
			       NULL };
	struct ud_buf streamed = UD_BUF_INIT, cap = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	const char *note = "\n[output truncated]\n";
	int status;

	(void)state;
	ud_buf_init(&cap, 1000);
	o.on_output = collect;
	o.payload = &streamed;
	o.capture = &cap;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(streamed.size, 2000 * 41);
	assert_true(cap.size <= 1000);
	assert_true(cap.size > strlen(note));
	assert_string_equal(cap.ptr + cap.size - strlen(note), note);
	assert_memory_equal(cap.ptr, streamed.ptr, cap.size - strlen(note));
	ud_buf_free(&streamed);
	ud_buf_free(&cap);
}

static void test_env_and_dir(void **state)
{
	struct fixture *f = *state;
	char *const argv[] = { "sh", "-c",
			       "echo \"$UD_FOO:${GIT_DIR-unset}\"; pwd -P",
			       NULL };
	struct ud_strvec env = UD_STRVEC_INIT;
	struct ud_buf cap = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	char real[PATH_MAX], *want;
	int status;

	setenv("GIT_DIR", "/nowhere", 1);
	ud_env_from_environ(&env, 1);
	unsetenv("GIT_DIR");
	ud_env_set(&env, "UD_FOO", "bar");
	o.env = env.v;
	o.dir = f->dir;
	o.capture = &cap;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	assert_int_equal(status, 0);
	assert_non_null(realpath(f->dir, real));
	want = ud_asprintf("bar:unset\n%s\n", real);
	assert_string_equal(cap.ptr, want);
	free(want);
	ud_strvec_free(&env);
	ud_buf_free(&cap);
}

static void test_timeout_kills_group(void **state)
{
	struct fixture *f = *state;
	char *script, *pidfile = ud_asprintf("%s/pids", f->dir);
	struct ud_run_opts o = { 0 };
	pid_t pids[3];
	int status, i;

	script = ud_asprintf("sleep 100 & echo $! > %s; sleep 100 & "
			     "echo $! >> %s; echo $$ >> %s; wait",
			     pidfile, pidfile, pidfile);
	{
		char *const argv[] = { "sh", "-c", script, NULL };

		o.timeout_ms = 500;
		assert_int_equal(ud_run(argv, &o, &status), UD_ETIMEOUT);
	}
	assert_string_equal(ud_error_last(), "timed out after 0.5 s");
	assert_int_equal(read_pids(pidfile, pids, 3), 3);
	for (i = 0; i < 3; i++)
		assert_false(is_running(pids[i]));
	free(script);
	free(pidfile);
}

static void test_timeout_sigkill(void **state)
{
	struct fixture *f = *state;
	char *script, *pidfile = ud_asprintf("%s/pids", f->dir);
	struct ud_run_opts o = { 0 };
	pid_t pids[2];
	int status, i;

	/* Ignores SIGTERM: only the SIGKILL after the grace ends it. */
	script = ud_asprintf("trap '' TERM; sh -c 'trap \"\" TERM; "
			     "echo $$ >> %s; while :; do sleep 1; done' & "
			     "echo $$ >> %s; wait",
			     pidfile, pidfile);
	{
		char *const argv[] = { "sh", "-c", script, NULL };

		o.timeout_ms = 300;
		assert_int_equal(ud_run(argv, &o, &status), UD_ETIMEOUT);
	}
	assert_int_equal(status, 128 + SIGKILL);
	assert_int_equal(read_pids(pidfile, pids, 2), 2);
	for (i = 0; i < 2; i++)
		assert_false(is_running(pids[i]));
	free(script);
	free(pidfile);
}

static void test_descendant_holding_pipe(void **state)
{
	struct fixture *f = *state;
	char *script, *pidfile = ud_asprintf("%s/pids", f->dir);
	struct ud_buf cap = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	pid_t pid;
	int status;

	/* The leader exits at once; its background child keeps the output
	 * pipe open. ud_run must neither hang nor leave it behind. */
	script = ud_asprintf("sleep 100 & echo $! > %s; echo done", pidfile);
	{
		char *const argv[] = { "sh", "-c", script, NULL };

		o.capture = &cap;
		assert_int_equal(ud_run(argv, &o, &status), 0);
	}
	assert_int_equal(status, 0);
	assert_string_equal(cap.ptr, "done\n");
	assert_int_equal(read_pids(pidfile, &pid, 1), 1);
	assert_false(is_running(pid));
	ud_buf_free(&cap);
	free(script);
	free(pidfile);
}

static void test_exec_failure(void **state)
{
	struct fixture *f = *state;
	char *const missing[] = { "/nonexistent/prog", NULL };
	char *const inpath[] = { "ud-no-such-command-anywhere", NULL };
	char *const ok[] = { "true", NULL };
	struct ud_run_opts o = { 0 };
	char *bad = ud_asprintf("%s/none", f->dir);
	int status = 0;

	assert_int_equal(ud_run(missing, NULL, &status), UD_ERROR);
	assert_string_equal(ud_error_last(), "cannot run /nonexistent/prog: "
			    "No such file or directory");
	assert_int_equal(ud_run(inpath, NULL, &status), UD_ERROR);
	assert_string_equal(ud_error_last(), "cannot run "
			    "ud-no-such-command-anywhere: "
			    "No such file or directory");
	o.dir = bad;
	assert_int_equal(ud_run(ok, &o, &status), UD_ERROR);
	assert_non_null(strstr(ud_error_last(), bad));
	free(bad);
}

static void test_spawn_and_stop(void **state)
{
	struct fixture *f = *state;
	char *out = ud_asprintf("%s/out", f->dir);
	char *pidfile = ud_asprintf("%s/pids", f->dir);
	char *script = ud_asprintf("echo \"hi $UD_X\"; pwd -P; "
				   "sleep 100 & echo $! > %s; wait",
				   pidfile);
	char *const argv[] = { "sh", "-c", script, NULL };
	char *const env[] = { "UD_X=1", "PATH=/usr/bin:/bin", NULL };
	struct ud_buf b = UD_BUF_INIT;
	char real[PATH_MAX], *want;
	pid_t pid, bg;
	int fd, st;

	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ud_spawn(&pid, argv, env, f->dir, fd), 0);
	close(fd);
	assert_true(pid > 0);
	/* Its own session: session id and group id are its pid. */
	assert_int_equal(read_pids(pidfile, &bg, 1), 1);
	assert_int_equal(getsid(pid), pid);
	assert_int_equal(getpgid(pid), pid);
	assert_int_equal(getpgid(bg), pid);

	assert_int_equal(ud_stop_group(pid, 2000), 0);
	/* Reaped: it is no longer our child. */
	assert_int_equal(waitpid(pid, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_false(is_running(bg));

	assert_int_equal(ud_buf_read_file(&b, out), 0);
	assert_non_null(realpath(f->dir, real));
	want = ud_asprintf("hi 1\n%s\n", real);
	assert_string_equal(b.ptr, want);

	free(want);
	ud_buf_free(&b);
	free(script);
	free(pidfile);
	free(out);
}

static void test_spawn_failure(void **state)
{
	char *const argv[] = { "/nonexistent/prog", NULL };
	pid_t pid = 1;

	(void)state;
	assert_int_equal(ud_spawn(&pid, argv, NULL, NULL, -1), UD_ERROR);
	assert_int_equal(pid, -1);
	assert_string_equal(ud_error_last(), "cannot run /nonexistent/prog: "
			    "No such file or directory");
}

/* An instance started as another user is that user, all groups
 * included, with no_new_privs; an unknown user is named. As root only. */
static void test_spawn_as(void **state)
{
	struct fixture *f = *state;
	struct ud_cred c;
	char *out = ud_asprintf("%s/as.out", f->dir);
	char *const argv[] = { "sh", "-c",
			       "id -u; id -G; grep ^NoNewPrivs: "
			       "/proc/self/status",
			       NULL };
	struct ud_buf b = UD_BUF_INIT;
	char *want;
	pid_t pid;
	int fd, st;

	if (geteuid() != 0) {
		free(out);
		skip();
	}
	assert_int_equal(ud_cred_lookup(&c, "nobody"), 0);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ud_spawn_as(&pid, argv, NULL, "/", fd, &c), 0);
	close(fd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(ud_buf_read_file(&b, out), 0);
	want = ud_asprintf("%u\n%u\nNoNewPrivs:\t1\n", (unsigned)c.uid,
			   (unsigned)c.gid);
	assert_string_equal(b.ptr, want);
	free(want);
	ud_buf_free(&b);
	free(out);

	assert_int_equal(ud_cred_lookup(&c, "nosuchuserud"), UD_ENOTFOUND);
	assert_string_equal(ud_error_last(),
			    "user nosuchuserud does not exist on this host");
}

static void test_stop_group_not_our_child(void **state)
{
	struct fixture *f = *state;
	char *pidfile = ud_asprintf("%s/pids", f->dir);
	/* The inner sleep leads its own session and is the shell's child,
	 * not ours: ud_stop_group has to poll for it. */
	char *script = ud_asprintf("setsid sleep 100 & echo $! > %s; wait; "
				   "sleep 100", pidfile);
	char *const argv[] = { "sh", "-c", script, NULL };
	pid_t sh, inner;

	assert_int_equal(ud_spawn(&sh, argv, NULL, NULL, -1), 0);
	assert_int_equal(read_pids(pidfile, &inner, 1), 1);
	/* Wait until setsid has exec'd sleep in its new session. */
	for (int i = 0; i < 1000 && getsid(inner) != inner; i++)
		sleep_ms(10);
	assert_int_equal(getsid(inner), inner);
	assert_int_equal(ud_stop_group(inner, 2000), 0);
	assert_false(is_running(inner));
	assert_true(is_running(sh));
	assert_int_equal(ud_stop_group(sh, 2000), 0);
	assert_false(is_running(sh));
	free(script);
	free(pidfile);
}

static void test_proc_starttime(void **state)
{
	unsigned long long self, t;
	int p[2], st;
	pid_t pid;
	char c;

	(void)state;
	assert_int_equal(ud_proc_starttime(getpid(), &self), 0);
	assert_true(ud_proc_is(getpid(), self));
	assert_false(ud_proc_is(getpid(), self + 1));

	/* A comm with spaces and parentheses must not shift the fields. */
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_NAME, "a) b (c) d", 0, 0, 0);
		close(p[0]);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	assert_int_equal(ud_proc_starttime(pid, &t), 0);
	assert_true(t >= self);
	assert_true(ud_proc_is(pid, t));
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	assert_int_equal(ud_proc_starttime(pid, &t), UD_ENOTFOUND);
	assert_false(ud_proc_is(pid, t));
}

/* The CLI and the agent ignore SIGPIPE; their children must not. */
static void test_child_signals_reset(void **state)
{
	char *argv[] = { "grep", "^SigIgn:", "/proc/self/status", NULL };
	struct ud_buf out = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	unsigned long long mask = ~0ULL;
	int status = -1;

	(void)state;
	o.capture = &out;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	signal(SIGPIPE, old);
	assert_int_equal(status, 0);
	assert_int_equal(sscanf(out.ptr, "SigIgn: %llx", &mask), 1);
	assert_int_equal(mask & (1ULL << (SIGPIPE - 1)), 0);
	ud_buf_free(&out);
}

/* A descriptor the parent holds without close-on-exec (its own parent
 * may have left it, as a shell's 9>file does) stops at exec; stdio does
 * not. Both entry points: builds (ud_run) and instances (ud_spawn). */
static void test_no_inherited_fds(void **state)
{
	struct fixture *f = *state;
	char *const argv[] = {
		"sh", "-c",
		"for n in 3 9 200 1000; do [ -e /proc/self/fd/$n ] && "
		"echo leaked $n; done; echo checked",
		NULL
	};
	struct ud_buf out = UD_BUF_INIT;
	struct ud_run_opts o = { 0 };
	char *path = ud_asprintf("%s/spawn.out", f->dir);
	int fd = open("/dev/null", O_RDONLY), status = -1, outfd;
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 9), 9);
	assert_int_equal(dup2(fd, 200), 200);
	assert_int_equal(dup2(fd, 1000), 1000);
	o.capture = &out;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	assert_int_equal(status, 0);
	assert_string_equal(out.ptr, "checked\n");

	outfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(outfd >= 0);
	assert_int_equal(ud_spawn(&pid, argv, NULL, NULL, outfd), 0);
	close(outfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ud_buf_clear(&out);
	assert_int_equal(ud_buf_read_file(&out, path), 0);
	assert_string_equal(out.ptr, "checked\n");

	close(1000);
	close(200);
	close(9);
	close(fd);
	free(path);
	ud_buf_free(&out);
}

/* ud_spawn_fds: the descriptors given, and only those, become 3, 4, ...
 * in order, even when they already sit on each other's numbers (here a
 * on 4 and b on 3: a plain dup2 in order would lose b). */
static void test_spawn_fds(void **state)
{
	struct fixture *f = *state;
	char *const argv[] = {
		"sh", "-c",
		"echo $(readlink /proc/self/fd/3) $(readlink /proc/self/fd/4); "
		"[ -e /proc/self/fd/5 ] && echo leaked 5; "
		"[ -e /proc/self/fd/9 ] && echo leaked 9; echo checked",
		NULL
	};
	char *a = ud_asprintf("%s/a", f->dir), *b = ud_asprintf("%s/b", f->dir);
	char *path = ud_asprintf("%s/fds.out", f->dir), *want;
	struct ud_buf out = UD_BUF_INIT;
	int fds[2], outfd, status, fa, fb;
	pid_t pid;

	/* 3 and 4 must be ours to take. */
	assert_true(fcntl(3, F_GETFD) < 0 && fcntl(4, F_GETFD) < 0);
	fa = open(a, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	fb = open(b, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(dup3(fa, 40, O_CLOEXEC), 40);
	assert_int_equal(dup3(fb, 41, O_CLOEXEC), 41);
	close(fa);
	close(fb);
	assert_int_equal(dup3(41, 3, O_CLOEXEC), 3);
	assert_int_equal(dup3(40, 4, O_CLOEXEC), 4);
	close(40);
	close(41);
	fds[0] = 4; /* a */
	fds[1] = 3; /* b */
	/* And one more left open: it must not reach the program. */
	assert_int_equal(dup3(3, 9, O_CLOEXEC), 9);
	outfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(outfd >= 0);
	assert_int_equal(ud_spawn_fds(&pid, argv, NULL, NULL, outfd, NULL, fds,
				      2), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(ud_buf_read_file(&out, path), 0);
	want = ud_asprintf("%s %s\nchecked\n", a, b);
	assert_string_equal(out.ptr, want);
	/* Too many is refused before anything runs. */
	assert_int_equal(ud_spawn_fds(&pid, argv, NULL, NULL, outfd, NULL, fds,
				      UD_SPAWN_MAXFDS + 1), UD_EINVALID);
	close(outfd);
	close(3);
	close(4);
	close(9);
	free(want);
	free(a);
	free(b);
	free(path);
	ud_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strvec_env),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_child_signals_reset),
		cmocka_unit_test(test_output_streamed_and_captured),
		cmocka_unit_test(test_fds_not_inherited),
		cmocka_unit_test(test_capture_cap),
		cmocka_unit_test_setup_teardown(test_env_and_dir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_timeout_kills_group,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_sigkill, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_descendant_holding_pipe,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_failure, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spawn_and_stop, setup,
						teardown),
		cmocka_unit_test(test_spawn_failure),
		cmocka_unit_test_setup_teardown(test_spawn_as, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_group_not_our_child,
						setup, teardown),
		cmocka_unit_test(test_proc_starttime),
		cmocka_unit_test_setup_teardown(test_no_inherited_fds, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spawn_fds, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
