/*
 * source.c: the app's source repository, as the pipeline reads it (see
 * source.h).
 */
#include "source.h"

#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "trust.h"

/*
 * A pre-receive hook runs before git moves the pushed objects out of
 * quarantine: they sit in $GIT_QUARANTINE_PATH (git also points
 * GIT_OBJECT_DIRECTORY there), which libgit2 opened without
 * GIT_REPOSITORY_OPEN_FROM_ENV does not read. Add it as an alternate, but
 * only when it lies inside this repository's objects directory: a
 * quarantine of another repository is not ours to read.
 */
static int add_quarantine(git_repository *repo)
{
	const char *q = getenv("GIT_QUARANTINE_PATH");
	char *objects = NULL, qreal[PATH_MAX], oreal[PATH_MAX];
	git_odb *odb = NULL;
	size_t n;
	int err = 0;

	if (!q || !*q)
		return 0;
	objects = ud_asprintf("%sobjects", git_repository_path(repo));
	if (!realpath(q, qreal) || !realpath(objects, oreal))
		goto done; /* gone or not there: nothing to add */
	n = strlen(oreal);
	if (strncmp(qreal, oreal, n) || qreal[n] != '/')
		goto done;
	if (git_repository_odb(&odb, repo) < 0 ||
	    git_odb_add_disk_alternate(odb, qreal) < 0)
		err = ud_error_set_git(UD_ERROR,
				       "cannot read the pushed objects in %s",
				       qreal);
done:
	git_odb_free(odb);
	free(objects);
	return err;
}

int ud_source_open(git_repository **out, const char *path)
{
	int err;

	*out = NULL;
	/* Flags 0, never GIT_REPOSITORY_OPEN_FROM_ENV: a post-receive hook
	 * runs with GIT_DIR set, and the path we are given must win. */
	git_libgit2_init();
	err = ud_git_open(out, path, 0);
	if (err == GIT_ENOTFOUND)
		err = ud_error_set(UD_ENOTFOUND,
				   "no git repository at or above '%s'", path);
	else if (err < 0)
		err = ud_error_set_git(UD_ERROR, "cannot open repository '%s'",
				       path);
	else if ((err = add_quarantine(*out)) < 0) {
		git_repository_free(*out);
		*out = NULL;
	}
	if (err < 0)
		git_libgit2_shutdown();
	return err;
}

void ud_source_free(git_repository *repo)
{
	if (!repo)
		return;
	git_repository_free(repo);
	git_libgit2_shutdown();
}

int ud_source_resolve(git_repository *repo, const char *rev, git_oid *out)
{
	git_object *obj = NULL, *commit = NULL;
	int err = git_revparse_single(&obj, repo, rev);

	if (err == GIT_ENOTFOUND || err == GIT_EAMBIGUOUS ||
	    err == GIT_EINVALIDSPEC)
		return ud_error_set_git(UD_ENOTFOUND, "unknown revision '%s'",
					rev);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot resolve '%s'", rev);
	if (git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) < 0)
		err = ud_error_set_git(UD_EINVALID, "'%s' is not a commit", rev);
	else
		git_oid_cpy(out, git_object_id(commit));
	git_object_free(commit);
	git_object_free(obj);
	return err;
}

int ud_source_tree(git_repository *repo, const git_oid *commit,
		   git_tree **out)
{
	git_commit *c = NULL;
	int err = 0;

	if (git_commit_lookup(&c, repo, commit) < 0 ||
	    git_commit_tree(out, c) < 0)
		err = ud_error_set_git(UD_ENOTFOUND, "cannot read commit %s",
				       git_oid_tostr_s(commit));
	git_commit_free(c);
	return err;
}

int ud_blob_fits(git_repository *repo, const git_oid *id, const char *path,
		 const struct ud_buf *out)
{
	git_odb *odb = NULL;
	git_object_t type;
	size_t size = 0;
	int err = 0;

	if (!out->max)
		return 0;
	if (git_repository_odb(&odb, repo) < 0 ||
	    git_odb_read_header(&size, &type, odb, id) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot read '%s'", path);
		goto done;
	}
	if (size > out->max || out->size > out->max - size)
		err = ud_error_set(UD_ETOOBIG,
				   "'%s' is %zu bytes, more than the limit of "
				   "%zu bytes; nothing of it was read",
				   path, size, out->max - out->size);
done:
	git_odb_free(odb);
	return err;
}

int ud_source_read(git_repository *repo, const git_oid *commit,
		   const char *path, struct ud_buf *out)
{
	git_tree *tree = NULL;
	git_tree_entry *e = NULL;
	git_blob *blob = NULL;
	int err;

	if ((err = ud_source_tree(repo, commit, &tree)) < 0)
		goto done;
	err = git_tree_entry_bypath(&e, tree, path);
	if (err == GIT_ENOTFOUND ||
	    (!err && git_tree_entry_type(e) != GIT_OBJECT_BLOB)) {
		err = ud_error_set(UD_ENOTFOUND, "no file '%s' in commit %s",
				   path, git_oid_tostr_s(commit));
		goto done;
	}
	if (err < 0 || (err = ud_blob_fits(repo, git_tree_entry_id(e), path,
					   out)) < 0)
		goto done;
	if (git_blob_lookup(&blob, repo, git_tree_entry_id(e)) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot read '%s'", path);
		goto done;
	}
	err = ud_buf_put(out, git_blob_rawcontent(blob),
			 (size_t)git_blob_rawsize(blob));
done:
	git_blob_free(blob);
	git_tree_entry_free(e);
	git_tree_free(tree);
	return err;
}

int ud_source_describe(git_repository *repo, const git_oid *commit,
		       char **subject, char **author)
{
	const git_signature *sig;
	const char *summary;
	git_commit *c = NULL;

	*subject = *author = NULL;
	if (git_commit_lookup(&c, repo, commit) < 0)
		return ud_error_set_git(UD_ENOTFOUND, "cannot read commit %s",
					git_oid_tostr_s(commit));
	summary = git_commit_summary(c);
	sig = git_commit_author(c);
	*subject = ud_strdup(summary ? summary : "");
	*author = ud_asprintf("%s <%s>", sig->name, sig->email);
	git_commit_free(c);
	return 0;
}

int ud_source_snapshot_worktree(git_repository *repo, git_oid *out)
{
	git_odb *odb = NULL;
	git_odb_backend *mem = NULL;
	git_index *index = NULL;
	git_signature *sig = NULL;
	git_commit *head = NULL;
	git_tree *tree = NULL;
	git_oid tree_id;
	char *message = NULL;
	int err;

	if (git_repository_is_bare(repo))
		return ud_error_set(UD_EINVALID,
				    "'%s' is a bare repository: it has no "
				    "working tree to build",
				    git_repository_path(repo));
	/* Every object of the snapshot goes to memory, ahead of the
	 * repository's own stores: nothing is written to it. */
	if (git_repository_odb(&odb, repo) < 0 ||
	    git_mempack_new(&mem) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot snapshot the working "
						 "tree");
		goto done;
	}
	if (git_odb_add_backend(odb, mem, 1000) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot snapshot the working "
						 "tree");
		mem->free(mem); /* not the odb's yet */
		goto done;
	}
	/* The index as git has it, changed in memory only: never written
	 * back, so `git status` reads the same afterwards. */
	if (git_repository_index(&index, repo) < 0 ||
	    git_index_read(index, 1) < 0 ||
	    git_index_add_all(index, NULL, GIT_INDEX_ADD_DEFAULT, NULL,
			      NULL) < 0 ||
	    git_index_update_all(index, NULL, NULL, NULL) < 0 ||
	    git_index_write_tree(&tree_id, index) < 0 ||
	    git_tree_lookup(&tree, repo, &tree_id) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot snapshot the working "
						 "tree of '%s'",
				       git_repository_workdir(repo));
		goto done;
	}
	if (git_signature_default(&sig, repo) < 0 &&
	    git_signature_now(&sig, "unideploy", "unideploy@localhost") < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot make a signature");
		goto done;
	}
	if (git_revparse_single((git_object **)&head, repo, "HEAD^{commit}") <
	    0) {
		head = NULL; /* an unborn branch: no parent */
		git_error_clear();
	}
	message = head ? ud_asprintf("working tree of %.7s (uncommitted "
				     "changes included)\n",
				     git_oid_tostr_s(git_commit_id(head))) :
			 ud_strdup("working tree (no commit yet)\n");
	if (git_commit_create(out, repo, NULL, sig, sig, NULL, message, tree,
			      head ? 1 : 0,
			      (const git_commit **)(head ? &head : NULL)) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot snapshot the working "
						 "tree");
		goto done;
	}
	err = 0;
done:
	free(message);
	git_commit_free(head);
	git_tree_free(tree);
	git_signature_free(sig);
	git_index_free(index);
	git_odb_free(odb);
	return err;
}
