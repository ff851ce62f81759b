/* test_scrub.c: the build-output scrubber (lib/scrub.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "scrub.h"

#define KEY_LINE1 "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
#define KEY_LINE2 "QyNTUxOQAAACDq2wYk3mX9Lq8vUu1C8dKcH8N0c0yq4j1zQe6a2l7m3AAAAJgqQwH1KkMB"
#define KEY "-----BEGIN OPENSSH PRIVATE KEY-----\n" KEY_LINE1 "\n" KEY_LINE2 \
	    "\n-----END OPENSSH PRIVATE KEY-----\n"

static int encode_b64(char *out, const char *in)
{
	return EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in,
			       (int)strlen(in));
}

static void collect(const char *data, size_t len, void *payload)
{
	ud_buf_put(payload, data, len);
}

/* Feed `in` in pieces of `step` bytes, return everything passed on. */
static char *scrub_in_steps(struct ud_scrub *s, const char *in, size_t step)
{
	struct ud_buf out = UD_BUF_INIT;
	size_t len = strlen(in);

	s->out = collect;
	s->payload = &out;
	for (size_t off = 0; off < len; off += step)
		ud_scrub_write(s, in + off, len - off < step ? len - off : step);
	ud_scrub_flush(s);
	return ud_buf_detach(&out);
}

static void test_value_replaced(void **state)
{
	struct ud_scrub s;
	char *out;

	(void)state;
	ud_scrub_init(&s, NULL, NULL);
	ud_scrub_add(&s, "hunter2-hunter2");
	out = scrub_in_steps(&s, "pw=hunter2-hunter2 and hunter2-hunter2\nok\n",
			     4096);
	assert_string_equal(out, "pw=[redacted] and [redacted]\nok\n");
	free(out);
	ud_scrub_free(&s);
}

/* Every split point of the input: a secret cut by the read buffer is
 * still found, and nothing else changes. */
static void test_split_across_reads(void **state)
{
	const char *in = "before\nthe key is hunter2-hunter2, twice: "
			 "hunter2-hunter2\nafter\n";
	struct ud_scrub s;

	(void)state;
	for (size_t step = 1; step <= strlen(in); step++) {
		char *out;

		ud_scrub_init(&s, NULL, NULL);
		ud_scrub_add(&s, "hunter2-hunter2");
		out = scrub_in_steps(&s, in, step);
		assert_string_equal(out, "before\nthe key is [redacted], "
					 "twice: [redacted]\nafter\n");
		free(out);
		ud_scrub_free(&s);
	}
}

/* The whole PEM key, one line of it, the lines cut across reads, and the
 * key printed with CRLF endings. */
static void test_pem_per_line(void **state)
{
	const char *in = "whole:\n" KEY "one line: " KEY_LINE2 "\r\n"
			 "indented:   " KEY_LINE1 "\n";
	struct ud_scrub s;
	char *out;

	(void)state;
	for (size_t step = 1; step < 200; step += 37) {
		ud_scrub_init(&s, NULL, NULL);
		ud_scrub_add(&s, KEY);
		out = scrub_in_steps(&s, in, step);
		assert_null(strstr(out, KEY_LINE1));
		assert_null(strstr(out, KEY_LINE2));
		assert_null(strstr(out, "QyNTUxOQ"));
		/* armour is not secret; ordinary text stays */
		assert_non_null(strstr(out, "one line: [redacted]\r\n"));
		assert_non_null(strstr(out, "indented:   [redacted]\n"));
		free(out);
		ud_scrub_free(&s);
	}
	ud_scrub_init(&s, NULL, NULL);
	ud_scrub_add(&s, KEY);
	out = scrub_in_steps(&s, KEY, 4096);
	assert_string_equal(out, "[redacted]");
	free(out);
	ud_scrub_free(&s);
}

/* DEPLOY_SSH_KEY_B64 and `base64` of the key file, wrapped at 76. */
static void test_base64_forms(void **state)
{
	struct ud_buf in = UD_BUF_INIT;
	struct ud_scrub s;
	char *out, b64[1024];
	int n;

	(void)state;
	ud_scrub_init(&s, NULL, NULL);
	ud_scrub_add(&s, KEY);
	n = encode_b64(b64, KEY);
	ud_buf_printf(&in, "b64: %s\n", b64);
	for (int off = 0; off < n; off += 76)
		ud_buf_printf(&in, "%.76s\n", b64 + off);
	out = scrub_in_steps(&s, in.ptr, 13);
	assert_null(strstr(out, "LS0tLS1CRUdJTi"));
	for (int off = 0; off + 76 < n; off += 76) {
		char piece[77];

		snprintf(piece, sizeof(piece), "%.76s", b64 + off);
		assert_null(strstr(out, piece));
	}
	free(out);
	ud_buf_free(&in);
	ud_scrub_free(&s);
}

static void test_short_values_ignored(void **state)
{
	struct ud_scrub s;
	char *out;

	(void)state;
	ud_scrub_init(&s, NULL, NULL);
	ud_scrub_add(&s, "abc");
	ud_scrub_add(&s, "");
	ud_scrub_add(&s, NULL);
	assert_int_equal(s.secrets.n, 0);
	out = scrub_in_steps(&s, "abc abc\n", 3);
	assert_string_equal(out, "abc abc\n");
	free(out);
	ud_scrub_free(&s);
}

static void test_url_password(void **state)
{
	struct ud_scrub s;
	char *out;

	(void)state;
	ud_scrub_init(&s, NULL, NULL);
	ud_scrub_add_url(&s, "https://deploy:t0ken-s3cret@git.example.org/x.git");
	ud_scrub_add_url(&s, "ssh://git@example.org/x.git"); /* no password */
	ud_scrub_add_url(&s, "/srv/deploy.git");
	assert_int_equal(s.secrets.n, 1);
	out = scrub_in_steps(&s, "fetching https://deploy:t0ken-s3cret@git."
				 "example.org/x.git\n", 5);
	assert_string_equal(out, "fetching https://deploy:[redacted]@git."
				 "example.org/x.git\n");
	free(out);
	ud_scrub_free(&s);
}

static void test_env(void **state)
{
	char *env[] = {
		"PATH=/usr/bin:/bin",
		"DEPLOY_SIGNING_KEY=sign-me-if-you-can",
		"DEPLOY_REPO=https://u:pa55word-xyz@example.org/d.git",
		"HOME=/root",
		NULL,
	};
	struct ud_scrub s;
	char *out;

	(void)state;
	assert_true(ud_scrub_is_secret_name("DEPLOY_SSH_KEY"));
	assert_true(ud_scrub_is_secret_name("DEPLOY_SIGNING_KEY"));
	assert_false(ud_scrub_is_secret_name("DEPLOY_REPO"));
	ud_scrub_init(&s, NULL, NULL);
	ud_scrub_add_env(&s, env);
	out = scrub_in_steps(&s, "sign-me-if-you-can pa55word-xyz /usr/bin:/bin "
				 "/root\n", 7);
	assert_string_equal(out, "[redacted] [redacted] /usr/bin:/bin /root\n");
	free(out);
	ud_scrub_free(&s);
}

/* A line without end longer than UD_SCRUB_LINE_MAX is passed on before it
 * ends, and a secret straddling the cut is still found. */
static void test_endless_line(void **state)
{
	struct ud_buf out = UD_BUF_INIT;
	struct ud_scrub s;
	size_t fill = UD_SCRUB_LINE_MAX - 5;
	char *pad = malloc(fill);

	(void)state;
	memset(pad, 'x', fill);
	ud_scrub_init(&s, collect, &out);
	ud_scrub_add(&s, "hunter2-hunter2");
	ud_scrub_write(&s, pad, fill);
	assert_int_equal(out.size, 0);
	ud_scrub_write(&s, "hunter2-", 8); /* passes the line max */
	assert_true(out.size > 0);
	ud_scrub_write(&s, "hunter2 end", 11);
	ud_scrub_flush(&s);
	assert_int_equal(out.size, fill + strlen("[redacted] end"));
	assert_string_equal(out.ptr + fill, "[redacted] end");
	free(pad);
	ud_buf_free(&out);
	ud_scrub_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value_replaced),
		cmocka_unit_test(test_split_across_reads),
		cmocka_unit_test(test_pem_per_line),
		cmocka_unit_test(test_base64_forms),
		cmocka_unit_test(test_short_values_ignored),
		cmocka_unit_test(test_url_password),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_endless_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
