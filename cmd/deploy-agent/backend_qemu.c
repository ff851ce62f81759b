/*
 * backend_qemu.c: a kernel booted with `qemu-system-<arch> -kernel`
 * (MirageOS -t virtio, Unikraft qemu-x86_64, a Linux microVM with its
 * initrd). The command line is templates/backends/qemu.args; this row
 * fills in the accelerator (KVM or TCG, whichever starts faster here),
 * the network (a tap on the agent's bridge with virtio-net, or user-mode
 * networking with a host forward when the host has no network), the
 * volumes (virtio-blk) and the initrd, and stops an instance with a QMP
 * "quit" on its socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "run.h"

/* The accelerator probe: a tiny boot each way, never longer than this. */
#define PROBE_TIMEOUT_MS 10000
#define PROBE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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

static int kvm_usable(const struct backend_env *env)
{
	int fd = open(env->kvm, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Milliseconds from exec to the probe's byte on the console; -1 if it did
 * not come within timeout_ms. */
static long long probe_boot(const struct backend_env *benv, const char *qemu,
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
	ud_env_set(&env, "PATH", PROBE_PATH);
	ud_env_set(&env, "UNIDEPLOY_STATE_DIR", benv->state_dir);
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
static const char *qemu_accel(const struct backend_env *env, const char *qemu,
			      const char *arch)
{
	static const char *chosen;
	char *dir = NULL, *kernel = NULL;
	long long kvm = -1, tcg = -1, t;
	int i;

	if (strcmp(arch, ud_host_arch()) || !kvm_usable(env))
		return "tcg";
	/* The probe is an x86 kernel; elsewhere trust KVM. */
	if (strcmp(arch, "x86_64"))
		return "kvm";
	if (chosen)
		return chosen;
	dir = ud_asprintf("%s/tmp", env->state_dir);
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
		if ((t = probe_boot(env, qemu, kernel, "tcg", PROBE_TIMEOUT_MS)) >=
			    0 &&
		    (tcg < 0 || t < tcg))
			tcg = t;
		t = probe_boot(env, qemu, kernel, "kvm",
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

/* Where the instance's port goes without a host network: "net" (user
 * networking, a host forward to run.port) or "serial" (COM2 as a TCP
 * server on the port). */
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

static int net_list(const struct backend_inst *in, struct ud_strvec *net)
{
	const char *via;
	size_t i;
	int err;

	if ((err = port_via(in->m, &via)) < 0)
		return err;
	if (!strcmp(via, "serial")) {
		ud_strvec_push(net, "-chardev");
		ud_strvec_pushf(net,
				"socket,id=s1,host=127.0.0.1,port=%d,server=on,"
				"wait=off",
				in->port);
		ud_strvec_push(net, "-device");
		ud_strvec_push(net, "isa-serial,chardev=s1");
	} else if (in->nnets) {
		/* The guest's own stack on the agent's taps. */
		for (i = 0; i < in->nnets; i++) {
			ud_strvec_push(net, "-netdev");
			if (in->tap_fds)
				ud_strvec_pushf(net, "tap,id=n%zu,fd=%zu", i,
						3 + i);
			else
				ud_strvec_pushf(net,
						"tap,id=n%zu,ifname=%s,"
						"script=no,downscript=no",
						i, in->nets[i].tap);
			ud_strvec_push(net, "-device");
			ud_strvec_pushf(net, "virtio-net-pci,netdev=n%zu,mac=%s",
					i, in->nets[i].mac);
		}
	} else if (in->m->run.port > 0) {
		/* No host network: user-mode networking, reached through a
		 * host forward. */
		ud_strvec_push(net, "-netdev");
		ud_strvec_pushf(net,
				"user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d",
				in->port, in->m->run.port);
		ud_strvec_push(net, "-device");
		ud_strvec_pushf(net, "virtio-net-pci,netdev=n0%s%s",
				in->mac ? ",mac=" : "", in->mac ? in->mac : "");
	}
	return 0;
}

static int qemu_prepare(const struct backend_env *env,
			const struct backend_inst *in, struct backend_vars *v)
{
	struct ud_strvec *machine = backend_list(v, "machine");
	struct ud_strvec *append = backend_list(v, "append");
	struct ud_strvec *drives = backend_list(v, "drives_args");
	char *prog, *qemu, *qmp;
	const char *accel;
	size_t i;
	int err;

	if ((err = net_list(in, backend_list(v, "net"))) < 0)
		return err;
	/* Only x86 has a default machine that boots -kernel. */
	if (strcmp(in->arch, "x86_64") && strcmp(in->arch, "i386")) {
		ud_strvec_push(machine, "-machine");
		ud_strvec_push(machine, "virt");
		ud_strvec_push(machine, "-cpu");
		ud_strvec_push(machine, "max");
	}
	if (in->args && in->args->n) {
		struct ud_buf line = UD_BUF_INIT;

		for (i = 0; i < in->args->n; i++)
			ud_buf_printf(&line, "%s%s", i ? " " : "",
				      in->args->v[i]);
		ud_strvec_push(append, "-append");
		ud_strvec_push(append, line.ptr);
		ud_buf_free(&line);
	}
	if (in->initrd) {
		ud_strvec_push(backend_list(v, "initrd_args"), "-initrd");
		ud_strvec_push(backend_list(v, "initrd_args"), in->initrd);
	}
	for (i = 0; i < in->nvols; i++) {
		ud_strvec_push(drives, "-drive");
		ud_strvec_pushf(drives, "file=%s,if=none,id=v%zu,format=raw",
				in->vols[i].path, i);
		ud_strvec_push(drives, "-device");
		ud_strvec_pushf(drives, "virtio-blk-pci,drive=v%zu,serial=%s", i,
				in->vols[i].name);
	}
	qmp = ud_asprintf("qmp-%d.sock", in->id);
	backend_var(v, "qmp", qmp);
	free(qmp);
	accel = run_env(in->m, "UNIDEPLOY_QEMU_ACCEL");
	if (!accel) {
		prog = ud_asprintf("qemu-system-%s", in->arch);
		qemu = backend_find_program(prog);
		accel = qemu ? qemu_accel(env, qemu, in->arch) : "tcg";
		free(qemu);
		free(prog);
	}
	backend_var(v, "accel", accel);
	return 0;
}

/* Shutdown */

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
static int qemu_quit(const struct backend_env *env,
		     const struct backend_inst *in)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ud_buf reply = UD_BUF_INIT;
	const char *dir = in->rundir;
	char *name = ud_asprintf("qmp-%d.sock", in->id), *path;
	int dfd = -1, fd = -1, asked = 0;

	(void)env;
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
			    in->app, in->id, path);
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
	free(name);
	return asked;
}

const struct backend backend_qemu = {
	.target = "qemu",
	.flags = BACKEND_TEMPLATE | BACKEND_NETWORK | BACKEND_INITRD |
		 BACKEND_VOLUMES | BACKEND_TAP_FD,
	.prepare = qemu_prepare,
	.shutdown = qemu_quit,
};
