#include "jsonutil.h"
#include "errors.h"

#include <stdlib.h>
#include <string.h>

int ud_json_parse(json_t **out, const char *name, const char *text,
		  size_t len)
{
	json_error_t jerr;
	json_t *v;

	/* A duplicate key is almost always a merge accident; jansson would
	 * silently keep the last one. */
	v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v)
		return ud_error_set(UD_EINVALID, "%s:%d:%d: %s", name,
				    jerr.line, jerr.column, jerr.text);
	*out = v;
	return 0;
}

int ud_json_load_file(json_t **out, const char *path)
{
	struct ud_buf b = UD_BUF_INIT;
	int err;

	/* configuration, not data: refused unread past this */
	b.max = 16 * 1024 * 1024;
	if ((err = ud_buf_read_file(&b, path)) < 0)
		goto done;
	err = ud_json_parse(out, path, b.ptr, b.size);
done:
	ud_buf_free(&b);
	return err;
}

/* "where.key", or "key" at the root; the caller frees it. */
static char *keypath(const char *where, const char *key)
{
	if (!where || !*where)
		return ud_strdup(key);
	return ud_asprintf("%s.%s", where, key);
}

int ud_json_check_keys(const json_t *obj, const char *name, const char *where,
		       const char *const allowed[])
{
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		if (!where || !*where)
			return ud_error_set(UD_EINVALID,
					    "%s: must be a JSON object", name);
		return ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				    name, where);
	}
	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; allowed[i]; i++)
			if (!strcmp(allowed[i], key))
				break;
		if (!allowed[i]) {
			char *path = keypath(where, key);

			ud_error_set(UD_EINVALID, "%s: unknown key '%s'", name,
				     path);
			free(path);
			return UD_EINVALID;
		}
	}
	return 0;
}

/* The value of key, or NULL after setting UD_ENOTFOUND when required. */
static int lookup(json_t **v, const json_t *obj, const char *key,
		  const char *name, const char *where, int required)
{
	char *path;

	*v = json_object_get(obj, key);
	if (*v)
		return 0;
	if (!required)
		return 1;
	path = keypath(where, key);
	ud_error_set(UD_ENOTFOUND, "%s: missing key '%s'", name, path);
	free(path);
	return UD_ENOTFOUND;
}

static int wrong(const char *name, const char *where, const char *key,
		 const char *what)
{
	char *path = keypath(where, key);

	ud_error_set(UD_EINVALID, "%s: %s: must be %s", name, path, what);
	free(path);
	return UD_EINVALID;
}

int ud_json_get_str(const json_t *obj, const char *key, const char *name,
		    const char *where, int required, const char **out)
{
	json_t *v;
	int err;

	if ((err = lookup(&v, obj, key, name, where, required)) != 0)
		return err < 0 ? err : 0;
	if (!json_is_string(v))
		return wrong(name, where, key, "a string");
	*out = json_string_value(v);
	return 0;
}

int ud_json_get_int(const json_t *obj, const char *key, const char *name,
		    const char *where, int required, long long min,
		    long long max, long long *out)
{
	json_int_t n;
	json_t *v;
	int err;

	if ((err = lookup(&v, obj, key, name, where, required)) != 0)
		return err < 0 ? err : 0;
	n = json_is_integer(v) ? json_integer_value(v) : 0;
	if (!json_is_integer(v) || n < min || n > max) {
		char *what = ud_asprintf("an integer from %lld to %lld", min,
					 max);

		wrong(name, where, key, what);
		free(what);
		return UD_EINVALID;
	}
	*out = n;
	return 0;
}

int ud_json_get_bool(const json_t *obj, const char *key, const char *name,
		     const char *where, int required, int *out)
{
	json_t *v;
	int err;

	if ((err = lookup(&v, obj, key, name, where, required)) != 0)
		return err < 0 ? err : 0;
	if (!json_is_boolean(v))
		return wrong(name, where, key, "true or false");
	*out = json_is_true(v);
	return 0;
}

struct dump {
	struct ud_buf *out;
	int err;
};

static int dump_cb(const char *data, size_t len, void *payload)
{
	struct dump *d = payload;

	if ((d->err = ud_buf_put(d->out, data, len)) < 0)
		return -1;
	return 0;
}

int ud_json_format(struct ud_buf *out, const json_t *v)
{
	struct dump d = { out, 0 };

	if (json_dump_callback(v, dump_cb, &d,
			       JSON_INDENT(2) | JSON_PRESERVE_ORDER |
				       JSON_ENCODE_ANY) < 0) {
		if (d.err < 0)
			return d.err; /* the buffer's cap, message set */
		return ud_error_set(UD_ERROR, "cannot serialise JSON");
	}
	return ud_buf_putc(out, '\n');
}
