/* test_sshsig.c: OpenSSH keys from memory and SSH signatures
 * (lib/sshkey.c, lib/sshsig.c), checked against ssh-keygen itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "errors.h"
#include "sshkey_fixture.h"
#include "sshsig.h"

static const char msg[] = "tree 1234\nparent 5678\n\nRelease 3 of hello\n";

static int setup(void **state)
{
	char *dir = tmpdir_new();

	free(keygen(dir, "k", "ed25519", NULL));
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	ud_rm_rf(*state);
	free(*state);
	return 0;
}

static void test_sign_verify_roundtrip(void **state)
{
	struct ud_sshkey *k = key_load(*state, "k"), *signer = NULL;
	struct ud_buf sig = UD_BUF_INIT, out = UD_BUF_INIT;
	char *fp;

	assert_int_equal(ud_sshsig_sign(&sig, k, "git", msg, strlen(msg)), 0);
	assert_non_null(strstr(sig.ptr, "-----BEGIN SSH SIGNATURE-----\n"));
	assert_int_equal(ud_sshsig_verify(&signer, sig.ptr, sig.size, "git",
					  msg, strlen(msg)), 0);
	assert_true(ud_sshkey_equal(signer, k));
	assert_string_equal(ud_sshkey_type(signer), "ssh-ed25519");
	/* the fingerprint is the one ssh-keygen -l prints */
	fp = ud_sshkey_fingerprint(signer);
	assert_int_equal(sh_in(*state, &out, "ssh-keygen -lf k.pub | "
					     "cut -d' ' -f2"), 0);
	assert_string_equal(fp, out.ptr);
	free(fp);
	ud_sshkey_free(signer);
	ud_sshkey_free(k);
	ud_buf_free(&sig);
	ud_buf_free(&out);
}

static void test_tampered_message_refused(void **state)
{
	struct ud_sshkey *k = key_load(*state, "k"), *signer = NULL;
	struct ud_buf sig = UD_BUF_INIT;
	char other[sizeof(msg)];

	memcpy(other, msg, sizeof(msg));
	other[sizeof(msg) - 3] = 'x';
	assert_int_equal(ud_sshsig_sign(&sig, k, "git", msg, strlen(msg)), 0);
	assert_int_equal(ud_sshsig_verify(&signer, sig.ptr, sig.size, "git",
					  other, strlen(other)), UD_EAUTH);
	assert_null(signer);
	/* another namespace is not this one */
	assert_int_equal(ud_sshsig_verify(&signer, sig.ptr, sig.size, "file",
					  msg, strlen(msg)), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "namespace 'git'"));
	/* a flipped byte of the signature itself */
	sig.ptr[strlen("-----BEGIN SSH SIGNATURE-----\n") + 20] ^= 1;
	assert_true(ud_sshsig_verify(&signer, sig.ptr, sig.size, "git", msg,
				     strlen(msg)) < 0);
	assert_null(signer);
	assert_int_equal(ud_sshsig_verify(&signer, "garbage", 7, "git", msg,
					  strlen(msg)), UD_EINVALID);
	ud_sshkey_free(k);
	ud_buf_free(&sig);
}

/* What we sign, ssh-keygen -Y verify accepts; what ssh-keygen -Y sign
 * makes, we accept. */
static void test_openssh_agrees(void **state)
{
	struct ud_sshkey *k = key_load(*state, "k"), *signer = NULL;
	struct ud_buf sig = UD_BUF_INIT, theirs = UD_BUF_INIT;
	char *pub = pub_line(*state, "k"), *allowed, *sigpath, *msgpath,
	     *theirpath;

	allowed = ud_asprintf("%s/allowed", (char *)*state);
	sigpath = ud_asprintf("%s/msg.ours", (char *)*state);
	msgpath = ud_asprintf("%s/msg", (char *)*state);
	theirpath = ud_asprintf("%s/msg.sig", (char *)*state);
	{
		char *line = ud_asprintf("ci@example %s\n", pub);

		assert_int_equal(ud_write_file_atomic(allowed, line,
						      strlen(line), 0644), 0);
		free(line);
	}
	assert_int_equal(ud_write_file_atomic(msgpath, msg, strlen(msg), 0644),
			 0);
	assert_int_equal(ud_sshsig_sign(&sig, k, "git", msg, strlen(msg)), 0);
	ud_buf_putc(&sig, '\n');
	assert_int_equal(ud_write_file_atomic(sigpath, sig.ptr, sig.size,
					      0644), 0);
	assert_int_equal(sh_in(*state, NULL,
			       "ssh-keygen -Y verify -f allowed -I ci@example "
			       "-n git -s msg.ours <msg"), 0);
	/* and refuses it for another message */
	assert_int_not_equal(sh_in(*state, NULL,
				   "echo other | ssh-keygen -Y verify -f "
				   "allowed -I ci@example -n git -s msg.ours"),
			     0);

	assert_int_equal(sh_in(*state, NULL, "ssh-keygen -Y sign -q -n git "
					     "-f k msg"), 0);
	assert_int_equal(ud_buf_read_file(&theirs, theirpath), 0);
	assert_int_equal(ud_sshsig_verify(&signer, theirs.ptr, theirs.size,
					  "git", msg, strlen(msg)), 0);
	assert_true(ud_sshkey_equal(signer, k));
	ud_sshkey_free(signer);
	ud_sshkey_free(k);
	ud_buf_free(&sig);
	ud_buf_free(&theirs);
	free(pub);
	free(allowed);
	free(sigpath);
	free(msgpath);
	free(theirpath);
}

static void test_keys_that_cannot_sign(void **state)
{
	struct ud_sshkey *k = NULL;
	char *locked = keygen(*state, "locked", "ed25519", "secret-pass");
	char *ecdsa = keygen(*state, "ec", "ecdsa", NULL);
	int enc, rsa;

	assert_int_equal(ud_sshkey_parse_private(&k, locked, strlen(locked),
						 "DEPLOY_SIGNING_KEY"),
			 UD_EINVALID);
	assert_null(k);
	assert_non_null(strstr(ud_error_last(), "DEPLOY_SIGNING_KEY"));
	assert_non_null(strstr(ud_error_last(), "passphrase"));
	ud_sshkey_info(locked, strlen(locked), &enc, &rsa);
	assert_true(enc);
	assert_false(rsa);

	assert_int_equal(ud_sshkey_parse_private(&k, ecdsa, strlen(ecdsa),
						 "ec"), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "ecdsa-sha2-nistp256"));
	ud_sshkey_info(ecdsa, strlen(ecdsa), &enc, &rsa);
	assert_false(enc);

	assert_int_equal(ud_sshkey_parse_private(&k, "hello", 5, "x"),
			 UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "not an OpenSSH private key"));
	{
		static const char cut[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
					  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA"
					  "EbmCg==\n-----END OPENSSH PRIVATE "
					  "KEY-----\n";

		assert_int_equal(ud_sshkey_parse_private(&k, cut, strlen(cut),
							 "x"), UD_EINVALID);
		assert_non_null(strstr(ud_error_last(), "malformed"));
	}
	free(locked);
	free(ecdsa);
}

static void test_base64(void **state)
{
	struct ud_buf out = UD_BUF_INIT;

	(void)state;
	assert_int_equal(ud_base64_decode(&out, "aGVs\n bG8=", 10), 0);
	assert_int_equal(out.size, 5);
	assert_memory_equal(out.ptr, "hello", 5);
	ud_buf_clear(&out);
	assert_int_equal(ud_base64_decode(&out, "aGV", 3), UD_EINVALID);
	assert_int_equal(ud_base64_decode(&out, "a*Vs", 4), UD_EINVALID);
	ud_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sign_verify_roundtrip,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered_message_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_openssh_agrees, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keys_that_cannot_sign,
						setup, teardown),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
