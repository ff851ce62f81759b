/*
 * images.h: state_dir/images (images.c). Each release file (an image or
 * its initrd) is unpacked under its sha256 through a temp file, checked,
 * fsynced and renamed; every instance start checks it again. Reconcile
 * thread only.
 */
#ifndef UD_AGENT_IMAGES_H
#define UD_AGENT_IMAGES_H

#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "compress.h"
#include "digest.h"
#include "repo.h"

/* One file of a release: an image or its initrd (`kind`, for messages). */
struct images_file {
	const char *kind;
	const char *file;
	const char *sha256;
	uint64_t size;
	enum ud_compression compression;
};

/* What identifies an image file's content without reading it: a write,
 * a truncate, a rename over it or a chmod changes at least ctime, which
 * no unprivileged call can set back. a->seen holds one per file whose
 * digest matched, as it was then. */
struct image_seen {
	char sha256[UD_SHA256_HEX];
	dev_t dev;
	ino_t ino;
	off_t size;
	long long mtime_ns, ctime_ns;
	mode_t mode;
};

/* Make images/<sha256> hold release m's file f (from `head` of repo),
 * checked. UD_EINVALID when the repository's bytes do not match the
 * manifest. */
int images_ensure(struct agent *a, struct ud_deployrepo *repo,
		  const git_oid *head, const struct ud_manifest *m,
		  const struct images_file *f);
/*
 * Before every start: are images/<sha256> of `m` (the image and its
 * initrd, if any) still what was checked? A file unchanged since its
 * digest last matched costs a stat; a changed one is hashed again. A
 * mismatch refuses the start (UD_EINVALID, the message says which file),
 * removes the file and unpacks it again from the mirror, so the next
 * start boots the right bytes.
 */
int images_check_start(struct agent *a, const struct ud_manifest *m,
		       const char *sha256);
/* The file is gone (collected): forget how it looked. */
void images_forget(struct agent *a, const char *sha256);

#endif
