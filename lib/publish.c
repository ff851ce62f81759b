#include "publish.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "names.h"
#include "release.h"
#include "solo5.h"

char *ud_publish_image_name(const char *target, const char *arch,
			    enum ud_compression c)
{
	return ud_asprintf("%s-%s.img%s", target, arch,
			   ud_compression_suffix(c));
}

char *ud_publish_initrd_name(const char *target, const char *arch,
			     enum ud_compression c)
{
	return ud_asprintf("%s-%s.initrd%s", target, arch,
			   ud_compression_suffix(c));
}

static int has_image(const struct ud_build *b, const char *target,
		     const char *arch)
{
	for (size_t i = 0; i < b->cfg->nimages; i++) {
		const struct ud_image_spec *s = &b->cfg->images[i];

		if (!strcmp(s->target, target) &&
		    (!arch || !strcmp(s->arch, arch)))
			return 1;
	}
	return 0;
}

int ud_publish_check_placement(const struct ud_fleet *f,
			       const struct ud_build *b)
{
	const struct ud_placement *p = ud_fleet_placement(f, b->cfg->app);

	if (!p)
		return 0;
	for (size_t i = 0; i < p->hosts.n; i++) {
		const struct ud_fleet_host *h =
			ud_fleet_host(f, p->hosts.v[i]);
		const char *arch = h ? h->arch : NULL;

		if (!has_image(b, p->target, arch))
			return ud_error_set(UD_EINVALID,
					    "%s is placed on %s with target "
					    "%s/%s, but deploy.json builds no "
					    "such image",
					    b->cfg->app, p->hosts.v[i],
					    p->target, arch ? arch : "any");
	}
	return 0;
}

int ud_publish_check_images(const struct ud_build *b)
{
	struct ud_solo5_image img;
	size_t i;
	int err = 0;

	for (i = 0; i < b->nimages && !err; i++) {
		const struct ud_image_spec *s = b->images[i].spec;

		if ((err = ud_solo5_read_file(&img, b->images[i].path)) < 0) {
			ud_error_prefix("image %s", s->path);
			break;
		}
		err = ud_solo5_check_target(&img, s->path, s->target);
		for (size_t d = 0; !err && img.is_solo5 && d < img.ndevices;
		     d++) {
			const struct ud_solo5_device *dev = &img.devices[d];

			if (dev->type != UD_SOLO5_BLOCK_BASIC ||
			    ud_run_spec_block(&b->cfg->run, dev->name))
				continue;
			err = ud_error_set(UD_EINVALID,
					   "%s: Solo5 block device '%s' has "
					   "no volume: add \"%s\": "
					   "{\"size_mb\": N} to run.block in "
					   "deploy.json",
					   s->path, dev->name, dev->name);
		}
		ud_solo5_image_free(&img);
	}
	return err;
}

static int store_file(struct ud_deployrepo *r, const char *path,
		      enum ud_compression c, git_oid *oid)
{
	struct ud_buf data = UD_BUF_INIT;
	int err;

	if ((err = ud_compress_file(&data, path, c)) < 0)
		goto done;
	err = ud_deployrepo_write_blob(r, data.ptr, data.size, oid);
done:
	ud_buf_free(&data);
	return err;
}

int ud_publish_build(struct ud_deployrepo *r, const struct ud_build *b,
		     enum ud_compression c, struct ud_manifest **out)
{
	struct ud_manifest *m = ud_manifest_new();
	struct ud_release_blob *files = NULL;
	char host[HOST_NAME_MAX + 1] = "unknown";
	git_oid log_oid;
	size_t i, nfiles = 0;
	int err;

	if ((err = ud_publish_check_images(b)) < 0)
		goto done;
	gethostname(host, sizeof(host) - 1);
	m->app = ud_strdup(b->cfg->app);
	memcpy(m->source.commit, b->commit, sizeof(m->source.commit));
	m->source.ref = ud_strdup(b->ref);
	m->source.subject = ud_strdup(b->subject ? b->subject : "");
	m->source.author = ud_strdup(b->author ? b->author : "");
	m->build.command = ud_strdup(b->cfg->build_command);
	m->build.duration_ms = b->duration_ms;
	m->build.builder = ud_strdup(host);
	m->rollback_of = 0;

	/* run and health travel with the release: copy them through their
	 * JSON form, the same code the manifest parser uses. */
	{
		json_t *run = ud_run_spec_to_json(&b->cfg->run);
		json_t *health = ud_health_to_json(&b->cfg->health);

		err = ud_run_spec_from_json(&m->run, run, "deploy.json", "run");
		if (!err)
			err = ud_health_from_json(&m->health, health,
						  "deploy.json", "health");
		json_decref(run);
		json_decref(health);
		if (err < 0)
			goto done;
	}

	/* An image and its initrd each: at most two files per image. */
	files = ud_calloc(2 * b->nimages, sizeof(*files));
	for (i = 0; i < b->nimages; i++) {
		const struct ud_build_image *img = &b->images[i];
		struct ud_manifest_image mi = { 0 };
		char *name = ud_publish_image_name(img->spec->target,
						   img->spec->arch, c);

		files[nfiles++].name = name;
		if ((err = store_file(r, img->path, c,
				      &files[nfiles - 1].oid)) < 0)
			goto done;
		mi.target = img->spec->target;
		mi.arch = img->spec->arch;
		mi.file = name;
		memcpy(mi.sha256, img->sha256, sizeof(mi.sha256));
		mi.size = img->size;
		mi.compression = c;
		if (img->initrd) {
			name = ud_publish_initrd_name(img->spec->target,
						      img->spec->arch, c);
			files[nfiles++].name = name;
			if ((err = store_file(r, img->initrd, c,
					      &files[nfiles - 1].oid)) < 0)
				goto done;
			mi.initrd_file = name;
			memcpy(mi.initrd_sha256, img->initrd_sha256,
			       sizeof(mi.initrd_sha256));
			mi.initrd_size = img->initrd_size;
		}
		ud_manifest_add_image(m, &mi);
	}
	if ((err = ud_deployrepo_write_blob(r, b->log.ptr, b->log.size,
					    &log_oid)) < 0)
		goto done;
	err = ud_release_publish(r, m, files, nfiles, &log_oid);
done:
	if (files) {
		for (i = 0; i < nfiles; i++)
			free((char *)files[i].name);
		free(files);
	}
	if (err < 0)
		ud_manifest_free(m);
	else
		*out = m;
	return err;
}
