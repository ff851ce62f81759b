/*
 * control_server.c: the agent's control socket (lib/control.h's protocol).
 *
 * One thread accepts; each connection gets a short-lived thread that reads
 * one request line and writes one reply line, up to MAX_CONNECTIONS at
 * once (past that a client is told to try again). "status" is answered at once
 * from the last published snapshot. "sync" waits until a sync that started
 * after the request has finished, so its answer reflects whatever was
 * published before the caller asked.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control_server.h"
#include "buf.h"
#include "control.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "net.h"
#include "proxy.h"

#define READ_TIMEOUT_MS 10000
/* Connections served at once. Each is a thread that may wait for a sync;
 * past this, a client is told to try again rather than given a thread
 * (3,000 idle connections once made 3,004 threads). */
#define MAX_CONNECTIONS 64
/* The acceptor learns of a shutdown from control_stop()'s wake-up; this
 * is only the fallback, so an idle agent wakes up rarely. */
#define STOP_CHECK_MS 60000

struct control {
	struct agent *a;
	int fd;          /* the listening socket */
	char *path;      /* its path, removed at stop */
	int wake_fd;     /* eventfd: stop now */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int connections; /* being served */
};

struct conn {
	struct control *ctl;
	int fd;
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

static json_t *do_status(struct agent *a)
{
	const char *name;
	json_t *apps, *o;
	size_t open, held;

	/* Right after a restart the reconciler is still adopting what
	 * state.json records: answer once it has said what runs, not with
	 * an empty host. */
	apps = agent_snapshot(a, 1);
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

/* With retry, the sync this request waits for (the next to start) boots
 * the app's failed release again; any other sync leaves it alone. */
/* With retry, the sync this request waits for (the next to start) boots
 * the app's failed release again; any other sync leaves it alone. */
static json_t *do_sync(struct agent *a, const char *app, int retry)
{
	json_t *r = agent_sync(a, app, retry);

	return r ? r : failure("%s", "the agent is shutting down");
}

static json_t *answer(struct agent *a, const char *line, size_t len)
{
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
	if (cmd && !strcmp(cmd, "status"))
		r = only_app(a, do_status(a), app);
	else if (cmd && !strcmp(cmd, "sync"))
		r = only_app(a, do_sync(a, app, retry), app);
	else
		r = failure("unknown command '%s' (sync, status)",
			    cmd ? cmd : "");
done:
	json_decref(req);
	return r;
}

static void *serve(void *arg)
{
	struct conn *c = arg;
	struct control *ctl = c->ctl;
	struct agent *a = ctl->a;
	struct ud_buf line = UD_BUF_INIT;
	json_t *reply = NULL;
	char *text = NULL;

	line.max = UD_CONTROL_MAX;
	if (ud_read_line(c->fd, &line, READ_TIMEOUT_MS) < 0) {
		ud_log_debug("control: %s", ud_error_last());
		goto done;
	}
	reply = answer(a, line.ptr, line.size);
	text = json_dumps(reply, JSON_COMPACT);
	if (text && (ud_write_all(c->fd, text, strlen(text)) < 0 ||
		     ud_write_all(c->fd, "\n", 1) < 0))
		ud_log_debug("control: %s", ud_error_last());
done:
	free(text);
	json_decref(reply);
	ud_buf_free(&line);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&ctl->lock);
	ctl->connections--;
	pthread_cond_broadcast(&ctl->idle);
	pthread_mutex_unlock(&ctl->lock);
	return NULL;
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

static void *accept_main(void *arg)
{
	struct control *ctl = arg;

	while (!agent_stopping(ctl->a)) {
		struct pollfd pfd[2] = { { ctl->fd, POLLIN, 0 },
					 { ctl->wake_fd, POLLIN, 0 } };
		struct conn *c;
		pthread_t t;
		int fd, busy;

		if (poll(pfd, 2, STOP_CHECK_MS) <= 0 ||
		    !(pfd[0].revents & POLLIN))
			continue;
		if ((fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				ud_log_warn("control: accept: %s",
					    strerror(errno));
			continue;
		}
		pthread_mutex_lock(&ctl->lock);
		busy = ctl->connections >= MAX_CONNECTIONS;
		if (!busy)
			ctl->connections++;
		pthread_mutex_unlock(&ctl->lock);
		if (busy) {
			refuse(fd);
			continue;
		}
		c = ud_calloc(1, sizeof(*c));
		c->ctl = ctl;
		c->fd = fd;
		if (pthread_create(&t, NULL, serve, c) != 0) {
			ud_log_warn("control: cannot start a thread");
			close(fd);
			free(c);
			pthread_mutex_lock(&ctl->lock);
			ctl->connections--;
			pthread_mutex_unlock(&ctl->lock);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static void control_free(struct control *ctl)
{
	if (ctl->fd >= 0)
		close(ctl->fd);
	if (ctl->wake_fd >= 0)
		close(ctl->wake_fd);
	pthread_cond_destroy(&ctl->idle);
	pthread_mutex_destroy(&ctl->lock);
	free(ctl->path);
	free(ctl);
}

int control_start(struct agent *a, struct control **out)
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
	ctl->fd = ctl->wake_fd = -1;
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_cond_init(&ctl->idle, NULL);
	if ((err = ud_net_listen(&ctl->fd, &addr, 64)) < 0)
		goto fail;
	ctl->path = ud_strdup(a->conf->control + 5);
	if ((ctl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "control: eventfd");
		goto fail;
	}
	if (pthread_create(&ctl->thread, NULL, accept_main, ctl) != 0) {
		err = ud_error_set(UD_ERROR, "cannot start the control "
					     "thread");
		goto fail;
	}
	*out = ctl;
	return 0;
fail:
	if (ctl->path)
		unlink(ctl->path);
	control_free(ctl);
	return err;
}

void control_stop(struct control *ctl)
{
	uint64_t one = 1;
	long long deadline;

	if (!ctl)
		return;
	/* The acceptor sleeps in poll(): wake it now rather than at its
	 * fallback check. agent_stop() came first. */
	if (write(ctl->wake_fd, &one, sizeof(one)) < 0)
		ud_log_debug("control: wake: %s", strerror(errno));
	pthread_join(ctl->thread, NULL);
	close(ctl->fd);
	ctl->fd = -1;
	unlink(ctl->path);
	/* Let the connections being served answer "shutting down" (the
	 * core woke their waits) before the agent's memory goes. */
	deadline = ud_now_ms() + 1000;
	pthread_mutex_lock(&ctl->lock);
	while (ctl->connections > 0 && ud_now_ms() < deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&ctl->idle, &ctl->lock, &ts);
	}
	/* A connection still running past that keeps its memory: leak it
	 * rather than free it under a thread. */
	if (ctl->connections > 0) {
		pthread_mutex_unlock(&ctl->lock);
		ud_log_warn("control: %d connections still open at exit",
			    ctl->connections);
		return;
	}
	pthread_mutex_unlock(&ctl->lock);
	control_free(ctl);
}
