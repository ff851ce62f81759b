/* deploy publish: build a commit, release it, signal its hosts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "trust.h"

static const char usage[] =
	"deploy publish [--source REPO] [--commit REV] [--no-signal]";

static const struct cli_opt_help help[] = {
	{ "--source REPO", "the app repository, bare or not (default: the "
			   "repository at or above the current directory)" },
	{ "--commit REV", "the commit to build and publish (default: HEAD)" },
	{ "--no-signal", "publish only; hosts take the release at their next "
			 "poll (default: signal the app's hosts and wait "
			 "for them)" },
	{ NULL, NULL }
};

/* The ref a revision names: "main" -> refs/heads/main, HEAD -> the branch
 * it points at; a bare commit id names no ref (""). */
static char *ref_of(const char *source, const char *rev)
{
	git_repository *repo = NULL;
	git_reference *ref = NULL, *resolved = NULL;
	char *out = ud_strdup("");

	if (ud_git_open(&repo, source, 0) < 0)
		goto done;
	if (git_reference_dwim(&ref, repo, rev) < 0)
		goto done;
	if (git_reference_resolve(&resolved, ref) < 0)
		goto done;
	if (git_reference_is_branch(resolved) || git_reference_is_tag(resolved)) {
		free(out);
		out = ud_strdup(git_reference_name(resolved));
	}
done:
	git_reference_free(resolved);
	git_reference_free(ref);
	git_repository_free(repo);
	git_error_clear();
	return out;
}

int cmd_publish(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "source", required_argument, NULL, 's' },
		{ "commit", required_argument, NULL, 'c' },
		{ "no-signal", no_argument, NULL, 'n' },
		{ 0 },
	};
	struct cli_common c = { 0 };
	struct cli_pipeline p = { 0 };
	char *ref;
	int opt, status;

	p.source = ".";
	p.rev = "HEAD";
	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 's': p.source = optarg; break;
		case 'c': p.rev = optarg; break;
		case 'n': p.no_signal = 1; break;
		case 'h': return cli_help(usage, help);
		default: return cli_usage(usage, "bad option");
		}
	}
	if (optind != argc)
		return cli_usage(usage, "unexpected argument '%s'",
				 argv[optind]);
	p.c = &c;
	p.ref = ref = ref_of(p.source, p.rev);
	status = cli_pipeline_run(&p);
	free(ref);
	return status;
}
