/*
 * Tests of state_dir/images (cmd/deploy-agent/images.c): the check before
 * every start. Right bytes pass, once read and then by their stat; a
 * rewrite of the same size is refused and removed; a file that is not
 * executable is refused; without a mirror to unpack it from again, the
 * message does not claim it was.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "errors.h"
#include "images.h"
#include "log.h"

struct fixture {
	char dir[64];
	struct agent a;
	struct ud_agentconf conf;
};

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_agent_images.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	agent_init(&f->a);
	f->conf.host = "test";
	f->conf.state_dir = f->dir;
	f->a.conf = &f->conf;
	f->a.state_path = ud_asprintf("%s/state.json", f->dir);
	f->a.images_dir = ud_asprintf("%s/images", f->dir);
	f->a.mirror_path = ud_asprintf("%s/repo.git", f->dir);
	ud_log_init(UD_LOG_ERROR, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	agent_free(&f->a);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_check_start(void **state)
{
	struct fixture *f = *state;
	struct ud_manifest *m = ud_manifest_new();
	struct ud_manifest_image img = { 0 };
	const char *good = "#!/bin/sh\necho good\n";
	char other[UD_SHA256_HEX];
	char *path;

	assert_int_equal(ud_mkdir_p(f->a.images_dir, 0755), 0);
	m->app = ud_strdup("pong");
	m->release = 3;
	img.target = "unix";
	img.arch = "x86_64";
	img.file = "unix-x86_64.img";
	ud_sha256_mem(img.sha256, good, strlen(good));
	img.size = strlen(good);
	ud_manifest_add_image(m, &img);
	path = image_path(&f->a, img.sha256);

	/* Not there at all. */
	assert_int_equal(images_check_start(&f->a, m, img.sha256),
			 UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "is missing: not started"));

	write_file(path, good, 0755);
	assert_int_equal(images_check_start(&f->a, m, img.sha256), 0);
	assert_int_equal(f->a.nseen, 1);
	assert_int_equal(images_check_start(&f->a, m, img.sha256), 0);
	assert_int_equal(f->a.nseen, 1);

	/* Same size, other bytes: refused, and the file is gone. */
	write_file(path, "#!/bin/sh\necho evil\n", 0755);
	assert_int_equal(images_check_start(&f->a, m, img.sha256),
			 UD_EINVALID);
	assert_non_null(strstr(ud_error_last(),
			       "image unix-x86_64.img no longer matches its "
			       "sha256: not started"));
	assert_null(strstr(ud_error_last(), "unpacked again"));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(f->a.nseen, 0);

	/* Right bytes but not executable: not bootable either. */
	write_file(path, good, 0644);
	assert_int_equal(images_check_start(&f->a, m, img.sha256),
			 UD_EINVALID);

	/* An image the release does not have. */
	ud_sha256_mem(other, "other", 5);
	assert_int_equal(images_check_start(&f->a, m, other), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "has no image"));
	ud_error_clear();
	free(path);
	ud_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_check_start, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
