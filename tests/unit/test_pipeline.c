/*
 * The pipeline's policy: how each host's reply to a signal is judged
 * (ud_host_verdict and the line a pusher reads), and when a failed release
 * is rolled back (ud_rollback_decide). Both are pure: replies are built
 * here as an agent sends them (control.h), no host is asked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "manifest.h"
#include "pipeline.h"

/* A host's reply: `json` is the agent's answer (NULL: none came). */
static struct ud_host_reply reply(int ok, const char *error,
				  const char *json)
{
	struct ud_host_reply h = { 0 };

	h.host = "edge1";
	h.ok = ok;
	h.error = (char *)error;
	h.reply = json ? json_loads(json, 0, NULL) : NULL;
	h.ms = 12;
	if (json)
		assert_non_null(h.reply);
	return h;
}

/* Judge h for pong v3, check the verdict and the host's line. */
static struct ud_verdict judged(const struct ud_host_reply *h,
				enum ud_verdict_kind kind, const char *line)
{
	struct ud_verdict v;
	struct ud_buf b = UD_BUF_INIT;

	ud_host_verdict(&v, h, "pong", 3);
	assert_int_equal(v.kind, kind);
	assert_int_equal(v.failed, kind == UD_VERDICT_FAILED ||
					   kind == UD_VERDICT_SYNC_FAILED ||
					   kind == UD_VERDICT_UNREACHABLE);
	ud_verdict_describe(&b, h, &v, "pong", 3);
	assert_string_equal(b.ptr, line);
	ud_buf_free(&b);
	return v;
}

static void ok_when_serving_the_release(void **state)
{
	struct ud_host_reply h = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": 3, "
		"\"desired\": 3, \"state\": \"running\", \"instances\": 2}}}");
	struct ud_verdict v = judged(&h, UD_VERDICT_OK,
		"edge1: pong v3 running (2 instances) in 12 ms");

	(void)state;
	assert_string_equal(v.reason, "running");
	assert_int_equal(v.serving, 3);
	json_decref(h.reply);
}

/* Summoned apps run nothing while idle: registered is live. */
static void ok_when_summonable_at_the_release(void **state)
{
	struct ud_host_reply h = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": null, "
		"\"desired\": 3, \"state\": \"summonable\", "
		"\"instances\": 0}}}");
	struct ud_verdict v = judged(&h, UD_VERDICT_OK,
		"edge1: pong v3 summonable (0 instances) in 12 ms");

	(void)state;
	assert_string_equal(v.reason, "summonable");
	json_decref(h.reply);
}

/* A racing publish got there first, serving or only wanted: not ours to
 * fail, even in a failed state. */
static void superseded_by_a_newer_release(void **state)
{
	struct ud_host_reply serving = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": 4, "
		"\"desired\": 4, \"state\": \"running\"}}}");
	struct ud_host_reply wanting = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": 2, "
		"\"desired\": 5, \"state\": \"failed\", "
		"\"error\": \"boom\"}}}");
	struct ud_verdict v;

	(void)state;
	v = judged(&serving, UD_VERDICT_SUPERSEDED,
		   "edge1: pong v3 superseded by v4 (a newer release)");
	assert_int_equal(v.newer, 4);
	v = judged(&wanting, UD_VERDICT_SUPERSEDED,
		   "edge1: pong v3 superseded by v5 (a newer release)");
	assert_int_equal(v.newer, 5);
	assert_string_equal(v.reason, "a newer release");
	json_decref(serving.reply);
	json_decref(wanting.reply);
}

static void failed_health_with_its_reason(void **state)
{
	struct ud_host_reply h = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": 2, "
		"\"desired\": 3, \"state\": \"failed\", "
		"\"error\": \"GET /health answered 503\"}}}");
	struct ud_host_reply bare = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": null, "
		"\"desired\": 3, \"state\": \"failed\", \"error\": null}}}");
	struct ud_verdict v;

	(void)state;
	v = judged(&h, UD_VERDICT_FAILED,
		   "edge1: pong v3 failed: GET /health answered 503 "
		   "(still serving v2) [12 ms]");
	assert_string_equal(v.reason, "GET /health answered 503");
	assert_int_equal(v.serving, 2);
	/* No error given, nothing older served. */
	v = judged(&bare, UD_VERDICT_FAILED,
		   "edge1: pong v3 failed: failed [12 ms]");
	assert_string_equal(v.reason, "failed");
	assert_int_equal(v.serving, 0);
	json_decref(h.reply);
	json_decref(bare.reply);
}

/* The agent answered, but its sync failed before our release was tried. */
static void sync_failed(void **state)
{
	struct ud_host_reply h = reply(0,
		"fetching ssh://git@repo/deploy.git: connection refused",
		"{\"ok\": false, \"error\": \"fetching ssh://git@repo/"
		"deploy.git: connection refused\"}");
	struct ud_verdict v = judged(&h, UD_VERDICT_SYNC_FAILED,
		"edge1: sync failed: fetching ssh://git@repo/deploy.git: "
		"connection refused [12 ms]");

	(void)state;
	assert_string_equal(v.reason,
		"fetching ssh://git@repo/deploy.git: connection refused");
	assert_null(v.entry);
	json_decref(h.reply);
}

static void unreachable(void **state)
{
	struct ud_host_reply none = reply(0, "deploy@10.0.0.3:22: timed out",
					  NULL);
	struct ud_host_reply absent = reply(1, NULL,
		"{\"ok\": true, \"apps\": {}}");
	struct ud_host_reply starting = reply(1, NULL,
		"{\"ok\": true, \"apps\": {\"pong\": {\"release\": null, "
		"\"desired\": 3, \"state\": \"starting\", "
		"\"error\": \"waiting for /health\"}}}");
	struct ud_verdict v;

	(void)state;
	v = judged(&none, UD_VERDICT_UNREACHABLE,
		   "edge1: unreachable: deploy@10.0.0.3:22: timed out "
		   "[12 ms]");
	assert_string_equal(v.reason, "deploy@10.0.0.3:22: timed out");
	v = judged(&absent, UD_VERDICT_UNREACHABLE,
		   "edge1: does not run pong (its fleet view may be stale)");
	assert_string_equal(v.reason, "not run there");
	v = judged(&starting, UD_VERDICT_UNREACHABLE,
		   "edge1: pong v3 not live: starting: waiting for /health");
	assert_string_equal(v.reason, "starting");
	json_decref(absent.reply);
	json_decref(starting.reply);
}

/* The hosts' verdicts folded into one result, as the pipeline does. */
static struct ud_signal_result fold(const char *const *json, size_t n)
{
	struct ud_signal_result res = { 0 };

	for (size_t i = 0; i < n; i++) {
		struct ud_host_reply h = reply(json[i] != NULL, "refused",
					       json[i]);
		struct ud_verdict v;

		ud_host_verdict(&v, &h, "pong", 3);
		ud_signal_result_add(&res, &v);
		json_decref(h.reply);
	}
	res.nhosts = n;
	return res;
}

#define FAILED_ON_V2                                                           \
	"{\"apps\": {\"pong\": {\"release\": 2, \"desired\": 3, "             \
	"\"state\": \"failed\", \"error\": \"GET /health answered 503\"}}}"
#define FAILED_ON_NOTHING                                                      \
	"{\"apps\": {\"pong\": {\"release\": null, \"desired\": 3, "          \
	"\"state\": \"failed\"}}}"
#define LIVE                                                                   \
	"{\"apps\": {\"pong\": {\"release\": 3, \"desired\": 3, "             \
	"\"state\": \"running\"}}}"
#define NEWER                                                                  \
	"{\"apps\": {\"pong\": {\"release\": 4, \"desired\": 4, "             \
	"\"state\": \"running\"}}}"

static void result_folds_the_verdicts(void **state)
{
	const char *failed[] = { LIVE, FAILED_ON_V2 };
	const char *unreached[] = { LIVE, NULL, NEWER };
	struct ud_signal_result res;

	(void)state;
	res = fold(failed, 2);
	assert_int_equal(res.failed, UD_HOSTS_FAILED);
	assert_int_equal(res.serving, 2);
	res = fold(unreached, 3);
	assert_int_equal(res.failed, UD_HOSTS_UNREACHABLE);
	assert_int_equal(res.serving, 0);
	res = fold(unreached + 2, 1);
	assert_int_equal(res.failed, 0);
}

static struct ud_manifest *pong_v3(int rollback)
{
	struct ud_manifest *m = ud_manifest_new();

	m->app = strdup("pong");
	m->release = 3;
	m->health.rollback = rollback;
	return m;
}

static void rollback_rule(void **state)
{
	const char *all[] = { FAILED_ON_V2, FAILED_ON_V2 };
	const char *some[] = { LIVE, FAILED_ON_V2, NULL };
	const char *nothing_older[] = { FAILED_ON_NOTHING };
	const char *unreached[] = { NULL, LIVE };
	struct ud_manifest *m = pong_v3(1), *keep = pong_v3(0);
	struct ud_signal_result res;
	int to = -1;

	(void)state;
	/* on_failure: rollback, all hosts failed or only some. */
	res = fold(all, 2);
	assert_int_equal(ud_rollback_decide(m, &res, 3, &to), UD_ROLLBACK);
	assert_int_equal(to, 2);
	res = fold(some, 3);
	to = -1;
	assert_int_equal(ud_rollback_decide(m, &res, 3, &to), UD_ROLLBACK);
	assert_int_equal(to, 2);
	/* on_failure: keep. */
	assert_int_equal(ud_rollback_decide(keep, &res, 3, &to),
			 UD_ROLLBACK_KEEP);
	assert_int_equal(to, 0);
	/* No previous release to go back to. */
	res = fold(nothing_older, 1);
	assert_int_equal(ud_rollback_decide(m, &res, 3, &to),
			 UD_ROLLBACK_NO_PREVIOUS);
	/* Unreached hosts never tried it: no reason to roll back. */
	res = fold(unreached, 2);
	assert_int_equal(ud_rollback_decide(m, &res, 3, &to),
			 UD_ROLLBACK_NOT_FAILED);
	/* A newer publish is current: an older one's rollback must never
	 * undo it, whatever on_failure says. */
	res = fold(all, 2);
	assert_int_equal(ud_rollback_decide(m, &res, 4, &to),
			 UD_ROLLBACK_SUPERSEDED);
	assert_int_equal(ud_rollback_decide(keep, &res, 4, &to),
			 UD_ROLLBACK_SUPERSEDED);
	/* A rollback that fails is not rolled back in turn. */
	m->rollback_of = 2;
	assert_int_equal(ud_rollback_decide(m, &res, 3, &to),
			 UD_ROLLBACK_OF_ROLLBACK);
	assert_int_equal(to, 0);
	ud_manifest_free(m);
	ud_manifest_free(keep);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(ok_when_serving_the_release),
		cmocka_unit_test(ok_when_summonable_at_the_release),
		cmocka_unit_test(superseded_by_a_newer_release),
		cmocka_unit_test(failed_health_with_its_reason),
		cmocka_unit_test(sync_failed),
		cmocka_unit_test(unreachable),
		cmocka_unit_test(result_folds_the_verdicts),
		cmocka_unit_test(rollback_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
