/* test_notify.c: ud_notify_hosts against real unix-socket agents served by
 * threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "fleet.h"
#include "net.h"
#include "notify.h"
#include "run.h"

/* Servers that must all hold a request before any answers. */
struct barrier {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int arrived, need;
};

struct server {
	char *addr;
	int lfd;
	const char *answer;
	struct barrier *barrier; /* NULL: answer at once */
	int barrier_timed_out;
	char request[256];
	pthread_t thread;
	int started;
};

struct fixture {
	char dir[64];
	struct ud_fleet *fleet;
	struct server servers[3];
	size_t nservers;
};

/* Returns 0 once everyone arrived, -1 after 10 s without. */
static int barrier_wait(struct barrier *b)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&b->mu);
	b->arrived++;
	pthread_cond_broadcast(&b->cv);
	while (b->arrived < b->need && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&b->cv, &b->mu, &deadline);
	rc = b->arrived < b->need ? -1 : 0;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct ud_buf line = UD_BUF_INIT;
	struct pollfd p = { s->lfd, POLLIN, 0 };
	const char *answer = s->answer;
	int fd;

	/* Never block forever: a test that asks nobody must still end. */
	if (poll(&p, 1, 15000) != 1)
		return NULL;
	if ((fd = accept(s->lfd, NULL, NULL)) < 0)
		return NULL;
	if (ud_read_line(fd, &line, 5000) == 0)
		snprintf(s->request, sizeof(s->request), "%s", line.ptr);
	if (s->barrier && barrier_wait(s->barrier) < 0) {
		s->barrier_timed_out = 1;
		answer = "{\"ok\": false, \"error\": \"asked one at a time\"}\n";
	}
	ud_write_all(fd, answer, strlen(answer));
	close(fd);
	ud_buf_free(&line);
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ud-notify-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->fleet = ud_fleet_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < f->nservers; i++) {
		struct server *s = &f->servers[i];

		if (s->started)
			pthread_join(s->thread, NULL);
		if (s->lfd >= 0)
			close(s->lfd);
		free(s->addr);
	}
	ud_fleet_free(f->fleet);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

static void add_host(struct fixture *f, const char *name, const char *agent,
		     const char *ssh)
{
	struct ud_fleet_host h = { 0 };

	h.name = (char *)name;
	h.agent = (char *)agent;
	h.ssh = (char *)ssh;
	if (ud_fleet_set_host(f->fleet, &h) < 0)
		fail_msg("set_host %s: %s", name, ud_error_last());
}

/* An agent host `name` whose socket a thread serves with `answer`. */
static struct server *serve_host(struct fixture *f, const char *name,
				 const char *answer, struct barrier *b)
{
	struct server *s = &f->servers[f->nservers++];
	struct ud_addr a;

	s->addr = ud_asprintf("unix:%s/%s.sock", f->dir, name);
	s->answer = answer;
	s->barrier = b;
	s->lfd = -1;
	assert_int_equal(ud_addr_parse(&a, s->addr), 0);
	assert_int_equal(ud_net_listen(&s->lfd, &a, 4), 0);
	add_host(f, name, s->addr, NULL);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
	s->started = 1;
	return s;
}

static void test_mixed_hosts(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct server *h1, *bad;
	char *gone = ud_asprintf("unix:%s/gone.sock", f->dir);
	char *gone_path = ud_asprintf("%s/gone.sock", f->dir);

	h1 = serve_host(f, "h1", "{\"ok\":true,\"host\":\"h1\",\"apps\":{}}\n",
			NULL);
	bad = serve_host(f, "bad", "{\"ok\":false,\"error\":\"boom\"}\n", NULL);
	add_host(f, "gone", gone, NULL);
	add_host(f, "far", NULL, "deploy@far.example.org");

	ud_strvec_push(&hosts, "h1");
	ud_strvec_push(&hosts, "gone");
	ud_strvec_push(&hosts, "far");
	ud_strvec_push(&hosts, "ghost");
	ud_strvec_push(&hosts, "bad");
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", "hello",
					 10000),
			 0);
	assert_non_null(r);

	assert_string_equal(r[0].host, "h1");
	assert_int_equal(r[0].ok, 1);
	assert_null(r[0].error);
	assert_non_null(r[0].reply);
	assert_string_equal(
		json_string_value(json_object_get(r[0].reply, "host")), "h1");
	assert_true(r[0].ms >= 0);

	assert_string_equal(r[1].host, "gone");
	assert_int_equal(r[1].ok, 0);
	assert_non_null(r[1].error);
	assert_non_null(strstr(r[1].error, gone_path));
	assert_null(r[1].reply);

	assert_string_equal(r[2].host, "far");
	assert_int_equal(r[2].ok, 0);
	assert_non_null(r[2].error);
	assert_non_null(strstr(r[2].error, "not supported"));
	assert_null(r[2].reply);

	assert_string_equal(r[3].host, "ghost");
	assert_int_equal(r[3].ok, 0);
	assert_string_equal(r[3].error, "host 'ghost' is not in fleet.json");
	assert_null(r[3].reply);

	assert_string_equal(r[4].host, "bad");
	assert_int_equal(r[4].ok, 0);
	assert_string_equal(r[4].error, "boom");
	/* The agent's own reply is kept even when it refused. */
	assert_non_null(r[4].reply);
	assert_false(json_is_true(json_object_get(r[4].reply, "ok")));

	ud_host_replies_free(r, hosts.n);
	pthread_join(h1->thread, NULL);
	pthread_join(bad->thread, NULL);
	h1->started = bad->started = 0;
	assert_string_equal(h1->request, "{\"cmd\":\"sync\",\"app\":\"hello\"}");
	assert_string_equal(bad->request, "{\"cmd\":\"sync\",\"app\":\"hello\"}");

	ud_strvec_free(&hosts);
	free(gone);
	free(gone_path);
}

static void test_single_host_status(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct server *s;

	s = serve_host(f, "solo", "{\"ok\":true,\"host\":\"solo\",\"apps\":{}}\n",
		       NULL);
	ud_strvec_push(&hosts, "solo");
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "status", NULL,
					 10000),
			 0);
	assert_string_equal(r[0].host, "solo");
	assert_int_equal(r[0].ok, 1);
	assert_null(r[0].error);
	ud_host_replies_free(r, hosts.n);
	pthread_join(s->thread, NULL);
	s->started = 0;
	assert_string_equal(s->request, "{\"cmd\":\"status\"}");
	ud_strvec_free(&hosts);
}

static void test_no_hosts(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;

	ud_strvec_init(&hosts);
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", NULL,
					 1000),
			 0);
	ud_host_replies_free(r, 0);
	ud_strvec_free(&hosts);
}

/* Each server answers only once both hold a request: asking the hosts
 * one at a time would leave the first waiting until its barrier gives
 * up, and it would then answer "asked one at a time". */
static void test_parallel(void **state)
{
	struct fixture *f = *state;
	struct barrier b = { PTHREAD_MUTEX_INITIALIZER,
			     PTHREAD_COND_INITIALIZER, 0, 2 };
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct server *s1, *s2;

	s1 = serve_host(f, "p1", "{\"ok\":true,\"host\":\"p1\",\"apps\":{}}\n",
			&b);
	s2 = serve_host(f, "p2", "{\"ok\":true,\"host\":\"p2\",\"apps\":{}}\n",
			&b);
	ud_strvec_push(&hosts, "p1");
	ud_strvec_push(&hosts, "p2");
	/* The deadline is longer than the barrier's, so a serial asker
	 * fails on the answer, not on our patience. */
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", "web",
					 30000),
			 0);
	pthread_join(s1->thread, NULL);
	pthread_join(s2->thread, NULL);
	s1->started = s2->started = 0;
	assert_int_equal(s1->barrier_timed_out, 0);
	assert_int_equal(s2->barrier_timed_out, 0);
	assert_string_equal(r[0].host, "p1");
	assert_int_equal(r[0].ok, 1);
	assert_string_equal(r[1].host, "p2");
	assert_int_equal(r[1].ok, 1);
	assert_string_equal(
		json_string_value(json_object_get(r[1].reply, "host")), "p2");
	ud_host_replies_free(r, hosts.n);
	ud_strvec_free(&hosts);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mixed_hosts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_single_host_status, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
