/*
 * deploy host add NAME (--ssh USER@HOST[:PORT] | --agent unix:PATH)
 *                      [--arch A]
 * Add or change a host of the fleet: one commit to fleet.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "names.h"
#include "release.h"

static const char usage[] =
	"deploy host add NAME (--ssh USER@HOST[:PORT] | --agent unix:PATH) "
	"[--arch A]";

enum { OPT_SSH = 1, OPT_AGENT, OPT_ARCH };

static int set_host(struct ud_fleet *f, void *payload)
{
	return ud_fleet_set_host(f, payload);
}

static int host_add(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "ssh", required_argument, NULL, OPT_SSH },
		{ "agent", required_argument, NULL, OPT_AGENT },
		{ "arch", required_argument, NULL, OPT_ARCH },
		{ 0 }
	};
	struct cli_common c = { 0 };
	struct ud_fleet_host h = { 0 };
	struct ud_deployrepo *r = NULL;
	struct ud_fleet *f = NULL;
	char *message = NULL;
	int opt, err, status;

	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'h':
			printf("usage: %s\n", usage);
			return 0;
		case OPT_SSH:
			h.ssh = optarg;
			break;
		case OPT_AGENT:
			h.agent = optarg;
			break;
		case OPT_ARCH:
			h.arch = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s\n", usage);
			return 2;
		}
	}
	if (argc - optind != 1)
		return cli_usage(usage, "host add: expected one NAME");
	h.name = argv[optind];
	if (!h.ssh == !h.agent)
		return cli_usage(usage,
				 "host add %s: give exactly one of --ssh, --agent",
				 h.name);

	if ((err = ud_name_check_host(h.name)) < 0 ||
	    (h.arch && (err = ud_name_check_arch(h.arch)) < 0))
		return cli_failf(err, "host add %s", h.name);

	if ((err = cli_open_repo(&r, &c)) < 0) {
		status = cli_failf(err, "host add %s", h.name);
		goto done;
	}
	/* Only to word the commit; the edit itself replaces either way. */
	if ((err = ud_fleet_load(r, NULL, &f)) < 0) {
		status = cli_failf(err, "host add %s", h.name);
		goto done;
	}
	message = ud_asprintf("fleet: %s host %s",
			      ud_fleet_host(f, h.name) ? "change" : "add",
			      h.name);
	if ((err = ud_fleet_update(r, set_host, &h, message)) < 0) {
		status = cli_failf(err, "host add %s", h.name);
		goto done;
	}

	if (h.ssh)
		printf("host %s: ssh %s", h.name, h.ssh);
	else
		printf("host %s: agent %s", h.name, h.agent);
	if (h.arch)
		printf(", arch %s", h.arch);
	putchar('\n');
	status = 0;
done:
	free(message);
	ud_fleet_free(f);
	ud_deployrepo_free(r);
	return status;
}

int cmd_host(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "add"))
		return host_add(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: %s\n", usage);
		return 0;
	}
	if (argc < 2)
		return cli_usage(usage, "host: expected a subcommand (add)");
	return cli_usage(usage, "host: unknown subcommand '%s'", argv[1]);
}
