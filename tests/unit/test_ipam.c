/* IPAM: address and subnet parsing, allocation across restarts, tap names
 * and MACs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "ipam.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d))

static void ip_round_trip(void **state)
{
	const char *const ok[] = { "0.0.0.0", "10.200.0.7", "255.255.255.255",
				   "192.168.1.10", "1.2.3.4", NULL };
	char text[UD_IP_STRLEN];
	uint32_t ip;
	size_t i;

	(void)state;
	for (i = 0; ok[i]; i++) {
		if (ud_ip_parse(&ip, ok[i]) != 0)
			fail_msg("'%s' refused: %s", ok[i], ud_error_last());
		ud_ip_format(text, ip);
		assert_string_equal(text, ok[i]);
	}
	assert_int_equal(ud_ip_parse(&ip, "10.200.0.7"), 0);
	assert_int_equal(ip, IP(10, 200, 0, 7));
}

static void ip_bad(void **state)
{
	const char *const bad[] = { "", "1.2.3", "1.2.3.4.5", "256.0.0.0",
				    "1.2.3.256", " 1.2.3.4", "1.2.3.4 ",
				    "+1.2.3.4", "1..2.3", "1.2.3.", "01.2.3.4",
				    "1.2.3.4/24", "a.b.c.d", "1234.1.1.1",
				    "0x1.2.3.4", "-1.2.3.4", NULL };
	uint32_t ip = 42;
	size_t i;

	(void)state;
	for (i = 0; bad[i]; i++) {
		char *quoted = ud_asprintf("'%s'", bad[i]);

		if (ud_ip_parse(&ip, bad[i]) != UD_EINVALID)
			fail_msg("'%s' accepted", bad[i]);
		if (!strstr(ud_error_last(), quoted))
			fail_msg("message does not quote '%s': %s", bad[i],
				 ud_error_last());
		free(quoted);
	}
}

static void subnet_round_trip(void **state)
{
	const char *const ok[] = { "10.200.0.0/24", "10.0.0.0/8",
				   "192.168.4.0/30", "172.16.0.0/12",
				   "10.1.2.128/25", NULL };
	char text[UD_CIDR_STRLEN], ip[UD_IP_STRLEN];
	struct ud_subnet s;
	size_t i;

	(void)state;
	for (i = 0; ok[i]; i++) {
		if (ud_subnet_parse(&s, ok[i], "test") != 0)
			fail_msg("'%s' refused: %s", ok[i], ud_error_last());
		ud_subnet_format(&s, text);
		assert_string_equal(text, ok[i]);
	}
	assert_int_equal(ud_subnet_parse(&s, "10.200.0.0/24", "x"), 0);
	assert_int_equal(s.net, IP(10, 200, 0, 0));
	assert_int_equal(s.prefix, 24);
	ud_ip_format(ip, ud_subnet_gateway(&s));
	assert_string_equal(ip, "10.200.0.1");
	ud_ip_format(ip, ud_subnet_netmask(&s));
	assert_string_equal(ip, "255.255.255.0");
	assert_int_equal(ud_subnet_parse(&s, "10.0.0.0/8", "x"), 0);
	ud_ip_format(ip, ud_subnet_netmask(&s));
	assert_string_equal(ip, "255.0.0.0");
	assert_int_equal(ud_subnet_parse(&s, "10.0.0.4/30", "x"), 0);
	ud_ip_format(ip, ud_subnet_netmask(&s));
	assert_string_equal(ip, "255.255.255.252");
}

static void subnet_bad(void **state)
{
	const char *const bad[] = { "10.0.0.1/24", "10.0.0.0/7", "10.0.0.0/31",
				    "10.0.0.0/32", "10.0.0.0/33", "1.2.3",
				    "256.0.0.0/8", "10.0.0.0/24x",
				    "10.0.0.0", "10.0.0.0/", "10.0.0.0/024",
				    "/24", "10.0.0.0/-1", " 10.0.0.0/24", "",
				    NULL };
	struct ud_subnet s;
	size_t i;

	(void)state;
	for (i = 0; bad[i]; i++) {
		char *quoted = ud_asprintf("'%s'", bad[i]);
		const char *msg;

		if (ud_subnet_parse(&s, bad[i], "agent.json: subnet") !=
		    UD_EINVALID)
			fail_msg("'%s' accepted", bad[i]);
		msg = ud_error_last();
		if (strncmp(msg, "agent.json: subnet", 18) != 0 ||
		    !strstr(msg, quoted))
			fail_msg("message for '%s': %s", bad[i], msg);
		free(quoted);
	}
	ud_subnet_parse(&s, "10.0.0.1/24", "where");
	assert_non_null(strstr(ud_error_last(), "host bits"));
	assert_non_null(strstr(ud_error_last(), "10.0.0.0/24"));
	ud_subnet_parse(&s, "10.0.0.0/31", "where");
	assert_non_null(strstr(ud_error_last(), "8..30"));
}

static void contains(void **state)
{
	struct ud_subnet s;

	(void)state;
	assert_int_equal(ud_subnet_parse(&s, "10.200.0.0/24", NULL), 0);
	assert_false(ud_subnet_contains(&s, IP(10, 200, 0, 0)));
	assert_false(ud_subnet_contains(&s, IP(10, 200, 0, 1)));
	assert_true(ud_subnet_contains(&s, IP(10, 200, 0, 2)));
	assert_true(ud_subnet_contains(&s, IP(10, 200, 0, 254)));
	assert_false(ud_subnet_contains(&s, IP(10, 200, 0, 255)));
	assert_false(ud_subnet_contains(&s, IP(10, 200, 1, 2)));
	assert_false(ud_subnet_contains(&s, IP(10, 199, 255, 254)));
}

static void alloc_lowest_free(void **state)
{
	struct ud_subnet s;
	uint32_t used[8], ip;
	size_t n = 0;

	(void)state;
	assert_int_equal(ud_subnet_parse(&s, "10.200.0.0/24", NULL), 0);
	/* The gateway is never handed out, even when nothing is in use. */
	assert_int_equal(ud_ipam_alloc(&s, NULL, 0, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 2));
	used[n++] = ip;
	assert_int_equal(ud_ipam_alloc(&s, used, n, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 3));
	used[n++] = ip;
	/* A gap below is filled first; out-of-subnet entries, the gateway
	 * and duplicates are ignored. */
	used[0] = IP(10, 200, 0, 4);
	used[n++] = IP(10, 200, 0, 1);
	used[n++] = IP(192, 168, 0, 2);
	used[n++] = IP(10, 200, 0, 4);
	assert_int_equal(ud_ipam_alloc(&s, used, n, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 2));
	used[n++] = ip;
	assert_int_equal(ud_ipam_alloc(&s, used, n, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 5));
}

static void alloc_full(void **state)
{
	struct ud_subnet s;
	uint32_t used[2], ip = 0;

	(void)state;
	/* A /30 has one guest address: .2 (.1 gateway, .3 broadcast). */
	assert_int_equal(ud_subnet_parse(&s, "10.9.0.0/30", NULL), 0);
	assert_int_equal(ud_ipam_alloc(&s, NULL, 0, &ip), 0);
	assert_int_equal(ip, IP(10, 9, 0, 2));
	used[0] = ip;
	used[1] = ip;
	assert_int_equal(ud_ipam_alloc(&s, used, 2, &ip), UD_ETOOBIG);
	assert_string_equal(ud_error_last(),
			    "subnet 10.9.0.0/30 is full (1 addresses in use)");
}

static void alloc_full_24_release_reuse(void **state)
{
	struct ud_subnet s;
	uint32_t used[253], ip;
	size_t i;

	(void)state;
	assert_int_equal(ud_subnet_parse(&s, "10.200.0.0/24", NULL), 0);
	for (i = 0; i < 253; i++) {
		assert_int_equal(ud_ipam_alloc(&s, used, i, &ip), 0);
		assert_int_equal(ip, IP(10, 200, 0, 2 + i));
		used[i] = ip;
	}
	assert_int_equal(ud_ipam_alloc(&s, used, 253, &ip), UD_ETOOBIG);
	assert_string_equal(ud_error_last(), "subnet 10.200.0.0/24 is full "
					     "(253 addresses in use)");
	/* Release .100: it is the one handed out next. */
	used[98] = used[252];
	assert_int_equal(ud_ipam_alloc(&s, used, 252, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 100));
}

static void alloc_after_restart(void **state)
{
	/* The agent writes the used list to its state file as text and
	 * reads it back after a restart: allocation continues the same. */
	const char *saved[] = { "10.200.0.2", "10.200.0.3", "10.200.0.5" };
	struct ud_subnet s;
	uint32_t used[4], ip;
	size_t i;

	(void)state;
	assert_int_equal(ud_subnet_parse(&s, "10.200.0.0/24", NULL), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(ud_ip_parse(&used[i], saved[i]), 0);
	assert_int_equal(ud_ipam_alloc(&s, used, 3, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 4));
	used[3] = ip;
	assert_int_equal(ud_ipam_alloc(&s, used, 4, &ip), 0);
	assert_int_equal(ip, IP(10, 200, 0, 6));
}

static void tap_names(void **state)
{
	const char *const seeds[] = { "", "edge1", "a-much-longer-host-name",
				      "/var/lib/unideploy", NULL };
	const int ids[] = { 0, 1, 9, 10, 99, 12345, 99999, 99999999 };
	char name[UD_IFNAME_STRLEN], prefix[UD_IFNAME_STRLEN];
	size_t i, j;
	int id;

	(void)state;
	for (i = 0; seeds[i]; i++) {
		ud_tap_prefix(prefix, seeds[i]);
		assert_int_equal(strlen(prefix), 7);
		assert_memory_equal(prefix, "ud", 2);
		assert_int_equal(prefix[6], 't');
		for (j = 0; j < sizeof(ids) / sizeof(ids[0]); j++) {
			assert_int_equal(ud_tap_name(name, seeds[i], ids[j]),
					 0);
			assert_true(strlen(name) <= 15);
			assert_memory_equal(name, prefix, 7);
			assert_int_equal(ud_tap_parse_id(&id, prefix, name),
					 0);
			assert_int_equal(id, ids[j]);
		}
	}
	/* Stable: the same seed and id give the same name. */
	assert_int_equal(ud_tap_name(name, "edge1", 7), 0);
	ud_tap_prefix(prefix, "edge1");
	{
		char *want = ud_asprintf("%s7", prefix);

		assert_string_equal(name, want);
		free(want);
	}
	ud_tap_prefix(name, "edge2");
	assert_string_not_equal(name, prefix);
}

static void tap_name_limits(void **state)
{
	char name[UD_IFNAME_STRLEN];

	(void)state;
	assert_int_equal(ud_tap_name(name, "edge1", 100000000), UD_ETOOBIG);
	assert_non_null(strstr(ud_error_last(), "100000000"));
	assert_int_equal(ud_tap_name(name, "edge1", -1), UD_EINVALID);
}

static void tap_parse_rejects(void **state)
{
	const char *const bad[] = { "ud1a2bt01", "ud1a2bt", "ud1a2bt-1",
				    "ud1a2bt1x", "ud1a2bt 1", "udffffT1",
				    "ud9999t1", "xud1a2bt1", "ud1a2b",
				    "ud1a2bt99999999999", "ud1a2bt+1", "",
				    NULL };
	size_t i;
	int id = -5;

	(void)state;
	for (i = 0; bad[i]; i++) {
		char *quoted = ud_asprintf("'%s'", bad[i]);

		if (ud_tap_parse_id(&id, "ud1a2bt", bad[i]) != UD_EINVALID)
			fail_msg("'%s' accepted (id %d)", bad[i], id);
		if (!strstr(ud_error_last(), quoted))
			fail_msg("message for '%s': %s", bad[i],
				 ud_error_last());
		free(quoted);
	}
	assert_int_equal(id, -5);
	assert_int_equal(ud_tap_parse_id(&id, "ud1a2bt", "ud1a2bt0"), 0);
	assert_int_equal(id, 0);
	assert_int_equal(ud_tap_parse_id(&id, "ud1a2bt", "ud1a2bt2147483647"),
			 0);
	assert_int_equal(id, 2147483647);
}

static void check_mac(const char *mac)
{
	unsigned b[6];
	int n = -1;

	assert_int_equal(strlen(mac), UD_MAC_STRLEN - 1);
	assert_int_equal(sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1],
				&b[2], &b[3], &b[4], &b[5], &n),
			 6);
	assert_int_equal(n, UD_MAC_STRLEN - 1);
	assert_true(b[0] & 0x02);    /* locally administered */
	assert_false(b[0] & 0x01);   /* unicast */
	assert_memory_equal(mac, "02:", 3);
}

static void macs(void **state)
{
	char a[UD_MAC_STRLEN], b[UD_MAC_STRLEN];

	(void)state;
	ud_mac_for("edge1", 1, a);
	check_mac(a);
	ud_mac_for("edge1", 1, b);
	assert_string_equal(a, b);
	ud_mac_for("edge1", 2, b);
	check_mac(b);
	assert_string_not_equal(a, b);
	ud_mac_for("edge2", 1, b);
	check_mac(b);
	assert_string_not_equal(a, b);
	/* The seed/id boundary matters: ("a", 12) is not ("a1", 2). */
	ud_mac_for("a", 12, a);
	ud_mac_for("a1", 2, b);
	assert_string_not_equal(a, b);
	ud_mac_for("", 0, a);
	check_mac(a);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(ip_round_trip),
		cmocka_unit_test(ip_bad),
		cmocka_unit_test(subnet_round_trip),
		cmocka_unit_test(subnet_bad),
		cmocka_unit_test(contains),
		cmocka_unit_test(alloc_lowest_free),
		cmocka_unit_test(alloc_full),
		cmocka_unit_test(alloc_full_24_release_reuse),
		cmocka_unit_test(alloc_after_restart),
		cmocka_unit_test(tap_names),
		cmocka_unit_test(tap_name_limits),
		cmocka_unit_test(tap_parse_rejects),
		cmocka_unit_test(macs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
