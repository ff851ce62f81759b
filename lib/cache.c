/* cache.c: where the per-user cache is (see cache.h). */
#include "cache.h"

#include <stdlib.h>

#include "buf.h"

char *ud_cache_root(void)
{
	const char *s;

	if ((s = getenv("DEPLOY_CACHE_ROOT")) && *s)
		return ud_strdup(s);
	if ((s = getenv("XDG_CACHE_HOME")) && *s)
		return ud_asprintf("%s/unideploy", s);
	if ((s = getenv("HOME")) && *s)
		return ud_asprintf("%s/.cache/unideploy", s);
	return NULL;
}
