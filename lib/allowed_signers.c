/*
 * allowed_signers.c: OpenSSH's allowed signers file (see
 * allowed_signers.h), read as ssh-keygen reads it: per line the
 * principals (a pattern list, quoted when it holds spaces), the options
 * when the next word is not a key type, the key type and its base64.
 */
#include "allowed_signers.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "errors.h"
#include "strvec.h"

#define MAX_FILE (1024 * 1024)

struct entry {
	char *principals;
	struct ud_strvec namespaces; /* empty: any */
	time_t valid_after, valid_before; /* 0: unbounded */
	int cert_authority;
	struct ud_sshkey *key;
};

struct ud_allowed_signers {
	char *name;
	struct entry *v;
	size_t n;
};

/* A line being read, for messages with its line and column. */
struct cursor {
	const char *name;
	size_t lineno;
	const char *line, *p, *end;
};

static int fail(const struct cursor *c, const char *at, const char *what)
{
	return ud_error_set(UD_EINVALID, "%s:%zu:%zu: %s", c->name, c->lineno,
			    (size_t)(at - c->line) + 1, what);
}

static void skip_space(struct cursor *c)
{
	while (c->p < c->end && isspace((unsigned char)*c->p))
		c->p++;
}

/* The next word: up to whitespace outside double quotes. */
static int word(struct cursor *c, const char **w, size_t *n)
{
	int quoted = 0;

	skip_space(c);
	*w = c->p;
	while (c->p < c->end &&
	       (quoted || !isspace((unsigned char)*c->p))) {
		if (*c->p == '"')
			quoted = !quoted;
		c->p++;
	}
	*n = (size_t)(c->p - *w);
	if (quoted)
		return fail(c, *w, "unterminated quote");
	return *n ? 0 : fail(c, *w, "missing field");
}

static int is_key_type(const char *w, size_t n)
{
	static const char *const prefixes[] = { "ssh-", "ecdsa-sha2-",
						"sk-ssh-", "sk-ecdsa-" };
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (n > strlen(prefixes[i]) &&
		    !strncmp(w, prefixes[i], strlen(prefixes[i])))
			return 1;
	return 0;
}

/* YYYYMMDD[HHMM[SS]][Z]: UTC with Z, else local time (as ssh-keygen). */
static int parse_time(const char *s, size_t n, time_t *out)
{
	struct tm tm;
	int utc = n > 0 && (s[n - 1] == 'Z' || s[n - 1] == 'z');
	char d[15] = { 0 };
	size_t i;

	if (utc)
		n--;
	if (n != 8 && n != 12 && n != 14)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		d[i] = s[i];
	}
	memset(&tm, 0, sizeof(tm));
	{
		char f[5];

		memcpy(f, d, 4), f[4] = '\0', tm.tm_year = atoi(f) - 1900;
		memcpy(f, d + 4, 2), f[2] = '\0', tm.tm_mon = atoi(f) - 1;
		memcpy(f, d + 6, 2), f[2] = '\0', tm.tm_mday = atoi(f);
		if (n >= 12) {
			memcpy(f, d + 8, 2), f[2] = '\0', tm.tm_hour = atoi(f);
			memcpy(f, d + 10, 2), f[2] = '\0', tm.tm_min = atoi(f);
		}
		if (n == 14)
			memcpy(f, d + 12, 2), f[2] = '\0', tm.tm_sec = atoi(f);
	}
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_isdst = -1;
	*out = utc ? timegm(&tm) : mktime(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

/* The value of opt="..." (quotes required, as ssh-keygen). */
static int quoted_value(struct cursor *c, const char *at, const char **v,
			size_t *n)
{
	const char *q;

	if (c->p >= c->end || *c->p != '"')
		return fail(c, at, "option value must be in double quotes");
	q = memchr(c->p + 1, '"', (size_t)(c->end - c->p - 1));
	if (!q)
		return fail(c, at, "unterminated quote");
	*v = c->p + 1;
	*n = (size_t)(q - *v);
	c->p = q + 1;
	return 0;
}

static int parse_options(struct cursor *c, struct entry *e, const char *w,
			 size_t n)
{
	struct cursor o = *c;
	const char *v;
	size_t vn;
	int err;

	o.p = w;
	o.end = w + n;
	while (o.p < o.end) {
		const char *at = o.p;

		if (!strncasecmp(o.p, "cert-authority", 14) &&
		    (o.p + 14 == o.end || o.p[14] == ',')) {
			e->cert_authority = 1;
			o.p += 14;
		} else if (!strncasecmp(o.p, "namespaces=", 11)) {
			const char *s;

			o.p += 11;
			if ((err = quoted_value(&o, at, &v, &vn)) < 0)
				return err;
			for (s = v; s < v + vn;) {
				size_t k = strcspn(s, ",");

				if (k > (size_t)(v + vn - s))
					k = (size_t)(v + vn - s);
				if (k)
					ud_strvec_pushf(&e->namespaces, "%.*s",
							(int)k, s);
				s += k + 1;
			}
			if (!e->namespaces.n)
				return fail(c, at, "empty namespaces");
		} else if (!strncasecmp(o.p, "valid-after=", 12) ||
			   !strncasecmp(o.p, "valid-before=", 13)) {
			int after = tolower((unsigned char)o.p[6]) == 'a';

			o.p += after ? 12 : 13;
			if ((err = quoted_value(&o, at, &v, &vn)) < 0)
				return err;
			if (parse_time(v, vn, after ? &e->valid_after :
						      &e->valid_before) < 0)
				return fail(c, at,
					    "bad time (YYYYMMDD[HHMM[SS]][Z])");
		} else {
			return fail(c, at, "unknown option");
		}
		if (o.p < o.end) {
			if (*o.p != ',')
				return fail(c, o.p, "expected ',' between "
						    "options");
			o.p++;
		}
	}
	return 0;
}

static void entry_free(struct entry *e)
{
	free(e->principals);
	ud_strvec_free(&e->namespaces);
	ud_sshkey_free(e->key);
}

static int parse_line(struct cursor *c, struct entry *e)
{
	struct ud_buf blob = UD_BUF_INIT;
	const char *w, *type;
	size_t n, tn;
	int err;

	if ((err = word(c, &w, &n)) < 0)
		return err;
	if (*w == '"') {
		if (n < 3 || w[n - 1] != '"')
			return fail(c, w, "bad quoted principals");
		e->principals = ud_strndup(w + 1, n - 2);
	} else {
		e->principals = ud_strndup(w, n);
	}
	if ((err = word(c, &type, &tn)) < 0)
		return fail(c, c->p, "missing key type");
	if (!is_key_type(type, tn)) {
		if ((err = parse_options(c, e, type, tn)) < 0)
			return err;
		if (word(c, &type, &tn) < 0)
			return fail(c, c->p, "missing key type");
		if (!is_key_type(type, tn))
			return fail(c, type, "not a key type");
	}
	if (word(c, &w, &n) < 0)
		return fail(c, c->p, "missing key");
	if (ud_base64_decode(&blob, w, n) < 0 ||
	    ud_sshkey_from_blob(&e->key, blob.ptr, blob.size) < 0) {
		err = fail(c, w, "malformed key");
		goto done;
	}
	if (strlen(ud_sshkey_type(e->key)) != tn ||
	    strncmp(ud_sshkey_type(e->key), type, tn)) {
		err = fail(c, type, "the key type does not match the key");
		goto done;
	}
	err = 0;
done:
	ud_buf_free(&blob);
	return err;
}

int ud_allowed_signers_parse(struct ud_allowed_signers **out,
			     const char *text, size_t len, const char *name)
{
	struct ud_allowed_signers *s = ud_calloc(1, sizeof(*s));
	struct cursor c = { name, 0, NULL, NULL, NULL };
	const char *p = text, *end = text + len;
	int err = 0;

	*out = NULL;
	s->name = ud_strdup(name);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		struct entry e;

		c.lineno++;
		c.line = c.p = p;
		c.end = nl ? nl : end;
		p = nl ? nl + 1 : end;
		skip_space(&c);
		if (c.p == c.end || *c.p == '#')
			continue;
		if (memchr(c.line, '\0', (size_t)(c.end - c.line))) {
			err = fail(&c, c.line, "NUL byte");
			goto done;
		}
		memset(&e, 0, sizeof(e));
		if ((err = parse_line(&c, &e)) < 0) {
			entry_free(&e);
			goto done;
		}
		s->v = ud_realloc(s->v, (s->n + 1) * sizeof(*s->v));
		s->v[s->n++] = e;
	}
	*out = s;
	s = NULL;
done:
	ud_allowed_signers_free(s);
	return err;
}

int ud_allowed_signers_load(struct ud_allowed_signers **out,
			    const char *path)
{
	struct ud_buf text = UD_BUF_INIT;
	int err;

	*out = NULL;
	ud_buf_init(&text, MAX_FILE);
	if ((err = ud_buf_read_file(&text, path)) < 0) {
		ud_error_prefix("allowed_signers");
		goto done;
	}
	err = ud_allowed_signers_parse(out, text.ptr, text.size, path);
done:
	ud_buf_free(&text);
	return err;
}

void ud_allowed_signers_free(struct ud_allowed_signers *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		entry_free(&s->v[i]);
	free(s->v);
	free(s->name);
	free(s);
}

size_t ud_allowed_signers_count(const struct ud_allowed_signers *s)
{
	return s->n;
}

static int namespace_allowed(const struct entry *e, const char *ns)
{
	size_t i;

	if (!e->namespaces.n)
		return 1;
	for (i = 0; i < e->namespaces.n; i++)
		if (fnmatch(e->namespaces.v[i], ns, 0) == 0)
			return 1;
	return 0;
}

int ud_allowed_signers_check(const struct ud_allowed_signers *s,
			     const struct ud_sshkey *key, const char *ns,
			     time_t when, const char **principal)
{
	const char *why = NULL;
	char *fp = NULL;
	size_t i;
	int err;

	for (i = 0; i < s->n; i++) {
		const struct entry *e = &s->v[i];

		if (!ud_sshkey_equal(e->key, key))
			continue;
		if (e->cert_authority)
			why = "listed only as a cert-authority (certificates "
			      "are not supported)";
		else if (!namespace_allowed(e, ns))
			why = "not allowed in this namespace";
		else if (e->valid_after && when < e->valid_after)
			why = "signed before its valid-after";
		else if (e->valid_before && when > e->valid_before)
			why = "signed after its valid-before";
		else {
			if (principal)
				*principal = e->principals;
			return 0;
		}
	}
	fp = ud_sshkey_fingerprint(key);
	err = ud_error_set(UD_EAUTH, "signed by %s %s, %s", ud_sshkey_type(key),
			   fp, why ? why : "which is not in allowed_signers");
	free(fp);
	return err;
}
