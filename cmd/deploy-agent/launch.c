/*
 * launch.c: the agent's side of the backend table (backend.h). It turns an
 * app and one of its instances into the small environment a row sees
 * (struct backend_env, struct backend_inst): is the target runnable on
 * this host, is the image one it can run, the instance's command line,
 * a clean shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch.h"
#include "backend.h"
#include "buf.h"
#include "errors.h"
#include "ipam.h"
#include "log.h"
#include "names.h"
#include "priv.h"
#include "network.h"
#include "solo5.h"
#include "volume.h"

/* The directory above the binary's that holds templates/backends: bin/
 * in the source tree, build/san/bin for the sanitizer build, PREFIX/bin
 * once installed (PREFIX/share/unideploy/templates). */
char *launch_templates_dir(struct agent *a)
{
	static const char *const under[] = {
		"templates/backends", "share/unideploy/templates/backends"
	};
	char *exe, *slash, *try;
	int up;
	size_t i;

	if (a->backends_dir)
		return ud_strdup(a->backends_dir);
	if (!(exe = realpath("/proc/self/exe", NULL)))
		return ud_strdup("/usr/local/share/unideploy/templates/backends");
	for (up = 0; up < 4 && (slash = strrchr(exe, '/')) && slash != exe;
	     up++) {
		*slash = '\0';
		if (up == 0)
			continue;
		for (i = 0; i < sizeof(under) / sizeof(*under); i++) {
			try = ud_asprintf("%s/%s", exe, under[i]);
			if (access(try, F_OK) == 0) {
				free(exe);
				return try;
			}
			free(try);
		}
	}
	free(exe);
	return ud_strdup("/usr/local/share/unideploy/templates/backends");
}

struct env_hold {
	struct backend_env env;
	char *templates;
};

static void env_of(struct agent *a, struct env_hold *h)
{
	h->templates = launch_templates_dir(a);
	h->env.host = a->conf->host;
	h->env.state_dir = a->conf->state_dir;
	h->env.templates = h->templates;
	h->env.kvm = a->kvm_path ? a->kvm_path : "/dev/kvm";
}

/* The image's arch against the row: no program or device looked at. */
static int check_arch(struct agent *a, const struct backend *b,
		      const char *target, const char *arch)
{
	if (!b)
		return ud_error_set(UD_EINVALID,
				    "unknown target %s (this agent boots %s)",
				    target, backend_names());
	if ((b->flags & BACKEND_OWN_ARCH) && strcmp(arch, ud_host_arch()))
		return ud_error_set(UD_EINVALID,
				    "backend %s cannot boot %s images on host "
				    "%s (%s)",
				    target, arch, a->conf->host,
				    ud_host_arch());
	if (ud_name_check_arch(arch) < 0)
		return ud_error_set(UD_EINVALID, "invalid arch '%s'", arch);
	return 0;
}

int launch_check(struct agent *a, const char *target, const char *arch)
{
	const struct backend *b = backend_find(target);
	struct env_hold h;
	char *prog = NULL, *path = NULL;
	int err, fd;

	if ((err = check_arch(a, b, target, arch)) < 0)
		return err;
	env_of(a, &h);
	if ((b->flags & BACKEND_TEMPLATE) &&
	    (err = backend_template_program(&h.env, b, arch, &prog)) == 0 &&
	    !(path = backend_find_program(prog)))
		err = ud_error_set(UD_ENOTFOUND, "backend %s needs %s on host %s",
				   target, prog, a->conf->host);
	if (!err && (b->flags & BACKEND_KVM)) {
		if ((fd = open(h.env.kvm, O_RDWR | O_CLOEXEC)) < 0)
			err = ud_error_set(UD_ENOTFOUND,
					   "backend %s needs %s on host %s "
					   "(%s)",
					   target, h.env.kvm, a->conf->host,
					   strerror(errno));
		else
			close(fd);
	}
	free(prog);
	free(path);
	free(h.templates);
	return err;
}

static const struct ud_manifest_image *inst_image(const struct ud_manifest *m,
						  const struct instance *in)
{
	size_t i;

	for (i = 0; i < m->nimages; i++)
		if (!strcmp(m->images[i].sha256, in->sha256))
			return &m->images[i];
	return NULL;
}

static void push_path(struct ud_strvec *paths, char *path)
{
	ud_strvec_push(paths, path);
	free(path);
}

/*
 * The volumes an instance gets: a Solo5 image exactly the block devices
 * its manifest note declares (a tender refuses any other, and needs all
 * of them), a VM every one of run.block. Paths owned by `paths`.
 */
static int instance_volumes(struct agent *a, const struct app *app,
			    const struct ud_manifest *m,
			    const struct backend *b, const char *target,
			    const char *image, struct backend_vol *vols,
			    size_t max, struct ud_strvec *paths, size_t *n)
{
	struct ud_solo5_image img = { 0 };
	size_t i;
	int err = 0;

	*n = 0;
	if (b->flags & BACKEND_SOLO5) {
		if ((err = ud_solo5_read_file(&img, image)) < 0)
			goto done;
		for (i = 0; i < img.ndevices; i++) {
			const char *name = img.devices[i].name;
			const struct ud_block_spec *v;

			if (img.devices[i].type != UD_SOLO5_BLOCK_BASIC)
				continue;
			if (!(v = ud_run_spec_block(&m->run, name))) {
				err = ud_error_set(UD_EINVALID,
						   "release %d: the image "
						   "declares block device '%s' "
						   "but run.block has no volume "
						   "of that name",
						   m->release, name);
				goto done;
			}
			if (*n == max) {
				err = ud_error_set(UD_EINVALID,
						   "release %d: more than %zu "
						   "block devices",
						   m->release, max);
				goto done;
			}
			push_path(paths, volume_path(a, app->name, name));
			vols[*n].name = v->name;
			vols[(*n)++].path = paths->v[paths->n - 1];
		}
		goto done;
	}
	if (m->run.nblock && !(b->flags & BACKEND_VOLUMES)) {
		err = ud_error_set(UD_EINVALID,
				   "release %d: backend %s cannot attach "
				   "volumes (run.block)",
				   m->release, target);
		goto done;
	}
	for (i = 0; i < m->run.nblock; i++) {
		if (*n == max) {
			err = ud_error_set(UD_EINVALID,
					   "release %d: more than %zu volumes",
					   m->release, max);
			goto done;
		}
		push_path(paths,
			  volume_path(a, app->name, m->run.block[i].name));
		vols[*n].name = m->run.block[i].name;
		vols[(*n)++].path = paths->v[paths->n - 1];
	}
done:
	ud_solo5_image_free(&img);
	return err;
}

int launch_command(struct agent *a, const struct app *app,
		    const struct ud_manifest *m, const char *target,
		    const struct instance *in, const char *rundir,
		    struct ud_strvec *argv)
{
	const struct backend *b = backend_find(target);
	const struct ud_manifest_image *img = inst_image(m, in);
	struct backend_inst bi = { 0 };
	struct ud_strvec args = UD_STRVEC_INIT, names = UD_STRVEC_INIT;
	struct backend_net nets[8];
	struct backend_vol vols[16];
	struct ud_strvec vol_paths = UD_STRVEC_INIT;
	char taps[8][UD_IFNAME_STRLEN], macs[8][UD_MAC_STRLEN];
	char ip[UD_IP_STRLEN], gw[UD_IP_STRLEN];
	struct env_hold h = { 0 };
	char *image = image_path(a, in->sha256), *initrd = NULL;
	char *what = ud_asprintf("instance %d of %s", in->id, app->name);
	size_t k;
	int err;

	bi.arch = img ? img->arch : ud_host_arch();
	if ((err = check_arch(a, b, target, bi.arch)) < 0)
		goto done;
	env_of(a, &h);
	bi.app = app->name;
	bi.id = in->id;
	bi.m = m;
	bi.image = image;
	if (img && img->initrd_file) {
		/* The publish refuses this; a hand-made manifest may not. */
		if (!(b->flags & BACKEND_INITRD)) {
			err = ud_error_set(UD_EINVALID,
					   "release %d: backend %s cannot boot "
					   "an initrd (%s)",
					   m->release, target,
					   img->initrd_file);
			goto done;
		}
		initrd = image_path(a, img->initrd_sha256);
		bi.initrd = initrd;
	}
	bi.rundir = rundir;
	bi.port = in->port;
	if ((err = network_devices(a, target, image, &names)) < 0)
		goto done;
	for (k = 0; k < names.n && k < 8; k++) {
		if ((err = network_tap_name(a, in->id, k, taps[k])) < 0)
			goto done;
		network_mac(a, in->id, k, macs[k]);
		nets[k].name = names.v[k];
		nets[k].tap = taps[k];
		nets[k].mac = macs[k];
	}
	bi.nets = nets;
	bi.nnets = k;
	bi.tap_fds = a->priv && (b->flags & BACKEND_TAP_FD);
	if ((err = instance_volumes(a, app, m, b, target, image, vols, 16,
				    &vol_paths, &bi.nvols)) < 0)
		goto done;
	bi.vols = vols;
	if (in->addr && k) {
		ud_ip_format(ip, in->addr);
		ud_ip_format(gw, ud_subnet_gateway(&a->conf->net_subnet));
		bi.ip = ip;
		bi.gateway = gw;
		bi.prefix = a->conf->net_subnet.prefix;
		bi.mac = macs[0];
		bi.bridge = a->conf->net_bridge;
	}
	if ((err = backend_fill_args(&args, &m->run.args, bi.ip, bi.prefix,
				     bi.gateway, bi.mac, what)) < 0)
		goto done;
	bi.args = &args;
	err = backend_argv(&h.env, b, &bi, argv);
done:
	ud_strvec_free(&args);
	ud_strvec_free(&names);
	ud_strvec_free(&vol_paths);
	free(h.templates);
	free(image);
	free(initrd);
	free(what);
	return err;
}

int launch_shutdown(struct agent *a, const struct app *app,
		     const struct instance *in)
{
	const struct backend *b =
		backend_find(app->place.target ? app->place.target : "unix");
	struct backend_inst bi = { 0 };
	struct env_hold h;
	char *rundir;
	int asked = 0;

	if (!b)
		return 0;
	env_of(a, &h);
	rundir = ud_asprintf("%s/apps/%s/run", a->conf->state_dir, app->name);
	bi.app = app->name;
	bi.id = in->id;
	bi.rundir = rundir;
	if (b->shutdown)
		asked = b->shutdown(&h.env, &bi);
	if (b->config_ext) {
		char *cfg = ud_asprintf("%s/%d.%s", rundir, in->id,
					b->config_ext);

		unlink(cfg);
		free(cfg);
	}
	free(rundir);
	free(h.templates);
	return asked;
}

int launch_check_image(struct agent *a, const char *target,
			const char *image, const char *what,
			const struct ud_manifest *m)
{
	struct ud_solo5_image img = { 0 };
	struct ud_strvec nets = UD_STRVEC_INIT;
	int err;

	(void)m;
	if ((err = ud_solo5_read_file(&img, image)) < 0) {
		ud_error_prefix("%s", what);
		goto done;
	}
	if ((err = ud_solo5_check_target(&img, what, target)) < 0)
		goto done;
	/* The devices it declares must be there to attach. */
	err = network_devices(a, target, image, &nets);
done:
	ud_strvec_free(&nets);
	ud_solo5_image_free(&img);
	return err;
}

int launch_spawn(struct agent *a, const struct app *app,
		 const struct ud_manifest *m, const char *target,
		 const struct instance *in, const char *rundir,
		 char *const argv[], char *const env[], int log_fd, pid_t *pid)
{
	const struct backend *b = backend_find(target);
	const struct ud_manifest_image *img = inst_image(m, in);
	struct ud_strvec names = UD_STRVEC_INIT, taps = UD_STRVEC_INIT;
	char tap[UD_IFNAME_STRLEN], *image = NULL;
	unsigned long long t;
	size_t k;
	int err;

	if (!a->priv)
		return ud_spawn_as(pid, argv, env, rundir, log_fd,
				   a->inst_cred);
	image = image_path(a, in->sha256);
	/* The taps the command line names by descriptor (launch_command
	 * set tap_fds for the same rows). */
	if (b && (b->flags & BACKEND_TAP_FD)) {
		if ((err = network_devices(a, target, image, &names)) < 0)
			goto done;
		for (k = 0; k < names.n; k++) {
			if ((err = network_tap_name(a, in->id, k, tap)) < 0)
				goto done;
			ud_strvec_push(&taps, tap);
		}
	}
	err = priv_spawn(a->priv, target, img ? img->arch : ud_host_arch(),
			 app->name, in->id, image, rundir, taps.v, taps.n,
			 argv, env, log_fd, pid, &t);
done:
	ud_strvec_free(&names);
	ud_strvec_free(&taps);
	free(image);
	return err;
}
