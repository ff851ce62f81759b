/*
 * repo_txn.c: transactions on the deployment repository: stage blobs and
 * tags, build the commit off to the side, move main with a
 * compare-and-swap and, for a remote repository, push main and then the
 * tags under the mirror's lock.
 */
#include "repo_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"

struct txn_update {
	char *path;
	git_oid blob;
};

struct txn_tag {
	char *name, *message;
};

struct ud_txn {
	struct ud_deployrepo *r;
	git_oid base;
	int has_base;
	struct txn_update *updates;
	size_t nupdates, aupdates;
	struct txn_tag *tags;
	size_t ntags, atags;
	int locked; /* holds the mirror's lock until commit or free */
};

/* Commits carry the configured identity when there is one, so a deployment
 * repository reads like any other; a build host usually has none. */
static int signature(git_signature **out, git_repository *git)
{
	char host[HOST_NAME_MAX + 1];
	char *email;
	int err;

	if (git_signature_default(out, git) == 0)
		return 0;
	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	email = ud_asprintf("unideploy@%s", host);
	err = git_signature_now(out, "unideploy", email);
	free(email);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot make a signature");
	return 0;
}

/* A remote repository's transaction holds the mirror's lock from here to
 * its push, and starts from a fresh fetch. */
int ud_txn_begin(struct ud_txn **out, struct ud_deployrepo *r)
{
	struct ud_txn *t;
	int err;

	*out = NULL;
	if (r->remote) {
		if ((err = ud_deployrepo__mirror_lock(r)) < 0)
			return err;
		if ((err = ud_deployrepo__sync_mirror(r)) < 0) {
			ud_deployrepo__mirror_unlock(r);
			return err;
		}
	}
	t = ud_calloc(1, sizeof(*t));
	t->locked = r->remote != NULL;
	err = git_reference_name_to_id(&t->base, r->git, UD_MAIN_REF);
	if (err < 0 && err != GIT_ENOTFOUND) {
		err = ud_error_set_git(UD_ERROR, "cannot read %s",
				       UD_MAIN_REF);
		t->r = r;
		ud_txn_free(t);
		return err;
	}
	t->has_base = err == 0;
	t->r = r;
	*out = t;
	return 0;
}

const git_oid *ud_txn_base(struct ud_txn *t)
{
	return t->has_base ? &t->base : NULL;
}

int ud_txn_put_blob(struct ud_txn *t, const char *path, const git_oid *blob)
{
	struct txn_update *u;
	size_t i;

	if (!*path || path[0] == '/' || strstr(path, "//"))
		return ud_error_set(UD_EINVALID, "bad repository path '%s'",
				    path);
	/* A path staged twice keeps the last content: git_tree_create_updated
	 * wants each path once. */
	for (i = 0; i < t->nupdates; i++) {
		if (!strcmp(t->updates[i].path, path)) {
			git_oid_cpy(&t->updates[i].blob, blob);
			return 0;
		}
	}
	if (t->nupdates == t->aupdates) {
		t->aupdates = t->aupdates ? 2 * t->aupdates : 8;
		t->updates = ud_realloc(t->updates,
					t->aupdates * sizeof(*t->updates));
	}
	u = &t->updates[t->nupdates++];
	u->path = ud_strdup(path);
	git_oid_cpy(&u->blob, blob);
	return 0;
}

int ud_txn_put(struct ud_txn *t, const char *path, const void *data,
	       size_t len)
{
	git_oid id;
	int err;

	if ((err = ud_deployrepo_write_blob(t->r, data, len, &id)) < 0)
		return err;
	return ud_txn_put_blob(t, path, &id);
}

int ud_txn_tag(struct ud_txn *t, const char *name, const char *message)
{
	int valid = 0;

	if (git_tag_name_is_valid(&valid, name) < 0 || !valid)
		return ud_error_set(UD_EINVALID, "bad tag name '%s'", name);
	if (t->ntags == t->atags) {
		t->atags = t->atags ? 2 * t->atags : 2;
		t->tags = ud_realloc(t->tags, t->atags * sizeof(*t->tags));
	}
	t->tags[t->ntags].name = ud_strdup(name);
	t->tags[t->ntags].message = ud_strdup(message);
	t->ntags++;
	return 0;
}

/* Moving main is the only step that can lose a race: another process
 * moved it (GIT_EMODIFIED), holds its lock right now (GIT_ELOCKED), or
 * created it first (GIT_EEXISTS when there was no main). */
static int move_main(struct ud_txn *t, const git_oid *id, const char *msg)
{
	git_reference *ref = NULL;
	int err;

	if (t->has_base)
		err = git_reference_create_matching(&ref, t->r->git,
						    UD_MAIN_REF, id, 1,
						    &t->base, msg);
	else
		err = git_reference_create(&ref, t->r->git, UD_MAIN_REF, id,
					   0, msg);
	git_reference_free(ref);
	if (err == GIT_EMODIFIED || err == GIT_ELOCKED || err == GIT_EEXISTS)
		return ud_error_set_git(UD_ECONFLICT,
					"%s moved during the update",
					UD_MAIN_REF);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot update %s",
					UD_MAIN_REF);
	return 0;
}

static int create_tags(struct ud_txn *t, git_commit *commit,
		       const git_signature *sig)
{
	git_oid id;
	size_t i;

	for (i = 0; i < t->ntags; i++) {
		if (git_tag_create(&id, t->r->git, t->tags[i].name,
				   (const git_object *)commit, sig,
				   t->tags[i].message, 1) < 0)
			return ud_error_set_git(UD_ERROR,
						"committed %s but cannot tag "
						"it '%s'",
						git_oid_tostr_s(
							git_commit_id(commit)),
						t->tags[i].name);
	}
	return 0;
}

/* Local main back to the snapshot: the remote did not take our commit. */
static void restore_main(struct ud_txn *t)
{
	git_reference *ref = NULL;

	if (t->has_base)
		git_reference_create(&ref, t->r->git, UD_MAIN_REF, &t->base,
				     1, "unideploy: push failed");
	else
		git_reference_remove(t->r->git, UD_MAIN_REF);
	git_reference_free(ref);
	git_error_clear();
}

/*
 * Main moved locally; now the remote, with its own compare-and-swap: a
 * plain (non-forced) push. When it refuses, fetch: if main moved there
 * since our snapshot another publisher won (UD_ECONFLICT, and the cache
 * now holds the winner's main and tags only); otherwise the refusal is
 * an error of its own.
 */
static int push_main(struct ud_txn *t)
{
	struct ud_deployrepo *r = t->r;
	struct remote *rm = r->remote;
	char *why = NULL;
	git_oid now;
	int err, moved;

	err = ud_deployrepo__push_ref(r, "refs/heads/main:refs/heads/main");
	if (err <= 0) {
		if (err < 0)
			restore_main(t);
		return err;
	}
	why = rm->rejected;
	rm->rejected = NULL;
	restore_main(t);
	if ((err = ud_deployrepo__sync_mirror(r)) < 0)
		goto done;
	err = git_reference_name_to_id(&now, r->git, UD_MAIN_REF);
	if (err < 0 && err != GIT_ENOTFOUND) {
		err = ud_error_set_git(UD_ERROR, "cannot read %s",
				       UD_MAIN_REF);
		goto done;
	}
	moved = err == 0 ? !t->has_base || !git_oid_equal(&now, &t->base)
			 : t->has_base;
	if (moved)
		err = ud_error_set(UD_ECONFLICT,
				   "%s moved on %s during the update (%s)",
				   UD_MAIN_REF, rm->shown, why);
	else
		err = ud_error_set(UD_ERROR, "%s refused %s", rm->shown, why);
done:
	free(why);
	return err;
}

/*
 * Tags go once main is accepted: a tag names a release that exists. From
 * then on the release is live (agents will boot it), so a tag the remote
 * still refuses is a warning, not a failure: the local tag stays, and the
 * next fetch of this mirror (ud_deployrepo__sync_mirror) pushes it.
 */
static void push_tags(struct ud_txn *t)
{
	size_t i;

	for (i = 0; i < t->ntags; i++) {
		if (ud_deployrepo__push_tag(t->r, t->tags[i].name) < 0)
			ud_log_warn("release tag %s was not pushed (%s); the "
				    "next update of the deployment repository "
				    "pushes it", t->tags[i].name,
				    ud_error_last());
		ud_error_clear();
	}
}

int ud_txn_commit(struct ud_txn *t, const char *message, git_oid *out)
{
	git_repository *git = t->r->git;
	git_commit *parent = NULL, *commit = NULL;
	git_tree *base_tree = NULL, *tree = NULL;
	git_tree_update *ups = NULL;
	git_signature *sig = NULL;
	git_oid tree_id, id;
	char *reflog = NULL;
	size_t i;
	int err = 0;

	if (t->has_base) {
		if (git_commit_lookup(&parent, git, &t->base) < 0 ||
		    git_commit_tree(&base_tree, parent) < 0) {
			err = ud_error_set_git(UD_ERROR, "cannot read %s",
					       UD_MAIN_REF);
			goto done;
		}
	}
	ups = ud_calloc(t->nupdates, sizeof(*ups));
	for (i = 0; i < t->nupdates; i++) {
		ups[i].action = GIT_TREE_UPDATE_UPSERT;
		git_oid_cpy(&ups[i].id, &t->updates[i].blob);
		ups[i].filemode = GIT_FILEMODE_BLOB;
		ups[i].path = t->updates[i].path;
	}
	if (git_tree_create_updated(&tree_id, git, base_tree, t->nupdates,
				    ups) < 0 ||
	    git_tree_lookup(&tree, git, &tree_id) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot build the new tree");
		goto done;
	}
	if ((err = signature(&sig, git)) < 0)
		goto done;
	if ((err = ud_deployrepo__commit(&id, t->r, sig, message, tree,
					 parent ? 1 : 0,
					 (const git_commit **)&parent)) < 0)
		goto done;
	reflog = ud_asprintf("unideploy: %.*s", (int)strcspn(message, "\n"),
			     message);
	if ((err = move_main(t, &id, reflog)) < 0 ||
	    (t->r->remote && (err = push_main(t)) < 0))
		goto done;
	if (git_commit_lookup(&commit, git, &id) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot read back %s",
				       git_oid_tostr_s(&id));
		goto done;
	}
	if ((err = create_tags(t, commit, sig)) < 0)
		goto done;
	if (t->r->remote)
		push_tags(t);
	if (out)
		git_oid_cpy(out, &id);
done:
	if (t->locked) {
		ud_deployrepo__mirror_unlock(t->r);
		t->locked = 0;
	}
	free(reflog);
	git_signature_free(sig);
	free(ups);
	git_tree_free(tree);
	git_tree_free(base_tree);
	git_commit_free(commit);
	git_commit_free(parent);
	return err;
}

void ud_txn_free(struct ud_txn *t)
{
	size_t i;

	if (!t)
		return;
	if (t->locked)
		ud_deployrepo__mirror_unlock(t->r);
	for (i = 0; i < t->nupdates; i++)
		free(t->updates[i].path);
	for (i = 0; i < t->ntags; i++) {
		free(t->tags[i].name);
		free(t->tags[i].message);
	}
	free(t->updates);
	free(t->tags);
	free(t);
}
