/*
 * backend.h: how an instance of each images[].target is started and
 * stopped, as a table of operations in the manner of Solo5's tender
 * modules. One `struct backend` per target; a target with logic of its
 * own has a file of its own (backend_qemu.c, backend_solo5.c, ...), and
 * adding a target is adding a file and a row to the table in backend.c.
 *
 * The VM backends are described by templates/backends/<target>.args (the
 * command line, one argument per line, {{placeholders}} filled by the
 * agent) and, for xen and firecracker, a config file rendered into the
 * app's run directory: what a host needs changed is a template edit, not
 * a rebuild (docs/backends.md).
 *
 * A backend sees a small environment (struct backend_env) and the one
 * instance it starts (struct backend_inst), never the agent's state.
 */
#ifndef UD_AGENT_BACKEND_H
#define UD_AGENT_BACKEND_H

#include <stddef.h>

#include "manifest.h"
#include "run.h"

struct backend_env {
	const char *host;      /* this host's name, for messages */
	const char *state_dir; /* the marker of processes the agent spawns */
	const char *templates; /* the templates/backends directory */
	const char *kvm;       /* the KVM device, normally /dev/kvm */
};

/* A network device of an instance: a tap on the agent's bridge. */
struct backend_net {
	const char *name; /* the device's name in the image (Solo5) */
	const char *tap;
	const char *mac;
};

/* A block device: the app's volume of that name on this host. */
struct backend_vol {
	const char *name;
	const char *path;
};

struct backend_inst {
	const char *app;
	int id;
	const struct ud_manifest *m;
	const char *arch;   /* the image's */
	const char *image;  /* its path under state_dir/images */
	const char *initrd; /* NULL: none */
	const char *rundir; /* the instance's working directory */
	const struct ud_strvec *args; /* run.args, placeholders filled */
	/* Where the instance answers: the host port of user networking, or
	 * run.port at its own address. */
	int port;
	/* Its own network, when the host has one (ip NULL otherwise). */
	const char *ip, *gateway, *mac, *bridge;
	int prefix;
	const struct backend_net *nets;
	size_t nnets;
	/* The taps come open as descriptors 3, 4, ... (the privileged
	 * agent opened them): the program names the descriptor, not the
	 * tap, and never opens /dev/net/tun itself. */
	int tap_fds;
	const struct backend_vol *vols;
	size_t nvols;
};

/* Placeholders of one rendering: single values ({{name}} anywhere in a
 * line) and lists (a line that is only {{name}} becomes zero or more
 * arguments). The set owns what is put into it. */
struct backend_vars;
void backend_var(struct backend_vars *v, const char *name, const char *value);
/* A value of the backend's own making (JSON it built) that goes into a
 * config file as it is, where backend_var's would be refused for a
 * quote. */
void backend_var_raw(struct backend_vars *v, const char *name,
		     const char *value);
/* A list to fill; created empty on first use. */
struct ud_strvec *backend_list(struct backend_vars *v, const char *name);

enum {
	BACKEND_TEMPLATE = 1 << 0, /* command line from <target>.args */
	BACKEND_OWN_ARCH = 1 << 1, /* boots only the host's arch */
	BACKEND_KVM = 1 << 2,      /* needs the KVM device */
	BACKEND_SOLO5 = 1 << 3,    /* devices from the image's manifest note */
	BACKEND_NETWORK = 1 << 4,  /* gets a tap and an address when the host
				      has a network */
	BACKEND_INITRD = 1 << 5,   /* boots an image's initrd with it */
	BACKEND_VOLUMES = 1 << 6,  /* attaches run.block's volumes */
	BACKEND_TAP_FD = 1 << 7,   /* can take its taps as open descriptors
				      (qemu's tap,fd=N, Solo5's @N) */
};

struct backend {
	const char *target;
	unsigned flags;
	const char *config_ext; /* rendered config file, or NULL */
	/* Fill the target's own placeholders; NULL: none. */
	int (*prepare)(const struct backend_env *env,
		       const struct backend_inst *in, struct backend_vars *v);
	/* The command line of an image that runs itself (no template). */
	int (*command)(const struct backend_env *env,
		       const struct backend_inst *in, struct ud_strvec *argv);
	/* Ask a running instance to shut down cleanly before the supervisor
	 * signals its process group: 1 when it was asked, 0 when the backend
	 * has no such way. NULL: none. */
	int (*shutdown)(const struct backend_env *env,
			const struct backend_inst *in);
};

/* The row for a target; NULL for an unknown one. */
const struct backend *backend_find(const char *target);
/* "unix, qemu, hvt, spt, xen and firecracker", for messages. */
const char *backend_names(void);

/* The rows, one file each. */
extern const struct backend backend_unix, backend_qemu, backend_hvt,
	backend_spt, backend_xen, backend_firecracker;

/* The command line of one instance (argv[0] a path found in PATH):
 * rendered from the row's template, or the row's own. */
int backend_argv(const struct backend_env *env, const struct backend *b,
		 const struct backend_inst *in, struct ud_strvec *argv);

/* The program a row's template runs: its first argument, with only
 * {{arch}} known (for the host check). */
int backend_template_program(const struct backend_env *env,
			     const struct backend *b, const char *arch,
			     char **prog);

/* Shared by the rows. */
/* The program's absolute path from the agent's PATH; NULL if none. */
char *backend_find_program(const char *name);
/* `ud-<app>-<id>`: the VM's name (Xen domain, qemu -name). */
char *backend_vm_name(const struct backend_inst *in);
/* The placeholders of run.args that a host network fills in. */
int backend_fill_args(struct ud_strvec *out, const struct ud_strvec *args,
		      const char *ip, int prefix, const char *gateway,
		      const char *mac, const char *what);

#endif
