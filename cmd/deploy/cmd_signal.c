/*
 * deploy signal [APP]: ask hosts to sync now. With APP, its hosts; without,
 * every host that has a placement, each asked once for all its apps.
 * --retry: boot again a release that failed on a host (no sync does
 * otherwise, but for a newer release).
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

static const char usage[] = "deploy signal [APP] [--retry] [--json]";

static const struct cli_opt_help help[] = {
	{ "--retry", "boot again a release that failed on a host (default: "
		     "a failed release stays failed until a newer one)" },
	{ NULL, NULL }
};

enum { OPT_RETRY = 1 };

static int has(const struct ud_strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (!strcmp(sv->v[i], s))
			return 1;
	return 0;
}

/* One line per app placed on the host; 1 when one of them is not at its
 * desired release (or the host did not answer). */
static int print_host(struct ud_deployrepo *r, const struct ud_fleet *f,
		      const struct ud_host_reply *h)
{
	int failed = 0;

	if (!h->ok) {
		printf("-----> %s: unreachable: %s\n", h->host,
		       h->error ? h->error : "no answer");
		return 1;
	}
	for (size_t i = 0; i < f->napps; i++) {
		const struct ud_placement *p = &f->apps[i];
		json_t *a = json_object_get(json_object_get(h->reply, "apps"),
					    p->app);
		json_t *rel = json_object_get(a, "release");
		const char *state = json_string_value(
			json_object_get(a, "state"));
		const char *error = json_string_value(
			json_object_get(a, "error"));
		long long inst = json_integer_value(
			json_object_get(a, "instances"));
		int desired = 0;

		if (!has(&p->hosts, h->host))
			continue;
		if (ud_release_current(r, NULL, p->app, &desired) < 0)
			ud_error_clear(); /* nothing released yet */
		if (!a) {
			printf("-----> %s: does not run %s (its fleet view "
			       "may be stale)\n", h->host, p->app);
			failed = 1;
		} else if ((state && !strcmp(state, "failed")) ||
			   (desired && json_integer_value(rel) != desired &&
			    error)) {
			printf("-----> %s: %s v%d failed: %s\n", h->host,
			       p->app, desired,
			       error ? error : state ? state : "failed");
			cli_print_log_tail(a);
			failed = 1;
		} else if (!json_is_integer(rel)) {
			printf("-----> %s: %s %s\n", h->host, p->app,
			       state ? state : "idle");
		} else {
			printf("-----> %s: %s v%lld %s (%lld instance%s)\n",
			       h->host, p->app, json_integer_value(rel),
			       state ? state : "running", inst,
			       inst == 1 ? "" : "s");
		}
	}
	printf("-----> %s: synced in %lld ms\n", h->host, h->ms);
	return failed;
}

static int print_json(const struct ud_host_reply *replies, size_t n,
		      int *failed)
{
	json_t *all = json_object();
	struct ud_buf out = UD_BUF_INIT;
	int err;

	for (size_t i = 0; i < n; i++) {
		const struct ud_host_reply *h = &replies[i];
		json_t *apps = json_object_get(h->reply, "apps");
		const char *key;
		json_t *a;

		json_object_set_new(all, h->host, json_pack(
			"{s:b, s:s?, s:O?, s:I}", "ok", h->ok,
			"error", h->error, "apps", apps,
			"ms", (json_int_t)h->ms));
		if (!h->ok)
			*failed = 1;
		json_object_foreach(apps, key, a) {
			const char *state = json_string_value(
				json_object_get(a, "state"));

			if (state && !strcmp(state, "failed"))
				*failed = 1;
		}
	}
	if ((err = ud_json_format(&out, all)) == 0)
		fputs(out.ptr, stdout);
	ud_buf_free(&out);
	json_decref(all);
	return err;
}

static int signal_all(struct ud_deployrepo *r, const struct cli_common *c)
{
	struct ud_fleet *f = NULL;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *replies = NULL;
	int json = c->json;
	size_t i, j;
	int err, failed = 0;

	ud_strvec_init(&hosts);
	if ((err = ud_fleet_load(r, NULL, &f)) < 0)
		goto done;
	for (i = 0; i < f->napps; i++)
		for (j = 0; j < f->apps[i].hosts.n; j++)
			if (!has(&hosts, f->apps[i].hosts.v[j]))
				ud_strvec_push(&hosts, f->apps[i].hosts.v[j]);
	if (!hosts.n) {
		if (json)
			printf("{}\n");
		else
			printf("-----> no app is placed on any host; nothing "
			       "to signal\n");
		goto done;
	}
	if ((err = ud_notify_hosts_ex(&replies, f, &hosts,
				      cli_signal_retry ? "sync --retry" :
							 "sync", NULL,
				      CLI_SYNC_TIMEOUT_MS, &c->ssh)) < 0)
		goto done;
	if (json) {
		if ((err = print_json(replies, hosts.n, &failed)) < 0)
			goto done;
	} else {
		for (i = 0; i < hosts.n; i++)
			failed |= print_host(r, f, &replies[i]);
	}
	if (failed)
		err = ud_error_set(UD_EPARTIAL, "some hosts did not sync");
done:
	ud_host_replies_free(replies, hosts.n);
	ud_strvec_free(&hosts);
	ud_fleet_free(f);
	return err;
}

int cmd_signal(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "retry", no_argument, NULL, OPT_RETRY },
		{ 0 }
	};
	struct cli_common c = { 0 };
	struct ud_deployrepo *r = NULL;
	const char *app = NULL;
	char *what = NULL;
	int opt, err, status;

	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'h':
			return cli_help(usage, help);
		case OPT_RETRY:
			cli_signal_retry = 1;
			break;
		default:
			fprintf(stderr, "usage: %s\n", usage);
			return 2;
		}
	}
	if (argc - optind > 1)
		return cli_usage(usage, "signal: expected at most one APP");
	if (argc - optind == 1)
		app = argv[optind];
	what = app ? ud_asprintf("signal %s", app) : ud_strdup("signal");

	if ((app && (err = ud_name_check_app(app)) < 0) ||
	    (err = cli_open_repo(&r, &c)) < 0)
		goto done;
	err = app ? cli_signal_app(r, app, &c) : signal_all(r, &c);
done:
	status = err < 0 ? cli_fail(err, what) : 0;
	ud_deployrepo_free(r);
	free(what);
	return status;
}
