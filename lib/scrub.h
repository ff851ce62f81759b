/*
 * scrub.h: take the pipeline's secrets out of a build's output.
 *
 * The second line of defence behind the build sandbox (build.h): every
 * line of output is searched for the values of the secrets the pipeline
 * holds before it reaches the pusher or build.log, and each one found is
 * replaced with "[redacted]". Output is scrubbed a line at a time ('\n' or
 * '\r' ends a line), so a secret split across two reads is still found; a
 * line longer than UD_SCRUB_LINE_MAX is passed on in pieces, holding back
 * enough of its end to find a secret that straddles the cut.
 *
 * A secret is registered with its variants: the value itself, each line of
 * a multi-line value (a PEM key printed a line at a time, or one line of
 * it), and its base64 forms (DEPLOY_SSH_KEY_B64, `base64` wrapped at 64 or
 * 76 columns). Values and lines shorter than UD_SCRUB_MIN bytes are not
 * registered: they cannot be keys, and replacing them would mangle
 * ordinary output. PEM armour lines ("-----BEGIN ...") are not secret.
 */
#ifndef UD_SCRUB_H
#define UD_SCRUB_H

#include <stddef.h>

#include "buf.h"
#include "run.h"

#define UD_SCRUB_MIN 8
#define UD_SCRUB_LINE_MAX (64 * 1024)
#define UD_SCRUB_MARK "[redacted]"

struct ud_scrub {
	struct ud_strvec secrets; /* every variant, longest first */
	size_t maxlen;            /* of the longest */
	struct ud_buf pending;    /* the line not yet ended */
	ud_output_fn out;         /* where scrubbed output goes */
	void *payload;
};

void ud_scrub_init(struct ud_scrub *s, ud_output_fn out, void *payload);
void ud_scrub_free(struct ud_scrub *s); /* accepts NULL; re-inits */

/* Register a secret value (NULL or short: nothing). */
void ud_scrub_add(struct ud_scrub *s, const char *secret);
/* Register the password of a URL's user information
 * ("https://user:token@host/..."), if it has one. */
void ud_scrub_add_url(struct ud_scrub *s, const char *url);
/* Register what the environment `env` (NULL: environ) holds that the
 * pipeline knows to be secret: DEPLOY_SSH_KEY, DEPLOY_SSH_KEY_B64,
 * DEPLOY_SIGNING_KEY, and the password of any URL in any variable. */
void ud_scrub_add_env(struct ud_scrub *s, char *const *env);
/* 1 if `name` is a variable the pipeline holds as a secret and a build
 * must not be given. */
int ud_scrub_is_secret_name(const char *name);

/* Feed output; whole lines are scrubbed and passed to `out`. */
void ud_scrub_write(struct ud_scrub *s, const char *data, size_t len);
/* Scrub and pass on what is held back (the output has ended). */
void ud_scrub_flush(struct ud_scrub *s);
/* Replace every registered secret in `b`, in place. */
void ud_scrub_buf(const struct ud_scrub *s, struct ud_buf *b);

#endif
