#include "buf.h"
#include "errors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char ud_buf__empty[1];

static void oom(size_t n)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
	abort();
}

void *ud_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *ud_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *ud_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *ud_strdup(const char *s)
{
	return ud_strndup(s, strlen(s));
}

char *ud_strndup(const char *s, size_t n)
{
	char *p = ud_malloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *ud_asprintf(const char *fmt, ...)
{
	struct ud_buf b = UD_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	ud_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return ud_buf_detach(&b);
}

void ud_buf_init(struct ud_buf *b, size_t max)
{
	b->ptr = ud_buf__empty;
	b->size = 0;
	b->asize = 0;
	b->max = max;
}

void ud_buf_free(struct ud_buf *b)
{
	if (!b)
		return;
	if (b->asize)
		free(b->ptr);
	ud_buf_init(b, b->max);
}

void ud_buf_clear(struct ud_buf *b)
{
	b->size = 0;
	b->ptr[0] = '\0';
}

char *ud_buf_detach(struct ud_buf *b)
{
	char *p = b->asize ? b->ptr : ud_strdup("");

	ud_buf_init(b, b->max);
	return p;
}

int ud_buf_grow(struct ud_buf *b, size_t extra)
{
	size_t want;

	if (b->max && (extra > b->max || b->size > b->max - extra))
		return ud_error_set(UD_ETOOBIG,
				    "data exceeds the %zu-byte limit", b->max);
	if (extra > SIZE_MAX - b->size - 1)
		oom(SIZE_MAX);
	want = b->size + extra + 1;
	if (want <= b->asize)
		return 0;
	if (want < b->asize * 3 / 2)
		want = b->asize * 3 / 2;
	if (want < 64)
		want = 64;
	if (b->asize) {
		b->ptr = ud_realloc(b->ptr, want);
	} else {
		b->ptr = ud_malloc(want);
		b->ptr[0] = '\0';
	}
	b->asize = want;
	return 0;
}

int ud_buf_put(struct ud_buf *b, const void *data, size_t len)
{
	const char *src = data;
	int inside = b->asize && src >= b->ptr && src < b->ptr + b->asize;
	size_t off = inside ? (size_t)(src - b->ptr) : 0;
	int err;

	if (len == 0)
		return 0;
	if ((err = ud_buf_grow(b, len)) < 0)
		return err;
	/* Appending a buffer to itself: growing may have moved it. */
	if (inside)
		src = b->ptr + off;
	memmove(b->ptr + b->size, src, len);
	b->size += len;
	b->ptr[b->size] = '\0';
	return 0;
}

int ud_buf_puts(struct ud_buf *b, const char *s)
{
	return ud_buf_put(b, s, strlen(s));
}

int ud_buf_putc(struct ud_buf *b, char c)
{
	return ud_buf_put(b, &c, 1);
}

int ud_buf_vprintf(struct ud_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, err;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return ud_error_set(UD_ERROR, "bad format string");
	if ((err = ud_buf_grow(b, (size_t)n)) < 0)
		return err;
	vsnprintf(b->ptr + b->size, (size_t)n + 1, fmt, ap);
	b->size += (size_t)n;
	return 0;
}

int ud_buf_printf(struct ud_buf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = ud_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

void ud_buf_truncate(struct ud_buf *b, size_t len)
{
	if (len >= b->size)
		return;
	b->size = len;
	b->ptr[len] = '\0';
}

void ud_buf_rtrim(struct ud_buf *b)
{
	while (b->size && strchr(" \t\r\n", b->ptr[b->size - 1]))
		b->size--;
	if (b->asize)
		b->ptr[b->size] = '\0';
}

int ud_buf_read_file(struct ud_buf *b, const char *path)
{
	char chunk[65536];
	struct stat st;
	ssize_t n;
	int fd, err = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ud_error_set_errno(errno == ENOENT ? UD_ENOTFOUND
							  : UD_ERROR,
					  "cannot read %s", path);
	/* Refused before reading when its size already says so; the cap
	 * below still holds for what stat cannot size (a pipe, /proc). */
	if (b->max && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    ((uintmax_t)st.st_size > b->max ||
	     b->size > b->max - (size_t)st.st_size)) {
		err = ud_error_set(UD_ETOOBIG,
				   "%s is %jd bytes, more than the %zu-byte "
				   "limit; nothing of it was read",
				   path, (intmax_t)st.st_size,
				   b->max - b->size);
		close(fd);
		return err;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = ud_error_set_errno(UD_ERROR, "cannot read %s",
						 path);
			break;
		}
		if ((err = ud_buf_put(b, chunk, (size_t)n)) < 0) {
			ud_error_prefix("%s", path);
			break;
		}
	}
	close(fd);
	return err;
}

static int fsync_dir_of(const char *path)
{
	char *dir = ud_strdup(path), *slash = strrchr(dir, '/');
	int fd;

	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	fsync(fd);
	close(fd);
	return 0;
}

int ud_write_file_atomic(const char *path, const void *data, size_t len,
			 int mode)
{
	char *tmp = ud_asprintf("%s.tmp.%ld", path, (long)getpid());
	const char *p = data;
	int fd, err = 0;

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) <
	    0) {
		err = ud_error_set_errno(UD_ERROR, "cannot create %s", tmp);
		goto done;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = ud_error_set_errno(UD_ERROR, "cannot write %s",
						 tmp);
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (!err && fsync(fd) < 0)
		err = ud_error_set_errno(UD_ERROR, "cannot sync %s", tmp);
	if (close(fd) < 0 && !err)
		err = ud_error_set_errno(UD_ERROR, "cannot close %s", tmp);
	if (!err && rename(tmp, path) < 0)
		err = ud_error_set_errno(UD_ERROR, "cannot rename %s to %s",
					 tmp, path);
	if (err)
		unlink(tmp);
	else
		fsync_dir_of(path);
done:
	free(tmp);
	return err;
}

int ud_mkdir_p(const char *path, int mode)
{
	char *p = ud_strdup(path), *s;
	int err = 0;

	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST) {
			err = ud_error_set_errno(UD_ERROR, "cannot create %s",
						 p);
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return err;
}

int ud_rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int err = 0;

	if (lstat(path, &st) < 0)
		return errno == ENOENT
			       ? 0
			       : ud_error_set_errno(UD_ERROR,
						    "cannot remove %s", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return ud_error_set_errno(UD_ERROR,
						  "cannot remove %s", path);
		return 0;
	}
	chmod(path, 0700); /* a build may leave read-only dirs */
	if (!(d = opendir(path)))
		return ud_error_set_errno(UD_ERROR, "cannot open %s", path);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *child = ud_asprintf("%s/%s", path, de->d_name);
		if (ud_rm_rf(child) < 0)
			err = UD_ERROR;
		free(child);
	}
	closedir(d);
	if (!err && rmdir(path) < 0 && errno != ENOENT)
		err = ud_error_set_errno(UD_ERROR, "cannot remove %s", path);
	return err;
}
