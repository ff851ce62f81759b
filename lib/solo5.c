#include "solo5.h"
#include "buf.h"
#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Layouts, from the ELF64 gABI and Solo5's elf_abi.h / mft_abi.h. Every
 * field is read byte by byte as little-endian, so the reader does not
 * depend on the host's struct layout or byte order.
 */
#define EHDR_SIZE 64
#define PHDR_SIZE 56
#define SHDR_SIZE 64
#define PT_NOTE 4
#define SHT_NOTE 7
#define NHDR_SIZE 12

#define NOTE_NAME "Solo5"
#define NOTE_TYPE_ABI 0x31494241u /* "ABI1" */
#define NOTE_TYPE_MFT 0x3154464du /* "MFT1" */

/*
 * The manifest descriptor starts 4 bytes of padding early: Solo5 aligns
 * struct mft (which holds 64-bit fields) to 8 inside the note, and the
 * 20-byte note header leaves it at offset 24. Then come version and entry
 * count (u32 each) and the entries, 104 bytes each on LP64 targets: name
 * at 0, type at 68, the tender's private union and `attached` flag after.
 */
#define MFT_PAD 4
#define MFT_HEAD (MFT_PAD + 8)
#define MFT_VERSION 1
#define MFT_MAX_ENTRIES 64
#define MFT_ENTRY_SIZE 104
#define MFT_NAME_SIZE 68
#define MFT_TYPE_OFF 68
#define MFT_ATTACHED_OFF 96
#define MFT_RESERVED_FIRST (1u << 30)

/* Indexed by Solo5's enum abi_target. */
static const char *const abi_targets[] = {
	NULL, "hvt", "spt", "virtio", "muen", "genode", "xen",
};
#define NTARGETS (sizeof(abi_targets) / sizeof(abi_targets[0]))

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* 1 if [off, off + size) lies within a buffer of `len` bytes. */
static int in_bounds(uint64_t off, uint64_t size, size_t len)
{
	return off <= len && size <= len - off;
}

static uint64_t align4(uint64_t n)
{
	return (n + 3) & ~(uint64_t)3;
}

/* A Solo5 note's descriptor, as found (NULL until then). */
struct note {
	const unsigned char *desc;
	uint32_t size;
};

struct notes {
	struct note abi, mft;
};

/*
 * Walk the notes in [off, off + size) and remember the first Solo5 ABI and
 * manifest notes. A foreign note that overruns the area ends the walk (it
 * is not ours to judge); a Solo5 one that does is an error.
 */
static int scan_notes(struct notes *found, const unsigned char *data,
		      uint64_t off, uint64_t size)
{
	uint64_t pos = 0;

	while (size - pos >= NHDR_SIZE) {
		const unsigned char *n = data + off + pos;
		uint32_t namesz = le32(n), descsz = le32(n + 4);
		uint32_t type = le32(n + 8);
		uint64_t rest = size - pos - NHDR_SIZE;
		int ours = namesz == sizeof(NOTE_NAME) &&
			   rest >= sizeof(NOTE_NAME) &&
			   memcmp(n + NHDR_SIZE, NOTE_NAME,
				  sizeof(NOTE_NAME)) == 0;
		struct note *slot;

		if (align4(namesz) > rest || descsz > rest - align4(namesz)) {
			if (ours)
				return ud_error_set(
					UD_EINVALID,
					"malformed Solo5 note: %u-byte "
					"descriptor runs past its %llu-byte "
					"note area",
					descsz, (unsigned long long)size);
			return 0;
		}
		slot = !ours ? NULL :
		       type == NOTE_TYPE_ABI ? &found->abi :
		       type == NOTE_TYPE_MFT ? &found->mft : NULL;
		if (slot && !slot->desc) {
			slot->desc = n + NHDR_SIZE + align4(namesz);
			slot->size = descsz;
		}
		pos += NHDR_SIZE + align4(namesz) + align4(descsz);
		if (pos > size)
			break;
	}
	return 0;
}

/* The loader needs the program headers, so they must be intact. */
static int scan_segments(struct notes *found, const unsigned char *data,
			 size_t len)
{
	uint64_t phoff = le64(data + 32);
	uint16_t phentsize = le16(data + 54), phnum = le16(data + 56);
	uint16_t i;
	int err;

	if (phnum == 0)
		return 0;
	if (phentsize != PHDR_SIZE)
		return ud_error_set(UD_EINVALID,
				    "malformed ELF: program header size %u, "
				    "expected %u",
				    phentsize, PHDR_SIZE);
	if (!in_bounds(phoff, (uint64_t)phnum * PHDR_SIZE, len))
		return ud_error_set(UD_EINVALID,
				    "malformed ELF: %u program headers at "
				    "offset %llu run past the end of the "
				    "file (%zu bytes)",
				    phnum, (unsigned long long)phoff, len);
	for (i = 0; i < phnum; i++) {
		const unsigned char *ph = data + phoff + (uint64_t)i * PHDR_SIZE;
		uint64_t off = le64(ph + 8), size = le64(ph + 32);

		if (le32(ph) != PT_NOTE)
			continue;
		if (!in_bounds(off, size, len))
			return ud_error_set(UD_EINVALID,
					    "malformed ELF: note segment %u "
					    "(%llu bytes at offset %llu) runs "
					    "past the end of the file (%zu "
					    "bytes)",
					    i, (unsigned long long)size,
					    (unsigned long long)off, len);
		if ((err = scan_notes(found, data, off, size)) < 0)
			return err;
	}
	return 0;
}

/*
 * Section headers are a fallback for notes no segment holds. The loader
 * never reads them (strip tools and packers mangle them), so a table or
 * section past the end of the file is skipped rather than refused.
 */
static int scan_sections(struct notes *found, const unsigned char *data,
			 size_t len)
{
	uint64_t shoff = le64(data + 40);
	uint16_t shentsize = le16(data + 58), shnum = le16(data + 60);
	uint16_t i;
	int err;

	if (shnum == 0 || shentsize != SHDR_SIZE ||
	    !in_bounds(shoff, (uint64_t)shnum * SHDR_SIZE, len))
		return 0;
	for (i = 0; i < shnum; i++) {
		const unsigned char *sh = data + shoff + (uint64_t)i * SHDR_SIZE;
		uint64_t off = le64(sh + 24), size = le64(sh + 32);

		if (le32(sh + 4) != SHT_NOTE || !in_bounds(off, size, len))
			continue;
		if ((err = scan_notes(found, data, off, size)) < 0)
			return err;
	}
	return 0;
}

static int parse_abi(struct ud_solo5_image *img, const struct note *note)
{
	uint32_t target, version;

	if (note->size < 8)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 ABI note: %u bytes, "
				    "expected at least 8",
				    note->size);
	target = le32(note->desc);
	version = le32(note->desc + 4);
	if (target == 0 || target >= NTARGETS)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 ABI note: unknown ABI "
				    "target %u",
				    target);
	img->is_solo5 = 1;
	img->abi_target = ud_strdup(abi_targets[target]);
	img->abi_version = version;
	return 0;
}

static int parse_entry(struct ud_solo5_image *img, const unsigned char *e,
		       uint32_t i)
{
	uint32_t type = le32(e + MFT_TYPE_OFF);
	const char *name = (const char *)e;
	struct ud_solo5_device *dev;

	if (!memchr(e, '\0', MFT_NAME_SIZE))
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: entry %u: "
				    "name not NUL-terminated within %d bytes",
				    i, MFT_NAME_SIZE);
	if (e[MFT_ATTACHED_OFF] != 0)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: entry %u "
				    "('%s'): attached flag set",
				    i, name);
	if (i == 0) {
		if (type != MFT_RESERVED_FIRST || name[0] != '\0')
			return ud_error_set(UD_EINVALID,
					    "malformed Solo5 manifest: first "
					    "entry is not the reserved one");
		return 0;
	}
	if (type >= MFT_RESERVED_FIRST)
		return 0; /* reserved, not a device (as solo5-elftool) */
	if (type != UD_SOLO5_NET_BASIC && type != UD_SOLO5_BLOCK_BASIC)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: entry %u "
				    "('%s'): unknown device type %u",
				    i, name, type);
	if (name[0] == '\0')
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: entry %u: "
				    "empty device name",
				    i);
	dev = &img->devices[img->ndevices++];
	dev->name = ud_strdup(name);
	dev->type = (int)type;
	return 0;
}

static int parse_manifest(struct ud_solo5_image *img, const struct note *note)
{
	const unsigned char *d = note->desc;
	uint32_t version, entries, i;
	uint64_t need;
	int err;

	if (note->size < MFT_HEAD)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: note is %u "
				    "bytes, expected at least %d",
				    note->size, MFT_HEAD);
	version = le32(d + MFT_PAD);
	entries = le32(d + MFT_PAD + 4);
	if (version != MFT_VERSION)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: version %u, "
				    "expected %d",
				    version, MFT_VERSION);
	if (entries < 1 || entries > MFT_MAX_ENTRIES)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: %u entries, "
				    "expected 1 to %d",
				    entries, MFT_MAX_ENTRIES);
	need = MFT_HEAD + (uint64_t)entries * MFT_ENTRY_SIZE;
	if (note->size != need)
		return ud_error_set(UD_EINVALID,
				    "malformed Solo5 manifest: note is %u "
				    "bytes, %u entries need %llu",
				    note->size, entries,
				    (unsigned long long)need);
	img->devices = ud_calloc(entries, sizeof(*img->devices));
	for (i = 0; i < entries; i++)
		if ((err = parse_entry(img, d + MFT_HEAD +
						    (uint64_t)i * MFT_ENTRY_SIZE,
				       i)) < 0)
			return err;
	return 0;
}

int ud_solo5_read_mem(struct ud_solo5_image *img, const void *data,
		      size_t len)
{
	const unsigned char *p = data;
	struct notes found;
	int err = 0;

	memset(img, 0, sizeof(*img));
	memset(&found, 0, sizeof(found));
	if (len < 4 || memcmp(p, "\177ELF", 4) != 0)
		return 0;
	img->is_elf = 1;
	/* Solo5 builds only ELF64 little-endian (x86_64, aarch64); anything
	 * else, such as a 32-bit multiboot kernel, cannot be one. */
	if (len < 6 || p[4] != 2 || p[5] != 1)
		return 0;
	if (len < EHDR_SIZE) {
		err = ud_error_set(UD_EINVALID,
				   "malformed ELF: %zu bytes, shorter than "
				   "the ELF64 header",
				   len);
		goto done;
	}
	if ((err = scan_segments(&found, p, len)) < 0)
		goto done;
	if ((!found.abi.desc || !found.mft.desc) &&
	    (err = scan_sections(&found, p, len)) < 0)
		goto done;
	if (found.abi.desc && (err = parse_abi(img, &found.abi)) < 0)
		goto done;
	if (found.mft.desc && (err = parse_manifest(img, &found.mft)) < 0)
		goto done;
done:
	if (err < 0) {
		ud_solo5_image_free(img);
		img->is_elf = 1;
	}
	return err;
}

int ud_solo5_read_file(struct ud_solo5_image *img, const char *path)
{
	struct stat st;
	void *map = NULL;
	int fd, err = 0;

	memset(img, 0, sizeof(*img));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ud_error_set_errno(errno == ENOENT ? UD_ENOTFOUND :
							    UD_ERROR,
					  "%s: cannot open", path);
	if (fstat(fd, &st) < 0) {
		err = ud_error_set_errno(UD_ERROR, "%s: cannot stat", path);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		err = ud_error_set(UD_ERROR, "%s: not a regular file", path);
		goto done;
	}
	if (st.st_size == 0)
		goto done; /* mmap refuses empty files; not ELF anyway */
	/* Mapped, not read: images may be disk images of gigabytes, and
	 * only the ELF tables and notes are ever touched. */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		map = NULL;
		err = ud_error_set_errno(UD_ERROR, "%s: cannot map", path);
		goto done;
	}
	if ((err = ud_solo5_read_mem(img, map, (size_t)st.st_size)) < 0)
		ud_error_prefix("%s", path);
done:
	if (map)
		munmap(map, (size_t)st.st_size);
	close(fd);
	return err;
}

void ud_solo5_image_free(struct ud_solo5_image *img)
{
	size_t i;

	if (!img)
		return;
	for (i = 0; i < img->ndevices; i++)
		free(img->devices[i].name);
	free(img->devices);
	free(img->abi_target);
	memset(img, 0, sizeof(*img));
}

const char *ud_solo5_devtype_name(int type)
{
	switch (type) {
	case UD_SOLO5_NET_BASIC:
		return "NET_BASIC";
	case UD_SOLO5_BLOCK_BASIC:
		return "BLOCK_BASIC";
	default:
		return "UNKNOWN";
	}
}

/*
 * What each deploy target runs, as a table (one row per target, as the
 * backends are): either it needs a Solo5 unikernel of its own ABI target,
 * or it runs anything except Solo5 unikernels not of ABI target `allow`
 * (NULL: no Solo5 unikernel at all).
 */
enum policy { NEEDS_SOLO5, REFUSES_SOLO5 };

static const struct target_rule {
	const char *target;
	enum policy policy;
	const char *allow;
} target_rules[] = {
	{ "hvt", NEEDS_SOLO5, "hvt" },
	{ "spt", NEEDS_SOLO5, "spt" },
	{ "unix", REFUSES_SOLO5, NULL },
	{ "qemu", REFUSES_SOLO5, "virtio" },
	{ "firecracker", REFUSES_SOLO5, NULL },
	{ "xen", REFUSES_SOLO5, "xen" },
};

int ud_solo5_check_target(const struct ud_solo5_image *img, const char *what,
			  const char *target)
{
	const char *abi = img->abi_target ? img->abi_target : "unknown";
	const struct target_rule *r = NULL;
	size_t i;

	for (i = 0; i < sizeof(target_rules) / sizeof(target_rules[0]); i++)
		if (strcmp(target_rules[i].target, target) == 0)
			r = &target_rules[i];
	if (!r)
		return 0;
	if (r->policy == NEEDS_SOLO5) {
		if (!img->is_elf)
			return ud_error_set(UD_EINVALID,
					    "%s: not an ELF executable; target "
					    "%s needs a Solo5 %s unikernel",
					    what, target, r->allow);
		if (!img->is_solo5)
			return ud_error_set(UD_EINVALID,
					    "%s: not a Solo5 unikernel (no "
					    "Solo5 ABI note); target %s needs "
					    "a Solo5 %s unikernel",
					    what, target, r->allow);
	} else if (!img->is_solo5) {
		return 0;
	}
	if (r->allow && strcmp(abi, r->allow) == 0)
		return 0;
	return ud_error_set(UD_EINVALID,
			    "%s: a Solo5 %s unikernel cannot run as target %s",
			    what, abi, target);
}
