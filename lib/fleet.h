/*
 * fleet.h: fleet.json, the hosts and the placements of apps on them
 * (SPEC §3). Parsing checks that every placement names known hosts.
 */
#ifndef UD_FLEET_H
#define UD_FLEET_H

#include <stddef.h>

#include "buf.h"
#include "repo.h"
#include "strvec.h"

struct ud_fleet_host {
	char *name;
	char *ssh;   /* "user@host[:port]" or NULL */
	char *agent; /* "unix:PATH" or NULL; exactly one of ssh/agent */
	char *arch;  /* NULL: the agent's own */
};

enum ud_mode { UD_MODE_BOOT, UD_MODE_SUMMON };

struct ud_placement {
	char *app;
	struct ud_strvec hosts;
	char *target;      /* default "unix" */
	enum ud_mode mode; /* default boot */
	char *listen;      /* "ADDR:PORT"; default "127.0.0.1:<run.port>"
			      is the agent's business, may be NULL here */
	int instances;     /* boot: default 1 */
	int idle_stop_s;   /* summon: default 300 */
	int max_instances; /* summon: default 4 */
	int concurrency;   /* summon: default 50 */
};

struct ud_fleet {
	struct ud_fleet_host *hosts;
	size_t nhosts;
	struct ud_placement *apps;
	size_t napps;
};

struct ud_fleet *ud_fleet_new(void); /* empty */
void ud_fleet_free(struct ud_fleet *f);

int ud_fleet_parse(struct ud_fleet **out, const char *name, const char *text,
		   size_t len);
/* Keys in a stable order: hosts, then apps, each sorted by name. */
int ud_fleet_format(struct ud_buf *out, const struct ud_fleet *f);

const struct ud_fleet_host *ud_fleet_host(const struct ud_fleet *f,
					  const char *name);
const struct ud_placement *ud_fleet_placement(const struct ud_fleet *f,
					      const char *app);

/* Add or replace (strings copied). Validates names and addresses. */
int ud_fleet_set_host(struct ud_fleet *f, const struct ud_fleet_host *h);
/* Add or replace; UD_ENOTFOUND "host 'x' is not in fleet.json" when a
 * host is unknown. */
int ud_fleet_set_placement(struct ud_fleet *f, const struct ud_placement *p);

/* Push the names of the apps placed on `host` onto *out (fleet order). */
void ud_fleet_apps_on(const struct ud_fleet *f, const char *host,
		      struct ud_strvec *out);
/* Remove host `name`: UD_ENOTFOUND when it is not there, UD_EBUSY (the
 * apps named) while apps are placed on it; f is unchanged on error. */
int ud_fleet_remove_host(struct ud_fleet *f, const char *name);
/* Remove the placement of `app`: UD_ENOTFOUND when it has none. */
int ud_fleet_remove_placement(struct ud_fleet *f, const char *app);

/* Would two listen addresses take the same socket? The same text, or the
 * same port where one host is a wildcard (0.0.0.0, [::]). */
int ud_listen_overlap(const char *a, const char *b);
/*
 * UD_EEXISTS, naming the other app and the host, when placement p's
 * listen address is taken by another app of f on one of p's hosts. A
 * placement without "listen" listens where `effective` says (an owned
 * string or NULL: none; the agent's default 127.0.0.1:<run.port> comes
 * from the app's release, which the fleet does not hold); `effective`
 * may be NULL, and then only explicit addresses are compared.
 */
int ud_fleet_check_listen(const struct ud_fleet *f,
			  const struct ud_placement *p,
			  char *(*effective)(const struct ud_placement *q,
					     void *payload),
			  void *payload);

/* Zero a placement and fill in the defaults above. */
void ud_placement_init(struct ud_placement *p);

/* fleet.json of the deployment repository at main's tip (or `commit`). */
int ud_fleet_load(struct ud_deployrepo *r, const git_oid *commit,
		  struct ud_fleet **out);

#endif
