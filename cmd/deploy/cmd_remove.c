/*
 * deploy remove APP [--no-signal]: take an app out of the fleet. One
 * commit removes its placement from fleet.json; its hosts are then
 * signalled, stop its instances and free its listen address. Its
 * releases, their tags and apps/<app>/ stay: `deploy releases APP` still
 * lists them, and `deploy place APP` brings the current one back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "names.h"
#include "pipeline.h"
#include "release.h"

static const char usage[] = "deploy remove APP [--no-signal]";

static const struct cli_opt_help help[] = {
	{ "--no-signal", "commit only; the hosts stop the app at their next "
			 "poll (default: signal them now and wait for them)" },
	{ NULL, NULL }
};

enum { OPT_NO_SIGNAL = 1 };

struct remove_args {
	const char *app;
	struct ud_strvec hosts; /* where it was placed */
};

static int unplace(struct ud_fleet *f, void *payload)
{
	struct remove_args *a = payload;
	const struct ud_placement *p = ud_fleet_placement(f, a->app);

	/* Again from scratch when the commit is retried after a race. */
	ud_strvec_free(&a->hosts);
	ud_strvec_init(&a->hosts);
	for (size_t i = 0; p && i < p->hosts.n; i++)
		ud_strvec_push(&a->hosts, p->hosts.v[i]);
	return ud_fleet_remove_placement(f, a->app);
}

int cmd_remove(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "no-signal", no_argument, NULL, OPT_NO_SIGNAL },
		{ 0 }
	};
	struct cli_common c = { 0 };
	struct remove_args a = { 0 };
	struct ud_deployrepo *r = NULL;
	struct ud_pipeline_events ev = { 0 };
	struct ud_signal_result res;
	char *message = NULL;
	int opt, err = 0, n, no_signal = 0;

	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'h':
			return cli_help(usage, help);
		case OPT_NO_SIGNAL:
			no_signal = 1;
			break;
		default:
			fprintf(stderr, "usage: %s\n", usage);
			return 2;
		}
	}
	if (argc - optind != 1)
		return cli_usage(usage, "remove: expected one APP");
	a.app = argv[optind];
	ud_strvec_init(&a.hosts);
	if ((err = ud_name_check_app(a.app)) < 0 ||
	    (err = cli_open_repo(&r, &c)) < 0)
		goto done;
	message = ud_asprintf("fleet: remove %s", a.app);
	if ((err = ud_fleet_update(r, unplace, &a, message)) < 0)
		goto done;
	printf("%s: removed from ", a.app);
	for (size_t i = 0; i < a.hosts.n; i++)
		printf("%s%s", i ? "," : "", a.hosts.v[i]);
	printf(" (its releases stay: deploy releases %s)\n", a.app);
	fflush(stdout);
	/* Before a release no host runs it: nobody to tell. */
	if (no_signal || ud_release_current(r, NULL, a.app, &n) < 0) {
		ud_error_clear();
		goto done;
	}
	cli_pipeline_events(&ev, NULL);
	err = ud_pipeline_signal_left(r, a.app, &a.hosts, &c.ssh,
				      CLI_SYNC_TIMEOUT_MS, &ev, &res);
done:
	free(message);
	ud_strvec_free(&a.hosts);
	ud_deployrepo_free(r);
	return err < 0 ? cli_failf(err, "remove %s", a.app) : 0;
}
