/*
 * Tests of the privileged parent's message validation
 * (cmd/deploy-agent/priv.c): each type of the fixed set with good and bad
 * fields; an unknown type, a short and a long message, a path escaping
 * state_dir, a tap that is not the agent's, a program the child tries to
 * choose, a pid the parent did not spawn: all refused with an error reply,
 * and nothing done. The good requests are carried out for real (a unix
 * instance spawned, waited for and killed; a tap deleted that is not
 * there; a privileged port bound when root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "priv.h"
#include "buf.h"
#include "errors.h"
#include "ipam.h"
#include "log.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fixture {
	char tmp[64];
	char *dir; /* realpath of tmp: the parent's state_dir */
	char *image, *rundir, *logpath;
	int log_fd;
	char tap[UD_IFNAME_STRLEN];
	struct priv_parent p;
};

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));
	char *p;

	strcpy(f->tmp, "/tmp/test_agent_priv.XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	f->dir = realpath(f->tmp, NULL);
	p = ud_asprintf("%s/images", f->dir);
	assert_int_equal(ud_mkdir_p(p, 0750), 0);
	free(p);
	f->rundir = ud_asprintf("%s/apps/pong/run", f->dir);
	assert_int_equal(ud_mkdir_p(f->rundir, 0750), 0);
	f->image = ud_asprintf("%s/images/%s", f->dir, SHA);
	/* An instance that exits 3, or sleeps when asked to. */
	write_file(f->image,
		   "#!/bin/sh\necho \"ran $0 $*\"\n"
		   "[ \"$1\" = sleep ] && exec sleep 60\nexit 3\n",
		   0755);
	p = ud_asprintf("%s/state.json", f->dir);
	write_file(p, "{}", 0600);
	free(p);
	f->logpath = ud_asprintf("%s/console.log", f->dir);
	f->log_fd = open(f->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			 0600);
	assert_true(f->log_fd >= 0);
	ud_log_init(UD_LOG_ERROR, 0);
	priv_parent_init(&f->p, f->dir, "udtestbr0", "/nonexistent",
			 "edge1", NULL);
	assert_int_equal(ud_tap_name(f->tap, f->dir, 7), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < f->p.nprocs; i++) {
		kill(-f->p.procs[i].pid, SIGKILL);
		waitpid(f->p.procs[i].pid, NULL, 0);
	}
	priv_parent_free(&f->p);
	close(f->log_fd);
	ud_rm_rf(f->dir);
	free(f->dir);
	free(f->image);
	free(f->rundir);
	free(f->logpath);
	free(f);
	return 0;
}

/* One request through the parent's entry point; the reply's error. */
static int ask(struct fixture *f, uint32_t type, const void *body,
	       size_t len, int fd, struct priv_reply *rep, int *out_fd)
{
	struct priv_hdr h = { type, (uint32_t)len };
	struct priv_reply r;
	int o;

	priv_handle(&f->p, &h, body, len, fd, rep ? rep : &r,
		    out_fd ? out_fd : &o);
	if (!out_fd && o >= 0)
		close(o);
	return (rep ? rep : &r)->err;
}

static void assert_refused(int err, struct priv_reply *rep, const char *part)
{
	assert_true(err < 0);
	if (rep && part && !strstr(rep->msg, part))
		fail_msg("reply '%s' does not say '%s'", rep->msg, part);
}

static void test_unknown_type_and_bad_lengths(void **state)
{
	struct fixture *f = *state;
	struct priv_tap t = { { 0 } };
	char big[sizeof(t) + 1] = { 0 };
	struct priv_reply rep;
	struct priv_hdr h;

	strcpy(t.tap, f->tap);
	assert_refused(ask(f, 0, &t, sizeof(t), -1, &rep, NULL), &rep,
		       "not one the agent knows");
	assert_refused(ask(f, 7, &t, sizeof(t), -1, &rep, NULL), &rep,
		       "not one the agent knows");
	/* The parent's own reply type is not a request. */
	assert_refused(ask(f, PRIV_REPLY, &t, sizeof(t), -1, &rep, NULL),
		       &rep, "not one the agent knows");
	/* Short and long. */
	assert_refused(ask(f, PRIV_TAP_DELETE, &t, sizeof(t) - 1, -1, &rep,
			   NULL), &rep, "bytes, not");
	memcpy(big, &t, sizeof(t));
	assert_refused(ask(f, PRIV_TAP_DELETE, big, sizeof(big), -1, &rep,
			   NULL), &rep, "bytes, not");
	/* A header that lies about the record's length. */
	h.type = PRIV_TAP_DELETE;
	h.len = sizeof(t);
	{
		int o;

		priv_handle(&f->p, &h, &t, sizeof(t) - 2, -1, &rep, &o);
		assert_refused(rep.err, &rep, "bytes, not");
		assert_int_equal(o, -1);
	}
	/* A descriptor with a message that takes none. */
	assert_refused(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), f->log_fd, &rep,
			   NULL), &rep, "takes no descriptor");
	/* The good one. */
	assert_int_equal(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep,
			     NULL), 0);
}

static void test_taps(void **state)
{
	struct fixture *f = *state;
	struct priv_tap t;
	struct priv_reply rep;
	char other[UD_IFNAME_STRLEN];
	const char *bad[] = { "eth0", "lo", "udtestbr0", "", "ud", NULL };
	size_t i;

	for (i = 0; bad[i]; i++) {
		memset(&t, 0, sizeof(t));
		strcpy(t.tap, bad[i]);
		assert_refused(ask(f, PRIV_TAP_CREATE, &t, sizeof(t), -1, &rep,
				   NULL), &rep, "not one of this agent's");
		assert_refused(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep,
				   NULL), &rep, "not one of this agent's");
	}
	/* Another agent's (another state dir's) taps are not ours. */
	assert_int_equal(ud_tap_name(other, "/var/lib/other", 7), 0);
	memset(&t, 0, sizeof(t));
	strcpy(t.tap, other);
	assert_refused(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep, NULL),
		       &rep, "not one of this agent's");
	/* Not terminated. */
	memset(&t, 'a', sizeof(t));
	assert_refused(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep, NULL),
		       &rep, "not terminated");
	/* Without a network there are no taps at all. */
	f->p.bridge = NULL;
	memset(&t, 0, sizeof(t));
	strcpy(t.tap, f->tap);
	assert_refused(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep, NULL),
		       &rep, "no network");
	f->p.bridge = "udtestbr0";
	/* Ours (device 0 and device 3): deleting an absent tap is done. */
	assert_int_equal(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep,
			     NULL), 0);
	{
		char *seed = ud_asprintf("%s#net3", f->dir);

		assert_int_equal(ud_tap_name(t.tap, seed, 12), 0);
		free(seed);
	}
	assert_int_equal(ask(f, PRIV_TAP_DELETE, &t, sizeof(t), -1, &rep,
			     NULL), 0);
}

/* A good spawn request: `pong` instance 1 of the unix image, with args. */
static void good_spawn(struct fixture *f, struct priv_spawn *s,
		       const char *arg)
{
	static const char env[] = "PORT=8080";

	memset(s, 0, sizeof(*s));
	strcpy(s->target, "unix");
	strcpy(s->arch, "x86_64");
	strcpy(s->app, "pong");
	s->id = 1;
	strcpy(s->image, f->image);
	strcpy(s->rundir, f->rundir);
	s->argc = 1;
	s->envc = 1;
	memcpy(s->strings, arg, strlen(arg) + 1);
	s->strings_len = (uint32_t)strlen(arg) + 1;
	memcpy(s->strings + s->strings_len, env, sizeof(env));
	s->strings_len += sizeof(env);
}

static int spawn_refused(struct fixture *f, struct priv_spawn *s,
			 int fd, const char *part)
{
	struct priv_reply rep;
	int err = ask(f, PRIV_SPAWN, s, sizeof(*s), fd, &rep, NULL);

	assert_refused(err, &rep, part);
	/* Nothing was started. */
	assert_int_equal(f->p.nprocs, 0);
	return err;
}

static void test_spawn_fields(void **state)
{
	struct fixture *f = *state;
	struct priv_spawn *s = ud_malloc(sizeof(*s));
	char *p;

	good_spawn(f, s, "x");
	strcpy(s->target, "bash");
	spawn_refused(f, s, f->log_fd, "unknown target");

	good_spawn(f, s, "x");
	strcpy(s->app, "../pong");
	spawn_refused(f, s, f->log_fd, "app");

	good_spawn(f, s, "x");
	strcpy(s->arch, "x86 64;");
	spawn_refused(f, s, f->log_fd, "arch");

	good_spawn(f, s, "x");
	s->id = 0;
	spawn_refused(f, s, f->log_fd, "instance id");

	/* The program: never a path outside state_dir/images. */
	good_spawn(f, s, "x");
	strcpy(s->image, "/bin/sh");
	spawn_refused(f, s, f->log_fd, "is not in");
	good_spawn(f, s, "x");
	snprintf(s->image, sizeof(s->image), "%s/images/../state.json",
		 f->dir);
	spawn_refused(f, s, f->log_fd, "is not in");
	good_spawn(f, s, "x");
	snprintf(s->image, sizeof(s->image), "%s/state.json", f->dir);
	spawn_refused(f, s, f->log_fd, "is not in");
	/* A link in images/ that leads out of it. */
	p = ud_asprintf("%s/images/%s", f->dir, "evil");
	assert_int_equal(symlink("/bin/sh", p), 0);
	good_spawn(f, s, "x");
	strcpy(s->image, p);
	spawn_refused(f, s, f->log_fd, "is not in");
	free(p);
	good_spawn(f, s, "x");
	strcpy(s->image, "images/" SHA);
	spawn_refused(f, s, f->log_fd, "not an absolute path");
	good_spawn(f, s, "x");
	snprintf(s->image, sizeof(s->image), "%s/images/missing", f->dir);
	spawn_refused(f, s, f->log_fd, "missing");
	good_spawn(f, s, "x");
	memset(s->image, 'a', sizeof(s->image));
	spawn_refused(f, s, f->log_fd, "not terminated");

	/* The run directory: the app's, nothing else. */
	good_spawn(f, s, "x");
	strcpy(s->rundir, "/");
	spawn_refused(f, s, f->log_fd, "is not");
	good_spawn(f, s, "x");
	snprintf(s->rundir, sizeof(s->rundir), "%s/apps/pong/run/../..",
		 f->dir);
	spawn_refused(f, s, f->log_fd, "is not");
	good_spawn(f, s, "x");
	strcpy(s->app, "other");
	spawn_refused(f, s, f->log_fd, "is not");

	/* Taps: only the agent's, only for a target with a network. */
	good_spawn(f, s, "x");
	s->ntaps = 1;
	strcpy(s->taps[0], "eth0");
	spawn_refused(f, s, f->log_fd, "not one of this agent's");
	good_spawn(f, s, "x");
	s->ntaps = 1;
	strcpy(s->taps[0], f->tap);
	spawn_refused(f, s, f->log_fd, "takes no taps");
	good_spawn(f, s, "x");
	s->ntaps = PRIV_MAXNETS + 1;
	spawn_refused(f, s, f->log_fd, "taps");

	/* The strings: counts that do not match what was sent. */
	good_spawn(f, s, "x");
	s->argc = 3;
	spawn_refused(f, s, f->log_fd, "fewer sent");
	good_spawn(f, s, "x");
	s->envc = 0;
	spawn_refused(f, s, f->log_fd, "bytes after");
	good_spawn(f, s, "x");
	s->strings_len = sizeof(s->strings) + 1;
	spawn_refused(f, s, f->log_fd, "counts");
	good_spawn(f, s, "x");
	memcpy(s->strings + 2, "1BAD=x", 7);
	s->strings_len = 2 + 7;
	spawn_refused(f, s, f->log_fd, "environment variable");
	good_spawn(f, s, "x");
	memcpy(s->strings + 2, "NOEQUALS", 9);
	s->strings_len = 2 + 9;
	spawn_refused(f, s, f->log_fd, "NAME=value");

	/* The console: a file open for writing must come with it. */
	good_spawn(f, s, "x");
	spawn_refused(f, s, -1, "console");
	{
		int ro = open(f->logpath, O_RDONLY | O_CLOEXEC);

		spawn_refused(f, s, ro, "console");
		close(ro);
	}
	/* A short one is refused before its fields are read. */
	good_spawn(f, s, "x");
	{
		struct priv_reply rep;

		assert_refused(ask(f, PRIV_SPAWN, s, sizeof(*s) - 1,
				   f->log_fd, &rep, NULL),
			       &rep, "bytes, not");
	}
	assert_int_equal(f->p.nprocs, 0);
	free(s);
}

/* Spawn for real, wait, and the pid is the parent's only until
 * reported. */
static void test_spawn_wait_kill(void **state)
{
	struct fixture *f = *state;
	struct priv_spawn *s = ud_malloc(sizeof(*s));
	struct priv_pid w;
	struct priv_reply rep;
	pid_t pid;
	int i;

	good_spawn(f, s, "x");
	assert_int_equal(ask(f, PRIV_SPAWN, s, sizeof(*s), f->log_fd, &rep,
			     NULL), 0);
	assert_true(rep.pid > 0);
	pid = rep.pid;
	assert_int_equal(f->p.nprocs, 1);
	/* It exits 3: wait until the parent says so. */
	w.pid = pid;
	w.sig = 0;
	for (i = 0; i < 10000; i++) {
		assert_int_equal(ask(f, PRIV_WAIT, &w, sizeof(w), -1, &rep,
				     NULL), 0);
		if (!rep.running)
			break;
		usleep(1000);
	}
	assert_int_equal(rep.running, 0);
	assert_true(WIFEXITED(rep.wstatus));
	assert_int_equal(WEXITSTATUS(rep.wstatus), 3);
	/* Reported: no longer the parent's to wait for or signal. */
	assert_refused(ask(f, PRIV_WAIT, &w, sizeof(w), -1, &rep, NULL), &rep,
		       "not an instance this agent spawned");
	/* At the bound, a spawn is refused; one reported gone frees it. */
	f->p.max_procs = 1;
	good_spawn(f, s, "sleep");
	assert_int_equal(ask(f, PRIV_SPAWN, s, sizeof(*s), f->log_fd, &rep,
			     NULL), 0);
	{
		pid_t first = rep.pid;

		assert_refused(ask(f, PRIV_SPAWN, s, sizeof(*s), f->log_fd,
				   &rep, NULL), &rep, "the most the agent spawns");
		assert_int_equal(f->p.nprocs, 1);
		w.pid = first;
		w.sig = SIGKILL;
		assert_int_equal(ask(f, PRIV_KILL, &w, sizeof(w), -1, &rep,
				     NULL), 0);
		for (i = 0; i < 10000; i++) {
			assert_int_equal(ask(f, PRIV_WAIT, &w, sizeof(w), -1,
					     &rep, NULL), 0);
			if (!rep.running)
				break;
			usleep(1000);
		}
		assert_int_equal(f->p.nprocs, 0);
	}
	f->p.max_procs = 4096;
	w.pid = pid;
	w.sig = SIGKILL;
	assert_refused(ask(f, PRIV_KILL, &w, sizeof(w), -1, &rep, NULL), &rep,
		       "not an instance this agent spawned");

	/* One that sleeps: signalled with TERM, not with anything else. */
	good_spawn(f, s, "sleep");
	assert_int_equal(ask(f, PRIV_SPAWN, s, sizeof(*s), f->log_fd, &rep,
			     NULL), 0);
	w.pid = rep.pid;
	w.sig = SIGSTOP;
	assert_refused(ask(f, PRIV_KILL, &w, sizeof(w), -1, &rep, NULL), &rep,
		       "not TERM or KILL");
	w.sig = 0;
	assert_refused(ask(f, PRIV_KILL, &w, sizeof(w), -1, &rep, NULL), &rep,
		       "not TERM or KILL");
	w.sig = SIGTERM;
	assert_int_equal(ask(f, PRIV_KILL, &w, sizeof(w), -1, &rep, NULL), 0);
	for (i = 0; i < 10000; i++) {
		assert_int_equal(ask(f, PRIV_WAIT, &w, sizeof(w), -1, &rep,
				     NULL), 0);
		if (!rep.running)
			break;
		usleep(1000);
	}
	assert_int_equal(rep.running, 0);
	assert_true(WIFSIGNALED(rep.wstatus));
	assert_int_equal(WTERMSIG(rep.wstatus), SIGTERM);
	assert_int_equal(f->p.nprocs, 0);
	free(s);
}

static void test_pids_not_spawned(void **state)
{
	struct fixture *f = *state;
	struct priv_pid w;
	struct priv_reply rep;
	pid_t self = getpid();
	pid_t child;
	int st;

	/* Ourselves, init, our parent, nothing, and a child the privileged
	 * parent did not spawn. */
	pid_t pids[] = { self, 1, getppid(), 0, -1, 0 };

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	pids[5] = child;
	for (size_t i = 0; i < sizeof(pids) / sizeof(*pids); i++) {
		w.pid = pids[i];
		w.sig = SIGKILL;
		assert_refused(ask(f, PRIV_KILL, &w, sizeof(w), -1, &rep, NULL),
			       &rep, "not an instance this agent spawned");
		assert_refused(ask(f, PRIV_WAIT, &w, sizeof(w), -1, &rep, NULL),
			       &rep, "not an instance this agent spawned");
	}
	/* Still alive: nothing was signalled. */
	assert_int_equal(waitpid(child, &st, WNOHANG), 0);
	kill(child, SIGKILL);
	waitpid(child, &st, 0);
}

static void test_bind(void **state)
{
	struct fixture *f = *state;
	struct priv_bind b;
	struct priv_reply rep;
	const char *bad[] = { "127.0.0.1:8080", "127.0.0.1:0",
			      "unix:/tmp/x.sock", "no-colon", NULL };
	int fd, port, err = -1;
	size_t i;

	for (i = 0; bad[i]; i++) {
		memset(&b, 0, sizeof(b));
		b.proto = PRIV_TCP;
		strcpy(b.addr, bad[i]);
		assert_refused(ask(f, PRIV_BIND, &b, sizeof(b), -1, &rep, NULL),
			       &rep, NULL);
	}
	memset(&b, 0, sizeof(b));
	b.proto = 3;
	strcpy(b.addr, "127.0.0.1:80");
	assert_refused(ask(f, PRIV_BIND, &b, sizeof(b), -1, &rep, NULL), &rep,
		       "protocol");
	memset(&b, 'x', sizeof(b));
	b.proto = PRIV_TCP;
	assert_refused(ask(f, PRIV_BIND, &b, sizeof(b), -1, &rep, NULL), &rep,
		       "not terminated");
	if (geteuid() != 0) {
		skip();
		return;
	}
	/* A privileged port that is free here (UDP: nothing of ours). */
	for (port = 1000; port < 1024 && err < 0; port++) {
		memset(&b, 0, sizeof(b));
		b.proto = PRIV_UDP;
		snprintf(b.addr, sizeof(b.addr), "127.0.0.1:%d", port);
		err = ask(f, PRIV_BIND, &b, sizeof(b), -1, &rep, &fd);
	}
	assert_int_equal(err, 0);
	assert_true(fd >= 0);
	close(fd);
}

/* The same over a real socketpair: a record longer than any message is
 * refused, the reply comes back, and the client sees the error. */
static void test_wire(void **state)
{
	struct fixture *f = *state;
	struct priv_client c;
	struct priv_reply rep;
	int sv[2], err;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				    sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int sig[2];

		close(sv[0]);
		f->p.sock = sv[1];
		f->p.child = getppid();
		assert_int_equal(pipe(sig), 0);
		/* Serves until the test closes its end. */
		(void)priv_parent_run(&f->p, sig[0]);
		_exit(0);
	}
	close(sv[1]);
	/* A record shorter than a header is answered, and refused. */
	{
		struct {
			struct priv_hdr h;
			struct priv_reply r;
		} raw;

		assert_int_equal(send(sv[0], "abc", 3, 0), 3);
		assert_int_equal(recv(sv[0], &raw, sizeof(raw), 0),
				 (ssize_t)sizeof(raw));
		assert_int_equal(raw.h.type, PRIV_REPLY);
		assert_true(raw.r.err < 0);
		assert_non_null(strstr(raw.r.msg, "shorter than its header"));
	}
	priv_client_init(&c, sv[0]);
	{
		char huge[sizeof(struct priv_spawn) + 64];

		memset(huge, 0, sizeof(huge));
		err = priv_call(&c, PRIV_SPAWN, huge, sizeof(huge), -1, &rep,
				NULL);
		assert_true(err < 0);
		assert_non_null(strstr(ud_error_last(), "bytes, not"));
	}
	err = priv_call(&c, 42, "x", 1, -1, &rep, NULL);
	assert_true(err < 0);
	assert_non_null(strstr(ud_error_last(), "not one the agent knows"));
	assert_true(priv_tap_delete(&c, "eth0") < 0);
	assert_non_null(strstr(ud_error_last(), "not one of this agent's"));
	assert_int_equal(priv_tap_delete(&c, f->tap), 0);
	assert_true(priv_kill(&c, 1, SIGKILL) < 0);
	ud_error_clear();
	/* A spawn with its console passed as a descriptor, then stopped
	 * in order through the parent: TERM, and the exit reported. */
	{
		char *argv[] = { "ignored: the parent picks the program", "sleep",
				 NULL };
		char *env[] = { "PORT=8080", NULL };
		char *bad_argv[] = { "/bin/sh", "-c", "exit 0", NULL };
		unsigned long long t = 0;
		pid_t ipid = 0;
		int st, running;

		assert_int_equal(priv_spawn(&c, "unix", "x86_64", "pong", 1,
					    f->image, f->rundir, NULL, 0, argv,
					    env, f->log_fd, &ipid, &t), 0);
		assert_true(ipid > 0);
		assert_int_equal(priv_wait(&c, ipid, &running, &st), 0);
		assert_int_equal(running, 1);
		/* Its program is the image, never the argv[0] sent; its
		 * console is the descriptor passed. */
		{
			struct ud_buf log = UD_BUF_INIT;
			char *want = ud_asprintf("ran %s sleep\n", f->image);
			int i;

			for (i = 0; i < 10000; i++) {
				ud_buf_clear(&log);
				assert_int_equal(ud_buf_read_file(&log,
								  f->logpath),
						 0);
				if (log.size >= strlen(want))
					break;
				usleep(1000);
			}
			assert_string_equal(log.ptr, want);
			free(want);
			ud_buf_free(&log);
		}
		assert_int_equal(priv_stop_group(&c, ipid, 5000, &st), 0);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGTERM);
		assert_true(priv_wait(&c, ipid, &running, &st) < 0);
		ud_error_clear();
		/* No console: refused, nothing runs. */
		assert_true(priv_spawn(&c, "unix", "x86_64", "pong", 1,
				       f->image, f->rundir, NULL, 0, bad_argv,
				       env, -1, &ipid, &t) < 0);
		assert_non_null(strstr(ud_error_last(), "console"));
		ud_error_clear();
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unknown_type_and_bad_lengths,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_taps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spawn_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spawn_wait_kill, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pids_not_spawned, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wire, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
