/*
 * network.c: the host network of VM instances (agent.json "network",
 * SPEC §5). The agent creates the bridge with the subnet's gateway
 * address when it is missing; each instance of a networked backend gets
 * an address from the subnet (recorded in state.json with the instance,
 * never given to two live instances, free again when it stops) and one
 * persistent tap per network device, named from the state directory and
 * the instance id so that the agent finds its taps again after a restart
 * (lib/ipam.c), with a stable MAC. Nothing else is opened: no NAT, no
 * forwarding; instances reach the gateway and each other.
 *
 * Runs on the reconcile thread, as the supervisor does. The bridge is
 * made before the agent splits (main.c); taps are made and removed by the
 * privileged parent (priv.c) when there is one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "network.h"
#include "backend.h"
#include "buf.h"
#include "errors.h"
#include "ipam.h"
#include "log.h"
#include "netdev.h"
#include "priv.h"
#include "solo5.h"

/* Network devices one instance may have (Solo5 images declare theirs). */
#define MAX_NETS 8

/* The seed of tap names and MACs: one per state directory, so that two
 * agents on one machine never take each other's taps. Device k > 0 has a
 * prefix of its own. */
static char *seed(struct agent *a, size_t k)
{
	if (k == 0)
		return ud_strdup(a->conf->state_dir);
	return ud_asprintf("%s#net%zu", a->conf->state_dir, k);
}

int network_tap_name(struct agent *a, int id, size_t k,
		     char out[UD_IFNAME_STRLEN])
{
	char *s = seed(a, k);
	int err = ud_tap_name(out, s, id);

	free(s);
	return err;
}

void network_mac(struct agent *a, int id, size_t k, char out[UD_MAC_STRLEN])
{
	char *s = seed(a, k);

	ud_mac_for(s, id, out);
	free(s);
}

/* Taps are root's to make: the privileged parent's when there is one. */
static int tap_create(struct agent *a, const char *tap)
{
	if (a->priv)
		return priv_tap_create(a->priv, tap);
	return ud_tap_create(tap, a->conf->net_bridge,
			     a->inst_cred ? a->inst_cred->uid : getuid(),
			     a->inst_cred ? a->inst_cred->gid : getgid());
}

static int tap_delete(struct agent *a, const char *tap)
{
	if (a->priv)
		return priv_tap_delete(a->priv, tap);
	return ud_tap_delete(tap);
}

int network_start(struct agent *a)
{
	const struct ud_subnet *s = &a->conf->net_subnet;
	char net[UD_CIDR_STRLEN];
	int err;

	if (!a->conf->net_bridge)
		return 0;
	if ((err = ud_bridge_ensure(a->conf->net_bridge, ud_subnet_gateway(s),
				    s->prefix)) < 0)
		return err;
	ud_subnet_format(s, net);
	ud_log_info("network: bridge %s, subnet %s", a->conf->net_bridge, net);
	return 0;
}

int network_devices(struct agent *a, const char *target, const char *image,
		    struct ud_strvec *names)
{
	const struct backend *b = backend_find(target);
	struct ud_solo5_image img = { 0 };
	size_t i;
	int err;

	if (!b || !(b->flags & BACKEND_NETWORK))
		return 0;
	if (!(b->flags & BACKEND_SOLO5)) {
		/* One virtio-net (or vif) device, on the host network only:
		 * without one qemu falls back to user-mode networking. */
		if (a->conf->net_bridge)
			ud_strvec_push(names, "net0");
		return 0;
	}
	if ((err = ud_solo5_read_file(&img, image)) < 0)
		return err;
	for (i = 0; i < img.ndevices; i++)
		if (img.devices[i].type == UD_SOLO5_NET_BASIC)
			ud_strvec_push(names, img.devices[i].name);
	ud_solo5_image_free(&img);
	if (names->n && !a->conf->net_bridge)
		return ud_error_set(UD_EINVALID,
				    "the image declares network device '%s', "
				    "but host %s has no network (agent.json "
				    "\"network\")",
				    names->v[0], a->conf->host);
	if (names->n > MAX_NETS)
		return ud_error_set(UD_EINVALID,
				    "the image declares %zu network devices; "
				    "the agent attaches at most %d",
				    names->n, MAX_NETS);
	return 0;
}

/* Addresses of every instance that has one, but `except`. */
static uint32_t *used_addresses(struct agent *a, size_t *n,
				const struct instance *except)
{
	uint32_t *used = NULL;
	size_t i, j, cap = 0;

	*n = 0;
	for (i = 0; i < a->st.napps; i++)
		for (j = 0; j < a->st.apps[i]->ninst; j++) {
			const struct instance *in = a->st.apps[i]->inst[j];

			if (!in->addr || in == except)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				used = ud_realloc(used, cap * sizeof(*used));
			}
			used[(*n)++] = in->addr;
		}
	return used;
}

int network_attach(struct agent *a, struct app *app, struct instance *in,
		   size_t nnets)
{
	const struct ud_subnet *s = &a->conf->net_subnet;
	char tap[UD_IFNAME_STRLEN], ip[UD_IP_STRLEN];
	uint32_t *used;
	size_t nused, k;
	int err = 0;

	if (!nnets)
		return 0;
	/* A restarted instance keeps its address, unless another instance
	 * holds it (a state written before a crash of the agent). */
	used = used_addresses(a, &nused, in);
	for (k = 0; in->addr && k < nused; k++)
		if (used[k] == in->addr)
			in->addr = 0;
	if (in->addr && !ud_subnet_contains(s, in->addr))
		in->addr = 0;
	if (!in->addr && (err = ud_ipam_alloc(s, used, nused, &in->addr)) < 0)
		goto done;
	for (k = 0; k < nnets; k++) {
		if ((err = network_tap_name(a, in->id, k, tap)) < 0 ||
		    (err = tap_create(a, tap)) < 0)
			goto done;
	}
	ud_ip_format(ip, in->addr);
	ud_log_info("%s: instance %d has address %s on %s", app->name, in->id,
		    ip, a->conf->net_bridge);
done:
	if (err < 0)
		network_detach(a, in);
	free(used);
	return err;
}

void network_detach(struct agent *a, struct instance *in)
{
	char tap[UD_IFNAME_STRLEN];
	size_t k;

	if (!a->conf->net_bridge)
		return;
	for (k = 0; k < MAX_NETS; k++) {
		if (network_tap_name(a, in->id, k, tap) < 0)
			break;
		if (ud_netdev_exists(tap) && tap_delete(a, tap) < 0) {
			ud_log_warn("%s", ud_error_last());
			ud_error_clear();
		}
	}
	in->addr = 0;
}

static int live_id(struct agent *a, int id)
{
	size_t i, j;

	for (i = 0; i < a->st.napps; i++)
		for (j = 0; j < a->st.apps[i]->ninst; j++)
			if (a->st.apps[i]->inst[j]->id == id)
				return 1;
	return 0;
}

void network_sweep(struct agent *a)
{
	struct ud_strvec taps = UD_STRVEC_INIT;
	char prefix[UD_IFNAME_STRLEN];
	size_t k, i;
	int id;

	if (!a->conf->net_bridge)
		return;
	for (k = 0; k < MAX_NETS; k++) {
		char *s = seed(a, k);

		ud_tap_prefix(prefix, s);
		free(s);
		ud_strvec_free(&taps);
		if (ud_netdev_list(&taps, prefix) < 0) {
			ud_log_warn("network: %s", ud_error_last());
			ud_error_clear();
			continue;
		}
		for (i = 0; i < taps.n; i++) {
			if (ud_tap_parse_id(&id, prefix, taps.v[i]) < 0) {
				ud_error_clear();
				continue;
			}
			if (live_id(a, id))
				continue;
			ud_log_info("network: removing tap %s (instance %d is "
				    "gone)",
				    taps.v[i], id);
			if (tap_delete(a, taps.v[i]) < 0) {
				ud_log_warn("%s", ud_error_last());
				ud_error_clear();
			}
		}
	}
	ud_strvec_free(&taps);
}
