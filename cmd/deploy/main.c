/*
 * deploy: the pipeline and operations CLI (SPEC §4). A thin layer: every
 * subcommand parses its options and calls into libunideploy.
 */
#include <git2.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "version.h"

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "init", cmd_init, "create a bare deployment repository" },
	{ "host", cmd_host, "add, change, list or remove hosts" },
	{ "place", cmd_place, "place an app on hosts" },
	{ "remove", cmd_remove, "unplace an app from every host" },
	{ "hook", cmd_hook, "install or run the post-receive hook" },
	{ "build", cmd_build, "build a commit's images without publishing" },
	{ "publish", cmd_publish, "build, release and signal the hosts" },
	{ "ci", cmd_ci, "publish from a CI job (GitHub Actions, Travis)" },
	{ "releases", cmd_releases, "list an app's releases" },
	{ "rollback", cmd_rollback, "restore an earlier release" },
	{ "status", cmd_status, "desired and running releases per host" },
	{ "signal", cmd_signal, "ask an app's hosts to sync now" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: deploy <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\nEvery command takes --deploy-repo URL (default "
		   "$DEPLOY_REPO, then git config deploy.repo) and --help.\n");
}

int main(int argc, char **argv)
{
	int status;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("deploy (unideploy) %s\n", UD_VERSION);
		return 0;
	}
	/* A host that hangs up must not kill us mid-publish. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		git_libgit2_init();
		status = commands[i].fn(argc - 1, argv + 1);
		git_libgit2_shutdown();
		fflush(stdout);
		return status;
	}
	fprintf(stderr, "deploy: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
