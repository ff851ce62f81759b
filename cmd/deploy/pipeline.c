/*
 * The publish pipeline: build -> release -> signal -> (rollback), printing
 * each stage with its duration the way a pusher reads it in `remote:`
 * lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "cli.h"
#include "errors.h"
#include "log.h"
#include "publish.h"
#include "release.h"
#include "source.h"

/* Build output is indented under its stage, a line at a time, as it
 * arrives. */
struct indenter {
	int at_line_start;
};

static void stream_output(const char *data, size_t len, void *payload)
{
	struct indenter *in = payload;

	for (size_t i = 0; i < len; i++) {
		if (in->at_line_start)
			fputs("       ", stdout);
		putchar(data[i]);
		in->at_line_start = data[i] == '\n';
	}
	fflush(stdout);
}

static void stage(const struct cli_pipeline *p, const char *name)
{
	if (p->stage_begin)
		p->stage_begin(name);
}

static void stage_done(const struct cli_pipeline *p, const char *name,
		       long long start)
{
	printf("-----> %s: done in %.1f s\n", name,
	       (double)(ud_now_ms() - start) / 1000.0);
	fflush(stdout);
	if (p->stage_end)
		p->stage_end(name);
}

static int fail(const struct cli_pipeline *p, int code, const char *what)
{
	if (p->annotate_error) {
		char *m = ud_asprintf("%s: %s", what, ud_error_last());
		p->annotate_error(m);
		free(m);
	}
	return cli_fail(code, what);
}

static void human_size(char *out, size_t n, uint64_t size)
{
	if (size >= 1024 * 1024)
		snprintf(out, n, "%.1f MiB", (double)size / (1024 * 1024));
	else
		snprintf(out, n, "%.1f KiB", (double)size / 1024);
}

int cli_pipeline_run(const struct cli_pipeline *p)
{
	struct ud_deployrepo *r = NULL;
	git_repository *src = NULL;
	struct ud_build *b = NULL;
	struct ud_fleet *fleet = NULL;
	struct ud_manifest *m = NULL;
	struct ud_build_opts bo = { 0 };
	struct indenter in = { 1 };
	long long t0 = ud_now_ms(), t;
	int err, status = 0, current = 0;
	struct cli_signal_result res = { 0 };
	enum ud_compression comp = UD_DEFAULT_COMPRESSION;
	const char *comp_env = getenv("DEPLOY_COMPRESSION");
	char what[160];
	git_oid commit;

	/* An operator's override of the measured default (README). */
	if (comp_env && *comp_env &&
	    (err = ud_compression_parse(&comp, comp_env)) < 0)
		return fail(p, err, "DEPLOY_COMPRESSION");

	if ((err = cli_open_repo(&r, p->c)) < 0) {
		status = fail(p, err, "deployment repository");
		goto done;
	}
	if ((err = ud_source_open(&src, p->source)) < 0 ||
	    (err = ud_source_resolve(src, p->rev, &commit)) < 0) {
		status = fail(p, err, "source");
		goto done;
	}

	bo.ref = p->ref;
	bo.on_output = stream_output;
	bo.payload = &in;
	if ((err = ud_build_prepare(&b, src, &commit, &bo)) < 0) {
		status = fail(p, err, "nothing was built");
		goto done;
	}
	snprintf(what, sizeof(what), "publish %s", b->cfg->app);
	if ((err = ud_fleet_load(r, NULL, &fleet)) < 0 ||
	    (err = ud_publish_check_placement(fleet, b)) < 0) {
		status = fail(p, err, what);
		goto done;
	}
	stage(p, "build");
	printf("-----> %s: building %.7s (%s) %s\n", b->cfg->app, b->commit,
	       p->ref && *p->ref ? p->ref : "detached", b->subject);
	printf("-----> build: %s\n", b->cfg->build_command);
	fflush(stdout);
	t = ud_now_ms();
	if (!in.at_line_start)
		putchar('\n');
	if ((err = ud_build_run(b, &bo)) < 0) {
		if (!in.at_line_start)
			putchar('\n');
		if (p->stage_end)
			p->stage_end("build");
		status = fail(p, err, "build failed; nothing was published");
		goto done;
	}
	if (!in.at_line_start)
		putchar('\n');
	stage_done(p, "build", t);

	stage(p, "release");
	t = ud_now_ms();
	for (size_t i = 0; i < b->nimages; i++) {
		char size[32];

		human_size(size, sizeof(size), b->images[i].size);
		printf("-----> image %s/%s: %s, sha256 %s\n",
		       b->images[i].spec->target, b->images[i].spec->arch, size,
		       b->images[i].sha256);
		if (!b->images[i].initrd)
			continue;
		human_size(size, sizeof(size), b->images[i].initrd_size);
		printf("-----> initrd %s/%s: %s, sha256 %s\n",
		       b->images[i].spec->target, b->images[i].spec->arch, size,
		       b->images[i].initrd_sha256);
	}
	if ((err = ud_publish_build(r, b, comp, &m)) < 0) {
		status = fail(p, err, what);
		goto done;
	}
	printf("-----> released %s v%d (%s)\n", m->app, m->release,
	       ud_compression_name(comp));
	stage_done(p, "release", t);
	if (p->summary)
		ud_buf_printf(p->summary,
			      "| release | %s v%d |\n| commit | `%s` |\n",
			      m->app, m->release, m->source.commit);
	if (p->summary_images) {
		ud_buf_puts(p->summary_images,
			    "| file | target | size | sha256 |\n"
			    "|---|---|---:|---|\n");
		for (size_t i = 0; i < m->nimages; i++)
			ud_buf_printf(p->summary_images,
				      "| %s | %s/%s | %llu bytes | `%s` |\n",
				      m->images[i].file, m->images[i].target,
				      m->images[i].arch,
				      (unsigned long long)m->images[i].size,
				      m->images[i].sha256);
		for (size_t i = 0; i < m->nimages; i++)
			if (m->images[i].initrd_file)
				ud_buf_printf(
					p->summary_images,
					"| %s | %s/%s initrd | %llu bytes | "
					"`%s` |\n",
					m->images[i].initrd_file,
					m->images[i].target, m->images[i].arch,
					(unsigned long long)
						m->images[i].initrd_size,
					m->images[i].initrd_sha256);
	}

	if (p->no_signal) {
		printf("-----> hosts not signalled (--no-signal); they pick "
		       "it up on their next poll\n");
		goto finish;
	}
	stage(p, "deploy");
	t = ud_now_ms();
	err = cli_signal_app_ex(r, m->app, m->release, 0, &p->c->ssh, &res);
	stage_done(p, "deploy", t);
	if (err < 0 && err != UD_EPARTIAL) {
		status = fail(p, err, "signal hosts");
		goto done;
	}
	if (res.failed) {
		status = 3;
		if (ud_release_current(r, NULL, m->app, &current) < 0)
			ud_error_clear();
		/* Restore what the failing hosts still serve, and only while
		 * our release is the current one: a newer publish must never
		 * be undone by an older one's rollback. */
		if ((res.failed & CLI_HOST_FAILED) && m->health.rollback &&
		    res.serving > 0 && current == m->release) {
			struct ud_manifest *rb = NULL;
			struct cli_signal_result again;

			stage(p, "rollback");
			t = ud_now_ms();
			printf("-----> %s v%d failed its health check; rolling "
			       "back to v%d (on_failure: rollback)\n",
			       m->app, m->release, res.serving);
			if ((err = ud_release_rollback(r, m->app, res.serving,
						       &rb)) < 0) {
				status = fail(p, err, "rollback");
				goto done;
			}
			printf("-----> released %s v%d, rolling back to v%d\n",
			       rb->app, rb->release, res.serving);
			cli_signal_app_ex(r, rb->app, rb->release, 0, &p->c->ssh,
					  &again);
			ud_manifest_free(rb);
			stage_done(p, "rollback", t);
		} else if ((res.failed & CLI_HOST_FAILED) &&
			   current != m->release) {
			printf("-----> not rolling back: v%d is current now\n",
			       current);
		}
		fprintf(stderr,
			"deploy: %s: v%d failed on some hosts (see above)\n",
			what, m->release);
		if (p->annotate_error) {
			char *msg = ud_asprintf("%s v%d failed on some hosts",
						m->app, m->release);
			p->annotate_error(msg);
			free(msg);
		}
	}
finish:
	printf("-----> done in %.1f s\n", (double)(ud_now_ms() - t0) / 1000.0);
done:
	fflush(stdout);
	ud_manifest_free(m);
	ud_fleet_free(fleet);
	ud_build_free(b);
	git_repository_free(src);
	ud_deployrepo_free(r);
	return status;
}
