/*
 * publish.h: turn a finished build into a release of the deployment
 * repository: compress each image, store it as a blob, write the manifest
 * and commit it all at once (release.h allocates the number).
 */
#ifndef UD_PUBLISH_H
#define UD_PUBLISH_H

#include "build.h"
#include "compress.h"
#include "fleet.h"
#include "manifest.h"
#include "repo.h"

/* The compression a release uses unless told otherwise: chosen by
 * measurement, see README and bench/RESULTS.md. */
#define UD_DEFAULT_COMPRESSION UD_COMP_NONE

/* Refuse, before anything is built or committed, an app whose deploy.json
 * builds no image that can serve a host it is placed on (no image for the
 * placement's target, or for the host's arch when fleet.json names one).
 * Needs only ud_build_prepare(). */
int ud_publish_check_placement(const struct ud_fleet *f,
			       const struct ud_build *b);

/* Refuse, after the build and before anything is stored, an image its
 * target cannot run: each image is read for Solo5 notes and checked with
 * ud_solo5_check_target() (the message names images[].path); a Solo5
 * image's BLOCK_BASIC device needs a run.block volume of its name.
 * UD_EINVALID, or the reader's error. ud_publish_build() runs it first. */
int ud_publish_check_images(const struct ud_build *b);

/* Publish b; *out (owned by caller) is the new release's manifest.
 * Nothing is written when ud_publish_check_images() refuses b. */
int ud_publish_build(struct ud_deployrepo *r, const struct ud_build *b,
		     enum ud_compression c, struct ud_manifest **out);

/* Image file name in a release dir: "<target>-<arch>.img[.gz|.xz|.zst]".
 * Caller frees. */
char *ud_publish_image_name(const char *target, const char *arch,
			    enum ud_compression c);

/* Its initrd's: "<target>-<arch>.initrd[.gz|.xz|.zst]". Caller frees. */
char *ud_publish_initrd_name(const char *target, const char *arch,
			     enum ud_compression c);

#endif
