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
#include "errors.h"
#include "repo.h"
#include "run.h"

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
	if (ud_deployrepo_init(f->path) < 0 ||
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

#endif
