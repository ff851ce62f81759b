#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "errors.h"
#include "health.h"
#include "net.h"

/*
 * A tiny HTTP server on a loopback port, in a thread of the test: answers
 * every request with `status`, or with 200 once `ok_after` requests were
 * served (when non-zero).
 */
struct server {
	int lfd, port;
	atomic_int status, ok_after, served, stop;
	atomic_int delay_ms; /* before each answer */
	char last_path[256];
	pthread_t thread;
};

static void serve_one(struct server *s, int fd)
{
	struct ud_buf line = UD_BUF_INIT;
	char resp[128];
	int status, n;

	ud_buf_init(&line, 4096);
	if (ud_read_line(fd, &line, 2000) < 0)
		goto done;
	sscanf(line.ptr, "GET %255s", s->last_path);
	/* Headers until the empty line. */
	while (ud_read_line(fd, &line, 2000) == 0 &&
	       strcmp(line.ptr, "\r") != 0 && line.size)
		;
	if (s->delay_ms) {
		struct timespec ts = { s->delay_ms / 1000,
				       (s->delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	n = atomic_fetch_add(&s->served, 1) + 1;
	status = s->ok_after && n >= s->ok_after ? 200 : s->status;
	snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n"
		 "Connection: close\r\n\r\nok", status);
	ud_write_all(fd, resp, strlen(resp));
done:
	ud_buf_free(&line);
	close(fd);
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		ud_net_nonblock(fd, 0);
		serve_one(s, fd);
	}
	return NULL;
}

static void server_start(struct server *s, int status)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct ud_addr a;

	memset(s, 0, sizeof(*s));
	s->status = status;
	assert_int_equal(ud_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(ud_net_listen(&s->lfd, &a, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len),
			 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

static void test_http_once(void **state)
{
	struct server s;

	(void)state;
	server_start(&s, 200);
	assert_int_equal(ud_health_http_once("127.0.0.1", s.port, "/health",
					      2000), 0);
	assert_string_equal(s.last_path, "/health");
	/* A path without its slash gets one. */
	assert_int_equal(ud_health_http_once("localhost", s.port, "ready",
					      2000), 0);
	assert_string_equal(s.last_path, "/ready");
	s.status = 503;
	assert_int_equal(ud_health_http_once("127.0.0.1", s.port, "/health",
					      2000), UD_ERROR);
	assert_string_equal(ud_error_last(), "GET /health answered 503");
	s.status = 404;
	assert_int_equal(ud_health_http_once("127.0.0.1", s.port, "/x",
					      2000), UD_ERROR);
	assert_string_equal(ud_error_last(), "GET /x answered 404");
	server_stop(&s);

	/* Nobody listens any more. */
	assert_int_equal(ud_health_http_once("127.0.0.1", s.port, "/health",
					      2000), UD_ERROR);
	assert_true(strncmp(ud_error_last(), "GET /health: ", 13) == 0);
}

static void test_http_wait(void **state)
{
	struct ud_health h = { .kind = UD_HEALTH_HTTP };
	struct server s;

	(void)state;
	h.http_path = "/health";
	server_start(&s, 503);
	/* Unhealthy for the first three answers, then healthy. */
	s.ok_after = 4;
	assert_int_equal(ud_health_wait(&h, "127.0.0.1", s.port, NULL, 10000,
					NULL, NULL), 0);
	assert_int_equal(s.served, 4);

	/* 3 s, not less: on a busy machine the first answer alone may
	 * take longer than a short deadline, and the message then names
	 * the timeout instead of the 503. */
	s.ok_after = 0;
	assert_int_equal(ud_health_wait(&h, "127.0.0.1", s.port, NULL, 3000,
					NULL, NULL), UD_ETIMEOUT);
	assert_string_equal(ud_error_last(), "not healthy within 3 s: "
			    "GET /health answered 503");
	server_stop(&s);
}

/* A slow app: each 503 takes 700 ms, so the deadline cuts the third
 * attempt short. The error still names the 503, not the cut attempt's
 * timeout (on a busy machine, any attempt may be the one cut short). */
static void test_http_wait_names_last_answer(void **state)
{
	struct ud_health h = { .kind = UD_HEALTH_HTTP };
	struct server s;

	(void)state;
	h.http_path = "/health";
	server_start(&s, 503);
	s.delay_ms = 700;
	assert_int_equal(ud_health_wait(&h, "127.0.0.1", s.port, NULL, 2000,
					NULL, NULL), UD_ETIMEOUT);
	assert_string_equal(ud_error_last(), "not healthy within 2 s: "
			    "GET /health answered 503");
	assert_true(s.served >= 1);
	server_stop(&s);
}

static void test_tcp(void **state)
{
	struct ud_health h = { .kind = UD_HEALTH_TCP };
	struct server s;
	int port;

	(void)state;
	server_start(&s, 200);
	assert_int_equal(ud_health_tcp_once("127.0.0.1", s.port, 2000), 0);
	assert_int_equal(ud_health_wait(&h, "127.0.0.1", s.port, NULL, 5000,
					NULL, NULL), 0);
	server_stop(&s);

	assert_int_equal(ud_net_free_port(&port), 0);
	assert_int_equal(ud_health_tcp_once("127.0.0.1", port, 2000),
			 UD_ERROR);
	assert_non_null(strstr(ud_error_last(), "Connection refused"));
	assert_int_equal(ud_health_wait(&h, "127.0.0.1", port, NULL, 200,
					NULL, NULL), UD_ETIMEOUT);
	assert_true(strncmp(ud_error_last(), "not healthy within 0.2 s: "
			    "cannot connect to 127.0.0.1:", 54) == 0);
	assert_non_null(strstr(ud_error_last(), "Connection refused"));
}

struct writer {
	const char *path;
	atomic_int step; /* advanced by the alive() callback */
};

#define append(path, lit) append_n(path, lit, sizeof(lit) - 1)

static void append_n(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ud_write_all(fd, text, len), 0);
	close(fd);
}

/* The console appears and grows while the wait runs: each round, the
 * alive() callback writes the next piece. The match needs the last one,
 * and straddles the boundary between rounds. */
static int console_alive(void *payload, char *why, size_t whylen)
{
	struct writer *w = payload;

	(void)why;
	(void)whylen;
	switch (w->step++) {
	case 2:
		append(w->path, "SeaBIOS\n\x01\x02garbage\0\n");
		break;
	case 4:
		append(w->path, "booting unikernel\nlisten");
		break;
	case 6:
		append(w->path, "ing on port 8080\n");
		break;
	}
	return 1;
}

static void test_serial(void **state)
{
	char dir[] = "/tmp/ud-health-XXXXXX";
	struct ud_health h = { .kind = UD_HEALTH_SERIAL };
	struct writer w = { 0 };
	char *path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = ud_asprintf("%s/console", dir);
	w.path = path;
	h.serial_regex = "^listening on port [0-9]+$";
	assert_int_equal(ud_health_wait(&h, NULL, 0, path, 10000,
					console_alive, &w), 0);
	assert_true(w.step >= 7);

	h.serial_regex = "^never printed$";
	assert_int_equal(ud_health_wait(&h, NULL, 0, path, 200, NULL, NULL),
			 UD_ETIMEOUT);
	assert_string_equal(ud_error_last(), "not healthy within 0.2 s: "
			    "console never printed /^never printed$/");

	h.serial_regex = "([unclosed";
	assert_int_equal(ud_health_wait(&h, NULL, 0, path, 200, NULL, NULL),
			 UD_EINVALID);
	assert_true(strncmp(ud_error_last(), "bad serial regex '([unclosed': ",
			    31) == 0);

	free(path);
	ud_rm_rf(dir);
}

struct dier {
	int calls;
};

static int dies_on_third(void *payload, char *why, size_t whylen)
{
	struct dier *d = payload;

	if (++d->calls < 3)
		return 1;
	snprintf(why, whylen, "instance exited with status 1");
	return 0;
}

static void test_alive_stops_wait(void **state)
{
	struct ud_health h = { .kind = UD_HEALTH_HTTP };
	struct dier d = { 0 };
	int port;

	(void)state;
	h.http_path = "/health";
	assert_int_equal(ud_net_free_port(&port), 0);
	assert_int_equal(ud_health_wait(&h, "127.0.0.1", port, NULL, 60000,
					dies_on_third, &d), UD_ERROR);
	assert_string_equal(ud_error_last(), "instance exited with status 1");
	assert_int_equal(d.calls, 3);
}

static void test_health_free_members(void **state)
{
	struct ud_health h = { .kind = UD_HEALTH_HTTP };

	(void)state;
	ud_health_free(NULL);
	h.http_path = ud_strdup("/health");
	h.serial_regex = ud_strdup("x");
	ud_health_free(&h);
	assert_null(h.http_path);
	assert_null(h.serial_regex);
	ud_health_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_once),
		cmocka_unit_test(test_http_wait),
		cmocka_unit_test(test_http_wait_names_last_answer),
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_serial),
		cmocka_unit_test(test_alive_stops_wait),
		cmocka_unit_test(test_health_free_members),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	curl_global_cleanup();
	return rc;
}
