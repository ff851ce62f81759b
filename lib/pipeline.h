/*
 * pipeline.h: the publish pipeline's policy, out of the CLI. How a host's
 * reply to a signal is judged (ud_host_verdict), when a failed release is
 * rolled back (ud_rollback_decide), and the pipeline itself (build ->
 * publish -> signal -> judge -> maybe rollback), which reports through a
 * table of callbacks the caller implements: the library prints nothing.
 */
#ifndef UD_PIPELINE_H
#define UD_PIPELINE_H

#include <jansson.h>
#include <stddef.h>

#include "build.h"
#include "buf.h"
#include "compress.h"
#include "manifest.h"
#include "notify.h"
#include "repo.h"
#include "ssh.h"

/*
 * How a host's answer bears on release `want` of an app. Releases only
 * grow, so a host serving (or wanting) a newer release than ours has been
 * superseded by a racing publish: that is not our failure, and must never
 * trigger a rollback. Only UD_VERDICT_FAILED says that our release failed
 * there; a host whose agent answered that its sync failed (it could not
 * fetch the deployment repository, say) was reached, but never tried our
 * release: UD_VERDICT_SYNC_FAILED, no more a reason to roll back than no
 * answer at all (UD_VERDICT_UNREACHABLE).
 */
enum ud_verdict_kind {
	UD_VERDICT_OK,
	UD_VERDICT_SUPERSEDED,
	UD_VERDICT_FAILED,
	UD_VERDICT_SYNC_FAILED,
	UD_VERDICT_UNREACHABLE,
};

struct ud_verdict {
	enum ud_verdict_kind kind;
	int failed;    /* FAILED, SYNC_FAILED or UNREACHABLE: a host that did
			* not take the release */
	json_t *entry; /* the app's entry in the reply (borrowed), or NULL */
	int serving;   /* the release the host serves (0: none) */
	int newer;     /* SUPERSEDED: the newer release */
	/* Why, in a few words (borrowed from the reply or static): OK, the
	 * state ("running"); SUPERSEDED, "a newer release"; FAILED, the
	 * agent's error or "failed"; SYNC_FAILED and an unanswered
	 * UNREACHABLE, the reply's error; an app the host does not run,
	 * "not run there"; else the state it is in. */
	const char *reason;
};

/* Judge reply `h` for release `want` of `app`. Pure: no I/O, never
 * fails; *out borrows from h, valid while h is. */
void ud_host_verdict(struct ud_verdict *out, const struct ud_host_reply *h,
		     const char *app, int want);

/* Append the host's line, as a pusher reads it (SPEC §4: release, state,
 * time taken), e.g. "edge1: pong v3 running (1 instance) in 212 ms",
 * "edge2: unreachable: deploy@10.0.0.3:22: ...", "edge1: sync failed:
 * fetching ssh://...: ...". */
void ud_verdict_describe(struct ud_buf *out, const struct ud_host_reply *h,
			 const struct ud_verdict *v, const char *app,
			 int want);

/* What signalling a release found: `failed` is a mask of
 * UD_HOSTS_UNREACHABLE (no answer, not live yet, or a sync that failed
 * before our release was tried) and UD_HOSTS_FAILED (a host answered
 * that the release failed there, e.g. its health check); `serving` is a
 * release such a host still serves (0: none). A host already on a newer
 * release is not a failure. */
#define UD_HOSTS_UNREACHABLE 1
#define UD_HOSTS_FAILED 2
struct ud_signal_result {
	int failed;
	int serving;
	size_t nhosts; /* 0: the app is placed on no host, none signalled */
};

/* Fold one host's verdict into *res. */
void ud_signal_result_add(struct ud_signal_result *res,
			  const struct ud_verdict *v);

/*
 * The rollback rule, for release m after signalling it found *res while
 * `current` is the app's current release. Restore what the failing hosts
 * still serve, and only while our release is the current one: a newer
 * publish must never be undone by an older one's rollback. Pure.
 */
enum ud_rollback {
	UD_ROLLBACK,            /* publish a rollback to *to */
	UD_ROLLBACK_NOT_FAILED, /* no host said the release failed */
	UD_ROLLBACK_SUPERSEDED, /* `current` is newer: not ours to undo */
	UD_ROLLBACK_KEEP,       /* health.on_failure: keep */
	UD_ROLLBACK_NO_PREVIOUS, /* the failing hosts serve nothing older */
	UD_ROLLBACK_OF_ROLLBACK, /* m is a rollback itself: no loop */
};
enum ud_rollback ud_rollback_decide(const struct ud_manifest *m,
				    const struct ud_signal_result *res,
				    int current, int *to);

/* What the pipeline reports. The table itself is required; any callback
 * may be NULL. Strings passed are valid during the call only. */
struct ud_pipeline_events {
	void *payload;
	/* A phase ("build", "release", "deploy", "rollback") starts, and
	 * ends after `ms` (ok 0: it failed, nothing follows). */
	void (*phase_begin)(void *payload, const char *phase);
	void (*phase_end)(void *payload, const char *phase, long long ms,
			  int ok);
	/* A progress line, e.g. "released pong v3 (zstd)". */
	void (*line)(void *payload, const char *text);
	/* Build output as it arrives. */
	void (*output)(void *payload, const char *data, size_t len);
	/* A host's verdict and its line (ud_verdict_describe). */
	void (*host)(void *payload, const struct ud_host_reply *h,
		     const struct ud_verdict *v, const char *line);
	/* The release was published (for summaries). */
	void (*released)(void *payload, const struct ud_manifest *m);
	/* A step failed: `what` it was, the message is ud_error_last(). */
	void (*error)(void *payload, int code, const char *what);
	/* The release was published but failed on some hosts. */
	void (*hosts_failed)(void *payload, const char *what,
			     const struct ud_manifest *m);
};

/* Signal the hosts of `app` to sync release `want` (0: the current one)
 * and judge each reply, reporting it through ev->host (an app placed on
 * no host: one ev->line, res->nhosts 0, nothing asked). Returns 0,
 * UD_EPARTIAL when some hosts did not take it (named in the message), or
 * another error (fleet not loadable). *res is filled in every case.
 * `retry`: the hosts boot again a release that failed there (`deploy
 * signal --retry`); no sync does otherwise. */
int ud_pipeline_signal(struct ud_deployrepo *r, const char *app, int want,
		       int retry, const struct ud_ssh_opts *ssh, int timeout_ms,
		       const struct ud_pipeline_events *ev,
		       struct ud_signal_result *res);

/* Signal `hosts`, which `app` has just left (moved away or removed from
 * the fleet), to sync, so that they stop its instances and free its
 * listen address now rather than at their next poll. Each reply is
 * judged (OK: the host no longer runs the app) and reported through
 * ev->host. Returns 0, UD_EPARTIAL naming the hosts that did not answer
 * or still run it, or another error (fleet not loadable). */
int ud_pipeline_signal_left(struct ud_deployrepo *r, const char *app,
			    const struct ud_strvec *hosts,
			    const struct ud_ssh_opts *ssh, int timeout_ms,
			    const struct ud_pipeline_events *ev,
			    struct ud_signal_result *res);

struct ud_pipeline_opts {
	const char *source; /* app repository path */
	const char *rev;    /* commit to build */
	const char *ref;    /* DEPLOY_REF, e.g. refs/heads/main */
	enum ud_compression compression;
	int no_signal;
	const struct ud_ssh_opts *ssh;
	const char *signing_key; /* key text, a secret the build must not see */
	int timeout_ms;     /* a host's budget for a sync */
};

/*
 * Build o->rev of o->source, publish it to r, signal its hosts, roll back
 * on a failed health check (ud_rollback_decide). Returns 0, UD_EPARTIAL
 * when the release failed on some hosts (ev->hosts_failed told), or the
 * error of the step that failed (ev->error told).
 */
int ud_pipeline_run(struct ud_deployrepo *r, const struct ud_pipeline_opts *o,
		    const struct ud_pipeline_events *ev);

#endif
