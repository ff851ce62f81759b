/*
 * trust.h: which repositories this process opens, whoever owns them.
 *
 * Git (and libgit2 since 1.4.3) refuses a repository owned by another
 * user unless it is listed in safe.directory: a repository's config can
 * make git run programs. On one host with several users (docs/multiuser.md)
 * the deployment repository belongs to a `git` user and is shared with a
 * group, and the agent and `deploy` run as other users, so libgit2's rule
 * alone refuses exactly the setup the recipe builds (libgit2 1.5 even
 * reports it as "not found"). Every repository unideploy opens goes
 * through ud_git_open, which replaces libgit2's check with this rule:
 *
 *   a repository's top directory (the work tree, or the git directory of
 *   a bare one) is trusted when it is owned by this process's effective
 *   user or by root, or when it belongs to one of this process's groups
 *   and is group-writable (shared with that group: its members can
 *   publish into it anyway), or when git's safe.directory (global or
 *   system config) lists it or is "*".
 *
 * Root is no exception: a root `deploy` or agent opens a repository of the
 * git user only when root is in its group or safe.directory lists it.
 */
#ifndef UD_TRUST_H
#define UD_TRUST_H

#include <git2.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* git_repository_open_ext(out, path, flags, NULL) under the rule above.
 * Returns what libgit2 returns (GIT_ENOTFOUND: no repository there), or
 * GIT_EOWNER with a libgit2 error message naming the owner and the two
 * ways to trust it, so callers report it as they report any open
 * failure (ud_error_set_git). Turns libgit2's own check off for the
 * process the first time it is called. */
int ud_git_open(git_repository **out, const char *path, unsigned int flags);

/* The rule without safe.directory: 1 if a directory with st is trusted
 * by a process of effective user euid in groups[0..ngroups). */
int ud_trust_owner(const struct stat *st, uid_t euid, const gid_t *groups,
		   size_t ngroups);

#endif
