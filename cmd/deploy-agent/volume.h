/* volume.h: run.block's volumes, state_dir/volumes/<app>/<device>.img. */
#ifndef UD_AGENT_VOLUME_H
#define UD_AGENT_VOLUME_H

#include "agent.h"

char *volume_path(struct agent *a, const char *app, const char *device);
/* Create (sparse, 0600) or grow each volume of m; never deletes one.
 * UD_EINVALID, naming the volume and sizes, when m would shrink one. */
int volume_ensure(struct agent *a, const char *app,
		  const struct ud_manifest *m);

#endif
