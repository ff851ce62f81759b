#include "appconfig.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"

#include <regex.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>

/* "where.key" or "key"; the caller frees it. */
static char *subpath(const char *where, const char *key)
{
	if (!where || !*where)
		return ud_strdup(key);
	return ud_asprintf("%s.%s", where, key);
}

/* An object of string values with environment variable names, appended
 * to `env` as NAME=value. An absent key leaves env untouched. */
static int env_from_json(struct ud_strvec *env, const json_t *obj,
			 const char *key, const char *name, const char *where)
{
	char *path = subpath(where, key);
	const char *k;
	json_t *v, *val;
	int err = 0;

	v = json_object_get(obj, key);
	if (!v)
		goto done;
	if (!json_is_object(v)) {
		err = ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				   name, path);
		goto done;
	}
	json_object_foreach(v, k, val) {
		if ((err = ud_name_check_env(k)) < 0) {
			ud_error_prefix("%s: %s", name, path);
			goto done;
		}
		if (!json_is_string(val)) {
			err = ud_error_set(UD_EINVALID,
					   "%s: %s.%s: must be a string", name,
					   path, k);
			goto done;
		}
		ud_strvec_pushf(env, "%s=%s", k, json_string_value(val));
	}
done:
	free(path);
	return err;
}

static json_t *env_to_json(const struct ud_strvec *env)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		char *k;

		if (!eq)
			continue;
		k = ud_strndup(env->v[i], (size_t)(eq - env->v[i]));
		json_object_set_new(o, k, json_string(eq + 1));
		free(k);
	}
	return o;
}

static json_t *strvec_to_json(const struct ud_strvec *sv)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

static void run_spec_defaults(struct ud_run_spec *r)
{
	memset(r, 0, sizeof(*r));
	r->memory_mb = 64;
	ud_strvec_init(&r->args);
	ud_strvec_init(&r->env);
}

/* A Solo5 device name (MFT_NAME_SIZE 68 with its NUL), also a file
 * name under state_dir/volumes/<app>/. */
static int device_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 67)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static int block_from_json(struct ud_run_spec *out, const json_t *obj,
			   const char *name, const char *where)
{
	static const char *const keys[] = { "size_mb", NULL };
	char *path = subpath(where, "block"), *sub = NULL;
	const char *k;
	json_t *v, *val;
	long long n;
	int err = 0;

	if (!(v = json_object_get(obj, "block")))
		goto done;
	if (!json_is_object(v)) {
		err = ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				   name, path);
		goto done;
	}
	out->block = ud_calloc(json_object_size(v) + 1, sizeof(*out->block));
	json_object_foreach(v, k, val) {
		if (!device_name_ok(k)) {
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: invalid device name '%s': "
					   "must match [a-z0-9_]{1,67}",
					   name, path, k);
			goto done;
		}
		free(sub);
		sub = ud_asprintf("%s.%s", path, k);
		if (!json_is_object(val)) {
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: must be an object",
					   name, sub);
			goto done;
		}
		n = 0;
		if ((err = ud_json_check_keys(val, name, sub, keys)) < 0 ||
		    (err = ud_json_get_int(val, "size_mb", name, sub, 1, 1,
					   1048576, &n)) < 0)
			goto done;
		out->block[out->nblock].name = ud_strdup(k);
		out->block[out->nblock++].size_mb = (int)n;
	}
done:
	free(sub);
	free(path);
	return err;
}

const struct ud_block_spec *ud_run_spec_block(const struct ud_run_spec *r,
					      const char *name)
{
	size_t i;

	for (i = 0; i < r->nblock; i++)
		if (!strcmp(r->block[i].name, name))
			return &r->block[i];
	return NULL;
}

void ud_run_spec_copy(struct ud_run_spec *dst, const struct ud_run_spec *src)
{
	size_t i;

	run_spec_defaults(dst);
	dst->port = src->port;
	dst->memory_mb = src->memory_mb;
	dst->restart = src->restart;
	for (i = 0; i < src->args.n; i++)
		ud_strvec_push(&dst->args, src->args.v[i]);
	for (i = 0; i < src->env.n; i++)
		ud_strvec_push(&dst->env, src->env.v[i]);
	if (src->nblock)
		dst->block = ud_calloc(src->nblock, sizeof(*dst->block));
	for (i = 0; i < src->nblock; i++) {
		dst->block[i].name = ud_strdup(src->block[i].name);
		dst->block[i].size_mb = src->block[i].size_mb;
	}
	dst->nblock = src->nblock;
}

int ud_run_spec_from_json(struct ud_run_spec *out, const json_t *obj,
			  const char *name, const char *where)
{
	static const char *const keys[] = {
		"port", "memory_mb", "args", "env", "block", "restart", NULL
	};
	static const char *const restarts[] = { "always", "on-failure",
						"never", NULL };
	const char *restart = NULL;
	char *args_path = subpath(where, "args");
	long long n;
	json_t *args;
	size_t i;
	int err;

	run_spec_defaults(out);
	if (!obj) {
		err = 0;
		goto done;
	}
	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0)
		goto done;
	n = 0;
	if ((err = ud_json_get_int(obj, "port", name, where, 0, 0, 65535,
				   &n)) < 0)
		goto done;
	out->port = (int)n;
	n = out->memory_mb;
	if ((err = ud_json_get_int(obj, "memory_mb", name, where, 0, 1,
				   1048576, &n)) < 0)
		goto done;
	out->memory_mb = (int)n;
	if ((err = ud_json_get_str(obj, "restart", name, where, 0,
				   &restart)) < 0)
		goto done;
	for (i = 0; restart && restarts[i]; i++)
		if (!strcmp(restart, restarts[i]))
			break;
	if (restart && !restarts[i]) {
		char *path = subpath(where, "restart");

		err = ud_error_set(UD_EINVALID,
				   "%s: %s: must be 'always', 'on-failure' "
				   "or 'never'",
				   name, path);
		free(path);
		goto done;
	}
	out->restart = restart ? (enum ud_restart)i : UD_RESTART_ALWAYS;
	if ((args = json_object_get(obj, "args"))) {
		json_t *a;

		if (!json_is_array(args)) {
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: must be an array of strings",
					   name, args_path);
			goto done;
		}
		json_array_foreach(args, i, a) {
			if (!json_is_string(a)) {
				err = ud_error_set(UD_EINVALID,
						   "%s: %s[%zu]: must be a "
						   "string",
						   name, args_path, i);
				goto done;
			}
			ud_strvec_push(&out->args, json_string_value(a));
		}
	}
	if ((err = env_from_json(&out->env, obj, "env", name, where)) < 0)
		goto done;
	err = block_from_json(out, obj, name, where);
done:
	if (err < 0)
		ud_run_spec_free(out);
	free(args_path);
	return err;
}

json_t *ud_run_spec_to_json(const struct ud_run_spec *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "port", json_integer(r->port));
	json_object_set_new(o, "memory_mb", json_integer(r->memory_mb));
	json_object_set_new(o, "args", strvec_to_json(&r->args));
	json_object_set_new(o, "env", env_to_json(&r->env));
	/* Only when there are volumes: an agent from before run.block
	 * refuses the key, and has no reason to see it for other apps. */
	if (r->nblock) {
		json_t *b = json_object();
		size_t i;

		for (i = 0; i < r->nblock; i++)
			json_object_set_new(b, r->block[i].name,
					    json_pack("{s:i}", "size_mb",
						      r->block[i].size_mb));
		json_object_set_new(o, "block", b);
	}
	/* Only when set: a manifest without it reads as "always", also to
	 * agents that predate it. */
	if (r->restart != UD_RESTART_ALWAYS)
		json_object_set_new(o, "restart",
				    json_string(ud_restart_name(r->restart)));
	return o;
}

const char *ud_restart_name(enum ud_restart r)
{
	switch (r) {
	case UD_RESTART_ON_FAILURE: return "on-failure";
	case UD_RESTART_NEVER: return "never";
	case UD_RESTART_ALWAYS: break;
	}
	return "always";
}

int ud_restart_wanted(enum ud_restart r, int wstatus)
{
	switch (r) {
	case UD_RESTART_NEVER:
		return 0;
	case UD_RESTART_ON_FAILURE:
		return wstatus == -1 || !WIFEXITED(wstatus) ||
		       WEXITSTATUS(wstatus) != 0;
	case UD_RESTART_ALWAYS:
		break;
	}
	return 1;
}

void ud_run_spec_free(struct ud_run_spec *r)
{
	if (!r)
		return;
	ud_strvec_free(&r->args);
	ud_strvec_free(&r->env);
	for (size_t i = 0; i < r->nblock; i++)
		free(r->block[i].name);
	free(r->block);
	r->block = NULL;
	r->nblock = 0;
}

/* A path goes into an HTTP request line: no room for spaces or CR/LF. */
static int http_path_ok(const char *p)
{
	if (p[0] != '/')
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	return 1;
}

static int check_regex(const char *re, const char *name, const char *path)
{
	char why[256];
	regex_t rx;
	int rc;

	if ((rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(rc, &rx, why, sizeof(why));
		return ud_error_set(UD_EINVALID,
				    "%s: %s: invalid regular expression "
				    "'%s': %s",
				    name, path, re, why);
	}
	regfree(&rx);
	return 0;
}

int ud_health_from_json(struct ud_health *out, const json_t *obj,
			const char *name, const char *where)
{
	static const char *const keys[] = {
		"http", "tcp", "serial", "timeout_s", "on_failure", NULL
	};
	const char *http = NULL, *serial = NULL, *on_failure = NULL;
	char *path = NULL;
	int tcp = 0, kinds;
	long long n;
	int err;

	memset(out, 0, sizeof(*out));
	out->kind = UD_HEALTH_TCP;
	out->timeout_s = 20;
	out->rollback = 1;
	if (!obj)
		return 0;
	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0 ||
	    (err = ud_json_get_str(obj, "http", name, where, 0, &http)) < 0 ||
	    (err = ud_json_get_str(obj, "serial", name, where, 0,
				   &serial)) < 0)
		goto done;
	if (json_object_get(obj, "tcp")) {
		if ((err = ud_json_get_bool(obj, "tcp", name, where, 1,
					    &tcp)) < 0)
			goto done;
		if (!tcp) {
			path = subpath(where, "tcp");
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: must be true (or leave it "
					   "out)",
					   name, path);
			goto done;
		}
	}
	kinds = !!http + tcp + !!serial;
	if (kinds != 1) {
		err = ud_error_set(UD_EINVALID,
				   "%s: %s: must have exactly one of 'http', "
				   "'tcp' or 'serial'",
				   name, where);
		goto done;
	}
	if (http) {
		if (!http_path_ok(http)) {
			path = subpath(where, "http");
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: must be a path starting "
					   "with '/', without spaces or "
					   "control characters",
					   name, path);
			goto done;
		}
		out->kind = UD_HEALTH_HTTP;
		out->http_path = ud_strdup(http);
	} else if (serial) {
		path = subpath(where, "serial");
		if ((err = check_regex(serial, name, path)) < 0)
			goto done;
		out->kind = UD_HEALTH_SERIAL;
		out->serial_regex = ud_strdup(serial);
	}
	n = out->timeout_s;
	if ((err = ud_json_get_int(obj, "timeout_s", name, where, 0, 1, 3600,
				   &n)) < 0)
		goto done;
	out->timeout_s = (int)n;
	if ((err = ud_json_get_str(obj, "on_failure", name, where, 0,
				   &on_failure)) < 0)
		goto done;
	if (on_failure) {
		if (!strcmp(on_failure, "rollback")) {
			out->rollback = 1;
		} else if (!strcmp(on_failure, "keep")) {
			out->rollback = 0;
		} else {
			free(path);
			path = subpath(where, "on_failure");
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: must be 'rollback' or "
					   "'keep'",
					   name, path);
			goto done;
		}
	}
done:
	if (err < 0) {
		ud_health_free(out);
		memset(out, 0, sizeof(*out));
	}
	free(path);
	return err;
}

json_t *ud_health_to_json(const struct ud_health *h)
{
	json_t *o = json_object();

	switch (h->kind) {
	case UD_HEALTH_HTTP:
		json_object_set_new(o, "http",
				    json_string(h->http_path ? h->http_path
							     : "/"));
		break;
	case UD_HEALTH_SERIAL:
		json_object_set_new(o, "serial",
				    json_string(h->serial_regex
							? h->serial_regex
							: ""));
		break;
	case UD_HEALTH_TCP:
	default:
		json_object_set_new(o, "tcp", json_true());
		break;
	}
	json_object_set_new(o, "timeout_s", json_integer(h->timeout_s));
	json_object_set_new(o, "on_failure",
			    json_string(h->rollback ? "rollback" : "keep"));
	return o;
}

static int build_from_json(struct ud_appconfig *c, const json_t *root,
			   const char *name)
{
	static const char *const keys[] = {
		"command", "timeout_s", "env", NULL
	};
	const char *command = NULL;
	long long n = 1800;
	json_t *build;
	int err;

	if (!(build = json_object_get(root, "build")))
		return ud_error_set(UD_ENOTFOUND, "%s: missing key 'build'",
				    name);
	if ((err = ud_json_check_keys(build, name, "build", keys)) < 0 ||
	    (err = ud_json_get_str(build, "command", name, "build", 1,
				   &command)) < 0)
		return err;
	if (!*command)
		return ud_error_set(UD_EINVALID,
				    "%s: build.command: must not be empty",
				    name);
	c->build_command = ud_strdup(command);
	if ((err = ud_json_get_int(build, "timeout_s", name, "build", 0, 1,
				   86400, &n)) < 0)
		return err;
	c->build_timeout_s = (int)n;
	return env_from_json(&c->build_env, build, "env", name, "build");
}

static int image_from_json(struct ud_image_spec *img, const json_t *obj,
			   const char *name, const char *where)
{
	static const char *const keys[] = {
		"target", "arch", "path", "initrd", NULL
	};
	const char *target = NULL, *arch = ud_host_arch(), *path = NULL;
	const char *initrd = NULL;
	int err;

	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0 ||
	    (err = ud_json_get_str(obj, "target", name, where, 1,
				   &target)) < 0 ||
	    (err = ud_json_get_str(obj, "arch", name, where, 0, &arch)) < 0 ||
	    (err = ud_json_get_str(obj, "path", name, where, 1, &path)) < 0 ||
	    (err = ud_json_get_str(obj, "initrd", name, where, 0,
				   &initrd)) < 0)
		return err;
	if ((err = ud_name_check_target(target)) < 0) {
		ud_error_prefix("%s: %s.target", name, where);
		return err;
	}
	if ((err = ud_name_check_arch(arch)) < 0) {
		ud_error_prefix("%s: %s.arch", name, where);
		return err;
	}
	if ((err = ud_name_check_relpath(path)) < 0) {
		ud_error_prefix("%s: %s.path", name, where);
		return err;
	}
	if (initrd) {
		if ((err = ud_name_check_relpath(initrd)) < 0) {
			ud_error_prefix("%s: %s.initrd", name, where);
			return err;
		}
		/* Only a VM booted from a kernel file takes a ramdisk with
		 * it: a Solo5 tender, a process or xl's cfg (not ours to
		 * write per image) would silently drop it. */
		if (!ud_target_takes_initrd(target))
			return ud_error_set(UD_EINVALID,
					    "%s: %s.initrd: target %s cannot "
					    "boot an initrd (only qemu and "
					    "firecracker can)",
					    name, where, target);
	}
	img->target = ud_strdup(target);
	img->arch = ud_strdup(arch);
	img->path = ud_strdup(path);
	img->initrd = initrd ? ud_strdup(initrd) : NULL;
	return 0;
}

int ud_target_takes_initrd(const char *target)
{
	return !strcmp(target, "qemu") || !strcmp(target, "firecracker");
}

static int images_from_json(struct ud_appconfig *c, const json_t *root,
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
	c->images = ud_calloc(json_array_size(images), sizeof(*c->images));
	json_array_foreach(images, i, obj) {
		free(where);
		where = ud_asprintf("images[%zu]", i);
		if ((err = image_from_json(&c->images[i], obj, name,
					   where)) < 0)
			goto done;
		c->nimages++;
		for (j = 0; j < i; j++) {
			if (strcmp(c->images[j].target, c->images[i].target) ||
			    strcmp(c->images[j].arch, c->images[i].arch))
				continue;
			err = ud_error_set(UD_EINVALID,
					   "%s: %s: target '%s' and arch '%s' "
					   "are already built by images[%zu]",
					   name, where, c->images[i].target,
					   c->images[i].arch, j);
			goto done;
		}
	}
done:
	free(where);
	return err;
}

int ud_appconfig_parse(struct ud_appconfig **out, const char *name,
		       const char *text, size_t len)
{
	static const char *const keys[] = {
		"app", "build", "images", "run", "health", NULL
	};
	struct ud_appconfig *c = ud_calloc(1, sizeof(*c));
	const char *app = NULL;
	json_t *root = NULL;
	int err;

	ud_strvec_init(&c->build_env);
	run_spec_defaults(&c->run);
	if ((err = ud_json_parse(&root, name, text, len)) < 0 ||
	    (err = ud_json_check_keys(root, name, "", keys)) < 0 ||
	    (err = ud_json_get_str(root, "app", name, "", 1, &app)) < 0)
		goto done;
	if ((err = ud_name_check_app(app)) < 0) {
		ud_error_prefix("%s: app", name);
		goto done;
	}
	c->app = ud_strdup(app);
	if ((err = build_from_json(c, root, name)) < 0 ||
	    (err = images_from_json(c, root, name)) < 0)
		goto done;
	ud_run_spec_free(&c->run);
	if ((err = ud_run_spec_from_json(&c->run, json_object_get(root, "run"),
					 name, "run")) < 0 ||
	    (err = ud_health_from_json(&c->health,
				       json_object_get(root, "health"), name,
				       "health")) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	ud_appconfig_free(c);
	json_decref(root);
	return err;
}

void ud_appconfig_free(struct ud_appconfig *c)
{
	size_t i;

	if (!c)
		return;
	free(c->app);
	free(c->build_command);
	ud_strvec_free(&c->build_env);
	for (i = 0; i < c->nimages; i++) {
		free(c->images[i].target);
		free(c->images[i].arch);
		free(c->images[i].path);
		free(c->images[i].initrd);
	}
	free(c->images);
	ud_run_spec_free(&c->run);
	ud_health_free(&c->health);
	free(c);
}
