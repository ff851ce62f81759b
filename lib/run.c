/* run.c: the one subprocess API (git's run-command.c in spirit). */
#include "run.h"
#include "errors.h"
#include "log.h"
#include "num.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Grace between SIGTERM and SIGKILL on a timeout. */
#define KILL_GRACE_MS 2000
/* How long the pipe may stay quiet after the leader exited before we
 * decide its descendants are holding it open and kill them. */
#define QUIET_MS 100
/* The longest we sleep in poll() while the leader runs, so its exit is
 * noticed even when descendants keep the pipe open. */
#define TICK_MS 100

static const char truncated_note[] = "\n[output truncated]\n";

static ssize_t env_find(const struct ud_strvec *env, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; env->v && i < env->n; i++)
		if (!strncmp(env->v[i], name, len) && env->v[i][len] == '=')
			return (ssize_t)i;
	return -1;
}

void ud_env_from_environ(struct ud_strvec *env, int drop_git)
{
	char **e;

	if (!env->v)
		ud_strvec_init(env);
	for (e = environ; e && *e; e++) {
		if (drop_git && !strncmp(*e, "GIT_", 4))
			continue;
		ud_strvec_push(env, *e);
	}
}

void ud_env_set(struct ud_strvec *env, const char *name, const char *value)
{
	ssize_t i = env_find(env, name);

	if (i < 0) {
		ud_strvec_pushf(env, "%s=%s", name, value);
		return;
	}
	free(env->v[i]);
	env->v[i] = ud_asprintf("%s=%s", name, value);
}

void ud_env_unset(struct ud_strvec *env, const char *name)
{
	ssize_t i;

	while ((i = env_find(env, name)) >= 0) {
		free(env->v[i]);
		memmove(&env->v[i], &env->v[i + 1],
			(env->n - (size_t)i) * sizeof(char *));
		env->n--;
	}
}

const char *ud_env_get(const struct ud_strvec *env, const char *name)
{
	ssize_t i = env_find(env, name);

	return i < 0 ? NULL : env->v[i] + strlen(name) + 1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * What the child reports through the close-on-exec pipe when it cannot
 * get to exec: the step that failed and its errno. Nothing arrives when
 * exec succeeds, because the pipe closes with it.
 */
enum child_step { STEP_EXEC, STEP_CHDIR, STEP_SETUP, STEP_CRED };
struct child_err {
	int step, err;
};

/* Only async-signal-safe calls from here on: the parent may have
 * threads. */
static void __attribute__((noreturn))
child_fail(int errfd, int step)
{
	struct child_err ce = { step, errno };
	ssize_t n;

	do
		n = write(errfd, &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

static int move_fd(int from, int to)
{
	if (from == to)
		return fcntl(to, F_SETFD, 0);
	return dup2(from, to) < 0 ? -1 : 0;
}

/* A child must not inherit what the parent did to signals: the CLI and
 * the agent ignore SIGPIPE and the agent may block signals in threads; a
 * build or an instance expects the defaults (exec keeps both ignored
 * dispositions and the mask). */
static void reset_signals(void)
{
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Become cred's user for good (groups, then gid, then uid: each step
 * needs the privilege the next one drops). */
static int drop_to(const struct ud_cred *cred)
{
	if (setgroups((size_t)cred->ngroups, cred->groups) < 0 ||
	    setresgid(cred->gid, cred->gid, cred->gid) < 0 ||
	    setresuid(cred->uid, cred->uid, cred->uid) < 0)
		return -1;
	return 0;
}

/*
 * Nothing but stdio crosses exec: the agent's sockets and files, and
 * whatever its own parent left open without close-on-exec, are not the
 * app's, but for the descriptors the caller passes on purpose
 * (ud_spawn_fds: a VM's taps).
 * Marked close-on-exec rather than closed, so errfd still reports a
 * failed exec. The fallback walks up to the soft limit (Linux < 5.11).
 */
static void cloexec_from(int lowfd)
{
	struct rlimit rl;
	int fd, max = 65536;

	if (close_range((unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)INT_MAX)
		max = (int)rl.rlim_cur;
	for (fd = lowfd; fd < max; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/*
 * The descriptors passed into the program (a VM's taps, opened by the
 * privileged agent) go to 3, 4, ... in order. Each is first copied above
 * every target number, so that placing one never overwrites another (or
 * the error pipe, moved up likewise).
 */
static int place_fds(const int *fds, int nfds, int *errfd)
{
	int high[UD_SPAWN_MAXFDS], i, e;

	if ((e = fcntl(*errfd, F_DUPFD_CLOEXEC, 3 + nfds)) < 0)
		return -1;
	*errfd = e;
	for (i = 0; i < nfds; i++)
		if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + nfds)) < 0)
			return -1;
	for (i = 0; i < nfds; i++)
		if (dup2(high[i], 3 + i) < 0)
			return -1;
	return 0;
}

static void __attribute__((noreturn))
child_exec(char *const argv[], char *const env[], const char *dir,
	   int devnull, int out, int errfd, const struct ud_cred *cred,
	   int no_new_privs, const int *fds, int nfds)
{
	reset_signals();
	if (nfds > 0 && place_fds(fds, nfds, &errfd) < 0)
		child_fail(errfd, STEP_SETUP);
	if (dir && chdir(dir) < 0)
		child_fail(errfd, STEP_CHDIR);
	if (cred && drop_to(cred) < 0)
		child_fail(errfd, STEP_CRED);
	/* Nothing it execs gains privileges (setuid binaries, file
	 * capabilities): an instance stays what it was started as. */
	if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(errfd, STEP_SETUP);
	if (move_fd(devnull, 0) < 0 || move_fd(out, 1) < 0 ||
	    move_fd(out, 2) < 0)
		child_fail(errfd, STEP_SETUP);
	cloexec_from(3 + nfds);
	if (env)
		execvpe(argv[0], argv, env);
	else
		execvp(argv[0], argv);
	child_fail(errfd, STEP_EXEC);
}

/* 0 when the child reached exec, else UD_ERROR with the message. */
static int read_child_err(int errfd, char *const argv[], const char *dir)
{
	struct child_err ce;
	ssize_t n;

	while ((n = read(errfd, &ce, sizeof(ce))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(ce))
		return 0;
	errno = ce.err;
	if (ce.step == STEP_CHDIR)
		return ud_error_set_errno(UD_ERROR, "cannot run %s: "
					  "cannot enter %s", argv[0], dir);
	if (ce.step == STEP_CRED)
		return ud_error_set_errno(UD_ERROR, "cannot run %s: cannot "
					  "switch to its user", argv[0]);
	return ud_error_set_errno(UD_ERROR, "cannot run %s", argv[0]);
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

static void waitpid_blocking(pid_t pid, int *st)
{
	while (waitpid(pid, st, 0) < 0 && errno == EINTR)
		;
}

/* Is any live (non-zombie) process left in group pgid? Zombies count
 * as gone: they are dead, only waiting for a parent (perhaps an init that
 * does not reap) to collect them. */
static int group_alive(pid_t pgid)
{
	struct dirent *de;
	DIR *d;
	int alive = 0;

	if (kill(-pgid, 0) < 0 && errno == ESRCH)
		return 0;
	if (!(d = opendir("/proc")))
		return 1;
	while (!alive && (de = readdir(d))) {
		char path[64], buf[512], *p, state;
		long pgrp;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.20s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* comm may hold spaces and parens: fields follow the last ')'. */
		if (!(p = strrchr(buf, ')')) ||
		    sscanf(p + 1, " %c %*d %ld", &state, &pgrp) != 2)
			continue;
		if (pgrp == pgid && state != 'Z' && state != 'X')
			alive = 1;
	}
	closedir(d);
	return alive;
}

/* SIGKILL the group and wait until none of it runs any more. */
static void kill_group_now(pid_t pgid)
{
	int waited = 0;

	kill(-pgid, SIGKILL);
	/* SIGKILL cannot be blocked, but delivery takes a moment (a process
	 * in uninterruptible sleep longer); bound the wait anyway. */
	while (group_alive(pgid) && waited < 10000) {
		sleep_ms(5);
		waited += 5;
	}
}

struct reader {
	const struct ud_run_opts *opts;
	int truncated;
};

void ud_capture_put(struct ud_buf *cap, int *truncated, const char *data,
		    size_t len)
{
	size_t notelen = sizeof(truncated_note) - 1, room;

	if (*truncated)
		return;
	if (!cap->max) {
		ud_buf_put(cap, data, len);
		return;
	}
	/* Keep room for the note so the capture never passes its max. */
	room = cap->max > notelen + cap->size ? cap->max - notelen - cap->size : 0;
	if (len <= room) {
		ud_buf_put(cap, data, len);
		return;
	}
	ud_buf_put(cap, data, room);
	room = cap->max > cap->size ? cap->max - cap->size : 0;
	ud_buf_put(cap, truncated_note, notelen < room ? notelen : room);
	*truncated = 1;
}

static void deliver(struct reader *r, const char *data, size_t len)
{
	if (r->opts->on_output)
		r->opts->on_output(data, len, r->opts->payload);
	if (r->opts->capture)
		ud_capture_put(r->opts->capture, &r->truncated, data, len);
}

/* Read what is available; 1 on EOF, 0 otherwise. */
static int drain(struct reader *r, int fd)
{
	char chunk[8192];
	ssize_t n;

	n = read(fd, chunk, sizeof(chunk));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0)
		return 1;
	deliver(r, chunk, (size_t)n);
	return 0;
}

static int poll_ms(long long until, int cap)
{
	long long left;

	if (until < 0)
		return cap;
	left = until - ud_now_ms();
	if (left < 0)
		left = 0;
	if (cap >= 0 && left > cap)
		left = cap;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Past the deadline: SIGTERM the group, keep draining its output for the
 * grace period, then SIGKILL whatever is left. */
static void terminate(struct reader *r, pid_t pid, int fd, int *eof,
		      int *exited, int *st)
{
	long long kill_at = ud_now_ms() + KILL_GRACE_MS;

	kill(-pid, SIGTERM);
	while (ud_now_ms() < kill_at) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (!*exited && waitpid(pid, st, WNOHANG) == pid)
			*exited = 1;
		if (*exited && (*eof || !group_alive(pid)))
			break;
		if (*eof) {
			sleep_ms(poll_ms(kill_at, 10));
			continue;
		}
		if (poll(&p, 1, poll_ms(kill_at, 10)) > 0)
			*eof = drain(r, fd);
	}
	kill_group_now(pid);
	if (!*exited) {
		waitpid_blocking(pid, st);
		*exited = 1;
	}
}

/*
 * Fork and exec argv with stdin from /dev/null and stdout+stderr to out_fd
 * (-1: /dev/null), in a process group of its own or, with new_session, a
 * session of its own (no controlling terminal). Returns once the child has
 * reached exec: 0 and *pid, or UD_ERROR with the reason reported through a
 * close-on-exec pipe (the failed child reaped).
 */
static int start_child(pid_t *pid, char *const argv[], char *const env[],
		       const char *dir, int out_fd, int new_session,
		       const struct ud_cred *cred, const int *fds, int nfds)
{
	int errp[2] = { -1, -1 }, devnull = -1, st, err = 0;
	pid_t child;

	*pid = -1;
	if (!argv || !argv[0])
		return ud_error_set(UD_ERROR, "cannot run: empty command");
	if (nfds < 0 || nfds > UD_SPAWN_MAXFDS)
		return ud_error_set(UD_EINVALID, "cannot run %s: %d "
				    "descriptors to pass", argv[0], nfds);
	if (pipe2(errp, O_CLOEXEC) < 0 ||
	    (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot run %s", argv[0]);
		goto done;
	}
	if ((child = fork()) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot run %s: fork",
					 argv[0]);
		goto done;
	}
	if (child == 0) {
		if (new_session ? setsid() < 0 : setpgid(0, 0) < 0)
			child_fail(errp[1], STEP_SETUP);
		child_exec(argv, env, dir, devnull,
			   out_fd >= 0 ? out_fd : devnull, errp[1], cred,
			   new_session, fds, nfds);
	}
	/* Also from the parent, so the group exists before any kill(-pid)
	 * whichever process runs first. */
	if (!new_session)
		setpgid(child, child);
	close(errp[1]);
	errp[1] = -1;
	if ((err = read_child_err(errp[0], argv, dir)) < 0) {
		waitpid_blocking(child, &st);
		goto done;
	}
	*pid = child;
done:
	if (errp[0] >= 0)
		close(errp[0]);
	if (errp[1] >= 0)
		close(errp[1]);
	if (devnull >= 0)
		close(devnull);
	return err;
}

int ud_run(char *const argv[], const struct ud_run_opts *opts, int *status)
{
	static const struct ud_run_opts none = { 0 };
	struct reader r = { opts ? opts : &none, 0 };
	long long deadline = -1, quiet_since = -1;
	int outp[2] = { -1, -1 };
	int eof = 0, exited = 0, timed_out = 0, st = 0, err = 0;
	pid_t pid = -1;

	opts = r.opts;
	if (status)
		*status = -1;
	if (argv && argv[0] && pipe2(outp, O_CLOEXEC) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot run %s", argv[0]);
		goto done;
	}
	if ((err = start_child(&pid, argv, opts->env, opts->dir, outp[1],
			       0, NULL, NULL, 0)) < 0)
		goto done;
	close(outp[1]); /* the child's copy is all that keeps it open */
	outp[1] = -1;
	if (opts->timeout_ms > 0)
		deadline = ud_now_ms() + opts->timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = outp[0], .events = POLLIN };
		int rc;

		if (!exited && waitpid(pid, &st, WNOHANG) == pid) {
			exited = 1;
			quiet_since = ud_now_ms();
		}
		if (exited && eof)
			break;
		if (deadline >= 0 && ud_now_ms() >= deadline) {
			timed_out = 1;
			terminate(&r, pid, outp[0], &eof, &exited, &st);
			break;
		}
		if (eof) {
			/* The leader closed its output but runs on. */
			sleep_ms(poll_ms(deadline, 10));
			continue;
		}
		rc = poll(&p, 1, poll_ms(deadline, exited ? QUIET_MS : TICK_MS));
		if (rc < 0 && errno != EINTR) {
			err = ud_error_set_errno(UD_ERROR, "poll");
			kill_group_now(pid);
			if (!exited)
				waitpid_blocking(pid, &st);
			goto done;
		}
		if (rc > 0) {
			eof = drain(&r, outp[0]);
			quiet_since = exited ? ud_now_ms() : -1;
		} else if (exited && ud_now_ms() - quiet_since >= QUIET_MS) {
			/* Descendants hold the pipe open and say nothing:
			 * the command is done, they must not outlive it. */
			kill_group_now(pid);
			break;
		}
	}

	if (status)
		*status = decode_status(st);
	if (timed_out)
		err = ud_error_set(UD_ETIMEOUT, "timed out after %g s",
				   opts->timeout_ms / 1000.0);

done:
	if (outp[0] >= 0)
		close(outp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	return err;
}

int ud_spawn(pid_t *pid, char *const argv[], char *const env[],
	     const char *dir, int out_fd)
{
	return start_child(pid, argv, env, dir, out_fd, 1, NULL, NULL, 0);
}

char *ud_which(const char *name)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? ud_strdup(name) : NULL;
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		       "/sbin:/bin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		char *cand;

		end = strchrnul(p, ':');
		if (end == p)
			continue;
		cand = ud_asprintf("%.*s/%s", (int)(end - p), p, name);
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

int ud_spawn_as(pid_t *pid, char *const argv[], char *const env[],
		const char *dir, int out_fd, const struct ud_cred *cred)
{
	return start_child(pid, argv, env, dir, out_fd, 1, cred, NULL, 0);
}

int ud_spawn_fds(pid_t *pid, char *const argv[], char *const env[],
		 const char *dir, int out_fd, const struct ud_cred *cred,
		 const int *fds, int nfds)
{
	return start_child(pid, argv, env, dir, out_fd, 1, cred, fds, nfds);
}

int ud_cred_lookup(struct ud_cred *out, const char *user)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = UD_CRED_MAXGROUPS, rc;

	memset(out, 0, sizeof(*out));
	rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (!res) {
		errno = rc;
		return rc ? ud_error_set_errno(UD_ERROR, "user %s", user) :
			    ud_error_set(UD_ENOTFOUND, "user %s does not "
					 "exist on this host", user);
	}
	out->uid = pw.pw_uid;
	out->gid = pw.pw_gid;
	if (getgrouplist(user, pw.pw_gid, out->groups, &n) < 0)
		return ud_error_set(UD_EINVALID, "user %s is in more than %d "
				    "groups", user, UD_CRED_MAXGROUPS);
	out->ngroups = n;
	return 0;
}

/* 1 once pid is gone: reaped if it is our child, else no longer
 * signalable or a zombie. */
static int leader_gone(pid_t pid, int *is_child)
{
	unsigned long long t;
	int st;
	pid_t r;

	if (*is_child) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return 1;
		if (r == 0)
			return 0;
		if (errno != ECHILD)
			return 0;
		*is_child = 0;
	}
	return ud_proc_starttime(pid, &t) == UD_ENOTFOUND;
}

int ud_stop_group(pid_t pid, int grace_ms)
{
	int is_child = 1, waited = 0, step = 1;

	if (pid <= 0)
		return ud_error_set(UD_ERROR, "cannot stop process %d",
				    (int)pid);
	if (kill(-pid, SIGTERM) < 0 && kill(pid, SIGTERM) < 0 &&
	    errno == EPERM)
		return ud_error_set_errno(UD_ERROR, "cannot stop process %d",
					  (int)pid);
	while (!leader_gone(pid, &is_child) && waited < grace_ms) {
		sleep_ms(step);
		waited += step;
		step = step < 50 ? step * 2 : 50;
	}
	/* Whatever the leader left behind in its group goes too. */
	kill(-pid, SIGKILL);
	if (!leader_gone(pid, &is_child)) {
		kill(pid, SIGKILL);
		if (is_child) {
			int st;

			waitpid_blocking(pid, &st);
		}
	}
	kill_group_now(pid);
	return 0;
}

int ud_proc_starttime(pid_t pid, unsigned long long *out)
{
	char path[64], buf[1024], *p, *tok, *save = NULL, state = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ud_error_set_errno(errno == ENOENT ? UD_ENOTFOUND :
					  UD_ERROR, "cannot read %s", path);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return ud_error_set(UD_ENOTFOUND, "process %d is gone",
				    (int)pid);
	buf[n] = '\0';
	/* comm (field 2) may contain spaces and ')': the fields we need
	 * follow the last ')'. */
	if (!(p = strrchr(buf, ')')))
		return ud_error_set(UD_ERROR, "cannot parse %s", path);
	for (field = 3, tok = strtok_r(p + 1, " ", &save); tok;
	     field++, tok = strtok_r(NULL, " ", &save)) {
		if (field == 3)
			state = tok[0];
		if (field == 22) {
			if (state == 'Z' || state == 'X')
				return ud_error_set(UD_ENOTFOUND,
						    "process %d is gone",
						    (int)pid);
			long long v;

			if (ud_num_parse(tok, 0, 999999999999999999LL, &v) < 0)
				return ud_error_set(UD_ERROR,
						    "cannot parse %s", path);
			*out = (unsigned long long)v;
			return 0;
		}
	}
	return ud_error_set(UD_ERROR, "cannot parse %s", path);
}

int ud_proc_is(pid_t pid, unsigned long long starttime)
{
	unsigned long long t;

	if (pid <= 0 || ud_proc_starttime(pid, &t) < 0)
		return 0;
	return t == starttime;
}
