/*
 * buf.h: the one growable byte buffer (git strbuf.h's invariants).
 *
 * - `ptr` is never NULL and always NUL-terminated, so a buffer can be used
 *   as a C string at any time.
 * - UD_BUF_INIT is a valid empty buffer that owns no memory.
 * - `max`, when non-zero, caps `size`: growing past it fails with
 *   UD_ETOOBIG (curl's DYNBUF). Set it on anything fed from the network or
 *   from a child process.
 * - ud_buf_detach() hands the memory to the caller and resets the buffer.
 */
#ifndef UD_BUF_H
#define UD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct ud_buf {
	char *ptr;
	size_t size;  /* bytes in use, excluding the NUL */
	size_t asize; /* bytes allocated; 0 while ptr is the shared empty */
	size_t max;   /* 0: unlimited */
};

extern char ud_buf__empty[];
#define UD_BUF_INIT { ud_buf__empty, 0, 0, 0 }

void ud_buf_init(struct ud_buf *b, size_t max);
void ud_buf_free(struct ud_buf *b);        /* accepts NULL */
void ud_buf_clear(struct ud_buf *b);       /* size = 0, keeps memory */
char *ud_buf_detach(struct ud_buf *b);     /* caller frees; never NULL */

/* 0, or UD_ETOOBIG past `max` (message set). Abort on out-of-memory. */
int ud_buf_grow(struct ud_buf *b, size_t extra);
int ud_buf_put(struct ud_buf *b, const void *data, size_t len);
int ud_buf_puts(struct ud_buf *b, const char *s);
int ud_buf_putc(struct ud_buf *b, char c);
int ud_buf_printf(struct ud_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ud_buf_vprintf(struct ud_buf *b, const char *fmt, va_list ap);
void ud_buf_truncate(struct ud_buf *b, size_t len);
void ud_buf_rtrim(struct ud_buf *b); /* drop trailing whitespace */

/* Append a whole file. UD_ENOTFOUND if it does not exist, UD_ETOOBIG past
 * b->max, UD_ERROR otherwise; the message names the path. */
int ud_buf_read_file(struct ud_buf *b, const char *path);

/* Write `len` bytes to `path` atomically: temp file beside it, fsync,
 * rename, fsync the directory. `mode` as for open(2). */
int ud_write_file_atomic(const char *path, const void *data, size_t len,
			 int mode);

/* xmalloc-style helpers: abort with a message on out-of-memory. */
void *ud_malloc(size_t n);
void *ud_calloc(size_t n, size_t size);
void *ud_realloc(void *p, size_t n);
char *ud_strdup(const char *s);
char *ud_strndup(const char *s, size_t n);
char *ud_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mkdir -p with `mode`; 0 or UD_ERROR (message names the path). */
int ud_mkdir_p(const char *path, int mode);
/* rm -rf; 0 if gone afterwards (also if it never existed). */
int ud_rm_rf(const char *path);

#endif
