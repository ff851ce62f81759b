/*
 * errors.h: one error code and one message per failure, set where the
 * failure is understood and carried up unchanged (libgit2's model).
 *
 * Every fallible function returns 0 on success or one of the negative codes
 * below. The function that first understands the failure calls
 * ud_error_set() once; callers only propagate the code. The CLI alone turns
 * codes into exit statuses and prints "deploy: <what>: <why>".
 *
 * The message is thread-local: the signal fan-out and the agent's threads
 * each keep their own.
 */
#ifndef UD_ERRORS_H
#define UD_ERRORS_H

#include <stdarg.h>

enum {
	UD_OK = 0,
	UD_ERROR = -1,     /* generic failure */
	UD_EUSAGE = -2,    /* bad arguments from the user */
	UD_ENOTFOUND = -3, /* a named thing does not exist */
	UD_EEXISTS = -4,   /* it exists already */
	UD_ECONFLICT = -5, /* lost a compare-and-swap race; retry */
	UD_EAUTH = -6,     /* authentication or host key failure */
	UD_ETIMEOUT = -7,  /* a deadline passed */
	UD_EINVALID = -8,  /* malformed input (JSON, names, manifests) */
	UD_EBUSY = -9,     /* locked by someone else */
	UD_ETOOBIG = -10,  /* a size cap was hit */
	UD_EPARTIAL = -11, /* done, but some hosts failed */
};

/* Set the current message (printf format) and return `code`, so that
 * `return ud_error_set(UD_EINVALID, "...")` reads naturally. */
int ud_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ud_error_vset(int code, const char *fmt, va_list ap);

/* Like ud_error_set() but appends ": <strerror(errno)>" (errno read at
 * entry). */
int ud_error_set_errno(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Like ud_error_set() but appends ": <git_error_last()->message>". */
int ud_error_set_git(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prefix the current message with "<prefix>: " (adds context while
 * propagating, never replaces the cause). */
void ud_error_prefix(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* The current message, or "unknown error" when none was set. Never NULL. */
const char *ud_error_last(void);
int ud_error_has(void);
void ud_error_clear(void);

/*
 * Keep the current message across cleanup that may set messages of its
 * own (libgit2's git_error_save / git_error_restore), on the caller's
 * stack:
 *
 *	struct ud_error_state saved;
 *
 *	ud_error_save(&saved);
 *	stop_what_was_started();
 *	ud_error_restore(&saved);
 *
 * The code is the caller's to keep; only the message is saved. Restoring
 * a state saved with no message set clears the message.
 */
#define UD_ERROR_MSG_MAX 1024
struct ud_error_state {
	char msg[UD_ERROR_MSG_MAX];
	int set;
};
void ud_error_save(struct ud_error_state *s);
void ud_error_restore(const struct ud_error_state *s);

/* Exit status of a command for an error code (SPEC §1): 0, 1, 2 or 3. */
int ud_error_exit_status(int code);

#endif
