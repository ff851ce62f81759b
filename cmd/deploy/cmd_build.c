/*
 * deploy build: the images of a commit, without publishing anything.
 * --worktree builds the working tree instead, uncommitted changes and all
 * (ud_source_snapshot_worktree): try a deploy.json edit before committing.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build.h"
#include "cli.h"
#include "errors.h"
#include "publish.h"
#include "source.h"

static const char usage[] =
	"deploy build [--source REPO] [--commit REV | --worktree] [--out DIR]";

static const struct cli_opt_help help[] = {
	{ "--source REPO", "the app repository, bare or not (default: the "
			   "repository at or above the current directory)" },
	{ "--commit REV", "the commit to build (default: HEAD)" },
	{ "--worktree",
	  "build the working tree of --source instead of a commit: tracked "
	  "files with their uncommitted changes and untracked files "
	  ".gitignore does not exclude, as git add -A would stage them; "
	  "the repository (index, refs, objects) is left as it was (default: "
	  "off, build --commit)" },
	{ "--out DIR", "copy the built images into DIR, named as a release "
		       "names them (default: none, only their digests are "
		       "printed)" },
	{ NULL, NULL }
};

static void stream(const char *data, size_t len, void *payload)
{
	(void)payload;
	fwrite(data, 1, len, stdout);
	fflush(stdout);
}

static int copy_file(const char *from, const char *to)
{
	struct ud_buf data = UD_BUF_INIT;
	int err;

	if ((err = ud_buf_read_file(&data, from)) == 0)
		err = ud_write_file_atomic(to, data.ptr, data.size, 0755);
	ud_buf_free(&data);
	return err;
}

/* One line per built file ("-----> image qemu/x86_64: N bytes, sha256
 * ..."), and with --out its copy under the name a release would give it. */
static int show_file(const char *kind, const struct ud_build_image *img,
		     const char *path, unsigned long long size,
		     const char *sha256, const char *out)
{
	char *name = !strcmp(kind, "initrd") ?
		ud_publish_initrd_name(img->spec->target, img->spec->arch,
				       UD_COMP_NONE) :
		ud_publish_image_name(img->spec->target, img->spec->arch,
				      UD_COMP_NONE);
	int err = 0;

	printf("-----> %s %s/%s: %llu bytes, sha256 %s", kind,
	       img->spec->target, img->spec->arch, size, sha256);
	if (out) {
		char *dst = ud_asprintf("%s/%s", out, name);

		if ((err = copy_file(path, dst)) == 0)
			printf(" -> %s", dst);
		free(dst);
	}
	putchar('\n');
	free(name);
	return err;
}

int cmd_build(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_OPTIONS,
		{ "source", required_argument, NULL, 's' },
		{ "commit", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "worktree", no_argument, NULL, 'w' },
		{ 0 },
	};
	struct cli_common c = { 0 };
	const char *source = ".", *rev = NULL, *out = NULL;
	int worktree = 0;
	struct ud_build_opts bo = { 0 };
	const char *secrets[3] = { NULL, NULL, NULL };
	struct ud_build *b = NULL;
	git_repository *src = NULL;
	git_oid commit;
	int opt, err, status = 0;

	while ((opt = cli_getopt(argc, argv, "", longopts, &c)) != -1) {
		switch (opt) {
		case 's': source = optarg; break;
		case 'c': rev = optarg; break;
		case 'o': out = optarg; break;
		case 'w': worktree = 1; break;
		case 'h': return cli_help(usage, help);
		default: return cli_usage(usage, "bad option");
		}
	}
	if (optind != argc)
		return cli_usage(usage, "unexpected argument '%s'",
				 argv[optind]);
	if (worktree && rev)
		return cli_usage(usage, "build: --commit and --worktree "
				 "exclude each other");

	secrets[0] = c.ssh.key_text;
	secrets[1] = c.signing_key;
	bo.on_output = stream;
	bo.secrets = secrets;
	if ((err = ud_source_open(&src, source)) < 0 ||
	    (worktree ? (err = ud_source_snapshot_worktree(src, &commit)) :
			(err = ud_source_resolve(src, rev ? rev : "HEAD",
						 &commit))) < 0) {
		status = cli_fail(err, worktree ? "--worktree" : "source");
		goto done;
	}
	if ((err = ud_build_prepare(&b, src, &commit, &bo)) < 0) {
		status = cli_fail(err, "nothing was built");
		goto done;
	}
	printf("-----> %s: building %.7s %s\n", b->cfg->app, b->commit,
	       b->subject);
	fflush(stdout);
	if ((err = ud_build_run(b, &bo)) < 0) {
		status = cli_fail(err, "build failed");
		goto done;
	}
	if (out && (err = ud_mkdir_p(out, 0755)) < 0) {
		status = cli_fail(err, "--out");
		goto done;
	}
	for (size_t i = 0; i < b->nimages; i++) {
		const struct ud_build_image *img = &b->images[i];

		if ((err = show_file("image", img, img->path, img->size,
				     img->sha256, out)) < 0 ||
		    (img->initrd &&
		     (err = show_file("initrd", img, img->initrd,
				      img->initrd_size, img->initrd_sha256,
				      out)) < 0)) {
			status = cli_fail(err, "--out");
			goto done;
		}
	}
	printf("-----> build done in %.1f s (nothing published)\n",
	       (double)b->duration_ms / 1000.0);
done:
	ud_build_free(b);
	git_repository_free(src);
	return status;
}
