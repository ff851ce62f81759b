#include "export.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errors.h"

struct exporter {
	git_repository *repo;
	struct archive *disk;
	struct archive_entry *entry;
	struct ud_buf path;
	size_t root; /* length of the export dir's own path in `path` */
};

/* A tree entry name becomes one path component. git fsck refuses these,
 * but a crafted tree can carry them, so check rather than trust. */
static int check_name(const char *name)
{
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strchr(name, '/') || !strcasecmp(name, ".git"))
		return ud_error_set(UD_EINVALID,
				    "refusing to export tree entry '%s'", name);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two entries of one name (a symlink "evil" and a directory "evil") exist
 * only in crafted trees; libarchive would replace the first by the second,
 * which is safe but not what the tree says, so refuse. */
static int check_unique(const git_tree *tree, const char *dir)
{
	size_t i, n = git_tree_entrycount(tree);
	const char **names = ud_calloc(n, sizeof(*names));
	int err = 0;

	for (i = 0; i < n; i++)
		names[i] = git_tree_entry_name(git_tree_entry_byindex(tree, i));
	qsort(names, n, sizeof(*names), by_name);
	for (i = 1; i < n && !err; i++)
		if (!strcmp(names[i - 1], names[i]))
			err = ud_error_set(UD_EINVALID,
					   "tree entry '%s%s%s' appears twice",
					   dir, *dir ? "/" : "", names[i]);
	free(names);
	return err;
}

static int write_entry(struct exporter *x, mode_t type, mode_t perm,
		       const void *data, size_t len, const char *link)
{
	struct archive_entry *e = x->entry;

	archive_entry_clear(e);
	archive_entry_set_pathname(e, x->path.ptr);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	if (link)
		archive_entry_set_symlink(e, link);
	if (type == AE_IFREG)
		archive_entry_set_size(e, (la_int64_t)len);
	if (archive_write_header(x->disk, e) < ARCHIVE_OK)
		goto fail;
	if (len && archive_write_data(x->disk, data, len) != (la_ssize_t)len)
		goto fail;
	if (archive_write_finish_entry(x->disk) < ARCHIVE_OK)
		goto fail;
	return 0;
fail:
	return ud_error_set(UD_ERROR, "cannot export '%s': %s", x->path.ptr,
			    archive_error_string(x->disk));
}

static int export_blob(struct exporter *x, const git_tree_entry *te)
{
	git_filemode_t mode = git_tree_entry_filemode(te);
	git_blob *blob = NULL;
	char *target = NULL;
	const void *data;
	size_t len;
	int err;

	if (git_blob_lookup(&blob, x->repo, git_tree_entry_id(te)) < 0)
		return ud_error_set_git(UD_ERROR, "cannot read '%s'",
					x->path.ptr);
	data = git_blob_rawcontent(blob);
	len = (size_t)git_blob_rawsize(blob);
	if (mode == GIT_FILEMODE_LINK) {
		target = ud_strndup(data, len);
		if (strlen(target) != len || !len)
			err = ud_error_set(UD_EINVALID,
					   "symlink '%s' has a bad target",
					   x->path.ptr);
		else
			err = write_entry(x, AE_IFLNK, 0777, NULL, 0, target);
	} else {
		err = write_entry(x, AE_IFREG,
				  mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755
								       : 0644,
				  data, len, NULL);
	}
	free(target);
	git_blob_free(blob);
	return err;
}

static int export_dir(struct exporter *x, const git_tree *tree)
{
	size_t i, n = git_tree_entrycount(tree), base = x->path.size;
	git_tree *sub = NULL;
	int err;

	if ((err = check_unique(tree, x->path.ptr + x->root)) < 0)
		return err;
	for (i = 0; i < n && !err; i++) {
		const git_tree_entry *te = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(te);

		if ((err = check_name(name)) < 0)
			break;
		ud_buf_truncate(&x->path, base);
		ud_buf_printf(&x->path, "/%s", name);
		switch (git_tree_entry_type(te)) {
		case GIT_OBJECT_BLOB:
			err = export_blob(x, te);
			break;
		case GIT_OBJECT_TREE:
			if ((err = write_entry(x, AE_IFDIR, 0755, NULL, 0,
					       NULL)) < 0)
				break;
			if (git_tree_lookup(&sub, x->repo,
					    git_tree_entry_id(te)) < 0) {
				err = ud_error_set_git(UD_ERROR,
						       "cannot read '%s'",
						       x->path.ptr);
				break;
			}
			err = export_dir(x, sub);
			git_tree_free(sub);
			sub = NULL;
			break;
		case GIT_OBJECT_COMMIT:
			/* A submodule: its commit is in another repository. */
			err = write_entry(x, AE_IFDIR, 0755, NULL, 0, NULL);
			break;
		default:
			err = ud_error_set(UD_EINVALID,
					   "unexpected object at '%s'",
					   x->path.ptr);
		}
	}
	ud_buf_truncate(&x->path, base);
	return err;
}

static int check_empty(const char *dir)
{
	struct dirent *d;
	DIR *dh = opendir(dir);
	int err = 0;

	if (!dh)
		return ud_error_set_errno(UD_ERROR, "cannot open '%s'", dir);
	while ((d = readdir(dh))) {
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, "..")) {
			err = ud_error_set(UD_EEXISTS,
					   "export directory '%s' is not empty",
					   dir);
			break;
		}
	}
	closedir(dh);
	return err;
}

int ud_export_tree(git_repository *repo, const git_oid *commit,
		   const char *dir)
{
	struct exporter x = { repo, NULL, NULL, UD_BUF_INIT, 0 };
	git_tree *tree = NULL;
	char *real = NULL;
	int err;

	if ((err = ud_source_tree(repo, commit, &tree)) < 0 ||
	    (err = ud_mkdir_p(dir, 0755)) < 0 || (err = check_empty(dir)) < 0)
		goto done;
	/*
	 * The secure-symlinks check walks every component of the paths we
	 * write, ours included, so start from a path with no symlink in it.
	 * Paths are absolute (libarchive has no base directory), hence no
	 * SECURE_NOABSOLUTEPATHS; the names below dir are checked one by one.
	 */
	if (!(real = realpath(dir, NULL))) {
		err = ud_error_set_errno(UD_ERROR, "cannot resolve '%s'", dir);
		goto done;
	}
	ud_buf_puts(&x.path, real);
	x.root = x.path.size;
	x.disk = archive_write_disk_new();
	x.entry = archive_entry_new();
	if (!x.disk || !x.entry) {
		err = ud_error_set(UD_ERROR, "out of memory");
		goto done;
	}
	archive_write_disk_set_options(x.disk,
				       ARCHIVE_EXTRACT_SECURE_SYMLINKS |
					       ARCHIVE_EXTRACT_SECURE_NODOTDOT |
					       ARCHIVE_EXTRACT_PERM |
					       ARCHIVE_EXTRACT_NO_OVERWRITE);
	if ((err = export_dir(&x, tree)) < 0)
		goto done;
	/* close applies the permissions of directories, deferred until
	 * their contents were written */
	if (archive_write_close(x.disk) < ARCHIVE_OK)
		err = ud_error_set(UD_ERROR, "cannot export into '%s': %s", dir,
				   archive_error_string(x.disk));
done:
	if (x.disk)
		archive_write_free(x.disk);
	archive_entry_free(x.entry);
	ud_buf_free(&x.path);
	free(real);
	git_tree_free(tree);
	return err;
}
