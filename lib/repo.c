#include "repo.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "fleet.h"

struct ud_deployrepo {
	git_repository *git;
};

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
};

/* A repository argument is a path or a file:// URL; anything else needs a
 * transport and a local mirror (ud_deployrepo_fetch). */
static int local_path(const char *url, const char **path)
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

static int wrap(struct ud_deployrepo **out, git_repository *git)
{
	struct ud_deployrepo *r = ud_calloc(1, sizeof(*r));

	r->git = git;
	*out = r;
	return 0;
}

static int open_at(git_repository **out, const char *path, const char *what)
{
	int err = git_repository_open_ext(out, path,
					  GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);

	if (err == GIT_ENOTFOUND)
		return ud_error_set(UD_ENOTFOUND, "%s '%s' not found", what,
				    path);
	if (err < 0)
		return ud_error_set_git(UD_ERROR, "cannot open %s '%s'", what,
					path);
	return 0;
}

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

static int init_bare(git_repository **out, const char *path)
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

int ud_deployrepo_init(const char *path)
{
	struct ud_deployrepo *r = NULL;
	git_repository *git = NULL;
	struct ud_fleet *fleet = NULL;
	struct ud_buf text = UD_BUF_INIT;
	struct ud_txn *t = NULL;
	int err;

	git_libgit2_init();
	if (git_repository_open_ext(&git, path, GIT_REPOSITORY_OPEN_NO_SEARCH,
				    NULL) == 0) {
		err = ud_error_set(UD_EEXISTS,
				   "'%s' is already a git repository", path);
		goto done;
	}
	if ((err = init_bare(&git, path)) < 0)
		goto done;
	wrap(&r, git);
	git = NULL;

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
	if ((err = local_path(url, &path)) < 0)
		return err;
	git_libgit2_init();
	if ((err = open_at(&git, path, "deployment repository")) < 0) {
		git_libgit2_shutdown();
		return err;
	}
	return wrap(out, git);
}

int ud_deployrepo_is_remote(const char *url)
{
	const char *colon, *slash;

	if (!strncmp(url, "ssh://", 6) || !strncmp(url, "https://", 8) ||
	    !strncmp(url, "http://", 7) || !strncmp(url, "git://", 6))
		return 1;
	/* scp-like "user@host:path": a colon before any slash. */
	colon = strchr(url, ':');
	slash = strchr(url, '/');
	return colon && colon != url && (!slash || colon < slash) &&
	       strncmp(url, "file:", 5);
}

int ud_deployrepo_open_ex(struct ud_deployrepo **out, const char *url,
			  const struct ud_ssh_opts *ssh)
{
	(void)ssh;
	return ud_deployrepo_open(out, url);
}

void ud_deployrepo_free(struct ud_deployrepo *r)
{
	if (!r)
		return;
	git_repository_free(r->git);
	free(r);
	git_libgit2_shutdown();
}

git_repository *ud_deployrepo_git(struct ud_deployrepo *r)
{
	return r->git;
}

/*
 * A mirror of a repository on this machine borrows its objects through
 * objects/info/alternates, as `git clone --shared` does. libgit2 1.5's
 * local transport packs everything reachable from a wanted tip without
 * hiding what the receiver has, so without this every sync copied (and
 * re-deltified) the whole release history. The deployment repository
 * never drops a release, so its objects stay valid for the mirror.
 */
static int share_objects(git_repository **git, const char *mirror_path,
			 const char *url)
{
	git_repository *src = NULL;
	struct ud_buf old = UD_BUF_INIT;
	const char *path;
	char *objects = NULL, *alternates = NULL, *real = NULL, *line = NULL;
	int err = 0;

	if (local_path(url, &path) < 0) {
		ud_error_clear(); /* a remote URL: nothing to share */
		return 0;
	}
	if (!(real = realpath(path, NULL)) ||
	    git_repository_open_ext(&src, real, GIT_REPOSITORY_OPEN_NO_SEARCH,
				    NULL) < 0) {
		git_error_clear();
		goto done; /* the fetch itself reports a missing source */
	}
	objects = ud_asprintf("%sobjects", git_repository_path(src));
	alternates = ud_asprintf("%sobjects/info/alternates",
				 git_repository_path(*git));
	line = ud_asprintf("%s\n", objects);
	if (ud_buf_read_file(&old, alternates) == 0 && !strcmp(old.ptr, line))
		goto done;
	ud_error_clear();
	{
		char *dir = ud_asprintf("%sobjects/info",
					git_repository_path(*git));
		err = ud_mkdir_p(dir, 0755);
		free(dir);
	}
	if (!err)
		err = ud_write_file_atomic(alternates, line, strlen(line),
					   0644);
	if (err < 0)
		goto done;
	/* The object database was opened before the alternate existed. */
	git_repository_free(*git);
	*git = NULL;
	if (git_repository_open_ext(git, mirror_path,
				    GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		err = ud_error_set_git(UD_ERROR, "cannot reopen mirror '%s'",
				       mirror_path);
done:
	git_repository_free(src);
	ud_buf_free(&old);
	free(objects);
	free(alternates);
	free(real);
	free(line);
	return err;
}

int ud_deployrepo_fetch(struct ud_deployrepo **out, const char *mirror_path,
			const char *url)
{
	static char *specs[] = {
		"+refs/heads/main:refs/heads/main",
		"+refs/tags/*:refs/tags/*",
	};
	git_strarray refspecs = { specs, 2 };
	git_fetch_options opts;
	git_repository *git = NULL;
	git_remote *remote = NULL;
	int err;

	*out = NULL;
	git_libgit2_init();
	err = git_repository_open_ext(&git, mirror_path,
				      GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (err == GIT_ENOTFOUND)
		err = init_bare(&git, mirror_path);
	else if (err < 0)
		err = ud_error_set_git(UD_ERROR, "cannot open mirror '%s'",
				       mirror_path);
	if (err < 0)
		goto done;
	if ((err = share_objects(&git, mirror_path, url)) < 0)
		goto done;

	/* The mirror follows the source exactly for main and tags, but a
	 * tag deleted upstream is kept: releases are history. */
	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	opts.prune = GIT_FETCH_NO_PRUNE;
	opts.update_fetchhead = 0;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	if (git_remote_create_anonymous(&remote, git, url) < 0) {
		err = ud_error_set_git(UD_EINVALID,
				       "bad deployment repository URL '%s'",
				       url);
		goto done;
	}
	if (git_remote_fetch(remote, &refspecs, &opts, "fetch") < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot fetch '%s'", url);
		goto done;
	}
	err = wrap(out, git);
	git = NULL;
done:
	git_remote_free(remote);
	if (err < 0) {
		git_repository_free(git);
		git_libgit2_shutdown();
	}
	return err;
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
static int entry_at(struct ud_deployrepo *r, const git_oid *commit,
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

	if ((err = entry_at(r, commit, path, &e)) < 0)
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

	if ((err = ud_deployrepo_blob_id(r, commit, path, &id)) < 0)
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

int ud_txn_begin(struct ud_txn **out, struct ud_deployrepo *r)
{
	struct ud_txn *t = ud_calloc(1, sizeof(*t));
	int err = git_reference_name_to_id(&t->base, r->git, UD_MAIN_REF);

	*out = NULL;
	if (err < 0 && err != GIT_ENOTFOUND) {
		free(t);
		return ud_error_set_git(UD_ERROR, "cannot read %s",
					UD_MAIN_REF);
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
	if (git_commit_create(&id, git, NULL, sig, sig, NULL, message, tree,
			      parent ? 1 : 0,
			      (const git_commit **)&parent) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot create the commit");
		goto done;
	}
	reflog = ud_asprintf("unideploy: %.*s", (int)strcspn(message, "\n"),
			     message);
	if ((err = move_main(t, &id, reflog)) < 0)
		goto done;
	if (git_commit_lookup(&commit, git, &id) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot read back %s",
				       git_oid_tostr_s(&id));
		goto done;
	}
	if ((err = create_tags(t, commit, sig)) < 0)
		goto done;
	if (out)
		git_oid_cpy(out, &id);
done:
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

int ud_deployrepo_fetch_ex(struct ud_deployrepo **out, const char *mirror_path,
			   const char *url, const struct ud_ssh_opts *ssh)
{
	(void)ssh;
	return ud_deployrepo_fetch(out, mirror_path, url);
}
