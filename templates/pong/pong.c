/*
 * pong: the sample app, a stand-in for a MirageOS `-t unix` unikernel.
 *
 * A tiny HTTP/1.1 server (libc + pthreads only) on 127.0.0.1:$PORT, one
 * thread per connection, keep-alive and pipelining supported:
 *
 *   GET /           200 "pong <VERSION>\n"
 *   GET /health     HEALTH_STATUS (default 200) "ok\n"
 *   GET /slow?ms=N  200 after N ms (lets tests watch a drain)
 *   GET /crash      the process exits with status 3
 *
 * Build-time knobs: -DVERSION='"v2"', -DHEALTH_STATUS=503 (a release
 * that fails its health check), -DSTARTUP_DELAY_MS=N (boots slowly, like a
 * VM: it listens only after N ms, which holds a swap open for tests),
 * -DSTARTUP_GATE='"/path"' (listens only once that file exists: a swap
 * held open for exactly as long as a test needs, however busy the
 * machine), -DEXIT_AFTER_MS=N (exits with -DEXIT_STATUS, default 0, N ms
 * after it listens: a job that ends, for run.restart). A build whose
 * health fails says so on its console at start, so that the pusher's
 * report can quote it. Anything malformed gets a 400 and the connection is closed;
 * no input makes it crash.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, strcasestr; the app build passes no -D */
#endif
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef VERSION
#define VERSION "dev"
#endif
#ifndef HEALTH_STATUS
#define HEALTH_STATUS 200
#endif
#ifndef STARTUP_DELAY_MS
#define STARTUP_DELAY_MS 0
#endif
#ifndef EXIT_STATUS
#define EXIT_STATUS 0
#endif

/* A request head larger than this is refused: no client of ours needs it. */
#define HEAD_MAX 8192
/* Bodies are read and dropped; a bigger one is refused rather than read. */
#define BODY_MAX (1024 * 1024)
#define SLOW_MAX_MS 600000L
/* An idle keep-alive connection is closed after this, so threads of
 * vanished clients do not pile up. */
#define IDLE_S 60

struct request {
	char method[16];
	char target[2048];
	int keep_alive;
	long long content_length;
};

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return status < 400 ? "OK" : "Error";
	}
}

static int write_all(int fd, const char *p, size_t n, int flags)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | flags);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int respond(int fd, int status, const char *body, int keep_alive,
		   int head_only)
{
	char hdr[512];
	size_t len = strlen(body);
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: text/plain\r\n"
			 "Content-Length: %zu\r\n"
			 "Connection: %s\r\n"
			 "%s"
			 "\r\n",
			 status, reason(status), len,
			 keep_alive ? "keep-alive" : "close",
			 status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return -1;
	/* Header and body leave in one segment: sent apart, Nagle holds the
	 * body for the client's delayed ACK (40 ms a keep-alive request). */
	if (write_all(fd, hdr, (size_t)n, head_only || !len ? 0 : MSG_MORE) < 0)
		return -1;
	return head_only ? 0 : write_all(fd, body, len, 0);
}

static int is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parse a decimal in [0, max]; the whole string must be digits. */
static int parse_num(const char *s, size_t n, long long max, long long *out)
{
	long long v = 0;
	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parse the head (without its blank line, NUL-terminated, CRLF or LF line
 * ends). Returns 0, or the HTTP status to refuse it with. */
static int parse_head(struct request *rq, char *head)
{
	char *line, *save = NULL, *sp1, *sp2, *version;
	int http11;

	memset(rq, 0, sizeof(*rq));
	line = strtok_r(head, "\n", &save);
	if (!line)
		return 400;
	line[strcspn(line, "\r")] = '\0';
	if (!(sp1 = strchr(line, ' ')) || !(sp2 = strchr(sp1 + 1, ' ')))
		return 400;
	*sp1 = *sp2 = '\0';
	version = sp2 + 1;
	if (sp1 == line || (size_t)(sp1 - line) >= sizeof(rq->method))
		return 400;
	for (char *p = line; *p; p++)
		if (!is_tchar((unsigned char)*p))
			return 400;
	strcpy(rq->method, line);
	if (sp1[1] != '/' || strlen(sp1 + 1) >= sizeof(rq->target))
		return 400;
	for (char *p = sp1 + 1; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return 400;
	strcpy(rq->target, sp1 + 1);
	if (!strcmp(version, "HTTP/1.1"))
		http11 = 1;
	else if (!strcmp(version, "HTTP/1.0"))
		http11 = 0;
	else
		return 400;
	rq->keep_alive = http11;

	while ((line = strtok_r(NULL, "\n", &save))) {
		char *colon, *value, *end;
		line[strcspn(line, "\r")] = '\0';
		if (!(colon = strchr(line, ':')) || colon == line)
			return 400;
		for (char *p = line; p < colon; p++)
			if (!is_tchar((unsigned char)*p))
				return 400;
		*colon = '\0';
		value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		end = value + strlen(value);
		while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!strcasecmp(line, "Connection")) {
			if (strcasestr(value, "close"))
				rq->keep_alive = 0;
			else if (strcasestr(value, "keep-alive"))
				rq->keep_alive = 1;
		} else if (!strcasecmp(line, "Content-Length")) {
			if (parse_num(value, strlen(value), BODY_MAX,
				      &rq->content_length) < 0)
				return 400;
		} else if (!strcasecmp(line, "Transfer-Encoding")) {
			return 501;
		}
	}
	return 0;
}

/* The query parameter `ms` of /slow, or -1 when missing or bad. */
static long slow_ms(const char *query)
{
	const char *p = query;
	while (p && *p) {
		size_t n = strcspn(p, "&");
		long long v;
		if (n > 3 && !strncmp(p, "ms=", 3)) {
			if (parse_num(p + 3, n - 3, SLOW_MAX_MS, &v) < 0)
				return -1;
			return (long)v;
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Answer one parsed request. Returns -1 to close the connection. */
static int serve(int fd, struct request *rq)
{
	char *query = strchr(rq->target, '?');
	int head_only = !strcmp(rq->method, "HEAD");
	int ka = rq->keep_alive;

	if (query)
		*query++ = '\0';
	if (strcmp(rq->method, "GET") && !head_only)
		return respond(fd, 405, "method not allowed\n", ka, 0) < 0 || !ka ? -1 : 0;

	if (!strcmp(rq->target, "/")) {
		if (respond(fd, 200, "pong " VERSION "\n", ka, head_only) < 0)
			return -1;
	} else if (!strcmp(rq->target, "/health")) {
		if (respond(fd, HEALTH_STATUS,
			    HEALTH_STATUS / 100 == 2 ? "ok\n" : "unhealthy\n",
			    ka, head_only) < 0)
			return -1;
	} else if (!strcmp(rq->target, "/slow")) {
		long ms = slow_ms(query);
		char body[64];
		if (ms < 0) {
			respond(fd, 400, "slow needs ms=N (0..600000)\n", 0, 0);
			return -1;
		}
		sleep_ms(ms);
		snprintf(body, sizeof(body), "slept %ld ms\n", ms);
		if (respond(fd, 200, body, ka, head_only) < 0)
			return -1;
	} else if (!strcmp(rq->target, "/crash")) {
		respond(fd, 200, "crashing\n", 0, 0);
		_exit(3);
	} else {
		if (respond(fd, 404, "not found\n", ka, head_only) < 0)
			return -1;
	}
	return ka ? 0 : -1;
}

/* Find the end of the head in buf[0..n): returns the offset just past the
 * blank line, with *head_len the length before it, or 0 if incomplete. */
static size_t head_end(const char *buf, size_t n, size_t *head_len)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n') {
			*head_len = i;
			return i + 2;
		}
		if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			*head_len = i;
			return i + 3;
		}
	}
	return 0;
}

static void *connection(void *arg)
{
	int fd = (int)(long)arg;
	char *buf = malloc(HEAD_MAX + 1);
	size_t have = 0;
	struct timeval tv = { IDLE_S, 0 };

	if (!buf)
		goto done;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		struct request rq;
		size_t head_len = 0, used;
		long long skip;
		int status;

		while (!(used = head_end(buf, have, &head_len))) {
			ssize_t r;
			if (have == HEAD_MAX) {
				respond(fd, 400, "request head too large\n", 0, 0);
				goto done;
			}
			r = recv(fd, buf + have, HEAD_MAX - have, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto done;
			have += (size_t)r;
		}
		buf[head_len] = '\0';
		if ((status = parse_head(&rq, buf)) != 0) {
			respond(fd, status, status == 400 ? "bad request\n"
						: "not implemented\n", 0, 0);
			goto done;
		}
		/* Drop the body: what is buffered first, then the rest. */
		skip = rq.content_length;
		memmove(buf, buf + used, have - used);
		have -= used;
		if ((size_t)skip <= have) {
			memmove(buf, buf + skip, have - (size_t)skip);
			have -= (size_t)skip;
		} else {
			skip -= (long long)have;
			have = 0;
			while (skip > 0) {
				char sink[4096];
				ssize_t r = recv(fd, sink, skip < (long long)sizeof(sink)
						 ? (size_t)skip : sizeof(sink), 0);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					goto done;
				skip -= r;
			}
		}
		if (serve(fd, &rq) < 0)
			goto done;
	}
done:
	free(buf);
	close(fd);
	return NULL;
}

#ifdef EXIT_AFTER_MS
static void *exit_later(void *arg)
{
	(void)arg;
	sleep_ms(EXIT_AFTER_MS);
	fprintf(stderr, "pong: done after %d ms, exiting with status %d\n",
		EXIT_AFTER_MS, EXIT_STATUS);
	exit(EXIT_STATUS);
}
#endif

int main(void)
{
	const char *port_s = getenv("PORT");
	long long port;
	struct sockaddr_in sa;
	pthread_attr_t attr;
	int one = 1, lfd;

	if (!port_s || parse_num(port_s, strlen(port_s), 65535, &port) < 0 ||
	    port == 0) {
		fprintf(stderr, "pong: PORT must be set to a port number (1-65535)\n");
		return 2;
	}
	/* A client that hangs up mid-answer must not kill the server. */
	signal(SIGPIPE, SIG_IGN);

	if (STARTUP_DELAY_MS > 0)
		sleep_ms(STARTUP_DELAY_MS);
#ifdef STARTUP_GATE
	while (access(STARTUP_GATE, F_OK) < 0)
		sleep_ms(20);
#endif
	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		perror("pong: socket");
		return 1;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "pong: bind 127.0.0.1:%lld: %s\n", port, strerror(errno));
		return 1;
	}
	if (listen(lfd, 512) < 0) {
		perror("pong: listen");
		return 1;
	}
	fprintf(stderr, "pong %s listening on 127.0.0.1:%lld\n", VERSION, port);
	if (HEALTH_STATUS / 100 != 2)
		fprintf(stderr, "pong %s: built to fail: GET /health answers %d\n",
			VERSION, HEALTH_STATUS);
#ifdef EXIT_AFTER_MS
	{
		pthread_t t;

		if (pthread_create(&t, NULL, exit_later, NULL) == 0)
			pthread_detach(t);
	}
#endif

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		pthread_t t;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors or a client gone before accept:
			 * wait a little and keep serving the others. */
			if (errno != EINTR)
				sleep_ms(errno == EMFILE || errno == ENFILE ? 50 : 1);
			continue;
		}
		if (pthread_create(&t, &attr, connection, (void *)(long)fd) != 0)
			close(fd);
	}
}
