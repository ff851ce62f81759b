/*
 * agent.c: the agent core. It owns what the threads hand each other (stop,
 * sync requests, demand, finished boots, the published snapshot) and the
 * one lock around it; agent.h says who calls what. Nothing here blocks
 * but the waits that are named so, and nothing here knows what an app
 * does: the reconcile thread decides, this module only carries.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "net.h"
#include "repo.h"

struct agent_shared {
	pthread_mutex_t lock;
	pthread_cond_t wake;  /* the reconcile thread: work to do */
	pthread_cond_t done;  /* waiters: a sync finished, a snapshot, a
				 boot thread ended */
	int stopping;
	unsigned long req_seq, done_seq;
	json_t *status;       /* "apps" object of the last snapshot */
	int published;        /* status was set once */
	json_t *last_sync;    /* reply of the last finished sync */
	struct ud_strvec demand; /* summoned apps with waiting clients */
	struct ud_strvec retry;  /* apps whose failed release the next sync
				    boots again ("*": every app) */
	struct boot_job *booted; /* finished boot jobs, newest first */
	int boots_running;       /* boot threads alive */
	agent_notify_fn notify;  /* a sync finished, a snapshot, the stop */
	void *notify_arg;
};

/* Tell whoever waits on the loop (agent_set_notify), outside the lock. */
static void notify(struct agent_shared *s)
{
	agent_notify_fn fn;
	void *arg;

	pthread_mutex_lock(&s->lock);
	fn = s->notify;
	arg = s->notify_arg;
	pthread_mutex_unlock(&s->lock);
	if (fn)
		fn(arg);
}

void agent_set_notify(struct agent *a, agent_notify_fn fn, void *arg)
{
	pthread_mutex_lock(&a->shared->lock);
	a->shared->notify = fn;
	a->shared->notify_arg = arg;
	pthread_mutex_unlock(&a->shared->lock);
}

void agent_init(struct agent *a)
{
	struct agent_shared *s = ud_calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	memset(a, 0, sizeof(*a));
	state_init(&a->st);
	pthread_mutex_init(&s->lock, NULL);
	/* Timed waits against the monotonic clock: a wall-clock step never
	 * makes the reconciler sleep through a poll. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->done, NULL);
	ud_strvec_init(&s->demand);
	ud_strvec_init(&s->retry);
	a->shared = s;
}

void agent_free(struct agent *a)
{
	struct agent_shared *s = a->shared;
	struct boot_job *j;

	if (s) {
		while ((j = s->booted)) {
			s->booted = j->next;
			boot_job_free(j);
		}
		json_decref(s->status);
		json_decref(s->last_sync);
		ud_strvec_free(&s->demand);
		ud_strvec_free(&s->retry);
		pthread_cond_destroy(&s->wake);
		pthread_cond_destroy(&s->done);
		pthread_mutex_destroy(&s->lock);
		free(s);
		a->shared = NULL;
	}
	state_free(&a->st);
	free(a->seen);
	free(a->state_path);
	free(a->images_dir);
	free(a->mirror_path);
}

void agent_stop(struct agent *a)
{
	struct agent_shared *s = a->shared;

	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->wake);
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	notify(s);
}

int agent_stopping(struct agent *a)
{
	struct agent_shared *s = a->shared;
	int stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return stopping;
}

/* Sync requests */

void agent_request_sync(struct agent *a)
{
	struct agent_shared *s = a->shared;

	pthread_mutex_lock(&s->lock);
	s->req_seq++;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

unsigned long agent_sync_ask(struct agent *a, const char *app, int retry)
{
	struct agent_shared *s = a->shared;
	unsigned long mine;

	pthread_mutex_lock(&s->lock);
	if (retry)
		ud_strvec_push(&s->retry, app ? app : "*");
	mine = ++s->req_seq;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	return mine;
}

int agent_sync_poll(struct agent *a, unsigned long seq, json_t **reply)
{
	struct agent_shared *s = a->shared;
	int rc = 0;

	*reply = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->stopping)
		rc = -1;
	else if (s->done_seq >= seq && s->last_sync) {
		*reply = json_deep_copy(s->last_sync);
		rc = 1;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

json_t *agent_sync(struct agent *a, const char *app, int retry)
{
	struct agent_shared *s = a->shared;
	unsigned long mine = agent_sync_ask(a, app, retry);
	json_t *r = NULL;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping && s->done_seq < mine)
		pthread_cond_wait(&s->done, &s->lock);
	if (!s->stopping && s->last_sync)
		r = json_deep_copy(s->last_sync);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void agent_demand(const char *app, size_t waiting, void *payload)
{
	struct agent *a = payload;
	struct agent_shared *s = a->shared;
	size_t i;

	(void)waiting;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->demand.n; i++)
		if (!strcmp(s->demand.v[i], app))
			break;
	if (i == s->demand.n)
		ud_strvec_push(&s->demand, app);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* The reconcile thread's side */

static void deadline_at(struct timespec *ts, long long until)
{
	long long ms = until - ud_now_ms();

	/* An hour at most: a far deadline (no poll) stays representable. */
	if (ms > 3600 * 1000LL)
		ms = 3600 * 1000LL;
	if (ms < 0)
		ms = 0;
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int agent_wait_work(struct agent *a, long long until, long long next_poll,
		    struct agent_work *w)
{
	struct agent_shared *s = a->shared;
	long long now = ud_now_ms();

	memset(w, 0, sizeof(*w));
	ud_strvec_init(&w->demand);
	ud_strvec_init(&w->retry);
	pthread_mutex_lock(&s->lock);
	if (!s->stopping && s->req_seq == s->done_seq && now < next_poll &&
	    now < until && s->demand.n == 0 && !s->booted) {
		struct timespec ts;

		deadline_at(&ts, until < next_poll ? until : next_poll);
		pthread_cond_timedwait(&s->wake, &s->lock, &ts);
	}
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		agent_work_free(w);
		return 1;
	}
	w->seq = s->req_seq;
	w->sync = w->seq != s->done_seq || ud_now_ms() >= next_poll;
	ud_strvec_free(&w->demand);
	w->demand = s->demand;
	ud_strvec_init(&s->demand);
	if (w->sync) {
		ud_strvec_free(&w->retry);
		w->retry = s->retry;
		ud_strvec_init(&s->retry);
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void agent_work_free(struct agent_work *w)
{
	ud_strvec_free(&w->demand);
	ud_strvec_free(&w->retry);
}

void agent_sync_done(struct agent *a, unsigned long seq, json_t *reply)
{
	struct agent_shared *s = a->shared;

	pthread_mutex_lock(&s->lock);
	s->done_seq = seq;
	json_decref(s->last_sync);
	s->last_sync = reply;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	notify(s);
}

/* Boot threads */

void agent_boot_begin(struct agent *a)
{
	pthread_mutex_lock(&a->shared->lock);
	a->shared->boots_running++;
	pthread_mutex_unlock(&a->shared->lock);
}

void agent_boot_abort(struct agent *a)
{
	pthread_mutex_lock(&a->shared->lock);
	a->shared->boots_running--;
	pthread_cond_broadcast(&a->shared->done);
	pthread_mutex_unlock(&a->shared->lock);
}

void agent_boot_done(struct agent *a, struct boot_job *j)
{
	struct agent_shared *s = a->shared;

	pthread_mutex_lock(&s->lock);
	j->next = s->booted;
	s->booted = j;
	s->boots_running--;
	pthread_cond_signal(&s->wake);
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
}

struct boot_job *agent_booted(struct agent *a, int wait_all)
{
	struct agent_shared *s = a->shared;
	struct boot_job *list, *j, *oldest = NULL;

	pthread_mutex_lock(&s->lock);
	while (wait_all && s->boots_running > 0)
		pthread_cond_wait(&s->done, &s->lock);
	list = s->booted;
	s->booted = NULL;
	pthread_mutex_unlock(&s->lock);
	/* Newest first on the stack: hand them over in the order they
	 * finished. */
	while ((j = list)) {
		list = j->next;
		j->next = oldest;
		oldest = j;
	}
	return oldest;
}

/* The snapshot */

void agent_publish(struct agent *a)
{
	struct agent_shared *s = a->shared;
	json_t *apps = state_status_json(&a->st);
	int first;

	pthread_mutex_lock(&s->lock);
	json_decref(s->status);
	s->status = apps;
	/* The first snapshot also releases status requests waiting for it. */
	first = !s->published;
	s->published = 1;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
	if (first)
		notify(s);
}

json_t *agent_snapshot(struct agent *a, int wait)
{
	struct agent_shared *s = a->shared;
	json_t *apps = NULL;

	pthread_mutex_lock(&s->lock);
	while (wait && !s->status && !s->stopping)
		pthread_cond_wait(&s->done, &s->lock);
	if (s->status)
		apps = json_deep_copy(s->status);
	else if (wait)
		apps = json_object();
	pthread_mutex_unlock(&s->lock);
	return apps;
}

int agent_snapshot_listen(struct agent *a, const char *app, char *listen,
			  size_t len)
{
	struct agent_shared *s = a->shared;
	const char *l;
	json_t *o;
	int found;

	pthread_mutex_lock(&s->lock);
	if (!s->status) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	o = json_object_get(s->status, app);
	found = o != NULL;
	l = found ? json_string_value(json_object_get(o, "listen")) : NULL;
	snprintf(listen, len, "%s", l ? l : "");
	pthread_mutex_unlock(&s->lock);
	return found;
}

/* state_dir */

char *image_path(struct agent *a, const char *sha256)
{
	return ud_asprintf("%s/%s", a->images_dir, sha256);
}

char *agent_signed_head_path(struct agent *a)
{
	return ud_asprintf("%s/signed-head", a->conf->state_dir);
}

int agent_trusted_head(struct agent *a, struct ud_deployrepo *repo,
		       git_oid *out)
{
	struct ud_buf text = UD_BUF_INIT;
	char *path;
	int err;

	if (!a->conf->allowed_signers)
		return ud_deployrepo_head(repo, out);
	path = agent_signed_head_path(a);
	ud_buf_init(&text, 256);
	if ((err = ud_buf_read_file(&text, path)) == 0) {
		ud_buf_rtrim(&text);
		if (git_oid_fromstrn(out, text.ptr, text.size) < 0)
			err = ud_error_set(UD_EINVALID, "%s: not a commit id",
					   path);
	} else {
		err = ud_error_set(UD_ENOTFOUND,
				   "no signed commit was accepted yet");
	}
	ud_buf_free(&text);
	free(path);
	return err;
}

void agent_save(struct agent *a)
{
	if (state_save(&a->st, a->state_path) < 0)
		ud_log_error("cannot save state: %s", ud_error_last());
}

int agent_share_dir(struct agent *a, const char *dir)
{
	if (!a->inst_cred)
		return 0;
	if (chown(dir, (uid_t)-1, a->inst_cred->gid) < 0 ||
	    chmod(dir, 0750) < 0)
		return ud_error_set_errno(UD_ERROR, "cannot open %s to user "
					  "%s", dir, a->conf->user);
	return 0;
}

int agent_give(struct agent *a, const char *path)
{
	struct ud_cred *c = a->inst_cred;
	DIR *d;
	struct dirent *e;
	int err = 0;

	if (!c)
		return 0;
	if (lchown(path, c->uid, c->gid) < 0)
		return ud_error_set_errno(UD_ERROR, "cannot give %s to user "
					  "%s", path, a->conf->user);
	/* A directory: what the backend wrote into it (config files) too,
	 * one level, links not followed. */
	if (!(d = opendir(path)))
		return 0;
	while ((e = readdir(d)) && err == 0) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fchownat(dirfd(d), e->d_name, c->uid, c->gid,
			     AT_SYMLINK_NOFOLLOW) < 0)
			err = ud_error_set_errno(UD_ERROR, "cannot give %s/%s "
						 "to user %s", path,
						 e->d_name, a->conf->user);
	}
	closedir(d);
	return err;
}
