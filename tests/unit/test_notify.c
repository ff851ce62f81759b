/* test_notify.c: ud_notify_hosts against real unix-socket agents served by
 * threads, and against a real sshd (tests/sshd.sh) whose authorized key
 * runs the real forced command `deploy-agent ssh-command`, which in turn
 * asks a control socket served by this test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "fleet.h"
#include "net.h"
#include "notify.h"
#include "run.h"
#include "ssh.h"

/* Servers that must all hold a request before any answers. */
struct barrier {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int arrived, need;
	int timeout_s; /* 0: 10 s */
};

struct server {
	char *addr;
	int lfd;
	const char *answer;
	int hold; /* a black hole: accept, never answer, wait for EOF */
	struct barrier *barrier; /* NULL: answer at once */
	int barrier_timed_out;
	char request[256];
	pthread_t thread;
	int started;
};

struct fixture {
	char dir[64];
	struct ud_fleet *fleet;
	struct server servers[3];
	size_t nservers;
	/* SSH: a throwaway sshd on sshd_port whose authorized_keys line is
	 * `deploy-agent authorize` of `key` for an agent configured by
	 * agent_conf, whose control socket is agent_sock. */
	int sshd_started;
	int sshd_port;
	char *sshd_dir, *key, *known_hosts, *agent_conf, *agent_sock;
	char *target; /* user@127.0.0.1:port */
	char *old_home;
};

/* Returns 0 once everyone arrived, -1 after its timeout without. */
static int barrier_wait(struct barrier *b)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += b->timeout_s ? b->timeout_s : 10;
	pthread_mutex_lock(&b->mu);
	b->arrived++;
	pthread_cond_broadcast(&b->cv);
	while (b->arrived < b->need && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&b->cv, &b->mu, &deadline);
	rc = b->arrived < b->need ? -1 : 0;
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	struct ud_buf line = UD_BUF_INIT;
	struct pollfd p = { s->lfd, POLLIN, 0 };
	const char *answer = s->answer;
	int fd;

	/* Never block forever: a test that asks nobody must still end. */
	if (poll(&p, 1, 60000) != 1)
		return NULL;
	if ((fd = accept(s->lfd, NULL, NULL)) < 0)
		return NULL;
	if (s->hold) {
		char c;

		if (s->barrier && barrier_wait(s->barrier) < 0)
			s->barrier_timed_out = 1;
		/* Until the client gives up on us. */
		p = (struct pollfd){ fd, POLLIN, 0 };
		while (poll(&p, 1, 30000) == 1 && read(fd, &c, 1) > 0)
			;
		close(fd);
		return NULL;
	}
	if (ud_read_line(fd, &line, 5000) == 0)
		snprintf(s->request, sizeof(s->request), "%s", line.ptr);
	if (s->barrier && barrier_wait(s->barrier) < 0) {
		s->barrier_timed_out = 1;
		answer = "{\"ok\": false, \"error\": \"asked one at a time\"}\n";
	}
	ud_write_all(fd, answer, strlen(answer));
	close(fd);
	ud_buf_free(&line);
	return NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ud-notify-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->fleet = ud_fleet_new();
	*state = f;
	return 0;
}

static int run_argv(char *const argv[], struct ud_buf *out)
{
	struct ud_run_opts o = { 0 };
	int status = -1;

	o.capture = out;
	o.timeout_ms = 60000;
	if (ud_run(argv, &o, &status) < 0)
		fail_msg("%s: %s", argv[0], ud_error_last());
	return status;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	size_t i;

	if (f->sshd_started) {
		char *argv[] = { "sh", "tests/sshd.sh", "stop", f->sshd_dir,
				 NULL };
		struct ud_buf out = UD_BUF_INIT;

		run_argv(argv, &out);
		ud_buf_free(&out);
	}
	if (f->old_home) {
		setenv("HOME", f->old_home, 1);
		free(f->old_home);
	}
	free(f->sshd_dir);
	free(f->key);
	free(f->known_hosts);
	free(f->agent_conf);
	free(f->agent_sock);
	free(f->target);

	for (i = 0; i < f->nservers; i++) {
		struct server *s = &f->servers[i];

		if (s->started)
			pthread_join(s->thread, NULL);
		if (s->lfd >= 0)
			close(s->lfd);
		free(s->addr);
	}
	ud_fleet_free(f->fleet);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

static void add_host(struct fixture *f, const char *name, const char *agent,
		     const char *ssh)
{
	struct ud_fleet_host h = { 0 };

	h.name = (char *)name;
	h.agent = (char *)agent;
	h.ssh = (char *)ssh;
	if (ud_fleet_set_host(f->fleet, &h) < 0)
		fail_msg("set_host %s: %s", name, ud_error_last());
}

/* A thread serving one connection at addr ("unix:PATH" or a TCP
 * address) with `answer`. */
static struct server *start_server(struct fixture *f, char *addr,
				   const char *answer, struct barrier *b)
{
	struct server *s = &f->servers[f->nservers++];
	struct ud_addr a;

	s->addr = addr;
	s->answer = answer;
	s->barrier = b;
	s->lfd = -1;
	assert_int_equal(ud_addr_parse(&a, s->addr), 0);
	assert_int_equal(ud_net_listen(&s->lfd, &a, 4), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
	s->started = 1;
	return s;
}

/* An agent host `name` whose socket a thread serves with `answer`. */
static struct server *serve_host(struct fixture *f, const char *name,
				 const char *answer, struct barrier *b)
{
	struct server *s = start_server(
		f, ud_asprintf("unix:%s/%s.sock", f->dir, name), answer, b);

	add_host(f, name, s->addr, NULL);
	return s;
}

/* Done serving: its socket may be served anew. */
static void join_server(struct server *s)
{
	pthread_join(s->thread, NULL);
	s->started = 0;
	close(s->lfd);
	s->lfd = -1;
}

static void test_mixed_hosts(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct server *h1, *bad;
	char *gone = ud_asprintf("unix:%s/gone.sock", f->dir);
	char *gone_path = ud_asprintf("%s/gone.sock", f->dir);
	char *far;
	int port;

	assert_int_equal(ud_net_free_port(&port), 0);
	far = ud_asprintf("deploy@127.0.0.1:%d", port);

	h1 = serve_host(f, "h1", "{\"ok\":true,\"host\":\"h1\",\"apps\":{}}\n",
			NULL);
	bad = serve_host(f, "bad", "{\"ok\":false,\"error\":\"boom\"}\n", NULL);
	add_host(f, "gone", gone, NULL);
	add_host(f, "far", NULL, far);

	ud_strvec_push(&hosts, "h1");
	ud_strvec_push(&hosts, "gone");
	ud_strvec_push(&hosts, "far");
	ud_strvec_push(&hosts, "ghost");
	ud_strvec_push(&hosts, "bad");
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", "hello",
					 10000),
			 0);
	assert_non_null(r);

	assert_string_equal(r[0].host, "h1");
	assert_int_equal(r[0].ok, 1);
	assert_null(r[0].error);
	assert_non_null(r[0].reply);
	assert_string_equal(
		json_string_value(json_object_get(r[0].reply, "host")), "h1");
	assert_true(r[0].ms >= 0);

	assert_string_equal(r[1].host, "gone");
	assert_int_equal(r[1].ok, 0);
	assert_non_null(r[1].error);
	assert_non_null(strstr(r[1].error, gone_path));
	assert_null(r[1].reply);

	assert_string_equal(r[2].host, "far");
	assert_int_equal(r[2].ok, 0);
	assert_non_null(r[2].error);
	/* Nothing listens there: the ssh error, naming the address. */
	assert_non_null(strstr(r[2].error, "127.0.0.1"));
	assert_null(strstr(r[2].error, "not supported"));
	assert_null(r[2].reply);

	assert_string_equal(r[3].host, "ghost");
	assert_int_equal(r[3].ok, 0);
	assert_string_equal(r[3].error, "host 'ghost' is not in fleet.json");
	assert_null(r[3].reply);

	assert_string_equal(r[4].host, "bad");
	assert_int_equal(r[4].ok, 0);
	assert_string_equal(r[4].error, "boom");
	/* The agent's own reply is kept even when it refused. */
	assert_non_null(r[4].reply);
	assert_false(json_is_true(json_object_get(r[4].reply, "ok")));

	ud_host_replies_free(r, hosts.n);
	pthread_join(h1->thread, NULL);
	pthread_join(bad->thread, NULL);
	h1->started = bad->started = 0;
	assert_string_equal(h1->request, "{\"cmd\":\"sync\",\"app\":\"hello\"}");
	assert_string_equal(bad->request, "{\"cmd\":\"sync\",\"app\":\"hello\"}");

	ud_strvec_free(&hosts);
	free(gone);
	free(gone_path);
	free(far);
}

static void test_single_host_status(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct server *s;

	s = serve_host(f, "solo", "{\"ok\":true,\"host\":\"solo\",\"apps\":{}}\n",
		       NULL);
	ud_strvec_push(&hosts, "solo");
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "status", NULL,
					 10000),
			 0);
	assert_string_equal(r[0].host, "solo");
	assert_int_equal(r[0].ok, 1);
	assert_null(r[0].error);
	ud_host_replies_free(r, hosts.n);
	pthread_join(s->thread, NULL);
	s->started = 0;
	assert_string_equal(s->request, "{\"cmd\":\"status\"}");
	ud_strvec_free(&hosts);
}

static void test_no_hosts(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;

	ud_strvec_init(&hosts);
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", NULL,
					 1000),
			 0);
	ud_host_replies_free(r, 0);
	ud_strvec_free(&hosts);
}

/* Each server answers only once both hold a request: asking the hosts
 * one at a time would leave the first waiting until its barrier gives
 * up, and it would then answer "asked one at a time". */
static void test_parallel(void **state)
{
	struct fixture *f = *state;
	struct barrier b = { PTHREAD_MUTEX_INITIALIZER,
			     PTHREAD_COND_INITIALIZER, 0, 2, 0 };
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct server *s1, *s2;

	s1 = serve_host(f, "p1", "{\"ok\":true,\"host\":\"p1\",\"apps\":{}}\n",
			&b);
	s2 = serve_host(f, "p2", "{\"ok\":true,\"host\":\"p2\",\"apps\":{}}\n",
			&b);
	ud_strvec_push(&hosts, "p1");
	ud_strvec_push(&hosts, "p2");
	/* The deadline is longer than the barrier's, so a serial asker
	 * fails on the answer, not on our patience. */
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", "web",
					 30000),
			 0);
	pthread_join(s1->thread, NULL);
	pthread_join(s2->thread, NULL);
	s1->started = s2->started = 0;
	assert_int_equal(s1->barrier_timed_out, 0);
	assert_int_equal(s2->barrier_timed_out, 0);
	assert_string_equal(r[0].host, "p1");
	assert_int_equal(r[0].ok, 1);
	assert_string_equal(r[1].host, "p2");
	assert_int_equal(r[1].ok, 1);
	assert_string_equal(
		json_string_value(json_object_get(r[1].reply, "host")), "p2");
	ud_host_replies_free(r, hosts.n);
	ud_strvec_free(&hosts);
}

/* SSH: a real sshd, the real forced command, a control socket served
 * here. */

static char *must_run(char *const argv[])
{
	struct ud_buf out = UD_BUF_INIT;
	int status = run_argv(argv, &out);

	if (status != 0)
		fail_msg("%s %s: exit %d: %s", argv[0], argv[1], status,
			 out.ptr);
	return ud_buf_detach(&out);
}

static void write_file(const char *path, const char *text)
{
	if (ud_write_file_atomic(path, text, strlen(text), 0600) < 0)
		fail_msg("%s: %s", path, ud_error_last());
}

/* Returns 0, or -1 when bin/deploy-agent or sshd are missing (skip). */
static int ssh_world(struct fixture *f)
{
	const char *bindir = getenv("BINDIR");
	char *agent_path = ud_asprintf("%s/deploy-agent",
				       bindir && *bindir ? bindir : "bin");
	char *agent = realpath(agent_path, NULL), *home, *conf_text, *line;
	char *port = NULL, *pub = NULL;
	struct passwd *pw = getpwuid(getuid());

	free(agent_path);
	if (!agent || access("/usr/sbin/sshd", X_OK) != 0) {
		free(agent);
		return -1;
	}
	f->sshd_dir = ud_asprintf("%s/sshd", f->dir);
	f->key = ud_asprintf("%s/client_key", f->dir);
	f->known_hosts = ud_asprintf("%s/known_hosts", f->dir);
	f->agent_conf = ud_asprintf("%s/agent.json", f->dir);
	f->agent_sock = ud_asprintf("%s/agent.sock", f->dir);
	home = ud_asprintf("%s/home", f->dir);
	pub = ud_asprintf("%s.pub", f->key);
	assert_int_equal(ud_mkdir_p(home, 0700), 0);
	assert_int_equal(ud_mkdir_p(f->sshd_dir, 0700), 0);

	/* Nothing of the user running the tests may help or hinder. */
	if (getenv("HOME"))
		f->old_home = ud_strdup(getenv("HOME"));
	setenv("HOME", home, 1);
	unsetenv("SSH_AUTH_SOCK");
	unsetenv("DEPLOY_SSH_KEY");
	unsetenv("DEPLOY_KNOWN_HOSTS");

	{
		char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N",
				 "", "-C", "notify-test", "-f", f->key, NULL };
		free(must_run(argv));
	}
	conf_text = ud_asprintf(
		"{\"host\": \"e1\", \"repo\": \"%s/deploy.git\", "
		"\"state_dir\": \"%s/state\", \"control\": \"unix:%s\"}\n",
		f->dir, f->dir, f->agent_sock);
	write_file(f->agent_conf, conf_text);
	{
		char *argv[] = { agent, "--config", f->agent_conf, "authorize",
				 pub, NULL };
		char *ak_path = ud_asprintf("%s/authorized_keys", f->sshd_dir);

		line = must_run(argv);
		assert_non_null(strstr(line, "ssh-command\",restrict "));
		write_file(ak_path, line);
		free(ak_path);
		free(line);
	}
	assert_int_equal(ud_net_free_port(&f->sshd_port), 0);
	port = ud_asprintf("%d", f->sshd_port);
	{
		char *argv[] = { "sh", "tests/sshd.sh", "start", f->sshd_dir,
				 port, NULL };
		free(must_run(argv));
		f->sshd_started = 1;
	}
	{
		char *argv[] = { "sh", "tests/sshd.sh", "known", f->sshd_dir,
				 port, NULL };
		line = must_run(argv);
		write_file(f->known_hosts, line);
		free(line);
	}
	f->target = ud_asprintf("%s@127.0.0.1:%d", pw->pw_name, f->sshd_port);
	add_host(f, "e1", NULL, f->target);
	free(agent);
	free(home);
	free(conf_text);
	free(port);
	free(pub);
	return 0;
}

static void ssh_opts(const struct fixture *f, struct ud_ssh_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->identity = f->key;
	o->known_hosts = f->known_hosts;
	o->no_agent = 1;
	o->no_default_keys = 1;
}

/* "SHA256:..." of the sshd's host key, as ssh-keygen -l prints it. */
static char *host_fingerprint(const struct fixture *f)
{
	char *pub = ud_asprintf("%s/ssh_host_ed25519_key.pub", f->sshd_dir);
	char *argv[] = { "ssh-keygen", "-l", "-f", pub, NULL };
	char *out = must_run(argv), *fp = strstr(out, "SHA256:"), *end;

	assert_non_null(fp);
	end = strchr(fp, ' ');
	if (end)
		*end = '\0';
	fp = ud_strdup(fp);
	free(out);
	free(pub);
	return fp;
}

static const char failed_answer[] =
	"{\"ok\":true,\"host\":\"e1\",\"apps\":{\"hello\":{\"desired\":2,"
	"\"release\":1,\"state\":\"failed\",\"instances\":1,"
	"\"error\":\"health check failed\",\"ms\":5}}}\n";

/* The secrets come from the environment alone (ssh NULL). The app's
 * failure makes `deploy-agent sync` exit 1 on the host: its JSON is still
 * the host's answer. */
static void test_ssh_sync(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct ud_buf key = UD_BUF_INIT, known = UD_BUF_INIT;
	struct server *s;
	json_t *app;

	if (ssh_world(f) < 0)
		skip();
	assert_int_equal(ud_buf_read_file(&key, f->key), 0);
	assert_int_equal(ud_buf_read_file(&known, f->known_hosts), 0);
	setenv("DEPLOY_SSH_KEY", key.ptr, 1);
	setenv("DEPLOY_KNOWN_HOSTS", known.ptr, 1);

	s = start_server(f, ud_asprintf("unix:%s", f->agent_sock),
			 failed_answer, NULL);
	ud_strvec_push(&hosts, "e1");
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", "hello",
					 60000),
			 0);
	join_server(s);
	if (!r[0].ok)
		fail_msg("e1: %s", r[0].error);
	assert_null(r[0].error);
	assert_non_null(r[0].reply);
	assert_true(r[0].ms >= 0);
	assert_string_equal(
		json_string_value(json_object_get(r[0].reply, "host")), "e1");
	app = json_object_get(json_object_get(r[0].reply, "apps"), "hello");
	assert_string_equal(json_string_value(json_object_get(app, "state")),
			    "failed");
	assert_string_equal(s->request, "{\"cmd\":\"sync\",\"app\":\"hello\"}");
	ud_host_replies_free(r, hosts.n);

	/* The forced command takes no app with status: all apps are asked
	 * for and the caller picks its own. */
	s = start_server(f, ud_asprintf("unix:%s", f->agent_sock),
			 "{\"ok\":true,\"host\":\"e1\",\"apps\":{}}\n", NULL);
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "status",
					 "hello", 60000),
			 0);
	join_server(s);
	if (!r[0].ok)
		fail_msg("e1: %s", r[0].error);
	assert_string_equal(s->request, "{\"cmd\":\"status\"}");
	ud_host_replies_free(r, hosts.n);

	/* An agent that answers that its sync failed was reached: its reply
	 * is kept (the pipeline tells that from no answer) and its error is
	 * the host's, as the agent put it. */
	s = start_server(f, ud_asprintf("unix:%s", f->agent_sock),
			 "{\"ok\":false,\"error\":\"fetching ssh://srv/d.git: "
			 "host key CHANGED\"}\n", NULL);
	assert_int_equal(ud_notify_hosts(&r, f->fleet, &hosts, "sync", "hello",
					 60000),
			 0);
	join_server(s);
	assert_int_equal(r[0].ok, 0);
	assert_non_null(r[0].reply);
	assert_string_equal(r[0].error,
			    "fetching ssh://srv/d.git: host key CHANGED");
	ud_host_replies_free(r, hosts.n);

	unsetenv("DEPLOY_SSH_KEY");
	unsetenv("DEPLOY_KNOWN_HOSTS");
	ud_buf_free(&key);
	ud_buf_free(&known);
	ud_strvec_free(&hosts);
}

static void test_ssh_host_keys(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct ud_ssh_opts o;
	char *fp, *empty, *other, *other_line;
	struct ud_buf other_pub = UD_BUF_INIT;

	if (ssh_world(f) < 0)
		skip();
	fp = host_fingerprint(f);
	ssh_opts(f, &o);
	ud_strvec_push(&hosts, "e1");

	empty = ud_asprintf("%s/empty_known_hosts", f->dir);
	write_file(empty, "");
	o.known_hosts = empty;
	assert_int_equal(ud_notify_hosts_ex(&r, f->fleet, &hosts, "sync",
					    "hello", 30000, &o),
			 0);
	assert_int_equal(r[0].ok, 0);
	assert_null(r[0].reply);
	assert_non_null(r[0].error);
	assert_non_null(strstr(r[0].error, "unknown"));
	assert_non_null(strstr(r[0].error, fp));
	ud_host_replies_free(r, hosts.n);

	/* Another key recorded for [127.0.0.1]:port: changed. */
	other = ud_asprintf("%s/other_key", f->dir);
	{
		char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N",
				 "", "-f", other, NULL };
		free(must_run(argv));
	}
	free(other);
	other = ud_asprintf("%s/other_key.pub", f->dir);
	assert_int_equal(ud_buf_read_file(&other_pub, other), 0);
	other_line = ud_asprintf("[127.0.0.1]:%d %s", f->sshd_port,
				 other_pub.ptr);
	write_file(empty, other_line);
	assert_int_equal(ud_notify_hosts_ex(&r, f->fleet, &hosts, "sync",
					    "hello", 30000, &o),
			 0);
	assert_int_equal(r[0].ok, 0);
	assert_non_null(r[0].error);
	assert_non_null(strstr(r[0].error, "CHANGED"));
	assert_non_null(strstr(r[0].error, fp));
	ud_host_replies_free(r, hosts.n);

	ud_buf_free(&other_pub);
	free(other_line);
	free(other);
	free(empty);
	free(fp);
	ud_strvec_free(&hosts);
}

/* The key can run nothing but sync and status: the forced command says
 * so and that is the host's error. */
static void test_ssh_refused(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct ud_ssh_opts o;

	if (ssh_world(f) < 0)
		skip();
	ssh_opts(f, &o);
	ud_strvec_push(&hosts, "e1");
	assert_int_equal(ud_notify_hosts_ex(&r, f->fleet, &hosts, "shell",
					    NULL, 30000, &o),
			 0);
	assert_int_equal(r[0].ok, 0);
	assert_null(r[0].reply);
	assert_non_null(r[0].error);
	assert_non_null(strstr(r[0].error, f->target));
	assert_non_null(strstr(r[0].error, "refused: only 'sync' and "
					   "'status' are allowed"));
	ud_host_replies_free(r, hosts.n);

	/* An app name that is no name never leaves this process. */
	assert_int_equal(ud_notify_hosts_ex(&r, f->fleet, &hosts, "sync",
					    "x;reboot", 30000, &o),
			 0);
	assert_int_equal(r[0].ok, 0);
	assert_non_null(r[0].error);
	assert_null(strstr(r[0].error, f->target));
	ud_host_replies_free(r, hosts.n);
	ud_strvec_free(&hosts);
}

/* A host that accepts the connection and never says a word fails at its
 * own deadline, and the live host answers meanwhile: the agent's socket
 * answers only once the dead host holds a connection too (a barrier), so
 * asking one host after the other could not succeed. The live host is
 * reached over SSH (a login, the forced command): on a loaded machine
 * that takes seconds, so the call's deadline is 30 s and the barrier
 * waits longer than that. */
static void test_ssh_dead_and_live(void **state)
{
	struct fixture *f = *state;
	struct barrier b = { PTHREAD_MUTEX_INITIALIZER,
			     PTHREAD_COND_INITIALIZER, 0, 2, 60 };
	struct ud_strvec hosts = UD_STRVEC_INIT;
	struct ud_host_reply *r = NULL;
	struct ud_ssh_opts o;
	struct server *live, *dead;
	char *dead_target;
	int port;

	if (ssh_world(f) < 0)
		skip();
	ssh_opts(f, &o);
	/* the bound on reaching a host is the call's, not the default 10 s
	 * a login on a loaded machine can exceed */
	o.connect_timeout_ms = 30000;
	assert_int_equal(ud_net_free_port(&port), 0);
	dead = start_server(f, ud_asprintf("127.0.0.1:%d", port), NULL, &b);
	dead->hold = 1;
	dead_target = ud_asprintf("nobody@127.0.0.1:%d", port);
	add_host(f, "dead", NULL, dead_target);
	live = start_server(f, ud_asprintf("unix:%s", f->agent_sock),
			    "{\"ok\":true,\"host\":\"e1\",\"apps\":{}}\n", &b);

	ud_strvec_push(&hosts, "dead");
	ud_strvec_push(&hosts, "e1");
	assert_int_equal(ud_notify_hosts_ex(&r, f->fleet, &hosts, "sync",
					    "hello", 30000, &o),
			 0);
	join_server(live);
	join_server(dead);
	assert_int_equal(live->barrier_timed_out, 0);
	assert_int_equal(dead->barrier_timed_out, 0);

	assert_string_equal(r[0].host, "dead");
	assert_int_equal(r[0].ok, 0);
	assert_null(r[0].reply);
	assert_non_null(r[0].error);
	assert_non_null(strstr(r[0].error, "127.0.0.1"));
	/* the bound on reaching it, here the whole call's 30 s */
	assert_non_null(strstr(r[0].error, "no SSH handshake within 30 s"));

	assert_string_equal(r[1].host, "e1");
	if (!r[1].ok)
		fail_msg("e1: %s", r[1].error);
	assert_string_equal(
		json_string_value(json_object_get(r[1].reply, "host")), "e1");
	assert_string_equal(live->request,
			    "{\"cmd\":\"sync\",\"app\":\"hello\"}");

	ud_host_replies_free(r, hosts.n);
	ud_strvec_free(&hosts);
	free(dead_target);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mixed_hosts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_single_host_status, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_hosts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssh_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssh_host_keys, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ssh_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ssh_dead_and_live, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
