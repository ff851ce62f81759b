/*
 * reconcile.c: the reconcile thread and a sync.
 *
 * A sync fetches the deployment repository into state_dir/repo.git, reads
 * fleet.json, and makes what runs here match it: for each app placed on
 * this host, the release named by apps/<app>/current. An image is
 * unpacked into state_dir/images/<sha256> through a temp file and renamed
 * into place only once its digest matches the manifest, so a half-written
 * or tampered image is never booted (images.c), and every start checks
 * it again. A boot-mode swap starts the new instances, waits for their
 * health, switches the proxy and only then drains and stops the old ones:
 * a failed health check leaves the old release serving.
 *
 * Between syncs the thread supervises instances every ~200 ms and answers
 * the proxy's demand for summoned apps.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reconcile.h"
#include "agent.h"
#include "allowed_signers.h"
#include "buf.h"
#include "compress.h"
#include "images.h"
#include "errors.h"
#include "launch.h"
#include "log.h"
#include "names.h"
#include "proxy.h"
#include "release.h"
#include "repo.h"
#include "ssh.h"
#include "supervise.h"
#include "volume.h"

#define TICK_MS 200
#define DRAIN_MS 30000
#define BOOT_HOLD_MS 30000

static void app_fail(struct agent *a, struct app *app, int release,
		     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record why `release` does not serve. No sync boots it again here but
 * one asked to retry it (deploy signal --retry); a newer release (a
 * rollback too) is another release. */
static void app_fail(struct agent *a, struct app *app, int release,
		     const char *fmt, ...)
{
	struct ud_buf b = UD_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	ud_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	ud_log_error("%s: release %d failed: %s", app->name, release, b.ptr);
	free(app->error);
	app->error = ud_buf_detach(&b);
	app->status = APP_FAILED;
	/* Interrupted by our own shutdown is not the release's fault. */
	if (!agent_stopping(a))
		app->failed_release = release;
	agent_save(a);
}

/* The image and its initrd, if it has one: both under images/<sha256>,
 * both checked the same way. */
static int ensure_image(struct agent *a, struct ud_deployrepo *repo,
			const git_oid *head, const struct ud_manifest *m,
			const struct ud_manifest_image *img)
{
	struct images_file f = { "image", img->file, img->sha256, img->size,
				  img->compression };
	int err;

	if ((err = images_ensure(a, repo, head, m, &f)) < 0 ||
	    !img->initrd_file)
		return err;
	f.kind = "initrd";
	f.file = img->initrd_file;
	f.sha256 = img->initrd_sha256;
	f.size = img->initrd_size;
	return images_ensure(a, repo, head, m, &f);
}

static size_t count_release(const struct app *app, int release)
{
	size_t i, n = 0;

	for (i = 0; i < app->ninst; i++)
		if (app->inst[i]->release == release)
			n++;
	return n;
}

/* Remove the instances run.restart left exited; 1 if there were any. */
static int forget_exited(struct app *app)
{
	size_t i;
	int any = 0;

	for (i = app->ninst; i-- > 0;)
		if (app->inst[i]->exited && app->inst[i]->pid <= 0) {
			app_inst_remove(app, app->inst[i]);
			any = 1;
		}
	return any;
}

/* Every instance of the serving release exited for good (and there is
 * one). */
static int all_exited(const struct app *app)
{
	size_t i, n = 0;

	for (i = 0; i < app->ninst; i++) {
		if (app->inst[i]->release != app->release)
			continue;
		if (!app->inst[i]->exited)
			return 0;
		n++;
	}
	return n > 0;
}

/* A new attempt: the console of an earlier failure says nothing of it. */
static void app_forget_tail(struct app *app)
{
	ud_strvec_free(&app->log_tail);
	ud_strvec_init(&app->log_tail);
}

/*
 * Retire the instances not of `keep`: those without open connections stop
 * now; the rest drain in the background (supervise_tick stops each when its
 * last connection ends, or after DRAIN_MS), so the sync, and the push
 * waiting on it, does not wait on a client's idle keep-alive connection.
 */
static void drain_and_stop(struct agent *a, struct app *app, int keep)
{
	long long until = ud_now_ms() + DRAIN_MS;
	size_t i;

	for (i = app->ninst; i-- > 0;) {
		struct instance *in;

		if (i >= app->ninst || app->inst[i]->release == keep)
			continue;
		in = app->inst[i];
		if (!app->listen ||
		    proxy_active(a->proxy, app->name, in->id) == 0) {
			supervise_stop(a, app, in);
			continue;
		}
		if (!in->drain_until) {
			in->drain_until = until;
			ud_log_info("%s: instance %d (release %d) draining",
				    app->name, in->id, in->release);
		}
	}
	agent_save(a);
}

/* What the proxy listens on for this app: the placement's address, else
 * 127.0.0.1:<run.port>; NULL when the app has neither. */
static char *listen_addr(const struct ud_placement *p,
			 const struct ud_manifest *m)
{
	if (p->listen)
		return ud_strdup(p->listen);
	if (m->run.port > 0)
		return ud_asprintf("127.0.0.1:%d", m->run.port);
	return NULL;
}

static int hold_ms(const struct app *app, const struct ud_manifest *m)
{
	/* An app with volumes has no instance up while it swaps: hold the
	 * connections for as long as the new one may take to get healthy. */
	if (app->place.mode == UD_MODE_SUMMON || m->run.nblock)
		return (m->health.timeout_s > 0 ? m->health.timeout_s : 20) *
			       1000 + 5000;
	return BOOT_HOLD_MS;
}

static int do_listen(struct agent *a, struct app *app,
		     const struct ud_manifest *m, const char *addr)
{
	int conc = app->place.mode == UD_MODE_SUMMON ?
		app->place.concurrency : 0;

	if (app->listen && (!addr || strcmp(app->listen, addr)))
		proxy_unlisten(a->proxy, app->name);
	if (!addr) {
		free(app->listen);
		app->listen = NULL;
		return 0;
	}
	/* An app checked over HTTP speaks it: its kept-alive clients can
	 * move to a new release at their next request. */
	proxy_set_http(a->proxy, app->name,
		       m && m->health.kind == UD_HEALTH_HTTP);
	if (proxy_listen(a->proxy, app->name, addr, hold_ms(app, m), conc) <
	    0)
		return UD_ERROR;
	if (!app->listen || strcmp(app->listen, addr)) {
		free(app->listen);
		app->listen = ud_strdup(addr);
	}
	return 0;
}

/* Boot `n` instances of m; on failure stop those it started. */
static int boot_n(struct agent *a, struct app *app,
		  const struct ud_manifest *m, const char *sha, size_t n,
		  struct instance ***out)
{
	struct instance **started = ud_calloc(n + 1, sizeof(*started));
	size_t i;
	int err = 0;

	for (i = 0; i < n; i++) {
		if ((err = supervise_boot(a, app, m, sha, &started[i])) < 0)
			break;
	}
	if (err < 0) {
		struct ud_error_state why;

		ud_error_save(&why);
		while (i-- > 0)
			supervise_stop(a, app, started[i]);
		agent_save(a);
		ud_error_restore(&why);
		free(started);
		started = NULL;
	}
	*out = started;
	return err;
}

/* Read release n's manifest, pick this host's image and unpack it.
 * On failure the message says why, ready for the app's error. */
static int prepare(struct agent *a, struct ud_deployrepo *repo,
		   const git_oid *head, struct app *app, const char *arch,
		   int n, struct ud_manifest **out,
		   const struct ud_manifest_image **img)
{
	const char *target = app->place.target ? app->place.target : "unix";
	struct ud_manifest *m = NULL;
	int err;

	*out = NULL;
	if ((err = ud_release_manifest(repo, head, app->name, n, &m)) < 0)
		return err;
	if (m->release != n || strcmp(m->app, app->name)) {
		err = ud_error_set(UD_EINVALID,
				   "manifest of release %d names %s release "
				   "%d",
				   n, m->app, m->release);
		goto done;
	}
	if (!(*img = ud_manifest_pick(m, target, arch))) {
		err = ud_error_set(UD_ENOTFOUND,
				   "release %d has no image for %s/%s", n,
				   target, arch);
		goto done;
	}
	if ((err = launch_check(a, (*img)->target, (*img)->arch)) < 0 ||
	    (err = ensure_image(a, repo, head, m, *img)) < 0 ||
	    (err = volume_ensure(a, app->name, m)) < 0)
		goto done;
	{
		char *path = image_path(a, (*img)->sha256);

		err = launch_check_image(a, target, path, (*img)->file, m);
		free(path);
	}
done:
	if (err < 0)
		ud_manifest_free(m);
	else
		*out = m;
	return err;
}

/*
 * Make the serving release run `want` instances (boot mode) or be
 * registered (summon): after a placement change, after a clean restart of
 * the agent, or to bring the old release back when a new one failed.
 */
static int fill(struct agent *a, struct ud_deployrepo *repo,
		const git_oid *head, struct app *app, const char *arch,
		size_t want)
{
	const struct ud_manifest_image *img;
	struct ud_manifest *m = NULL;
	struct instance **fresh = NULL;
	char *addr = NULL;
	size_t have = count_release(app, app->release), i;
	int summon = app->place.mode == UD_MODE_SUMMON, err;

	if (!app->manifest || !app->image[0] || have < want) {
		if ((err = prepare(a, repo, head, app, arch, app->release, &m,
				   &img)) < 0)
			goto done;
		ud_manifest_free(app->manifest);
		app->manifest = m;
		m = NULL;
		memcpy(app->image, img->sha256, UD_SHA256_HEX);
	}
	if (!summon && app->manifest->run.nblock && want > 1) {
		err = ud_error_set(UD_EINVALID,
				   "an app with volumes (run.block) runs one "
				   "instance per host; the placement asks for "
				   "%zu",
				   want);
		goto done;
	}
	addr = listen_addr(&app->place, app->manifest);
	if (!addr && summon) {
		err = ud_error_set(UD_EINVALID,
				   "summon mode needs a listen address "
				   "(placement listen or run.port)");
		goto done;
	}
	if ((err = do_listen(a, app, app->manifest, addr)) < 0)
		goto done;
	if (!summon && have < want) {
		if ((err = boot_n(a, app, app->manifest, app->image,
				  want - have, &fresh)) < 0)
			goto done;
		for (i = 0; i < want - have; i++)
			fresh[i]->ready = 1;
	}
	while (!summon && count_release(app, app->release) > want) {
		for (i = 0; i < app->ninst; i++)
			if (app->inst[i]->release == app->release)
				break;
		supervise_stop(a, app, app->inst[i]);
	}
	supervise_backends(a, app);
	agent_save(a);
done:
	free(fresh);
	free(addr);
	return err;
}

static int retry_wanted(const struct ud_strvec *retry, const char *app)
{
	size_t i;

	for (i = 0; i < retry->n; i++)
		if (!strcmp(retry->v[i], "*") || !strcmp(retry->v[i], app))
			return 1;
	return 0;
}

static int summoned(const struct app *app)
{
	return app->placed && app->place.mode == UD_MODE_SUMMON;
}

enum reconcile_action reconcile_decide(const struct app *app, int desired,
				       int retry, size_t want)
{
	/* A failed release is not booted again by a poll, only when asked
	 * to retry (or by a newer release: another number). */
	if (app->failed_release == desired && !retry)
		return RECONCILE_FAILED;
	if (app->release != desired)
		return RECONCILE_SWITCH;
	if (app->manifest && app->image[0] && app->status != APP_FAILED &&
	    (summoned(app) || count_release(app, desired) == want))
		return RECONCILE_KEEP;
	return RECONCILE_FILL;
}

size_t reconcile_boot_count(const struct app *app, size_t want)
{
	size_t i, old = 0;

	/* A summoned app boots the new release only if the old one has
	 * traffic to hand over; boot mode starts all of its instances. */
	if (!summoned(app))
		return want;
	for (i = 0; i < app->ninst; i++)
		if (app->inst[i]->pid > 0)
			old++;
	return old ? 1 : 0;
}

int reconcile_restore_old(const struct app *app, int desired, size_t want)
{
	/* The desired release does not serve: the one before it must, with
	 * as many instances as asked (it may have none after a restart). */
	return app->status == APP_FAILED && app->release > 0 &&
	       app->release != desired &&
	       (summoned(app) || count_release(app, app->release) < want);
}

/* retry: an explicit `deploy signal --retry` names this app: boot its
 * failed release again. Nothing else does, but a newer release. */
static void sync_app(struct agent *a, struct ud_deployrepo *repo,
		     const git_oid *head, const struct ud_placement *p,
		     const char *arch, int retry)
{
	struct app *app;
	struct ud_manifest *m = NULL;
	const struct ud_manifest_image *img;
	struct instance **fresh = NULL;
	char *addr = NULL;
	size_t want, i;
	int desired = 0, err, summon = p->mode == UD_MODE_SUMMON;
	long long t0 = ud_now_ms();

	if (ud_name_check_app(p->app) < 0) {
		ud_log_error("fleet.json: %s", ud_error_last());
		return;
	}
	app = state_app_add(&a->st, p->app);
	placement_copy(&app->place, p);
	app->placed = 1;
	want = summon ? 0 : (size_t)(p->instances > 0 ? p->instances : 1);

	if ((err = ud_release_current(repo, head, app->name, &desired)) < 0) {
		app->desired = 0;
		if (err == UD_ENOTFOUND) {
			ud_error_clear();
			if (!app->release)
				app->status = APP_IDLE;
		} else {
			app_fail(a, app, 0, "%s", ud_error_last());
		}
		goto done;
	}
	app->desired = desired;

	if (reconcile_decide(app, desired, retry, want) == RECONCILE_FAILED) {
		app->status = APP_FAILED;
		goto done;
	}
	/* Asked to retry: instances run.restart left exited start again. */
	if (retry && forget_exited(app)) {
		app_set_error(app, NULL);
		agent_save(a);
	}
	if (app->release == desired) {
		if (reconcile_decide(app, desired, retry, want) ==
		    RECONCILE_KEEP) {
			/* Nothing to do but keep the address current. */
			addr = listen_addr(p, app->manifest);
			if (do_listen(a, app, app->manifest, addr) < 0) {
				app_fail(a, app, desired, "%s",
					 ud_error_last());
				goto done;
			}
			app->status = summon ? APP_SUMMONABLE :
				all_exited(app) ? APP_EXITED : APP_RUNNING;
			goto done;
		}
		app->status = APP_STARTING;
		app_forget_tail(app);
		agent_publish(a);
		if (fill(a, repo, head, app, arch, want) < 0) {
			app_fail(a, app, desired, "%s", ud_error_last());
			goto done;
		}
		app_set_error(app, NULL);
		app->failed_release = 0;
		app->status = summon ? APP_SUMMONABLE :
			all_exited(app) ? APP_EXITED : APP_RUNNING;
		goto done;
	}

	app->status = APP_STARTING;
	app_forget_tail(app);
	agent_publish(a);
	if (prepare(a, repo, head, app, arch, desired, &m, &img) < 0) {
		app_fail(a, app, desired, "%s", ud_error_last());
		goto done;
	}
	addr = listen_addr(p, m);
	if (!addr && summon) {
		app_fail(a, app, desired,
			 "summon mode needs a listen address (placement "
			 "listen or run.port)");
		goto done;
	}

	/* Two instances never write one volume: one per host, and the old
	 * release stops before the new one boots (connections meanwhile
	 * wait in the proxy, see hold_ms). If the new one fails, `done`
	 * boots the old release again. */
	if (m->run.nblock && want > 1) {
		app_fail(a, app, desired,
			 "an app with volumes (run.block) runs one instance "
			 "per host; the placement asks for %zu",
			 want);
		goto done;
	}
	if ((m->run.nblock ||
	     (app->manifest && app->manifest->run.nblock)) &&
	    app->ninst > 0) {
		if (do_listen(a, app, m, addr) < 0) {
			app_fail(a, app, desired, "%s", ud_error_last());
			goto done;
		}
		ud_log_info("%s: stopping release %d before release %d boots "
			    "(volumes)", app->name, app->release, desired);
		while (app->ninst > 0)
			supervise_stop(a, app, app->inst[0]);
		supervise_backends(a, app);
		agent_save(a);
	}

	want = reconcile_boot_count(app, want);
	if (want && boot_n(a, app, m, img->sha256, want, &fresh) < 0) {
		app_fail(a, app, desired, "%s", ud_error_last());
		goto done;
	}
	/* Placement changes may move the address: bind before switching. */
	if (do_listen(a, app, m, addr) < 0) {
		app_fail(a, app, desired, "%s", ud_error_last());
		for (i = 0; i < want; i++)
			supervise_stop(a, app, fresh[i]);
		agent_save(a);
		goto done;
	}
	ud_log_info("%s: switching to release %d (was %d)", app->name,
		    desired, app->release);
	app->release = desired;
	app->failed_release = 0;
	app_set_error(app, NULL);
	ud_manifest_free(app->manifest);
	app->manifest = m;
	m = NULL;
	memcpy(app->image, img->sha256, UD_SHA256_HEX);
	/* Persist before traffic moves: a crash from here on restarts
	 * with the new release serving and the old one stopped. */
	agent_save(a);
	for (i = 0; i < app->ninst; i++)
		app->inst[i]->ready = app->inst[i]->release == desired &&
				      app->inst[i]->pid > 0;
	supervise_backends(a, app);
	app->status = summon ? APP_SUMMONABLE : APP_RUNNING;
	agent_publish(a);
	drain_and_stop(a, app, desired);

done:
	if (reconcile_restore_old(app, desired, want) && !agent_stopping(a)) {
		char *why = app->error ? ud_strdup(app->error) : NULL;

		if (fill(a, repo, head, app, arch, want) < 0)
			ud_log_error("%s: bringing back release %d: %s",
				     app->name, app->release,
				     ud_error_last());
		free(app->error);
		app->error = why;
	}
	app->ms = ud_now_ms() - t0;
	free(fresh);
	free(addr);
	ud_manifest_free(m);
	agent_publish(a);
}

static void retire(struct agent *a, struct app *app)
{
	ud_log_info("%s: no longer placed on this host", app->name);
	if (app->listen)
		proxy_unlisten(a->proxy, app->name);
	while (app->ninst > 0)
		supervise_stop(a, app, app->inst[0]);
	state_app_remove(&a->st, app);
	agent_save(a);
}

static int placed_here(const struct ud_placement *p, const char *host)
{
	size_t i;

	for (i = 0; i < p->hosts.n; i++)
		if (!strcmp(p->hosts.v[i], host))
			return 1;
	return 0;
}

static int image_in_use(struct agent *a, const char *sha)
{
	size_t i, j;

	for (i = 0; i < a->st.napps; i++) {
		const struct app *app = a->st.apps[i];

		if (!strcmp(app->image, sha))
			return 1;
		/* The serving release's initrds: a restart boots them. */
		for (j = 0; app->manifest && j < app->manifest->nimages; j++)
			if (app->manifest->images[j].initrd_file &&
			    !strcmp(app->manifest->images[j].initrd_sha256,
				    sha))
				return 1;
		for (j = 0; j < app->ninst; j++)
			if (!strcmp(app->inst[j]->sha256, sha))
				return 1;
	}
	return 0;
}

/* Images nothing runs or serves any more: the repository still has them,
 * so a rollback only costs an unpack. */
static void collect_images(struct agent *a)
{
	DIR *d = opendir(a->images_dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (!ud_sha256_valid(e->d_name) || image_in_use(a, e->d_name))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0)
			continue;
		ud_log_debug("removed image %s (unused)", e->d_name);
		images_forget(a, e->d_name);
	}
	if (d)
		closedir(d);
}

/*
 * With allowed_signers (SPEC §5): every commit fetched since the last one
 * accepted (state_dir/signed-head; none yet: the whole history) must be
 * signed by a listed key, or the sync goes no further and what runs keeps
 * running. The file is read on every sync, so an edit takes effect on the
 * next one.
 */
static int check_signed(struct agent *a, struct ud_deployrepo *repo,
			const git_oid *head)
{
	struct ud_allowed_signers *allowed = NULL;
	char *path = agent_signed_head_path(a);
	char hex[GIT_OID_HEXSZ + 1];
	git_oid since;
	int have_since, err;

	have_since = agent_trusted_head(a, repo, &since) == 0;
	ud_error_clear();
	if (have_since && git_oid_equal(&since, head)) {
		err = 0;
		goto done;
	}
	if ((err = ud_allowed_signers_load(&allowed,
					   a->conf->allowed_signers)) < 0)
		goto done;
	if ((err = ud_deployrepo_verify_signed(repo, head,
					       have_since ? &since : NULL,
					       allowed, NULL)) < 0) {
		ud_error_prefix("refusing the deployment repository's main "
				"(what runs keeps running)");
		goto done;
	}
	git_oid_tostr(hex, sizeof(hex), head);
	err = ud_write_file_atomic(path, hex, strlen(hex), 0644);
done:
	ud_allowed_signers_free(allowed);
	free(path);
	return err;
}

static json_t *sync_all(struct agent *a, const struct ud_strvec *retry)
{
	struct ud_deployrepo *repo = NULL;
	struct ud_fleet *fleet = NULL;
	const struct ud_fleet_host *host;
	const char *arch;
	json_t *reply = NULL, *apps;
	git_oid head;
	struct ud_ssh_opts ssh;
	size_t i;
	int err;

	/* The agent's own key and known_hosts (agent.json), else the SPEC
	 * §4 defaults of the user it runs as. */
	ud_ssh_opts_from_env(&ssh);
	if (a->conf->ssh_key)
		ssh.identity = a->conf->ssh_key;
	if (a->conf->known_hosts)
		ssh.known_hosts = a->conf->known_hosts;
	/* repo_remote.c's message already names the URL (without a password,
	 * which a->conf->repo may hold): no prefix of ours. */
	if ((err = ud_deployrepo_fetch_ex(&repo, a->mirror_path,
					  a->conf->repo, &ssh)) < 0)
		goto done;
	if ((err = ud_deployrepo_head(repo, &head)) < 0 ||
	    (a->conf->allowed_signers &&
	     (err = check_signed(a, repo, &head)) < 0) ||
	    (err = ud_fleet_load(repo, &head, &fleet)) < 0)
		goto done;
	host = ud_fleet_host(fleet, a->conf->host);
	if (!host)
		ud_log_warn("host '%s' is not in fleet.json", a->conf->host);
	arch = host && host->arch ? host->arch : ud_host_arch();

	for (i = a->st.napps; i-- > 0;) {
		const struct ud_placement *p;

		if (i >= a->st.napps)
			continue;
		p = ud_fleet_placement(fleet, a->st.apps[i]->name);
		if (!p || !placed_here(p, a->conf->host))
			retire(a, a->st.apps[i]);
	}
	for (i = 0; i < fleet->napps && !agent_stopping(a); i++)
		if (placed_here(&fleet->apps[i], a->conf->host))
			sync_app(a, repo, &head, &fleet->apps[i], arch,
				 retry_wanted(retry, fleet->apps[i].app));
	if (!agent_stopping(a))
		collect_images(a);
done:
	agent_publish(a);
	if (err < 0) {
		ud_log_error("sync: %s", ud_error_last());
		reply = json_pack("{s:b, s:s}", "ok", 0, "error",
				  ud_error_last());
	} else {
		apps = agent_snapshot(a, 0);
		reply = json_pack("{s:b, s:s, s:o}", "ok", 1, "host",
				  a->conf->host, "apps", apps);
	}
	ud_fleet_free(fleet);
	ud_deployrepo_free(repo);
	return reply;
}

/* Anything that needs a look every tick: instances to supervise. With
 * none, the thread sleeps until the next poll or a request, so an idle
 * host with any number of summonable apps costs no wake-ups. */
static int anything_running(struct agent *a)
{
	size_t i, j;

	for (i = 0; i < a->st.napps; i++)
		for (j = 0; j < a->st.apps[i]->ninst; j++)
			if (!a->st.apps[i]->inst[j]->exited ||
			    a->st.apps[i]->inst[j]->pid > 0)
				return 1;
	return 0;
}

void *agent_reconcile_main(void *arg)
{
	struct agent *a = arg;
	long long next_poll = 0; /* sync at start */

	/* Held for the thread's life: each repository the sync opens and
	 * frees takes and drops its own reference, and libgit2 torn down to
	 * zero between syncs is set up again on the next one, reading every
	 * CA certificate of the system (most of a sync that fetches nothing). */
	git_libgit2_init();
	supervise_adopt(a);
	for (;;) {
		struct agent_work w;
		long long until = anything_running(a) ? ud_now_ms() + TICK_MS :
							LLONG_MAX;
		size_t i;

		if (agent_wait_work(a, until, next_poll, &w))
			break;
		/* Ready instances first: held connections are waiting. */
		supervise_booted(a);
		if (w.sync) {
			long long t0 = ud_now_ms();
			json_t *reply = sync_all(a, &w.retry);

			ud_log_debug("sync done in %lld ms",
				     ud_now_ms() - t0);
			agent_sync_done(a, w.seq, reply);
			next_poll = a->conf->poll_s > 0 ?
				ud_now_ms() + a->conf->poll_s * 1000LL :
				LLONG_MAX;
		}
		for (i = 0; i < w.demand.n && !agent_stopping(a); i++) {
			struct app *app = state_app(&a->st, w.demand.v[i]);

			if (app)
				supervise_demand(a, app);
		}
		agent_work_free(&w);
		if (!agent_stopping(a))
			supervise_tick(a);
	}
	ud_log_info("stopping every instance");
	supervise_stop_all(a);
	supervise_join_boots(a);
	agent_publish(a);
	git_libgit2_shutdown();
	return NULL;
}
