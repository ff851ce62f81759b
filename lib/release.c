#include "release.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "names.h"
#include "num.h"

/* Enough for 8 publishers racing for every one of their releases; each
 * lost race means someone else committed, so the loop always progresses. */
#define MAX_TRIES 200

/* A release directory name: decimal, no sign, no leading zero. Anything
 * else under releases/ was not written by us and is ignored. */
static int release_number(const char *s)
{
	long long n;

	return ud_num_parse(s, 1, 999999999, &n) < 0 ? 0 : (int)n;
}

static void backoff(void)
{
	struct timespec ts;
	unsigned seed;

	/* Seeded per call from the pid and the clock: forked publishers
	 * must not sleep in lockstep. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	seed = (unsigned)getpid() ^ (unsigned)ts.tv_nsec;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(1 + rand_r(&seed) % 20) * 1000000L;
	nanosleep(&ts, NULL);
}

static char *utc_now(void)
{
	char s[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return ud_strdup(s);
}

static int max_release(struct ud_deployrepo *r, const git_oid *commit,
		       const char *app, int *out)
{
	struct ud_strvec names = UD_STRVEC_INIT;
	char *dir = ud_asprintf("apps/%s/releases", app);
	size_t i;
	int err, n;

	*out = 0;
	if (!commit) {
		err = 0; /* no main yet: nothing released */
		goto done;
	}
	if ((err = ud_deployrepo_list(r, commit, dir, &names)) < 0)
		goto done;
	for (i = 0; i < names.n; i++)
		if ((n = release_number(names.v[i])) > *out)
			*out = n;
done:
	ud_strvec_free(&names);
	free(dir);
	return err;
}

static char *commit_message(const struct ud_manifest *m)
{
	if (m->rollback_of)
		return ud_asprintf("%s: release %d, rolling back to %d",
				   m->app, m->release, m->rollback_of);
	if (m->source.commit[0])
		return ud_asprintf("%s: release %d\n\n%s %s", m->app,
				   m->release, m->source.commit,
				   m->source.subject ? m->source.subject : "");
	return ud_asprintf("%s: release %d", m->app, m->release);
}

/* One attempt: UD_ECONFLICT when another commit landed first. */
static int publish_once(struct ud_deployrepo *r, struct ud_manifest *m,
			const struct ud_release_blob *files, size_t nfiles,
			const git_oid *build_log)
{
	struct ud_buf text = UD_BUF_INIT;
	struct ud_txn *t = NULL;
	char *dir = NULL, *path = NULL, *msg = NULL, *tag = NULL;
	char *tagmsg = NULL, current[16];
	git_oid empty;
	size_t i;
	int err, n;

	if ((err = ud_txn_begin(&t, r)) < 0 ||
	    (err = max_release(r, ud_txn_base(t), m->app, &n)) < 0)
		goto done;
	m->release = n + 1;
	dir = ud_asprintf("apps/%s/releases/%d", m->app, m->release);
	if ((err = ud_manifest_format(&text, m)) < 0)
		goto done;
	path = ud_asprintf("%s/manifest.json", dir);
	if ((err = ud_txn_put(t, path, text.ptr, text.size)) < 0)
		goto done;
	for (i = 0; i < nfiles; i++) {
		free(path);
		path = ud_asprintf("%s/%s", dir, files[i].name);
		if ((err = ud_txn_put_blob(t, path, &files[i].oid)) < 0)
			goto done;
	}
	if (!build_log) {
		if ((err = ud_deployrepo_write_blob(r, "", 0, &empty)) < 0)
			goto done;
		build_log = &empty;
	}
	free(path);
	path = ud_asprintf("%s/build.log", dir);
	if ((err = ud_txn_put_blob(t, path, build_log)) < 0)
		goto done;
	free(path);
	path = ud_asprintf("apps/%s/current", m->app);
	snprintf(current, sizeof(current), "%d\n", m->release);
	if ((err = ud_txn_put(t, path, current, strlen(current))) < 0)
		goto done;
	tag = ud_asprintf("%s/v%d", m->app, m->release);
	tagmsg = ud_asprintf("%s release %d", m->app, m->release);
	msg = commit_message(m);
	if ((err = ud_txn_tag(t, tag, tagmsg)) < 0 ||
	    (err = ud_txn_commit(t, msg, NULL)) < 0)
		goto done;
done:
	free(msg);
	free(tagmsg);
	free(tag);
	free(path);
	free(dir);
	ud_buf_free(&text);
	ud_txn_free(t);
	return err;
}

int ud_release_publish(struct ud_deployrepo *r, struct ud_manifest *m,
		       const struct ud_release_blob *files, size_t nfiles,
		       const git_oid *build_log)
{
	size_t i;
	int err, tries;

	if ((err = ud_name_check_app(m->app)) < 0)
		return err;
	for (i = 0; i < nfiles; i++)
		if ((err = ud_name_check_image_file(files[i].name)) < 0)
			return err;
	if (!m->created_at)
		m->created_at = utc_now();
	for (tries = 0; tries < MAX_TRIES; tries++) {
		err = publish_once(r, m, files, nfiles, build_log);
		if (err != UD_ECONFLICT)
			break;
		backoff();
	}
	if (err == UD_ECONFLICT)
		ud_error_prefix("%s: gave up after %d concurrent updates",
				m->app, MAX_TRIES);
	if (err < 0)
		m->release = 0; /* no number was taken */
	return err;
}

/* What the files we write can hold, with room to spare: a bigger one was
 * not written by us and is refused before it is read. */
#define CURRENT_MAX 64
#define MANIFEST_MAX (4 * 1024 * 1024)

static int parse_current(const struct ud_buf *b, const char *app, int *out)
{
	size_t len = b->size;
	long long n;

	/* one optional final newline, as written */
	if (len && b->ptr[len - 1] == '\n')
		len--;
	if (ud_num_parse_n(b->ptr, len, 1, 999999999, &n) < 0)
		return ud_error_set(UD_EINVALID,
				    "apps/%s/current: not a release number",
				    app);
	*out = (int)n;
	return 0;
}

int ud_release_current(struct ud_deployrepo *r, const git_oid *commit,
		       const char *app, int *out)
{
	struct ud_buf b = UD_BUF_INIT;
	char *path;
	int err;

	if ((err = ud_name_check_app(app)) < 0)
		return err;
	path = ud_asprintf("apps/%s/current", app);
	b.max = CURRENT_MAX;
	err = ud_deployrepo_read(r, commit, path, &b);
	if (err == UD_ENOTFOUND)
		ud_error_set(err, "%s has no release", app);
	else if (!err)
		err = parse_current(&b, app, out);
	free(path);
	ud_buf_free(&b);
	return err;
}

int ud_release_check_target(struct ud_deployrepo *r, const char *app,
			    const char *target)
{
	struct ud_manifest *m = NULL;
	struct ud_buf built = UD_BUF_INIT;
	int n, err;
	size_t i;

	if ((err = ud_release_current(r, NULL, app, &n)) == UD_ENOTFOUND) {
		ud_error_clear(); /* nothing released: nothing to check yet */
		return 0;
	}
	if (err < 0 || (err = ud_release_manifest(r, NULL, app, n, &m)) < 0)
		goto done;
	for (i = 0; i < m->nimages; i++) {
		if (!strcmp(m->images[i].target, target))
			goto done;
		ud_buf_printf(&built, "%s%s/%s", i ? ", " : "",
			      m->images[i].target, m->images[i].arch);
	}
	err = ud_error_set(UD_EINVALID,
			   "%s v%d builds no image for target '%s' (its "
			   "images: %s); add one to deploy.json's images "
			   "and publish it first",
			   app, n, target, built.size ? built.ptr : "none");
done:
	ud_buf_free(&built);
	ud_manifest_free(m);
	return err;
}

int ud_release_manifest(struct ud_deployrepo *r, const git_oid *commit,
			const char *app, int n, struct ud_manifest **out)
{
	struct ud_buf b = UD_BUF_INIT;
	char *path;
	int err;

	*out = NULL;
	if ((err = ud_name_check_app(app)) < 0)
		return err;
	path = ud_asprintf("apps/%s/releases/%d/manifest.json", app, n);
	b.max = MANIFEST_MAX;
	err = ud_deployrepo_read(r, commit, path, &b);
	if (err == UD_ENOTFOUND)
		ud_error_set(err, "%s has no release %d", app, n);
	else if (!err)
		err = ud_manifest_parse(out, path, b.ptr, b.size);
	free(path);
	ud_buf_free(&b);
	return err;
}

/* The release whose images n puts live: n itself, or the release it
 * restores (followed through rollbacks of rollbacks; rollback_of is
 * always older than the release naming it, so this ends). */
static int origin(struct ud_deployrepo *r, const git_oid *head,
		  const char *app, int n, int *out)
{
	struct ud_manifest *m = NULL;
	int err = 0;

	*out = n;
	while (*out > 0) {
		if ((err = ud_release_manifest(r, head, app, *out, &m)) < 0)
			return err;
		if (!m->rollback_of || m->rollback_of >= *out) {
			ud_manifest_free(m);
			break;
		}
		*out = m->rollback_of;
		ud_manifest_free(m);
		m = NULL;
	}
	return err;
}

/*
 * The default target, Heroku's numbered rollback: the release numbered
 * just before the one the live release stands for (itself, or what it
 * restores), so two rollbacks in a row go two steps back rather than
 * toggling. A release that would put the live images back is skipped.
 */
static int default_target(struct ud_deployrepo *r, const git_oid *head,
			  const char *app, int current, int live, int *out)
{
	struct ud_manifest *m = NULL;
	int err, from, t, o;

	*out = 0;
	if ((err = ud_release_manifest(r, head, app, current, &m)) < 0)
		return err;
	from = m->rollback_of ? m->rollback_of : current;
	ud_manifest_free(m);
	for (t = from - 1; t > 0; t--) {
		if ((err = origin(r, head, app, t, &o)) < 0)
			return err;
		if (o != live) {
			*out = t;
			return 0;
		}
	}
	return ud_error_set(UD_ENOTFOUND,
			    "%s has no earlier release to roll back to", app);
}

int ud_release_rollback(struct ud_deployrepo *r, const char *app, int to,
			struct ud_manifest **out)
{
	struct ud_manifest *target = NULL, *m = NULL;
	struct ud_release_blob *files = NULL;
	git_oid head, log, *logp = NULL;
	char *path = NULL;
	size_t i, nfiles = 0;
	int err, current, live, want;

	if (out)
		*out = NULL;
	/* One snapshot for every decision, the manifest and its blobs. */
	if ((err = ud_deployrepo_head(r, &head)) < 0 ||
	    (err = ud_release_current(r, &head, app, &current)) < 0 ||
	    (err = origin(r, &head, app, current, &live)) < 0)
		goto done;
	if (!to && (err = default_target(r, &head, app, current, live,
					 &to)) < 0)
		goto done;
	if ((err = ud_release_manifest(r, &head, app, to, &target)) < 0 ||
	    (err = origin(r, &head, app, to, &want)) < 0)
		goto done;
	/* A no-op release would only push the real history further back. */
	if (want == live) {
		err = to == current
			? ud_error_set(UD_EEXISTS,
				       "v%d is the live release of %s; "
				       "nothing to roll back",
				       to, app)
			: ud_error_set(UD_EEXISTS,
				       "v%d is what %s serves already (live "
				       "v%d restores v%d); nothing to roll "
				       "back",
				       to, app, current, live);
		goto done;
	}
	/* The images and their initrds, the same blobs. */
	files = ud_calloc(2 * target->nimages, sizeof(*files));
	for (i = 0; i < 2 * target->nimages; i++) {
		const char *file = i % 2 ? target->images[i / 2].initrd_file
					 : target->images[i / 2].file;

		if (!file)
			continue;
		free(path);
		path = ud_asprintf("apps/%s/releases/%d/%s", app, to, file);
		files[nfiles].name = file;
		if ((err = ud_deployrepo_blob_id(r, &head, path,
						 &files[nfiles].oid)) < 0)
			goto done;
		nfiles++;
	}
	free(path);
	path = ud_asprintf("apps/%s/releases/%d/build.log", app, to);
	if (ud_deployrepo_blob_id(r, &head, path, &log) == 0)
		logp = &log;

	m = ud_manifest_dup(target);
	m->rollback_of = to;
	m->release = 0;
	free(m->created_at);
	m->created_at = NULL;
	if ((err = ud_release_publish(r, m, files, nfiles, logp)) < 0)
		goto done;
	if (out) {
		*out = m;
		m = NULL;
	}
done:
	ud_manifest_free(m);
	ud_manifest_free(target);
	free(files);
	free(path);
	return err;
}

static int newest_first(const void *a, const void *b)
{
	const struct ud_manifest *x = *(struct ud_manifest *const *)a;
	const struct ud_manifest *y = *(struct ud_manifest *const *)b;

	return (y->release > x->release) - (y->release < x->release);
}

int ud_release_list(struct ud_deployrepo *r, const char *app,
		    struct ud_manifest ***out, size_t *n, int *current)
{
	struct ud_strvec names = UD_STRVEC_INIT;
	struct ud_manifest **list = NULL;
	char *dir = NULL;
	size_t i, count = 0;
	git_oid head;
	int err, num;

	*out = NULL;
	*n = 0;
	*current = 0;
	if ((err = ud_name_check_app(app)) < 0 ||
	    (err = ud_deployrepo_head(r, &head)) < 0)
		goto done;
	dir = ud_asprintf("apps/%s/releases", app);
	if ((err = ud_deployrepo_list(r, &head, dir, &names)) < 0)
		goto done;
	list = ud_calloc(names.n, sizeof(*list));
	for (i = 0; i < names.n; i++) {
		if (!(num = release_number(names.v[i])))
			continue;
		if ((err = ud_release_manifest(r, &head, app, num,
					       &list[count])) < 0)
			goto done;
		count++;
	}
	qsort(list, count, sizeof(*list), newest_first);
	err = ud_release_current(r, &head, app, current);
	if (err == UD_ENOTFOUND) {
		*current = 0;
		err = 0;
	}
	if (err < 0)
		goto done;
	*out = list;
	*n = count;
	list = NULL;
done:
	ud_release_list_free(list, count);
	ud_strvec_free(&names);
	free(dir);
	return err;
}

void ud_release_list_free(struct ud_manifest **list, size_t n)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; i < n; i++)
		ud_manifest_free(list[i]);
	free(list);
}

static int fleet_update_once(struct ud_deployrepo *r,
			     int (*edit)(struct ud_fleet *f, void *payload),
			     void *payload, const char *message)
{
	struct ud_buf text = UD_BUF_INIT;
	struct ud_fleet *f = NULL;
	struct ud_txn *t = NULL;
	int err;

	if ((err = ud_txn_begin(&t, r)) < 0)
		goto done;
	if (!ud_txn_base(t))
		f = ud_fleet_new();
	else if ((err = ud_fleet_load(r, ud_txn_base(t), &f)) < 0)
		goto done;
	if ((err = edit(f, payload)) < 0 ||
	    (err = ud_fleet_format(&text, f)) < 0 ||
	    (err = ud_txn_put(t, "fleet.json", text.ptr, text.size)) < 0 ||
	    (err = ud_txn_commit(t, message, NULL)) < 0)
		goto done;
done:
	ud_buf_free(&text);
	ud_fleet_free(f);
	ud_txn_free(t);
	return err;
}

int ud_fleet_update(struct ud_deployrepo *r,
		    int (*edit)(struct ud_fleet *f, void *payload),
		    void *payload, const char *message)
{
	int err, tries;

	for (tries = 0; tries < MAX_TRIES; tries++) {
		err = fleet_update_once(r, edit, payload, message);
		if (err != UD_ECONFLICT)
			break;
		backoff();
	}
	if (err == UD_ECONFLICT)
		ud_error_prefix("fleet.json: gave up after %d concurrent "
				"updates", MAX_TRIES);
	return err;
}
