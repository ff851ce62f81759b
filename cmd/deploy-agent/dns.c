/*
 * dns.c: the DNS trigger, as Jitsu did it. With "dns": {"listen":
 * "127.0.0.1:5353", "zone": "apps.example."} in agent.json, a UDP listener
 * answers A queries for <app>.<zone> with this host's address (TTL 0, so
 * no resolver keeps it) and, on the query, starts booting a summoned app:
 * the instance warms up while the client is still connecting.
 *
 * The address answered: the IPv4 address of the app's listen address when
 * it names one, else the DNS listener's own address (an app on 0.0.0.0 is
 * reachable wherever the DNS server is), else 127.0.0.1.
 *
 * The parser is small and strict: anything it does not fully understand
 * is dropped, never answered and never trusted further than its length.
 * Only single-question queries of classic size are answered (no EDNS in
 * the reply: an A record always fits in 512 bytes).
 *
 * One thread, blocked in recvfrom() while nothing arrives: an idle host
 * pays no wake-ups for it. It reads the agent's published snapshot
 * (agent_snapshot_listen) to know the apps and their addresses; until the
 * agent has published one (right after a start, while it adopts), queries
 * are dropped and the resolver asks again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "net.h"

#define HDR 12
#define TYPE_A 1
#define TYPE_ANY 255
#define CLASS_IN 1
#define RCODE_NXDOMAIN 3
#define RCODE_REFUSED 5

struct dns {
	struct agent *a;
	int fd;
	pthread_t thread;
	atomic_int stop;
	unsigned char self[4]; /* the listener's IPv4 address */
};

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

int dns_parse(const unsigned char *pkt, size_t len, struct dns_question *q)
{
	size_t off = HDR, n = 0, lab;
	size_t i;

	memset(q, 0, sizeof(*q));
	if (len < HDR)
		return -1;
	/* QR set: a response, never answered (no loops between servers);
	 * opcode other than QUERY: not ours. */
	if ((pkt[2] & 0x80) || (pkt[2] & 0x78))
		return -1;
	if (get16(pkt + 4) != 1)
		return -1;
	for (;;) {
		if (off >= len)
			return -1;
		lab = pkt[off++];
		if (lab == 0)
			break;
		/* 0xc0: a compression pointer, which no question needs;
		 * 0x40 and 0x80: reserved label types. */
		if (lab & 0xc0)
			return -1;
		if (off + lab > len)
			return -1;
		/* On the wire a name is at most 255 bytes: as text, with
		 * its trailing dot, 254. */
		if (n + lab + 1 > 254)
			return -1;
		for (i = 0; i < lab; i++) {
			unsigned char c = pkt[off + i];

			q->name[n++] = (char)(c >= 'A' && c <= 'Z' ?
					      c - 'A' + 'a' : c);
		}
		q->name[n++] = '.';
		off += lab;
	}
	if (n == 0)
		q->name[n++] = '.';
	q->name[n] = '\0';
	if (off + 4 > len)
		return -1;
	q->qtype = get16(pkt + off);
	q->qclass = get16(pkt + off + 2);
	q->end = off + 4;
	return 0;
}

int dns_app_of(const struct dns_question *q, const char *zone, char *app)
{
	size_t n = strlen(q->name), z = strlen(zone), l;
	const char *dot;

	app[0] = '\0';
	if (!strcmp(q->name, zone))
		return 0;
	if (n <= z + 1 || strcmp(q->name + n - z, zone) ||
	    q->name[n - z - 1] != '.')
		return -1;
	l = n - z - 1;
	dot = memchr(q->name, '.', l);
	/* One label only (app names have no dots), and no byte a label may
	 * carry but a name cannot (a NUL would cut the name short). */
	if (dot || l > 63 || memchr(q->name, '\0', l))
		return -1;
	memcpy(app, q->name, l);
	app[l] = '\0';
	return 1;
}

size_t dns_reply(const unsigned char *pkt, const struct dns_question *q,
		 int rcode, const unsigned char addr[4], unsigned char *out)
{
	size_t off;
	int answer = rcode == 0 && addr &&
		     (q->qtype == TYPE_A || q->qtype == TYPE_ANY);

	/* Header: same id, QR, AA, RD echoed, no RA. */
	memcpy(out, pkt, 2);
	out[2] = (unsigned char)(0x80 | 0x04 | (pkt[2] & 0x01));
	out[3] = (unsigned char)(rcode & 0x0f);
	put16(out + 4, 1);
	put16(out + 6, answer ? 1 : 0);
	put16(out + 8, 0);
	put16(out + 10, 0);
	/* The question as asked (its case kept, as resolvers check). */
	memcpy(out + HDR, pkt + HDR, q->end - HDR);
	off = q->end;
	if (answer) {
		put16(out + off, 0xc000 | HDR); /* the question's name */
		put16(out + off + 2, TYPE_A);
		put16(out + off + 4, CLASS_IN);
		memset(out + off + 6, 0, 4); /* TTL 0: ask again each time */
		put16(out + off + 10, 4);
		memcpy(out + off + 12, addr, 4);
		off += 16;
	}
	return off;
}

/* Is app placed here (1, not: 0), and at which IPv4 address does it
 * listen? -1 before the agent has said what it serves. */
static int lookup(struct dns *d, const char *app, unsigned char addr[4])
{
	struct ud_addr ua;
	const struct sockaddr_in *sin;
	char listen[128];
	int found;

	memcpy(addr, d->self, 4);
	found = agent_snapshot_listen(d->a, app, listen, sizeof(listen));
	sin = (const struct sockaddr_in *)&ua.ss;
	if (found == 1 && listen[0] && ud_addr_parse(&ua, listen) == 0 &&
	    ua.family == AF_INET && sin->sin_addr.s_addr != htonl(INADDR_ANY))
		memcpy(addr, &sin->sin_addr.s_addr, 4);
	ud_error_clear();
	return found;
}

static void answer(struct dns *d, const unsigned char *pkt, size_t len,
		   const struct sockaddr *from, socklen_t fromlen)
{
	struct dns_question q;
	unsigned char out[DNS_MAX + 16], addr[4];
	char app[64];
	int rcode = 0, which, found;
	size_t n;

	if (dns_parse(pkt, len, &q) < 0 || q.end + 16 > DNS_MAX)
		return;
	which = dns_app_of(&q, d->a->conf->dns_zone, app);
	if (q.qclass != CLASS_IN && q.qclass != TYPE_ANY)
		rcode = RCODE_REFUSED;
	else if (which < 0)
		rcode = RCODE_NXDOMAIN;
	else if (which == 1 && (found = lookup(d, app, addr)) < 0)
		return;
	else if (which == 1 && !found)
		rcode = RCODE_NXDOMAIN;
	n = dns_reply(pkt, &q, rcode, which == 1 ? addr : NULL, out);
	/* Booting starts before the answer leaves: every microsecond of
	 * the client's connect is spent warming the instance. */
	if (rcode == 0 && which == 1 &&
	    (q.qtype == TYPE_A || q.qtype == TYPE_ANY))
		agent_demand(app, 0, d->a);
	if (sendto(d->fd, out, n, MSG_DONTWAIT, from, fromlen) < 0)
		ud_log_debug("dns: reply: %s", strerror(errno));
}

static void *dns_main(void *arg)
{
	struct dns *d = arg;
	unsigned char pkt[DNS_MAX + 1];
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(d->fd, pkt, sizeof(pkt), 0,
			     (struct sockaddr *)&from, &fromlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == ECONNREFUSED))
			continue;
		/* shutdown() wakes us with 0 (or an error). */
		if (atomic_load(&d->stop) || n < 0)
			break;
		/* Longer than a classic message: not a query we answer. */
		if (n == 0 || (size_t)n > DNS_MAX || fromlen == 0)
			continue;
		answer(d, pkt, (size_t)n, (struct sockaddr *)&from, fromlen);
	}
	return NULL;
}

int dns_start(struct agent *a, struct dns **out)
{
	struct dns *d = ud_calloc(1, sizeof(*d));
	struct sockaddr_in sa;
	struct ud_addr ua;
	sigset_t all, old;
	int err, rc;

	d->a = a;
	d->fd = -1;
	if ((err = ud_addr_parse(&ua, a->conf->dns_listen)) < 0)
		goto done;
	if (ua.family != AF_INET) {
		err = ud_error_set(UD_EINVALID, "dns listen %s: an IPv4 "
				   "address and a port are needed",
				   a->conf->dns_listen);
		goto done;
	}
	memcpy(&sa, &ua.ss, sizeof(sa));
	if (sa.sin_addr.s_addr == htonl(INADDR_ANY))
		d->self[0] = 127, d->self[3] = 1;
	else
		memcpy(d->self, &sa.sin_addr.s_addr, 4);
	d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (d->fd < 0 ||
	    bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = ud_error_set_errno(UD_ERROR, "cannot listen on udp %s",
					 a->conf->dns_listen);
		goto done;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&d->thread, NULL, dns_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		err = ud_error_set(UD_ERROR, "cannot start the dns thread: %s",
				   strerror(rc));
		goto done;
	}
	ud_log_info("dns: answering for %s on udp %s", a->conf->dns_zone,
		    a->conf->dns_listen);
	*out = d;
	d = NULL;
done:
	if (d) {
		if (d->fd >= 0)
			close(d->fd);
		free(d);
	}
	return err;
}

void dns_stop(struct dns *d)
{
	if (!d)
		return;
	atomic_store(&d->stop, 1);
	/* Wakes the blocked recvfrom() (it returns 0) on Linux. */
	shutdown(d->fd, SHUT_RDWR);
	pthread_join(d->thread, NULL);
	close(d->fd);
	free(d);
}
