/*
 * export.h: export a commit of the app's source repository (source.h)
 * into a clean directory with libarchive's secure disk writer (no "..",
 * no absolute paths, no writes through symlinks), so that a build never
 * runs inside the bare repo.
 */
#ifndef UD_EXPORT_H
#define UD_EXPORT_H

#include <git2.h>

#include "buf.h"
#include "source.h" /* the repository exported from */

/* Write commit's tree into dir (created if missing, must be empty):
 * regular files with their exec bit, symlinks, directories; submodules
 * become empty directories. */
int ud_export_tree(git_repository *repo, const git_oid *commit,
		   const char *dir);

#endif
