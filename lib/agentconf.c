#include "agentconf.h"
#include "buf.h"
#include "errors.h"
#include "ipam.h"
#include "jsonutil.h"
#include "names.h"
#include "net.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>

/* Every key agent.json may hold; a new setting starts here. */
static const char *const agentconf_keys[] = {
	"host", "repo", "state_dir", "control", "poll_s", "ssh_key",
	"known_hosts", "limits", "dns", "network", "user", "allowed_signers",
	"control_group", "control_mode", NULL
};
static const char *const network_keys[] = { "bridge", "subnet", NULL };
static const char *const limits_keys[] = { "max_instances", "max_memory_mb",
					    NULL };
static const char *const dns_keys[] = { "listen", "zone", NULL };

#define DEFAULT_STATE_DIR "/var/lib/unideploy"
#define DEFAULT_CONTROL "unix:/run/deploy-agent.sock"
#define DEFAULT_CONTROL_MODE 0660

/* A relative path means "beside the config file", so the agent does not
 * depend on the directory it was started from. */
static char *resolve(const char *path, const char *basedir)
{
	size_t n;

	if (path[0] == '/' || !basedir || !*basedir)
		return ud_strdup(path);
	n = strlen(basedir);
	return ud_asprintf("%s%s%s", basedir, basedir[n - 1] == '/' ? "" : "/",
			   path);
}

/* An optional object member: *out is NULL when absent. */
static int get_obj(const json_t *root, const char *key, const char *name,
		   const char *const keys[], const json_t **out)
{
	const json_t *o = json_object_get(root, key);

	*out = NULL;
	if (!o)
		return 0;
	if (!json_is_object(o))
		return ud_error_set(UD_EINVALID, "%s: %s: must be an object",
				    name, key);
	*out = o;
	return ud_json_check_keys(o, name, key, keys);
}

/* "apps.example." or "apps.example": DNS labels, stored lower case with
 * the root's dot, as they are compared against queries. */
static int parse_zone(char **out, const char *zone, const char *name)
{
	size_t n = strlen(zone), label = 0, i;
	char *z;

	if (n && zone[n - 1] == '.')
		n--;
	if (n == 0 || n > 200)
		goto bad;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)zone[i];

		if (ch == '.') {
			if (label == 0 || zone[i - 1] == '-')
				goto bad;
			label = 0;
		} else if (isalnum(ch) || (ch == '-' && label > 0)) {
			if (++label > 63)
				goto bad;
		} else {
			goto bad;
		}
	}
	if (zone[n - 1] == '-')
		goto bad;
	z = ud_asprintf("%.*s.", (int)n, zone);
	for (i = 0; z[i]; i++)
		z[i] = (char)tolower((unsigned char)z[i]);
	*out = z;
	return 0;
bad:
	return ud_error_set(UD_EINVALID,
			    "%s: dns.zone: '%s' is not a domain name", name,
			    zone);
}

/* "control_group": a group that exists here, resolved now so that a typo
 * fails `deploy-agent check` rather than the daemon's start;
 * "control_mode": the socket's permission bits as an octal string ("0660"),
 * never a JSON number, which would be read as decimal. */
static int parse_control_access(struct ud_agentconf *c, const json_t *root,
				const char *name)
{
	const char *group = NULL, *mode = NULL;
	struct group *gr;
	size_t i, n;
	char *end;
	long m;
	int err;

	if ((err = ud_json_get_str(root, "control_group", name, "", 0,
				   &group)) < 0 ||
	    (err = ud_json_get_str(root, "control_mode", name, "", 0, &mode)) <
		    0)
		return err;
	if (group) {
		n = strlen(group);
		for (i = 0; i < n; i++)
			if (!(isalnum((unsigned char)group[i]) ||
			      strchr("_-.", group[i])))
				break;
		if (n == 0 || n > 32 || i < n || group[0] == '-')
			return ud_error_set(UD_EINVALID,
					    "%s: control_group: '%s' is not a "
					    "group name",
					    name, group);
		errno = 0;
		if (!(gr = getgrnam(group)))
			return ud_error_set(UD_EINVALID,
					    "%s: control_group: no group '%s' "
					    "on this host%s%s",
					    name, group, errno ? ": " : "",
					    errno ? strerror(errno) : "");
		c->control_group = ud_strdup(group);
		c->control_gid = gr->gr_gid;
	}
	if (mode) {
		n = strlen(mode);
		errno = 0;
		m = strtol(mode, &end, 8);
		if ((n != 3 && n != 4) || (n == 4 && mode[0] != '0') ||
		    strspn(mode, "01234567") != n || *end || errno ||
		    m > 0777 || (m & 0600) != 0600)
			return ud_error_set(UD_EINVALID,
					    "%s: control_mode: '%s' is not a "
					    "socket mode (octal, like \"0660\", "
					    "at most 0777, owner rw)",
					    name, mode);
		c->control_mode = (int)m;
	}
	return 0;
}

static int parse_extras(struct ud_agentconf *c, const json_t *root,
			const char *name, const char *basedir)
{
	const char *s = NULL, *listen = NULL, *zone = NULL;
	const json_t *o;
	long long n;
	struct ud_addr addr;
	int err;

	if ((err = ud_json_get_str(root, "ssh_key", name, "", 0, &s)) < 0)
		return err;
	if (s)
		c->ssh_key = resolve(s, basedir);
	s = NULL;
	if ((err = ud_json_get_str(root, "known_hosts", name, "", 0, &s)) < 0)
		return err;
	if (s)
		c->known_hosts = resolve(s, basedir);
	s = NULL;
	if ((err = ud_json_get_str(root, "allowed_signers", name, "", 0,
				   &s)) < 0)
		return err;
	if (s)
		c->allowed_signers = resolve(s, basedir);

	s = NULL;
	if ((err = ud_json_get_str(root, "user", name, "", 0, &s)) < 0)
		return err;
	if (s) {
		size_t i, ulen = strlen(s);

		/* A login name as useradd takes it: it becomes a getpwnam()
		 * lookup and a log line, nothing else. */
		for (i = 0; i < ulen; i++)
			if (!(islower((unsigned char)s[i]) ||
			      (i > 0 && (isdigit((unsigned char)s[i]) ||
					 s[i] == '-')) ||
			      s[i] == '_'))
				break;
		if (ulen == 0 || ulen > 32 || i < ulen)
			return ud_error_set(UD_EINVALID,
					    "%s: user: '%s' is not a user name "
					    "(1 to 32 of a-z 0-9 _ -, not "
					    "starting with a digit or -)",
					    name, s);
		c->user = ud_strdup(s);
	}

	if ((err = parse_control_access(c, root, name)) < 0)
		return err;

	if ((err = get_obj(root, "limits", name, limits_keys, &o)) < 0)
		return err;
	if (o) {
		n = 0;
		if ((err = ud_json_get_int(o, "max_instances", name, "limits",
					   0, 0, 100000, &n)) < 0)
			return err;
		c->max_instances = (int)n;
		n = 0;
		if ((err = ud_json_get_int(o, "max_memory_mb", name, "limits",
					   0, 0, 1 << 30, &n)) < 0)
			return err;
		c->max_memory_mb = (int)n;
	}

	if ((err = get_obj(root, "dns", name, dns_keys, &o)) < 0)
		return err;
	if (o) {
		if ((err = ud_json_get_str(o, "listen", name, "dns", 1,
					   &listen)) < 0 ||
		    (err = ud_json_get_str(o, "zone", name, "dns", 1, &zone)) <
			    0)
			return err;
		if (!strncmp(listen, "unix:", 5) ||
		    ud_addr_parse(&addr, listen) < 0)
			return ud_error_set(UD_EINVALID,
					    "%s: dns.listen: '%s' is not "
					    "ADDR:PORT",
					    name, listen);
		if ((err = parse_zone(&c->dns_zone, zone, name)) < 0)
			return err;
		c->dns_listen = ud_strdup(listen);
	}

	if ((err = get_obj(root, "network", name, network_keys, &o)) < 0)
		return err;
	if (o) {
		const char *bridge = NULL, *subnet = NULL;
		char *where = ud_asprintf("%s: network.subnet", name);
		size_t i, blen;

		if ((err = ud_json_get_str(o, "bridge", name, "network", 1,
					   &bridge)) < 0 ||
		    (err = ud_json_get_str(o, "subnet", name, "network", 1,
					   &subnet)) < 0 ||
		    (err = ud_subnet_parse(&c->net_subnet, subnet, where)) < 0) {
			free(where);
			return err;
		}
		free(where);
		/* An interface name: IFNAMSIZ, no path or shell tricks. */
		blen = strlen(bridge);
		for (i = 0; i < blen; i++)
			if (!isalnum((unsigned char)bridge[i]) &&
			    !strchr("_-.", bridge[i]))
				break;
		if (blen == 0 || blen > 15 || i < blen || bridge[0] == '.')
			return ud_error_set(UD_EINVALID,
					    "%s: network.bridge: '%s' is not "
					    "an interface name (1 to 15 of "
					    "A-Z a-z 0-9 _ - .)",
					    name, bridge);
		c->net_bridge = ud_strdup(bridge);
	}
	return 0;
}

int ud_agentconf_parse(struct ud_agentconf **out, const char *name,
		       const char *text, size_t len, const char *basedir)
{
	struct ud_agentconf *c = ud_calloc(1, sizeof(*c));
	const char *host = NULL, *repo = NULL;
	const char *state_dir = DEFAULT_STATE_DIR, *control = DEFAULT_CONTROL;
	long long poll_s = 60;
	json_t *root = NULL;
	char *path;
	int err;

	if ((err = ud_json_parse(&root, name, text, len)) < 0 ||
	    (err = ud_json_check_keys(root, name, "", agentconf_keys)) < 0 ||
	    (err = ud_json_get_str(root, "host", name, "", 1, &host)) < 0)
		goto done;
	if ((err = ud_name_check_host(host)) < 0) {
		ud_error_prefix("%s: host", name);
		goto done;
	}
	if ((err = ud_json_get_str(root, "repo", name, "", 1, &repo)) < 0)
		goto done;
	if (!*repo) {
		err = ud_error_set(UD_EINVALID, "%s: repo: must not be empty",
				   name);
		goto done;
	}
	if ((err = ud_json_get_str(root, "state_dir", name, "", 0,
				   &state_dir)) < 0 ||
	    (err = ud_json_get_str(root, "control", name, "", 0, &control)) <
		    0 ||
	    (err = ud_json_get_int(root, "poll_s", name, "", 0, 0, 86400,
				   &poll_s)) < 0)
		goto done;
	if (!*state_dir) {
		err = ud_error_set(UD_EINVALID,
				   "%s: state_dir: must not be empty", name);
		goto done;
	}
	if (strncmp(control, "unix:", 5) || !control[5]) {
		err = ud_error_set(UD_EINVALID,
				   "%s: control: must be unix:PATH, not '%s'",
				   name, control);
		goto done;
	}
	c->host = ud_strdup(host);
	c->repo = ud_strdup(repo);
	c->state_dir = resolve(state_dir, basedir);
	path = resolve(control + 5, basedir);
	c->control = ud_asprintf("unix:%s", path);
	free(path);
	c->poll_s = (int)poll_s;
	c->control_mode = DEFAULT_CONTROL_MODE;
	if ((err = parse_extras(c, root, name, basedir)) < 0)
		goto done;
	*out = c;
	c = NULL;
done:
	ud_agentconf_free(c);
	json_decref(root);
	return err;
}

int ud_agentconf_load(struct ud_agentconf **out, const char *path)
{
	struct ud_buf b = UD_BUF_INIT;
	char *dir = NULL, *slash, *real = NULL;
	int err;

	b.max = 1024 * 1024;
	if ((err = ud_buf_read_file(&b, path)) < 0)
		goto done;
	dir = ud_strdup(path);
	if ((slash = strrchr(dir, '/')))
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		strcpy(dir, ".");
	/* Absolute, so that the daemon's later chdir("/") changes nothing. */
	real = realpath(dir, NULL);
	err = ud_agentconf_parse(out, path, b.ptr, b.size, real ? real : dir);
done:
	free(real);
	free(dir);
	ud_buf_free(&b);
	return err;
}

void ud_agentconf_free(struct ud_agentconf *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->repo);
	free(c->state_dir);
	free(c->control);
	free(c->ssh_key);
	free(c->known_hosts);
	free(c->allowed_signers);
	free(c->dns_listen);
	free(c->dns_zone);
	free(c->net_bridge);
	free(c->user);
	free(c->control_group);
	free(c);
}
