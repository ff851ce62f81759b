/* health.c: is an instance ready? HTTP, TCP or a console regex. */
#include "health.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/* One attempt never blocks longer than this, so a hung instance cannot
 * keep us from noticing that it died. */
#define ATTEMPT_MAX_MS 1000
#define BACKOFF_MAX_MS 50
/* A summoned instance is waited for by a held connection: poll every
 * millisecond for this long (a refused connect on loopback costs a few
 * microseconds), so readiness is noticed within a millisecond or two,
 * then back off for the slow boots. */
#define TIGHT_MS 5000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void ud_health_free(struct ud_health *h)
{
	if (!h)
		return;
	free(h->http_path);
	free(h->serial_regex);
	h->http_path = NULL;
	h->serial_regex = NULL;
}

static size_t discard(char *data, size_t size, size_t n, void *payload)
{
	(void)data;
	(void)payload;
	return size * n;
}

/* "host:port", with brackets around an IPv6 literal. */
static char *host_port(const char *host, int port)
{
	if (!host || !*host)
		host = "127.0.0.1";
	return strchr(host, ':') ? ud_asprintf("[%s]:%d", host, port)
				 : ud_asprintf("%s:%d", host, port);
}

int ud_health_http_once(const char *host, int port, const char *path,
			int timeout_ms)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	char *hp = host_port(host, port), *url;
	const char *p = path && *path ? path : "/";
	long status = 0;
	CURLcode rc;
	CURL *c;
	int err = 0;

	url = ud_asprintf("http://%s%s%s", hp, *p == '/' ? "" : "/", p);
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		err = ud_error_set(UD_ERROR, "GET %s: %s", p,
				   curl_easy_strerror(curl_init_rc));
		goto done;
	}
	if (!(c = curl_easy_init())) {
		err = ud_error_set(UD_ERROR, "GET %s: cannot create a curl "
				   "handle", p);
		goto done;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 (long)(timeout_ms > 0 ? timeout_ms : ATTEMPT_MAX_MS));
	/* The instance is on this host or its bridge: a proxy from the
	 * environment must not stand in between. */
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	/* Threads and signals do not mix: no SIGALRM for DNS timeouts. */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "unideploy-health");
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		err = ud_error_set(UD_ERROR, "GET %s: %s", p,
				   *errbuf ? errbuf : curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299)
			err = ud_error_set(UD_ERROR, "GET %s answered %ld", p,
					   status);
	}
	curl_easy_cleanup(c);

done:
	free(url);
	free(hp);
	return err;
}

int ud_health_tcp_once(const char *host, int port, int timeout_ms)
{
	char *hp = host_port(host, port);
	struct ud_addr a;
	int fd, err;

	if ((err = ud_addr_parse(&a, hp)) < 0)
		goto done;
	if ((err = ud_net_connect(&fd, &a, timeout_ms)) < 0) {
		/* Refused and timed out alike mean "not yet" here. */
		err = UD_ERROR;
		goto done;
	}
	close(fd);

done:
	free(hp);
	return err;
}

/*
 * The console is searched incrementally: `off` is where the last
 * incomplete line starts, so each round reads only what is new (plus that
 * line). With REG_NEWLINE a match cannot cross a line break, so nothing
 * before `off` can take part in one.
 */
struct serial {
	regex_t re;
	int compiled;
	off_t off;
	const char *path, *pattern;
};

static int serial_init(struct serial *s, const char *pattern,
		       const char *path)
{
	char msg[256];
	int rc;

	memset(s, 0, sizeof(*s));
	s->path = path;
	s->pattern = pattern ? pattern : "";
	if (!path)
		return ud_error_set(UD_EINVALID, "serial health check "
				    "needs a console file");
	if ((rc = regcomp(&s->re, s->pattern, REG_EXTENDED | REG_NEWLINE |
			  REG_NOSUB)) != 0) {
		regerror(rc, &s->re, msg, sizeof(msg));
		return ud_error_set(UD_EINVALID, "bad serial regex '%s': %s",
				    s->pattern, msg);
	}
	s->compiled = 1;
	return 0;
}

static void serial_free(struct serial *s)
{
	if (s->compiled)
		regfree(&s->re);
	s->compiled = 0;
}

static int serial_once(struct serial *s)
{
	struct ud_buf b = UD_BUF_INIT;
	char chunk[65536], *nl;
	ssize_t n;
	size_t i;
	int fd, err = 0;

	if ((fd = open(s->path, O_RDONLY | O_CLOEXEC)) < 0)
		return ud_error_set_errno(UD_ERROR, "console %s", s->path);
	if (lseek(fd, s->off, SEEK_SET) < 0) {
		err = ud_error_set_errno(UD_ERROR, "console %s", s->path);
		goto done;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = ud_error_set_errno(UD_ERROR, "console %s",
						 s->path);
			goto done;
		}
		ud_buf_put(&b, chunk, (size_t)n);
	}
	/* Consoles print binary noise; a NUL would end the search early. */
	for (i = 0; i < b.size; i++)
		if (b.ptr[i] == '\0')
			b.ptr[i] = ' ';
	if (regexec(&s->re, b.ptr, 0, NULL, 0) == 0)
		goto done;
	if ((nl = memrchr(b.ptr, '\n', b.size)))
		s->off += (off_t)(nl - b.ptr) + 1;
	err = ud_error_set(UD_ERROR, "console never printed /%s/",
			   s->pattern);

done:
	ud_buf_free(&b);
	close(fd);
	return err;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int ud_health_wait(const struct ud_health *h, const char *host, int port,
		   const char *console_path, int timeout_ms,
		   ud_alive_fn alive, void *payload)
{
	long long start = ud_now_ms(), deadline = start + timeout_ms;
	struct serial serial = { .compiled = 0 };
	char why[256], last[512] = "no attempt made";
	int backoff = 1, listening = 0, have_last = 0, err;

	if (h->kind == UD_HEALTH_SERIAL &&
	    (err = serial_init(&serial, h->serial_regex, console_path)) < 0)
		return err;
	for (;;) {
		long long left = deadline - ud_now_ms();
		int attempt = left < 1 ? 1 : left > ATTEMPT_MAX_MS ?
			      ATTEMPT_MAX_MS : (int)left;

		why[0] = '\0';
		if (alive && !alive(payload, why, sizeof(why))) {
			err = ud_error_set(UD_ERROR, "%s",
					   *why ? why : "instance is gone");
			goto done;
		}
		switch (h->kind) {
		case UD_HEALTH_HTTP:
			/* Nothing listens yet: a plain connect says so far
			 * more cheaply than a whole curl request. */
			err = ud_health_tcp_once(host, port, attempt);
			if (err < 0) {
				ud_error_prefix("GET %s", h->http_path ?
						h->http_path : "/");
				break;
			}
			listening = 1;
			err = ud_health_http_once(host, port, h->http_path,
						  attempt);
			break;
		case UD_HEALTH_TCP:
			err = ud_health_tcp_once(host, port, attempt);
			break;
		default:
			err = serial_once(&serial);
			break;
		}
		if (err == 0)
			goto done;
		left = deadline - ud_now_ms();
		/* An attempt the deadline cut short says only that time ran
		 * out: the answer before it (a 503, a refused connect) says
		 * why the instance is not healthy, however slow the machine
		 * made this last try. */
		if (!have_last || left > 0 || attempt >= ATTEMPT_MAX_MS)
			snprintf(last, sizeof(last), "%s", ud_error_last());
		have_last = 1;

		if (left <= 0) {
			err = ud_error_set(UD_ETIMEOUT, "not healthy within "
					   "%g s: %s", timeout_ms / 1000.0,
					   last);
			goto done;
		}
		sleep_ms(backoff < left ? backoff : (int)left);
		/* An app that listens but is not healthy yet is warming
		 * up: a whole request every millisecond would only compete
		 * with it for the CPU. */
		if (listening || ud_now_ms() - start >= TIGHT_MS)
			backoff = backoff * 2 > BACKOFF_MAX_MS ?
				BACKOFF_MAX_MS : backoff * 2;
	}

done:
	serial_free(&serial);
	return err;
}
