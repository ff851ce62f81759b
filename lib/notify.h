/*
 * notify.h: ask hosts to sync (or report status) and collect their answers.
 * All hosts are asked in parallel, each with its own deadline, so one slow
 * or dead host never delays the others beyond it.
 */
#ifndef UD_NOTIFY_H
#define UD_NOTIFY_H

#include <jansson.h>
#include <stddef.h>

#include "fleet.h"

struct ud_host_reply {
	char *host;
	int ok;          /* 1: the host answered with "ok": true */
	char *error;     /* why not (unreachable, refused, its own error) */
	json_t *reply;   /* the agent's reply (control.h), or NULL */
	long long ms;    /* how long the host took */
};

/* Ask each named host of the fleet (cmd "sync" or "status", app may be
 * NULL) and wait for all. Always fills *out with one entry per host, in
 * the order given; returns 0 even when hosts failed (see ->ok). */
int ud_notify_hosts(struct ud_host_reply **out, const struct ud_fleet *f,
		    const struct ud_strvec *hosts, const char *cmd,
		    const char *app, int timeout_ms);
/* The same with SSH options for hosts reached over SSH (NULL:
 * ud_ssh_opts_from_env). Such a host runs
 * "deploy-agent <cmd> --json [app]" (accepted by the forced command
 * `deploy-agent ssh-command`) and its JSON answer is the reply. */
struct ud_ssh_opts;
int ud_notify_hosts_ex(struct ud_host_reply **out, const struct ud_fleet *f,
		       const struct ud_strvec *hosts, const char *cmd,
		       const char *app, int timeout_ms,
		       const struct ud_ssh_opts *ssh);
void ud_host_replies_free(struct ud_host_reply *r, size_t n);

#endif
