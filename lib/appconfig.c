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

int ud_run_spec_from_json(struct ud_run_spec *out, const json_t *obj,
			  const char *name, const char *where)
{
	static const char *const keys[] = {
		"port", "memory_mb", "args", "env",
		"restart", NULL
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
	err = env_from_json(&out->env, obj, "env", name, where);
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
	static const char *const keys[] = { "target", "arch", "path", NULL };
	const char *target = NULL, *arch = ud_host_arch(), *path = NULL;
	int err;

	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0 ||
	    (err = ud_json_get_str(obj, "target", name, where, 1,
				   &target)) < 0 ||
	    (err = ud_json_get_str(obj, "arch", name, where, 0, &arch)) < 0 ||
	    (err = ud_json_get_str(obj, "path", name, where, 1, &path)) < 0)
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
	img->target = ud_strdup(target);
	img->arch = ud_strdup(arch);
	img->path = ud_strdup(path);
	return 0;
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
	}
	free(c->images);
	ud_run_spec_free(&c->run);
	ud_health_free(&c->health);
	free(c);
}
