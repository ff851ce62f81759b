/*
 * state.h: what the agent knows about its apps and instances (state.c),
 * owned by the reconcile thread alone. The persisted half is
 * state_dir/state.json; the rest lives as long as the process.
 */
#ifndef UD_AGENT_STATE_H
#define UD_AGENT_STATE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "fleet.h"
#include "health.h"
#include "manifest.h"
#include "strvec.h"

struct agent;

/* A summoned instance's health wait, run by its own thread (supervise.c)
 * and handed back to the reconcile thread through the core. It owns
 * copies of what it needs, never a pointer into the state. */
struct boot_job {
	struct boot_job *next;
	struct agent *a;
	char *app;
	int id;             /* the instance's */
	char host[16];      /* where it answers */
	int port;
	char *log;
	struct ud_health health; /* a copy */
	int timeout_ms;
	atomic_int cancel;  /* the instance is gone: stop waiting */
	int err;            /* result: 0 healthy */
	char *why;          /* the failure, when err < 0 */
	int cold;           /* the app had no instance: this is a wake */
	long long since;    /* ud_now_ms() of the demand it answers */
};

void boot_job_free(struct boot_job *j);

struct instance {
	int id; /* unique per state_dir, the proxy's backend id */
	int release;
	char sha256[UD_SHA256_HEX];
	pid_t pid; /* 0: not running */
	unsigned long long starttime;
	int port;     /* where it answers: a host port, or run.port at addr */
	uint32_t addr; /* its own address on the host network; 0: none, it
			  answers on 127.0.0.1 */
	char *log;
	int exited;   /* ended on its own and run.restart says not to start
			 it again: kept (pid 0) so that no sync refills it */
	/* Not persisted: */
	int child;           /* spawned by this process: reap with waitpid */
	int wstatus;         /* waitpid status once reaped, for messages */
	int ready;           /* healthy and among the proxy's backends */
	int backoff_ms;      /* next restart delay after a crash */
	long long restart_at; /* pid == 0: when to start it again */
	long long up_since;  /* when it last became ready */
	long long busy_at;   /* summon: last time it had a connection */
	long long drain_until; /* replaced: stop when idle or at this time */
	struct boot_job *job; /* summoned and not yet healthy */
};

enum app_status {
	APP_IDLE,       /* placed, nothing published yet */
	APP_STARTING,   /* a sync is deploying it */
	APP_RUNNING,
	APP_SUMMONABLE,
	APP_FAILED,
	APP_EXITED,     /* its instances ended and run.restart keeps them so */
};

struct app {
	char *name;
	int release;        /* the release this host serves; 0: none */
	int failed_release; /* desired release that failed; 0: none */
	char *error;        /* why the desired release does not serve */
	struct ud_strvec log_tail; /* the end of the console of the instance
				      that failed, for the pusher */
	char *listen;       /* address the proxy listens on for it; NULL */
	struct instance **inst;
	size_t ninst, ainst;
	/* Not persisted: */
	int desired;
	enum app_status status;
	long long ms;
	struct ud_manifest *manifest; /* of `release`, for restarts */
	struct ud_placement place;    /* copy of the last fleet placement */
	int placed;                   /* place is valid */
	char image[UD_SHA256_HEX];    /* image of `release` for this host */
	/* Summon figures since the agent started: */
	unsigned long wakes;   /* boots from zero instances, on demand */
	unsigned long boots;   /* every boot on demand (wakes included) */
	unsigned long refused; /* boots refused by the host's limits */
	double *cold_ms;       /* ring of wake latencies: first held */
	size_t ncold, cold_next; /* connection (or query) to ready */
	long long refused_logged; /* last "refused" log line, ms */
};

struct agent_state {
	struct app **apps;
	size_t napps, aapps;
	int next_id;
};

void state_init(struct agent_state *st);
void state_free(struct agent_state *st);
/* Load state.json; a missing file is an empty state. UD_EINVALID with
 * "<path>: ..." for a corrupt one. */
int state_load(struct agent_state *st, const char *path);
int state_save(const struct agent_state *st, const char *path);
/* Serialise (for tests and the save): the persisted fields only. */
json_t *state_to_json(const struct agent_state *st);
int state_from_json(struct agent_state *st, const json_t *root,
		    const char *name);
/* What the agent says about every app (SPEC §4's "apps" object, plus
 * the summon figures): the snapshot the control socket and DNS read. */
json_t *state_status_json(const struct agent_state *st);
json_t *app_status_json(const struct app *app);

struct app *state_app(struct agent_state *st, const char *name);
struct app *state_app_add(struct agent_state *st, const char *name);
void state_app_remove(struct agent_state *st, struct app *app);
/* Set (fmt NULL: clear) the app's error; clearing forgets the console
 * tail too. */
void app_set_error(struct app *app, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Keep the last lines of the console log at path as the app's log_tail
 * (replacing the previous ones). */
void app_set_log_tail(struct app *app, const char *path);
struct instance *app_inst_add(struct app *app, int id);
void app_inst_remove(struct app *app, struct instance *in);
/* Record a wake's latency; p50/p99 in ms (0 when no sample). */
void app_cold_add(struct app *app, double ms);
void app_cold_percentiles(const struct app *app, double *p50,
			  double *p99);
void placement_copy(struct ud_placement *dst, const struct ud_placement *src);
void placement_free(struct ud_placement *p);

#endif
