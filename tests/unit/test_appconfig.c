/*
 * deploy.json: every directory under data/appconfig/invalid/ holds an
 * `input` and the exact one-line `error` it must produce (jansson's
 * test/suites/invalid); every valid/ input must parse, and a few are
 * checked field by field.
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

#include "appconfig.h"
#include "buf.h"
#include "cases.h"
#include "errors.h"
#include "names.h"

static void invalid_case(void **state)
{
	const char *dir = *state;
	struct ud_appconfig *c = NULL;
	char *input, *want;
	size_t len;
	int err;

	input = read_case(dir, "input", &len);
	want = read_case(dir, "error", NULL);
	want[strcspn(want, "\n")] = '\0';
	ud_error_clear();
	err = ud_appconfig_parse(&c, "deploy.json", input, len);
	assert_null(c);
	assert_string_equal(ud_error_last(), want);
	/* Only a missing key is "not found"; everything else is invalid. */
	assert_int_equal(err, strstr(want, "missing key") ? UD_ENOTFOUND
							  : UD_EINVALID);
	free(input);
	free(want);
}

static void valid_case(void **state)
{
	const char *dir = *state;
	struct ud_appconfig *c = NULL;
	char *input;
	size_t len;
	int err;

	input = read_case(dir, "input", &len);
	err = ud_appconfig_parse(&c, "deploy.json", input, len);
	if (err < 0)
		fail_msg("%s: %s", dir, ud_error_last());
	assert_non_null(c);
	assert_true(c->nimages >= 1);
	ud_appconfig_free(c);
	free(input);
}

static struct ud_appconfig *parse_case(const char *name)
{
	struct ud_appconfig *c = NULL;
	char *dir = ud_asprintf("%s/appconfig/valid/%s", data_dir(), name);
	char *input;
	size_t len;

	input = read_case(dir, "input", &len);
	if (ud_appconfig_parse(&c, "deploy.json", input, len) < 0)
		fail_msg("%s: %s", dir, ud_error_last());
	free(input);
	free(dir);
	return c;
}

static void spec_example_fields(void **state)
{
	struct ud_appconfig *c = parse_case("spec-example");

	(void)state;
	assert_string_equal(c->app, "hello");
	assert_string_equal(c->build_command,
			    "mirage configure -t unix && make depend && make");
	assert_int_equal(c->build_timeout_s, 1800);
	assert_int_equal(c->build_env.n, 1);
	assert_string_equal(c->build_env.v[0], "OPAMYES=1");
	assert_int_equal(c->nimages, 2);
	assert_string_equal(c->images[0].target, "unix");
	assert_string_equal(c->images[0].arch, "x86_64");
	assert_string_equal(c->images[0].path, "dist/hello");
	assert_string_equal(c->images[1].target, "qemu");
	assert_string_equal(c->images[1].path, "dist/hello.elf");
	assert_int_equal(c->run.port, 8080);
	assert_int_equal(c->run.memory_mb, 64);
	assert_int_equal(c->run.args.n, 0);
	assert_int_equal(c->run.env.n, 0);
	assert_int_equal(c->health.kind, UD_HEALTH_HTTP);
	assert_string_equal(c->health.http_path, "/health");
	assert_int_equal(c->health.timeout_s, 20);
	assert_int_equal(c->health.rollback, 1);
	ud_appconfig_free(c);
}

static void minimal_defaults(void **state)
{
	struct ud_appconfig *c = parse_case("minimal");

	(void)state;
	assert_string_equal(c->app, "a");
	assert_string_equal(c->build_command, "true");
	assert_int_equal(c->build_timeout_s, 1800);
	assert_int_equal(c->build_env.n, 0);
	assert_int_equal(c->nimages, 1);
	assert_string_equal(c->images[0].arch, ud_host_arch());
	assert_int_equal(c->run.port, 0);
	assert_int_equal(c->run.memory_mb, 64);
	assert_int_equal(c->health.kind, UD_HEALTH_TCP);
	assert_null(c->health.http_path);
	assert_null(c->health.serial_regex);
	assert_int_equal(c->health.timeout_s, 20);
	assert_int_equal(c->health.rollback, 1);
	ud_appconfig_free(c);
}

static void serial_keep_fields(void **state)
{
	struct ud_appconfig *c = parse_case("serial-keep");

	(void)state;
	assert_string_equal(c->app, "0-blog-2");
	assert_int_equal(c->build_timeout_s, 86400);
	assert_int_equal(c->build_env.n, 2);
	assert_string_equal(c->build_env.v[0], "_X1=a=b");
	assert_string_equal(c->build_env.v[1], "Y=");
	assert_int_equal(c->nimages, 3);
	assert_string_equal(c->images[0].arch, "aarch64");
	assert_string_equal(c->images[1].arch, "x86_64");
	assert_string_equal(c->images[2].target, "firecracker");
	assert_string_equal(c->images[2].arch, ud_host_arch());
	assert_string_equal(c->images[2].path, ".hidden/blog");
	assert_int_equal(c->run.port, 0);
	assert_int_equal(c->run.memory_mb, 1048576);
	assert_int_equal(c->run.args.n, 2);
	assert_string_equal(c->run.args.v[0], "--ipv4=10.0.0.2/24");
	assert_string_equal(c->run.args.v[1], "");
	assert_null(c->run.args.v[2]);
	assert_int_equal(c->run.env.n, 1);
	assert_string_equal(c->run.env.v[0], "LOG=debug");
	assert_int_equal(c->health.kind, UD_HEALTH_SERIAL);
	assert_string_equal(c->health.serial_regex, "^ready on port [0-9]+$");
	assert_int_equal(c->health.timeout_s, 3600);
	assert_int_equal(c->health.rollback, 0);
	ud_appconfig_free(c);
}

static void initrd_fields(void **state)
{
	struct ud_appconfig *c = parse_case("initrd");

	(void)state;
	assert_int_equal(c->nimages, 3);
	assert_string_equal(c->images[0].initrd, "dist/rootfs.cpio");
	assert_string_equal(c->images[1].initrd, "initrd.img");
	assert_null(c->images[2].initrd);
	assert_true(ud_target_takes_initrd("qemu"));
	assert_true(ud_target_takes_initrd("firecracker"));
	assert_false(ud_target_takes_initrd("hvt"));
	assert_false(ud_target_takes_initrd("spt"));
	assert_false(ud_target_takes_initrd("xen"));
	assert_false(ud_target_takes_initrd("unix"));
	ud_appconfig_free(c);
}

/* run.block in the order written; into a manifest and back, and
 * copied deep. */
static void block_fields(void **state)
{
	struct ud_appconfig *c = parse_case("block");
	struct ud_run_spec run, copy;
	json_t *j;

	(void)state;
	assert_int_equal(c->run.nblock, 2);
	assert_string_equal(c->run.block[0].name, "storage");
	assert_int_equal(c->run.block[0].size_mb, 64);
	assert_string_equal(c->run.block[1].name, "log_2");
	assert_int_equal(c->run.block[1].size_mb, 1048576);
	assert_ptr_equal(ud_run_spec_block(&c->run, "log_2"),
			 &c->run.block[1]);
	assert_null(ud_run_spec_block(&c->run, "log"));
	j = ud_run_spec_to_json(&c->run);
	assert_int_equal(ud_run_spec_from_json(&run, j, "m", "run"), 0);
	json_decref(j);
	assert_int_equal(run.nblock, 2);
	assert_string_equal(run.block[1].name, "log_2");
	ud_run_spec_copy(&copy, &run);
	ud_run_spec_free(&run);
	assert_int_equal(copy.block[0].size_mb, 64);
	assert_string_equal(copy.block[0].name, "storage");
	ud_run_spec_free(&copy);
	/* No volumes, no key: older agents refuse one they do not know. */
	j = ud_run_spec_to_json(&(struct ud_run_spec){ .memory_mb = 64 });
	assert_null(json_object_get(j, "block"));
	json_decref(j);
	ud_appconfig_free(c);
}

/* run and health go into manifests as JSON and must come back the same. */
static void run_health_round_trip(void **state)
{
	struct ud_appconfig *c = parse_case("serial-keep");
	struct ud_run_spec run;
	struct ud_health h;
	json_t *j;

	(void)state;
	j = ud_run_spec_to_json(&c->run);
	assert_int_equal(ud_run_spec_from_json(&run, j, "m", "run"), 0);
	json_decref(j);
	assert_int_equal(run.port, c->run.port);
	assert_int_equal(run.memory_mb, c->run.memory_mb);
	assert_int_equal(run.args.n, 2);
	assert_string_equal(run.args.v[0], c->run.args.v[0]);
	assert_int_equal(run.env.n, 1);
	assert_string_equal(run.env.v[0], "LOG=debug");
	ud_run_spec_free(&run);

	j = ud_health_to_json(&c->health);
	assert_int_equal(ud_health_from_json(&h, j, "m", "health"), 0);
	json_decref(j);
	assert_int_equal(h.kind, UD_HEALTH_SERIAL);
	assert_string_equal(h.serial_regex, c->health.serial_regex);
	assert_int_equal(h.timeout_s, 3600);
	assert_int_equal(h.rollback, 0);
	ud_health_free(&h);
	ud_appconfig_free(c);
}

/* run.restart: absent is "always"; set, it survives the manifest's JSON,
 * where "always" is left out so that older agents read the manifest. */
static void restart_policy(void **state)
{
	struct ud_appconfig *c = parse_case("restart-on-failure");
	struct ud_run_spec run;
	json_t *j;

	(void)state;
	assert_int_equal(c->run.restart, UD_RESTART_ON_FAILURE);
	j = ud_run_spec_to_json(&c->run);
	assert_string_equal(json_string_value(json_object_get(j, "restart")),
			    "on-failure");
	assert_int_equal(ud_run_spec_from_json(&run, j, "m", "run"), 0);
	json_decref(j);
	assert_int_equal(run.restart, UD_RESTART_ON_FAILURE);
	run.restart = UD_RESTART_ALWAYS;
	j = ud_run_spec_to_json(&run);
	assert_null(json_object_get(j, "restart"));
	json_decref(j);
	ud_run_spec_free(&run);
	ud_appconfig_free(c);

	c = parse_case("minimal");
	assert_int_equal(c->run.restart, UD_RESTART_ALWAYS);
	ud_appconfig_free(c);
}

/* Which exits each policy restarts (waitpid statuses built by hand). */
static void restart_wanted(void **state)
{
	int ok = 0 << 8, fail = 3 << 8, killed = 9 /* SIGKILL */;

	(void)state;
	assert_true(ud_restart_wanted(UD_RESTART_ALWAYS, ok));
	assert_true(ud_restart_wanted(UD_RESTART_ALWAYS, fail));
	assert_true(ud_restart_wanted(UD_RESTART_ALWAYS, killed));
	assert_false(ud_restart_wanted(UD_RESTART_ON_FAILURE, ok));
	assert_true(ud_restart_wanted(UD_RESTART_ON_FAILURE, fail));
	assert_true(ud_restart_wanted(UD_RESTART_ON_FAILURE, killed));
	/* Unknown (an adopted process): a failure. */
	assert_true(ud_restart_wanted(UD_RESTART_ON_FAILURE, -1));
	assert_false(ud_restart_wanted(UD_RESTART_NEVER, ok));
	assert_false(ud_restart_wanted(UD_RESTART_NEVER, fail));
	assert_false(ud_restart_wanted(UD_RESTART_NEVER, killed));
	assert_string_equal(ud_restart_name(UD_RESTART_ALWAYS), "always");
	assert_string_equal(ud_restart_name(UD_RESTART_ON_FAILURE),
			    "on-failure");
	assert_string_equal(ud_restart_name(UD_RESTART_NEVER), "never");
}

static void absent_objects_give_defaults(void **state)
{
	struct ud_run_spec run;
	struct ud_health h;

	(void)state;
	assert_int_equal(ud_run_spec_from_json(&run, NULL, "m", "run"), 0);
	assert_int_equal(run.port, 0);
	assert_int_equal(run.memory_mb, 64);
	assert_int_equal(run.args.n, 0);
	ud_run_spec_free(&run);
	assert_int_equal(ud_health_from_json(&h, NULL, "m", "health"), 0);
	assert_int_equal(h.kind, UD_HEALTH_TCP);
	assert_int_equal(h.timeout_s, 20);
	assert_int_equal(h.rollback, 1);
	ud_health_free(&h);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(spec_example_fields),
		cmocka_unit_test(minimal_defaults),
		cmocka_unit_test(serial_keep_fields),
		cmocka_unit_test(initrd_fields),
		cmocka_unit_test(block_fields),
		cmocka_unit_test(run_health_round_trip),
		cmocka_unit_test(absent_objects_give_defaults),
		cmocka_unit_test(restart_policy),
		cmocka_unit_test(restart_wanted),
	};
	return run_with_cases("appconfig", fixed, sizeof(fixed) / sizeof(fixed[0]),
			      invalid_case, valid_case);
}
