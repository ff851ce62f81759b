/*
 * agent.h: the agent core (agent.c), what every part of deploy-agent
 * shares (internal, not a library contract).
 *
 * struct agent holds what is set at start and read by all (the
 * configuration, the paths, the proxy) and the state (state.h), which the
 * reconcile thread alone reads and changes. What the threads hand each
 * other lives behind one lock that only agent.c takes, reached through
 * the calls below:
 *
 * - stop: agent_stop() from main, agent_stopping() anywhere;
 * - sync requests: the control socket asks with agent_sync() (and waits
 *   for a sync that started after it asked), SIGHUP with
 *   agent_request_sync(); the reconcile thread takes them in
 *   agent_wait_work() and answers with agent_sync_done();
 * - demand: the proxy and DNS report summoned apps with waiting clients
 *   (agent_demand), taken by agent_wait_work();
 * - finished boots: a summoned instance's health wait runs on a thread of
 *   its own (struct boot_job, supervise.c), which hands its result back
 *   with agent_boot_done(); the reconcile thread takes them with
 *   agent_booted();
 * - the published snapshot: after every change the reconcile thread
 *   publishes what it says about the apps (agent_publish); the control
 *   socket and DNS read copies of it.
 *
 * Imports run one way: main → control_server, dns, reconcile → supervise
 * → backend, network, volume → state, agent. The proxy is a leaf.
 */
#ifndef UD_AGENT_H
#define UD_AGENT_H

#include <git2.h>
#include <jansson.h>
#include <stddef.h>

#include "agentconf.h"
#include "run.h"
#include "state.h"
#include "strvec.h"

struct agent_shared; /* agent.c: the locked half */
struct proxy;
struct image_seen; /* images.h */
struct priv_client; /* priv.h */

struct agent {
	struct ud_agentconf *conf;
	char *config_path;
	char *state_path;  /* state_dir/state.json */
	char *images_dir;  /* state_dir/images */
	char *mirror_path; /* state_dir/repo.git */
	struct proxy *proxy;
	struct agent_state st; /* reconcile thread only */
	/* Image files whose digest matched, as they were then (images.c,
	 * reconcile thread): a start re-hashes a file only if it changed. */
	struct image_seen *seen;
	size_t nseen;
	const char *kvm_path; /* NULL: /dev/kvm (tests point it elsewhere) */
	char *backends_dir; /* templates/backends; NULL: found next to the
			       binary (source tree or PREFIX/share) */
	/* agent.json "user": who instances run as; NULL: the agent's own
	 * user (root only when "user" is not set). */
	struct ud_cred *inst_cred;
	/* The privileged parent (priv.h) that creates taps, spawns and
	 * signals instances; NULL: the agent does it itself (not root, or
	 * a unit test). */
	struct priv_client *priv;
	struct agent_shared *shared;
};

/* Set up the core and an empty state (a zeroed struct agent otherwise);
 * agent_free releases the core, the state and the paths (not conf, which
 * its loader owns). */
void agent_init(struct agent *a);
void agent_free(struct agent *a);

/* Ask every thread to finish; wakes whoever waits in the core. */
void agent_stop(struct agent *a);
int agent_stopping(struct agent *a);

/* Ask for a sync without waiting (SIGHUP). */
void agent_request_sync(struct agent *a);
/* Ask for a sync and wait until one that started after this call has
 * finished; its reply (a copy, the caller's), or NULL when the agent
 * stops first. With retry, that sync boots app's failed release again
 * (app NULL: every app's). */
json_t *agent_sync(struct agent *a, const char *app, int retry);

/* The same without waiting, for the event loop: ask (the request's
 * number), then poll: 1 with the reply (a copy) once a sync that started
 * after the request has finished, 0 not yet, -1 the agent stops. */
unsigned long agent_sync_ask(struct agent *a, const char *app, int retry);
int agent_sync_poll(struct agent *a, unsigned long seq, json_t **reply);
/* fn(arg) runs (on the thread that caused it, outside the core's lock)
 * when a sync finishes, the first snapshot is published, or the agent
 * stops: what waits on the loop looks again (fn posts to it). */
typedef void (*agent_notify_fn)(void *arg);
void agent_set_notify(struct agent *a, agent_notify_fn fn, void *arg);

/* A summoned app has waiting clients (proxy_demand_fn; DNS too). */
void agent_demand(const char *app, size_t waiting, void *payload);

/* What the reconcile thread is to do next. */
struct agent_work {
	int sync;               /* a sync is due: asked for, or poll time */
	unsigned long seq;      /* the requests that sync answers */
	struct ud_strvec demand; /* apps with waiting clients */
	struct ud_strvec retry;  /* apps whose failed release to boot again
				    ("*": all), when sync */
};
/* Wait until there is work, the agent stops (returns 1) or `until`
 * (ud_now_ms() clock) passes; a sync is due when asked for or once
 * next_poll has passed. Fills w (the caller frees its vectors with
 * agent_work_free); on 1, w holds nothing. */
int agent_wait_work(struct agent *a, long long until, long long next_poll,
		    struct agent_work *w);
void agent_work_free(struct agent_work *w);
/* The sync for requests up to seq finished with `reply` (taken). */
void agent_sync_done(struct agent *a, unsigned long seq, json_t *reply);

/* Boot threads: count one in before it starts (agent_boot_begin), hand
 * its finished job back (agent_boot_done, the core takes it), or count
 * it out if it never started (agent_boot_abort). */
void agent_boot_begin(struct agent *a);
void agent_boot_done(struct agent *a, struct boot_job *j);
void agent_boot_abort(struct agent *a);
/* The finished jobs, oldest first (the caller's), NULL when none. With
 * wait_all, first wait until no boot thread runs (at shutdown). */
struct boot_job *agent_booted(struct agent *a, int wait_all);

/* Rebuild the status snapshot from a->st (reconcile thread). */
void agent_publish(struct agent *a);
/* A copy of the snapshot's "apps" object; with wait, once the first one
 * is published (an empty object if the agent stops first), else NULL
 * until then. */
json_t *agent_snapshot(struct agent *a, int wait);
/* Is app in the snapshot (1), not (0), or is there none yet (-1)? On 1,
 * its listen address is copied into listen (empty when none). */
int agent_snapshot_listen(struct agent *a, const char *app, char *listen,
			  size_t len);

/* state_dir's paths and the state file (reconcile thread). */
char *image_path(struct agent *a, const char *sha256);
void agent_save(struct agent *a);
/* Where a sync records the last commit it accepted with allowed_signers,
 * and that commit: what the agent may act on between syncs (main's tip
 * when allowed_signers is not set; UD_ENOTFOUND when none was accepted
 * yet). */
char *agent_signed_head_path(struct agent *a);
struct ud_deployrepo;
int agent_trusted_head(struct agent *a, struct ud_deployrepo *repo,
		       git_oid *out);
/* With "user": let instances pass through the agent's directory `dir`
 * (group: the user's, 0750), or hand `path` (an instance's run directory
 * and what is in it, a volume) to the user. Nothing to do without. */
int agent_share_dir(struct agent *a, const char *dir);
int agent_give(struct agent *a, const char *path);

#endif
