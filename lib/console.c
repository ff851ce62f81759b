/* console.c: the tail of an instance's console log. */
#include "console.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

/* Enough for a few screens of output: a long line past it is cut anyway. */
#define TAIL_READ (64 * 1024)

/* One line, cleaned and cut; NULL when nothing printable is left. */
static char *clean_line(const char *s, size_t len, size_t width)
{
	struct ud_buf b = UD_BUF_INIT;
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\t')
			c = ' ';
		/* A VT100 escape sequence: skip to its final byte. */
		if (c == 0x1b && i + 1 < len && s[i + 1] == '[') {
			for (i += 2; i < len && !(s[i] >= 0x40 && s[i] <= 0x7e);
			     i++)
				;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			continue;
		ud_buf_putc(&b, (char)c);
	}
	ud_buf_rtrim(&b);
	if (!b.size || strspn(b.ptr, " ") == b.size) {
		ud_buf_free(&b);
		return NULL;
	}
	if (width > 3 && b.size > width) {
		ud_buf_truncate(&b, width - 3);
		ud_buf_puts(&b, "...");
	}
	return ud_buf_detach(&b);
}

void ud_console_tail_text(struct ud_strvec *out, const char *text,
			  size_t len, size_t n, size_t width)
{
	char **got = ud_calloc(n + 1, sizeof(*got));
	size_t end = len, k = 0, i;

	/* Walk lines backwards from the end until n are kept. */
	while (k < n && end > 0) {
		size_t start = end;
		char *line;

		while (start > 0 && text[start - 1] != '\n')
			start--;
		if ((line = clean_line(text + start, end - start, width)))
			got[k++] = line;
		end = start > 0 ? start - 1 : 0;
	}
	for (i = k; i-- > 0;) {
		ud_strvec_push(out, got[i]);
		free(got[i]);
	}
	free(got);
}

void ud_console_tail(struct ud_strvec *out, const char *path, size_t n,
		     size_t width)
{
	struct stat sb;
	char *text;
	off_t from;
	ssize_t got;
	int fd;

	if (!path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (fstat(fd, &sb) < 0 || sb.st_size <= 0) {
		close(fd);
		return;
	}
	from = sb.st_size > TAIL_READ ? sb.st_size - TAIL_READ : 0;
	text = ud_malloc(TAIL_READ);
	got = pread(fd, text, TAIL_READ, from);
	close(fd);
	if (got > 0) {
		size_t skip = 0;

		/* Started mid-line: that partial line is not quoted. */
		if (from > 0)
			while (skip < (size_t)got && text[skip++] != '\n')
				;
		ud_console_tail_text(out, text + skip, (size_t)got - skip, n,
				     width);
	}
	free(text);
}
