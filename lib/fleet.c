#include "fleet.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"
#include "num.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INSTANCES 64
#define MAX_IDLE_STOP_S 86400
#define MAX_CONCURRENCY 100000

struct ud_fleet *ud_fleet_new(void)
{
	return ud_calloc(1, sizeof(struct ud_fleet));
}

static void host_clear(struct ud_fleet_host *h)
{
	free(h->name);
	free(h->ssh);
	free(h->agent);
	free(h->arch);
}

static void placement_clear(struct ud_placement *p)
{
	free(p->app);
	ud_strvec_free(&p->hosts);
	free(p->target);
	free(p->listen);
}

void ud_fleet_free(struct ud_fleet *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->nhosts; i++)
		host_clear(&f->hosts[i]);
	free(f->hosts);
	for (i = 0; i < f->napps; i++)
		placement_clear(&f->apps[i]);
	free(f->apps);
	free(f);
}

void ud_placement_init(struct ud_placement *p)
{
	/* No allocation here: struct ud_placement has no free function of
	 * its own, so a NULL target stands for "unix" until the fleet
	 * copies it. */
	memset(p, 0, sizeof(*p));
	p->mode = UD_MODE_BOOT;
	p->instances = 1;
	p->idle_stop_s = 300;
	p->max_instances = 4;
	p->concurrency = 50;
}

const struct ud_fleet_host *ud_fleet_host(const struct ud_fleet *f,
					  const char *name)
{
	size_t i;

	for (i = 0; i < f->nhosts; i++)
		if (!strcmp(f->hosts[i].name, name))
			return &f->hosts[i];
	return NULL;
}

const struct ud_placement *ud_fleet_placement(const struct ud_fleet *f,
					      const char *app)
{
	size_t i;

	for (i = 0; i < f->napps; i++)
		if (!strcmp(f->apps[i].app, app))
			return &f->apps[i];
	return NULL;
}

/* Decimal 1..65535 (num.h). */
static int port_ok(const char *s, size_t len)
{
	long long port;

	return ud_num_parse_n(s, len, 1, 65535, &port) == 0;
}

/* A host name or IPv4 address, or an IPv6 address in brackets. Never
 * starting with '-', which a command line would take for an option. */
static int netloc_ok(const char *s, size_t len)
{
	size_t i;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		struct in6_addr a;
		char *v6 = ud_strndup(s + 1, len - 2);
		int ok = inet_pton(AF_INET6, v6, &a) == 1;

		free(v6);
		return ok;
	}
	if (len == 0 || len > 253 || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			return 0;
	}
	return 1;
}

/* "host:port" or "[v6]:port"; port optional when !need_port. */
static int hostport_ok(const char *s, int need_port)
{
	const char *colon;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return 0;
		if (!close[1])
			return !need_port && netloc_ok(s, strlen(s));
		return close[1] == ':' &&
		       netloc_ok(s, (size_t)(close + 1 - s)) &&
		       port_ok(close + 2, strlen(close + 2));
	}
	if (!(colon = strrchr(s, ':')))
		return !need_port && netloc_ok(s, strlen(s));
	return netloc_ok(s, (size_t)(colon - s)) &&
	       port_ok(colon + 1, strlen(colon + 1));
}

static int check_ssh(const char *s)
{
	const char *at = strchr(s, '@');
	size_t i;

	if (!at || at == s)
		goto bad;
	if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		goto bad;
	for (i = 1; s + i < at; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			goto bad;
	}
	if (!hostport_ok(at + 1, 0))
		goto bad;
	return 0;
bad:
	return ud_error_set(UD_EINVALID,
			    "invalid ssh address '%s': must be "
			    "user@host[:port] (user [a-z_][a-z0-9_-]*, "
			    "port 1 to 65535)",
			    s);
}

static int check_agent(const char *s)
{
	if (strncmp(s, "unix:/", 6) || !s[6])
		return ud_error_set(UD_EINVALID,
				    "invalid agent address '%s': must be "
				    "unix:/absolute/path",
				    s);
	return 0;
}

static int check_listen(const char *s)
{
	if (!hostport_ok(s, 1))
		return ud_error_set(UD_EINVALID,
				    "invalid listen address '%s': must be "
				    "host:port or [ipv6]:port (port 1 to "
				    "65535)",
				    s);
	return 0;
}

static int check_host(const struct ud_fleet_host *h)
{
	int err;

	if ((err = ud_name_check_host(h->name)) < 0)
		return err;
	if (!h->ssh == !h->agent)
		return ud_error_set(UD_EINVALID,
				    "host '%s': needs exactly one of ssh or "
				    "agent",
				    h->name);
	if (h->ssh && (err = check_ssh(h->ssh)) < 0)
		return err;
	if (h->agent && (err = check_agent(h->agent)) < 0)
		return err;
	if (h->arch && (err = ud_name_check_arch(h->arch)) < 0)
		return err;
	return 0;
}

/* Keeps f->hosts sorted by name, which is the order fleet.json is
 * written in. */
static void put_host(struct ud_fleet *f, const struct ud_fleet_host *h)
{
	struct ud_fleet_host *dst;
	size_t i;

	for (i = 0; i < f->nhosts; i++) {
		int cmp = strcmp(f->hosts[i].name, h->name);

		if (cmp == 0) {
			host_clear(&f->hosts[i]);
			goto fill;
		}
		if (cmp > 0)
			break;
	}
	f->hosts = ud_realloc(f->hosts, (f->nhosts + 1) * sizeof(*f->hosts));
	memmove(&f->hosts[i + 1], &f->hosts[i],
		(f->nhosts - i) * sizeof(*f->hosts));
	f->nhosts++;
fill:
	dst = &f->hosts[i];
	dst->name = ud_strdup(h->name);
	dst->ssh = h->ssh ? ud_strdup(h->ssh) : NULL;
	dst->agent = h->agent ? ud_strdup(h->agent) : NULL;
	dst->arch = h->arch ? ud_strdup(h->arch) : NULL;
}

int ud_fleet_set_host(struct ud_fleet *f, const struct ud_fleet_host *h)
{
	int err;

	if ((err = check_host(h)) < 0)
		return err;
	put_host(f, h);
	return 0;
}

static int check_range(const char *app, const char *what, int v, int min,
		       int max)
{
	if (v < min || v > max)
		return ud_error_set(UD_EINVALID,
				    "placement of '%s': %s must be from %d "
				    "to %d",
				    app, what, min, max);
	return 0;
}

static int check_hosts(const struct ud_fleet *f, const struct ud_strvec *hosts)
{
	size_t i, j;

	for (i = 0; i < hosts->n; i++) {
		if (!ud_fleet_host(f, hosts->v[i]))
			return ud_error_set(UD_ENOTFOUND,
					    "host '%s' is not in fleet.json",
					    hosts->v[i]);
		for (j = 0; j < i; j++)
			if (!strcmp(hosts->v[i], hosts->v[j]))
				return ud_error_set(UD_EINVALID,
						    "host '%s' is listed twice",
						    hosts->v[i]);
	}
	return 0;
}

static int check_placement(const struct ud_fleet *f,
			   const struct ud_placement *p)
{
	int err;

	if ((err = ud_name_check_app(p->app)) < 0)
		return err;
	if (p->hosts.n == 0)
		return ud_error_set(UD_EINVALID,
				    "placement of '%s': needs at least one "
				    "host",
				    p->app);
	if ((err = check_hosts(f, &p->hosts)) < 0 ||
	    (p->target && (err = ud_name_check_target(p->target)) < 0) ||
	    (p->listen && (err = check_listen(p->listen)) < 0))
		return err;
	if (p->mode != UD_MODE_BOOT && p->mode != UD_MODE_SUMMON)
		return ud_error_set(UD_EINVALID,
				    "placement of '%s': unknown mode %d",
				    p->app, (int)p->mode);
	if ((err = check_range(p->app, "instances", p->instances, 1,
			       MAX_INSTANCES)) < 0 ||
	    (err = check_range(p->app, "idle_stop_s", p->idle_stop_s, 1,
			       MAX_IDLE_STOP_S)) < 0 ||
	    (err = check_range(p->app, "max_instances", p->max_instances, 1,
			       MAX_INSTANCES)) < 0 ||
	    (err = check_range(p->app, "concurrency", p->concurrency, 1,
			       MAX_CONCURRENCY)) < 0)
		return err;
	return 0;
}

static void put_placement(struct ud_fleet *f, const struct ud_placement *p)
{
	struct ud_placement *dst;
	size_t i, j;

	for (i = 0; i < f->napps; i++) {
		int cmp = strcmp(f->apps[i].app, p->app);

		if (cmp == 0) {
			placement_clear(&f->apps[i]);
			goto fill;
		}
		if (cmp > 0)
			break;
	}
	f->apps = ud_realloc(f->apps, (f->napps + 1) * sizeof(*f->apps));
	memmove(&f->apps[i + 1], &f->apps[i],
		(f->napps - i) * sizeof(*f->apps));
	f->napps++;
fill:
	dst = &f->apps[i];
	*dst = *p;
	dst->app = ud_strdup(p->app);
	ud_strvec_init(&dst->hosts);
	for (j = 0; j < p->hosts.n; j++)
		ud_strvec_push(&dst->hosts, p->hosts.v[j]);
	dst->target = ud_strdup(p->target ? p->target : "unix");
	dst->listen = p->listen ? ud_strdup(p->listen) : NULL;
}

int ud_fleet_set_placement(struct ud_fleet *f, const struct ud_placement *p)
{
	int err;

	if ((err = check_placement(f, p)) < 0)
		return err;
	put_placement(f, p);
	return 0;
}

void ud_fleet_apps_on(const struct ud_fleet *f, const char *host,
		      struct ud_strvec *out)
{
	size_t i, j;

	for (i = 0; i < f->napps; i++)
		for (j = 0; j < f->apps[i].hosts.n; j++)
			if (!strcmp(f->apps[i].hosts.v[j], host)) {
				ud_strvec_push(out, f->apps[i].app);
				break;
			}
}

int ud_fleet_remove_host(struct ud_fleet *f, const char *name)
{
	struct ud_strvec apps = UD_STRVEC_INIT;
	struct ud_buf names = UD_BUF_INIT;
	size_t i;
	int err = 0;

	ud_strvec_init(&apps);
	for (i = 0; i < f->nhosts; i++)
		if (!strcmp(f->hosts[i].name, name))
			break;
	if (i == f->nhosts) {
		err = ud_error_set(UD_ENOTFOUND,
				   "host '%s' is not in fleet.json", name);
		goto done;
	}
	ud_fleet_apps_on(f, name, &apps);
	if (apps.n) {
		for (size_t j = 0; j < apps.n; j++)
			ud_buf_printf(&names, "%s%s", j ? ", " : "",
				      apps.v[j]);
		err = ud_error_set(UD_EBUSY,
				   "host '%s' still has %s placed on it: %s "
				   "(move them with deploy place or remove "
				   "them with deploy remove first)",
				   name, apps.n == 1 ? "an app" : "apps",
				   names.ptr);
		goto done;
	}
	host_clear(&f->hosts[i]);
	memmove(&f->hosts[i], &f->hosts[i + 1],
		(f->nhosts - i - 1) * sizeof(*f->hosts));
	f->nhosts--;
done:
	ud_buf_free(&names);
	ud_strvec_free(&apps);
	return err;
}

int ud_fleet_remove_placement(struct ud_fleet *f, const char *app)
{
	size_t i;

	for (i = 0; i < f->napps; i++)
		if (!strcmp(f->apps[i].app, app))
			break;
	if (i == f->napps)
		return ud_error_set(UD_ENOTFOUND,
				    "app '%s' is not placed on any host", app);
	placement_clear(&f->apps[i]);
	memmove(&f->apps[i], &f->apps[i + 1],
		(f->napps - i - 1) * sizeof(*f->apps));
	f->napps--;
	return 0;
}

/* Split "host:port" / "[v6]:port" into its host part (brackets kept) and
 * port; 0 when it is not of that form. */
static int split_listen(const char *s, const char **host, size_t *hostlen,
			const char **port)
{
	const char *colon = strrchr(s, ':');

	if (!colon || !colon[1])
		return 0;
	if (s[0] == '[' && (colon == s || colon[-1] != ']'))
		return 0;
	*host = s;
	*hostlen = (size_t)(colon - s);
	*port = colon + 1;
	return 1;
}

static int wildcard(const char *host, size_t len)
{
	return (len == 7 && !strncmp(host, "0.0.0.0", 7)) ||
	       (len == 4 && !strncmp(host, "[::]", 4)) || len == 0;
}

int ud_listen_overlap(const char *a, const char *b)
{
	const char *ha, *hb, *pa, *pb;
	size_t la, lb;

	if (!strcmp(a, b))
		return 1;
	if (!split_listen(a, &ha, &la, &pa) || !split_listen(b, &hb, &lb, &pb))
		return 0;
	if (strcmp(pa, pb))
		return 0;
	/* Same port: the same address, or a wildcard that takes them all. */
	return (la == lb && !strncmp(ha, hb, la)) || wildcard(ha, la) ||
	       wildcard(hb, lb);
}

int ud_fleet_check_listen(const struct ud_fleet *f,
			  const struct ud_placement *p,
			  char *(*effective)(const struct ud_placement *q,
					     void *payload),
			  void *payload)
{
	char *mine = p->listen ? ud_strdup(p->listen) :
		     effective ? effective(p, payload) : NULL;
	size_t i, j, k;
	int err = 0;

	if (!mine)
		return 0;
	for (i = 0; i < f->napps && !err; i++) {
		const struct ud_placement *q = &f->apps[i];
		char *theirs;

		if (!strcmp(q->app, p->app))
			continue;
		theirs = q->listen ? ud_strdup(q->listen) :
			 effective ? effective(q, payload) : NULL;
		if (!theirs || !ud_listen_overlap(mine, theirs)) {
			free(theirs);
			continue;
		}
		for (j = 0; j < p->hosts.n && !err; j++)
			for (k = 0; k < q->hosts.n && !err; k++)
				if (!strcmp(p->hosts.v[j], q->hosts.v[k]))
					err = ud_error_set(
						UD_EEXISTS,
						"listen address %s is already "
						"used by app '%s' on host "
						"'%s' (%s)",
						mine, q->app, q->hosts.v[k],
						theirs);
		free(theirs);
	}
	free(mine);
	return err;
}

static int host_from_json(struct ud_fleet *f, const char *hname,
			  const json_t *obj, const char *name)
{
	static const char *const keys[] = { "ssh", "agent", "arch", NULL };
	struct ud_fleet_host h = { 0 };
	char *where = ud_asprintf("hosts.%s", hname);
	const char *ssh = NULL, *agent = NULL, *arch = NULL;
	int err;

	if ((err = ud_name_check_host(hname)) < 0) {
		ud_error_prefix("%s: hosts", name);
		goto done;
	}
	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0 ||
	    (err = ud_json_get_str(obj, "ssh", name, where, 0, &ssh)) < 0 ||
	    (err = ud_json_get_str(obj, "agent", name, where, 0, &agent)) <
		    0 ||
	    (err = ud_json_get_str(obj, "arch", name, where, 0, &arch)) < 0)
		goto done;
	if (!ssh == !agent) {
		err = ud_error_set(UD_EINVALID,
				   "%s: %s: must have exactly one of 'ssh' "
				   "or 'agent'",
				   name, where);
		goto done;
	}
	if (ssh && (err = check_ssh(ssh)) < 0) {
		ud_error_prefix("%s: %s.ssh", name, where);
		goto done;
	}
	if (agent && (err = check_agent(agent)) < 0) {
		ud_error_prefix("%s: %s.agent", name, where);
		goto done;
	}
	if (arch && (err = ud_name_check_arch(arch)) < 0) {
		ud_error_prefix("%s: %s.arch", name, where);
		goto done;
	}
	h.name = (char *)hname;
	h.ssh = (char *)ssh;
	h.agent = (char *)agent;
	h.arch = (char *)arch;
	put_host(f, &h);
done:
	free(where);
	return err;
}

static int hosts_list_from_json(struct ud_strvec *out, const json_t *obj,
				const char *name, const char *where)
{
	json_t *hosts = json_object_get(obj, "hosts"), *h;
	size_t i;

	if (!hosts)
		return ud_error_set(UD_ENOTFOUND, "%s: missing key '%s.hosts'",
				    name, where);
	if (!json_is_array(hosts) || json_array_size(hosts) == 0)
		goto bad;
	json_array_foreach(hosts, i, h) {
		if (!json_is_string(h))
			goto bad;
		ud_strvec_push(out, json_string_value(h));
	}
	return 0;
bad:
	return ud_error_set(UD_EINVALID,
			    "%s: %s.hosts: must be a non-empty array of host "
			    "names",
			    name, where);
}

static int get_int(const json_t *obj, const char *key, const char *name,
		   const char *where, int min, int max, int *out)
{
	long long v = *out;
	int err;

	if ((err = ud_json_get_int(obj, key, name, where, 0, min, max, &v)) <
	    0)
		return err;
	*out = (int)v;
	return 0;
}

static int placement_from_json(struct ud_fleet *f, const char *app,
			       const json_t *obj, const char *name)
{
	static const char *const keys[] = {
		"hosts", "target", "mode", "listen", "instances",
		"idle_stop_s", "max_instances", "concurrency", NULL
	};
	struct ud_placement p;
	char *where = ud_asprintf("apps.%s", app);
	const char *target = "unix", *mode = NULL, *listen = NULL;
	int err;

	ud_placement_init(&p);
	ud_strvec_init(&p.hosts);
	p.app = (char *)app;
	if ((err = ud_name_check_app(app)) < 0) {
		ud_error_prefix("%s: apps", name);
		goto done;
	}
	if ((err = ud_json_check_keys(obj, name, where, keys)) < 0 ||
	    (err = hosts_list_from_json(&p.hosts, obj, name, where)) < 0)
		goto done;
	if ((err = check_hosts(f, &p.hosts)) < 0) {
		ud_error_prefix("%s: %s.hosts", name, where);
		goto done;
	}
	if ((err = ud_json_get_str(obj, "target", name, where, 0,
				   &target)) < 0)
		goto done;
	if ((err = ud_name_check_target(target)) < 0) {
		ud_error_prefix("%s: %s.target", name, where);
		goto done;
	}
	if ((err = ud_json_get_str(obj, "mode", name, where, 0, &mode)) < 0)
		goto done;
	if (mode && !strcmp(mode, "summon")) {
		p.mode = UD_MODE_SUMMON;
	} else if (mode && strcmp(mode, "boot")) {
		err = ud_error_set(UD_EINVALID,
				   "%s: %s.mode: must be 'boot' or 'summon'",
				   name, where);
		goto done;
	}
	if ((err = ud_json_get_str(obj, "listen", name, where, 0, &listen)) <
	    0)
		goto done;
	if (listen && (err = check_listen(listen)) < 0) {
		ud_error_prefix("%s: %s.listen", name, where);
		goto done;
	}
	if ((err = get_int(obj, "instances", name, where, 1, MAX_INSTANCES,
			   &p.instances)) < 0 ||
	    (err = get_int(obj, "idle_stop_s", name, where, 1,
			   MAX_IDLE_STOP_S, &p.idle_stop_s)) < 0 ||
	    (err = get_int(obj, "max_instances", name, where, 1,
			   MAX_INSTANCES, &p.max_instances)) < 0 ||
	    (err = get_int(obj, "concurrency", name, where, 1,
			   MAX_CONCURRENCY, &p.concurrency)) < 0)
		goto done;
	p.target = (char *)target;
	p.listen = (char *)listen;
	put_placement(f, &p);
done:
	ud_strvec_free(&p.hosts);
	free(where);
	return err;
}

int ud_fleet_parse(struct ud_fleet **out, const char *name, const char *text,
		   size_t len)
{
	static const char *const keys[] = { "hosts", "apps", NULL };
	struct ud_fleet *f = ud_fleet_new();
	json_t *root = NULL, *hosts, *apps, *v;
	const char *key;
	int err;

	if ((err = ud_json_parse(&root, name, text, len)) < 0 ||
	    (err = ud_json_check_keys(root, name, "", keys)) < 0)
		goto done;
	/* Both may be absent: `deploy init` starts from an empty fleet. */
	hosts = json_object_get(root, "hosts");
	apps = json_object_get(root, "apps");
	if (hosts && !json_is_object(hosts)) {
		err = ud_error_set(UD_EINVALID, "%s: hosts: must be an object",
				   name);
		goto done;
	}
	if (apps && !json_is_object(apps)) {
		err = ud_error_set(UD_EINVALID, "%s: apps: must be an object",
				   name);
		goto done;
	}
	json_object_foreach(hosts, key, v) {
		if ((err = host_from_json(f, key, v, name)) < 0)
			goto done;
	}
	json_object_foreach(apps, key, v) {
		if ((err = placement_from_json(f, key, v, name)) < 0)
			goto done;
	}
	*out = f;
	f = NULL;
done:
	ud_fleet_free(f);
	json_decref(root);
	return err;
}

static json_t *placement_to_json(const struct ud_placement *p)
{
	struct ud_placement def;
	json_t *o = json_object(), *hosts = json_array();
	int boot = p->mode == UD_MODE_BOOT;
	size_t i;

	ud_placement_init(&def);
	for (i = 0; i < p->hosts.n; i++)
		json_array_append_new(hosts, json_string(p->hosts.v[i]));
	json_object_set_new(o, "hosts", hosts);
	json_object_set_new(o, "target",
			    json_string(p->target ? p->target : "unix"));
	json_object_set_new(o, "mode", json_string(boot ? "boot" : "summon"));
	if (p->listen)
		json_object_set_new(o, "listen", json_string(p->listen));
	/* The other mode's settings only when someone changed them, so that
	 * switching modes back and forth loses nothing. */
	if (boot || p->instances != def.instances)
		json_object_set_new(o, "instances", json_integer(p->instances));
	if (!boot || p->idle_stop_s != def.idle_stop_s)
		json_object_set_new(o, "idle_stop_s",
				    json_integer(p->idle_stop_s));
	if (!boot || p->max_instances != def.max_instances)
		json_object_set_new(o, "max_instances",
				    json_integer(p->max_instances));
	if (!boot || p->concurrency != def.concurrency)
		json_object_set_new(o, "concurrency",
				    json_integer(p->concurrency));
	return o;
}

int ud_fleet_format(struct ud_buf *out, const struct ud_fleet *f)
{
	json_t *root = json_object(), *hosts = json_object();
	json_t *apps = json_object();
	size_t i;
	int err;

	/* f->hosts and f->apps are kept sorted by name. */
	for (i = 0; i < f->nhosts; i++) {
		const struct ud_fleet_host *h = &f->hosts[i];
		json_t *o = json_object();

		if (h->ssh)
			json_object_set_new(o, "ssh", json_string(h->ssh));
		if (h->agent)
			json_object_set_new(o, "agent", json_string(h->agent));
		if (h->arch)
			json_object_set_new(o, "arch", json_string(h->arch));
		json_object_set_new(hosts, h->name, o);
	}
	for (i = 0; i < f->napps; i++)
		json_object_set_new(apps, f->apps[i].app,
				    placement_to_json(&f->apps[i]));
	json_object_set_new(root, "hosts", hosts);
	json_object_set_new(root, "apps", apps);
	err = ud_json_format(out, root);
	json_decref(root);
	return err;
}

int ud_fleet_load(struct ud_deployrepo *r, const git_oid *commit,
		  struct ud_fleet **out)
{
	struct ud_buf b = UD_BUF_INIT;
	int err;

	*out = NULL;
	/* thousands of hosts and apps fit; a bigger one is refused unread */
	b.max = 16 * 1024 * 1024;
	if ((err = ud_deployrepo_read(r, commit, "fleet.json", &b)) == 0)
		err = ud_fleet_parse(out, "fleet.json", b.ptr, b.size);
	ud_buf_free(&b);
	return err;
}
