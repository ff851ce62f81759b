/* network.h: the host network of VM instances (agent.json "network"). */
#ifndef UD_AGENT_NETWORK_H
#define UD_AGENT_NETWORK_H

#include "agent.h"

/* Create the bridge with the gateway address if it is missing (at start;
 * nothing to do without a network). */
int network_start(struct agent *a);
/* The network devices an instance of `target` from `image` gets, by the
 * name the image knows them (Solo5's manifest), or "net0" for a VM with
 * one virtio-net/vif device; none for unix, and none for qemu without a
 * host network (user-mode networking). UD_EINVALID when the image needs a
 * network the host does not have. */
int network_devices(struct agent *a, const char *target, const char *image,
		    struct ud_strvec *names);
/* Give `in` an address (it keeps the one it has) and nnets taps. */
int network_attach(struct agent *a, struct app *app, struct instance *in,
		   size_t nnets);
/* Remove its taps and free its address (the instance stopped). */
void network_detach(struct agent *a, struct instance *in);
/* After adopting: remove the taps of instances that are gone. */
void network_sweep(struct agent *a);
int network_tap_name(struct agent *a, int id, size_t k, char out[16]);
void network_mac(struct agent *a, int id, size_t k, char out[18]);
/* Where an instance answers: its own address, or 127.0.0.1. */
void inst_host(const struct instance *in, char out[16]);

#endif
