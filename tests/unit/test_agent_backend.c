/*
 * Tests of the agent's backends (cmd/deploy-agent/backend.c): the exact
 * command lines and config files rendered from templates/backends for
 * qemu, solo5-hvt, Xen and Firecracker, the sync-time checks (a missing
 * program named with the host, an arch the host cannot boot, an unknown
 * target), template errors, and QMP "quit" against a real socket.
 * Programs are found in PATH, which each test points at a directory of
 * stand-in executables.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "backend.h"
#include "launch.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "solo5_fixture.h"

static const char SHA[] =
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

struct fixture {
	char dir[64];
	char *bin, *rundir, *templates, *old_path;
	struct agent a;
	struct ud_agentconf conf;
	struct app app;
	struct ud_manifest *m;
	struct instance in;
};

static void fake_program(struct fixture *f, const char *name)
{
	char *path = ud_asprintf("%s/%s", f->bin, name);

	assert_int_equal(ud_write_file_atomic(path, "#!/bin/sh\n", 10, 0755),
			 0);
	free(path);
}

static void set_image(struct fixture *f, const char *target, const char *arch)
{
	struct ud_manifest_image img = { 0 };

	ud_manifest_free(f->m);
	f->m = ud_manifest_new();
	img.target = (char *)target;
	img.arch = (char *)arch;
	img.file = "image";
	memcpy(img.sha256, SHA, sizeof(SHA));
	ud_manifest_add_image(f->m, &img);
	f->m->run.memory_mb = 48;
	f->m->run.port = 8080;
	free(f->app.place.target);
	f->app.place.target = ud_strdup(target);
}

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));
	const char *path = getenv("PATH");

	strcpy(f->dir, "/tmp/test_agent_backend.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->bin = ud_asprintf("%s/bin", f->dir);
	f->rundir = ud_asprintf("%s/apps/blog/run", f->dir);
	assert_int_equal(ud_mkdir_p(f->bin, 0755), 0);
	assert_int_equal(ud_mkdir_p(f->rundir, 0755), 0);
	/* The tests run from the repository's root. */
	assert_non_null(f->templates = realpath("templates/backends", NULL));
	f->old_path = path ? ud_strdup(path) : NULL;
	setenv("PATH", f->bin, 1);

	f->conf.host = "edge1";
	f->conf.state_dir = f->dir;
	f->a.conf = &f->conf;
	f->a.images_dir = ud_asprintf("%s/images", f->dir);
	/* The instance's image: not an ELF, so it declares no devices. */
	assert_int_equal(ud_mkdir_p(f->a.images_dir, 0755), 0);
	{
		char *img = ud_asprintf("%s/%s", f->a.images_dir, SHA);

		assert_int_equal(
			ud_write_file_atomic(img, "#!/bin/sh\n", 10, 0644), 0);
		free(img);
	}
	f->a.backends_dir = f->templates;
	f->app.name = "blog";
	ud_placement_init(&f->app.place);
	f->in.id = 7;
	f->in.port = 40123;
	memcpy(f->in.sha256, SHA, sizeof(SHA));
	set_image(f, "unix", ud_host_arch());
	ud_log_init(UD_LOG_ERROR, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->old_path)
		setenv("PATH", f->old_path, 1);
	ud_manifest_free(f->m);
	free(f->app.place.target);
	free(f->a.images_dir);
	free(f->templates);
	free(f->bin);
	free(f->rundir);
	free(f->old_path);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

/* argv against a NULL-terminated list; "@IMG" stands for the image path,
 * "@BIN/x" for the stand-in program x, "@RUN/x" for rundir/x. */
static void expect_argv(struct fixture *f, const struct ud_strvec *argv,
			const char *const *want)
{
	size_t i;

	for (i = 0; want[i]; i++) {
		char *w;

		if (!strcmp(want[i], "@IMG"))
			w = ud_asprintf("%s/images/%s", f->dir, SHA);
		else if (!strncmp(want[i], "@BIN/", 5))
			w = ud_asprintf("%s/%s", f->bin, want[i] + 5);
		else if (!strncmp(want[i], "@RUN/", 5))
			w = ud_asprintf("%s/%s", f->rundir, want[i] + 5);
		else
			w = ud_strdup(want[i]);
		if (i >= argv->n)
			fail_msg("argv has %zu arguments, expected %s at %zu",
				 argv->n, w, i);
		assert_string_equal(argv->v[i], w);
		free(w);
	}
	assert_int_equal(argv->n, i);
}

static int command(struct fixture *f, struct ud_strvec *argv)
{
	ud_strvec_init(argv);
	return launch_command(&f->a, &f->app, f->m, f->app.place.target,
			       &f->in, f->rundir, argv);
}

static void test_unix(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	const char *const want[] = { "@IMG", "--verbose", NULL };

	ud_strvec_push(&f->m->run.args, "--verbose");
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, want);
	ud_strvec_free(&argv);
	assert_int_equal(launch_check(&f->a, "unix", ud_host_arch()), 0);
	assert_int_equal(launch_shutdown(&f->a, &f->app, &f->in), 0);
}

static void test_checks(void **state)
{
	struct fixture *f = *state;
	const char *other = strcmp(ud_host_arch(), "aarch64") ? "aarch64" :
								"x86_64";

	/* A missing program, named with the host. */
	assert_int_equal(launch_check(&f->a, "xen", ud_host_arch()),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(), "backend xen needs xl on host edge1");
	assert_int_equal(launch_check(&f->a, "hvt", ud_host_arch()),
			 UD_ENOTFOUND);
	assert_string_equal(ud_error_last(),
			    "backend hvt needs solo5-hvt on host edge1");
	assert_int_equal(launch_check(&f->a, "qemu", "riscv64"), UD_ENOTFOUND);
	assert_string_equal(ud_error_last(), "backend qemu needs "
					     "qemu-system-riscv64 on host "
					     "edge1");
	fake_program(f, "xl");
	fake_program(f, "qemu-system-riscv64");
	assert_int_equal(launch_check(&f->a, "xen", ud_host_arch()), 0);
	/* qemu emulates other arches ... */
	assert_int_equal(launch_check(&f->a, "qemu", "riscv64"), 0);
	/* ... the others and unix run the host's own only. */
	assert_int_equal(launch_check(&f->a, "xen", other), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "cannot boot"));
	assert_non_null(strstr(ud_error_last(), other));
	assert_non_null(strstr(ud_error_last(), "edge1"));
	assert_int_equal(launch_check(&f->a, "unix", other), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), other));
	/* Unknown targets and arches. */
	assert_int_equal(launch_check(&f->a, "vmware", ud_host_arch()),
			 UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "unknown target vmware"));
	assert_int_equal(launch_check(&f->a, "qemu", "../x"), UD_EINVALID);
}

static void test_qemu_net(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	const char *const want[] = {
		"@BIN/qemu-system-x86_64", "-kernel", "@IMG", "-m", "48",
		"-nodefaults", "-no-user-config", "-display", "none", "-accel",
		"tcg", "-serial", "stdio", "-qmp",
		"unix:qmp-7.sock,server=on,wait=off", "-netdev",
		"user,id=n0,hostfwd=tcp:127.0.0.1:40123-:8080", "-device",
		"virtio-net-pci,netdev=n0", "-append", "--ipv4=10.0.2.15/24 -v",
		NULL
	};

	set_image(f, "qemu", "x86_64");
	fake_program(f, "qemu-system-x86_64");
	ud_strvec_push(&f->m->run.env, "UNIDEPLOY_QEMU_ACCEL=tcg");
	ud_strvec_push(&f->m->run.args, "--ipv4=10.0.2.15/24");
	ud_strvec_push(&f->m->run.args, "-v");
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, want);
	ud_strvec_free(&argv);
}

static const char INITRD[] =
	"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

static void add_initrd(struct fixture *f)
{
	f->m->images[0].initrd_file = ud_strdup("qemu-x86_64.initrd");
	memcpy(f->m->images[0].initrd_sha256, INITRD, sizeof(INITRD));
}

/* An image's initrd goes to the backends that boot one, from
 * images/<its sha256>; the others refuse it. */
static void test_initrd(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	struct ud_buf cfg = UD_BUF_INIT;
	json_error_t je;
	json_t *got;
	char *path, *initrd = ud_asprintf("%s/images/%s", f->dir, INITRD);
	const char *const want[] = {
		"@BIN/qemu-system-x86_64", "-kernel", "@IMG", "-initrd",
		initrd, "-m", "48", "-nodefaults", "-no-user-config",
		"-display", "none", "-accel", "tcg", "-serial", "stdio",
		"-qmp", "unix:qmp-7.sock,server=on,wait=off", "-netdev",
		"user,id=n0,hostfwd=tcp:127.0.0.1:40123-:8080", "-device",
		"virtio-net-pci,netdev=n0", NULL
	};

	set_image(f, "qemu", "x86_64");
	add_initrd(f);
	fake_program(f, "qemu-system-x86_64");
	ud_strvec_push(&f->m->run.env, "UNIDEPLOY_QEMU_ACCEL=tcg");
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, want);
	ud_strvec_free(&argv);

	set_image(f, "firecracker", ud_host_arch());
	add_initrd(f);
	fake_program(f, "firecracker");
	assert_int_equal(command(f, &argv), 0);
	ud_strvec_free(&argv);
	path = ud_asprintf("%s/7.json", f->rundir);
	assert_int_equal(ud_buf_read_file(&cfg, path), 0);
	assert_non_null(got = json_loadb(cfg.ptr, cfg.size, 0, &je));
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(got, "boot-source"),
				    "initrd_path")),
			    initrd);
	json_decref(got);
	free(path);
	ud_buf_free(&cfg);

	set_image(f, "hvt", ud_host_arch());
	add_initrd(f);
	fake_program(f, "solo5-hvt");
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(),
			       "backend hvt cannot boot an initrd"));
	ud_strvec_free(&argv);
	free(initrd);
}

static void test_qemu_serial_other_arch(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	const char *const want[] = {
		"@BIN/qemu-system-riscv64", "-machine", "virt", "-cpu", "max",
		"-kernel", "@IMG", "-m", "48", "-nodefaults",
		"-no-user-config", "-display", "none", "-accel", "tcg",
		"-serial", "stdio", "-qmp",
		"unix:qmp-7.sock,server=on,wait=off", "-chardev",
		"socket,id=s1,host=127.0.0.1,port=40123,server=on,wait=off",
		"-device", "isa-serial,chardev=s1", NULL
	};

	set_image(f, "qemu", "riscv64");
	fake_program(f, "qemu-system-riscv64");
	/* Another arch is emulated: TCG without asking. */
	ud_strvec_push(&f->m->run.env, "UNIDEPLOY_PORT_VIA=serial");
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, want);
	ud_strvec_free(&argv);

	ud_strvec_free(&f->m->run.env);
	ud_strvec_push(&f->m->run.env, "UNIDEPLOY_PORT_VIA=tap");
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "UNIDEPLOY_PORT_VIA"));
	ud_strvec_free(&argv);
}

/* The Solo5 rows straight from the table: exactly the devices given,
 * in the tenders' documented syntax (docs/building.md). */
static void solo5_case_fds(struct fixture *f, const char *target,
			   size_t nnets, int block, int tap_fds,
			   const char *const *want)
{
	static const struct backend_net nets[] = {
		{ "service", "ud1a2bt7", "02:00:00:00:00:07" },
		{ "admin", "ud1a2bt7n1", "02:00:00:00:01:07" },
	};
	static const struct backend_vol vol = { "storage",
						"/var/lib/ud/vol/storage.img" };
	struct backend_env env = { "edge1", f->dir, f->templates, "/dev/kvm" };
	struct ud_strvec args = UD_STRVEC_INIT, argv = UD_STRVEC_INIT;
	struct backend_inst in = { 0 };
	char *image = ud_asprintf("%s/images/%s", f->dir, SHA);
	char prog[32];

	snprintf(prog, sizeof(prog), "solo5-%s", target);
	fake_program(f, prog);
	set_image(f, target, ud_host_arch());
	ud_strvec_push(&args, "--ipv4=10.0.0.2/24");
	in.app = "blog";
	in.id = 7;
	in.m = f->m;
	in.arch = ud_host_arch();
	in.image = image;
	in.rundir = f->rundir;
	in.args = &args;
	in.nets = nets;
	in.nnets = nnets;
	in.tap_fds = tap_fds;
	in.vols = block ? &vol : NULL;
	in.nvols = block ? 1 : 0;
	assert_int_equal(backend_argv(&env, backend_find(target), &in, &argv),
			 0);
	expect_argv(f, &argv, want);
	ud_strvec_free(&argv);
	ud_strvec_free(&args);
	free(image);
}

static void solo5_case(struct fixture *f, const char *target, size_t nnets,
		       int block, const char *const *want)
{
	solo5_case_fds(f, target, nnets, block, 0, want);
}

/* Taps opened by the privileged parent come in as descriptors 3, 4, ...:
 * the tenders name them "@N" (Solo5's tap_attach), qemu "fd=N"; the tap's
 * name is then nowhere on the command line. */
static void test_tap_fds(void **state)
{
	struct fixture *f = *state;
	const char *const two[] = {
		"@BIN/solo5-hvt", "--mem=48", "--net:service=@3",
		"--net-mac:service=02:00:00:00:00:07", "--net:admin=@4",
		"--net-mac:admin=02:00:00:00:01:07", "--", "@IMG",
		"--ipv4=10.0.0.2/24", NULL
	};
	static const struct backend_net nets[] = {
		{ "net0", "ud1a2bt7", "02:00:00:00:00:07" },
		{ "net1", "ud1a2bt7n1", "02:00:00:00:01:07" },
	};
	struct backend_env env = { "edge1", f->dir, f->templates, "/dev/kvm" };
	struct ud_strvec args = UD_STRVEC_INIT, argv = UD_STRVEC_INIT;
	struct backend_inst in = { 0 };
	char *image = ud_asprintf("%s/images/%s", f->dir, SHA);
	int fd3 = 0, fd4 = 0;
	size_t i;

	solo5_case_fds(f, "hvt", 2, 0, 1, two);

	set_image(f, "qemu", "x86_64");
	fake_program(f, "qemu-system-x86_64");
	ud_strvec_push(&f->m->run.env, "UNIDEPLOY_QEMU_ACCEL=tcg");
	in.app = "blog";
	in.id = 7;
	in.m = f->m;
	in.arch = "x86_64";
	in.image = image;
	in.rundir = f->rundir;
	in.args = &args;
	in.ip = "10.0.0.2";
	in.gateway = "10.0.0.1";
	in.prefix = 24;
	in.mac = "02:00:00:00:00:07";
	in.bridge = "udbr0";
	in.nets = nets;
	in.nnets = 2;
	in.tap_fds = 1;
	assert_int_equal(backend_argv(&env, backend_find("qemu"), &in, &argv),
			 0);
	for (i = 0; i < argv.n; i++) {
		if (!strcmp(argv.v[i], "tap,id=n0,fd=3"))
			fd3 = 1;
		if (!strcmp(argv.v[i], "tap,id=n1,fd=4"))
			fd4 = 1;
		assert_null(strstr(argv.v[i], "ifname="));
		assert_null(strstr(argv.v[i], "ud1a2bt7"));
	}
	assert_true(fd3 && fd4);
	ud_strvec_free(&argv);
	/* Without the parent, the tap by name as before. */
	in.tap_fds = 0;
	assert_int_equal(backend_argv(&env, backend_find("qemu"), &in, &argv),
			 0);
	for (i = 0, fd3 = 0; i < argv.n; i++)
		if (strstr(argv.v[i], "ifname=ud1a2bt7,"))
			fd3 = 1;
	assert_true(fd3);
	ud_strvec_free(&argv);
	ud_strvec_free(&args);
	free(image);
}

static void test_solo5(void **state)
{
	struct fixture *f = *state;
	const char *const none[] = { "@BIN/solo5-hvt", "--mem=48", "--", "@IMG",
				     "--ipv4=10.0.0.2/24", NULL };
	const char *const one[] = { "@BIN/solo5-spt", "--mem=48",
				    "--net:service=ud1a2bt7",
				    "--net-mac:service=02:00:00:00:00:07", "--",
				    "@IMG", "--ipv4=10.0.0.2/24", NULL };
	const char *const two_block[] = {
		"@BIN/solo5-hvt", "--mem=48", "--net:service=ud1a2bt7",
		"--net-mac:service=02:00:00:00:00:07", "--net:admin=ud1a2bt7n1",
		"--net-mac:admin=02:00:00:00:01:07",
		"--block:storage=/var/lib/ud/vol/storage.img", "--", "@IMG",
		"--ipv4=10.0.0.2/24", NULL
	};
	const char *const block_only[] = {
		"@BIN/solo5-spt", "--mem=48",
		"--block:storage=/var/lib/ud/vol/storage.img", "--", "@IMG",
		"--ipv4=10.0.0.2/24", NULL
	};

	solo5_case(f, "hvt", 0, 0, none);
	solo5_case(f, "spt", 1, 0, one);
	solo5_case(f, "hvt", 2, 1, two_block);
	solo5_case(f, "spt", 0, 1, block_only);
	/* Through the agent, with no host network and no devices: nothing
	 * is attached (the image's manifest decides, never a fixed name). */
	{
		struct ud_strvec argv;
		const char *const want[] = { "@BIN/solo5-hvt", "--mem=48", "--",
					     "@IMG", NULL };

		set_image(f, "hvt", ud_host_arch());
		assert_int_equal(command(f, &argv), 0);
		expect_argv(f, &argv, want);
		ud_strvec_free(&argv);
		assert_int_equal(launch_shutdown(&f->a, &f->app, &f->in), 0);
	}
}

static void add_block(struct fixture *f, const char *name, int size_mb)
{
	struct ud_run_spec *r = &f->m->run;

	r->block = ud_realloc(r->block, (r->nblock + 1) * sizeof(*r->block));
	r->block[r->nblock].name = ud_strdup(name);
	r->block[r->nblock++].size_mb = size_mb;
}

/* run.block's volumes: a Solo5 image gets exactly the block devices it
 * declares, a VM all of them, a process none (refused). */
static void test_volumes(void **state)
{
	struct fixture *f = *state;
	static const struct dev blk = { "storage", UD_SOLO5_BLOCK_BASIC };
	struct ud_strvec argv;
	char *img = ud_asprintf("%s/images/%s", f->dir, SHA);
	char *vol = ud_asprintf("--block:storage=%s/volumes/blog/storage.img",
				f->dir);
	char *drive = ud_asprintf("file=%s/volumes/blog/storage.img,if=none,"
				  "id=v0,format=raw",
				  f->dir);
	char *drive1 = ud_asprintf("file=%s/volumes/blog/logs.img,if=none,"
				   "id=v1,format=raw",
				   f->dir);
	const char *const hvt[] = { "@BIN/solo5-hvt", "--mem=48", vol, "--",
				    "@IMG", NULL };
	const char *const qemu[] = {
		"@BIN/qemu-system-x86_64", "-kernel", "@IMG", "-m", "48",
		"-nodefaults", "-no-user-config", "-display", "none", "-accel",
		"tcg", "-serial", "stdio", "-qmp",
		"unix:qmp-7.sock,server=on,wait=off", "-netdev",
		"user,id=n0,hostfwd=tcp:127.0.0.1:40123-:8080", "-device",
		"virtio-net-pci,netdev=n0", "-drive", drive, "-device",
		"virtio-blk-pci,drive=v0,serial=storage", "-drive", drive1,
		"-device", "virtio-blk-pci,drive=v1,serial=logs", NULL
	};

	assert_int_equal(solo5_fixture_write(img, FIX_HVT, &blk, 1), 0);
	set_image(f, "hvt", ud_host_arch());
	fake_program(f, "solo5-hvt");
	/* Declared but not in run.block (a hand-made manifest). */
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(),
			       "declares block device 'storage' but "
			       "run.block has no volume"));
	ud_strvec_free(&argv);
	/* In run.block, with one the image does not declare. */
	add_block(f, "logs", 8);
	add_block(f, "storage", 64);
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, hvt);
	ud_strvec_free(&argv);

	assert_int_equal(ud_write_file_atomic(img, "#!/bin/sh\n", 10, 0644), 0);
	set_image(f, "qemu", "x86_64");
	fake_program(f, "qemu-system-x86_64");
	ud_strvec_push(&f->m->run.env, "UNIDEPLOY_QEMU_ACCEL=tcg");
	add_block(f, "storage", 64);
	add_block(f, "logs", 8);
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, qemu);
	ud_strvec_free(&argv);

	set_image(f, "unix", ud_host_arch());
	add_block(f, "storage", 64);
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(),
			       "backend unix cannot attach volumes"));
	ud_strvec_free(&argv);
	free(img);
	free(vol);
	free(drive);
	free(drive1);
}

/* hvt and firecracker need KVM: a host without it fails the sync-time
 * check with the device's name; spt and qemu do not. */
static void test_kvm_check(void **state)
{
	struct fixture *f = *state;
	char *missing = ud_asprintf("%s/no-kvm", f->dir);

	fake_program(f, "solo5-hvt");
	fake_program(f, "solo5-spt");
	fake_program(f, "firecracker");
	f->a.kvm_path = missing;
	assert_int_equal(launch_check(&f->a, "hvt", ud_host_arch()),
			 UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), "backend hvt needs "));
	assert_non_null(strstr(ud_error_last(), "/no-kvm on host edge1"));
	assert_int_equal(launch_check(&f->a, "firecracker", ud_host_arch()),
			 UD_ENOTFOUND);
	assert_int_equal(launch_check(&f->a, "spt", ud_host_arch()), 0);
	f->a.kvm_path = "/dev/null";
	assert_int_equal(launch_check(&f->a, "hvt", ud_host_arch()), 0);
	f->a.kvm_path = NULL;
	free(missing);
}

/* run.args placeholders, filled per instance. */
static void test_fill_args(void **state)
{
	struct ud_strvec in = UD_STRVEC_INIT, out = UD_STRVEC_INIT;

	(void)state;
	ud_strvec_push(&in, "--ipv4={{ipv4}}");
	ud_strvec_push(&in, "--ipv4-gateway={{gateway}}");
	ud_strvec_push(&in, "netdev.ip={{ipv4}}:{{gateway}}");
	ud_strvec_push(&in, "ip={{ip}}::{{gateway}}:{{netmask}}::eth0:off");
	ud_strvec_push(&in, "{{prefix}} {{mac}} plain");
	assert_int_equal(backend_fill_args(&out, &in, "10.200.0.7", 24,
					   "10.200.0.1", "02:aa:00:00:00:07",
					   "instance 7 of blog"),
			 0);
	assert_int_equal(out.n, 5);
	assert_string_equal(out.v[0], "--ipv4=10.200.0.7/24");
	assert_string_equal(out.v[1], "--ipv4-gateway=10.200.0.1");
	assert_string_equal(out.v[2], "netdev.ip=10.200.0.7/24:10.200.0.1");
	assert_string_equal(out.v[3],
			    "ip=10.200.0.7::10.200.0.1:255.255.255.0::eth0:off");
	assert_string_equal(out.v[4], "24 02:aa:00:00:00:07 plain");
	ud_strvec_free(&out);
	/* Without an address of its own: refused, naming the instance. */
	assert_int_equal(backend_fill_args(&out, &in, NULL, 0, NULL, NULL,
					   "instance 7 of blog"),
			 UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "run.args: {{ipv4}}: instance 7 of blog has no "
			    "network address to fill in");
	ud_strvec_free(&out);
	ud_strvec_free(&in);
	ud_strvec_push(&in, "--x={{ipv6}}");
	assert_int_equal(backend_fill_args(&out, &in, "10.0.0.2", 24,
					   "10.0.0.1", "02:00:00:00:00:01", "i"),
			 UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "unknown placeholder {{ipv6}}"));
	ud_strvec_free(&out);
	ud_strvec_free(&in);
	ud_strvec_push(&in, "--x={{ip");
	assert_int_equal(backend_fill_args(&out, &in, "10.0.0.2", 24,
					   "10.0.0.1", "02:00:00:00:00:01", "i"),
			 UD_EINVALID);
	ud_strvec_free(&out);
	ud_strvec_free(&in);
}

static void test_xen(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	struct ud_buf cfg = UD_BUF_INIT;
	char *path = NULL, *want_cfg;
	const char *const want[] = { "@BIN/xl", "create", "-F", "-c",
				     "@RUN/7.cfg", NULL };

	set_image(f, "xen", ud_host_arch());
	fake_program(f, "xl");
	ud_strvec_push(&f->m->run.args, "--ipv4=10.0.0.2/24");
	ud_strvec_push(&f->m->run.args, "-l");
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, want);
	ud_strvec_free(&argv);

	path = ud_asprintf("%s/7.cfg", f->rundir);
	assert_int_equal(ud_buf_read_file(&cfg, path), 0);
	want_cfg = ud_asprintf(
		"# xl domain configuration of one instance, rendered by the "
		"agent.\n"
		"name = \"ud-blog-7\"\n"
		"type = \"pvh\"\n"
		"kernel = \"%s/images/%s\"\n"
		"cmdline = \"--ipv4=10.0.0.2/24 -l\"\n"
		"memory = 48\n"
		"vcpus = 1\n"
		"vif = [ \"bridge=xenbr0,vifname=ud7\" ]\n"
		"on_crash = \"destroy\"\n",
		f->dir, SHA);
	assert_string_equal(cfg.ptr, want_cfg);
	free(want_cfg);

	/* A value that would end xl's quoted string is refused. */
	ud_strvec_push(&f->m->run.args, "\"; extra = \"1");
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "xen.cfg:5"));
	ud_strvec_free(&argv);

	/* Shutdown runs `xl destroy` (the stand-in exits 0) and removes the
	 * rendered config. */
	assert_int_equal(launch_shutdown(&f->a, &f->app, &f->in), 1);
	assert_int_not_equal(access(path, F_OK), 0);
	free(path);
	ud_buf_free(&cfg);
}

static void test_firecracker(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	struct ud_buf cfg = UD_BUF_INIT;
	json_error_t je;
	json_t *got, *want;
	char *path, *image;
	const char *const wantv[] = { "@BIN/firecracker", "--no-api",
				      "--config-file", "@RUN/7.json", NULL };

	set_image(f, "firecracker", ud_host_arch());
	fake_program(f, "firecracker");
	ud_strvec_push(&f->m->run.args, "--ipv4=10.0.0.2/24");
	assert_int_equal(command(f, &argv), 0);
	expect_argv(f, &argv, wantv);
	ud_strvec_free(&argv);

	path = ud_asprintf("%s/7.json", f->rundir);
	assert_int_equal(ud_buf_read_file(&cfg, path), 0);
	assert_non_null(got = json_loadb(cfg.ptr, cfg.size, 0, &je));
	image = ud_asprintf("%s/images/%s", f->dir, SHA);
	want = json_pack(
		"{s:{s:s, s:s}, s:{s:i, s:i}, s:[{s:s, s:s}], s:[]}",
		"boot-source", "kernel_image_path", image, "boot_args",
		"console=ttyS0 reboot=k panic=1 --ipv4=10.0.0.2/24",
		"machine-config", "vcpu_count", 1, "mem_size_mib", 48,
		"network-interfaces", "iface_id", "eth0", "host_dev_name",
		"ud7", "drives");
	assert_non_null(want);
	if (!json_equal(got, want)) {
		char *s = json_dumps(got, JSON_SORT_KEYS);

		fail_msg("firecracker.json: %s", s);
	}
	json_decref(got);
	json_decref(want);
	free(image);
	assert_int_equal(launch_shutdown(&f->a, &f->app, &f->in), 0);
	assert_int_not_equal(access(path, F_OK), 0);
	free(path);
	ud_buf_free(&cfg);
}

static void test_template_errors(void **state)
{
	struct fixture *f = *state;
	struct ud_strvec argv;
	char *dir = ud_asprintf("%s/templates", f->dir), *p;

	set_image(f, "hvt", ud_host_arch());
	fake_program(f, "solo5-hvt");
	assert_int_equal(ud_mkdir_p(dir, 0755), 0);
	f->a.backends_dir = dir;
	/* No template at all. */
	assert_int_equal(command(f, &argv), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), "hvt.args"));
	ud_strvec_free(&argv);
	/* An unknown placeholder, named with its line. */
	p = ud_asprintf("%s/hvt.args", dir);
	assert_int_equal(ud_write_file_atomic(p, "solo5-hvt\n\n--cpus={{cpus}}\n",
					      27, 0644),
			 0);
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "hvt.args:3: unknown "
						"placeholder {{cpus}}"));
	ud_strvec_free(&argv);
	free(p);
	/* A JSON config that does not parse once rendered. */
	set_image(f, "firecracker", ud_host_arch());
	fake_program(f, "firecracker");
	p = ud_asprintf("%s/firecracker.args", dir);
	assert_int_equal(ud_write_file_atomic(p, "firecracker\n{{config}}\n",
					      23, 0644),
			 0);
	free(p);
	p = ud_asprintf("%s/firecracker.json", dir);
	assert_int_equal(ud_write_file_atomic(p, "{\"mem\": {{memory_mb}},}\n",
					      24, 0644),
			 0);
	assert_int_equal(command(f, &argv), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "firecracker.json rendered: 1:"));
	ud_strvec_free(&argv);
	free(p);
	f->a.backends_dir = f->templates;
	free(dir);
}

/* A stand-in qemu monitor: greets, answers each command, records them. */
struct qmp_server {
	int fd;
	struct ud_buf got;
};

static void *qmp_serve(void *arg)
{
	struct qmp_server *s = arg;
	const char *greeting = "{\"QMP\": {\"version\": {}, "
			       "\"capabilities\": []}}\r\n";
	const char *answer = "{\"return\": {}}\r\n";
	char buf[256];
	ssize_t n;
	int c = accept(s->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	if (write(c, greeting, strlen(greeting)) < 0)
		goto done;
	while ((n = read(c, buf, sizeof(buf))) > 0) {
		ud_buf_put(&s->got, buf, (size_t)n);
		/* An event before the answer must be skipped. */
		if (write(c, "{\"event\": \"SHUTDOWN\"}\r\n", 23) < 0 ||
		    write(c, answer, strlen(answer)) < 0)
			break;
	}
done:
	close(c);
	return NULL;
}

static void test_qemu_qmp_quit(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct qmp_server s = { -1, UD_BUF_INIT };
	char *path = ud_asprintf("%s/qmp-7.sock", f->rundir);
	pthread_t t;

	set_image(f, "qemu", "x86_64");
	/* No socket: nothing asked, the supervisor signals. */
	assert_int_equal(launch_shutdown(&f->a, &f->app, &f->in), 0);

	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	assert_true((s.fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(s.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s.fd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, qmp_serve, &s), 0);
	assert_int_equal(launch_shutdown(&f->a, &f->app, &f->in), 1);
	pthread_join(t, NULL);
	assert_string_equal(s.got.ptr, "{\"execute\": \"qmp_capabilities\"}\n"
				       "{\"execute\": \"quit\"}\n");
	/* The socket is removed with the instance. */
	assert_int_not_equal(access(path, F_OK), 0);
	close(s.fd);
	ud_buf_free(&s.got);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qemu_net, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qemu_serial_other_arch,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_solo5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tap_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kvm_check, setup, teardown),
		cmocka_unit_test(test_fill_args),
		cmocka_unit_test_setup_teardown(test_xen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_initrd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_firecracker, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_template_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_qemu_qmp_quit, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
