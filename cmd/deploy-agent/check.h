/* check.h: `deploy-agent check` (check.c). */
#ifndef UD_AGENT_CHECK_H
#define UD_AGENT_CHECK_H

#include "agentconf.h"
#include "run.h"

/* Check what `run` needs, one line each on stdout; 0 when all are ok,
 * 1 when one failed. config: the file's path, for the report. */
int agent_check(const struct ud_agentconf *conf, const char *config);

/* Who instances run as (agent.json "user"): *out (out may be NULL) is
 * NULL for the agent's own user. Root switches to the user for them;
 * another user can only be that user. UD_ENOTFOUND for a user that does
 * not exist. */
int agent_instance_user(const struct ud_agentconf *conf,
			struct ud_cred **out);

#endif
