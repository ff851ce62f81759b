/*
 * known_hosts.h: which host keys to trust, from OpenSSH known_hosts data
 * (the policy ssh.h describes). ssh.c checks the keys of its own
 * connections with it; libgit2's ssh transport reaches it through
 * ud_ssh_check_hostkey.
 *
 * The sources of a struct ud_ssh_opts (its known_hosts file, else
 * ~/.ssh/known_hosts, plus its known_hosts_text) are loaded once into a
 * struct ud_known_hosts and then consulted for any number of keys.
 */
#ifndef UD_KNOWN_HOSTS_H
#define UD_KNOWN_HOSTS_H

#include <stddef.h>

#include <libssh2.h>

#include "ssh.h"

/* All known_hosts sources of one set of options, loaded into libssh2. */
struct ud_known_hosts {
	LIBSSH2_SESSION *s; /* only to own kh: never connected */
	LIBSSH2_KNOWNHOSTS *kh;
};

/* Load every known_hosts source of o (NULL: the defaults). A missing file
 * is no entries; a bad line is UD_EINVALID naming its file and line. On
 * error k holds nothing; else free it with ud_known_hosts_free. */
int ud_known_hosts_load(struct ud_known_hosts *k, const struct ud_ssh_opts *o);
void ud_known_hosts_free(struct ud_known_hosts *k); /* re-inits */

/* Check key (an ssh wire-format blob; keytype names it when the blob
 * does not) for host:port: 0 when trusted, UD_EAUTH when unknown or
 * changed (see ssh.h for the messages). With o->accept_new an unknown
 * key is recorded in the known_hosts file and trusted. */
int ud_known_hosts_check(const struct ud_known_hosts *k,
			 const struct ud_ssh_opts *o, const char *host,
			 int port, const void *key, size_t len,
			 const char *keytype);

/* The host key algorithms to ask host:port for, in the order that shows
 * a key we can check first; NULL: keep libssh2's order. Caller frees. */
char *ud_known_hosts_algs(const struct ud_known_hosts *k, LIBSSH2_SESSION *s,
			  const char *host, int port);

#endif
