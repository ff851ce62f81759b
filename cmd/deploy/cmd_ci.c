/*
 * deploy ci: the pipeline from a CI job (SPEC §6). Detects GitHub Actions,
 * Travis CI or a generic runner, publishes only the deploy branch and never
 * a pull request, and speaks the CI's own log conventions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"

static const char usage[] = "deploy ci [--branch main] [--source DIR]";

struct ci {
	const char *name;
	const char *commit;
	char *ref;
	int pull_request;
};

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static void detect(struct ci *ci)
{
	const char *v;

	if ((v = env("GITHUB_ACTIONS")) && !strcmp(v, "true")) {
		ci->name = "github";
		ci->commit = env("GITHUB_SHA");
		ci->ref = ud_strdup(env("GITHUB_REF") ? env("GITHUB_REF") : "");
		v = env("GITHUB_EVENT_NAME");
		ci->pull_request = v && !strncmp(v, "pull_request", 12);
	} else if ((v = env("TRAVIS")) && !strcmp(v, "true")) {
		ci->name = "travis";
		ci->commit = env("TRAVIS_COMMIT");
		v = env("TRAVIS_BRANCH");
		ci->ref = v ? ud_asprintf("refs/heads/%s", v) : ud_strdup("");
		v = env("TRAVIS_PULL_REQUEST");
		ci->pull_request = v && strcmp(v, "false");
	} else {
		ci->name = "generic";
		ci->commit = env("DEPLOY_COMMIT");
		ci->ref = ud_strdup(env("DEPLOY_REF") ? env("DEPLOY_REF") : "");
	}
}

static void gh_begin(const char *name) { printf("::group::%s\n", name); fflush(stdout); }
static void gh_end(const char *name) { (void)name; printf("::endgroup::\n"); fflush(stdout); }
static void gh_error(const char *msg)
{
	/* Workflow commands end at a newline: keep the message on one. */
	printf("::error::");
	for (; *msg; msg++)
		putchar(*msg == '\n' ? ' ' : *msg);
	putchar('\n');
	fflush(stdout);
}
static void travis_begin(const char *name) { printf("travis_fold:start:%s\r\n", name); fflush(stdout); }
static void travis_end(const char *name) { printf("travis_fold:end:%s\r\n", name); fflush(stdout); }

static void write_summary(const struct ud_buf *rows, int status)
{
	const char *path = env("GITHUB_STEP_SUMMARY");
	FILE *f;

	if (!path || !(f = fopen(path, "a")))
		return;
	fprintf(f, "### unideploy: %s\n\n| | |\n|---|---|\n%s\n",
		status == 0 ? "deployed" : status == 3 ? "partially deployed"
						       : "failed",
		rows->ptr);
	fclose(f);
}

int cmd_ci(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "branch", required_argument, NULL, 'b' },
		{ "source", required_argument, NULL, 's' },
		{ 0 },
	};
	struct cli_common c = { 0 };
	struct cli_pipeline p = { 0 };
	struct ud_buf summary = UD_BUF_INIT;
	struct ci ci = { 0 };
	const char *branch = "main";
	char *want = NULL;
	int opt, status;

	p.source = ".";
	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'b': branch = optarg; break;
		case 's': p.source = optarg; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: return cli_usage(usage, "bad option");
		}
	}
	if (optind != argc)
		return cli_usage(usage, "unexpected argument '%s'",
				 argv[optind]);
	detect(&ci);
	if (ci.pull_request) {
		printf("skipped: pull request (%s)\n", ci.name);
		free(ci.ref);
		return 0;
	}
	want = ud_asprintf("refs/heads/%s", branch);
	if (strcmp(ci.ref, want)) {
		printf("skipped: %s is not the deploy branch %s (%s)\n",
		       *ci.ref ? ci.ref : "this ref", want, ci.name);
		free(want);
		free(ci.ref);
		return 0;
	}
	p.c = &c;
	p.rev = ci.commit ? ci.commit : "HEAD";
	p.ref = ci.ref;
	if (!strcmp(ci.name, "github")) {
		p.stage_begin = gh_begin;
		p.stage_end = gh_end;
		p.annotate_error = gh_error;
		p.summary = &summary;
	} else if (!strcmp(ci.name, "travis")) {
		p.stage_begin = travis_begin;
		p.stage_end = travis_end;
	}
	status = cli_pipeline_run(&p);
	if (p.summary)
		write_summary(&summary, status);
	ud_buf_free(&summary);
	free(want);
	free(ci.ref);
	return status;
}
