/*
 * sshkey_fixture.h: real keys from ssh-keygen in a temporary directory,
 * and a shell to run OpenSSH (and git) on files there, for the tests of
 * sshkey.c, sshsig.c, allowed_signers.c and repo_sign.c. Include after
 * cmocka.h.
 */
#ifndef UD_TEST_SSHKEY_FIXTURE_H
#define UD_TEST_SSHKEY_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "run.h"
#include "sshkey.h"

/* Run `sh -c script` in dir; its exit status (output kept in *out,
 * trimmed, when out is not NULL). */
static inline int sh_in(const char *dir, struct ud_buf *out,
			const char *script)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	struct ud_run_opts opts = { 0 };
	struct ud_buf ignored = UD_BUF_INIT;
	int status = -1;

	opts.dir = dir;
	opts.capture = out ? out : &ignored;
	if (out)
		ud_buf_clear(out);
	assert_int_equal(ud_run(argv, &opts, &status), 0);
	if (out)
		ud_buf_rtrim(out);
	ud_buf_free(&ignored);
	return status;
}

/* ssh-keygen -t type [-N pass] -f dir/name; returns the private key text
 * (caller frees). */
static inline char *keygen(const char *dir, const char *name,
			   const char *type, const char *pass)
{
	struct ud_buf text = UD_BUF_INIT;
	char *cmd = ud_asprintf("ssh-keygen -q -t %s -N '%s' -C %s -f %s",
				type, pass ? pass : "", name, name);
	char *path = ud_asprintf("%s/%s", dir, name);

	assert_int_equal(sh_in(dir, NULL, cmd), 0);
	assert_int_equal(ud_buf_read_file(&text, path), 0);
	free(cmd);
	free(path);
	return ud_buf_detach(&text);
}

/* The key dir/name parsed (an unencrypted ed25519 one). */
static inline struct ud_sshkey *key_load(const char *dir, const char *name)
{
	struct ud_buf text = UD_BUF_INIT;
	struct ud_sshkey *k = NULL;
	char *path = ud_asprintf("%s/%s", dir, name);

	assert_int_equal(ud_buf_read_file(&text, path), 0);
	assert_int_equal(ud_sshkey_parse_private(&k, text.ptr, text.size,
						 name), 0);
	ud_buf_free(&text);
	free(path);
	return k;
}

/* dir/name.pub's one line. */
static inline char *pub_line(const char *dir, const char *name)
{
	struct ud_buf text = UD_BUF_INIT;
	char *path = ud_asprintf("%s/%s.pub", dir, name);

	assert_int_equal(ud_buf_read_file(&text, path), 0);
	ud_buf_rtrim(&text);
	free(path);
	return ud_buf_detach(&text);
}

static inline char *tmpdir_new(void)
{
	char *d = ud_strdup("/tmp/ud-keys-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

#endif
