#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>

#include "buf.h"
#include "errors.h"
#include "export.h"

struct fixture {
	char dir[64];   /* everything lives under here */
	char *repo_dir; /* a non-bare source repository */
	git_repository *repo;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/ud-export-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	git_libgit2_init();
	f->repo_dir = ud_asprintf("%s/src", f->dir);
	if (git_repository_init(&f->repo, f->repo_dir, 0) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	git_repository_free(f->repo);
	git_libgit2_shutdown();
	ud_rm_rf(f->dir);
	free(f->repo_dir);
	free(f);
	return 0;
}

struct file {
	const char *path;
	git_filemode_t mode;
	const char *content; /* for a submodule: the commit's hex id */
};

/* Commit `files` on HEAD (a branch "main" once there), parent the current
 * HEAD if any. */
static void commit_files(git_repository *repo, const struct file *files,
			 size_t n, const char *message, git_oid *out)
{
	git_tree_update *ups = calloc(n, sizeof(*ups));
	git_signature *sig = NULL;
	git_commit *parent = NULL;
	git_tree *tree = NULL, *base = NULL;
	git_oid tree_id, head;
	size_t i;

	for (i = 0; i < n; i++) {
		ups[i].action = GIT_TREE_UPDATE_UPSERT;
		ups[i].filemode = files[i].mode;
		ups[i].path = files[i].path;
		if (files[i].mode == GIT_FILEMODE_COMMIT)
			assert_int_equal(git_oid_fromstr(&ups[i].id,
							 files[i].content),
					 0);
		else
			assert_int_equal(
				git_blob_create_from_buffer(
					&ups[i].id, repo, files[i].content,
					strlen(files[i].content)),
				0);
	}
	if (git_reference_name_to_id(&head, repo, "HEAD") == 0) {
		assert_int_equal(git_commit_lookup(&parent, repo, &head), 0);
		assert_int_equal(git_commit_tree(&base, parent), 0);
	}
	assert_int_equal(git_tree_create_updated(&tree_id, repo, base, n, ups),
			 0);
	git_tree_free(base);
	assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
	assert_int_equal(git_signature_now(&sig, "Ada Lovelace",
					   "ada@example.org"),
			 0);
	assert_int_equal(git_commit_create(out, repo, "HEAD", sig, sig, NULL,
					   message, tree, parent ? 1 : 0,
					   (const git_commit **)&parent),
			 0);
	git_signature_free(sig);
	git_tree_free(tree);
	git_commit_free(parent);
	free(ups);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static void assert_file(const char *path, const char *content)
{
	struct ud_buf b = UD_BUF_INIT;

	assert_int_equal(ud_buf_read_file(&b, path), 0);
	assert_string_equal(b.ptr, content);
	ud_buf_free(&b);
}

static void test_export_modes(void **state)
{
	struct fixture *f = *state;
	const struct file files[] = {
		{ "README", GIT_FILEMODE_BLOB, "hello\n" },
		{ "bin/run.sh", GIT_FILEMODE_BLOB_EXECUTABLE, "#!/bin/sh\n" },
		{ "src/a/b/deep.c", GIT_FILEMODE_BLOB, "int x;\n" },
		{ "link", GIT_FILEMODE_LINK, "src/a/b/deep.c" },
		{ "vendor/lib", GIT_FILEMODE_COMMIT,
		  "0123456789abcdef0123456789abcdef01234567" },
	};
	char *out = ud_asprintf("%s/out/tree", f->dir), *p;
	char target[64];
	ssize_t n;
	git_oid c;

	commit_files(f->repo, files, 5, "first\n", &c);
	assert_int_equal(ud_export_tree(f->repo, &c, out), 0);

	p = ud_asprintf("%s/README", out);
	assert_file(p, "hello\n");
	assert_int_equal(mode_of(p) & 07777, 0644);
	free(p);
	p = ud_asprintf("%s/bin/run.sh", out);
	assert_file(p, "#!/bin/sh\n");
	assert_true(S_ISREG(mode_of(p)));
	assert_int_equal(mode_of(p) & 07777, 0755);
	free(p);
	p = ud_asprintf("%s/src/a/b/deep.c", out);
	assert_file(p, "int x;\n");
	free(p);
	p = ud_asprintf("%s/src/a", out);
	assert_true(S_ISDIR(mode_of(p)));
	free(p);
	p = ud_asprintf("%s/link", out);
	assert_true(S_ISLNK(mode_of(p)));
	n = readlink(p, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "src/a/b/deep.c");
	free(p);
	p = ud_asprintf("%s/vendor/lib", out);
	assert_true(S_ISDIR(mode_of(p)));
	assert_int_equal(rmdir(p), 0); /* empty */
	free(p);
	free(out);
}

static void test_export_refuses_nonempty(void **state)
{
	struct fixture *f = *state;
	const struct file files[] = { { "a", GIT_FILEMODE_BLOB, "a" } };
	char *out = ud_asprintf("%s/out", f->dir);
	char *stale = ud_asprintf("%s/out/stale", f->dir);
	git_oid c;

	commit_files(f->repo, files, 1, "a", &c);
	assert_int_equal(ud_mkdir_p(out, 0755), 0);
	assert_int_equal(ud_write_file_atomic(stale, "x", 1, 0644), 0);
	assert_int_equal(ud_export_tree(f->repo, &c, out), UD_EEXISTS);
	free(stale);
	free(out);
}

/* A symlink leaving the export is exported as a symlink; nothing is
 * written through it. */
static void test_export_symlink_outside(void **state)
{
	struct fixture *f = *state;
	char *outside = ud_asprintf("%s/outside", f->dir);
	char *out = ud_asprintf("%s/out", f->dir), *p;
	struct file files[] = {
		{ "up", GIT_FILEMODE_LINK, outside },
		{ "abs", GIT_FILEMODE_LINK, "/tmp" },
		{ "zz", GIT_FILEMODE_BLOB, "z" },
	};
	git_oid c;

	assert_int_equal(mkdir(outside, 0755), 0);
	commit_files(f->repo, files, 3, "links", &c);
	assert_int_equal(ud_export_tree(f->repo, &c, out), 0);
	p = ud_asprintf("%s/up", out);
	assert_true(S_ISLNK(mode_of(p)));
	free(p);
	p = ud_asprintf("%s/abs", out);
	assert_true(S_ISLNK(mode_of(p)));
	free(p);
	assert_int_equal(rmdir(outside), 0); /* still empty */
	free(out);
	free(outside);
}

static void raw_entry(struct ud_buf *b, const char *mode, const char *name,
		      const git_oid *id)
{
	ud_buf_printf(b, "%s %s", mode, name);
	ud_buf_put(b, "", 1);
	ud_buf_put(b, id->id, GIT_OID_RAWSZ);
}

static void commit_raw_tree(git_repository *repo, const struct ud_buf *raw,
			    git_oid *out)
{
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	git_odb *odb = NULL;
	git_oid tree_id;

	assert_int_equal(git_repository_odb(&odb, repo), 0);
	assert_int_equal(git_odb_write(&tree_id, odb, raw->ptr, raw->size,
				       GIT_OBJECT_TREE),
			 0);
	git_odb_free(odb);
	assert_int_equal(git_tree_lookup(&tree, repo, &tree_id), 0);
	assert_int_equal(git_signature_now(&sig, "M", "m@example.org"), 0);
	assert_int_equal(git_commit_create(out, repo, NULL, sig, sig, NULL,
					   "crafted", tree, 0, NULL),
			 0);
	git_signature_free(sig);
	git_tree_free(tree);
}

/* Trees git itself would never make: a symlink and a directory of the same
 * name ("evil" -> outside, then "evil/x"), and a ".." entry. */
static void test_export_crafted_trees(void **state)
{
	struct fixture *f = *state;
	char *outside = ud_asprintf("%s/outside", f->dir);
	char *out = ud_asprintf("%s/out", f->dir);
	char *out2 = ud_asprintf("%s/out2", f->dir);
	char *p = ud_asprintf("%s/x", outside);
	struct ud_buf sub = UD_BUF_INIT, top = UD_BUF_INIT, dots = UD_BUF_INIT;
	git_oid link, x, subtree, c;
	git_odb *odb = NULL;
	struct stat st;

	assert_int_equal(mkdir(outside, 0755), 0);
	assert_int_equal(git_blob_create_from_buffer(&link, f->repo, outside,
						     strlen(outside)),
			 0);
	assert_int_equal(git_blob_create_from_buffer(&x, f->repo, "pwned", 5),
			 0);
	raw_entry(&sub, "100644", "x", &x);
	assert_int_equal(git_repository_odb(&odb, f->repo), 0);
	assert_int_equal(git_odb_write(&subtree, odb, sub.ptr, sub.size,
				       GIT_OBJECT_TREE),
			 0);
	git_odb_free(odb);
	raw_entry(&top, "120000", "evil", &link);
	raw_entry(&top, "40000", "evil", &subtree);
	commit_raw_tree(f->repo, &top, &c);
	assert_int_equal(ud_export_tree(f->repo, &c, out), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "evil"));
	assert_int_equal(stat(p, &st), -1);

	raw_entry(&dots, "40000", "..", &subtree);
	commit_raw_tree(f->repo, &dots, &c);
	assert_int_equal(ud_export_tree(f->repo, &c, out2), UD_EINVALID);
	free(p);
	p = ud_asprintf("%s/x", f->dir);
	assert_int_equal(stat(p, &st), -1);

	ud_buf_free(&sub);
	ud_buf_free(&top);
	ud_buf_free(&dots);
	free(p);
	free(out2);
	free(out);
	free(outside);
}

static void test_resolve_read_describe(void **state)
{
	struct fixture *f = *state;
	const struct file v1[] = {
		{ "deploy.json", GIT_FILEMODE_BLOB, "{\"app\": \"hello\"}\n" },
	};
	const struct file v2[] = {
		{ "src/main.c", GIT_FILEMODE_BLOB, "int main;\n" },
	};
	struct ud_buf b = UD_BUF_INIT;
	char *subject = NULL, *author = NULL, hex[GIT_OID_HEXSZ + 1];
	git_oid c1, c2, got;

	commit_files(f->repo, v1, 1, "First one\n\nwith a body\n", &c1);
	commit_files(f->repo, v2, 1, "Second", &c2);

	assert_int_equal(ud_source_resolve(f->repo, "HEAD", &got), 0);
	assert_true(git_oid_equal(&got, &c2));
	assert_int_equal(ud_source_resolve(f->repo, "HEAD~1", &got), 0);
	assert_true(git_oid_equal(&got, &c1));
	git_oid_tostr(hex, sizeof(hex), &c1);
	assert_int_equal(ud_source_resolve(f->repo, hex, &got), 0);
	assert_true(git_oid_equal(&got, &c1));
	assert_int_equal(ud_source_resolve(f->repo, "no-such-branch", &got),
			 UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), "no-such-branch"));
	/* a tree is not a commit */
	assert_int_equal(ud_source_resolve(f->repo, "HEAD^{tree}", &got),
			 UD_EINVALID);

	assert_int_equal(ud_source_read(f->repo, &c2, "deploy.json", &b), 0);
	assert_string_equal(b.ptr, "{\"app\": \"hello\"}\n");
	ud_buf_clear(&b);
	assert_int_equal(ud_source_read(f->repo, &c2, "src/main.c", &b), 0);
	assert_string_equal(b.ptr, "int main;\n");
	assert_int_equal(ud_source_read(f->repo, &c1, "src/main.c", &b),
			 UD_ENOTFOUND);
	assert_int_equal(ud_source_read(f->repo, &c2, "src", &b),
			 UD_ENOTFOUND);

	assert_int_equal(ud_source_describe(f->repo, &c1, &subject, &author),
			 0);
	assert_string_equal(subject, "First one");
	assert_string_equal(author, "Ada Lovelace <ada@example.org>");
	free(subject);
	free(author);

	ud_buf_free(&b);
}

static void test_open(void **state)
{
	struct fixture *f = *state;
	const struct file files[] = { { "d/e", GIT_FILEMODE_BLOB, "e" } };
	char *deep = ud_asprintf("%s/x/y", f->repo_dir);
	char *other = ud_asprintf("%s/other.git", f->dir);
	char *nowhere = ud_asprintf("%s/nowhere", f->dir);
	git_repository *repo = NULL, *o = NULL;
	git_oid c, got;
	int err;

	commit_files(f->repo, files, 1, "e", &c);
	assert_int_equal(ud_mkdir_p(deep, 0755), 0);
	assert_int_equal(git_repository_init(&o, other, 1), 0);
	git_repository_free(o);

	/* A hook's GIT_DIR must not redirect us. */
	setenv("GIT_DIR", other, 1);
	assert_int_equal(ud_source_open(&repo, deep), 0);
	unsetenv("GIT_DIR");
	assert_int_equal(ud_source_resolve(repo, "HEAD", &got), 0);
	assert_true(git_oid_equal(&got, &c));
	ud_source_free(repo);

	assert_int_equal(ud_source_open(&repo, other), 0);
	assert_true(git_repository_is_bare(repo));
	ud_source_free(repo);

	assert_int_equal(ud_mkdir_p(nowhere, 0755), 0);
	/* /tmp is not in a repository on a sane machine; the search stops
	 * at the filesystem root. */
	err = ud_source_open(&repo, nowhere);
	ud_source_free(repo);
	free(other);
	free(deep);
	if (err == 0) {
		free(nowhere);
		skip();
	}
	assert_int_equal(err, UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), nowhere));
	free(nowhere);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_export_modes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_export_refuses_nonempty,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_symlink_outside,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_crafted_trees,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_read_describe,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_open, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
