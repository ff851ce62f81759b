/* net.c: socket helpers (redis anet.c in spirit). */
#include "net.h"
#include "errors.h"
#include "log.h"
#include "num.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int bad_addr(const char *spec, const char *why)
{
	return ud_error_set(UD_EINVALID, "invalid address '%s': %s", spec,
			    why);
}

static int parse_port(int *port, const char *s)
{
	long long v;

	if (ud_num_parse(s, 0, 65535, &v) < 0)
		return -1;
	*port = (int)v;
	return 0;
}

static int parse_unix(struct ud_addr *out, const char *spec, const char *path)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
	size_t len = strlen(path);

	if (len == 0)
		return bad_addr(spec, "empty unix socket path");
	if (len >= sizeof(sun->sun_path))
		return bad_addr(spec, "unix socket path too long");
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, len + 1);
	out->family = AF_UNIX;
	out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	return 0;
}

static int resolve(struct ud_addr *out, const char *spec, const char *host,
		   int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	struct addrinfo hints, *res = NULL;
	int rc;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->family = AF_INET;
		out->len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->family = AF_INET6;
		out->len = sizeof(*sin6);
		return 0;
	}

	/* Prefer IPv4: "localhost" often lists ::1 first while the services
	 * we talk to listen on 127.0.0.1. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		hints.ai_family = AF_UNSPEC;
		rc = getaddrinfo(host, NULL, &hints, &res);
	}
	if (rc != 0) {
		ud_error_set(UD_EINVALID, "invalid address '%s': cannot resolve '%s': %s",
			     spec, host, gai_strerror(rc));
		return UD_EINVALID;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->family = res->ai_family;
	out->len = res->ai_addrlen;
	if (out->family == AF_INET)
		sin->sin_port = htons((uint16_t)port);
	else
		sin6->sin6_port = htons((uint16_t)port);
	freeaddrinfo(res);
	return 0;
}

int ud_addr_parse(struct ud_addr *out, const char *spec)
{
	const char *colon, *hostp;
	char *host = NULL;
	int port, err;

	memset(out, 0, sizeof(*out));
	snprintf(out->text, sizeof(out->text), "%s", spec);
	if (!strncmp(spec, "unix:", 5))
		return parse_unix(out, spec, spec + 5);

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close)
			return bad_addr(spec, "missing ']'");
		if (close[1] != ':')
			return bad_addr(spec, "missing port");
		hostp = spec + 1;
		colon = close + 1;
		host = ud_strndup(hostp, (size_t)(close - hostp));
		if (!*host || !strchr(host, ':')) {
			err = bad_addr(spec, "not an IPv6 address");
			goto done;
		}
	} else {
		if (!(colon = strrchr(spec, ':')))
			return bad_addr(spec, "missing port");
		host = ud_strndup(spec, (size_t)(colon - spec));
		if (!*host) {
			err = bad_addr(spec, "missing host");
			goto done;
		}
		if (strchr(host, ':')) {
			err = bad_addr(spec, "IPv6 addresses need brackets");
			goto done;
		}
	}
	if (parse_port(&port, colon + 1) < 0) {
		err = bad_addr(spec, "bad port");
		goto done;
	}
	err = resolve(out, spec, host, port);

done:
	free(host);
	return err;
}

int ud_net_nonblock(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return ud_error_set_errno(UD_ERROR, "fcntl");
	flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	if (fcntl(fd, F_SETFL, flags) < 0)
		return ud_error_set_errno(UD_ERROR, "fcntl");
	return 0;
}

/* A socket file left behind by a dead listener may be replaced; a live
 * one (something accepts connections) may not. */
static int clear_stale_socket(const struct ud_addr *a)
{
	const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;
	struct stat st;
	int fd, live;

	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return ud_error_set(UD_EEXISTS,
				    "cannot listen on %s: not a socket", a->text);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ud_error_set_errno(UD_ERROR, "cannot listen on %s",
					  a->text);
	live = connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0;
	close(fd);
	if (live)
		return ud_error_set(UD_EBUSY, "cannot listen on %s: "
				    "another process is listening", a->text);
	if (unlink(path) < 0 && errno != ENOENT)
		return ud_error_set_errno(UD_ERROR, "cannot remove stale %s",
					  path);
	return 0;
}

int ud_net_listen(int *fd, const struct ud_addr *a, int backlog)
{
	int s = -1, one = 1, err = 0;

	*fd = -1;
	if (a->family == AF_UNIX && (err = clear_stale_socket(a)) < 0)
		return err;
	s = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot listen on %s",
					 a->text);
		goto done;
	}
	if (a->family != AF_UNIX &&
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot listen on %s",
					 a->text);
		goto done;
	}
	if (bind(s, (const struct sockaddr *)&a->ss, a->len) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot listen on %s",
					 a->text);
		goto done;
	}
	if (a->family == AF_UNIX &&
	    chmod(((const struct sockaddr_un *)&a->ss)->sun_path, 0660) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot chmod %s", a->text);
		goto done;
	}
	if (listen(s, backlog > 0 ? backlog : SOMAXCONN) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot listen on %s",
					 a->text);
		goto done;
	}
	*fd = s;
	s = -1;

done:
	if (s >= 0)
		close(s);
	return err;
}

static int remaining_ms(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - ud_now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int ud_net_connect(int *fd, const struct ud_addr *a, int timeout_ms)
{
	long long deadline = timeout_ms > 0 ? ud_now_ms() + timeout_ms : -1;
	socklen_t sl = sizeof(int);
	int s, soerr = 0, rc, err = 0;

	*fd = -1;
	s = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return ud_error_set_errno(UD_ERROR, "cannot connect to %s",
					  a->text);
	if (connect(s, (const struct sockaddr *)&a->ss, a->len) < 0) {
		struct pollfd p = { .fd = s, .events = POLLOUT };

		if (errno != EINPROGRESS) {
			err = ud_error_set_errno(UD_ERROR,
						 "cannot connect to %s",
						 a->text);
			goto done;
		}
		while ((rc = poll(&p, 1, remaining_ms(deadline))) < 0 &&
		       errno == EINTR)
			;
		if (rc < 0) {
			err = ud_error_set_errno(UD_ERROR,
						 "cannot connect to %s",
						 a->text);
			goto done;
		}
		if (rc == 0) {
			err = ud_error_set(UD_ETIMEOUT, "cannot connect to %s: "
					   "timed out after %d ms", a->text,
					   timeout_ms);
			goto done;
		}
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			errno = soerr;
			err = ud_error_set_errno(soerr == ETIMEDOUT ?
						 UD_ETIMEOUT : UD_ERROR,
						 "cannot connect to %s",
						 a->text);
			goto done;
		}
	}
	if ((err = ud_net_nonblock(s, 0)) < 0)
		goto done;
	*fd = s;
	s = -1;

done:
	if (s >= 0)
		close(s);
	return err;
}

int ud_net_free_port(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int s, err = 0;

	if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return ud_error_set_errno(UD_ERROR, "cannot find a free port");
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot find a free port");
		goto done;
	}
	*port = ntohs(sin.sin_port);

done:
	close(s);
	return err;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	while ((rc = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	return rc;
}

int ud_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	int is_sock = 1;
	ssize_t n;

	while (len) {
		/* send() with MSG_NOSIGNAL so a vanished peer is an error,
		 * not a SIGPIPE that kills the daemon. */
		n = is_sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
		if (n < 0 && is_sock && errno == ENOTSOCK) {
			is_sock = 0;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			wait_fd(fd, POLLOUT, -1);
			continue;
		}
		if (n < 0)
			return ud_error_set_errno(UD_ERROR, "write failed");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ud_read_line(int fd, struct ud_buf *out, int timeout_ms)
{
	long long deadline = timeout_ms > 0 ? ud_now_ms() + timeout_ms : -1;
	char tmp[512], *nl;
	int is_sock = 1, rc, err;
	ssize_t n;
	size_t take;

	ud_buf_clear(out);
	for (;;) {
		rc = wait_fd(fd, POLLIN, remaining_ms(deadline));
		if (rc < 0)
			return ud_error_set_errno(UD_ERROR, "read failed");
		if (rc == 0)
			return ud_error_set(UD_ETIMEOUT, "no complete line "
					    "within %d ms", timeout_ms);
		/* Peek first so nothing past the newline is consumed: the
		 * next reader of this fd gets it. Non-sockets go by byte. */
		if (is_sock) {
			n = recv(fd, tmp, sizeof(tmp), MSG_PEEK);
			if (n < 0 && errno == ENOTSOCK) {
				is_sock = 0;
				continue;
			}
		} else {
			n = read(fd, tmp, 1);
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN ||
			      errno == EWOULDBLOCK))
			continue;
		if (n < 0)
			return ud_error_set_errno(UD_ERROR, "read failed");
		if (n == 0)
			return ud_error_set(UD_ERROR,
					    "connection closed before end of line");
		nl = memchr(tmp, '\n', (size_t)n);
		take = nl ? (size_t)(nl - tmp) + 1 : (size_t)n;
		if (is_sock) {
			while ((n = recv(fd, tmp, take, 0)) < 0 && errno == EINTR)
				;
			if (n < 0 || (size_t)n != take)
				return ud_error_set_errno(UD_ERROR,
							  "read failed");
		}
		if ((err = ud_buf_put(out, tmp, nl ? take - 1 : take)) < 0)
			return err;
		if (nl)
			return 0;
	}
}
