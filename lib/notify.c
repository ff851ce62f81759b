#include "notify.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "errors.h"
#include "log.h"

struct job {
	const struct ud_fleet_host *host;
	const char *name;
	const char *cmd, *app;
	int timeout_ms;
	struct ud_host_reply *out;
};

static void ask(struct job *j)
{
	struct ud_host_reply *r = j->out;
	json_t *reply = NULL;
	const char *why;
	long long start = ud_now_ms();
	int err;

	if (!j->host) {
		r->error = ud_asprintf("host '%s' is not in fleet.json",
				       j->name);
		return;
	}
	if (!j->host->agent) {
		/* Signalling over SSH needs libssh2 with host-key checks;
		 * until that lands such hosts fail loudly instead of
		 * silently converging on their next poll. */
		r->error = ud_strdup("signalling hosts over ssh is not "
				     "supported by this version (use an "
				     "agent socket)");
		return;
	}
	err = ud_control_call(&reply, j->host->agent, j->cmd, j->app,
			      j->timeout_ms);
	r->ms = ud_now_ms() - start;
	if (err < 0) {
		r->error = ud_strdup(ud_error_last());
		return;
	}
	r->reply = reply;
	if (json_is_true(json_object_get(reply, "ok"))) {
		r->ok = 1;
	} else {
		why = json_string_value(json_object_get(reply, "error"));
		r->error = ud_strdup(why ? why : "the agent refused");
	}
}

static void *ask_thread(void *arg)
{
	ask(arg);
	return NULL;
}

int ud_notify_hosts(struct ud_host_reply **out, const struct ud_fleet *f,
		    const struct ud_strvec *hosts, const char *cmd,
		    const char *app, int timeout_ms)
{
	return ud_notify_hosts_ex(out, f, hosts, cmd, app, timeout_ms, NULL);
}

int ud_notify_hosts_ex(struct ud_host_reply **out, const struct ud_fleet *f,
		       const struct ud_strvec *hosts, const char *cmd,
		       const char *app, int timeout_ms,
		       const struct ud_ssh_opts *ssh)
{
	size_t n = hosts->n, i;
	struct ud_host_reply *r = ud_calloc(n, sizeof(*r));
	struct job *jobs = ud_calloc(n, sizeof(*jobs));
	pthread_t *tids = ud_calloc(n, sizeof(*tids));
	int *started = ud_calloc(n, sizeof(*started));

	(void)ssh;
	for (i = 0; i < n; i++) {
		r[i].host = ud_strdup(hosts->v[i]);
		jobs[i] = (struct job){ ud_fleet_host(f, hosts->v[i]),
					hosts->v[i], cmd, app, timeout_ms,
					&r[i] };
		/* One thread per host: a dead host costs its own deadline
		 * and nobody else's. */
		started[i] = n > 1 && pthread_create(&tids[i], NULL,
						     ask_thread, &jobs[i]) == 0;
		if (!started[i])
			ask(&jobs[i]);
	}
	for (i = 0; i < n; i++)
		if (started[i])
			pthread_join(tids[i], NULL);
	free(started);
	free(tids);
	free(jobs);
	*out = r;
	return 0;
}

void ud_host_replies_free(struct ud_host_reply *r, size_t n)
{
	if (!r)
		return;
	for (size_t i = 0; i < n; i++) {
		free(r[i].host);
		free(r[i].error);
		json_decref(r[i].reply);
	}
	free(r);
}
