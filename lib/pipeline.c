/*
 * The publish pipeline and its policy: build -> release -> signal ->
 * judge each host -> (rollback). Everything a person reads goes through
 * the caller's events (pipeline.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "export.h"
#include "fleet.h"
#include "log.h"
#include "pipeline.h"
#include "publish.h"
#include "release.h"

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static int num(json_t *o, const char *key)
{
	return (int)json_integer_value(json_object_get(o, key));
}

static enum ud_verdict_kind judge(const struct ud_host_reply *h, json_t *a,
				  int want)
{
	int serving = num(a, "release"), host_wants = num(a, "desired");

	/* notify.c keeps the reply of an agent that answered "ok": false. */
	if (!h->ok)
		return h->reply ? UD_VERDICT_SYNC_FAILED
				: UD_VERDICT_UNREACHABLE;
	if (!a)
		return UD_VERDICT_UNREACHABLE;
	if (serving == want)
		return UD_VERDICT_OK;
	if (serving > want || host_wants > want)
		return UD_VERDICT_SUPERSEDED;
	if (!strcmp(str(a, "state"), "failed"))
		return UD_VERDICT_FAILED;
	/* Summoned apps run nothing while idle: registered is live. */
	if ((!strcmp(str(a, "state"), "summonable") ||
	     !strcmp(str(a, "state"), "idle")) && host_wants == want)
		return UD_VERDICT_OK;
	return UD_VERDICT_UNREACHABLE;
}

void ud_host_verdict(struct ud_verdict *out, const struct ud_host_reply *h,
		     const char *app, int want)
{
	json_t *a = h->reply ? json_object_get(
				       json_object_get(h->reply, "apps"), app)
			     : NULL;

	memset(out, 0, sizeof(*out));
	out->kind = judge(h, a, want);
	out->entry = a;
	out->serving = num(a, "release");
	out->failed = out->kind == UD_VERDICT_FAILED ||
		      out->kind == UD_VERDICT_SYNC_FAILED ||
		      out->kind == UD_VERDICT_UNREACHABLE;
	switch (out->kind) {
	case UD_VERDICT_OK:
		out->reason = str(a, "state");
		break;
	case UD_VERDICT_SUPERSEDED:
		out->newer = out->serving > want ? out->serving
						 : num(a, "desired");
		out->reason = "a newer release";
		break;
	case UD_VERDICT_FAILED:
		out->reason = json_is_string(json_object_get(a, "error"))
				      ? str(a, "error")
				      : "failed";
		break;
	case UD_VERDICT_SYNC_FAILED:
	case UD_VERDICT_UNREACHABLE:
		out->reason = !h->ok ? (h->error ? h->error : "no answer")
			      : !a   ? "not run there"
				     : str(a, "state");
		break;
	}
}

void ud_verdict_describe(struct ud_buf *line, const struct ud_host_reply *h,
			 const struct ud_verdict *v, const char *app,
			 int want)
{
	json_t *a = v->entry;
	json_t *rel = json_object_get(a, "release");
	long long inst = json_integer_value(json_object_get(a, "instances"));

	ud_buf_printf(line, "%s: ", h->host);
	switch (v->kind) {
	case UD_VERDICT_OK:
		ud_buf_printf(line, "%s v%d %s (%lld instance%s) in %lld ms",
			      app, want, str(a, "state"), inst,
			      inst == 1 ? "" : "s", h->ms);
		break;
	case UD_VERDICT_SUPERSEDED:
		ud_buf_printf(line,
			      "%s v%d superseded by v%d (a newer release)",
			      app, want, v->newer);
		break;
	case UD_VERDICT_FAILED:
		ud_buf_printf(line, "%s v%d failed: %s", app, want, v->reason);
		if (json_is_integer(rel))
			ud_buf_printf(line, " (still serving v%lld)",
				      json_integer_value(rel));
		ud_buf_printf(line, " [%lld ms]", h->ms);
		break;
	case UD_VERDICT_SYNC_FAILED:
		ud_buf_printf(line, "sync failed: %s [%lld ms]", h->error,
			      h->ms);
		break;
	case UD_VERDICT_UNREACHABLE:
		if (!h->ok)
			ud_buf_printf(line, "unreachable: %s [%lld ms]",
				      h->error, h->ms);
		else if (!a)
			ud_buf_printf(line,
				      "does not run %s (its fleet view may "
				      "be stale)",
				      app);
		else
			ud_buf_printf(line, "%s v%d not live: %s%s%s", app,
				      want, str(a, "state"),
				      *str(a, "error") ? ": " : "",
				      str(a, "error"));
		break;
	}
}

void ud_signal_result_add(struct ud_signal_result *res,
			  const struct ud_verdict *v)
{
	if (v->kind == UD_VERDICT_FAILED) {
		res->failed |= UD_HOSTS_FAILED;
		if (!res->serving && v->serving > 0)
			res->serving = v->serving;
	} else if (v->failed) {
		/* Our release was not tried there: no rollback. */
		res->failed |= UD_HOSTS_UNREACHABLE;
	}
}

enum ud_rollback ud_rollback_decide(const struct ud_manifest *m,
				    const struct ud_signal_result *res,
				    int current, int *to)
{
	*to = 0;
	if (!(res->failed & UD_HOSTS_FAILED))
		return UD_ROLLBACK_NOT_FAILED;
	if (current != m->release)
		return UD_ROLLBACK_SUPERSEDED;
	if (!m->health.rollback)
		return UD_ROLLBACK_KEEP;
	if (res->serving <= 0)
		return UD_ROLLBACK_NO_PREVIOUS;
	if (m->rollback_of)
		return UD_ROLLBACK_OF_ROLLBACK;
	*to = res->serving;
	return UD_ROLLBACK;
}

static void say(const struct ud_pipeline_events *ev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "edge1, edge2" for the hosts that failed. */
static char *failed_names(const struct ud_strvec *hosts, const char *failed)
{
	struct ud_buf b = UD_BUF_INIT;

	for (size_t i = 0; i < hosts->n; i++)
		if (failed[i])
			ud_buf_printf(&b, "%s%s", b.size ? ", " : "",
				      hosts->v[i]);
	return ud_buf_detach(&b);
}

int ud_pipeline_signal(struct ud_deployrepo *r, const char *app, int want,
		       int retry, const struct ud_ssh_opts *ssh, int timeout_ms,
		       const struct ud_pipeline_events *ev,
		       struct ud_signal_result *res)
{
	struct ud_fleet *f = NULL;
	const struct ud_placement *p;
	struct ud_host_reply *replies = NULL;
	char *failed = NULL, *names;
	int err;

	memset(res, 0, sizeof(*res));
	if ((err = ud_fleet_load(r, NULL, &f)) < 0)
		return err;
	if (!(p = ud_fleet_placement(f, app)) || p->hosts.n == 0) {
		say(ev, "%s is not placed on any host; nothing to signal", app);
		ud_fleet_free(f);
		return 0;
	}
	res->nhosts = p->hosts.n;
	if (!want && ud_release_current(r, NULL, app, &want) < 0)
		ud_error_clear();
	ud_notify_hosts_ex(&replies, f, &p->hosts,
			   retry ? "sync --retry" : "sync", app, timeout_ms,
			   ssh);
	failed = ud_calloc(p->hosts.n, 1);
	for (size_t i = 0; i < p->hosts.n; i++) {
		struct ud_verdict v;
		struct ud_buf line = UD_BUF_INIT;

		ud_host_verdict(&v, &replies[i], app, want);
		ud_signal_result_add(res, &v);
		failed[i] = v.failed;
		if (ev->host) {
			ud_verdict_describe(&line, &replies[i], &v, app, want);
			ev->host(ev->payload, &replies[i], &v, line.ptr);
		}
		ud_buf_free(&line);
	}
	err = 0;
	if (res->failed) {
		names = failed_names(&p->hosts, failed);
		err = ud_error_set(UD_EPARTIAL,
				   "some hosts did not take the release: %s",
				   names);
		free(names);
	}
	free(failed);
	ud_host_replies_free(replies, p->hosts.n);
	ud_fleet_free(f);
	return err;
}

int ud_pipeline_signal_left(struct ud_deployrepo *r, const char *app,
			    const struct ud_strvec *hosts,
			    const struct ud_ssh_opts *ssh, int timeout_ms,
			    const struct ud_pipeline_events *ev,
			    struct ud_signal_result *res)
{
	struct ud_fleet *f = NULL;
	struct ud_host_reply *replies = NULL;
	char *failed = NULL, *names;
	int err;

	memset(res, 0, sizeof(*res));
	if (!hosts->n)
		return 0;
	if ((err = ud_fleet_load(r, NULL, &f)) < 0)
		return err;
	res->nhosts = hosts->n;
	/* A whole-host sync: asked about `app`, an agent that no longer
	 * runs it would answer that it is not placed there. */
	ud_notify_hosts_ex(&replies, f, hosts, "sync", NULL, timeout_ms, ssh);
	failed = ud_calloc(hosts->n, 1);
	for (size_t i = 0; i < hosts->n; i++) {
		const struct ud_host_reply *h = &replies[i];
		struct ud_verdict v = { 0 };
		struct ud_buf line = UD_BUF_INIT;

		if (!h->ok) {
			v.kind = UD_VERDICT_UNREACHABLE;
			v.failed = 1;
			v.reason = h->error ? h->error : "no answer";
			ud_buf_printf(&line, "%s: unreachable: %s", h->host,
				      v.reason);
		} else if ((v.entry = json_object_get(
				    json_object_get(h->reply, "apps"), app))) {
			/* Still there after a sync of a fleet without it. */
			v.kind = UD_VERDICT_FAILED;
			v.failed = 1;
			v.reason = "still runs it";
			ud_buf_printf(&line, "%s: %s still runs there", h->host,
				      app);
		} else {
			v.kind = UD_VERDICT_OK;
			v.reason = "stopped";
			ud_buf_printf(&line, "%s: %s stopped (no longer placed "
					     "there) in %lld ms",
				      h->host, app, h->ms);
		}
		ud_signal_result_add(res, &v);
		failed[i] = v.failed;
		if (ev->host)
			ev->host(ev->payload, h, &v, line.ptr);
		ud_buf_free(&line);
	}
	err = 0;
	if (res->failed) {
		names = failed_names(hosts, failed);
		err = ud_error_set(UD_EPARTIAL,
				   "some hosts did not stop %s: %s", app,
				   names);
		free(names);
	}
	free(failed);
	ud_host_replies_free(replies, hosts->n);
	ud_fleet_free(f);
	return err;
}

/* The events, each call a no-op when the caller left it out. */
static void say(const struct ud_pipeline_events *ev, const char *fmt, ...)
{
	struct ud_buf b = UD_BUF_INIT;
	va_list ap;

	if (!ev->line)
		return;
	va_start(ap, fmt);
	ud_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	ev->line(ev->payload, b.ptr);
	ud_buf_free(&b);
}

static void begin(const struct ud_pipeline_events *ev, const char *phase)
{
	if (ev->phase_begin)
		ev->phase_begin(ev->payload, phase);
}

static void end(const struct ud_pipeline_events *ev, const char *phase,
		long long start, int ok)
{
	if (ev->phase_end)
		ev->phase_end(ev->payload, phase, ud_now_ms() - start, ok);
}

static int failure(const struct ud_pipeline_events *ev, int err,
		   const char *what)
{
	if (ev->error)
		ev->error(ev->payload, err, what);
	return err;
}

static void on_output(const char *data, size_t len, void *payload)
{
	const struct ud_pipeline_events *ev = payload;

	if (ev->output)
		ev->output(ev->payload, data, len);
}

static void human_size(char *out, size_t n, uint64_t size)
{
	if (size >= 1024 * 1024)
		snprintf(out, n, "%.1f MiB", (double)size / (1024 * 1024));
	else
		snprintf(out, n, "%.1f KiB", (double)size / 1024);
}

/* Signal the hosts of m, and roll back as ud_rollback_decide says. */
static int deploy(struct ud_deployrepo *r, const struct ud_pipeline_opts *o,
		  const struct ud_pipeline_events *ev,
		  const struct ud_manifest *m, const char *what)
{
	struct ud_signal_result res = { 0 };
	struct ud_manifest *rb = NULL;
	int err, current = 0, to;
	long long t;

	begin(ev, "deploy");
	t = ud_now_ms();
	err = ud_pipeline_signal(r, m->app, m->release, 0, o->ssh,
				 o->timeout_ms, ev, &res);
	end(ev, "deploy", t, 1);
	if (err < 0 && err != UD_EPARTIAL)
		return failure(ev, err, "signal hosts");
	if (!res.failed)
		return 0;
	if (ud_release_current(r, NULL, m->app, &current) < 0)
		ud_error_clear();
	switch (ud_rollback_decide(m, &res, current, &to)) {
	case UD_ROLLBACK:
		begin(ev, "rollback");
		t = ud_now_ms();
		say(ev,
		    "%s v%d failed its health check; rolling back to v%d "
		    "(on_failure: rollback)",
		    m->app, m->release, to);
		if ((err = ud_release_rollback(r, m->app, to, &rb)) < 0)
			return failure(ev, err, "rollback");
		say(ev, "released %s v%d, rolling back to v%d", rb->app,
		    rb->release, to);
		ud_pipeline_signal(r, rb->app, rb->release, 0, o->ssh,
				   o->timeout_ms, ev, &res);
		ud_manifest_free(rb);
		end(ev, "rollback", t, 1);
		break;
	case UD_ROLLBACK_SUPERSEDED:
		say(ev, "not rolling back: v%d is current now", current);
		break;
	default:
		break;
	}
	if (ev->hosts_failed)
		ev->hosts_failed(ev->payload, what, m);
	return UD_EPARTIAL;
}

int ud_pipeline_run(struct ud_deployrepo *r, const struct ud_pipeline_opts *o,
		    const struct ud_pipeline_events *ev)
{
	git_repository *src = NULL;
	struct ud_build *b = NULL;
	struct ud_fleet *fleet = NULL;
	struct ud_manifest *m = NULL;
	struct ud_build_opts bo = { 0 };
	const char *secrets[3] = { o->ssh ? o->ssh->key_text : NULL,
				   o->signing_key, NULL };
	long long t;
	int err;
	char what[160];
	git_oid commit;

	if ((err = ud_source_open(&src, o->source)) < 0 ||
	    (err = ud_source_resolve(src, o->rev, &commit)) < 0) {
		failure(ev, err, "source");
		goto done;
	}

	bo.ref = o->ref;
	bo.on_output = on_output;
	bo.payload = (void *)ev;
	bo.secrets = secrets;
	if ((err = ud_build_prepare(&b, src, &commit, &bo)) < 0) {
		failure(ev, err, "nothing was built");
		goto done;
	}
	snprintf(what, sizeof(what), "publish %s", b->cfg->app);
	if ((err = ud_fleet_load(r, NULL, &fleet)) < 0 ||
	    (err = ud_publish_check_placement(fleet, b)) < 0) {
		failure(ev, err, what);
		goto done;
	}
	begin(ev, "build");
	say(ev, "%s: building %.7s (%s) %s", b->cfg->app, b->commit,
	    o->ref && *o->ref ? o->ref : "detached", b->subject);
	say(ev, "build: %s", b->cfg->build_command);
	t = ud_now_ms();
	if ((err = ud_build_run(b, &bo)) < 0) {
		end(ev, "build", t, 0);
		failure(ev, err, "build failed; nothing was published");
		goto done;
	}
	end(ev, "build", t, 1);

	begin(ev, "release");
	t = ud_now_ms();
	for (size_t i = 0; i < b->nimages; i++) {
		char size[32];

		human_size(size, sizeof(size), b->images[i].size);
		say(ev, "image %s/%s: %s, sha256 %s",
		    b->images[i].spec->target, b->images[i].spec->arch, size,
		    b->images[i].sha256);
		if (!b->images[i].initrd)
			continue;
		human_size(size, sizeof(size), b->images[i].initrd_size);
		say(ev, "initrd %s/%s: %s, sha256 %s",
		    b->images[i].spec->target, b->images[i].spec->arch, size,
		    b->images[i].initrd_sha256);
	}
	if ((err = ud_publish_build(r, b, o->compression, &m)) < 0) {
		failure(ev, err, what);
		goto done;
	}
	say(ev, "released %s v%d (%s)", m->app, m->release,
	    ud_compression_name(o->compression));
	end(ev, "release", t, 1);
	if (ev->released)
		ev->released(ev->payload, m);

	if (o->no_signal)
		say(ev, "hosts not signalled (--no-signal); they pick it up "
			"on their next poll");
	else
		err = deploy(r, o, ev, m, what);
done:
	ud_manifest_free(m);
	ud_fleet_free(fleet);
	ud_build_free(b);
	git_repository_free(src);
	return err;
}
