/* strvec.c: NULL-terminated vectors of owned strings (see strvec.h). */
#include "strvec.h"

#include <stdarg.h>
#include <stdlib.h>

#include "buf.h"

void ud_strvec_init(struct ud_strvec *sv)
{
	sv->n = 0;
	sv->alloc = 4;
	sv->v = ud_calloc(sv->alloc, sizeof(char *));
}

static void strvec_push_owned(struct ud_strvec *sv, char *s)
{
	if (!sv->v)
		ud_strvec_init(sv);
	if (sv->n + 2 > sv->alloc) {
		sv->alloc = sv->alloc * 2 + 2;
		sv->v = ud_realloc(sv->v, sv->alloc * sizeof(char *));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void ud_strvec_push(struct ud_strvec *sv, const char *s)
{
	strvec_push_owned(sv, ud_strdup(s));
}

void ud_strvec_pushf(struct ud_strvec *sv, const char *fmt, ...)
{
	struct ud_buf b = UD_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	ud_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	strvec_push_owned(sv, ud_buf_detach(&b));
}

void ud_strvec_free(struct ud_strvec *sv)
{
	size_t i;

	if (!sv)
		return;
	for (i = 0; sv->v && i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->alloc = 0;
}
