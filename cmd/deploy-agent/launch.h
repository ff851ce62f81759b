/*
 * launch.h: the agent's side of the backend table (backend.h, launch.c).
 * The supervisor spawns the command in its own session with the console
 * (stdout and stderr) appended to in->log and the instance's environment
 * markers set.
 */
#ifndef UD_AGENT_LAUNCH_H
#define UD_AGENT_LAUNCH_H

#include "agent.h"
#include "strvec.h"

/* Can this host run `target` images for `arch`? Checked at sync time,
 * before anything is swapped: UD_ENOTFOUND "backend xen needs xl on host
 * edge1" when its program is missing, "backend hvt needs /dev/kvm on host
 * edge1 (...)" without KVM, UD_EINVALID for an unknown target or an arch
 * this host cannot boot. */
int launch_check(struct agent *a, const char *target, const char *arch);
/* Is the image at `image` (called `what` in messages) one `target` can
 * run, with everything it declares at hand? Checked at sync time, before
 * anything is swapped: a Solo5 image of another ABI ("hvt-x86_64.img is a
 * Solo5 hvt image; it cannot run as spt"), a non-ELF as hvt, a network
 * device on a host without a network: UD_EINVALID. */
int launch_check_image(struct agent *a, const char *target,
			const char *image, const char *what,
			const struct ud_manifest *m);
/* The command line (argv[0] a path) that runs instance `in` of app's
 * release m from its image, in rundir (where a backend may write config
 * files). */
int launch_command(struct agent *a, const struct app *app,
		    const struct ud_manifest *m, const char *target,
		    const struct instance *in, const char *rundir,
		    struct ud_strvec *argv);
/* Ask a running instance to shut down cleanly (qemu: QMP "quit"), before
 * the supervisor signals its process group. Returns 1 when it was asked,
 * 0 when the backend has no such way. */
/* templates/backends: next to the binary, or a->backends_dir. */
char *launch_templates_dir(struct agent *a);

/* Start the command launch_command made: by the privileged parent when
 * there is one (which chooses the program from the target, opens the
 * taps the command line names by descriptor and runs it as the instances'
 * user), else directly as the instances' user. 0 and *pid, or an error. */
int launch_spawn(struct agent *a, const struct app *app,
		 const struct ud_manifest *m, const char *target,
		 const struct instance *in, const char *rundir,
		 char *const argv[], char *const env[], int log_fd, pid_t *pid);

int launch_shutdown(struct agent *a, const struct app *app,
		     const struct instance *in);

#endif
