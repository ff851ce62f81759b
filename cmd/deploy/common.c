/* What the deploy subcommands share: options, errors, the repository. */
#include <git2.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "cli.h"
#include "errors.h"
#include "pipeline.h"
#include "repo.h"
#include "sshkey.h"
#include "trust.h"

/* Take the secret `name` out of the environment: a copy on the heap for
 * the rest of the process (NULL if unset or empty), the original zeroed
 * in place. unsetenv alone drops only the pointer, while the string
 * stays in the block /proc/<pid>/environ shows, and the app's build
 * command (same user) could print it into its build log, which is
 * committed to the deployment repository. */
static char *take_secret(const char *name)
{
	char *v = getenv(name), *copy = NULL;

	if (!v)
		return NULL;
	if (*v)
		copy = ud_strdup(v);
	explicit_bzero(v, strlen(v));
	unsetenv(name);
	return copy;
}

/* The key text of $DEPLOY_SSH_KEY, read once per process. */
static const char *ssh_key(void)
{
	static char *key;
	static int taken;
	char *b64;

	if (taken)
		return key;
	taken = 1;
	key = take_secret("DEPLOY_SSH_KEY");
	/* ci/deploy-ci.sh decodes this one into DEPLOY_SSH_KEY; we never
	 * read it, but it is the same secret. */
	b64 = take_secret("DEPLOY_SSH_KEY_B64");
	/* With a key in memory: no core dumps, and /proc/<pid>/mem and
	 * environ closed to other processes of the same user. */
	if (key || b64)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (b64) {
		explicit_bzero(b64, strlen(b64));
		free(b64);
	}
	return key;
}

/* $DEPLOY_SIGNING_KEY, taken once per process like the SSH key. */
static const char *signing_key(void)
{
	static char *key;
	static int taken;

	if (!taken) {
		taken = 1;
		if ((key = take_secret("DEPLOY_SIGNING_KEY")))
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	}
	return key;
}

int cli_getopt(int argc, char **argv, const char *shortopts,
	       const struct option *longopts, struct cli_common *c)
{
	int opt;

	/* Our own "deploy: ..." line, not getopt's. */
	opterr = 0;
	for (;;) {
		opt = getopt_long(argc, argv, shortopts, longopts, NULL);
		switch (opt) {
		case '?':
			fprintf(stderr, "deploy: %s: unknown option or missing "
					"value: %s\n",
				argv[0], argv[optind - 1]);
			return '?';
		case CLI_OPT_DEPLOY_REPO:
			c->deploy_repo = optarg;
			break;
		case CLI_OPT_JSON:
			c->json = 1;
			break;
		case CLI_OPT_IDENTITY:
			c->identity = optarg;
			break;
		case CLI_OPT_KNOWN_HOSTS:
			c->known_hosts = optarg;
			break;
		case CLI_OPT_ACCEPT_NEW:
			c->accept_new_host_keys = 1;
			break;
		case CLI_OPT_HELP:
			return 'h';
		case -1:
			ud_ssh_opts_from_env(&c->ssh);
			c->ssh.key_text = ssh_key();
			c->signing_key = signing_key();
			c->ssh.identity = c->identity;
			if (c->known_hosts)
				c->ssh.known_hosts = c->known_hosts;
			c->ssh.accept_new = c->accept_new_host_keys;
			return -1;
		default:
			return opt;
		}
	}
}

static const struct cli_opt_help common_help[] = {
	{ "--deploy-repo URL",
	  "the deployment repository: a path, file://, ssh:// or https:// "
	  "(default: $DEPLOY_REPO, then git config deploy.repo)" },
	{ "--json", "print JSON where the command has a listing "
		    "(default: text)" },
	{ "--identity FILE",
	  "SSH private key for hosts and ssh:// repositories (default: "
	  "$DEPLOY_SSH_KEY, then ssh-agent, then ~/.ssh/id_ed25519, "
	  "id_ecdsa, id_rsa)" },
	{ "--known-hosts FILE",
	  "known_hosts file to check host keys against (default: "
	  "$DEPLOY_KNOWN_HOSTS when it names a file, else "
	  "~/.ssh/known_hosts; known_hosts lines in $DEPLOY_KNOWN_HOSTS are "
	  "checked too)" },
	{ "--accept-new-host-keys",
	  "trust and record the key of a host not yet known (default: "
	  "refuse it)" },
	{ "--help", "print this help and exit" },
	{ NULL, NULL }
};

/* The help text from column 28, wrapped at words to end by column 79. */
static void print_wrapped(const char *text)
{
	const size_t width = 79 - 28;
	size_t col = 0;

	while (*text) {
		size_t word = strcspn(text, " ");

		if (col && col + 1 + word > width) {
			printf("\n%28s", "");
			col = 0;
		} else if (col) {
			putchar(' ');
			col++;
		}
		fwrite(text, 1, word, stdout);
		col += word;
		text += word;
		text += strspn(text, " ");
	}
	putchar('\n');
}

static void print_opts(const struct cli_opt_help *o)
{
	for (; o && o->flag; o++) {
		if (strlen(o->flag) <= 24)
			printf("  %-24s  ", o->flag);
		else
			printf("  %s\n%28s", o->flag, "");
		print_wrapped(o->help);
	}
}

int cli_help(const char *usage, const struct cli_opt_help *opts)
{
	printf("usage: %s\n", usage);
	if (opts && opts->flag) {
		printf("\noptions:\n");
		print_opts(opts);
	}
	printf("\noptions of every command:\n");
	print_opts(common_help);
	return 0;
}

int cli_no_options(int argc, char **argv, const char *usage,
		   struct cli_common *c)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { 0 } };
	int opt;

	while ((opt = cli_getopt(argc, argv, "", longopts, c)) != -1) {
		if (opt == 'h')
			return cli_help(usage, NULL);
		fprintf(stderr, "usage: %s\n", usage);
		return 2;
	}
	return -1;
}

int cli_fail(int code, const char *what)
{
	fflush(stdout);
	fprintf(stderr, "deploy: %s: %s\n", what, ud_error_last());
	return ud_error_exit_status(code);
}

int cli_failf(int code, const char *fmt, ...)
{
	struct ud_buf what = UD_BUF_INIT;
	va_list ap;
	int status;

	va_start(ap, fmt);
	ud_buf_vprintf(&what, fmt, ap);
	va_end(ap);
	status = cli_fail(code, what.ptr);
	ud_buf_free(&what);
	return status;
}

int cli_usage(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("deploy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return 2;
}

/* git config deploy.repo of the repository we are in (the hook runs in
 * the bare app repository). */
static char *configured_repo(void)
{
	git_repository *repo = NULL;
	git_config *cfg = NULL;
	git_buf value = { 0 };
	char *out = NULL;

	if (ud_git_open(&repo, ".", 0) < 0)
		return NULL;
	if (git_repository_config_snapshot(&cfg, repo) == 0 &&
	    git_config_get_string_buf(&value, cfg, "deploy.repo") == 0)
		out = ud_strdup(value.ptr);
	git_buf_dispose(&value);
	git_config_free(cfg);
	git_repository_free(repo);
	return out;
}

int cli_open_repo(struct ud_deployrepo **out, const struct cli_common *c)
{
	const char *url = c->deploy_repo;
	char *configured = NULL;
	int err;

	if (!url || !*url)
		url = getenv("DEPLOY_REPO");
	if (!url || !*url)
		url = configured = configured_repo();
	if (!url || !*url)
		return ud_error_set(UD_EUSAGE,
				    "no deployment repository: pass "
				    "--deploy-repo, set DEPLOY_REPO or git "
				    "config deploy.repo");
	err = ud_deployrepo_open_ex(out, url, &c->ssh);
	free(configured);
	/* A repository shared with a group: what this command writes there
	 * (objects, their directories, ref lockfiles) must stay writable by
	 * the group, whoever runs it, root included. The umask is the
	 * process's, so files it makes elsewhere (its build cache, in its
	 * own home) get the same group bits, under the user's own group. */
	if (err == 0) {
		mode_t bits = (mode_t)ud_deployrepo_shared_bits(*out), old;

		if (bits) {
			old = umask(0);
			umask(old & ~bits);
		}
	}
	if (err == 0) {
		struct ud_sshkey *key = NULL;
		char *why = NULL;

		if ((err = cli_signer(c, &key, &why)) < 0) {
			ud_deployrepo_free(*out);
			*out = NULL;
		} else if (key) {
			ud_deployrepo_set_signer(*out, key);
		} else if (why) {
			ud_deployrepo_set_unsigned(*out, why);
		}
		free(why);
	}
	return err;
}

int cli_signer(const struct cli_common *c, struct ud_sshkey **key,
	       char **why)
{
	struct ud_buf text = UD_BUF_INIT;
	const char *label;
	int err = 0;

	*key = NULL;
	*why = NULL;
	if (c->signing_key) {
		if ((err = ud_sshkey_parse_private(key, c->signing_key,
						   strlen(c->signing_key),
						   "DEPLOY_SIGNING_KEY")) < 0)
			return err;
		return 0;
	}
	if (c->ssh.identity) {
		label = c->ssh.identity;
		ud_buf_init(&text, 64 * 1024);
		if (ud_buf_read_file(&text, c->ssh.identity) == 0)
			ud_sshkey_parse_private(key, text.ptr, text.size,
						label);
	} else if (c->ssh.key_text) {
		label = "DEPLOY_SSH_KEY";
		ud_sshkey_parse_private(key, c->ssh.key_text,
					strlen(c->ssh.key_text), label);
	} else {
		return 0;
	}
	if (!*key)
		*why = ud_asprintf("%s (set DEPLOY_SIGNING_KEY to an ed25519 "
				   "key to sign)", ud_error_last());
	ud_error_clear();
	if (text.size)
		explicit_bzero(text.ptr, text.size);
	ud_buf_free(&text);
	return err;
}

int cli_signal_retry;

void cli_print_log_tail(const json_t *a)
{
	const json_t *lines = json_object_get(a, "log_tail"), *l;
	size_t i;

	if (!json_array_size(lines))
		return;
	printf("       the instance's console ended with:\n");
	json_array_foreach(lines, i, l)
		if (json_is_string(l))
			printf("       | %s\n", json_string_value(l));
}

/* --json: each host's entry for the app, with "ok" (and "error"). */
static void json_host(void *payload, const struct ud_host_reply *h,
		      const struct ud_verdict *v, const char *line)
{
	json_t *o = v->entry ? json_deep_copy(v->entry) : json_object();

	(void)line;
	json_object_set_new(o, "ok", json_boolean(h->ok));
	if (!h->ok)
		json_object_set_new(o, "error", json_string(h->error));
	json_object_set_new(payload, h->host, o);
}

int cli_signal_app(struct ud_deployrepo *r, const char *app,
		   const struct cli_common *c)
{
	struct ud_pipeline_events ev = { 0 };
	struct ud_signal_result res;
	json_t *all = NULL;
	char *s;
	int err;

	if (c->json) {
		ev.payload = all = json_object();
		ev.host = json_host;
	} else {
		cli_pipeline_events(&ev, NULL);
	}
	err = ud_pipeline_signal(r, app, 0, cli_signal_retry, &c->ssh,
				 CLI_SYNC_TIMEOUT_MS, &ev, &res);
	if (all && (err == 0 || err == UD_EPARTIAL)) {
		s = json_dumps(all, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
	}
	json_decref(all);
	return err;
}
