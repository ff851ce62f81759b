#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <git2.h>

#include "buf.h"
#include "digest.h"
#include "errors.h"
#include "fleet.h"
#include "manifest.h"
#include "release.h"
#include "repo.h"
#include "repo_fixture.h"
#include "run.h"

/* libgit2 1.5 leaks PCRE2 match blocks in its config regex lookups, not
 * ours to free. Read by LeakSanitizer only. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

#define COMMIT_ID "0123456789abcdef0123456789abcdef01234567"
#define IMAGE FIXTURE_IMAGE

/* Publish a release of `app` whose image holds `content`, with a build
 * log; returns n. */
static int publish(struct ud_deployrepo *r, const char *app,
		   const char *content, int *n)
{
	return fixture_publish(r, app, content, 1, n);
}

static void publish_ok(struct ud_deployrepo *r, const char *app,
		       const char *content, int want)
{
	int n = 0;

	if (publish(r, app, content, &n) < 0)
		fail_msg("publish: %s", ud_error_last());
	assert_int_equal(n, want);
}

static void assert_read(struct ud_deployrepo *r, const char *path,
			const char *want)
{
	struct ud_buf b = UD_BUF_INIT;

	if (ud_deployrepo_read(r, NULL, path, &b) < 0)
		fail_msg("%s: %s", path, ud_error_last());
	assert_string_equal(b.ptr, want);
	ud_buf_free(&b);
}

static void assert_tag(struct ud_deployrepo *r, const char *name,
		       const char *message)
{
	git_reference *ref = NULL;
	git_tag *tag = NULL;
	char *refname = ud_asprintf("refs/tags/%s", name);

	if (git_reference_lookup(&ref, ud_deployrepo_git(r), refname) < 0)
		fail_msg("no tag %s", name);
	assert_int_equal(git_tag_lookup(&tag, ud_deployrepo_git(r),
					git_reference_target(ref)),
			 0);
	if (message)
		assert_string_equal(git_tag_message(tag), message);
	git_tag_free(tag);
	git_reference_free(ref);
	free(refname);
}

static void test_publish_numbers(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL;
	struct ud_buf b = UD_BUF_INIT;
	int current = 0, n = 0;
	git_oid before, after;

	publish_ok(f->r, "hello", "one", 1);
	publish_ok(f->r, "hello", "two", 2);
	publish_ok(f->r, "world", "w", 1);
	publish_ok(f->r, "hello", "three", 3);

	assert_int_equal(ud_release_current(f->r, NULL, "hello", &current), 0);
	assert_int_equal(current, 3);
	assert_int_equal(ud_release_current(f->r, NULL, "world", &current), 0);
	assert_int_equal(current, 1);
	assert_read(f->r, "apps/hello/current", "3\n");
	assert_read(f->r, "apps/hello/releases/2/" IMAGE, "two");
	assert_read(f->r, "apps/hello/releases/2/build.log", "building two\n");
	assert_tag(f->r, "hello/v1", "hello release 1");
	assert_tag(f->r, "hello/v2", "hello release 2");
	assert_tag(f->r, "hello/v3", "hello release 3");
	assert_tag(f->r, "world/v1", "world release 1");

	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 2, &m), 0);
	assert_int_equal(m->release, 2);
	assert_string_equal(m->source.subject, "two");
	assert_int_equal(m->nimages, 1);
	assert_string_equal(m->images[0].file, IMAGE);
	assert_int_equal(m->rollback_of, 0);
	assert_non_null(m->created_at);
	ud_manifest_free(m);
	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 4, &m),
			 UD_ENOTFOUND);
	assert_null(m);

	/* plain git sees the release */
	assert_int_equal(git_cli(f->path, &b, "log", "-1", "--format=%B"), 0);
	assert_string_equal(b.ptr, "hello: release 3\n\n" COMMIT_ID " three");
	assert_int_equal(git_cli(f->path, &b, "cat-file", "-p",
				 "hello/v1:apps/hello/releases/1/" IMAGE),
			 0);
	assert_string_equal(b.ptr, "one");

	/* refused names change nothing */
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(publish(f->r, "../evil", "x", &n), UD_EINVALID);
	assert_int_equal(publish(f->r, "Hello", "x", &n), UD_EINVALID);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
	ud_buf_free(&b);
}

static void test_publish_bad_file_name(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = ud_manifest_new();
	struct ud_release_blob file = { "../../fleet.json", { { 0 } } };
	git_oid before, after;

	m->app = ud_strdup("hello");
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_deployrepo_write_blob(f->r, "x", 1, &file.oid), 0);
	assert_int_equal(ud_release_publish(f->r, m, &file, 1, NULL),
			 UD_EINVALID);
	file.name = "manifest.json";
	assert_int_equal(ud_release_publish(f->r, m, &file, 1, NULL),
			 UD_EINVALID);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
	ud_manifest_free(m);
}

#define RACERS 8
#define EACH 3

/* Racing publishers, each a separate process with its own repository
 * handle, as concurrent hooks would be. */
static void test_publish_race(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest **list = NULL;
	struct ud_buf b = UD_BUF_INIT;
	pid_t pids[RACERS];
	size_t n = 0, i;
	int current = 0, status;
	char name[32];

	for (i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ud_deployrepo *r = NULL;
			char content[32];
			int k, got, ok = 1;

			if (ud_deployrepo_open(&r, f->path) < 0)
				_exit(2);
			for (k = 0; k < EACH; k++) {
				snprintf(content, sizeof(content), "p%zu-%d", i,
					 k);
				if (publish(r, "hello", content, &got) < 0) {
					fprintf(stderr, "racer %zu: %s\n", i,
						ud_error_last());
					ok = 0;
				}
			}
			ud_deployrepo_free(r);
			_exit(ok ? 0 : 1);
		}
	}
	for (i = 0; i < RACERS; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}

	assert_int_equal(ud_release_list(f->r, "hello", &list, &n, &current),
			 0);
	assert_int_equal(n, RACERS * EACH);
	assert_int_equal(current, RACERS * EACH);
	for (i = 0; i < n; i++) {
		assert_int_equal(list[i]->release, (int)(n - i));
		snprintf(name, sizeof(name), "hello/v%zu", n - i);
		assert_tag(f->r, name, NULL);
	}
	ud_release_list_free(list, n);

	/* every release is its own commit on main's first-parent line */
	assert_int_equal(git_cli(f->path, &b, "rev-list", "--count", "main"),
			 0);
	assert_int_equal(atoi(b.ptr), 1 + RACERS * EACH);
	assert_int_equal(git_cli(f->path, &b, "tag", "-l", "hello/v*"), 0);
	assert_int_equal(git_cli(f->path, &b, "fsck", "--strict", NULL), 0);
	ud_buf_free(&b);
}

static void assert_same_blob(struct ud_deployrepo *r, const char *a,
			     const char *b)
{
	git_oid x, y;

	assert_int_equal(ud_deployrepo_blob_id(r, NULL, a, &x), 0);
	assert_int_equal(ud_deployrepo_blob_id(r, NULL, b, &y), 0);
	assert_true(git_oid_equal(&x, &y));
}

static void test_rollback_default(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL, *orig = NULL;
	struct ud_buf b = UD_BUF_INIT;
	int current = 0;

	publish_ok(f->r, "hello", "one", 1);
	publish_ok(f->r, "hello", "two", 2);
	publish_ok(f->r, "hello", "three", 3);

	if (ud_release_rollback(f->r, "hello", 0, &m) < 0)
		fail_msg("rollback: %s", ud_error_last());
	assert_int_equal(m->release, 4);
	assert_int_equal(m->rollback_of, 2);
	ud_manifest_free(m);
	m = NULL;

	assert_int_equal(ud_release_current(f->r, NULL, "hello", &current), 0);
	assert_int_equal(current, 4);
	assert_same_blob(f->r, "apps/hello/releases/4/" IMAGE,
			 "apps/hello/releases/2/" IMAGE);
	assert_same_blob(f->r, "apps/hello/releases/4/build.log",
			 "apps/hello/releases/2/build.log");
	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 4, &m), 0);
	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 2, &orig),
			 0);
	assert_int_equal(m->rollback_of, 2);
	assert_string_equal(m->images[0].sha256, orig->images[0].sha256);
	assert_string_equal(m->source.subject, "two");
	ud_manifest_free(orig);
	ud_manifest_free(m);
	m = NULL;
	assert_tag(f->r, "hello/v4", "hello release 4");
	assert_int_equal(git_cli(f->path, &b, "log", "-1", "--format=%s"), 0);
	assert_string_equal(b.ptr, "hello: release 4, rolling back to 2");

	/* again: one step further back (4 stands for 2), not back to 3 */
	assert_int_equal(ud_release_rollback(f->r, "hello", 0, NULL), 0);
	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 5, &m), 0);
	assert_int_equal(m->rollback_of, 1);
	ud_manifest_free(m);
	m = NULL;
	/* and v1 is as far back as it goes: refused, nothing written */
	assert_int_equal(ud_release_rollback(f->r, "hello", 0, &m),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(),
			    "hello has no earlier release to roll back to");
	assert_null(m);

	/* explicit target */
	assert_int_equal(ud_release_rollback(f->r, "hello", 3, &m), 0);
	assert_int_equal(m->release, 6);
	assert_int_equal(m->rollback_of, 3);
	assert_read(f->r, "apps/hello/releases/6/" IMAGE, "three");
	ud_manifest_free(m);
	m = NULL;
	/* from 6 (standing for 3) the default goes to 2 */
	assert_int_equal(ud_release_rollback(f->r, "hello", 0, &m), 0);
	assert_int_equal(m->release, 7);
	assert_int_equal(m->rollback_of, 2);
	ud_manifest_free(m);
	ud_buf_free(&b);
}

/* Rolling back to what is live publishes nothing. */
static void test_rollback_to_live(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL;
	git_oid before, after;
	int current = 0;

	publish_ok(f->r, "hello", "one", 1);
	publish_ok(f->r, "hello", "two", 2);
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_release_rollback(f->r, "hello", 2, &m),
			 UD_EEXISTS);
	assert_string_equal(ud_error_last(), "v2 is the live release of "
					     "hello; nothing to roll back");
	assert_null(m);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));

	/* v3 restores v1: v1 and v3 are both what is live */
	assert_int_equal(ud_release_rollback(f->r, "hello", 0, NULL), 0);
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_release_rollback(f->r, "hello", 1, &m),
			 UD_EEXISTS);
	assert_string_equal(ud_error_last(),
			    "v1 is what hello serves already (live v3 "
			    "restores v1); nothing to roll back");
	assert_int_equal(ud_release_rollback(f->r, "hello", 3, &m),
			 UD_EEXISTS);
	assert_null(m);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
	assert_int_equal(ud_release_current(f->r, NULL, "hello", &current), 0);
	assert_int_equal(current, 3);
	/* forward again is fine: v2 is not live */
	assert_int_equal(ud_release_rollback(f->r, "hello", 2, &m), 0);
	assert_int_equal(m->release, 4);
	ud_manifest_free(m);
}

static void test_rollback_errors(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL;
	git_oid before, after;

	assert_int_equal(ud_release_rollback(f->r, "hello", 0, &m),
			 UD_ENOTFOUND);
	publish_ok(f->r, "hello", "one", 1);
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_release_rollback(f->r, "hello", 0, &m),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(),
			    "hello has no earlier release to roll back to");
	publish_ok(f->r, "hello", "two", 2);
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_release_rollback(f->r, "hello", 7, &m),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(), "hello has no release 7");
	assert_null(m);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest **list = NULL;
	size_t n = 0;
	int current = -1;

	assert_int_equal(ud_release_list(f->r, "hello", &list, &n, &current),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(current, 0);
	ud_release_list_free(list, n);

	publish_ok(f->r, "hello", "one", 1);
	publish_ok(f->r, "hello", "two", 2);
	assert_int_equal(ud_release_rollback(f->r, "hello", 0, NULL), 0);
	assert_int_equal(ud_release_list(f->r, "hello", &list, &n, &current),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(current, 3);
	assert_int_equal(list[0]->release, 3);
	assert_int_equal(list[0]->rollback_of, 1);
	assert_int_equal(list[1]->release, 2);
	assert_int_equal(list[1]->rollback_of, 0);
	assert_int_equal(list[2]->release, 1);
	ud_release_list_free(list, n);
	assert_int_equal(ud_release_list(f->r, "no/such", &list, &n, &current),
			 UD_EINVALID);
}

static void test_check_target(void **state)
{
	struct fixture *f = *state;

	/* No release yet: nothing to check a target against. */
	assert_int_equal(ud_release_check_target(f->r, "hello", "qemu"), 0);
	publish_ok(f->r, "hello", "one", 1);
	assert_int_equal(ud_release_check_target(f->r, "hello", "unix"), 0);
	assert_int_equal(ud_release_check_target(f->r, "hello", "qemu"),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "hello v1 builds no image for target 'qemu' (its "
			    "images: unix/x86_64); add one to deploy.json's "
			    "images and publish it first");
	assert_int_equal(ud_release_check_target(f->r, "../x", "unix"),
			 UD_EINVALID);
}

static int add_edge1(struct ud_fleet *fleet, void *payload)
{
	struct ud_fleet_host h = { "edge1", payload, NULL, "x86_64" };

	return ud_fleet_set_host(fleet, &h);
}

static int refuse(struct ud_fleet *fleet, void *payload)
{
	(void)fleet;
	(void)payload;
	return ud_error_set(UD_EUSAGE, "refused");
}

static void test_fleet_update(void **state)
{
	struct fixture *f = *state;
	struct ud_fleet *fleet = NULL;
	const struct ud_fleet_host *h;
	struct ud_buf b = UD_BUF_INIT;
	git_oid before, after;

	if (ud_fleet_update(f->r, add_edge1, "deploy@10.0.0.5:22",
			    "Add host edge1") < 0)
		fail_msg("%s", ud_error_last());
	assert_int_equal(ud_fleet_load(f->r, NULL, &fleet), 0);
	assert_int_equal(fleet->nhosts, 1);
	h = ud_fleet_host(fleet, "edge1");
	assert_non_null(h);
	assert_string_equal(h->ssh, "deploy@10.0.0.5:22");
	ud_fleet_free(fleet);
	assert_int_equal(git_cli(f->path, &b, "log", "-1", "--format=%s"), 0);
	assert_string_equal(b.ptr, "Add host edge1");

	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_fleet_update(f->r, refuse, NULL, "nothing"),
			 UD_EUSAGE);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
	ud_buf_free(&b);
}

/* apps/<app>/current is read strictly: " 3", "+3", "03" or "3 " are not
 * release 3 (strtol took the first two), "3\n" as written is. */
static void test_current_strict(void **state)
{
	static const char *const bad[] = { " 3\n", "+3\n", "03\n", "3 \n",
					   "3\n\n", "3abc", "", "0\n" };
	struct fixture *f = *state;
	int current = 0;

	publish_ok(f->r, "hello", "one", 1);
	publish_ok(f->r, "hello", "two", 2);
	publish_ok(f->r, "hello", "three", 3);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct ud_txn *t = NULL;

		assert_int_equal(ud_txn_begin(&t, f->r), 0);
		assert_int_equal(ud_txn_put(t, "apps/hello/current", bad[i],
					    strlen(bad[i])),
				 0);
		assert_int_equal(ud_txn_commit(t, "hand edit", NULL), 0);
		ud_txn_free(t);
		current = -1;
		if (ud_release_current(f->r, NULL, "hello", &current) !=
		    UD_EINVALID)
			fail_msg("'%s' was read as release %d", bad[i],
				 current);
		assert_string_equal(ud_error_last(),
				    "apps/hello/current: not a release number");
	}
	{
		struct ud_txn *t = NULL;

		assert_int_equal(ud_txn_begin(&t, f->r), 0);
		assert_int_equal(ud_txn_put(t, "apps/hello/current", "3", 1), 0);
		assert_int_equal(ud_txn_commit(t, "no newline", NULL), 0);
		ud_txn_free(t);
		assert_int_equal(ud_release_current(f->r, NULL, "hello",
						    &current),
				 0);
		assert_int_equal(current, 3);
	}
}

static void test_fetch_sees_release(void **state)
{
	struct fixture *f = *state;
	char *mirror = ud_asprintf("%s/mirror.git", f->dir);
	struct ud_deployrepo *m = NULL;
	int current = 0;

	publish_ok(f->r, "hello", "one", 1);
	assert_int_equal(ud_deployrepo_fetch(&m, mirror, f->path), 0);
	assert_int_equal(ud_release_current(m, NULL, "hello", &current), 0);
	assert_int_equal(current, 1);
	ud_deployrepo_free(m);

	publish_ok(f->r, "hello", "two", 2);
	assert_int_equal(ud_deployrepo_fetch(&m, mirror, f->path), 0);
	assert_int_equal(ud_release_current(m, NULL, "hello", &current), 0);
	assert_int_equal(current, 2);
	assert_read(m, "apps/hello/releases/2/" IMAGE, "two");
	assert_tag(m, "hello/v2", "hello release 2");
	ud_deployrepo_free(m);
	free(mirror);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish_numbers, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_publish_bad_file_name,
						repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(test_publish_race, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_rollback_default, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_rollback_to_live, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_rollback_errors, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_list, repo_setup, repo_teardown),
		cmocka_unit_test_setup_teardown(test_check_target, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_fleet_update, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_current_strict, repo_setup,
						repo_teardown),
		cmocka_unit_test_setup_teardown(test_fetch_sees_release, repo_setup,
						repo_teardown),
	};
	int failed;

	/* Held for the whole run: libgit2 1.5 leaks its per-thread error
	 * state across repeated init/shutdown cycles. */
	git_libgit2_init();
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return failed;
}
