/*
 * netdev.c: bridges and taps through the classic ioctls and /dev/net/tun.
 *
 * Only ioctl(2) and if_nameindex(3): no `ip` subprocess, no /sys (absent
 * or showing the wrong namespace in containers), no netlink code to carry.
 */
#include "netdev.h"
#include "buf.h"
#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_bridge.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>

#define TUN_PATH "/dev/net/tun"
#define MAX_PORTS 1024 /* BR_MAX_PORTS */

static int name_check(const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			break;
	}
	if (n == 0 || n >= IFNAMSIZ || i < n || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return ud_error_set(UD_EINVALID,
				    "invalid interface name '%s': must be 1 "
				    "to %d characters of [A-Za-z0-9_.-]",
				    name, IFNAMSIZ - 1);
	return 0;
}

static void ifr_init(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	memcpy(ifr->ifr_name, name, strlen(name)); /* checked: < IFNAMSIZ */
}

/* A socket to hang the interface ioctls on. */
static int ctl_socket(const char *name, int *fd)
{
	if ((*fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return ud_error_set_errno(UD_ERROR,
					  "%s: cannot open a control socket",
					  name);
	return 0;
}

int ud_netdev_exists(const char *name)
{
	if (name_check(name) < 0) {
		ud_error_clear();
		return 0;
	}
	return if_nametoindex(name) != 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ud_netdev_list(struct ud_strvec *out, const char *prefix)
{
	struct if_nameindex *all, *p;
	size_t plen = prefix ? strlen(prefix) : 0, n = 0, i;
	char **names;

	if (!(all = if_nameindex()))
		return ud_error_set_errno(UD_ERROR,
					  "cannot list network interfaces");
	for (p = all; p->if_index; p++)
		n++;
	names = ud_calloc(n ? n : 1, sizeof(*names));
	n = 0;
	for (p = all; p->if_index; p++)
		if (!plen || !strncmp(p->if_name, prefix, plen))
			names[n++] = p->if_name;
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++)
		ud_strvec_push(out, names[i]);
	free(names);
	if_freenameindex(all);
	return 0;
}

static int bring_up(int fd, const char *name)
{
	struct ifreq ifr;

	ifr_init(&ifr, name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return ud_error_set_errno(errno == ENODEV ? UD_ENOTFOUND
							  : UD_ERROR,
					  "%s: cannot read the flags", name);
	if (ifr.ifr_flags & IFF_UP)
		return 0;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return ud_error_set_errno(UD_ERROR, "%s: cannot bring it up",
					  name);
	return 0;
}

static void set_sin(struct sockaddr *sa, uint32_t ip)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(ip);
	memcpy(sa, &sin, sizeof(sin));
}

/* Give the bridge gw/prefix unless it has an IPv4 address already. */
static int ensure_addr(int fd, const char *name, uint32_t gw, int prefix)
{
	struct ifreq ifr;

	ifr_init(&ifr, name);
	if (ioctl(fd, SIOCGIFADDR, &ifr) == 0)
		return 0;
	if (errno != EADDRNOTAVAIL)
		return ud_error_set_errno(UD_ERROR,
					  "%s: cannot read the IPv4 address",
					  name);
	ifr_init(&ifr, name);
	set_sin(&ifr.ifr_addr, gw);
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
		return ud_error_set_errno(UD_ERROR,
					  "%s: cannot set the IPv4 address",
					  name);
	/* SIOCSIFADDR gave it the classful mask; the kernel recomputes the
	 * broadcast address with the new mask. */
	ifr_init(&ifr, name);
	set_sin(&ifr.ifr_netmask, 0xffffffffu << (32 - prefix));
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
		return ud_error_set_errno(UD_ERROR,
					  "%s: cannot set the netmask /%d",
					  name, prefix);
	return 0;
}

int ud_bridge_ensure(const char *bridge, uint32_t gw, int prefix)
{
	int fd = -1, err;

	if ((err = name_check(bridge)) < 0)
		return err;
	if (prefix < 8 || prefix > 30 || gw == 0)
		return ud_error_set(UD_EINVALID,
				    "%s: invalid bridge address (prefix /%d)",
				    bridge, prefix);
	if ((err = ctl_socket(bridge, &fd)) < 0)
		return err;
	/* EEXIST: it exists (perhaps created a moment ago by someone else);
	 * bring_up() fails if that is not a usable device. */
	if (!if_nametoindex(bridge) && ioctl(fd, SIOCBRADDBR, bridge) < 0 &&
	    errno != EEXIST) {
		err = ud_error_set_errno(UD_ERROR,
					 "%s: cannot create the bridge",
					 bridge);
		goto done;
	}
	if ((err = ensure_addr(fd, bridge, gw, prefix)) < 0)
		goto done;
	err = bring_up(fd, bridge);
done:
	close(fd);
	return err;
}

/* 1 if the interface with index `port` is a port of `bridge`, 0 if not,
 * or an error. Uses the bridge's port list (BRCTL_GET_PORT_LIST), which
 * needs neither netlink nor /sys. */
static int is_port_of(int fd, const char *bridge, unsigned port)
{
	static int indices[MAX_PORTS];
	unsigned long args[4];
	struct ifreq ifr;
	int i;

	memset(indices, 0, sizeof(indices));
	args[0] = BRCTL_GET_PORT_LIST;
	args[1] = (unsigned long)indices;
	args[2] = MAX_PORTS;
	args[3] = 0;
	ifr_init(&ifr, bridge);
	ifr.ifr_data = (char *)args;
	if (ioctl(fd, SIOCDEVPRIVATE, &ifr) < 0)
		return ud_error_set_errno(errno == ENODEV ? UD_ENOTFOUND
							  : UD_ERROR,
					  "%s: cannot list the bridge ports",
					  bridge);
	for (i = 0; i < MAX_PORTS; i++)
		if (indices[i] == (int)port)
			return 1;
	return 0;
}

/* Put `tap` on `bridge` unless it is there already. */
static int enslave(int fd, const char *tap, const char *bridge)
{
	struct ifreq ifr;
	unsigned idx;
	int err;

	if (!(idx = if_nametoindex(tap)))
		return ud_error_set_errno(UD_ENOTFOUND, "%s: cannot find it",
					  tap);
	if ((err = is_port_of(fd, bridge, idx)) != 0)
		return err < 0 ? err : 0;
	ifr_init(&ifr, bridge);
	ifr.ifr_ifindex = (int)idx;
	if (ioctl(fd, SIOCBRADDIF, &ifr) < 0) {
		if (errno == EBUSY)
			return ud_error_set_errno(UD_EBUSY,
						  "%s: cannot add it to bridge "
						  "%s (a port of another "
						  "device?)", tap, bridge);
		return ud_error_set_errno(UD_ERROR,
					  "%s: cannot add it to bridge %s",
					  tap, bridge);
	}
	return 0;
}

/* Open /dev/net/tun and attach it to (or create) the tap `name`. */
static int tun_attach(const char *name, int *out)
{
	struct ifreq ifr;
	int fd, code;

	if ((fd = open(TUN_PATH, O_RDWR | O_CLOEXEC)) < 0)
		return ud_error_set_errno(UD_ERROR, "%s: cannot open %s", name,
					  TUN_PATH);
	ifr_init(&ifr, name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		code = errno == EBUSY ? UD_EBUSY : UD_ERROR;
		ud_error_set_errno(code,
				   code == UD_EBUSY
					   ? "%s: the tap is held open by a "
					     "process (a running VM?)"
					   : "%s: cannot attach to the tap",
				   name);
		close(fd);
		return code;
	}
	*out = fd;
	return 0;
}

int ud_tap_create(const char *tap, const char *bridge, uid_t owner,
		  gid_t group)
{
	int sock = -1, tun = -1, created = 0, err;

	if ((err = name_check(tap)) < 0 || (err = name_check(bridge)) < 0)
		return err;
	if (!if_nametoindex(bridge))
		return ud_error_set(UD_ENOTFOUND,
				    "%s: cannot put the tap on bridge %s: no "
				    "such bridge", tap, bridge);
	if ((err = ctl_socket(tap, &sock)) < 0)
		return err;
	if (!if_nametoindex(tap)) {
		/* Keep the file open until the end: on failure, clearing
		 * persist and closing it removes the tap again. */
		if ((err = tun_attach(tap, &tun)) < 0)
			goto done;
		created = 1;
		if (ioctl(tun, TUNSETOWNER, (unsigned long)owner) < 0) {
			err = ud_error_set_errno(UD_ERROR,
						 "%s: cannot set the owner to "
						 "uid %lu", tap,
						 (unsigned long)owner);
			goto done;
		}
		if (group != (gid_t)-1 &&
		    ioctl(tun, TUNSETGROUP, (unsigned long)group) < 0) {
			err = ud_error_set_errno(UD_ERROR,
						 "%s: cannot set the group to "
						 "gid %lu", tap,
						 (unsigned long)group);
			goto done;
		}
		if (ioctl(tun, TUNSETPERSIST, 1L) < 0) {
			err = ud_error_set_errno(UD_ERROR,
						 "%s: cannot make the tap "
						 "persistent", tap);
			goto done;
		}
	}
	if ((err = enslave(sock, tap, bridge)) < 0)
		goto done;
	err = bring_up(sock, tap);
done:
	if (tun >= 0) {
		if (err < 0 && created)
			ioctl(tun, TUNSETPERSIST, 0L);
		close(tun);
	}
	close(sock);
	return err;
}

int ud_tap_open(const char *tap, int *fd)
{
	int err;

	*fd = -1;
	if ((err = name_check(tap)) < 0)
		return err;
	/* Attaching to a missing tap would create one: only an existing
	 * tap (made by ud_tap_create) is opened. */
	if (!if_nametoindex(tap))
		return ud_error_set(UD_ENOTFOUND, "%s: no such tap", tap);
	return tun_attach(tap, fd);
}

int ud_tap_delete(const char *tap)
{
	int fd, err;

	if ((err = name_check(tap)) < 0)
		return err;
	/* Attaching to a missing tap would create one: look first. */
	if (!if_nametoindex(tap))
		return 0;
	if ((err = tun_attach(tap, &fd)) < 0)
		return err;
	if (ioctl(fd, TUNSETPERSIST, 0L) < 0) {
		err = ud_error_set_errno(UD_ERROR,
					 "%s: cannot clear the persist flag",
					 tap);
		close(fd);
		return err;
	}
	/* Closing the last file of a non-persistent tap unregisters it. */
	close(fd);
	return 0;
}
