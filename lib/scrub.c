#include "scrub.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Variables that hold a secret by name (SPEC §6). */
static const char *const secret_names[] = {
	"DEPLOY_SSH_KEY",
	"DEPLOY_SSH_KEY_B64",
	"DEPLOY_SIGNING_KEY",
	NULL,
};

void ud_scrub_init(struct ud_scrub *s, ud_output_fn out, void *payload)
{
	memset(s, 0, sizeof(*s));
	ud_strvec_init(&s->secrets);
	ud_buf_init(&s->pending, 0);
	s->out = out;
	s->payload = payload;
}

void ud_scrub_free(struct ud_scrub *s)
{
	if (!s)
		return;
	/* The variants are as secret as the value. */
	for (size_t i = 0; i < s->secrets.n; i++)
		explicit_bzero(s->secrets.v[i], strlen(s->secrets.v[i]));
	explicit_bzero(s->pending.ptr, s->pending.size);
	ud_strvec_free(&s->secrets);
	ud_buf_free(&s->pending);
	s->maxlen = 0;
}

int ud_scrub_is_secret_name(const char *name)
{
	for (size_t i = 0; secret_names[i]; i++)
		if (!strcmp(name, secret_names[i]))
			return 1;
	return 0;
}

/* Insert keeping the vector longest first, so a line of a key is never
 * replaced before the whole key it is part of; duplicates dropped. */
static void add_one(struct ud_scrub *s, const char *v, size_t len)
{
	size_t i;

	if (len < UD_SCRUB_MIN)
		return;
	for (i = 0; i < s->secrets.n; i++)
		if (strlen(s->secrets.v[i]) == len &&
		    !memcmp(s->secrets.v[i], v, len))
			return;
	ud_strvec_push(&s->secrets, "");
	free(s->secrets.v[s->secrets.n - 1]);
	for (i = s->secrets.n - 1; i > 0 && strlen(s->secrets.v[i - 1]) < len;
	     i--)
		s->secrets.v[i] = s->secrets.v[i - 1];
	s->secrets.v[i] = ud_strndup(v, len);
	if (len > s->maxlen)
		s->maxlen = len;
}

/* The base64 of v, whole and wrapped at `width` columns (each line). */
static void add_base64(struct ud_scrub *s, const char *v, size_t len)
{
	static const size_t widths[] = { 64, 76 };
	char *b64;
	size_t n;

	if (len > 1024 * 1024)
		return;
	b64 = ud_malloc(4 * ((len + 2) / 3) + 1);
	n = (size_t)EVP_EncodeBlock((unsigned char *)b64,
				    (const unsigned char *)v, (int)len);
	add_one(s, b64, n);
	for (size_t w = 0; w < sizeof(widths) / sizeof(*widths); w++)
		for (size_t off = 0; n > widths[w] && off < n;
		     off += widths[w])
			add_one(s, b64 + off,
				n - off < widths[w] ? n - off : widths[w]);
	explicit_bzero(b64, n);
	free(b64);
}

void ud_scrub_add(struct ud_scrub *s, const char *secret)
{
	size_t len = secret ? strlen(secret) : 0;
	const char *p, *end;

	if (len < UD_SCRUB_MIN)
		return;
	add_one(s, secret, len);
	/* base64 of the text as given, and with/without a final newline:
	 * `base64 <keyfile` and `printf %s "$KEY" | base64` differ. */
	add_base64(s, secret, len);
	if (secret[len - 1] == '\n') {
		add_base64(s, secret, len - 1);
	} else {
		char *nl = ud_asprintf("%s\n", secret);

		add_base64(s, nl, len + 1);
		explicit_bzero(nl, len + 1);
		free(nl);
	}
	for (p = secret; p < secret + len; p = end + 1) {
		size_t l;

		end = strchr(p, '\n');
		if (!end)
			end = secret + len;
		l = (size_t)(end - p);
		if (l && p[l - 1] == '\r')
			l--;
		while (l && (*p == ' ' || *p == '\t')) {
			p++;
			l--;
		}
		while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
			l--;
		if (l >= 5 && !strncmp(p, "-----", 5))
			continue; /* PEM armour, the same in every key */
		if (l != len)
			add_one(s, p, l);
	}
}

void ud_scrub_add_url(struct ud_scrub *s, const char *url)
{
	const char *scheme, *auth, *at, *colon, *slash;

	if (!url || !(scheme = strstr(url, "://")))
		return;
	auth = scheme + 3;
	slash = auth + strcspn(auth, "/?#");
	/* the last '@' before the path: a password may hold an '@' */
	at = NULL;
	for (const char *p = auth; p < slash; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return;
	colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon && at - colon - 1 > 0)
		add_one(s, colon + 1, (size_t)(at - colon - 1));
}

void ud_scrub_add_env(struct ud_scrub *s, char *const *env)
{
	if (!env)
		env = environ;
	for (size_t i = 0; env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		char *name;

		if (!eq)
			continue;
		name = ud_strndup(env[i], (size_t)(eq - env[i]));
		if (ud_scrub_is_secret_name(name))
			ud_scrub_add(s, eq + 1);
		free(name);
		/* Any URL in the value, e.g. DEPLOY_REPO or a list. */
		for (const char *p = eq + 1; (p = strstr(p, "://")); p += 3) {
			const char *start = p;

			while (start > eq + 1 && start[-1] != ' ' &&
			       start[-1] != ',' && start[-1] != ';')
				start--;
			ud_scrub_add_url(s, start);
		}
	}
}

void ud_scrub_buf(const struct ud_scrub *s, struct ud_buf *b)
{
	static const char mark[] = UD_SCRUB_MARK;
	struct ud_buf out = UD_BUF_INIT;
	size_t i = 0;

	if (!s->secrets.n || !b->size)
		return;
	while (i < b->size) {
		size_t k, len = 0;

		for (k = 0; k < s->secrets.n; k++) {
			len = strlen(s->secrets.v[k]);
			if (len <= b->size - i &&
			    !memcmp(b->ptr + i, s->secrets.v[k], len))
				break;
		}
		if (k < s->secrets.n) {
			if (!out.asize)
				ud_buf_put(&out, b->ptr, i);
			ud_buf_put(&out, mark, sizeof(mark) - 1);
			i += len;
			continue;
		}
		if (out.asize)
			ud_buf_putc(&out, b->ptr[i]);
		i++;
	}
	if (!out.asize)
		return;
	explicit_bzero(b->ptr, b->size);
	ud_buf_clear(b);
	ud_buf_put(b, out.ptr, out.size);
	ud_buf_free(&out);
}

static void emit(struct ud_scrub *s, size_t n)
{
	struct ud_buf piece = UD_BUF_INIT;

	ud_buf_put(&piece, s->pending.ptr, n);
	ud_scrub_buf(s, &piece);
	if (s->out && piece.size)
		s->out(piece.ptr, piece.size, s->payload);
	ud_buf_free(&piece);
	memmove(s->pending.ptr, s->pending.ptr + n, s->pending.size - n);
	ud_buf_truncate(&s->pending, s->pending.size - n);
}

void ud_scrub_write(struct ud_scrub *s, const char *data, size_t len)
{
	for (;;) {
		size_t k, n;

		ud_buf_put(&s->pending, data, len);
		len = 0;
		/* through the last end of line: whole lines at once */
		for (k = s->pending.size; k > 0; k--)
			if (s->pending.ptr[k - 1] == '\n' ||
			    s->pending.ptr[k - 1] == '\r')
				break;
		if (k) {
			emit(s, k);
			continue;
		}
		if (s->pending.size <= UD_SCRUB_LINE_MAX)
			return;
		/* A line without end: replace what is found, pass on all but
		 * a tail that may begin a secret the next read completes. */
		ud_scrub_buf(s, &s->pending);
		n = s->maxlen ? s->maxlen - 1 : 0;
		if (s->pending.size > n) {
			if (s->out)
				s->out(s->pending.ptr, s->pending.size - n,
				       s->payload);
			memmove(s->pending.ptr,
				s->pending.ptr + s->pending.size - n, n);
			ud_buf_truncate(&s->pending, n);
		}
		return;
	}
}

void ud_scrub_flush(struct ud_scrub *s)
{
	if (s->pending.size)
		emit(s, s->pending.size);
}
