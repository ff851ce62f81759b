/* test_control.c: ud_control_call against a real unix socket server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "control.h"
#include "errors.h"
#include "net.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct server {
	char dir[64];
	char *addr;
	int lfd;
	const char *answer; /* NULL: read the request, never answer */
	char request[256];
	int quit[2];        /* written by the test to release a silent server */
	pthread_t thread;
};

static void *serve(void *arg)
{
	struct server *s = arg;
	struct ud_buf line = UD_BUF_INIT;
	char c;
	int fd;

	ud_net_nonblock(s->lfd, 0);
	if ((fd = accept(s->lfd, NULL, NULL)) < 0)
		return NULL;
	if (ud_read_line(fd, &line, 5000) == 0)
		snprintf(s->request, sizeof(s->request), "%s", line.ptr);
	if (s->answer)
		ud_write_all(fd, s->answer, strlen(s->answer));
	else if (read(s->quit[0], &c, 1) < 0)
		c = 0;
	close(fd);
	ud_buf_free(&line);
	return NULL;
}

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));

	strcpy(s->dir, "/tmp/ud-control-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	s->addr = ud_asprintf("unix:%s/agent.sock", s->dir);
	s->lfd = -1;
	s->quit[0] = s->quit[1] = -1;
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct server *s = *state;

	if (s->quit[1] >= 0) {
		assert_int_equal(write(s->quit[1], "q", 1), 1);
		pthread_join(s->thread, NULL);
		close(s->quit[0]);
		close(s->quit[1]);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	ud_rm_rf(s->dir);
	free(s->addr);
	free(s);
	return 0;
}

static void start(struct server *s, const char *answer)
{
	struct ud_addr a;

	s->answer = answer;
	assert_int_equal(ud_addr_parse(&a, s->addr), 0);
	assert_int_equal(ud_net_listen(&s->lfd, &a, 4), 0);
	assert_int_equal(pipe(s->quit), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void test_ok_reply(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;

	start(s, "{\"ok\": true, \"host\": \"edge1\", \"apps\": {}}\n");
	assert_int_equal(ud_control_call(&reply, s->addr, "sync", "hello",
					 5000), 0);
	assert_true(json_is_object(reply));
	assert_true(json_is_true(json_object_get(reply, "ok")));
	assert_string_equal(json_string_value(json_object_get(reply, "host")),
			    "edge1");
	json_decref(reply);
	/* The server saw exactly one compact line. */
	assert_int_equal(write(s->quit[1], "q", 1), 1);
	pthread_join(s->thread, NULL);
	close(s->quit[0]);
	close(s->quit[1]);
	s->quit[0] = s->quit[1] = -1;
	assert_string_equal(s->request, "{\"cmd\":\"sync\",\"app\":\"hello\"}");
}

/* "sync --retry" is the CLI's spelling; the wire has a flag. */
static void test_retry(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;

	start(s, "{\"ok\": true, \"host\": \"edge1\", \"apps\": {}}\n");
	assert_int_equal(ud_control_call(&reply, s->addr, "sync --retry",
					 "hello", 5000), 0);
	json_decref(reply);
	assert_int_equal(write(s->quit[1], "q", 1), 1);
	pthread_join(s->thread, NULL);
	close(s->quit[0]);
	close(s->quit[1]);
	s->quit[0] = s->quit[1] = -1;
	assert_string_equal(s->request,
			    "{\"cmd\":\"sync\",\"retry\":true,"
			    "\"app\":\"hello\"}");
}

static void test_no_app(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;

	start(s, "{\"ok\": false, \"error\": \"busy\"}\n");
	assert_int_equal(ud_control_call(&reply, s->addr, "status", NULL,
					 5000), 0);
	assert_false(json_is_true(json_object_get(reply, "ok")));
	json_decref(reply);
	assert_int_equal(write(s->quit[1], "q", 1), 1);
	pthread_join(s->thread, NULL);
	close(s->quit[0]);
	close(s->quit[1]);
	s->quit[0] = s->quit[1] = -1;
	assert_string_equal(s->request, "{\"cmd\":\"status\"}");
}

static void test_bad_json(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;
	char *want;

	start(s, "{\"ok\": tru\n");
	assert_int_equal(ud_control_call(&reply, s->addr, "sync", NULL, 5000),
			 UD_EINVALID);
	assert_null(reply);
	want = ud_asprintf("bad reply from %s: ", s->addr);
	assert_memory_equal(ud_error_last(), want, strlen(want));
	assert_non_null(strstr(ud_error_last(), "column"));
	free(want);
}

static void test_not_an_object(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;

	start(s, "[1, 2]\n");
	assert_int_equal(ud_control_call(&reply, s->addr, "sync", NULL, 5000),
			 UD_EINVALID);
	assert_null(reply);
	assert_non_null(strstr(ud_error_last(), "not a JSON object"));
}

static void test_no_server(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;
	char *want;
	int err;

	err = ud_control_call(&reply, s->addr, "sync", NULL, 5000);
	assert_int_equal(err, UD_ERROR);
	assert_null(reply);
	want = ud_asprintf("cannot reach agent at %s: No such file or "
			   "directory", s->addr);
	assert_string_equal(ud_error_last(), want);
	free(want);
}

static void test_silent_server(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;
	char *want;

	start(s, NULL);
	assert_int_equal(ud_control_call(&reply, s->addr, "sync", NULL, 200),
			 UD_ETIMEOUT);
	assert_null(reply);
	want = ud_asprintf("no reply from agent at %s", s->addr);
	assert_memory_equal(ud_error_last(), want, strlen(want));
	free(want);
}

static void test_server_hangs_up(void **state)
{
	struct server *s = *state;
	json_t *reply = NULL;

	start(s, "");
	assert_int_equal(ud_control_call(&reply, s->addr, "sync", NULL, 5000),
			 UD_ERROR);
	assert_null(reply);
	assert_non_null(strstr(ud_error_last(), "no reply from agent at"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ok_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_app, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_an_object, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_server, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_server_hangs_up, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
