/*
 * supervise.h: the instances' lives (supervise.c): adopt, boot, restart,
 * summon on demand, stop; reconcile thread only.
 */
#ifndef UD_AGENT_SUPERVISE_H
#define UD_AGENT_SUPERVISE_H

#include "agent.h"

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
/* Stop the instance's process (if any) and forget the instance. */
void supervise_stop(struct agent *a, struct app *app, struct instance *in);
void supervise_stop_all(struct agent *a);
/* Tell the proxy the ready instances of app. */
void supervise_backends(struct agent *a, struct app *app);
/* Open a fresh console log for a new run of an instance (append-only fd);
 * the previous run's console is kept as <path>.prev. */
int supervise_open_log(const char *path);

#endif
