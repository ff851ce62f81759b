/*
 * priv.c: the privileged parent of `deploy-agent run` (priv.h), and the
 * unprivileged part's side of the socketpair.
 *
 * The parent is small on purpose, as vmd's and httpd's are: it reads one
 * request at a time, checks every field against what the agent's own
 * configuration allows (its state_dir, its tap names, its bridge, the
 * backend table) and only then acts. What it is sent is never a command
 * to run: the program of an instance is the image (unix) or the one the
 * target's template names, resolved here; only the arguments after it
 * (run.args and the template's, for a program that runs as the
 * unprivileged instance user with no_new_privs) come from the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "priv.h"
#include "backend.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "net.h"
#include "netdev.h"

/* The largest message: a header and the largest struct. */
#define PRIV_MSG_MAX (sizeof(struct priv_hdr) + sizeof(struct priv_spawn))

/* The seeds of network.c: device 0 from the state dir, device k from
 * "<state_dir>#net<k>". */
void priv_parent_init(struct priv_parent *p, const char *state_dir,
		      const char *bridge, const char *templates,
		      const char *host, const struct ud_cred *cred)
{
	size_t k;

	memset(p, 0, sizeof(*p));
	p->state_dir = state_dir;
	p->bridge = bridge;
	p->templates = templates;
	p->host = host;
	p->cred = cred;
	p->sock = -1;
	p->child = -1;
	/* Far above any host's `limits`: only a child gone wrong meets it. */
	p->max_procs = 4096;
	for (k = 0; k < PRIV_MAXNETS; k++) {
		char *seed = k ? ud_asprintf("%s#net%zu", state_dir, k) :
				 ud_strdup(state_dir);

		ud_tap_prefix(p->tap_prefix[k], seed);
		free(seed);
	}
}

void priv_parent_free(struct priv_parent *p)
{
	if (!p)
		return;
	free(p->procs);
	p->procs = NULL;
	p->nprocs = p->cap = 0;
}

/* Checks of single fields */

/* A fixed char array holds a NUL-terminated string. */
static int field_str(const char *f, size_t size, const char *what)
{
	if (!memchr(f, '\0', size))
		return ud_error_set(UD_EINVALID, "%s is not terminated", what);
	return 0;
}

static int tap_ok(const struct priv_parent *p, const char tap[])
{
	size_t k;
	int id, err;

	if ((err = field_str(tap, UD_IFNAME_STRLEN, "the tap name")) < 0)
		return err;
	if (!p->bridge)
		return ud_error_set(UD_EINVALID, "tap %s: the agent has no "
				    "network", tap);
	for (k = 0; k < PRIV_MAXNETS; k++)
		if (ud_tap_parse_id(&id, p->tap_prefix[k], tap) == 0)
			return 0;
	ud_error_clear();
	return ud_error_set(UD_EINVALID, "tap '%s' is not one of this agent's",
			    tap);
}

/* path, resolved, is exactly under/<one more component>, and *out holds
 * the resolved path. */
static int path_under(const char *path, const char *under, char **out)
{
	char *real = NULL;
	size_t n = strlen(under);
	int err = 0;

	*out = NULL;
	if (path[0] != '/')
		return ud_error_set(UD_EINVALID, "%s: not an absolute path",
				    path);
	if (!(real = realpath(path, NULL)))
		return ud_error_set_errno(UD_EINVALID, "%s", path);
	if (strncmp(real, under, n) || real[n] != '/' || !real[n + 1] ||
	    strchr(real + n + 1, '/')) {
		err = ud_error_set(UD_EINVALID, "%s is not in %s", path, under);
		free(real);
		return err;
	}
	*out = real;
	return 0;
}

static int pid_index(const struct priv_parent *p, pid_t pid)
{
	size_t i;

	for (i = 0; i < p->nprocs; i++)
		if (p->procs[i].pid == pid)
			return (int)i;
	return -1;
}

static void proc_forget(struct priv_parent *p, size_t i)
{
	p->procs[i] = p->procs[--p->nprocs];
}

int priv_reaped(struct priv_parent *p, pid_t pid, int wstatus)
{
	int i = pid_index(p, pid);

	if (i < 0)
		return 0;
	p->procs[i].exited = 1;
	p->procs[i].wstatus = wstatus;
	/* Stopped on request: what the leader left in its session goes
	 * too, as ud_stop_group does (a crashed one's are left as they
	 * are). The group id is not reused while any member lives. */
	if (p->procs[i].stopping)
		kill(-pid, SIGKILL);
	return 1;
}

/* The strings of a spawn: exactly argc + envc terminated strings in
 * strings[0..strings_len), environment entries NAME=value. */
static int spawn_strings(const struct priv_spawn *s, struct ud_strvec *args,
			 struct ud_strvec *env)
{
	size_t off = 0, i, n = (size_t)s->argc + s->envc;

	if (s->strings_len > sizeof(s->strings) || s->argc > 4096 ||
	    s->envc > 4096)
		return ud_error_set(UD_EINVALID, "bad argument counts");
	for (i = 0; i < n; i++) {
		const char *str = s->strings + off, *end;

		if (off >= s->strings_len ||
		    !(end = memchr(str, '\0', s->strings_len - off)))
			return ud_error_set(UD_EINVALID, "%zu strings announced, "
					    "fewer sent", n);
		if (i >= s->argc) {
			const char *eq = strchr(str, '=');
			char *name;
			int err;

			if (!eq)
				return ud_error_set(UD_EINVALID,
						    "environment entry '%s' "
						    "is not NAME=value", str);
			name = ud_strndup(str, (size_t)(eq - str));
			err = ud_name_check_env(name);
			free(name);
			if (err < 0)
				return err;
			ud_strvec_push(env, str);
		} else {
			ud_strvec_push(args, str);
		}
		off += (size_t)(end - str) + 1;
	}
	if (off != s->strings_len)
		return ud_error_set(UD_EINVALID, "bytes after the %zu strings",
				    n);
	return 0;
}

/* The program of a target: the image itself for a row without a
 * template (unix), else the template's program from PATH. */
static int spawn_program(const struct priv_parent *p,
			 const struct backend *b, const char *arch,
			 const char *image, char **out)
{
	struct backend_env env = { .host = p->host,
				   .state_dir = p->state_dir,
				   .templates = p->templates,
				   .kvm = "/dev/kvm" };
	char *name = NULL;
	int err;

	*out = NULL;
	if (!(b->flags & BACKEND_TEMPLATE)) {
		*out = ud_strdup(image);
		return 0;
	}
	if ((err = backend_template_program(&env, b, arch, &name)) < 0)
		return err;
	if (!(*out = backend_find_program(name)))
		err = ud_error_set(UD_ENOTFOUND, "backend %s needs %s on host "
				   "%s", b->target, name, p->host);
	free(name);
	return err;
}

struct spawn_plan {
	char *image, *rundir, *program;
	struct ud_strvec argv, env;
};

static void plan_free(struct spawn_plan *pl)
{
	free(pl->image);
	free(pl->rundir);
	free(pl->program);
	ud_strvec_free(&pl->argv);
	ud_strvec_free(&pl->env);
}

static int spawn_check(const struct priv_parent *p, const struct priv_spawn *s,
		       int log_fd, struct spawn_plan *pl)
{
	const struct backend *b;
	struct ud_strvec args = UD_STRVEC_INIT;
	char *images = NULL, *apprun = NULL;
	struct stat st;
	size_t i;
	int err, fl;

	if ((err = field_str(s->target, sizeof(s->target), "the target")) < 0 ||
	    (err = field_str(s->arch, sizeof(s->arch), "the arch")) < 0 ||
	    (err = field_str(s->app, sizeof(s->app), "the app")) < 0 ||
	    (err = field_str(s->image, sizeof(s->image), "the image")) < 0 ||
	    (err = field_str(s->rundir, sizeof(s->rundir), "the run "
			     "directory")) < 0)
		goto done;
	if ((err = ud_name_check_app(s->app)) < 0 ||
	    (err = ud_name_check_arch(s->arch)) < 0)
		goto done;
	if (!(b = backend_find(s->target))) {
		err = ud_error_set(UD_EINVALID, "unknown target '%s'",
				   s->target);
		goto done;
	}
	if (s->id <= 0) {
		err = ud_error_set(UD_EINVALID, "bad instance id %d",
				   (int)s->id);
		goto done;
	}
	if (s->ntaps > PRIV_MAXNETS) {
		err = ud_error_set(UD_EINVALID, "%u taps", (unsigned)s->ntaps);
		goto done;
	}
	if (p->nprocs >= p->max_procs) {
		err = ud_error_set(UD_EINVALID, "%zu instances are running, "
				   "the most the agent spawns", p->nprocs);
		goto done;
	}
	for (i = 0; i < s->ntaps; i++)
		if ((err = tap_ok(p, s->taps[i])) < 0)
			goto done;
	if (s->ntaps && !(b->flags & BACKEND_NETWORK)) {
		err = ud_error_set(UD_EINVALID, "target %s takes no taps",
				   s->target);
		goto done;
	}
	images = ud_asprintf("%s/images", p->state_dir);
	if ((err = path_under(s->image, images, &pl->image)) < 0 ||
	    (err = ud_name_check_image_file(strrchr(pl->image, '/') + 1)) < 0)
		goto done;
	if (stat(pl->image, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = ud_error_set(UD_EINVALID, "%s is not an image file",
				   s->image);
		goto done;
	}
	/* The run directory: state_dir/apps/<app>/run, nothing else. */
	apprun = ud_asprintf("%s/apps/%s/run", p->state_dir, s->app);
	{
		char *real = realpath(s->rundir, NULL);

		if (!real || strcmp(real, apprun)) {
			err = ud_error_set(UD_EINVALID, "%s is not %s",
					   s->rundir, apprun);
			free(real);
			goto done;
		}
		pl->rundir = real;
	}
	if (log_fd < 0 || fstat(log_fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (fl = fcntl(log_fd, F_GETFL)) < 0 || (fl & O_ACCMODE) == O_RDONLY) {
		err = ud_error_set(UD_EINVALID, "no console file to write to");
		goto done;
	}
	if ((err = spawn_strings(s, &args, &pl->env)) < 0 ||
	    (err = spawn_program(p, b, s->arch, pl->image, &pl->program)) < 0)
		goto done;
	ud_strvec_push(&pl->argv, pl->program);
	for (i = 0; i < args.n; i++)
		ud_strvec_push(&pl->argv, args.v[i]);
done:
	ud_strvec_free(&args);
	free(images);
	free(apprun);
	return err;
}

static int check_pid(const struct priv_parent *p, const struct priv_pid *m,
		     int type)
{
	int i = pid_index(p, m->pid);

	if (m->pid <= 0 || i < 0)
		return ud_error_set(UD_EINVALID, "pid %d is not an instance "
				    "this agent spawned", (int)m->pid);
	if (type == PRIV_KILL) {
		if (m->sig != SIGTERM && m->sig != SIGKILL)
			return ud_error_set(UD_EINVALID, "signal %d is not "
					    "TERM or KILL", (int)m->sig);
		if (p->procs[i].exited)
			return ud_error_set(UD_EINVALID, "pid %d has exited",
					    (int)m->pid);
	}
	return 0;
}

static int bind_check(const struct priv_bind *m, struct ud_addr *a)
{
	int err, port = 0;

	if ((err = field_str(m->addr, sizeof(m->addr), "the address")) < 0)
		return err;
	if (m->proto != PRIV_TCP && m->proto != PRIV_UDP)
		return ud_error_set(UD_EINVALID, "protocol %d", (int)m->proto);
	if ((err = ud_addr_parse(a, m->addr)) < 0)
		return err;
	if (a->family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	else if (a->family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	if (port <= 0 || port >= 1024)
		return ud_error_set(UD_EINVALID, "%s: only ports below 1024 "
				    "need the privileged agent", m->addr);
	return 0;
}

/* What each type is, and how long its struct */
static size_t body_size(uint32_t type)
{
	switch (type) {
	case PRIV_TAP_CREATE:
	case PRIV_TAP_DELETE:
		return sizeof(struct priv_tap);
	case PRIV_SPAWN:
		return sizeof(struct priv_spawn);
	case PRIV_WAIT:
	case PRIV_KILL:
		return sizeof(struct priv_pid);
	case PRIV_BIND:
		return sizeof(struct priv_bind);
	default:
		return 0;
	}
}

/* Acting, once checked */

static int do_spawn(struct priv_parent *p, const struct priv_spawn *s,
		    struct spawn_plan *pl, int log_fd, struct priv_reply *rep)
{
	int fds[PRIV_MAXNETS];
	size_t i, nfds = 0;
	pid_t pid = -1;
	unsigned long long t = 0;
	int err = 0;

	for (i = 0; i < s->ntaps; i++) {
		if ((err = ud_tap_open(s->taps[i], &fds[nfds])) < 0)
			goto done;
		nfds++;
	}
	if ((err = ud_spawn_fds(&pid, pl->argv.v, pl->env.v, pl->rundir,
				log_fd, p->cred, fds, (int)nfds)) < 0)
		goto done;
	if (p->nprocs == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->procs = ud_realloc(p->procs, p->cap * sizeof(*p->procs));
	}
	p->procs[p->nprocs].pid = pid;
	p->procs[p->nprocs].exited = 0;
	p->procs[p->nprocs].wstatus = 0;
	p->procs[p->nprocs].stopping = 0;
	p->nprocs++;
	if (ud_proc_starttime(pid, &t) < 0)
		ud_error_clear(); /* gone already: its wait says how */
	rep->pid = (int32_t)pid;
	rep->starttime = t;
	ud_log_debug("priv: %s/%d: spawned %s (pid %d)", s->app, (int)s->id,
		     pl->program, (int)pid);
done:
	while (nfds > 0)
		close(fds[--nfds]);
	return err;
}

static int do_wait(struct priv_parent *p, const struct priv_pid *m,
		   struct priv_reply *rep)
{
	int i = pid_index(p, m->pid), st;

	/* Reap now rather than wait for the SIGCHLD's turn in the loop. */
	if (!p->procs[i].exited && waitpid(m->pid, &st, WNOHANG) == m->pid)
		priv_reaped(p, m->pid, st);
	if (!p->procs[i].exited) {
		rep->running = 1;
		return 0;
	}
	/* Reported once: the pid is not ours any more. */
	rep->running = 0;
	rep->wstatus = p->procs[i].wstatus;
	proc_forget(p, (size_t)i);
	return 0;
}

static int do_kill(struct priv_parent *p, const struct priv_pid *m)
{
	p->procs[pid_index(p, m->pid)].stopping = 1;
	/* The instance's session (ud_spawn) and its leader. */
	if (kill(-m->pid, m->sig) < 0 && kill(m->pid, m->sig) < 0 &&
	    errno != ESRCH)
		return ud_error_set_errno(UD_ERROR, "cannot signal pid %d",
					  (int)m->pid);
	return 0;
}

static int do_bind(const struct priv_bind *m, const struct ud_addr *a,
		   int *out_fd)
{
	int fd;

	if (m->proto == PRIV_TCP)
		return ud_net_listen(out_fd, a, 511);
	if ((fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return ud_error_set_errno(UD_ERROR, "%s: socket", m->addr);
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		int err = ud_error_set_errno(UD_ERROR, "cannot bind %s",
					     m->addr);

		close(fd);
		return err;
	}
	*out_fd = fd;
	return 0;
}

static const char *type_name(uint32_t type)
{
	switch (type) {
	case PRIV_TAP_CREATE: return "tap-create";
	case PRIV_TAP_DELETE: return "tap-delete";
	case PRIV_SPAWN: return "spawn";
	case PRIV_WAIT: return "wait";
	case PRIV_KILL: return "kill";
	case PRIV_BIND: return "bind";
	default: return "unknown";
	}
}

void priv_handle(struct priv_parent *p, const struct priv_hdr *h,
		 const void *body, size_t body_len, int in_fd,
		 struct priv_reply *rep, int *out_fd)
{
	struct spawn_plan pl = { .argv = UD_STRVEC_INIT,
				 .env = UD_STRVEC_INIT };
	struct ud_addr addr;
	size_t want = body_size(h->type);
	int err, checked = 0;

	memset(rep, 0, sizeof(*rep));
	*out_fd = -1;
	/* The whole message is checked before anything is done. */
	if (!want) {
		err = ud_error_set(UD_EINVALID, "message type %u is not one "
				   "the agent knows", (unsigned)h->type);
		goto done;
	}
	if (h->len != want || body_len != want) {
		err = ud_error_set(UD_EINVALID, "%s: %zu bytes, not %zu",
				   type_name(h->type),
				   h->len != want ? (size_t)h->len : body_len,
				   want);
		goto done;
	}
	if (in_fd >= 0 && h->type != PRIV_SPAWN) {
		err = ud_error_set(UD_EINVALID, "%s: takes no descriptor",
				   type_name(h->type));
		goto done;
	}
	switch (h->type) {
	case PRIV_TAP_CREATE:
	case PRIV_TAP_DELETE:
		err = tap_ok(p, ((const struct priv_tap *)body)->tap);
		break;
	case PRIV_SPAWN:
		err = spawn_check(p, body, in_fd, &pl);
		break;
	case PRIV_WAIT:
	case PRIV_KILL:
		err = check_pid(p, body, (int)h->type);
		break;
	case PRIV_BIND:
		err = bind_check(body, &addr);
		break;
	default:
		err = UD_EINVALID;
	}
	if (err < 0)
		goto done;
	checked = 1;
	switch (h->type) {
	case PRIV_TAP_CREATE: {
		const struct priv_tap *t = body;

		err = ud_tap_create(t->tap, p->bridge,
				    p->cred ? p->cred->uid : getuid(),
				    p->cred ? p->cred->gid : getgid());
		break;
	}
	case PRIV_TAP_DELETE:
		err = ud_tap_delete(((const struct priv_tap *)body)->tap);
		break;
	case PRIV_SPAWN:
		err = do_spawn(p, body, &pl, in_fd, rep);
		break;
	case PRIV_WAIT:
		err = do_wait(p, body, rep);
		break;
	case PRIV_KILL:
		err = do_kill(p, body);
		break;
	case PRIV_BIND:
		err = do_bind(body, &addr, out_fd);
		break;
	}
done:
	if (err < 0) {
		rep->err = err;
		snprintf(rep->msg, sizeof(rep->msg), "%s", ud_error_last());
		if (!checked)
			ud_log_warn("priv: refused %s: %s", type_name(h->type),
				    rep->msg);
		ud_error_clear();
	}
	plan_free(&pl);
}

/* The wire: one message per SOCK_SEQPACKET record */

static int send_msg(int sock, uint32_t type, const void *body, size_t len,
		    int fd)
{
	struct priv_hdr h = { type, (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, len } };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while ((n = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return ud_error_set_errno(UD_ERROR, "privileged agent: send");
	return 0;
}

/* One record: 1 and its header/body/descriptor, 0 on EOF, < 0 on error.
 * A record longer than the largest message comes back truncated, which
 * the length check refuses. */
static int recv_msg(int sock, struct priv_hdr *h, char *body, size_t max,
		    size_t *body_len, int *fd)
{
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} u;
	struct iovec iov[2] = { { h, sizeof(*h) }, { body, max } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	*fd = -1;
	*body_len = 0;
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	if (n < 0)
		return ud_error_set_errno(UD_ERROR, "privileged agent: "
					  "receive");
	if (n == 0)
		return 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k, nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nfd; k++) {
			int got;

			memcpy(&got, CMSG_DATA(c) + k * sizeof(int),
			       sizeof(int));
			if (*fd < 0)
				*fd = got;
			else
				close(got); /* one descriptor per message */
		}
	}
	if ((size_t)n < sizeof(*h)) {
		/* Not even a header: a length no type has. */
		memset(h, 0, sizeof(*h));
		h->len = UINT32_MAX;
		*body_len = SIZE_MAX;
		return 1;
	}
	*body_len = (size_t)n - sizeof(*h);
	if (mh.msg_flags & MSG_TRUNC)
		*body_len = max + 1;
	return 1;
}

/* The parent's loop */

static void parent_request(struct priv_parent *p, char *buf)
{
	struct priv_hdr h;
	struct priv_reply rep;
	size_t len;
	int in_fd, out_fd, rc;

	rc = recv_msg(p->sock, &h, buf, sizeof(struct priv_spawn), &len,
		      &in_fd);
	if (rc <= 0) {
		if (rc < 0)
			ud_log_error("%s", ud_error_last());
		ud_error_clear();
		close(p->sock);
		p->sock = -1;
		return;
	}
	if (len == SIZE_MAX) {
		memset(&rep, 0, sizeof(rep));
		rep.err = UD_EINVALID;
		snprintf(rep.msg, sizeof(rep.msg), "a message shorter than "
			 "its header");
		ud_log_warn("priv: refused %s", rep.msg);
		out_fd = -1;
	} else {
		priv_handle(p, &h, buf, len, in_fd, &rep, &out_fd);
	}
	if (send_msg(p->sock, PRIV_REPLY, &rep, sizeof(rep), out_fd) < 0) {
		ud_log_error("%s", ud_error_last());
		ud_error_clear();
	}
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0)
		close(out_fd);
}

/* Reap what has exited; 1 and *status once the child has. */
static int parent_reap(struct priv_parent *p, int *status)
{
	int st, done = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == p->child) {
			if (WIFEXITED(st))
				*status = WEXITSTATUS(st);
			else {
				ud_log_error("priv: the agent's unprivileged "
					     "part died of signal %d; its "
					     "instances stay for the next "
					     "agent", WTERMSIG(st));
				*status = 1;
			}
			done = 1;
		} else if (!priv_reaped(p, pid, st)) {
			ud_log_debug("priv: reaped pid %d", (int)pid);
		}
	}
	return done;
}

int priv_parent_run(struct priv_parent *p, int sigfd)
{
	char *buf = ud_malloc(sizeof(struct priv_spawn) + 1);
	int status = 1;

	for (;;) {
		struct pollfd pf[2] = { { .fd = sigfd, .events = POLLIN },
					{ .fd = p->sock, .events = POLLIN } };
		unsigned char sig;

		if (poll(pf, p->sock >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			ud_log_error("priv: poll: %s", strerror(errno));
			break;
		}
		if (pf[0].revents & POLLIN) {
			while (read(sigfd, &sig, 1) == 1) {
				if (sig == SIGCHLD)
					continue;
				/* TERM, INT, HUP: the daemon's signals are
				 * the unprivileged part's to handle. */
				kill(p->child, sig);
			}
			if (parent_reap(p, &status))
				break;
		}
		if (p->sock >= 0 && pf[1].revents)
			parent_request(p, buf);
		if (p->sock < 0) {
			/* The child closed its end: it is exiting (or
			 * dead); wait for it rather than spin. */
			int st = 0;

			while (waitpid(p->child, &st, 0) < 0 && errno == EINTR)
				;
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
			if (!WIFEXITED(st))
				ud_log_error("priv: the agent's unprivileged "
					     "part died of signal %d; its "
					     "instances stay for the next "
					     "agent", WTERMSIG(st));
			break;
		}
	}
	free(buf);
	return status;
}

/* The unprivileged side */

void priv_client_init(struct priv_client *c, int sock)
{
	c->sock = sock;
	pthread_mutex_init(&c->lock, NULL);
}

int priv_call(struct priv_client *c, uint32_t type, const void *body,
	      size_t len, int send_fd, struct priv_reply *rep, int *recv_fd)
{
	struct priv_hdr h;
	size_t got;
	int fd = -1, rc, err;

	if (recv_fd)
		*recv_fd = -1;
	pthread_mutex_lock(&c->lock);
	if ((err = send_msg(c->sock, type, body, len, send_fd)) < 0)
		goto done;
	rc = recv_msg(c->sock, &h, (char *)rep, sizeof(*rep), &got, &fd);
	if (rc < 0) {
		err = rc;
		goto done;
	}
	if (rc == 0 || h.type != PRIV_REPLY || got != sizeof(*rep)) {
		err = ud_error_set(UD_ERROR, "the privileged agent is gone");
		goto done;
	}
	rep->msg[sizeof(rep->msg) - 1] = '\0';
	if (rep->err < 0) {
		err = ud_error_set(rep->err, "%s", rep->msg);
		goto done;
	}
	if (recv_fd) {
		*recv_fd = fd;
		fd = -1;
	}
done:
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
	return err;
}

static int copy_field(char *dst, size_t size, const char *src,
		      const char *what)
{
	if (strlen(src) >= size)
		return ud_error_set(UD_EINVALID, "%s is too long: %s", what,
				    src);
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

int priv_tap_create(struct priv_client *c, const char *tap)
{
	struct priv_tap m = { { 0 } };
	struct priv_reply rep;
	int err;

	if ((err = copy_field(m.tap, sizeof(m.tap), tap, "tap")) < 0)
		return err;
	return priv_call(c, PRIV_TAP_CREATE, &m, sizeof(m), -1, &rep, NULL);
}

int priv_tap_delete(struct priv_client *c, const char *tap)
{
	struct priv_tap m = { { 0 } };
	struct priv_reply rep;
	int err;

	if ((err = copy_field(m.tap, sizeof(m.tap), tap, "tap")) < 0)
		return err;
	return priv_call(c, PRIV_TAP_DELETE, &m, sizeof(m), -1, &rep, NULL);
}

static int put_string(struct priv_spawn *m, const char *s)
{
	size_t n = strlen(s) + 1;

	if (n > sizeof(m->strings) - m->strings_len)
		return ud_error_set(UD_EINVALID, "the command line and "
				    "environment exceed %zu bytes",
				    sizeof(m->strings));
	memcpy(m->strings + m->strings_len, s, n);
	m->strings_len += (uint32_t)n;
	return 0;
}

int priv_spawn(struct priv_client *c, const char *target, const char *arch,
	       const char *app, int id, const char *image,
	       const char *rundir, char *const taps[], size_t ntaps,
	       char *const argv[], char *const env[], int log_fd, pid_t *pid,
	       unsigned long long *starttime)
{
	struct priv_spawn *m = ud_malloc(sizeof(*m));
	struct priv_reply rep;
	size_t i;
	int err;

	memset(m, 0, sizeof(*m));
	*pid = 0;
	if ((err = copy_field(m->target, sizeof(m->target), target,
			      "target")) < 0 ||
	    (err = copy_field(m->arch, sizeof(m->arch), arch, "arch")) < 0 ||
	    (err = copy_field(m->app, sizeof(m->app), app, "app")) < 0 ||
	    (err = copy_field(m->image, sizeof(m->image), image, "image")) <
		    0 ||
	    (err = copy_field(m->rundir, sizeof(m->rundir), rundir,
			      "run directory")) < 0)
		goto done;
	if (ntaps > PRIV_MAXNETS) {
		err = ud_error_set(UD_EINVALID, "%zu taps", ntaps);
		goto done;
	}
	for (i = 0; i < ntaps; i++)
		if ((err = copy_field(m->taps[i], sizeof(m->taps[i]), taps[i],
				      "tap")) < 0)
			goto done;
	m->ntaps = (uint32_t)ntaps;
	m->id = id;
	for (i = 1; argv[0] && argv[i]; i++, m->argc++)
		if ((err = put_string(m, argv[i])) < 0)
			goto done;
	for (i = 0; env && env[i]; i++, m->envc++)
		if ((err = put_string(m, env[i])) < 0)
			goto done;
	if ((err = priv_call(c, PRIV_SPAWN, m, sizeof(*m), log_fd, &rep,
			     NULL)) < 0)
		goto done;
	*pid = (pid_t)rep.pid;
	*starttime = rep.starttime;
done:
	free(m);
	return err;
}

int priv_wait(struct priv_client *c, pid_t pid, int *running, int *wstatus)
{
	struct priv_pid m = { (int32_t)pid, 0 };
	struct priv_reply rep;
	int err;

	if ((err = priv_call(c, PRIV_WAIT, &m, sizeof(m), -1, &rep, NULL)) < 0)
		return err;
	*running = rep.running;
	*wstatus = rep.wstatus;
	return 0;
}

int priv_kill(struct priv_client *c, pid_t pid, int sig)
{
	struct priv_pid m = { (int32_t)pid, sig };
	struct priv_reply rep;

	return priv_call(c, PRIV_KILL, &m, sizeof(m), -1, &rep, NULL);
}

int priv_bind(struct priv_client *c, int proto, const char *addr, int *fd)
{
	struct priv_bind m;
	struct priv_reply rep;
	int err;

	memset(&m, 0, sizeof(m));
	m.proto = proto;
	if ((err = copy_field(m.addr, sizeof(m.addr), addr, "address")) < 0)
		return err;
	return priv_call(c, PRIV_BIND, &m, sizeof(m), -1, &rep, fd);
}

/* Until the parent reports the leader gone, bounded by until_ms. */
static int wait_gone(struct priv_client *c, pid_t pid, long long until_ms,
		     int *wstatus)
{
	int running = 1, step = 1, err;

	for (;;) {
		if ((err = priv_wait(c, pid, &running, wstatus)) < 0)
			return err;
		if (!running || ud_now_ms() >= until_ms)
			return running;
		usleep((useconds_t)step * 1000);
		step = step < 50 ? step * 2 : 50;
	}
}

int priv_stop_group(struct priv_client *c, pid_t pid, int grace_ms,
		    int *wstatus)
{
	int err;

	*wstatus = -1;
	if ((err = priv_kill(c, pid, SIGTERM)) < 0)
		return err;
	if ((err = wait_gone(c, pid, ud_now_ms() + grace_ms, wstatus)) <= 0)
		return err;
	if ((err = priv_kill(c, pid, SIGKILL)) < 0) {
		int running;

		/* It went between the last wait and the KILL: the parent
		 * has reaped it and refuses to signal it. */
		if (priv_wait(c, pid, &running, wstatus) == 0 && !running) {
			ud_error_clear();
			return 0;
		}
		return err;
	}
	/* SIGKILL is not refused; a process in uninterruptible sleep takes
	 * longer: bounded as ud_stop_group bounds it. */
	if ((err = wait_gone(c, pid, ud_now_ms() + 10000, wstatus)) < 0)
		return err;
	return err ? ud_error_set(UD_ERROR, "pid %d did not die of SIGKILL",
				  (int)pid) : 0;
}
