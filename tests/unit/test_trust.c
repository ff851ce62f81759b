/* The ownership rule for opening repositories (lib/trust.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "buf.h"
#include "errors.h"
#include "repo.h"
#include "run.h"
#include "trust.h"

/* Data-driven: owner, group, mode against a process of uid 1000 in
 * groups 1000 and 2000 (and root's own view). */
static void owner_rule(void **state)
{
	static const struct {
		uid_t uid;
		gid_t gid;
		mode_t mode;
		uid_t euid;
		int trusted;
	} cases[] = {
		{ 1000, 1000, 0755, 1000, 1 },  /* ours */
		{ 0, 0, 0755, 1000, 1 },        /* root's */
		{ 1001, 2000, 02775, 1000, 1 }, /* shared with our group */
		{ 1001, 2000, 0775, 1000, 1 },  /* g+w without setgid too */
		{ 1001, 2000, 02755, 1000, 0 }, /* our group, not writable */
		{ 1001, 3000, 02775, 1000, 0 }, /* a group we are not in */
		{ 1001, 1001, 0777, 1000, 0 },  /* o+w is no sharing */
		{ 1001, 3000, 02775, 0, 0 },    /* root is no exception */
		{ 1001, 0, 02775, 0, 1 },       /* ...unless in the group */
	};
	const gid_t groups[] = { 1000, 2000 }, rootg[] = { 0 };
	struct stat st;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&st, 0, sizeof(st));
		st.st_uid = cases[i].uid;
		st.st_gid = cases[i].gid;
		st.st_mode = S_IFDIR | cases[i].mode;
		if (cases[i].euid == 0)
			assert_int_equal(ud_trust_owner(&st, 0, rootg, 1),
					 cases[i].trusted);
		else
			assert_int_equal(ud_trust_owner(&st, cases[i].euid,
							groups, 2),
					 cases[i].trusted);
	}
}

/* A real repository of another user: refused with a message naming the
 * owner, opened once git's safe.directory lists it (or is "*"), and a
 * deployment repository shared with our group opens. Needs root (chown). */
static void foreign_repository(void **state)
{
	char dir[] = "/tmp/ud-trust-XXXXXX";
	char *home, *repo, *gitconfig, *line;
	git_repository *git = NULL;
	struct ud_deployrepo *r = NULL;
	const git_error *e;
	FILE *fp;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(dir));
	home = ud_asprintf("%s/home", dir);
	repo = ud_asprintf("%s/deploy.git", dir);
	gitconfig = ud_asprintf("%s/.gitconfig", home);
	assert_int_equal(mkdir(home, 0700), 0);
	/* libgit2 finds the global config through HOME when it starts */
	setenv("HOME", home, 1);
	git_libgit2_init();
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL,
			 home);
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, dir);
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM,
			 dir);
	assert_int_equal(ud_deployrepo_init(repo, NULL), 0);
	assert_int_equal(chown(repo, 4242, 4242), 0);
	assert_int_equal(chmod(repo, 0755), 0);

	assert_int_equal(ud_git_open(&git, repo, GIT_REPOSITORY_OPEN_NO_SEARCH),
			 GIT_EOWNER);
	assert_null(git);
	e = git_error_last();
	line = ud_asprintf("'%s' belongs to user 4242 and group 4242 (not "
			   "group-writable), and root is neither in that "
			   "group nor has it in git's safe.directory "
			   "(docs/multiuser.md)",
			   repo);
	assert_string_equal(e->message, line);
	free(line);
	/* the deployment repository's open says which one and why */
	assert_int_equal(ud_deployrepo_open(&r, repo), UD_ERROR);
	assert_non_null(strstr(ud_error_last(), "cannot open deployment "
						"repository"));
	assert_non_null(strstr(ud_error_last(), "belongs to user 4242"));

	/* safe.directory, as git writes it; an empty value resets */
	fp = fopen(gitconfig, "w");
	assert_non_null(fp);
	fprintf(fp, "[safe]\n\tdirectory = %s/\n", repo);
	fclose(fp);
	assert_int_equal(ud_git_open(&git, repo, GIT_REPOSITORY_OPEN_NO_SEARCH),
			 0);
	git_repository_free(git);
	git = NULL;
	fp = fopen(gitconfig, "w");
	fprintf(fp, "[safe]\n\tdirectory = *\n\tdirectory =\n");
	fclose(fp);
	assert_int_equal(ud_git_open(&git, repo, GIT_REPOSITORY_OPEN_NO_SEARCH),
			 GIT_EOWNER);
	fp = fopen(gitconfig, "w");
	fprintf(fp, "[safe]\n\tdirectory = *\n");
	fclose(fp);
	assert_int_equal(ud_deployrepo_open(&r, repo), 0);
	ud_deployrepo_free(r);
	r = NULL;
	unlink(gitconfig);

	/* shared with root's group: trusted without safe.directory */
	assert_int_equal(chown(repo, 4242, 0), 0);
	assert_int_equal(chmod(repo, 02775), 0);
	assert_int_equal(ud_deployrepo_open(&r, repo), 0);
	ud_deployrepo_free(r);

	git_libgit2_shutdown();
	assert_int_equal(ud_rm_rf(dir), 0);
	free(home);
	free(repo);
	free(gitconfig);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(owner_rule),
		cmocka_unit_test(foreign_repository),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
