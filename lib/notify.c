#include "notify.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "control.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "ssh.h"

struct job {
	const struct ud_fleet_host *host;
	const char *name;
	const char *cmd, *app;
	int timeout_ms;
	const struct ud_ssh_opts *ssh;
	struct ud_host_reply *out;
};

/* The last non-empty line of a remote's stderr, or NULL: the forced
 * command's "refused: ..." or the agent's own "deploy-agent: sync: ...". */
static char *last_line(struct ud_buf *b)
{
	char *nl;

	ud_buf_rtrim(b);
	if (!b->size)
		return NULL;
	nl = strrchr(b->ptr, '\n');
	return ud_strdup(nl ? nl + 1 : b->ptr);
}

/*
 * Over SSH the host runs the agent's own CLI, "deploy-agent <cmd> --json
 * [app]", which is what `deploy-agent ssh-command` accepts. Its exit
 * status says nothing about the transport (a sync with a failed app exits
 * 1 and still prints the reply), so any JSON object on stdout is the
 * reply; without one, the remote's stderr says why.
 */
static int ask_ssh(json_t **reply, char **why, const struct job *j)
{
	struct ud_buf out = UD_BUF_INIT, err_text = UD_BUF_INIT;
	char *command = NULL, *line;
	json_error_t jerr;
	int err, status = -1;

	*reply = NULL;
	*why = NULL;
	/* A host without the forced command hands the line to a shell:
	 * only a valid app name may reach it. The forced command takes no
	 * app with status, so status asks for all and the caller picks. */
	if (j->app && (err = ud_name_check_app(j->app)) < 0)
		goto done;
	if (j->app && strcmp(j->cmd, "status"))
		command = ud_asprintf("deploy-agent %s --json %s", j->cmd,
				      j->app);
	else
		command = ud_asprintf("deploy-agent %s --json", j->cmd);
	if ((err = ud_ssh_exec(j->ssh, j->host->ssh, command, j->timeout_ms,
			       &out, &err_text, &status)) < 0)
		goto done;
	*reply = json_loadb(out.ptr, out.size, 0, &jerr);
	if (*reply && json_is_object(*reply))
		goto done;
	json_decref(*reply);
	*reply = NULL;
	if ((line = last_line(&err_text))) {
		*why = ud_asprintf("%s: %s", j->host->ssh, line);
		free(line);
	} else if (out.size) {
		*why = ud_asprintf("%s: not a JSON reply (line %d, column "
				   "%d: %s)",
				   j->host->ssh, jerr.line, jerr.column,
				   jerr.text);
	} else {
		*why = ud_asprintf("%s: the remote command exited with "
				   "status %d and printed nothing",
				   j->host->ssh, status);
	}
	err = UD_ERROR;
done:
	if (err < 0 && !*why)
		*why = ud_strdup(ud_error_last());
	free(command);
	ud_buf_free(&out);
	ud_buf_free(&err_text);
	return err;
}

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
	if (j->host->agent) {
		err = ud_control_call(&reply, j->host->agent, j->cmd, j->app,
				      j->timeout_ms);
		r->ms = ud_now_ms() - start;
		if (err < 0) {
			r->error = ud_strdup(ud_error_last());
			return;
		}
	} else {
		err = ask_ssh(&reply, &r->error, j);
		r->ms = ud_now_ms() - start;
		if (err < 0)
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
	struct ud_ssh_opts env_ssh;

	if (!ssh) {
		ud_ssh_opts_from_env(&env_ssh);
		ssh = &env_ssh;
	}
	for (i = 0; i < n; i++) {
		r[i].host = ud_strdup(hosts->v[i]);
		jobs[i] = (struct job){ ud_fleet_host(f, hosts->v[i]),
					hosts->v[i], cmd, app, timeout_ms,
					ssh, &r[i] };
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
