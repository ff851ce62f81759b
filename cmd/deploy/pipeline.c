/*
 * The publish pipeline as a pusher reads it: ud_pipeline_run (lib) does
 * the work, and these events print each stage with its duration in
 * `remote:` lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "log.h"
#include "pipeline.h"
#include "publish.h"

struct printer {
	const struct cli_pipeline *p;
	/* Build output is indented under its stage, a line at a time, as
	 * it arrives. */
	int at_line_start;
	int status; /* of the step that failed */
	/* The first host that did not take the release, as printed. */
	char *failed_host;
};

/* Why the run failed, for the caller's FAILED line. */
static void set_failure(const struct cli_pipeline *p, const char *m)
{
	if (!p->failure || p->failure->size)
		return;
	ud_buf_puts(p->failure, m);
}

static void on_output(void *payload, const char *data, size_t len)
{
	struct printer *pr = payload;

	for (size_t i = 0; i < len; i++) {
		if (pr->at_line_start)
			fputs("       ", stdout);
		putchar(data[i]);
		pr->at_line_start = data[i] == '\n';
	}
	fflush(stdout);
}

static void on_line(void *payload, const char *text)
{
	(void)payload;
	printf("-----> %s\n", text);
}

static void on_phase_begin(void *payload, const char *name)
{
	struct printer *pr = payload;

	if (pr->p->stage_begin)
		pr->p->stage_begin(name);
}

static void on_phase_end(void *payload, const char *name, long long ms,
			 int ok)
{
	struct printer *pr = payload;

	if (!pr->at_line_start) {
		putchar('\n');
		pr->at_line_start = 1;
	}
	if (ok) {
		printf("-----> %s: done in %.1f s\n", name, (double)ms / 1000.0);
		fflush(stdout);
	}
	if (pr->p->stage_end)
		pr->p->stage_end(name);
}

static void annotate(const struct cli_pipeline *p, const char *m)
{
	if (p->annotate_error)
		p->annotate_error(m);
}

static int fail(const struct cli_pipeline *p, int code, const char *what)
{
	char *m = ud_asprintf("%s: %s", what, ud_error_last());

	annotate(p, m);
	set_failure(p, m);
	free(m);
	return cli_fail(code, what);
}

static void on_error(void *payload, int code, const char *what)
{
	struct printer *pr = payload;

	pr->status = fail(pr->p, code, what);
}

static void on_host(void *payload, const struct ud_host_reply *h,
		    const struct ud_verdict *v, const char *line)
{
	struct printer *pr = payload;

	printf("-----> %s\n", line);
	if (v->kind == UD_VERDICT_FAILED || v->kind == UD_VERDICT_UNREACHABLE)
		cli_print_log_tail(v->entry);
	if (pr && v->failed && !pr->failed_host)
		pr->failed_host = ud_strdup(line);
	if (pr && pr->p->on_host)
		pr->p->on_host(h->host, line, v->failed);
}

static void on_hosts_failed(void *payload, const char *what,
			    const struct ud_manifest *m)
{
	struct printer *pr = payload;
	char *msg;

	fprintf(stderr, "deploy: %s: v%d failed on some hosts (see above)\n",
		what, m->release);
	msg = ud_asprintf("%s v%d failed on some hosts", m->app, m->release);
	annotate(pr->p, msg);
	free(msg);
	/* The first host that failed, with its reason: "local: pong v2
	 * failed: health check ... (still serving v1)". */
	msg = ud_asprintf("%s: %s v%d is not live everywhere: %s", what,
			  m->app, m->release,
			  pr->failed_host ? pr->failed_host : "see above");
	set_failure(pr->p, msg);
	free(msg);
}

/* The summary's release rows and table of images. */
static void on_released(void *payload, const struct ud_manifest *m)
{
	const struct cli_pipeline *p = ((struct printer *)payload)->p;

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
}

void cli_pipeline_events(struct ud_pipeline_events *ev, void *printer)
{
	memset(ev, 0, sizeof(*ev));
	ev->payload = printer;
	ev->line = on_line;
	ev->host = on_host;
}

int cli_pipeline_run(const struct cli_pipeline *p)
{
	struct ud_deployrepo *r = NULL;
	struct printer pr = { p, 1, 0, NULL };
	struct ud_pipeline_events ev;
	struct ud_pipeline_opts o = { 0 };
	long long t0 = ud_now_ms();
	int err;
	const char *comp_env = getenv("DEPLOY_COMPRESSION");

	o.compression = UD_DEFAULT_COMPRESSION;
	/* An operator's override of the measured default (README). */
	if (comp_env && *comp_env &&
	    (err = ud_compression_parse(&o.compression, comp_env)) < 0)
		return fail(p, err, "DEPLOY_COMPRESSION");
	if ((err = cli_open_repo(&r, p->c)) < 0) {
		pr.status = fail(p, err, "deployment repository");
		goto done;
	}

	cli_pipeline_events(&ev, &pr);
	ev.phase_begin = on_phase_begin;
	ev.phase_end = on_phase_end;
	ev.output = on_output;
	ev.released = on_released;
	ev.error = on_error;
	ev.hosts_failed = on_hosts_failed;
	o.source = p->source;
	o.rev = p->rev;
	o.ref = p->ref;
	o.no_signal = p->no_signal;
	o.ssh = &p->c->ssh;
	o.signing_key = p->c->signing_key;
	o.timeout_ms = CLI_SYNC_TIMEOUT_MS;
	err = ud_pipeline_run(r, &o, &ev);
	if (err == 0 || err == UD_EPARTIAL) {
		pr.status = err ? 3 : 0;
		printf("-----> done in %.1f s\n",
		       (double)(ud_now_ms() - t0) / 1000.0);
	}
done:
	fflush(stdout);
	free(pr.failed_host);
	ud_deployrepo_free(r);
	return pr.status;
}
