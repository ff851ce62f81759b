/*
 * priv.h: the privileged parent of `deploy-agent run` and the fixed set
 * of messages the unprivileged part may send it (OpenBSD's proc.c/imsg
 * manner: one socketpair, a header and a fixed struct per type,
 * descriptors passed with SCM_RIGHTS).
 *
 * The parent does only what needs root: it creates and removes the
 * agent's own taps, spawns an instance under the instances' user with
 * no_new_privs (the program chosen by the target from its own table,
 * never a path it is sent; a VM's taps opened by it and passed in as
 * descriptors 3, 4, ...), signals and reaps the instances it spawned and
 * reports their exits, and binds privileged listen addresses. Every
 * field of every request is checked before anything is done; a request
 * outside the set, of the wrong length or with a bad field is refused
 * with an error reply and logged.
 */
#ifndef UD_AGENT_PRIV_H
#define UD_AGENT_PRIV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipam.h"
#include "run.h"

#define PRIV_MAXNETS 8
#define PRIV_NAME 64
#define PRIV_PATH 1024
#define PRIV_STRINGS 16384

enum priv_type {
	PRIV_TAP_CREATE = 1, /* struct priv_tap */
	PRIV_TAP_DELETE,     /* struct priv_tap */
	PRIV_SPAWN,          /* struct priv_spawn + the console's fd */
	PRIV_WAIT,           /* struct priv_pid: running, or how it ended */
	PRIV_KILL,           /* struct priv_pid: a signal to its group */
	PRIV_BIND,           /* struct priv_bind: a listening socket back */
	PRIV_REPLY = 100,    /* struct priv_reply (parent to child only) */
};

struct priv_hdr {
	uint32_t type;
	uint32_t len; /* of the struct that follows */
};

struct priv_tap {
	char tap[UD_IFNAME_STRLEN];
};

struct priv_spawn {
	char target[32];
	char arch[32];
	char app[PRIV_NAME];
	int32_t id;
	char image[PRIV_PATH];  /* state_dir/images/<sha256> */
	char rundir[PRIV_PATH]; /* state_dir/apps/<app>/run */
	/* Taps the parent opens and passes in as descriptors 3, 4, ... */
	char taps[PRIV_MAXNETS][UD_IFNAME_STRLEN];
	uint32_t ntaps;
	/* argc arguments after the program, then envc NAME=value entries,
	 * each NUL-terminated, in strings[0..strings_len). */
	uint32_t argc, envc, strings_len;
	char strings[PRIV_STRINGS];
};

struct priv_pid {
	int32_t pid;
	int32_t sig; /* PRIV_KILL: SIGTERM or SIGKILL */
};

enum { PRIV_TCP = 1, PRIV_UDP = 2 };

struct priv_bind {
	int32_t proto;
	char addr[PRIV_NAME]; /* host:port, the port below 1024 */
};

struct priv_reply {
	int32_t err; /* 0, or a UD_E* code with msg */
	int32_t running; /* PRIV_WAIT */
	int32_t wstatus; /* PRIV_WAIT, once not running */
	int32_t pid;     /* PRIV_SPAWN */
	uint64_t starttime;
	char msg[256];
};

/* The parent's side. */

struct priv_proc {
	pid_t pid;
	int exited;
	int wstatus;
	int stopping; /* signalled on request: its group goes with it */
};

struct priv_parent {
	const char *state_dir; /* canonical (realpath) */
	const char *bridge;    /* NULL: no network, no taps */
	const char *templates; /* templates/backends: the programs' table */
	const char *host;
	const struct ud_cred *cred; /* the instances' user; NULL: ours */
	/* The agent's tap names start with one of these (network.c's
	 * seeds: device k of an instance). */
	char tap_prefix[PRIV_MAXNETS][UD_IFNAME_STRLEN];
	struct priv_proc *procs; /* spawned and not yet reported gone */
	size_t nprocs, cap;
	size_t max_procs; /* a bound on what the child may have running */
	int sock;     /* the socketpair's end; -1 in unit tests */
	pid_t child;  /* the unprivileged part */
};

void priv_parent_init(struct priv_parent *p, const char *state_dir,
		      const char *bridge, const char *templates,
		      const char *host, const struct ud_cred *cred);
void priv_parent_free(struct priv_parent *p);

/* One request: validated, then done. Always fills *rep (rep->err < 0 on
 * refusal, message in rep->msg, also logged); *out_fd is a descriptor to
 * send back (-1: none; the caller closes it after sending). in_fd is the
 * request's descriptor (-1: none) and stays the caller's. */
void priv_handle(struct priv_parent *p, const struct priv_hdr *h,
		 const void *body, size_t body_len, int in_fd,
		 struct priv_reply *rep, int *out_fd);

/* Record the exit of a process the parent reaped; 1 if it was an
 * instance it spawned. */
int priv_reaped(struct priv_parent *p, pid_t pid, int wstatus);

/* The parent's loop until the unprivileged part exits: its requests,
 * its signals (TERM, INT, HUP forwarded to it), the instances' exits.
 * Returns the exit status for the parent: the child's, or 1 when the
 * child died of a signal. */
int priv_parent_run(struct priv_parent *p, int sigfd);

/* The unprivileged side: one request at a time (the lock), from any
 * thread. */

struct priv_client {
	int sock;
	pthread_mutex_t lock;
};

void priv_client_init(struct priv_client *c, int sock);

/* Send a request (and send_fd unless -1), wait for the reply; 0 or the
 * parent's error (set as ours). *recv_fd, when not NULL, gets the
 * descriptor that came with the reply (-1: none). */
int priv_call(struct priv_client *c, uint32_t type, const void *body,
	      size_t len, int send_fd, struct priv_reply *rep, int *recv_fd);

int priv_tap_create(struct priv_client *c, const char *tap);
int priv_tap_delete(struct priv_client *c, const char *tap);
/* argv[0] is the program as the child sees it and is not sent: the
 * parent chooses it from the target. */
int priv_spawn(struct priv_client *c, const char *target, const char *arch,
	       const char *app, int id, const char *image,
	       const char *rundir, char *const taps[], size_t ntaps,
	       char *const argv[], char *const env[], int log_fd, pid_t *pid,
	       unsigned long long *starttime);
/* *running 1, or 0 with *wstatus (waitpid's) once it has exited. */
int priv_wait(struct priv_client *c, pid_t pid, int *running, int *wstatus);
int priv_kill(struct priv_client *c, pid_t pid, int sig);
int priv_bind(struct priv_client *c, int proto, const char *addr, int *fd);
/* ud_stop_group through the parent: TERM, up to grace_ms for the
 * leader, then KILL; *wstatus how it ended (-1: unknown). */
int priv_stop_group(struct priv_client *c, pid_t pid, int grace_ms,
		    int *wstatus);

#endif
