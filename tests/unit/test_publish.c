/* test_publish.c: real builds published into a fresh deployment
 * repository, read back through release.h, compress.h and the git CLI. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <git2.h>

#include "buf.h"
#include "build.h"
#include "compress.h"
#include "digest.h"
#include "errors.h"
#include "fleet.h"
#include "manifest.h"
#include "publish.h"
#include "release.h"
#include "repo.h"
#include "run.h"
#include "solo5_fixture.h"

/* libgit2 1.5 leaks PCRE2 match blocks in its config regex lookups, not
 * ours to free. Read by LeakSanitizer only. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

#define DEPLOY_JSON                                                          \
	"{\"app\": \"hello\",\n"                                             \
	" \"build\": {\"command\": \"mkdir -p dist && yes unikernel | "     \
	"head -c 100000 > dist/hello.img && printf elf > dist/k.elf && "     \
	"echo built $DEPLOY_APP\"},\n"                                       \
	" \"images\": [\n"                                                   \
	"  {\"target\": \"unix\", \"arch\": \"x86_64\", \"path\": "          \
	"\"dist/hello.img\"},\n"                                             \
	"  {\"target\": \"qemu\", \"arch\": \"x86_64\", \"path\": "          \
	"\"dist/k.elf\"}],\n"                                                \
	" \"run\": {\"port\": 8080, \"memory_mb\": 128, \"args\": "          \
	"[\"--verbose\"], \"env\": {\"MODE\": \"prod\"}},\n"                 \
	" \"health\": {\"http\": \"/ready\", \"timeout_s\": 7, "             \
	"\"on_failure\": \"keep\"}}\n"

struct fixture {
	char dir[64];
	char *tmp, *deploy_path;
	git_repository *src;
	git_oid commit;
	struct ud_deployrepo *r;
	struct ud_build *b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *src_dir, *cache;
	int err = -1;

	strcpy(f->dir, "/tmp/ud-publish-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	src_dir = ud_asprintf("%s/app", f->dir);
	cache = ud_asprintf("%s/cache", f->dir);
	f->tmp = ud_asprintf("%s/tmp", f->dir);
	f->deploy_path = ud_asprintf("%s/deploy.git", f->dir);
	setenv("DEPLOY_CACHE_ROOT", cache, 1);
	setenv("TMPDIR", f->tmp, 1);
	if (ud_mkdir_p(f->tmp, 0700) < 0 ||
	    git_repository_init(&f->src, src_dir, 0) < 0 ||
	    ud_deployrepo_init(f->deploy_path, NULL) < 0 ||
	    ud_deployrepo_open(&f->r, f->deploy_path) < 0)
		goto done;
	err = 0;
done:
	if (err < 0)
		fprintf(stderr, "setup: %s\n", ud_error_last());
	free(src_dir);
	free(cache);
	*state = f;
	return err;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ud_build_free(f->b);
	ud_deployrepo_free(f->r);
	git_repository_free(f->src);
	unsetenv("DEPLOY_CACHE_ROOT");
	unsetenv("TMPDIR");
	ud_rm_rf(f->dir);
	free(f->tmp);
	free(f->deploy_path);
	free(f);
	return 0;
}

static void commit_deploy_json(struct fixture *f, const char *text)
{
	git_index *idx = NULL;
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	git_index_entry e;
	git_oid tree_id;

	memset(&e, 0, sizeof(e));
	e.path = "deploy.json";
	e.mode = GIT_FILEMODE_BLOB;
	assert_int_equal(git_repository_index(&idx, f->src), 0);
	assert_int_equal(git_index_add_from_buffer(idx, &e, text, strlen(text)),
			 0);
	assert_int_equal(git_index_write_tree(&tree_id, idx), 0);
	assert_int_equal(git_tree_lookup(&tree, f->src, &tree_id), 0);
	assert_int_equal(git_signature_now(&sig, "Ada", "ada@example.org"), 0);
	{
		/* A later commit of the same test has the last as parent. */
		git_commit *parent = NULL;
		git_oid head;
		const git_commit *parents[1];
		size_t n = 0;

		if (git_reference_name_to_id(&head, f->src, "HEAD") == 0 &&
		    git_commit_lookup(&parent, f->src, &head) == 0)
			parents[n++] = parent;
		assert_int_equal(git_commit_create(&f->commit, f->src, "HEAD",
						   sig, sig, NULL, "Ship it",
						   tree, n, parents),
				 0);
		git_commit_free(parent);
	}
	git_signature_free(sig);
	git_tree_free(tree);
	git_index_free(idx);
}

static void build_json(struct fixture *f, const char *json, int run)
{
	struct ud_build_opts o = { .ref = "refs/heads/main" };

	commit_deploy_json(f, json);
	if (ud_build_prepare(&f->b, f->src, &f->commit, &o) < 0)
		fail_msg("prepare: %s", ud_error_last());
	if (run && ud_build_run(f->b, &o) < 0)
		fail_msg("run: %s", ud_error_last());
}

static void build(struct fixture *f, int run)
{
	build_json(f, DEPLOY_JSON, run);
}

static void read_release_file(struct fixture *f, int n, const char *name,
			      struct ud_buf *out)
{
	char *path = ud_asprintf("apps/hello/releases/%d/%s", n, name);

	ud_buf_clear(out);
	if (ud_deployrepo_read(f->r, NULL, path, out) < 0)
		fail_msg("%s: %s", path, ud_error_last());
	free(path);
}

/* What plain git sees at main:<path>. */
static void git_show(struct fixture *f, const char *path, struct ud_buf *out)
{
	char *dirarg = ud_asprintf("--git-dir=%s", f->deploy_path);
	char *spec = ud_asprintf("main:%s", path);
	char *argv[] = { "git", dirarg, "cat-file", "blob", spec, NULL };
	struct ud_run_opts o = { 0 };
	int status = -1;

	ud_buf_clear(out);
	o.capture = out;
	assert_int_equal(ud_run(argv, &o, &status), 0);
	assert_int_equal(status, 0);
	free(dirarg);
	free(spec);
}

static void check_manifest(struct fixture *f, const struct ud_manifest *m,
			   enum ud_compression c)
{
	const struct ud_build *b = f->b;
	char *unix_name = ud_publish_image_name("unix", "x86_64", c);

	assert_string_equal(m->app, "hello");
	assert_string_equal(m->source.commit, b->commit);
	assert_string_equal(m->source.ref, "refs/heads/main");
	assert_string_equal(m->source.subject, "Ship it");
	assert_string_equal(m->source.author, "Ada <ada@example.org>");
	assert_string_equal(m->build.command, b->cfg->build_command);
	assert_int_equal(m->rollback_of, 0);
	assert_int_equal(m->nimages, 2);
	assert_string_equal(m->images[0].target, "unix");
	assert_string_equal(m->images[0].arch, "x86_64");
	assert_string_equal(m->images[0].file, unix_name);
	assert_string_equal(m->images[0].sha256, b->images[0].sha256);
	assert_int_equal(m->images[0].size, 100000);
	assert_int_equal(m->images[0].compression, c);
	assert_string_equal(m->images[1].target, "qemu");
	assert_int_equal(m->images[1].size, 3);
	/* run and health come from deploy.json. */
	assert_int_equal(m->run.port, 8080);
	assert_int_equal(m->run.memory_mb, 128);
	assert_int_equal(m->run.args.n, 1);
	assert_string_equal(m->run.args.v[0], "--verbose");
	assert_int_equal(m->run.env.n, 1);
	assert_string_equal(m->run.env.v[0], "MODE=prod");
	assert_int_equal(m->health.kind, UD_HEALTH_HTTP);
	assert_string_equal(m->health.http_path, "/ready");
	assert_int_equal(m->health.timeout_s, 7);
	assert_int_equal(m->health.rollback, 0);
	free(unix_name);
}

static void test_publish_none_then_gzip(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL, *read = NULL;
	struct ud_buf blob = UD_BUF_INIT, image = UD_BUF_INIT,
		      plain = UD_BUF_INIT;
	char sha[UD_SHA256_HEX], tmpl[64];
	uint64_t size = 0;
	int fd, current = 0;

	build(f, 1);
	assert_string_equal(f->b->log.ptr, "built hello\n");
	assert_int_equal(ud_buf_read_file(&image, f->b->images[0].path), 0);

	/* Uncompressed: the blob is the image, byte for byte. */
	if (ud_publish_build(f->r, f->b, UD_COMP_NONE, &m) < 0)
		fail_msg("publish: %s", ud_error_last());
	assert_int_equal(m->release, 1);
	check_manifest(f, m, UD_COMP_NONE);
	ud_manifest_free(m);
	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 1, &read), 0);
	check_manifest(f, read, UD_COMP_NONE);
	ud_manifest_free(read);
	read_release_file(f, 1, "unix-x86_64.img", &blob);
	assert_int_equal(blob.size, image.size);
	assert_memory_equal(blob.ptr, image.ptr, image.size);
	ud_sha256_mem(sha, blob.ptr, blob.size);
	assert_string_equal(sha, f->b->images[0].sha256);
	read_release_file(f, 1, "qemu-x86_64.img", &blob);
	assert_string_equal(blob.ptr, "elf");
	read_release_file(f, 1, "build.log", &blob);
	assert_string_equal(blob.ptr, f->b->log.ptr);
	git_show(f, "apps/hello/releases/1/build.log", &plain);
	assert_string_equal(plain.ptr, "built hello\n");

	/* gzip: a smaller gzip stream that decompresses to the image. */
	if (ud_publish_build(f->r, f->b, UD_COMP_GZIP, &m) < 0)
		fail_msg("publish: %s", ud_error_last());
	assert_int_equal(m->release, 2);
	check_manifest(f, m, UD_COMP_GZIP);
	ud_manifest_free(m);
	assert_int_equal(ud_release_manifest(f->r, NULL, "hello", 2, &read), 0);
	check_manifest(f, read, UD_COMP_GZIP);
	ud_manifest_free(read);
	assert_int_equal(ud_release_current(f->r, NULL, "hello", &current), 0);
	assert_int_equal(current, 2);
	read_release_file(f, 2, "unix-x86_64.img.gz", &blob);
	assert_true(blob.size > 2);
	assert_true(blob.size < image.size);
	assert_int_equal((unsigned char)blob.ptr[0], 0x1f);
	assert_int_equal((unsigned char)blob.ptr[1], 0x8b);
	/* The git CLI reads the same bytes. */
	git_show(f, "apps/hello/releases/2/unix-x86_64.img.gz", &plain);
	assert_int_equal(plain.size, blob.size);
	assert_memory_equal(plain.ptr, blob.ptr, blob.size);

	snprintf(tmpl, sizeof(tmpl), "%s/out-XXXXXX", f->tmp);
	assert_true((fd = mkstemp(tmpl)) >= 0);
	assert_int_equal(ud_decompress_to_fd(fd, blob.ptr, blob.size,
					     UD_COMP_GZIP, sha, &size),
			 0);
	close(fd);
	assert_string_equal(sha, f->b->images[0].sha256);
	assert_int_equal(size, 100000);
	ud_buf_clear(&plain);
	assert_int_equal(ud_buf_read_file(&plain, tmpl), 0);
	assert_int_equal(plain.size, image.size);
	assert_memory_equal(plain.ptr, image.ptr, image.size);
	read_release_file(f, 2, "build.log", &blob);
	assert_string_equal(blob.ptr, f->b->log.ptr);

	ud_buf_free(&blob);
	ud_buf_free(&image);
	ud_buf_free(&plain);
}

static void add_host(struct ud_fleet *f, const char *name, const char *arch)
{
	struct ud_fleet_host h = { 0 };
	char *agent = ud_asprintf("unix:/run/%s.sock", name);

	h.name = (char *)name;
	h.agent = agent;
	h.arch = (char *)arch;
	if (ud_fleet_set_host(f, &h) < 0)
		fail_msg("set_host: %s", ud_error_last());
	free(agent);
}

static void place(struct ud_fleet *f, const char *app, const char *target,
		  const char *h1, const char *h2)
{
	struct ud_placement p;

	ud_placement_init(&p);
	p.app = (char *)app;
	p.target = (char *)target;
	ud_strvec_init(&p.hosts);
	ud_strvec_push(&p.hosts, h1);
	if (h2)
		ud_strvec_push(&p.hosts, h2);
	if (ud_fleet_set_placement(f, &p) < 0)
		fail_msg("set_placement: %s", ud_error_last());
	ud_strvec_free(&p.hosts);
}

static void test_check_placement(void **state)
{
	struct fixture *f = *state;
	struct ud_fleet *fleet = ud_fleet_new();

	/* Only prepared: the check runs before anything is built. */
	build(f, 0);
	add_host(fleet, "edge1", NULL);
	add_host(fleet, "arm1", "aarch64");
	add_host(fleet, "x86", "x86_64");

	/* Not placed anywhere, or only another app is: nothing to check. */
	assert_int_equal(ud_publish_check_placement(fleet, f->b), 0);
	place(fleet, "other", "hvt", "edge1", NULL);
	assert_int_equal(ud_publish_check_placement(fleet, f->b), 0);

	place(fleet, "hello", "unix", "edge1", "x86");
	assert_int_equal(ud_publish_check_placement(fleet, f->b), 0);
	place(fleet, "hello", "qemu", "x86", NULL);
	assert_int_equal(ud_publish_check_placement(fleet, f->b), 0);

	/* No image for the target at all. */
	place(fleet, "hello", "hvt", "edge1", NULL);
	assert_int_equal(ud_publish_check_placement(fleet, f->b), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "edge1"));
	assert_non_null(strstr(ud_error_last(), "hvt"));

	/* A host of another arch: refused, naming it and the arch. */
	place(fleet, "hello", "unix", "x86", "arm1");
	assert_int_equal(ud_publish_check_placement(fleet, f->b), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "arm1"));
	assert_non_null(strstr(ud_error_last(), "unix/aarch64"));
	assert_null(strstr(ud_error_last(), "x86 "));

	ud_fleet_free(fleet);
}

/* One release carries the images of every arch its hosts need. */
#define MULTI_ARCH_JSON                                                      \
	"{\"app\": \"hello\",\n"                                             \
	" \"build\": {\"command\": \"mkdir -p dist && printf x86 > "          \
	"dist/x86.elf && printf arm64 > dist/arm.elf\"},\n"                   \
	" \"images\": [\n"                                                   \
	"  {\"target\": \"qemu\", \"arch\": \"x86_64\", \"path\": "          \
	"\"dist/x86.elf\"},\n"                                               \
	"  {\"target\": \"qemu\", \"arch\": \"aarch64\", \"path\": "         \
	"\"dist/arm.elf\"}]}\n"

static void test_multi_arch(void **state)
{
	struct fixture *f = *state;
	struct ud_fleet *fleet = ud_fleet_new();
	struct ud_manifest *m = NULL, *back = NULL;
	const struct ud_manifest_image *x86, *arm;
	struct ud_buf b = UD_BUF_INIT;

	build_json(f, MULTI_ARCH_JSON, 0);
	add_host(fleet, "cloud1", "x86_64");
	add_host(fleet, "arm1", "aarch64");
	add_host(fleet, "rv1", "riscv64");
	place(fleet, "hello", "qemu", "cloud1", "arm1");
	assert_int_equal(ud_publish_check_placement(fleet, f->b), 0);
	/* A host whose arch no image has: refused, naming host and arch. */
	place(fleet, "hello", "qemu", "arm1", "rv1");
	assert_int_equal(ud_publish_check_placement(fleet, f->b), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "rv1"));
	assert_non_null(strstr(ud_error_last(), "qemu/riscv64"));

	if (ud_build_run(f->b, &(struct ud_build_opts){
				       .ref = "refs/heads/main" }) < 0)
		fail_msg("run: %s", ud_error_last());
	if (ud_publish_build(f->r, f->b, UD_COMP_NONE, &m) < 0)
		fail_msg("publish: %s", ud_error_last());
	/* Both in release 1, each under its own name, read back from git. */
	assert_int_equal(m->release, 1);
	read_release_file(f, 1, "manifest.json", &b);
	assert_int_equal(ud_manifest_parse(&back, "manifest.json", b.ptr,
					   b.size),
			 0);
	assert_int_equal(back->nimages, 2);
	assert_non_null(x86 = ud_manifest_pick(back, "qemu", "x86_64"));
	assert_non_null(arm = ud_manifest_pick(back, "qemu", "aarch64"));
	assert_string_equal(x86->file, "qemu-x86_64.img");
	assert_string_equal(arm->file, "qemu-aarch64.img");
	assert_string_not_equal(x86->sha256, arm->sha256);
	read_release_file(f, 1, "qemu-x86_64.img", &b);
	assert_int_equal(b.size, 3);
	assert_memory_equal(b.ptr, "x86", 3);
	read_release_file(f, 1, "qemu-aarch64.img", &b);
	assert_int_equal(b.size, 5);
	assert_memory_equal(b.ptr, "arm64", 5);

	ud_buf_free(&b);
	ud_manifest_free(m);
	ud_manifest_free(back);
	ud_fleet_free(fleet);
}

#define INITRD_JSON                                                          \
	"{\"app\": \"hello\",\n"                                             \
	" \"build\": {\"command\": \"mkdir -p d && printf kernel > d/k && " \
	"printf ramdisk > d/r.cpio && printf u > d/u\"},\n"                    \
	" \"images\": [\n"                                                   \
	"  {\"target\": \"unix\", \"arch\": \"x86_64\", \"path\": \"d/u\"},\n" \
	"  {\"target\": \"qemu\", \"arch\": \"x86_64\", \"path\": \"d/k\", " \
	"\"initrd\": \"d/r.cpio\"}]}\n"

/* An initrd is built, stored and recorded next to its image, with a
 * digest of its own, and a rollback reuses its blob. */
static void test_initrd(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL, *back = NULL, *rb = NULL;
	const struct ud_manifest_image *q;
	struct ud_buf b = UD_BUF_INIT;
	char sha[UD_SHA256_HEX];

	build_json(f, INITRD_JSON, 1);
	assert_null(f->b->images[0].initrd);
	assert_non_null(f->b->images[1].initrd);
	assert_int_equal(f->b->images[1].initrd_size, 7);
	ud_sha256_mem(sha, "ramdisk", 7);
	assert_string_equal(f->b->images[1].initrd_sha256, sha);
	if (ud_publish_build(f->r, f->b, UD_COMP_GZIP, &m) < 0)
		fail_msg("publish: %s", ud_error_last());
	read_release_file(f, 1, "manifest.json", &b);
	assert_int_equal(ud_manifest_parse(&back, "manifest.json", b.ptr,
					   b.size),
			 0);
	assert_null(ud_manifest_pick(back, "unix", "x86_64")->initrd_file);
	assert_non_null(q = ud_manifest_pick(back, "qemu", "x86_64"));
	assert_string_equal(q->initrd_file, "qemu-x86_64.initrd.gz");
	assert_string_equal(q->initrd_sha256, sha);
	assert_int_equal(q->initrd_size, 7);
	read_release_file(f, 1, "qemu-x86_64.initrd.gz", &b);
	assert_true(b.size > 0);
	/* A rollback to release 1 carries it too. */
	ud_manifest_free(m);
	m = NULL;
	if (ud_publish_build(f->r, f->b, UD_COMP_NONE, &m) < 0)
		fail_msg("publish: %s", ud_error_last());
	if (ud_release_rollback(f->r, "hello", 1, &rb) < 0)
		fail_msg("rollback: %s", ud_error_last());
	assert_int_equal(rb->release, 3);
	read_release_file(f, 3, "qemu-x86_64.initrd.gz", &b);
	assert_true(b.size > 0);
	assert_string_equal(
		ud_manifest_pick(rb, "qemu", "x86_64")->initrd_sha256, sha);

	ud_buf_free(&b);
	ud_manifest_free(m);
	ud_manifest_free(back);
	ud_manifest_free(rb);
}

/* deploy.json building `target` from a copy of `src`. */
static char *copy_json_run(const char *target, const char *src,
			   const char *run)
{
	return ud_asprintf("{\"app\": \"hello\", \"build\": {\"command\": "
			   "\"cp %s app.img\"}, \"images\": [{\"target\": "
			   "\"%s\", \"path\": \"app.img\"}], \"run\": %s}",
			   src, target, run);
}

static char *copy_json(const char *target, const char *src)
{
	return copy_json_run(target, src, "{}");
}

/* The publish refuses an image its target cannot run, before anything
 * is stored: main does not move. */
static void refused_run(struct fixture *f, const char *target,
			const char *src, const char *run, const char *msg)
{
	struct ud_manifest *m = NULL;
	git_oid before, after;
	char *json = copy_json_run(target, src, run);
	int n = 0;

	ud_build_free(f->b);
	f->b = NULL;
	build_json(f, json, 1);
	assert_int_equal(ud_deployrepo_head(f->r, &before), 0);
	assert_int_equal(ud_publish_build(f->r, f->b, UD_COMP_NONE, &m),
			 UD_EINVALID);
	assert_null(m);
	if (!strstr(ud_error_last(), msg))
		fail_msg("'%s' lacks '%s'", ud_error_last(), msg);
	assert_int_equal(ud_deployrepo_head(f->r, &after), 0);
	assert_true(git_oid_equal(&before, &after));
	assert_int_equal(ud_release_current(f->r, NULL, "hello", &n),
			 UD_ENOTFOUND);
	free(json);
}

static void refused(struct fixture *f, const char *target, const char *src,
		    const char *msg)
{
	refused_run(f, target, src, "{}", msg);
}

static void test_check_images(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = NULL;
	char *hvt = ud_asprintf("%s/app.hvt", f->dir);
	char *spt = ud_asprintf("%s/app.spt", f->dir);
	char *plain = ud_asprintf("%s/plain", f->dir);
	char *json;
	static const struct dev net = { "service0", UD_SOLO5_NET_BASIC };

	/* These builds copy fixtures from the test's own directory, which a
	 * sandboxed build cannot see; the sandbox has its own tests
	 * (test_sandbox, secrets.bats). */
	setenv("DEPLOY_BUILD_SANDBOX", "off", 1);
	assert_int_equal(solo5_fixture_write(hvt, FIX_HVT, &net, 1), 0);
	assert_int_equal(solo5_fixture_write(spt, FIX_SPT, NULL, 0), 0);
	assert_int_equal(ud_write_file_atomic(plain, "#!/bin/sh\n", 10, 0755),
			 0);
	refused(f, "hvt", plain, "app.img");
	refused(f, "hvt", spt, "app.img");
	refused(f, "unix", hvt, "app.img");
	refused(f, "firecracker", hvt, "app.img");
	/* A block device needs its volume in run.block. */
	{
		static const struct dev devs[] = {
			{ "service0", UD_SOLO5_NET_BASIC },
			{ "storage", UD_SOLO5_BLOCK_BASIC },
		};
		char *blk = ud_asprintf("%s/blk.spt", f->dir);

		assert_int_equal(solo5_fixture_write(blk, FIX_SPT, devs, 2), 0);
		refused_run(f, "spt", blk, "{}",
			    "app.img: Solo5 block device 'storage' has no "
			    "volume: add \"storage\": {\"size_mb\": N} to "
			    "run.block in deploy.json");
		refused_run(f, "spt", blk,
			    "{\"block\": {\"other\": {\"size_mb\": 1}}}",
			    "'storage' has no volume");
		ud_build_free(f->b);
		f->b = NULL;
		json = copy_json_run("spt", blk, "{\"block\": {\"storage\": "
						 "{\"size_mb\": 64}}}");
		build_json(f, json, 1);
		if (ud_publish_build(f->r, f->b, UD_COMP_NONE, &m) < 0)
			fail_msg("publish: %s", ud_error_last());
		assert_int_equal(m->release, 1);
		assert_int_equal(m->run.nblock, 1);
		assert_string_equal(m->run.block[0].name, "storage");
		assert_int_equal(m->run.block[0].size_mb, 64);
		ud_manifest_free(m);
		m = NULL;
		free(json);
		free(blk);
	}
	/* The right one goes through. */
	ud_build_free(f->b);
	f->b = NULL;
	json = copy_json("hvt", hvt);
	build_json(f, json, 1);
	if (ud_publish_build(f->r, f->b, UD_COMP_NONE, &m) < 0)
		fail_msg("publish: %s", ud_error_last());
	assert_int_equal(m->release, 2);
	ud_manifest_free(m);
	free(json);
	free(hvt);
	free(spt);
	free(plain);
	unsetenv("DEPLOY_BUILD_SANDBOX");
}

static void test_image_name(void **state)
{
	static const struct {
		const char *target, *arch;
		enum ud_compression c;
		const char *want;
	} cases[] = {
		{ "unix", "x86_64", UD_COMP_NONE, "unix-x86_64.img" },
		{ "qemu", "aarch64", UD_COMP_GZIP, "qemu-aarch64.img.gz" },
		{ "hvt", "x86_64", UD_COMP_XZ, "hvt-x86_64.img.xz" },
		{ "xen", "x86_64", UD_COMP_ZSTD, "xen-x86_64.img.zst" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *name = ud_publish_image_name(cases[i].target,
						   cases[i].arch, cases[i].c);

		assert_string_equal(name, cases[i].want);
		free(name);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish_none_then_gzip,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_placement, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_multi_arch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_initrd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_images, setup,
						teardown),
		cmocka_unit_test(test_image_name),
	};
	int rc;

	git_libgit2_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return rc;
}
