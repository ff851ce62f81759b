/*
 * proxy_http.c: request and response boundaries of HTTP/1.x (RFC 9112),
 * for the proxy's HTTP mode.
 *
 * Strict on purpose: the proxy acts on a boundary (it may send the next
 * request to another instance), so it must see the message exactly as the
 * backend will. Whatever a lenient server might read differently from us
 * (a bare LF, a folded field, two lengths, an encoding other than
 * chunked) is not parsed leniently here but handed to plain TCP, where the
 * backend alone decides.
 */
#include "proxy_http.h"

#include <string.h>
#include <strings.h>

void proxy_http_request(struct proxy_http *m)
{
	memset(m, 0, sizeof(*m));
}

void proxy_http_response(struct proxy_http *m, int head)
{
	memset(m, 0, sizeof(*m));
	m->response = 1;
	m->head = head;
}

/* RFC 9110 tchar */
static int tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static enum proxy_http_result tunnel(struct proxy_http *m, const char *why)
{
	m->why = why;
	return PROXY_HTTP_TUNNEL;
}

/* The end of the line starting at b (the index of its CR), or -1 when no
 * CRLF is there yet; -2 on a CR or LF that is not part of a CRLF. */
static long line_end(const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (b[i] == '\n')
			return -2;
		if (b[i] == '\r') {
			if (i + 1 == n)
				return -1;
			return b[i + 1] == '\n' ? (long)i : -2;
		}
	}
	return -1;
}

/* A field line's value: no control characters but HTAB. */
static int field_value_ok(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Split "name: value" (no CRLF); value trimmed of OWS. 0 ok, -1 bad. */
static int field_split(const char *l, size_t n, size_t *nlen,
		       const char **v, size_t *vlen)
{
	size_t i = 0, e;

	while (i < n && tchar(l[i]))
		i++;
	if (!i || i == n || l[i] != ':')
		return -1;
	*nlen = i++;
	while (i < n && (l[i] == ' ' || l[i] == '\t'))
		i++;
	e = n;
	while (e > i && (l[e - 1] == ' ' || l[e - 1] == '\t'))
		e--;
	if (!field_value_ok(l + i, e - i))
		return -1;
	*v = l + i;
	*vlen = e - i;
	return 0;
}

static int name_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && !strncasecmp(name, want, nlen);
}

/* Whether the comma-separated list v has token t (case-insensitive). */
static int has_token(const char *v, size_t n, const char *t)
{
	size_t i = 0, s, e, tl = strlen(t);

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(v + s, t, tl))
			return 1;
	}
	return 0;
}

/* "HTTP/1.x": its minor version, or -1. */
static int version(const char *b, size_t n)
{
	if (n != 8 || memcmp(b, "HTTP/1.", 7) || (b[7] != '0' && b[7] != '1'))
		return -1;
	return b[7] - '0';
}

/* Bytes that cannot start an HTTP/1 message are not waited on (a TLS
 * hello would otherwise sit here until the header cap). */
static int plausible_start(const struct proxy_http *m, const char *b,
			   size_t n)
{
	size_t i;

	if (m->response) {
		if (n > 5)
			n = 5;
		return !memcmp(b, "HTTP/", n);
	}
	for (i = 0; i < n && b[i] != ' '; i++)
		if (!tchar(b[i]))
			return 0;
	return 1;
}

/*
 * The header block b[0..n), which ends with the CRLF of its last field
 * (the empty line excluded). Sets the body's framing in m.
 */
static enum proxy_http_result head_parse(struct proxy_http *m, const char *b,
					 size_t n)
{
	const char *l = b, *end = b + n, *sp1, *sp2, *v;
	size_t ll, nlen, vlen, i;
	int minor, close = 0, keep = 0, chunked = 0, te = 0, upgrade = 0;
	int have_len = 0;
	uint64_t len = 0, x;

	ll = (size_t)line_end(l, end - l);
	sp1 = memchr(l, ' ', ll);
	if (!sp1)
		return tunnel(m, "malformed start line");
	if (!m->response) {
		for (i = 0; l + i < sp1; i++)
			if (!tchar(l[i]))
				return tunnel(m, "malformed request line");
		if (sp1 == l)
			return tunnel(m, "malformed request line");
		sp2 = memchr(sp1 + 1, ' ', l + ll - sp1 - 1);
		if (!sp2 || sp2 == sp1 + 1)
			return tunnel(m, "malformed request line");
		for (v = sp1 + 1; v < sp2; v++)
			if ((unsigned char)*v <= 0x20 || *v == 0x7f)
				return tunnel(m, "malformed request target");
		if ((minor = version(sp2 + 1, l + ll - sp2 - 1)) < 0)
			return tunnel(m, "not HTTP/1.x");
		if (sp1 - l == 7 && !memcmp(l, "CONNECT", 7))
			return tunnel(m, "CONNECT");
		m->req_head = sp1 - l == 4 && !memcmp(l, "HEAD", 4);
	} else {
		if ((minor = version(l, sp1 - l)) < 0)
			return tunnel(m, "not HTTP/1.x");
		if (l + ll - sp1 - 1 < 3)
			return tunnel(m, "malformed status line");
		for (i = 1; i <= 3; i++)
			if (sp1[i] < '0' || sp1[i] > '9')
				return tunnel(m, "malformed status line");
		if (l + ll > sp1 + 4 && sp1[4] != ' ')
			return tunnel(m, "malformed status line");
		m->status = (sp1[1] - '0') * 100 + (sp1[2] - '0') * 10 +
			    (sp1[3] - '0');
		if (m->status < 100)
			return tunnel(m, "malformed status line");
		if (!field_value_ok(sp1 + 1, l + ll - sp1 - 1))
			return tunnel(m, "malformed status line");
	}
	for (l += ll + 2; l < end; l += ll + 2) {
		ll = (size_t)line_end(l, end - l);
		if (*l == ' ' || *l == '\t')
			return tunnel(m, "folded header field");
		if (field_split(l, ll, &nlen, &v, &vlen) < 0)
			return tunnel(m, "malformed header field");
		if (name_is(l, nlen, "content-length")) {
			if (!vlen || vlen > 18)
				return tunnel(m, "bad Content-Length");
			for (x = 0, i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return tunnel(m, "bad Content-Length");
				x = x * 10 + (v[i] - '0');
			}
			if (have_len && x != len)
				return tunnel(m, "two Content-Lengths");
			have_len = 1;
			len = x;
		} else if (name_is(l, nlen, "transfer-encoding")) {
			te++;
			chunked = vlen == 7 && !strncasecmp(v, "chunked", 7);
		} else if (name_is(l, nlen, "connection")) {
			close |= has_token(v, vlen, "close");
			keep |= has_token(v, vlen, "keep-alive");
			upgrade |= has_token(v, vlen, "upgrade");
		} else if (name_is(l, nlen, "upgrade")) {
			upgrade = 1;
		}
	}
	if (te && (te > 1 || !chunked))
		return tunnel(m, "a transfer coding other than chunked");
	if (te && have_len)
		return tunnel(m, "both Transfer-Encoding and Content-Length");
	if (te && minor == 0)
		return tunnel(m, "Transfer-Encoding in HTTP/1.0");
	if (m->response && m->status >= 100 && m->status < 200) {
		if (m->status == 101)
			return tunnel(m, "101 Switching Protocols");
		m->state = PH_HEAD; /* an interim answer: the final follows */
		return PROXY_HTTP_MORE;
	}
	if (!m->response && upgrade)
		return tunnel(m, "Upgrade");
	if (close || (minor == 0 && !keep))
		return tunnel(m, "the connection closes after this message");
	if (m->response && (m->head || m->status == 204 || m->status == 304)) {
		m->state = PH_DONE;
		return PROXY_HTTP_DONE;
	}
	if (chunked) {
		m->state = PH_CHUNK_SIZE;
		return PROXY_HTTP_MORE;
	}
	if (!have_len && m->response)
		return tunnel(m, "a body delimited by the connection's close");
	m->left = len;
	m->state = len ? PH_LENGTH : PH_DONE;
	return len ? PROXY_HTTP_MORE : PROXY_HTTP_DONE;
}

/* chunk-size [ chunk-ext ] (no CRLF) */
static int chunk_size(const char *l, size_t n, uint64_t *out)
{
	size_t i;
	uint64_t x = 0;
	int d;

	for (i = 0; i < n && (d = hexval(l[i])) >= 0; i++) {
		if (i == 15)
			return -1; /* past what any body needs */
		x = x * 16 + d;
	}
	if (!i)
		return -1;
	while (i < n && (l[i] == ' ' || l[i] == '\t'))
		i++;
	if (i < n && (l[i] != ';' || !field_value_ok(l + i, n - i)))
		return -1;
	*out = x;
	return 0;
}

enum proxy_http_result proxy_http_feed(struct proxy_http *m, const char *b,
				       size_t n, size_t *used)
{
	enum proxy_http_result r;
	size_t off = 0, take;
	long e;
	const char *hit;

	*used = 0;
	for (;;) {
		const char *s = b + off;
		size_t avail = n - off;

		switch (m->state) {
		case PH_HEAD:
			if (!avail)
				return PROXY_HTTP_MORE;
			if (!plausible_start(m, s, avail))
				return tunnel(m, "not HTTP/1.x");
			hit = memmem(s, avail < PROXY_HTTP_HEADER_MAX ? avail :
				     PROXY_HTTP_HEADER_MAX, "\r\n\r\n", 4);
			if (!hit) {
				if (avail >= PROXY_HTTP_HEADER_MAX)
					return tunnel(m, "header block too "
						      "large");
				/* A bare LF before the end is refused now
				 * rather than at the cap. */
				for (take = 0; take < avail; take++)
					if (s[take] == '\n' &&
					    (!take || s[take - 1] != '\r'))
						return tunnel(m, "bare LF");
				return PROXY_HTTP_MORE;
			}
			take = hit - s + 2;
			for (e = 0; (size_t)e < take; e++)
				if ((s[e] == '\n' && (!e || s[e - 1] != '\r')) ||
				    (s[e] == '\r' && s[e + 1] != '\n') ||
				    !s[e])
					return tunnel(m, "bare CR or LF");
			r = head_parse(m, s, take);
			if (r == PROXY_HTTP_TUNNEL)
				return r;
			off += take + 2;
			*used = off;
			if (r == PROXY_HTTP_DONE)
				return r;
			break;
		case PH_LENGTH:
		case PH_CHUNK_DATA:
			take = avail < m->left ? avail : (size_t)m->left;
			m->left -= take;
			off += take;
			*used = off;
			if (m->left)
				return PROXY_HTTP_MORE;
			if (m->state == PH_LENGTH) {
				m->state = PH_DONE;
				return PROXY_HTTP_DONE;
			}
			m->state = PH_CHUNK_END;
			break;
		case PH_CHUNK_END:
			if (avail < 2)
				return avail && s[0] != '\r' ?
					tunnel(m, "chunk not ended by CRLF") :
					PROXY_HTTP_MORE;
			if (s[0] != '\r' || s[1] != '\n')
				return tunnel(m, "chunk not ended by CRLF");
			off += 2;
			*used = off;
			m->state = PH_CHUNK_SIZE;
			break;
		case PH_CHUNK_SIZE:
			e = line_end(s, avail < PROXY_HTTP_LINE_MAX ? avail :
				     PROXY_HTTP_LINE_MAX);
			if (e == -2 || (e == -1 && avail >= PROXY_HTTP_LINE_MAX))
				return tunnel(m, "malformed chunk size line");
			if (e == -1)
				return PROXY_HTTP_MORE;
			if (chunk_size(s, e, &m->left) < 0)
				return tunnel(m, "malformed chunk size line");
			off += e + 2;
			*used = off;
			m->state = m->left ? PH_CHUNK_DATA : PH_TRAILER;
			break;
		case PH_TRAILER:
			e = line_end(s, avail);
			if (e == -2 || (e == -1 && m->trailer + avail >=
					PROXY_HTTP_HEADER_MAX))
				return tunnel(m, "malformed trailer section");
			if (e == -1)
				return PROXY_HTTP_MORE;
			if (e > 0) {
				size_t nl, vl;
				const char *v;

				if (field_split(s, e, &nl, &v, &vl) < 0)
					return tunnel(m, "malformed trailer "
						      "field");
				m->trailer += e + 2;
				if (m->trailer >= PROXY_HTTP_HEADER_MAX)
					return tunnel(m, "trailer section too "
						      "large");
			}
			off += e + 2;
			*used = off;
			if (!e) {
				m->state = PH_DONE;
				return PROXY_HTTP_DONE;
			}
			break;
		case PH_DONE:
			return PROXY_HTTP_DONE;
		}
	}
}
