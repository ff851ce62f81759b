/*
 * repo_remote.c: a deployment repository behind a URL: parsing the URL,
 * the credentials and host-key callbacks of libgit2's transports, the
 * cache mirror and its lock, and the fetches and pushes that keep the
 * mirror and the remote in step.
 */
#include "repo_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <signal.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "digest.h"
#include "errors.h"
#include "log.h"
#include "net.h"
#include "num.h"
#include "trust.h"

#define TAG_PUSH_TRIES 3

int ud_deployrepo_is_remote(const char *url)
{
	const char *colon, *slash;

	if (!strncmp(url, "ssh://", 6) || !strncmp(url, "https://", 8) ||
	    !strncmp(url, "http://", 7) || !strncmp(url, "git://", 6))
		return 1;
	/* scp-like "user@host:path": a colon before any slash. */
	colon = strchr(url, ':');
	slash = strchr(url, '/');
	return colon && colon != url && (!slash || colon < slash) &&
	       strncmp(url, "file:", 5);
}

void ud_deployrepo__remote_free(struct remote *rm)
{
	if (!rm)
		return;
	if (rm->ssh.key_text) {
		/* the key text is a secret: do not leave it in freed memory */
		char *k = (char *)rm->ssh.key_text;

		explicit_bzero(k, strlen(k));
	}
	free((char *)rm->ssh.identity);
	free((char *)rm->ssh.key_text);
	free((char *)rm->ssh.known_hosts);
	free((char *)rm->ssh.known_hosts_text);
	ud_ssh_identities_free(rm->ids, rm->nids);
	ud_buf_free(&rm->tried);
	free(rm->rejected);
	free(rm->url);
	free(rm->shown);
	free(rm->user);
	free(rm->host);
	free(rm);
}

static char *dup_or_null(const char *s)
{
	return s ? ud_strdup(s) : NULL;
}

static char *default_user(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u && *u)
		return ud_strdup(u);
	pw = getpwuid(getuid());
	return ud_strdup(pw ? pw->pw_name : "root");
}

/* "[v6]:port", "host:port" or "host" (len bytes at s) into rm. */
static int parse_hostport(struct remote *rm, const char *s, size_t len,
			  int allow_port)
{
	const char *end = s + len, *colon = NULL;
	long port;

	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close)
			return -1;
		rm->host = ud_strndup(s + 1, (size_t)(close - s - 1));
		if (close + 1 < end) {
			if (close[1] != ':')
				return -1;
			colon = close + 1;
		}
	} else {
		colon = memchr(s, ':', len);
		rm->host = ud_strndup(s, colon ? (size_t)(colon - s) : len);
	}
	if (!*rm->host)
		return -1;
	if (colon) {
		if (!allow_port || colon + 1 == end)
			return -1;
		long long n;

		if (ud_num_parse_n(colon + 1, (size_t)(end - colon - 1), 1,
				   65535, &n) < 0)
			return -1;
		port = (long)n;
		rm->port = (int)port;
	}
	return 0;
}

/* Split a remote URL the way git reads it: scheme://[user@]host[:port]/path
 * or scp-like [user@]host:path. */
static int parse_remote(struct remote *rm, const char *url)
{
	const char *a, *sep, *at = NULL, *p;
	size_t len;
	int scheme = 0;

	rm->url = ud_strdup(url);
	rm->port = 22;
	if ((sep = strstr(url, "://"))) {
		/* SPEC §4: http:// and git:// carry no authentication, and
		 * the manifest's sha256 comes from the same repository, so
		 * nothing would catch a forged release. */
		if (strncmp(url, "ssh://", 6) && strncmp(url, "https://", 8))
			return ud_error_set(UD_EINVALID,
					    "deployment repository URL '%.*s"
					    "...': use ssh:// or https://",
					    (int)(sep + 3 - url), url);
		scheme = 1;
		rm->is_ssh = !strncmp(url, "ssh://", 6);
		if (!rm->is_ssh)
			rm->port = 443;
		a = sep + 3;
		len = strcspn(a, "/");
	} else {
		int bracket = 0;

		rm->is_ssh = 1; /* scp-like */
		a = url;
		/* the host part ends at the first colon outside brackets */
		for (p = a; *p && (*p != ':' || bracket); p++)
			bracket = *p == '[' ? 1 : *p == ']' ? 0 : bracket;
		len = *p == ':' ? (size_t)(p - a) : 0;
	}
	for (p = a; p < a + len; p++)
		if (*p == '@')
			at = p;
	if (at) {
		const char *colon = memchr(a, ':', (size_t)(at - a));

		/* "user:password@" in an https URL: the user alone */
		rm->user = ud_strndup(a, colon ? (size_t)(colon - a)
					       : (size_t)(at - a));
		if (colon) /* a secret: never in a message */
			rm->shown = ud_asprintf("%.*s%s", (int)(colon - url),
						url, at);
		len -= (size_t)(at + 1 - a);
		a = at + 1;
	} else {
		rm->user = default_user();
	}
	if (!rm->shown)
		rm->shown = ud_strdup(url);
	if (!len || parse_hostport(rm, a, len, scheme) < 0)
		return ud_error_set(UD_EINVALID,
				    "bad deployment repository URL '%s'",
				    rm->shown);
	return 0;
}

/*
 * The CA certificates an https remote is checked against. libgit2 reads
 * only its build's default bundle (Debian's is mbedTLS, which knows no
 * environment variable), so a repository behind a private CA could never
 * be reached: take OpenSSL's SSL_CERT_FILE / SSL_CERT_DIR, which every
 * other TLS client on the machine honours, as the trusted set.
 */
static int tls_trust_from_env(void)
{
	const char *file = getenv("SSL_CERT_FILE");
	const char *dir = getenv("SSL_CERT_DIR");

	if (file && !*file)
		file = NULL;
	if (dir && !*dir)
		dir = NULL;
	if (!file && !dir)
		return 0;
	if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, dir) < 0)
		return ud_error_set_git(UD_EINVALID,
					"cannot load the CA certificates of "
					"SSL_CERT_FILE/SSL_CERT_DIR '%s'",
					file ? file : dir);
	return 0;
}

static int remote_new(struct remote **out, const char *url,
		      const struct ud_ssh_opts *ssh)
{
	struct remote *rm = ud_calloc(1, sizeof(*rm));
	struct ud_ssh_opts env;
	int err;

	*out = NULL;
	if (!ssh) {
		ud_ssh_opts_from_env(&env);
		ssh = &env;
	}
	ud_buf_init(&rm->tried, 0);
	rm->ssh = *ssh;
	rm->ssh.identity = dup_or_null(ssh->identity);
	rm->ssh.key_text = dup_or_null(ssh->key_text);
	rm->ssh.known_hosts = dup_or_null(ssh->known_hosts);
	rm->ssh.known_hosts_text = dup_or_null(ssh->known_hosts_text);
	if ((err = parse_remote(rm, url)) < 0 ||
	    (!rm->is_ssh && (err = tls_trust_from_env()) < 0)) {
		ud_deployrepo__remote_free(rm);
		return err;
	}
	*out = rm;
	return 0;
}

/* The algorithm name heads the key blob (RFC 4253 §6.6); libgit2's
 * raw_type is only a shorthand for it. */
static const char *hostkey_type(const git_cert_hostkey *hk, char *buf,
				size_t size)
{
	const unsigned char *k = (const unsigned char *)hk->hostkey;
	uint32_t n;

	switch (hk->raw_type) {
	case GIT_CERT_SSH_RAW_TYPE_RSA:
		return "ssh-rsa";
	case GIT_CERT_SSH_RAW_TYPE_DSS:
		return "ssh-dss";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256:
		return "ecdsa-sha2-nistp256";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384:
		return "ecdsa-sha2-nistp384";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521:
		return "ecdsa-sha2-nistp521";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519:
		return "ssh-ed25519";
	default:
		break;
	}
	if (hk->hostkey_len < 4)
		return "unknown";
	n = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 |
	    (uint32_t)k[2] << 8 | k[3];
	if (n == 0 || n >= size || n > hk->hostkey_len - 4)
		return "unknown";
	memcpy(buf, k + 4, n);
	buf[n] = '\0';
	return buf;
}

/*
 * ssh: the host key must be in known_hosts (ud_ssh_check_hostkey says
 * why not, and that message becomes libgit2's). https: libgit2 has
 * verified the chain already; passing through keeps its verdict and, when
 * it refused, its own message. No trust-on-first-use for TLS.
 */
static int certificate_check(git_cert *cert, int valid, const char *host,
			     void *payload)
{
	struct remote *rm = payload;
	const git_cert_hostkey *hk;
	char type[64];

	(void)valid;
	(void)host;
	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
		return GIT_PASSTHROUGH;
	/* A new ssh session: its authentication starts from the first
	 * identity again. */
	rm->next = 0;
	ud_buf_clear(&rm->tried);
	hk = (const git_cert_hostkey *)cert;
	if (!(hk->type & GIT_CERT_SSH_RAW)) {
		rm->auth_failed = 1;
		git_error_set_str(GIT_ERROR_SSH,
				  "libssh2 gave no raw host key to check");
		return GIT_ECERTIFICATE;
	}
	if (ud_ssh_check_hostkey(&rm->ssh, rm->host, rm->port, hk->hostkey,
				 hk->hostkey_len,
				 hostkey_type(hk, type, sizeof(type))) < 0) {
		rm->auth_failed = 1;
		git_error_set_str(GIT_ERROR_SSH, ud_error_last());
		return GIT_ECERTIFICATE;
	}
	return 0;
}

static int file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* One identity as libgit2 wants it; 1 when this kind cannot be offered. */
static int identity_credential(git_credential **out, struct remote *rm,
			       const struct ud_ssh_id *id, const char *user,
			       unsigned int allowed)
{
	char *pub;
	int err;

	switch (id->kind) {
	case UD_SSH_ID_FILE:
		if (!(allowed & GIT_CREDENTIAL_SSH_KEY))
			return 1;
		pub = ud_asprintf("%s.pub", id->path);
		err = git_credential_ssh_key_new(out, user,
						 file_exists(pub) ? pub : NULL,
						 id->path, NULL);
		free(pub);
		return err;
	case UD_SSH_ID_MEMORY:
		if (!(allowed & GIT_CREDENTIAL_SSH_MEMORY) || !rm->ssh.key_text)
			return 1;
		return git_credential_ssh_key_memory_new(out, user, NULL,
							 rm->ssh.key_text,
							 NULL);
	case UD_SSH_ID_AGENT:
		if (!(allowed & GIT_CREDENTIAL_SSH_KEY))
			return 1;
		return git_credential_ssh_key_from_agent(out, user);
	}
	return 1;
}

/*
 * libgit2 asks again after each refused credential: offer the identities
 * of ud_ssh_identities in order, then give up naming what was tried.
 */
static int credentials(git_credential **out, const char *url,
		       const char *user_from_url, unsigned int allowed,
		       void *payload)
{
	struct remote *rm = payload;
	const char *user = user_from_url ? user_from_url : rm->user;
	char *msg;
	int err;

	(void)url;
	if (!rm->is_ssh)
		return GIT_PASSTHROUGH;
	if (allowed & GIT_CREDENTIAL_USERNAME)
		return git_credential_username_new(out, user);
	if (!rm->have_ids) {
		ud_ssh_identities(&rm->ssh, &rm->ids, &rm->nids);
		rm->have_ids = 1;
	}
	while (rm->next < rm->nids) {
		const struct ud_ssh_id *id = &rm->ids[rm->next++];

		err = identity_credential(out, rm, id, user, allowed);
		if (err == 1)
			continue;
		if (rm->tried.size)
			ud_buf_puts(&rm->tried, ", ");
		ud_buf_puts(&rm->tried, id->label ? id->label : "?");
		if (err < 0)
			return err;
		return 0;
	}
	rm->auth_failed = 1;
	if (rm->tried.size)
		msg = ud_asprintf("%s@%s: no key was accepted (tried: %s)",
				  user, rm->host, rm->tried.ptr);
	else
		msg = ud_asprintf("%s@%s: no ssh identity to offer (pass "
				  "--identity, set DEPLOY_SSH_KEY or start "
				  "ssh-agent)", user, rm->host);
	git_error_set_str(GIT_ERROR_SSH, msg);
	free(msg);
	return GIT_EAUTH;
}

static int push_update_reference(const char *refname, const char *status,
				 void *payload)
{
	struct remote *rm = payload;

	if (status && !rm->rejected)
		rm->rejected = ud_asprintf("%s: %s", refname, status);
	return 0;
}

static void remote_callbacks(git_remote_callbacks *cb, struct remote *rm)
{
	cb->certificate_check = certificate_check;
	cb->credentials = credentials;
	cb->push_update_reference = push_update_reference;
	cb->payload = rm;
}

/* The message of a failed transport operation: UD_EAUTH when the host
 * key or the credentials were the reason, with libgit2's message, which
 * is then ours (the fingerprint, the identities tried). */
static int transport_error(struct remote *rm, int gerr, const char *what)
{
	int code = UD_ERROR;

	if ((rm && rm->auth_failed) || gerr == GIT_EAUTH ||
	    gerr == GIT_ECERTIFICATE)
		code = UD_EAUTH;
	return ud_error_set_git(code, "%s %s", what, rm ? rm->shown : "");
}

static int fetch_here(git_repository *git, const char *url,
		      struct remote *rm, git_fetch_prune_t prune)
{
	static char *specs[] = {
		"+refs/heads/main:refs/heads/main",
		"+refs/tags/*:refs/tags/*",
	};
	git_strarray refspecs = { specs, 2 };
	git_fetch_options opts;
	git_remote *remote = NULL;
	int err = 0, gerr;

	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	opts.prune = prune;
	opts.update_fetchhead = 0;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if (rm) {
		remote_callbacks(&opts.callbacks, rm);
		rm->auth_failed = 0;
	}
	if (git_remote_create_anonymous(&remote, git, url) < 0)
		return ud_error_set_git(UD_EINVALID,
					"bad deployment repository URL '%s'",
					rm ? rm->shown : url);
	if ((gerr = git_remote_fetch(remote, &refspecs, &opts, "fetch")) < 0)
		err = rm ? transport_error(rm, gerr, "fetching")
			 : ud_error_set_git(UD_ERROR, "cannot fetch '%s'",
					    url);
	git_remote_free(remote);
	return err;
}

/* What the fetch child hands back: its result, then the message. */
struct fetch_result {
	int32_t err;
	uint32_t len;
};

#define FETCH_MSG_MAX 4096

/* The child must not run the parent's handlers (the agent's self-pipe
 * would wake its loop with a signal it never got) nor keep signals
 * blocked; ignored ones stay ignored (SIGPIPE on a dropped transport). */
static void fetch_child_signals(void)
{
	struct sigaction old;
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP &&
		    sigaction(sig, NULL, &old) == 0 &&
		    old.sa_handler != SIG_IGN)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The caller's sockets are not the fetch's: in the agent, a proxied
 * connection the parent closes during the fetch must reach its end now,
 * not when the child exits. (Files stay: libgit2's open packs are.) */
static void close_sockets(int keep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	struct stat st;
	long long n;
	int fd;

	while (d && (e = readdir(d))) {
		if (ud_num_parse(e->d_name, 0, 1 << 30, &n) < 0)
			continue;
		fd = (int)n;
		if (fd == keep || fd == dirfd(d) || fstat(fd, &st) < 0)
			continue;
		if (S_ISSOCK(st.st_mode))
			close(fd);
	}
	if (d)
		closedir(d);
}

static void __attribute__((noreturn))
fetch_child(int fd, git_repository *git, const char *url, struct remote *rm,
	    git_fetch_prune_t prune)
{
	struct fetch_result res;
	const char *msg;
	int err;

	fetch_child_signals();
	close_sockets(fd);
	err = fetch_here(git, url, rm, prune);
	msg = err < 0 ? ud_error_last() : "";
	res.err = err;
	res.len = (uint32_t)strnlen(msg, FETCH_MSG_MAX);
	/* _exit: no atexit handlers or stdio buffers of the parent's, and
	 * nothing libgit2 leaked outlives the fetch. */
	_exit(ud_write_all(fd, &res, sizeof(res)) < 0 ||
	      ud_write_all(fd, msg, res.len) < 0);
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Fetch main and the tags of url into git.
 *
 * The fetch runs in a short-lived child (fork, the fetch, _exit), its
 * result and message handed back over a pipe. libgit2 1.5.1 (Debian 12)
 * leaks on every fetch: PCRE2 match data of the url.*.insteadOf lookups
 * each git_remote_create_anonymous and git_remote_lookup makes (about
 * 40 KB a remote, twice that through a named remote, so keeping a named
 * remote in the mirror's config would not help), and on ssh the
 * known_hosts path strings and libssh2's known-hosts collection of each
 * connection. None of it is ours to free; in the agent it grew the heap
 * by about 60 KB a sync. In a child it goes with the child, and the
 * caller's memory stays flat however many syncs it makes.
 *
 * fork() in a threaded caller: the child runs only this thread, which
 * must be the caller's only user of libgit2 (the agent's reconciler);
 * glibc's fork keeps malloc usable and the fetch path does not log.
 * DEPLOY_FETCH_IN_PROCESS=1 fetches in this process instead, the old
 * way, for `make bench` (bench/soak.sh) to measure against.
 */
static int fetch_into(git_repository *git, const char *url,
		      struct remote *rm, git_fetch_prune_t prune)
{
	struct fetch_result res;
	const char *inproc = getenv("DEPLOY_FETCH_IN_PROCESS");
	char msg[FETCH_MSG_MAX + 1];
	git_odb *odb = NULL;
	int fds[2], st, err = 0;
	pid_t pid;

	if (inproc && !strcmp(inproc, "1"))
		return fetch_here(git, url, rm, prune);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return ud_error_set_errno(UD_ERROR, "cannot fetch %s: pipe",
					  rm ? rm->shown : url);
	if ((pid = fork()) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot fetch %s: fork",
					 rm ? rm->shown : url);
		close(fds[0]);
		close(fds[1]);
		return err;
	}
	if (pid == 0) {
		close(fds[0]);
		fetch_child(fds[1], git, url, rm, prune);
	}
	close(fds[1]);
	if (read_full(fds[0], &res, sizeof(res)) < 0 ||
	    res.len > FETCH_MSG_MAX || read_full(fds[0], msg, res.len) < 0)
		res.len = UINT32_MAX; /* no report: the child died */
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (res.len == UINT32_MAX) {
		if (WIFSIGNALED(st))
			return ud_error_set(UD_ERROR, "fetching %s: the fetch "
					    "process was killed by signal %d",
					    rm ? rm->shown : url,
					    WTERMSIG(st));
		return ud_error_set(UD_ERROR, "fetching %s: the fetch process "
				    "exited without a result",
				    rm ? rm->shown : url);
	}
	if (res.err < 0) {
		msg[res.len] = '\0';
		return ud_error_set(res.err, "%s", msg);
	}
	/* The child added packs this process's object database has not
	 * seen; refs are read from disk anyway. */
	if (git_repository_odb(&odb, git) == 0) {
		git_odb_refresh(odb);
		git_odb_free(odb);
	}
	git_error_clear();
	return 0;
}

/* The mirrors live in the user's cache (ud_cache_root). */
static int cache_root(char **out)
{
	if (!(*out = ud_cache_root()))
		return ud_error_set(UD_EINVALID,
				    "no cache directory for remote deployment "
				    "repositories: set DEPLOY_CACHE_ROOT or "
				    "HOME");
	return 0;
}

/* repos/<host>-<hash of the URL>: one mirror per URL, named so that a
 * person listing the cache recognises it. */
static char *mirror_name(const struct remote *rm)
{
	char hex[UD_SHA256_HEX], *host = ud_strdup(rm->host), *p, *name;

	ud_sha256_mem(hex, rm->url, strlen(rm->url));
	for (p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '_';
	name = ud_asprintf("%s-%.16s", host, hex);
	free(host);
	return name;
}

/*
 * Another process on this machine updates the same mirror: wait for it.
 * The lock is held only while the mirror's refs change (a fetch, a
 * transaction), never across a build, so a wait is short; one that is
 * not says what it waits for.
 */
static int lock_wait(int fd, const char *path)
{
	long long start = ud_now_ms();
	useconds_t pause = 10 * 1000;
	int told = 0;

	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return ud_error_set_errno(UD_ERROR, "cannot lock '%s'",
						  path);
		if (!told && ud_now_ms() - start >= 1000) {
			ud_log_info("waiting for %s", path);
			told = 1;
		}
		usleep(pause);
		if (pause < 200 * 1000)
			pause *= 2;
	}
	return 0;
}

/* Re-entrant within one ud_deployrepo: nested transactions on one handle
 * share the lock. */
int ud_deployrepo__mirror_lock(struct ud_deployrepo *r)
{
	int err;

	if (r->lock_fd < 0 || r->lock_depth++ > 0)
		return 0;
	if ((err = lock_wait(r->lock_fd, r->lock_path)) < 0)
		r->lock_depth = 0;
	return err;
}

void ud_deployrepo__mirror_unlock(struct ud_deployrepo *r)
{
	if (r->lock_fd < 0 || r->lock_depth == 0 || --r->lock_depth > 0)
		return;
	flock(r->lock_fd, LOCK_UN);
}

/*
 * The mirror's origin names the URL, so plain git can fetch it too, but
 * without its password: the config is a plain file and a token there would
 * outlive the process. Fetches and pushes go through anonymous remotes
 * made from the URL held in memory.
 */
static int set_origin(git_repository *git, const struct remote *rm)
{
	const char *url = rm->shown;
	git_remote *remote = NULL;
	int err = git_remote_lookup(&remote, git, "origin");

	if (err == GIT_ENOTFOUND) {
		err = git_remote_create_with_fetchspec(
			&remote, git, "origin", url,
			"+refs/heads/main:refs/heads/main");
		if (!err)
			err = git_remote_add_fetch(git, "origin",
						   "+refs/tags/*:refs/tags/*");
	} else if (!err && strcmp(git_remote_url(remote), url)) {
		err = git_remote_set_url(git, "origin", url);
	}
	git_remote_free(remote);
	if (err < 0)
		return ud_error_set_git(UD_ERROR,
					"cannot record origin '%s'",
					rm->shown);
	return 0;
}

static int open_remote(struct ud_deployrepo **out, const char *url,
		       const struct ud_ssh_opts *ssh)
{
	struct ud_deployrepo *r = NULL;
	struct remote *rm = NULL;
	git_repository *git = NULL;
	char *root = NULL, *name = NULL, *dir = NULL, *path = NULL;
	char *lock = NULL;
	int err, fd = -1;

	if ((err = remote_new(&rm, url, ssh)) < 0 ||
	    (err = cache_root(&root)) < 0)
		goto done;
	name = mirror_name(rm);
	dir = ud_asprintf("%s/repos", root);
	path = ud_asprintf("%s/%s.git", dir, name);
	lock = ud_asprintf("%s/%s.lock", dir, name);
	/* 0700: a mirror is private to its user, like ~/.ssh */
	if ((err = ud_mkdir_p(dir, 0700)) < 0)
		goto done;
	if (chmod(dir, 0700) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot chmod '%s'", dir);
		goto done;
	}
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot open '%s'", lock);
		goto done;
	}
	if ((err = lock_wait(fd, lock)) < 0)
		goto done;
	err = ud_git_open(&git, path, GIT_REPOSITORY_OPEN_NO_SEARCH);
	if (err == GIT_ENOTFOUND)
		err = ud_deployrepo__init_bare(&git, path);
	else if (err < 0)
		err = ud_error_set_git(UD_ERROR, "cannot open cache '%s'",
				       path);
	if (err < 0 || (err = set_origin(git, rm)) < 0)
		goto done;
	ud_deployrepo__wrap(&r, git);
	git = NULL;
	r->remote = rm;
	r->lock_fd = fd;
	r->lock_path = lock;
	r->lock_depth = 1;
	rm = NULL;
	fd = -1;
	lock = NULL;
	/* The mirror is ours alone (the lock): main and the tags follow the
	 * remote. Reads need no lock: objects never change and libgit2
	 * moves refs atomically. */
	err = ud_deployrepo__sync_mirror(r);
	ud_deployrepo__mirror_unlock(r);
	if (err < 0)
		goto done;
	*out = r;
	r = NULL;
done:
	if (r) {
		git_repository_free(r->git);
		ud_deployrepo__remote_free(r->remote);
		close(r->lock_fd);
		free(r->lock_path);
		free(r);
	}
	if (fd >= 0)
		close(fd);
	git_repository_free(git);
	ud_deployrepo__remote_free(rm);
	free(root);
	free(name);
	free(dir);
	free(path);
	free(lock);
	return err;
}

int ud_deployrepo_open_ex(struct ud_deployrepo **out, const char *url,
			  const struct ud_ssh_opts *ssh)
{
	int err;

	*out = NULL;
	if (!ud_deployrepo_is_remote(url))
		return ud_deployrepo_open(out, url);
	git_libgit2_init();
	if ((err = open_remote(out, url, ssh)) < 0)
		git_libgit2_shutdown();
	return err;
}

/*
 * A mirror of a repository on this machine borrows its objects through
 * objects/info/alternates, as `git clone --shared` does. libgit2 1.5's
 * local transport packs everything reachable from a wanted tip without
 * hiding what the receiver has, so without this every sync copied (and
 * re-deltified) the whole release history. The deployment repository
 * never drops a release, so its objects stay valid for the mirror.
 */
static int share_objects(git_repository **git, const char *mirror_path,
			 const char *url)
{
	git_repository *src = NULL;
	struct ud_buf old = UD_BUF_INIT;
	const char *path;
	char *objects = NULL, *alternates = NULL, *real = NULL, *line = NULL;
	int err = 0;

	if (ud_deployrepo__local_path(url, &path) < 0) {
		ud_error_clear(); /* a remote URL: nothing to share */
		return 0;
	}
	if (!(real = realpath(path, NULL)) ||
	    (err = ud_git_open(&src, real, GIT_REPOSITORY_OPEN_NO_SEARCH)) ==
		    GIT_ENOTFOUND) {
		git_error_clear();
		err = 0;
		goto done; /* the fetch itself reports a missing source */
	}
	/* Refused here, as libgit2's local transport no longer checks. */
	if (err < 0) {
		err = ud_error_set_git(UD_ERROR,
				       "cannot open deployment repository "
				       "'%s'", path);
		goto done;
	}
	objects = ud_asprintf("%sobjects", git_repository_path(src));
	alternates = ud_asprintf("%sobjects/info/alternates",
				 git_repository_path(*git));
	line = ud_asprintf("%s\n", objects);
	if (ud_buf_read_file(&old, alternates) == 0 && !strcmp(old.ptr, line))
		goto done;
	ud_error_clear();
	{
		char *dir = ud_asprintf("%sobjects/info",
					git_repository_path(*git));
		err = ud_mkdir_p(dir, 0755);
		free(dir);
	}
	if (!err)
		err = ud_write_file_atomic(alternates, line, strlen(line),
					   0644);
	if (err < 0)
		goto done;
	/* The object database was opened before the alternate existed. */
	git_repository_free(*git);
	*git = NULL;
	if (ud_git_open(git, mirror_path, GIT_REPOSITORY_OPEN_NO_SEARCH) < 0)
		err = ud_error_set_git(UD_ERROR, "cannot reopen mirror '%s'",
				       mirror_path);
done:
	git_repository_free(src);
	ud_buf_free(&old);
	free(objects);
	free(alternates);
	free(real);
	free(line);
	return err;
}

int ud_deployrepo_fetch(struct ud_deployrepo **out, const char *mirror_path,
			const char *url)
{
	return ud_deployrepo_fetch_ex(out, mirror_path, url, NULL);
}

int ud_deployrepo_fetch_ex(struct ud_deployrepo **out, const char *mirror_path,
			   const char *url, const struct ud_ssh_opts *ssh)
{
	git_repository *git = NULL;
	struct remote *rm = NULL;
	int err;

	*out = NULL;
	git_libgit2_init();
	if (ud_deployrepo_is_remote(url) &&
	    (err = remote_new(&rm, url, ssh)) < 0)
		goto done;
	err = ud_git_open(&git, mirror_path, GIT_REPOSITORY_OPEN_NO_SEARCH);
	if (err == GIT_ENOTFOUND)
		err = ud_deployrepo__init_bare(&git, mirror_path);
	else if (err < 0)
		err = ud_error_set_git(UD_ERROR, "cannot open mirror '%s'",
				       mirror_path);
	if (err < 0)
		goto done;
	if ((err = share_objects(&git, mirror_path, url)) < 0)
		goto done;
	/* The mirror follows the source exactly for main and tags, but a
	 * tag deleted upstream is kept: releases are history. */
	if ((err = fetch_into(git, url, rm, GIT_FETCH_NO_PRUNE)) < 0)
		goto done;
	err = ud_deployrepo__wrap(out, git);
	git = NULL;
done:
	ud_deployrepo__remote_free(rm);
	if (err < 0) {
		git_repository_free(git);
		git_libgit2_shutdown();
	}
	return err;
}

/* Push one refspec to the remote. 0: accepted; 1: refused (rm->rejected says
 * why, or the remote holds commits we lack: not a fast-forward); else
 * an error, message set. */
int ud_deployrepo__push_ref(struct ud_deployrepo *r, const char *spec)
{
	struct remote *rm = r->remote;
	char *specs[] = { (char *)spec };
	git_strarray refspecs = { specs, 1 };
	git_push_options opts;
	git_remote *remote = NULL;
	int err = 0, gerr;

	git_push_options_init(&opts, GIT_PUSH_OPTIONS_VERSION);
	remote_callbacks(&opts.callbacks, rm);
	rm->auth_failed = 0;
	free(rm->rejected);
	rm->rejected = NULL;
	if (git_remote_create_anonymous(&remote, r->git, rm->url) < 0)
		return ud_error_set_git(UD_EINVALID,
					"bad deployment repository URL '%s'",
					rm->shown);
	gerr = git_remote_push(remote, &refspecs, &opts);
	if (gerr == GIT_ENONFASTFORWARD) {
		rm->rejected = ud_asprintf("%s", git_error_last()
						 ? git_error_last()->message
						 : "not a fast-forward");
		err = 1;
	} else if (gerr < 0) {
		err = transport_error(rm, gerr, "pushing to");
	} else if (rm->rejected) {
		err = 1;
	}
	git_remote_free(remote);
	return err;
}

/* A tag push, tried a few times: a refusal or a dropped connection
 * right after main was accepted is often passing. 0 or an error, message
 * set. */
int ud_deployrepo__push_tag(struct ud_deployrepo *r, const char *name)
{
	char *spec = ud_asprintf("refs/tags/%s:refs/tags/%s", name, name);
	int err = 0, attempt;

	for (attempt = 0; attempt < TAG_PUSH_TRIES; attempt++) {
		if (attempt)
			usleep(200 * 1000 * (useconds_t)attempt);
		err = ud_deployrepo__push_ref(r, spec);
		if (err == 1)
			err = ud_error_set(UD_ERROR, "%s refused %s",
					   r->remote->shown,
					   r->remote->rejected);
		if (!err)
			break;
	}
	free(spec);
	return err;
}

/* A local tag held before a fetch: "refs/tags/<app>/v<n>" and its oid. */
struct held_tag {
	char *ref;
	git_oid id;
};

struct held_tags {
	struct held_tag *v;
	size_t n, a;
};

static int hold_tag(const char *name, git_oid *id, void *payload)
{
	struct held_tags *h = payload;

	if (h->n == h->a) {
		h->a = h->a ? 2 * h->a : 8;
		h->v = ud_realloc(h->v, h->a * sizeof(*h->v));
	}
	h->v[h->n].ref = ud_strdup(name);
	git_oid_cpy(&h->v[h->n].id, id);
	h->n++;
	return 0;
}

/* Is refs/tags/<app>/v<n> the tag of a release in main's tree, on a
 * commit main contains? Only such a tag is ours to give back. */
static int is_lost_release_tag(struct ud_deployrepo *r, const char *ref,
			       const git_oid *id, const git_oid *main)
{
	const char *name = ref + strlen("refs/tags/"), *slash;
	long long n;
	git_tree_entry *e = NULL;
	git_object *obj = NULL, *commit = NULL;
	char *path;
	int ok = 0;

	slash = strchr(name, '/');
	if (!slash || slash == name || slash[1] != 'v' || !slash[2] ||
	    strchr(slash + 1, '/'))
		return 0;
	if (ud_num_parse(slash + 2, 1, 999999999, &n) < 0)
		return 0;
	path = ud_asprintf("apps/%.*s/releases/%s", (int)(slash - name), name,
			   slash + 2);
	if (ud_deployrepo__entry_at(r, main, path, &e) == 0 &&
	    git_object_lookup(&obj, r->git, id, GIT_OBJECT_ANY) == 0 &&
	    git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) == 0)
		ok = git_oid_equal(git_object_id(commit), main) ||
		     git_graph_descendant_of(r->git, main,
					     git_object_id(commit)) == 1;
	ud_error_clear();
	git_error_clear();
	git_tree_entry_free(e);
	git_object_free(commit);
	git_object_free(obj);
	free(path);
	return ok;
}

/*
 * Fetch main and the tags, dropping local tags the remote does not have
 * (leftovers), except release tags: a tag that a publish could not push
 * (push_tags) would otherwise be lost for good, so a local <app>/v<n>
 * whose release is in main's tree and whose commit main contains is put
 * back and pushed. SPEC §3: every release is tagged.
 */
int ud_deployrepo__sync_mirror(struct ud_deployrepo *r)
{
	struct remote *rm = r->remote;
	struct held_tags held = { 0 };
	git_reference *ref = NULL;
	git_oid main;
	size_t i;
	int err;

	if (git_tag_foreach(r->git, hold_tag, &held) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot list the tags of the "
					"cache of %s", rm->shown);
		goto done;
	}
	if ((err = fetch_into(r->git, rm->url, rm, GIT_FETCH_PRUNE)) < 0)
		goto done;
	if (git_reference_name_to_id(&main, r->git, UD_MAIN_REF) < 0) {
		git_error_clear();
		goto done;
	}
	for (i = 0; i < held.n; i++) {
		const char *name = held.v[i].ref + strlen("refs/tags/");

		if (git_reference_lookup(&ref, r->git, held.v[i].ref) == 0 ||
		    !is_lost_release_tag(r, held.v[i].ref, &held.v[i].id,
					 &main)) {
			git_reference_free(ref);
			ref = NULL;
			git_error_clear();
			continue;
		}
		if ((git_reference_create(&ref, r->git, held.v[i].ref,
					  &held.v[i].id, 0,
					  "unideploy: release tag to push") < 0 &&
		     ud_error_set_git(UD_ERROR, "cannot restore it") < 0) ||
		    ud_deployrepo__push_tag(r, name) < 0)
			ud_log_warn("release tag %s is still missing on %s: %s",
				    name, rm->shown, ud_error_last());
		else
			ud_log_info("pushed release tag %s to %s", name,
				    rm->shown);
		git_reference_free(ref);
		ref = NULL;
		ud_error_clear();
		git_error_clear();
	}
done:
	for (i = 0; i < held.n; i++)
		free(held.v[i].ref);
	free(held.v);
	return err;
}
