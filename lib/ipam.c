/* ipam.c: subnet arithmetic, address allocation, tap and MAC names. */
#include "ipam.h"
#include "buf.h"
#include "digest.h"
#include "errors.h"
#include "num.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One part of a dotted quad: 1..3 digits, no leading zero, at most 255.
 * Returns the position after it, or NULL. */
static const char *parse_octet(const char *p, unsigned *out)
{
	unsigned v = 0;
	int n = 0;

	while (p[n] >= '0' && p[n] <= '9') {
		if (n == 3)
			return NULL;
		v = v * 10 + (unsigned)(p[n] - '0');
		n++;
	}
	if (n == 0 || v > 255 || (n > 1 && p[0] == '0'))
		return NULL;
	*out = v;
	return p + n;
}

/* Parses a dotted quad at the start of s; returns the position after it. */
static const char *parse_quad(const char *s, uint32_t *out)
{
	uint32_t ip = 0;
	unsigned v;
	int i;

	for (i = 0; i < 4; i++) {
		if (i > 0 && *s++ != '.')
			return NULL;
		if (!(s = parse_octet(s, &v)))
			return NULL;
		ip = ip << 8 | v;
	}
	*out = ip;
	return s;
}

int ud_ip_parse(uint32_t *out, const char *s)
{
	const char *end = parse_quad(s, out);

	if (!end || *end)
		return ud_error_set(UD_EINVALID,
				    "invalid IPv4 address '%s': must be a "
				    "dotted quad such as 10.200.0.7", s);
	return 0;
}

void ud_ip_format(char out[UD_IP_STRLEN], uint32_t ip)
{
	snprintf(out, UD_IP_STRLEN, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 0xff,
		 ip >> 8 & 0xff, ip & 0xff);
}

int ud_subnet_parse(struct ud_subnet *s, const char *text, const char *where)
{
	struct ud_subnet r;
	const char *p;
	unsigned v;
	char fixed[UD_CIDR_STRLEN];

	if (!where)
		where = "subnet";
	if (!(p = parse_quad(text, &r.net)) || *p++ != '/' ||
	    !(p = parse_octet(p, &v)) || *p || v > 32)
		return ud_error_set(UD_EINVALID,
				    "%s: invalid subnet '%s': must be "
				    "ADDRESS/PREFIX such as 10.200.0.0/24",
				    where, text);
	r.prefix = (int)v;
	if (r.prefix < 8 || r.prefix > 30)
		return ud_error_set(UD_EINVALID,
				    "%s: invalid subnet '%s': the prefix must "
				    "be 8..30 (room for a gateway and guests)",
				    where, text);
	if (r.net & ~ud_subnet_netmask(&r)) {
		r.net &= ud_subnet_netmask(&r);
		ud_subnet_format(&r, fixed);
		return ud_error_set(UD_EINVALID,
				    "%s: invalid subnet '%s': host bits are "
				    "set (did you mean %s?)", where, text,
				    fixed);
	}
	*s = r;
	return 0;
}

void ud_subnet_format(const struct ud_subnet *s, char out[UD_CIDR_STRLEN])
{
	char ip[UD_IP_STRLEN];

	ud_ip_format(ip, s->net);
	snprintf(out, UD_CIDR_STRLEN, "%s/%d", ip, s->prefix);
}

uint32_t ud_subnet_netmask(const struct ud_subnet *s)
{
	if (s->prefix <= 0)
		return 0;
	if (s->prefix >= 32)
		return 0xffffffffu;
	return 0xffffffffu << (32 - s->prefix);
}

uint32_t ud_subnet_gateway(const struct ud_subnet *s)
{
	return s->net + 1;
}

static uint32_t broadcast(const struct ud_subnet *s)
{
	return s->net | ~ud_subnet_netmask(s);
}

int ud_subnet_contains(const struct ud_subnet *s, uint32_t ip)
{
	return (ip & ud_subnet_netmask(s)) == s->net && ip != s->net &&
	       ip != ud_subnet_gateway(s) && ip != broadcast(s);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int ud_ipam_alloc(const struct ud_subnet *s, const uint32_t *used,
		  size_t nused, uint32_t *out)
{
	/* Sort the guest addresses in use, then walk up from the first one:
	 * the first gap is the answer. O(n log n) even for a full /8. */
	uint32_t *v = ud_calloc(nused ? nused : 1, sizeof(*v));
	uint32_t next = ud_subnet_gateway(s) + 1;
	size_t i, n = 0, distinct = 0;
	char cidr[UD_CIDR_STRLEN];

	for (i = 0; i < nused; i++)
		if (ud_subnet_contains(s, used[i]))
			v[n++] = used[i];
	qsort(v, n, sizeof(*v), cmp_u32);
	for (i = 0; i < n; i++) {
		if (i > 0 && v[i] == v[i - 1])
			continue;
		distinct++;
		if (v[i] == next)
			next++;
		else if (v[i] > next)
			break;
	}
	free(v);
	/* Full means no gap: the loop saw every address, so `distinct`
	 * is the whole count. */
	if (next >= broadcast(s)) {
		ud_subnet_format(s, cidr);
		return ud_error_set(UD_ETOOBIG,
				    "subnet %s is full (%zu addresses in use)",
				    cidr, distinct);
	}
	*out = next;
	return 0;
}

/* The first four hex digits of SHA-256(seed). */
static void seed_tag(char out[5], const char *seed)
{
	char hex[UD_SHA256_HEX];

	ud_sha256_mem(hex, seed, strlen(seed));
	memcpy(out, hex, 4);
	out[4] = '\0';
}

void ud_tap_prefix(char out[UD_IFNAME_STRLEN], const char *seed)
{
	char tag[5];

	seed_tag(tag, seed);
	snprintf(out, UD_IFNAME_STRLEN, "ud%st", tag);
}

int ud_tap_name(char out[UD_IFNAME_STRLEN], const char *seed, int id)
{
	char prefix[UD_IFNAME_STRLEN];
	int n;

	if (id < 0)
		return ud_error_set(UD_EINVALID, "invalid tap id %d", id);
	ud_tap_prefix(prefix, seed);
	n = snprintf(out, UD_IFNAME_STRLEN, "%s%d", prefix, id);
	if (n < 0 || n >= UD_IFNAME_STRLEN) {
		out[0] = '\0';
		return ud_error_set(UD_ETOOBIG,
				    "tap id %d is too large: '%s%d' is longer "
				    "than %d characters", id, prefix, id,
				    UD_IFNAME_STRLEN - 1);
	}
	return 0;
}

int ud_tap_parse_id(int *id, const char *prefix, const char *name)
{
	size_t plen = strlen(prefix);
	long long v;

	if (strncmp(name, prefix, plen) != 0 ||
	    ud_num_parse(name + plen, 0, 0x7fffffff, &v) < 0)
		goto bad;
	*id = (int)v;
	return 0;
bad:
	return ud_error_set(UD_EINVALID,
			    "'%s' is not a tap name of the form %sN", name,
			    prefix);
}

void ud_mac_for(const char *seed, int id, char out[UD_MAC_STRLEN])
{
	struct ud_sha256 *c = ud_sha256_new();
	char hex[UD_SHA256_HEX];
	char idtext[16];

	/* The NUL keeps ("a", 12) and ("a1", 2) apart. */
	snprintf(idtext, sizeof(idtext), "%d", id);
	ud_sha256_update(c, seed, strlen(seed) + 1);
	ud_sha256_update(c, idtext, strlen(idtext));
	ud_sha256_final(c, hex);
	/* 0x02: locally administered (bit 1), unicast (bit 0 clear). */
	snprintf(out, UD_MAC_STRLEN, "02:%.2s:%.2s:%.2s:%.2s:%.2s", hex,
		 hex + 2, hex + 4, hex + 6, hex + 8);
}
