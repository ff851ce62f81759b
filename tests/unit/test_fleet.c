/*
 * fleet.json: data-driven invalid cases (data/fleet/invalid/<case>/input
 * and its exact error), valid inputs, the stable output order, and the
 * edits `deploy host add` and `deploy place` make.
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
#include "fleet.h"

static void invalid_case(void **state)
{
	const char *dir = *state;
	struct ud_fleet *f = NULL;
	char *input, *want;
	size_t len;
	int err;

	input = read_case(dir, "input", &len);
	want = read_case(dir, "error", NULL);
	want[strcspn(want, "\n")] = '\0';
	ud_error_clear();
	err = ud_fleet_parse(&f, "fleet.json", input, len);
	assert_null(f);
	assert_string_equal(ud_error_last(), want);
	assert_int_equal(err, strstr(want, "missing key") ||
					      strstr(want, "is not in fleet.json")
				      ? UD_ENOTFOUND
				      : UD_EINVALID);
	free(input);
	free(want);
}

static char *format(const struct ud_fleet *f)
{
	struct ud_buf b = UD_BUF_INIT;

	assert_int_equal(ud_fleet_format(&b, f), 0);
	return ud_buf_detach(&b);
}

/* Every valid input parses and its formatted form is a fixed point. */
static void valid_case(void **state)
{
	const char *dir = *state;
	struct ud_fleet *f = NULL, *again = NULL;
	char *input, *text, *text2;
	size_t len;

	input = read_case(dir, "input", &len);
	if (ud_fleet_parse(&f, "fleet.json", input, len) < 0)
		fail_msg("%s: %s", dir, ud_error_last());
	text = format(f);
	if (ud_fleet_parse(&again, "fleet.json", text, strlen(text)) < 0)
		fail_msg("%s reformatted: %s", dir, ud_error_last());
	text2 = format(again);
	assert_string_equal(text, text2);
	ud_fleet_free(f);
	ud_fleet_free(again);
	free(input);
	free(text);
	free(text2);
}

static struct ud_fleet *parse_valid(const char *name)
{
	struct ud_fleet *f = NULL;
	char *dir = ud_asprintf("%s/fleet/valid/%s", data_dir(), name);
	char *input;
	size_t len;

	input = read_case(dir, "input", &len);
	if (ud_fleet_parse(&f, "fleet.json", input, len) < 0)
		fail_msg("%s: %s", dir, ud_error_last());
	free(input);
	free(dir);
	return f;
}

static void spec_example_fields(void **state)
{
	struct ud_fleet *f = parse_valid("spec-example");
	const struct ud_fleet_host *h;
	const struct ud_placement *p;

	(void)state;
	assert_int_equal(f->nhosts, 2);
	h = ud_fleet_host(f, "edge1");
	assert_non_null(h);
	assert_string_equal(h->ssh, "deploy@10.0.0.5:22");
	assert_null(h->agent);
	assert_string_equal(h->arch, "x86_64");
	h = ud_fleet_host(f, "local");
	assert_non_null(h);
	assert_null(h->ssh);
	assert_string_equal(h->agent, "unix:/run/deploy-agent.sock");
	assert_null(h->arch);
	assert_null(ud_fleet_host(f, "edge9"));

	assert_int_equal(f->napps, 2);
	p = ud_fleet_placement(f, "hello");
	assert_non_null(p);
	assert_int_equal(p->mode, UD_MODE_BOOT);
	assert_int_equal(p->hosts.n, 1);
	assert_string_equal(p->hosts.v[0], "edge1");
	assert_string_equal(p->target, "unix");
	assert_string_equal(p->listen, "0.0.0.0:8080");
	assert_int_equal(p->instances, 1);
	p = ud_fleet_placement(f, "blog");
	assert_non_null(p);
	assert_int_equal(p->mode, UD_MODE_SUMMON);
	assert_int_equal(p->hosts.n, 2);
	assert_string_equal(p->hosts.v[1], "local");
	assert_string_equal(p->listen, "127.0.0.1:8081");
	assert_int_equal(p->idle_stop_s, 300);
	assert_int_equal(p->max_instances, 4);
	assert_int_equal(p->concurrency, 50);
	assert_null(ud_fleet_placement(f, "nope"));
	ud_fleet_free(f);
}

static void defaults_and_ipv6(void **state)
{
	struct ud_fleet *f = parse_valid("ipv6-and-defaults");
	const struct ud_placement *p = ud_fleet_placement(f, "x");

	(void)state;
	assert_string_equal(ud_fleet_host(f, "v6")->ssh,
			    "_ci-bot@[2001:db8::1]");
	assert_non_null(p);
	assert_string_equal(p->target, "unix");
	assert_int_equal(p->mode, UD_MODE_BOOT);
	assert_string_equal(p->listen, "[::1]:9000");
	assert_int_equal(p->instances, 1);
	assert_int_equal(p->idle_stop_s, 300);
	assert_int_equal(p->max_instances, 4);
	assert_int_equal(p->concurrency, 50);
	ud_fleet_free(f);
}

/* Names sorted, only the keys that mean something for the mode. */
static void format_is_sorted_and_minimal(void **state)
{
	struct ud_fleet *f = parse_valid("spec-example");
	char *text;

	(void)state;
	text = format(f);
	assert_string_equal(text,
		"{\n"
		"  \"hosts\": {\n"
		"    \"edge1\": {\n"
		"      \"ssh\": \"deploy@10.0.0.5:22\",\n"
		"      \"arch\": \"x86_64\"\n"
		"    },\n"
		"    \"local\": {\n"
		"      \"agent\": \"unix:/run/deploy-agent.sock\"\n"
		"    }\n"
		"  },\n"
		"  \"apps\": {\n"
		"    \"blog\": {\n"
		"      \"hosts\": [\n"
		"        \"edge1\",\n"
		"        \"local\"\n"
		"      ],\n"
		"      \"target\": \"unix\",\n"
		"      \"mode\": \"summon\",\n"
		"      \"listen\": \"127.0.0.1:8081\",\n"
		"      \"idle_stop_s\": 300,\n"
		"      \"max_instances\": 4,\n"
		"      \"concurrency\": 50\n"
		"    },\n"
		"    \"hello\": {\n"
		"      \"hosts\": [\n"
		"        \"edge1\"\n"
		"      ],\n"
		"      \"target\": \"unix\",\n"
		"      \"mode\": \"boot\",\n"
		"      \"listen\": \"0.0.0.0:8080\",\n"
		"      \"instances\": 1\n"
		"    }\n"
		"  }\n"
		"}\n");
	free(text);
	ud_fleet_free(f);
}

static void empty_fleet_formats(void **state)
{
	struct ud_fleet *f = ud_fleet_new();
	char *text;

	(void)state;
	text = format(f);
	assert_string_equal(text, "{\n  \"hosts\": {},\n  \"apps\": {}\n}\n");
	free(text);
	ud_fleet_free(f);
}

static void set_host_validates_and_replaces(void **state)
{
	struct ud_fleet *f = ud_fleet_new();
	struct ud_fleet_host h = { 0 };

	(void)state;
	h.name = "edge1";
	h.ssh = "deploy@edge1.example:2222";
	assert_int_equal(ud_fleet_set_host(f, &h), 0);
	h.name = "a-first";
	h.ssh = NULL;
	h.agent = "unix:/tmp/a.sock";
	h.arch = "aarch64";
	assert_int_equal(ud_fleet_set_host(f, &h), 0);
	assert_int_equal(f->nhosts, 2);
	assert_string_equal(f->hosts[0].name, "a-first"); /* kept sorted */

	/* Replacing switches edge1 from ssh to agent. */
	h.name = "edge1";
	h.arch = NULL;
	assert_int_equal(ud_fleet_set_host(f, &h), 0);
	assert_int_equal(f->nhosts, 2);
	assert_null(ud_fleet_host(f, "edge1")->ssh);
	assert_string_equal(ud_fleet_host(f, "edge1")->agent,
			    "unix:/tmp/a.sock");

	h.ssh = "deploy@edge1";
	assert_int_equal(ud_fleet_set_host(f, &h), UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "host 'edge1': needs exactly one of ssh or agent");
	h.agent = NULL;
	h.ssh = "deploy@edge1:99999";
	assert_int_equal(ud_fleet_set_host(f, &h), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "'deploy@edge1:99999'"));
	h.ssh = "deploy@edge1";
	h.name = "../etc";
	assert_int_equal(ud_fleet_set_host(f, &h), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "invalid host name '../etc'"));
	assert_int_equal(f->nhosts, 2);
	ud_fleet_free(f);
}

static void set_placement_checks_hosts(void **state)
{
	struct ud_fleet *f = parse_valid("spec-example");
	struct ud_placement p;
	const struct ud_placement *got;
	char *text;

	(void)state;
	ud_placement_init(&p);
	assert_null(p.target);
	assert_int_equal(p.mode, UD_MODE_BOOT);
	assert_int_equal(p.instances, 1);
	assert_int_equal(p.idle_stop_s, 300);
	assert_int_equal(p.max_instances, 4);
	assert_int_equal(p.concurrency, 50);
	p.app = "shop";

	assert_int_equal(ud_fleet_set_placement(f, &p), UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "placement of 'shop': needs at least one host");
	ud_strvec_push(&p.hosts, "local");
	ud_strvec_push(&p.hosts, "edge9");
	assert_int_equal(ud_fleet_set_placement(f, &p), UD_ENOTFOUND);
	assert_string_equal(ud_error_last(), "host 'edge9' is not in fleet.json");
	assert_null(ud_fleet_placement(f, "shop"));

	ud_strvec_free(&p.hosts);
	ud_strvec_push(&p.hosts, "local");
	p.listen = "localhost:80";
	p.idle_stop_s = 60; /* a summon setting, kept while in boot mode */
	assert_int_equal(ud_fleet_set_placement(f, &p), 0);
	got = ud_fleet_placement(f, "shop");
	assert_non_null(got);
	assert_string_equal(got->target, "unix");
	assert_string_equal(got->listen, "localhost:80");
	assert_int_equal(f->napps, 3);
	assert_string_equal(f->apps[2].app, "shop");

	text = format(f);
	assert_non_null(strstr(text,
		"    \"shop\": {\n"
		"      \"hosts\": [\n"
		"        \"local\"\n"
		"      ],\n"
		"      \"target\": \"unix\",\n"
		"      \"mode\": \"boot\",\n"
		"      \"listen\": \"localhost:80\",\n"
		"      \"instances\": 1,\n"
		"      \"idle_stop_s\": 60\n"
		"    }\n"));
	free(text);

	p.listen = "localhost";
	assert_int_equal(ud_fleet_set_placement(f, &p), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "'localhost'"));
	p.listen = NULL;
	p.instances = 0;
	assert_int_equal(ud_fleet_set_placement(f, &p), UD_EINVALID);
	assert_string_equal(ud_error_last(),
			    "placement of 'shop': instances must be from 1 to 64");
	p.instances = 1;
	p.target = "vmware";
	assert_int_equal(ud_fleet_set_placement(f, &p), UD_EINVALID);
	/* Refused edits leave the placement as it was. */
	assert_string_equal(ud_fleet_placement(f, "shop")->listen,
			    "localhost:80");
	ud_strvec_free(&p.hosts);
	ud_fleet_free(f);
}

static void remove_host_refused_while_placed(void **state)
{
	struct ud_fleet *f = parse_valid("spec-example");
	struct ud_strvec apps = UD_STRVEC_INIT;
	struct ud_fleet_host h = { .name = "spare", .ssh = "deploy@10.0.0.9" };

	(void)state;
	ud_strvec_init(&apps);
	ud_fleet_apps_on(f, "edge1", &apps);
	assert_int_equal(apps.n, 2);
	assert_string_equal(apps.v[0], "blog");
	assert_string_equal(apps.v[1], "hello");

	assert_int_equal(ud_fleet_remove_host(f, "edge1"), UD_EBUSY);
	assert_string_equal(ud_error_last(),
			    "host 'edge1' still has apps placed on it: blog, "
			    "hello (move them with deploy place or remove "
			    "them with deploy remove first)");
	assert_int_equal(f->nhosts, 2);
	assert_int_equal(ud_fleet_remove_host(f, "nosuch"), UD_ENOTFOUND);
	assert_string_equal(ud_error_last(),
			    "host 'nosuch' is not in fleet.json");

	assert_int_equal(ud_fleet_set_host(f, &h), 0);
	assert_int_equal(f->nhosts, 3);
	assert_int_equal(ud_fleet_remove_host(f, "spare"), 0);
	assert_int_equal(f->nhosts, 2);
	assert_null(ud_fleet_host(f, "spare"));
	assert_non_null(ud_fleet_host(f, "edge1"));
	assert_non_null(ud_fleet_host(f, "local"));

	/* Unplaced, a host can go. */
	assert_int_equal(ud_fleet_remove_placement(f, "hello"), 0);
	assert_int_equal(ud_fleet_remove_placement(f, "hello"), UD_ENOTFOUND);
	assert_string_equal(ud_error_last(),
			    "app 'hello' is not placed on any host");
	assert_int_equal(ud_fleet_remove_placement(f, "blog"), 0);
	assert_int_equal(f->napps, 0);
	assert_int_equal(ud_fleet_remove_host(f, "edge1"), 0);
	assert_int_equal(f->nhosts, 1);
	assert_string_equal(f->hosts[0].name, "local");
	ud_strvec_free(&apps);
	ud_fleet_free(f);
}

static void listen_overlap(void **state)
{
	(void)state;
	assert_true(ud_listen_overlap("127.0.0.1:80", "127.0.0.1:80"));
	assert_true(ud_listen_overlap("0.0.0.0:80", "127.0.0.1:80"));
	assert_true(ud_listen_overlap("127.0.0.1:80", "0.0.0.0:80"));
	assert_true(ud_listen_overlap("[::]:80", "10.0.0.1:80"));
	assert_true(ud_listen_overlap("[::1]:80", "[::1]:80"));
	assert_false(ud_listen_overlap("127.0.0.1:80", "127.0.0.1:81"));
	assert_false(ud_listen_overlap("127.0.0.1:80", "127.0.0.2:80"));
	assert_false(ud_listen_overlap("[::1]:80", "127.0.0.1:80"));
	assert_false(ud_listen_overlap("0.0.0.0:80", "0.0.0.0:8080"));
}

/* The agent's default for a placement without "listen". */
static char *port_8081(const struct ud_placement *q, void *payload)
{
	(void)payload;
	return strcmp(q->app, "shop") ? NULL : ud_strdup("127.0.0.1:8081");
}

static void check_listen_names_app_and_host(void **state)
{
	struct ud_fleet *f = parse_valid("spec-example");
	struct ud_placement p;

	(void)state;
	ud_placement_init(&p);
	p.app = "shop";
	ud_strvec_push(&p.hosts, "local");
	p.listen = "127.0.0.1:8081";
	assert_int_equal(ud_fleet_check_listen(f, &p, NULL, NULL), UD_EEXISTS);
	assert_string_equal(ud_error_last(),
			    "listen address 127.0.0.1:8081 is already used "
			    "by app 'blog' on host 'local' (127.0.0.1:8081)");
	/* hello's 0.0.0.0:8080 is on edge1 only */
	p.listen = "127.0.0.1:8080";
	assert_int_equal(ud_fleet_check_listen(f, &p, NULL, NULL), 0);
	ud_strvec_push(&p.hosts, "edge1");
	assert_int_equal(ud_fleet_check_listen(f, &p, NULL, NULL), UD_EEXISTS);
	assert_string_equal(ud_error_last(),
			    "listen address 127.0.0.1:8080 is already used "
			    "by app 'hello' on host 'edge1' (0.0.0.0:8080)");
	/* The app's own placement is no conflict: re-placing keeps it. */
	p.app = "blog";
	p.listen = "127.0.0.1:8081";
	ud_strvec_free(&p.hosts);
	ud_strvec_push(&p.hosts, "local");
	assert_int_equal(ud_fleet_check_listen(f, &p, NULL, NULL), 0);
	/* Without "listen": where the callback says it listens. */
	p.app = "shop";
	p.listen = NULL;
	assert_int_equal(ud_fleet_check_listen(f, &p, NULL, NULL), 0);
	assert_int_equal(ud_fleet_check_listen(f, &p, port_8081, NULL),
			 UD_EEXISTS);
	assert_string_equal(ud_error_last(),
			    "listen address 127.0.0.1:8081 is already used "
			    "by app 'blog' on host 'local' (127.0.0.1:8081)");
	ud_strvec_free(&p.hosts);
	ud_fleet_free(f);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(spec_example_fields),
		cmocka_unit_test(defaults_and_ipv6),
		cmocka_unit_test(format_is_sorted_and_minimal),
		cmocka_unit_test(empty_fleet_formats),
		cmocka_unit_test(set_host_validates_and_replaces),
		cmocka_unit_test(set_placement_checks_hosts),
		cmocka_unit_test(remove_host_refused_while_placed),
		cmocka_unit_test(listen_overlap),
		cmocka_unit_test(check_listen_names_app_and_host),
	};
	return run_with_cases("fleet", fixed, sizeof(fixed) / sizeof(fixed[0]),
			      invalid_case, valid_case);
}
