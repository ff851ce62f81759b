/*
 * backend_solo5.c: Solo5's tenders, solo5-hvt (KVM) and solo5-spt
 * (seccomp, no KVM). Their command line is the one Solo5's
 * docs/building.md documents:
 *
 *   solo5-hvt [ --mem=MB ] [ --net:NAME=IFACE [ --net-mac:NAME=MAC ] ]
 *             [ --block:NAME=PATH ] [ -- ] KERNEL [ ARGS ]
 *
 * and the devices are exactly those the image's manifest note declares
 * (lib/solo5.c reads it; backend.c maps each network device to a tap and
 * each block device to the app's volume of that name). A tender refuses
 * a device the image does not declare, and one it declares but is not
 * given.
 */
#include "backend.h"
#include "buf.h"

static int solo5_prepare(const struct backend_env *env,
			 const struct backend_inst *in, struct backend_vars *v)
{
	struct ud_strvec *dev = backend_list(v, "devices");
	size_t i;

	(void)env;
	for (i = 0; i < in->nnets; i++) {
		/* tenders/common/tap_attach.c: "@N" is an open tap. */
		if (in->tap_fds)
			ud_strvec_pushf(dev, "--net:%s=@%zu", in->nets[i].name,
					3 + i);
		else
			ud_strvec_pushf(dev, "--net:%s=%s", in->nets[i].name,
					in->nets[i].tap);
		ud_strvec_pushf(dev, "--net-mac:%s=%s", in->nets[i].name,
				in->nets[i].mac);
	}
	for (i = 0; i < in->nvols; i++)
		ud_strvec_pushf(dev, "--block:%s=%s", in->vols[i].name,
				in->vols[i].path);
	return 0;
}

const struct backend backend_hvt = {
	.target = "hvt",
	.flags = BACKEND_TEMPLATE | BACKEND_OWN_ARCH | BACKEND_KVM |
		 BACKEND_SOLO5 | BACKEND_VOLUMES | BACKEND_NETWORK |
		 BACKEND_TAP_FD,
	.prepare = solo5_prepare,
};

const struct backend backend_spt = {
	.target = "spt",
	.flags = BACKEND_TEMPLATE | BACKEND_OWN_ARCH | BACKEND_SOLO5 | BACKEND_VOLUMES |
		 BACKEND_NETWORK | BACKEND_TAP_FD,
	.prepare = solo5_prepare,
};
