/* Tests of the agent's persisted state (cmd/deploy-agent/state.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "buf.h"
#include "errors.h"

static const char SHA_A[] =
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char SHA_B[] =
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct fixture {
	char dir[64];
	char *path;
};

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_agent_state.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->path = ud_asprintf("%s/state.json", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ud_rm_rf(f->dir);
	free(f->path);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void fill(struct agent_state *st)
{
	struct app *a = state_app_add(st, "pong");
	struct app *b = state_app_add(st, "blog");
	struct instance *in;

	st->next_id = 42;
	a->release = 3;
	a->failed_release = 4;
	app_set_error(a, "health check: GET /health answered %d", 503);
	a->listen = ud_strdup("127.0.0.1:8080");
	in = app_inst_add(a, 40);
	in->release = 3;
	memcpy(in->sha256, SHA_A, UD_SHA256_HEX);
	in->pid = 1234;
	in->starttime = 987654321ULL;
	in->port = 40001;
	in->log = ud_strdup("/var/lib/unideploy/apps/pong/logs/3-40.log");
	in = app_inst_add(a, 41);
	in->release = 4;
	memcpy(in->sha256, SHA_B, UD_SHA256_HEX);
	in->pid = 1240;
	in->starttime = 5;
	in->port = 40002;
	in->log = ud_strdup("/x/4-41.log");
	/* Waiting for a restart: no process to record. */
	in = app_inst_add(b, 39);
	in->release = 1;
	memcpy(in->sha256, SHA_A, UD_SHA256_HEX);
	in->log = ud_strdup("/x/1-39.log");
	b->release = 1;
	/* Exited for good under run.restart: recorded without a process. */
	in = app_inst_add(b, 38);
	in->release = 1;
	memcpy(in->sha256, SHA_A, UD_SHA256_HEX);
	in->port = 40003;
	in->log = ud_strdup("/x/1-38.log");
	in->exited = 1;
	ud_strvec_push(&a->log_tail, "listening on 40002");
	ud_strvec_push(&a->log_tail, "pong: failing on purpose");
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct agent_state st, back;
	struct app *a, *b;

	state_init(&st);
	state_init(&back);
	fill(&st);
	assert_int_equal(state_save(&st, f->path), 0);
	assert_int_equal(state_load(&back, f->path), 0);

	assert_int_equal(back.next_id, 42);
	assert_int_equal(back.napps, 2);
	a = state_app(&back, "pong");
	assert_non_null(a);
	assert_int_equal(a->release, 3);
	assert_int_equal(a->failed_release, 4);
	assert_string_equal(a->error, "health check: GET /health answered 503");
	assert_string_equal(a->listen, "127.0.0.1:8080");
	assert_int_equal(a->ninst, 2);
	assert_int_equal(a->inst[0]->id, 40);
	assert_int_equal(a->inst[0]->release, 3);
	assert_string_equal(a->inst[0]->sha256, SHA_A);
	assert_int_equal(a->inst[0]->pid, 1234);
	assert_true(a->inst[0]->starttime == 987654321ULL);
	assert_int_equal(a->inst[0]->port, 40001);
	assert_string_equal(a->inst[0]->log,
			    "/var/lib/unideploy/apps/pong/logs/3-40.log");
	assert_int_equal(a->inst[1]->id, 41);
	assert_string_equal(a->inst[1]->sha256, SHA_B);
	assert_false(a->inst[0]->exited);
	assert_int_equal(a->log_tail.n, 2);
	assert_string_equal(a->log_tail.v[1], "pong: failing on purpose");

	b = state_app(&back, "blog");
	assert_non_null(b);
	assert_int_equal(b->release, 1);
	assert_int_equal(b->failed_release, 0);
	assert_null(b->error);
	assert_null(b->listen);
	assert_int_equal(b->ninst, 1);
	assert_int_equal(b->inst[0]->id, 38);
	assert_true(b->inst[0]->exited);
	assert_int_equal(b->inst[0]->pid, 0);
	assert_int_equal(b->log_tail.n, 0);
	/* Clearing the error forgets the tail with it. */
	app_set_error(a, NULL);
	assert_int_equal(a->log_tail.n, 0);

	state_free(&st);
	state_free(&back);
}

static void test_missing_is_empty(void **state)
{
	struct fixture *f = *state;
	struct agent_state st;

	state_init(&st);
	assert_int_equal(state_load(&st, f->path), 0);
	assert_int_equal(st.napps, 0);
	assert_int_equal(st.next_id, 1);
	state_free(&st);
}

static void test_save_leaves_no_temp(void **state)
{
	struct fixture *f = *state;
	struct agent_state st;
	struct dirent *e;
	DIR *d;
	int files = 0;

	state_init(&st);
	fill(&st);
	assert_int_equal(state_save(&st, f->path), 0);
	/* A second save replaces the first through a temp file. */
	st.next_id = 43;
	assert_int_equal(state_save(&st, f->path), 0);
	state_free(&st);

	assert_non_null(d = opendir(f->dir));
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		assert_string_equal(e->d_name, "state.json");
		files++;
	}
	closedir(d);
	assert_int_equal(files, 1);
	assert_int_equal(state_load(&st, f->path), 0);
	assert_int_equal(st.next_id, 43);
	state_free(&st);
}

static void expect_error(struct fixture *f, const char *text,
			 const char *needle)
{
	struct agent_state st;

	state_init(&st);
	write_text(f->path, text);
	assert_int_equal(state_load(&st, f->path), UD_EINVALID);
	if (!strstr(ud_error_last(), needle))
		fail_msg("error '%s' does not contain '%s'", ud_error_last(),
			 needle);
	/* The message names the file, so an operator knows what to fix. */
	assert_non_null(strstr(ud_error_last(), f->path));
	/* A failed load leaves an empty state, never a half-read one. */
	assert_int_equal(st.napps, 0);
	state_free(&st);
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;

	expect_error(f, "{\"version\": 1, \"apps\": {\"pong\": ", ":1:");
	expect_error(f, "[]", "must be a JSON object");
	expect_error(f, "{\"version\": 1, \"apps\": {\"Bad/..\": {}}}",
		     "Bad/..");
	expect_error(f, "{\"version\": 1, \"bogus\": 1}", "bogus");
	expect_error(f, "{\"version\": 2}", "version 2");
	expect_error(f,
		     "{\"version\": 1, \"apps\": {\"pong\": {\"instances\": "
		     "[{\"id\": 1, \"release\": 1, \"sha256\": \"../etc\", "
		     "\"pid\": 5, \"starttime\": 1, \"port\": 1, \"log\": "
		     "\"x\"}]}}}",
		     "sha256");
	expect_error(f,
		     "{\"version\": 1, \"apps\": {\"pong\": {\"instances\": "
		     "[{\"id\": 1}]}}}",
		     "release");
	/* pid 0 only for an instance that exited for good. */
	expect_error(f,
		     "{\"version\": 1, \"apps\": {\"pong\": {\"instances\": "
		     "[{\"id\": 1, \"release\": 1, \"sha256\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
		     "\"pid\": 0, \"starttime\": 1, \"port\": 1, \"log\": "
		     "\"x\"}]}}}",
		     "pid");
	expect_error(f,
		     "{\"version\": 1, \"apps\": {\"pong\": {\"log_tail\": "
		     "[1]}}}",
		     "log_tail[0]");
}

static void test_app_remove(void **state)
{
	struct agent_state st;

	(void)state;
	state_init(&st);
	fill(&st);
	state_app_remove(&st, state_app(&st, "pong"));
	assert_null(state_app(&st, "pong"));
	assert_non_null(state_app(&st, "blog"));
	assert_int_equal(st.napps, 1);
	state_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_missing_is_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_save_leaves_no_temp,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test(test_app_remove),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
