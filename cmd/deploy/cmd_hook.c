/*
 * deploy hook install | pre-receive | post-receive: the git side of
 * `git push` -> running release. The hook itself is a few lines of shell
 * that exec `deploy hook <name>` inside the bare app repository.
 *
 * pre-receive (the default) deploys before git moves the branch, so a
 * deploy that fails rejects the push and the branch stays where it was;
 * post-receive deploys after the branch moved, and a failure only shows
 * in the push's output.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "errors.h"
#include "log.h"
#include "source.h"

static const char usage[] =
	"deploy hook install APP_REPO [--branch main] [--deploy-repo URL] "
	"[--pre-receive | --post-receive]\n"
	"       deploy hook pre-receive    (run by git, reads <old> <new> "
	"<ref> lines)\n"
	"       deploy hook post-receive   (run by git, reads <old> <new> "
	"<ref> lines)";

static const struct cli_opt_help help[] = {
	{ "--branch B", "install: the branch whose pushes deploy, recorded "
			"as git config deploy.branch (default: main)" },
	{ "--pre-receive", "install: deploy before the branch moves, so a "
			   "failed deploy rejects the push (the default)" },
	{ "--post-receive", "install: deploy after the branch moved (a "
			    "failed deploy does not reject the push; "
			    "default: off)" },
	{ NULL, NULL }
};

#define ZERO_OID "0000000000000000000000000000000000000000"

enum hook_mode { HOOK_PRE_RECEIVE, HOOK_POST_RECEIVE };
static const char *const hook_names[] = { "pre-receive", "post-receive" };

/* Is the file at `path` a hook we wrote (in either mode)? 1 yes, 0 no,
 * -1 there is no such file. */
static int ours(const char *path)
{
	struct ud_buf text = UD_BUF_INIT;
	int r = -1;

	if (ud_buf_read_file(&text, path) == 0)
		r = strstr(text.ptr, "unideploy pre-receive hook") ||
		    strstr(text.ptr, "unideploy post-receive hook");
	ud_error_clear();
	ud_buf_free(&text);
	return r;
}

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
		   enum hook_mode mode, const struct cli_common *c)
{
	git_repository *repo = NULL;
	git_config *cfg = NULL;
	struct ud_deployrepo *dr = NULL;
	char exe[PATH_MAX], *url = NULL, *hook = NULL, *other = NULL;
	char *text = NULL;
	const char *given = c->deploy_repo ? c->deploy_repo
					   : getenv("DEPLOY_REPO");
	const char *name = hook_names[mode];
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

	hook = ud_asprintf("%shooks/%s", git_repository_path(repo), name);
	other = ud_asprintf("%shooks/%s", git_repository_path(repo),
			    hook_names[!mode]);
	/* Both are checked before anything is written: a foreign hook in
	 * either place means a person has to decide. */
	if (ours(hook) == 0 || ours(other) == 0) {
		err = ud_error_set(UD_EEXISTS,
				   "%s exists and is not unideploy's; remove "
				   "it or chain it by hand",
				   ours(hook) == 0 ? hook : other);
		goto done;
	}
	text = ud_asprintf("#!/bin/sh\n"
			   "# unideploy %s hook: hand the pushed refs to the "
			   "pipeline.\n"
			   "# Settings: git config deploy.repo and "
			   "deploy.branch of this repository.\n"
			   "exec '%s' hook %s\n",
			   name, exe, name);
	{
		char *dir = ud_asprintf("%shooks", git_repository_path(repo));
		err = ud_mkdir_p(dir, 0755);
		free(dir);
		if (err < 0)
			goto done;
	}
	if ((err = ud_write_file_atomic(hook, text, strlen(text), 0755)) < 0)
		goto done;
	/* Switching modes: one push must not deploy twice. */
	if (ours(other) == 1 && unlink(other) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot remove %s", other);
		goto done;
	}

	if (git_repository_config(&cfg, repo) < 0 ||
	    git_config_set_string(cfg, "deploy.repo", url) < 0 ||
	    git_config_set_string(cfg, "deploy.branch", branch) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot write git config of %s",
				       app_repo);
		goto done;
	}
	printf("installed %s\n  deploy.repo   = %s\n  deploy.branch = %s\n",
	       hook, url, branch);
	if (mode == HOOK_PRE_RECEIVE)
		printf("  a push to %s is accepted only once its release is "
		       "live\n", branch);
done:
	git_config_free(cfg);
	git_repository_free(repo);
	ud_deployrepo_free(dr);
	free(url);
	free(hook);
	free(other);
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
static int take_lock(git_repository *repo, enum hook_mode mode, int *fd)
{
	char *path = ud_asprintf("%sunideploy.lock", git_repository_path(repo));
	int err = 0;

	if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot open %s", path);
	} else if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
		err = ud_error_set(UD_EBUSY,
				   mode == HOOK_PRE_RECEIVE
					   ? "another deploy of this "
					     "repository is in progress; this "
					     "push was rejected and nothing "
					     "moved (push again when it is "
					     "done)"
					   : "another deploy of this "
					     "repository is in progress; this "
					     "push was not deployed (push "
					     "again or run 'deploy publish' "
					     "when it is done)");
		close(*fd);
		*fd = -1;
	}
	free(path);
	return err;
}

/*
 * pre-receive: the branch must still be where this push found it. Git
 * checks that again when it moves the ref, but only after we deployed: a
 * push that raced another one past its hook would leave live a release
 * its branch does not hold. Checked under the lock, which the last
 * accepted push keeps until its branch has moved (hold_until_landed).
 */
static int check_unmoved(git_repository *repo, const char *ref,
			 const char *old)
{
	git_oid now;
	int e = git_reference_name_to_id(&now, repo, ref);
	char have[GIT_OID_HEXSZ + 1];

	if (e == GIT_ENOTFOUND)
		strcpy(have, ZERO_OID);
	else if (e < 0)
		return ud_error_set_git(UD_ERROR, "cannot read %s", ref);
	else
		git_oid_tostr(have, sizeof(have), &now);
	git_error_clear();
	if (strcmp(have, old))
		return ud_error_set(UD_ECONFLICT,
				    "%s moved to %.7s while this push was on "
				    "its way (another push landed first); "
				    "fetch, merge and push again",
				    ref, have);
	return 0;
}

/* Has `ref` reached `want`? */
static int ref_is(git_repository *repo, const char *ref, const char *want)
{
	git_oid id, w;
	int r;

	if (git_oid_fromstr(&w, want) < 0)
		return 1;
	r = git_reference_name_to_id(&id, repo, ref) == 0 &&
	    git_oid_equal(&id, &w);
	git_error_clear();
	return r;
}

/* The longest a landing is waited for: git moves the ref right after
 * the hook exits; this only bounds a receive-pack that hangs. */
#define LANDING_MAX_MS (120 * 1000)

/*
 * After an accepted pre-receive, git moves the branch once this process
 * has exited. Until it has, the lock must stay taken, or a racing push
 * could pass check_unmoved and deploy over a release whose branch update
 * is still on its way. A child inherits the lock and keeps it until the
 * ref reached `want`, or git's receive-pack (our parent) is gone (it
 * rejected the update after all), or LANDING_MAX_MS. Its stdio goes to
 * /dev/null: git reads the hook's output until EOF.
 */
static void hold_until_landed(git_repository *repo, const char *ref,
			      const char *want, int lockfd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, getppid(), 0);
	int devnull;
	long long deadline;
	pid_t pid;

	if (pidfd < 0)
		return; /* an old kernel: the window stays as it was */
	fflush(NULL);
	if ((pid = fork()) != 0) {
		close(pidfd);
		return; /* -1: no child, the lock goes with us */
	}
	/* the child: the lock's fd was opened O_CLOEXEC, and no exec comes */
	(void)lockfd;
	if ((devnull = open("/dev/null", O_RDWR)) >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (devnull > 2)
			close(devnull);
	}
	setsid();
	deadline = ud_now_ms() + LANDING_MAX_MS;
	while (!ref_is(repo, ref, want) && ud_now_ms() < deadline) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };

		if (poll(&p, 1, 20) > 0)
			break; /* receive-pack exited */
	}
	_exit(0);
}

static int run_hook(enum hook_mode mode, const struct cli_common *c)
{
	git_repository *repo = NULL;
	struct ud_buf reason = UD_BUF_INIT;
	char line[1024], *branch = NULL, *want = NULL, landed[64] = "";
	int err, fd = -1, status = 0, s;

	if ((err = ud_source_open(&repo, ".")) < 0) {
		status = cli_fail(err, "hook");
		ud_buf_printf(&reason, "hook: %s", ud_error_last());
		goto done;
	}
	branch = config_string(repo, "deploy.branch", "main");
	want = ud_asprintf("refs/heads/%s", branch);
	if ((err = take_lock(repo, mode, &fd)) < 0) {
		status = cli_fail(err, "hook");
		ud_buf_puts(&reason, ud_error_last());
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
		if (mode == HOOK_PRE_RECEIVE &&
		    (err = check_unmoved(repo, ref, old)) < 0) {
			status = cli_fail(err, "hook");
			ud_buf_puts(&reason, ud_error_last());
			break;
		}
		p.source = git_repository_path(repo);
		p.rev = new;
		p.ref = ref;
		p.c = c;
		p.failure = &reason;
		if ((s = cli_pipeline_run(&p)) != 0) {
			status = s;
			if (mode == HOOK_PRE_RECEIVE)
				break; /* the whole push is rejected */
		} else {
			snprintf(landed, sizeof(landed), "%s", new);
		}
	}
	if (mode == HOOK_PRE_RECEIVE && status == 0 && landed[0])
		hold_until_landed(repo, want, landed, fd);
done:
	if (status) {
		/* The pusher's last remote: line, whatever came before it. */
		fflush(stdout);
		fflush(stderr);
		if (!reason.size)
			ud_buf_puts(&reason, "the deploy failed (see above)");
		for (size_t i = 0; i < reason.size; i++)
			if (reason.ptr[i] == '\n' || reason.ptr[i] == '\r')
				reason.ptr[i] = ' ';
		fprintf(stderr, "-----> FAILED: %s%s\n", reason.ptr,
			mode == HOOK_PRE_RECEIVE ? "; push rejected" : "");
		fflush(stderr);
	}
	if (fd >= 0)
		close(fd);
	free(branch);
	free(want);
	ud_buf_free(&reason);
	git_repository_free(repo);
	return status;
}

int cmd_hook(int argc, char **argv)
{
	enum { OPT_POST_RECEIVE = 1, OPT_PRE_RECEIVE };
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "branch", required_argument, NULL, 'b' },
		{ "post-receive", no_argument, NULL, OPT_POST_RECEIVE },
		{ "pre-receive", no_argument, NULL, OPT_PRE_RECEIVE },
		{ 0 },
	};
	struct cli_common c = { 0 };
	const char *branch = "main";
	enum hook_mode mode = HOOK_PRE_RECEIVE;
	int opt, err;

	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 'b': branch = optarg; break;
		case OPT_POST_RECEIVE: mode = HOOK_POST_RECEIVE; break;
		case OPT_PRE_RECEIVE: mode = HOOK_PRE_RECEIVE; break;
		case 'h': return cli_help(usage, help);
		default: return cli_usage(usage, "bad option");
		}
	}
	if (optind >= argc)
		return cli_usage(usage, "hook: install, pre-receive or "
					"post-receive?");
	if (!strcmp(argv[optind], "install")) {
		if (argc - optind != 2)
			return cli_usage(usage, "hook install takes APP_REPO");
		if ((err = install(argv[optind + 1], branch, mode, &c)) < 0)
			return cli_fail(err, "hook install");
		return 0;
	}
	for (int m = HOOK_PRE_RECEIVE; m <= HOOK_POST_RECEIVE; m++) {
		if (strcmp(argv[optind], hook_names[m]))
			continue;
		if (argc - optind != 1)
			return cli_usage(usage, "hook %s takes no arguments",
					 hook_names[m]);
		return run_hook(m, &c);
	}
	return cli_usage(usage, "unknown hook command '%s'", argv[optind]);
}
