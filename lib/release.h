/*
 * release.h: releases in the deployment repository (SPEC §3).
 *
 * Numbers are allocated inside a compare-and-swap transaction on main and
 * retried on conflict, so racing publishers get 1..N with no gap and no
 * duplicate. A rollback is a new release whose files are the blobs of the
 * release it restores.
 */
#ifndef UD_RELEASE_H
#define UD_RELEASE_H

#include <git2.h>
#include <stddef.h>

#include "fleet.h"
#include "manifest.h"
#include "repo.h"

struct ud_release_blob {
	const char *name; /* file name in the release dir (validated) */
	git_oid oid;
};

/*
 * Commit a new release of m->app: allocate n, write
 * apps/<app>/releases/<n>/{manifest.json, files..., build.log} and
 * apps/<app>/current in one commit, move main (retrying on conflict),
 * tag <app>/v<n>. On success m->release == n.
 */
int ud_release_publish(struct ud_deployrepo *r, struct ud_manifest *m,
		       const struct ud_release_blob *files, size_t nfiles,
		       const git_oid *build_log);

/*
 * Publish a release that restores release `to`. 0: the default target,
 * the release numbered just before the one the live release stands for
 * (the current release, or the release it restores), skipping any that
 * would put the live images back: after v1 v2 v3, a rollback publishes
 * v4 restoring v2, the next one v5 restoring v1. UD_ENOTFOUND if `to`
 * does not exist or there is no earlier release; UD_EEXISTS, nothing
 * written, if `to` is live (the current release, or what it restores).
 * *out (may be NULL): the new manifest, rollback_of == to.
 */
int ud_release_rollback(struct ud_deployrepo *r, const char *app, int to,
			struct ud_manifest **out);

/* apps/<app>/current at main's tip (or `commit`); UD_ENOTFOUND if none. */
int ud_release_current(struct ud_deployrepo *r, const git_oid *commit,
		       const char *app, int *out);
/* Manifest of release n; UD_ENOTFOUND if there is no such release. */
int ud_release_manifest(struct ud_deployrepo *r, const git_oid *commit,
			const char *app, int n, struct ud_manifest **out);
/* 0 when the app's current release has an image for `target`, or when
 * it has no release yet (nothing to check against); else UD_EINVALID
 * naming the images it does build. */
int ud_release_check_target(struct ud_deployrepo *r, const char *app,
			    const char *target);
/* All releases, newest first; *current 0 if none. Free with
 * ud_release_list_free. */
int ud_release_list(struct ud_deployrepo *r, const char *app,
		    struct ud_manifest ***out, size_t *n, int *current);
void ud_release_list_free(struct ud_manifest **list, size_t n);

/* Edit fleet.json in a transaction: edit() changes the fleet (return <0
 * to abort with its error); retried on conflict. */
int ud_fleet_update(struct ud_deployrepo *r,
		    int (*edit)(struct ud_fleet *f, void *payload),
		    void *payload, const char *message);

#endif
