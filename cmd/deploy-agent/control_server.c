/*
 * control_server.c: the agent's control socket (lib/control.h's protocol),
 * on the agent's event loop.
 *
 * A connection sends one request line and gets one reply line. "status"
 * is answered at once from the last published snapshot; "sync" waits,
 * without holding a thread, until a sync that started after the request
 * has finished, so its answer reflects whatever was published before the
 * caller asked. The core tells the loop when a sync finishes or the first
 * snapshot is out (agent_set_notify), and waiting connections look again.
 * At most MAX_CONNECTIONS are served at once; past that a client is told
 * to try again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control_server.h"
#include "buf.h"
#include "control.h"
#include "errors.h"
#include "evloop.h"
#include "log.h"
#include "names.h"
#include "net.h"
#include "proxy.h"

/* A client has this long to send its request, and to take the reply. */
#define IO_TIMEOUT_MS 10000
/* Connections served at once (each holds a buffer of up to
 * UD_CONTROL_MAX). 3,000 idle connections once made 3,004 threads. */
#define MAX_CONNECTIONS 64

enum conn_state { READING, WAIT_STATUS, WAIT_SYNC, WRITING };

struct control;

struct conn {
	struct conn *next;
	struct control *ctl;
	int fd;
	enum conn_state state;
	struct ud_buf in;
	char *out;          /* the reply line, while WRITING */
	size_t outlen, off;
	char *app;          /* the request's app, NULL: all */
	unsigned long seq;  /* WAIT_SYNC: the request's number */
	long long timer;    /* the I/O deadline; 0: none */
};

struct control {
	struct agent *a;
	struct ud_evloop *loop;
	int fd;          /* the listening socket */
	char *path;      /* its path, removed at stop */
	struct conn *conns;
	int nconns;
};

static json_t *failure(const char *fmt, const char *arg)
{
	struct ud_buf b = UD_BUF_INIT;
	json_t *r;

	ud_buf_printf(&b, fmt, arg);
	r = json_pack("{s:b, s:s}", "ok", 0, "error", b.ptr);
	ud_buf_free(&b);
	return r;
}

/* Narrow a reply to one app. Takes ownership of reply. */
static json_t *only_app(struct agent *a, json_t *reply, const char *app)
{
	json_t *apps, *one, *r;

	if (!app || !json_is_true(json_object_get(reply, "ok")))
		return reply;
	apps = json_object_get(reply, "apps");
	one = json_object_get(apps, app);
	if (!one) {
		json_decref(reply);
		r = failure("app '%s' is not placed on this host", app);
		json_object_set_new(r, "host", json_string(a->conf->host));
		return r;
	}
	r = json_pack("{s:b, s:s, s:{s:O}}", "ok", 1, "host", a->conf->host,
		      "apps", app, one);
	json_decref(reply);
	return r;
}

/* The snapshot with the proxy's live counts; NULL before the first
 * snapshot (right after a restart the reconciler is still adopting what
 * state.json records: answer once it has said what runs, not with an
 * empty host). */
static json_t *do_status(struct agent *a)
{
	const char *name;
	json_t *apps, *o;
	size_t open, held;

	if (!(apps = agent_snapshot(a, 0)))
		return NULL;
	/* Connections change without a snapshot: ask the proxy now. */
	json_object_foreach(apps, name, o) {
		open = held = 0;
		if (a->proxy)
			proxy_counts(a->proxy, name, &open, &held);
		json_object_set_new(o, "connections",
				    json_integer((json_int_t)open));
		json_object_set_new(o, "waiting",
				    json_integer((json_int_t)held));
	}
	return json_pack("{s:b, s:s, s:o}", "ok", 1, "host", a->conf->host,
			 "apps", apps);
}

/* Read the request: a reply at once, or NULL with the connection set to
 * wait for the first snapshot (status) or for its sync. */
static json_t *answer(struct conn *c, const char *line, size_t len)
{
	struct agent *a = c->ctl->a;
	json_error_t jerr;
	json_t *req = json_loadb(line, len, 0, &jerr), *r = NULL, *v;
	const char *cmd, *app = NULL;
	int retry = 0;

	if (!req || !json_is_object(req)) {
		r = failure("bad request: %s",
			    req ? "not a JSON object" : jerr.text);
		goto done;
	}
	cmd = json_string_value(json_object_get(req, "cmd"));
	if ((v = json_object_get(req, "app")) && !json_is_null(v)) {
		if (!(app = json_string_value(v))) {
			r = failure("%s", "bad request: app must be a string");
			goto done;
		}
		if (ud_name_check_app(app) < 0) {
			r = failure("%s", ud_error_last());
			goto done;
		}
	}
	if ((v = json_object_get(req, "retry")) && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			r = failure("%s", "bad request: retry must be a "
				    "boolean");
			goto done;
		}
		retry = json_is_true(v);
	}
	c->app = app ? ud_strdup(app) : NULL;
	if (cmd && !strcmp(cmd, "status")) {
		c->state = WAIT_STATUS;
	} else if (cmd && !strcmp(cmd, "sync")) {
		/* With retry, the sync this request waits for (the next to
		 * start) boots the app's failed release again; any other
		 * sync leaves it alone. */
		c->seq = agent_sync_ask(a, app, retry);
		c->state = WAIT_SYNC;
	} else {
		r = failure("unknown command '%s' (sync, status)",
			    cmd ? cmd : "");
	}
done:
	json_decref(req);
	return r;
}

static void conn_close(struct conn *c)
{
	struct control *ctl = c->ctl;
	struct conn **pp;

	for (pp = &ctl->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ctl->nconns--;
	if (c->timer)
		ud_evloop_timer_cancel(ctl->loop, c->timer);
	ud_evloop_del(ctl->loop, c->fd);
	close(c->fd);
	ud_buf_free(&c->in);
	free(c->out);
	free(c->app);
	free(c);
}

static long long conn_timeout(struct ud_evloop *l, long long id, void *arg)
{
	struct conn *c = arg;

	(void)l;
	(void)id;
	c->timer = 0;
	ud_log_debug("control: a client took more than %d ms",
		     IO_TIMEOUT_MS);
	conn_close(c);
	return UD_EVLOOP_NOMORE;
}

static void conn_writable(struct ud_evloop *l, int fd, int mask, void *arg);

/* Send the reply (taken): as much as the socket takes now, the rest when
 * it is writable again. */
static void conn_reply(struct conn *c, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);

	json_decref(reply);
	if (!text) {
		conn_close(c);
		return;
	}
	c->outlen = strlen(text) + 1;
	c->out = ud_realloc(text, c->outlen + 1);
	c->out[c->outlen - 1] = '\n';
	c->off = 0;
	c->state = WRITING;
	if (c->timer)
		ud_evloop_timer_cancel(c->ctl->loop, c->timer);
	c->timer = ud_evloop_timer(c->ctl->loop, IO_TIMEOUT_MS, conn_timeout,
				   c);
	conn_writable(c->ctl->loop, c->fd, UD_EV_WRITE, c);
}

static void conn_writable(struct ud_evloop *l, int fd, int mask, void *arg)
{
	struct conn *c = arg;
	ssize_t n;

	(void)mask;
	while (c->off < c->outlen) {
		n = send(fd, c->out + c->off, c->outlen - c->off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			c->off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (ud_evloop_add(l, fd, UD_EV_WRITE, conn_writable,
					  c) < 0)
				break;
			return;
		}
		ud_log_debug("control: reply: %s", strerror(errno));
		break;
	}
	conn_close(c);
}

/* A waiting connection looks again: the first snapshot, its sync, or the
 * stop may have come. */
static void conn_recheck(struct conn *c)
{
	struct agent *a = c->ctl->a;
	json_t *r = NULL;
	int rc;

	if (c->state == WAIT_STATUS) {
		if (!(r = do_status(a)) && agent_stopping(a))
			r = json_pack("{s:b, s:s, s:o}", "ok", 1, "host",
				      a->conf->host, "apps", json_object());
	} else if (c->state == WAIT_SYNC) {
		if ((rc = agent_sync_poll(a, c->seq, &r)) < 0)
			r = failure("%s", "the agent is shutting down");
	}
	if (r)
		conn_reply(c, only_app(a, r, c->app));
}

static void conn_readable(struct ud_evloop *l, int fd, int mask, void *arg)
{
	struct conn *c = arg;
	char buf[4096], *nl;
	ssize_t n;
	json_t *r;

	(void)l;
	(void)mask;
	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* Gone, or shut down before a whole line. */
			conn_close(c);
			return;
		}
		if (ud_buf_put(&c->in, buf, (size_t)n) < 0) {
			ud_log_debug("control: %s", ud_error_last());
			conn_close(c);
			return;
		}
		if ((nl = memchr(c->in.ptr, '\n', c->in.size)))
			break;
	}
	/* One request per connection: what follows the line is ignored,
	 * and so is the socket until the reply is out. */
	ud_evloop_del(c->ctl->loop, fd);
	if (c->timer) {
		ud_evloop_timer_cancel(c->ctl->loop, c->timer);
		c->timer = 0;
	}
	if ((r = answer(c, c->in.ptr, (size_t)(nl - c->in.ptr)))) {
		conn_reply(c, only_app(c->ctl->a, r, c->app));
		return;
	}
	conn_recheck(c);
}

static void refuse_stopping(int fd)
{
	static const char stopping[] =
		"{\"ok\": false, \"error\": \"the agent is shutting "
		"down\"}\n";

	if (send(fd, stopping, sizeof(stopping) - 1,
		 MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		ud_log_debug("control: %s", strerror(errno));
}

/* Past MAX_CONNECTIONS: one reply line, without reading the request (a
 * non-blocking write: a client that does not read loses it). */
static void refuse(int fd)
{
	static const char busy[] =
		"{\"ok\": false, \"error\": \"the agent is serving "
		"too many control connections; try again\"}\n";

	if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		ud_log_debug("control: refuse: %s", strerror(errno));
	close(fd);
}

static void on_accept(struct ud_evloop *l, int lfd, int mask, void *arg)
{
	struct control *ctl = arg;
	struct conn *c;
	int fd;

	(void)mask;
	while ((fd = accept4(lfd, NULL, NULL,
			     SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		if (ctl->nconns >= MAX_CONNECTIONS) {
			refuse(fd);
			continue;
		}
		c = ud_calloc(1, sizeof(*c));
		c->ctl = ctl;
		c->fd = fd;
		c->state = READING;
		ud_buf_init(&c->in, UD_CONTROL_MAX);
		c->next = ctl->conns;
		ctl->conns = c;
		ctl->nconns++;
		c->timer = ud_evloop_timer(l, IO_TIMEOUT_MS, conn_timeout, c);
		if (ud_evloop_add(l, fd, UD_EV_READ, conn_readable, c) < 0) {
			ud_log_warn("control: %s", ud_error_last());
			conn_close(c);
		}
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
	    errno != ECONNABORTED)
		ud_log_warn("control: accept: %s", strerror(errno));
}

/* On the loop (posted by the core's notification). */
static void recheck_all(void *arg)
{
	struct control *ctl = arg;
	struct conn *c, *next;

	for (c = ctl->conns; c; c = next) {
		next = c->next; /* conn_recheck may close c */
		if (c->state == WAIT_STATUS || c->state == WAIT_SYNC)
			conn_recheck(c);
	}
}

/* Any thread: the core says something changed. */
static void notified(void *arg)
{
	struct control *ctl = arg;

	ud_evloop_post(ctl->loop, recheck_all, ctl);
}

/* agent.json's control_group and control_mode: the group first, so the
 * socket is never open to a group other than the one named. Connecting
 * needs write permission on the socket, and search permission on its
 * directory, which is the operator's (docs/multiuser.md). */
static int set_access(const struct ud_agentconf *conf, const char *path)
{
	if (conf->control_group && chown(path, (uid_t)-1, conf->control_gid) < 0)
		return ud_error_set_errno(UD_ERROR,
					  "control %s: cannot give the socket "
					  "to group '%s' (control_group)",
					  conf->control, conf->control_group);
	if (chmod(path, (mode_t)conf->control_mode) < 0)
		return ud_error_set_errno(UD_ERROR,
					  "control %s: cannot set mode %04o "
					  "(control_mode)",
					  conf->control, conf->control_mode);
	return 0;
}

int control_start(struct agent *a, struct ud_evloop *loop,
		  struct control **out)
{
	struct control *ctl;
	struct ud_addr addr;
	int err;

	if ((err = ud_addr_parse(&addr, a->conf->control)) < 0)
		return err;
	if (addr.family != AF_UNIX)
		return ud_error_set(UD_EINVALID,
				    "control %s: must be unix:PATH",
				    a->conf->control);
	ctl = ud_calloc(1, sizeof(*ctl));
	ctl->a = a;
	ctl->loop = loop;
	ctl->fd = -1;
	if ((err = ud_net_listen(&ctl->fd, &addr, 64)) < 0)
		goto fail;
	ctl->path = ud_strdup(a->conf->control + 5);
	if ((err = set_access(a->conf, ctl->path)) < 0 ||
	    (err = ud_net_nonblock(ctl->fd, 1)) < 0 ||
	    (err = ud_evloop_add(loop, ctl->fd, UD_EV_READ, on_accept, ctl)) <
		    0)
		goto fail;
	agent_set_notify(a, notified, ctl);
	*out = ctl;
	return 0;
fail:
	if (ctl->fd >= 0) {
		close(ctl->fd);
		unlink(ctl->path);
	}
	free(ctl->path);
	free(ctl);
	return err;
}

void control_stop(struct control *ctl)
{
	struct conn *c;

	if (!ctl)
		return;
	agent_set_notify(ctl->a, NULL, NULL);
	ud_evloop_del(ctl->loop, ctl->fd);
	close(ctl->fd);
	unlink(ctl->path);
	/* Those still waiting are told, best effort, rather than cut. */
	while ((c = ctl->conns)) {
		if (c->state == WAIT_STATUS || c->state == WAIT_SYNC)
			refuse_stopping(c->fd);
		conn_close(c);
	}
	free(ctl->path);
	free(ctl);
}
