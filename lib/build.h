/*
 * build.h: build one commit of an app repository.
 *
 * The commit's deploy.json is read and validated straight from git, its
 * tree exported into a fresh temporary directory (never the bare repo), and
 * build.command run there with /bin/sh -c in its own process group, with
 * DEPLOY_APP, DEPLOY_COMMIT, DEPLOY_REF and DEPLOY_CACHE_DIR set and every
 * GIT_* variable and every secret (scrub.h) removed. Every line of its
 * output is scrubbed of the pipeline's secrets before it reaches
 * on_output or the log. Images are then collected from the export (a
 * path escaping it through a symlink is refused) and digested.
 */
#ifndef UD_BUILD_H
#define UD_BUILD_H

#include <git2.h>
#include <stdint.h>

#include "appconfig.h"
#include "buf.h"
#include "digest.h"
#include "run.h"

struct ud_build_image {
	const struct ud_image_spec *spec; /* from cfg */
	char *path;                       /* absolute, inside the export */
	char sha256[UD_SHA256_HEX];
	uint64_t size;
	/* spec->initrd, collected the same way; initrd NULL when none. */
	char *initrd;
	char initrd_sha256[UD_SHA256_HEX];
	uint64_t initrd_size;
};

struct ud_build {
	struct ud_appconfig *cfg;
	char commit[GIT_OID_HEXSZ + 1];
	char *ref;
	char *subject, *author;
	char *workdir; /* removed by ud_build_free */
	char *srcdir;  /* workdir/src: the export */
	char *cache_dir;
	struct ud_build_image *images;
	size_t nimages;
	struct ud_buf log; /* build output, capped */
	long long duration_ms;
};

struct ud_build_opts {
	const char *ref;          /* DEPLOY_REF; NULL: "" */
	ud_output_fn on_output;   /* live build output */
	void *payload;
	/* Secrets the caller holds (the SSH key it took out of the
	 * environment), NULL-terminated: scrubbed from the build's output
	 * with those the environment still holds (scrub.h). */
	const char *const *secrets;
};

/* Read and validate deploy.json of `commit` and export its tree.
 * UD_ENOTFOUND if there is no deploy.json, UD_EINVALID if it is bad. */
int ud_build_prepare(struct ud_build **out, git_repository *src,
		     const git_oid *commit, const struct ud_build_opts *o);

/* Run build.command and collect the images. UD_ERROR if the command
 * failed ("build.command exited with status 2"), UD_ENOTFOUND if an image
 * is missing, UD_EINVALID if one resolves outside the export or is not a
 * regular file, UD_ETIMEOUT past build.timeout_s (its process group
 * killed). */
int ud_build_run(struct ud_build *b, const struct ud_build_opts *o);

void ud_build_free(struct ud_build *b);

/* DEPLOY_CACHE_DIR for an app: $DEPLOY_CACHE_ROOT, else
 * $XDG_CACHE_HOME/unideploy, else ~/.cache/unideploy, then /<app>;
 * created. Caller frees. */
int ud_build_cache_dir(char **out, const char *app);

#endif
