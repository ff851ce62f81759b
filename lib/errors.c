#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <git2.h>

static _Thread_local char msg[UD_ERROR_MSG_MAX];
static _Thread_local int msg_set;

int ud_error_vset(int code, const char *fmt, va_list ap)
{
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg_set = 1;
	return code;
}

int ud_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ud_error_vset(code, fmt, ap);
	va_end(ap);
	return code;
}

/* Messages are capped at UD_ERROR_MSG_MAX; a cut-off cause is still
 * better than none, so truncation is accepted (and the return value read
 * to say so). */
static void append(const char *tail)
{
	size_t len = strlen(msg);

	if (snprintf(msg + len, sizeof(msg) - len, ": %s", tail) < 0)
		msg[len] = '\0';
}

int ud_error_set_errno(int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	ud_error_vset(code, fmt, ap);
	va_end(ap);
	append(strerror(saved));
	return code;
}

int ud_error_set_git(int code, const char *fmt, ...)
{
	const git_error *e = git_error_last();
	va_list ap;

	va_start(ap, fmt);
	ud_error_vset(code, fmt, ap);
	va_end(ap);
	append(e && e->message ? e->message : "unknown libgit2 error");
	return code;
}

void ud_error_prefix(const char *fmt, ...)
{
	struct ud_error_state old;
	size_t len;
	va_list ap;

	ud_error_save(&old);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	len = strlen(msg);
	if (snprintf(msg + len, sizeof(msg) - len, ": %s",
		     old.set ? old.msg : "unknown error") < 0)
		msg[len] = '\0';
	msg_set = 1;
}

const char *ud_error_last(void)
{
	return msg_set ? msg : "unknown error";
}

int ud_error_has(void)
{
	return msg_set;
}

void ud_error_clear(void)
{
	msg[0] = '\0';
	msg_set = 0;
}

void ud_error_save(struct ud_error_state *s)
{
	memcpy(s->msg, msg, sizeof(s->msg));
	s->set = msg_set;
}

void ud_error_restore(const struct ud_error_state *s)
{
	memcpy(msg, s->msg, sizeof(msg));
	msg_set = s->set;
}

int ud_error_exit_status(int code)
{
	switch (code) {
	case UD_OK:
		return 0;
	case UD_EUSAGE:
		return 2;
	case UD_EPARTIAL:
		return 3;
	default:
		return 1;
	}
}
