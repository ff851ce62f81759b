/*
 * known_hosts.c: OpenSSH known_hosts data through libssh2's knownhost
 * API: plain names, "[host]:port" and hashed entries, and recording a
 * newly trusted key (see known_hosts.h).
 */
#include "known_hosts.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "errors.h"
#include "log.h"
#include "net.h"
#include "ssh_internal.h"

/* Key types as known_hosts names them, the libssh2 knownhost bits, and
 * the host key algorithms that produce such a key (ssh -Q HostKeyAlgorithms,
 * minus what libssh2 lacks). */
static const struct keytype {
	const char *name;
	int mask;
	const char *algs;
} keytypes[] = {
	{ "ssh-ed25519", LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519" },
	{ "ecdsa-sha2-nistp256", LIBSSH2_KNOWNHOST_KEY_ECDSA_256,
	  "ecdsa-sha2-nistp256" },
	{ "ecdsa-sha2-nistp384", LIBSSH2_KNOWNHOST_KEY_ECDSA_384,
	  "ecdsa-sha2-nistp384" },
	{ "ecdsa-sha2-nistp521", LIBSSH2_KNOWNHOST_KEY_ECDSA_521,
	  "ecdsa-sha2-nistp521" },
	{ "ssh-rsa", LIBSSH2_KNOWNHOST_KEY_SSHRSA,
	  "rsa-sha2-512,rsa-sha2-256,ssh-rsa" },
	{ "ssh-dss", LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss" },
};

static const struct keytype *keytype_find(const char *name, size_t n)
{
	size_t i;

	/* libgit2 and some callers name the signature algorithm. */
	if ((n == 12 && !strncmp(name, "rsa-sha2-256", n)) ||
	    (n == 12 && !strncmp(name, "rsa-sha2-512", n)))
		name = "ssh-rsa", n = 7;
	for (i = 0; i < sizeof(keytypes) / sizeof(keytypes[0]); i++)
		if (strlen(keytypes[i].name) == n &&
		    !strncmp(keytypes[i].name, name, n))
			return &keytypes[i];
	return NULL;
}

/* The algorithm name a key blob starts with (RFC 4253 §6.6); caller
 * frees; NULL if the blob is too short to hold one. */
static char *blob_type(const void *key, size_t len)
{
	const unsigned char *k = key;
	size_t n;

	if (len < 4)
		return NULL;
	n = (size_t)k[0] << 24 | (size_t)k[1] << 16 | (size_t)k[2] << 8 | k[3];
	if (n == 0 || n > 64 || n > len - 4)
		return NULL;
	return ud_strndup((const char *)k + 4, n);
}

void ud_known_hosts_free(struct ud_known_hosts *k)
{
	if (k->kh)
		libssh2_knownhost_free(k->kh);
	if (k->s)
		libssh2_session_free(k->s);
	k->kh = NULL;
	k->s = NULL;
}

/* Feed known_hosts text, line by line so that an error names its line. */
static int known_read_text(struct ud_known_hosts *k, const char *text,
			   size_t len, const char *what)
{
	const char *p = text, *end = text + len;
	int line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end, *q = p;
		size_t n;

		line++;
		while (q < e && (*q == ' ' || *q == '\t'))
			q++;
		n = (size_t)(e - q);
		while (n && (q[n - 1] == '\r' || q[n - 1] == ' ' ||
			     q[n - 1] == '\t'))
			n--;
		/* Markers (@cert-authority, @revoked) are for certificates
		 * and revocation, which libssh2 does not do: such lines are
		 * no trust for us, so they are left out. */
		if (n && *q != '#' && *q != '@') {
			/* libssh2 reads the key up to a NUL, whatever len
			 * says: give it the line alone. */
			char *l = ud_strndup(q, n);
			int rc = libssh2_knownhost_readline(
				k->kh, l, n, LIBSSH2_KNOWNHOST_FILE_OPENSSH);

			free(l);
			if (rc)
				return ud_error_set(UD_EINVALID,
						    "%s:%d: bad known_hosts "
						    "line: %s", what, line,
						    ud_ssh__errmsg(k->s));
		}
		p = e + 1;
	}
	return 0;
}

/* The file host keys are read from and recorded in; caller frees. */
static char *known_file(const struct ud_ssh_opts *o)
{
	char *home;
	char *path;

	if (o && o->known_hosts)
		return ud_strdup(o->known_hosts);
	if (!(home = ud_ssh__home_dir()))
		return NULL;
	path = ud_asprintf("%s/.ssh/known_hosts", home);
	free(home);
	return path;
}

int ud_known_hosts_load(struct ud_known_hosts *k, const struct ud_ssh_opts *o)
{
	struct ud_buf b = UD_BUF_INIT;
	char *file = NULL;
	int err;

	memset(k, 0, sizeof(*k));
	if ((err = ud_ssh__init()) < 0)
		return err;
	if (!(k->s = libssh2_session_init()) ||
	    !(k->kh = libssh2_knownhost_init(k->s))) {
		err = ud_error_set(UD_ERROR, "cannot initialize libssh2");
		goto done;
	}
	if ((file = known_file(o))) {
		b.max = 16 * 1024 * 1024;
		err = ud_buf_read_file(&b, file);
		if (err == UD_ENOTFOUND)
			err = 0;
		else if (err < 0)
			goto done;
		else if ((err = known_read_text(k, b.ptr, b.size, file)) < 0)
			goto done;
	}
	if (o && o->known_hosts_text)
		err = known_read_text(k, o->known_hosts_text,
				      strlen(o->known_hosts_text),
				      "DEPLOY_KNOWN_HOSTS");

done:
	if (err < 0)
		ud_known_hosts_free(k);
	ud_buf_free(&b);
	free(file);
	return err;
}

/* "name" for port 22, "[name]:port" otherwise, as OpenSSH writes and
 * hashes them; lowercase, as ssh(1) looks names up. */
static char *host_key_name(const char *host, int port)
{
	char *name = port == 22 ? ud_strdup(host) :
		     ud_asprintf("[%s]:%d", host, port), *p;

	for (p = name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return name;
}

/* Append a line to the known_hosts file, creating ~/.ssh if it is the
 * default one. The lock keeps concurrent appends whole. */
static int known_record(const struct ud_ssh_opts *o, const char *name,
			const char *type, const void *key, size_t len)
{
	char *file = known_file(o), *line = NULL, *dir = NULL, *slash;
	unsigned char *b64 = NULL;
	struct stat st;
	int fd = -1, err = 0;
	char last;

	if (!file)
		return ud_error_set(UD_ERROR, "cannot record the host key for "
				    "%s: no known_hosts file ($HOME is not "
				    "set)", name);
	if (!(o && o->known_hosts) && (slash = strrchr(file, '/'))) {
		dir = ud_strndup(file, (size_t)(slash - file));
		if ((err = ud_mkdir_p(dir, 0700)) < 0)
			goto done;
	}
	b64 = ud_malloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock(b64, key, (int)len);
	line = ud_asprintf("%s %s %s\n", name, type, (char *)b64);
	fd = open(file, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot record the host "
					 "key for %s in %s", name, file);
		goto done;
	}
	/* A file whose last line lacks its newline would glue ours to it. */
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 &&
	    last != '\n' && (err = ud_write_all(fd, "\n", 1)) < 0)
		goto done;
	if ((err = ud_write_all(fd, line, strlen(line))) < 0) {
		ud_error_prefix("cannot record the host key for %s in %s",
				name, file);
		goto done;
	}
	ud_log_info("added the host key for %s (%s) to %s", name, type, file);

done:
	if (fd >= 0)
		close(fd);
	free(b64);
	free(line);
	free(dir);
	free(file);
	return err;
}

#define NKEYTYPES (sizeof(keytypes) / sizeof(keytypes[0]))

/* Which key types known_hosts has for `name` (in OpenSSH's form, hashed
 * entries included): known[i] for keytypes[i]; the count. A probe key
 * matches nothing, so MISMATCH means "an entry of this type exists". */
static int known_types(const struct ud_known_hosts *k, const char *name,
		       int known[NKEYTYPES])
{
	size_t i;
	int n = 0;

	for (i = 0; i < NKEYTYPES; i++) {
		known[i] = libssh2_knownhost_checkp(
			k->kh, name, -1, "?", 1,
			LIBSSH2_KNOWNHOST_TYPE_PLAIN |
			LIBSSH2_KNOWNHOST_KEYENC_RAW | keytypes[i].mask,
			NULL) == LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
		n += known[i];
	}
	return n;
}

int ud_known_hosts_check(const struct ud_known_hosts *k,
			 const struct ud_ssh_opts *o, const char *host,
			 int port, const void *key, size_t len,
			 const char *keytype)
{
	char *name = host_key_name(host, port);
	char *btype = blob_type(key, len), *fp = NULL;
	const char *type = btype ? btype : keytype ? keytype : "unknown";
	const struct keytype *kt = keytype_find(type, strlen(type));
	int known[NKEYTYPES];
	int rc, err = 0;

	/* port -1: the name is already in OpenSSH's form, so a plain
	 * "host" entry never vouches for another port (ssh(1) too). */
	rc = libssh2_knownhost_checkp(k->kh, name, -1, key, len,
				      LIBSSH2_KNOWNHOST_TYPE_PLAIN |
				      LIBSSH2_KNOWNHOST_KEYENC_RAW |
				      (kt ? kt->mask :
				       LIBSSH2_KNOWNHOST_KEY_UNKNOWN), NULL);
	if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		goto done;
	fp = ud_ssh_fingerprint(key, len);
	if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
		err = ud_error_set(UD_EAUTH, "host key for %s has CHANGED "
				   "(now %s %s): refusing to connect", name,
				   type, fp);
	} else if (rc == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND &&
		   known_types(k, name, known) > 0) {
		/* libssh2 only looks at entries of the offered type, but a
		 * host on record under another type is not new: a server
		 * that offers only a type we lack is how a man in the
		 * middle would get his key recorded under accept_new. */
		struct ud_buf have = UD_BUF_INIT;
		size_t i;

		for (i = 0; i < NKEYTYPES; i++)
			if (known[i])
				ud_buf_printf(&have, "%s%s",
					      have.size ? ", " : "",
					      keytypes[i].name);
		err = ud_error_set(UD_EAUTH, "host key for %s has CHANGED "
				   "(known_hosts has %s, the server offers "
				   "%s %s): refusing to connect", name,
				   have.ptr, type, fp);
		ud_buf_free(&have);
	} else if (rc == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND) {
		if (o && o->accept_new)
			err = known_record(o, name, type, key, len);
		else
			err = ud_error_set(UD_EAUTH, "host key for %s is "
					   "unknown (%s %s): add it to "
					   "known_hosts or pass "
					   "--accept-new-host-keys", name,
					   type, fp);
	} else {
		err = ud_error_set(UD_ERROR, "cannot check the host key for "
				   "%s: %s", name, ud_ssh__errmsg(k->s));
	}

done:
	free(name);
	free(btype);
	free(fp);
	return err;
}

/* Append the algorithms of `list` ("a,b,c") that libssh2 supports:
 * libssh2_session_method_pref drops the others with an overlapping
 * memcpy, so it must never see one. */
static void add_supported(struct ud_buf *b, const char *list,
			  const char **sup, int nsup)
{
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		int i;

		for (i = 0; i < nsup; i++)
			if (strlen(sup[i]) == n && !strncmp(sup[i], p, n)) {
				ud_buf_printf(b, "%s%.*s", b->size ? "," : "",
					      (int)n, p);
				break;
			}
		p += n;
		if (*p == ',')
			p++;
	}
}

/* The host key algorithms to ask for: those known_hosts has for this
 * host first (as ssh(1) orders them), so that a server with several
 * keys shows the one we can check; then the rest in ssh(1)'s default
 * order (ed25519 first, where libssh2 would start with ecdsa), so that
 * the key reported or recorded for a new host is the one ssh(1) would
 * see. NULL: keep libssh2's order. Caller frees. */
char *ud_known_hosts_algs(const struct ud_known_hosts *k, LIBSSH2_SESSION *s,
			  const char *host, int port)
{
	struct ud_buf b = UD_BUF_INIT;
	char *name = host_key_name(host, port);
	int known[NKEYTYPES];
	const char **sup = NULL;
	int nsup;
	size_t i;

	known_types(k, name, known);
	free(name);
	if ((nsup = libssh2_session_supported_algs(
		     s, LIBSSH2_METHOD_HOSTKEY, &sup)) <= 0)
		return NULL;
	for (i = 0; i < NKEYTYPES; i++)
		if (known[i])
			add_supported(&b, keytypes[i].algs, sup, nsup);
	for (i = 0; i < NKEYTYPES; i++)
		if (!known[i])
			add_supported(&b, keytypes[i].algs, sup, nsup);
	libssh2_free(s, (void *)sup);
	if (!b.size)
		return NULL;
	return ud_buf_detach(&b);
}
