/* test_build.c: ud_build_prepare/ud_build_run on real source repositories
 * and real shell commands. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "buf.h"
#include "build.h"
#include "digest.h"
#include "errors.h"

/* libgit2 1.5 leaks PCRE2 match blocks in its config regex lookups, not
 * ours to free. Read by LeakSanitizer only. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

struct fixture {
	char dir[64];
	char *repo_dir, *tmp, *cache;
	git_repository *repo;
	git_oid commit;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ud-build-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->repo_dir = ud_asprintf("%s/app", f->dir);
	f->tmp = ud_asprintf("%s/tmp", f->dir);
	f->cache = ud_asprintf("%s/cache", f->dir);
	if (git_repository_init(&f->repo, f->repo_dir, 0) < 0 ||
	    ud_mkdir_p(f->tmp, 0700) < 0)
		return -1;
	/* Builds make their workdir under TMPDIR: here, to see it go. */
	setenv("TMPDIR", f->tmp, 1);
	setenv("DEPLOY_CACHE_ROOT", f->cache, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	git_repository_free(f->repo);
	unsetenv("TMPDIR");
	unsetenv("DEPLOY_CACHE_ROOT");
	unsetenv("GIT_DIR");
	ud_rm_rf(f->dir);
	free(f->repo_dir);
	free(f->tmp);
	free(f->cache);
	free(f);
	return 0;
}

/* Commit files (path, content pairs, NULL-terminated) as HEAD's only
 * content (no parent: each commit stands alone). */
static void commit_files(struct fixture *f, const char *const *files)
{
	git_index *idx = NULL;
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	git_oid tree_id;
	size_t i, n = 0;

	assert_int_equal(git_repository_index(&idx, f->repo), 0);
	assert_int_equal(git_index_clear(idx), 0);
	for (i = 0; files[i]; i += 2, n++) {
		git_index_entry e;

		memset(&e, 0, sizeof(e));
		e.path = files[i];
		e.mode = GIT_FILEMODE_BLOB;
		assert_int_equal(git_index_add_from_buffer(idx, &e, files[i + 1],
							   strlen(files[i + 1])),
				 0);
	}
	assert_int_equal(git_index_write_tree(&tree_id, idx), 0);
	assert_int_equal(git_tree_lookup(&tree, f->repo, &tree_id), 0);
	assert_int_equal(git_signature_now(&sig, "Ada Lovelace",
					   "ada@example.org"),
			 0);
	assert_int_equal(git_commit_create(&f->commit, f->repo, NULL, sig, sig,
					   NULL, "Build me\n\nbody", tree, 0,
					   NULL),
			 0);
	git_signature_free(sig);
	git_tree_free(tree);
	git_index_free(idx);
}

/* A deploy.json building `command` within timeout_s, with two images:
 * dist/hello.img (unix) and dist/env.txt (qemu). */
static void commit_app(struct fixture *f, const char *command, int timeout_s)
{
	json_t *cfg = json_pack(
		"{s:s, s:{s:s, s:i, s:{s:s}}, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}],"
		" s:{s:i}, s:{s:s}}",
		"app", "hello",
		"build", "command", command, "timeout_s", timeout_s,
		"env", "FOO", "bar baz",
		"images", "target", "unix", "arch", "x86_64", "path",
		"dist/hello.img", "target", "qemu", "arch", "x86_64", "path",
		"dist/env.txt",
		"run", "port", 8080,
		"health", "http", "/health");
	char *text = json_dumps(cfg, JSON_INDENT(2));
	const char *files[] = { "deploy.json", text, "src/main.ml", "let () = ()\n",
				NULL };

	assert_non_null(text);
	commit_files(f, files);
	free(text);
	json_decref(cfg);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void on_output(const char *data, size_t len, void *payload)
{
	assert_int_equal(ud_buf_put(payload, data, len), 0);
}

static struct ud_build *prepare(struct fixture *f,
				const struct ud_build_opts *o)
{
	struct ud_build *b = NULL;

	if (ud_build_prepare(&b, f->repo, &f->commit, o) < 0)
		fail_msg("prepare: %s", ud_error_last());
	return b;
}

static void assert_has_line(const char *text, const char *line)
{
	char *want = ud_asprintf("\n%s\n", line);
	char *hay = ud_asprintf("\n%s", text);

	if (!strstr(hay, want))
		fail_msg("no line '%s' in:\n%s", line, text);
	free(want);
	free(hay);
}

static void test_build_ok(void **state)
{
	struct fixture *f = *state;
	struct ud_buf streamed = UD_BUF_INIT, env = UD_BUF_INIT,
		      pwd = UD_BUF_INIT;
	struct ud_build_opts o = { .ref = "refs/heads/main",
				   .on_output = on_output,
				   .payload = &streamed };
	struct ud_build *b;
	char hex[GIT_OID_HEXSZ + 1], sha[UD_SHA256_HEX], *line, *workdir,
		*srcreal, *cachedir;
	uint64_t size = 0;
	struct stat st;

	commit_app(f,
		   "mkdir -p dist && printf 'image-bytes' > dist/hello.img && "
		   "env > dist/env.txt && pwd -P > ../pwd.txt && "
		   "echo building $DEPLOY_APP && echo oops >&2",
		   60);
	git_oid_tostr(hex, sizeof(hex), &f->commit);
	/* The hook runs with GIT_DIR set: the build must not see it. */
	setenv("GIT_DIR", f->repo_dir, 1);
	setenv("GIT_WORK_TREE", f->repo_dir, 1);
	/* The pipeline's SSH key must not reach the build (whose output is
	 * committed as build.log). */
	setenv("DEPLOY_SSH_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----", 1);
	setenv("DEPLOY_SSH_KEY_B64", "c2VjcmV0", 1);
	b = prepare(f, &o);
	unsetenv("GIT_WORK_TREE");

	assert_string_equal(b->commit, hex);
	assert_string_equal(b->ref, "refs/heads/main");
	assert_string_equal(b->subject, "Build me");
	assert_string_equal(b->author, "Ada Lovelace <ada@example.org>");
	assert_string_equal(b->cfg->app, "hello");
	/* The export is a fresh dir under TMPDIR, holding the tree. */
	assert_int_equal(strncmp(b->workdir, f->tmp, strlen(f->tmp)), 0);
	line = ud_asprintf("%s/src/main.ml", b->srcdir);
	assert_int_equal(stat(line, &st), 0);
	free(line);
	cachedir = ud_asprintf("%s/hello", f->cache);
	assert_string_equal(b->cache_dir, cachedir);
	assert_int_equal(stat(cachedir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	if (ud_build_run(b, &o) < 0)
		fail_msg("run: %s", ud_error_last());

	/* Output streamed live and captured as the log, both ways whole. */
	assert_non_null(strstr(streamed.ptr, "building hello\n"));
	assert_non_null(strstr(streamed.ptr, "oops\n"));
	assert_string_equal(b->log.ptr, streamed.ptr);
	assert_true(b->duration_ms >= 0);

	/* It ran inside the export, not the repository. */
	line = ud_asprintf("%s/pwd.txt", b->workdir);
	assert_int_equal(ud_buf_read_file(&pwd, line), 0);
	free(line);
	ud_buf_rtrim(&pwd);
	srcreal = realpath(b->srcdir, NULL);
	assert_non_null(srcreal);
	assert_string_equal(pwd.ptr, srcreal);

	assert_int_equal(b->nimages, 2);
	assert_string_equal(b->images[0].spec->target, "unix");
	assert_string_equal(b->images[0].spec->path, "dist/hello.img");
	line = ud_asprintf("%s/dist/hello.img", srcreal);
	assert_string_equal(b->images[0].path, line);
	free(line);
	assert_int_equal(b->images[0].size, strlen("image-bytes"));
	ud_sha256_mem(sha, "image-bytes", strlen("image-bytes"));
	assert_string_equal(b->images[0].sha256, sha);
	assert_int_equal(ud_sha256_file(sha, &size, b->images[1].path), 0);
	assert_string_equal(b->images[1].sha256, sha);
	assert_int_equal(b->images[1].size, size);

	/* The environment the command saw. */
	assert_int_equal(ud_buf_read_file(&env, b->images[1].path), 0);
	assert_has_line(env.ptr, "DEPLOY_APP=hello");
	line = ud_asprintf("DEPLOY_COMMIT=%s", hex);
	assert_has_line(env.ptr, line);
	free(line);
	assert_has_line(env.ptr, "DEPLOY_REF=refs/heads/main");
	line = ud_asprintf("DEPLOY_CACHE_DIR=%s", cachedir);
	assert_has_line(env.ptr, line);
	free(line);
	assert_has_line(env.ptr, "FOO=bar baz");
	assert_null(strstr(env.ptr, "\nGIT_DIR="));
	assert_false(!strncmp(env.ptr, "GIT_DIR=", 8));
	assert_null(strstr(env.ptr, "GIT_WORK_TREE="));
	assert_null(strstr(env.ptr, "DEPLOY_SSH_KEY"));
	unsetenv("GIT_DIR");
	unsetenv("DEPLOY_SSH_KEY");
	unsetenv("DEPLOY_SSH_KEY_B64");

	workdir = ud_strdup(b->workdir);
	ud_build_free(b);
	assert_int_equal(lstat(workdir, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_entries(f->tmp), 0);
	/* The cache dir stays for the next build. */
	assert_int_equal(stat(cachedir, &st), 0);

	free(workdir);
	free(srcreal);
	free(cachedir);
	ud_buf_free(&streamed);
	ud_buf_free(&env);
	ud_buf_free(&pwd);
}

static void test_no_ref_no_callback(void **state)
{
	struct fixture *f = *state;
	struct ud_buf env = UD_BUF_INIT;
	struct ud_build *b;

	commit_app(f,
		   "mkdir -p dist && echo img > dist/hello.img && "
		   "env > dist/env.txt && echo quiet",
		   60);
	b = prepare(f, NULL);
	assert_string_equal(b->ref, "");
	if (ud_build_run(b, NULL) < 0)
		fail_msg("run: %s", ud_error_last());
	assert_string_equal(b->log.ptr, "quiet\n");
	assert_int_equal(ud_buf_read_file(&env, b->images[1].path), 0);
	assert_has_line(env.ptr, "DEPLOY_REF=");
	ud_buf_free(&env);
	ud_build_free(b);
}

/* Whatever the build prints of the pipeline's secrets (the key the caller
 * holds, a signing key and a URL's password from the environment) is
 * replaced, live and in the log, and the build's environment lacks them. */
static void test_output_scrubbed(void **state)
{
	static const char key[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
				  "c2VjcmV0LWtleS1saW5lLW9uZQ==\n"
				  "-----END OPENSSH PRIVATE KEY-----\n";
	const char *secrets[] = { key, NULL };
	struct fixture *f = *state;
	struct ud_buf streamed = UD_BUF_INIT;
	struct ud_build_opts o = { .on_output = on_output,
				   .payload = &streamed,
				   .secrets = secrets };
	struct ud_build *b;

	/* split across writes: the shell prints it in two pieces */
	commit_app(f,
		   "mkdir -p dist && echo x > dist/hello.img && "
		   "echo x > dist/env.txt && printf 'key: c2VjcmV0LWtleS1s' && "
		   "printf 'aW5lLW9uZQ==\\n' && echo sign=sign-me-if-you-can "
		   "pw=t0ken-s3cret && echo \"in env: "
		   "${DEPLOY_SIGNING_KEY:-none}\"",
		   60);
	setenv("DEPLOY_SIGNING_KEY", "sign-me-if-you-can", 1);
	setenv("DEPLOY_REPO", "https://u:t0ken-s3cret@example.org/d.git", 1);
	b = prepare(f, &o);
	assert_int_equal(ud_build_run(b, &o), 0);
	unsetenv("DEPLOY_SIGNING_KEY");
	unsetenv("DEPLOY_REPO");
	assert_string_equal(b->log.ptr, "key: [redacted]\n"
					"sign=[redacted] pw=[redacted]\n"
					"in env: none\n");
	assert_string_equal(streamed.ptr, b->log.ptr);
	ud_build_free(b);
	ud_buf_free(&streamed);
}

/* A deploy.json past 1 MiB is refused from its size, unread, naming the
 * file and the limit. */
static void test_deploy_json_too_big(void **state)
{
	struct fixture *f = *state;
	size_t n = 3 * 1024 * 1024;
	char *big = malloc(n + 1);
	const char *files[] = { "deploy.json", big, NULL };
	struct ud_build *b = NULL;

	memset(big, ' ', n);
	big[n] = '\0';
	big[0] = '{';
	big[n - 1] = '}';
	commit_files(f, files);
	free(big);
	assert_int_equal(ud_build_prepare(&b, f->repo, &f->commit, NULL),
			 UD_ETOOBIG);
	assert_null(b);
	assert_string_equal(ud_error_last(),
			    "'deploy.json' is 3145728 bytes, more than the "
			    "limit of 1048576 bytes; nothing of it was read");
	assert_int_equal(count_entries(f->tmp), 0);
}

static void test_command_fails(void **state)
{
	struct fixture *f = *state;
	struct ud_build *b;

	commit_app(f, "echo trying; exit 3", 60);
	b = prepare(f, NULL);
	assert_int_equal(ud_build_run(b, NULL), UD_ERROR);
	assert_string_equal(ud_error_last(),
			    "build.command exited with status 3");
	assert_string_equal(b->log.ptr, "trying\n");
	assert_int_equal(b->nimages, 0);
	ud_build_free(b);
	assert_int_equal(count_entries(f->tmp), 0);
}

static void test_image_missing(void **state)
{
	struct fixture *f = *state;
	struct ud_build *b;

	/* The first image is there, the second is not. */
	commit_app(f, "mkdir -p dist && echo x > dist/hello.img", 60);
	b = prepare(f, NULL);
	assert_int_equal(ud_build_run(b, NULL), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), "dist/env.txt"));
	assert_non_null(strstr(ud_error_last(), "not produced"));
	ud_build_free(b);
}

static void test_image_symlink_outside(void **state)
{
	struct fixture *f = *state;
	struct ud_build *b;

	commit_app(f,
		   "mkdir -p dist && ln -s /etc/passwd dist/hello.img && "
		   "env > dist/env.txt",
		   60);
	b = prepare(f, NULL);
	assert_int_equal(ud_build_run(b, NULL), UD_EINVALID);
	assert_non_null(
		strstr(ud_error_last(), "resolves outside the build directory"));
	assert_non_null(strstr(ud_error_last(), "dist/hello.img"));
	ud_build_free(b);

	/* Through "..": the workdir next to the export is outside too. */
	commit_app(f,
		   "mkdir -p dist && echo s > ../secret && "
		   "ln -s ../../secret dist/hello.img && env > dist/env.txt",
		   60);
	b = prepare(f, NULL);
	assert_int_equal(ud_build_run(b, NULL), UD_EINVALID);
	assert_non_null(
		strstr(ud_error_last(), "resolves outside the build directory"));
	ud_build_free(b);
}

static void test_image_symlink_inside(void **state)
{
	struct fixture *f = *state;
	struct ud_build *b;
	char sha[UD_SHA256_HEX];

	commit_app(f,
		   "mkdir -p dist/real && printf abc > dist/real/img && "
		   "ln -s real/img dist/hello.img && env > dist/env.txt",
		   60);
	b = prepare(f, NULL);
	if (ud_build_run(b, NULL) < 0)
		fail_msg("run: %s", ud_error_last());
	assert_non_null(strstr(b->images[0].path, "/dist/real/img"));
	ud_sha256_mem(sha, "abc", 3);
	assert_string_equal(b->images[0].sha256, sha);
	assert_int_equal(b->images[0].size, 3);
	ud_build_free(b);
}

static void test_image_not_regular(void **state)
{
	struct fixture *f = *state;
	struct ud_build *b;

	commit_app(f, "mkdir -p dist/hello.img && env > dist/env.txt", 60);
	b = prepare(f, NULL);
	assert_int_equal(ud_build_run(b, NULL), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "not a regular file"));
	ud_build_free(b);
}

/* 1 if pid is gone (or a zombie waiting for init to reap it). */
static int process_gone(pid_t pid)
{
	char *path = ud_asprintf("/proc/%ld/stat", (long)pid);
	struct ud_buf st = UD_BUF_INIT;
	const char *paren;
	int gone;

	if (ud_buf_read_file(&st, path) < 0) {
		gone = 1;
	} else {
		paren = strrchr(st.ptr, ')');
		gone = paren && paren[1] == ' ' && paren[2] == 'Z';
	}
	ud_buf_free(&st);
	free(path);
	return gone;
}

/* Processes (other than zombies) whose environment holds `kv`. */
static int count_with_env(const char *kv)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		struct ud_buf env = UD_BUF_INIT;
		char *path;
		pid_t pid = (pid_t)atol(e->d_name);

		if (pid <= 0 || process_gone(pid))
			continue;
		path = ud_asprintf("/proc/%ld/environ", (long)pid);
		if (ud_buf_read_file(&env, path) == 0)
			for (size_t off = 0; off < env.size;
			     off += strlen(env.ptr + off) + 1)
				if (!strcmp(env.ptr + off, kv))
					n++;
		ud_buf_free(&env);
		free(path);
	}
	closedir(d);
	return n;
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct ud_buf pidtext = UD_BUF_INIT;
	struct ud_build *b;
	char *pidfile, *mark;
	pid_t pid;
	int left = 0;

	commit_app(f, "sleep 30 & echo $! > ../sleep.pid; wait", 1);
	b = prepare(f, NULL);
	mark = ud_asprintf("DEPLOY_COMMIT=%s", b->commit);
	assert_int_equal(ud_build_run(b, NULL), UD_ETIMEOUT);
	assert_non_null(strstr(ud_error_last(), "timed out after 1 s"));
	pidfile = ud_asprintf("%s/sleep.pid", b->workdir);
	assert_int_equal(ud_buf_read_file(&pidtext, pidfile), 0);
	pid = (pid_t)atol(pidtext.ptr);
	assert_true(pid > 1);
	/* The background sleep went with the build (its pid above is the
	 * one in the build's own PID namespace: look for the build's
	 * environment instead), within a generous bound. */
	for (int i = 0; i < 200 && (left = count_with_env(mark)); i++)
		usleep(50 * 1000);
	assert_int_equal(left, 0);
	ud_build_free(b);
	ud_buf_free(&pidtext);
	free(pidfile);
	free(mark);
}

static void test_no_deploy_json(void **state)
{
	struct fixture *f = *state;
	const char *files[] = { "README", "nothing to build\n", NULL };
	struct ud_build *b = NULL;
	char hex[8];

	commit_files(f, files);
	git_oid_tostr(hex, sizeof(hex), &f->commit);
	assert_int_equal(ud_build_prepare(&b, f->repo, &f->commit, NULL),
			 UD_ENOTFOUND);
	assert_null(b);
	assert_non_null(strstr(ud_error_last(), "deploy.json"));
	assert_non_null(strstr(ud_error_last(), hex));
	assert_int_equal(count_entries(f->tmp), 0);
}

static void test_bad_deploy_json(void **state)
{
	struct fixture *f = *state;
	const char *files[] = { "deploy.json",
				"{\"app\": \"hello\", \"bulid\": {}}", NULL };
	struct ud_build *b = NULL;

	commit_files(f, files);
	assert_int_equal(ud_build_prepare(&b, f->repo, &f->commit, NULL),
			 UD_EINVALID);
	assert_null(b);
	assert_non_null(strstr(ud_error_last(), "bulid"));
	assert_int_equal(count_entries(f->tmp), 0);
}

static void test_cache_dir(void **state)
{
	struct fixture *f = *state;
	char *dir = NULL, *want;
	struct stat st;

	(void)state;
	unsetenv("DEPLOY_CACHE_ROOT");
	setenv("XDG_CACHE_HOME", f->tmp, 1);
	assert_int_equal(ud_build_cache_dir(&dir, "web"), 0);
	unsetenv("XDG_CACHE_HOME");
	setenv("DEPLOY_CACHE_ROOT", f->cache, 1);
	want = ud_asprintf("%s/unideploy/web", f->tmp);
	assert_string_equal(dir, want);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(dir);
	free(want);
	assert_int_equal(ud_build_cache_dir(&dir, "web"), 0);
	want = ud_asprintf("%s/web", f->cache);
	assert_string_equal(dir, want);
	free(dir);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_build_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_ref_no_callback, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_output_scrubbed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deploy_json_too_big, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_command_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_image_missing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_image_symlink_outside,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_symlink_inside, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_image_not_regular, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_deploy_json, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_deploy_json, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cache_dir, setup, teardown),
	};
	int rc;

	git_libgit2_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return rc;
}
