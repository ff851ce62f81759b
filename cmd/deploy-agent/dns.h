/* dns.h: the DNS trigger (agent.json "dns", dns.c). */
#ifndef UD_AGENT_DNS_H
#define UD_AGENT_DNS_H

#include <stddef.h>

#include "agent.h"

#define DNS_MAX 512 /* a classic UDP message, all we answer */
struct dns_question {
	char name[256];  /* lower case, dotted, with the trailing dot */
	unsigned qtype, qclass;
	size_t end;      /* offset just past the question */
};
/* Parse a query. -1 for anything to drop: short, a response, not a
 * QUERY, qdcount != 1, compression or reserved label types in the
 * question, a label or name past its limit, the question truncated. */
int dns_parse(const unsigned char *pkt, size_t len,
	      struct dns_question *q);
/* The app a name asks for in zone ("apps.example."): copies the single
 * label before the zone into app (at least 64 bytes); 1 if there is one,
 * 0 for the zone's apex, -1 for anything else. */
int dns_app_of(const struct dns_question *q, const char *zone, char *app);
/* Build the reply to a parsed query into out (DNS_MAX bytes): rcode 0
 * with one A record of addr (network order) when addr is not NULL and
 * the type is A or ANY, rcode 3 (NXDOMAIN) etc. as given. Returns its
 * length. */
size_t dns_reply(const unsigned char *pkt, const struct dns_question *q,
		 int rcode, const unsigned char addr[4], unsigned char *out);
/* Start answering on conf->dns_listen (UD_ERROR naming the address if it
 * cannot be bound); stop and free (NULL is fine). */
struct dns;
int dns_start(struct agent *a, struct dns **out);
void dns_stop(struct dns *d);

#endif
