/*
 * deploy-agent: the host side of unideploy (SPEC §5).
 *
 *   deploy-agent [--config FILE] [-v] run          the daemon
 *   deploy-agent [--config FILE] sync [--json] [--retry] [APP]
 *   deploy-agent [--config FILE] status [--json] [APP]
 *   deploy-agent [--config FILE] check             validate the config
 *   deploy-agent [--config FILE] ssh-command       forced SSH command
 *   deploy-agent [--config FILE] authorize KEYFILE
 *
 * The daemon's parts: reconcile.c (syncs), supervise.c (instances),
 * state.c (what survives a restart), control_server.c (the socket),
 * proxy.c (the listen addresses).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "control_server.h"
#include "dns.h"
#include "network.h"
#include "launch.h"
#include "priv.h"
#include "reconcile.h"
#include "agentconf.h"
#include "check.h"
#include "buf.h"
#include "control.h"
#include "errors.h"
#include "evloop.h"
#include "log.h"
#include "names.h"
#include "version.h"
#include "net.h"
#include "proxy.h"

#define DEFAULT_CONFIG "/etc/unideploy/agent.json"
#define SYNC_TIMEOUT_MS (3600 * 1000)
#define STATUS_TIMEOUT_MS 10000

static const char usage_text[] =
	"usage: deploy-agent [--config FILE] [-v] COMMAND\n"
	"  run                      the daemon (foreground, logs to stderr)\n"
	"  sync [--json] [--retry] [APP]\n"
	"                           ask the daemon to sync now, print the outcome\n"
	"                           (--retry: boot again a release that failed)\n"
	"  status [--json] [APP]    what runs here\n"
	"  check                    try what run needs: the configuration, state_dir,\n"
	"                           the control socket's directory, the user, the\n"
	"                           repository and this host in its fleet.json\n"
	"  ssh-command              forced command: runs $SSH_ORIGINAL_COMMAND\n"
	"                           if it is 'sync' or 'status'\n"
	"  authorize KEYFILE        print the authorized_keys line for a key\n"
	"options: --config FILE (default " DEFAULT_CONFIG "), -v (debug log),\n"
	"         --version, --help\n";

static int die(int err, const char *what)
{
	fprintf(stderr, "deploy-agent: %s: %s\n", what, ud_error_last());
	return ud_error_exit_status(err);
}

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "deploy-agent: %s\n", why);
	fputs(usage_text, stderr);
	return 2;
}

static int load_conf(struct ud_agentconf **out, const char *path)
{
	int err = ud_agentconf_load(out, path);

	if (err < 0)
		return die(err, "configuration");
	return 0;
}

/* Output of sync and status */

/* The summon figures (deploy-agent status only: a sync reply has no
 * "connections"). */
static void print_summon(const json_t *o)
{
	const json_t *cold = json_object_get(o, "cold_start_ms");
	const char *mode = json_string_value(json_object_get(o, "mode"));

	if (!json_object_get(o, "connections"))
		return;
	printf("  %lld open connection%s, %lld waiting",
	       json_integer_value(json_object_get(o, "connections")),
	       json_integer_value(json_object_get(o, "connections")) == 1 ?
		       "" : "s",
	       json_integer_value(json_object_get(o, "waiting")));
	if (!mode || strcmp(mode, "summon")) {
		putchar('\n');
		return;
	}
	printf(", %lld booting, %lld wake%s, %lld boot%s, %lld refused",
	       json_integer_value(json_object_get(o, "booting")),
	       json_integer_value(json_object_get(o, "wakes")),
	       json_integer_value(json_object_get(o, "wakes")) == 1 ? "" : "s",
	       json_integer_value(json_object_get(o, "boots")),
	       json_integer_value(json_object_get(o, "boots")) == 1 ? "" : "s",
	       json_integer_value(json_object_get(o, "refused")));
	if (json_is_object(cold))
		printf(", cold start p50 %.1f ms p99 %.1f ms",
		       json_number_value(json_object_get(cold, "p50")),
		       json_number_value(json_object_get(cold, "p99")));
	putchar('\n');
}

/* The end of the failed instance's console, under the app's line. */
static void print_log_tail(const json_t *o)
{
	const json_t *lines = json_object_get(o, "log_tail"), *l;
	size_t i;

	json_array_foreach(lines, i, l)
		if (json_is_string(l))
			printf("  | %s\n", json_string_value(l));
}

static void print_app(const char *name, const json_t *o)
{
	const char *state = json_string_value(json_object_get(o, "state"));
	const char *error = json_string_value(json_object_get(o, "error"));
	json_t *rel = json_object_get(o, "release");
	json_t *des = json_object_get(o, "desired");
	long long inst = json_integer_value(json_object_get(o, "instances"));
	long long ms = json_integer_value(json_object_get(o, "ms"));
	long long shown = json_is_integer(rel) ? json_integer_value(rel) :
					       json_integer_value(des);

	if (!state)
		state = "unknown";
	if (!strcmp(state, "failed")) {
		if (json_is_integer(des))
			printf("%s: release %lld failed: %s", name,
			       json_integer_value(des),
			       error ? error : "unknown error");
		else
			printf("%s: failed: %s", name,
			       error ? error : "unknown error");
		if (json_is_integer(rel) &&
		    (!json_is_integer(des) ||
		     json_integer_value(rel) != json_integer_value(des)))
			printf(" (still serving release %lld)",
			       json_integer_value(rel));
		putchar('\n');
		print_log_tail(o);
		return;
	}
	if (!json_is_integer(rel) && !json_is_integer(des)) {
		printf("%s: %s (no release published)\n", name, state);
		return;
	}
	printf("%s: release %lld %s (%lld instance%s, %lld ms)", name, shown,
	       state, inst, inst == 1 ? "" : "s", ms);
	if (error)
		printf(": %s", error);
	putchar('\n');
	if (error)
		print_log_tail(o);
	print_summon(o);
}

static int query(const struct ud_agentconf *conf, const char *cmd,
		 const char *app, int json)
{
	json_t *reply = NULL, *apps, *o;
	const char *name, *error;
	int err, failed = 0;

	err = ud_control_call(&reply, conf->control, cmd, app,
			      strncmp(cmd, "sync", 4) ? STATUS_TIMEOUT_MS :
							SYNC_TIMEOUT_MS);
	if (err < 0)
		return die(err, cmd);
	if (json) {
		char *text = json_dumps(reply, JSON_INDENT(2));

		puts(text ? text : "null");
		free(text);
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		error = json_string_value(json_object_get(reply, "error"));
		if (!json)
			fprintf(stderr, "deploy-agent: %s: %s\n", cmd,
				error ? error : "the agent refused");
		json_decref(reply);
		return 1;
	}
	apps = json_object_get(reply, "apps");
	json_object_foreach(apps, name, o) {
		const char *state =
			json_string_value(json_object_get(o, "state"));

		if (state && !strcmp(state, "failed"))
			failed = 1;
		if (!json)
			print_app(name, o);
	}
	json_decref(reply);
	return failed;
}

static int cmd_query(const char *config, const char *cmd, int argc,
		     char **argv)
{
	struct ud_agentconf *conf = NULL;
	const char *app = NULL;
	int i, json = 0, retry = 0, rc;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--retry") && !strcmp(cmd, "sync"))
			retry = 1;
		else if (argv[i][0] == '-')
			return usage("unknown option");
		else if (!app)
			app = argv[i];
		else
			return usage("too many arguments");
	}
	if (app && (rc = ud_name_check_app(app)) < 0)
		return die(rc, cmd);
	if ((rc = load_conf(&conf, config)) != 0)
		return rc;
	rc = query(conf, retry ? "sync --retry" : cmd, app, json);
	ud_agentconf_free(conf);
	return rc;
}

/* check */

static int cmd_check(const char *config)
{
	struct ud_agentconf *conf = NULL;
	int rc;

	if ((rc = load_conf(&conf, config)) != 0)
		return rc;
	rc = agent_check(conf, config);
	ud_agentconf_free(conf);
	return rc;
}

/* ssh-command */

static int refuse(void)
{
	fprintf(stderr, "deploy-agent: refused: only 'sync' and 'status' are "
			"allowed\n");
	return 1;
}

/*
 * The pipeline's key may run this and nothing else, so the command line
 * is parsed strictly: plain words, a known verb, at most --json and an
 * app name; no shell ever sees it.
 */
static int cmd_ssh(const char *config)
{
	const char *orig = getenv("SSH_ORIGINAL_COMMAND");
	struct ud_agentconf *conf = NULL;
	char *copy, *word, *save = NULL, *verb = NULL, *app = NULL;
	int json = 0, retry = 0, bad = 0, first = 1, rc;
	const char *p;

	if (!orig)
		return refuse();
	for (p = orig; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(" \t-_/.", *p))
			return refuse();
	copy = ud_strdup(orig);
	for (word = strtok_r(copy, " \t", &save); word;
	     word = strtok_r(NULL, " \t", &save)) {
		const char *base = strrchr(word, '/');

		/* "deploy-agent sync" as well as "sync". */
		if (first && !strcmp(base ? base + 1 : word, "deploy-agent")) {
			first = 0;
			continue;
		}
		first = 0;
		if (!verb) {
			if (strcmp(word, "sync") && strcmp(word, "status"))
				bad = 1;
			verb = word;
		} else if (!strcmp(word, "--json") && !json) {
			json = 1;
		} else if (!strcmp(word, "--retry") && !retry &&
			   !strcmp(verb, "sync")) {
			retry = 1;
		} else if (!strcmp(verb, "sync") && !app && word[0] != '-') {
			app = word;
		} else {
			bad = 1;
		}
	}
	if (!verb || bad) {
		free(copy);
		return refuse();
	}
	if (app && ud_name_check_app(app) < 0) {
		fprintf(stderr, "deploy-agent: refused: %s\n", ud_error_last());
		free(copy);
		return 1;
	}
	if ((rc = load_conf(&conf, config)) == 0) {
		rc = query(conf, retry ? "sync --retry" : verb, app, json);
		ud_agentconf_free(conf);
	}
	free(copy);
	return rc;
}

/* authorize */

static int key_line_ok(const char *line)
{
	static const char *const types[] = { "ssh-ed25519", "ssh-rsa",
		"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
		"ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
		"sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss", NULL };
	const char *sp = strchr(line, ' '), *p;
	size_t i, tl, n = 0;

	if (!sp)
		return 0;
	tl = (size_t)(sp - line);
	for (i = 0; types[i]; i++)
		if (strlen(types[i]) == tl && !strncmp(line, types[i], tl))
			break;
	if (!types[i])
		return 0;
	for (p = sp + 1; *p && *p != ' '; p++, n++)
		if (!isalnum((unsigned char)*p) && !strchr("+/=", *p))
			return 0;
	if (n < 16)
		return 0;
	/* The comment must not smuggle in a second line. */
	for (; *p; p++)
		if (*p == '\n' || *p == '\r')
			return 0;
	return 1;
}

/* authorized_keys runs the command through the user's shell: only paths
 * that need no quoting are accepted. */
static int safe_path(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("/._+-", *s))
			return 0;
	return 1;
}

static int cmd_authorize(const char *config, const char *keyfile)
{
	struct ud_buf b = UD_BUF_INIT;
	char *exe = NULL, *conf_abs = NULL, *line, *save = NULL, *key = NULL;
	int err, rc = 1;

	b.max = 64 * 1024;
	if ((err = ud_buf_read_file(&b, keyfile)) < 0) {
		rc = die(err, "authorize");
		goto done;
	}
	for (line = strtok_r(b.ptr, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len = strlen(line);

		while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		if (len && line[0] != '#') {
			key = line;
			break;
		}
	}
	if (!key || !key_line_ok(key)) {
		fprintf(stderr, "deploy-agent: authorize: %s: not an OpenSSH "
				"public key line (\"ssh-ed25519 AAAA... "
				"comment\")\n",
			keyfile);
		goto done;
	}
	if (!(exe = realpath("/proc/self/exe", NULL))) {
		err = ud_error_set_errno(UD_ERROR, "cannot resolve "
						   "/proc/self/exe");
		rc = die(err, "authorize");
		goto done;
	}
	if (!(conf_abs = realpath(config, NULL))) {
		err = ud_error_set_errno(UD_ERROR, "%s", config);
		rc = die(err, "authorize");
		goto done;
	}
	if (!safe_path(exe) || !safe_path(conf_abs)) {
		fprintf(stderr, "deploy-agent: authorize: %s or %s has "
				"characters that would need shell quoting\n",
			exe, conf_abs);
		goto done;
	}
	printf("command=\"%s --config %s ssh-command\",restrict %s\n", exe,
	       conf_abs, key);
	rc = 0;
done:
	free(exe);
	free(conf_abs);
	ud_buf_free(&b);
	return rc;
}

/* run */

static int sigpipe_fds[2] = { -1, -1 };

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;

	if (write(sigpipe_fds[1], &c, 1) < 0) {
		/* Nothing to do: a full pipe already holds a wake-up. */
	}
	errno = saved;
}

/*
 * A self-pipe rather than blocked signals + sigwait: a blocked mask would
 * be inherited by every instance we spawn, and they must die on SIGTERM.
 */
static int setup_signals(void)
{
	struct sigaction sa;

	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return ud_error_set_errno(UD_ERROR, "pipe");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/*
 * Privilege separation (priv.h), as OpenBSD's daemons do it: started as
 * root, the agent splits before any thread exists. The parent stays
 * root and does only what the fixed message set allows; it returns here
 * never (it exits with the child's status). The child is the agent:
 * everything else, with the parent's client in a->priv and *alive_fd the
 * read end of a pipe whose EOF says the parent is gone.
 */
static int privsep_split(struct agent *a, struct priv_client *client,
			 int *alive_fd)
{
	int sv[2] = { -1, -1 }, alive[2] = { -1, -1 }, rc;
	struct priv_parent p;
	char *templates;
	struct sigaction sa;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(alive, O_CLOEXEC) < 0)
		return ud_error_set_errno(UD_ERROR, "privilege separation");
	if ((pid = fork()) < 0) {
		rc = ud_error_set_errno(UD_ERROR, "privilege separation: fork");
		close(sv[0]);
		close(sv[1]);
		close(alive[0]);
		close(alive[1]);
		return rc;
	}
	if (pid == 0) {
		close(sv[0]);
		close(alive[1]);
		priv_client_init(client, sv[1]);
		a->priv = client;
		*alive_fd = alive[0];
		return 0;
	}
	close(sv[1]);
	close(alive[0]);
	templates = launch_templates_dir(a);
	priv_parent_init(&p, a->conf->state_dir, a->conf->net_bridge,
			 templates, a->conf->host, a->inst_cred);
	p.sock = sv[0];
	p.child = pid;
	/* The daemon's signals go on to the child; SIGCHLD reaps. */
	if (setup_signals() < 0) {
		ud_log_error("priv: %s", ud_error_last());
		kill(pid, SIGKILL);
		exit(1);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	ud_log_info("privileged parent pid %d, agent pid %d", (int)getpid(),
		    (int)pid);
	rc = priv_parent_run(&p, sigpipe_fds[0]);
	priv_parent_free(&p);
	free(templates);
	exit(rc);
}

/* The parent's end of the pipe closed: it died (its instances stay, as
 * after a kill -9 of the agent, for the next agent to adopt). */
static void on_parent_gone(struct ud_evloop *l, int fd, int mask, void *arg)
{
	(void)l;
	(void)fd;
	(void)mask;
	(void)arg;
	ud_log_error("the privileged parent is gone: exiting, the instances "
		     "stay for the next agent");
	_exit(1);
}

/* Temp files of an unpacking the agent did not finish. */
static void remove_partial_images(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, ".tmp-", 5))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			ud_log_info("removed %s/%s, a partial image", dir,
				    e->d_name);
	}
	if (d)
		closedir(d);
}

static int control_path(const struct ud_agentconf *conf, const char **out)
{
	if (strncmp(conf->control, "unix:", 5))
		return ud_error_set(UD_EINVALID, "control %s: must be unix:PATH",
				    conf->control);
	*out = conf->control + 5;
	return 0;
}

/*
 * Both halves of an agent hold its lock (one open file, shared across the
 * split), so a new agent never runs beside the old one's unprivileged
 * part. After the old parent is killed that part exits as soon as it sees
 * the parent's pipe close: a moment's wait for the lock, bounded, tells
 * that apart from another agent running on the same state dir.
 */
static int lock_state_dir(int fd)
{
	int waited;

	for (waited = 0; waited < 3000; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK)
			return -1;
		usleep(10 * 1000);
	}
	errno = EWOULDBLOCK;
	return -1;
}

struct run_ctx {
	struct agent *a;
	struct ud_evloop *loop;
};

/* The self-pipe, on the loop: SIGHUP asks for a sync; TERM and INT stop
 * the agent, whose reconciler stops the instances and then the loop (so
 * the proxy and the control socket serve until then). */
static void on_signals(struct ud_evloop *l, int fd, int mask, void *arg)
{
	struct run_ctx *run = arg;
	unsigned char sig;

	(void)l;
	(void)mask;
	while (read(fd, &sig, 1) == 1) {
		if (sig == SIGHUP) {
			ud_log_info("SIGHUP: syncing");
			agent_request_sync(run->a);
		} else if (!agent_stopping(run->a)) {
			ud_log_info("%s: shutting down", strsignal(sig));
			agent_stop(run->a);
		}
	}
}

static void *reconcile_then_stop(void *arg)
{
	struct run_ctx *run = arg;

	agent_reconcile_main(run->a);
	ud_evloop_stop(run->loop);
	return NULL;
}

/*
 * Every proxied connection costs two descriptors, and a held summon burst
 * arrives all at once: the soft limit's usual 1024 would refuse the
 * 512th client. The hard limit is what the host's owner allows us (and
 * the instances, which inherit it); nothing here uses select().
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	unsigned long long was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		ud_log_warn("open files limit: %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur >= rl.rlim_max) {
		ud_log_debug("open files limit: %llu",
			     (unsigned long long)rl.rlim_cur);
		return;
	}
	was = (unsigned long long)rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		ud_log_warn("open files limit: cannot raise %llu to %llu: %s",
			    was, (unsigned long long)rl.rlim_max,
			    strerror(errno));
		return;
	}
	ud_log_info("open files limit: raised from %llu to the hard limit %llu",
		    was, (unsigned long long)rl.rlim_max);
}

static int cmd_run(const char *config, int verbose)
{
	struct agent a;
	struct control *control = NULL;
	struct dns *dns = NULL;
	struct ud_evloop *loop = NULL;
	struct run_ctx run;
	struct priv_client priv;
	pthread_t reconcile_thread;
	int lock_fd = -1, alive_fd = -1, err, rc = 1, have_reconcile = 0;
	const char *sock = NULL;
	char *real = NULL, *lockpath = NULL;

	agent_init(&a);
	ud_log_init(verbose ? UD_LOG_DEBUG : UD_LOG_INFO, 1);
	raise_nofile();

	if ((err = ud_agentconf_load(&a.conf, config)) < 0) {
		rc = die(err, "configuration");
		goto done;
	}
	if ((err = ud_name_check_host(a.conf->host)) < 0 ||
	    (err = control_path(a.conf, &sock)) < 0) {
		rc = die(err, config);
		goto done;
	}
	if ((err = ud_mkdir_p(a.conf->state_dir, 0750)) < 0) {
		rc = die(err, "state_dir");
		goto done;
	}
	/* Instances are found again after a crash by this exact string in
	 * their environment: make it canonical. */
	if (!(real = realpath(a.conf->state_dir, NULL))) {
		err = ud_error_set_errno(UD_ERROR, "%s", a.conf->state_dir);
		rc = die(err, "state_dir");
		goto done;
	}
	free(a.conf->state_dir);
	a.conf->state_dir = real;
	a.state_path = ud_asprintf("%s/state.json", real);
	a.images_dir = ud_asprintf("%s/images", real);
	a.mirror_path = ud_asprintf("%s/repo.git", real);
	lockpath = ud_asprintf("%s/agent.lock", real);
	if ((err = ud_mkdir_p(a.images_dir, 0750)) < 0) {
		rc = die(err, "state_dir");
		goto done;
	}
	if ((lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) <
		    0 ||
	    lock_state_dir(lock_fd) < 0) {
		err = ud_error_set_errno(UD_EBUSY, "%s: another deploy-agent "
						   "uses this state_dir?",
					 lockpath);
		rc = die(err, "run");
		goto done;
	}
	if ((err = agent_instance_user(a.conf, &a.inst_cred)) < 0) {
		rc = die(err, config);
		goto done;
	}
	if (a.inst_cred) {
		/* Instances pass through state_dir to their run directory
		 * and read their image; the rest of it is the agent's. */
		if ((err = agent_share_dir(&a, a.conf->state_dir)) < 0 ||
		    (err = agent_share_dir(&a, a.images_dir)) < 0) {
			rc = die(err, "state_dir");
			goto done;
		}
		ud_log_info("instances run as user %s (uid %u)", a.conf->user,
			    (unsigned)a.inst_cred->uid);
	} else if (geteuid() == 0) {
		ud_log_warn("instances run as root: set \"user\" in %s to run "
			    "them as an unprivileged user", config);
	}
	remove_partial_images(a.images_dir);
	if ((err = state_load(&a.st, a.state_path)) < 0) {
		rc = die(err, "state");
		goto done;
	}
	ud_log_info("deploy-agent starting: host %s, repository %s, state %s",
		    a.conf->host, a.conf->repo, a.conf->state_dir);
	if ((err = network_start(&a)) < 0) {
		rc = die(err, "network");
		goto done;
	}
	if (geteuid() == 0 && (err = privsep_split(&a, &priv, &alive_fd)) < 0) {
		rc = die(err, "run");
		goto done;
	}
	if ((err = setup_signals()) < 0) {
		rc = die(err, "run");
		goto done;
	}
	/* One loop, on this thread: the proxy, the control socket, DNS and
	 * the signals. The reconciler and the boots have threads of their
	 * own and hand their results back through the core. */
	if ((err = ud_evloop_new(&loop)) < 0) {
		rc = die(err, "run");
		goto done;
	}
	if ((err = proxy_start(&a.proxy, loop, agent_demand, &a)) < 0) {
		rc = die(err, "proxy");
		goto done;
	}
	if ((err = control_start(&a, loop, &control)) < 0) {
		rc = die(err, "control socket");
		goto done;
	}
	/* Queries before the first snapshot are dropped (dns.c): the
	 * resolver asks again once the agent says what it serves. */
	if (a.conf->dns_listen && dns_start(&a, loop, &dns) < 0)
		ud_log_error("dns: %s", ud_error_last());
	run.a = &a;
	run.loop = loop;
	if ((err = ud_evloop_add(loop, sigpipe_fds[0], UD_EV_READ, on_signals,
				 &run)) < 0 ||
	    (alive_fd >= 0 && (err = ud_evloop_add(loop, alive_fd, UD_EV_READ,
						    on_parent_gone, NULL)) < 0)) {
		rc = die(err, "run");
		goto done;
	}
	if (pthread_create(&reconcile_thread, NULL, reconcile_then_stop,
			   &run) != 0) {
		err = ud_error_set(UD_ERROR, "cannot start a thread");
		rc = die(err, "run");
		goto done;
	}
	have_reconcile = 1;
	if ((err = ud_evloop_run(loop)) < 0) {
		rc = die(err, "run");
		goto done;
	}
	rc = 0;
done:
	/* The loop has returned (or never ran): the reconciler stopped the
	 * instances first, and what remains is closed from here. */
	agent_stop(&a);
	if (have_reconcile)
		pthread_join(reconcile_thread, NULL);
	dns_stop(dns);
	control_stop(control);
	if (a.proxy)
		proxy_stop(a.proxy);
	ud_evloop_free(loop);
	if (rc == 0)
		ud_log_info("stopped");
	if (lock_fd >= 0)
		close(lock_fd);
	if (alive_fd >= 0)
		close(alive_fd);
	free(lockpath);
	ud_agentconf_free(a.conf);
	free(a.inst_cred);
	agent_free(&a);
	return rc;
}

int main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG, *cmd;
	int i, verbose = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			config = argv[++i];
		else if (!strncmp(argv[i], "--config=", 9))
			config = argv[i] + 9;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			verbose = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_text, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("deploy-agent (unideploy) %s\n", UD_VERSION);
			return 0;
		} else
			return usage("unknown option");
	}
	if (i >= argc)
		return usage("no command");
	cmd = argv[i++];
	/* -v and --config are also accepted after the command. */
	{
		int j, k = i;

		for (j = i; j < argc; j++) {
			if (!strcmp(argv[j], "--config") && j + 1 < argc)
				config = argv[++j];
			else if (!strncmp(argv[j], "--config=", 9))
				config = argv[j] + 9;
			else if (!strcmp(argv[j], "-v"))
				verbose = 1;
			else if (!strcmp(argv[j], "-h") ||
				 !strcmp(argv[j], "--help")) {
				fputs(usage_text, stdout);
				return 0;
			} else
				argv[k++] = argv[j];
		}
		argc = k;
	}
	ud_log_init(verbose ? UD_LOG_DEBUG : UD_LOG_INFO, 0);

	if (!strcmp(cmd, "run"))
		return i == argc ? cmd_run(config, verbose) :
				   usage("run takes no arguments");
	if (!strcmp(cmd, "sync") || !strcmp(cmd, "status"))
		return cmd_query(config, cmd, argc - i, argv + i);
	if (!strcmp(cmd, "check"))
		return i == argc ? cmd_check(config) :
				   usage("check takes no arguments");
	if (!strcmp(cmd, "ssh-command"))
		return i == argc ? cmd_ssh(config) :
				   usage("ssh-command takes no arguments");
	if (!strcmp(cmd, "authorize"))
		return argc - i == 1 ? cmd_authorize(config, argv[i]) :
				       usage("usage: deploy-agent authorize "
					     "KEYFILE");
	return usage("unknown command");
}
