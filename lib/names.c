#include "names.h"
#include "errors.h"

#include <pthread.h>
#include <string.h>
#include <sys/utsname.h>

/* Locale-independent classes: names must mean the same on every host. */
static int is_lower(int c)
{
	return c >= 'a' && c <= 'z';
}

static int is_upper(int c)
{
	return c >= 'A' && c <= 'Z';
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* 1 if s is non-empty, at most max bytes, its first byte in `first`
 * (a class predicate) and every other byte passes is_rest or is one of
 * `extra`. */
static int matches(const char *s, size_t max, int (*first)(int),
		   int (*rest)(int), const char *extra)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > max || !first((unsigned char)s[0]))
		return 0;
	for (i = 1; i < len; i++) {
		unsigned char c = s[i];

		if (!rest(c) && !strchr(extra, c))
			return 0;
	}
	return 1;
}

static int lower_digit(int c)
{
	return is_lower(c) || is_digit(c);
}

static int alnum(int c)
{
	return is_lower(c) || is_upper(c) || is_digit(c);
}

static int env_first(int c)
{
	return is_lower(c) || is_upper(c) || c == '_';
}

static int env_rest(int c)
{
	return alnum(c) || c == '_';
}

static int arch_char(int c)
{
	return lower_digit(c) || c == '_';
}

int ud_name_check_app(const char *name)
{
	if (!name || !matches(name, 63, lower_digit, lower_digit, "-"))
		return ud_error_set(UD_EINVALID,
				    "invalid app name '%s': must match "
				    "[a-z0-9][a-z0-9-]{0,62}",
				    name ? name : "");
	return 0;
}

int ud_name_check_host(const char *name)
{
	if (!name || !matches(name, 63, lower_digit, lower_digit, "._-"))
		return ud_error_set(UD_EINVALID,
				    "invalid host name '%s': must match "
				    "[a-z0-9][a-z0-9._-]{0,62}",
				    name ? name : "");
	if (strstr(name, ".."))
		return ud_error_set(UD_EINVALID,
				    "invalid host name '%s': must not "
				    "contain '..'",
				    name);
	return 0;
}

int ud_name_check_image_file(const char *name)
{
	if (!name || !matches(name, 128, alnum, alnum, "._-"))
		return ud_error_set(UD_EINVALID,
				    "invalid image file name '%s': must match "
				    "[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
				    name ? name : "");
	/* These two share the release directory with the images. */
	if (!strcmp(name, "build.log") || !strcmp(name, "manifest.json"))
		return ud_error_set(UD_EINVALID,
				    "invalid image file name '%s': "
				    "'build.log' and 'manifest.json' are "
				    "reserved",
				    name);
	return 0;
}

int ud_name_check_relpath(const char *path)
{
	const char *p, *end;
	size_t len;

	if (!path)
		path = "";
	len = strlen(path);
	if (len > 1024)
		return ud_error_set(UD_EINVALID,
				    "invalid image path '%.64s...': must be "
				    "at most 1024 bytes",
				    path);
	if (len == 0 || path[0] == '/')
		goto bad;
	for (p = path;; p = end + 1) {
		size_t n;

		end = strchr(p, '/');
		n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		if (!end)
			break;
	}
	return 0;
bad:
	return ud_error_set(UD_EINVALID,
			    "invalid image path '%s': must be relative, "
			    "without empty, '.' or '..' components",
			    path);
}

int ud_name_check_target(const char *target)
{
	static const char *const targets[] = {
		"unix", "qemu", "hvt", "spt", "xen", "firecracker", NULL
	};
	size_t i;

	for (i = 0; target && targets[i]; i++)
		if (!strcmp(target, targets[i]))
			return 0;
	return ud_error_set(UD_EINVALID,
			    "invalid target '%s': must be one of unix, qemu, "
			    "hvt, spt, xen, firecracker",
			    target ? target : "");
}

int ud_name_check_arch(const char *arch)
{
	if (!arch || !matches(arch, 16, arch_char, arch_char, ""))
		return ud_error_set(UD_EINVALID,
				    "invalid arch '%s': must match "
				    "[a-z0-9_]{1,16}",
				    arch ? arch : "");
	return 0;
}

int ud_name_check_env(const char *name)
{
	if (!name || !matches(name, (size_t)-1, env_first, env_rest, ""))
		return ud_error_set(UD_EINVALID,
				    "invalid environment variable name '%s': "
				    "must match [A-Za-z_][A-Za-z0-9_]*",
				    name ? name : "");
	return 0;
}

static pthread_once_t arch_once = PTHREAD_ONCE_INIT;
static struct utsname arch_uts;

static void arch_init(void)
{
	if (uname(&arch_uts) < 0 ||
	    !matches(arch_uts.machine, 16, arch_char, arch_char, ""))
		strcpy(arch_uts.machine, "unknown");
}

const char *ud_host_arch(void)
{
	pthread_once(&arch_once, arch_init);
	return arch_uts.machine;
}
