/* test_allowed_signers.c: OpenSSH's allowed signers file
 * (lib/allowed_signers.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "allowed_signers.h"
#include "errors.h"
#include "sshkey_fixture.h"

struct keys {
	char *dir;
	char *a, *b; /* "ssh-ed25519 AAAA... comment" */
	struct ud_sshkey *ka, *kb;
};

static int setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	k->dir = tmpdir_new();
	free(keygen(k->dir, "a", "ed25519", NULL));
	free(keygen(k->dir, "b", "ed25519", NULL));
	k->a = pub_line(k->dir, "a");
	k->b = pub_line(k->dir, "b");
	k->ka = key_load(k->dir, "a");
	k->kb = key_load(k->dir, "b");
	*state = k;
	return 0;
}

static int teardown(void **state)
{
	struct keys *k = *state;

	ud_rm_rf(k->dir);
	free(k->dir);
	free(k->a);
	free(k->b);
	ud_sshkey_free(k->ka);
	ud_sshkey_free(k->kb);
	free(k);
	return 0;
}

static struct ud_allowed_signers *parse_ok(const char *text)
{
	struct ud_allowed_signers *s = NULL;

	if (ud_allowed_signers_parse(&s, text, strlen(text), "signers") < 0)
		fail_msg("%s", ud_error_last());
	return s;
}

static void test_parse_and_match(void **state)
{
	struct keys *k = *state;
	char *text = ud_asprintf("# the pipeline\n"
				 "\n"
				 "  ci@example,\"ops team\" %s\n"
				 "rel@example namespaces=\"file,git\" %s\n",
				 k->a, k->b);
	struct ud_allowed_signers *s = parse_ok(text);
	const char *who = NULL;

	assert_int_equal(ud_allowed_signers_count(s), 2);
	assert_int_equal(ud_allowed_signers_check(s, k->ka, "git", 0, &who),
			 0);
	assert_string_equal(who, "ci@example,\"ops team\"");
	assert_int_equal(ud_allowed_signers_check(s, k->kb, "git", 0, &who),
			 0);
	assert_string_equal(who, "rel@example");
	ud_allowed_signers_free(s);
	free(text);
}

static void test_restrictions(void **state)
{
	struct keys *k = *state;
	char *text = ud_asprintf(
		"a@x namespaces=\"file\" %s\n"
		"b@x valid-after=\"20300101Z\",valid-before=\"20400101\" %s\n",
		k->a, k->b);
	struct ud_allowed_signers *s = parse_ok(text);
	time_t in_2035 = 2051222400; /* 2035-01-01 UTC */

	assert_int_equal(ud_allowed_signers_check(s, k->ka, "git", 0, NULL),
			 UD_EAUTH);
	assert_non_null(strstr(ud_error_last(), "namespace"));
	assert_int_equal(ud_allowed_signers_check(s, k->ka, "file", 0, NULL),
			 0);
	assert_int_equal(ud_allowed_signers_check(s, k->kb, "git", 1000, NULL),
			 UD_EAUTH);
	assert_non_null(strstr(ud_error_last(), "valid-after"));
	assert_int_equal(ud_allowed_signers_check(s, k->kb, "git", in_2035,
						  NULL), 0);
	ud_allowed_signers_free(s);
	free(text);
}

static void test_unlisted_and_ca(void **state)
{
	struct keys *k = *state;
	char *text = ud_asprintf("ca@x cert-authority %s\n", k->a);
	struct ud_allowed_signers *s = parse_ok(text);
	char *fp = ud_sshkey_fingerprint(k->kb);

	assert_int_equal(ud_allowed_signers_check(s, k->ka, "git", 0, NULL),
			 UD_EAUTH);
	assert_non_null(strstr(ud_error_last(), "cert-authority"));
	assert_int_equal(ud_allowed_signers_check(s, k->kb, "git", 0, NULL),
			 UD_EAUTH);
	assert_non_null(strstr(ud_error_last(), fp));
	assert_non_null(strstr(ud_error_last(), "not in allowed_signers"));
	free(fp);
	ud_allowed_signers_free(s);
	free(text);
}

/* Each malformed line is named by line and column. */
static void test_errors(void **state)
{
	struct keys *k = *state;
	char *key_b64 = strchr(k->a, ' ') + 1;
	struct {
		char *text;
		const char *want;
	} cases[] = {
		{ ud_asprintf("# ok\nx@y bogus=\"1\" %s\n", k->a),
		  "signers:2:5: unknown option" },
		{ ud_asprintf("x@y\n"), "signers:1:4: missing key type" },
		{ ud_asprintf("x@y ssh-ed25519\n"), "signers:1:16: missing key" },
		{ ud_asprintf("x@y ssh-ed25519 AAAA*bad\n"),
		  "signers:1:17: malformed key" },
		{ ud_asprintf("x@y ssh-rsa %s", key_b64),
		  "signers:1:5: the key type does not match" },
		{ ud_asprintf("\"x@y %s\n", k->a), "unterminated quote" },
		{ ud_asprintf("x@y namespaces=git %s\n", k->a),
		  "signers:1:5: option value must be in double quotes" },
		{ ud_asprintf("x@y valid-after=\"2030\" %s\n", k->a),
		  "signers:1:5: bad time" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ud_allowed_signers *s = NULL;

		assert_int_equal(ud_allowed_signers_parse(&s, cases[i].text,
							  strlen(cases[i].text),
							  "signers"),
				 UD_EINVALID);
		assert_null(s);
		if (!strstr(ud_error_last(), cases[i].want))
			fail_msg("case %zu: '%s' lacks '%s'", i,
				 ud_error_last(), cases[i].want);
		free(cases[i].text);
	}
}

static void test_load_missing_file(void **state)
{
	struct ud_allowed_signers *s = NULL;

	(void)state;
	assert_true(ud_allowed_signers_load(&s, "/nonexistent/signers") < 0);
	assert_null(s);
	assert_non_null(strstr(ud_error_last(), "/nonexistent/signers"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_match),
		cmocka_unit_test(test_restrictions),
		cmocka_unit_test(test_unlisted_and_ca),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_load_missing_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
