#include "sandbox.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "run.h"

/* The toolchain's directories: read-only, or the host's own symlinks (a
 * merged-/usr system's /bin -> usr/bin). */
static const char *const system_dirs[] = {
	"/usr", "/etc", "/opt", "/bin", "/sbin",
	"/lib", "/lib32", "/lib64", "/libx32", NULL,
};

void ud_sandbox_free(struct ud_sandbox *sb)
{
	if (!sb)
		return;
	free(sb->user);
	free(sb->bwrap);
	free(sb->setpriv);
	ud_strvec_free(&sb->ro);
	memset(sb, 0, sizeof(*sb));
}

static int off_hint(int err, const char *what)
{
	return ud_error_set(err, "builds run isolated (bubblewrap): %s; or "
				 "set DEPLOY_BUILD_SANDBOX=off to build "
				 "without isolation",
			    what);
}

int ud_sandbox_from_env(struct ud_sandbox *sb)
{
	const char *mode = getenv("DEPLOY_BUILD_SANDBOX");
	const char *user = getenv("DEPLOY_BUILD_USER");
	const char *ro = getenv("DEPLOY_BUILD_RO_PATHS");
	int err = 0;

	memset(sb, 0, sizeof(*sb));
	ud_strvec_init(&sb->ro);
	if (mode && !strcmp(mode, "off")) {
		sb->off = 1;
		return 0;
	}
	if (mode && *mode && strcmp(mode, "bwrap") != 0) {
		err = ud_error_set(UD_EINVALID,
				   "DEPLOY_BUILD_SANDBOX is '%s': expected "
				   "'bwrap' (the default) or 'off'",
				   mode);
		goto done;
	}
	for (const char *p = ro; p && *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *dir = ud_strndup(p, len);

		if (dir[0] != '/' || strstr(dir, "/../") ||
		    (len >= 3 && !strcmp(dir + len - 3, "/..")) ||
		    !strcmp(dir, "/")) {
			err = ud_error_set(UD_EINVALID,
					   "DEPLOY_BUILD_RO_PATHS: '%s' is "
					   "not an absolute path below /",
					   dir);
			free(dir);
			goto done;
		}
		ud_strvec_push(&sb->ro, dir);
		free(dir);
		p = end ? end + 1 : p + len;
	}
	if (geteuid() == 0) {
		struct passwd *pw;

		if (!user || !*user)
			user = "nobody";
		errno = 0;
		if (!(pw = getpwnam(user))) {
			err = ud_error_set(UD_EINVALID,
					   "DEPLOY_BUILD_USER: no user '%s' "
					   "on this host",
					   user);
			goto done;
		}
		if (pw->pw_uid == 0) {
			err = ud_error_set(UD_EINVALID,
					   "DEPLOY_BUILD_USER: '%s' is root; "
					   "builds run unprivileged",
					   user);
			goto done;
		}
		sb->drop = 1;
		sb->uid = pw->pw_uid;
		sb->gid = pw->pw_gid;
		sb->user = ud_strdup(user);
		if (!(sb->setpriv = ud_which("setpriv"))) {
			err = off_hint(UD_ENOTFOUND,
				       "setpriv (util-linux) is not in PATH");
			goto done;
		}
	}
	if (!(sb->bwrap = ud_which("bwrap")))
		err = off_hint(UD_ENOTFOUND,
			       "bwrap is not in PATH (apt-get install "
			       "bubblewrap)");
done:
	if (err < 0)
		ud_sandbox_free(sb);
	return err;
}

int ud_sandbox_probe(const struct ud_sandbox *sb)
{
	struct ud_strvec argv = UD_STRVEC_INIT;
	struct ud_buf out = UD_BUF_INIT;
	struct ud_run_opts ro = { 0 };
	char *const cmd[] = { "/bin/true", NULL };
	int status = 0, err;

	if (sb->off)
		return 0;
	ud_buf_init(&out, 4096);
	ud_sandbox_argv(sb, &argv, NULL, "/", cmd);
	ro.capture = &out;
	ro.timeout_ms = 30000;
	if ((err = ud_run(argv.v, &ro, &status)) < 0)
		goto done;
	if (status != 0) {
		char *why;

		ud_buf_rtrim(&out);
		why = ud_asprintf("cannot make its namespaces here: %s",
				  out.size ? out.ptr : "bwrap failed");
		err = off_hint(UD_ERROR, why);
		free(why);
	}
done:
	ud_strvec_free(&argv);
	ud_buf_free(&out);
	return err;
}

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
}

int ud_sandbox_chown(const struct ud_sandbox *sb, const char *path,
		     int recursive)
{
	if (sb->off || !sb->drop)
		return 0;
	chown_uid = sb->uid;
	chown_gid = sb->gid;
	if (recursive ? nftw(path, chown_one, 16, FTW_PHYS) != 0
		      : lchown(path, sb->uid, sb->gid) < 0)
		return ud_error_set_errno(UD_ERROR, "cannot hand %s to %s",
					  path, sb->user);
	return 0;
}

static int under_system_dir(const char *path)
{
	for (size_t i = 0; system_dirs[i]; i++) {
		size_t n = strlen(system_dirs[i]);

		if (!strncmp(path, system_dirs[i], n) &&
		    (path[n] == '/' || !path[n]))
			return 1;
	}
	return 0;
}

/* bwrap makes the missing parents of a mount point 0700, root's: the
 * build user could not walk through them to its cache dir. Make each one
 * 0755 first (once). */
static void parents(struct ud_strvec *argv, struct ud_strvec *made,
		    const char *path)
{
	char *p = ud_strdup(path);

	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		size_t i;

		*s = '\0';
		for (i = 0; i < made->n && strcmp(made->v[i], p); i++)
			;
		if (i == made->n && strcmp(p, "/tmp") && !under_system_dir(p)) {
			ud_strvec_push(made, p);
			ud_strvec_push(argv, "--perms");
			ud_strvec_push(argv, "0755");
			ud_strvec_push(argv, "--dir");
			ud_strvec_push(argv, p);
		}
		*s = '/';
	}
	free(p);
}

void ud_sandbox_argv(const struct ud_sandbox *sb, struct ud_strvec *argv,
		     const char *const *rw, const char *dir,
		     char *const *cmd)
{
	struct ud_strvec made = UD_STRVEC_INIT;
	size_t i;

	ud_strvec_push(argv, sb->bwrap);
	/* The build dies with us (a timeout kills our child, bwrap); it
	 * cannot push keystrokes into a terminal it was started from. */
	ud_strvec_push(argv, "--die-with-parent");
	ud_strvec_push(argv, "--new-session");
	ud_strvec_push(argv, "--unshare-pid");
	ud_strvec_push(argv, "--unshare-ipc");
	ud_strvec_push(argv, "--unshare-uts");
	ud_strvec_push(argv, "--unshare-cgroup-try");
	if (!sb->drop && geteuid() != 0)
		ud_strvec_push(argv, "--unshare-user");
	for (i = 0; system_dirs[i]; i++) {
		char target[PATH_MAX];
		struct stat st;
		ssize_t n;

		if (lstat(system_dirs[i], &st) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			n = readlink(system_dirs[i], target,
				     sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			ud_strvec_push(argv, "--symlink");
			ud_strvec_push(argv, target);
		} else if (S_ISDIR(st.st_mode)) {
			ud_strvec_push(argv, "--ro-bind");
			ud_strvec_push(argv, system_dirs[i]);
		} else {
			continue;
		}
		ud_strvec_push(argv, system_dirs[i]);
	}
	ud_strvec_push(argv, "--proc");
	ud_strvec_push(argv, "/proc");
	ud_strvec_push(argv, "--dev");
	ud_strvec_push(argv, "/dev");
	ud_strvec_push(argv, "--perms");
	ud_strvec_push(argv, "01777");
	ud_strvec_push(argv, "--tmpfs");
	ud_strvec_push(argv, "/tmp");
	for (i = 0; i < sb->ro.n; i++)
		parents(argv, &made, sb->ro.v[i]);
	for (i = 0; rw && rw[i]; i++)
		parents(argv, &made, rw[i]);
	for (i = 0; i < sb->ro.n; i++) {
		ud_strvec_push(argv, "--ro-bind-try");
		ud_strvec_push(argv, sb->ro.v[i]);
		ud_strvec_push(argv, sb->ro.v[i]);
	}
	for (i = 0; rw && rw[i]; i++) {
		ud_strvec_push(argv, "--bind");
		ud_strvec_push(argv, rw[i]);
		ud_strvec_push(argv, rw[i]);
	}
	ud_strvec_push(argv, "--chdir");
	ud_strvec_push(argv, dir);
	ud_strvec_push(argv, "--");
	if (sb->drop) {
		/* bwrap runs as root (no user namespace, whose root would be
		 * ours on the host's files); setpriv then leaves root for
		 * good: no capabilities, no setuid way back. */
		ud_strvec_push(argv, sb->setpriv);
		ud_strvec_pushf(argv, "--reuid=%lu", (unsigned long)sb->uid);
		ud_strvec_pushf(argv, "--regid=%lu", (unsigned long)sb->gid);
		ud_strvec_push(argv, "--clear-groups");
		ud_strvec_push(argv, "--inh-caps=-all");
		ud_strvec_push(argv, "--bounding-set=-all");
		ud_strvec_push(argv, "--no-new-privs");
		ud_strvec_push(argv, "--");
	}
	for (i = 0; cmd[i]; i++)
		ud_strvec_push(argv, cmd[i]);
	ud_strvec_free(&made);
}
