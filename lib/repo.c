/*
 * repo.c: the deployment repository on this machine: create, open, and
 * read main's tree. Remote repositories (their mirror, fetch and push)
 * are repo_remote.c, transactions repo_txn.c; repo_internal.h is what
 * they share.
 */
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "errors.h"
#include "fleet.h"
#include "source.h"
#include "sshkey.h"
#include "trust.h"

/* A repository argument is a path or a file:// URL; anything else needs a
 * transport and a local mirror (ud_deployrepo_fetch). */
int ud_deployrepo__local_path(const char *url, const char **path)
{
	if (!strncmp(url, "file://", 7)) {
		*path = url + 7;
		return 0;
	}
	size_t colon = strcspn(url, ":");

	/* "host:path" is scp-like ssh syntax, as git reads it */
	if (strstr(url, "://") ||
	    (url[colon] && colon < strcspn(url, "/") && url[0] != '.'))
		return ud_error_set(UD_EINVALID,
				    "deployment repository '%s': only local "
				    "paths and file:// URLs can be opened "
				    "directly", url);
	*path = url;
	return 0;
}

int ud_deployrepo__wrap(struct ud_deployrepo **out, git_repository *git)
{
	struct ud_deployrepo *r = ud_calloc(1, sizeof(*r));

	r->git = git;
	r->lock_fd = -1;
	*out = r;
	return 0;
}

static int open_at(git_repository **out, const char *path, const char *what)
{
	int err = ud_git_open(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH);

	if (err == GIT_ENOTFOUND)
		return ud_error_set(UD_ENOTFOUND, "%s '%s' not found", what,
				    path);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot open %s '%s'", what,
					path);
	return 0;
}

int ud_deployrepo__init_bare(git_repository **out, const char *path)
{
	git_repository_init_options opts;

	git_repository_init_options_init(&opts,
					 GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	opts.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
	opts.initial_head = "main";
	if (git_repository_init_ext(out, path, &opts) < 0)
		return ud_error_set_git(UD_ERROR,
					"cannot create repository '%s'", path);
	return 0;
}

int ud_deployrepo_init(const char *path, struct ud_sshkey *signer)
{
	struct ud_deployrepo *r = NULL;
	git_repository *git = NULL;
	struct ud_fleet *fleet = NULL;
	struct ud_buf text = UD_BUF_INIT;
	struct ud_txn *t = NULL;
	int err;

	git_libgit2_init();
	err = ud_git_open(&git, path, GIT_REPOSITORY_OPEN_NO_SEARCH);
	if (err == 0 || err == GIT_EOWNER) {
		err = ud_error_set(UD_EEXISTS,
				   "'%s' is already a git repository", path);
		goto done;
	}
	if ((err = ud_deployrepo__init_bare(&git, path)) < 0)
		goto done;
	ud_deployrepo__wrap(&r, git);
	git = NULL;
	r->signer = signer;
	signer = NULL;

	fleet = ud_fleet_new();
	if ((err = ud_fleet_format(&text, fleet)) < 0 ||
	    (err = ud_txn_begin(&t, r)) < 0 ||
	    (err = ud_txn_put(t, "fleet.json", text.ptr, text.size)) < 0 ||
	    (err = ud_txn_commit(t, "Create deployment repository", NULL)) < 0)
		goto done;
done:
	ud_txn_free(t);
	ud_buf_free(&text);
	ud_fleet_free(fleet);
	git_repository_free(git);
	ud_sshkey_free(signer); /* when r did not take it */
	if (r)
		ud_deployrepo_free(r); /* drops our libgit2 reference */
	else
		git_libgit2_shutdown();
	return err;
}

int ud_deployrepo_open(struct ud_deployrepo **out, const char *url)
{
	git_repository *git = NULL;
	const char *path = NULL;
	int err;

	*out = NULL;
	if ((err = ud_deployrepo__local_path(url, &path)) < 0)
		return err;
	git_libgit2_init();
	if ((err = open_at(&git, path, "deployment repository")) < 0) {
		git_libgit2_shutdown();
		return err;
	}
	return ud_deployrepo__wrap(out, git);
}

void ud_deployrepo_free(struct ud_deployrepo *r)
{
	if (!r)
		return;
	git_repository_free(r->git);
	ud_deployrepo__remote_free(r->remote);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	free(r->lock_path);
	free(r->unsigned_why);
	ud_sshkey_free(r->signer);
	free(r);
	git_libgit2_shutdown();
}

unsigned int ud_deployrepo_shared_bits(struct ud_deployrepo *r)
{
	git_config *cfg = NULL;
	git_buf v = { 0 };
	unsigned int bits = 0;
	char *end;
	long mode;

	if (r->remote || git_repository_config_snapshot(&cfg, r->git) < 0 ||
	    git_config_get_string_buf(&v, cfg, "core.sharedRepository") < 0)
		goto done;
	if (!strcasecmp(v.ptr, "group") || !strcasecmp(v.ptr, "true") ||
	    !strcmp(v.ptr, "1"))
		bits = 0070;
	else if (!strcasecmp(v.ptr, "all") || !strcasecmp(v.ptr, "world") ||
		 !strcasecmp(v.ptr, "everybody") || !strcmp(v.ptr, "2"))
		bits = 0075;
	else if (v.ptr[0] == '0' && (mode = strtol(v.ptr, &end, 8)) > 0 &&
		 !*end && mode <= 0777)
		bits = (mode & 0020 ? 0070 : 0) | (mode & 0004 ? 0005 : 0);
done:
	git_buf_dispose(&v);
	git_config_free(cfg);
	git_error_clear();
	return bits;
}

git_repository *ud_deployrepo_git(struct ud_deployrepo *r)
{
	return r->git;
}

int ud_deployrepo_head(struct ud_deployrepo *r, git_oid *out)
{
	int err = git_reference_name_to_id(out, r->git, UD_MAIN_REF);

	if (err == GIT_ENOTFOUND)
		return ud_error_set(UD_ENOTFOUND,
				    "deployment repository has no branch main");
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot read %s",
					UD_MAIN_REF);
	return 0;
}

static int commit_tree(struct ud_deployrepo *r, const git_oid *commit,
		       git_tree **out)
{
	git_commit *c = NULL;
	git_oid head;
	int err;

	if (!commit) {
		if ((err = ud_deployrepo_head(r, &head)) < 0)
			return err;
		commit = &head;
	}
	if (git_commit_lookup(&c, r->git, commit) < 0)
		return ud_error_set_git(UD_ENOTFOUND, "no commit %s",
					git_oid_tostr_s(commit));
	err = git_commit_tree(out, c);
	git_commit_free(c);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot read the tree of %s",
					git_oid_tostr_s(commit));
	return 0;
}

/* The tree entry at path; UD_ENOTFOUND when absent. */
int ud_deployrepo__entry_at(struct ud_deployrepo *r, const git_oid *commit,
			    const char *path, git_tree_entry **out)
{
	git_tree *tree = NULL;
	int err;

	if ((err = commit_tree(r, commit, &tree)) < 0)
		return err;
	err = git_tree_entry_bypath(out, tree, path);
	git_tree_free(tree);
	if (err == GIT_ENOTFOUND)
		return ud_error_set(UD_ENOTFOUND,
				    "no '%s' in the deployment repository",
				    path);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot look up '%s'", path);
	return 0;
}

int ud_deployrepo_blob_id(struct ud_deployrepo *r, const git_oid *commit,
			  const char *path, git_oid *out)
{
	git_tree_entry *e = NULL;
	int err;

	if ((err = ud_deployrepo__entry_at(r, commit, path, &e)) < 0)
		return err;
	if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
		err = ud_error_set(UD_ENOTFOUND, "'%s' is not a file", path);
	else
		git_oid_cpy(out, git_tree_entry_id(e));
	git_tree_entry_free(e);
	return err;
}

int ud_deployrepo_read(struct ud_deployrepo *r, const git_oid *commit,
		       const char *path, struct ud_buf *out)
{
	git_blob *blob = NULL;
	git_oid id;
	int err;

	if ((err = ud_deployrepo_blob_id(r, commit, path, &id)) < 0 ||
	    (err = ud_blob_fits(r->git, &id, path, out)) < 0)
		return err;
	if (git_blob_lookup(&blob, r->git, &id) < 0)
		return ud_error_set_git(UD_ERROR, "cannot read '%s'", path);
	err = ud_buf_put(out, git_blob_rawcontent(blob),
			 (size_t)git_blob_rawsize(blob));
	git_blob_free(blob);
	return err;
}

int ud_deployrepo_list(struct ud_deployrepo *r, const git_oid *commit,
		       const char *dir, struct ud_strvec *names)
{
	git_tree *root = NULL, *sub = NULL;
	git_tree_entry *e = NULL;
	const git_tree *tree;
	size_t i, n;
	int err;

	if ((err = commit_tree(r, commit, &root)) < 0)
		return err;
	tree = root;
	if (dir && *dir) {
		err = git_tree_entry_bypath(&e, root, dir);
		if (err == GIT_ENOTFOUND ||
		    (!err && git_tree_entry_type(e) != GIT_OBJECT_TREE)) {
			err = 0;
			goto done;
		}
		if (err < 0 || git_tree_lookup(&sub, r->git,
					       git_tree_entry_id(e)) < 0) {
			err = ud_error_set_git(UD_ERROR, "cannot list '%s'",
					       dir);
			goto done;
		}
		tree = sub;
	}
	n = git_tree_entrycount(tree);
	for (i = 0; i < n; i++)
		ud_strvec_push(names,
			       git_tree_entry_name(git_tree_entry_byindex(tree,
									  i)));
done:
	git_tree_entry_free(e);
	git_tree_free(sub);
	git_tree_free(root);
	return err;
}

int ud_deployrepo_write_blob(struct ud_deployrepo *r, const void *data,
			     size_t len, git_oid *out)
{
	if (git_blob_create_from_buffer(out, r->git, data, len) < 0)
		return ud_error_set_git(UD_ERROR, "cannot store a blob");
	return 0;
}
