/*
 * images.c: state_dir/images. A release's file is unpacked into
 * images/<sha256> through a temp file and renamed into place only once
 * its digest matches the manifest, so a half-written or tampered file is
 * never booted; every start checks it again (images_check_start),
 * re-reading it only if its file changed since its digest matched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "images.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "state.h"

static long long ts_ns(const struct timespec *t)
{
	return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static void seen_key(struct image_seen *k, const char *sha,
		     const struct stat *sb)
{
	memcpy(k->sha256, sha, UD_SHA256_HEX);
	k->dev = sb->st_dev;
	k->ino = sb->st_ino;
	k->size = sb->st_size;
	k->mtime_ns = ts_ns(&sb->st_mtim);
	k->ctime_ns = ts_ns(&sb->st_ctim);
	k->mode = sb->st_mode;
}

static int seen_same(const struct image_seen *x, const struct image_seen *y)
{
	return !strcmp(x->sha256, y->sha256) && x->dev == y->dev &&
	       x->ino == y->ino && x->size == y->size &&
	       x->mtime_ns == y->mtime_ns && x->ctime_ns == y->ctime_ns &&
	       x->mode == y->mode;
}

static struct image_seen *seen_find(struct agent *a, const char *sha)
{
	size_t i;

	for (i = 0; i < a->nseen; i++)
		if (!strcmp(a->seen[i].sha256, sha))
			return &a->seen[i];
	return NULL;
}

void images_forget(struct agent *a, const char *sha)
{
	struct image_seen *s = seen_find(a, sha);

	/* Keep the array dense: move the last one here. */
	if (s)
		*s = a->seen[--a->nseen];
}

/*
 * Is images/<sha> the file of that digest and size, executable? Hashed
 * only when it is new to us or changed since it last matched (hashing a
 * 32 MiB image costs ~85 ms here, a stat microseconds: a summoned cold
 * start must not pay the first). The file is root's, in a directory of
 * root's: whoever can change it can also change the agent, so the check
 * guards against accidents and other programs, not a race with root.
 */
static int image_intact(struct agent *a, const char *sha, uint64_t size)
{
	char *path = image_path(a, sha);
	struct image_seen now, *s;
	struct stat before, after;
	char got[UD_SHA256_HEX];
	uint64_t n = 0;
	long long t0;
	int ok = 0, changed;

	if (stat(path, &before) < 0 || !S_ISREG(before.st_mode) ||
	    (uint64_t)before.st_size != size || access(path, X_OK) < 0)
		goto done;
	seen_key(&now, sha, &before);
	if ((s = seen_find(a, sha)) && seen_same(s, &now)) {
		ok = 1;
		goto done;
	}
	changed = s != NULL;
	images_forget(a, sha);
	t0 = ud_now_ms();
	if (ud_sha256_file(got, &n, path) < 0) {
		ud_error_clear();
		goto done;
	}
	ud_log_info("image %s: sha256 read again (%s) in %lld ms", sha,
		    changed ? "its file changed since it was checked" :
			      "not checked since the agent started",
		    ud_now_ms() - t0);
	if (strcmp(got, sha) || n != size)
		goto done;
	ok = 1;
	/* Remembered only if nothing wrote it while it was being read. */
	if (stat(path, &after) == 0) {
		struct image_seen then;

		seen_key(&then, sha, &after);
		if (seen_same(&then, &now)) {
			a->seen = ud_realloc(a->seen, (a->nseen + 1) *
						      sizeof(*a->seen));
			a->seen[a->nseen++] = now;
		}
	}
done:
	free(path);
	return ok;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * Make images/<sha256> hold the image, checked. A file already there is
 * trusted only while it is the file whose digest last matched
 * (image_intact): a crash cannot leave a partial file under that name,
 * but a disk can rot and a program can write it.
 */

int images_ensure(struct agent *a, struct ud_deployrepo *repo,
		       const git_oid *head, const struct ud_manifest *m,
		       const struct images_file *img)
{
	static unsigned counter;
	struct ud_buf blob = UD_BUF_INIT;
	char *path = NULL, *tmp = NULL, *src = NULL;
	char got[UD_SHA256_HEX];
	uint64_t size = 0;
	int fd = -1, err = 0;

	if (!ud_sha256_valid(img->sha256))
		return ud_error_set(UD_EINVALID,
				    "release %d: %s sha256 is not 64 hex "
				    "digits",
				    m->release, img->kind);
	if ((err = ud_name_check_image_file(img->file)) < 0)
		return err;
	path = image_path(a, img->sha256);
	if (image_intact(a, img->sha256, img->size))
		goto done;
	if (access(path, F_OK) == 0) {
		ud_log_warn("%s does not match its name; unpacking it again",
			    path);
		unlink(path);
	}

	src = ud_asprintf("apps/%s/releases/%d/%s", m->app, m->release,
			  img->file);
	if ((err = ud_deployrepo_read(repo, head, src, &blob)) < 0)
		goto done;
	tmp = ud_asprintf("%s/.tmp-%s-%d-%u", a->images_dir, img->sha256,
			  (int)getpid(), counter++);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) <
	    0) {
		err = ud_error_set_errno(UD_ERROR, "cannot create %s", tmp);
		goto done;
	}
	if ((err = ud_decompress_to_fd(fd, blob.ptr, blob.size,
				       img->compression, got, &size)) < 0) {
		ud_error_prefix("unpacking %s", src);
		goto done;
	}
	if (strcmp(got, img->sha256)) {
		err = ud_error_set(UD_EINVALID,
				   "%s digest mismatch: manifest says %s, "
				   "%s is %s",
				   img->kind, img->sha256, img->kind, got);
		goto done;
	}
	if (size != img->size) {
		err = ud_error_set(UD_EINVALID,
				   "%s size mismatch: manifest says %llu "
				   "bytes, %s is %llu bytes",
				   img->kind, (unsigned long long)img->size,
				   img->kind, (unsigned long long)size);
		goto done;
	}
	if (fsync(fd) < 0 || fchmod(fd, 0755) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot write %s", tmp);
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		err = ud_error_set_errno(UD_ERROR, "cannot write %s", tmp);
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot rename %s", tmp);
		goto done;
	}
	fsync_dir(a->images_dir);
	/* Hashed as it was written: the next start only stats it. */
	{
		struct stat sb;

		images_forget(a, img->sha256);
		if (stat(path, &sb) == 0) {
			a->seen = ud_realloc(a->seen, (a->nseen + 1) *
						      sizeof(*a->seen));
			seen_key(&a->seen[a->nseen++], img->sha256, &sb);
		}
	}
	ud_log_info("%s: release %d: %s %s unpacked (%llu bytes)", m->app,
		    m->release, img->kind, img->sha256,
		    (unsigned long long)size);
done:
	if (fd >= 0)
		close(fd);
	if (err < 0 && tmp)
		unlink(tmp);
	ud_buf_free(&blob);
	free(src);
	free(tmp);
	free(path);
	return err;
}

static int restore_file(struct agent *a, const struct ud_manifest *m,
			const struct images_file *f)
{
	struct ud_deployrepo *repo = NULL;
	git_oid head;
	int err;

	if ((err = ud_deployrepo_open(&repo, a->mirror_path)) < 0 ||
	    (err = agent_trusted_head(a, repo, &head)) < 0 ||
	    (err = images_ensure(a, repo, &head, m, f)) < 0)
		ud_error_prefix("unpacking %s again", f->sha256);
	ud_deployrepo_free(repo);
	return err;
}

int images_check_start(struct agent *a, const struct ud_manifest *m,
		      const char *sha256)
{
	const struct ud_manifest_image *img = NULL;
	struct images_file files[2];
	size_t i, n = 0;

	for (i = 0; i < m->nimages && !img; i++)
		if (!strcmp(m->images[i].sha256, sha256))
			img = &m->images[i];
	if (!img)
		return ud_error_set(UD_EINVALID,
				    "release %d has no image %s: not started",
				    m->release, sha256);
	files[n++] = (struct images_file){ "image", img->file, img->sha256,
					    img->size, img->compression };
	if (img->initrd_file)
		files[n++] = (struct images_file){
			"initrd", img->initrd_file, img->initrd_sha256,
			img->initrd_size, img->compression };
	for (i = 0; i < n; i++) {
		const struct images_file *f = &files[i];
		char *path;
		int err, there;

		if (image_intact(a, f->sha256, f->size))
			continue;
		path = image_path(a, f->sha256);
		there = access(path, F_OK) == 0;
		ud_log_error("%s: release %d: %s %s %s: refused; unpacking it "
			     "again",
			     m->app, m->release, f->kind, path,
			     there ? "changed after it was checked (not its "
				     "sha256 any more)" :
				     "is missing");
		unlink(path);
		free(path);
		images_forget(a, f->sha256);
		if ((err = restore_file(a, m, f)) < 0)
			ud_log_error("%s: %s", m->app, ud_error_last());
		return ud_error_set(UD_EINVALID,
				    "release %d: %s %s %s: not started%s",
				    m->release, f->kind, f->file,
				    there ? "no longer matches its sha256" :
					    "is missing",
				    err < 0 ? "" : " (unpacked again from the "
						   "deployment repository)");
	}
	return 0;
}

