/*
 * reconcile.h: the reconcile thread (reconcile.c): it syncs with the
 * deployment repository, supervises and answers summon demand.
 */
#ifndef UD_AGENT_RECONCILE_H
#define UD_AGENT_RECONCILE_H


/* The thread's body; its argument is the struct agent. */
void *agent_reconcile_main(void *agent);

#endif
