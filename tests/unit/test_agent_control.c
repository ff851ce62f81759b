/*
 * The agent core (agent.c) and the control protocol (control_server.c)
 * over a real unix socket, with a stand-in for the reconcile thread that
 * takes work from the core the way reconcile.c does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "control.h"
#include "control_server.h"
#include "errors.h"
#include "evloop.h"
#include "log.h"
#include "net.h"
#include "proxy.h"

#define TIMEOUT_MS 20000

/* The stand-in reconciler: each sync it is asked for answers with the
 * number of syncs so far and the retries it took. */
struct fake {
	struct agent *a;
	pthread_t thread;
	int syncs;
	char retried[256];
};

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	struct agent *a = fk->a;

	agent_publish(a); /* as reconcile.c does once it has adopted */
	for (;;) {
		struct agent_work w;
		size_t i;

		if (agent_wait_work(a, LLONG_MAX, LLONG_MAX, &w))
			break;
		if (w.sync) {
			fk->syncs++;
			fk->retried[0] = '\0';
			for (i = 0; i < w.retry.n; i++) {
				strncat(fk->retried, w.retry.v[i],
					sizeof(fk->retried) -
						strlen(fk->retried) - 2);
				strcat(fk->retried, ",");
			}
			agent_publish(a);
			agent_sync_done(a, w.seq,
					json_pack("{s:b, s:s, s:i, s:o}", "ok",
						  1, "host", "edge1", "n",
						  fk->syncs, "apps",
						  agent_snapshot(a, 0)));
		}
		agent_work_free(&w);
	}
	return NULL;
}

struct fixture {
	char dir[64];
	char addr[128];
	struct ud_agentconf conf;
	struct agent a;
	struct ud_evloop *loop;
	pthread_t loop_thread;
	struct control *ctl;
	struct fake fk;
};

static void *run_loop(void *loop)
{
	ud_evloop_run(loop);
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));

	ud_log_init(UD_LOG_ERROR, 0);
	strcpy(f->dir, "/tmp/test_agent_control.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->addr, sizeof(f->addr), "unix:%s/control.sock", f->dir);
	agent_init(&f->a);
	f->conf.host = "edge1";
	f->conf.control = f->addr;
	f->conf.control_mode = 0660;
	f->a.conf = &f->conf;
	app_set_error(state_app_add(&f->a.st, "blog"), "boom");
	state_app_add(&f->a.st, "pong");
	f->fk.a = &f->a;
	*state = f;
	return 0;
}

static void start(struct fixture *f)
{
	assert_int_equal(ud_evloop_new(&f->loop), 0);
	assert_int_equal(control_start(&f->a, f->loop, &f->ctl), 0);
	assert_int_equal(pthread_create(&f->loop_thread, NULL, run_loop,
					f->loop),
			 0);
	assert_int_equal(pthread_create(&f->fk.thread, NULL, fake_main,
					&f->fk), 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	agent_stop(&f->a);
	if (f->fk.thread)
		pthread_join(f->fk.thread, NULL);
	if (f->loop) {
		ud_evloop_stop(f->loop);
		pthread_join(f->loop_thread, NULL);
	}
	control_stop(f->ctl);
	ud_evloop_free(f->loop);
	agent_free(&f->a);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

/* One raw request line; the reply parsed. */
static json_t *raw(struct fixture *f, const char *line)
{
	struct sockaddr_un sun = { 0 };
	struct ud_buf b = UD_BUF_INIT;
	json_t *r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->addr + 5);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
			 0);
	assert_int_equal(ud_write_all(fd, line, strlen(line)), 0);
	b.max = UD_CONTROL_MAX;
	assert_int_equal(ud_read_line(fd, &b, TIMEOUT_MS), 0);
	close(fd);
	r = json_loadb(b.ptr, b.size, 0, NULL);
	ud_buf_free(&b);
	assert_non_null(r);
	return r;
}

static const char *error_of(json_t *r)
{
	assert_false(json_is_true(json_object_get(r, "ok")));
	return json_string_value(json_object_get(r, "error"));
}

/* status waits for the first snapshot, then answers from it. */
static void test_status(void **state)
{
	struct fixture *f = *state;
	json_t *r, *apps;

	start(f);
	assert_int_equal(ud_control_call(&r, f->addr, "status", NULL,
					 TIMEOUT_MS), 0);
	/* No sync was asked for, yet status saw what runs (the first
	 * snapshot), not an empty host. */
	assert_true(json_is_true(json_object_get(r, "ok")));
	apps = json_object_get(r, "apps");
	assert_int_equal(json_object_size(apps), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(apps, "blog"), "error")),
			    "boom");
	json_decref(r);

	assert_int_equal(ud_control_call(&r, f->addr, "status", "pong",
					 TIMEOUT_MS), 0);
	apps = json_object_get(r, "apps");
	assert_int_equal(json_object_size(apps), 1);
	assert_non_null(json_object_get(apps, "pong"));
	json_decref(r);

	assert_int_equal(ud_control_call(&r, f->addr, "status", "nope",
					 TIMEOUT_MS), 0);
	assert_string_equal(error_of(r),
			    "app 'nope' is not placed on this host");
	json_decref(r);
}

/* Each sync answers with a sync that started after it was asked; a
 * retry goes with its own request. */
static void test_sync(void **state)
{
	struct fixture *f = *state;
	json_t *r;
	int n1, n2;

	start(f);
	assert_int_equal(ud_control_call(&r, f->addr, "sync", NULL,
					 TIMEOUT_MS), 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	n1 = (int)json_integer_value(json_object_get(r, "n"));
	assert_true(n1 >= 1);
	assert_string_equal(f->fk.retried, "");
	json_decref(r);

	assert_int_equal(ud_control_call(&r, f->addr, "sync --retry", "blog",
					 TIMEOUT_MS), 0);
	/* The reply is narrowed (no "n"); the sync it waited for is the
	 * stand-in's next. */
	n2 = f->fk.syncs;
	assert_true(n2 > n1);
	/* Narrowed to the app asked about. */
	assert_int_equal(json_object_size(json_object_get(r, "apps")), 1);
	assert_string_equal(f->fk.retried, "blog,");
	json_decref(r);

	assert_int_equal(ud_control_call(&r, f->addr, "sync --retry", NULL,
					 TIMEOUT_MS), 0);
	assert_string_equal(f->fk.retried, "*,");
	json_decref(r);
}

/* Requests outside the protocol get an error, never a crash or a
 * hang. */
static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *line, *error;
	} cases[] = {
		{ "nonsense\n", "bad request: " },
		{ "[1]\n", "bad request: not a JSON object" },
		{ "{\"cmd\": \"reboot\"}\n",
		  "unknown command 'reboot' (sync, status)" },
		{ "{}\n", "unknown command '' (sync, status)" },
		{ "{\"cmd\": \"status\", \"app\": 7}\n",
		  "bad request: app must be a string" },
		{ "{\"cmd\": \"status\", \"app\": \"../etc\"}\n", "" },
		{ "{\"cmd\": \"sync\", \"retry\": \"yes\"}\n",
		  "bad request: retry must be a boolean" },
	};
	size_t i;

	start(f);
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		json_t *r = raw(f, cases[i].line);
		const char *e = error_of(r);

		assert_non_null(e);
		assert_true(!strncmp(e, cases[i].error,
				     strlen(cases[i].error)));
		json_decref(r);
	}
}

/* Stopping releases a sync that waits: it is told, not left hanging. */
static void *sync_in_thread(void *arg)
{
	struct fixture *f = arg;

	return agent_sync(&f->a, NULL, 0);
}

static void test_stop_releases_waiters(void **state)
{
	struct fixture *f = *state;
	pthread_t t;
	void *r = (void *)1;

	/* No reconciler: the sync can only end by the stop. */
	assert_int_equal(pthread_create(&t, NULL, sync_in_thread, f), 0);
	agent_stop(&f->a);
	assert_int_equal(pthread_join(t, &r), 0);
	assert_null(r);
	assert_true(agent_stopping(&f->a));
	assert_null(agent_sync(&f->a, NULL, 0));
	r = agent_snapshot(&f->a, 1);
	assert_int_equal(json_object_size(r), 0);
	json_decref(r);
}

/* Demand is kept once per app until the reconciler takes it; finished
 * boots come back in the order they finished. */
static void test_demand_and_boots(void **state)
{
	struct fixture *f = *state;
	struct agent_work w;
	struct boot_job *list, *j;
	int i;

	agent_demand("blog", 3, &f->a);
	agent_demand("pong", 1, &f->a);
	agent_demand("blog", 4, &f->a);
	assert_int_equal(agent_wait_work(&f->a, LLONG_MAX, LLONG_MAX, &w),
			 0);
	assert_false(w.sync);
	assert_int_equal(w.demand.n, 2);
	assert_string_equal(w.demand.v[0], "blog");
	assert_string_equal(w.demand.v[1], "pong");
	agent_work_free(&w);

	for (i = 1; i <= 3; i++) {
		j = ud_calloc(1, sizeof(*j));
		j->id = i;
		agent_boot_begin(&f->a);
		agent_boot_done(&f->a, j);
	}
	list = agent_booted(&f->a, 1);
	for (i = 1; i <= 3; i++) {
		assert_non_null(list);
		assert_int_equal(list->id, i);
		j = list;
		list = list->next;
		boot_job_free(j);
	}
	assert_null(list);
	assert_null(agent_booted(&f->a, 0));

	/* Nothing to do: the wait ends at its deadline with no work. */
	assert_int_equal(agent_wait_work(&f->a, ud_now_ms() + 10, LLONG_MAX,
					 &w),
			 0);
	assert_false(w.sync);
	assert_int_equal(w.demand.n, 0);
	agent_work_free(&w);
	/* A passed poll time makes a sync due. */
	assert_int_equal(agent_wait_work(&f->a, LLONG_MAX, 0, &w), 0);
	assert_true(w.sync);
	agent_work_free(&w);
}

/* Connections are bounded: past the limit a client is told to try again
 * at once, and the ones being served still are. */
static void test_bounded(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sun = { 0 };
	int fds[64], i;
	json_t *r;

	start(f);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->addr + 5);
	/* 64 clients that connect and say nothing (each is served until
	 * its read times out). */
	for (i = 0; i < 64; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sun,
					 sizeof(sun)),
				 0);
	}
	/* The acceptor takes them in order: once one more is refused,
	 * all 64 are being served. */
	r = raw(f, "{\"cmd\": \"status\"}\n");
	assert_string_equal(error_of(r), "the agent is serving too many "
					 "control connections; try again");
	json_decref(r);
	/* One of them asks: it is answered. */
	{
		static const char req[] = "{\"cmd\": \"status\"}\n";

		assert_int_equal(ud_write_all(fds[0], req, strlen(req)), 0);
	}
	{
		struct ud_buf b = UD_BUF_INIT;

		b.max = UD_CONTROL_MAX;
		assert_int_equal(ud_read_line(fds[0], &b, TIMEOUT_MS), 0);
		r = json_loadb(b.ptr, b.size, 0, NULL);
		assert_true(json_is_true(json_object_get(r, "ok")));
		json_decref(r);
		ud_buf_free(&b);
	}
	for (i = 0; i < 64; i++)
		close(fds[i]);
}

/* agent.json's control_group and control_mode reach the socket (the
 * hook of a git user in that group signals a root agent). A group the
 * test's user is in, so the test runs as any user. */
static void test_socket_access(void **state)
{
	struct fixture *f = *state;
	struct group *gr = getgrgid(getgid());
	struct stat st;
	json_t *r;

	assert_non_null(gr);
	f->conf.control_group = gr->gr_name;
	f->conf.control_gid = gr->gr_gid;
	f->conf.control_mode = 0620;
	start(f);
	assert_int_equal(stat(f->addr + 5, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_gid, gr->gr_gid);
	assert_int_equal(st.st_mode & 07777, 0620);
	r = raw(f, "{\"cmd\": \"status\"}\n");
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	f->conf.control_group = NULL;
}

/* Without them: the agent's group, 0660, as before. */
static void test_socket_default_access(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	start(f);
	assert_int_equal(stat(f->addr + 5, &st), 0);
	assert_int_equal(st.st_gid, getegid());
	assert_int_equal(st.st_mode & 07777, 0660);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_releases_waiters,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_demand_and_boots, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_access, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_socket_default_access,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
