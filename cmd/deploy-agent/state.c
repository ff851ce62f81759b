/*
 * state.c: the agent's own memory, state_dir/state.json.
 *
 * It records what must survive a crash of the agent: per app the release it
 * serves, the release that failed (so polls do not retry it) and every
 * instance it started (pid + start time identify a process across pid
 * reuse). It is rewritten atomically after every change, and an instance is
 * recorded right after it is spawned, so a restarted agent never loses
 * track of a process it started.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "ipam.h"
#include "buf.h"
#include "console.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"

#define STATE_VERSION 1

void state_init(struct agent_state *st)
{
	memset(st, 0, sizeof(*st));
	st->next_id = 1;
}

void placement_free(struct ud_placement *p)
{
	if (!p)
		return;
	free(p->app);
	ud_strvec_free(&p->hosts);
	free(p->target);
	free(p->listen);
	memset(p, 0, sizeof(*p));
}

void placement_copy(struct ud_placement *dst, const struct ud_placement *src)
{
	size_t i;

	placement_free(dst);
	*dst = *src;
	dst->app = src->app ? ud_strdup(src->app) : NULL;
	dst->target = src->target ? ud_strdup(src->target) : NULL;
	dst->listen = src->listen ? ud_strdup(src->listen) : NULL;
	ud_strvec_init(&dst->hosts);
	for (i = 0; i < src->hosts.n; i++)
		ud_strvec_push(&dst->hosts, src->hosts.v[i]);
}

/* A boot thread's job, its copies included. */
void boot_job_free(struct boot_job *j)
{
	if (!j)
		return;
	free(j->app);
	free(j->log);
	free(j->why);
	ud_health_free(&j->health);
	free(j);
}

static void inst_free(struct instance *in)
{
	if (!in)
		return;
	/* Its boot thread, if any, stops waiting; the reconcile thread
	 * frees the job when it comes back. */
	if (in->job)
		atomic_store(&in->job->cancel, 1);
	free(in->log);
	free(in);
}

static void app_free(struct app *app)
{
	size_t i;

	if (!app)
		return;
	for (i = 0; i < app->ninst; i++)
		inst_free(app->inst[i]);
	free(app->inst);
	free(app->name);
	free(app->error);
	ud_strvec_free(&app->log_tail);
	free(app->listen);
	free(app->cold_ms);
	ud_manifest_free(app->manifest);
	placement_free(&app->place);
	free(app);
}

void state_free(struct agent_state *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->napps; i++)
		app_free(st->apps[i]);
	free(st->apps);
	state_init(st);
}

struct app *state_app(struct agent_state *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->napps; i++)
		if (!strcmp(st->apps[i]->name, name))
			return st->apps[i];
	return NULL;
}

struct app *state_app_add(struct agent_state *st, const char *name)
{
	struct app *app = state_app(st, name);

	if (app)
		return app;
	if (st->napps == st->aapps) {
		st->aapps = st->aapps ? st->aapps * 2 : 8;
		st->apps = ud_realloc(st->apps, st->aapps * sizeof(*st->apps));
	}
	app = ud_calloc(1, sizeof(*app));
	app->name = ud_strdup(name);
	ud_strvec_init(&app->log_tail);
	st->apps[st->napps++] = app;
	return app;
}

void state_app_remove(struct agent_state *st, struct app *app)
{
	size_t i;

	for (i = 0; i < st->napps; i++) {
		if (st->apps[i] != app)
			continue;
		memmove(&st->apps[i], &st->apps[i + 1],
			(st->napps - i - 1) * sizeof(*st->apps));
		st->napps--;
		app_free(app);
		return;
	}
}

void app_set_error(struct app *app, const char *fmt, ...)
{
	va_list ap;
	struct ud_buf b = UD_BUF_INIT;

	free(app->error);
	app->error = NULL;
	if (!fmt) {
		ud_strvec_free(&app->log_tail);
		ud_strvec_init(&app->log_tail);
		return;
	}
	va_start(ap, fmt);
	ud_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	app->error = ud_buf_detach(&b);
}

void app_set_log_tail(struct app *app, const char *path)
{
	ud_strvec_free(&app->log_tail);
	ud_strvec_init(&app->log_tail);
	ud_console_tail(&app->log_tail, path, UD_CONSOLE_TAIL_LINES,
			UD_CONSOLE_TAIL_WIDTH);
}

struct instance *app_inst_add(struct app *app, int id)
{
	struct instance *in = ud_calloc(1, sizeof(*in));

	in->id = id;
	in->backoff_ms = 1000;
	if (app->ninst == app->ainst) {
		app->ainst = app->ainst ? app->ainst * 2 : 4;
		app->inst = ud_realloc(app->inst,
				       app->ainst * sizeof(*app->inst));
	}
	app->inst[app->ninst++] = in;
	return in;
}

void app_inst_remove(struct app *app, struct instance *in)
{
	size_t i;

	for (i = 0; i < app->ninst; i++) {
		if (app->inst[i] != in)
			continue;
		memmove(&app->inst[i], &app->inst[i + 1],
			(app->ninst - i - 1) * sizeof(*app->inst));
		app->ninst--;
		inst_free(in);
		return;
	}
}

static json_t *int_or_null(int n)
{
	return n > 0 ? json_integer(n) : json_null();
}

json_t *state_to_json(const struct agent_state *st)
{
	json_t *root = json_object(), *apps = json_object();
	size_t i, j;

	json_object_set_new(root, "version", json_integer(STATE_VERSION));
	json_object_set_new(root, "next_id", json_integer(st->next_id));
	for (i = 0; i < st->napps; i++) {
		const struct app *app = st->apps[i];
		json_t *o = json_object(), *insts = json_array();

		json_object_set_new(o, "release", int_or_null(app->release));
		json_object_set_new(o, "failed_release",
				    int_or_null(app->failed_release));
		json_object_set_new(o, "error", app->error ?
				    json_string(app->error) : json_null());
		if (app->log_tail.n) {
			json_t *lines = json_array();

			for (j = 0; j < app->log_tail.n; j++)
				json_array_append_new(lines, json_string(
					app->log_tail.v[j]));
			json_object_set_new(o, "log_tail", lines);
		}
		json_object_set_new(o, "listen", app->listen ?
				    json_string(app->listen) : json_null());
		for (j = 0; j < app->ninst; j++) {
			const struct instance *in = app->inst[j];

			/* A crashed instance waiting for its restart has no
			 * process to track; it is started afresh if needed.
			 * One that exited for good stays exited. */
			if (in->pid <= 0 && !in->exited)
				continue;
			json_t *io = json_pack(
				"{s:i, s:i, s:s, s:I, s:I, s:i, s:s}",
				"id", in->id, "release", in->release,
				"sha256", in->sha256,
				"pid", (json_int_t)(in->pid > 0 ? in->pid : 0),
				"starttime", (json_int_t)in->starttime,
				"port", in->port, "log", in->log ? in->log : "");

			if (in->exited && in->pid <= 0)
				json_object_set_new(io, "exited", json_true());

			/* Its address on the host network: never given to
			 * another instance while this one lives. */
			if (in->addr) {
				char ip[UD_IP_STRLEN];

				ud_ip_format(ip, in->addr);
				json_object_set_new(io, "address",
						    json_string(ip));
			}
			json_array_append_new(insts, io);
		}
		json_object_set_new(o, "instances", insts);
		json_object_set_new(apps, app->name, o);
	}
	json_object_set_new(root, "apps", apps);
	return root;
}

static int get_opt_int(const json_t *obj, const char *key, const char *name,
		       const char *where, int *out)
{
	json_t *v = json_object_get(obj, key);
	long long n = 0;
	int err;

	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if ((err = ud_json_get_int(obj, key, name, where, 1, 1, 1 << 30,
				   &n)) < 0)
		return err;
	*out = (int)n;
	return 0;
}

static int get_opt_str(const json_t *obj, const char *key, const char *name,
		       const char *where, char **out)
{
	json_t *v = json_object_get(obj, key);
	const char *s = NULL;
	int err;

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if ((err = ud_json_get_str(obj, key, name, where, 1, &s)) < 0)
		return err;
	*out = ud_strdup(s);
	return 0;
}

static int instance_from_json(struct app *app, const json_t *o,
			      const char *name, const char *where)
{
	static const char *const keys[] = { "id", "release", "sha256", "pid",
		"starttime", "port", "log", "address", "exited", NULL };
	long long id, release, pid, starttime, port;
	const char *sha, *log, *addr = NULL;
	const json_t *ex = json_object_get(o, "exited");
	uint32_t ip = 0;
	struct instance *in;
	int err, exited = json_is_true(ex);

	if (!json_is_object(o))
		return ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				    name, where);
	if (ex && !json_is_boolean(ex))
		return ud_error_set(UD_EINVALID, "%s: %s.exited: must be a "
				    "boolean", name, where);
	if ((err = ud_json_check_keys(o, name, where, keys)) < 0 ||
	    (err = ud_json_get_int(o, "id", name, where, 1, 1, 1 << 30,
				   &id)) < 0 ||
	    (err = ud_json_get_int(o, "release", name, where, 1, 1, 1 << 30,
				   &release)) < 0 ||
	    (err = ud_json_get_str(o, "sha256", name, where, 1, &sha)) < 0 ||
	    (err = ud_json_get_int(o, "pid", name, where, 1, exited ? 0 : 1,
				   1 << 30, &pid)) < 0 ||
	    (err = ud_json_get_int(o, "starttime", name, where, 1, 0,
				   (long long)1 << 62, &starttime)) < 0 ||
	    (err = ud_json_get_int(o, "port", name, where, 1, 0, 65535,
				   &port)) < 0 ||
	    (err = ud_json_get_str(o, "log", name, where, 1, &log)) < 0 ||
	    (err = ud_json_get_str(o, "address", name, where, 0, &addr)) < 0)
		return err;
	if (addr && ud_ip_parse(&ip, addr) < 0)
		return ud_error_set(UD_EINVALID,
				    "%s: %s.address: '%s' is not an IPv4 "
				    "address",
				    name, where, addr);
	if (!ud_sha256_valid(sha))
		return ud_error_set(UD_EINVALID,
				    "%s: %s.sha256: must be 64 hex digits",
				    name, where);
	in = app_inst_add(app, (int)id);
	in->release = (int)release;
	memcpy(in->sha256, sha, UD_SHA256_HEX);
	in->pid = (pid_t)pid;
	in->starttime = (unsigned long long)starttime;
	in->port = (int)port;
	in->addr = ip;
	in->log = ud_strdup(log);
	in->exited = exited;
	return 0;
}

static int app_from_json(struct agent_state *st, const char *appname,
			 const json_t *o, const char *name)
{
	static const char *const keys[] = { "release", "failed_release",
		"error", "log_tail", "listen", "instances", NULL };
	char *where = ud_asprintf("apps.%s", appname);
	json_t *insts, *v;
	struct app *app;
	size_t i;
	int err;

	if ((err = ud_name_check_app(appname)) < 0) {
		ud_error_prefix("%s", name);
		goto done;
	}
	if (!json_is_object(o)) {
		err = ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				   name, where);
		goto done;
	}
	if ((err = ud_json_check_keys(o, name, where, keys)) < 0)
		goto done;
	app = state_app_add(st, appname);
	if ((err = get_opt_int(o, "release", name, where, &app->release)) <
		    0 ||
	    (err = get_opt_int(o, "failed_release", name, where,
			       &app->failed_release)) < 0 ||
	    (err = get_opt_str(o, "error", name, where, &app->error)) < 0 ||
	    (err = get_opt_str(o, "listen", name, where, &app->listen)) < 0)
		goto done;
	v = json_object_get(o, "log_tail");
	if (v && !json_is_array(v)) {
		err = ud_error_set(UD_EINVALID,
				   "%s: %s.log_tail: must be an array", name,
				   where);
		goto done;
	}
	json_array_foreach(v, i, insts) {
		if (!json_is_string(insts)) {
			err = ud_error_set(UD_EINVALID,
					   "%s: %s.log_tail[%zu]: must be a "
					   "string", name, where, i);
			goto done;
		}
		ud_strvec_push(&app->log_tail, json_string_value(insts));
	}
	insts = json_object_get(o, "instances");
	if (insts && !json_is_array(insts)) {
		err = ud_error_set(UD_EINVALID,
				   "%s: %s.instances: must be an array", name,
				   where);
		goto done;
	}
	json_array_foreach(insts, i, v) {
		char *w = ud_asprintf("%s.instances[%zu]", where, i);

		err = instance_from_json(app, v, name, w);
		free(w);
		if (err < 0)
			goto done;
	}
done:
	free(where);
	return err;
}

int state_from_json(struct agent_state *st, const json_t *root,
		    const char *name)
{
	static const char *const keys[] = { "version", "next_id", "apps",
		NULL };
	long long version, next_id = 1;
	const char *appname;
	json_t *apps, *v;
	int err;

	if (!json_is_object(root))
		return ud_error_set(UD_EINVALID, "%s: must be a JSON object",
				    name);
	if ((err = ud_json_check_keys(root, name, "", keys)) < 0 ||
	    (err = ud_json_get_int(root, "version", name, "", 1, 1, 1000,
				   &version)) < 0 ||
	    (err = ud_json_get_int(root, "next_id", name, "", 0, 1, 1 << 30,
				   &next_id)) < 0)
		return err;
	if (version != STATE_VERSION)
		return ud_error_set(UD_EINVALID,
				    "%s: version %lld is not supported (this "
				    "agent writes version %d)",
				    name, version, STATE_VERSION);
	st->next_id = (int)next_id;
	apps = json_object_get(root, "apps");
	if (apps && !json_is_object(apps))
		return ud_error_set(UD_EINVALID, "%s: apps: must be an object",
				    name);
	json_object_foreach(apps, appname, v) {
		if ((err = app_from_json(st, appname, v, name)) < 0)
			return err;
	}
	return 0;
}

int state_load(struct agent_state *st, const char *path)
{
	struct ud_buf b = UD_BUF_INIT;
	json_t *root = NULL;
	int err;

	state_free(st);
	if ((err = ud_buf_read_file(&b, path)) < 0) {
		if (err == UD_ENOTFOUND) {
			ud_error_clear();
			err = 0;
		}
		goto done;
	}
	if ((err = ud_json_parse(&root, path, b.ptr, b.size)) < 0)
		goto done;
	if ((err = state_from_json(st, root, path)) < 0) {
		/* A missing key is a corrupt file here, not a missing one. */
		err = UD_EINVALID;
		state_free(st);
	}
done:
	json_decref(root);
	ud_buf_free(&b);
	return err;
}

int state_save(const struct agent_state *st, const char *path)
{
	json_t *root = state_to_json(st);
	struct ud_buf b = UD_BUF_INIT;
	int err;

	if ((err = ud_json_format(&b, root)) < 0)
		goto done;
	err = ud_write_file_atomic(path, b.ptr, b.size, 0600);
done:
	ud_buf_free(&b);
	json_decref(root);
	return err;
}

/* What the agent says about its apps */

static const char *status_name(enum app_status s)
{
	switch (s) {
	case APP_STARTING: return "starting";
	case APP_RUNNING: return "running";
	case APP_SUMMONABLE: return "summonable";
	case APP_FAILED: return "failed";
	case APP_EXITED: return "exited";
	case APP_IDLE: break;
	}
	return "idle";
}

json_t *app_status_json(const struct app *app)
{
	size_t i, running = 0, slots = 0, booting = 0;
	double p50, p99;
	int serving;
	json_t *o;

	for (i = 0; i < app->ninst; i++) {
		if (app->inst[i]->release != app->release)
			continue;
		slots++;
		if (app->inst[i]->pid > 0)
			running++;
	}
	/* A boot-mode release serves only while it has instances (running
	 * or about to be restarted); a summoned one as soon as it is
	 * registered. */
	serving = app->release > 0 &&
		  (slots > 0 || (app->placed &&
				 app->place.mode == UD_MODE_SUMMON));
	o = json_pack("{s:o, s:o, s:s, s:I, s:o, s:I}",
		      "desired", int_or_null(app->desired),
		      "release", int_or_null(serving ? app->release : 0),
		      "state", status_name(app->status),
		      "instances", (json_int_t)running,
		      "error", app->error ? json_string(app->error) :
					   json_null(),
		      "ms", (json_int_t)app->ms);
	/* The end of the failed instance's console: why, in its words. */
	{
		json_t *lines = json_array();

		for (i = 0; i < app->log_tail.n; i++)
			json_array_append_new(lines,
					      json_string(app->log_tail.v[i]));
		json_object_set_new(o, "log_tail", lines);
	}
	/* Beyond SPEC §4's keys: what summoning costs and does. The
	 * control socket adds the live "connections" and "waiting". */
	for (i = 0; i < app->ninst; i++)
		if (app->inst[i]->job)
			booting++;
	json_object_set_new(o, "booting", json_integer((json_int_t)booting));
	json_object_set_new(o, "listen", app->listen ?
			    json_string(app->listen) : json_null());
	json_object_set_new(o, "mode", json_string(
		app->placed && app->place.mode == UD_MODE_SUMMON ? "summon" :
								   "boot"));
	json_object_set_new(o, "wakes", json_integer((json_int_t)app->wakes));
	json_object_set_new(o, "boots", json_integer((json_int_t)app->boots));
	json_object_set_new(o, "refused",
			    json_integer((json_int_t)app->refused));
	if (app->ncold) {
		app_cold_percentiles(app, &p50, &p99);
		json_object_set_new(o, "cold_start_ms",
				    json_pack("{s:f, s:f, s:I}", "p50", p50,
					      "p99", p99, "samples",
					      (json_int_t)app->ncold));
	} else {
		json_object_set_new(o, "cold_start_ms", json_null());
	}
	return o;
}

json_t *state_status_json(const struct agent_state *st)
{
	json_t *apps = json_object();
	size_t i;

	for (i = 0; i < st->napps; i++)
		json_object_set_new(apps, st->apps[i]->name,
				    app_status_json(st->apps[i]));
	return apps;
}

/* Wake latencies */

#define COLD_SAMPLES 4096 /* the latest wakes kept for percentiles */

void app_cold_add(struct app *app, double ms)
{
	if (!app->cold_ms)
		app->cold_ms = ud_calloc(COLD_SAMPLES, sizeof(*app->cold_ms));
	app->cold_ms[app->cold_next] = ms;
	app->cold_next = (app->cold_next + 1) % COLD_SAMPLES;
	if (app->ncold < COLD_SAMPLES)
		app->ncold++;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

void app_cold_percentiles(const struct app *app, double *p50, double *p99)
{
	double *v;
	size_t n = app->ncold;

	*p50 = *p99 = 0;
	if (!n)
		return;
	v = ud_malloc(n * sizeof(*v));
	memcpy(v, app->cold_ms, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_double);
	/* Nearest rank: the smallest sample with p of them at or below. */
	*p50 = v[(n * 50 + 99) / 100 - 1];
	*p99 = v[(n * 99 + 99) / 100 - 1];
	free(v);
}
