/* test_repo_sign.c: signed commits on the deployment repository and the
 * check of a range of history (lib/repo_sign.c), cross-checked with
 * `git verify-commit`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "allowed_signers.h"
#include "repo_fixture.h"
#include "sshkey_fixture.h"

struct world {
	char *dir, *repo;
	struct ud_deployrepo *r;
	struct ud_allowed_signers *allowed; /* lists key "ci" only */
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char *line, *path;

	w->dir = tmpdir_new();
	free(keygen(w->dir, "ci", "ed25519", NULL));
	free(keygen(w->dir, "other", "ed25519", NULL));
	w->repo = ud_asprintf("%s/deploy.git", w->dir);
	/* the first commit signed too */
	assert_int_equal(ud_deployrepo_init(w->repo, key_load(w->dir, "ci")),
			 0);
	assert_int_equal(ud_deployrepo_open(&w->r, w->repo), 0);
	ud_deployrepo_set_signer(w->r, key_load(w->dir, "ci"));
	{
		char *pub = pub_line(w->dir, "ci");

		line = ud_asprintf("ci@example %s\n", pub);
		free(pub);
	}
	path = ud_asprintf("%s/allowed", w->dir);
	assert_int_equal(ud_write_file_atomic(path, line, strlen(line), 0644),
			 0);
	assert_int_equal(ud_allowed_signers_load(&w->allowed, path), 0);
	free(line);
	free(path);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	ud_deployrepo_free(w->r);
	ud_allowed_signers_free(w->allowed);
	ud_rm_rf(w->dir);
	free(w->dir);
	free(w->repo);
	free(w);
	return 0;
}

static void commit(struct world *w, const char *content, git_oid *out)
{
	struct ud_txn *t = NULL;

	assert_int_equal(ud_txn_begin(&t, w->r), 0);
	assert_int_equal(ud_txn_put(t, "note", content, strlen(content)), 0);
	assert_int_equal(ud_txn_commit(t, content, out), 0);
	ud_txn_free(t);
}

static int verify(struct world *w, const git_oid *head, const git_oid *since,
		  git_oid *bad)
{
	return ud_deployrepo_verify_signed(w->r, head, since, w->allowed, bad);
}

static int git_verify(struct world *w, const char *rev)
{
	char *cmd = ud_asprintf("git --git-dir=deploy.git -c "
				"gpg.ssh.allowedSignersFile=%s/allowed "
				"verify-commit %s 2>/dev/null", w->dir, rev);
	int st = sh_in(w->dir, NULL, cmd);

	free(cmd);
	return st;
}

static void test_signed_history_accepted(void **state)
{
	struct world *w = *state;
	git_oid a, b;
	char hex[GIT_OID_HEXSZ + 1];

	commit(w, "one", &a);
	commit(w, "two", &b);
	assert_int_equal(verify(w, &b, NULL, NULL), 0);
	assert_int_equal(verify(w, &b, &a, NULL), 0);
	/* git agrees, for each commit including the first */
	assert_int_equal(git_verify(w, git_oid_tostr(hex, sizeof(hex), &b)),
			 0);
	assert_int_equal(git_verify(w, "main~2"), 0);
}

static void test_other_key_refused(void **state)
{
	struct world *w = *state;
	git_oid a, b, bad;
	char hex[GIT_OID_HEXSZ + 1];

	commit(w, "one", &a);
	ud_deployrepo_set_signer(w->r, key_load(w->dir, "other"));
	commit(w, "by another key", &b);
	assert_int_equal(verify(w, &b, &a, &bad), UD_EAUTH);
	assert_true(git_oid_equal(&bad, &b));
	git_oid_tostr(hex, sizeof(hex), &b);
	assert_non_null(strstr(ud_error_last(), "by another key"));
	assert_non_null(strstr(ud_error_last(), "not in allowed_signers"));
	hex[12] = '\0';
	assert_non_null(strstr(ud_error_last(), hex));
	assert_int_not_equal(git_verify(w, "main"), 0);
}

/* A signed head on top of an unsigned change: the change is named. */
static void test_unsigned_under_signed_head_refused(void **state)
{
	struct world *w = *state;
	git_oid a, u, b, bad;

	commit(w, "one", &a);
	ud_deployrepo_set_unsigned(w->r, "the test wants it so");
	commit(w, "sneaked in", &u);
	ud_deployrepo_set_signer(w->r, key_load(w->dir, "ci"));
	commit(w, "signed on top", &b);
	assert_int_equal(verify(w, &b, &a, &bad), UD_EAUTH);
	assert_true(git_oid_equal(&bad, &u));
	assert_non_null(strstr(ud_error_last(), "sneaked in"));
	assert_non_null(strstr(ud_error_last(), "not signed"));
	/* the head alone is fine: only the range check catches it */
	assert_int_equal(verify(w, &b, &u, NULL), 0);
	/* with nothing accepted before, the whole history is checked */
	assert_int_equal(verify(w, &b, NULL, &bad), UD_EAUTH);
	assert_true(git_oid_equal(&bad, &u));
}

/* A `since` the repository does not have checks everything. */
static void test_unknown_since_checks_all(void **state)
{
	struct world *w = *state;
	git_oid a, missing;

	commit(w, "one", &a);
	assert_int_equal(git_oid_fromstr(&missing, "0123456789abcdef0123456789"
						    "abcdef01234567"), 0);
	assert_int_equal(verify(w, &a, &missing, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_signed_history_accepted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_key_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_unsigned_under_signed_head_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_unknown_since_checks_all,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
