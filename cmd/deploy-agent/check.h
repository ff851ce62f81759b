/* check.h: `deploy-agent check` (check.c). */
#ifndef UD_AGENT_CHECK_H
#define UD_AGENT_CHECK_H

#include "agentconf.h"

/* Check what `run` needs, one line each on stdout; 0 when all are ok,
 * 1 when one failed. config: the file's path, for the report. */
int agent_check(const struct ud_agentconf *conf, const char *config);

#endif
