/*
 * Tests of the agent's DNS trigger (cmd/deploy-agent/dns.c): the query
 * parser and reply builder on hand-made packets (good ones, and every way
 * a packet can be malformed), random and truncated input that must never
 * be answered wrongly or read out of bounds (run under SANITIZE=1), and a
 * real UDP server answering real queries and reporting demand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "agent.h"
#include "dns.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "net.h"

#define ZONE "apps.example."

/* A query for name ("pong.apps.example"), type and class, with flags
 * (RD by default) and qdcount as given. Returns its length. */
static size_t query(unsigned char *out, const char *name, unsigned type,
		    unsigned qclass, unsigned char flags, unsigned qdcount)
{
	size_t off = 12;
	const char *p = name, *dot;

	memset(out, 0, 12);
	out[0] = 0xbe;
	out[1] = 0xef;
	out[2] = flags;
	out[5] = (unsigned char)qdcount;
	while (*p) {
		size_t l;

		dot = strchr(p, '.');
		l = dot ? (size_t)(dot - p) : strlen(p);
		out[off++] = (unsigned char)l;
		memcpy(out + off, p, l);
		off += l;
		p += l;
		if (*p == '.')
			p++;
	}
	out[off++] = 0;
	out[off++] = (unsigned char)(type >> 8);
	out[off++] = (unsigned char)type;
	out[off++] = (unsigned char)(qclass >> 8);
	out[off++] = (unsigned char)qclass;
	return off;
}

static void test_parse_good(void **state)
{
	unsigned char pkt[512];
	struct dns_question q;
	char app[64];
	size_t n;

	(void)state;
	n = query(pkt, "PoNg.Apps.Example", 1, 1, 0x01, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	assert_string_equal(q.name, "pong.apps.example.");
	assert_int_equal(q.qtype, 1);
	assert_int_equal(q.qclass, 1);
	assert_int_equal(q.end, n);
	assert_int_equal(dns_app_of(&q, ZONE, app), 1);
	assert_string_equal(app, "pong");

	/* The apex, a deeper name, another zone, a suffix lookalike. */
	n = query(pkt, "apps.example", 1, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	assert_int_equal(dns_app_of(&q, ZONE, app), 0);
	n = query(pkt, "a.pong.apps.example", 1, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	assert_int_equal(dns_app_of(&q, ZONE, app), -1);
	n = query(pkt, "pong.example.org", 1, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	assert_int_equal(dns_app_of(&q, ZONE, app), -1);
	n = query(pkt, "pongapps.example", 1, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	assert_int_equal(dns_app_of(&q, ZONE, app), -1);
	/* The root. */
	n = query(pkt, "", 1, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	assert_string_equal(q.name, ".");
	assert_int_equal(dns_app_of(&q, ZONE, app), -1);
	/* Extra bytes after the question (an EDNS OPT record) are fine. */
	n = query(pkt, "pong.apps.example", 1, 1, 0, 1);
	memset(pkt + n, 0, 11);
	pkt[11] = 1; /* arcount */
	assert_int_equal(dns_parse(pkt, n + 11, &q), 0);
	assert_int_equal(q.end, n);
}

static void test_parse_malformed(void **state)
{
	unsigned char pkt[600];
	struct dns_question q;
	size_t n, i;

	(void)state;
	n = query(pkt, "pong.apps.example", 1, 1, 0, 1);
	/* Every truncation of a good query is dropped. */
	for (i = 0; i < n; i++)
		assert_int_equal(dns_parse(pkt, i, &q), -1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);

	/* A response (QR set), another opcode (STATUS). */
	n = query(pkt, "pong.apps.example", 1, 1, 0x80, 1);
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	n = query(pkt, "pong.apps.example", 1, 1, 0x10, 1);
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	/* qdcount 0 and 2. */
	n = query(pkt, "pong.apps.example", 1, 1, 0, 0);
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	n = query(pkt, "pong.apps.example", 1, 1, 0, 2);
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	/* A compression pointer in the question (to itself: a loop). */
	n = query(pkt, "pong.apps.example", 1, 1, 0, 1);
	pkt[12 + 5] = 0xc0;
	pkt[12 + 6] = 12;
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	/* Reserved label types 0x40 and 0x80. */
	n = query(pkt, "pong.apps.example", 1, 1, 0, 1);
	pkt[12] = 0x44;
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	pkt[12] = 0x84;
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	/* A label longer than the packet. */
	n = query(pkt, "pong.apps.example", 1, 1, 0, 1);
	pkt[12] = 63;
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	/* A name of 256 bytes on the wire (three labels of 63, one of 62),
	 * then 255 (the last one 61): refused, accepted. */
	memset(pkt, 0, sizeof(pkt));
	pkt[5] = 1;
	for (i = 0; i < 4; i++) {
		pkt[12 + i * 64] = i < 3 ? 63 : 62;
		memset(pkt + 13 + i * 64, 'a', 63);
	}
	n = 12 + 3 * 64 + 63;
	pkt[n++] = 0;
	pkt[n++] = 0, pkt[n++] = 1, pkt[n++] = 0, pkt[n++] = 1;
	assert_int_equal(dns_parse(pkt, n, &q), -1);
	pkt[12 + 3 * 64] = 61;
	memmove(pkt + 12 + 3 * 64 + 62, pkt + 12 + 3 * 64 + 63, 5);
	assert_int_equal(dns_parse(pkt, n - 1, &q), 0);
	assert_int_equal(strlen(q.name), 254);
}

/* Random bytes, and random mutations of a good query: never a crash or a
 * read past the end (the sanitizer build checks), and whatever parses
 * yields a reply that fits. */
static void test_parse_fuzz(void **state)
{
	unsigned char good[512], pkt[512], out[DNS_MAX + 16];
	struct dns_question q;
	char app[64];
	size_t n, len, i, k, parsed = 0;
	unsigned seed = 12345;

	(void)state;
	n = query(good, "pong.apps.example", 1, 1, 1, 1);
	for (i = 0; i < 200000; i++) {
		if (i % 2) {
			len = (size_t)rand_r(&seed) % 80;
			for (k = 0; k < len; k++)
				pkt[k] = (unsigned char)rand_r(&seed);
			if (len > 5 && i % 3) {
				pkt[2] &= 0x07; /* a query, mostly */
				pkt[4] = 0;
				pkt[5] = 1;
			}
		} else {
			memcpy(pkt, good, n);
			len = n;
			for (k = (size_t)rand_r(&seed) % 4; k-- > 0;)
				pkt[(size_t)rand_r(&seed) % n] =
					(unsigned char)rand_r(&seed);
			len -= (size_t)rand_r(&seed) % 3;
		}
		/* A copy exactly `len` long: a read past it is caught. */
		{
			unsigned char *exact = ud_malloc(len ? len : 1);

			memcpy(exact, pkt, len);
			if (dns_parse(exact, len, &q) == 0) {
				parsed++;
				assert_true(q.end <= len);
				assert_true(strlen(q.name) <= 256);
				dns_app_of(&q, ZONE, app);
				assert_true(strlen(app) < 64);
				if (q.end + 16 <= DNS_MAX)
					assert_true(dns_reply(exact, &q, 0,
							      (const unsigned
							       char *)"\x7f\0\0\1",
							      out) <= q.end + 16);
			}
			free(exact);
		}
	}
	/* The mutations do leave some queries intact. */
	assert_true(parsed > 0);
}

static void test_reply(void **state)
{
	unsigned char pkt[512], out[DNS_MAX + 16];
	const unsigned char addr[4] = { 10, 1, 2, 3 };
	struct dns_question q;
	size_t n, r;

	(void)state;
	n = query(pkt, "Pong.apps.example", 1, 1, 0x01, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	r = dns_reply(pkt, &q, 0, addr, out);
	assert_int_equal(r, n + 16);
	assert_int_equal(out[0], 0xbe);
	assert_int_equal(out[1], 0xef);
	assert_int_equal(out[2], 0x85); /* QR, AA, RD */
	assert_int_equal(out[3], 0);
	assert_int_equal(out[5], 1);    /* qdcount */
	assert_int_equal(out[7], 1);    /* ancount */
	assert_int_equal(out[9] | out[11], 0);
	assert_memory_equal(out + 12, pkt + 12, n - 12); /* echoed */
	assert_int_equal(out[n], 0xc0);
	assert_int_equal(out[n + 1], 12);
	assert_int_equal(out[n + 3], 1);  /* A */
	assert_int_equal(out[n + 5], 1);  /* IN */
	assert_int_equal(out[n + 6] | out[n + 7] | out[n + 8] | out[n + 9],
			 0); /* TTL 0 */
	assert_int_equal(out[n + 11], 4);
	assert_memory_equal(out + n + 12, addr, 4);

	/* AAAA for a known name: NOERROR, no answer. */
	n = query(pkt, "pong.apps.example", 28, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	r = dns_reply(pkt, &q, 0, addr, out);
	assert_int_equal(r, n);
	assert_int_equal(out[3], 0);
	assert_int_equal(out[7], 0);

	/* NXDOMAIN: authoritative, the question echoed, no answer. */
	n = query(pkt, "nope.apps.example", 1, 1, 0, 1);
	assert_int_equal(dns_parse(pkt, n, &q), 0);
	r = dns_reply(pkt, &q, 3, NULL, out);
	assert_int_equal(r, n);
	assert_int_equal(out[2], 0x84);
	assert_int_equal(out[3], 3);
	assert_int_equal(out[5], 1);
	assert_int_equal(out[7], 0);
	assert_memory_equal(out + 12, pkt + 12, n - 12);
}

/* --- the server, over real UDP --- */

struct fixture {
	struct agent a;
	struct ud_agentconf conf;
	struct dns *dns;
	int port;
	int fd;
};

static int setup(void **state)
{
	struct fixture *f = ud_calloc(1, sizeof(*f));
	struct timeval tv = { 5, 0 };
	char *listen;
	int err;

	ud_log_init(UD_LOG_ERROR, 0);
	agent_init(&f->a);
	f->a.conf = &f->conf;
	f->conf.dns_zone = ZONE;
	/* Two apps: one on its own address, one on every address. */
	state_app_add(&f->a.st, "pong")->listen = ud_strdup("127.0.0.7:8081");
	state_app_add(&f->a.st, "blog")->listen = ud_strdup("0.0.0.0:8082");
	assert_int_equal(ud_net_free_port(&f->port), 0);
	listen = ud_asprintf("127.0.0.1:%d", f->port);
	f->conf.dns_listen = listen;
	err = dns_start(&f->a, &f->dns);
	assert_int_equal(err, 0);
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->fd >= 0);
	setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	dns_stop(f->dns);
	close(f->fd);
	agent_free(&f->a);
	free(f->conf.dns_listen);
	free(f);
	return 0;
}

static void send_to(struct fixture *f, const unsigned char *pkt, size_t n)
{
	struct sockaddr_in sa = { 0 };

	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)f->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(f->fd, pkt, n, 0, (struct sockaddr *)&sa,
				sizeof(sa)), (ssize_t)n);
}

static ssize_t ask(struct fixture *f, const char *name, unsigned type,
		   unsigned char *out, size_t cap)
{
	unsigned char pkt[512];

	send_to(f, pkt, query(pkt, name, type, 1, 1, 1));
	return recv(f->fd, out, cap, 0);
}

/* Did the server report demand for app since the last look? (Takes
 * what it reported, as the reconcile thread does.) */
static int demanded(struct fixture *f, const char *app)
{
	struct agent_work w;
	size_t i;
	int found = 0;

	assert_int_equal(agent_wait_work(&f->a, 0, LLONG_MAX, &w), 0);
	for (i = 0; i < w.demand.n; i++)
		if (!strcmp(w.demand.v[i], app))
			found = 1;
	agent_work_free(&w);
	return found;
}

static void test_server(void **state)
{
	struct fixture *f = *state;
	unsigned char out[1024], junk[64];
	ssize_t n;

	agent_publish(&f->a);

	/* Garbage first: dropped, and the server still answers after. */
	memset(junk, 0xff, sizeof(junk));
	send_to(f, junk, sizeof(junk));
	send_to(f, junk, 3);

	n = ask(f, "pong.apps.example", 1, out, sizeof(out));
	assert_true(n >= 16);
	assert_int_equal(out[3] & 0x0f, 0);
	assert_int_equal(out[7], 1);
	assert_memory_equal(out + n - 4, "\x7f\x00\x00\x07", 4);
	assert_true(demanded(f, "pong"));

	/* On every address: the DNS listener's own. */
	n = ask(f, "BLOG.apps.example", 1, out, sizeof(out));
	assert_true(n >= 16);
	assert_int_equal(out[7], 1);
	assert_memory_equal(out + n - 4, "\x7f\x00\x00\x01", 4);

	/* Unknown: NXDOMAIN and no demand. */
	n = ask(f, "nope.apps.example", 1, out, sizeof(out));
	assert_true(n >= 12);
	assert_int_equal(out[3] & 0x0f, 3);
	assert_int_equal(out[7], 0);
	assert_false(demanded(f, "nope"));

	/* AAAA of a known name: NOERROR, empty, no boot. */
	(void)demanded(f, "");
	n = ask(f, "blog.apps.example", 28, out, sizeof(out));
	assert_true(n >= 12);
	assert_int_equal(out[3] & 0x0f, 0);
	assert_int_equal(out[7], 0);
	assert_false(demanded(f, "blog"));
}

/* Before the agent has said what it serves (it is still adopting after a
 * start), a query is dropped rather than answered NXDOMAIN: the resolver
 * asks again. */
static void test_before_snapshot(void **state)
{
	struct fixture *f = *state;
	unsigned char pkt[512], out[1024];
	ssize_t n;
	size_t len;

	len = query(pkt, "pong.apps.example", 1, 1, 1, 1);
	pkt[1] = 0x01; /* id 0xbe01: the dropped one */
	send_to(f, pkt, len);
	/* A name outside the zone is answered without the snapshot. The
	 * server reads in order: had it answered the first, that answer
	 * would come first. */
	n = ask(f, "pong.elsewhere.example", 1, out, sizeof(out));
	assert_true(n >= 12);
	assert_int_equal(out[1], 0xef);
	assert_int_equal(out[3] & 0x0f, 3);
	assert_false(demanded(f, "pong"));
	agent_publish(&f->a);
	n = ask(f, "pong.apps.example", 1, out, sizeof(out));
	assert_true(n >= 16);
	assert_int_equal(out[0], 0xbe);
	assert_int_equal(out[1], 0xef);
	assert_int_equal(out[3] & 0x0f, 0);
	assert_true(demanded(f, "pong"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_fuzz),
		cmocka_unit_test(test_reply),
		cmocka_unit_test_setup_teardown(test_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_before_snapshot, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
