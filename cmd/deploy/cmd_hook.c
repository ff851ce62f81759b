/*
 * deploy hook install | post-receive: the git side of `git push` ->
 * running release. The hook itself is a few lines of shell that exec
 * `deploy hook post-receive` inside the bare app repository.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli.h"
#include "errors.h"
#include "source.h"

static const char usage[] =
	"deploy hook install APP_REPO [--branch main] [--deploy-repo URL]\n"
	"       deploy hook post-receive   (run by git, reads <old> <new> "
	"<ref> lines)";

static const struct cli_opt_help help[] = {
	{ "--branch B", "install: the branch whose pushes deploy, recorded "
			"as git config deploy.branch (default: main)" },
	{ NULL, NULL }
};

#define HOOK_MARK "unideploy post-receive hook"
#define ZERO_OID "0000000000000000000000000000000000000000"

/* A local deployment repository is recorded by absolute path so that the
 * hook finds it whatever its working directory. */
static char *absolute_url(const char *url)
{
	char *real;

	if (strstr(url, "://"))
		return ud_strdup(url);
	if ((real = realpath(url, NULL)))
		return real;
	return ud_strdup(url);
}

static int install(const char *app_repo, const char *branch,
		   const struct cli_common *c)
{
	git_repository *repo = NULL;
	git_config *cfg = NULL;
	struct ud_deployrepo *dr = NULL;
	struct ud_buf old = UD_BUF_INIT;
	char exe[PATH_MAX], *url = NULL, *hook = NULL, *text = NULL;
	const char *given = c->deploy_repo ? c->deploy_repo
					   : getenv("DEPLOY_REPO");
	ssize_t n;
	int err;

	if (!given || !*given)
		return ud_error_set(UD_EUSAGE,
				    "which deployment repository? pass "
				    "--deploy-repo or set DEPLOY_REPO");
	if (strspn(branch, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789._/-") != strlen(branch) ||
	    strstr(branch, "..") || branch[0] == '-' || branch[0] == '/')
		return ud_error_set(UD_EUSAGE, "invalid branch name '%s'",
				    branch);
	url = absolute_url(given);
	/* Refuse a hook that would point at nothing. */
	if ((err = ud_deployrepo_open_ex(&dr, url, &c->ssh)) < 0)
		goto done;
	if ((err = ud_source_open(&repo, app_repo)) < 0)
		goto done;
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot find this binary");
		goto done;
	}
	exe[n] = '\0';
	if (strchr(exe, '\'')) {
		err = ud_error_set(UD_ERROR, "refusing to write a hook for a "
					     "binary path with a quote: %s",
				   exe);
		goto done;
	}

	hook = ud_asprintf("%shooks/post-receive", git_repository_path(repo));
	if (ud_buf_read_file(&old, hook) == 0 && !strstr(old.ptr, HOOK_MARK)) {
		err = ud_error_set(UD_EEXISTS,
				   "%s exists and is not unideploy's; remove "
				   "it or chain it by hand",
				   hook);
		goto done;
	}
	ud_error_clear();
	text = ud_asprintf("#!/bin/sh\n"
			   "# " HOOK_MARK ": hand the pushed refs to the "
			   "pipeline.\n"
			   "# Settings: git config deploy.repo and "
			   "deploy.branch of this repository.\n"
			   "exec '%s' hook post-receive\n",
			   exe);
	{
		char *dir = ud_asprintf("%shooks", git_repository_path(repo));
		err = ud_mkdir_p(dir, 0755);
		free(dir);
		if (err < 0)
			goto done;
	}
	if ((err = ud_write_file_atomic(hook, text, strlen(text), 0755)) < 0)
		goto done;

	if (git_repository_config(&cfg, repo) < 0 ||
	    git_config_set_string(cfg, "deploy.repo", url) < 0 ||
	    git_config_set_string(cfg, "deploy.branch", branch) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot write git config of %s",
				       app_repo);
		goto done;
	}
	printf("installed %s\n  deploy.repo   = %s\n  deploy.branch = %s\n",
	       hook, url, branch);
done:
	git_config_free(cfg);
	git_repository_free(repo);
	ud_deployrepo_free(dr);
	ud_buf_free(&old);
	free(url);
	free(hook);
	free(text);
	return err;
}

static char *config_string(git_repository *repo, const char *key,
			   const char *def)
{
	git_config *cfg = NULL;
	git_buf v = { 0 };
	char *out;

	if (git_repository_config_snapshot(&cfg, repo) == 0 &&
	    git_config_get_string_buf(&v, cfg, key) == 0)
		out = ud_strdup(v.ptr);
	else
		out = ud_strdup(def);
	git_error_clear();
	git_buf_dispose(&v);
	git_config_free(cfg);
	return out;
}

/*
 * One deploy at a time per app repository: a second push while a build
 * runs is refused (it would race the first for the same app) and says so,
 * rather than queueing invisibly.
 */
static int take_lock(git_repository *repo, int *fd)
{
	char *path = ud_asprintf("%sunideploy.lock", git_repository_path(repo));
	int err = 0;

	if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot open %s", path);
	} else if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
		err = ud_error_set(UD_EBUSY,
				   "another deploy of this repository is in "
				   "progress; this push was not deployed (push "
				   "again or run 'deploy publish' when it is "
				   "done)");
		close(*fd);
		*fd = -1;
	}
	free(path);
	return err;
}

static int post_receive(const struct cli_common *c)
{
	git_repository *repo = NULL;
	char line[1024], *branch = NULL, *want = NULL;
	int err, fd = -1, status = 0, s;

	if ((err = ud_source_open(&repo, ".")) < 0)
		return cli_fail(err, "hook");
	branch = config_string(repo, "deploy.branch", "main");
	want = ud_asprintf("refs/heads/%s", branch);
	if ((err = take_lock(repo, &fd)) < 0) {
		status = cli_fail(err, "hook");
		goto done;
	}
	while (fgets(line, sizeof(line), stdin)) {
		char old[64], new[64], ref[900];
		struct cli_pipeline p = { 0 };

		if (sscanf(line, "%63s %63s %899s", old, new, ref) != 3)
			continue;
		if (strcmp(ref, want)) {
			printf("-----> %s: not deployed (deploys follow %s)\n",
			       ref, want);
			continue;
		}
		if (!strcmp(new, ZERO_OID)) {
			printf("-----> %s deleted: nothing to deploy\n", ref);
			continue;
		}
		p.source = git_repository_path(repo);
		p.rev = new;
		p.ref = ref;
		p.c = c;
		if ((s = cli_pipeline_run(&p)) != 0)
			status = s;
	}
done:
	if (fd >= 0)
		close(fd);
	free(branch);
	free(want);
	git_repository_free(repo);
	return status;
}

int cmd_hook(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "branch", required_argument, NULL, 'b' },
		{ 0 },
	};
	struct cli_common c = { 0 };
	const char *branch = "main";
	int opt, err;

	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'b': branch = optarg; break;
		case 'h': return cli_help(usage, help);
		default: return cli_usage(usage, "bad option");
		}
	}
	if (optind >= argc)
		return cli_usage(usage, "hook: install or post-receive?");
	if (!strcmp(argv[optind], "install")) {
		if (argc - optind != 2)
			return cli_usage(usage, "hook install takes APP_REPO");
		if ((err = install(argv[optind + 1], branch, &c)) < 0)
			return cli_fail(err, "hook install");
		return 0;
	}
	if (!strcmp(argv[optind], "post-receive")) {
		if (argc - optind != 1)
			return cli_usage(usage, "hook post-receive takes no "
						"arguments");
		return post_receive(&c);
	}
	return cli_usage(usage, "unknown hook command '%s'", argv[optind]);
}
