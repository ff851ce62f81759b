/*
 * sandbox.h: where a build runs (bubblewrap).
 *
 * A build is the pushed code of whoever can push: it must not read the
 * pipeline's secrets from its ancestors (/proc/<pid>/environ of git push,
 * git-receive-pack, a CI job's shell) nor from files (the pusher's key).
 * So build.command runs under bwrap(1) in PID, mount, IPC and UTS
 * namespaces of its own, a new session, with a fresh /proc that shows only
 * its own processes, and sees only:
 *
 *   /usr /etc /opt and /bin /sbin /lib* (read-only, or the host's
 *   symlinks to /usr), $DEPLOY_BUILD_RO_PATHS (read-only, ':'-separated),
 *   the build's workdir (the export in workdir/src; HOME is workdir/home)
 *   and the app's cache dir (read-write), a private /tmp, a minimal /dev.
 *
 * The network is shared (builds fetch dependencies). When the pipeline
 * runs as root the build runs as $DEPLOY_BUILD_USER (default "nobody"),
 * without capabilities or a way to regain them (no_new_privs); the
 * workdir and cache dir are handed to that user. Otherwise it runs as the
 * pipeline's user in a user namespace of its own.
 *
 * $DEPLOY_BUILD_SANDBOX=off runs builds as before, unisolated, with a
 * warning in the build log; any other value than "" / "bwrap" / "off" is
 * refused. Without it, a host that cannot isolate (no bwrap, no user
 * namespaces) refuses to build: a silent fallback would hand every
 * build the keys the isolation exists to protect.
 */
#ifndef UD_SANDBOX_H
#define UD_SANDBOX_H

#include <sys/types.h>

#include "strvec.h"

struct ud_sandbox {
	int off;               /* DEPLOY_BUILD_SANDBOX=off */
	int drop;              /* 1: switch to uid/gid (we are root) */
	uid_t uid;
	gid_t gid;
	char *user;            /* its name, for messages */
	char *bwrap;           /* path of bwrap; NULL when off */
	char *setpriv;         /* path of setpriv, when dropping */
	struct ud_strvec ro;   /* extra read-only paths */
};

/* From the environment (above). UD_EINVALID for a bad value or an unknown
 * user, UD_ENOTFOUND when bwrap (or setpriv, as root) is not installed;
 * the message says how to fix it or turn isolation off. */
int ud_sandbox_from_env(struct ud_sandbox *sb);
void ud_sandbox_free(struct ud_sandbox *sb); /* accepts NULL */

/* Check that namespaces can be made here (runs bwrap once). UD_ERROR with
 * bwrap's own words otherwise. */
int ud_sandbox_probe(const struct ud_sandbox *sb);

/* Give `path` (with `recursive`, everything under it too) to the build
 * user; root only, a no-op otherwise. Symlinks are not followed. Only
 * for trees the build has not yet touched: a recursive chown over what a
 * build wrote could be walked onto a hard link of its choosing. */
int ud_sandbox_chown(const struct ud_sandbox *sb, const char *path,
		     int recursive);

/* Append to argv the command that runs `cmd` (argv-style,
 * NULL-terminated) in the sandbox, in `dir`, with `rw` (NULL-terminated)
 * writable. */
void ud_sandbox_argv(const struct ud_sandbox *sb, struct ud_strvec *argv,
		     const char *const *rw, const char *dir,
		     char *const *cmd);

#endif
