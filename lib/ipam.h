/*
 * ipam.h: the agent's address plan for bridged guests, as pure functions.
 *
 * One IPv4 subnet per host ("10.200.0.0/24"): the bridge holds the first
 * host address (the gateway, .1), guests get the lowest free address after
 * it. Nothing here touches the system; the caller keeps the list of
 * addresses in use (in its state file) and passes it in, so a restarted
 * agent allocates exactly as before.
 *
 * Tap devices and MAC addresses are derived from a seed (the agent's host
 * name or state directory) and a small integer id, so names are stable
 * across restarts and two agents on one machine do not collide.
 *
 * Addresses are uint32_t in host byte order. Fallible functions return 0
 * or a negative UD_E* code with the message set (errors.h).
 */
#ifndef UD_IPAM_H
#define UD_IPAM_H

#include <stddef.h>
#include <stdint.h>

#define UD_IP_STRLEN 16     /* "255.255.255.255" + NUL */
#define UD_CIDR_STRLEN 19   /* + "/32" */
#define UD_IFNAME_STRLEN 16 /* IFNAMSIZ */
#define UD_MAC_STRLEN 18    /* "02:xx:xx:xx:xx:xx" + NUL */

struct ud_subnet {
	uint32_t net; /* network address, host bits zero */
	int prefix;   /* 8..30 */
};

/* Dotted quad, strict: exactly four decimal parts 0..255, no sign, no
 * space, no leading zero (so "010" is not silently octal or decimal).
 * UD_EINVALID quoting the text. */
int ud_ip_parse(uint32_t *out, const char *s);
void ud_ip_format(char out[UD_IP_STRLEN], uint32_t ip);

/* "10.200.0.0/24": prefix 8..30 (a /31 or /32 has no room for a gateway
 * and a guest), host bits zero. UD_EINVALID with a message that starts
 * with `where` (e.g. "agent.json: subnet") and quotes the text. */
int ud_subnet_parse(struct ud_subnet *s, const char *text, const char *where);
void ud_subnet_format(const struct ud_subnet *s, char out[UD_CIDR_STRLEN]);
uint32_t ud_subnet_gateway(const struct ud_subnet *s); /* net + 1 */
uint32_t ud_subnet_netmask(const struct ud_subnet *s);
/* 1 if `ip` is an address a guest may hold: inside the subnet and neither
 * the network, the gateway nor the broadcast address; else 0. */
int ud_subnet_contains(const struct ud_subnet *s, uint32_t ip);

/* The lowest guest address (after the gateway) not in used[0..nused).
 * Entries outside the subnet are ignored; duplicates are fine. UD_ETOOBIG
 * "subnet 10.200.0.0/24 is full (253 addresses in use)" when none is left. */
int ud_ipam_alloc(const struct ud_subnet *s, const uint32_t *used,
		  size_t nused, uint32_t *out);

/* Tap names: "ud" + 4 hex digits of SHA-256(seed) + "t" + decimal id, e.g.
 * "ud1a2bt7". id < 0 is UD_EINVALID; a name over 15 characters (id above
 * 99999999) is UD_ETOOBIG. */
int ud_tap_name(char out[UD_IFNAME_STRLEN], const char *seed, int id);
/* The part before the id: "ud1a2bt". */
void ud_tap_prefix(char out[UD_IFNAME_STRLEN], const char *seed);
/* The id of a name made by ud_tap_name() with this prefix: the rest must be
 * decimal digits without a leading zero (only "0" itself) that fit an int.
 * Else UD_EINVALID quoting the name. */
int ud_tap_parse_id(int *id, const char *prefix, const char *name);

/* A stable locally administered unicast MAC, "02:xx:xx:xx:xx:xx", the
 * last five bytes from SHA-256 of seed and id. */
void ud_mac_for(const char *seed, int id, char out[UD_MAC_STRLEN]);

#endif
