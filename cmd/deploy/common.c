/* What the deploy subcommands share: options, errors, the repository. */
#include <git2.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "cli.h"
#include "errors.h"
#include "notify.h"
#include "release.h"

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

int cli_no_options(int argc, char **argv, const char *usage,
		   struct cli_common *c)
{
	static const struct option longopts[] = { CLI_COMMON_OPTIONS, { 0 } };
	int opt;

	while ((opt = cli_getopt(argc, argv, "", longopts, c)) != -1) {
		if (opt == 'h') {
			printf("usage: %s\n", usage);
			return 0;
		}
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

	if (git_repository_open_ext(&repo, ".", 0, NULL) < 0)
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
	return err;
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static int num(json_t *o, const char *key)
{
	return (int)json_integer_value(json_object_get(o, key));
}

/*
 * How a host's answer bears on release `want` of app. Releases only grow,
 * so a host serving (or wanting) a newer release than ours has been
 * superseded by a racing publish: that is not our failure, and must never
 * trigger a rollback. Only V_FAILED says that our release failed there;
 * a host whose agent answered that its sync failed (it could not fetch
 * the deployment repository, say) was reached, but never tried our
 * release: V_SYNC_FAILED, no more a reason to roll back than no answer
 * at all (V_UNREACHABLE).
 */
enum verdict { V_OK, V_SUPERSEDED, V_FAILED, V_SYNC_FAILED, V_UNREACHABLE };

static enum verdict judge(const struct ud_host_reply *h, json_t *a, int want)
{
	int serving = num(a, "release"), host_wants = num(a, "desired");

	/* notify.c keeps the reply of an agent that answered "ok": false. */
	if (!h->ok)
		return h->reply ? V_SYNC_FAILED : V_UNREACHABLE;
	if (!a)
		return V_UNREACHABLE;
	if (serving == want)
		return V_OK;
	if (serving > want || host_wants > want)
		return V_SUPERSEDED;
	if (!strcmp(str(a, "state"), "failed"))
		return V_FAILED;
	/* Summoned apps run nothing while idle: registered is live. */
	if ((!strcmp(str(a, "state"), "summonable") ||
	     !strcmp(str(a, "state"), "idle")) && host_wants == want)
		return V_OK;
	return V_UNREACHABLE;
}

void (*cli_host_hook)(const char *host, const char *line, int failed);
int cli_signal_retry;

/* One line per host (SPEC §4: release, state, time taken); an SSH
 * failure reads "edge2: unreachable: deploy@10.0.0.3:22: host key for
 * ... has CHANGED (now ssh-ed25519 SHA256:...): refusing to connect", an
 * agent's own failure "edge1: sync failed: fetching ssh://...: ...". */
static void print_host(const struct ud_host_reply *h, json_t *a,
		       const char *app, int want, enum verdict v)
{
	struct ud_buf line = UD_BUF_INIT;
	json_t *rel = json_object_get(a, "release");
	long long inst = json_integer_value(json_object_get(a, "instances"));

	ud_buf_printf(&line, "%s: ", h->host);
	switch (v) {
	case V_OK:
		ud_buf_printf(&line, "%s v%d %s (%lld instance%s) in %lld ms",
			      app, want, str(a, "state"), inst,
			      inst == 1 ? "" : "s", h->ms);
		break;
	case V_SUPERSEDED:
		ud_buf_printf(&line,
			      "%s v%d superseded by v%d (a newer release)",
			      app, want,
			      num(a, "release") > want ? num(a, "release")
						       : num(a, "desired"));
		break;
	case V_FAILED:
		ud_buf_printf(&line, "%s v%d failed: %s", app, want,
			      json_is_string(json_object_get(a, "error"))
				      ? str(a, "error")
				      : "failed");
		if (json_is_integer(rel))
			ud_buf_printf(&line, " (still serving v%lld)",
				      json_integer_value(rel));
		ud_buf_printf(&line, " [%lld ms]", h->ms);
		break;
	case V_SYNC_FAILED:
		ud_buf_printf(&line, "sync failed: %s [%lld ms]", h->error,
			      h->ms);
		break;
	case V_UNREACHABLE:
		if (!h->ok)
			ud_buf_printf(&line, "unreachable: %s [%lld ms]",
				      h->error, h->ms);
		else if (!a)
			ud_buf_printf(&line,
				      "does not run %s (its fleet view may "
				      "be stale)",
				      app);
		else
			ud_buf_printf(&line, "%s v%d not live: %s%s%s", app,
				      want, str(a, "state"),
				      *str(a, "error") ? ": " : "",
				      str(a, "error"));
		break;
	}
	printf("-----> %s\n", line.ptr);
	if (v == V_FAILED || v == V_UNREACHABLE)
		cli_print_log_tail(a);
	if (cli_host_hook)
		cli_host_hook(h->host, line.ptr,
			      v == V_FAILED || v == V_SYNC_FAILED ||
				      v == V_UNREACHABLE);
	ud_buf_free(&line);
}

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

/* "edge1, edge2" for the hosts that failed. */
static char *failed_names(const struct ud_strvec *hosts, const char *failed)
{
	struct ud_buf b = UD_BUF_INIT;

	for (size_t i = 0; i < hosts->n; i++)
		if (failed[i])
			ud_buf_printf(&b, "%s%s", b.size ? ", " : "",
				      hosts->v[i]);
	return ud_buf_detach(&b);
}

int cli_signal_app_ex(struct ud_deployrepo *r, const char *app, int want,
		      int json, const struct ud_ssh_opts *ssh,
		      struct cli_signal_result *res)
{
	struct ud_fleet *f = NULL;
	const struct ud_placement *p;
	struct ud_host_reply *replies = NULL;
	json_t *all = NULL;
	char *failed = NULL, *names;
	int err;

	memset(res, 0, sizeof(*res));
	if ((err = ud_fleet_load(r, NULL, &f)) < 0)
		return err;
	if (!(p = ud_fleet_placement(f, app)) || p->hosts.n == 0) {
		if (!json)
			printf("-----> %s is not placed on any host; nothing "
			       "to signal\n",
			       app);
		else
			printf("{}\n");
		ud_fleet_free(f);
		return 0;
	}
	if (!want && ud_release_current(r, NULL, app, &want) < 0)
		ud_error_clear();
	ud_notify_hosts_ex(&replies, f, &p->hosts,
			   cli_signal_retry ? "sync --retry" : "sync", app,
			   CLI_SYNC_TIMEOUT_MS, ssh);
	if (json)
		all = json_object();
	failed = ud_calloc(p->hosts.n ? p->hosts.n : 1, 1);
	for (size_t i = 0; i < p->hosts.n; i++) {
		const struct ud_host_reply *h = &replies[i];
		json_t *a = h->reply ? json_object_get(
					       json_object_get(h->reply, "apps"),
					       app)
				     : NULL;
		enum verdict v = judge(h, a, want);

		if (v == V_FAILED) {
			res->failed |= CLI_HOST_FAILED;
			if (!res->serving && num(a, "release") > 0)
				res->serving = num(a, "release");
		} else if (v == V_SYNC_FAILED || v == V_UNREACHABLE) {
			/* Our release was not tried there: no rollback
			 * (cli.h has no bit of its own for this). */
			res->failed |= CLI_HOST_UNREACHABLE;
		}
		failed[i] = v == V_FAILED || v == V_SYNC_FAILED ||
			    v == V_UNREACHABLE;
		if (json) {
			json_t *o = a ? json_deep_copy(a) : json_object();

			json_object_set_new(o, "ok", json_boolean(h->ok));
			if (!h->ok)
				json_object_set_new(o, "error",
						    json_string(h->error));
			json_object_set_new(all, h->host, o);
		} else {
			print_host(h, a, app, want, v);
		}
	}
	if (json) {
		char *s = json_dumps(all, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(all);
	}
	err = 0;
	if (res->failed) {
		names = failed_names(&p->hosts, failed);
		err = ud_error_set(UD_EPARTIAL,
				   "some hosts did not take the release: %s",
				   names);
		free(names);
	}
	free(failed);
	ud_host_replies_free(replies, p->hosts.n);
	ud_fleet_free(f);
	return err;
}

int cli_signal_app(struct ud_deployrepo *r, const char *app,
		   const struct cli_common *c)
{
	struct cli_signal_result res;

	return cli_signal_app_ex(r, app, 0, c->json, &c->ssh, &res);
}
