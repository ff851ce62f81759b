/*
 * ssh.c: one command on one host over libssh2, and the host-key and
 * identity policies shared with libgit2's ssh transport (see ssh.h).
 *
 * Every ud_ssh_exec has its own session, so the signal fan-out may call
 * it from many threads at once; libssh2_init runs once for the process.
 */
#include "ssh.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh2.h>
#include <openssl/evp.h>

#include "errors.h"
#include "known_hosts.h"
#include "log.h"
#include "net.h"
#include "num.h"
#include "ssh_internal.h"
#include "sshkey.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
	init_rc = libssh2_init(0);
}

int ud_ssh__init(void)
{
	pthread_once(&init_once, init_libssh2);
	if (init_rc != 0)
		return ud_error_set(UD_ERROR, "cannot initialize libssh2");
	return 0;
}

const char *ud_ssh__errmsg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;

	if (!s || libssh2_session_last_error(s, &msg, NULL, 0) == 0 || !msg ||
	    !*msg)
		return "unknown libssh2 error";
	return msg;
}

void ud_ssh_opts_from_env(struct ud_ssh_opts *o)
{
	const char *kh = getenv("DEPLOY_KNOWN_HOSTS");
	const char *key = getenv("DEPLOY_SSH_KEY");

	memset(o, 0, sizeof(*o));
	if (key && *key)
		o->key_text = key;
	if (kh && *kh) {
		if (strpbrk(kh, " \n\t"))
			o->known_hosts_text = kh;
		else
			o->known_hosts = kh;
	}
}

/* $HOME, else the password database; NULL when neither knows. */
char *ud_ssh__home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (h && *h)
		return ud_strdup(h);
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res &&
	    res->pw_dir && *res->pw_dir)
		return ud_strdup(res->pw_dir);
	return NULL;
}

static char *user_name(void)
{
	const char *u = getenv("USER");
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (u && *u)
		return ud_strdup(u);
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res &&
	    res->pw_name && *res->pw_name)
		return ud_strdup(res->pw_name);
	return NULL;
}

/* ---- targets ---------------------------------------------------------- */

static int bad_target(const char *spec, const char *why)
{
	return ud_error_set(UD_EINVALID,
			    "invalid ssh target '%s': %s (expected "
			    "user@host[:port])", spec, why);
}

static int valid_name_chars(const char *s, size_t n, int host)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || c == '.' || c == '-' || c == '_')
			continue;
		if (host && (c == ':' || c == '%'))
			continue;
		return 0;
	}
	return 1;
}

int ud_ssh_target_parse(struct ud_ssh_target *t, const char *spec)
{
	const char *at, *h, *hend, *p = NULL;
	char *user = NULL;
	long port = 22;
	int err = 0, bracketed;

	memset(t, 0, sizeof(*t));
	if (!spec || !*spec)
		return bad_target(spec ? spec : "", "empty");
	at = strrchr(spec, '@');
	if (at) {
		if (at == spec)
			return bad_target(spec, "empty user");
		if (!valid_name_chars(spec, (size_t)(at - spec), 0))
			return bad_target(spec, "bad character in user");
		user = ud_strndup(spec, (size_t)(at - spec));
		h = at + 1;
	} else {
		if (!(user = user_name()))
			return bad_target(spec, "no user given and $USER "
					  "is not set");
		h = spec;
	}
	if ((bracketed = *h == '[')) {
		h++;
		if (!(hend = strchr(h, ']'))) {
			err = bad_target(spec, "unclosed '['");
			goto done;
		}
		if (hend[1] == ':')
			p = hend + 2;
		else if (hend[1]) {
			err = bad_target(spec, "junk after ']'");
			goto done;
		}
	} else {
		hend = strchr(h, ':');
		if (hend) {
			p = hend + 1;
			if (strchr(p, ':')) {
				err = bad_target(spec, "an IPv6 address needs "
						 "brackets: [addr]:port");
				goto done;
			}
		} else {
			hend = h + strlen(h);
		}
	}
	if (hend == h) {
		err = bad_target(spec, "empty host");
		goto done;
	}
	if (!valid_name_chars(h, (size_t)(hend - h), bracketed)) {
		err = bad_target(spec, "bad character in host");
		goto done;
	}
	if (p) {
		long long n;

		port = ud_num_parse(p, 1, 65535, &n) == 0 ? (long)n : -1;
		if (port < 0) {
			err = bad_target(spec, "bad port");
			goto done;
		}
	}
	t->user = user;
	user = NULL;
	t->host = ud_strndup(h, (size_t)(hend - h));
	t->port = (int)port;

done:
	free(user);
	return err;
}

void ud_ssh_target_free(struct ud_ssh_target *t)
{
	if (!t)
		return;
	free(t->user);
	free(t->host);
	t->user = t->host = NULL;
}

/* ---- host keys: fingerprints here, trust in known_hosts.c ------------- */

char *ud_ssh_fingerprint(const void *key, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	int n;

	if (!EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL))
		return ud_strdup("SHA256:?");
	n = EVP_EncodeBlock(b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	return ud_asprintf("SHA256:%s", b64);
}

int ud_ssh_check_hostkey(const struct ud_ssh_opts *o, const char *host,
			 int port, const void *key, size_t len,
			 const char *keytype)
{
	struct ud_known_hosts k;
	int err;

	if ((err = ud_known_hosts_load(&k, o)) < 0)
		return err;
	err = ud_known_hosts_check(&k, o, host, port, key, len, keytype);
	ud_known_hosts_free(&k);
	return err;
}

/* ---- identities ------------------------------------------------------- */

static const struct {
	const char *file;
	const char *label;
} default_keys[] = {
	{ "id_ed25519", "~/.ssh/id_ed25519" },
	{ "id_ecdsa", "~/.ssh/id_ecdsa" },
	{ "id_rsa", "~/.ssh/id_rsa" },
};

void ud_ssh_identities(const struct ud_ssh_opts *o, struct ud_ssh_id **ids,
		       size_t *n)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	struct ud_ssh_id *v = ud_calloc(6, sizeof(*v));
	size_t i, c = 0;
	char *home;

	if (o && o->identity && *o->identity) {
		v[c].kind = UD_SSH_ID_FILE;
		v[c].path = ud_strdup(o->identity);
		v[c++].label = "--identity";
	}
	if (o && o->key_text && *o->key_text) {
		v[c].kind = UD_SSH_ID_MEMORY;
		v[c++].label = "DEPLOY_SSH_KEY";
	}
	if (!(o && o->no_agent) && sock && *sock) {
		v[c].kind = UD_SSH_ID_AGENT;
		v[c++].label = "ssh-agent";
	}
	if (!(o && o->no_default_keys) && (home = ud_ssh__home_dir())) {
		for (i = 0; i < sizeof(default_keys) / sizeof(default_keys[0]);
		     i++) {
			char *p = ud_asprintf("%s/.ssh/%s", home,
					      default_keys[i].file);
			struct stat st;

			if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
				v[c].kind = UD_SSH_ID_FILE;
				v[c].path = p;
				v[c++].label = default_keys[i].label;
			} else {
				free(p);
			}
		}
		free(home);
	}
	*ids = v;
	*n = c;
}

void ud_ssh_identities_free(struct ud_ssh_id *ids, size_t n)
{
	size_t i;

	if (!ids)
		return;
	for (i = 0; i < n; i++)
		free(ids[i].path);
	free(ids);
}

/* ---- exec ----------------------------------------------------------- */

/* One connection: libssh2 runs non-blocking and every wait is a poll on
 * the socket bounded by what is left of the caller's deadline, so a
 * server that accepts and never speaks cannot hold us past it. Until
 * the command runs, the nearer reach deadline bounds the waits too. */
struct conn {
	const char *name; /* "user@host:port", for messages */
	LIBSSH2_SESSION *s;
	int fd;
	long long deadline; /* -1: none */
	int timeout_ms;
	/* While reaching the host: what is being waited for ("cannot
	 * connect", ...), NULL once authenticated. */
	const char *phase;
	long long reach_deadline;
	int reach_ms;
};

static int conn_timeout(const struct conn *c)
{
	if (c->phase)
		return ud_error_set(UD_ETIMEOUT, "%s: %s within %g s", c->name,
				    c->phase, c->reach_ms / 1000.0);
	return ud_error_set(UD_ETIMEOUT, "%s: timed out after %d ms", c->name,
			    c->timeout_ms);
}

/* The deadline of the current wait: -1 for none. */
static long long conn_deadline(const struct conn *c)
{
	return c->phase ? c->reach_deadline : c->deadline;
}

/* The bound on reaching a host (ssh.h), in ms; UD_EINVALID for a bad
 * $DEPLOY_SSH_CONNECT_TIMEOUT. */
static int reach_timeout(const struct ud_ssh_opts *o, int timeout_ms,
			 int *out)
{
	const char *env = getenv("DEPLOY_SSH_CONNECT_TIMEOUT");
	double secs;
	char *end;
	int ms = UD_SSH_CONNECT_TIMEOUT_MS;

	if (o->connect_timeout_ms > 0) {
		ms = o->connect_timeout_ms;
	} else if (env && *env) {
		errno = 0;
		secs = strtod(env, &end);
		/* !(x > 0) also refuses a NaN. */
		if (errno || *end || end == env || !(secs > 0) ||
		    secs > 86400)
			return ud_error_set(UD_EINVALID,
					    "DEPLOY_SSH_CONNECT_TIMEOUT: '%s' "
					    "is not a number of seconds "
					    "(more than 0, at most 86400)",
					    env);
		ms = (int)(secs * 1000 + 0.5);
		if (ms < 1)
			ms = 1;
	}
	if (timeout_ms > 0 && ms > timeout_ms)
		ms = timeout_ms;
	*out = ms;
	return 0;
}

static int conn_wait(const struct conn *c)
{
	int dirs = libssh2_session_block_directions(c->s);
	struct pollfd p = { .fd = c->fd, .events = 0 };
	long long left = -1;
	int rc;

	if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
		p.events |= POLLIN;
	if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		p.events |= POLLOUT;
	if (!p.events)
		p.events = POLLIN;
	if (conn_deadline(c) >= 0 &&
	    (left = conn_deadline(c) - ud_now_ms()) <= 0)
		return conn_timeout(c);
	rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
	if (rc < 0 && errno == EINTR)
		return 0;
	if (rc < 0)
		return ud_error_set_errno(UD_ERROR, "%s: poll", c->name);
	if (rc == 0)
		return conn_timeout(c);
	return 0;
}

static int conn_fail(const struct conn *c, const char *what)
{
	return ud_error_set(UD_ERROR, "%s: %s: %s", c->name, what,
			    ud_ssh__errmsg(c->s));
}

/* Repeat a libssh2 call while it would block, waiting on the socket in
 * between; leaves its result in rc, jumps to done on a timeout. */
#define RETRY(c, rc, call)                                              \
	while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN)                 \
		if ((err = conn_wait(c)) < 0)                           \
			goto done;

/* What became of each identity, for the final message. */
struct tried {
	struct ud_buf list;      /* "--identity FILE, DEPLOY_SSH_KEY, ..." */
	const char *locked;      /* a passphrase-protected key, by label */
	char *locked_path;
};

static void tried_add(struct tried *t, const struct ud_ssh_id *id,
		      const char *note)
{
	ud_buf_printf(&t->list, "%s%s", t->list.size ? ", " : "", id->label);
	if (id->kind == UD_SSH_ID_FILE && !strcmp(id->label, "--identity"))
		ud_buf_printf(&t->list, " %s", id->path);
	if (note)
		ud_buf_printf(&t->list, " (%s)", note);
}

/* 1: accepted, 0: refused (try the next), or an error. */
static int auth_result(const struct conn *c, int rc)
{
	if (rc == 0)
		return 1;
	if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
	    rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED ||
	    rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_METHOD_NONE ||
	    rc == LIBSSH2_ERROR_PUBLICKEY_UNRECOGNIZED)
		return 0;
	return conn_fail(c, "authentication failed");
}

static int auth_agent(const struct conn *c, const char *user,
		      const struct ud_ssh_id *id, struct tried *t)
{
	LIBSSH2_AGENT *a = libssh2_agent_init(c->s);
	struct libssh2_agent_publickey *k = NULL, *prev = NULL;
	const char *note = NULL;
	int rc, err = 0, keys = 0;

	if (!a || libssh2_agent_connect(a) != 0) {
		note = "cannot connect";
		goto done;
	}
	if (libssh2_agent_list_identities(a) != 0) {
		note = "cannot list its keys";
		goto done;
	}
	while (libssh2_agent_get_identity(a, &k, prev) == 0) {
		keys++;
		RETRY(c, rc, libssh2_agent_userauth(a, user, k));
		if ((err = auth_result(c, rc)) != 0)
			goto done;
		prev = k;
	}
	if (!keys)
		note = "no keys";

done:
	if (err <= 0)
		tried_add(t, id, note);
	if (a) {
		libssh2_agent_disconnect(a);
		libssh2_agent_free(a);
	}
	return err;
}

static int auth_key(const struct conn *c, const char *user,
		    const struct ud_ssh_id *id, const char *key_text,
		    struct tried *t)
{
	struct ud_buf b = UD_BUF_INIT;
	unsigned int ulen = (unsigned int)strlen(user);
	int rc, err = 0, encrypted, rsa;

	if (id->kind == UD_SSH_ID_FILE) {
		b.max = 1024 * 1024;
		if (ud_buf_read_file(&b, id->path) < 0) {
			tried_add(t, id, errno == ENOENT ? "missing" :
				  "unreadable");
			ud_error_clear();
			goto done;
		}
		key_text = b.ptr;
	}
	ud_sshkey_info(key_text, strlen(key_text), &encrypted, &rsa);
	if (encrypted) {
		tried_add(t, id, "passphrase-protected");
		if (!t->locked) {
			t->locked = id->label;
			t->locked_path = id->kind == UD_SSH_ID_FILE ?
					 ud_strdup(id->path) : NULL;
		}
		goto done;
	}
	if (id->kind == UD_SSH_ID_FILE) {
		RETRY(c, rc, libssh2_userauth_publickey_fromfile_ex(
			c->s, user, ulen, NULL, id->path, NULL));
	} else {
		RETRY(c, rc, libssh2_userauth_publickey_frommemory(
			c->s, user, ulen, NULL, 0, key_text, strlen(key_text),
			NULL));
	}
	/* libssh2 1.10 signs with RSA/SHA-1 only, which OpenSSH 8.8 and
	 * later refuse by default: say so rather than leave it a mystery. */
	if ((err = auth_result(c, rc)) == 0)
		tried_add(t, id, rc == LIBSSH2_ERROR_FILE ?
			  "not a key libssh2 can use" :
			  rsa ? "RSA: libssh2 signs with ssh-rsa (SHA-1), "
				"which OpenSSH 8.8+ refuses; use an ed25519 "
				"key" : NULL);

done:
	if (b.asize)
		OPENSSL_cleanse(b.ptr, b.size);
	ud_buf_free(&b);
	return err;
}

static int authenticate(const struct conn *c, const struct ud_ssh_opts *o,
			const char *user)
{
	struct tried t = { UD_BUF_INIT, NULL, NULL };
	struct ud_ssh_id *ids;
	size_t n, i;
	int err = 0;

	ud_ssh_identities(o, &ids, &n);
	for (i = 0; i < n && err == 0; i++) {
		if (ids[i].kind == UD_SSH_ID_AGENT)
			err = auth_agent(c, user, &ids[i], &t);
		else
			err = auth_key(c, user, &ids[i], o->key_text, &t);
	}
	if (err > 0)
		err = 0;
	else if (err == 0 && n == 0)
		err = ud_error_set(UD_EAUTH, "%s: no key was accepted (tried: "
				   "nothing; pass --identity FILE, set "
				   "DEPLOY_SSH_KEY or start ssh-agent)",
				   c->name);
	else if (err == 0 && t.locked && !strcmp(t.locked, "--identity"))
		err = ud_error_set(UD_EAUTH, "%s: no key was accepted (tried: "
				   "%s): --identity %s is passphrase-"
				   "protected: load it into ssh-agent",
				   c->name, t.list.ptr, t.locked_path);
	else if (err == 0 && t.locked)
		err = ud_error_set(UD_EAUTH, "%s: no key was accepted (tried: "
				   "%s): %s is passphrase-protected: load it "
				   "into ssh-agent", c->name, t.list.ptr,
				   t.locked);
	else if (err == 0)
		err = ud_error_set(UD_EAUTH, "%s: no key was accepted (tried: "
				   "%s)", c->name, t.list.ptr);
	ud_ssh_identities_free(ids, n);
	ud_buf_free(&t.list);
	free(t.locked_path);
	return err;
}

/* Append what fits under the cap; the rest is read and dropped so the
 * remote command is never stalled by a full window. */
static void keep(struct ud_buf *b, const char *data, size_t len)
{
	size_t cap = UD_SSH_OUTPUT_MAX;

	if (!b)
		return;
	if (b->max && b->max < cap)
		cap = b->max;
	if (b->size >= cap)
		return;
	if (len > cap - b->size)
		len = cap - b->size;
	ud_buf_put(b, data, len);
}

static int connect_host(struct conn *c, const struct ud_ssh_target *t)
{
	struct ud_addr a;
	char *spec = strchr(t->host, ':') ?
		     ud_asprintf("[%s]:%d", t->host, t->port) :
		     ud_asprintf("%s:%d", t->host, t->port);
	long long left = conn_deadline(c) < 0 ? 0 :
			 conn_deadline(c) - ud_now_ms();
	const char *why, *prefix;
	char *msg;
	int err;

	if ((err = ud_addr_parse(&a, spec)) < 0) {
		ud_error_prefix("%s", c->name);
		goto done;
	}
	if (conn_deadline(c) >= 0 && left <= 0) {
		err = conn_timeout(c);
		goto done;
	}
	if ((err = ud_net_connect(&c->fd, &a, (int)(left > INT_MAX ? INT_MAX :
						     left))) < 0) {
		/* net.c says "cannot connect to ADDR: why"; the target
		 * already names the address. */
		prefix = "cannot connect to ";
		why = ud_error_last();
		if (!strncmp(why, prefix, strlen(prefix)) &&
		    !strncmp(why + strlen(prefix), a.text, strlen(a.text)) &&
		    !strncmp(why + strlen(prefix) + strlen(a.text), ": ", 2))
			why += strlen(prefix) + strlen(a.text) + 2;
		msg = ud_strdup(why);
		if (*msg && strncmp(msg, "timed out", 9))
			msg[0] = (char)tolower((unsigned char)msg[0]);
		if (err == UD_ETIMEOUT)
			err = conn_timeout(c);
		else
			err = ud_error_set(err, "%s: %s", c->name, msg);
		free(msg);
		goto done;
	}
	err = ud_net_nonblock(c->fd, 1);

done:
	free(spec);
	return err;
}

static int read_output(const struct conn *c, LIBSSH2_CHANNEL *ch,
		       struct ud_buf *out, struct ud_buf *errb)
{
	char buf[16384];
	ssize_t n1, n2;
	int err = 0;

	for (;;) {
		n1 = libssh2_channel_read(ch, buf, sizeof(buf));
		if (n1 > 0)
			keep(out, buf, (size_t)n1);
		n2 = libssh2_channel_read_stderr(ch, buf, sizeof(buf));
		if (n2 > 0)
			keep(errb, buf, (size_t)n2);
		if ((n1 < 0 && n1 != LIBSSH2_ERROR_EAGAIN) ||
		    (n2 < 0 && n2 != LIBSSH2_ERROR_EAGAIN))
			return conn_fail(c, "reading the command's output");
		if (n1 > 0 || n2 > 0)
			continue;
		if (libssh2_channel_eof(ch))
			break;
		if ((err = conn_wait(c)) < 0)
			break;
	}
	return err;
}

int ud_ssh_exec(const struct ud_ssh_opts *o, const char *target,
		const char *command, int timeout_ms, struct ud_buf *out,
		struct ud_buf *errb, int *status)
{
	struct ud_ssh_opts none = { 0 };
	struct ud_ssh_target t = { 0 };
	struct conn c = { .fd = -1, .deadline = -1 };
	struct ud_known_hosts k = { 0 };
	LIBSSH2_CHANNEL *ch = NULL;
	const char *key;
	char *name = NULL, *algs = NULL, *sig = NULL;
	size_t klen;
	int type, rc, err;

	*status = -1;
	if (!o)
		o = &none;
	if ((err = ud_ssh__init()) < 0)
		return err;
	if ((err = ud_ssh_target_parse(&t, target)) < 0)
		return err;
	name = strchr(t.host, ':') ?
	       ud_asprintf("%s@[%s]:%d", t.user, t.host, t.port) :
	       ud_asprintf("%s@%s:%d", t.user, t.host, t.port);
	c.name = name;
	c.timeout_ms = timeout_ms;
	if ((err = reach_timeout(o, timeout_ms, &c.reach_ms)) < 0)
		goto done;
	if (timeout_ms > 0)
		c.deadline = ud_now_ms() + timeout_ms;
	c.reach_deadline = ud_now_ms() + c.reach_ms;

	if ((err = ud_known_hosts_load(&k, o)) < 0) {
		ud_error_prefix("%s", name);
		goto done;
	}
	c.phase = "cannot connect";
	if ((err = connect_host(&c, &t)) < 0)
		goto done;
	c.phase = "no SSH handshake";
	if (!(c.s = libssh2_session_init())) {
		err = ud_error_set(UD_ERROR, "%s: cannot start a libssh2 "
				   "session", name);
		goto done;
	}
	libssh2_session_set_blocking(c.s, 0);
	if ((algs = ud_known_hosts_algs(&k, c.s, t.host, t.port)) &&
	    libssh2_session_method_pref(c.s, LIBSSH2_METHOD_HOSTKEY, algs)) {
		err = conn_fail(&c, "cannot choose host key algorithms");
		goto done;
	}
	RETRY(&c, rc, libssh2_session_handshake(c.s, c.fd));
	if (rc) {
		err = conn_fail(&c, "ssh handshake failed");
		goto done;
	}
	if (!(key = libssh2_session_hostkey(c.s, &klen, &type))) {
		err = conn_fail(&c, "no host key");
		goto done;
	}
	if ((err = ud_known_hosts_check(&k, o, t.host, t.port, key, klen,
					NULL)) < 0) {
		ud_error_prefix("%s", name);
		goto done;
	}
	c.phase = "not authenticated";
	if ((err = authenticate(&c, o, t.user)) < 0)
		goto done;
	c.phase = NULL;

	while (!(ch = libssh2_channel_open_session(c.s)) &&
	       libssh2_session_last_errno(c.s) == LIBSSH2_ERROR_EAGAIN)
		if ((err = conn_wait(&c)) < 0)
			goto done;
	if (!ch) {
		err = conn_fail(&c, "cannot open a channel");
		goto done;
	}
	RETRY(&c, rc, libssh2_channel_exec(ch, command));
	if (rc) {
		err = conn_fail(&c, "cannot run the command");
		goto done;
	}
	if ((err = read_output(&c, ch, out, errb)) < 0)
		goto done;
	RETRY(&c, rc, libssh2_channel_close(ch));
	if (rc == 0)
		RETRY(&c, rc, libssh2_channel_wait_closed(ch));
	if (rc) {
		err = conn_fail(&c, "closing the channel");
		goto done;
	}
	/* libssh2 reports 0 when no exit-status came; a signal is not a
	 * status at all. */
	if (libssh2_channel_get_exit_signal(ch, &sig, NULL, NULL, NULL, NULL,
					    NULL) == 0 && sig)
		*status = -1;
	else
		*status = libssh2_channel_get_exit_status(ch);
	if (sig)
		libssh2_free(c.s, sig);
	/* A goodbye, not waited for: the command's outcome is known. */
	libssh2_session_disconnect(c.s, "done");

done:
	if (c.s) {
		/* Whatever is unsent now stays unsent: with the socket shut,
		 * the frees below cannot wait on the peer. */
		if (c.fd >= 0)
			shutdown(c.fd, SHUT_RDWR);
		libssh2_session_set_blocking(c.s, 1);
		if (ch)
			libssh2_channel_free(ch);
		libssh2_session_free(c.s);
	}
	if (c.fd >= 0)
		close(c.fd);
	ud_known_hosts_free(&k);
	ud_ssh_target_free(&t);
	free(algs);
	free(name);
	return err;
}
