/*
 * repo_sign.c: signed commits on the deployment repository (see repo.h):
 * made as git makes them with gpg.format=ssh (the commit text is signed,
 * namespace "git", and the armoured signature goes in its gpgsig header),
 * and checked over a range of history the way an agent needs it: every
 * new commit, not only the head.
 */
#include "repo_internal.h"

#include <stdlib.h>
#include <string.h>

#include "allowed_signers.h"
#include "errors.h"
#include "log.h"
#include "sshsig.h"

#define NAMESPACE "git"

void ud_deployrepo_set_signer(struct ud_deployrepo *r,
			      struct ud_sshkey *key)
{
	ud_sshkey_free(r->signer);
	r->signer = key;
	free(r->unsigned_why);
	r->unsigned_why = NULL;
}

void ud_deployrepo_set_unsigned(struct ud_deployrepo *r, const char *why)
{
	ud_sshkey_free(r->signer);
	r->signer = NULL;
	free(r->unsigned_why);
	r->unsigned_why = ud_strdup(why);
}

int ud_deployrepo__commit(git_oid *out, struct ud_deployrepo *r,
			  const git_signature *sig, const char *message,
			  const git_tree *tree, size_t nparents,
			  const git_commit **parents)
{
	git_buf text = { 0 };
	struct ud_buf armored = UD_BUF_INIT;
	int err = 0;

	if (!r->signer) {
		if (r->unsigned_why)
			ud_log_warn("this commit is not signed: %s",
				    r->unsigned_why);
		if (git_commit_create(out, r->git, NULL, sig, sig, NULL,
				      message, tree, nparents, parents) < 0)
			return ud_error_set_git(UD_ERROR,
						"cannot create the commit");
		return 0;
	}
	if (git_commit_create_buffer(&text, r->git, sig, sig, NULL, message,
				     tree, nparents, parents) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot create the commit");
		goto done;
	}
	if ((err = ud_sshsig_sign(&armored, r->signer, NAMESPACE, text.ptr,
				  text.size)) < 0) {
		ud_error_prefix("signing the commit");
		goto done;
	}
	if (git_commit_create_with_signature(out, r->git, text.ptr,
					     armored.ptr, "gpgsig") < 0)
		err = ud_error_set_git(UD_ERROR,
				       "cannot create the signed commit");
done:
	git_buf_dispose(&text);
	ud_buf_free(&armored);
	return err;
}

/* Whether one commit is signed by an allowed key; the reason when not. */
static int verify_one(struct ud_deployrepo *r, const git_oid *id,
		      const struct ud_allowed_signers *allowed)
{
	git_buf sig = { 0 }, data = { 0 };
	git_commit *c = NULL;
	struct ud_sshkey *key = NULL;
	int err;

	if (git_commit_lookup(&c, r->git, id) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot read commit");
		goto done;
	}
	err = git_commit_extract_signature(&sig, &data, r->git, (git_oid *)id,
					   NULL);
	if (err == GIT_ENOTFOUND) {
		err = ud_error_set(UD_EAUTH, "not signed");
		goto done;
	}
	if (err < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot read its signature");
		goto done;
	}
	if ((err = ud_sshsig_verify(&key, sig.ptr, sig.size, NAMESPACE,
				    data.ptr, data.size)) < 0) {
		/* Not ours to mend: any flaw of the signature refuses it. */
		err = UD_EAUTH;
		goto done;
	}
	err = ud_allowed_signers_check(allowed, key, NAMESPACE,
				       (time_t)git_commit_time(c), NULL);
done:
	ud_sshkey_free(key);
	git_buf_dispose(&sig);
	git_buf_dispose(&data);
	git_commit_free(c);
	return err;
}

static char *subject_of(struct ud_deployrepo *r, const git_oid *id)
{
	git_commit *c = NULL;
	const char *s;
	char *out;

	if (git_commit_lookup(&c, r->git, id) < 0) {
		git_error_clear();
		return ud_strdup("?");
	}
	s = git_commit_summary(c);
	out = ud_strdup(s ? s : "");
	git_commit_free(c);
	return out;
}

int ud_deployrepo_verify_signed(struct ud_deployrepo *r, const git_oid *head,
				const git_oid *since,
				const struct ud_allowed_signers *allowed,
				git_oid *bad)
{
	git_revwalk *walk = NULL;
	git_oid id;
	int err = 0, rc;

	if (git_revwalk_new(&walk, r->git) < 0 ||
	    git_revwalk_push(walk, head) < 0) {
		err = ud_error_set_git(UD_ERROR, "cannot walk the history");
		goto done;
	}
	/* A commit we do not have (the history was rewritten and collected)
	 * hides nothing: then every commit is checked. */
	if (since && git_revwalk_hide(walk, since) < 0)
		git_error_clear();
	while ((rc = git_revwalk_next(&id, walk)) == 0) {
		if ((err = verify_one(r, &id, allowed)) < 0) {
			char *subject = subject_of(r, &id), *why;

			why = ud_strdup(ud_error_last());
			err = ud_error_set(UD_EAUTH, "commit %.12s (%s): %s",
					   git_oid_tostr_s(&id), subject, why);
			free(why);
			free(subject);
			if (bad)
				git_oid_cpy(bad, &id);
			goto done;
		}
	}
	if (rc != GIT_ITEROVER)
		err = ud_error_set_git(UD_ERROR, "cannot walk the history");
done:
	git_revwalk_free(walk);
	return err;
}
