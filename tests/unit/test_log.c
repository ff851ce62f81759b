/* test_log.c: level filtering and line format of ud_log, and the clocks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

/* stderr goes to a temp file between capture_start and capture_end. */
struct capture {
	char path[64];
	int saved;
};

static void capture_start(struct capture *c)
{
	int fd;

	strcpy(c->path, "/tmp/ud-log-XXXXXX");
	assert_true((fd = mkstemp(c->path)) >= 0);
	fflush(stderr);
	assert_true((c->saved = dup(2)) >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
}

static void capture_end(struct capture *c, struct ud_buf *out)
{
	fflush(stderr);
	assert_int_equal(dup2(c->saved, 2), 2);
	close(c->saved);
	assert_int_equal(ud_buf_read_file(out, c->path), 0);
	unlink(c->path);
}

static void assert_matches(const char *s, const char *re)
{
	regex_t rx;
	int rc;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&rx, s, 0, NULL, 0);
	regfree(&rx);
	if (rc != 0)
		fail_msg("'%s' does not match /%s/", s, re);
}

static void test_levels_plain(void **state)
{
	struct capture c;
	struct ud_buf out = UD_BUF_INIT;

	(void)state;
	ud_log_init(UD_LOG_WARN, 0);
	capture_start(&c);
	ud_log_error("e %d", 1);
	ud_log_warn("w %s", "two");
	ud_log_info("i hidden");
	ud_log_debug("d hidden");
	capture_end(&c, &out);
	assert_string_equal(out.ptr, "e 1\nw two\n");
	ud_buf_clear(&out);

	ud_log_init(UD_LOG_DEBUG, 0);
	capture_start(&c);
	ud_log_debug("d");
	ud_log_info("i");
	capture_end(&c, &out);
	assert_string_equal(out.ptr, "d\ni\n");
	ud_buf_clear(&out);

	ud_log_init(UD_LOG_ERROR, 0);
	capture_start(&c);
	ud_log_warn("hidden");
	ud_log_error("only");
	capture_end(&c, &out);
	assert_string_equal(out.ptr, "only\n");
	ud_buf_free(&out);
	ud_log_init(UD_LOG_INFO, 0);
}

static void test_timestamps(void **state)
{
	struct capture c;
	struct ud_buf out = UD_BUF_INIT;

	(void)state;
	ud_log_init(UD_LOG_INFO, 1);
	capture_start(&c);
	ud_log_info("started %s", "agent");
	ud_log_error("boom");
	ud_log_debug("hidden");
	capture_end(&c, &out);
	ud_log_init(UD_LOG_INFO, 0);
	assert_matches(out.ptr,
		       "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z "
		       "info started agent\n"
		       "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z "
		       "error boom\n$");
	ud_buf_free(&out);
}

static void test_utc_now(void **state)
{
	char a[21], want[21];
	time_t before, after;
	struct tm tm;

	(void)state;
	memset(a, 'x', sizeof(a));
	before = time(NULL);
	ud_utc_now(a);
	after = time(NULL);
	assert_int_equal(strlen(a), 20);
	assert_matches(a, "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T"
			  "([01][0-9]|2[0-3]):[0-5][0-9]:[0-6][0-9]Z$");
	/* It is UTC now: equal to gmtime of a time read around it. */
	gmtime_r(&before, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (strcmp(a, want) != 0) {
		gmtime_r(&after, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		assert_string_equal(a, want);
	}
}

static void test_now_ms_monotonic(void **state)
{
	struct timespec ts, req = { 0, 20 * 1000 * 1000 };
	long long prev, now, mono;
	int i;

	(void)state;
	prev = ud_now_ms();
	/* It is CLOCK_MONOTONIC in milliseconds, not wall time. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mono = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_true(mono >= prev);
	assert_true(mono - prev < 60 * 1000);
	for (i = 0; i < 1000; i++) {
		now = ud_now_ms();
		assert_true(now >= prev);
		prev = now;
	}
	/* A 20 ms sleep advances it by at least 20 ms (a lower bound
	 * only: sleeping never returns early). */
	prev = ud_now_ms();
	nanosleep(&req, NULL);
	assert_true(ud_now_ms() - prev >= 19);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels_plain),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_utc_now),
		cmocka_unit_test(test_now_ms_monotonic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
