/*
 * control_server.c: the agent's control socket (lib/control.h's protocol).
 *
 * One thread accepts; each connection gets a short-lived thread that reads
 * one request line and writes one reply line. "status" is answered at once
 * from the last published snapshot. "sync" waits until a sync that started
 * after the request has finished, so its answer reflects whatever was
 * published before the caller asked.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "control.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "net.h"

#define READ_TIMEOUT_MS 10000
/* The acceptor learns of a shutdown from control_wake(); this is only the
 * fallback, so an idle agent wakes up rarely rather than 5 times a second. */
#define STOP_CHECK_MS 60000

/* Written by control_wake(); one per process, never closed, so a late
 * write can never land on a reused descriptor. */
static int wake_fd = -1;

void control_wake(void)
{
	uint64_t one = 1;

	if (wake_fd >= 0 && write(wake_fd, &one, sizeof(one)) < 0)
		ud_log_debug("control: wake: %s", strerror(errno));
}

struct conn {
	struct agent *a;
	int fd;
};

void agent_request_sync(struct agent *a)
{
	pthread_mutex_lock(&a->lock);
	a->req_seq++;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
}

void agent_demand(const char *app, size_t waiting, void *payload)
{
	struct agent *a = payload;
	size_t i;

	(void)waiting;
	pthread_mutex_lock(&a->lock);
	for (i = 0; i < a->demand.n; i++)
		if (!strcmp(a->demand.v[i], app))
			break;
	if (i == a->demand.n)
		ud_strvec_push(&a->demand, app);
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
}

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

	pthread_mutex_lock(&a->lock);
	/* Right after a restart the reconciler is still adopting what
	 * state.json records: answer once it has said what runs, not with
	 * an empty host. */
	while (!a->status && !a->stopping)
		pthread_cond_wait(&a->done, &a->lock);
	apps = a->status ? json_deep_copy(a->status) : json_object();
	pthread_mutex_unlock(&a->lock);
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
static json_t *do_sync(struct agent *a, const char *app, int retry)
{
	unsigned long mine;
	json_t *r = NULL;

	pthread_mutex_lock(&a->lock);
	if (retry)
		ud_strvec_push(&a->retry, app ? app : "*");
	mine = ++a->req_seq;
	pthread_cond_signal(&a->wake);
	while (!a->stopping && a->done_seq < mine)
		pthread_cond_wait(&a->done, &a->lock);
	if (!a->stopping && a->last_sync)
		r = json_deep_copy(a->last_sync);
	pthread_mutex_unlock(&a->lock);
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
	struct agent *a = c->a;
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
	pthread_mutex_lock(&a->lock);
	a->connections--;
	pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

struct acceptor {
	struct agent *a;
	int fd;
};

static void *accept_main(void *arg)
{
	struct acceptor *ac = arg;
	struct agent *a = ac->a;

	while (!agent_stopping(a)) {
		struct pollfd pfd[2] = { { ac->fd, POLLIN, 0 },
					 { wake_fd, POLLIN, 0 } };
		struct conn *c;
		pthread_t t;
		int fd;

		if (poll(pfd, wake_fd >= 0 ? 2 : 1, STOP_CHECK_MS) <= 0 ||
		    !(pfd[0].revents & POLLIN))
			continue;
		if ((fd = accept4(ac->fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				ud_log_warn("control: accept: %s",
					    strerror(errno));
			continue;
		}
		c = ud_calloc(1, sizeof(*c));
		c->a = a;
		c->fd = fd;
		pthread_mutex_lock(&a->lock);
		a->connections++;
		pthread_mutex_unlock(&a->lock);
		if (pthread_create(&t, NULL, serve, c) != 0) {
			ud_log_warn("control: cannot start a thread");
			close(fd);
			free(c);
			pthread_mutex_lock(&a->lock);
			a->connections--;
			pthread_mutex_unlock(&a->lock);
			continue;
		}
		pthread_detach(t);
	}
	free(ac);
	return NULL;
}

int control_start(struct agent *a, pthread_t *thread, int *fd)
{
	struct ud_addr addr;
	struct acceptor *ac;
	int err;

	if ((err = ud_addr_parse(&addr, a->conf->control)) < 0)
		return err;
	if (addr.family != AF_UNIX)
		return ud_error_set(UD_EINVALID,
				    "control %s: must be unix:PATH",
				    a->conf->control);
	if ((err = ud_net_listen(fd, &addr, 64)) < 0)
		return err;
	if (wake_fd < 0)
		wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ac = ud_calloc(1, sizeof(*ac));
	ac->a = a;
	ac->fd = *fd;
	if (pthread_create(thread, NULL, accept_main, ac) != 0) {
		free(ac);
		close(*fd);
		*fd = -1;
		return ud_error_set(UD_ERROR, "cannot start the control "
					      "thread");
	}
	return 0;
}
