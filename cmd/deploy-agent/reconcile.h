/*
 * reconcile.h: the reconcile thread (reconcile.c): it syncs with the
 * deployment repository, supervises and answers summon demand.
 */
#ifndef UD_AGENT_RECONCILE_H
#define UD_AGENT_RECONCILE_H


#include <stddef.h>

#include "state.h"

/* The thread's body; its argument is the struct agent. */
void *agent_reconcile_main(void *agent);

/* What a sync does with an app placed here whose desired release is
 * `desired` (retry: `deploy signal --retry` named it; want: the boot-mode
 * instance count the placement asks for). */
enum reconcile_action {
	RECONCILE_FAILED, /* it failed here before: leave it, report it */
	RECONCILE_KEEP,   /* it serves as asked: only keep the address */
	RECONCILE_FILL,   /* it is the serving release: start what is
			     missing */
	RECONCILE_SWITCH, /* a new release: boot, switch, drain the old */
};
enum reconcile_action reconcile_decide(const struct app *app, int desired,
				       int retry, size_t want);
/* How many instances of a new release to boot before switching: want
 * in boot mode; for a summoned app one if the old release has a running
 * instance (traffic to hand over), else none. */
size_t reconcile_boot_count(const struct app *app, size_t want);
/* After the desired release failed: must the serving release be brought
 * back to its count? */
int reconcile_restore_old(const struct app *app, int desired, size_t want);

#endif
