/* Solo5 notes: small ELF64 images built here, byte by byte, in the layout
 * Solo5 v0.12 links (each note in its own PT_NOTE segment, 4 bytes of
 * internal padding before the manifest); every ABI target; 0, 1 and 2
 * devices; malformed notes refused with a message; every truncation and
 * many corruptions read without a crash; the check_target matrix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "solo5.h"

#include "solo5_fixture.h"

static const struct dev net = { "service0", UD_SOLO5_NET_BASIC };
static const struct dev two[] = {
	{ "service0", UD_SOLO5_NET_BASIC },
	{ "storage", UD_SOLO5_BLOCK_BASIC },
};

static void read_ok(struct ud_solo5_image *img, const struct elf *e)
{
	int err = ud_solo5_read_mem(img, e->b, e->len);

	if (err != 0)
		fail_msg("read: %d %s", err, ud_error_last());
}

static void every_abi_target(void **state)
{
	static const char *const names[] = { "hvt",  "spt",    "virtio",
					     "muen", "genode", "xen" };
	struct ud_solo5_image img;
	struct elf e;
	uint32_t t;

	(void)state;
	for (t = 1; t <= 6; t++) {
		elf_build(&e, SEGMENTS, t, NULL, 0);
		read_ok(&img, &e);
		assert_true(img.is_elf);
		assert_true(img.is_solo5);
		assert_string_equal(img.abi_target, names[t - 1]);
		assert_int_equal(img.abi_version, 2);
		assert_int_equal(img.ndevices, 0);
		ud_solo5_image_free(&img);
	}
}

static void devices(void **state)
{
	enum layout layouts[] = { SEGMENTS, ONE_SEGMENT, SECTIONS };
	struct ud_solo5_image img;
	struct elf e;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		elf_build(&e, layouts[i], 1, NULL, 0);
		read_ok(&img, &e);
		assert_string_equal(img.abi_target, "hvt");
		assert_int_equal(img.ndevices, 0);
		ud_solo5_image_free(&img);

		elf_build(&e, layouts[i], 2, &net, 1);
		read_ok(&img, &e);
		assert_string_equal(img.abi_target, "spt");
		assert_int_equal(img.ndevices, 1);
		assert_string_equal(img.devices[0].name, "service0");
		assert_int_equal(img.devices[0].type, UD_SOLO5_NET_BASIC);
		ud_solo5_image_free(&img);

		elf_build(&e, layouts[i], 3, two, 2);
		read_ok(&img, &e);
		assert_int_equal(img.ndevices, 2);
		assert_string_equal(img.devices[0].name, "service0");
		assert_int_equal(img.devices[0].type, UD_SOLO5_NET_BASIC);
		assert_string_equal(img.devices[1].name, "storage");
		assert_int_equal(img.devices[1].type, UD_SOLO5_BLOCK_BASIC);
		ud_solo5_image_free(&img);
	}
}

static void longest_name_and_max_entries(void **state)
{
	char name[68];
	struct dev devs[63];
	struct ud_solo5_image img;
	struct elf e;
	size_t i;

	(void)state;
	memset(name, 'n', 67);
	name[67] = '\0';
	for (i = 0; i < 63; i++)
		devs[i] = (struct dev){ name, UD_SOLO5_BLOCK_BASIC };
	elf_build(&e, SEGMENTS, 1, devs, 63);
	read_ok(&img, &e);
	assert_int_equal(img.ndevices, 63);
	assert_string_equal(img.devices[62].name, name);
	ud_solo5_image_free(&img);
}

static void manifest_without_abi_note(void **state)
{
	struct ud_solo5_image img;
	struct elf e;

	(void)state;
	elf_build(&e, SECTIONS, 0, &net, 1);
	read_ok(&img, &e);
	assert_true(img.is_elf);
	assert_false(img.is_solo5);
	assert_null(img.abi_target);
	assert_int_equal(img.ndevices, 1);
	ud_solo5_image_free(&img);
}

static void not_solo5(void **state)
{
	static const char script[] = "#!/bin/sh\nexec ./app\n";
	unsigned char elf32[52] = { 0x7f, 'E', 'L', 'F', 1, 1, 1 };
	struct ud_solo5_image img;
	struct elf e;

	(void)state;
	assert_int_equal(ud_solo5_read_mem(&img, script, sizeof(script)), 0);
	assert_false(img.is_elf);
	assert_false(img.is_solo5);
	assert_int_equal(ud_solo5_read_mem(&img, "", 0), 0);
	assert_false(img.is_elf);
	assert_int_equal(ud_solo5_read_mem(&img, "\177EL", 3), 0);
	assert_false(img.is_elf);

	/* A 32-bit multiboot kernel (the qemu fixture) is ELF, not Solo5. */
	assert_int_equal(ud_solo5_read_mem(&img, elf32, sizeof(elf32)), 0);
	assert_true(img.is_elf);
	assert_false(img.is_solo5);

	/* An ELF64 with no notes, and one with only foreign notes. */
	elf_build(&e, SEGMENTS, 0, NULL, -1);
	read_ok(&img, &e);
	assert_true(img.is_elf);
	assert_false(img.is_solo5);
	assert_int_equal(img.ndevices, 0);
	elf_build(&e, ONE_SEGMENT, 0, NULL, -1);
	read_ok(&img, &e);
	assert_false(img.is_solo5);
}

/* One corruption of a valid hvt image with two devices, and the message
 * it must give. */
struct bad {
	const char *what;
	void (*corrupt)(struct elf *e);
	const char *message;
};

static unsigned char *mft_desc(struct elf *e)
{
	return e->b + e->mft + 20;
}

static unsigned char *entry(struct elf *e, int i)
{
	return mft_desc(e) + 12 + i * ENTRY;
}

static void mft_descsz_past_segment(struct elf *e)
{
	put32(e->b + e->mft + 4, 12 + 4 * ENTRY);
}

static void mft_descsz_huge(struct elf *e)
{
	put32(e->b + e->mft + 4, 0xfffffff0u);
}

static void mft_descsz_short(struct elf *e)
{
	put32(e->b + e->mft + 4, 8);
}

static void mft_count_beyond_note(struct elf *e)
{
	put32(mft_desc(e) + 8, 4);
}

static void mft_count_zero(struct elf *e)
{
	put32(mft_desc(e) + 8, 0);
}

static void mft_count_huge(struct elf *e)
{
	put32(mft_desc(e) + 8, 0x80000000u);
}

static void mft_version(struct elf *e)
{
	put32(mft_desc(e) + 4, 2);
}

static void name_unterminated(struct elf *e)
{
	memset(entry(e, 2), 'x', 68);
}

static void first_not_reserved(struct elf *e)
{
	put32(entry(e, 0) + 68, UD_SOLO5_NET_BASIC);
}

static void first_named(struct elf *e)
{
	memcpy(entry(e, 0), "boot", 5);
}

static void unknown_devtype(struct elf *e)
{
	put32(entry(e, 1) + 68, 7);
}

static void empty_name(struct elf *e)
{
	entry(e, 2)[0] = '\0';
}

static void attached(struct elf *e)
{
	entry(e, 1)[96] = 1;
}

static void abi_target_unknown(struct elf *e)
{
	put32(e->b + e->abi + 20, 9);
}

static void abi_target_zero(struct elf *e)
{
	put32(e->b + e->abi + 20, 0);
}

static void abi_descsz_short(struct elf *e)
{
	put32(e->b + e->abi + 4, 4);
}

static void abi_descsz_past(struct elf *e)
{
	put32(e->b + e->abi + 4, 20);
}

static void phdrs_past_end(struct elf *e)
{
	put64(e->b + 32, e->len - 100);
}

static void phentsize(struct elf *e)
{
	put16(e->b + 54, 32);
}

static void note_segment_past_end(struct elf *e)
{
	put64(e->b + e->phoff + 2 * 56 + 32, e->len);
}

static void note_offset_wraps(struct elf *e)
{
	put64(e->b + e->phoff + 1 * 56 + 8, UINT64_MAX - 8);
}

static void header_truncated(struct elf *e)
{
	e->len = 40;
}

static const struct bad bad[] = {
	{ "manifest descsz past its segment", mft_descsz_past_segment,
	  "malformed Solo5 note: 428-byte descriptor runs past its 344-byte "
	  "note area" },
	{ "manifest descsz near 4 GiB", mft_descsz_huge,
	  "malformed Solo5 note: 4294967280-byte descriptor runs past its "
	  "344-byte note area" },
	{ "manifest descsz short", mft_descsz_short,
	  "malformed Solo5 manifest: note is 8 bytes, expected at least 12" },
	{ "entry count beyond the note", mft_count_beyond_note,
	  "malformed Solo5 manifest: note is 324 bytes, 4 entries need 428" },
	{ "no entries", mft_count_zero,
	  "malformed Solo5 manifest: 0 entries, expected 1 to 64" },
	{ "entry count huge", mft_count_huge,
	  "malformed Solo5 manifest: 2147483648 entries, expected 1 to 64" },
	{ "manifest version", mft_version,
	  "malformed Solo5 manifest: version 2, expected 1" },
	{ "name not NUL-terminated", name_unterminated,
	  "malformed Solo5 manifest: entry 2: name not NUL-terminated within "
	  "68 bytes" },
	{ "first entry a device", first_not_reserved,
	  "malformed Solo5 manifest: first entry is not the reserved one" },
	{ "first entry named", first_named,
	  "malformed Solo5 manifest: first entry is not the reserved one" },
	{ "unknown device type", unknown_devtype,
	  "malformed Solo5 manifest: entry 1 ('service0'): unknown device "
	  "type 7" },
	{ "empty device name", empty_name,
	  "malformed Solo5 manifest: entry 2: empty device name" },
	{ "attached flag", attached,
	  "malformed Solo5 manifest: entry 1 ('service0'): attached flag set" },
	{ "unknown ABI target", abi_target_unknown,
	  "malformed Solo5 ABI note: unknown ABI target 9" },
	{ "ABI target zero", abi_target_zero,
	  "malformed Solo5 ABI note: unknown ABI target 0" },
	{ "ABI descsz short", abi_descsz_short,
	  "malformed Solo5 ABI note: 4 bytes, expected at least 8" },
	{ "ABI descsz past segment", abi_descsz_past,
	  "malformed Solo5 note: 20-byte descriptor runs past its 36-byte "
	  "note area" },
	{ "program headers past the end", phdrs_past_end,
	  "malformed ELF: 3 program headers at offset 516 run past the end of "
	  "the file (616 bytes)" },
	{ "program header size", phentsize,
	  "malformed ELF: program header size 32, expected 56" },
	{ "note segment past the end", note_segment_past_end,
	  "malformed ELF: note segment 2 (616 bytes at offset 268) runs past "
	  "the end of the file (616 bytes)" },
	{ "note offset wraps", note_offset_wraps,
	  "malformed ELF: note segment 1 (36 bytes at offset "
	  "18446744073709551607) runs past the end of the file (616 bytes)" },
	{ "header truncated", header_truncated,
	  "malformed ELF: 40 bytes, shorter than the ELF64 header" },
};

static void malformed(void **state)
{
	struct ud_solo5_image img;
	struct elf e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err;

		elf_build(&e, SEGMENTS, 1, two, 2);
		bad[i].corrupt(&e);
		ud_error_clear();
		err = ud_solo5_read_mem(&img, e.b, e.len);
		if (err != UD_EINVALID)
			fail_msg("%s: got %d, expected UD_EINVALID",
				 bad[i].what, err);
		if (strcmp(ud_error_last(), bad[i].message) != 0)
			fail_msg("%s: message '%s', expected '%s'",
				 bad[i].what, ud_error_last(),
				 bad[i].message);
		/* Emptied on failure: nothing to free, nothing dangling. */
		assert_null(img.abi_target);
		assert_null(img.devices);
		assert_int_equal(img.ndevices, 0);
		ud_solo5_image_free(&img);
	}
}

/* Every prefix of a valid image, and every byte of it set to a few
 * values, reads to 0 or UD_EINVALID: never a crash (run under
 * SANITIZE=1 to catch a read past the end). Each read gets an exact-size
 * heap copy so that the sanitizer sees the bound. */
static void never_crashes(void **state)
{
	static const unsigned char values[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
	struct ud_solo5_image img;
	struct elf e;
	size_t i, v;

	(void)state;
	elf_build(&e, SEGMENTS, 1, two, 2);
	for (i = 0; i <= e.len; i++) {
		unsigned char *copy = ud_malloc(i ? i : 1);
		int err;

		memcpy(copy, e.b, i);
		err = ud_solo5_read_mem(&img, copy, i);
		assert_true(err == 0 || err == UD_EINVALID);
		ud_solo5_image_free(&img);
		free(copy);
	}
	for (i = 0; i < e.len; i++)
		for (v = 0; v < sizeof(values); v++) {
			unsigned char *copy = ud_malloc(e.len);
			int err;

			memcpy(copy, e.b, e.len);
			copy[i] = values[v];
			err = ud_solo5_read_mem(&img, copy, e.len);
			assert_true(err == 0 || err == UD_EINVALID);
			ud_solo5_image_free(&img);
			free(copy);
		}
}

static void read_file(void **state)
{
	char dir[] = "/tmp/ud-solo5-XXXXXX";
	struct ud_solo5_image img;
	struct elf e;
	char *path, *empty, *missing;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = ud_asprintf("%s/app.hvt", dir);
	empty = ud_asprintf("%s/empty", dir);
	missing = ud_asprintf("%s/missing", dir);

	elf_build(&e, SEGMENTS, 1, two, 2);
	assert_int_equal(ud_write_file_atomic(path, e.b, e.len, 0644), 0);
	assert_int_equal(ud_solo5_read_file(&img, path), 0);
	assert_string_equal(img.abi_target, "hvt");
	assert_int_equal(img.ndevices, 2);
	ud_solo5_image_free(&img);

	/* The path leads a malformed note's message. */
	mft_count_beyond_note(&e);
	assert_int_equal(ud_write_file_atomic(path, e.b, e.len, 0644), 0);
	assert_int_equal(ud_solo5_read_file(&img, path), UD_EINVALID);
	assert_true(strncmp(ud_error_last(), path, strlen(path)) == 0);
	assert_non_null(strstr(ud_error_last(), "4 entries need 428"));

	fd = open(empty, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ud_solo5_read_file(&img, empty), 0);
	assert_false(img.is_elf);

	assert_int_equal(ud_solo5_read_file(&img, missing), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), missing));
	assert_int_equal(ud_solo5_read_file(&img, dir), UD_ERROR);
	assert_non_null(strstr(ud_error_last(), "not a regular file"));

	assert_int_equal(ud_rm_rf(dir), 0);
	free(path);
	free(empty);
	free(missing);
}

static void devtype_names(void **state)
{
	(void)state;
	assert_int_equal(UD_SOLO5_BLOCK_BASIC, 1);
	assert_int_equal(UD_SOLO5_NET_BASIC, 2);
	assert_string_equal(ud_solo5_devtype_name(UD_SOLO5_NET_BASIC),
			    "NET_BASIC");
	assert_string_equal(ud_solo5_devtype_name(UD_SOLO5_BLOCK_BASIC),
			    "BLOCK_BASIC");
	assert_string_equal(ud_solo5_devtype_name(99), "UNKNOWN");
}

/* kind: "script" (not ELF), "elf" (ELF, no Solo5 note) or a Solo5 ABI
 * target. message: NULL when the target runs it. */
struct match {
	const char *kind, *target, *message;
};

static const struct match matrix[] = {
	{ "hvt", "hvt", NULL },
	{ "spt", "spt", NULL },
	{ "hvt", "spt",
	  "dist/app: a Solo5 hvt unikernel cannot run as target spt" },
	{ "spt", "hvt",
	  "dist/app: a Solo5 spt unikernel cannot run as target hvt" },
	{ "virtio", "hvt",
	  "dist/app: a Solo5 virtio unikernel cannot run as target hvt" },
	{ "script", "hvt",
	  "dist/app: not an ELF executable; target hvt needs a Solo5 hvt "
	  "unikernel" },
	{ "script", "spt",
	  "dist/app: not an ELF executable; target spt needs a Solo5 spt "
	  "unikernel" },
	{ "elf", "spt",
	  "dist/app: not a Solo5 unikernel (no Solo5 ABI note); target spt "
	  "needs a Solo5 spt unikernel" },
	{ "script", "unix", NULL },
	{ "elf", "unix", NULL },
	{ "spt", "unix",
	  "dist/app: a Solo5 spt unikernel cannot run as target unix" },
	{ "hvt", "unix",
	  "dist/app: a Solo5 hvt unikernel cannot run as target unix" },
	{ "virtio", "qemu", NULL },
	{ "elf", "qemu", NULL },
	{ "script", "qemu", NULL },
	{ "hvt", "qemu",
	  "dist/app: a Solo5 hvt unikernel cannot run as target qemu" },
	{ "spt", "qemu",
	  "dist/app: a Solo5 spt unikernel cannot run as target qemu" },
	{ "muen", "qemu",
	  "dist/app: a Solo5 muen unikernel cannot run as target qemu" },
	{ "genode", "qemu",
	  "dist/app: a Solo5 genode unikernel cannot run as target qemu" },
	{ "xen", "qemu",
	  "dist/app: a Solo5 xen unikernel cannot run as target qemu" },
	{ "elf", "firecracker", NULL },
	{ "hvt", "firecracker",
	  "dist/app: a Solo5 hvt unikernel cannot run as target "
	  "firecracker" },
	{ "virtio", "firecracker",
	  "dist/app: a Solo5 virtio unikernel cannot run as target "
	  "firecracker" },
	{ "xen", "xen", NULL },
	{ "elf", "xen", NULL },
	{ "hvt", "xen",
	  "dist/app: a Solo5 hvt unikernel cannot run as target xen" },
	{ "virtio", "xen",
	  "dist/app: a Solo5 virtio unikernel cannot run as target xen" },
	{ "hvt", "nosuchtarget", NULL },
	{ "script", "nosuchtarget", NULL },
};

static void check_target(void **state)
{
	static const char *const targets[] = { "hvt",  "spt",    "virtio",
					       "muen", "genode", "xen" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		const struct match *m = &matrix[i];
		struct ud_solo5_image img;
		struct elf e;
		uint32_t t = 0, k;
		int err;

		for (k = 0; k < 6; k++)
			if (strcmp(m->kind, targets[k]) == 0)
				t = k + 1;
		if (strcmp(m->kind, "script") == 0) {
			assert_int_equal(ud_solo5_read_mem(&img, "#!/bin/sh\n",
							   10),
					 0);
		} else {
			elf_build(&e, SEGMENTS, t, &net, t ? 1 : -1);
			read_ok(&img, &e);
		}
		ud_error_clear();
		err = ud_solo5_check_target(&img, "dist/app", m->target);
		if (!m->message && err != 0)
			fail_msg("%s as %s refused: %s", m->kind, m->target,
				 ud_error_last());
		if (m->message && err != UD_EINVALID)
			fail_msg("%s as %s accepted", m->kind, m->target);
		if (m->message && strcmp(ud_error_last(), m->message) != 0)
			fail_msg("%s as %s: '%s', expected '%s'", m->kind,
				 m->target, ud_error_last(), m->message);
		ud_solo5_image_free(&img);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_abi_target),
		cmocka_unit_test(devices),
		cmocka_unit_test(longest_name_and_max_entries),
		cmocka_unit_test(manifest_without_abi_note),
		cmocka_unit_test(not_solo5),
		cmocka_unit_test(malformed),
		cmocka_unit_test(never_crashes),
		cmocka_unit_test(read_file),
		cmocka_unit_test(devtype_names),
		cmocka_unit_test(check_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
