/* agentconf.h: the agent's configuration file (SPEC §5). */
#ifndef UD_AGENTCONF_H
#define UD_AGENTCONF_H

#include <stddef.h>
#include <sys/types.h>

#include "ipam.h"

struct ud_agentconf {
	char *host;      /* this host's name in fleet.json */
	char *repo;      /* deployment repository URL or path */
	char *state_dir; /* default /var/lib/unideploy */
	char *control;   /* "unix:PATH"; default unix:/run/deploy-agent.sock */
	int poll_s;      /* default 60; 0 disables polling */
	/* The control socket's group and mode: the hook of a `git` user in
	 * that group can signal a root agent. control_group NULL: the
	 * agent's own group (control_gid unused); control_mode default
	 * 0660. */
	char *control_group;
	gid_t control_gid;
	int control_mode;
	/* Fetching an ssh:// repository: the agent's own key and the
	 * known_hosts file its host key is checked against (NULL: the
	 * SPEC §4 defaults, ~/.ssh/...). */
	char *ssh_key;
	char *known_hosts;
	/* "allowed_signers": OpenSSH's allowed signers file; when set, a
	 * sync boots nothing unless every commit fetched since the last one
	 * it accepted is signed by a key listed there (SPEC §5). NULL:
	 * unsigned repositories are fine. */
	char *allowed_signers;
	/* "limits": the owner's cap across all apps against denial of
	 * credit; 0: no cap. */
	int max_instances;
	int max_memory_mb;
	/* "dns": {"listen": "ADDR:PORT", "zone": "apps.example."}: answer A
	 * queries for <app>.<zone> and summon the app; NULL: off. The zone
	 * is stored lower case with its trailing dot. */
	char *dns_listen;
	char *dns_zone;
	/* "network": {"bridge": "ud0", "subnet": "10.200.0.0/24"}: VM
	 * instances get a tap on the bridge (created with the subnet's first
	 * address, the gateway, when missing) and an address of their own;
	 * net_bridge NULL: no host network (qemu falls back to user-mode
	 * networking). */
	char *net_bridge;
	struct ud_subnet net_subnet;
	/* "user": the unprivileged user instances run as (the agent, as
	 * root, switches to it for them); NULL: the agent's own. */
	char *user;
};

/* Load and validate; unknown keys are errors; UD_ENOTFOUND if the file is
 * missing. Relative paths in state_dir/control are resolved against the
 * config file's directory. */
int ud_agentconf_load(struct ud_agentconf **out, const char *path);
int ud_agentconf_parse(struct ud_agentconf **out, const char *name,
		       const char *text, size_t len, const char *basedir);
void ud_agentconf_free(struct ud_agentconf *c);

#endif
