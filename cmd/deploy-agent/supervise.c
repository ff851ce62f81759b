/*
 * supervise.c: the agent's instances. Starting one and waiting for its
 * health, restarting those that crash (with backoff), stopping summoned
 * ones that sit idle, and, after the agent itself restarts, adopting the
 * instances it had started and stopping any it had lost track of.
 *
 * Everything here runs on the reconcile thread, which owns the state.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervise.h"
#include "buf.h"
#include "errors.h"
#include "health.h"
#include "images.h"
#include "num.h"
#include "ipam.h"
#include "launch.h"
#include "log.h"
#include "net.h"
#include "proxy.h"
#include "network.h"
#include "priv.h"
#include "release.h"
#include "repo.h"
#include "volume.h"

#define STOP_GRACE_MS 5000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* A restarted instance that stays up this long gets a fresh backoff. */
#define BACKOFF_RESET_MS 60000
#define LOG_CAP (8 * 1024 * 1024)
/* Adopted instances get one short health check, not a full boot wait. */
#define ADOPT_HEALTH_MS 5000

void inst_host(const struct instance *in, char out[16])
{
	if (in->addr)
		ud_ip_format(out, in->addr);
	else
		strcpy(out, "127.0.0.1");
}

static int summoned(const struct app *app)
{
	return app->placed && app->place.mode == UD_MODE_SUMMON;
}

static void describe_exit(char *out, size_t len, int wstatus)
{
	if (WIFEXITED(wstatus))
		snprintf(out, len, "exited with status %d",
			 WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(out, len, "was killed by signal %d (%s)",
			 WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
	else
		snprintf(out, len, "exited");
}

/* Is the instance's process still running? Reaps it when it is ours
 * (the privileged parent reaps those it spawned and says how they
 * ended). */
static int inst_alive(struct agent *a, struct instance *in)
{
	if (in->pid <= 0)
		return 0;
	if (in->child && a->priv) {
		int running, st;

		if (priv_wait(a->priv, in->pid, &running, &st) == 0) {
			if (running)
				return 1;
			in->wstatus = st;
			in->pid = 0;
			return 0;
		}
		/* Not the parent's (any more): fall back to /proc. */
		ud_log_debug("pid %d: %s", (int)in->pid, ud_error_last());
		ud_error_clear();
		in->child = 0;
	} else if (in->child) {
		int st;
		pid_t r = waitpid(in->pid, &st, WNOHANG);

		if (r == 0)
			return 1;
		if (r == in->pid) {
			in->wstatus = st;
			in->pid = 0;
			return 0;
		}
		/* Reaped elsewhere (ECHILD): fall back to /proc. */
		in->child = 0;
	}
	if (ud_proc_is(in->pid, in->starttime))
		return 1;
	in->wstatus = -1;
	in->pid = 0;
	return 0;
}

static void inst_exit_text(const struct instance *in, char *out, size_t len)
{
	if (in->wstatus == -1)
		snprintf(out, len, "exited");
	else
		describe_exit(out, len, in->wstatus);
}

/* Give a backend's clean shutdown (qemu's QMP quit) its grace period. */
static void wait_gone(struct agent *a, struct instance *in, int grace_ms)
{
	long long until = ud_now_ms() + grace_ms;

	while (inst_alive(a, in) && ud_now_ms() < until)
		usleep(10 * 1000);
}

/* Stop the process, keep the slot. */
static void inst_kill(struct agent *a, struct app *app, struct instance *in)
{
	if (in->pid <= 0)
		return;
	if ((in->child || ud_proc_is(in->pid, in->starttime)) &&
	    launch_shutdown(a, app, in))
		wait_gone(a, in, STOP_GRACE_MS);
	if (in->pid > 0 && in->child && a->priv) {
		int st;

		if (priv_stop_group(a->priv, in->pid, STOP_GRACE_MS, &st) < 0) {
			ud_log_warn("stopping pid %d: %s", (int)in->pid,
				    ud_error_last());
			ud_error_clear();
		}
	} else if (in->pid > 0 &&
		   (in->child || ud_proc_is(in->pid, in->starttime))) {
		if (ud_stop_group(in->pid, STOP_GRACE_MS) < 0)
			ud_log_warn("stopping pid %d: %s", (int)in->pid,
				    ud_error_last());
	}
	in->pid = 0;
	in->ready = 0;
}

void supervise_stop(struct agent *a, struct app *app, struct instance *in)
{
	if (in->pid > 0)
		ud_log_info("%s: stopping instance %d (release %d, pid %d)",
			    app->name, in->id, in->release, (int)in->pid);
	inst_kill(a, app, in);
	network_detach(a, in);
	app_inst_remove(app, in);
}

void supervise_stop_all(struct agent *a)
{
	size_t i;

	for (i = 0; i < a->st.napps; i++) {
		struct app *app = a->st.apps[i];
		size_t j;

		if (app->listen)
			proxy_unlisten(a->proxy, app->name);
		/* Those that exited for good stay recorded as such: the
		 * agent's restart must not start them again. */
		for (j = app->ninst; j-- > 0;)
			if (!app->inst[j]->exited || app->inst[j]->pid > 0)
				supervise_stop(a, app, app->inst[j]);
	}
	agent_save(a);
}

void supervise_backends(struct agent *a, struct app *app)
{
	struct proxy_backend *b;
	size_t i, n = 0, booting = 0;

	if (!app->listen)
		return;
	b = ud_calloc(app->ninst + 1, sizeof(*b));
	for (i = 0; i < app->ninst; i++) {
		struct instance *in = app->inst[i];

		if (in->job && in->pid > 0)
			booting++;
		if (in->ready && in->pid > 0) {
			b[n].id = in->id;
			b[n].addr = in->addr;
			b[n].port = in->port;
			n++;
		}
	}
	/* In this order (see proxy.h): connections waiting for the
	 * booting ones must not spill onto full ones in between. */
	proxy_set_backends(a->proxy, app->name, b, n);
	proxy_set_booting(a->proxy, app->name, booting);
	free(b);
}

/*
 * Each run of an instance starts a fresh console log: a serial health
 * check reads the log from its start, and a restarted instance must not
 * pass on the ready line its crashed run printed. That run's console stays
 * beside it as <log>.prev, for the post-mortem.
 */
int supervise_open_log(const char *path)
{
	struct stat sb;
	char *prev;

	if (stat(path, &sb) == 0 && sb.st_size > 0) {
		prev = ud_asprintf("%s.prev", path);
		if (rename(path, prev) < 0)
			ud_log_warn("cannot keep %s as %s: %s", path, prev,
				    strerror(errno));
		free(prev);
	}
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
		    0640);
}

static int inst_spawn(struct agent *a, struct app *app,
		      const struct ud_manifest *m, struct instance *in)
{
	struct ud_strvec argv = UD_STRVEC_INIT, env = UD_STRVEC_INIT;
	struct ud_strvec nets = UD_STRVEC_INIT;
	const char *target = app->place.target ? app->place.target : "unix";
	char *rundir = NULL, *logdir = NULL, *image = NULL;
	char buf[32], host[16];
	int fd = -1, err;
	size_t i;

	rundir = ud_asprintf("%s/apps/%s/run", a->conf->state_dir, app->name);
	logdir = ud_asprintf("%s/apps/%s/logs", a->conf->state_dir, app->name);
	if ((err = ud_mkdir_p(rundir, 0750)) < 0 ||
	    (err = ud_mkdir_p(logdir, 0750)) < 0)
		goto done;
	/* With "user", the instance reaches its run directory, and owns
	 * it, through state_dir/apps/<app> (its logs stay the agent's: it
	 * writes them through the descriptor it is given). */
	{
		char *apps = ud_asprintf("%s/apps", a->conf->state_dir);
		char *appdir = ud_asprintf("%s/apps/%s", a->conf->state_dir,
					   app->name);

		err = agent_share_dir(a, apps);
		if (err == 0)
			err = agent_share_dir(a, appdir);
		free(apps);
		free(appdir);
		if (err < 0 || (err = agent_give(a, rundir)) < 0)
			goto done;
	}
	image = image_path(a, in->sha256);
	/* Every start, not only the sync's: the file may have changed since
	 * it was unpacked. Refused here, it is unpacked again meanwhile. */
	if ((err = images_check_start(a, m, in->sha256)) < 0) {
		app_set_error(app, "%s", ud_error_last());
		goto done;
	}
	/* Volumes: normally there from the sync's prepare; made again if
	 * removed. */
	if ((err = volume_ensure(a, app->name, m)) < 0 ||
	    (err = network_devices(a, target, image, &nets)) < 0 ||
	    (err = network_attach(a, app, in, nets.n)) < 0)
		goto done;
	/* A VM on the host network answers on run.port at its own address;
	 * anything else on a free port of 127.0.0.1. */
	if (in->addr)
		in->port = m->run.port;
	else if ((err = ud_net_free_port(&in->port)) < 0)
		goto done;
	free(in->log);
	in->log = ud_asprintf("%s/%d-%d.log", logdir, in->release, in->id);
	if ((fd = supervise_open_log(in->log)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot open %s", in->log);
		goto done;
	}

	if ((err = launch_command(a, app, m, target, in, rundir, &argv)) < 0 ||
	    (err = agent_give(a, rundir)) < 0)
		goto done;

	/* A clean environment: the agent's own must not leak into apps. */
	ud_strvec_push(&env, "PATH=/usr/local/bin:/usr/bin:/bin");
	for (i = 0; i < m->run.env.n; i++) {
		const char *kv = m->run.env.v[i], *eq = strchr(kv, '=');
		char *name;

		if (!eq)
			continue;
		name = ud_strndup(kv, (size_t)(eq - kv));
		ud_env_set(&env, name, eq + 1);
		free(name);
	}
	snprintf(buf, sizeof(buf), "%d", in->port);
	ud_env_set(&env, "PORT", buf);
	ud_env_set(&env, "UNIDEPLOY_STATE_DIR", a->conf->state_dir);
	snprintf(buf, sizeof(buf), "%d", in->id);
	{
		char *id = ud_asprintf("%s/%s", app->name, buf);

		ud_env_set(&env, "UNIDEPLOY_INSTANCE", id);
		free(id);
	}

	if ((err = launch_spawn(a, app, m, target, in, rundir, argv.v, env.v,
				fd, &in->pid)) < 0) {
		ud_error_prefix("starting release %d of %s", in->release,
				app->name);
		in->pid = 0;
		goto done;
	}
	in->child = 1;
	in->ready = 0;
	if (ud_proc_starttime(in->pid, &in->starttime) < 0) {
		/* Gone already; the health wait reports how it exited. */
		in->starttime = 0;
		ud_error_clear();
	}
	inst_host(in, host);
	ud_log_info("%s: started instance %d of release %d (pid %d, %s:%d)",
		    app->name, in->id, in->release, (int)in->pid, host,
		    in->port);
done:
	if (fd >= 0)
		close(fd);
	free(rundir);
	free(logdir);
	free(image);
	ud_strvec_free(&nets);
	ud_strvec_free(&argv);
	ud_strvec_free(&env);
	return err;
}

struct alive {
	struct agent *a;
	struct instance *in;
};

static int alive_cb(void *payload, char *why, size_t whylen)
{
	struct alive *al = payload;
	char how[96];

	if (agent_stopping(al->a)) {
		snprintf(why, whylen, "the agent is shutting down");
		return 0;
	}
	if (inst_alive(al->a, al->in))
		return 1;
	inst_exit_text(al->in, how, sizeof(how));
	snprintf(why, whylen, "the instance %s (see %s)", how, al->in->log);
	return 0;
}

static int inst_wait_healthy(struct agent *a, const struct ud_manifest *m,
			     struct instance *in, int timeout_ms)
{
	struct alive al = { a, in };
	char host[16];
	int err;

	inst_host(in, host);
	err = ud_health_wait(&m->health, host, in->port, in->log,
			     timeout_ms, alive_cb, &al);
	if (err < 0)
		ud_error_prefix("health check");
	return err;
}

static int health_timeout_ms(const struct ud_manifest *m)
{
	return (m->health.timeout_s > 0 ? m->health.timeout_s : 20) * 1000;
}

int supervise_boot(struct agent *a, struct app *app,
		   const struct ud_manifest *m, const char *sha256,
		   struct instance **out)
{
	struct instance *in = app_inst_add(app, a->st.next_id++);
	long long t0 = ud_now_ms();
	int err;

	in->release = m->release;
	memcpy(in->sha256, sha256, UD_SHA256_HEX);
	if ((err = inst_spawn(a, app, m, in)) < 0)
		goto done;
	/* Recorded before anything can go wrong, so a crash of the agent
	 * from here on cannot lose this process. */
	agent_save(a);
	if ((err = inst_wait_healthy(a, m, in, health_timeout_ms(m))) < 0)
		goto done;
	in->up_since = in->busy_at = ud_now_ms();
	ud_log_info("%s: instance %d of release %d is healthy (%lld ms)",
		    app->name, in->id, in->release, in->up_since - t0);
done:
	if (err < 0) {
		/* Stopping touches /proc and may set messages of its own:
		 * the caller must see why the instance failed. */
		struct ud_error_state why;

		ud_error_save(&why);
		ud_log_warn("%s: release %d: %s", app->name, m->release,
			    why.msg);
		/* Its own last words go to the pusher with the reason. */
		app_set_log_tail(app, in->log);
		supervise_stop(a, app, in);
		agent_save(a);
		ud_error_restore(&why);
		in = NULL;
	}
	*out = in;
	return err;
}

/* An instance of the serving release came down on its own: try again. */
static void restart(struct agent *a, struct app *app, struct instance *in)
{
	const struct ud_manifest *m = app->manifest;
	int err;

	if ((err = inst_spawn(a, app, m, in)) < 0)
		goto done;
	agent_save(a);
	if ((err = inst_wait_healthy(a, m, in, health_timeout_ms(m))) < 0)
		goto done;
	in->ready = 1;
	in->up_since = in->busy_at = ud_now_ms();
	supervise_backends(a, app);
	/* A refused start said why; back, the release serves again. */
	if (app->status != APP_FAILED)
		app_set_error(app, NULL);
	ud_log_info("%s: instance %d is back", app->name, in->id);
done:
	if (err < 0) {
		ud_log_warn("%s: restarting instance %d: %s; next try in %d s",
			    app->name, in->id, ud_error_last(),
			    in->backoff_ms / 1000);
		inst_kill(a, app, in);
		agent_save(a);
		in->restart_at = ud_now_ms() + in->backoff_ms;
		in->backoff_ms = in->backoff_ms * 2 > BACKOFF_MAX_MS ?
			BACKOFF_MAX_MS : in->backoff_ms * 2;
	}
}

static void cap_log(const struct instance *in)
{
	struct stat sb;

	/* The child appends (O_APPEND), so truncating under it is safe: its
	 * next write lands at the new end. */
	if (in->log && stat(in->log, &sb) == 0 && sb.st_size > LOG_CAP &&
	    truncate(in->log, 0) == 0)
		ud_log_info("truncated %s (over %d MiB)", in->log,
			    LOG_CAP >> 20);
}

/* Instances that serve or soon will. */
static size_t app_up(const struct app *app)
{
	size_t i, n = 0;

	for (i = 0; i < app->ninst; i++)
		if (app->inst[i]->pid > 0 &&
		    (app->inst[i]->ready || app->inst[i]->job))
			n++;
	return n;
}

/* An instance of the serving release ended and run.restart says not to
 * start it again: keep its slot (no sync refills it) and say so. */
static void inst_exited(struct agent *a, struct app *app, struct instance *in,
			const char *how)
{
	const char *policy = ud_restart_name(app->manifest->run.restart);
	size_t i, left = 0;
	int clean = in->wstatus != -1 && WIFEXITED(in->wstatus) &&
		    WEXITSTATUS(in->wstatus) == 0;

	in->exited = 1;
	in->pid = 0;
	/* Its taps and address are of no use to anyone now. */
	network_detach(a, in);
	ud_log_info("%s: instance %d (release %d) %s; not restarted "
		    "(run.restart: %s)",
		    app->name, in->id, in->release, how, policy);
	if (!clean) {
		app_set_error(app, "instance %d %s; not restarted (run.restart: "
			      "%s; see %s)",
			      in->id, how, policy, in->log);
		app_set_log_tail(app, in->log);
	}
	for (i = 0; i < app->ninst; i++)
		if (app->inst[i]->release == app->release &&
		    !app->inst[i]->exited)
			left++;
	if (!left)
		app->status = APP_EXITED;
}

/* Returns 1 if something changed. */
static int tick_instance(struct agent *a, struct app *app,
			 struct instance *in, long long now, int check_logs)
{
	char how[96];

	if (in->pid > 0) {
		if (inst_alive(a, in) && in->drain_until) {
			if (proxy_active(a->proxy, app->name, in->id) > 0 &&
			    now < in->drain_until)
				return 0;
			ud_log_info("%s: instance %d (release %d) drained",
				    app->name, in->id, in->release);
			supervise_stop(a, app, in);
			return 1;
		}
		if (inst_alive(a, in)) {
			if (check_logs)
				cap_log(in);
			if (!in->ready || !summoned(app))
				return 0;
			if (proxy_active(a->proxy, app->name, in->id) > 0) {
				in->busy_at = now;
				return 0;
			}
			if (now - in->busy_at <
			    (long long)app->place.idle_stop_s * 1000)
				return 0;
			in->ready = 0;
			supervise_backends(a, app);
			/* A connection may have slipped in meanwhile. */
			if (proxy_active(a->proxy, app->name, in->id) > 0) {
				in->ready = 1;
				in->busy_at = now;
				supervise_backends(a, app);
				return 0;
			}
			ud_log_info("%s: instance %d idle for %d s",
				    app->name, in->id, app->place.idle_stop_s);
			supervise_stop(a, app, in);
			return 1;
		}
		inst_exit_text(in, how, sizeof(how));
		in->ready = 0;
		supervise_backends(a, app);
		if (summoned(app) || in->release != app->release ||
		    !app->manifest) {
			int booting = in->job != NULL;

			ud_log_warn("%s: instance %d (release %d) %s%s",
				    app->name, in->id, in->release, how,
				    booting ? " while booting" : "");
			if (booting) {
				app_set_error(app, "summon: the instance %s "
					      "while booting (see %s)", how,
					      in->log);
				app_set_log_tail(app, in->log);
			}
			app_inst_remove(app, in);
			/* The next connection boots a fresh one; those
			 * waiting for this one would only wait in vain. */
			if (booting && summoned(app) && !app_up(app))
				proxy_drop_held(a->proxy, app->name);
			/* Connections the proxy held back from the dead
			 * instance: boot for them now, not at the proxy's
			 * next reminder. */
			if (!booting && summoned(app) && app->listen) {
				size_t held = 0;

				proxy_counts(a->proxy, app->name, NULL, &held);
				if (held)
					supervise_demand(a, app);
			}
			return 1;
		}
		if (!ud_restart_wanted(app->manifest->run.restart,
				       in->wstatus)) {
			inst_exited(a, app, in, how);
			return 1;
		}
		if (in->up_since && now - in->up_since >= BACKOFF_RESET_MS)
			in->backoff_ms = BACKOFF_MIN_MS;
		in->restart_at = now + in->backoff_ms;
		ud_log_warn("%s: instance %d (release %d) %s; restarting in "
			    "%d s",
			    app->name, in->id, in->release, how,
			    in->backoff_ms / 1000);
		in->backoff_ms = in->backoff_ms * 2 > BACKOFF_MAX_MS ?
			BACKOFF_MAX_MS : in->backoff_ms * 2;
		return 1;
	}
	if (in->exited && !summoned(app) && in->release == app->release)
		return 0;
	if (in->release != app->release || !app->manifest) {
		app_inst_remove(app, in);
		return 1;
	}
	if (now < in->restart_at)
		return 0;
	restart(a, app, in);
	return 1;
}

void supervise_tick(struct agent *a)
{
	static long long last_log_check;
	long long now = ud_now_ms();
	int check_logs = now - last_log_check > 5000;
	int changed = 0;
	size_t i, j;

	if (check_logs)
		last_log_check = now;
	for (i = 0; i < a->st.napps && !agent_stopping(a); i++) {
		struct app *app = a->st.apps[i];

		/* Walk backwards: tick_instance may remove the slot. */
		for (j = app->ninst; j-- > 0;) {
			if (j >= app->ninst)
				continue;
			changed |= tick_instance(a, app, app->inst[j], now,
						 check_logs);
		}
	}
	if (changed) {
		agent_save(a);
		agent_publish(a);
	}
}

/* Summoning */

#define REFUSED_LOG_MS 10000 /* one "refused" line per app this often */

static int job_alive(void *payload, char *why, size_t whylen)
{
	struct boot_job *j = payload;

	if (atomic_load(&j->cancel)) {
		snprintf(why, whylen, "the instance was stopped");
		return 0;
	}
	if (agent_stopping(j->a)) {
		snprintf(why, whylen, "the agent is shutting down");
		return 0;
	}
	return 1;
}

static void *boot_main(void *arg)
{
	struct boot_job *j = arg;
	struct agent *a = j->a;

	j->err = ud_health_wait(&j->health, j->host, j->port, j->log,
				j->timeout_ms, job_alive, j);
	if (j->err < 0)
		j->why = ud_asprintf("health check: %s", ud_error_last());
	agent_boot_done(a, j);
	return NULL;
}

static int start_job(struct agent *a, struct boot_job *j)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Signals are for the daemon's main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	agent_boot_begin(a);
	rc = pthread_create(&th, &attr, boot_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		agent_boot_abort(a);
		return ud_error_set(UD_ERROR, "cannot start a boot thread: %s",
				    strerror(rc));
	}
	return 0;
}

/* Spawn an instance of the serving release and leave its health to a
 * boot thread. */
static int boot_async(struct agent *a, struct app *app, int cold,
		      long long since)
{
	const struct ud_manifest *m = app->manifest;
	struct instance *in = app_inst_add(app, a->st.next_id++);
	struct boot_job *j = NULL;
	int err;

	in->release = m->release;
	memcpy(in->sha256, app->image, UD_SHA256_HEX);
	if ((err = inst_spawn(a, app, m, in)) < 0)
		goto done;
	agent_save(a);
	j = ud_calloc(1, sizeof(*j));
	j->a = a;
	j->app = ud_strdup(app->name);
	j->id = in->id;
	j->port = in->port;
	inst_host(in, j->host);
	j->log = ud_strdup(in->log);
	j->health.kind = m->health.kind;
	j->health.http_path = m->health.http_path ?
		ud_strdup(m->health.http_path) : NULL;
	j->health.serial_regex = m->health.serial_regex ?
		ud_strdup(m->health.serial_regex) : NULL;
	j->health.timeout_s = m->health.timeout_s;
	j->timeout_ms = health_timeout_ms(m);
	j->cold = cold;
	j->since = since;
	if ((err = start_job(a, j)) < 0)
		goto done;
	in->job = j;
	j = NULL;
	app->boots++;
	if (cold)
		app->wakes++;
done:
	boot_job_free(j);
	if (err < 0) {
		struct ud_error_state why;

		ud_error_save(&why);
		ud_log_warn("%s: summon: %s", app->name, why.msg);
		supervise_stop(a, app, in);
		agent_save(a);
		ud_error_restore(&why);
	}
	return err;
}

static int inst_memory_mb(const struct app *app)
{
	int mb = app->manifest ? app->manifest->run.memory_mb : 0;

	return mb > 0 ? mb : 64;
}

/* Would one more instance of app pass the owner's limits? Every running
 * instance counts, booting and boot-mode ones included. */
static int over_cap(struct agent *a, const struct app *app, char *why,
		    size_t len)
{
	long long n = 0, mb = 0;
	size_t i, j;

	for (i = 0; i < a->st.napps; i++) {
		const struct app *o = a->st.apps[i];

		for (j = 0; j < o->ninst; j++) {
			if (o->inst[j]->pid <= 0)
				continue;
			n++;
			mb += inst_memory_mb(o);
		}
	}
	if (a->conf->max_instances > 0 && n + 1 > a->conf->max_instances) {
		snprintf(why, len, "the host's cap of %d instances "
			 "(limits.max_instances) is reached",
			 a->conf->max_instances);
		return 1;
	}
	if (a->conf->max_memory_mb > 0 &&
	    mb + inst_memory_mb(app) > a->conf->max_memory_mb) {
		snprintf(why, len, "%lld MiB more would pass the host's cap "
			 "of %d MiB (limits.max_memory_mb; %lld MiB in use)",
			 (long long)inst_memory_mb(app),
			 a->conf->max_memory_mb, mb);
		return 1;
	}
	return 0;
}

void supervise_demand(struct agent *a, struct app *app)
{
	size_t i, running = 0, up = 0, open = 0, held = 0, need, max;
	long long since;
	char why[160];
	int conc = app->place.concurrency;

	if (!summoned(app) || !app->manifest || !app->release ||
	    !app->image[0])
		return;
	for (i = 0; i < app->ninst; i++) {
		struct instance *in = app->inst[i];

		if (in->pid <= 0)
			continue;
		running++;
		/* Draining instances of an older release take nothing new. */
		if ((in->ready || in->job) && !in->drain_until)
			up++;
	}
	proxy_counts(a->proxy, app->name, &open, &held);
	/* Enough instances for every connection, open or waiting, at
	 * `concurrency` each; instances still booting count, which is
	 * what keeps the proxy's repeated calls from starting more. */
	need = conc > 0 ? (open + held + (size_t)conc - 1) / (size_t)conc : 1;
	if (need < 1)
		need = 1;
	max = app->place.max_instances > 0 ? (size_t)app->place.max_instances :
					     1;
	/* Two instances never write one volume. */
	if (app->manifest && app->manifest->run.nblock)
		max = 1;
	since = proxy_held_since(a->proxy, app->name);
	if (!since)
		since = ud_now_ms();
	while (up < need && running < max) {
		if (over_cap(a, app, why, sizeof(why))) {
			size_t dropped = up ? 0 :
				proxy_drop_held(a->proxy, app->name);
			long long now = ud_now_ms();

			app->refused++;
			if (dropped || now - app->refused_logged >=
					       REFUSED_LOG_MS) {
				app->refused_logged = now;
				ud_log_warn("%s: not booting another instance: "
					    "%s%s", app->name, why,
					    dropped ? "; closing the waiting "
						      "connections" : "");
			}
			break;
		}
		ud_log_info("%s: summoned (%zu running, %zu open, %zu "
			    "waiting)", app->name, running, open, held);
		if (boot_async(a, app, up == 0, since) < 0) {
			app_set_error(app, "summon: %s", ud_error_last());
			if (!up)
				proxy_drop_held(a->proxy, app->name);
			break;
		}
		running++;
		up++;
	}
	/* The proxy keeps what the ready ones have no room for for these. */
	supervise_backends(a, app);
	agent_publish(a);
}

/* Mark the healthy instances of the finished jobs ready, stop the
 * others. */
static int take_booted(struct agent *a, struct boot_job *list)
{
	struct boot_job *j;
	int changed = 0;

	while ((j = list)) {
		struct app *app = state_app(&a->st, j->app);
		struct instance *in = NULL;
		size_t i, up = 0;

		list = j->next;
		for (i = 0; app && i < app->ninst; i++)
			if (app->inst[i]->job == j)
				in = app->inst[i];
		if (!in)
			goto next;
		in->job = NULL;
		changed = 1;
		if (j->err == 0) {
			in->ready = 1;
			in->up_since = in->busy_at = ud_now_ms();
			supervise_backends(a, app);
			if (j->cold)
				app_cold_add(app, (double)(in->up_since -
							   j->since));
			app_set_error(app, NULL);
			app->status = APP_SUMMONABLE;
			ud_log_info("%s: instance %d of release %d is ready "
				    "(%lld ms after it was asked for)",
				    app->name, in->id, in->release,
				    in->up_since - j->since);
			goto next;
		}
		ud_log_warn("%s: instance %d of release %d: %s", app->name,
			    in->id, in->release, j->why);
		app_set_error(app, "summon: %s", j->why);
		app_set_log_tail(app, in->log);
		supervise_stop(a, app, in);
		supervise_backends(a, app); /* one fewer coming */
		up = app_up(app);
		/* Nothing else is coming up for them: closed beats a hang
		 * until hold_ms (and a boot retried every second). */
		if (!up)
			proxy_drop_held(a->proxy, app->name);
next:
		boot_job_free(j);
	}
	if (changed) {
		agent_save(a);
		agent_publish(a);
	}
	return changed;
}

int supervise_booted(struct agent *a)
{
	return take_booted(a, agent_booted(a, 0));
}

void supervise_join_boots(struct agent *a)
{
	take_booted(a, agent_booted(a, 1));
}

/* Adoption */

static int recorded(struct agent *a, pid_t pid)
{
	size_t i, j;

	for (i = 0; i < a->st.napps; i++)
		for (j = 0; j < a->st.apps[i]->ninst; j++)
			if (a->st.apps[i]->inst[j]->pid == pid)
				return 1;
	return 0;
}

/* The process group of pid, from /proc/PID/stat; -1 if unknown. */
static pid_t proc_pgrp(pid_t pid)
{
	struct ud_buf b = UD_BUF_INIT;
	char *path = ud_asprintf("/proc/%d/stat", (int)pid), *p;
	int ppid, pgrp = -1;
	char state;

	b.max = 4096;
	if (ud_buf_read_file(&b, path) == 0 && (p = strrchr(b.ptr, ')')) &&
	    sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
		pgrp = -1;
	ud_error_clear();
	free(path);
	ud_buf_free(&b);
	return (pid_t)pgrp;
}

/* Does pid run with UNIDEPLOY_STATE_DIR=<ours>? */
static int ours(pid_t pid, const char *want)
{
	char *path = ud_asprintf("/proc/%d/environ", (int)pid);
	struct ud_buf b = UD_BUF_INIT;
	size_t off, wl = strlen(want);
	int found = 0;

	b.max = 1024 * 1024;
	if (ud_buf_read_file(&b, path) < 0)
		goto done;
	for (off = 0; off < b.size; off += strlen(b.ptr + off) + 1) {
		if (strlen(b.ptr + off) == wl && !memcmp(b.ptr + off, want, wl)) {
			found = 1;
			break;
		}
	}
done:
	ud_error_clear();
	free(path);
	ud_buf_free(&b);
	return found;
}

/*
 * An instance spawned right before the agent was killed may not have made
 * it into state.json. Every instance leads its own process group and
 * carries our state_dir in its environment, which is how it is found.
 */
static void stop_orphans(struct agent *a)
{
	char *want = ud_asprintf("UNIDEPLOY_STATE_DIR=%s", a->conf->state_dir);
	struct dirent *e;
	DIR *d = opendir("/proc");

	while (d && (e = readdir(d))) {
		long long n;
		pid_t pid;

		if (ud_num_parse(e->d_name, 2, INT_MAX, &n) < 0)
			continue;
		pid = (pid_t)n;
		if (pid == getpid() || recorded(a, pid))
			continue;
		if (proc_pgrp(pid) != pid || !ours(pid, want))
			continue;
		ud_log_warn("stopping pid %d: an instance this agent started "
			    "but did not record", (int)pid);
		if (ud_stop_group(pid, STOP_GRACE_MS) < 0)
			ud_log_warn("stopping pid %d: %s", (int)pid,
				    ud_error_last());
	}
	if (d)
		closedir(d);
	free(want);
}

static void adopt_app(struct agent *a, struct app *app,
		      struct ud_deployrepo *repo, const struct ud_fleet *fleet)
{
	const struct ud_placement *p = fleet ?
		ud_fleet_placement(fleet, app->name) : NULL;
	size_t j;
	int hold = 30000, conc = 0, serving = 0, exited = 0;

	if (repo && app->release > 0 && !app->manifest &&
	    ud_release_manifest(repo, NULL, app->name, app->release,
				&app->manifest) < 0) {
		ud_log_warn("%s: %s", app->name, ud_error_last());
		app->manifest = NULL;
	}
	if (p) {
		placement_copy(&app->place, p);
		app->placed = 1;
		if (p->mode == UD_MODE_SUMMON) {
			conc = p->concurrency;
			if (app->manifest)
				hold = health_timeout_ms(app->manifest) + 5000;
		}
	}
	for (j = app->ninst; j-- > 0;) {
		struct instance *in = app->inst[j];
		int err;

		if (in->exited && in->pid <= 0) {
			/* run.restart said so before the agent restarted:
			 * still exited, unless another release serves. */
			if (in->release != app->release)
				app_inst_remove(app, in);
			else
				exited++;
			continue;
		}
		if (!ud_proc_is(in->pid, in->starttime)) {
			ud_log_info("%s: instance %d (pid %d) is gone",
				    app->name, in->id, (int)in->pid);
			app_inst_remove(app, in);
			continue;
		}
		in->child = 0;
		if (in->release != app->release) {
			/* Half of a swap the agent did not finish: the
			 * next sync redoes it from the serving release. */
			supervise_stop(a, app, in);
			continue;
		}
		if (app->manifest)
			err = inst_wait_healthy(a, app->manifest, in,
						ADOPT_HEALTH_MS);
		else {
			char host[16];

			inst_host(in, host);
			err = ud_health_tcp_once(host, in->port,
						 ADOPT_HEALTH_MS);
		}
		if (err < 0) {
			ud_log_warn("%s: adopted instance %d: %s", app->name,
				    in->id, ud_error_last());
			supervise_stop(a, app, in);
			continue;
		}
		ud_log_info("%s: adopted instance %d of release %d (pid %d)",
			    app->name, in->id, in->release, (int)in->pid);
		in->ready = 1;
		in->up_since = in->busy_at = ud_now_ms();
		memcpy(app->image, in->sha256, UD_SHA256_HEX);
		serving++;
	}
	if (app->listen && (serving || (p && p->mode == UD_MODE_SUMMON))) {
		proxy_set_http(a->proxy, app->name, app->manifest &&
			       app->manifest->health.kind == UD_HEALTH_HTTP);
		if (proxy_listen(a->proxy, app->name, app->listen, hold, conc) <
		    0) {
			ud_log_error("%s: %s", app->name, ud_error_last());
		} else {
			supervise_backends(a, app);
		}
	}
	if (serving)
		app->status = summoned(app) ? APP_SUMMONABLE : APP_RUNNING;
	else if (exited)
		app->status = APP_EXITED;
	else if (app->error)
		app->status = APP_FAILED;
}

void supervise_adopt(struct agent *a)
{
	struct ud_deployrepo *repo = NULL;
	struct ud_fleet *fleet = NULL;
	size_t i;

	/* The mirror as the last sync left it: enough to know how to check
	 * and serve what still runs, even if the repository is unreachable. */
	if (access(a->mirror_path, F_OK) == 0) {
		git_oid head;

		if (ud_deployrepo_open(&repo, a->mirror_path) < 0 ||
		    agent_trusted_head(a, repo, &head) < 0 ||
		    ud_fleet_load(repo, &head, &fleet) < 0) {
			ud_log_warn("reading %s: %s", a->mirror_path,
				    ud_error_last());
			ud_error_clear();
		}
	}
	for (i = 0; i < a->st.napps && !agent_stopping(a); i++)
		adopt_app(a, a->st.apps[i], repo, fleet);
	agent_save(a);
	stop_orphans(a);
	network_sweep(a);
	ud_fleet_free(fleet);
	ud_deployrepo_free(repo);
	agent_publish(a);
}
