/*
 * The reconcile thread's decisions (reconcile.c): what a sync does with an
 * app, given what serves here and what the repository wants.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "reconcile.h"
#include "state.h"

static const char SHA[] =
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/* An app serving `release` with n running instances of it. */
static struct app *serving(struct agent_state *st, int release, size_t n,
			   int summon)
{
	struct app *app = state_app_add(st, "blog");
	size_t i;

	app->release = release;
	app->placed = 1;
	app->place.mode = summon ? UD_MODE_SUMMON : UD_MODE_BOOT;
	app->status = summon ? APP_SUMMONABLE : APP_RUNNING;
	app->manifest = ud_calloc(1, sizeof(*app->manifest));
	memcpy(app->image, SHA, sizeof(SHA));
	for (i = 0; i < n; i++) {
		struct instance *in = app_inst_add(app, st->next_id++);

		in->release = release;
		in->pid = 1000 + (pid_t)i;
	}
	return app;
}

static void test_decide(void **state)
{
	struct agent_state st;
	struct app *app;

	(void)state;
	state_init(&st);
	app = serving(&st, 4, 2, 0);
	/* Serving as asked: keep. */
	assert_int_equal(reconcile_decide(app, 4, 0, 2), RECONCILE_KEEP);
	/* The placement asks for more (or one crashed and was forgotten):
	 * fill. */
	assert_int_equal(reconcile_decide(app, 4, 0, 3), RECONCILE_FILL);
	/* A newer release, or a rollback to an older one: switch. */
	assert_int_equal(reconcile_decide(app, 5, 0, 2), RECONCILE_SWITCH);
	assert_int_equal(reconcile_decide(app, 3, 0, 2), RECONCILE_SWITCH);
	/* Release 5 failed here: polls leave it, a retry switches. */
	app->failed_release = 5;
	assert_int_equal(reconcile_decide(app, 5, 0, 2), RECONCILE_FAILED);
	assert_int_equal(reconcile_decide(app, 5, 1, 2), RECONCILE_SWITCH);
	/* ... and a release after it is another release. */
	assert_int_equal(reconcile_decide(app, 6, 0, 2), RECONCILE_SWITCH);
	/* The serving release in a failed state (its restart failed) is
	 * filled again, not kept. */
	app->failed_release = 0;
	app->status = APP_FAILED;
	assert_int_equal(reconcile_decide(app, 4, 0, 2), RECONCILE_FILL);
	/* After a restart the manifest is not loaded yet: fill reads it. */
	app->status = APP_RUNNING;
	ud_manifest_free(app->manifest);
	app->manifest = NULL;
	assert_int_equal(reconcile_decide(app, 4, 0, 2), RECONCILE_FILL);
	state_free(&st);
}

static void test_summoned(void **state)
{
	struct agent_state st;
	struct app *app;

	(void)state;
	state_init(&st);
	/* A summoned app at rest keeps whatever the count: it has none. */
	app = serving(&st, 2, 0, 1);
	assert_int_equal(reconcile_decide(app, 2, 0, 0), RECONCILE_KEEP);
	/* A new release boots nothing while nobody uses the old one... */
	assert_int_equal(reconcile_boot_count(app, 0), 0);
	/* ... and one instance when the old one has traffic to hand over. */
	state_free(&st);
	state_init(&st);
	app = serving(&st, 2, 3, 1);
	assert_int_equal(reconcile_boot_count(app, 0), 1);
	state_free(&st);
	/* Boot mode boots what the placement asks. */
	state_init(&st);
	app = serving(&st, 2, 1, 0);
	assert_int_equal(reconcile_boot_count(app, 3), 3);
	state_free(&st);
}

static void test_restore_old(void **state)
{
	struct agent_state st;
	struct app *app;

	(void)state;
	state_init(&st);
	app = serving(&st, 4, 1, 0);
	/* Release 5 failed: release 4 must be back to 2 instances. */
	app->status = APP_FAILED;
	assert_true(reconcile_restore_old(app, 5, 2));
	/* Already at its count: nothing to bring back. */
	assert_false(reconcile_restore_old(app, 5, 1));
	/* The failed one is the serving one: nothing older to restore. */
	assert_false(reconcile_restore_old(app, 4, 2));
	/* Not failed: nothing to do. */
	app->status = APP_RUNNING;
	assert_false(reconcile_restore_old(app, 5, 2));
	/* Nothing ever served: nothing to restore. */
	app->status = APP_FAILED;
	app->release = 0;
	assert_false(reconcile_restore_old(app, 5, 2));
	state_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_summoned),
		cmocka_unit_test(test_restore_old),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
