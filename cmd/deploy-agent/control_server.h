/* control_server.h: the agent's control socket (lib/control.h's protocol). */
#ifndef UD_AGENT_CONTROL_SERVER_H
#define UD_AGENT_CONTROL_SERVER_H

#include "agent.h"

struct ud_evloop;
struct control;

/* Listen on agent.json's control socket and serve it on `loop` (UD_ERROR
 * naming the path if it cannot be bound). Stop from the loop's thread or
 * once the loop no longer runs: close the socket, remove it, tell the
 * connections still waiting that the agent stops. NULL is fine. */
int control_start(struct agent *a, struct ud_evloop *loop,
		  struct control **out);
void control_stop(struct control *c);

#endif
