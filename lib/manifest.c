#include "manifest.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct ud_manifest *ud_manifest_new(void)
{
	struct ud_manifest *m = ud_calloc(1, sizeof(*m));

	/* Scalars only, so that a caller may overwrite run or health with a
	 * struct copy without leaking. */
	m->run.memory_mb = 64;
	m->health.kind = UD_HEALTH_TCP;
	m->health.timeout_s = 20;
	m->health.rollback = 1;
	return m;
}

static void image_clear(struct ud_manifest_image *img)
{
	free(img->target);
	free(img->arch);
	free(img->file);
}

void ud_manifest_free(struct ud_manifest *m)
{
	size_t i;

	if (!m)
		return;
	free(m->app);
	free(m->created_at);
	free(m->source.ref);
	free(m->source.subject);
	free(m->source.author);
	free(m->build.command);
	free(m->build.builder);
	for (i = 0; i < m->nimages; i++)
		image_clear(&m->images[i]);
	free(m->images);
	ud_run_spec_free(&m->run);
	ud_health_free(&m->health);
	free(m);
}

static char *dup_or_null(const char *s)
{
	return s ? ud_strdup(s) : NULL;
}

void ud_manifest_add_image(struct ud_manifest *m,
			   const struct ud_manifest_image *img)
{
	struct ud_manifest_image *dst;

	m->images = ud_realloc(m->images,
			       (m->nimages + 1) * sizeof(*m->images));
	dst = &m->images[m->nimages++];
	*dst = *img;
	dst->target = dup_or_null(img->target);
	dst->arch = dup_or_null(img->arch);
	dst->file = dup_or_null(img->file);
}

static void strvec_copy(struct ud_strvec *dst, const struct ud_strvec *src)
{
	size_t i;

	ud_strvec_init(dst);
	for (i = 0; i < src->n; i++)
		ud_strvec_push(dst, src->v[i]);
}

struct ud_manifest *ud_manifest_dup(const struct ud_manifest *m)
{
	struct ud_manifest *d = ud_calloc(1, sizeof(*d));
	size_t i;

	d->app = dup_or_null(m->app);
	d->release = m->release;
	d->created_at = dup_or_null(m->created_at);
	memcpy(d->source.commit, m->source.commit, sizeof(d->source.commit));
	d->source.ref = dup_or_null(m->source.ref);
	d->source.subject = dup_or_null(m->source.subject);
	d->source.author = dup_or_null(m->source.author);
	d->build.command = dup_or_null(m->build.command);
	d->build.duration_ms = m->build.duration_ms;
	d->build.builder = dup_or_null(m->build.builder);
	for (i = 0; i < m->nimages; i++)
		ud_manifest_add_image(d, &m->images[i]);
	d->rollback_of = m->rollback_of;
	d->run.port = m->run.port;
	d->run.memory_mb = m->run.memory_mb;
	d->run.restart = m->run.restart;
	strvec_copy(&d->run.args, &m->run.args);
	strvec_copy(&d->run.env, &m->run.env);
	d->health = m->health;
	d->health.http_path = dup_or_null(m->health.http_path);
	d->health.serial_regex = dup_or_null(m->health.serial_regex);
	return d;
}

const struct ud_manifest_image *
ud_manifest_pick(const struct ud_manifest *m, const char *target,
		 const char *arch)
{
	size_t i;

	for (i = 0; i < m->nimages; i++)
		if (!strcmp(m->images[i].target, target) &&
		    !strcmp(m->images[i].arch, arch))
			return &m->images[i];
	return NULL;
}

static int is_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[n] == '\0';
}

/* "2026-11-26T12:00:00Z": the form ud_utc_now() writes. */
static int is_utc_time(const char *s)
{
	static const char form[] = "dddd-dd-ddTdd:dd:ddZ";
	size_t i;

	if (strlen(s) != sizeof(form) - 1)
		return 0;
	for (i = 0; form[i]; i++) {
		if (form[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9')
				   : s[i] != form[i])
			return 0;
	}
	return 1;
}

static int compression_from_name(enum ud_compression *out, const char *s)
{
	int c;

	for (c = UD_COMP_NONE; c <= UD_COMP_ZSTD; c++) {
		if (!strcmp(ud_compression_name(c), s)) {
			*out = c;
			return 0;
		}
	}
	return UD_EINVALID;
}

static int get_strdup(char **dst, const json_t *obj, const char *key,
		      const char *name, const char *where)
{
	const char *s = NULL;
	int err;

	if ((err = ud_json_get_str(obj, key, name, where, 1, &s)) < 0)
		return err;
	*dst = ud_strdup(s);
	return 0;
}

static int get_object(json_t **out, const json_t *root, const char *key,
		      const char *name)
{
	if (!(*out = json_object_get(root, key)))
		return ud_error_set(UD_ENOTFOUND, "%s: missing key '%s'", name,
				    key);
	if (!json_is_object(*out))
		return ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				    name, key);
	return 0;
}

static int source_from_json(struct ud_manifest *m, const json_t *root,
			    const char *name)
{
	static const char *const keys[] = {
		"commit", "ref", "subject", "author", NULL
	};
	const char *commit = NULL;
	json_t *src;
	int err;

	if ((err = get_object(&src, root, "source", name)) < 0 ||
	    (err = ud_json_check_keys(src, name, "source", keys)) < 0 ||
	    (err = ud_json_get_str(src, "commit", name, "source", 1,
				   &commit)) < 0)
		return err;
	if (!is_lower_hex(commit, 40))
		return ud_error_set(UD_EINVALID,
				    "%s: source.commit: must be 40 lowercase "
				    "hex digits",
				    name);
	memcpy(m->source.commit, commit, 41);
	if ((err = get_strdup(&m->source.ref, src, "ref", name, "source")) <
		    0 ||
	    (err = get_strdup(&m->source.subject, src, "subject", name,
			      "source")) < 0 ||
	    (err = get_strdup(&m->source.author, src, "author", name,
			      "source")) < 0)
		return err;
	return 0;
}

static int build_from_json(struct ud_manifest *m, const json_t *root,
			   const char *name)
{
	static const char *const keys[] = {
		"command", "duration_ms", "builder", NULL
	};
	json_t *build;
	int err;

	if ((err = get_object(&build, root, "build", name)) < 0 ||
	    (err = ud_json_check_keys(build, name, "build", keys)) < 0 ||
	    (err = get_strdup(&m->build.command, build, "command", name,
			      "build")) < 0 ||
	    (err = ud_json_get_int(build, "duration_ms", name, "build", 1, 0,
				   LLONG_MAX, &m->build.duration_ms)) < 0 ||
	    (err = get_strdup(&m->build.builder, build, "builder", name,
			      "build")) < 0)
		return err;
	return 0;
}

static int image_from_json(struct ud_manifest_image *img, const json_t *obj,
			   const char *name, const char *where)
{
	static const char *const keys[] = {
		"target", "arch", "file", "sha256", "size", "compression", NULL
	};
	const char *target = NULL, *arch = NULL, *file = NULL;
	const char *sha256 = NULL, *compression = NULL;
	long long size = 0;
	int err;

	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0 ||
	    (err = ud_json_get_str(obj, "target", name, where, 1,
				   &target)) < 0 ||
	    (err = ud_json_get_str(obj, "arch", name, where, 1, &arch)) < 0 ||
	    (err = ud_json_get_str(obj, "file", name, where, 1, &file)) < 0 ||
	    (err = ud_json_get_str(obj, "sha256", name, where, 1,
				   &sha256)) < 0 ||
	    (err = ud_json_get_int(obj, "size", name, where, 1, 0, LLONG_MAX,
				   &size)) < 0 ||
	    (err = ud_json_get_str(obj, "compression", name, where, 1,
				   &compression)) < 0)
		return err;
	if ((err = ud_name_check_target(target)) < 0) {
		ud_error_prefix("%s: %s.target", name, where);
		return err;
	}
	if ((err = ud_name_check_arch(arch)) < 0) {
		ud_error_prefix("%s: %s.arch", name, where);
		return err;
	}
	if ((err = ud_name_check_image_file(file)) < 0) {
		ud_error_prefix("%s: %s.file", name, where);
		return err;
	}
	if (!is_lower_hex(sha256, 64))
		return ud_error_set(UD_EINVALID,
				    "%s: %s.sha256: must be 64 lowercase hex "
				    "digits",
				    name, where);
	if ((err = compression_from_name(&img->compression, compression)) < 0)
		return ud_error_set(UD_EINVALID,
				    "%s: %s.compression: must be none, gzip, "
				    "xz or zstd",
				    name, where);
	memcpy(img->sha256, sha256, UD_SHA256_HEX);
	img->size = (uint64_t)size;
	img->target = ud_strdup(target);
	img->arch = ud_strdup(arch);
	img->file = ud_strdup(file);
	return 0;
}

static int images_from_json(struct ud_manifest *m, const json_t *root,
			    const char *name)
{
	json_t *images, *obj;
	char *where = NULL;
	size_t i, j;
	int err = 0;

	if (!(images = json_object_get(root, "images")))
		return ud_error_set(UD_ENOTFOUND, "%s: missing key 'images'",
				    name);
	if (!json_is_array(images) || json_array_size(images) == 0)
		return ud_error_set(UD_EINVALID,
				    "%s: images: must be a non-empty array",
				    name);
	m->images = ud_calloc(json_array_size(images), sizeof(*m->images));
	json_array_foreach(images, i, obj) {
		struct ud_manifest_image *img = &m->images[i];

		free(where);
		where = ud_asprintf("images[%zu]", i);
		if ((err = image_from_json(img, obj, name, where)) < 0)
			goto done;
		m->nimages++;
		for (j = 0; j < i; j++) {
			if (!strcmp(m->images[j].file, img->file)) {
				err = ud_error_set(UD_EINVALID,
						   "%s: %s.file: '%s' is "
						   "already used by images[%zu]",
						   name, where, img->file, j);
				goto done;
			}
			if (!strcmp(m->images[j].target, img->target) &&
			    !strcmp(m->images[j].arch, img->arch)) {
				err = ud_error_set(UD_EINVALID,
						   "%s: %s: target '%s' and "
						   "arch '%s' are already in "
						   "images[%zu]",
						   name, where, img->target,
						   img->arch, j);
				goto done;
			}
		}
	}
done:
	free(where);
	return err;
}

int ud_manifest_parse(struct ud_manifest **out, const char *name,
		      const char *text, size_t len)
{
	static const char *const keys[] = {
		"app", "release", "created_at", "source", "build", "images",
		"rollback_of", "run", "health", NULL
	};
	struct ud_manifest *m = ud_manifest_new();
	const char *app = NULL, *created_at = NULL;
	json_t *root = NULL, *rb;
	long long n = 0;
	int err;

	if ((err = ud_json_parse(&root, name, text, len)) < 0 ||
	    (err = ud_json_check_keys(root, name, "", keys)) < 0 ||
	    (err = ud_json_get_str(root, "app", name, "", 1, &app)) < 0)
		goto done;
	if ((err = ud_name_check_app(app)) < 0) {
		ud_error_prefix("%s: app", name);
		goto done;
	}
	m->app = ud_strdup(app);
	if ((err = ud_json_get_int(root, "release", name, "", 1, 1, INT_MAX,
				   &n)) < 0)
		goto done;
	m->release = (int)n;
	if ((err = ud_json_get_str(root, "created_at", name, "", 1,
				   &created_at)) < 0)
		goto done;
	if (!is_utc_time(created_at)) {
		err = ud_error_set(UD_EINVALID,
				   "%s: created_at: must be a UTC time like "
				   "2026-11-26T12:00:00Z",
				   name);
		goto done;
	}
	m->created_at = ud_strdup(created_at);
	if ((err = source_from_json(m, root, name)) < 0 ||
	    (err = build_from_json(m, root, name)) < 0 ||
	    (err = images_from_json(m, root, name)) < 0)
		goto done;
	rb = json_object_get(root, "rollback_of");
	if (rb && !json_is_null(rb)) {
		if (!json_is_integer(rb) || json_integer_value(rb) < 1 ||
		    json_integer_value(rb) >= m->release) {
			err = ud_error_set(UD_EINVALID,
					   "%s: rollback_of: must be null or "
					   "an earlier release number",
					   name);
			goto done;
		}
		m->rollback_of = (int)json_integer_value(rb);
	}
	if ((err = ud_run_spec_from_json(&m->run, json_object_get(root, "run"),
					 name, "run")) < 0 ||
	    (err = ud_health_from_json(&m->health,
				       json_object_get(root, "health"), name,
				       "health")) < 0)
		goto done;
	*out = m;
	m = NULL;
done:
	ud_manifest_free(m);
	json_decref(root);
	return err;
}

/* Commit subjects and author names are whatever bytes git was given;
 * jansson refuses invalid UTF-8, so such bytes become '?' rather than
 * losing the key. */
static json_t *str_or_empty(const char *s)
{
	json_t *j;
	char *copy, *p;

	if (!s)
		return json_string("");
	if ((j = json_string(s)))
		return j;
	copy = ud_strdup(s);
	for (p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

int ud_manifest_format(struct ud_buf *out, const struct ud_manifest *m)
{
	json_t *root = json_object(), *o, *images = json_array();
	size_t i;
	int err;

	json_object_set_new(root, "app", str_or_empty(m->app));
	json_object_set_new(root, "release", json_integer(m->release));
	json_object_set_new(root, "created_at", str_or_empty(m->created_at));
	o = json_object();
	json_object_set_new(o, "commit", str_or_empty(m->source.commit));
	json_object_set_new(o, "ref", str_or_empty(m->source.ref));
	json_object_set_new(o, "subject", str_or_empty(m->source.subject));
	json_object_set_new(o, "author", str_or_empty(m->source.author));
	json_object_set_new(root, "source", o);
	o = json_object();
	json_object_set_new(o, "command", str_or_empty(m->build.command));
	json_object_set_new(o, "duration_ms",
			    json_integer(m->build.duration_ms));
	json_object_set_new(o, "builder", str_or_empty(m->build.builder));
	json_object_set_new(root, "build", o);
	for (i = 0; i < m->nimages; i++) {
		const struct ud_manifest_image *img = &m->images[i];

		o = json_object();
		json_object_set_new(o, "target", str_or_empty(img->target));
		json_object_set_new(o, "arch", str_or_empty(img->arch));
		json_object_set_new(o, "file", str_or_empty(img->file));
		json_object_set_new(o, "sha256", str_or_empty(img->sha256));
		json_object_set_new(o, "size",
				    json_integer((json_int_t)img->size));
		json_object_set_new(
			o, "compression",
			str_or_empty(ud_compression_name(img->compression)));
		json_array_append_new(images, o);
	}
	json_object_set_new(root, "images", images);
	json_object_set_new(root, "rollback_of",
			    m->rollback_of ? json_integer(m->rollback_of)
					   : json_null());
	json_object_set_new(root, "run", ud_run_spec_to_json(&m->run));
	json_object_set_new(root, "health", ud_health_to_json(&m->health));
	err = ud_json_format(out, root);
	json_decref(root);
	return err;
}
