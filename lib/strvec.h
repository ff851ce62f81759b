/*
 * strvec.h: a NULL-terminated vector of owned strings (git's strvec.h),
 * for argv and environments (run.h) and lists of names.
 */
#ifndef UD_STRVEC_H
#define UD_STRVEC_H

#include <stddef.h>

/* A NULL-terminated vector of owned strings (git's strvec). */
struct ud_strvec {
	char **v; /* never NULL after init; v[n] == NULL */
	size_t n, alloc;
};
#define UD_STRVEC_INIT { NULL, 0, 0 }
void ud_strvec_init(struct ud_strvec *sv);
void ud_strvec_push(struct ud_strvec *sv, const char *s);
void ud_strvec_pushf(struct ud_strvec *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ud_strvec_free(struct ud_strvec *sv); /* accepts NULL; re-inits */

#endif
