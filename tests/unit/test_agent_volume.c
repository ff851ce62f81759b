/*
 * Tests of the agent's volumes (cmd/deploy-agent/volume.c): created
 * sparse with mode 0600 at state_dir/volumes/<app>/<device>.img, kept as
 * they are by a release with the same size, grown by a larger one, never
 * shrunk (refused, naming volume, host and sizes), and never touched for
 * a release without run.block.
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

#include "volume.h"
#include "buf.h"
#include "errors.h"
#include "log.h"

struct fixture {
	char dir[64];
	struct agent a;
	struct ud_agentconf conf;
	struct ud_manifest *m;
};

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_agent_volume.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->conf.host = "edge1";
	f->conf.state_dir = f->dir;
	f->a.conf = &f->conf;
	f->m = ud_manifest_new();
	f->m->release = 3;
	ud_log_init(UD_LOG_ERROR, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ud_manifest_free(f->m);
	ud_rm_rf(f->dir);
	free(f);
	return 0;
}

static void set_block(struct fixture *f, const char *name, int size_mb)
{
	ud_run_spec_free(&f->m->run);
	f->m->run.block = ud_calloc(1, sizeof(*f->m->run.block));
	f->m->run.block[0].name = ud_strdup(name);
	f->m->run.block[0].size_mb = size_mb;
	f->m->run.nblock = 1;
}

static void test_create_grow_never_shrink(void **state)
{
	struct fixture *f = *state;
	char *path = volume_path(&f->a, "blog", "storage");
	char *want = ud_asprintf("%s/volumes/blog/storage.img", f->dir);
	struct stat st;
	FILE *fp;

	assert_string_equal(path, want);
	/* No run.block: nothing made. */
	assert_int_equal(volume_ensure(&f->a, "blog", f->m), 0);
	assert_int_not_equal(access(path, F_OK), 0);

	set_block(f, "storage", 64);
	assert_int_equal(volume_ensure(&f->a, "blog", f->m), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 64LL * 1024 * 1024);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Sparse: far less on disk than its size. */
	assert_true((long long)st.st_blocks * 512 < 1024 * 1024);

	/* What the instance wrote survives the next release. */
	assert_non_null(fp = fopen(path, "r+"));
	assert_int_equal(fputs("data", fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	f->m->release = 4;
	assert_int_equal(volume_ensure(&f->a, "blog", f->m), 0);
	set_block(f, "storage", 128);
	assert_int_equal(volume_ensure(&f->a, "blog", f->m), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 128LL * 1024 * 1024);
	{
		char buf[5] = { 0 };

		assert_non_null(fp = fopen(path, "r"));
		assert_int_equal(fread(buf, 1, 4, fp), 4);
		fclose(fp);
		assert_string_equal(buf, "data");
	}

	/* Smaller: refused, the file untouched. */
	f->m->release = 5;
	set_block(f, "storage", 64);
	assert_int_equal(volume_ensure(&f->a, "blog", f->m), UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "volume storage is 128 MB on host edge1 and "
			    "release 5 asks for 64 MB: a volume never shrinks "
			    "(keep size_mb at 128 or more)");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 128LL * 1024 * 1024);

	/* Another app's volume of the same name is its own. */
	set_block(f, "storage", 1);
	assert_int_equal(volume_ensure(&f->a, "shop", f->m), 0);
	free(path);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_grow_never_shrink,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
