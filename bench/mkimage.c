/*
 * mkimage: a deterministic stand-in for a unikernel image, for `make bench`.
 *
 *   mkimage OUT RELEASE [SIZE_MIB]     (SIZE_MIB defaults to 32)
 *
 * The image resembles a kernel: machine-code-like bytes (a skewed alphabet,
 * compresses about 2:1), symbol and data tables (repetitive records,
 * compresses well), zero padding (bss), and pseudo-random sections (an
 * embedded compressed initramfs: incompressible). Release k is release 0
 * with the edits of releases 1..k applied, each a few 1 KiB runs rewritten at
 * offsets of its own, so consecutive releases differ the way successive
 * builds of a slightly changed program do: a little, in a few places.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EDITS_PER_RELEASE 4
#define EDIT_LEN 1024

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Code-like bytes: instructions drawn, with a skew, from a vocabulary of
 * short byte sequences, some followed by a random immediate, so there are
 * both repeats for LZ matching and noise, as in real machine code. */
#define VOCAB 1024
static void fill_code(uint8_t *p, size_t n, uint64_t *s)
{
	static uint8_t insn[VOCAB][8], len[VOCAB];
	static int ready;
	size_t i = 0;

	if (!ready) {
		uint64_t v = 7;

		for (int k = 0; k < VOCAB; k++) {
			uint64_t r = splitmix64(&v);

			len[k] = 1 + r % 7;
			memcpy(insn[k], &r, 8);
		}
		ready = 1;
	}
	while (i < n) {
		uint64_t r = splitmix64(s);
		/* the product of two uniforms favours small indices */
		unsigned k = (unsigned)(((r & 0x3ff) * ((r >> 10) & 0x3ff)) >> 10);

		for (int j = 0; j < len[k] && i < n; j++)
			p[i++] = insn[k][j];
		if (((r >> 20) & 7) == 0)
			for (int j = 0; j < 4 && i < n; j++)
				p[i++] = (uint8_t)(r >> (32 + 8 * j));
	}
}

/* Symbol-table-like records: an address, a size and a name. */
static void fill_tables(uint8_t *p, size_t n, uint64_t *s)
{
	uint64_t addr = 0xffffffff81000000ULL;
	size_t i = 0;

	while (i < n) {
		char rec[64];
		uint64_t r = splitmix64(s);
		int len = snprintf(rec, sizeof(rec), "%016llx T sym_%05u_%s\n",
				   (unsigned long long)addr,
				   (unsigned)(r % 40000),
				   (r >> 32) & 1 ? "init" : "handler");

		addr += 16 + (r >> 40) % 512;
		for (int j = 0; j < len && i < n; j++)
			p[i++] = (uint8_t)rec[j];
	}
}

static void fill_random(uint8_t *p, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t r = splitmix64(s);

		memcpy(p + i, &r, n - i < 8 ? n - i : 8);
	}
}

static void make_base(uint8_t *img, size_t size)
{
	/* Layout in 32nds of the image: 16 code, 8 tables, 4 zero, 4 random. */
	size_t unit = size / 32;
	uint64_t s = 42;

	fill_code(img, 16 * unit, &s);
	fill_tables(img + 16 * unit, 8 * unit, &s);
	memset(img + 24 * unit, 0, 4 * unit);
	fill_random(img + 28 * unit, size - 28 * unit, &s);
}

static void apply_release(uint8_t *img, size_t size, unsigned k)
{
	uint64_t s = 0x5eed0000ULL + k;

	for (int e = 0; e < EDITS_PER_RELEASE; e++) {
		size_t off = splitmix64(&s) % (size - EDIT_LEN);

		fill_code(img + off, EDIT_LEN, &s);
	}
}

int main(int argc, char **argv)
{
	unsigned long release, mib = 32;
	uint8_t *img;
	size_t size;
	FILE *f;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: mkimage OUT RELEASE [SIZE_MIB]\n");
		return 2;
	}
	release = strtoul(argv[2], NULL, 10);
	if (argc == 4)
		mib = strtoul(argv[3], NULL, 10);
	if (mib == 0 || mib > 4096) {
		fprintf(stderr, "mkimage: SIZE_MIB must be 1..4096\n");
		return 2;
	}
	size = mib << 20;
	if (!(img = malloc(size))) {
		fprintf(stderr, "mkimage: out of memory\n");
		return 1;
	}
	make_base(img, size);
	for (unsigned long k = 1; k <= release; k++)
		apply_release(img, size, (unsigned)k);

	if (!(f = fopen(argv[1], "wb")) || fwrite(img, 1, size, f) != size ||
	    fclose(f) != 0) {
		fprintf(stderr, "mkimage: %s: %s\n", argv[1], strerror(errno));
		free(img);
		return 1;
	}
	free(img);
	return 0;
}
