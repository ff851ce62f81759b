/*
 * control.h: the agent's control protocol, spoken over its unix socket
 * (and, for SSH hosts, through `deploy-agent ssh-command`).
 *
 * One JSON object per line each way. Requests:
 *   {"cmd": "sync"}  or  {"cmd": "status"}     optional "app": "<name>"
 *   a sync may add "retry": true: boot again the release that failed here
 *   (of "app", or of every app without one); other syncs leave it alone.
 * A sync is answered when it is done. Replies:
 *   {"ok": true, "host": "edge1", "apps": {"<app>": {
 *       "desired": n|null,   release current in the deployment repository
 *       "release": n|null,   release serving here
 *       "state": "running"|"summonable"|"idle"|"failed"|"starting"|
 *                "exited" (run.restart left its instances stopped),
 *       "instances": k,
 *       "error": "why the desired release is not serving" | null,
 *       "log_tail": [last lines of the failed instance's console],
 *       "ms": time the sync of this app took }}}
 *   {"ok": false, "error": "..."}
 */
#ifndef UD_CONTROL_H
#define UD_CONTROL_H

#include <jansson.h>

/* Send one request to the agent at addr ("unix:PATH") and wait up to
 * timeout_ms for its reply. cmd is the agent CLI's verb, "sync --retry"
 * included (sent as "retry": true). app may be NULL. UD_ETIMEOUT,
 * UD_ERROR (cannot connect: the message names the socket), UD_EINVALID
 * (bad reply). A reply
 * with "ok": false is returned as is (0). */
int ud_control_call(json_t **reply, const char *addr, const char *cmd,
		    const char *app, int timeout_ms);

/* Longest line either side accepts. */
#define UD_CONTROL_MAX (1024 * 1024)

#endif
