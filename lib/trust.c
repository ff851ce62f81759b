/*
 * trust.c: the ownership rule for opening repositories (trust.h).
 */
#include "trust.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Process-wide in libgit2, so set once and never toggled: every open in
 * unideploy checks ownership itself (ud_git_open). That includes the
 * open libgit2's local transport does when fetching from a path, which
 * no wrapper can reach: the fetching code opened that path with
 * ud_git_open first. */
static void owner_validation_off(void)
{
	git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
}

int ud_trust_owner(const struct stat *st, uid_t euid, const gid_t *groups,
		   size_t ngroups)
{
	size_t i;

	if (st->st_uid == euid || st->st_uid == 0)
		return 1;
	if (!(st->st_mode & S_IWGRP))
		return 0;
	for (i = 0; i < ngroups; i++)
		if (groups[i] == st->st_gid)
			return 1;
	return 0;
}

struct safe {
	const char *path; /* without its trailing slash */
	int ok;
};

/* git's reading: each value adds a path or "*", an empty value empties
 * the list; paths compare as strings, trailing slashes aside. */
static int safe_entry(const git_config_entry *e, void *arg)
{
	struct safe *s = arg;
	size_t n = strlen(e->value);

	while (n > 1 && e->value[n - 1] == '/')
		n--;
	if (!*e->value)
		s->ok = 0;
	else if (!strcmp(e->value, "*") ||
		 (strlen(s->path) == n && !strncmp(s->path, e->value, n)))
		s->ok = 1;
	return 0;
}

static int listed_safe(const char *path)
{
	git_config *cfg = NULL;
	struct safe s = { path, 0 };

	if (git_config_open_default(&cfg) == 0)
		git_config_get_multivar_foreach(cfg, "safe.directory", NULL,
						safe_entry, &s);
	git_config_free(cfg);
	git_error_clear();
	return s.ok;
}

static int process_trusts(const char *path, const struct stat *st)
{
	gid_t groups[256];
	int n = getgroups(256, groups);

	if (n < 0)
		n = 0;
	if (n < 256)
		groups[n++] = getegid();
	return ud_trust_owner(st, geteuid(), groups, (size_t)n) ||
	       listed_safe(path);
}

static char *name_of_user(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);

	return pw ? ud_strdup(pw->pw_name) : ud_asprintf("%lu",
							   (unsigned long)uid);
}

static char *name_of_group(gid_t gid)
{
	struct group *gr = getgrgid(gid);

	return gr ? ud_strdup(gr->gr_name) : ud_asprintf("%lu",
							   (unsigned long)gid);
}

int ud_git_open(git_repository **out, const char *path, unsigned int flags)
{
	git_repository *repo = NULL;
	const char *top;
	char *dir = NULL, *user = NULL, *group = NULL, *me = NULL, *msg;
	struct stat st;
	size_t n;
	int err;

	*out = NULL;
	pthread_once(&once, owner_validation_off);
	if ((err = git_repository_open_ext(&repo, path, flags, NULL)) < 0)
		return err;
	top = git_repository_is_bare(repo) ? git_repository_path(repo)
					   : git_repository_workdir(repo);
	dir = ud_strdup(top);
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	if (stat(dir, &st) < 0) {
		git_error_set_str(GIT_ERROR_OS, strerror(errno));
		err = -1;
		goto done;
	}
	if (process_trusts(dir, &st)) {
		*out = repo;
		repo = NULL;
		goto done;
	}
	user = name_of_user(st.st_uid);
	group = name_of_group(st.st_gid);
	me = name_of_user(geteuid());
	msg = ud_asprintf("'%s' belongs to user %s and group %s%s, and %s is "
			  "neither in that group nor has it in git's "
			  "safe.directory (docs/multiuser.md)",
			  dir, user, group,
			  st.st_mode & S_IWGRP ? "" : " (not group-writable)",
			  me);
	git_error_set_str(GIT_ERROR_CONFIG, msg);
	free(msg);
	err = GIT_EOWNER;
done:
	git_repository_free(repo);
	free(dir);
	free(user);
	free(group);
	free(me);
	return err;
}
