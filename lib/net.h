/*
 * net.h: small socket helpers in the manner of redis anet.c, shared by the
 * CLI and the agent.
 */
#ifndef UD_NET_H
#define UD_NET_H

#include <stddef.h>
#include <sys/socket.h>

#include "buf.h"

struct ud_addr {
	int family; /* AF_INET, AF_INET6 or AF_UNIX */
	socklen_t len;
	struct sockaddr_storage ss;
	char text[128]; /* as given, for messages */
};

/* "127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080", "localhost:80" (resolved
 * numerically or via getaddrinfo), or "unix:/path/to.sock".
 * UD_EINVALID with a message naming the spec. */
int ud_addr_parse(struct ud_addr *out, const char *spec);

/* Listening socket: close-on-exec, non-blocking, SO_REUSEADDR; for a unix
 * address a stale socket file is replaced (mode 0660). */
int ud_net_listen(int *fd, const struct ud_addr *a, int backlog);

/* Connect with a deadline; returns a blocking, close-on-exec fd.
 * UD_ETIMEOUT or UD_ERROR (message names the address). */
int ud_net_connect(int *fd, const struct ud_addr *a, int timeout_ms);

int ud_net_nonblock(int fd, int on);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int ud_net_free_port(int *port);

/* Write everything (retrying EINTR/partial writes). */
int ud_write_all(int fd, const void *data, size_t len);

/* Read up to and excluding '\n' into out (out->max caps it), waiting at
 * most timeout_ms overall (<= 0: forever). UD_ETIMEOUT, UD_ETOOBIG, or
 * UD_ERROR on EOF before a newline. */
int ud_read_line(int fd, struct ud_buf *out, int timeout_ms);

#endif
