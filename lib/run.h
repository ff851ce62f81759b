/*
 * run.h: the one subprocess API (git's run-command.h in spirit).
 *
 * Never system(): argv and env are vectors, every child gets its own
 * process group so a timeout can kill everything it started, and output is
 * streamed as it arrives.
 */
#ifndef UD_RUN_H
#define UD_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "strvec.h" /* argv and env; callers use it through run.h */

/* Environments are strvecs of "NAME=value". */
/* Copy the current process's environment; with drop_git, leave out every
 * GIT_* variable (a build must never see the bare repo's GIT_DIR). */
void ud_env_from_environ(struct ud_strvec *env, int drop_git);
/* Set (replace or add) NAME=value. */
void ud_env_set(struct ud_strvec *env, const char *name, const char *value);
void ud_env_unset(struct ud_strvec *env, const char *name);
const char *ud_env_get(const struct ud_strvec *env, const char *name);

/* Called with each chunk of the child's merged stdout+stderr as it
 * arrives. */
typedef void (*ud_output_fn)(const char *data, size_t len, void *payload);

struct ud_run_opts {
	const char *dir;        /* working directory; NULL: inherit */
	char *const *env;       /* full environment; NULL: inherit */
	int timeout_ms;         /* 0: none. Past it the whole process group
				   gets SIGTERM, then SIGKILL 2 s later */
	ud_output_fn on_output; /* NULL: not streamed */
	void *payload;
	struct ud_buf *capture; /* NULL: not captured; output past its max is
				   dropped from the capture (still streamed)
				   and a "[output truncated]" note added */
};

/* Append output to a capture as ud_run_opts.capture does: past cap->max
 * the rest is dropped and "[output truncated]" noted once (*truncated
 * set; start it at 0). For callers that filter output before keeping it. */
void ud_capture_put(struct ud_buf *cap, int *truncated, const char *data,
		    size_t len);

/*
 * Run argv (argv[0] searched in PATH) to completion, stdin from /dev/null.
 * Returns 0 when the child exited or was killed by a signal on its own,
 * with *status = exit code, or 128 + signal number; UD_ETIMEOUT when it was
 * killed for passing timeout_ms (every process of its group is gone when
 * this returns); UD_ERROR when it could not be started. Message set.
 */
int ud_run(char *const argv[], const struct ud_run_opts *opts, int *status);

/*
 * Start a long-running child (the agent's instances) in a new session
 * (setsid: own process group, no controlling terminal), stdin /dev/null,
 * stdout and stderr to out_fd (-1: /dev/null), with no_new_privs (nothing
 * it execs gains privileges). Returns 0 and *pid, or
 * UD_ERROR (message set; includes exec failure, reported through a
 * close-on-exec pipe).
 */
int ud_spawn(pid_t *pid, char *const argv[], char *const env[],
	     const char *dir, int out_fd);

/* The absolute path of program `name` as execvp would find it: in PATH
 * (unset or empty: the usual system directories), or name itself when it
 * holds a '/'. NULL when there is no executable one. */
char *ud_which(const char *name);

/* A user to run an instance as: looked up once (ud_cred_lookup, which
 * may read NSS), applied between fork and exec without a lookup. */
#define UD_CRED_MAXGROUPS 64
struct ud_cred {
	uid_t uid;
	gid_t gid;
	gid_t groups[UD_CRED_MAXGROUPS]; /* supplementary, gid included */
	int ngroups;
};
/* UD_ENOTFOUND "user X does not exist on this host". */
int ud_cred_lookup(struct ud_cred *out, const char *user);
/* ud_spawn, the child switching to cred (NULL: stays who we are) after
 * entering dir. Instances (both calls) run with no_new_privs. */
int ud_spawn_as(pid_t *pid, char *const argv[], char *const env[],
		const char *dir, int out_fd, const struct ud_cred *cred);
/* ud_spawn_as, and fds[0..nfds) become descriptors 3, 4, ... of the
 * program (the caller keeps its own copies). At most UD_SPAWN_MAXFDS. */
#define UD_SPAWN_MAXFDS 16
int ud_spawn_fds(pid_t *pid, char *const argv[], char *const env[],
		 const char *dir, int out_fd, const struct ud_cred *cred,
		 const int *fds, int nfds);

/*
 * Stop a process group: SIGTERM, wait up to grace_ms for the leader to go,
 * then SIGKILL the group. Works for children (reaps them) and for adopted
 * processes that are not our children (polls kill(pid, 0)).
 */
int ud_stop_group(pid_t pid, int grace_ms);

/* The process's start time (field 22 of /proc/PID/stat, in clock ticks
 * since boot): with the pid it identifies a process across pid reuse.
 * UD_ENOTFOUND when the process is gone. */
int ud_proc_starttime(pid_t pid, unsigned long long *out);

/* 1 if pid is alive and started at `starttime`, else 0. */
int ud_proc_is(pid_t pid, unsigned long long starttime);

#endif
