/*
 * solo5.h: what a Solo5 unikernel says about itself, read from its ELF notes
 * in plain C (no libelf, no solo5-elftool), and whether a deploy target can
 * run it.
 *
 * A Solo5 image is an ELF64 little-endian executable carrying two notes
 * named "Solo5": the ABI note (".note.solo5.abi": ABI target and version)
 * and the manifest note (".note.solo5.manifest": the devices it wants).
 * Notes are found through the PT_NOTE program headers, and through the
 * SHT_NOTE section headers when a program header holds none.
 *
 * Ownership: a struct ud_solo5_image owns its strings and device array;
 * release them with ud_solo5_image_free(). The readers zero the struct
 * first, so it needs no initialisation and is empty again after an error.
 *
 * Errors: the readers return 0 for any file they could read that is not
 * ELF, is ELF but not ELF64 little-endian (a 32-bit multiboot kernel), or
 * carries no Solo5 notes: is_elf and is_solo5 say which. They return
 * UD_EINVALID (message set) for an ELF64 little-endian file whose header
 * tables run past the end of the file, and for malformed Solo5 notes (sizes,
 * counts, unterminated names, unknown ABI targets or device types): a tender
 * would refuse those too. ud_solo5_read_file() also returns UD_ENOTFOUND or
 * UD_ERROR when the file cannot be opened or read; its messages start with
 * the path.
 */
#ifndef UD_SOLO5_H
#define UD_SOLO5_H

#include <stddef.h>

/* Solo5's own numbers (mft_abi.h, enum mft_type). */
enum ud_solo5_devtype {
	UD_SOLO5_BLOCK_BASIC = 1,
	UD_SOLO5_NET_BASIC = 2,
};

struct ud_solo5_device {
	char *name;
	int type; /* enum ud_solo5_devtype */
};

struct ud_solo5_image {
	int is_elf;       /* the file is an ELF object */
	int is_solo5;     /* it carries a Solo5 ABI note */
	char *abi_target; /* "hvt", "spt", "virtio", "muen", "genode", "xen",
			   * or NULL */
	unsigned abi_version;
	/* From the manifest note, without its reserved first entry. */
	struct ud_solo5_device *devices;
	size_t ndevices;
};

int ud_solo5_read_file(struct ud_solo5_image *img, const char *path);
int ud_solo5_read_mem(struct ud_solo5_image *img, const void *data,
		      size_t len);
void ud_solo5_image_free(struct ud_solo5_image *img); /* accepts NULL */

/* "NET_BASIC", "BLOCK_BASIC", or "UNKNOWN". Never NULL. */
const char *ud_solo5_devtype_name(int type);

/*
 * Is this image runnable by the deploy target? `what` names the image in
 * messages (e.g. "dist/app.hvt"). 0, or UD_EINVALID with a message that
 * names the image, its ABI target and the deploy target:
 *   hvt, spt     only a Solo5 unikernel of that same ABI target;
 *   unix         anything but a Solo5 unikernel;
 *   qemu         anything but a Solo5 unikernel other than virtio;
 *   firecracker  anything but a Solo5 unikernel;
 *   xen          anything but a Solo5 unikernel other than xen.
 * An unknown target gives 0: target names are checked elsewhere
 * (ud_name_check_target).
 */
int ud_solo5_check_target(const struct ud_solo5_image *img, const char *what,
			  const char *target);

#endif
