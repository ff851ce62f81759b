/*
 * backend_firecracker.c: a Firecracker microVM described by the rendered
 * firecracker.json (templates/backends), booted with `--no-api`; its
 * serial console is stdout (the instance log). Needs KVM. The image's
 * initrd, if any, is boot-source's initrd_path.
 */
#include <jansson.h>
#include <stdlib.h>

#include "backend.h"
#include "buf.h"

/* The app's volumes as the config's drives: JSON objects of our making,
 * put in the template's "drives" list as they are. */
static int fc_prepare(const struct backend_env *env,
		      const struct backend_inst *in, struct backend_vars *v)
{
	struct ud_buf drives = UD_BUF_INIT;
	size_t i;

	(void)env;
	for (i = 0; i < in->nvols; i++) {
		json_t *d = json_pack("{s:s, s:s, s:b, s:b}", "drive_id",
				      in->vols[i].name, "path_on_host",
				      in->vols[i].path, "is_root_device", 0,
				      "is_read_only", 0);
		char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;

		if (text)
			ud_buf_printf(&drives, "%s%s", i ? ", " : "", text);
		free(text);
		json_decref(d);
	}
	backend_var_raw(v, "drives", drives.size ? drives.ptr : "");
	ud_buf_free(&drives);
	/* boot-source's optional key, with its comma: absent without one. */
	if (in->initrd) {
		json_t *p = json_string(in->initrd);
		char *text = p ? json_dumps(p, JSON_ENCODE_ANY) : NULL;

		if (text)
			ud_buf_printf(&drives, " \"initrd_path\": %s,", text);
		backend_var_raw(v, "boot_initrd",
				drives.size ? drives.ptr : "");
		free(text);
		json_decref(p);
		ud_buf_free(&drives);
	}
	return 0;
}

const struct backend backend_firecracker = {
	.target = "firecracker",
	.flags = BACKEND_TEMPLATE | BACKEND_OWN_ARCH | BACKEND_KVM |
		 BACKEND_NETWORK | BACKEND_INITRD |
		 BACKEND_VOLUMES,
	.config_ext = "json",
	.prepare = fc_prepare,
};
