/*
 * evloop.h: one event loop per process, in the manner of redis ae.c: file
 * events (epoll), one-shot timers, and a way for other threads to hand work
 * back to the loop's thread.
 *
 * Threading. The loop runs on one thread (the one in ud_evloop_run). The
 * file and timer functions may be called from any thread (they take the
 * loop's own lock, never held around a callback), but a callback already
 * taken out for dispatch may still run once after another thread removed
 * it: code that removes events from another thread re-checks its own state
 * in the callback. ud_evloop_post, ud_evloop_wake and ud_evloop_stop exist
 * for other threads.
 *
 * Stale events. An event epoll returned for an fd that a callback earlier
 * in the same batch deleted (closed, maybe reused by a new registration)
 * is not delivered: every registration carries a generation.
 */
#ifndef UD_EVLOOP_H
#define UD_EVLOOP_H

struct ud_evloop;

/* Masks: what to watch (ud_evloop_add) and what happened (callbacks). */
#define UD_EV_READ 0x01  /* readable (or a listener has a connection) */
#define UD_EV_WRITE 0x02 /* writable (or a connect finished) */
#define UD_EV_RDHUP 0x04 /* the peer shut down writing (reported only) */
#define UD_EV_HUP 0x08   /* both directions are gone (reported only) */
#define UD_EV_ERR 0x10   /* an error is pending (reported only) */
#define UD_EV_EDGE 0x20  /* edge-triggered: report changes only */

typedef void (*ud_evloop_file_fn)(struct ud_evloop *l, int fd, int mask,
				  void *payload);
/* Return the delay in ms after which to run again (same id), or
 * UD_EVLOOP_NOMORE. */
typedef long long (*ud_evloop_timer_fn)(struct ud_evloop *l, long long id,
					void *payload);
typedef void (*ud_evloop_post_fn)(void *arg);

#define UD_EVLOOP_NOMORE (-1)

/* A new loop (epoll set, eventfd). UD_ERROR with the system's reason. */
int ud_evloop_new(struct ud_evloop **out);
/* Free a loop that is not running; pending posts are dropped unrun and
 * registered fds are not closed (they are their owners'). NULL is fine. */
void ud_evloop_free(struct ud_evloop *l);

/* Watch fd for mask (UD_EV_READ, UD_EV_WRITE, optionally UD_EV_EDGE);
 * watching an fd again replaces its mask, callback and payload. UD_ERROR
 * (message names the fd) if epoll refuses it. */
int ud_evloop_add(struct ud_evloop *l, int fd, int mask,
		  ud_evloop_file_fn fn, void *payload);
/* Stop watching fd (before closing it); no event for it is delivered
 * after this returns on the loop thread. Unknown fds are ignored. */
void ud_evloop_del(struct ud_evloop *l, int fd);

/* Run fn once, ms from now (0: on the next turn). Returns the timer's id
 * (> 0). Timers due together run in the order they are due, then in the
 * order they were armed. */
long long ud_evloop_timer(struct ud_evloop *l, long long ms,
			  ud_evloop_timer_fn fn, void *payload);
/* Cancel a timer that has not run (ids of past timers are ignored). */
void ud_evloop_timer_cancel(struct ud_evloop *l, long long id);

/* Any thread: run fn(arg) on the loop's thread soon, in the order posted. */
void ud_evloop_post(struct ud_evloop *l, ud_evloop_post_fn fn, void *arg);
/* Any thread: make the loop turn once (it recomputes its wait). */
void ud_evloop_wake(struct ud_evloop *l);

/* Dispatch until ud_evloop_stop. Returns 0, or UD_ERROR if epoll fails. */
int ud_evloop_run(struct ud_evloop *l);
/* Any thread: make ud_evloop_run return after the current turn. */
void ud_evloop_stop(struct ud_evloop *l);

#endif
