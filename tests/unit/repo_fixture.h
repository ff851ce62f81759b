/*
 * repo_fixture.h: a fresh deployment repository per test (cmocka setup and
 * teardown), and plain git to cross-check what libgit2 wrote. Include after
 * cmocka.h.
 */
#ifndef UD_TEST_REPO_FIXTURE_H
#define UD_TEST_REPO_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "digest.h"
#include "errors.h"
#include "manifest.h"
#include "release.h"
#include "repo.h"
#include "run.h"

#define FIXTURE_IMAGE "unix-x86_64.img"

struct fixture {
	char dir[64];
	char *path; /* an initialized deployment repository */
	struct ud_deployrepo *r;
};

static inline int repo_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ud-repo-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->path = ud_asprintf("%s/deploy.git", f->dir);
	if (ud_deployrepo_init(f->path, NULL) < 0 ||
	    ud_deployrepo_open(&f->r, f->path) < 0) {
		fprintf(stderr, "setup: %s\n", ud_error_last());
		return -1;
	}
	*state = f;
	return 0;
}

static inline int repo_teardown(void **state)
{
	struct fixture *f = *state;

	ud_deployrepo_free(f->r);
	ud_rm_rf(f->dir);
	free(f->path);
	free(f);
	return 0;
}

/* Run plain git on the repository at gitdir; its trimmed output replaces
 * *out. Returns git's exit status. */
static inline int git_cli(const char *gitdir, struct ud_buf *out,
			  const char *a1, const char *a2, const char *a3)
{
	char *dirarg = ud_asprintf("--git-dir=%s", gitdir);
	char *argv[] = { "git", dirarg, (char *)a1, (char *)a2, (char *)a3,
			 NULL };
	struct ud_run_opts opts = { 0 };
	int status = -1;

	ud_buf_clear(out);
	opts.capture = out;
	assert_int_equal(ud_run(argv, &opts, &status), 0);
	ud_buf_rtrim(out);
	free(dirarg);
	return status;
}

/*
 * Publish a release of `app` whose one image holds `content` (and, when
 * `log` is set, a build log naming it); *n is its number. Usable in
 * forked children: no cmocka assertion on the way.
 */
static inline int fixture_publish(struct ud_deployrepo *r, const char *app,
				  const char *content, int log, int *n)
{
	struct ud_manifest *m = ud_manifest_new();
	struct ud_manifest_image img = { 0 };
	struct ud_release_blob file = { FIXTURE_IMAGE, { { 0 } } };
	char *text = ud_asprintf("building %s\n", content);
	git_oid log_id;
	int err;

	m->app = ud_strdup(app);
	memcpy(m->source.commit, "0123456789abcdef0123456789abcdef01234567",
	       41);
	m->source.ref = ud_strdup("refs/heads/main");
	m->source.subject = ud_strdup(content);
	m->source.author = ud_strdup("Ada <ada@example.org>");
	m->build.command = ud_strdup("make");
	m->build.builder = ud_strdup("builder");
	img.target = "unix";
	img.arch = "x86_64";
	img.file = FIXTURE_IMAGE;
	ud_sha256_mem(img.sha256, content, strlen(content));
	img.size = strlen(content);
	img.compression = UD_COMP_NONE;
	ud_manifest_add_image(m, &img);

	if ((err = ud_deployrepo_write_blob(r, content, strlen(content),
					    &file.oid)) < 0 ||
	    (log && (err = ud_deployrepo_write_blob(r, text, strlen(text),
						    &log_id)) < 0) ||
	    (err = ud_release_publish(r, m, &file, 1,
				      log ? &log_id : NULL)) < 0)
		goto done;
	*n = m->release;
done:
	free(text);
	ud_manifest_free(m);
	return err;
}

#endif
