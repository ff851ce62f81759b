/*
 * netdev.h: the agent's bridge and tap devices, through ioctl(2) and
 * /dev/net/tun only (no `ip`, no /sys, so it works in any network
 * namespace). Needs CAP_NET_ADMIN.
 *
 * Interface names are checked before any system call: 1..15 characters of
 * [A-Za-z0-9_.-]; anything else is UD_EINVALID quoting the name. Every
 * other error message names the interface and carries strerror(errno).
 * Fallible functions return 0 or a negative UD_E* code (errors.h).
 */
#ifndef UD_NETDEV_H
#define UD_NETDEV_H

#include <stdint.h>
#include <sys/types.h>

#include "strvec.h"

/* 1 if an interface of this name exists in our namespace, else 0 (also
 * for an invalid name). */
int ud_netdev_exists(const char *name);

/* Append the names that start with `prefix` (NULL or "": all), sorted
 * (strcmp), to `out`. UD_ERROR if the list cannot be read. */
int ud_netdev_list(struct ud_strvec *out, const char *prefix);

/* Make `bridge` exist and be up. If it has no IPv4 address it gets
 * gw/prefix (prefix 8..30, gw in host byte order); an address already
 * there is left alone. Idempotent. */
int ud_bridge_ensure(const char *bridge, uint32_t gw, int prefix);

/* A persistent tap owned by `owner` (and `group` unless (gid_t)-1),
 * enslaved to `bridge` (which must exist: UD_ENOTFOUND), and up. A tap that
 * exists already is only put on the bridge and brought up (idempotent);
 * one that is a port of another bridge is UD_EBUSY. On failure, a tap this
 * call created is removed again. */
int ud_tap_create(const char *tap, const char *bridge, uid_t owner,
		  gid_t group);

/* Open an existing tap (UD_ENOTFOUND when it is not there) for the VM
 * that will use it: the descriptor is the VM's network device, so the VM
 * itself never opens /dev/net/tun. *fd is close-on-exec and the caller's;
 * UD_EBUSY while another process holds the tap. */
int ud_tap_open(const char *tap, int *fd);

/* Clear the tap's persist flag, which removes it. A tap that does not exist
 * is success. While a process holds the tap open (a running VM) the kernel
 * refuses to attach a second file (EBUSY): UD_EBUSY, the tap is left as it
 * is; delete it again after the process has exited. */
int ud_tap_delete(const char *tap);

#endif
