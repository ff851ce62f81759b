/*
 * console.h: the tail of an instance's console log, for the message that
 * says why a release failed (the pusher sees it, not only the host's
 * operator).
 */
#ifndef UD_CONSOLE_H
#define UD_CONSOLE_H

#include <stddef.h>

#include "run.h"

/* Lines the failure messages quote, and the width each is cut to. */
#define UD_CONSOLE_TAIL_LINES 5
#define UD_CONSOLE_TAIL_WIDTH 200

/* The last n non-blank lines of text[0..len), oldest first, appended to
 * out: control characters (escape sequences, \r) dropped, trailing
 * blanks trimmed, each cut to width bytes with "..." when longer. */
void ud_console_tail_text(struct ud_strvec *out, const char *text,
			  size_t len, size_t n, size_t width);
/* The same from the end of the file at path (its last 64 KiB). A file
 * that cannot be read yields nothing: the tail only adds to a message. */
void ud_console_tail(struct ud_strvec *out, const char *path, size_t n,
		     size_t width);

#endif
