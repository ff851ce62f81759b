/*
 * manifest.h: apps/<app>/releases/<n>/manifest.json (SPEC §3).
 *
 * Beyond the SPEC's keys, a manifest records "run" and "health" (the
 * objects of deploy.json) so that a host can run the release without the
 * app repository. Parsing validates every name that will become a path.
 */
#ifndef UD_MANIFEST_H
#define UD_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "appconfig.h"
#include "buf.h"
#include "compress.h"
#include "digest.h"
#include "health.h"

struct ud_manifest_image {
	char *target;
	char *arch;
	char *file; /* name inside the release dir, validated */
	char sha256[UD_SHA256_HEX];
	uint64_t size; /* uncompressed */
	enum ud_compression compression;
	/* The initial ramdisk booted with it ("initrd": {"file", "sha256",
	 * "size"}, stored with the image's compression); initrd_file NULL
	 * when it has none. */
	char *initrd_file;
	char initrd_sha256[UD_SHA256_HEX];
	uint64_t initrd_size;
};

struct ud_manifest {
	char *app;
	int release;
	char *created_at; /* "2026-11-26T12:00:00Z" */
	struct {
		char commit[41];
		char *ref, *subject, *author;
	} source;
	struct {
		char *command;
		long long duration_ms;
		char *builder;
	} build;
	struct ud_manifest_image *images;
	size_t nimages;
	int rollback_of; /* 0: null */
	struct ud_run_spec run;
	struct ud_health health;
};

/* Owned; zeroed but for run and health, which hold deploy.json's defaults
 * (scalars only: overwriting them with a struct copy leaks nothing). */
struct ud_manifest *ud_manifest_new(void);
void ud_manifest_free(struct ud_manifest *m);
/* Deep copy (used by rollback, which reuses a manifest with a new number). */
struct ud_manifest *ud_manifest_dup(const struct ud_manifest *m);
/* Append an image (strings copied). */
void ud_manifest_add_image(struct ud_manifest *m,
			   const struct ud_manifest_image *img);

int ud_manifest_parse(struct ud_manifest **out, const char *name,
		      const char *text, size_t len);
int ud_manifest_format(struct ud_buf *out, const struct ud_manifest *m);

/* The image for a target and arch, or NULL. */
const struct ud_manifest_image *
ud_manifest_pick(const struct ud_manifest *m, const char *target,
		 const char *arch);

#endif
