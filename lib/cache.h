/*
 * cache.h: the per-user cache directory. Build caches (build.c:
 * <root>/<app>) and remote repository mirrors (repo_remote.c:
 * <root>/repos) live under it.
 */
#ifndef UD_CACHE_H
#define UD_CACHE_H

/* The per-user cache that build caches and remote repository mirrors
 * share: $DEPLOY_CACHE_ROOT, else $XDG_CACHE_HOME/unideploy, else
 * $HOME/.cache/unideploy. NULL when none is set (caller frees). */
char *ud_cache_root(void);

#endif
