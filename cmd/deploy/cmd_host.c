/*
 * deploy host add NAME (--ssh USER@HOST[:PORT] | --agent unix:PATH)
 *                      [--arch A]
 *   Add or change a host of the fleet: one commit to fleet.json.
 * deploy host list [--json]
 *   The hosts, how they are reached and the apps placed on each.
 * deploy host remove NAME
 *   Take a host out of fleet.json (one commit); refused while apps are
 *   placed on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"
#include "release.h"

static const char usage[] =
	"deploy host add NAME (--ssh USER@HOST[:PORT] | --agent unix:PATH) "
	"[--arch A]\n"
	"       deploy host list [--json]\n"
	"       deploy host remove NAME";
static const char usage_add[] =
	"deploy host add NAME (--ssh USER@HOST[:PORT] | --agent unix:PATH) "
	"[--arch A]";
static const char usage_list[] = "deploy host list [--json]";
static const char usage_remove[] = "deploy host remove NAME";

static const struct cli_opt_help help_add[] = {
	{ "--ssh USER@HOST[:PORT]",
	  "reach the host's agent over SSH (port default: 22); this or "
	  "--agent is required" },
	{ "--agent unix:PATH",
	  "reach the agent on its local control socket; this or --ssh is "
	  "required" },
	{ "--arch A", "the host's architecture (default: the agent's own)" },
	{ NULL, NULL }
};

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
			return cli_help(usage_add, help_add);
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
			fprintf(stderr, "usage: %s\n", usage_add);
			return 2;
		}
	}
	if (argc - optind != 1)
		return cli_usage(usage_add, "host add: expected one NAME");
	h.name = argv[optind];
	if (!h.ssh == !h.agent)
		return cli_usage(usage_add,
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

/* "ssh USER@HOST" or "agent unix:PATH" */
static char *address(const struct ud_fleet_host *h)
{
	return h->ssh ? ud_asprintf("ssh %s", h->ssh) :
			ud_asprintf("agent %s", h->agent);
}

static int list_json(const struct ud_fleet *f)
{
	json_t *all = json_array();
	struct ud_buf out = UD_BUF_INIT;
	int err;

	for (size_t i = 0; i < f->nhosts; i++) {
		const struct ud_fleet_host *h = &f->hosts[i];
		struct ud_strvec apps = UD_STRVEC_INIT;
		json_t *a = json_array();

		ud_strvec_init(&apps);
		ud_fleet_apps_on(f, h->name, &apps);
		for (size_t j = 0; j < apps.n; j++)
			json_array_append_new(a, json_string(apps.v[j]));
		json_array_append_new(all, json_pack(
			"{s:s, s:s?, s:s?, s:s?, s:o}", "name", h->name,
			"ssh", h->ssh, "agent", h->agent, "arch", h->arch,
			"apps", a));
		ud_strvec_free(&apps);
	}
	if ((err = ud_json_format(&out, all)) == 0)
		fputs(out.ptr, stdout);
	ud_buf_free(&out);
	json_decref(all);
	return err;
}

static void list_text(const struct ud_fleet *f)
{
	if (!f->nhosts) {
		printf("no hosts (add one with deploy host add)\n");
		return;
	}
	printf("%-16s %-40s %-8s %s\n", "HOST", "ADDRESS", "ARCH", "APPS");
	for (size_t i = 0; i < f->nhosts; i++) {
		const struct ud_fleet_host *h = &f->hosts[i];
		struct ud_strvec apps = UD_STRVEC_INIT;
		char *addr = address(h);

		ud_strvec_init(&apps);
		ud_fleet_apps_on(f, h->name, &apps);
		printf("%-16s %-40s %-8s ", h->name, addr,
		       h->arch ? h->arch : "-");
		for (size_t j = 0; j < apps.n; j++)
			printf("%s%s", j ? "," : "", apps.v[j]);
		printf("%s\n", apps.n ? "" : "-");
		ud_strvec_free(&apps);
		free(addr);
	}
}

static int host_list(int argc, char **argv)
{
	struct cli_common c = { 0 };
	struct ud_deployrepo *r = NULL;
	struct ud_fleet *f = NULL;
	int opt, err;

	if ((opt = cli_no_options(argc, argv, usage_list, &c)) >= 0)
		return opt;
	if (optind != argc)
		return cli_usage(usage_list, "host list: unexpected argument "
				 "'%s'", argv[optind]);
	if ((err = cli_open_repo(&r, &c)) < 0 ||
	    (err = ud_fleet_load(r, NULL, &f)) < 0)
		goto done;
	if (c.json)
		err = list_json(f);
	else
		list_text(f);
done:
	ud_fleet_free(f);
	ud_deployrepo_free(r);
	return err < 0 ? cli_fail(err, "host list") : 0;
}

static int remove_host(struct ud_fleet *f, void *payload)
{
	return ud_fleet_remove_host(f, payload);
}

static int host_remove(int argc, char **argv)
{
	struct cli_common c = { 0 };
	struct ud_deployrepo *r = NULL;
	char *message = NULL;
	const char *name;
	int opt, err;

	if ((opt = cli_no_options(argc, argv, usage_remove, &c)) >= 0)
		return opt;
	if (argc - optind != 1)
		return cli_usage(usage_remove, "host remove: expected one NAME");
	name = argv[optind];
	if ((err = ud_name_check_host(name)) < 0 ||
	    (err = cli_open_repo(&r, &c)) < 0)
		goto done;
	message = ud_asprintf("fleet: remove host %s", name);
	if ((err = ud_fleet_update(r, remove_host, (void *)name, message)) < 0)
		goto done;
	printf("host %s removed\n", name);
done:
	free(message);
	ud_deployrepo_free(r);
	return err < 0 ? cli_failf(err, "host remove %s", name) : 0;
}

int cmd_host(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "add"))
		return host_add(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "list"))
		return host_list(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "remove"))
		return host_remove(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: %s\n\nSee deploy host add|list|remove --help "
		       "for each one's options.\n", usage);
		return 0;
	}
	if (argc < 2)
		return cli_usage(usage, "host: expected a subcommand (add, "
				 "list, remove)");
	return cli_usage(usage, "host: unknown subcommand '%s'", argv[1]);
}
