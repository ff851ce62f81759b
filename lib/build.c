#include "build.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "errors.h"
#include "export.h"
#include "log.h"
#include "sandbox.h"
#include "scrub.h"

/* Enough build log to debug a failure, bounded so a chatty build cannot
 * bloat the deployment repository. */
#define BUILD_LOG_MAX (4 * 1024 * 1024)

int ud_build_cache_dir(char **out, const char *app)
{
	char *base = ud_cache_root(), *dir;
	int err;

	if (!base)
		base = ud_asprintf("/tmp/unideploy-cache-%ld", (long)getuid());
	dir = ud_asprintf("%s/%s", base, app);
	free(base);
	if ((err = ud_mkdir_p(dir, 0700)) < 0) {
		free(dir);
		return err;
	}
	*out = dir;
	return 0;
}

void ud_build_free(struct ud_build *b)
{
	if (!b)
		return;
	if (b->workdir)
		ud_rm_rf(b->workdir);
	ud_appconfig_free(b->cfg);
	free(b->ref);
	free(b->subject);
	free(b->author);
	free(b->workdir);
	free(b->srcdir);
	free(b->cache_dir);
	for (size_t i = 0; i < b->nimages; i++) {
		free(b->images[i].path);
		free(b->images[i].initrd);
	}
	free(b->images);
	ud_buf_free(&b->log);
	free(b);
}

int ud_build_prepare(struct ud_build **out, git_repository *src,
		     const git_oid *commit, const struct ud_build_opts *o)
{
	struct ud_buf json = UD_BUF_INIT;
	struct ud_build *b = ud_calloc(1, sizeof(*b));
	const char *tmp = getenv("TMPDIR");
	int err;

	ud_buf_init(&b->log, BUILD_LOG_MAX);
	git_oid_tostr(b->commit, sizeof(b->commit), commit);
	b->ref = ud_strdup(o && o->ref ? o->ref : "");

	json.max = 1024 * 1024;
	if ((err = ud_source_read(src, commit, "deploy.json", &json)) < 0) {
		if (err == UD_ENOTFOUND)
			ud_error_set(err, "commit %.7s has no deploy.json at "
					  "the root of its tree", b->commit);
		goto done;
	}
	if ((err = ud_appconfig_parse(&b->cfg, "deploy.json", json.ptr,
				      json.size)) < 0)
		goto done;
	if ((err = ud_source_describe(src, commit, &b->subject,
				      &b->author)) < 0)
		goto done;

	b->workdir = ud_asprintf("%s/unideploy-build-XXXXXX",
				 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(b->workdir)) {
		err = ud_error_set_errno(UD_ERROR, "cannot create %s",
					 b->workdir);
		free(b->workdir);
		b->workdir = NULL;
		goto done;
	}
	b->srcdir = ud_asprintf("%s/src", b->workdir);
	if ((err = ud_export_tree(src, commit, b->srcdir)) < 0)
		goto done;
	err = ud_build_cache_dir(&b->cache_dir, b->cfg->app);
done:
	ud_buf_free(&json);
	if (err < 0)
		ud_build_free(b);
	else
		*out = b;
	return err;
}

/* The file at `rel` must be a regular file inside the export, also after
 * resolving symlinks: a build must not publish /etc/shadow. `kind` says
 * what it is in messages ("image", "initrd"). */
static int collect_file(struct ud_build *b, const struct ud_image_spec *s,
			const char *kind, const char *rel, char **path,
			char *sha256, uint64_t *size)
{
	char *joined = ud_asprintf("%s/%s", b->srcdir, rel);
	char *real = NULL, *root = NULL;
	struct stat st;
	size_t rootlen;
	int err = 0;

	if (!(real = realpath(joined, NULL))) {
		err = ud_error_set(UD_ENOTFOUND,
				   "%s %s (%s/%s) was not produced by the "
				   "build",
				   kind, rel, s->target, s->arch);
		goto done;
	}
	if (!(root = realpath(b->srcdir, NULL))) {
		err = ud_error_set_errno(UD_ERROR, "cannot resolve %s",
					 b->srcdir);
		goto done;
	}
	rootlen = strlen(root);
	if (strncmp(real, root, rootlen) != 0 || real[rootlen] != '/') {
		err = ud_error_set(UD_EINVALID,
				   "%s %s resolves outside the build "
				   "directory",
				   kind, rel);
		goto done;
	}
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = ud_error_set(UD_EINVALID,
				   "%s %s is not a regular file", kind, rel);
		goto done;
	}
	*path = real;
	real = NULL;
	err = ud_sha256_file(sha256, size, *path);
done:
	free(joined);
	free(real);
	free(root);
	return err;
}

static int collect_image(struct ud_build *b, const struct ud_image_spec *s,
			 struct ud_build_image *img)
{
	int err;

	img->spec = s;
	if ((err = collect_file(b, s, "image", s->path, &img->path,
				img->sha256, &img->size)) < 0)
		return err;
	if (s->initrd)
		err = collect_file(b, s, "initrd", s->initrd, &img->initrd,
				   img->initrd_sha256, &img->initrd_size);
	return err;
}

struct build_output {
	struct ud_build *b;
	const struct ud_build_opts *o;
	int truncated;
};

/* Scrubbed output: to the caller live, and into the capped log. */
static void keep_output(const char *data, size_t len, void *payload)
{
	struct build_output *bo = payload;

	if (bo->o && bo->o->on_output)
		bo->o->on_output(data, len, bo->o->payload);
	ud_capture_put(&bo->b->log, &bo->truncated, data, len);
}

static void scrub_output(const char *data, size_t len, void *payload)
{
	ud_scrub_write(payload, data, len);
}

/* Drop every variable the pipeline holds as a secret. */
static void env_drop_secrets(struct ud_strvec *env)
{
	size_t i = 0;

	while (i < env->n) {
		const char *eq = strchr(env->v[i], '=');
		char *name = ud_strndup(env->v[i],
					eq ? (size_t)(eq - env->v[i])
					   : strlen(env->v[i]));
		int secret = ud_scrub_is_secret_name(name);

		if (secret)
			ud_env_unset(env, name);
		free(name);
		if (!secret)
			i++;
	}
}

/* The command line and environment of the build: in the sandbox, as its
 * user, at home in the workdir; or as before, with a warning, when the
 * operator turned isolation off. */
static int isolate(struct ud_build *b, struct ud_sandbox *sb,
		   struct ud_strvec *argv, struct ud_strvec *env,
		   struct build_output *out)
{
	char *const cmd[] = { "/bin/sh", "-c", b->cfg->build_command, NULL };
	const char *rw[] = { b->workdir, b->cache_dir, NULL };
	char *home = NULL, *line;
	int err;

	if ((err = ud_sandbox_from_env(sb)) < 0)
		return err;
	if (sb->off) {
		line = ud_asprintf("warning: DEPLOY_BUILD_SANDBOX=off: this "
				   "build is not isolated; it can read what "
				   "user %ld can, the pipeline's secrets "
				   "included\n",
				   (long)geteuid());
		keep_output(line, strlen(line), out);
		free(line);
		for (size_t i = 0; cmd[i]; i++)
			ud_strvec_push(argv, cmd[i]);
		return 0;
	}
	if ((err = ud_sandbox_probe(sb)) < 0)
		return err;
	home = ud_asprintf("%s/home", b->workdir);
	if ((err = ud_mkdir_p(home, 0700)) < 0 ||
	    (err = ud_sandbox_chown(sb, b->workdir, 1)) < 0 ||
	    (err = ud_sandbox_chown(sb, b->cache_dir, 0)) < 0)
		goto done;
	/* The pipeline's HOME and TMPDIR are not in the sandbox. */
	ud_env_set(env, "HOME", home);
	ud_env_set(env, "TMPDIR", "/tmp");
	ud_sandbox_argv(sb, argv, rw, b->srcdir, cmd);
done:
	free(home);
	return err;
}

int ud_build_run(struct ud_build *b, const struct ud_build_opts *o)
{
	struct build_output out = { b, o, 0 };
	struct ud_scrub scrub;
	struct ud_sandbox sb = { 0 };
	struct ud_strvec env = UD_STRVEC_INIT, argv = UD_STRVEC_INIT;
	struct ud_run_opts ro = { 0 };
	long long start = 0;
	int status = 0, err;
	size_t i;

	/* Second line behind the sandbox: whatever the build finds, the
	 * pipeline's secrets never reach the pusher or build.log, where a
	 * printed key would live forever. */
	ud_scrub_init(&scrub, keep_output, &out);
	ud_scrub_add_env(&scrub, NULL);
	for (i = 0; o && o->secrets && o->secrets[i]; i++)
		ud_scrub_add(&scrub, o->secrets[i]);

	ud_env_from_environ(&env, 1);
	/* The pipeline's secrets (SPEC §6) are for SSH and signing only. */
	env_drop_secrets(&env);
	if ((err = isolate(b, &sb, &argv, &env, &out)) < 0)
		goto done;
	for (i = 0; i < b->cfg->build_env.n; i++) {
		const char *kv = b->cfg->build_env.v[i];
		const char *eq = strchr(kv, '=');
		char *name = ud_strndup(kv, (size_t)(eq - kv));

		ud_env_set(&env, name, eq + 1);
		free(name);
	}
	ud_env_set(&env, "DEPLOY_APP", b->cfg->app);
	ud_env_set(&env, "DEPLOY_COMMIT", b->commit);
	ud_env_set(&env, "DEPLOY_REF", b->ref);
	ud_env_set(&env, "DEPLOY_CACHE_DIR", b->cache_dir);

	ro.dir = b->srcdir;
	ro.env = env.v;
	ro.timeout_ms = b->cfg->build_timeout_s * 1000;
	ro.on_output = scrub_output;
	ro.payload = &scrub;

	start = ud_now_ms();
	err = ud_run(argv.v, &ro, &status);
	ud_scrub_flush(&scrub);
	b->duration_ms = ud_now_ms() - start;
	if (err == UD_ETIMEOUT) {
		ud_error_set(err,
			     "build.command timed out after %d s; its "
			     "processes were killed",
			     b->cfg->build_timeout_s);
		goto done;
	}
	if (err < 0)
		goto done;
	if (status != 0) {
		err = ud_error_set(UD_ERROR,
				   "build.command exited with status %d",
				   status);
		goto done;
	}

	b->images = ud_calloc(b->cfg->nimages, sizeof(*b->images));
	for (i = 0; i < b->cfg->nimages; i++) {
		/* Counted first: a half-collected image is freed too. */
		b->nimages++;
		if ((err = collect_image(b, &b->cfg->images[i],
					 &b->images[i])) < 0)
			goto done;
	}
done:
	ud_scrub_free(&scrub);
	ud_sandbox_free(&sb);
	ud_strvec_free(&argv);
	ud_strvec_free(&env);
	return err;
}
