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
#include "fleet.h"
#include "repo.h"
#include "repo_fixture.h"
#include "run.h"

static void test_init_layout(void **state)
{
	struct fixture *f = *state;
	struct ud_buf b = UD_BUF_INIT;
	struct ud_fleet *fleet = NULL;
	git_oid head;

	assert_true(git_repository_is_bare(ud_deployrepo_git(f->r)));
	assert_int_equal(ud_deployrepo_head(f->r, &head), 0);
	assert_int_equal(ud_deployrepo_read(f->r, NULL, "fleet.json", &b), 0);
	assert_int_equal(ud_fleet_parse(&fleet, "fleet.json", b.ptr, b.size),
			 0);
	assert_int_equal(fleet->nhosts, 0);
	assert_int_equal(fleet->napps, 0);
	ud_fleet_free(fleet);

	/* plain git reads it */
	ud_buf_clear(&b);
	assert_int_equal(git_cli(f->path, &b, "log", "--format=%s", NULL), 0);
	assert_string_equal(b.ptr, "Create deployment repository");
	ud_buf_clear(&b);
	assert_int_equal(git_cli(f->path, &b, "symbolic-ref", "HEAD", NULL), 0);
	assert_string_equal(b.ptr, "refs/heads/main");
	ud_buf_clear(&b);
	assert_int_equal(git_cli(f->path, &b, "show", "main:fleet.json", NULL),
			 0);
	assert_non_null(strstr(b.ptr, "\"hosts\""));

	assert_int_equal(ud_deployrepo_init(f->path, NULL), UD_EEXISTS);
	ud_buf_free(&b);
}

/* core.sharedRepository, as git reads it, says which umask bits a writer
 * must leave open for the group. */
static void test_shared_bits(void **state)
{
	static const struct {
		const char *value;
		unsigned int bits;
	} cases[] = {
		{ NULL, 0 },        { "group", 0070 }, { "true", 0070 },
		{ "1", 0070 },      { "all", 0075 },   { "world", 0075 },
		{ "everybody", 0075 }, { "2", 0075 },  { "umask", 0 },
		{ "false", 0 },     { "0660", 0070 },  { "0664", 0075 },
		{ "0640", 0 },      { "0600", 0 },     { "08", 0 },
	};
	struct fixture *f = *state;
	struct ud_deployrepo *r;
	struct ud_buf b = UD_BUF_INIT;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ud_buf_clear(&b);
		if (cases[i].value)
			assert_int_equal(git_cli(f->path, &b, "config",
						 "core.sharedRepository",
						 cases[i].value),
					 0);
		assert_int_equal(ud_deployrepo_open(&r, f->path), 0);
		assert_int_equal(ud_deployrepo_shared_bits(r), cases[i].bits);
		ud_deployrepo_free(r);
	}
	ud_buf_free(&b);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct ud_deployrepo *r = NULL;
	char *missing = ud_asprintf("%s/nope.git", f->dir);
	char *url = ud_asprintf("file://%s", f->path);
	git_oid a, b;

	assert_int_equal(ud_deployrepo_open(&r, missing), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), missing));
	assert_null(r);
	assert_int_equal(ud_deployrepo_open(&r, "ssh://git@example/x.git"),
			 UD_EINVALID);
	assert_int_equal(ud_deployrepo_open(&r, "git@example:x.git"),
			 UD_EINVALID);
	assert_int_equal(ud_deployrepo_open(&r, url), 0);
	assert_int_equal(ud_deployrepo_head(r, &a), 0);
	assert_int_equal(ud_deployrepo_head(f->r, &b), 0);
	assert_true(git_oid_equal(&a, &b));
	ud_deployrepo_free(r);
	free(url);
	free(missing);
}

static void test_txn_read_list(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec names = UD_STRVEC_INIT;
	struct ud_buf b = UD_BUF_INIT;
	struct ud_txn *t = NULL;
	git_oid first, c, blob, id;
	git_reference *ref = NULL;
	git_tag *tag = NULL;

	assert_int_equal(ud_deployrepo_head(f->r, &first), 0);
	assert_int_equal(ud_txn_begin(&t, f->r), 0);
	assert_true(git_oid_equal(ud_txn_base(t), &first));
	assert_int_equal(ud_deployrepo_write_blob(f->r, "B", 1, &blob), 0);
	assert_int_equal(ud_txn_put(t, "a/x/one", "1\n", 2), 0);
	assert_int_equal(ud_txn_put(t, "a/two", "first", 5), 0);
	assert_int_equal(ud_txn_put(t, "a/two", "2\n", 2), 0); /* last wins */
	assert_int_equal(ud_txn_put_blob(t, "a/b", &blob), 0);
	assert_int_equal(ud_txn_put(t, "/abs", "x", 1), UD_EINVALID);
	assert_int_equal(ud_txn_tag(t, "a/v1", "a one"), 0);
	assert_int_equal(ud_txn_tag(t, "bad..tag", "no"), UD_EINVALID);
	assert_int_equal(ud_txn_commit(t, "add a", &c), 0);
	ud_txn_free(t);

	assert_int_equal(ud_deployrepo_head(f->r, &id), 0);
	assert_true(git_oid_equal(&id, &c));
	assert_int_equal(ud_deployrepo_read(f->r, NULL, "a/two", &b), 0);
	assert_string_equal(b.ptr, "2\n");
	ud_buf_clear(&b);
	assert_int_equal(ud_deployrepo_read(f->r, &c, "a/x/one", &b), 0);
	assert_string_equal(b.ptr, "1\n");
	/* the old snapshot does not have it; the new one still has fleet */
	assert_int_equal(ud_deployrepo_read(f->r, &first, "a/x/one", &b),
			 UD_ENOTFOUND);
	assert_int_equal(ud_deployrepo_blob_id(f->r, &c, "fleet.json", &id),
			 0);
	assert_int_equal(ud_deployrepo_blob_id(f->r, NULL, "a/b", &id), 0);
	assert_true(git_oid_equal(&id, &blob));
	assert_int_equal(ud_deployrepo_blob_id(f->r, NULL, "a/x", &id),
			 UD_ENOTFOUND);

	assert_int_equal(ud_deployrepo_list(f->r, NULL, "a", &names), 0);
	assert_int_equal(names.n, 3);
	assert_string_equal(names.v[0], "b");
	assert_string_equal(names.v[1], "two");
	assert_string_equal(names.v[2], "x");
	ud_strvec_free(&names);
	assert_int_equal(ud_deployrepo_list(f->r, NULL, "nope/deeper", &names),
			 0);
	assert_int_equal(names.n, 0);
	ud_strvec_free(&names);
	assert_int_equal(ud_deployrepo_list(f->r, &first, "", &names), 0);
	assert_int_equal(names.n, 1);
	assert_string_equal(names.v[0], "fleet.json");
	ud_strvec_free(&names);

	/* an annotated tag on the new commit */
	assert_int_equal(git_reference_lookup(&ref, ud_deployrepo_git(f->r),
					      "refs/tags/a/v1"),
			 0);
	assert_int_equal(git_tag_lookup(&tag, ud_deployrepo_git(f->r),
					git_reference_target(ref)),
			 0);
	assert_true(git_oid_equal(git_tag_target_id(tag), &c));
	assert_string_equal(git_tag_message(tag), "a one");
	git_tag_free(tag);
	git_reference_free(ref);

	ud_buf_clear(&b);
	assert_int_equal(git_cli(f->path, &b, "fsck", "--strict", NULL), 0);
	ud_buf_clear(&b);
	assert_int_equal(git_cli(f->path, &b, "log", "--format=%s", "-1"), 0);
	assert_string_equal(b.ptr, "add a");
	ud_buf_free(&b);
}

static void test_txn_conflict(void **state)
{
	struct fixture *f = *state;
	struct ud_txn *t1 = NULL, *t2 = NULL;
	git_reference *ref = NULL;
	git_oid c1, head;

	assert_int_equal(ud_txn_begin(&t1, f->r), 0);
	assert_int_equal(ud_txn_begin(&t2, f->r), 0);
	assert_int_equal(ud_txn_put(t1, "one", "1", 1), 0);
	assert_int_equal(ud_txn_put(t2, "two", "2", 1), 0);
	assert_int_equal(ud_txn_tag(t2, "loser", "never"), 0);
	assert_int_equal(ud_txn_commit(t1, "one", &c1), 0);
	assert_int_equal(ud_txn_commit(t2, "two", NULL), UD_ECONFLICT);
	ud_txn_free(t1);
	ud_txn_free(t2);

	assert_int_equal(ud_deployrepo_head(f->r, &head), 0);
	assert_true(git_oid_equal(&head, &c1));
	assert_int_equal(git_reference_lookup(&ref, ud_deployrepo_git(f->r),
					      "refs/tags/loser"),
			 GIT_ENOTFOUND);
}

/* A racing process holding main's lock is a conflict too, not a failure. */
static void test_txn_locked(void **state)
{
	struct fixture *f = *state;
	char *lock = ud_asprintf("%s/refs/heads/main.lock", f->path);
	struct ud_txn *t = NULL;
	git_oid before, after;

	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_write_file_atomic(lock, "", 0, 0644), 0);
	assert_int_equal(ud_txn_begin(&t, f->r), 0);
	assert_int_equal(ud_txn_put(t, "x", "x", 1), 0);
	assert_int_equal(ud_txn_commit(t, "x", NULL), UD_ECONFLICT);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
	ud_txn_free(t);

	assert_int_equal(unlink(lock), 0);
	assert_int_equal(ud_txn_begin(&t, f->r), 0);
	assert_int_equal(ud_txn_put(t, "x", "x", 1), 0);
	assert_int_equal(ud_txn_commit(t, "x", &after), 0);
	assert_false(git_oid_equal(&before, &after));
	ud_txn_free(t);
	free(lock);
}

static void commit_one(struct ud_deployrepo *r, const char *path,
		       const char *tag, git_oid *out)
{
	struct ud_txn *t = NULL;

	assert_int_equal(ud_txn_begin(&t, r), 0);
	assert_int_equal(ud_txn_put(t, path, path, strlen(path)), 0);
	assert_int_equal(ud_txn_tag(t, tag, tag), 0);
	assert_int_equal(ud_txn_commit(t, path, out), 0);
	ud_txn_free(t);
}

static void test_fetch(void **state)
{
	struct fixture *f = *state;
	char *mirror = ud_asprintf("%s/mirror.git", f->dir);
	char *mirror2 = ud_asprintf("%s/mirror2.git", f->dir);
	char *url = ud_asprintf("file://%s", f->path);
	char *missing = ud_asprintf("%s/missing.git", f->dir);
	struct ud_deployrepo *m = NULL;
	struct ud_buf b = UD_BUF_INIT;
	git_oid c1, c2, head;
	git_reference *ref = NULL;

	commit_one(f->r, "first", "t/v1", &c1);
	if (ud_deployrepo_fetch(&m, mirror, f->path) < 0)
		fail_msg("%s", ud_error_last());
	assert_true(git_repository_is_bare(ud_deployrepo_git(m)));
	assert_int_equal(ud_deployrepo_head(m, &head), 0);
	assert_true(git_oid_equal(&head, &c1));
	assert_int_equal(ud_deployrepo_read(m, NULL, "first", &b), 0);
	assert_string_equal(b.ptr, "first");
	ud_deployrepo_free(m);

	/* again, into the existing mirror, after a new commit */
	commit_one(f->r, "second", "t/v2", &c2);
	assert_int_equal(ud_deployrepo_fetch(&m, mirror, f->path), 0);
	assert_int_equal(ud_deployrepo_head(m, &head), 0);
	assert_true(git_oid_equal(&head, &c2));
	assert_int_equal(git_reference_lookup(&ref, ud_deployrepo_git(m),
					      "refs/tags/t/v2"),
			 0);
	git_reference_free(ref);
	assert_int_equal(git_reference_lookup(&ref, ud_deployrepo_git(m),
					      "refs/tags/t/v1"),
			 0);
	git_reference_free(ref);
	ud_deployrepo_free(m);

	assert_int_equal(ud_deployrepo_fetch(&m, mirror2, url), 0);
	assert_int_equal(ud_deployrepo_head(m, &head), 0);
	assert_true(git_oid_equal(&head, &c2));
	ud_deployrepo_free(m);

	ud_buf_clear(&b);
	assert_int_equal(git_cli(mirror, &b, "fsck", NULL, NULL), 0);

	assert_true(ud_deployrepo_fetch(&m, mirror, missing) < 0);
	assert_null(m);
	assert_non_null(strstr(ud_error_last(), "cannot fetch"));

	ud_buf_free(&b);
	free(missing);
	free(url);
	free(mirror2);
	free(mirror);
}

static long long du_objects(const char *gitdir)
{
	char *cmd = ud_asprintf("du -sb --exclude=info '%s/objects'", gitdir);
	FILE *p = popen(cmd, "r");
	long long n = -1;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%lld", &n), 1);
	pclose(p);
	free(cmd);
	return n;
}

/* A mirror of a local repository borrows its objects (alternates): a sync
 * must not copy release images, however many releases there are. */
static void test_fetch_local_shares_objects(void **state)
{
	struct fixture *f = *state;
	char *mirror = ud_asprintf("%s/mirror.git", f->dir);
	size_t len = 1024 * 1024;
	unsigned char *big = ud_malloc(len);
	struct ud_deployrepo *m = NULL;
	struct ud_buf b = UD_BUF_INIT;
	struct ud_txn *t = NULL;
	git_oid head, c;

	uint64_t x = 88172645463325252ULL;

	for (size_t i = 0; i < len; i++) { /* xorshift: incompressible */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		big[i] = (unsigned char)x;
	}
	for (int k = 0; k < 3; k++) {
		big[k] ^= 0xff;
		assert_int_equal(ud_txn_begin(&t, f->r), 0);
		assert_int_equal(ud_txn_put(t, "image", big, len), 0);
		assert_int_equal(ud_txn_commit(t, "image", &c), 0);
		ud_txn_free(t);
		assert_int_equal(ud_deployrepo_fetch(&m, mirror, f->path), 0);
		assert_int_equal(ud_deployrepo_head(m, &head), 0);
		assert_true(git_oid_equal(&head, &c));
		ud_buf_clear(&b);
		assert_int_equal(ud_deployrepo_read(m, NULL, "image", &b), 0);
		assert_int_equal(b.size, len);
		assert_memory_equal(b.ptr, big, len);
		ud_deployrepo_free(m);
		/* Refs and their logs only: far less than one image. */
		assert_true(du_objects(mirror) < (long long)len / 4);
	}
	ud_buf_clear(&b);
	assert_int_equal(git_cli(mirror, &b, "fsck", NULL, NULL), 0);
	ud_buf_free(&b);
	free(big);
	free(mirror);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fetch_local_shares_objects,
						repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(test_init_layout, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_shared_bits, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_txn_read_list, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_txn_conflict, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_txn_locked, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_fetch, repo_setup, repo_teardown),
	};
	int failed;

	/* Held for the whole run: libgit2 1.5 leaks its per-thread error
	 * state across repeated init/shutdown cycles. */
	git_libgit2_init();
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return failed;
}
