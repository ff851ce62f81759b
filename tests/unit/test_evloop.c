/*
 * test_evloop.c: the event loop on real fds (pipes, socket pairs) and a
 * real second thread. Tests that run the loop on this thread stop it from
 * a callback once what they wait for has happened; a watchdog timer stops
 * it after a generous bound so a bug fails the test instead of hanging it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "evloop.h"

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WATCHDOG_MS 20000

static long long watchdog(struct ud_evloop *l, long long id, void *payload)
{
	(void)id;
	*(int *)payload = 1;
	ud_evloop_stop(l);
	return UD_EVLOOP_NOMORE;
}

static struct ud_evloop *new_loop(int *expired)
{
	struct ud_evloop *l;

	assert_int_equal(ud_evloop_new(&l), 0);
	*expired = 0;
	ud_evloop_timer(l, WATCHDOG_MS, watchdog, expired);
	return l;
}

/* --- file events --- */

struct reader {
	int fired;
	int mask;
	char got[16];
};

static void on_read(struct ud_evloop *l, int fd, int mask, void *payload)
{
	struct reader *r = payload;
	ssize_t n;

	r->fired++;
	r->mask = mask;
	n = read(fd, r->got, sizeof(r->got) - 1);
	if (n > 0)
		r->got[n] = '\0';
	ud_evloop_stop(l);
}

static void test_file_event_fires(void **state)
{
	struct ud_evloop *l;
	struct reader r = { 0 };
	int fds[2], expired;

	(void)state;
	l = new_loop(&expired);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(ud_evloop_add(l, fds[0], UD_EV_READ, on_read, &r), 0);
	assert_int_equal(write(fds[1], "hello", 5), 5);
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_int_equal(r.fired, 1);
	assert_true(r.mask & UD_EV_READ);
	assert_string_equal(r.got, "hello");
	ud_evloop_del(l, fds[0]);
	close(fds[0]);
	close(fds[1]);
	ud_evloop_free(l);
}

static void on_write(struct ud_evloop *l, int fd, int mask, void *payload)
{
	(void)fd;
	*(int *)payload = mask;
	ud_evloop_stop(l);
}

static void test_write_event_and_modify(void **state)
{
	struct ud_evloop *l;
	struct reader r = { 0 };
	int sv[2], mask = 0, expired;

	(void)state;
	l = new_loop(&expired);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* Nothing to read: only writability can fire. */
	assert_int_equal(ud_evloop_add(l, sv[0], UD_EV_WRITE, on_write, &mask),
			 0);
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_true(mask & UD_EV_WRITE);
	assert_false(mask & UD_EV_READ);
	/* Watching again replaces mask, callback and payload. */
	assert_int_equal(ud_evloop_add(l, sv[0], UD_EV_READ, on_read, &r), 0);
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_int_equal(r.fired, 1);
	assert_string_equal(r.got, "x");
	ud_evloop_del(l, sv[0]);
	close(sv[0]);
	close(sv[1]);
	ud_evloop_free(l);
}

static void test_add_bad_fd(void **state)
{
	struct ud_evloop *l;
	int fds[2], expired;

	(void)state;
	l = new_loop(&expired);
	assert_int_equal(ud_evloop_add(l, -1, UD_EV_READ, on_read, NULL),
			 -1);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(ud_evloop_add(l, fds[0], UD_EV_READ, on_read, NULL),
			 -1);
	ud_evloop_free(l);
}

/* An fd closed without ud_evloop_del, its number reused: watching the
 * new one works, and it gets its events. */
static void test_add_after_close_without_del(void **state)
{
	struct ud_evloop *l;
	struct reader r = { 0 };
	int a[2], b[2], expired;

	(void)state;
	l = new_loop(&expired);
	assert_int_equal(pipe(a), 0);
	assert_int_equal(ud_evloop_add(l, a[0], UD_EV_READ, on_read, NULL), 0);
	close(a[0]);
	close(a[1]);
	assert_int_equal(pipe(b), 0);
	assert_int_equal(b[0], a[0]);
	assert_int_equal(ud_evloop_add(l, b[0], UD_EV_READ, on_read, &r), 0);
	assert_int_equal(write(b[1], "y", 1), 1);
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_int_equal(r.fired, 1);
	assert_string_equal(r.got, "y");
	ud_evloop_del(l, b[0]);
	close(b[0]);
	close(b[1]);
	ud_evloop_free(l);
}

/* Two readable pipes in one batch; whichever callback runs first deletes
 * and closes the other's fd and reuses the number for a fresh pipe that
 * is readable too: the stale event must reach neither callback. */
struct pair {
	int rfd[2], wfd[2];
	int calls[2];
	int fresh_calls;
	int fresh[2];
};

static void on_fresh(struct ud_evloop *l, int fd, int mask, void *payload)
{
	struct pair *p = payload;

	(void)fd;
	(void)mask;
	p->fresh_calls++;
	ud_evloop_stop(l);
}

static long long stop_soon(struct ud_evloop *l, long long id, void *payload)
{
	(void)id;
	(void)payload;
	ud_evloop_stop(l);
	return UD_EVLOOP_NOMORE;
}

static void on_pair(struct ud_evloop *l, int fd, int mask, void *payload)
{
	struct pair *p = payload;
	int me = fd == p->rfd[0] ? 0 : 1, other = !me;
	int victim = p->rfd[other];
	char c;

	(void)mask;
	p->calls[me]++;
	assert_int_equal(read(fd, &c, 1), 1);
	if (p->calls[other] || p->fresh[0] >= 0)
		return;
	ud_evloop_del(l, victim);
	close(victim);
	/* The lowest free number: the one just closed. */
	assert_int_equal(pipe(p->fresh), 0);
	assert_int_equal(p->fresh[0], victim);
	assert_int_equal(write(p->fresh[1], "f", 1), 1);
	/* Registered in the same batch as the stale event. Timers run at
	 * the start of the next turn, before the next wait: the loop stops
	 * having delivered only what was left of this batch. */
	assert_int_equal(ud_evloop_add(l, p->fresh[0], UD_EV_READ, on_fresh,
				       p), 0);
	ud_evloop_timer(l, 0, stop_soon, NULL);
}

static void test_delete_during_dispatch(void **state)
{
	struct ud_evloop *l;
	struct pair p;
	int a[2], b[2], i, expired;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.fresh[0] = p.fresh[1] = -1;
	l = new_loop(&expired);
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	p.rfd[0] = a[0];
	p.wfd[0] = a[1];
	p.rfd[1] = b[0];
	p.wfd[1] = b[1];
	for (i = 0; i < 2; i++) {
		assert_int_equal(write(p.wfd[i], "x", 1), 1);
		assert_int_equal(ud_evloop_add(l, p.rfd[i], UD_EV_READ,
					       on_pair, &p), 0);
	}
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_true(p.fresh[0] >= 0);
	/* Exactly one of the pair ran (the other was deleted before its
	 * stale event came up), and on_pair never saw the fresh pipe. */
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	/* Nor did on_fresh: the stale event is not the fresh pipe's. */
	assert_int_equal(p.fresh_calls, 0);
	/* Its own event comes on the next run, to its own callback. */
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_int_equal(p.fresh_calls, 1);
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	ud_evloop_del(l, p.fresh[0]);
	for (i = 0; i < 2; i++) {
		if (p.calls[i])
			close(p.rfd[i]);
		close(p.wfd[i]);
	}
	close(p.fresh[0]);
	close(p.fresh[1]);
	ud_evloop_free(l);
}

/* --- timers --- */

struct order {
	int seen[8];
	int n;
	int stop_after;
};

static long long record(struct ud_evloop *l, long long id, void *payload)
{
	struct order *o = payload;

	o->seen[o->n++] = (int)id;
	if (o->n == o->stop_after)
		ud_evloop_stop(l);
	return UD_EVLOOP_NOMORE;
}

static void test_timers_in_order_and_cancel(void **state)
{
	struct ud_evloop *l;
	struct order o = { .stop_after = 3 };
	long long t30, t10, t20, t15, t0;
	int expired;

	(void)state;
	l = new_loop(&expired);
	t30 = ud_evloop_timer(l, 30, record, &o);
	t10 = ud_evloop_timer(l, 10, record, &o);
	t20 = ud_evloop_timer(l, 20, record, &o);
	t15 = ud_evloop_timer(l, 15, record, &o);
	t0 = ud_evloop_timer(l, 0, record, &o);
	assert_true(t30 > 0 && t10 > 0 && t20 > 0 && t15 > 0 && t0 > 0);
	ud_evloop_timer_cancel(l, t15);
	ud_evloop_timer_cancel(l, t0);
	ud_evloop_timer_cancel(l, 424242); /* unknown: ignored */
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.seen[0], t10);
	assert_int_equal(o.seen[1], t20);
	assert_int_equal(o.seen[2], t30);
	ud_evloop_free(l);
}

/* A timer that cancels another due at the same moment: it never runs. */
struct canceller {
	long long victim;
	int victim_ran;
};

static long long cancel_other(struct ud_evloop *l, long long id, void *arg)
{
	struct canceller *c = arg;

	(void)id;
	ud_evloop_timer_cancel(l, c->victim);
	ud_evloop_timer(l, 5, stop_soon, NULL);
	return UD_EVLOOP_NOMORE;
}

static long long mark(struct ud_evloop *l, long long id, void *arg)
{
	(void)l;
	(void)id;
	((struct canceller *)arg)->victim_ran = 1;
	return UD_EVLOOP_NOMORE;
}

static void test_timer_cancel_while_firing(void **state)
{
	struct ud_evloop *l;
	struct canceller c = { 0 };
	int expired;

	(void)state;
	l = new_loop(&expired);
	ud_evloop_timer(l, 0, cancel_other, &c);
	c.victim = ud_evloop_timer(l, 0, mark, &c);
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_false(c.victim_ran);
	ud_evloop_free(l);
}

static long long rearm(struct ud_evloop *l, long long id, void *payload)
{
	int *n = payload;

	(void)id;
	if (++*n == 3) {
		ud_evloop_stop(l);
		return UD_EVLOOP_NOMORE;
	}
	return 1;
}

static void test_timer_rearms(void **state)
{
	struct ud_evloop *l;
	int n = 0, expired;

	(void)state;
	l = new_loop(&expired);
	ud_evloop_timer(l, 1, rearm, &n);
	assert_int_equal(ud_evloop_run(l), 0);
	assert_false(expired);
	assert_int_equal(n, 3);
	ud_evloop_free(l);
}

/* --- other threads --- */

struct posted {
	struct ud_evloop *l;
	pthread_t loop_thread;
	pthread_t ran_on[3];
	int n;
};

static void on_post(void *arg)
{
	struct posted *p = arg;

	p->ran_on[p->n++] = pthread_self();
	if (p->n == 3)
		ud_evloop_stop(p->l);
}

static void *poster(void *arg)
{
	struct posted *p = arg;
	int i;

	for (i = 0; i < 3; i++)
		ud_evloop_post(p->l, on_post, p);
	return NULL;
}

static void test_post_runs_on_loop_thread(void **state)
{
	struct posted p = { 0 };
	pthread_t th;
	int i, expired;

	(void)state;
	p.l = new_loop(&expired);
	p.loop_thread = pthread_self();
	/* The loop is asleep in epoll_wait (no timer is near) when the
	 * other thread posts: the eventfd must wake it. */
	assert_int_equal(pthread_create(&th, NULL, poster, &p), 0);
	assert_int_equal(ud_evloop_run(p.l), 0);
	pthread_join(th, NULL);
	assert_false(expired);
	assert_int_equal(p.n, 3);
	for (i = 0; i < 3; i++)
		assert_true(pthread_equal(p.ran_on[i], p.loop_thread));
	ud_evloop_free(p.l);
}

static void *run_thread(void *arg)
{
	ud_evloop_run(arg);
	return NULL;
}

static long long stop_from_timer(struct ud_evloop *l, long long id,
				 void *payload)
{
	(void)id;
	*(int *)payload = 1;
	ud_evloop_stop(l);
	return UD_EVLOOP_NOMORE;
}

static void test_timer_from_another_thread_wakes(void **state)
{
	struct ud_evloop *l;
	pthread_t th;
	int fired = 0;

	(void)state;
	assert_int_equal(ud_evloop_new(&l), 0);
	assert_int_equal(pthread_create(&th, NULL, run_thread, l), 0);
	/* The loop has nothing to wait for but its eventfd: only the wake
	 * that arming a timer from here does gets the timer run. */
	ud_evloop_timer(l, 0, stop_from_timer, &fired);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(fired, 1);
	ud_evloop_free(l);
}

static void test_stop_from_another_thread(void **state)
{
	struct ud_evloop *l;
	pthread_t th;

	(void)state;
	assert_int_equal(ud_evloop_new(&l), 0);
	assert_int_equal(pthread_create(&th, NULL, run_thread, l), 0);
	/* Whether it comes before the loop sleeps or after, it ends it. */
	ud_evloop_stop(l);
	assert_int_equal(pthread_join(th, NULL), 0);
	/* And the loop can run again (stop is not sticky). */
	assert_int_equal(pthread_create(&th, NULL, run_thread, l), 0);
	ud_evloop_stop(l);
	assert_int_equal(pthread_join(th, NULL), 0);
	ud_evloop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_event_fires),
		cmocka_unit_test(test_write_event_and_modify),
		cmocka_unit_test(test_add_bad_fd),
		cmocka_unit_test(test_add_after_close_without_del),
		cmocka_unit_test(test_delete_during_dispatch),
		cmocka_unit_test(test_timers_in_order_and_cancel),
		cmocka_unit_test(test_timer_cancel_while_firing),
		cmocka_unit_test(test_timer_rearms),
		cmocka_unit_test(test_post_runs_on_loop_thread),
		cmocka_unit_test(test_timer_from_another_thread_wakes),
		cmocka_unit_test(test_stop_from_another_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
