/* control_server.h: the agent's control socket (lib/control.h's protocol). */
#ifndef UD_AGENT_CONTROL_SERVER_H
#define UD_AGENT_CONTROL_SERVER_H

#include "agent.h"

/* Listen on agent.json's control socket and answer on a thread of its
 * own (UD_ERROR naming the path if it cannot be bound); stop: close the
 * socket, remove it, join the thread (NULL is fine). */
struct control;
int control_start(struct agent *a, struct control **out);
void control_stop(struct control *c);

#endif
