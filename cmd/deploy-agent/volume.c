/*
 * volume.c: the apps' block volumes (deploy.json run.block), one sparse
 * file per app, device and host: state_dir/volumes/<app>/<device>.img,
 * mode 0600. A volume is created the first time a release that names it
 * is prepared and is never deleted by the agent: swaps, rollbacks and a
 * release that drops the device leave it in place. A release may grow it
 * (the file is extended, the new space reads as zeros; growing the file
 * system inside is the app's business) but never shrink it: that would
 * cut off data, so such a release is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "volume.h"
#include "errors.h"
#include "log.h"
#include "names.h"

char *volume_path(struct agent *a, const char *app, const char *device)
{
	return ud_asprintf("%s/volumes/%s/%s.img", a->conf->state_dir, app,
			   device);
}

static int ensure_one(struct agent *a, const char *app,
		      const struct ud_block_spec *b, int release)
{
	off_t want = (off_t)b->size_mb * 1024 * 1024;
	char *path = volume_path(a, app, b->name);
	struct stat st;
	int fd = -1, err = 0;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		       0600)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "volume %s: cannot open %s",
					 b->name, path);
		goto done;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = ud_error_set(UD_ERROR, "volume %s: %s is not a regular "
				   "file", b->name, path);
		goto done;
	}
	if (st.st_size > want) {
		err = ud_error_set(UD_EINVALID,
				   "volume %s is %lld MB on host %s and "
				   "release %d asks for %d MB: a volume never "
				   "shrinks (keep size_mb at %lld or more)",
				   b->name,
				   (long long)(st.st_size / (1024 * 1024)),
				   a->conf->host, release, b->size_mb,
				   (long long)(st.st_size / (1024 * 1024)));
		goto done;
	}
	if (st.st_size == want)
		goto done;
	/* Sparse: only what the instance writes takes space. */
	if (ftruncate(fd, want) < 0 || fsync(fd) < 0) {
		err = ud_error_set_errno(UD_ERROR, "volume %s: cannot size %s",
					 b->name, path);
		goto done;
	}
	if (st.st_size == 0)
		ud_log_info("%s: volume %s created (%d MB, %s)", app, b->name,
			    b->size_mb, path);
	else
		ud_log_info("%s: volume %s grown from %lld to %d MB", app,
			    b->name, (long long)(st.st_size / (1024 * 1024)),
			    b->size_mb);
done:
	if (fd >= 0)
		close(fd);
	free(path);
	return err;
}

int volume_ensure(struct agent *a, const char *app,
		  const struct ud_manifest *m)
{
	char *dir;
	size_t i;
	int err = 0;

	if (!m->run.nblock)
		return 0;
	if ((err = ud_name_check_app(app)) < 0)
		return err;
	dir = ud_asprintf("%s/volumes/%s", a->conf->state_dir, app);
	if ((err = ud_mkdir_p(dir, 0700)) < 0)
		goto done;
	/* With "user", the instance opens its volumes itself (a VM's
	 * monitor does): it passes through, and owns each volume. */
	{
		char *top = ud_asprintf("%s/volumes", a->conf->state_dir);

		err = agent_share_dir(a, top);
		free(top);
		if (err == 0)
			err = agent_share_dir(a, dir);
	}
	for (i = 0; i < m->run.nblock && !err; i++) {
		char *path = volume_path(a, app, m->run.block[i].name);

		err = ensure_one(a, app, &m->run.block[i], m->release);
		if (err == 0)
			err = agent_give(a, path);
		free(path);
	}
done:
	free(dir);
	return err;
}
