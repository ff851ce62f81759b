/*
 * source.c: the app's source repository, as the pipeline reads it (see
 * source.h).
 */
#include "source.h"

#include "errors.h"
#include "trust.h"

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
