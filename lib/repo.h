/*
 * repo.h: the deployment repository (SPEC §3) through libgit2.
 *
 * Every change is a transaction against a snapshot of refs/heads/main: the
 * new commit is built off to the side and main is moved with a
 * compare-and-swap (git_reference_create_matching). Losing the race yields
 * UD_ECONFLICT and changes nothing; the caller re-reads and retries.
 */
#ifndef UD_REPO_H
#define UD_REPO_H

#include <git2.h>
#include <stddef.h>

#include "buf.h"
#include "strvec.h"

#define UD_MAIN_REF "refs/heads/main"

struct ud_deployrepo;

/* Create a bare repository at path with HEAD -> main and one commit
 * holding an empty fleet.json, signed by `signer` when not NULL (which
 * it takes and frees). UD_EEXISTS if path holds a repository. */
struct ud_sshkey;
int ud_deployrepo_init(const char *path, struct ud_sshkey *signer);

/* Open a deployment repository given as a path or file:// URL.
 * UD_ENOTFOUND (message names it). ssh:// and https:// are refused with
 * UD_EINVALID: they need ud_deployrepo_open_ex and its cache mirror. */
int ud_deployrepo_open(struct ud_deployrepo **out, const char *url);

/*
 * The same for any URL of SPEC §4: a path, file://, ssh:// or https://.
 * A remote repository is worked on through a local cache mirror (under
 * $DEPLOY_CACHE_ROOT, else $XDG_CACHE_HOME/unideploy, else
 * ~/.cache/unideploy: repos/<host>-<hash of the URL>.git), fetched at
 * open, so nothing is re-cloned. Transactions on such a repository push
 * main with a compare-and-swap (a plain, non-forced push), then its tags;
 * a push rejected because another publisher moved main first fetches
 * again and gives UD_ECONFLICT, so the caller's retry renumbers.
 * Credentials and host-key checks follow ssh (NULL: ud_ssh_opts_from_env):
 * libgit2's certificate callback checks ssh host keys with
 * ud_ssh_check_hostkey; https keeps libgit2's own TLS verification,
 * against the CA certificates of $SSL_CERT_FILE / $SSL_CERT_DIR when set
 * (else libgit2's default bundle).
 *
 * The mirror's origin is the URL without its password (for plain git);
 * fetches and pushes go through anonymous remotes built from the URL in
 * memory, so a password or token never reaches the disk, and repos/ is
 * 0700. Each open fetches main and the tags
 * and drops cached tags the remote does not have, except a release tag
 * <app>/v<n> whose release is in main's tree and whose commit main
 * contains: that is a tag a publish could not push, so it is kept and
 * pushed (SPEC §3: every release is tagged). Once the remote took main
 * the release exists: ud_txn_commit tries each tag push a few times and,
 * if the remote still refuses, logs a warning naming the tag and returns
 * success; the next open (or update) of that mirror pushes it.
 *
 * An flock on repos/<name>.lock serialises the processes of this machine
 * only while the mirror is updated: during the fetch of open, and from
 * ud_txn_begin (which takes it and fetches again, so the snapshot is
 * fresh) to ud_txn_commit's push or ud_txn_free. In between, reads use the
 * mirror unlocked (objects never change; refs move atomically), so an open
 * repository blocks no one. A wait of over a second logs "waiting for
 * <lock>". Nested transactions on one ud_deployrepo share the lock; do
 * not run transactions on two handles of the same URL at once in one
 * process (the second would wait forever). The ssh options are
 * copied. Errors name the URL (without a password): UD_EAUTH for a
 * refused host key ("host key for [h]:p is unknown (ssh-ed25519
 * SHA256:...)") or when no identity was accepted ("no key was accepted
 * (tried: --identity, ...)") or a TLS certificate libgit2 refused (its
 * reason: "the SSL certificate is invalid: ..."); UD_ERROR otherwise.
 */
struct ud_ssh_opts;
int ud_deployrepo_open_ex(struct ud_deployrepo **out, const char *url,
			  const struct ud_ssh_opts *ssh);
/* Is url a remote (ssh://, https://, http://, or scp-like user@host:path)?
 * http:// and git:// count as remote so that ud_deployrepo_open_ex and
 * ud_deployrepo_fetch_ex refuse them, UD_EINVALID "deployment repository
 * URL 'http://...': use ssh:// or https://" (unauthenticated transports). */
int ud_deployrepo_is_remote(const char *url);
void ud_deployrepo_free(struct ud_deployrepo *r);
/* The permission bits a writer must leave open for the others sharing
 * this repository, from its core.sharedRepository as git reads it:
 * 0070 for "group" (true, 1, or an octal mode giving the group write),
 * 0075 for "all" (world, everybody, 2), 0 when not shared or remote (the
 * cache mirror is the user's own). libgit2 1.5 ignores the setting when
 * it writes objects and refs, so a writer clears these bits from its
 * umask (the deploy CLI does, docs/multiuser.md); otherwise a member's
 * new object directory or lockfile is one the others cannot write. */
unsigned int ud_deployrepo_shared_bits(struct ud_deployrepo *r);
git_repository *ud_deployrepo_git(struct ud_deployrepo *r);

/*
 * Signed releases (SPEC §4 "Signing"). With a signer, every commit made
 * through r carries an SSH signature in git's own format (gpg.format=ssh,
 * namespace "git", in the gpgsig header), which `git verify-commit`
 * checks. r takes the key (freed with r).
 */
struct ud_sshkey;
void ud_deployrepo_set_signer(struct ud_deployrepo *r,
			      struct ud_sshkey *key);
/* No signer, and why: each commit then logs a warning saying so. */
void ud_deployrepo_set_unsigned(struct ud_deployrepo *r, const char *why);
/*
 * Check that every commit reachable from `head` and not from `since`
 * (NULL, or a commit r does not have: every commit) is signed, namespace
 * "git", by a key `allowed` lists for the commit's time. The first that
 * is not gives UD_EAUTH, "commit <12 hex> (<subject>): <why>", with its id
 * in *bad when bad is not NULL.
 */
struct ud_allowed_signers;
int ud_deployrepo_verify_signed(struct ud_deployrepo *r, const git_oid *head,
				const git_oid *since,
				const struct ud_allowed_signers *allowed,
				git_oid *bad);

/*
 * A local bare mirror for the agent: opened at mirror_path (created when
 * missing) and fetched from `url` (a path, file://, later ssh://) through
 * libgit2's remote machinery, refspec +refs/heads/main:refs/heads/main
 * plus tags. On success *out is the mirror, ready for reads. A remote URL
 * is reached as ud_deployrepo_fetch_ex does with ssh NULL.
 */
int ud_deployrepo_fetch(struct ud_deployrepo **out, const char *mirror_path,
			const char *url);
/* The same with credentials for ssh:// (the agent's ssh_key and
 * known_hosts); ssh NULL: ud_ssh_opts_from_env. */
int ud_deployrepo_fetch_ex(struct ud_deployrepo **out, const char *mirror_path,
			   const char *url, const struct ud_ssh_opts *ssh);

/* The commit main points at. UD_ENOTFOUND if main does not exist. */
int ud_deployrepo_head(struct ud_deployrepo *r, git_oid *out);

/* Read the file at `path` in `commit` (NULL: main's tip) into out.
 * UD_ENOTFOUND if there is no such file. */
int ud_deployrepo_read(struct ud_deployrepo *r, const git_oid *commit,
		       const char *path, struct ud_buf *out);
/* The blob oid at `path` (NULL commit: main's tip). */
int ud_deployrepo_blob_id(struct ud_deployrepo *r, const git_oid *commit,
			  const char *path, git_oid *out);
/* Names in the tree at `dir` ("apps/hello/releases"), in tree order.
 * A missing dir gives an empty list, not an error. */
int ud_deployrepo_list(struct ud_deployrepo *r, const git_oid *commit,
		       const char *dir, struct ud_strvec *names);

/* Store data as a blob (before a transaction, so retries reuse it). */
int ud_deployrepo_write_blob(struct ud_deployrepo *r, const void *data,
			     size_t len, git_oid *out);

/* A transaction on main. */
struct ud_txn;
/* Snapshot main's tip. */
int ud_txn_begin(struct ud_txn **out, struct ud_deployrepo *r);
/* The snapshot commit (reads inside the transaction go through it). */
const git_oid *ud_txn_base(struct ud_txn *t);
int ud_txn_put(struct ud_txn *t, const char *path, const void *data,
	       size_t len);
int ud_txn_put_blob(struct ud_txn *t, const char *path, const git_oid *blob);
/* Tag to create (annotated, force) once main has moved: "hello/v7". */
int ud_txn_tag(struct ud_txn *t, const char *name, const char *message);
/*
 * Commit the staged changes on top of the snapshot and move main with a
 * compare-and-swap. UD_ECONFLICT if main moved since ud_txn_begin (or its
 * lock was held); nothing changed then. *out (may be NULL): the commit.
 */
int ud_txn_commit(struct ud_txn *t, const char *message, git_oid *out);
void ud_txn_free(struct ud_txn *t);

#endif
