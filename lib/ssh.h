/*
 * ssh.h: SSH as the pipeline and the agent use it (SPEC §4, §7): run one
 * command on a host over libssh2, and the two policies shared with
 * libgit2's ssh transport (repo_remote.c): which host keys to trust and which
 * identities to offer, in which order.
 *
 * Host keys are always checked against OpenSSH known_hosts data: plain
 * names, "[host]:port" for ports other than 22, and hashed ("|1|...")
 * entries. An unknown or changed key fails with UD_EAUTH and a message
 * that names the host and the key's SHA256 fingerprint, as ssh(1) prints
 * it ("SHA256:<base64 without padding>"). Only `accept_new` trusts an
 * unknown key (never a changed one), and records it. A host on record
 * under other key types only is not unknown: a key of a type it lacks
 * counts as changed.
 *
 * Secrets: the key text of $DEPLOY_SSH_KEY is only ever handed to libssh2
 * or libgit2 from memory; no function here writes it to disk or puts it
 * in a message.
 */
#ifndef UD_SSH_H
#define UD_SSH_H

#include <stddef.h>

#include "buf.h"

struct ud_ssh_opts {
	const char *identity;    /* --identity FILE, or NULL */
	const char *key_text;    /* $DEPLOY_SSH_KEY: private key text */
	/* Where host keys are looked up, all of them consulted:
	 * --known-hosts FILE (or the agent's known_hosts), else
	 * ~/.ssh/known_hosts; plus $DEPLOY_KNOWN_HOSTS. */
	const char *known_hosts;      /* a file; NULL: ~/.ssh/known_hosts */
	const char *known_hosts_text; /* known_hosts lines (from the env) */
	int accept_new; /* --accept-new-host-keys: trust and record unknown
			   keys (in `known_hosts`, else ~/.ssh/known_hosts) */
	int no_agent;   /* do not ask ssh-agent ($SSH_AUTH_SOCK) */
	int no_default_keys; /* do not try ~/.ssh/id_* */
	/* The bound on reaching a host (see ud_ssh_exec); 0: the default,
	 * $DEPLOY_SSH_CONNECT_TIMEOUT or UD_SSH_CONNECT_TIMEOUT_MS. */
	int connect_timeout_ms;
};

/*
 * Defaults from the environment (SPEC §6): key_text from $DEPLOY_SSH_KEY,
 * and $DEPLOY_KNOWN_HOSTS, which is either known_hosts lines (it holds a
 * space or a newline) or the path of a known_hosts file. The strings
 * point into the environment: nothing to free.
 */
void ud_ssh_opts_from_env(struct ud_ssh_opts *o);

/* "user@host[:port]" (SPEC §3 fleet.json). user defaults to $USER, port
 * to 22; "[v6addr]:port" is accepted. UD_EINVALID otherwise. */
struct ud_ssh_target {
	char *user;
	char *host;
	int port;
};
int ud_ssh_target_parse(struct ud_ssh_target *t, const char *spec);
void ud_ssh_target_free(struct ud_ssh_target *t);

/* "SHA256:<unpadded base64 of sha256(key blob)>"; caller frees. */
char *ud_ssh_fingerprint(const void *key, size_t len);

/*
 * Check the raw host key blob (as the server sent it; `keytype` is the
 * key's algorithm name, "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"
 * ...) for host:port against the known_hosts sources of o. 0 when a
 * matching entry exists (or when accept_new recorded it); else UD_EAUTH:
 *   "host key for HOST is unknown (ssh-ed25519 SHA256:...): add it to
 *    known_hosts or pass --accept-new-host-keys"
 *   "host key for HOST has CHANGED (now ssh-ed25519 SHA256:...): refusing
 *    to connect"
 * HOST is "name" for port 22 and "[name]:port" otherwise. A known_hosts
 * file that cannot be parsed is UD_EINVALID naming the file and line.
 */
int ud_ssh_check_hostkey(const struct ud_ssh_opts *o, const char *host,
			 int port, const void *key, size_t len,
			 const char *keytype);

/* The identities to offer, in SPEC §4 order. */
enum ud_ssh_id_kind {
	UD_SSH_ID_FILE,   /* a private key file (path) */
	UD_SSH_ID_MEMORY, /* $DEPLOY_SSH_KEY text */
	UD_SSH_ID_AGENT,  /* every key ssh-agent holds */
};
struct ud_ssh_id {
	enum ud_ssh_id_kind kind;
	char *path; /* FILE: the private key; its ".pub" may be absent */
	const char *label; /* for messages: "--identity", "DEPLOY_SSH_KEY",
			      "ssh-agent", or the path */
};
/* The list from o: identity, key_text, the agent when $SSH_AUTH_SOCK is
 * set (and !no_agent), then the default files that exist (unless
 * no_default_keys). Never fails; *n may be 0. */
void ud_ssh_identities(const struct ud_ssh_opts *o, struct ud_ssh_id **ids,
		       size_t *n);
void ud_ssh_identities_free(struct ud_ssh_id *ids, size_t n);

/*
 * Run `command` on `target` ("user@host[:port]"): connect, verify the
 * host key, authenticate with the identities above (first that works),
 * exec, collect stdout into out and stderr into err (each capped at
 * UD_SSH_OUTPUT_MAX or the buffer's own max, the rest read and dropped;
 * either may be NULL), and the exit status into *status (-1 when the
 * remote end gave none: a command killed by a signal; libssh2 cannot
 * tell a missing exit-status from 0). Everything, connect
 * included, happens within timeout_ms (<= 0: no deadline).
 *
 * Reaching the host (TCP connect, SSH handshake, host key check and
 * authentication) has its own, much shorter bound, so that a host whose
 * link is down is named as such in seconds rather than after the
 * kernel's connect timeout or the whole call's: o->connect_timeout_ms,
 * else $DEPLOY_SSH_CONNECT_TIMEOUT (seconds, for slow links), else
 * UD_SSH_CONNECT_TIMEOUT_MS; never more than timeout_ms. Past it:
 * UD_ETIMEOUT, "TARGET: cannot connect within 10 s" (no TCP connection),
 * "TARGET: no SSH handshake within 10 s" or "TARGET: not authenticated
 * within 10 s". Once the command runs only timeout_ms applies ("TARGET:
 * timed out after N ms"). A $DEPLOY_SSH_CONNECT_TIMEOUT that is not a
 * positive number of seconds (at most a day) is UD_EINVALID.
 *
 * Errors, each naming the target: UD_ETIMEOUT, UD_ERROR (unreachable,
 * refused, protocol), UD_EAUTH (host key, as above; or no identity was
 * accepted: "no key was accepted (tried: --identity FILE, DEPLOY_SSH_KEY,
 * ssh-agent, ~/.ssh/id_ed25519)", and a passphrase-protected key file is
 * named: "~/.ssh/id_rsa is passphrase-protected: load it into ssh-agent").
 * A remote command that ran and failed is not an error: see *status.
 */
int ud_ssh_exec(const struct ud_ssh_opts *o, const char *target,
		const char *command, int timeout_ms, struct ud_buf *out,
		struct ud_buf *err, int *status);

#define UD_SSH_OUTPUT_MAX (4 * 1024 * 1024)
#define UD_SSH_CONNECT_TIMEOUT_MS 10000

#endif
