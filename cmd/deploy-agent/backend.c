/*
 * backend.c: the command line of an instance per images[].target (see
 * agent.h). unix runs the image itself. The VM backends (qemu, hvt, xen,
 * firecracker) are described by templates/backends/<target>.args (the
 * command line, one argument per line) and, for xen and firecracker, a
 * config file rendered into the app's run directory: what a host needs
 * changed is then a template edit, not a rebuild. docs/backends.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "names.h"

/* Where the agent looks for programs when its own PATH is unset. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* The accelerator probe: a tiny boot each way, never longer than this. */
#define PROBE_TIMEOUT_MS 10000

static const char *const vm_targets[] = { "qemu", "hvt", "xen",
					  "firecracker", NULL };

static int is_vm_target(const char *target)
{
	size_t i;

	for (i = 0; vm_targets[i]; i++)
		if (!strcmp(vm_targets[i], target))
			return 1;
	return 0;
}

/* The config file a backend renders besides its command line, if any. */
static const char *config_ext(const char *target)
{
	if (!strcmp(target, "xen"))
		return "cfg";
	if (!strcmp(target, "firecracker"))
		return "json";
	return NULL;
}

/* The directory above the binary's that holds templates/backends: bin/
 * in the source tree, build/san/bin for the sanitizer build, PREFIX/bin
 * once installed (PREFIX/share/unideploy/templates). */
static char *templates_dir(struct agent *a)
{
	static const char *const under[] = {
		"templates/backends", "share/unideploy/templates/backends"
	};
	char *exe, *slash, *try;
	int up;
	size_t i;

	if (a->backends_dir)
		return ud_strdup(a->backends_dir);
	if (!(exe = realpath("/proc/self/exe", NULL)))
		return ud_strdup("/usr/local/share/unideploy/templates/backends");
	for (up = 0; up < 4 && (slash = strrchr(exe, '/')) && slash != exe;
	     up++) {
		*slash = '\0';
		if (up == 0)
			continue;
		for (i = 0; i < sizeof(under) / sizeof(*under); i++) {
			try = ud_asprintf("%s/%s", exe, under[i]);
			if (access(try, F_OK) == 0) {
				free(exe);
				return try;
			}
			free(try);
		}
	}
	free(exe);
	return ud_strdup("/usr/local/share/unideploy/templates/backends");
}

static int read_template(struct agent *a, const char *target, const char *ext,
			 struct ud_buf *out, char **path)
{
	char *dir = templates_dir(a);
	int err;

	*path = ud_asprintf("%s/%s.%s", dir, target, ext);
	free(dir);
	out->max = 1024 * 1024;
	if ((err = ud_buf_read_file(out, *path)) < 0)
		ud_error_prefix("backend %s", target);
	return err;
}

/* The program's absolute path, from the agent's PATH; NULL if none. */
static char *find_program(const char *name)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? ud_strdup(name) : NULL;
	if (!path || !*path)
		path = DEFAULT_PATH;
	for (p = path; *p; p = *end ? end + 1 : end) {
		char *cand;

		end = strchrnul(p, ':');
		if (end == p)
			continue;
		cand = ud_asprintf("%.*s/%s", (int)(end - p), p, name);
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

/* Placeholders */

struct vars {
	const char *name[16], *value[16];
	size_t n;
	/* Multi-valued ones, alone on an .args line. */
	const char *lname[4];
	const struct ud_strvec *list[4];
	size_t nl;
	/* Escape for the config format: quoted strings of xl or JSON. */
	int json;
};

static void var(struct vars *v, const char *name, const char *value)
{
	v->name[v->n] = name;
	v->value[v->n++] = value;
}

static void list(struct vars *v, const char *name, const struct ud_strvec *l)
{
	v->lname[v->nl] = name;
	v->list[v->nl++] = l;
}

static const char *lookup(const struct vars *v, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strlen(v->name[i]) == len && !memcmp(v->name[i], name, len))
			return v->value[i];
	return NULL;
}

static const struct ud_strvec *lookup_list(const struct vars *v,
					   const char *line)
{
	size_t i, len = strlen(line);

	if (len < 5 || strncmp(line, "{{", 2) || strcmp(line + len - 2, "}}"))
		return NULL;
	for (i = 0; i < v->nl; i++)
		if (strlen(v->lname[i]) == len - 4 &&
		    !memcmp(v->lname[i], line + 2, len - 4))
			return v->list[i];
	return NULL;
}

/* Fill in the {{name}}s of one line (config) or argument (args). Values
 * of a config go inside its quoted strings: refuse what would end them. */
static int substitute(struct ud_buf *out, const char *text, const char *where,
		      int lineno, const struct vars *v, int escape)
{
	const char *p = text, *open, *close, *val;

	while ((open = strstr(p, "{{"))) {
		ud_buf_put(out, p, (size_t)(open - p));
		if (!(close = strstr(open + 2, "}}")))
			return ud_error_set(UD_EINVALID, "%s:%d: unclosed {{",
					    where, lineno);
		if (!(val = lookup(v, open + 2, (size_t)(close - open - 2))))
			return ud_error_set(UD_EINVALID,
					    "%s:%d: unknown placeholder %.*s",
					    where, lineno,
					    (int)(close - open + 2), open);
		if (escape && strpbrk(val, "\"\\\n"))
			return ud_error_set(UD_EINVALID,
					    "%s:%d: the value of %.*s (%s) "
					    "cannot go into a quoted string",
					    where, lineno,
					    (int)(close - open + 2), open, val);
		ud_buf_puts(out, val);
		p = close + 2;
	}
	ud_buf_puts(out, p);
	return 0;
}

/* An .args template: one argument per line, # comments and blank lines
 * skipped. */
static int render_args(const char *text, const char *where,
		       const struct vars *v, struct ud_strvec *argv)
{
	char *copy = ud_strdup(text), *line, *save = NULL;
	struct ud_buf arg = UD_BUF_INIT;
	int lineno = 0, err = 0;

	for (line = copy; line; line = save) {
		const struct ud_strvec *l;
		size_t i, len;

		if ((save = strchr(line, '\n')))
			*save++ = '\0';
		lineno++;
		len = strlen(line);
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' ||
			       line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		if ((l = lookup_list(v, line))) {
			for (i = 0; i < l->n; i++)
				ud_strvec_push(argv, l->v[i]);
			continue;
		}
		ud_buf_clear(&arg);
		if ((err = substitute(&arg, line, where, lineno, v, 0)) < 0)
			goto done;
		ud_strvec_push(argv, arg.size ? arg.ptr : "");
	}
done:
	ud_buf_free(&arg);
	free(copy);
	return err;
}

static int render_config(const char *text, const char *where,
			 const struct vars *v, struct ud_buf *out)
{
	char *copy = ud_strdup(text), *line, *save = NULL;
	int lineno = 0, err = 0;

	for (line = copy; line; line = save) {
		if ((save = strchr(line, '\n')))
			*save++ = '\0';
		lineno++;
		if ((err = substitute(out, line, where, lineno, v, 1)) < 0)
			break;
		if (save)
			ud_buf_putc(out, '\n');
	}
	free(copy);
	if (!err && v->json) {
		json_error_t je;
		json_t *j = json_loadb(out->ptr, out->size, 0, &je);

		if (!j)
			err = ud_error_set(UD_EINVALID,
					   "%s rendered: %d:%d: %s", where,
					   je.line, je.column, je.text);
		json_decref(j);
	}
	return err;
}

/* Checks */

static int host_arch_only(struct agent *a, const char *target,
			  const char *arch)
{
	if (!strcmp(arch, ud_host_arch()))
		return 0;
	return ud_error_set(UD_EINVALID,
			    "backend %s cannot boot %s images on host %s "
			    "(%s)",
			    target, arch, a->conf->host, ud_host_arch());
}

/* The program a backend runs: the first argument of its template. */
static int backend_program(struct agent *a, const char *target,
			   const char *arch, char **prog)
{
	struct ud_buf t = UD_BUF_INIT;
	struct ud_strvec argv = UD_STRVEC_INIT;
	struct ud_strvec none = UD_STRVEC_INIT;
	/* Only {{arch}} matters for the program's name. */
	static const char *const others[] = { "image", "memory_mb", "name",
					      "config", "qmp", "tap", "port",
					      "run_port", "accel", "cmdline",
					      "rundir" };
	struct vars v = { 0 };
	char *where = NULL;
	size_t i;
	int err;

	*prog = NULL;
	if ((err = read_template(a, target, "args", &t, &where)) < 0)
		goto done;
	/* Only {{arch}} matters for the program's name. */
	var(&v, "arch", arch);
	for (i = 0; i < sizeof(others) / sizeof(*others); i++)
		var(&v, others[i], "");
	list(&v, "args", &none);
	list(&v, "net", &none);
	list(&v, "append", &none);
	list(&v, "machine", &none);
	if ((err = render_args(t.ptr, where, &v, &argv)) < 0)
		goto done;
	if (argv.n == 0) {
		err = ud_error_set(UD_EINVALID, "%s: no command", where);
		goto done;
	}
	*prog = ud_strdup(argv.v[0]);
done:
	free(where);
	ud_buf_free(&t);
	ud_strvec_free(&argv);
	return err;
}

int backend_check(struct agent *a, const char *target, const char *arch)
{
	char *prog = NULL, *path = NULL;
	int err;

	if (!strcmp(target, "unix"))
		return host_arch_only(a, target, arch);
	if (!is_vm_target(target))
		return ud_error_set(UD_EINVALID,
				    "unknown target %s (this agent boots "
				    "unix, qemu, hvt, xen and firecracker)",
				    target);
	/* qemu emulates other architectures; the others virtualise the
	 * host's own. */
	if (strcmp(target, "qemu") && (err = host_arch_only(a, target, arch)) < 0)
		return err;
	if (ud_name_check_arch(arch) < 0)
		return ud_error_set(UD_EINVALID, "invalid arch '%s'", arch);
	if ((err = backend_program(a, target, arch, &prog)) < 0)
		goto done;
	if (!(path = find_program(prog)))
		err = ud_error_set(UD_ENOTFOUND, "backend %s needs %s on host %s",
				   target, prog, a->conf->host);
done:
	free(prog);
	free(path);
	return err;
}

/* qemu's accelerator */

/*
 * A multiboot kernel of 41 bytes (the a.out kludge: header, then code
 * loaded at 1 MiB) that writes the byte 0xa5 (no text qemu
 * prints on stderr contains it) to COM1 and halts: how long qemu takes
 * to get there is its start-up cost with an accelerator.
 */
static const unsigned char probe_kernel[] = {
	0x02, 0xb0, 0xad, 0x1b,		/* magic */
	0x00, 0x00, 0x01, 0x00,		/* flags: address fields valid */
	0xfe, 0x4f, 0x51, 0xe4,		/* checksum */
	0x00, 0x00, 0x10, 0x00,		/* header_addr */
	0x00, 0x00, 0x10, 0x00,		/* load_addr */
	0x00, 0x00, 0x00, 0x00,		/* load_end_addr: whole file */
	0x00, 0x00, 0x00, 0x00,		/* bss_end_addr: none */
	0x20, 0x00, 0x10, 0x00,		/* entry_addr: the code below */
	0xba, 0xf8, 0x03, 0x00, 0x00,	/* mov $0x3f8, %edx */
	0xb0, 0xa5,			/* mov $0xa5, %al */
	0xee,				/* out %al, (%dx) */
	0xf4,				/* 1: hlt */
	0xeb, 0xfd,			/* jmp 1b */
};

static int kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Milliseconds from exec to the probe's byte on the console; -1 if it did
 * not come within timeout_ms. */
static long long probe_boot(struct agent *a, const char *qemu,
			    const char *kernel, const char *accel,
			    long long timeout_ms)
{
	const char *argv[] = { qemu, "-kernel", kernel, "-m", "16",
			       "-nodefaults", "-no-user-config", "-display",
			       "none", "-accel", accel, "-serial", "stdio",
			       NULL };
	struct ud_strvec env = UD_STRVEC_INIT;
	long long t0 = ud_now_ms(), ms = -1, left;
	struct pollfd pfd;
	int fds[2];
	pid_t pid;
	char c;

	/* The instances' marker: an agent killed mid-probe finds it as an
	 * orphan when it starts again. */
	ud_env_set(&env, "PATH", DEFAULT_PATH);
	ud_env_set(&env, "UNIDEPLOY_STATE_DIR", a->conf->state_dir);
	if (pipe2(fds, O_CLOEXEC) < 0) {
		ud_strvec_free(&env);
		return -1;
	}
	if (ud_spawn(&pid, (char *const *)argv, env.v, NULL, fds[1]) < 0) {
		ud_error_clear();
		close(fds[0]);
		close(fds[1]);
		ud_strvec_free(&env);
		return -1;
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while ((left = timeout_ms - (ud_now_ms() - t0)) > 0 &&
	       poll(&pfd, 1, (int)left) > 0) {
		if (read(fds[0], &c, 1) != 1)
			break;
		if (c == (char)0xa5) {
			ms = ud_now_ms() - t0;
			break;
		}
	}
	close(fds[0]);
	ud_stop_group(pid, 1000);
	ud_error_clear();
	ud_strvec_free(&env);
	return ms;
}

/*
 * KVM when /dev/kvm opens and the image is of the host's arch, unless TCG
 * starts faster: under nested virtualisation KVM's start-up can cost more
 * than a tiny unikernel's whole boot (or KVM may not run the guest at
 * all). Measured once per agent, on the first qemu boot, best of two
 * tries each; KVM only gets as long as TCG took, since slower loses.
 */
static const char *qemu_accel(struct agent *a, const char *qemu,
			      const char *arch)
{
	static const char *chosen;
	char *dir = NULL, *kernel = NULL;
	long long kvm = -1, tcg = -1, t;
	int i;

	if (strcmp(arch, ud_host_arch()) || !kvm_usable())
		return "tcg";
	/* The probe is an x86 kernel; elsewhere trust KVM. */
	if (strcmp(arch, "x86_64"))
		return "kvm";
	if (chosen)
		return chosen;
	dir = ud_asprintf("%s/tmp", a->conf->state_dir);
	kernel = ud_asprintf("%s/accel-probe.elf", dir);
	if (ud_mkdir_p(dir, 0750) < 0 ||
	    ud_write_file_atomic(kernel, probe_kernel, sizeof(probe_kernel),
				 0640) < 0) {
		ud_log_warn("qemu accelerator probe: %s; using kvm",
			    ud_error_last());
		ud_error_clear();
		chosen = "kvm";
		goto done;
	}
	for (i = 0; i < 2; i++) {
		if ((t = probe_boot(a, qemu, kernel, "tcg", PROBE_TIMEOUT_MS)) >=
			    0 &&
		    (tcg < 0 || t < tcg))
			tcg = t;
		t = probe_boot(a, qemu, kernel, "kvm",
			       tcg >= 0 ? tcg + 1 : PROBE_TIMEOUT_MS);
		if (t >= 0 && (kvm < 0 || t < kvm))
			kvm = t;
	}
	chosen = kvm >= 0 && (tcg < 0 || kvm <= tcg) ? "kvm" : "tcg";
	ud_log_info("qemu start-up to the first console byte: kvm %s%lld ms, "
		    "tcg %lld ms: using %s",
		    kvm < 0 ? "over " : "", kvm < 0 ? tcg : kvm, tcg, chosen);
	unlink(kernel);
done:
	free(dir);
	free(kernel);
	return chosen;
}

/* Instances */

static const char *run_env(const struct ud_manifest *m, const char *name)
{
	return ud_env_get(&m->run.env, name);
}

/* Where the instance's port goes: "net" (user networking, a host forward
 * to run.port) or "serial" (COM2 as a TCP server on the port). */
static int port_via(const struct ud_manifest *m, const char **via)
{
	const char *v = run_env(m, "UNIDEPLOY_PORT_VIA");

	*via = v ? v : "net";
	if (strcmp(*via, "net") && strcmp(*via, "serial"))
		return ud_error_set(UD_EINVALID,
				    "run.env UNIDEPLOY_PORT_VIA is '%s': "
				    "\"net\" or \"serial\"",
				    *via);
	return 0;
}

static int qemu_lists(const struct ud_manifest *m, const char *arch, int port,
		      struct ud_strvec *net, struct ud_strvec *machine)
{
	const char *via;
	int err;

	if ((err = port_via(m, &via)) < 0)
		return err;
	if (!strcmp(via, "serial")) {
		ud_strvec_push(net, "-chardev");
		ud_strvec_pushf(net,
				"socket,id=s1,host=127.0.0.1,port=%d,server=on,"
				"wait=off",
				port);
		ud_strvec_push(net, "-device");
		ud_strvec_push(net, "isa-serial,chardev=s1");
	} else if (m->run.port > 0) {
		ud_strvec_push(net, "-netdev");
		ud_strvec_pushf(net,
				"user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d",
				port, m->run.port);
		ud_strvec_push(net, "-device");
		ud_strvec_push(net, "virtio-net-pci,netdev=n0");
	}
	/* Only x86 has a default machine that boots -kernel. */
	if (strcmp(arch, "x86_64") && strcmp(arch, "i386")) {
		ud_strvec_push(machine, "-machine");
		ud_strvec_push(machine, "virt");
		ud_strvec_push(machine, "-cpu");
		ud_strvec_push(machine, "max");
	}
	return 0;
}

static const struct ud_manifest_image *inst_image(const struct ud_manifest *m,
						  const struct instance *in)
{
	size_t i;

	for (i = 0; i < m->nimages; i++)
		if (!strcmp(m->images[i].sha256, in->sha256))
			return &m->images[i];
	return NULL;
}

static char *join(const struct ud_strvec *sv, const char *sep)
{
	struct ud_buf b = UD_BUF_INIT;
	size_t i;

	for (i = 0; i < sv->n; i++) {
		if (i)
			ud_buf_puts(&b, sep);
		ud_buf_puts(&b, sv->v[i]);
	}
	return ud_buf_detach(&b);
}

static char *qmp_name(const struct instance *in)
{
	return ud_asprintf("qmp-%d.sock", in->id);
}

static int vm_command(struct agent *a, const struct app *app,
		      const struct ud_manifest *m, const char *target,
		      const struct instance *in, const char *rundir,
		      struct ud_strvec *argv)
{
	const struct ud_manifest_image *img = inst_image(m, in);
	struct ud_strvec net = UD_STRVEC_INIT, machine = UD_STRVEC_INIT;
	struct ud_strvec append = UD_STRVEC_INIT, rendered = UD_STRVEC_INIT;
	struct ud_buf t = UD_BUF_INIT, cfg = UD_BUF_INIT;
	struct vars v = { 0 };
	const char *ext = config_ext(target), *arch, *accel = "";
	char *where = NULL, *cfg_where = NULL, *image = NULL, *name = NULL;
	char *config = NULL, *qmp = NULL, *cmdline = NULL, *prog = NULL;
	char mem[16], port[16], run_port[16], tap[32];
	int err;

	arch = img ? img->arch : ud_host_arch();
	if ((err = backend_check(a, target, arch)) < 0)
		goto done;
	image = image_path(a, in->sha256);
	name = ud_asprintf("ud-%s-%d", app->name, in->id);
	qmp = qmp_name(in);
	cmdline = join(&m->run.args, " ");
	snprintf(mem, sizeof(mem), "%d",
		 m->run.memory_mb > 0 ? m->run.memory_mb : 64);
	snprintf(port, sizeof(port), "%d", in->port);
	snprintf(run_port, sizeof(run_port), "%d", m->run.port);
	snprintf(tap, sizeof(tap), "ud%d", in->id);
	if (ext)
		config = ud_asprintf("%s/%d.%s", rundir, in->id, ext);
	if (!strcmp(target, "qemu")) {
		if ((err = qemu_lists(m, arch, in->port, &net, &machine)) < 0)
			goto done;
		if (m->run.args.n) {
			ud_strvec_push(&append, "-append");
			ud_strvec_push(&append, cmdline);
		}
	}

	var(&v, "arch", arch);
	var(&v, "image", image);
	var(&v, "memory_mb", mem);
	var(&v, "name", name);
	var(&v, "config", config ? config : "");
	var(&v, "qmp", qmp);
	var(&v, "tap", tap);
	var(&v, "port", port);
	var(&v, "run_port", run_port);
	var(&v, "cmdline", cmdline);
	var(&v, "rundir", rundir);
	list(&v, "args", &m->run.args);
	list(&v, "net", &net);
	list(&v, "append", &append);
	list(&v, "machine", &machine);

	if (config) {
		if ((err = read_template(a, target, ext, &t, &cfg_where)) < 0)
			goto done;
		v.json = !strcmp(ext, "json");
		if ((err = render_config(t.ptr, cfg_where, &v, &cfg)) < 0 ||
		    (err = ud_write_file_atomic(config, cfg.ptr, cfg.size,
						0640)) < 0)
			goto done;
		ud_buf_free(&t);
		v.json = 0;
	}
	/* The program's name first: the accelerator probe needs it. */
	if ((err = backend_program(a, target, arch, &prog)) < 0)
		goto done;
	if (!strcmp(target, "qemu")) {
		char *qemu = find_program(prog);

		accel = run_env(m, "UNIDEPLOY_QEMU_ACCEL");
		if (!accel)
			accel = qemu ? qemu_accel(a, qemu, arch) : "tcg";
		free(qemu);
	}
	var(&v, "accel", accel);
	if ((err = read_template(a, target, "args", &t, &where)) < 0 ||
	    (err = render_args(t.ptr, where, &v, &rendered)) < 0)
		goto done;
	ud_strvec_push(argv, "");
	free(argv->v[0]);
	if (!(argv->v[0] = find_program(rendered.v[0]))) {
		argv->v[0] = ud_strdup(rendered.v[0]);
		err = ud_error_set(UD_ENOTFOUND, "backend %s needs %s on host %s",
				   target, rendered.v[0], a->conf->host);
		goto done;
	}
	for (size_t i = 1; i < rendered.n; i++)
		ud_strvec_push(argv, rendered.v[i]);
done:
	free(where);
	free(cfg_where);
	free(image);
	free(name);
	free(config);
	free(qmp);
	free(cmdline);
	free(prog);
	ud_buf_free(&t);
	ud_buf_free(&cfg);
	ud_strvec_free(&net);
	ud_strvec_free(&machine);
	ud_strvec_free(&append);
	ud_strvec_free(&rendered);
	return err;
}

int backend_command(struct agent *a, const struct app *app,
		    const struct ud_manifest *m, const char *target,
		    const struct instance *in, const char *rundir,
		    struct ud_strvec *argv)
{
	size_t i;

	if (strcmp(target, "unix"))
		return vm_command(a, app, m, target, in, rundir, argv);
	ud_strvec_push(argv, "");
	free(argv->v[0]);
	argv->v[0] = image_path(a, in->sha256);
	for (i = 0; i < m->run.args.n; i++)
		ud_strvec_push(argv, m->run.args.v[i]);
	return 0;
}

/* Shutdown */

static char *rundir_of(struct agent *a, const struct app *app)
{
	return ud_asprintf("%s/apps/%s/run", a->conf->state_dir, app->name);
}

/* Read one QMP message (a line), up to timeout_ms. */
static int qmp_read(int fd, struct ud_buf *line, int timeout_ms)
{
	long long until = ud_now_ms() + timeout_ms;
	struct pollfd pfd = { fd, POLLIN, 0 };
	char c;

	ud_buf_clear(line);
	while (ud_now_ms() < until &&
	       poll(&pfd, 1, (int)(until - ud_now_ms())) > 0) {
		if (read(fd, &c, 1) != 1)
			return -1;
		if (c == '\n')
			return 0;
		ud_buf_putc(line, c);
	}
	return -1;
}

static int qmp_send(int fd, const char *cmd, struct ud_buf *reply)
{
	size_t len = strlen(cmd);

	if (write(fd, cmd, len) != (ssize_t)len)
		return -1;
	/* Events may come first; the answer is {"return": ...}. */
	do {
		if (qmp_read(fd, reply, 2000) < 0)
			return -1;
	} while (!strstr(reply->ptr, "\"return\"") &&
		 !strstr(reply->ptr, "\"error\""));
	return strstr(reply->ptr, "\"return\"") ? 0 : -1;
}

/*
 * QMP "quit" on the instance's socket. sun_path holds 108 bytes, which a
 * deep state_dir can pass: the directory is then reached through its file
 * descriptor's /proc link.
 */
static int qemu_quit(struct agent *a, const struct app *app,
		     const struct instance *in)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ud_buf reply = UD_BUF_INIT;
	char *dir = rundir_of(a, app), *name = qmp_name(in), *path;
	int dfd = -1, fd = -1, asked = 0;

	path = ud_asprintf("%s/%s", dir, name);
	if (strlen(path) >= sizeof(sa.sun_path)) {
		free(path);
		if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			goto done;
		path = ud_asprintf("/proc/self/fd/%d/%s", dfd, name);
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		goto done;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto done;
	if (qmp_read(fd, &reply, 2000) < 0 ||
	    qmp_send(fd, "{\"execute\": \"qmp_capabilities\"}\n", &reply) < 0)
		goto done;
	asked = qmp_send(fd, "{\"execute\": \"quit\"}\n", &reply) == 0;
done:
	if (!asked)
		ud_log_info("%s: instance %d: no answer on its QMP socket %s",
			    app->name, in->id, path);
	if (fd >= 0)
		close(fd);
	/* Through the directory's fd while it is still ours: once closed,
	 * another thread may reuse its number. */
	if (dfd >= 0) {
		unlinkat(dfd, name, 0);
		close(dfd);
	} else {
		unlink(path);
	}
	ud_buf_free(&reply);
	free(path);
	free(dir);
	free(name);
	return asked;
}

/* `xl destroy`: xl create -F exits once its domain is gone. */
static int xen_destroy(const struct app *app, const struct instance *in)
{
	char *xl = find_program("xl"), *name;
	const char *argv[] = { NULL, "destroy", NULL, NULL };
	struct ud_run_opts opts = { .timeout_ms = 10000 };
	int status = -1;

	if (!xl)
		return 0;
	name = ud_asprintf("ud-%s-%d", app->name, in->id);
	argv[0] = xl;
	argv[2] = name;
	if (ud_run((char *const *)argv, &opts, &status) < 0 || status != 0) {
		ud_log_warn("%s: xl destroy %s: %s", app->name, name,
			    status > 0 ? "failed" : ud_error_last());
		ud_error_clear();
	}
	free(xl);
	free(name);
	return status == 0;
}

int backend_shutdown(struct agent *a, const struct app *app,
		     const struct instance *in)
{
	const char *target = app->place.target ? app->place.target : "unix";
	int asked = 0;

	if (!strcmp(target, "qemu"))
		asked = qemu_quit(a, app, in);
	else if (!strcmp(target, "xen"))
		asked = xen_destroy(app, in);
	if (config_ext(target)) {
		char *dir = rundir_of(a, app);
		char *cfg = ud_asprintf("%s/%d.%s", dir, in->id,
					config_ext(target));

		unlink(cfg);
		free(cfg);
		free(dir);
	}
	return asked;
}
