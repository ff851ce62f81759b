/*
 * manifest.json: data-driven invalid cases (data/manifest/invalid/<case>/
 * input and its exact error), valid inputs, and the round trip the
 * deployment repository relies on: format(parse(x)) is stable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cases.h"
#include "errors.h"
#include "manifest.h"

static void invalid_case(void **state)
{
	const char *dir = *state;
	struct ud_manifest *m = NULL;
	char *input, *want;
	size_t len;
	int err;

	input = read_case(dir, "input", &len);
	want = read_case(dir, "error", NULL);
	want[strcspn(want, "\n")] = '\0';
	ud_error_clear();
	err = ud_manifest_parse(&m, "manifest.json", input, len);
	assert_null(m);
	assert_string_equal(ud_error_last(), want);
	assert_int_equal(err, strstr(want, "missing key") ? UD_ENOTFOUND
							  : UD_EINVALID);
	free(input);
	free(want);
}

static char *format(const struct ud_manifest *m)
{
	struct ud_buf b = UD_BUF_INIT;

	assert_int_equal(ud_manifest_format(&b, m), 0);
	return ud_buf_detach(&b);
}

/* Every valid input parses, and formatting is a fixed point: what we
 * write reads back to the same manifest, which writes the same bytes. */
static void valid_case(void **state)
{
	const char *dir = *state;
	struct ud_manifest *m = NULL, *again = NULL;
	char *input, *text, *text2;
	size_t len;

	input = read_case(dir, "input", &len);
	if (ud_manifest_parse(&m, "manifest.json", input, len) < 0)
		fail_msg("%s: %s", dir, ud_error_last());
	text = format(m);
	if (ud_manifest_parse(&again, "manifest.json", text, strlen(text)) < 0)
		fail_msg("%s reformatted: %s", dir, ud_error_last());
	text2 = format(again);
	assert_string_equal(text, text2);
	ud_manifest_free(m);
	ud_manifest_free(again);
	free(input);
	free(text);
	free(text2);
}

static struct ud_manifest *parse_valid(const char *name, char **input)
{
	struct ud_manifest *m = NULL;
	char *dir = ud_asprintf("%s/manifest/valid/%s", data_dir(), name);
	size_t len;

	*input = read_case(dir, "input", &len);
	if (ud_manifest_parse(&m, "manifest.json", *input, len) < 0)
		fail_msg("%s: %s", dir, ud_error_last());
	free(dir);
	return m;
}

static void full_fields(void **state)
{
	struct ud_manifest *m;
	char *input;

	(void)state;
	m = parse_valid("full", &input);
	assert_string_equal(m->app, "hello");
	assert_int_equal(m->release, 7);
	assert_string_equal(m->created_at, "2026-11-26T12:00:00Z");
	assert_string_equal(m->source.commit,
			    "0123456789abcdef0123456789abcdef01234567");
	assert_string_equal(m->source.ref, "refs/heads/main");
	assert_string_equal(m->source.subject, "Say hello in French");
	assert_string_equal(m->source.author, "Ada <ada@example.org>");
	assert_string_equal(m->build.command, "make");
	assert_int_equal(m->build.duration_ms, 1234);
	assert_string_equal(m->build.builder, "ci-1");
	assert_int_equal(m->nimages, 2);
	assert_string_equal(m->images[0].file, "unix-x86_64.img");
	assert_int_equal(m->images[0].size, 123456);
	assert_int_equal(m->images[0].compression, UD_COMP_NONE);
	assert_string_equal(m->images[1].target, "qemu");
	assert_string_equal(m->images[1].sha256,
			    "0123456789abcdef0123456789abcdef"
			    "0123456789abcdef0123456789abcdef");
	assert_int_equal(m->images[1].compression, UD_COMP_ZSTD);
	assert_int_equal(m->rollback_of, 0);
	assert_int_equal(m->run.port, 8080);
	assert_int_equal(m->run.memory_mb, 128);
	assert_int_equal(m->run.args.n, 1);
	assert_string_equal(m->run.args.v[0], "-v");
	assert_string_equal(m->run.env.v[0], "LOG=1");
	assert_int_equal(m->health.kind, UD_HEALTH_HTTP);
	assert_string_equal(m->health.http_path, "/health");
	assert_int_equal(m->health.timeout_s, 5);
	assert_int_equal(m->health.rollback, 0);
	ud_manifest_free(m);
	free(input);
}

/* The stored form is exactly SPEC §3's layout: the input file was written
 * in that form, so formatting what it parses to must give it back. */
static void format_matches_stored_form(void **state)
{
	struct ud_manifest *m;
	char *input, *text;

	(void)state;
	m = parse_valid("full", &input);
	text = format(m);
	assert_string_equal(text, input);
	ud_manifest_free(m);
	free(input);
	free(text);
}

/* An image's initrd: its own file and digest, the image's compression;
 * written in the same stored form, absent when there is none. */
static void initrd_fields(void **state)
{
	struct ud_manifest *m, *d;
	char *input, *text;

	(void)state;
	m = parse_valid("initrd", &input);
	assert_null(m->images[0].initrd_file);
	assert_string_equal(m->images[1].initrd_file,
			    "qemu-x86_64.initrd.zst");
	assert_int_equal(m->images[1].initrd_size, 4096);
	assert_int_equal(strspn(m->images[1].initrd_sha256, "c"), 64);
	text = format(m);
	assert_string_equal(text, input);
	free(text);
	d = ud_manifest_dup(m);
	assert_string_equal(d->images[1].initrd_file,
			    "qemu-x86_64.initrd.zst");
	assert_string_equal(d->images[1].initrd_sha256,
			    m->images[1].initrd_sha256);
	ud_manifest_free(d);
	ud_manifest_free(m);
	free(input);
}

static void defaults_and_rollback(void **state)
{
	struct ud_manifest *m;
	char *input;

	(void)state;
	m = parse_valid("no-run-health", &input);
	assert_int_equal(m->rollback_of, 0);
	assert_int_equal(m->run.port, 0);
	assert_int_equal(m->run.memory_mb, 64);
	/* Manifests from before run.restart: today's behaviour. */
	assert_int_equal(m->run.restart, UD_RESTART_ALWAYS);
	assert_int_equal(m->health.kind, UD_HEALTH_TCP);
	assert_int_equal(m->health.timeout_s, 20);
	assert_int_equal(m->health.rollback, 1);
	{
		struct ud_manifest *d;

		m->run.restart = UD_RESTART_NEVER;
		d = ud_manifest_dup(m);
		assert_int_equal(d->run.restart, UD_RESTART_NEVER);
		ud_manifest_free(d);
	}
	ud_manifest_free(m);
	free(input);
	m = parse_valid("rollback", &input);
	assert_int_equal(m->release, 8);
	assert_int_equal(m->rollback_of, 3);
	ud_manifest_free(m);
	free(input);
}

/* What the publisher does: start empty, fill in, add images, format. */
static void build_format_parse(void **state)
{
	struct ud_manifest_image img = { 0 };
	struct ud_manifest *m = ud_manifest_new(), *back = NULL, *d;
	char *text, *text2;

	(void)state;
	m->app = ud_strdup("blog");
	m->release = 2;
	m->created_at = ud_strdup("2026-01-02T03:04:05Z");
	memset(m->source.commit, 'f', 40);
	m->source.ref = ud_strdup("refs/heads/main");
	/* Latin-1 from an old commit: kept, with the bad byte replaced. */
	m->source.subject = ud_strdup("caf\xe9");
	m->source.author = ud_strdup("Bob");
	m->build.command = ud_strdup("make");
	m->build.builder = ud_strdup("box");
	img.target = "unix";
	img.arch = "aarch64";
	img.file = "unix-aarch64.img.xz";
	memset(img.sha256, 'b', 64);
	img.size = 5000000000ULL;
	img.compression = UD_COMP_XZ;
	ud_manifest_add_image(m, &img);
	img.target = "hvt";
	img.file = "hvt-aarch64.img";
	img.compression = UD_COMP_GZIP;
	ud_manifest_add_image(m, &img);
	m->rollback_of = 1;

	text = format(m);
	if (ud_manifest_parse(&back, "manifest.json", text, strlen(text)) < 0)
		fail_msg("%s\n%s", ud_error_last(), text);
	assert_string_equal(back->source.subject, "caf?");
	assert_int_equal(back->images[0].size, 5000000000ULL);
	assert_int_equal(back->images[0].compression, UD_COMP_XZ);
	assert_int_equal(back->images[1].compression, UD_COMP_GZIP);
	assert_int_equal(back->rollback_of, 1);
	assert_int_equal(back->health.kind, UD_HEALTH_TCP);

	assert_ptr_equal(ud_manifest_pick(back, "hvt", "aarch64"),
			 &back->images[1]);
	assert_null(ud_manifest_pick(back, "hvt", "x86_64"));
	assert_null(ud_manifest_pick(back, "qemu", "aarch64"));

	/* A duplicate is deep: freeing the original leaves it intact. */
	d = ud_manifest_dup(back);
	ud_manifest_free(back);
	text2 = format(d);
	assert_string_equal(text, text2);
	assert_ptr_equal(ud_manifest_pick(d, "unix", "aarch64"),
			 &d->images[0]);
	ud_manifest_free(d);
	ud_manifest_free(m);
	free(text);
	free(text2);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(full_fields),
		cmocka_unit_test(format_matches_stored_form),
		cmocka_unit_test(defaults_and_rollback),
		cmocka_unit_test(initrd_fields),
		cmocka_unit_test(build_format_parse),
	};
	return run_with_cases("manifest", fixed, sizeof(fixed) / sizeof(fixed[0]),
			      invalid_case, valid_case);
}
