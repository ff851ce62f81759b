/*
 * deploy status [APP] [--json]: per app and host, the desired release (the
 * deployment repository's) beside what the host runs (its agent's answer).
 * Informational: unreachable hosts are reported, not failed on.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"
#include "notify.h"
#include "release.h"

static const char usage[] = "deploy status [APP] [--json]";

/* Long enough for a host that is mid-boot to answer a status request. */
#define STATUS_TIMEOUT_MS (10 * 1000)

#define NCOLS 10
static const char *const header[NCOLS] = {
	"APP", "HOST", "DESIRED", "RUNNING", "STATE", "INSTANCES", "CONNS",
	"WAKES", "COLD p50/p99", "ERROR",
};

/* Text output: the cells of every row, NCOLS per row. */
struct table {
	struct ud_strvec cells;
	int has_error;
};

static void table_row(struct table *t, const char *app, const char *host,
		      int desired, const json_t *release, const char *state,
		      long long instances, const json_t *a, const char *error)
{
	const json_t *cold = json_object_get(a, "cold_start_ms");

	ud_strvec_push(&t->cells, app);
	ud_strvec_push(&t->cells, host);
	if (desired)
		ud_strvec_pushf(&t->cells, "v%d", desired);
	else
		ud_strvec_push(&t->cells, "-");
	if (json_is_integer(release))
		ud_strvec_pushf(&t->cells, "v%lld",
				json_integer_value(release));
	else
		ud_strvec_push(&t->cells, "-");
	ud_strvec_push(&t->cells, state);
	ud_strvec_pushf(&t->cells, "%lld", instances);
	/* The summon figures, from agents that report them. */
	if (json_is_integer(json_object_get(a, "connections")))
		ud_strvec_pushf(&t->cells, "%lld", json_integer_value(
					json_object_get(a, "connections")));
	else
		ud_strvec_push(&t->cells, "-");
	if (json_is_integer(json_object_get(a, "wakes")))
		ud_strvec_pushf(&t->cells, "%lld", json_integer_value(
					json_object_get(a, "wakes")));
	else
		ud_strvec_push(&t->cells, "-");
	if (json_is_object(cold))
		ud_strvec_pushf(&t->cells, "%.1f/%.1f ms",
				json_number_value(json_object_get(cold, "p50")),
				json_number_value(json_object_get(cold, "p99")));
	else
		ud_strvec_push(&t->cells, "-");
	ud_strvec_push(&t->cells, error ? error : "");
	if (error)
		t->has_error = 1;
}

static void print_line(const char *const *cells, const size_t *width,
		       size_t ncols)
{
	struct ud_buf line = UD_BUF_INIT;

	for (size_t col = 0; col < ncols; col++)
		ud_buf_printf(&line, "%-*s  ", (int)width[col], cells[col]);
	/* An empty last cell would leave blanks at the end of the line. */
	ud_buf_rtrim(&line);
	printf("%s\n", line.ptr);
	ud_buf_free(&line);
}

static void table_print(const struct table *t)
{
	size_t width[NCOLS], ncols = t->has_error ? NCOLS : NCOLS - 1;
	size_t i, col;

	for (col = 0; col < NCOLS; col++)
		width[col] = strlen(header[col]);
	for (i = 0; i < t->cells.n; i++) {
		size_t len = strlen(t->cells.v[i]);

		if (len > width[i % NCOLS])
			width[i % NCOLS] = len;
	}
	print_line(header, width, ncols);
	for (i = 0; i < t->cells.n; i += NCOLS)
		print_line((const char *const *)t->cells.v + i, width, ncols);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has(const struct ud_strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (!strcmp(sv->v[i], s))
			return 1;
	return 0;
}

/* The apps to report: the one asked for, else every app that is placed or
 * has releases, sorted. */
static int find_apps(struct ud_strvec *apps, struct ud_deployrepo *r,
		     const struct ud_fleet *f, const char *only)
{
	struct ud_strvec dirs = UD_STRVEC_INIT;
	size_t i;
	int err, current;

	ud_strvec_init(&dirs);
	if (only) {
		if (!ud_fleet_placement(f, only)) {
			err = ud_release_current(r, NULL, only, &current);
			if (err == UD_ENOTFOUND)
				err = ud_error_set(UD_ENOTFOUND,
						   "%s is neither placed in "
						   "fleet.json nor released",
						   only);
			if (err < 0)
				goto done;
		}
		ud_strvec_push(apps, only);
		err = 0;
		goto done;
	}
	for (i = 0; i < f->napps; i++)
		ud_strvec_push(apps, f->apps[i].app);
	if ((err = ud_deployrepo_list(r, NULL, "apps", &dirs)) < 0)
		goto done;
	for (i = 0; i < dirs.n; i++) {
		/* A directory that is no app name was not made by us. */
		if (ud_name_check_app(dirs.v[i]) < 0) {
			ud_error_clear();
			continue;
		}
		if (!has(apps, dirs.v[i]))
			ud_strvec_push(apps, dirs.v[i]);
	}
	qsort(apps->v, apps->n, sizeof(*apps->v), cmp_str);
done:
	ud_strvec_free(&dirs);
	return err;
}

static const struct ud_host_reply *
find_reply(const struct ud_host_reply *replies, size_t n, const char *host)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(replies[i].host, host))
			return &replies[i];
	return NULL;
}

/* One host's view of one app, into the SPEC's JSON and the table. */
static void report_host(json_t *hosts, struct table *t, const char *app,
			int desired, const char *host,
			const struct ud_host_reply *h)
{
	json_t *a = NULL, *release = json_null();
	const char *state = "unreachable", *error = NULL;
	static const char *const extra[] = { "connections", "waiting",
					     "booting", "wakes", "boots",
					     "refused", "cold_start_ms",
					     "error", "log_tail" };
	long long instances = 0;
	json_t *o;
	size_t k;

	if (!h || !h->ok) {
		error = h && h->error ? h->error : "not asked";
	} else {
		a = json_object_get(json_object_get(h->reply, "apps"), app);
		if (!a) {
			/* Its agent has not picked the placement up yet. */
			state = "idle";
			error = "not known to this host yet";
		} else {
			const json_t *rel = json_object_get(a, "release");
			const char *s = json_string_value(
				json_object_get(a, "state"));

			if (json_is_integer(rel))
				release = json_integer(
					json_integer_value(rel));
			state = s ? s : "failed";
			instances = json_integer_value(
				json_object_get(a, "instances"));
			error = json_string_value(json_object_get(a, "error"));
		}
	}
	if (t)
		table_row(t, app, host, desired, release, state, instances,
			  a, error);
	o = json_pack("{s:o, s:s, s:I}", "release", release, "state", state,
		      "instances", (json_int_t)instances);
	/* Beside SPEC §4's keys: the summon figures the agent reports, and
	 * why a release does not serve (with its console's last lines). */
	for (k = 0; k < sizeof(extra) / sizeof(*extra); k++) {
		json_t *v = json_object_get(a, extra[k]);

		if (v)
			json_object_set(o, extra[k], v);
	}
	json_object_set_new(hosts, host, o);
}

int cmd_status(int argc, char **argv)
{
	struct cli_common c = { 0 };
	struct ud_deployrepo *r = NULL;
	struct ud_fleet *f = NULL;
	struct ud_strvec apps = UD_STRVEC_INIT, hosts = UD_STRVEC_INIT;
	struct ud_host_reply *replies = NULL;
	struct table table = { UD_STRVEC_INIT, 0 };
	struct ud_buf out = UD_BUF_INIT;
	json_t *doc = NULL, *jsapps;
	const char *only = NULL;
	char *what = NULL;
	size_t i, j;
	int opt, err, status;

	if ((opt = cli_no_options(argc, argv, usage, &c)) >= 0)
		return opt;
	if (argc - optind > 1)
		return cli_usage(usage, "status: expected at most one APP");
	if (argc - optind == 1)
		only = argv[optind];
	what = only ? ud_asprintf("status %s", only) : ud_strdup("status");
	ud_strvec_init(&apps);
	ud_strvec_init(&hosts);
	ud_strvec_init(&table.cells);

	if ((only && (err = ud_name_check_app(only)) < 0) ||
	    (err = cli_open_repo(&r, &c)) < 0 ||
	    (err = ud_fleet_load(r, NULL, &f)) < 0 ||
	    (err = find_apps(&apps, r, f, only)) < 0)
		goto done;

	/* Each host is asked once, whatever number of apps it serves. */
	for (i = 0; i < apps.n; i++) {
		const struct ud_placement *p = ud_fleet_placement(f, apps.v[i]);

		for (j = 0; p && j < p->hosts.n; j++)
			if (!has(&hosts, p->hosts.v[j]))
				ud_strvec_push(&hosts, p->hosts.v[j]);
	}
	if (hosts.n &&
	    (err = ud_notify_hosts_ex(&replies, f, &hosts, "status", only,
				      STATUS_TIMEOUT_MS, &c.ssh)) < 0)
		goto done;

	doc = json_object();
	jsapps = json_object();
	json_object_set_new(doc, "apps", jsapps);
	for (i = 0; i < apps.n; i++) {
		const char *app = apps.v[i];
		const struct ud_placement *p = ud_fleet_placement(f, app);
		json_t *jshosts = json_object();
		int desired = 0;

		if ((err = ud_release_current(r, NULL, app, &desired)) < 0) {
			if (err != UD_ENOTFOUND)
				goto done;
			ud_error_clear();
			desired = 0;
		}
		json_object_set_new(jsapps, app,
				    json_pack("{s:o, s:o}", "desired",
					      desired ? json_integer(desired)
						      : json_null(),
					      "hosts", jshosts));
		if (!p || !p->hosts.n) {
			if (!c.json)
				table_row(&table, app, "-", desired, NULL,
					  "not placed", 0, NULL, NULL);
			continue;
		}
		for (j = 0; j < p->hosts.n; j++)
			report_host(jshosts, c.json ? NULL : &table, app,
				    desired, p->hosts.v[j],
				    find_reply(replies, hosts.n,
					       p->hosts.v[j]));
	}

	err = 0;
	if (c.json) {
		if ((err = ud_json_format(&out, doc)) == 0)
			fputs(out.ptr, stdout);
	} else if (!apps.n) {
		printf("no app is placed or released yet\n");
	} else {
		table_print(&table);
	}
done:
	status = err < 0 ? cli_fail(err, what) : 0;
	ud_buf_free(&out);
	json_decref(doc);
	ud_strvec_free(&table.cells);
	ud_host_replies_free(replies, hosts.n);
	ud_strvec_free(&hosts);
	ud_strvec_free(&apps);
	ud_fleet_free(f);
	ud_deployrepo_free(r);
	free(what);
	return status;
}
