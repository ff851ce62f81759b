/*
 * agent.h: what the parts of deploy-agent share (internal, not a library
 * contract).
 *
 * Threads and ownership:
 * - the reconcile thread owns `struct agent_state` (apps, instances): it
 *   syncs, supervises and answers summon demand. Nobody else reads it.
 * - after every change it publishes a JSON snapshot (agent_publish) under
 *   `lock`, which the control threads answer "status" from;
 * - control threads ask for a sync by bumping `req_seq` and wait on `done`
 *   until a sync that started after their request has finished;
 * - the proxy thread reports demand for summoned apps (agent_demand);
 * - a summoned instance is spawned by the reconcile thread and its health
 *   waited for by a short-lived boot thread (struct boot_job), so one slow
 *   boot stalls neither the other apps nor the control socket. The job
 *   owns copies of what it needs, never a pointer into the state; when
 *   done it queues itself on `booted` (under lock) for the reconcile
 *   thread, which alone marks the instance ready;
 * - the DNS thread (dns.c) reads the published snapshot under `lock`
 *   and reports demand like the proxy.
 */
#ifndef UD_AGENT_H
#define UD_AGENT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agentconf.h"
#include "digest.h"
#include "fleet.h"
#include "manifest.h"
#include "proxy.h"
#include "run.h"

/* A summoned instance's health wait, run by its own thread (supervise.c). */
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

/* state.c */
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
void placement_copy(struct ud_placement *dst, const struct ud_placement *src);
void placement_free(struct ud_placement *p);

struct agent {
	struct ud_agentconf *conf;
	char *config_path;
	char *state_path;  /* state_dir/state.json */
	char *images_dir;  /* state_dir/images */
	char *mirror_path; /* state_dir/repo.git */
	struct proxy *proxy;
	struct agent_state st; /* reconcile thread only */
	struct ud_strvec verified; /* image digests checked since start */
	const char *kvm_path; /* NULL: /dev/kvm (tests point it elsewhere) */
	char *backends_dir; /* templates/backends; NULL: found next to the
			       binary (source tree or PREFIX/share) */

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake;  /* reconcile thread: work to do */
	pthread_cond_t done;  /* control threads: a sync finished */
	unsigned long req_seq, done_seq;
	json_t *status;       /* "apps" object of the last snapshot */
	json_t *last_sync;    /* reply of the last finished sync */
	struct ud_strvec demand; /* summoned apps with waiting connections */
	struct ud_strvec retry;  /* apps whose failed release the next sync
				    boots again ("*": every app) */
	int stopping;
	int connections;      /* control connections being served */
	struct boot_job *booted; /* finished boot jobs, newest first */
	int boots_running;    /* boot threads alive */
	struct dns *dns;      /* the DNS trigger (dns.c); NULL: off */
};

/* reconcile.c */
void *agent_reconcile_main(void *agent);
/* Rebuild the status snapshot from a->st (reconcile thread). */
void agent_publish(struct agent *a);
int agent_stopping(struct agent *a);
json_t *app_status_json(const struct app *app);

/* supervise.c */
/* Adopt the recorded instances still alive, stop those that should not
 * run and unrecorded processes spawned for this state_dir. */
void supervise_adopt(struct agent *a);
/* Start one instance of app's release `m` (image at `image`) and wait for
 * it to be healthy. On failure the instance is stopped and removed, the
 * message is set ("health check: ..."). */
int supervise_boot(struct agent *a, struct app *app,
		   const struct ud_manifest *m, const char *sha256,
		   struct instance **out);
/* Reap exits, restart crashed instances, stop idle summoned ones. */
void supervise_tick(struct agent *a);
/* A summoned app has waiting connections (or a DNS query named it):
 * start instances if useful, without waiting for their health. Booting
 * ones count, so repeated demand never starts more than needed. */
void supervise_demand(struct agent *a, struct app *app);
/* Take the finished boot jobs: mark healthy instances ready, stop the
 * others (reconcile thread). Returns 1 if something changed. */
int supervise_booted(struct agent *a);
/* Wait for every boot thread to finish (at shutdown). */
void supervise_join_boots(struct agent *a);
void boot_job_free(struct boot_job *j);
/* Record a wake's latency; p50/p99 in ms (0 when no sample). */
void app_cold_add(struct app *app, double ms);
void app_cold_percentiles(const struct app *app, double *p50,
			  double *p99);
/* Stop the instance's process (if any) and forget the instance. */
void supervise_stop(struct agent *a, struct app *app, struct instance *in);
void supervise_stop_all(struct agent *a);
/* Tell the proxy the ready instances of app. */
void supervise_backends(struct agent *a, struct app *app);
char *image_path(struct agent *a, const char *sha256);
/* Open a fresh console log for a new run of an instance (append-only fd);
 * the previous run's console is kept as <path>.prev. */
int supervise_open_log(const char *path);
void agent_save(struct agent *a);

/*
 * backend.c: the agent's side of the backend table (backend.h). The
 * supervisor spawns the command in its own session with the console
 * (stdout and stderr) appended to in->log and the instance's environment
 * markers set.
 */
/* Can this host run `target` images for `arch`? Checked at sync time,
 * before anything is swapped: UD_ENOTFOUND "backend xen needs xl on host
 * edge1" when its program is missing, "backend hvt needs /dev/kvm on host
 * edge1 (...)" without KVM, UD_EINVALID for an unknown target or an arch
 * this host cannot boot. */
int backend_check(struct agent *a, const char *target, const char *arch);
/* Is the image at `image` (called `what` in messages) one `target` can
 * run, with everything it declares at hand? Checked at sync time, before
 * anything is swapped: a Solo5 image of another ABI ("hvt-x86_64.img is a
 * Solo5 hvt image; it cannot run as spt"), a non-ELF as hvt, a network
 * device on a host without a network: UD_EINVALID. */
int backend_check_image(struct agent *a, const char *target,
			const char *image, const char *what,
			const struct ud_manifest *m);
/* The command line (argv[0] a path) that runs instance `in` of app's
 * release m from its image, in rundir (where a backend may write config
 * files). */
int backend_command(struct agent *a, const struct app *app,
		    const struct ud_manifest *m, const char *target,
		    const struct instance *in, const char *rundir,
		    struct ud_strvec *argv);
/* Ask a running instance to shut down cleanly (qemu: QMP "quit"), before
 * the supervisor signals its process group. Returns 1 when it was asked,
 * 0 when the backend has no such way. */
int backend_shutdown(struct agent *a, const struct app *app,
		     const struct instance *in);

/* network.c: the host network of VM instances (agent.json "network"). */
/* Create the bridge with the gateway address if it is missing (at start;
 * nothing to do without a network). */
int network_start(struct agent *a);
/* The network devices an instance of `target` from `image` gets, by the
 * name the image knows them (Solo5's manifest), or "net0" for a VM with
 * one virtio-net/vif device; none for unix, and none for qemu without a
 * host network (user-mode networking). UD_EINVALID when the image needs a
 * network the host does not have. */
int network_devices(struct agent *a, const char *target, const char *image,
		    struct ud_strvec *names);
/* Give `in` an address (it keeps the one it has) and nnets taps. */
int network_attach(struct agent *a, struct app *app, struct instance *in,
		   size_t nnets);
/* Remove its taps and free its address (the instance stopped). */
void network_detach(struct agent *a, struct instance *in);
/* After adopting: remove the taps of instances that are gone. */
void network_sweep(struct agent *a);
int network_tap_name(struct agent *a, int id, size_t k, char out[16]);
void network_mac(struct agent *a, int id, size_t k, char out[18]);
/* Where an instance answers: its own address, or 127.0.0.1. */
void inst_host(const struct instance *in, char out[16]);

/* volume.c: run.block's volumes, state_dir/volumes/<app>/<device>.img. */
char *volume_path(struct agent *a, const char *app, const char *device);
/* Create (sparse, 0600) or grow each volume of m; never deletes one.
 * UD_EINVALID, naming the volume and sizes, when m would shrink one. */
int volume_ensure(struct agent *a, const char *app,
		  const struct ud_manifest *m);

/* control_server.c */
int control_start(struct agent *a, pthread_t *thread, int *fd);
/* Ask for a sync without waiting (SIGHUP). */
void agent_request_sync(struct agent *a);
/* Wake the control acceptor so it sees `stopping` at once. */
void control_wake(void);
/* Proxy callback. */
void agent_demand(const char *app, size_t waiting, void *payload);

/* dns.c: the DNS trigger (agent.json "dns"). */
#define DNS_MAX 512 /* a classic UDP message, all we answer */
struct dns_question {
	char name[256];  /* lower case, dotted, with the trailing dot */
	unsigned qtype, qclass;
	size_t end;      /* offset just past the question */
};
/* Parse a query. -1 for anything to drop: short, a response, not a
 * QUERY, qdcount != 1, compression or reserved label types in the
 * question, a label or name past its limit, the question truncated. */
int dns_parse(const unsigned char *pkt, size_t len,
	      struct dns_question *q);
/* The app a name asks for in zone ("apps.example."): copies the single
 * label before the zone into app (at least 64 bytes); 1 if there is one,
 * 0 for the zone's apex, -1 for anything else. */
int dns_app_of(const struct dns_question *q, const char *zone, char *app);
/* Build the reply to a parsed query into out (DNS_MAX bytes): rcode 0
 * with one A record of addr (network order) when addr is not NULL and
 * the type is A or ANY, rcode 3 (NXDOMAIN) etc. as given. Returns its
 * length. */
size_t dns_reply(const unsigned char *pkt, const struct dns_question *q,
		 int rcode, const unsigned char addr[4], unsigned char *out);
/* Start answering on conf->dns_listen (UD_ERROR naming the address if it
 * cannot be bound); stop and free (NULL is fine). */
int dns_start(struct agent *a, struct dns **out);
void dns_stop(struct dns *d);

#endif
