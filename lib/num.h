/*
 * num.h: the one number parser. Numbers come from the command line, from
 * files in the deployment repository (apps/<app>/current), from names
 * (releases/<n>, <app>/v<n>, taps) and from /proc; each is read the same
 * strict way, so " 3", "+3", "3 ", "03" and "3abc" are never release 3.
 */
#ifndef UD_NUM_H
#define UD_NUM_H

#include <stddef.h>

/*
 * Parse the `len` bytes at s as a decimal number in [min, max] (min >= 0):
 * ASCII digits only (no sign, no whitespace, nothing after), no leading
 * zero unless the number is 0, at most 18 digits. Returns 0 and *out, or
 * UD_EINVALID without a message: the caller knows what the number was
 * for and says so.
 */
int ud_num_parse_n(const char *s, size_t len, long long min, long long max,
		   long long *out);
/* The same for a NUL-terminated string. */
int ud_num_parse(const char *s, long long min, long long max,
		 long long *out);

#endif
