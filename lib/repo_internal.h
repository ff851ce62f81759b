/*
 * repo_internal.h: what the parts of the deployment repository share
 * (libgit2's repository.h in small). Not for use outside lib/repo*.c:
 *
 *   repo.c         open a local repository, tree and blob reads
 *   repo_remote.c  URLs, credentials and host keys, the cache mirror and
 *                  its lock, fetch and push
 *   repo_txn.c     transactions: stage, commit, move main, push
 *
 * Functions named ud_deployrepo__* are internal; they return 0 or a
 * negative code with the message set, as the public ones do.
 */
#ifndef UD_REPO_INTERNAL_H
#define UD_REPO_INTERNAL_H

#include "repo.h"
#include "ssh.h"

/*
 * What libgit2's callbacks need to reach a remote: where it is (for the
 * host-key check), which identities to offer, and what went wrong (so the
 * final message can say UD_EAUTH and carry the reason).
 */
struct remote {
	char *url;
	char *shown; /* url for messages: without a password */
	char *user, *host;
	int port;
	int is_ssh;
	struct ud_ssh_opts ssh; /* its strings are our copies */
	struct ud_ssh_id *ids;
	size_t nids, next;
	int have_ids;
	struct ud_buf tried; /* labels offered on this connection */
	int auth_failed;     /* host key refused or no key accepted */
	char *rejected;      /* "ref: reason" of the last push, if refused */
};

struct ud_deployrepo {
	git_repository *git;
	struct remote *remote; /* NULL: a repository on this machine */
	int lock_fd;           /* the cache mirror's lock file, or -1 */
	char *lock_path;
	int lock_depth; /* flock held while > 0 */
	/* Signs every commit made through this handle (owned; NULL:
	 * unsigned). */
	struct ud_sshkey *signer;
	char *unsigned_why; /* no signer although one was wanted: why */
};

/* repo.c */

/* path of a local repository argument (a path or file:// URL);
 * UD_EINVALID for anything that needs a transport. */
int ud_deployrepo__local_path(const char *url, const char **path);
/* A handle around git, which it then owns; always 0. */
int ud_deployrepo__wrap(struct ud_deployrepo **out, git_repository *git);
int ud_deployrepo__init_bare(git_repository **out, const char *path);
/* The tree entry at path in commit (NULL: main); UD_ENOTFOUND when
 * absent. */
int ud_deployrepo__entry_at(struct ud_deployrepo *r, const git_oid *commit,
			    const char *path, git_tree_entry **out);

/* repo_sign.c */

/* The commit (tree, parents, message) with r's signature when it has a
 * signer, plain otherwise. */
int ud_deployrepo__commit(git_oid *out, struct ud_deployrepo *r,
			  const git_signature *sig, const char *message,
			  const git_tree *tree, size_t nparents,
			  const git_commit **parents);

/* repo_remote.c */

void ud_deployrepo__remote_free(struct remote *rm); /* accepts NULL */
/* The mirror's flock, re-entrant per handle; no-ops for a local
 * repository. */
int ud_deployrepo__mirror_lock(struct ud_deployrepo *r);
void ud_deployrepo__mirror_unlock(struct ud_deployrepo *r);
/* Fetch main and the tags into the mirror (see repo_remote.c). */
int ud_deployrepo__sync_mirror(struct ud_deployrepo *r);
/* 0: accepted; 1: refused (r->remote->rejected says why); else an
 * error, message set. */
int ud_deployrepo__push_ref(struct ud_deployrepo *r, const char *spec);
int ud_deployrepo__push_tag(struct ud_deployrepo *r, const char *name);

#endif
