/*
 * jsonutil.h: strict JSON reading over jansson, with errors a user can act
 * on: "<file>:<line>:<column>: <what>" for syntax, "<file>: <key.path>:
 * <what>" for a wrong, missing or unknown key.
 */
#ifndef UD_JSONUTIL_H
#define UD_JSONUTIL_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"

/* Parse one JSON value. `name` is the file name used in messages.
 * UD_EINVALID with "name:line:column: text" from json_error_t. */
int ud_json_parse(json_t **out, const char *name, const char *text,
		  size_t len);
int ud_json_load_file(json_t **out, const char *path);

/* UD_EINVALID "<name>: unknown key '<where>.<key>'" for the first key of
 * `obj` not in the NULL-terminated `allowed`. `where` is the key path of
 * obj ("" for the root, "build", "apps.hello"). */
int ud_json_check_keys(const json_t *obj, const char *name, const char *where,
		       const char *const allowed[]);

/* Typed getters. A missing key yields UD_ENOTFOUND when `required` and
 * leaves *out untouched otherwise; a wrong type or range yields
 * UD_EINVALID "<name>: <where>.<key>: must be ...". */
int ud_json_get_str(const json_t *obj, const char *key, const char *name,
		    const char *where, int required, const char **out);
int ud_json_get_int(const json_t *obj, const char *key, const char *name,
		    const char *where, int required, long long min,
		    long long max, long long *out);
int ud_json_get_bool(const json_t *obj, const char *key, const char *name,
		     const char *where, int required, int *out);

/* Serialise with 2-space indent, keys in insertion order, trailing
 * newline: the form written into the deployment repository. */
int ud_json_format(struct ud_buf *out, const json_t *v);

#endif
