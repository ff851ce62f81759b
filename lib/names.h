/*
 * names.h: every name that comes from a repository, a manifest or the
 * command line is checked here before it becomes part of a path.
 * Each check returns 0, or UD_EINVALID with a message that quotes the name
 * and says what is allowed.
 */
#ifndef UD_NAMES_H
#define UD_NAMES_H

/* App: [a-z0-9][a-z0-9-]{0,62} (SPEC §2). */
int ud_name_check_app(const char *name);
/* Host: [a-z0-9][a-z0-9._-]{0,62}, never "." or containing "..". */
int ud_name_check_host(const char *name);
/* A file name inside a release dir: [A-Za-z0-9][A-Za-z0-9._-]{0,127}, no
 * "/", not "build.log" or "manifest.json". */
int ud_name_check_image_file(const char *name);
/* images[].path of deploy.json: relative, no empty, "." or ".."
 * component, no leading "/", at most 1024 bytes. */
int ud_name_check_relpath(const char *path);
/* unix, qemu, hvt, spt, xen, firecracker. */
int ud_name_check_target(const char *target);
/* [a-z0-9_]{1,16}: x86_64, aarch64, riscv64 ... */
int ud_name_check_arch(const char *arch);
/* Environment variable name: [A-Za-z_][A-Za-z0-9_]* */
int ud_name_check_env(const char *name);
/* This machine's arch as images name it (uname -m): "x86_64". */
const char *ud_host_arch(void);

#endif
