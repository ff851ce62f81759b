/*
 * check.c: `deploy-agent check`, what `run` would trip over, found before
 * it runs (the systemd unit's ExecStartPre). One line per check, "ok" or
 * "fail" and what was looked at; exit status 1 when one failed. It reads
 * and tries, and changes nothing but a fetch of the agent's own mirror.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <git2.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "buf.h"
#include "errors.h"
#include "fleet.h"
#include "names.h"
#include "net.h"
#include "repo.h"
#include "run.h"
#include "ssh.h"

struct checks {
	int failed;
};

static void report(struct checks *c, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct checks *c, int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%-5s ", ok ? "ok" : "fail");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!ok)
		c->failed++;
}

/* The nearest directory of path that exists: where `run` would create
 * the rest. */
static char *existing_ancestor(const char *path)
{
	char *p = ud_strdup(path), *slash;
	struct stat st;

	while (stat(p, &st) < 0 && (slash = strrchr(p, '/'))) {
		if (slash == p) {
			p[1] = '\0';
			break;
		}
		*slash = '\0';
	}
	return p;
}

/* state_dir: a directory the agent can write (a file created and
 * removed), or one it can create. */
static void check_state_dir(struct checks *c, const char *dir)
{
	struct stat st;
	char *probe, *up;
	int fd;

	if (stat(dir, &st) < 0) {
		up = existing_ancestor(dir);
		if (access(up, W_OK | X_OK) == 0)
			report(c, 1, "state_dir %s (missing; run creates it "
				     "in %s)", dir, up);
		else
			report(c, 0, "state_dir %s: missing, and %s is not "
				     "writable: %s", dir, up, strerror(errno));
		free(up);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		report(c, 0, "state_dir %s: not a directory", dir);
		return;
	}
	probe = ud_asprintf("%s/.check-%ld", dir, (long)getpid());
	fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		report(c, 0, "state_dir %s: cannot write in it: %s", dir,
		       strerror(errno));
	} else {
		close(fd);
		unlink(probe);
		report(c, 1, "state_dir %s (writable)", dir);
	}
	free(probe);
}

/* The control socket's directory must exist and take a new socket. */
static void check_control(struct checks *c, const char *control)
{
	char *copy = ud_strdup(control + 5), *dir = dirname(copy);
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		report(c, 0, "control %s: its directory %s does not exist",
		       control, dir);
	else if (access(dir, W_OK | X_OK) < 0)
		report(c, 0, "control %s: cannot create a socket in %s: %s",
		       control, dir, strerror(errno));
	else
		report(c, 1, "control %s", control);
	free(copy);
}

/* Who instances run as (agent.json "user"): *out NULL for the agent's
 * own user. Root switches to the user for them; another user can only be
 * that user. */
int agent_instance_user(const struct ud_agentconf *conf,
			 struct ud_cred **out)
{
	struct ud_cred c;
	int err;

	if (out)
		*out = NULL;
	if (!conf->user)
		return 0;
	if ((err = ud_cred_lookup(&c, conf->user)) < 0)
		return err;
	if (geteuid() != 0 && c.uid != geteuid())
		return ud_error_set(UD_EINVALID,
				    "user: the agent runs as uid %u and cannot "
				    "start instances as %s (uid %u); run it "
				    "as root or as %s",
				    (unsigned)geteuid(), conf->user,
				    (unsigned)c.uid, conf->user);
	if (out && geteuid() == 0) {
		*out = ud_malloc(sizeof(c));
		**out = c;
	}
	return 0;
}

static void check_user(struct checks *c, const struct ud_agentconf *conf)
{
	struct ud_cred cred;

	if (!conf->user)
		report(c, 1, "user: none, instances run as uid %u",
		       (unsigned)geteuid());
	else if (agent_instance_user(conf, NULL) < 0)
		report(c, 0, "%s", ud_error_last());
	else if (ud_cred_lookup(&cred, conf->user) == 0)
		report(c, 1, "user %s (uid %u)", conf->user,
		       (unsigned)cred.uid);
}

/* The repository as a sync reaches it (fetched into the agent's mirror,
 * with its key and known_hosts), and this host in its fleet.json. */
static void check_repo(struct checks *c, const struct ud_agentconf *conf)
{
	struct ud_deployrepo *repo = NULL;
	struct ud_fleet *fleet = NULL;
	struct ud_ssh_opts ssh;
	struct stat st;
	char *mirror = ud_asprintf("%s/repo.git", conf->state_dir);
	const char *tmpdir = getenv("TMPDIR");
	char *tmp = NULL, id[8];
	int own_tmp = 0;
	git_oid head;
	size_t i, placed = 0;

	/* Where nothing is there yet, the mirror goes to a temporary
	 * directory: check creates nothing of the agent's. */
	if (stat(conf->state_dir, &st) < 0) {
		/* $TMPDIR as mktemp(1) takes it, else /tmp */
		if (!tmpdir || *tmpdir != '/')
			tmpdir = "/tmp";
		tmp = ud_asprintf("%s/deploy-agent-check.XXXXXX", tmpdir);
		if (!mkdtemp(tmp)) {
			report(c, 0, "repository: cannot make a directory in "
				     "%s: %s", tmpdir, strerror(errno));
			free(tmp);
			free(mirror);
			return;
		}
		own_tmp = 1;
		free(mirror);
		mirror = ud_asprintf("%s/repo.git", tmp);
	}
	ud_ssh_opts_from_env(&ssh);
	if (conf->ssh_key)
		ssh.identity = conf->ssh_key;
	if (conf->known_hosts)
		ssh.known_hosts = conf->known_hosts;
	git_libgit2_init();
	if (ud_deployrepo_fetch_ex(&repo, mirror, conf->repo, &ssh) < 0 ||
	    ud_deployrepo_head(repo, &head) < 0 ||
	    ud_fleet_load(repo, &head, &fleet) < 0) {
		report(c, 0, "repository: %s", ud_error_last());
		goto done;
	}
	git_oid_tostr(id, sizeof(id), &head);
	report(c, 1, "repository %s (main at %s)", conf->repo, id);
	if (!ud_fleet_host(fleet, conf->host)) {
		struct ud_buf names = UD_BUF_INIT;

		for (i = 0; i < fleet->nhosts; i++)
			ud_buf_printf(&names, "%s%s", i ? ", " : "",
				      fleet->hosts[i].name);
		report(c, 0, "host %s is not in fleet.json (hosts: %s)",
		       conf->host, fleet->nhosts ? names.ptr : "none");
		ud_buf_free(&names);
		goto done;
	}
	for (i = 0; i < fleet->napps; i++) {
		size_t h;

		for (h = 0; h < fleet->apps[i].hosts.n; h++)
			if (!strcmp(fleet->apps[i].hosts.v[h], conf->host))
				placed++;
	}
	report(c, 1, "host %s in fleet.json (%zu app%s placed here)",
	       conf->host, placed, placed == 1 ? "" : "s");
done:
	ud_fleet_free(fleet);
	ud_deployrepo_free(repo);
	if (own_tmp)
		ud_rm_rf(tmp);
	free(tmp);
	free(mirror);
	git_libgit2_shutdown();
}

int agent_check(const struct ud_agentconf *conf, const char *config)
{
	struct checks c = { 0 };
	struct ud_addr addr;

	report(&c, 1, "configuration %s", config);
	if (ud_name_check_host(conf->host) < 0)
		report(&c, 0, "host: %s", ud_error_last());
	if (ud_addr_parse(&addr, conf->control) < 0)
		report(&c, 0, "control: %s", ud_error_last());
	else if (addr.family != AF_UNIX)
		report(&c, 0, "control %s: must be unix:PATH", conf->control);
	else
		check_control(&c, conf->control);
	check_state_dir(&c, conf->state_dir);
	check_user(&c, conf);
	check_repo(&c, conf);
	if (c.failed) {
		printf("%d check%s failed\n", c.failed,
		       c.failed == 1 ? "" : "s");
		return 1;
	}
	printf("configuration OK\n");
	return 0;
}
