/* test_ssh.c: targets, fingerprints and known_hosts checks against keys
 * made by ssh-keygen, and ud_ssh_exec against a real sshd
 * (tests/sshd.sh) with every kind of identity. HOME points into the
 * test's own directory, so the real ~/.ssh is never read or written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh2.h>
#include <openssl/evp.h>

#include "buf.h"
#include "errors.h"
#include "net.h"
#include "run.h"
#include "ssh.h"

struct world {
	char dir[64];
	char *home;
	char *old_home, *old_sock;
	char *user;
	/* The throwaway sshd: its dir, port, "user@127.0.0.1:port" and its
	 * known_hosts line. */
	char *sshd_dir;
	int sshd_port, sshd_started;
	char *target, *known_line;
	/* An ed25519 key authorized on the sshd, and one that is not. */
	char *key, *stranger;
	int skip; /* no sshd on this machine */
};

static struct world W;

/* Run argv; stdout+stderr into out (may be NULL); the exit status. */
static int run(struct ud_buf *out, char *const argv[])
{
	struct ud_run_opts o = { 0 };
	int status = -1;

	o.capture = out;
	o.timeout_ms = 30000;
	if (ud_run(argv, &o, &status) < 0)
		return -1;
	return status;
}

static char *path_in(const char *name)
{
	return ud_asprintf("%s/%s", W.dir, name);
}

/* A fresh key pair at PATH (and PATH.pub). */
static void keygen(const char *path, const char *type, const char *pass)
{
	char *argv[] = { "ssh-keygen", "-q", "-t", (char *)type, "-N",
			 (char *)pass, "-C", "test", "-f", (char *)path, NULL };

	unlink(path);
	assert_int_equal(run(NULL, argv), 0);
}

static char *slurp(const char *path)
{
	struct ud_buf b = UD_BUF_INIT;

	assert_int_equal(ud_buf_read_file(&b, path), 0);
	return ud_buf_detach(&b);
}

static void spit(const char *path, const char *text)
{
	assert_int_equal(ud_write_file_atomic(path, text, strlen(text), 0600),
			 0);
}

/* The raw blob and type of a .pub file ("type base64 comment"). */
static unsigned char *pub_blob(const char *pubpath, size_t *len, char **type)
{
	char *text = slurp(pubpath), *sp1 = strchr(text, ' '), *sp2;
	unsigned char *blob;
	int n;

	assert_non_null(sp1);
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2)
		sp2 = sp1 + strcspn(sp1, "\n");
	*sp2 = '\0';
	blob = ud_malloc(strlen(sp1 + 1));
	n = EVP_DecodeBlock(blob, (unsigned char *)sp1 + 1,
			    (int)strlen(sp1 + 1));
	assert_true(n > 0);
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (sp2[-1] == '=')
		n--;
	if (sp2[-2] == '=')
		n--;
	*len = (size_t)n;
	*type = ud_strndup(text, (size_t)(sp1 - text));
	free(text);
	return blob;
}

/* Let KEY.pub log in to the sshd. */
static void authorize(const char *key)
{
	char *pub = ud_asprintf("%s.pub", key), *text = slurp(pub);
	char *ak = ud_asprintf("%s/authorized_keys", W.sshd_dir);
	FILE *f = fopen(ak, "a");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	free(ak);
	free(text);
	free(pub);
}

static int group_setup(void **state)
{
	const char *h = getenv("HOME"), *s = getenv("SSH_AUTH_SOCK");
	struct passwd *pw = getpwuid(getuid());

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	strcpy(W.dir, "/tmp/ud-test-ssh-XXXXXX");
	assert_non_null(mkdtemp(W.dir));
	W.old_home = h ? ud_strdup(h) : NULL;
	W.old_sock = s ? ud_strdup(s) : NULL;
	unsetenv("SSH_AUTH_SOCK");
	W.home = path_in("home");
	assert_int_equal(ud_mkdir_p(W.home, 0700), 0);
	setenv("HOME", W.home, 1);
	W.user = ud_strdup(getenv("USER") ? getenv("USER") : pw->pw_name);
	setenv("USER", W.user, 1);

	W.key = path_in("client");
	keygen(W.key, "ed25519", "");
	W.stranger = path_in("stranger");
	keygen(W.stranger, "ed25519", "");

	if (access("/usr/sbin/sshd", X_OK) != 0) {
		W.skip = 1;
		return 0;
	}
	W.sshd_dir = path_in("sshd");
	assert_int_equal(ud_mkdir_p(W.sshd_dir, 0700), 0);
	/* A second host key: libssh2 alone would ask for ecdsa first, while
	 * the known_hosts line of every test names the ed25519 key. */
	{
		char *hk = ud_asprintf("%s/ssh_host_ecdsa_key", W.sshd_dir);

		keygen(hk, "ecdsa", "");
		free(hk);
	}
	assert_int_equal(ud_net_free_port(&W.sshd_port), 0);
	{
		char port[16];
		char *start[] = { "sh", "tests/sshd.sh", "start", W.sshd_dir,
				  port, NULL };
		char *known[] = { "sh", "tests/sshd.sh", "known", W.sshd_dir,
				  port, NULL };
		struct ud_buf out = UD_BUF_INIT;

		snprintf(port, sizeof(port), "%d", W.sshd_port);
		assert_int_equal(run(NULL, start), 0);
		W.sshd_started = 1;
		assert_int_equal(run(&out, known), 0);
		W.known_line = ud_buf_detach(&out);
	}
	authorize(W.key);
	W.target = ud_asprintf("%s@127.0.0.1:%d", W.user, W.sshd_port);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (W.sshd_started) {
		char *argv[] = { "sh", "tests/sshd.sh", "stop", W.sshd_dir,
				 NULL };

		run(NULL, argv);
	}
	if (W.old_home)
		setenv("HOME", W.old_home, 1);
	if (W.old_sock)
		setenv("SSH_AUTH_SOCK", W.old_sock, 1);
	ud_rm_rf(W.dir);
	free(W.old_home);
	free(W.old_sock);
	free(W.home);
	free(W.user);
	free(W.sshd_dir);
	free(W.target);
	free(W.known_line);
	free(W.key);
	free(W.stranger);
	return 0;
}

/* Each test starts with an empty ~/.ssh. */
static int test_setup(void **state)
{
	char *ssh = ud_asprintf("%s/.ssh", W.home);

	(void)state;
	ud_rm_rf(ssh);
	free(ssh);
	unsetenv("DEPLOY_SSH_CONNECT_TIMEOUT");
	ud_error_clear();
	return 0;
}

/* ---- targets ---------------------------------------------------------- */

static void test_target_parse(void **state)
{
	struct ud_ssh_target t;

	(void)state;
	assert_int_equal(ud_ssh_target_parse(&t, "deploy@10.0.0.5:2222"), 0);
	assert_string_equal(t.user, "deploy");
	assert_string_equal(t.host, "10.0.0.5");
	assert_int_equal(t.port, 2222);
	ud_ssh_target_free(&t);

	assert_int_equal(ud_ssh_target_parse(&t, "git@deploy.example"), 0);
	assert_string_equal(t.user, "git");
	assert_string_equal(t.host, "deploy.example");
	assert_int_equal(t.port, 22);
	ud_ssh_target_free(&t);

	assert_int_equal(ud_ssh_target_parse(&t, "edge1"), 0);
	assert_string_equal(t.user, W.user);
	assert_string_equal(t.host, "edge1");
	assert_int_equal(t.port, 22);
	ud_ssh_target_free(&t);

	assert_int_equal(ud_ssh_target_parse(&t, "root@[::1]:2200"), 0);
	assert_string_equal(t.user, "root");
	assert_string_equal(t.host, "::1");
	assert_int_equal(t.port, 2200);
	ud_ssh_target_free(&t);

	assert_int_equal(ud_ssh_target_parse(&t, "root@[fe80::1]"), 0);
	assert_string_equal(t.host, "fe80::1");
	assert_int_equal(t.port, 22);
	ud_ssh_target_free(&t);
}

static void test_target_parse_bad(void **state)
{
	static const char *bad[] = {
		"", "@host", "user@", "user@:22", "user@host:", "user@host:0",
		"user@host:65536", "user@host:22x", "user@::1", "user@[::1",
		"user@[::1]x", "us er@host", "user@ho st", "user@host/x",
		"user@[]:22",
	};
	struct ud_ssh_target t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ud_error_clear();
		if (ud_ssh_target_parse(&t, bad[i]) != UD_EINVALID)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(ud_error_last(), "invalid ssh target"));
		assert_null(t.user);
		assert_null(t.host);
	}
}

/* ---- host keys -------------------------------------------------------- */

/* ud_ssh_fingerprint of PUB's blob and `ssh-keygen -lf` agree. */
static void check_fingerprint(const char *type)
{
	char *key = path_in("fp"), *pub = ud_asprintf("%s.pub", key);
	char *argv[] = { "ssh-keygen", "-l", "-E", "sha256", "-f", pub, NULL };
	struct ud_buf out = UD_BUF_INIT;
	unsigned char *blob;
	char *fp, *t, *want;
	size_t len;

	keygen(key, type, "");
	assert_int_equal(run(&out, argv), 0);
	/* "256 SHA256:... test (ED25519)" */
	want = strchr(out.ptr, ' ');
	assert_non_null(want);
	want = ud_strndup(want + 1, strcspn(want + 1, " "));
	blob = pub_blob(pub, &len, &t);
	fp = ud_ssh_fingerprint(blob, len);
	assert_string_equal(fp, want);
	assert_int_equal(strncmp(fp, "SHA256:", 7), 0);
	assert_null(strchr(fp, '='));
	free(fp);
	free(t);
	free(blob);
	free(want);
	ud_buf_free(&out);
	free(pub);
	free(key);
}

static void test_fingerprint(void **state)
{
	(void)state;
	check_fingerprint("ed25519");
	check_fingerprint("ecdsa");
	check_fingerprint("rsa");
}

/* A host key to check: the blob and type of a fresh key pair. */
struct hostkey {
	char *path, *pub, *type, *line_body; /* "type base64" */
	unsigned char *blob;
	size_t len;
};

static void hostkey_make(struct hostkey *k, const char *name,
			 const char *type)
{
	char *text;

	k->path = path_in(name);
	k->pub = ud_asprintf("%s.pub", k->path);
	keygen(k->path, type, "");
	k->blob = pub_blob(k->pub, &k->len, &k->type);
	text = slurp(k->pub);
	/* drop " comment\n" */
	k->line_body = ud_strndup(text, (size_t)(strrchr(text, ' ') - text));
	free(text);
}

static void hostkey_free(struct hostkey *k)
{
	free(k->path);
	free(k->pub);
	free(k->type);
	free(k->line_body);
	free(k->blob);
}

static void test_hostkey_known(void **state)
{
	struct ud_ssh_opts o = { 0 };
	struct hostkey k, ec;
	char *file = path_in("known_hosts"), *text;
	char *argv[] = { "ssh-keygen", "-q", "-H", "-f", file, NULL };

	(void)state;
	hostkey_make(&k, "hk", "ed25519");
	hostkey_make(&ec, "hk_ec", "ecdsa");

	/* A plain name on port 22 and "[name]:port" elsewhere. */
	text = ud_asprintf("# comment\n\nplain.example %s\n"
			   "[10.0.0.5]:2222 %s\n"
			   "other.example,alias.example %s\n",
			   k.line_body, k.line_body, ec.line_body);
	spit(file, text);
	free(text);
	o.known_hosts = file;
	assert_int_equal(ud_ssh_check_hostkey(&o, "plain.example", 22, k.blob,
					      k.len, k.type), 0);
	assert_int_equal(ud_ssh_check_hostkey(&o, "10.0.0.5", 2222, k.blob,
					      k.len, k.type), 0);
	assert_int_equal(ud_ssh_check_hostkey(&o, "alias.example", 22,
					      ec.blob, ec.len, ec.type), 0);
	/* Names are looked up lowercase, as ssh(1) does. */
	assert_int_equal(ud_ssh_check_hostkey(&o, "Plain.EXAMPLE", 22, k.blob,
					      k.len, k.type), 0);
	/* As with ssh(1), a port-22 entry says nothing about another port,
	 * and a "[name]:port" entry nothing about port 22. */
	assert_int_equal(ud_ssh_check_hostkey(&o, "plain.example", 2222,
					      k.blob, k.len, k.type),
			 UD_EAUTH);
	assert_int_equal(ud_ssh_check_hostkey(&o, "10.0.0.5", 22, k.blob,
					      k.len, k.type), UD_EAUTH);

	/* The same entries hashed by ssh-keygen -H. */
	assert_int_equal(run(NULL, argv), 0);
	text = slurp(file);
	assert_null(strstr(text, "plain.example"));
	assert_non_null(strstr(text, "|1|"));
	free(text);
	assert_int_equal(ud_ssh_check_hostkey(&o, "plain.example", 22, k.blob,
					      k.len, k.type), 0);
	assert_int_equal(ud_ssh_check_hostkey(&o, "10.0.0.5", 2222, k.blob,
					      k.len, k.type), 0);
	assert_int_equal(ud_ssh_check_hostkey(&o, "other.example", 22,
					      ec.blob, ec.len, ec.type), 0);

	/* Lines given as text, the file missing: the file is just empty. */
	o.known_hosts = "/nonexistent/known_hosts";
	text = ud_asprintf("[127.0.0.1]:2200 %s", k.line_body);
	o.known_hosts_text = text;
	assert_int_equal(ud_ssh_check_hostkey(&o, "127.0.0.1", 2200, k.blob,
					      k.len, NULL), 0);
	free(text);

	/* ~/.ssh/known_hosts by default. */
	o.known_hosts = NULL;
	o.known_hosts_text = NULL;
	text = ud_asprintf("%s/.ssh", W.home);
	assert_int_equal(ud_mkdir_p(text, 0700), 0);
	free(text);
	text = ud_asprintf("%s/.ssh/known_hosts", W.home);
	{
		char *line = ud_asprintf("home.example %s\n", k.line_body);

		spit(text, line);
		free(line);
	}
	free(text);
	assert_int_equal(ud_ssh_check_hostkey(&o, "home.example", 22, k.blob,
					      k.len, k.type), 0);

	hostkey_free(&k);
	hostkey_free(&ec);
	free(file);
}

static void test_hostkey_unknown_and_changed(void **state)
{
	struct ud_ssh_opts o = { 0 };
	struct hostkey k, other, ec;
	char *file = path_in("known_hosts"), *text, *fp, *want, *before;
	char *hash[] = { "ssh-keygen", "-q", "-H", "-f", file, NULL };

	(void)state;
	hostkey_make(&k, "hk", "ed25519");
	hostkey_make(&other, "hk2", "ed25519");
	hostkey_make(&ec, "hk_ec", "ecdsa");
	text = ud_asprintf("[h.example]:2222 %s\n", other.line_body);
	spit(file, text);
	free(text);
	o.known_hosts = file;

	/* Not there at all: unknown, with the fingerprint ssh(1) shows. */
	fp = ud_ssh_fingerprint(k.blob, k.len);
	assert_int_equal(ud_ssh_check_hostkey(&o, "new.example", 22, k.blob,
					      k.len, k.type), UD_EAUTH);
	want = ud_asprintf("host key for new.example is unknown (ssh-ed25519 "
			   "%s): add it to known_hosts or pass "
			   "--accept-new-host-keys", fp);
	assert_string_equal(ud_error_last(), want);
	free(want);

	/* Same type, another key: changed. */
	assert_int_equal(ud_ssh_check_hostkey(&o, "h.example", 2222, k.blob,
					      k.len, k.type), UD_EAUTH);
	want = ud_asprintf("host key for [h.example]:2222 has CHANGED (now "
			   "ssh-ed25519 %s): refusing to connect", fp);
	assert_string_equal(ud_error_last(), want);
	free(want);
	free(fp);

	/* Only an entry of another type: a server that offers only a type
	 * we lack has replaced its key as far as we can tell, so this is a
	 * change too, not a new host to trust. */
	fp = ud_ssh_fingerprint(ec.blob, ec.len);
	want = ud_asprintf("host key for [h.example]:2222 has CHANGED "
			   "(known_hosts has ssh-ed25519, the server offers "
			   "ecdsa-sha2-nistp256 %s): refusing to connect",
			   fp);
	assert_int_equal(ud_ssh_check_hostkey(&o, "h.example", 2222, ec.blob,
					      ec.len, ec.type), UD_EAUTH);
	assert_string_equal(ud_error_last(), want);

	/* accept_new never trusts a changed key, nor writes it down: of the
	 * same type or of another, with the entry plain or hashed. */
	o.accept_new = 1;
	assert_int_equal(ud_ssh_check_hostkey(&o, "h.example", 2222, k.blob,
					      k.len, k.type), UD_EAUTH);
	assert_non_null(strstr(ud_error_last(), "has CHANGED"));
	before = slurp(file);
	assert_int_equal(ud_ssh_check_hostkey(&o, "h.example", 2222, ec.blob,
					      ec.len, ec.type), UD_EAUTH);
	assert_string_equal(ud_error_last(), want);
	text = slurp(file);
	assert_string_equal(text, before);
	free(text);
	free(before);
	assert_int_equal(run(NULL, hash), 0);
	before = slurp(file);
	assert_null(strstr(before, "h.example"));
	assert_int_equal(ud_ssh_check_hostkey(&o, "h.example", 2222, ec.blob,
					      ec.len, ec.type), UD_EAUTH);
	assert_string_equal(ud_error_last(), want);
	text = slurp(file);
	assert_string_equal(text, before);
	free(text);
	free(before);
	free(want);
	free(fp);
	/* Another port of the same name is another host: new. */
	assert_int_equal(ud_ssh_check_hostkey(&o, "h.example", 2223, ec.blob,
					      ec.len, ec.type), 0);
	text = slurp(file);
	assert_non_null(strstr(text, ec.line_body));
	free(text);

	hostkey_free(&k);
	hostkey_free(&other);
	hostkey_free(&ec);
	free(file);
}

static void test_hostkey_accept_new(void **state)
{
	struct ud_ssh_opts o = { 0 };
	struct hostkey k;
	char *file, *text, *want;
	struct stat st;

	(void)state;
	hostkey_make(&k, "hk", "ed25519");

	/* Recorded in ~/.ssh/known_hosts, made 0700/0600 for it. */
	o.accept_new = 1;
	assert_int_equal(ud_ssh_check_hostkey(&o, "127.0.0.1", 2200, k.blob,
					      k.len, k.type), 0);
	file = ud_asprintf("%s/.ssh", W.home);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	free(file);
	file = ud_asprintf("%s/.ssh/known_hosts", W.home);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = slurp(file);
	want = ud_asprintf("[127.0.0.1]:2200 %s\n", k.line_body);
	assert_string_equal(text, want);
	free(want);
	free(text);

	/* Later, without accept_new, it is known. */
	o.accept_new = 0;
	assert_int_equal(ud_ssh_check_hostkey(&o, "127.0.0.1", 2200, k.blob,
					      k.len, k.type), 0);
	free(file);

	/* Into --known-hosts FILE when given, after a last line that lacked
	 * its newline; port 22 is the bare name. */
	file = path_in("kh_given");
	spit(file, "# no newline");
	o.known_hosts = file;
	o.accept_new = 1;
	assert_int_equal(ud_ssh_check_hostkey(&o, "edge.example", 22, k.blob,
					      k.len, k.type), 0);
	text = slurp(file);
	want = ud_asprintf("# no newline\nedge.example %s\n", k.line_body);
	assert_string_equal(text, want);
	free(want);
	free(text);
	o.accept_new = 0;
	assert_int_equal(ud_ssh_check_hostkey(&o, "edge.example", 22, k.blob,
					      k.len, k.type), 0);
	free(file);
	hostkey_free(&k);
}

static void test_hostkey_bad_file(void **state)
{
	struct ud_ssh_opts o = { 0 };
	struct hostkey k;
	char *file = path_in("kh_bad"), *want;

	(void)state;
	hostkey_make(&k, "hk", "ed25519");
	spit(file, "# fine\nonlyahost\n");
	o.known_hosts = file;
	assert_int_equal(ud_ssh_check_hostkey(&o, "x", 22, k.blob, k.len,
					      k.type), UD_EINVALID);
	want = ud_asprintf("%s:2: bad known_hosts line", file);
	assert_non_null(strstr(ud_error_last(), want));
	free(want);
	free(file);
	hostkey_free(&k);
}

/* ---- identities ------------------------------------------------------- */

static void test_identities_order(void **state)
{
	struct ud_ssh_opts o = { 0 };
	struct ud_ssh_id *ids;
	char *dir = ud_asprintf("%s/.ssh", W.home), *p;
	size_t n;

	(void)state;
	ud_ssh_identities(&o, &ids, &n);
	assert_int_equal(n, 0);
	ud_ssh_identities_free(ids, n);

	assert_int_equal(ud_mkdir_p(dir, 0700), 0);
	p = ud_asprintf("%s/id_rsa", dir);
	spit(p, "x");
	free(p);
	p = ud_asprintf("%s/id_ed25519", dir);
	spit(p, "x");
	free(p);
	setenv("SSH_AUTH_SOCK", "/nonexistent/agent.sock", 1);
	o.identity = "/keys/deploy";
	o.key_text = "-----BEGIN OPENSSH PRIVATE KEY-----\n...";
	ud_ssh_identities(&o, &ids, &n);
	assert_int_equal(n, 5);
	assert_int_equal(ids[0].kind, UD_SSH_ID_FILE);
	assert_string_equal(ids[0].path, "/keys/deploy");
	assert_string_equal(ids[0].label, "--identity");
	assert_int_equal(ids[1].kind, UD_SSH_ID_MEMORY);
	assert_null(ids[1].path);
	assert_string_equal(ids[1].label, "DEPLOY_SSH_KEY");
	assert_int_equal(ids[2].kind, UD_SSH_ID_AGENT);
	assert_string_equal(ids[2].label, "ssh-agent");
	assert_int_equal(ids[3].kind, UD_SSH_ID_FILE);
	assert_string_equal(ids[3].label, "~/.ssh/id_ed25519");
	p = ud_asprintf("%s/id_ed25519", dir);
	assert_string_equal(ids[3].path, p);
	free(p);
	assert_string_equal(ids[4].label, "~/.ssh/id_rsa");
	ud_ssh_identities_free(ids, n);

	o.no_agent = 1;
	o.no_default_keys = 1;
	ud_ssh_identities(&o, &ids, &n);
	assert_int_equal(n, 2);
	ud_ssh_identities_free(ids, n);
	unsetenv("SSH_AUTH_SOCK");
	free(dir);
}

/* ---- exec against the real sshd --------------------------------------- */

#define NEED_SSHD()                                                     \
	do {                                                            \
		if (W.skip)                                             \
			skip();                                         \
	} while (0)

/* Options that trust the sshd and offer nothing by default. */
static void opts_for_sshd(struct ud_ssh_opts *o)
{
	memset(o, 0, sizeof(*o));
	/* A login on a loaded machine can take longer than the default
	 * 10 s bound on reaching a host: these tests are about what the
	 * call does once there (the bound has tests of its own). */
	o->connect_timeout_ms = 60000;
	o->known_hosts = "/nonexistent/known_hosts";
	o->known_hosts_text = W.known_line;
	o->no_agent = 1;
	o->no_default_keys = 1;
}

static void test_exec_identity(void **state)
{
	struct ud_ssh_opts o;
	struct ud_buf out = UD_BUF_INIT, err = UD_BUF_INIT;
	int status = 99;

	(void)state;
	NEED_SSHD();
	opts_for_sshd(&o);
	o.identity = W.key;
	assert_int_equal(ud_ssh_exec(&o, W.target, "echo out; echo oops >&2; "
				     "exit 3", 60000, &out, &err, &status),
			 0);
	assert_string_equal(out.ptr, "out\n");
	assert_string_equal(err.ptr, "oops\n");
	assert_int_equal(status, 3);

	/* Output and errors may be dropped. */
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), 0);
	assert_int_equal(status, 0);

	/* A command that is killed has no exit status. */
	ud_buf_clear(&out);
	assert_int_equal(ud_ssh_exec(&o, W.target, "echo x; kill -9 $$",
				     60000, &out, NULL, &status), 0);
	assert_string_equal(out.ptr, "x\n");
	assert_int_equal(status, -1);
	ud_buf_free(&out);
	ud_buf_free(&err);
}

static void test_exec_large_output(void **state)
{
	struct ud_ssh_opts o;
	struct ud_buf out = UD_BUF_INIT, err = UD_BUF_INIT;
	int status = 99;

	(void)state;
	NEED_SSHD();
	opts_for_sshd(&o);
	o.identity = W.key;
	/* Both streams at once, each beyond an SSH window. */
	assert_int_equal(ud_ssh_exec(&o, W.target, "head -c 3000000 /dev/zero"
				     " | tr '\\0' a & head -c 3000000 "
				     "/dev/zero | tr '\\0' b >&2; wait",
				     30000, &out, &err, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(out.size, 3000000);
	assert_int_equal(err.size, 3000000);
	assert_int_equal(out.ptr[0], 'a');
	assert_int_equal(err.ptr[err.size - 1], 'b');

	/* A buffer's own cap is kept; the rest is read and dropped. */
	ud_buf_free(&out);
	ud_buf_init(&out, 1000);
	assert_int_equal(ud_ssh_exec(&o, W.target, "head -c 200000 /dev/zero;"
				     " exit 4", 30000, &out, NULL, &status),
			 0);
	assert_int_equal(out.size, 1000);
	assert_int_equal(status, 4);
	ud_buf_free(&out);
	ud_buf_free(&err);
}

/* The key exists only in memory: made, read, and deleted from disk. */
static void test_exec_key_text(void **state)
{
	struct ud_ssh_opts o;
	struct ud_buf out = UD_BUF_INIT;
	char *key = path_in("memkey"), *pub = ud_asprintf("%s.pub", key);
	char *text;
	int status = 99;

	(void)state;
	NEED_SSHD();
	keygen(key, "ed25519", "");
	authorize(key);
	text = slurp(key);
	assert_non_null(strstr(text, "BEGIN OPENSSH PRIVATE KEY"));
	assert_int_equal(unlink(key), 0);
	assert_int_equal(unlink(pub), 0);

	opts_for_sshd(&o);
	o.key_text = text;
	assert_int_equal(ud_ssh_exec(&o, W.target, "echo mem", 60000, &out,
				     NULL, &status), 0);
	assert_string_equal(out.ptr, "mem\n");
	assert_int_equal(status, 0);

	/* A key the server does not know: refused, and the text is never
	 * in the message. */
	free(text);
	text = slurp(W.stranger);
	o.key_text = text;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), UD_EAUTH);
	{
		char *want = ud_asprintf("%s: no key was accepted (tried: "
					 "DEPLOY_SSH_KEY)", W.target);

		assert_string_equal(ud_error_last(), want);
		free(want);
	}
	assert_null(strstr(ud_error_last(), "PRIVATE KEY"));
	free(text);
	free(pub);
	free(key);
	ud_buf_free(&out);
}

static void test_exec_agent(void **state)
{
	struct ud_ssh_opts o;
	struct ud_buf out = UD_BUF_INIT;
	char *key = path_in("agentkey"), *pub = ud_asprintf("%s.pub", key);
	char *sock = path_in("agent.sock");
	char *agent[] = { "ssh-agent", "-D", "-a", sock, NULL };
	char *add[] = { "ssh-add", "-q", key, NULL };
	struct ud_run_opts ro = { 0 };
	struct ud_strvec env = UD_STRVEC_INIT;
	pid_t pid;
	int status = 99, i;

	(void)state;
	NEED_SSHD();
	keygen(key, "ed25519", "");
	authorize(key);
	assert_int_equal(ud_spawn(&pid, agent, NULL, NULL, -1), 0);
	for (i = 0; i < 500 && access(sock, F_OK) != 0; i++)
		usleep(10000);
	assert_int_equal(access(sock, F_OK), 0);
	ud_env_from_environ(&env, 0);
	ud_env_set(&env, "SSH_AUTH_SOCK", sock);
	ro.env = env.v;
	ro.timeout_ms = 30000;
	assert_int_equal(ud_run(add, &ro, &status), 0);
	assert_int_equal(status, 0);
	/* From now on only the agent holds the key. */
	unlink(key);
	unlink(pub);

	opts_for_sshd(&o);
	o.no_agent = 0;
	setenv("SSH_AUTH_SOCK", sock, 1);
	status = 99;
	assert_int_equal(ud_ssh_exec(&o, W.target, "echo agent", 60000, &out,
				     NULL, &status), 0);
	assert_string_equal(out.ptr, "agent\n");
	assert_int_equal(status, 0);

	/* no_agent: nothing left to offer. */
	o.no_agent = 1;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), UD_EAUTH);
	assert_non_null(strstr(ud_error_last(), "no key was accepted"));
	unsetenv("SSH_AUTH_SOCK");

	ud_stop_group(pid, 2000);
	ud_strvec_free(&env);
	ud_buf_free(&out);
	free(sock);
	free(pub);
	free(key);
}

static void test_exec_default_key(void **state)
{
	struct ud_ssh_opts o;
	struct ud_buf out = UD_BUF_INIT;
	char *dir = ud_asprintf("%s/.ssh", W.home);
	char *dst = ud_asprintf("%s/id_ed25519", dir), *text = slurp(W.key);
	int status = 99;

	(void)state;
	NEED_SSHD();
	assert_int_equal(ud_mkdir_p(dir, 0700), 0);
	spit(dst, text);
	opts_for_sshd(&o);
	o.no_default_keys = 0;
	assert_int_equal(ud_ssh_exec(&o, W.target, "echo default", 60000,
				     &out, NULL, &status), 0);
	assert_string_equal(out.ptr, "default\n");
	assert_int_equal(status, 0);
	free(text);
	free(dst);
	free(dir);
	ud_buf_free(&out);
}

static void test_exec_passphrase(void **state)
{
	struct ud_ssh_opts o;
	char *dir = ud_asprintf("%s/.ssh", W.home);
	char *key = ud_asprintf("%s/id_rsa", dir), *want;
	char *locked = path_in("locked");
	int status = 99;

	(void)state;
	NEED_SSHD();
	assert_int_equal(ud_mkdir_p(dir, 0700), 0);
	/* An ed25519 key under id_rsa's name keeps keygen quick. */
	keygen(key, "ed25519", "secret");
	authorize(key);
	opts_for_sshd(&o);
	o.no_default_keys = 0;
	o.identity = W.stranger;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), UD_EAUTH);
	want = ud_asprintf("%s: no key was accepted (tried: --identity %s, "
			   "~/.ssh/id_rsa (passphrase-protected)): "
			   "~/.ssh/id_rsa is passphrase-protected: load it "
			   "into ssh-agent", W.target, W.stranger);
	assert_string_equal(ud_error_last(), want);
	free(want);

	/* The same through --identity, PEM this time. */
	keygen(locked, "ecdsa", "secret");
	{
		char *argv[] = { "ssh-keygen", "-q", "-p", "-m", "PEM", "-P",
				 "secret", "-N", "secret2", "-f", locked,
				 NULL };

		assert_int_equal(run(NULL, argv), 0);
	}
	opts_for_sshd(&o);
	o.identity = locked;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), UD_EAUTH);
	want = ud_asprintf("--identity %s is passphrase-protected: load it "
			   "into ssh-agent", locked);
	assert_non_null(strstr(ud_error_last(), want));
	free(want);
	free(locked);
	free(key);
	free(dir);
}

/* libssh2 1.10 signs RSA logins with SHA-1, which OpenSSH 8.8+ refuses:
 * either the login works (a newer libssh2) or the message says why. */
static void test_exec_rsa_key(void **state)
{
	struct ud_ssh_opts o;
	char *key = path_in("rsakey");
	int status = 99, rc;

	(void)state;
	NEED_SSHD();
	{
		char *argv[] = { "ssh-keygen", "-q", "-t", "rsa", "-b", "2048",
				 "-N", "", "-f", key, NULL };

		assert_int_equal(run(NULL, argv), 0);
	}
	authorize(key);
	opts_for_sshd(&o);
	o.identity = key;
	rc = ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL, &status);
	if (rc != 0) {
		assert_int_equal(rc, UD_EAUTH);
		assert_non_null(strstr(ud_error_last(), "(RSA: libssh2 signs "
						      "with ssh-rsa (SHA-1)"));
	}
	free(key);
}

static void test_exec_hostkeys(void **state)
{
	struct ud_ssh_opts o;
	char *file = path_in("kh_exec"), *hostpub, *want, *fp, *type;
	unsigned char *blob;
	size_t len;
	int status = 99;

	(void)state;
	NEED_SSHD();
	hostpub = ud_asprintf("%s/ssh_host_ed25519_key.pub", W.sshd_dir);
	blob = pub_blob(hostpub, &len, &type);
	fp = ud_ssh_fingerprint(blob, len);

	/* Unknown: refused before any key is offered. */
	opts_for_sshd(&o);
	o.identity = W.key;
	o.known_hosts_text = NULL;
	o.known_hosts = file;
	unlink(file);
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), UD_EAUTH);
	want = ud_asprintf("%s: host key for [127.0.0.1]:%d is unknown "
			   "(ssh-ed25519 %s): add it to known_hosts or pass "
			   "--accept-new-host-keys", W.target, W.sshd_port,
			   fp);
	assert_string_equal(ud_error_last(), want);
	free(want);

	/* accept_new records it; later it is simply known. */
	o.accept_new = 1;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), 0);
	o.accept_new = 0;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), 0);
	assert_int_equal(status, 0);

	/* Changed: another ed25519 key on record for it. */
	{
		struct hostkey k;
		char *line;

		hostkey_make(&k, "impostor", "ed25519");
		line = ud_asprintf("[127.0.0.1]:%d %s\n", W.sshd_port,
				   k.line_body);
		spit(file, line);
		free(line);
		hostkey_free(&k);
	}
	o.accept_new = 1;
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), UD_EAUTH);
	want = ud_asprintf("%s: host key for [127.0.0.1]:%d has CHANGED "
			   "(now ssh-ed25519 %s): refusing to connect",
			   W.target, W.sshd_port, fp);
	assert_string_equal(ud_error_last(), want);
	free(want);

	/* Changed too: known_hosts has only a type the server lacks (it
	 * serves ed25519 and ecdsa), so it offers a type we have no entry
	 * of. Refused, and accept_new writes nothing down. */
	{
		struct hostkey k;
		char *line, *text;

		hostkey_make(&k, "impostor_rsa", "rsa");
		line = ud_asprintf("[127.0.0.1]:%d %s\n", W.sshd_port,
				   k.line_body);
		spit(file, line);
		hostkey_free(&k);
		o.accept_new = 1;
		assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000,
					     NULL, NULL, &status), UD_EAUTH);
		want = ud_asprintf("%s: host key for [127.0.0.1]:%d has "
				   "CHANGED (known_hosts has ssh-rsa, the "
				   "server offers ssh-ed25519 %s): refusing "
				   "to connect", W.target, W.sshd_port, fp);
		assert_string_equal(ud_error_last(), want);
		free(want);
		text = slurp(file);
		assert_string_equal(text, line);
		free(text);
		free(line);
	}

	free(fp);
	free(type);
	free(blob);
	free(hostpub);
	free(file);
}

/* A server with several host keys shows the one known_hosts has, in
 * whatever form the entry takes. */
static void test_exec_hostkey_choice(void **state)
{
	struct ud_ssh_opts o;
	char *file = path_in("kh_choice"), *pub, *text, *line;
	char *argv[] = { "ssh-keygen", "-q", "-H", "-f", file, NULL };
	int status = 99;

	(void)state;
	NEED_SSHD();
	opts_for_sshd(&o);
	o.identity = W.key;
	o.known_hosts_text = NULL;
	o.known_hosts = file;

	pub = ud_asprintf("%s/ssh_host_ecdsa_key.pub", W.sshd_dir);
	text = slurp(pub);
	*strrchr(text, ' ') = '\0';
	line = ud_asprintf("[127.0.0.1]:%d %s\n", W.sshd_port, text);
	spit(file, line);
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), 0);
	assert_int_equal(status, 0);
	free(line);
	free(text);
	free(pub);

	/* The ed25519 entry, hashed. */
	spit(file, W.known_line);
	assert_int_equal(run(NULL, argv), 0);
	text = slurp(file);
	assert_null(strstr(text, "127.0.0.1"));
	free(text);
	assert_int_equal(ud_ssh_exec(&o, W.target, "true", 60000, NULL, NULL,
				     &status), 0);
	assert_int_equal(status, 0);
	free(file);
}

/* A bad $DEPLOY_SSH_CONNECT_TIMEOUT is refused before anything is
 * tried; once the command runs, only the whole call's deadline holds. */
static void test_exec_connect_timeout(void **state)
{
	static const char *bad[] = { "x", "0", "-3", "10s", "nan", "1e9",
				     " " };
	struct ud_ssh_opts o;
	struct ud_buf out = UD_BUF_INIT;
	size_t i;
	int status = 99;

	(void)state;
	opts_for_sshd(&o);
	o.identity = W.key;
	o.connect_timeout_ms = 0; /* the variable's turn */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("DEPLOY_SSH_CONNECT_TIMEOUT", bad[i], 1);
		assert_int_equal(ud_ssh_exec(&o, "u@127.0.0.1:1", "true",
					     10000, NULL, NULL, &status),
				 UD_EINVALID);
		assert_non_null(strstr(ud_error_last(),
				       "DEPLOY_SSH_CONNECT_TIMEOUT: '"));
		assert_non_null(strstr(ud_error_last(), bad[i]));
	}
	unsetenv("DEPLOY_SSH_CONNECT_TIMEOUT");

	NEED_SSHD();
	/* The command outlives the reach bound (and the bound is not the
	 * command's: 30 s is ample to reach a local sshd, even on a loaded
	 * machine, where 2 s was not). */
	o.connect_timeout_ms = 30000;
	assert_int_equal(ud_ssh_exec(&o, W.target, "sleep 33; echo late",
				     90000, &out, NULL, &status), 0);
	assert_string_equal(out.ptr, "late\n");
	assert_int_equal(status, 0);
	ud_buf_free(&out);
}

static void test_exec_unreachable(void **state)
{
	struct ud_ssh_opts o;
	char *target, *want;
	int port, status = 99, fd;
	struct ud_addr a;

	(void)state;
	opts_for_sshd(&o);
	o.identity = W.key;

	/* Nothing listens: refused at once. */
	assert_int_equal(ud_net_free_port(&port), 0);
	target = ud_asprintf("%s@127.0.0.1:%d", W.user, port);
	assert_int_equal(ud_ssh_exec(&o, target, "true", 10000, NULL, NULL,
				     &status), UD_ERROR);
	want = ud_asprintf("%s: connection refused", target);
	assert_string_equal(ud_error_last(), want);
	assert_int_equal(status, -1);
	free(want);

	/* Listens, never speaks: the handshake is bounded by the bound on
	 * reaching the host, itself never longer than the whole call. */
	assert_int_equal(ud_addr_parse(&a, strchr(target, '@') + 1), 0);
	assert_int_equal(ud_net_listen(&fd, &a, 8), 0);
	assert_int_equal(ud_ssh_exec(&o, target, "true", 300, NULL, NULL,
				     &status), UD_ETIMEOUT);
	want = ud_asprintf("%s: no SSH handshake within 0.3 s", target);
	assert_string_equal(ud_error_last(), want);
	free(want);

	/* A call that may run for ten minutes still gives up on a silent
	 * host after the reach bound: the option's, then the variable's. */
	o.connect_timeout_ms = 200;
	assert_int_equal(ud_ssh_exec(&o, target, "true", 600000, NULL, NULL,
				     &status), UD_ETIMEOUT);
	want = ud_asprintf("%s: no SSH handshake within 0.2 s", target);
	assert_string_equal(ud_error_last(), want);
	free(want);
	o.connect_timeout_ms = 0;
	setenv("DEPLOY_SSH_CONNECT_TIMEOUT", "1", 1);
	assert_int_equal(ud_ssh_exec(&o, target, "true", 600000, NULL, NULL,
				     &status), UD_ETIMEOUT);
	want = ud_asprintf("%s: no SSH handshake within 1 s", target);
	assert_string_equal(ud_error_last(), want);
	free(want);
	close(fd);
	free(target);
	unsetenv("DEPLOY_SSH_CONNECT_TIMEOUT");

	assert_int_equal(ud_ssh_exec(&o, "bad target@", "true", 1000, NULL,
				     NULL, &status), UD_EINVALID);
}

struct job {
	pthread_t th;
	int n, rc, status;
	char want[16];
	struct ud_buf out;
	char msg[256];
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	struct ud_ssh_opts o;
	char *cmd = ud_asprintf("echo %d", j->n);

	opts_for_sshd(&o);
	o.identity = W.key;
	j->rc = ud_ssh_exec(&o, W.target, cmd, 60000, &j->out, NULL,
			    &j->status);
	if (j->rc < 0)
		snprintf(j->msg, sizeof(j->msg), "%s", ud_error_last());
	free(cmd);
	return NULL;
}

static void test_exec_threads(void **state)
{
	struct job jobs[4];
	int i;

	(void)state;
	NEED_SSHD();
	for (i = 0; i < 4; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].n = i;
		ud_buf_init(&jobs[i].out, 0);
		snprintf(jobs[i].want, sizeof(jobs[i].want), "%d\n", i);
		assert_int_equal(pthread_create(&jobs[i].th, NULL, job_run,
						&jobs[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(jobs[i].th, NULL);
	for (i = 0; i < 4; i++) {
		if (jobs[i].rc != 0)
			fail_msg("thread %d: %s", i, jobs[i].msg);
		assert_string_equal(jobs[i].out.ptr, jobs[i].want);
		assert_int_equal(jobs[i].status, 0);
		ud_buf_free(&jobs[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_target_parse, test_setup),
		cmocka_unit_test_setup(test_target_parse_bad, test_setup),
		cmocka_unit_test_setup(test_fingerprint, test_setup),
		cmocka_unit_test_setup(test_hostkey_known, test_setup),
		cmocka_unit_test_setup(test_hostkey_unknown_and_changed,
				       test_setup),
		cmocka_unit_test_setup(test_hostkey_accept_new, test_setup),
		cmocka_unit_test_setup(test_hostkey_bad_file, test_setup),
		cmocka_unit_test_setup(test_identities_order, test_setup),
		cmocka_unit_test_setup(test_exec_identity, test_setup),
		cmocka_unit_test_setup(test_exec_large_output, test_setup),
		cmocka_unit_test_setup(test_exec_key_text, test_setup),
		cmocka_unit_test_setup(test_exec_agent, test_setup),
		cmocka_unit_test_setup(test_exec_default_key, test_setup),
		cmocka_unit_test_setup(test_exec_passphrase, test_setup),
		cmocka_unit_test_setup(test_exec_rsa_key, test_setup),
		cmocka_unit_test_setup(test_exec_hostkeys, test_setup),
		cmocka_unit_test_setup(test_exec_hostkey_choice, test_setup),
		cmocka_unit_test_setup(test_exec_unreachable, test_setup),
		cmocka_unit_test_setup(test_exec_connect_timeout, test_setup),
		cmocka_unit_test_setup(test_exec_threads, test_setup),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);

	libssh2_exit();
	return rc;
}
