/*
 * proxy.c: the agent's front door, on an event loop (lib/evloop.c).
 *
 * Threading model. The loop's thread owns every forwarded connection: only
 * it creates, pumps and frees them. Other threads (the API below) change
 * configuration only: apps, listeners, backend sets, the held queues. All
 * of that shared state sits behind p->mu, which every callback of ours
 * takes on entry and drops on return; on_demand is called without it, so
 * the callback may call back into the API. Work that follows from a
 * change (held connections that can go, deadlines, demand) is done by one
 * service timer, armed for the earliest moment something is due; the API
 * arms it for "now" when it changes what the loop must act on.
 *
 * The loop never delivers an event for an fd deleted before it (stale
 * events carry an old generation), so a connection is done with once the
 * callback that closed it returns: closed ones wait in a graveyard that
 * every callback empties on its way out. Listeners are touched by other
 * threads too (a callback may already be on its way when one is closed):
 * their events are found through their app (which lives until
 * proxy_stop) and checked against its current listener.
 *
 * Bytes move in two ways. A small read (a request, a short answer) is
 * copied through one buffer of the thread's and sent at once: recv+send
 * is two syscalls that copy a few hundred bytes, where splice would cost
 * two syscalls that each take a page reference, and a TCP recv shorter
 * than the buffer proves the socket drained, so no EAGAIN round trip is
 * needed (splice into a pipe gives no such proof). A read that fills the
 * buffer marks the direction bulk: from then on it moves with splice(2)
 * through a pipe (zero-copy) until a read comes back small again. A
 * socket that refuses splice falls back to a 64 KiB buffer of its own.
 * What the destination does not take at once waits in the pipe (or that
 * buffer), and the source is not read again until it has gone, so a slow
 * peer only slows itself.
 *
 * Connection sockets are edge-triggered. An event marks its socket's
 * direction as having more to read; every event pumps both directions,
 * and a direction with nothing waiting and nothing to read costs nothing.
 */
#include "proxy.h"

#include "buf.h"
#include "errors.h"
#include "evloop.h"
#include "log.h"
#include "net.h"
#include "proxy_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024) /* bytes in flight per direction */
#define COPY_MAX (16 * 1024) /* reads up to this are copied, not spliced */
#define ACCEPT_PAUSE_MS 100 /* after EMFILE, rather than spinning */
#define BACKLOG 511
#define DEMAND_REPEAT_MS 1000 /* on_demand again while connections wait */
#define PIPE_POOL 64 /* empty pipes kept for the next connections */

enum hkind { H_LISTEN, H_CLIENT, H_BACKEND };

struct proxy;

/* The payload of every fd we watch. */
struct handle {
	enum hkind kind;
	void *obj; /* struct app (H_LISTEN) or struct conn */
	struct proxy *p;
};

struct instance {
	struct instance *next;
	int id;
	uint32_t addr; /* host order; 0: loopback */
	int port;
	int ready;   /* in the app's current backend set */
	size_t open; /* connections attached, connecting ones included */
};

struct held {
	struct held *next;
	int fd;
	long long since;
};

struct app {
	struct app *next;
	char *name;
	char *addr; /* listened on; NULL when not listening */
	int lfd;
	struct handle h;
	int hold_ms;
	int concurrency;
	long long paused_until; /* accepting paused (fd exhaustion); 0: no */
	struct instance *inst;
	size_t booting; /* instances the owner is starting (proxy_set_booting) */
	size_t rr; /* round robin among equally loaded backends */
	struct held *held, **held_tail;
	size_t nheld;
	int demand_due;
	long long demand_at; /* when on_demand was last called */
	int http; /* new connections follow HTTP/1.x requests */
};

/* One direction of a connection. */
struct dir {
	int pipe[2];     /* -1 until first needed */
	char *buf;       /* fallback when splice is refused */
	size_t off;
	size_t pending;  /* bytes taken from src, not yet given to dst */
	int more;        /* src may have bytes unread: an event said so */
	int hup;         /* src reported its end or an error: a short read
			  * proves nothing, read on to EOF */
	int bulk;        /* the last read filled the copy buffer: splice */
	int eof;         /* src has no more */
	int done;        /* dst shut down for writing, or abandoned */
};

/*
 * A connection in HTTP mode: its bytes pass through these buffers, parsed
 * on the way, so that each request can go to a backend of its own (the
 * one it had, unless a swap took it out of the set). in: from the client,
 * not yet sent; its first in_ok bytes are the current request's, free to
 * go (the rest wait: the next request, not yet parsed). out: likewise,
 * from the backend.
 */
struct hconn {
	struct proxy_http req, resp;
	char *in, *out;
	size_t in_len, in_ok, out_len, out_ok;
	int active;    /* a request has begun and is not over */
	int req_done;  /* ...all of it parsed */
	int resp_done; /* ...its answer too */
	int cin_eof, bin_eof;
};

struct conn {
	struct conn *prev, *next;
	struct app *app;
	struct instance *inst;
	int cfd;
	int bfd;
	struct handle hc, hb;
	int connecting;
	int retried;
	int dead;
	struct hconn *h; /* NULL: plain TCP */
	struct dir d[2]; /* 0: client to backend, 1: backend to client */
};

struct demand {
	struct demand *next;
	char *app;
	size_t waiting;
};

struct proxy {
	pthread_mutex_t mu;
	struct ud_evloop *loop;
	int own_loop;     /* created by proxy_start, run by our own thread */
	pthread_t thread;
	long long timer;  /* the service timer's id; 0: not armed */
	long long timer_at; /* when it is due */
	int closing;      /* proxy_stop: arm nothing more */
	int no_splice; /* UD_PROXY_NO_SPLICE: exercise the copying path */
	struct app *apps;
	struct conn *conns;
	struct conn *graveyard;
	int pool[PIPE_POOL][2];
	size_t npool;
	size_t nheld;    /* held connections, all apps */
	size_t npaused;  /* apps whose accepting is paused */
	int demand_due;  /* some app's demand_due is set */
	int moves_due;   /* a backend left a set: move its idle HTTP clients */
	char copy[COPY_MAX]; /* small reads pass through here */
	proxy_demand_fn on_demand;
	void *payload;
};

static long long on_service(struct ud_evloop *l, long long id, void *arg);

/* Have service() run at `when` (ud_now_ms() clock) or earlier. p->mu held. */
static void schedule(struct proxy *p, long long when)
{
	if (p->closing || (p->timer && p->timer_at <= when))
		return;
	if (p->timer)
		ud_evloop_timer_cancel(p->loop, p->timer);
	p->timer_at = when;
	p->timer = ud_evloop_timer(p->loop, when - ud_now_ms(), on_service, p);
}

static void kick(struct proxy *p)
{
	schedule(p, 0);
}

/* on_demand is due for a (from the service timer, soon). */
static void want_demand(struct proxy *p, struct app *a)
{
	a->demand_due = p->demand_due = 1;
	kick(p);
}

static void drain_sigpipe(void)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	/* splice(2) to a closed socket raises SIGPIPE at this thread, where
	 * it is blocked; take it so it does not stay pending. */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

/* --- apps and instances (called with p->mu held) --- */

static struct app *app_find(struct proxy *p, const char *name)
{
	struct app *a;

	for (a = p->apps; a; a = a->next)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

static struct app *app_get(struct proxy *p, const char *name)
{
	struct app *a = app_find(p, name);

	if (a)
		return a;
	a = ud_calloc(1, sizeof(*a));
	a->name = ud_strdup(name);
	a->lfd = -1;
	a->h.kind = H_LISTEN;
	a->h.obj = a;
	a->h.p = p;
	a->held_tail = &a->held;
	a->next = p->apps;
	p->apps = a;
	return a;
}

static int has_ready(const struct app *a)
{
	const struct instance *in;

	for (in = a->inst; in; in = in->next)
		if (in->ready)
			return 1;
	return 0;
}

/*
 * Whether a connection can go to a backend now. Not when none is ready;
 * nor when every ready one has `concurrency` connections or more while
 * the owner is starting others: the connection waits (held) for them
 * rather than pile onto a full instance that would keep it for its whole
 * life while the newcomers idle. With nothing coming, a full instance is
 * still better than a connection closed at hold_ms.
 */
static int can_forward(const struct app *a)
{
	const struct instance *in;

	for (in = a->inst; in; in = in->next)
		if (in->ready && (a->concurrency <= 0 || !a->booting ||
				  in->open < (size_t)a->concurrency))
			return 1;
	return 0;
}

/* The ready backend with the fewest open connections; among equals the
 * first at or after the round robin position. */
static struct instance *choose(struct app *a, int except_id)
{
	struct instance *in, *best = NULL;
	size_t n = 0, i, rank, best_rank = 0, best_i = 0;

	for (in = a->inst; in; in = in->next)
		if (in->ready)
			n++;
	if (!n)
		return NULL;
	for (in = a->inst, i = 0; in; in = in->next) {
		if (!in->ready)
			continue;
		rank = (i + n - a->rr % n) % n;
		if (in->id != except_id &&
		    (!best || in->open < best->open ||
		     (in->open == best->open && rank < best_rank))) {
			best = in;
			best_rank = rank;
			best_i = i;
		}
		i++;
	}
	if (best)
		a->rr = best_i + 1;
	return best;
}

static void inst_prune(struct app *a)
{
	struct instance **pp = &a->inst, *in;

	while ((in = *pp)) {
		if (!in->ready && !in->open) {
			*pp = in->next;
			free(in);
		} else {
			pp = &in->next;
		}
	}
}

static void held_push(struct proxy *p, struct app *a, int fd)
{
	struct held *h = ud_calloc(1, sizeof(*h));

	h->fd = fd;
	h->since = ud_now_ms();
	*a->held_tail = h;
	a->held_tail = &h->next;
	a->nheld++;
	p->nheld++;
	/* Its deadline, or its backend if one can take it already. */
	kick(p);
}

static int held_pop(struct proxy *p, struct app *a)
{
	struct held *h = a->held;
	int fd = h->fd;

	a->held = h->next;
	if (!a->held)
		a->held_tail = &a->held;
	a->nheld--;
	p->nheld--;
	free(h);
	return fd;
}

static void held_close_all(struct proxy *p, struct app *a)
{
	while (a->held)
		close(held_pop(p, a));
}

/*
 * Close a watched socket. close() alone leaves the epoll registration in
 * place while another reference to the socket exists, and one does for a
 * moment whenever the agent forks an instance (between fork and exec the
 * child holds every descriptor): events would then arrive for a
 * connection already freed.
 */
static void unwatch_close(struct proxy *p, int fd)
{
	ud_evloop_del(p->loop, fd);
	close(fd);
}

static void listener_close(struct proxy *p, struct app *a)
{
	if (a->lfd >= 0)
		unwatch_close(p, a->lfd);
	a->lfd = -1;
	if (a->paused_until)
		p->npaused--;
	a->paused_until = 0;
	free(a->addr);
	a->addr = NULL;
}

/* --- connections (proxy thread only) --- */

static void pipe_close(int fds[2])
{
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	fds[0] = fds[1] = -1;
}

/* Two pipes per connection would cost four syscalls to make and four to
 * close; an empty pipe can simply serve the next connection. */
static int pipe_get(struct proxy *p, int fds[2])
{
	if (p->npool) {
		p->npool--;
		fds[0] = p->pool[p->npool][0];
		fds[1] = p->pool[p->npool][1];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		fds[0] = fds[1] = -1;
		return -1;
	}
	return 0;
}

static void dir_free(struct proxy *p, struct dir *d)
{
	if (d->pipe[0] >= 0 && !d->pending && p->npool < PIPE_POOL) {
		p->pool[p->npool][0] = d->pipe[0];
		p->pool[p->npool][1] = d->pipe[1];
		p->npool++;
		d->pipe[0] = d->pipe[1] = -1;
	}
	pipe_close(d->pipe);
	free(d->buf);
	d->buf = NULL;
}

static void inst_release(struct proxy *p, struct conn *c)
{
	if (!c->inst)
		return;
	c->inst->open--;
	c->inst = NULL;
	inst_prune(c->app);
	/* A full instance has room again for what waits. */
	if (c->app->nheld)
		kick(p);
}

static void hconn_free(struct hconn *h)
{
	if (!h)
		return;
	free(h->in);
	free(h->out);
	free(h);
}

static void conn_close(struct proxy *p, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	hconn_free(c->h);
	c->h = NULL;
	if (c->cfd >= 0)
		unwatch_close(p, c->cfd);
	if (c->bfd >= 0)
		unwatch_close(p, c->bfd);
	c->cfd = c->bfd = -1;
	dir_free(p, &c->d[0]);
	dir_free(p, &c->d[1]);
	inst_release(p, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = p->graveyard;
	p->graveyard = c;
}

static void reap(struct proxy *p)
{
	struct conn *c;

	while ((c = p->graveyard)) {
		p->graveyard = c->next;
		free(c);
	}
}

static void on_event(struct ud_evloop *l, int fd, int mask, void *arg);

static int watch(struct proxy *p, int fd, struct handle *h)
{
	return ud_evloop_add(p->loop, fd, UD_EV_READ | UD_EV_WRITE | UD_EV_EDGE,
			     on_event, h);
}

static void nodelay(int fd)
{
	int one = 1;

	/* The proxy forwards what arrives at once; Nagle would only add
	 * latency to small requests. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Move whatever a splice-refusing direction has in its pipe into a
 * buffer, and keep using the buffer from now on. */
static int dir_to_buffer(struct dir *d)
{
	ssize_t n;
	size_t got = 0;

	d->buf = ud_malloc(CHUNK);
	d->off = 0;
	while (got < d->pending) {
		n = read(d->pipe[0], d->buf + got, d->pending - got);
		if (n <= 0) {
			errno = EIO;
			return -1;
		}
		got += n;
	}
	pipe_close(d->pipe);
	return 0;
}

/* Keep what dst did not take of a copied read (the pipe is empty). */
static int stash(struct proxy *p, struct dir *d, const char *b, size_t n)
{
	ssize_t w = -1;

	if (d->pipe[0] >= 0 || pipe_get(p, d->pipe) == 0)
		w = write(d->pipe[1], b, n);
	if (w < 0)
		w = 0;
	d->pending = w;
	if ((size_t)w == n)
		return 0;
	/* No pipe, or a small one (past the user's pipe page limit). */
	if (d->pipe[0] >= 0) {
		if (dir_to_buffer(d) < 0)
			return -1;
	} else {
		d->buf = ud_malloc(CHUNK);
		d->off = 0;
	}
	memcpy(d->buf + d->pending, b + w, n - w);
	d->pending = n;
	return 0;
}

/* Read into the pipe (bulk) or d->buf (splice refused); d->pending is 0.
 * > 0 bytes read, 0 src at EOF, -1 with errno. */
static ssize_t dir_in(struct proxy *p, struct dir *d, int src)
{
	ssize_t n;

	if (!d->buf && d->pipe[0] < 0 && pipe_get(p, d->pipe) < 0)
		d->buf = ud_malloc(CHUNK);
	if (!d->buf) {
		n = splice(src, NULL, d->pipe[1], NULL, CHUNK,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n >= 0 || errno != EINVAL)
			return n;
		if (dir_to_buffer(d) < 0)
			return -1;
	}
	d->off = 0;
	return read(src, d->buf, CHUNK);
}

static ssize_t dir_out(struct dir *d, int dst)
{
	ssize_t n;

	if (!d->buf) {
		do
			n = splice(d->pipe[0], NULL, dst, NULL, d->pending,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		while (n < 0 && errno == EINTR);
		if (n >= 0 || errno != EINVAL)
			return n;
		if (dir_to_buffer(d) < 0)
			return -1;
	}
	do
		n = send(dst, d->buf + d->off, d->pending,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		d->off += n;
		if ((size_t)n == d->pending)
			d->off = 0;
	}
	return n;
}

/*
 * A write to dst failed. A backend that stops receiving (it answered and
 * closed) may still have an answer on its way: only this direction is
 * given up. A client that stops receiving is gone: nothing the backend
 * says can reach it, and the backend may be blocked writing to us, so the
 * connection ends (-1).
 */
static int dst_failed(struct dir *d, int src, int dst_is_client)
{
	if (errno == EPIPE)
		drain_sigpipe();
	if (dst_is_client)
		return -1;
	d->done = 1;
	d->pending = 0;
	pipe_close(d->pipe); /* maybe not empty: no reuse */
	shutdown(src, SHUT_RD);
	return 0;
}

/*
 * Move bytes src -> dst until dst is full or src has nothing more to
 * give. -1: the connection is broken. last: the other direction is done,
 * so the connection closes when this one ends, and close() sends the FIN
 * that shutdown() would.
 */
static int dir_pump(struct proxy *p, struct dir *d, int src, int dst,
		    int dst_is_client, int last)
{
	ssize_t n, w;
	int copied;

	while (!d->done) {
		if (d->pending) {
			n = dir_out(d, dst);
			if (n < 0 && errno != EAGAIN)
				return dst_failed(d, src, dst_is_client);
			if (n <= 0)
				return 0; /* its EPOLLOUT brings us back */
			d->pending -= n;
			continue;
		}
		if (d->eof) {
			if (!last)
				shutdown(dst, SHUT_WR);
			d->done = 1;
			break;
		}
		if (!d->more)
			break;
		copied = !d->buf && !d->bulk;
		if (copied)
			n = recv(src, p->copy, COPY_MAX, MSG_DONTWAIT);
		else
			n = dir_in(p, d, src);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			d->more = 0;
			break;
		}
		if (n == 0) {
			d->eof = 1;
			continue;
		}
		/* A TCP read shorter than asked for emptied the socket; a
		 * splice into a pipe may stop short for the pipe's sake. */
		if (n < (copied ? COPY_MAX : CHUNK) && !d->hup &&
		    (copied || d->buf))
			d->more = 0;
		d->bulk = n >= COPY_MAX;
		if (!copied) {
			d->pending = n;
			continue;
		}
		do
			w = send(dst, p->copy, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN)
			return dst_failed(d, src, dst_is_client);
		if (w < 0)
			w = 0;
		if (w < n) {
			/* dst is full (its EPOLLOUT brings us back). */
			if (stash(p, d, p->copy + w, n - w) < 0)
				return -1;
			return 0;
		}
	}
	return 0;
}

static void http_pump(struct proxy *p, struct conn *c);

static void pump(struct proxy *p, struct conn *c)
{
	if (c->h) {
		http_pump(p, c);
		return;
	}
	if (dir_pump(p, &c->d[0], c->cfd, c->bfd, 0, c->d[1].done) < 0 ||
	    dir_pump(p, &c->d[1], c->bfd, c->cfd, 1, c->d[0].done) < 0 ||
	    (c->d[0].done && c->d[1].done))
		conn_close(p, c);
}

static void established(struct proxy *p, struct conn *c)
{
	c->connecting = 0;
	nodelay(c->bfd);
	pump(p, c);
}

static void connect_failed(struct proxy *p, struct conn *c, int err);

/* Start connecting c to in; on immediate failure try once elsewhere. */
static void attach(struct proxy *p, struct conn *c, struct instance *in)
{
	struct sockaddr_in sa;
	int err;

	c->inst = in;
	in->open++;
	c->connecting = 1;
	/* Whatever an earlier socket of a retry reported is not this one's. */
	c->d[1].more = c->d[1].hup = 0;
	c->bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->bfd < 0) {
		err = errno;
		ud_log_warn("proxy: %s: cannot create a socket: %s",
			    c->app->name, strerror(err));
		conn_close(p, c);
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)in->port);
	sa.sin_addr.s_addr = htonl(in->addr ? in->addr : INADDR_LOOPBACK);
	if (watch(p, c->bfd, &c->hb) < 0) {
		ud_log_warn("proxy: %s: %s", c->app->name, ud_error_last());
		conn_close(p, c);
		return;
	}
	if (connect(c->bfd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		established(p, c);
	else if (errno != EINPROGRESS)
		connect_failed(p, c, errno);
}

static void connect_failed(struct proxy *p, struct conn *c, int err)
{
	struct app *a = c->app;
	struct instance *next;
	int id = c->inst ? c->inst->id : -1;
	int port = c->inst ? c->inst->port : 0;

	unwatch_close(p, c->bfd);
	c->bfd = -1;
	/* Nothing listens there: the instance died and its owner has not
	 * noticed yet. It takes no more connections from us until the owner
	 * says it is ready again. */
	if (err == ECONNREFUSED && c->inst)
		c->inst->ready = 0;
	inst_release(p, c);
	if (!c->retried && (next = choose(a, id))) {
		ud_log_warn("proxy: %s: instance %d (127.0.0.1:%d): %s; "
			    "trying instance %d", a->name, id, port,
			    strerror(err), next->id);
		c->retried = 1;
		attach(p, c, next);
		return;
	}
	if (err == ECONNREFUSED && !has_ready(a) && a->lfd >= 0 &&
	    !c->d[0].pending && (!c->h || !c->h->in_len)) {
		/* The client has sent nothing anywhere yet: hold it like
		 * one that came before any instance, so the owner boots a
		 * fresh one for it (summon) or it waits for the restart. */
		ud_log_warn("proxy: %s: instance %d (127.0.0.1:%d): %s; "
			    "holding the client connection", a->name, id,
			    port, strerror(err));
		ud_evloop_del(p->loop, c->cfd);
		held_push(p, a, c->cfd);
		want_demand(p, a);
		c->cfd = -1;
		conn_close(p, c);
		return;
	}
	ud_log_warn("proxy: %s: instance %d (127.0.0.1:%d): %s; "
		    "closing the client connection", a->name, id, port,
		    strerror(err));
	conn_close(p, c);
}

/* --- HTTP mode (proxy thread only) --- */

/* Let go of the backend connection, between two requests: the next one
 * will choose again. */
static void detach(struct proxy *p, struct conn *c)
{
	if (c->bfd >= 0)
		unwatch_close(p, c->bfd);
	c->bfd = -1;
	c->connecting = 0;
	c->d[1].more = c->d[1].hup = 0;
	c->h->bin_eof = 0;
	inst_release(p, c);
}

/*
 * A request begins: it goes to the backend the connection has if that one
 * is still in the app's set, else to the one choose() picks now (the new
 * release after a swap). 0: go on; -1: the connection is closed, or it
 * was handed to attach() (and the pump runs again once connected).
 */
static int http_begin(struct proxy *p, struct conn *c)
{
	struct instance *in;

	if (c->bfd >= 0 && c->inst && c->inst->ready)
		return 0;
	detach(p, c);
	if (!(in = choose(c->app, -1))) {
		ud_log_warn("proxy: %s: no instance ready for the next "
			    "request; closing the client connection",
			    c->app->name);
		conn_close(p, c);
		return -1;
	}
	c->retried = 0;
	attach(p, c, in);
	return -1;
}

/* Hand what a buffer holds to a direction of the plain TCP pump. */
static int give_dir(struct proxy *p, struct dir *d, const char *b, size_t n)
{
	if (!n)
		return 0;
	if (d->buf) {
		memcpy(d->buf, b, n);
		d->off = 0;
		d->pending = n;
		return 0;
	}
	return stash(p, d, b, n);
}

/*
 * This connection is not one HTTP mode can follow (an upgrade, a body
 * delimited by close, bytes it cannot parse...): from here on its bytes
 * go as they come, to the backend it has, as in plain TCP mode. Nothing
 * is lost: what the buffers hold goes first.
 */
static void http_tunnel(struct proxy *p, struct conn *c, const char *why)
{
	struct hconn *h = c->h;
	struct instance *in = NULL;
	int rc;

	ud_log_debug("proxy: %s: plain TCP for a connection: %s",
		     c->app->name, why);
	if (c->bfd < 0) {
		/* Between requests, with no backend: one is needed only for
		 * bytes to give it. */
		if (!h->in_len && h->cin_eof) {
			if (!h->out_len)
				conn_close(p, c);
			return;
		}
		if (!(in = choose(c->app, -1))) {
			ud_log_warn("proxy: %s: no instance ready for the "
				    "next request; closing the client "
				    "connection", c->app->name);
			conn_close(p, c);
			return;
		}
	}
	c->h = NULL;
	rc = give_dir(p, &c->d[0], h->in, h->in_len);
	if (rc == 0)
		rc = give_dir(p, &c->d[1], h->out, h->out_len);
	c->d[0].more = c->d[1].more = 1;
	c->d[0].eof = h->cin_eof;
	c->d[1].eof = h->bin_eof;
	hconn_free(h);
	if (rc < 0) {
		conn_close(p, c);
	} else if (in) {
		c->retried = 0;
		attach(p, c, in); /* pumps once connected */
	} else if (!c->connecting) {
		pump(p, c);
	}
}

/* recv into *buf (made when needed). 1: something happened (bytes or
 * EOF), 0: nothing to read now, -1: the socket failed. */
static int hread(int fd, char **buf, size_t *len, struct dir *d, int *eof)
{
	ssize_t n;

	if (!*buf)
		*buf = ud_malloc(CHUNK);
	do
		n = recv(fd, *buf + *len, CHUNK - *len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN)
			return -1;
		d->more = 0;
		return 0;
	}
	if (!n)
		*eof = 1;
	*len += n;
	return 1;
}

/* Send the first *ok bytes of buf. 1: some went, 0: none could, -1:
 * the socket failed. */
static int hsend(int fd, char *buf, size_t *len, size_t *ok)
{
	ssize_t n;

	do
		n = send(fd, buf, *ok, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	memmove(buf, buf + n, *len - n);
	*len -= n;
	*ok -= n;
	return n > 0;
}

/*
 * Move an HTTP connection's bytes, one request at a time: a request's
 * bytes go to the backend as they come; the next request waits (unread
 * past a buffer) until the answer to this one has come in whole; at that
 * boundary a backend that has left the app's set is let go, and the next
 * request begins on the backend choose() picks. So a swap moves a
 * kept-alive client at its next request, and the old instance only ever
 * loses connections that are between answers.
 */
static void http_pump(struct proxy *p, struct conn *c)
{
	struct hconn *h = c->h;
	enum proxy_http_result r;
	size_t used;
	int progress, rc;

	do {
		progress = 0;
		if (!h->cin_eof && c->d[0].more && h->in_len < CHUNK) {
			if ((rc = hread(c->cfd, &h->in, &h->in_len, &c->d[0],
					&h->cin_eof)) < 0)
				goto broken;
			progress |= rc;
		}
		if (!h->req_done && h->in_len > h->in_ok) {
			r = proxy_http_feed(&h->req, h->in + h->in_ok,
					    h->in_len - h->in_ok, &used);
			if (r == PROXY_HTTP_TUNNEL) {
				http_tunnel(p, c, h->req.why);
				return;
			}
			h->in_ok += used;
			if (r == PROXY_HTTP_DONE) {
				h->req_done = 1;
				proxy_http_response(&h->resp, h->req.req_head);
			}
			if (used && !h->active) {
				h->active = 1;
				if (http_begin(p, c) < 0)
					return;
			}
			progress |= used > 0;
		}
		if (c->bfd >= 0 && h->in_ok) {
			if ((rc = hsend(c->bfd, h->in, &h->in_len,
					&h->in_ok)) < 0)
				goto broken;
			progress |= rc;
		}
		if (c->bfd >= 0 && !h->bin_eof && c->d[1].more &&
		    h->out_len < CHUNK) {
			if ((rc = hread(c->bfd, &h->out, &h->out_len, &c->d[1],
					&h->bin_eof)) < 0)
				goto broken;
			progress |= rc;
		}
		if (h->out_len > h->out_ok) {
			if (!h->active || h->resp_done) {
				http_tunnel(p, c, "the instance sent bytes "
					    "no request asked for");
				return;
			}
			r = proxy_http_feed(&h->resp, h->out + h->out_ok,
					    h->out_len - h->out_ok, &used);
			if (r == PROXY_HTTP_TUNNEL) {
				http_tunnel(p, c, h->resp.why);
				return;
			}
			h->out_ok += used;
			h->resp_done = r == PROXY_HTTP_DONE;
			progress |= used > 0;
		}
		if (h->out_ok) {
			if ((rc = hsend(c->cfd, h->out, &h->out_len,
					&h->out_ok)) < 0) {
				if (errno == EPIPE)
					drain_sigpipe();
				conn_close(p, c);
				return;
			}
			progress |= rc;
		}
		if (h->active && h->req_done && h->resp_done) {
			/* Between answers: the one moment a backend may be
			 * changed. */
			h->active = h->req_done = h->resp_done = 0;
			proxy_http_request(&h->req);
			if (c->inst && !c->inst->ready)
				detach(p, c);
			progress = 1;
		}
		if (h->bin_eof) {
			if (h->active) {
				http_tunnel(p, c, "the instance closed the "
					    "connection during a request");
				return;
			}
			/* It closed an idle connection (its keep-alive
			 * timeout): the next request gets a fresh one. */
			detach(p, c);
		}
		if (h->cin_eof) {
			if (h->active || h->in_len) {
				http_tunnel(p, c, "the client closed its side "
					    "during a request");
				return;
			}
			if (!h->out_len) {
				conn_close(p, c);
				return;
			}
		}
	} while (progress);
	/* An idle connection keeps no buffers. */
	if (!h->in_len) {
		free(h->in);
		h->in = NULL;
	}
	if (!h->out_len) {
		free(h->out);
		h->out = NULL;
	}
	return;
broken:
	conn_close(p, c);
}

/* After a swap, clients between requests let go of instances that left
 * their app's set at once (their next request will choose again): the old
 * instance drains as soon as its answers in flight are done. */
static void move_idle(struct proxy *p)
{
	struct conn *c, *next;

	p->moves_due = 0;
	for (c = p->conns; c; c = next) {
		next = c->next;
		if (c->h && !c->h->active && !c->connecting && c->bfd >= 0 &&
		    c->inst && !c->inst->ready)
			detach(p, c);
	}
}

static void on_backend_event(struct proxy *p, struct conn *c, int events)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int);
	int soerr = 0;

	/* epoll polls the socket afresh when it reports it, and a TCP
	 * socket still connecting is not writable: writable and no error
	 * means connected, with no syscall to ask. */
	if ((events & UD_EV_WRITE) && !(events & (UD_EV_ERR | UD_EV_HUP))) {
		established(p, c);
		return;
	}
	if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		connect_failed(p, c, soerr);
		return;
	}
	/* The event may be stale (an earlier socket of a retry): only a
	 * peer address proves the connection is up. */
	len = sizeof(ss);
	if (getpeername(c->bfd, (struct sockaddr *)&ss, &len) == 0)
		established(p, c);
	else if (errno != ENOTCONN)
		connect_failed(p, c, errno);
}

/* Hand an accepted connection to the app's least loaded backend. */
static void forward(struct proxy *p, struct app *a, int cfd)
{
	struct instance *in = choose(a, -1);
	struct conn *c;

	/* This connection fills the least loaded instance: time for
	 * another. */
	if (a->concurrency > 0 && in->open + 1 >= (size_t)a->concurrency)
		want_demand(p, a);
	c = ud_calloc(1, sizeof(*c));
	c->app = a;
	c->cfd = cfd;
	c->bfd = -1;
	c->hc.kind = H_CLIENT;
	c->hc.obj = c;
	c->hc.p = p;
	c->hb.kind = H_BACKEND;
	c->hb.obj = c;
	c->hb.p = p;
	c->d[0].pipe[0] = c->d[0].pipe[1] = -1;
	c->d[1].pipe[0] = c->d[1].pipe[1] = -1;
	if (a->http) {
		c->h = ud_calloc(1, sizeof(*c->h));
		proxy_http_request(&c->h->req);
	}
	if (p->no_splice) {
		c->d[0].buf = ud_malloc(CHUNK);
		c->d[1].buf = ud_malloc(CHUNK);
	}
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	if (watch(p, cfd, &c->hc) < 0) {
		ud_log_warn("proxy: %s: %s", a->name, ud_error_last());
		conn_close(p, c);
		return;
	}
	attach(p, c, in);
}

static void on_accept(struct proxy *p, struct app *a)
{
	int fd;

	while (a->lfd >= 0) {
		fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			ud_log_warn("proxy: %s: accept on %s: %s", a->name,
				    a->addr, strerror(errno));
			/* Out of descriptors or memory: the listener stays
			 * readable, so stop watching it for a moment. */
			ud_evloop_add(p->loop, a->lfd, 0, on_event, &a->h);
			if (!a->paused_until)
				p->npaused++;
			a->paused_until = ud_now_ms() + ACCEPT_PAUSE_MS;
			schedule(p, a->paused_until);
			return;
		}
		/* Held connections go first, in order. */
		if (a->nheld || !can_forward(a)) {
			held_push(p, a, fd);
			want_demand(p, a);
		} else {
			forward(p, a, fd);
		}
	}
}

/* Deadlines, held connections that can go, paused listeners. */
static void service(struct proxy *p)
{
	long long now;
	struct app *a;

	/* The common case, traffic and nothing waiting, need not walk
	 * every app (a host may have a thousand) after every batch. */
	if (p->moves_due)
		move_idle(p);
	if (!p->nheld && !p->npaused)
		return;
	now = ud_now_ms();
	for (a = p->apps; a; a = a->next) {
		if (a->paused_until && now >= a->paused_until && a->lfd >= 0) {
			a->paused_until = 0;
			p->npaused--;
			ud_evloop_add(p->loop, a->lfd, UD_EV_READ, on_event, &a->h);
		}
		while (a->held && can_forward(a))
			forward(p, a, held_pop(p, a));
		while (a->held && a->held->since + a->hold_ms <= now) {
			/* Waited its time for a booting instance: a full
			 * one will do. */
			if (has_ready(a)) {
				forward(p, a, held_pop(p, a));
				continue;
			}
			ud_log_warn("proxy: %s: no instance became ready "
				    "within %d ms; closing a held connection",
				    a->name, a->hold_ms);
			close(held_pop(p, a));
		}
		/* The first call may have come too early for the owner (no
		 * release registered yet): remind it while they wait. */
		if (a->held && now - a->demand_at >= DEMAND_REPEAT_MS)
			a->demand_due = p->demand_due = 1;
	}
}

/* When service() is next due (ud_now_ms() clock); -1: never. */
static long long next_due(struct proxy *p)
{
	long long when = -1, t;
	struct app *a;

	if (!p->nheld && !p->npaused)
		return -1;
	for (a = p->apps; a; a = a->next) {
		if (a->held) {
			t = a->held->since + a->hold_ms;
			if (t > a->demand_at + DEMAND_REPEAT_MS)
				t = a->demand_at + DEMAND_REPEAT_MS;
			if (when < 0 || t < when)
				when = t;
		}
		if (a->paused_until && (when < 0 || a->paused_until < when))
			when = a->paused_until;
	}
	return when;
}

static struct demand *take_demands(struct proxy *p)
{
	struct demand *list = NULL, *d;
	struct app *a;

	if (!p->demand_due)
		return NULL;
	p->demand_due = 0;
	for (a = p->apps; a; a = a->next) {
		if (!a->demand_due)
			continue;
		a->demand_due = 0;
		a->demand_at = ud_now_ms();
		d = ud_calloc(1, sizeof(*d));
		d->app = ud_strdup(a->name);
		d->waiting = a->nheld;
		d->next = list;
		list = d;
	}
	return list;
}

/* What an event says about the socket as a source. */
static void readable(struct dir *d, int events)
{
	if (events & (UD_EV_READ | UD_EV_RDHUP | UD_EV_HUP | UD_EV_ERR))
		d->more = 1;
	if (events & (UD_EV_RDHUP | UD_EV_HUP | UD_EV_ERR))
		d->hup = 1;
}

static void on_event(struct ud_evloop *l, int fd, int events, void *arg)
{
	struct handle *h = arg;
	struct proxy *p = h->p;
	struct conn *c = h->obj;
	struct app *a = h->obj;

	(void)l;
	pthread_mutex_lock(&p->mu);
	switch (h->kind) {
	case H_LISTEN:
		/* Another thread may have closed it since (and the number
		 * may be another listener's by now). */
		if (a->lfd == fd && !a->paused_until)
			on_accept(p, a);
		break;
	case H_CLIENT:
		if (c->dead)
			break;
		readable(&c->d[0], events);
		if (c->connecting)
			break;
		pump(p, c);
		/* A reset client, or one that can no longer receive what is
		 * still to come: with full pipes the pump might not touch
		 * its socket again to find out. */
		if (!c->dead && ((events & UD_EV_ERR) ||
				 ((events & UD_EV_HUP) && !c->d[1].done)))
			conn_close(p, c);
		break;
	case H_BACKEND:
		if (c->dead)
			break;
		readable(&c->d[1], events);
		if (c->connecting)
			on_backend_event(p, c, events);
		else
			pump(p, c);
		break;
	}
	reap(p);
	pthread_mutex_unlock(&p->mu);
}

/* The service timer: deadlines, held connections that can go, paused
 * listeners, then the owner's on_demand calls (without p->mu). */
static long long on_service(struct ud_evloop *l, long long id, void *arg)
{
	struct proxy *p = arg;
	struct demand *todo, *d;
	long long when;

	(void)l;
	pthread_mutex_lock(&p->mu);
	if (p->timer == id)
		p->timer = 0;
	service(p);
	reap(p);
	/* Before next_due: it counts from the demand_at this sets. */
	todo = take_demands(p);
	if ((when = next_due(p)) >= 0)
		schedule(p, when);
	pthread_mutex_unlock(&p->mu);
	for (d = todo; d && p->on_demand; d = d->next)
		p->on_demand(d->app, d->waiting, p->payload);
	while ((d = todo)) {
		todo = d->next;
		free(d->app);
		free(d);
	}
	return UD_EVLOOP_NOMORE;
}

/* --- API (any thread) --- */

static void proxy_free(struct proxy *p)
{
	struct app *a;
	struct instance *in;
	struct conn *c;

	if (!p)
		return;
	p->closing = 1;
	if (p->timer)
		ud_evloop_timer_cancel(p->loop, p->timer);
	p->timer = 0;
	while ((c = p->conns))
		conn_close(p, c);
	reap(p);
	while (p->npool)
		pipe_close(p->pool[--p->npool]);
	while ((a = p->apps)) {
		p->apps = a->next;
		listener_close(p, a);
		held_close_all(p, a);
		while ((in = a->inst)) {
			a->inst = in->next;
			free(in);
		}
		free(a->name);
		free(a);
	}
	if (p->own_loop)
		ud_evloop_free(p->loop);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static void *run_loop(void *arg)
{
	struct proxy *p = arg;

	if (ud_evloop_run(p->loop) < 0)
		ud_log_error("proxy: %s", ud_error_last());
	return NULL;
}

int proxy_start(struct proxy **out, struct ud_evloop *loop,
		proxy_demand_fn on_demand, void *payload)
{
	struct proxy *p = ud_calloc(1, sizeof(*p));
	sigset_t all, old;
	int err, rc;

	pthread_mutex_init(&p->mu, NULL);
	p->on_demand = on_demand;
	p->payload = payload;
	p->no_splice = getenv("UD_PROXY_NO_SPLICE") != NULL;
	p->loop = loop;
	if (!loop) {
		if ((err = ud_evloop_new(&p->loop)) < 0)
			goto done;
		p->own_loop = 1;
		/* Asynchronous signals are for the daemon's main thread;
		 * SIGPIPE in particular must stay blocked here (see
		 * drain_sigpipe). */
		sigfillset(&all);
		sigdelset(&all, SIGSEGV);
		sigdelset(&all, SIGBUS);
		sigdelset(&all, SIGFPE);
		sigdelset(&all, SIGILL);
		sigdelset(&all, SIGABRT);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&p->thread, NULL, run_loop, p);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc) {
			err = ud_error_set(UD_ERROR, "cannot start the proxy "
					   "thread: %s", strerror(rc));
			goto done;
		}
	}
	*out = p;
	p = NULL;
	err = 0;
done:
	proxy_free(p);
	return err;
}

void proxy_stop(struct proxy *p)
{
	if (!p)
		return;
	if (p->own_loop) {
		ud_evloop_stop(p->loop);
		pthread_join(p->thread, NULL);
	}
	proxy_free(p);
}

struct ud_evloop *proxy_loop(struct proxy *p)
{
	return p->loop;
}

int proxy_listen(struct proxy *p, const char *app, const char *addr,
		 int hold_ms, int concurrency)
{
	struct ud_addr ua;
	struct app *a;
	int err, fd = -1;

	if ((err = ud_addr_parse(&ua, addr)) < 0)
		return err;
	pthread_mutex_lock(&p->mu);
	a = app_get(p, app);
	a->hold_ms = hold_ms;
	a->concurrency = concurrency;
	if (a->addr && !strcmp(a->addr, addr))
		goto done;
	if ((err = ud_net_listen(&fd, &ua, BACKLOG)) < 0) {
		if (a->lfd < 0)
			goto done;
		/* The old listener may hold the port ("0.0.0.0:80" to
		 * "127.0.0.1:80"): let it go and try again. */
		listener_close(p, a);
		if ((err = ud_net_listen(&fd, &ua, BACKLOG)) < 0)
			goto done;
	}
	listener_close(p, a);
	if (ud_evloop_add(p->loop, fd, UD_EV_READ, on_event, &a->h) < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", ud_error_last());
		err = ud_error_set(UD_ERROR, "cannot listen on %s: %s", addr,
				   why);
		close(fd);
		goto done;
	}
	/* Accepted sockets inherit it: one setsockopt per listener rather
	 * than one per connection. */
	nodelay(fd);
	a->lfd = fd;
	a->addr = ud_strdup(addr);
	kick(p);
done:
	pthread_mutex_unlock(&p->mu);
	return err;
}

void proxy_unlisten(struct proxy *p, const char *app)
{
	struct app *a;

	pthread_mutex_lock(&p->mu);
	if ((a = app_find(p, app))) {
		listener_close(p, a);
		held_close_all(p, a);
	}
	pthread_mutex_unlock(&p->mu);
}

void proxy_set_backends(struct proxy *p, const char *app,
			const struct proxy_backend *b, size_t n)
{
	struct instance *in, **pp;
	struct app *a;
	size_t i;
	int was_ready;

	pthread_mutex_lock(&p->mu);
	a = app_get(p, app);
	for (in = a->inst; in; in = in->next) {
		was_ready = in->ready;
		in->ready = 0;
		for (i = 0; i < n; i++)
			if (in->id == b[i].id)
				break;
		if (was_ready && i == n)
			p->moves_due = 1;
	}
	for (i = 0; i < n; i++) {
		for (in = a->inst; in; in = in->next)
			if (in->id == b[i].id)
				break;
		if (!in) {
			in = ud_calloc(1, sizeof(*in));
			in->id = b[i].id;
			/* Appended, so round robin follows the caller's
			 * order. */
			pp = &a->inst;
			while (*pp)
				pp = &(*pp)->next;
			*pp = in;
		}
		in->addr = b[i].addr;
		in->port = b[i].port;
		in->ready = 1;
	}
	inst_prune(a);
	kick(p);
	pthread_mutex_unlock(&p->mu);
}

void proxy_set_http(struct proxy *p, const char *app, int on)
{
	pthread_mutex_lock(&p->mu);
	app_get(p, app)->http = on;
	pthread_mutex_unlock(&p->mu);
}

void proxy_set_booting(struct proxy *p, const char *app, size_t n)
{
	struct app *a;

	pthread_mutex_lock(&p->mu);
	a = app_get(p, app);
	a->booting = n;
	/* Fewer coming: what waited for them may go to a full one now. */
	kick(p);
	pthread_mutex_unlock(&p->mu);
}

size_t proxy_active(struct proxy *p, const char *app, int id)
{
	struct instance *in;
	struct app *a;
	size_t n = 0;

	pthread_mutex_lock(&p->mu);
	if ((a = app_find(p, app)))
		for (in = a->inst; in; in = in->next)
			if (in->id == id)
				n = in->open;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void proxy_counts(struct proxy *p, const char *app, size_t *open,
		  size_t *held)
{
	struct instance *in;
	struct app *a;
	size_t o = 0, h = 0;

	pthread_mutex_lock(&p->mu);
	if ((a = app_find(p, app))) {
		for (in = a->inst; in; in = in->next)
			o += in->open;
		h = a->nheld;
	}
	pthread_mutex_unlock(&p->mu);
	if (open)
		*open = o;
	if (held)
		*held = h;
}

size_t proxy_drop_held(struct proxy *p, const char *app)
{
	struct app *a;
	size_t n = 0;

	pthread_mutex_lock(&p->mu);
	if ((a = app_find(p, app))) {
		n = a->nheld;
		held_close_all(p, a);
	}
	pthread_mutex_unlock(&p->mu);
	return n;
}

long long proxy_held_since(struct proxy *p, const char *app)
{
	struct app *a;
	long long since = 0;

	pthread_mutex_lock(&p->mu);
	if ((a = app_find(p, app)) && a->held)
		since = a->held->since;
	pthread_mutex_unlock(&p->mu);
	return since;
}
