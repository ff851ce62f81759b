/*
 * deploy rollback APP [N]: publish a release that restores N (default: the
 * release numbered before the one that is live, so rollbacks in a row go
 * further back; ud_release_rollback), then signal the app's hosts.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "errors.h"
#include "names.h"
#include "num.h"
#include "release.h"

static const char usage[] = "deploy rollback APP [N] [--no-signal]";

static const struct cli_opt_help help[] = {
	{ "--no-signal", "publish the rollback release only; hosts take it "
			 "at their next poll (default: signal the app's "
			 "hosts and wait for them)" },
	{ NULL, NULL }
};

enum { OPT_NO_SIGNAL = 1 };

int cmd_rollback(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "no-signal", no_argument, NULL, OPT_NO_SIGNAL },
		{ 0 }
	};
	struct cli_common c = { 0 };
	struct ud_deployrepo *r = NULL;
	struct ud_manifest *m = NULL;
	char *what = NULL;
	const char *app;
	int opt, err, status, to = 0, no_signal = 0;

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
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage(usage, "rollback: expected APP [N]");
	app = argv[optind];
	if (argc - optind == 2) {
		const char *s = argv[optind + 1];
		long long v;

		/* "v3" is how releases prints it, so take that too. */
		if (*s == 'v')
			s++;
		if (ud_num_parse(s, 1, INT_MAX, &v) < 0)
			return cli_usage(usage,
					 "rollback %s: N must be a release "
					 "number, not '%s'",
					 app, argv[optind + 1]);
		to = (int)v;
	}
	what = ud_asprintf("rollback %s", app);

	if ((err = ud_name_check_app(app)) < 0 ||
	    (err = cli_open_repo(&r, &c)) < 0 ||
	    (err = ud_release_rollback(r, app, to, &m)) < 0) {
		status = cli_fail(err, what);
		goto done;
	}
	/* With --json, stdout carries only the hosts' answers. */
	fprintf(c.json ? stderr : stdout,
		"%s: published v%d, rolling back to v%d\n", app, m->release,
		m->rollback_of);
	fflush(stdout);

	status = 0;
	if (!no_signal && (err = cli_signal_app(r, app, &c)) < 0) {
		/* The release is in: whatever went wrong with the hosts,
		 * the outcome is partial, not a failure. */
		cli_fail(err, what);
		status = 3;
	}
done:
	ud_manifest_free(m);
	ud_deployrepo_free(r);
	free(what);
	return status;
}
