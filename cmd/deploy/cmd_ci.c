/*
 * deploy ci: the pipeline from a CI job (SPEC §6). Detects GitHub Actions,
 * Travis CI or a generic runner, publishes only the deploy branch and never
 * a pull request, and speaks the CI's own log conventions: GitHub's
 * ::group::, ::error:: and step summary, Travis's folds.
 *
 * Secrets come from the environment: DEPLOY_SSH_KEY (key text, kept in
 * this process's memory only), DEPLOY_KNOWN_HOSTS, DEPLOY_REPO. An empty
 * variable counts as unset (a CI secret that was never defined expands to
 * the empty string).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "log.h"

static const char usage[] = "deploy ci [--branch main] [--source DIR]";

static const struct cli_opt_help help[] = {
	{ "--branch B", "the branch that deploys; a job for another ref "
			"publishes nothing (default: main)" },
	{ "--source DIR", "the checked-out app repository (default: .)" },
	{ NULL, NULL }
};

struct ci {
	const char *name;
	const char *commit;
	char *ref;
	int pull_request;
};

/* What the summary reports, gathered from the pipeline's callbacks (which
 * take no payload, hence file scope: a process runs one command). */
#define MAX_STAGES 8
static struct {
	int github;
	struct {
		const char *name;
		long long start, ms;
	} stages[MAX_STAGES];
	size_t nstages;
	struct ud_buf hosts;  /* Markdown rows */
	struct ud_buf errors; /* one line each */
} run = { 0, { { 0 } }, 0, UD_BUF_INIT, UD_BUF_INIT };

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
		/* pull_request and pull_request_target */
		ci->pull_request = v && !strncmp(v, "pull_request", 12);
	} else if ((v = env("TRAVIS")) && !strcmp(v, "true")) {
		ci->name = "travis";
		ci->commit = env("TRAVIS_COMMIT");
		v = env("TRAVIS_BRANCH");
		ci->ref = v ? ud_asprintf("refs/heads/%s", v) : ud_strdup("");
		/* "false", or the pull request's number */
		v = env("TRAVIS_PULL_REQUEST");
		ci->pull_request = v && strcmp(v, "false");
	} else {
		ci->name = "generic";
		ci->commit = env("DEPLOY_COMMIT");
		ci->ref = ud_strdup(env("DEPLOY_REF") ? env("DEPLOY_REF") : "");
	}
}

static void stage_begin(const char *name)
{
	if (run.nstages < MAX_STAGES) {
		run.stages[run.nstages].name = name;
		run.stages[run.nstages].start = ud_now_ms();
		run.stages[run.nstages].ms = -1;
		run.nstages++;
	}
}

static void stage_end(const char *name)
{
	for (size_t i = run.nstages; i-- > 0;)
		if (!strcmp(run.stages[i].name, name) && run.stages[i].ms < 0) {
			run.stages[i].ms = ud_now_ms() - run.stages[i].start;
			break;
		}
}

/* Workflow commands end at a newline and give '%' a meaning: escaped as
 * GitHub's runner expects. */
static void gh_escaped(const char *s)
{
	for (; *s; s++) {
		if (*s == '%')
			fputs("%25", stdout);
		else if (*s == '\r')
			fputs("%0D", stdout);
		else if (*s == '\n')
			fputs("%0A", stdout);
		else
			putchar(*s);
	}
}

static void gh_begin(const char *name)
{
	stage_begin(name);
	printf("::group::%s\n", name);
	fflush(stdout);
}

static void gh_end(const char *name)
{
	stage_end(name);
	printf("::endgroup::\n");
	fflush(stdout);
}

static void gh_error(const char *msg)
{
	ud_buf_printf(&run.errors, "%s\n", msg);
	printf("::error::");
	gh_escaped(msg);
	putchar('\n');
	fflush(stdout);
}

static void travis_begin(const char *name)
{
	stage_begin(name);
	printf("travis_fold:start:deploy-%s\r\n", name);
	fflush(stdout);
}

static void travis_end(const char *name)
{
	stage_end(name);
	printf("travis_fold:end:deploy-%s\r\n", name);
	fflush(stdout);
}

/* A Markdown table cell: one line, no column breaks. */
static void md_cell(struct ud_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			ud_buf_puts(b, "\\|");
		else if (*s == '\n' || *s == '\r')
			ud_buf_putc(b, ' ');
		else
			ud_buf_putc(b, *s);
	}
}

/* Each host's line: a summary row, and on GitHub an annotation naming
 * the host that failed. */
static void on_host(const char *host, const char *line, int failed)
{
	const char *text = line;
	size_t hl = strlen(host);

	if (!strncmp(line, host, hl) && !strncmp(line + hl, ": ", 2))
		text = line + hl + 2;
	ud_buf_puts(&run.hosts, "| ");
	md_cell(&run.hosts, host);
	ud_buf_puts(&run.hosts, failed ? " | :x: " : " | :white_check_mark: ");
	md_cell(&run.hosts, text);
	ud_buf_puts(&run.hosts, " |\n");
	if (failed && run.github)
		gh_error(line);
}

static void write_summary(const struct ud_buf *rows,
			  const struct ud_buf *images, const struct ci *ci,
			  int status)
{
	const char *path = env("GITHUB_STEP_SUMMARY");
	struct ud_buf md = UD_BUF_INIT;
	FILE *f;
	size_t i;

	if (!path)
		return;
	ud_buf_printf(&md, "### unideploy: %s\n\n| | |\n|---|---|\n",
		      status == 0   ? "deployed"
		      : status == 3 ? "published; some hosts failed"
				    : "failed");
	ud_buf_puts(&md, rows->ptr);
	if (!strstr(rows->ptr, "| commit |") && ci->commit)
		ud_buf_printf(&md, "| commit | `%s` |\n", ci->commit);
	ud_buf_printf(&md, "| ref | %s |\n", ci->ref);
	if (images->size)
		ud_buf_printf(&md, "\n#### Images\n\n%s", images->ptr);
	if (run.hosts.size)
		ud_buf_printf(&md, "\n#### Hosts\n\n| host | result |\n"
				   "|---|---|\n%s",
			      run.hosts.ptr);
	if (run.nstages) {
		ud_buf_puts(&md, "\n#### Stages\n\n| stage | time |\n"
				 "|---|---:|\n");
		for (i = 0; i < run.nstages; i++)
			if (run.stages[i].ms >= 0)
				ud_buf_printf(&md, "| %s | %.1f s |\n",
					      run.stages[i].name,
					      (double)run.stages[i].ms /
						      1000.0);
			else
				ud_buf_printf(&md, "| %s | did not finish |\n",
					      run.stages[i].name);
	}
	if (run.errors.size) {
		ud_buf_puts(&md, "\n#### Errors\n\n```\n");
		ud_buf_puts(&md, run.errors.ptr);
		ud_buf_puts(&md, "```\n");
	}
	ud_buf_putc(&md, '\n');
	if (!(f = fopen(path, "a")) || fwrite(md.ptr, 1, md.size, f) != md.size)
		fprintf(stderr, "deploy: ci: cannot write the step summary "
				"%s\n",
			path);
	if (f)
		fclose(f);
	ud_buf_free(&md);
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
	struct ud_buf summary = UD_BUF_INIT, images = UD_BUF_INIT;
	struct ci ci = { 0 };
	const char *branch = "main";
	char *want = NULL;
	int opt, status = 0;

	p.source = ".";
	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'b': branch = optarg; break;
		case 's': p.source = optarg; break;
		case 'h': return cli_help(usage, help);
		default: return cli_usage(usage, "bad option");
		}
	}
	if (optind != argc)
		return cli_usage(usage, "unexpected argument '%s'",
				 argv[optind]);
	/* cli_getopt has taken DEPLOY_SSH_KEY out of the environment: the
	 * key is in our memory alone. */

	detect(&ci);
	if (ci.pull_request) {
		printf("skipped: pull request\n");
		goto done;
	}
	want = ud_asprintf("refs/heads/%s", branch);
	if (strcmp(ci.ref, want)) {
		printf("skipped: %s is not the deploy branch %s (%s)\n",
		       *ci.ref ? ci.ref : "this ref", want, ci.name);
		goto done;
	}
	p.c = &c;
	p.rev = ci.commit ? ci.commit : "HEAD";
	p.ref = ci.ref;
	if (!strcmp(ci.name, "github")) {
		run.github = 1;
		p.stage_begin = gh_begin;
		p.stage_end = gh_end;
		p.annotate_error = gh_error;
		p.summary = &summary;
		p.summary_images = &images;
	} else if (!strcmp(ci.name, "travis")) {
		p.stage_begin = travis_begin;
		p.stage_end = travis_end;
	}
	p.on_host = on_host;
	status = cli_pipeline_run(&p);
	if (p.summary)
		write_summary(&summary, &images, &ci, status);
done:
	ud_buf_free(&summary);
	ud_buf_free(&images);
	ud_buf_free(&run.hosts);
	ud_buf_free(&run.errors);
	free(want);
	free(ci.ref);
	return status;
}
