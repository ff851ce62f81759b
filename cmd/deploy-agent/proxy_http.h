/*
 * proxy_http.h: where HTTP/1.x messages end, for the proxy's HTTP mode.
 *
 * The proxy routes each request of a kept-alive connection on its own (the
 * next request after a swap goes to the new release), so it must know where
 * every request and every response ends. It only finds boundaries: it
 * never rewrites a byte, and anything it cannot follow with certainty is
 * reported as PROXY_HTTP_TUNNEL, and the connection falls back to plain TCP
 * forwarding (whatever the backend makes of the bytes, they all go to it).
 *
 * A message is fed in pieces as it arrives. The header block and every
 * line of a chunked body (size lines, trailers) are taken only whole: the
 * caller keeps the bytes not yet used and feeds them again with more.
 * Body bytes are used as they come.
 */
#ifndef UD_AGENT_PROXY_HTTP_H
#define UD_AGENT_PROXY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define PROXY_HTTP_HEADER_MAX (32 * 1024) /* request/status line + fields */
#define PROXY_HTTP_LINE_MAX 4096          /* a chunk-size line */

enum proxy_http_result {
	PROXY_HTTP_MORE,   /* all of it is this message's; feed more */
	PROXY_HTTP_DONE,   /* the message ended (at *used) */
	PROXY_HTTP_TUNNEL, /* not one we can follow: plain TCP from here */
};

enum proxy_http_state {
	PH_HEAD, PH_LENGTH, PH_CHUNK_SIZE, PH_CHUNK_DATA, PH_CHUNK_END,
	PH_TRAILER, PH_DONE,
};

struct proxy_http {
	int response;      /* parses a response (else a request) */
	int head;          /* response: to a HEAD request (no body) */
	enum proxy_http_state state;
	uint64_t left;     /* bytes of the body or the chunk still to come */
	size_t trailer;    /* bytes of trailer fields so far */
	int req_head;      /* request: its method is HEAD */
	int status;        /* response: its (final) status */
	const char *why;   /* PROXY_HTTP_TUNNEL: the reason, for the log */
};

/* A parser for the next request, or for the response to a request
 * (head: that request was HEAD). */
void proxy_http_request(struct proxy_http *m);
void proxy_http_response(struct proxy_http *m, int head);

/* Feed n bytes; *used: how many belong to this message (and are done
 * with: the caller may send them). PROXY_HTTP_MORE with *used < n: the
 * rest is a header or line not yet whole; keep it and feed it again. After
 * PROXY_HTTP_DONE the bytes past *used belong to the next message. */
enum proxy_http_result proxy_http_feed(struct proxy_http *m, const char *b,
				       size_t n, size_t *used);

#endif
