#include "num.h"

#include <string.h>

#include "errors.h"

int ud_num_parse_n(const char *s, size_t len, long long min, long long max,
		   long long *out)
{
	long long v = 0;

	/* 18 digits always fit a long long: no overflow to check. */
	if (!s || len == 0 || len > 18 || (s[0] == '0' && len > 1))
		return UD_EINVALID;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return UD_EINVALID;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return UD_EINVALID;
	*out = v;
	return 0;
}

int ud_num_parse(const char *s, long long min, long long max,
		 long long *out)
{
	return ud_num_parse_n(s, s ? strlen(s) : 0, min, max, out);
}
