/* netdev: real bridges and taps, each case in a fresh network namespace.
 *
 * The test process enters a private mount namespace once and, before each
 * case, a new network namespace with its own sysfs mounted on /sys (sysfs
 * shows the namespace of whoever mounted it), so cases cannot see each
 * other's devices or the host's. Without root, or where unshare(2) is
 * refused (an unprivileged container), every case is skipped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "buf.h"
#include "errors.h"
#include "ipam.h"
#include "netdev.h"
#include "run.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d))

static int have_ns = -1; /* -1 unknown, 0 no, 1 yes */
static int have_sysfs;

/* A fresh network namespace (and sysfs for it), or skip the case. */
static void fresh_netns(void)
{
	if (have_ns < 0) {
		errno = EPERM; /* for the message when not root */
		have_ns = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
			  mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ==
				  0;
		if (!have_ns)
			print_message("# no namespaces here (not root or "
				      "unshare refused): %s\n",
				      strerror(errno));
	}
	if (!have_ns || unshare(CLONE_NEWNET) < 0) {
		have_ns = 0;
		skip();
	}
	if (have_sysfs)
		umount2("/sys", MNT_DETACH);
	have_sysfs = mount("sysfs", "/sys", "sysfs", 0, NULL) == 0;
}

static int sock(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	return fd;
}

static short if_flags(const char *name)
{
	struct ifreq ifr;
	int fd = sock();

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, name);
	assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	close(fd);
	return ifr.ifr_flags;
}

/* The IPv4 address or netmask (SIOCGIFADDR/SIOCGIFNETMASK) as text. */
static void if_addr(const char *name, unsigned long req,
		    char out[UD_IP_STRLEN])
{
	struct sockaddr_in sin;
	struct ifreq ifr;
	int fd = sock();

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, name);
	assert_int_equal(ioctl(fd, req, &ifr), 0);
	close(fd);
	memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
	ud_ip_format(out, ntohl(sin.sin_addr.s_addr));
}

/* /sys/class/net/<name>/<file>, as a link's last component or the file's
 * first line; "" if absent. Valid only with have_sysfs. */
static void sys_read(const char *name, const char *file, char *out,
		     size_t size)
{
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", name, file);
	if ((n = readlink(path, link, sizeof(link) - 1)) > 0) {
		link[n] = '\0';
		snprintf(out, size, "%s", strrchr(link, '/') + 1);
		return;
	}
	if ((f = fopen(path, "r"))) {
		if (fgets(out, (int)size, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

static void bridge_create_idempotent(void **state)
{
	char text[UD_IP_STRLEN];

	(void)state;
	fresh_netns();
	assert_false(ud_netdev_exists("udbr0"));
	if (ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24) != 0)
		fail_msg("%s", ud_error_last());
	assert_true(ud_netdev_exists("udbr0"));
	assert_true(if_flags("udbr0") & IFF_UP);
	if_addr("udbr0", SIOCGIFADDR, text);
	assert_string_equal(text, "10.200.0.1");
	if_addr("udbr0", SIOCGIFNETMASK, text);
	assert_string_equal(text, "255.255.255.0");
	if_addr("udbr0", SIOCGIFBRDADDR, text);
	assert_string_equal(text, "10.200.0.255");
	if (have_sysfs) {
		char bridge_dir[8];

		sys_read("udbr0", "bridge/stp_state", bridge_dir,
			 sizeof(bridge_dir));
		assert_string_not_equal(bridge_dir, ""); /* a bridge */
	}

	/* Again, with another address: nothing changes, no error. */
	if (ud_bridge_ensure("udbr0", IP(10, 9, 0, 1), 16) != 0)
		fail_msg("%s", ud_error_last());
	if_addr("udbr0", SIOCGIFADDR, text);
	assert_string_equal(text, "10.200.0.1");
	if_addr("udbr0", SIOCGIFNETMASK, text);
	assert_string_equal(text, "255.255.255.0");

	/* A bridge that is down with its address (agent restart after an
	 * operator's `ip link set down`) is brought up again. */
	{
		struct ifreq ifr;
		int fd = sock();

		memset(&ifr, 0, sizeof(ifr));
		strcpy(ifr.ifr_name, "udbr0");
		ifr.ifr_flags = if_flags("udbr0") & ~IFF_UP;
		assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
		close(fd);
	}
	assert_false(if_flags("udbr0") & IFF_UP);
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24), 0);
	assert_true(if_flags("udbr0") & IFF_UP);
}

static void tap_create_on_bridge(void **state)
{
	char text[64];

	(void)state;
	fresh_netns();
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24), 0);
	if (ud_tap_create("udtap0", "udbr0", 1000, 1001) != 0)
		fail_msg("%s", ud_error_last());
	assert_true(ud_netdev_exists("udtap0"));
	assert_true(if_flags("udtap0") & IFF_UP);
	if (have_sysfs) {
		sys_read("udtap0", "master", text, sizeof(text));
		assert_string_equal(text, "udbr0");
		sys_read("udtap0", "tun_flags", text, sizeof(text));
		/* IFF_TAP | IFF_NO_PI | IFF_PERSIST */
		assert_string_equal(text, "0x1802");
		sys_read("udtap0", "owner", text, sizeof(text));
		assert_string_equal(text, "1000");
		sys_read("udtap0", "group", text, sizeof(text));
		assert_string_equal(text, "1001");
	} else {
		print_message("# no private sysfs: master/owner unchecked\n");
	}
	/* Idempotent: already there, already on the bridge. */
	if (ud_tap_create("udtap0", "udbr0", 1000, 1001) != 0)
		fail_msg("%s", ud_error_last());

	/* No group: the kernel's -1. */
	assert_int_equal(ud_tap_create("udtap1", "udbr0", 0, (gid_t)-1), 0);
	if (have_sysfs) {
		sys_read("udtap1", "group", text, sizeof(text));
		assert_string_equal(text, "-1");
		sys_read("udtap1", "master", text, sizeof(text));
		assert_string_equal(text, "udbr0");
	}
}

static void tap_create_failures_clean_up(void **state)
{
	(void)state;
	fresh_netns();
	/* No such bridge: refused before anything is created. */
	assert_int_equal(ud_tap_create("udtap0", "nobr", 0, 0), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), "nobr"));
	assert_false(ud_netdev_exists("udtap0"));
	/* "lo" exists but is no bridge: the tap made on the way is removed
	 * again. */
	assert_int_not_equal(ud_tap_create("udtap0", "lo", 0, 0), 0);
	assert_non_null(strstr(ud_error_last(), "lo"));
	assert_false(ud_netdev_exists("udtap0"));
	/* A tap that is a port of another bridge is not moved. */
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24), 0);
	assert_int_equal(ud_bridge_ensure("udbr1", IP(10, 201, 0, 1), 24), 0);
	assert_int_equal(ud_tap_create("udtap0", "udbr0", 0, 0), 0);
	assert_int_equal(ud_tap_create("udtap0", "udbr1", 0, 0), UD_EBUSY);
	assert_non_null(strstr(ud_error_last(), "udtap0"));
	assert_non_null(strstr(ud_error_last(), "udbr1"));
	assert_true(ud_netdev_exists("udtap0")); /* not ours to remove */
}

static void tap_delete_removes(void **state)
{
	(void)state;
	fresh_netns();
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24), 0);
	assert_int_equal(ud_tap_create("udtap0", "udbr0", 0, 0), 0);
	if (ud_tap_delete("udtap0") != 0)
		fail_msg("%s", ud_error_last());
	assert_false(ud_netdev_exists("udtap0"));
	/* Gone already: success, and nothing is created on the way. */
	assert_int_equal(ud_tap_delete("udtap0"), 0);
	assert_false(ud_netdev_exists("udtap0"));
	/* Not a tap: refused, left alone. */
	assert_int_not_equal(ud_tap_delete("udbr0"), 0);
	assert_non_null(strstr(ud_error_last(), "udbr0"));
	assert_true(ud_netdev_exists("udbr0"));
}

/* What the kernel does when the tap is deleted while a process (a VM) has
 * it open: TUNSETIFF on a second file is refused with EBUSY, since a
 * single-queue tap takes one file. So ud_tap_delete() is UD_EBUSY and the
 * tap survives; once the holder closes it, deletion works. */
static void tap_delete_while_open(void **state)
{
	struct ifreq ifr;
	int fd;

	(void)state;
	fresh_netns();
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24), 0);
	assert_int_equal(ud_tap_create("udtap0", "udbr0", 0, 0), 0);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "udtap0");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);

	assert_int_equal(ud_tap_delete("udtap0"), UD_EBUSY);
	assert_non_null(strstr(ud_error_last(), "udtap0"));
	assert_non_null(strstr(ud_error_last(), strerror(EBUSY)));
	assert_true(ud_netdev_exists("udtap0"));
	close(fd);
	/* Still persistent after the holder went away; now it can go. */
	assert_true(ud_netdev_exists("udtap0"));
	assert_int_equal(ud_tap_delete("udtap0"), 0);
	assert_false(ud_netdev_exists("udtap0"));
}

static void list_with_prefix(void **state)
{
	struct ud_strvec v = UD_STRVEC_INIT;
	char prefix[UD_IFNAME_STRLEN], name[UD_IFNAME_STRLEN];
	const int ids[] = { 10, 2, 0 };
	const int sorted[] = { 0, 10, 2 }; /* strcmp order */
	size_t i;

	(void)state;
	fresh_netns();
	ud_strvec_init(&v);
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 200, 0, 1), 24), 0);
	ud_tap_prefix(prefix, "edge1");
	for (i = 0; i < 3; i++) {
		assert_int_equal(ud_tap_name(name, "edge1", ids[i]), 0);
		assert_int_equal(ud_tap_create(name, "udbr0", 0, 0), 0);
	}
	assert_int_equal(ud_tap_create("other0", "udbr0", 0, 0), 0);

	assert_int_equal(ud_netdev_list(&v, prefix), 0);
	assert_int_equal(v.n, 3);
	for (i = 0; i < 3; i++) {
		int id;

		assert_int_equal(ud_tap_parse_id(&id, prefix, v.v[i]), 0);
		assert_int_equal(id, sorted[i]);
	}
	ud_strvec_free(&v);

	assert_int_equal(ud_netdev_list(&v, NULL), 0);
	assert_int_equal(v.n, 6); /* lo, udbr0, three taps, other0 */
	for (i = 1; i < v.n; i++)
		assert_true(strcmp(v.v[i - 1], v.v[i]) < 0);
	ud_strvec_free(&v);

	assert_int_equal(ud_netdev_list(&v, "nomatch"), 0);
	assert_int_equal(v.n, 0);
	ud_strvec_free(&v);
}

static void bad_names(void **state)
{
	const char *const bad[] = { "", "a/b", "eth 0", "0123456789abcdef",
				    "t\xc3\xa4p", "a:b", ".", "..", NULL };
	size_t i;

	(void)state;
	/* Checked before any system call: no namespace needed. */
	for (i = 0; bad[i]; i++) {
		char *quoted = ud_asprintf("'%s'", bad[i]);

		assert_false(ud_netdev_exists(bad[i]));
		assert_int_equal(ud_bridge_ensure(bad[i], IP(10, 0, 0, 1), 24),
				 UD_EINVALID);
		assert_non_null(strstr(ud_error_last(), quoted));
		assert_int_equal(ud_tap_create(bad[i], "udbr0", 0, 0),
				 UD_EINVALID);
		assert_non_null(strstr(ud_error_last(), quoted));
		assert_int_equal(ud_tap_create("udtap0", bad[i], 0, 0),
				 UD_EINVALID);
		assert_non_null(strstr(ud_error_last(), quoted));
		assert_int_equal(ud_tap_delete(bad[i]), UD_EINVALID);
		assert_non_null(strstr(ud_error_last(), quoted));
		free(quoted);
	}
	assert_int_equal(ud_bridge_ensure("udbr0", IP(10, 0, 0, 1), 31),
			 UD_EINVALID);
	assert_int_equal(ud_bridge_ensure("udbr0", 0, 24), UD_EINVALID);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_names),
		cmocka_unit_test(bridge_create_idempotent),
		cmocka_unit_test(tap_create_on_bridge),
		cmocka_unit_test(tap_create_failures_clean_up),
		cmocka_unit_test(tap_delete_removes),
		cmocka_unit_test(tap_delete_while_open),
		cmocka_unit_test(list_with_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
