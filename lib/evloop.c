/*
 * evloop.c: see evloop.h. One epoll set; a table of file events indexed
 * by fd (as ae.c's); timers in a list kept sorted by when they are due
 * (a process has few); posts in a queue behind a mutex, announced through
 * an eventfd in the same epoll set.
 */
#include "evloop.h"

#include "buf.h"
#include "errors.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define MAX_WAIT_MS 60000

struct fev {
	int mask; /* 0: not watched */
	uint32_t gen; /* bumped on every delete: older events are stale */
	ud_evloop_file_fn fn;
	void *payload;
};

struct timer {
	struct timer *next;
	long long id;
	long long when; /* ud_now_ms() clock */
	ud_evloop_timer_fn fn;
	void *payload;
};

struct post {
	struct post *next;
	ud_evloop_post_fn fn;
	void *arg;
};

struct ud_evloop {
	pthread_mutex_t mu; /* everything below but epfd */
	int epfd;
	int evfd;
	struct fev *fds;
	int nfds;
	struct timer *timers; /* sorted by when, then id */
	struct timer *firing; /* taken out to run this turn */
	long long next_id;
	struct post *posts, **posts_tail;
	int stop;
	int running;
	pthread_t thread; /* running ud_evloop_run, when running */
};

int ud_evloop_new(struct ud_evloop **out)
{
	struct ud_evloop *l = ud_calloc(1, sizeof(*l));
	struct epoll_event ev = { 0 };

	pthread_mutex_init(&l->mu, NULL);
	l->posts_tail = &l->posts;
	l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->evfd < 0 || l->epfd < 0)
		goto fail;
	/* The eventfd is not in the fd table: data.u64 of all ones marks
	 * it (no registration has that fd and generation). */
	ev.events = EPOLLIN;
	ev.data.u64 = UINT64_MAX;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	ud_error_set_errno(UD_ERROR, "cannot create an event loop");
	ud_evloop_free(l);
	return UD_ERROR;
}

void ud_evloop_free(struct ud_evloop *l)
{
	struct timer *t;
	struct post *p;

	if (!l)
		return;
	while ((t = l->timers)) {
		l->timers = t->next;
		free(t);
	}
	while ((p = l->posts)) {
		l->posts = p->next;
		free(p);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->evfd >= 0)
		close(l->evfd);
	free(l->fds);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static uint32_t to_epoll(int mask)
{
	uint32_t e = EPOLLRDHUP;

	if (mask & UD_EV_READ)
		e |= EPOLLIN;
	if (mask & UD_EV_WRITE)
		e |= EPOLLOUT;
	if (mask & UD_EV_EDGE)
		e |= EPOLLET;
	return e;
}

static int from_epoll(uint32_t e)
{
	int mask = 0;

	if (e & EPOLLIN)
		mask |= UD_EV_READ;
	if (e & EPOLLOUT)
		mask |= UD_EV_WRITE;
	if (e & EPOLLRDHUP)
		mask |= UD_EV_RDHUP;
	if (e & EPOLLHUP)
		mask |= UD_EV_HUP;
	if (e & EPOLLERR)
		mask |= UD_EV_ERR;
	return mask;
}

int ud_evloop_add(struct ud_evloop *l, int fd, int mask,
		  ud_evloop_file_fn fn, void *payload)
{
	struct epoll_event ev = { 0 };
	struct fev *f;
	int n, op, rc, err = 0;

	if (fd < 0)
		return ud_error_set(UD_ERROR, "cannot watch fd %d", fd);
	pthread_mutex_lock(&l->mu);
	if (fd >= l->nfds) {
		n = l->nfds ? l->nfds : 64;
		while (n <= fd)
			n *= 2;
		l->fds = ud_realloc(l->fds, n * sizeof(*l->fds));
		memset(l->fds + l->nfds, 0, (n - l->nfds) * sizeof(*l->fds));
		l->nfds = n;
	}
	f = &l->fds[fd];
	op = f->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	ev.events = to_epoll(mask);
	ev.data.u64 = (uint64_t)f->gen << 32 | (uint32_t)fd;
	rc = epoll_ctl(l->epfd, op, fd, &ev);
	if (rc < 0 && op == EPOLL_CTL_MOD && errno == ENOENT) {
		/* Closed without ud_evloop_del (epoll dropped it with the
		 * last reference) and the number is in use again: this is a
		 * new registration, and the old one's events are stale. */
		f->gen++;
		ev.data.u64 = (uint64_t)f->gen << 32 | (uint32_t)fd;
		rc = epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
	}
	if (rc < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot watch fd %d", fd);
		goto done;
	}
	/* A mask of 0 means unwatched: a registration for errors and
	 * hangups only must still count as one. */
	f->mask = mask | UD_EV_HUP;
	f->fn = fn;
	f->payload = payload;
done:
	pthread_mutex_unlock(&l->mu);
	return err;
}

void ud_evloop_del(struct ud_evloop *l, int fd)
{
	pthread_mutex_lock(&l->mu);
	if (fd >= 0 && fd < l->nfds && l->fds[fd].mask) {
		/* While another process (a child between fork and exec)
		 * holds the socket, close() alone would leave it in the set. */
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		l->fds[fd].mask = 0;
		l->fds[fd].gen++;
		l->fds[fd].fn = NULL;
		l->fds[fd].payload = NULL;
	}
	pthread_mutex_unlock(&l->mu);
}

static void timer_insert(struct ud_evloop *l, struct timer *t)
{
	struct timer **pp = &l->timers;

	while (*pp && ((*pp)->when < t->when ||
		       ((*pp)->when == t->when && (*pp)->id < t->id)))
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
}

long long ud_evloop_timer(struct ud_evloop *l, long long ms,
			  ud_evloop_timer_fn fn, void *payload)
{
	struct timer *t = ud_calloc(1, sizeof(*t));
	long long id;
	int wake;

	t->when = ud_now_ms() + (ms > 0 ? ms : 0);
	t->fn = fn;
	t->payload = payload;
	pthread_mutex_lock(&l->mu);
	id = t->id = ++l->next_id;
	timer_insert(l, t);
	/* Another thread's loop may be asleep with a longer timeout; the
	 * loop's own thread computes its next wait afresh. */
	wake = !l->running || !pthread_equal(l->thread, pthread_self());
	pthread_mutex_unlock(&l->mu);
	if (wake)
		ud_evloop_wake(l);
	return id;
}

static int unlink_id(struct timer **pp, long long id)
{
	struct timer *t;

	for (; (t = *pp); pp = &t->next) {
		if (t->id == id) {
			*pp = t->next;
			free(t);
			return 1;
		}
	}
	return 0;
}

void ud_evloop_timer_cancel(struct ud_evloop *l, long long id)
{
	pthread_mutex_lock(&l->mu);
	if (!unlink_id(&l->timers, id))
		unlink_id(&l->firing, id);
	pthread_mutex_unlock(&l->mu);
}

void ud_evloop_wake(struct ud_evloop *l)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is already non-zero, the loop wakes anyway. */
	if (write(l->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ud_log_warn("evloop: cannot wake the loop: %s",
			    strerror(errno));
}

void ud_evloop_post(struct ud_evloop *l, ud_evloop_post_fn fn, void *arg)
{
	struct post *p = ud_calloc(1, sizeof(*p));

	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&l->mu);
	*l->posts_tail = p;
	l->posts_tail = &p->next;
	pthread_mutex_unlock(&l->mu);
	ud_evloop_wake(l);
}

void ud_evloop_stop(struct ud_evloop *l)
{
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_mutex_unlock(&l->mu);
	ud_evloop_wake(l);
}

/*
 * The start of a turn, under one lock: take the posts, and the timers due
 * now into l->firing. Timers armed or re-armed while these run wait for
 * the next turn, so a timer of 0 ms cannot starve the fds.
 */
static struct post *turn_begin(struct ud_evloop *l, int *due)
{
	struct timer *t, **tail = &l->firing;
	struct post *posts;
	long long now;

	pthread_mutex_lock(&l->mu);
	posts = l->posts;
	l->posts = NULL;
	l->posts_tail = &l->posts;
	if (l->timers) {
		now = ud_now_ms();
		while ((t = l->timers) && t->when <= now) {
			l->timers = t->next;
			t->next = NULL;
			*tail = t;
			tail = &t->next;
		}
	}
	*due = l->firing != NULL;
	pthread_mutex_unlock(&l->mu);
	return posts;
}

static void run_posts(struct post *list)
{
	struct post *p;

	while ((p = list)) {
		list = p->next;
		p->fn(p->arg);
		free(p);
	}
}

/* Run l->firing (only this thread fills it; others may cancel). */
static void run_timers(struct ud_evloop *l)
{
	struct timer *t;
	long long again;

	pthread_mutex_lock(&l->mu);
	while ((t = l->firing)) {
		l->firing = t->next;
		pthread_mutex_unlock(&l->mu);
		again = t->fn(l, t->id, t->payload);
		pthread_mutex_lock(&l->mu);
		if (again < 0) {
			free(t);
			continue;
		}
		t->when = ud_now_ms() + again;
		timer_insert(l, t);
	}
	pthread_mutex_unlock(&l->mu);
}

/* The end of a turn: -2 to stop, else how long to wait (-1: no limit).
 * Called with l->mu held. */
static int turn_end(struct ud_evloop *l)
{
	long long d;

	if (l->stop) {
		l->stop = 0;
		l->running = 0;
		return -2;
	}
	if (l->posts)
		return 0;
	if (!l->timers)
		return -1;
	d = l->timers->when - ud_now_ms();
	return d <= 0 ? 0 : d > MAX_WAIT_MS ? MAX_WAIT_MS : (int)d;
}

static void dispatch(struct ud_evloop *l, const struct epoll_event *ev)
{
	uint64_t count;
	int fd = (int)(uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
	ud_evloop_file_fn fn = NULL;
	void *payload = NULL;
	int mask = 0;

	if (ev->data.u64 == UINT64_MAX) {
		if (read(l->evfd, &count, sizeof(count)) < 0 &&
		    errno != EAGAIN)
			ud_log_warn("evloop: eventfd: %s", strerror(errno));
		return;
	}
	pthread_mutex_lock(&l->mu);
	if (fd < l->nfds && l->fds[fd].mask && l->fds[fd].gen == gen) {
		fn = l->fds[fd].fn;
		payload = l->fds[fd].payload;
		mask = from_epoll(ev->events);
	}
	pthread_mutex_unlock(&l->mu);
	if (fn)
		fn(l, fd, mask, payload);
}

int ud_evloop_run(struct ud_evloop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	int i, n, ms, due, err = 0;

	pthread_mutex_lock(&l->mu);
	l->running = 1;
	l->thread = pthread_self();
	pthread_mutex_unlock(&l->mu);
	for (;;) {
		run_posts(turn_begin(l, &due));
		if (due)
			run_timers(l);
		pthread_mutex_lock(&l->mu);
		ms = turn_end(l);
		pthread_mutex_unlock(&l->mu);
		if (ms == -2)
			break;
		n = epoll_wait(l->epfd, ev, MAX_EVENTS, ms);
		if (n < 0 && errno != EINTR) {
			err = ud_error_set_errno(UD_ERROR, "epoll_wait");
			pthread_mutex_lock(&l->mu);
			l->running = 0;
			pthread_mutex_unlock(&l->mu);
			break;
		}
		for (i = 0; i < n; i++)
			dispatch(l, &ev[i]);
	}
	return err;
}
