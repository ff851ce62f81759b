/*
 * deploy place APP --hosts H1,H2 [--mode boot|summon] [--listen ADDR]
 *   [--target T] [--instances N] [--idle-stop S] [--max-instances N]
 *   [--concurrency N]
 * Place an app on hosts: one commit to fleet.json. Settings not given keep
 * their value from an existing placement of the app (so scaling is one
 * flag), else the defaults of ud_placement_init().
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "names.h"
#include "num.h"
#include "pipeline.h"
#include "release.h"

static const char usage[] =
	"deploy place APP --hosts H1,H2 [--mode boot|summon] [--listen ADDR] "
	"[--target T] [--instances N] [--idle-stop S] [--max-instances N] "
	"[--concurrency N] [--no-signal]";

/* Defaults are ud_placement_init()'s; a setting not given keeps the value
 * of the app's existing placement. */
static const struct cli_opt_help help[] = {
	{ "--hosts H1,H2", "the hosts to run the app on, replacing its "
			   "current ones (required)" },
	{ "--mode boot|summon", "boot: instances always up; summon: started "
				"by the first request, stopped when idle "
				"(default: boot, or as placed)" },
	{ "--listen ADDR", "HOST:PORT the host serves the app on; refused "
			   "when another app uses it on one of the hosts "
			   "(default: 127.0.0.1:<run.port of deploy.json>, "
			   "or as placed)" },
	{ "--target T", "the image target to run (unix, qemu, firecracker, "
			"spt, hvt, xen); refused when the app's current "
			"release has no image for it (default: unix, or as "
			"placed)" },
	{ "--instances N", "boot mode: instances per host (default: 1, or "
			   "as placed)" },
	{ "--idle-stop S", "summon mode: seconds without a request before "
			   "an instance is stopped (default: 300, or as "
			   "placed)" },
	{ "--max-instances N", "summon mode: most instances per host "
			       "(default: 4, or as placed)" },
	{ "--concurrency N", "summon mode: requests one instance takes at "
			     "once (default: 50, or as placed)" },
	{ "--no-signal", "commit only; hosts apply it at their next poll "
			 "(default: once the app has a release, signal the "
			 "hosts it left, which stop it, and its hosts)" },
	{ NULL, NULL }
};

enum {
	OPT_HOSTS = 1,
	OPT_MODE,
	OPT_LISTEN,
	OPT_TARGET,
	OPT_INSTANCES,
	OPT_IDLE_STOP,
	OPT_MAX_INSTANCES,
	OPT_CONCURRENCY,
	OPT_NO_SIGNAL,
};

/* What the command line asked for (-1 / NULL: not given), and what was
 * committed, for the summary. */
struct place_args {
	const char *app;
	struct ud_strvec hosts;
	int mode;
	const char *listen, *target;
	int instances, idle_stop_s, max_instances, concurrency;
	struct ud_placement done; /* owned copies */
	struct ud_strvec old_hosts; /* where the app was placed before */
	struct ud_deployrepo *r;    /* for the apps' default listen */
};

/* Where an app without "listen" in fleet.json is served: the agent's
 * default, 127.0.0.1:<run.port> of its current release (none without a
 * release or a port). */
static char *default_listen(const struct ud_placement *q, void *payload)
{
	struct place_args *a = payload;
	struct ud_manifest *m = NULL;
	char *addr = NULL;
	int n;

	if (ud_release_current(a->r, NULL, q->app, &n) < 0 ||
	    ud_release_manifest(a->r, NULL, q->app, n, &m) < 0) {
		ud_error_clear();
		return NULL;
	}
	if (m->run.port > 0)
		addr = ud_asprintf("127.0.0.1:%d", m->run.port);
	ud_manifest_free(m);
	return addr;
}

/* A positive decimal int, nothing else. */
static int parse_count(const char *s, int *out)
{
	long long v;

	if (ud_num_parse(s, 1, INT_MAX, &v) < 0)
		return -1;
	*out = (int)v;
	return 0;
}

static void split_hosts(struct ud_strvec *out, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t len = strcspn(p, ",");

		if (len) {
			char *name = ud_strndup(p, len);
			size_t i;

			for (i = 0; i < out->n; i++)
				if (!strcmp(out->v[i], name))
					break;
			if (i == out->n)
				ud_strvec_push(out, name);
			free(name);
		}
		p += len;
		if (*p == ',')
			p++;
	}
}

static void placement_clear(struct ud_placement *p)
{
	free(p->target);
	free(p->listen);
	ud_strvec_free(&p->hosts);
	p->target = p->listen = NULL;
}

/* The edit of fleet.json; runs again when the commit loses a race. */
static int place(struct ud_fleet *f, void *payload)
{
	struct place_args *a = payload;
	const struct ud_placement *old = ud_fleet_placement(f, a->app);
	struct ud_placement p;
	/* Copies, so nothing points into the placement being replaced. */
	char *target = NULL, *listen = NULL;
	size_t i;
	int err;

	ud_placement_init(&p);
	ud_strvec_free(&a->old_hosts);
	ud_strvec_init(&a->old_hosts);
	if (old)
		for (i = 0; i < old->hosts.n; i++)
			ud_strvec_push(&a->old_hosts, old->hosts.v[i]);
	if (old) {
		p.mode = old->mode;
		p.instances = old->instances;
		p.idle_stop_s = old->idle_stop_s;
		p.max_instances = old->max_instances;
		p.concurrency = old->concurrency;
		if (old->target)
			target = ud_strdup(old->target);
		if (old->listen)
			listen = ud_strdup(old->listen);
	}
	if (a->target) {
		free(target);
		target = ud_strdup(a->target);
	}
	if (a->listen) {
		free(listen);
		listen = ud_strdup(a->listen);
	}
	if (target)
		p.target = target;
	if (listen)
		p.listen = listen;
	if (a->mode >= 0)
		p.mode = a->mode;
	if (a->instances > 0)
		p.instances = a->instances;
	if (a->idle_stop_s > 0)
		p.idle_stop_s = a->idle_stop_s;
	if (a->max_instances > 0)
		p.max_instances = a->max_instances;
	if (a->concurrency > 0)
		p.concurrency = a->concurrency;
	p.app = (char *)a->app;
	p.hosts = a->hosts;

	if ((err = ud_fleet_set_placement(f, &p)) < 0 ||
	    (err = ud_fleet_check_listen(f, &p, default_listen, a)) < 0)
		goto done;
	placement_clear(&a->done);
	old = ud_fleet_placement(f, a->app);
	a->done = *old;
	a->done.app = NULL;
	a->done.target = old->target ? ud_strdup(old->target) : NULL;
	a->done.listen = old->listen ? ud_strdup(old->listen) : NULL;
	ud_strvec_init(&a->done.hosts);
	for (i = 0; i < old->hosts.n; i++)
		ud_strvec_push(&a->done.hosts, old->hosts.v[i]);
done:
	free(target);
	free(listen);
	return err;
}

/* Tell the hosts: those the app left stop it, the others run it as placed
 * now. Only for an app with a release: before one, no host runs it. */
static int signal_hosts(struct place_args *a, const struct cli_common *c)
{
	struct ud_pipeline_events ev = { 0 };
	struct ud_signal_result res;
	struct ud_strvec left = UD_STRVEC_INIT;
	int n, err, err2;
	size_t i, j;

	if (ud_release_current(a->r, NULL, a->app, &n) < 0) {
		ud_error_clear();
		return 0;
	}
	ud_strvec_init(&left);
	for (i = 0; i < a->old_hosts.n; i++) {
		for (j = 0; j < a->done.hosts.n; j++)
			if (!strcmp(a->old_hosts.v[i], a->done.hosts.v[j]))
				break;
		if (j == a->done.hosts.n)
			ud_strvec_push(&left, a->old_hosts.v[i]);
	}
	cli_pipeline_events(&ev, NULL);
	err = ud_pipeline_signal_left(a->r, a->app, &left, &c->ssh,
				      CLI_SYNC_TIMEOUT_MS, &ev, &res);
	/* The new placement's hosts whatever the left ones said; the first
	 * error is the one reported. */
	err2 = ud_pipeline_signal(a->r, a->app, 0, 0, &c->ssh,
				  CLI_SYNC_TIMEOUT_MS, &ev, &res);
	if (err == UD_EPARTIAL && err2 < 0 && err2 != UD_EPARTIAL)
		err = err2;
	else if (!err)
		err = err2;
	ud_strvec_free(&left);
	return err;
}

static void print_summary(const char *app, const struct ud_placement *p)
{
	size_t i;

	printf("%s: %s on ", app,
	       p->mode == UD_MODE_SUMMON ? "summon" : "boot");
	for (i = 0; i < p->hosts.n; i++)
		printf("%s%s", i ? "," : "", p->hosts.v[i]);
	printf(", target %s", p->target ? p->target : "unix");
	if (p->listen)
		printf(", listen %s", p->listen);
	if (p->mode == UD_MODE_SUMMON)
		printf(", idle stop %ds, max %d instances, concurrency %d\n",
		       p->idle_stop_s, p->max_instances, p->concurrency);
	else
		printf(", %d instance%s\n", p->instances,
		       p->instances == 1 ? "" : "s");
}

int cmd_place(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "hosts", required_argument, NULL, OPT_HOSTS },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "target", required_argument, NULL, OPT_TARGET },
		{ "instances", required_argument, NULL, OPT_INSTANCES },
		{ "idle-stop", required_argument, NULL, OPT_IDLE_STOP },
		{ "max-instances", required_argument, NULL, OPT_MAX_INSTANCES },
		{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
		{ "no-signal", no_argument, NULL, OPT_NO_SIGNAL },
		{ 0 }
	};
	struct cli_common c = { 0 };
	struct place_args a = { .mode = -1 };
	struct ud_deployrepo *r = NULL;
	char *message = NULL;
	struct ud_buf msg = UD_BUF_INIT;
	const char *hosts = NULL;
	size_t i;
	int opt, err, status, *count, no_signal = 0;

	ud_strvec_init(&a.hosts);
	ud_strvec_init(&a.done.hosts);
	ud_strvec_init(&a.old_hosts);
	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'h':
			status = cli_help(usage, help);
			goto done;
		case OPT_HOSTS:
			hosts = optarg;
			break;
		case OPT_MODE:
			if (!strcmp(optarg, "boot"))
				a.mode = UD_MODE_BOOT;
			else if (!strcmp(optarg, "summon"))
				a.mode = UD_MODE_SUMMON;
			else {
				status = cli_usage(usage,
					"place: --mode must be boot or summon, not '%s'",
					optarg);
				goto done;
			}
			break;
		case OPT_LISTEN:
			a.listen = optarg;
			break;
		case OPT_NO_SIGNAL:
			no_signal = 1;
			break;
		case OPT_TARGET:
			a.target = optarg;
			break;
		case OPT_INSTANCES:
		case OPT_IDLE_STOP:
		case OPT_MAX_INSTANCES:
		case OPT_CONCURRENCY:
			count = opt == OPT_INSTANCES ? &a.instances :
				opt == OPT_IDLE_STOP ? &a.idle_stop_s :
				opt == OPT_MAX_INSTANCES ? &a.max_instances :
				&a.concurrency;
			if (parse_count(optarg, count) < 0) {
				status = cli_usage(usage,
					"place: --%s must be a positive number, not '%s'",
					opt == OPT_INSTANCES ? "instances" :
					opt == OPT_IDLE_STOP ? "idle-stop" :
					opt == OPT_MAX_INSTANCES ? "max-instances" :
					"concurrency", optarg);
				goto done;
			}
			break;
		default:
			fprintf(stderr, "usage: %s\n", usage);
			status = 2;
			goto done;
		}
	}
	if (argc - optind != 1) {
		status = cli_usage(usage, "place: expected one APP");
		goto done;
	}
	a.app = argv[optind];
	if (!hosts) {
		status = cli_usage(usage, "place %s: --hosts is required", a.app);
		goto done;
	}
	split_hosts(&a.hosts, hosts);
	if (!a.hosts.n) {
		status = cli_usage(usage, "place %s: --hosts names no host", a.app);
		goto done;
	}

	if ((err = ud_name_check_app(a.app)) < 0 ||
	    (a.target && (err = ud_name_check_target(a.target)) < 0)) {
		status = cli_failf(err, "place %s", a.app);
		goto done;
	}
	if ((err = cli_open_repo(&r, &c)) < 0) {
		status = cli_failf(err, "place %s", a.app);
		goto done;
	}
	a.r = r;
	if (a.target && (err = ud_release_check_target(r, a.app, a.target)) < 0) {
		status = cli_failf(err, "place %s", a.app);
		goto done;
	}
	ud_buf_printf(&msg, "fleet: place %s on ", a.app);
	for (i = 0; i < a.hosts.n; i++)
		ud_buf_printf(&msg, "%s%s", i ? "," : "", a.hosts.v[i]);
	message = ud_buf_detach(&msg);
	if ((err = ud_fleet_update(r, place, &a, message)) < 0) {
		status = cli_failf(err, "place %s", a.app);
		goto done;
	}
	print_summary(a.app, &a.done);
	fflush(stdout);
	status = 0;
	if (!no_signal && (err = signal_hosts(&a, &c)) < 0)
		status = cli_failf(err, "place %s", a.app);
done:
	free(message);
	placement_clear(&a.done);
	ud_strvec_free(&a.hosts);
	ud_strvec_free(&a.old_hosts);
	ud_deployrepo_free(r);
	return status;
}
