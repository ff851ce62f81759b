/*
 * source.h: the app's source repository: open it, resolve the pushed
 * commit, read deploy.json out of it and describe the commit. Exporting
 * its tree for a build is export.h.
 */
#ifndef UD_SOURCE_H
#define UD_SOURCE_H

#include <git2.h>

#include "buf.h"

/* Open a bare or non-bare repository at path (discovering upwards). */
int ud_source_open(git_repository **out, const char *path);
/* git_repository_free plus the libgit2 reference ud_source_open took
 * (plain git_repository_free is fine too: libgit2 then stays set up). */
void ud_source_free(git_repository *repo);
/* Resolve a revision ("HEAD", "main", a sha) to a commit. UD_ENOTFOUND. */
int ud_source_resolve(git_repository *repo, const char *rev, git_oid *out);
/* Read the blob at path in commit's tree; UD_ENOTFOUND if absent,
 * UD_ETOOBIG (before reading it) if it would take `out` past out->max. */
int ud_source_read(git_repository *repo, const git_oid *commit,
		   const char *path, struct ud_buf *out);
/* 0 if blob `id` (read as `path`, for messages) fits in what is left of
 * out->max, else UD_ETOOBIG naming the file, its size and the limit. Its
 * size comes from the object's header: a 100 MB blob is refused without
 * being inflated. Shared by every reader of blobs. */
int ud_blob_fits(git_repository *repo, const git_oid *id, const char *path,
		 const struct ud_buf *out);
/* The commit's subject line and "Name <email>" (caller frees both). */
int ud_source_describe(git_repository *repo, const git_oid *commit,
		       char **subject, char **author);
/* The tree of commit; UD_ENOTFOUND "cannot read commit <sha>". Caller
 * frees it with git_tree_free. */
int ud_source_tree(git_repository *repo, const git_oid *commit,
		   git_tree **out);

/*
 * A commit of the working tree as it is (`deploy build --worktree`):
 * tracked files with their uncommitted changes, deleted ones gone, and
 * untracked files that .gitignore does not exclude (what `git add -A`
 * would stage), with HEAD as its parent. The commit and its objects live
 * in memory for as long as `repo` is open: no ref, index or object of the
 * repository is written. UD_EINVALID for a bare repository.
 */
int ud_source_snapshot_worktree(git_repository *repo, git_oid *out);

#endif
