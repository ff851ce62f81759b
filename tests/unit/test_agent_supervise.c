/*
 * Tests of the agent's adoption after a restart (cmd/deploy-agent/
 * supervise.c), with real processes: a recorded instance still alive is
 * kept and served, a recorded one that is gone is forgotten, an instance of
 * a release that no longer serves is stopped, and a process carrying our
 * state_dir that was never recorded (spawned right before a kill -9) is
 * stopped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "proxy.h"
#include "supervise.h"
#include "buf.h"
#include "errors.h"
#include "log.h"

static const char SHA[] =
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

struct fixture {
	char dir[64];
	struct agent a;
	struct ud_agentconf conf;
};

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_agent_supervise.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	agent_init(&f->a);
	f->conf.host = "test";
	f->conf.state_dir = f->dir;
	f->a.conf = &f->conf;
	f->a.state_path = ud_asprintf("%s/state.json", f->dir);
	f->a.images_dir = ud_asprintf("%s/images", f->dir);
	f->a.mirror_path = ud_asprintf("%s/repo.git", f->dir);
	assert_int_equal(proxy_start(&f->a.proxy, NULL, NULL, NULL), 0);
	ud_log_init(UD_LOG_ERROR, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	proxy_stop(f->a.proxy);
	agent_free(&f->a);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

/* A process in its own session that listens on 127.0.0.1 (an instance
 * that passes a TCP health check); *port gets its port. */
static pid_t spawn_listener(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setsid();
		for (;;)
			pause();
	}
	setpgid(pid, pid);
	close(fd);
	return pid;
}

/* An unrecorded instance: its own session, our state_dir in its env. */
static pid_t spawn_orphan(const char *state_dir)
{
	char *env[] = { ud_asprintf("UNIDEPLOY_STATE_DIR=%s", state_dir),
			"PATH=/usr/bin:/bin", NULL };
	char *argv[] = { "sleep", "60", NULL };
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		setsid();
		execve("/bin/sleep", argv, env);
		_exit(127);
	}
	setpgid(pid, pid);
	free(env[0]);
	return pid;
}

static struct instance *record(struct app *app, int id, int release,
			       pid_t pid, int port)
{
	struct instance *in = app_inst_add(app, id);

	in->release = release;
	memcpy(in->sha256, SHA, UD_SHA256_HEX);
	in->pid = pid;
	in->port = port;
	in->log = ud_strdup("/dev/null");
	assert_int_equal(ud_proc_starttime(pid, &in->starttime), 0);
	return in;
}

/* Alive in the sense that matters here: running, not a zombie. */
static int running(pid_t pid)
{
	unsigned long long t;

	return ud_proc_starttime(pid, &t) == 0;
}

static int execed(pid_t pid, const char *suffix)
{
	char *link = ud_asprintf("/proc/%d/exe", (int)pid), buf[256];
	ssize_t n = readlink(link, buf, sizeof(buf) - 1);

	free(link);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return n >= (ssize_t)strlen(suffix) &&
	       !strcmp(buf + n - strlen(suffix), suffix);
}

static void reap(pid_t pid)
{
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_adopt(void **state)
{
	struct fixture *f = *state;
	struct agent_state back;
	struct app *app, *loaded;
	pid_t serving, stale, gone, orphan;
	int port_serving, port_stale, port_gone;

	serving = spawn_listener(&port_serving);
	stale = spawn_listener(&port_stale);
	gone = spawn_listener(&port_gone);
	orphan = spawn_orphan(f->dir);

	app = state_app_add(&f->a.st, "pong");
	app->release = 2;
	record(app, 1, 2, serving, port_serving);
	record(app, 2, 3, stale, port_stale); /* half of a swap */
	record(app, 3, 2, gone, port_gone);
	reap(gone);
	/* The scan reads the environment of the exec'd program. */
	while (!execed(orphan, "/sleep"))
		usleep(1000);

	supervise_adopt(&f->a);

	assert_int_equal(app->ninst, 1);
	assert_int_equal(app->inst[0]->id, 1);
	assert_int_equal(app->inst[0]->pid, serving);
	assert_true(app->inst[0]->ready);
	assert_true(running(serving));
	assert_false(running(stale));
	assert_false(running(orphan));

	/* What was decided is on disk. */
	state_init(&back);
	assert_int_equal(state_load(&back, f->a.state_path), 0);
	assert_non_null(loaded = state_app(&back, "pong"));
	assert_int_equal(loaded->ninst, 1);
	assert_int_equal(loaded->inst[0]->pid, serving);
	state_free(&back);

	reap(serving);
	waitpid(stale, NULL, WNOHANG);
	waitpid(orphan, NULL, WNOHANG);
}

static void test_stop_all(void **state)
{
	struct fixture *f = *state;
	struct app *app;
	pid_t p1, p2;
	int port1, port2;

	p1 = spawn_listener(&port1);
	p2 = spawn_listener(&port2);
	app = state_app_add(&f->a.st, "pong");
	app->release = 1;
	record(app, 1, 1, p1, port1)->child = 1;
	record(app, 2, 1, p2, port2)->child = 1;

	supervise_stop_all(&f->a);

	assert_int_equal(app->ninst, 0);
	assert_false(running(p1));
	assert_false(running(p2));
}

/* Wake latencies: nearest-rank percentiles over the samples kept, the
 * oldest forgotten once the ring is full. */
/* A restarted instance with a serial health check must not see the ready
 * line of the run that crashed: each run gets a fresh log, the last one is
 * kept as <log>.prev. */
static void test_fresh_console_log(void **state)
{
	struct fixture *f = *state;
	struct ud_buf b = UD_BUF_INIT;
	char *log = ud_asprintf("%s/1-7.log", f->dir);
	char *prev = ud_asprintf("%s.prev", log);
	int fd;

	fd = supervise_open_log(log);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "boot\nREADY\n", 11), 11);
	close(fd);

	fd = supervise_open_log(log);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "boot\n", 5), 5);
	close(fd);
	assert_int_equal(ud_buf_read_file(&b, log), 0);
	assert_string_equal(b.ptr, "boot\n");
	ud_buf_clear(&b);
	assert_int_equal(ud_buf_read_file(&b, prev), 0);
	assert_string_equal(b.ptr, "boot\nREADY\n");

	/* An empty log is not worth keeping over the last real one. */
	assert_int_equal(truncate(log, 0), 0);
	fd = supervise_open_log(log);
	assert_true(fd >= 0);
	close(fd);
	ud_buf_clear(&b);
	assert_int_equal(ud_buf_read_file(&b, prev), 0);
	assert_string_equal(b.ptr, "boot\nREADY\n");
	ud_buf_free(&b);
	free(prev);
	free(log);
}

static void test_cold_percentiles(void **state)
{
	struct app app;
	double p50, p99;
	int i;

	(void)state;
	memset(&app, 0, sizeof(app));
	app_cold_percentiles(&app, &p50, &p99);
	assert_true(p50 == 0 && p99 == 0);
	for (i = 100; i >= 1; i--)
		app_cold_add(&app, i);
	app_cold_percentiles(&app, &p50, &p99);
	assert_true(p50 == 50);
	assert_true(p99 == 99);
	app_cold_add(&app, 1000);
	app_cold_percentiles(&app, &p50, &p99);
	assert_true(p50 == 51);
	assert_true(p99 == 100);
	/* 5000 more samples of 7: everything before is forgotten. */
	for (i = 0; i < 5000; i++)
		app_cold_add(&app, 7);
	app_cold_percentiles(&app, &p50, &p99);
	assert_true(p50 == 7 && p99 == 7);
	assert_int_equal(app.ncold, 4096);
	free(app.cold_ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cold_percentiles),
		cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fresh_console_log, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_all, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
