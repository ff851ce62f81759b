/*
 * appconfig.h: deploy.json, the app repository's description of how to
 * build and run it (SPEC §2). Unknown keys are errors; every name is
 * validated.
 */
#ifndef UD_APPCONFIG_H
#define UD_APPCONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "health.h"
#include "run.h"

struct ud_image_spec {
	char *target; /* unix, qemu, hvt, spt, xen, firecracker */
	char *arch;   /* default: ud_host_arch() */
	char *path;   /* relative to the export of the tree */
	char *initrd; /* the same, or NULL: an initial ramdisk booted with
			 the kernel (qemu and firecracker only) */
};

/* One of run.block: the app's volume `name` on each host. */
struct ud_block_spec {
	char *name;  /* the device's name in the image: [a-z0-9_]{1,67} */
	int size_mb; /* 1..1048576 */
};

/* run.restart: when the agent starts a boot-mode instance again after
 * it exited on its own. */
enum ud_restart {
	UD_RESTART_ALWAYS,     /* default */
	UD_RESTART_ON_FAILURE, /* a non-zero exit or a signal */
	UD_RESTART_NEVER,
};

struct ud_run_spec {
	int port;              /* 0: none */
	enum ud_restart restart;
	int memory_mb;         /* default 64 */
	struct ud_strvec args; /* extra argv */
	struct ud_strvec env;  /* NAME=value */
	struct ud_block_spec *block; /* run.block, in the order written */
	size_t nblock;
};

struct ud_appconfig {
	char *app;
	char *build_command;
	int build_timeout_s;         /* default 1800 */
	struct ud_strvec build_env;  /* NAME=value */
	struct ud_image_spec *images;
	size_t nimages;              /* at least 1 */
	struct ud_run_spec run;
	struct ud_health health;     /* default: tcp if run.port, else none
					(kind UD_HEALTH_TCP, timeout 20) */
};

/* Parse and validate. `name` is used in messages ("deploy.json").
 * UD_EINVALID for syntax (name:line:col), unknown keys (named), bad names
 * or values; UD_ENOTFOUND for a missing required key. */
int ud_appconfig_parse(struct ud_appconfig **out, const char *name,
		       const char *text, size_t len);
void ud_appconfig_free(struct ud_appconfig *c);

/* 1 when images of `target` may carry an initrd (qemu, firecracker). */
int ud_target_takes_initrd(const char *target);

/* The "run" and "health" objects, shared with manifest.json (which records
 * them so the agent knows how to run a release). `where` is their key path
 * for messages. */
int ud_run_spec_from_json(struct ud_run_spec *out, const json_t *obj,
			  const char *name, const char *where);
json_t *ud_run_spec_to_json(const struct ud_run_spec *r);
/* "always", "on-failure", "never". */
const char *ud_restart_name(enum ud_restart r);
/* Does policy r restart an instance that ended with waitpid status
 * wstatus (-1: unknown, an adopted process: counts as a failure)? */
int ud_restart_wanted(enum ud_restart r, int wstatus);
void ud_run_spec_free(struct ud_run_spec *r);
/* Deep copy into dst (uninitialised). */
void ud_run_spec_copy(struct ud_run_spec *dst, const struct ud_run_spec *src);
/* run.block's entry `name`, or NULL. */
const struct ud_block_spec *ud_run_spec_block(const struct ud_run_spec *r,
					      const char *name);
int ud_health_from_json(struct ud_health *out, const json_t *obj,
			const char *name, const char *where);
json_t *ud_health_to_json(const struct ud_health *h);

#endif
