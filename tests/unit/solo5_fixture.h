/*
 * solo5_fixture.h: small ELF64 Solo5 images built byte by byte, in the
 * layout Solo5 v0.12 links, for the tests of solo5.c and of what uses it.
 * Header-only (static inline): each test takes what it needs.
 */
#ifndef UD_TEST_SOLO5_FIXTURE_H
#define UD_TEST_SOLO5_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "solo5.h"

#define ABI1 0x31494241u
#define MFT1 0x3154464du
#define RESERVED_FIRST (1u << 30)
#define ENTRY 104

struct dev {
	const char *name;
	uint32_t type;
};

/* A built image and where its parts are, for the corruption tests. */
struct elf {
	unsigned char b[16384];
	size_t len;
	size_t phoff, abi, mft; /* abi, mft: note offsets (0: none) */
};

enum layout {
	SEGMENTS,     /* PT_NOTE per note, as Solo5's linker scripts */
	ONE_SEGMENT,  /* a foreign note, then both Solo5 notes, in one */
	SECTIONS,     /* no program headers: a relocatable manifest.o */
};

static inline void put16(unsigned char *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static inline void put32(unsigned char *p, uint32_t v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}

static inline void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static inline size_t note_head(unsigned char *p, const char *name, uint32_t descsz,
			uint32_t type)
{
	size_t namesz = strlen(name) + 1;

	put32(p, (uint32_t)namesz);
	put32(p + 4, descsz);
	put32(p + 8, type);
	memcpy(p + 12, name, namesz);
	return 12 + ((namesz + 3) & ~(size_t)3);
}

static inline size_t note_abi(unsigned char *p, uint32_t target, uint32_t version)
{
	size_t n = note_head(p, "Solo5", 16, ABI1);

	put32(p + n, target);
	put32(p + n + 4, version);
	return n + 16;
}

static inline size_t note_mft(unsigned char *p, const struct dev *devs, size_t ndevs)
{
	uint32_t entries = (uint32_t)ndevs + 1;
	size_t n = note_head(p, "Solo5", 12 + entries * ENTRY, MFT1), i;
	unsigned char *m = p + n + 4; /* struct mft, aligned to 8 */

	put32(m, 1);
	put32(m + 4, entries);
	put32(m + 8 + 68, RESERVED_FIRST);
	for (i = 0; i < ndevs; i++) {
		unsigned char *e = m + 8 + (i + 1) * ENTRY;

		memcpy(e, devs[i].name, strlen(devs[i].name) + 1);
		put32(e + 68, devs[i].type);
	}
	return n + 12 + entries * ENTRY;
}

static inline void ehdr(struct elf *e, uint16_t phnum, uint64_t shoff,
		 uint16_t shnum)
{
	memcpy(e->b, "\177ELF\2\1\1", 7);
	put16(e->b + 16, shnum ? 1 : 2); /* ET_REL or ET_EXEC */
	put16(e->b + 18, 62);            /* EM_X86_64 */
	put32(e->b + 20, 1);
	put64(e->b + 32, phnum ? 64 : 0);
	put64(e->b + 40, shoff);
	put16(e->b + 52, 64);
	put16(e->b + 54, 56);
	put16(e->b + 56, phnum);
	put16(e->b + 58, 64);
	put16(e->b + 60, shnum);
}

static inline void phdr(struct elf *e, int i, uint32_t type, size_t off, size_t size)
{
	unsigned char *ph = e->b + 64 + i * 56;

	put32(ph, type);
	put32(ph + 4, 4);
	put64(ph + 8, off);
	put64(ph + 32, size);
	put64(ph + 40, size);
	put64(ph + 48, 4);
}

static inline void shdr(struct elf *e, size_t shoff, int i, uint32_t type,
		 size_t off, size_t size)
{
	unsigned char *sh = e->b + shoff + i * 64;

	put32(sh + 4, type);
	put64(sh + 24, off);
	put64(sh + 32, size);
	put64(sh + 48, 4);
}

/* abi_target 0: no ABI note; ndevs < 0: no manifest note. */
static inline void elf_build(struct elf *e, enum layout layout, uint32_t abi_target,
		  const struct dev *devs, int ndevs)
{
	size_t pos = 64 + 3 * 56, abi_len = 0, mft_len = 0, gnu = 0;

	memset(e, 0, sizeof(*e));
	if (layout == SECTIONS)
		pos = 64;
	if (layout == ONE_SEGMENT) {
		gnu = pos;
		pos += note_head(e->b + pos, "GNU", 4, 1) + 4;
	}
	if (abi_target) {
		e->abi = pos;
		abi_len = note_abi(e->b + pos, abi_target, 2);
		pos += abi_len;
	}
	if (ndevs >= 0) {
		e->mft = pos;
		mft_len = note_mft(e->b + pos, devs, (size_t)ndevs);
		pos += mft_len;
	}
	pos = (pos + 7) & ~(size_t)7;
	switch (layout) {
	case SEGMENTS:
		ehdr(e, 3, 0, 0);
		phdr(e, 0, 1, 0, 64); /* PT_LOAD */
		if (abi_target)
			phdr(e, 1, 4, e->abi, abi_len);
		if (ndevs >= 0)
			phdr(e, 2, 4, e->mft, mft_len);
		break;
	case ONE_SEGMENT:
		ehdr(e, 3, 0, 0);
		phdr(e, 0, 1, 0, 64);
		phdr(e, 1, 4, gnu, pos - gnu);
		break;
	case SECTIONS:
		ehdr(e, 0, pos, 3);
		if (abi_target)
			shdr(e, pos, 1, 7, e->abi, abi_len);
		if (ndevs >= 0)
			shdr(e, pos, 2, 7, e->mft, mft_len);
		pos += 3 * 64;
		break;
	}
	e->phoff = 64;
	e->len = pos;
}

/* ABI target numbers (Solo5's enum mft_abi_target... in abi.h). */
enum { FIX_HVT = 1, FIX_SPT = 2, FIX_VIRTIO = 3, FIX_XEN = 6 };

/* Write an image of `abi_target` declaring `devs` to path; 0 or -1. */
static inline int solo5_fixture_write(const char *path, uint32_t abi_target,
				      const struct dev *devs, int ndevs)
{
	static struct elf e;
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	elf_build(&e, SEGMENTS, abi_target, devs, ndevs);
	ok = fwrite(e.b, 1, e.len, f) == e.len;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

#endif
