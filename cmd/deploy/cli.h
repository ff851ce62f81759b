/*
 * cli.h: what the `deploy` subcommands share. Each cmd_<verb>.c implements
 * one entry of the command table in main.c and returns an exit status
 * (SPEC §1: 0 ok, 1 failure, 2 usage, 3 partial).
 */
#ifndef UD_CLI_H
#define UD_CLI_H

#include <getopt.h>
#include <jansson.h>

#include "repo.h"
#include "ssh.h"

/* Options every command accepts; parsed by cli_getopt(). */
struct cli_common {
	const char *deploy_repo; /* --deploy-repo */
	int json;                /* --json */
	const char *identity;    /* --identity (SSH) */
	const char *known_hosts; /* --known-hosts */
	int accept_new_host_keys;
	/* The SSH settings above with the environment's (SPEC §4, §6),
	 * filled by cli_getopt at the end of the options. */
	struct ud_ssh_opts ssh;
	/* $DEPLOY_SIGNING_KEY's text (taken out of the environment), or
	 * NULL: commits are then signed with the SSH identity above. */
	const char *signing_key;
};

/* Long options for the common flags, to be spliced into a command's own
 * table: CLI_COMMON_OPTIONS, then the command's, then {0}. Their `val`s
 * are >= 1000 so they never clash with a command's short options. */
#define CLI_OPT_DEPLOY_REPO 1000
#define CLI_OPT_JSON 1001
#define CLI_OPT_IDENTITY 1002
#define CLI_OPT_KNOWN_HOSTS 1003
#define CLI_OPT_ACCEPT_NEW 1004
#define CLI_OPT_HELP 1005
#define CLI_COMMON_OPTIONS                                                     \
	{ "deploy-repo", required_argument, NULL, CLI_OPT_DEPLOY_REPO },       \
	{ "json", no_argument, NULL, CLI_OPT_JSON },                           \
	{ "identity", required_argument, NULL, CLI_OPT_IDENTITY },             \
	{ "known-hosts", required_argument, NULL, CLI_OPT_KNOWN_HOSTS },       \
	{ "accept-new-host-keys", no_argument, NULL, CLI_OPT_ACCEPT_NEW },     \
	{ "help", no_argument, NULL, CLI_OPT_HELP }

/*
 * getopt_long wrapper: returns the next option of the command's own, after
 * consuming common ones into *c. Returns -1 at the end of options, 'h' for
 * --help, '?' for an unknown option (message already printed).
 */
int cli_getopt(int argc, char **argv, const char *shortopts,
	       const struct option *longopts, struct cli_common *c);

/* One line of a command's --help: the option as typed ("--hosts H1,H2")
 * and what it does, ending with its default ("(default: ...)"). A table
 * ends with { NULL }. tests/integration/commands.bats checks that every
 * option a command's parser accepts is named in its --help. */
struct cli_opt_help {
	const char *flag;
	const char *help;
};
/* Print the usage line, the command's own options (`opts` may be NULL)
 * and the options every command takes, to stdout; returns 0 (the exit
 * status of --help). */
int cli_help(const char *usage, const struct cli_opt_help *opts);

/* Option parsing for a command with only the common options: returns -1
 * to go on (arguments from optind), or the exit status to return at once
 * (0 after --help, 2 after a bad option). */
int cli_no_options(int argc, char **argv, const char *usage,
		   struct cli_common *c);

/* Print "deploy: <what>: <ud_error_last()>" and return the exit status for
 * `code` (ud_error_exit_status). */
int cli_fail(int code, const char *what);
/* The same with a printf-formatted <what>. */
int cli_failf(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print "deploy: <message>" and the usage line, return 2. */
int cli_usage(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Open the deployment repository: --deploy-repo, else $DEPLOY_REPO, else
 * git config deploy.repo of the current repository. UD_EUSAGE (message
 * set) when none is given. */
int cli_open_repo(struct ud_deployrepo **out, const struct cli_common *c);
/* The key the pipeline signs its commits with (SPEC §4 "Signing"):
 * $DEPLOY_SIGNING_KEY, else --identity, else $DEPLOY_SSH_KEY. *key is NULL
 * when there is none, or (with *why saying so) when the SSH identity
 * cannot sign; a $DEPLOY_SIGNING_KEY that cannot is an error. */
struct ud_sshkey;
int cli_signer(const struct cli_common *c, struct ud_sshkey **key,
	       char **why);

/* Time budget for a host to finish a sync (boot + health), in ms. */
#define CLI_SYNC_TIMEOUT_MS (10 * 60 * 1000)

/* The command table (main.c). */
int cmd_init(int argc, char **argv);
int cmd_host(int argc, char **argv);     /* host add | list | remove */
int cmd_place(int argc, char **argv);
int cmd_remove(int argc, char **argv);   /* unplace an app everywhere */
int cmd_hook(int argc, char **argv);     /* hook install | pre-receive | post-receive */
int cmd_build(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_ci(int argc, char **argv);
int cmd_releases(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_signal(int argc, char **argv);

/* Shared by publish, rollback and signal: signal the hosts of `app`, print
 * one line per host, return 0, or UD_EPARTIAL when some failed (named). */
struct ud_fleet;
int cli_signal_app(struct ud_deployrepo *r, const char *app,
		   const struct cli_common *c);
/* The "log_tail" lines of an agent's app reply (the end of the failed
 * instance's console), indented under the host's line; nothing without. */
void cli_print_log_tail(const json_t *app_reply);
/* Set by `deploy signal --retry`: the hosts' syncs boot again a release
 * that failed there (cli_signal_app and a signal of every host). */
extern int cli_signal_retry;
/* The publish pipeline shared by `publish`, `hook post-receive` and `ci`:
 * build `rev` of the source repository, publish it, signal its hosts,
 * roll back on a failed health check. Returns an exit status. */
struct cli_pipeline {
	const char *source;      /* app repository path */
	const char *rev;         /* commit to build */
	const char *ref;         /* DEPLOY_REF, e.g. refs/heads/main */
	int no_signal;
	const struct cli_common *c;
	/* CI conventions (GitHub groups, Travis folds); NULL: plain */
	void (*stage_begin)(const char *name);
	void (*stage_end)(const char *name);
	void (*annotate_error)(const char *message);
	/* Each host's line as printed (without the "-----> " arrow), and
	 * whether that host failed: `deploy ci`'s summary and annotations. */
	void (*on_host)(const char *host, const char *line, int failed);
	/* Filled for CI summaries (may be NULL). */
	struct ud_buf *summary;
	/* ... and a Markdown table of the released images (may be NULL). */
	struct ud_buf *summary_images;
	/* Filled with why the run failed, one line for the pusher's
	 * "FAILED:" (may be NULL). */
	struct ud_buf *failure;
};
int cli_pipeline_run(const struct cli_pipeline *p);
/* Events that print progress and host lines as the pipeline does;
 * `printer` is cli_pipeline_run's own (NULL elsewhere). */
struct ud_pipeline_events;
void cli_pipeline_events(struct ud_pipeline_events *ev, void *printer);

#endif
