/*
 * backend.c: the table of backends (backend.h) and the template engine the
 * VM rows share. What each target does of its own is in
 * backend_<target>.c; launch.c turns the agent's apps and instances into
 * the small environment a row sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "errors.h"
#include "ipam.h"
#include "log.h"
#include "names.h"
#include "solo5.h"

static const struct backend *const table[] = {
	&backend_unix, &backend_qemu, &backend_hvt, &backend_spt,
	&backend_xen,  &backend_firecracker,
};
#define NBACKENDS (sizeof(table) / sizeof(*table))

const struct backend *backend_find(const char *target)
{
	size_t i;

	for (i = 0; target && i < NBACKENDS; i++)
		if (!strcmp(table[i]->target, target))
			return table[i];
	return NULL;
}

const char *backend_names(void)
{
	static char names[128];
	size_t i, off = 0;

	if (names[0])
		return names;
	for (i = 0; i < NBACKENDS; i++)
		off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
					i == 0		  ? "" :
					i + 1 == NBACKENDS ? " and " :
							     ", ",
					table[i]->target);
	return names;
}

char *backend_find_program(const char *name)
{
	return ud_which(name);
}

char *backend_vm_name(const struct backend_inst *in)
{
	return ud_asprintf("ud-%s-%d", in->app, in->id);
}

/* Placeholders */

#define MAX_VARS 32

struct backend_vars {
	const char *name[MAX_VARS];
	char *value[MAX_VARS];
	unsigned char raw[MAX_VARS]; /* goes into a config as it is */
	size_t n;
	const char *lname[MAX_VARS];
	struct ud_strvec list[MAX_VARS];
	size_t nl;
	/* Escape for the config format: quoted strings of xl or JSON. */
	int json;
};

static size_t var_slot(struct backend_vars *v, const char *name)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (!strcmp(v->name[i], name))
			break;
	if (i == v->n) {
		if (v->n == MAX_VARS)
			abort(); /* a programming error: the names are ours */
		v->name[v->n++] = name;
	} else {
		free(v->value[i]);
	}
	return i;
}

void backend_var(struct backend_vars *v, const char *name, const char *value)
{
	size_t i = var_slot(v, name);

	v->value[i] = ud_strdup(value ? value : "");
	v->raw[i] = 0;
}

void backend_var_raw(struct backend_vars *v, const char *name,
		     const char *value)
{
	size_t i = var_slot(v, name);

	v->value[i] = ud_strdup(value ? value : "");
	v->raw[i] = 1;
}

struct ud_strvec *backend_list(struct backend_vars *v, const char *name)
{
	size_t i;

	for (i = 0; i < v->nl; i++)
		if (!strcmp(v->lname[i], name))
			return &v->list[i];
	if (v->nl == MAX_VARS)
		abort();
	v->lname[v->nl] = name;
	ud_strvec_init(&v->list[v->nl]);
	return &v->list[v->nl++];
}

static void vars_free(struct backend_vars *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->value[i]);
	for (i = 0; i < v->nl; i++)
		ud_strvec_free(&v->list[i]);
	v->n = v->nl = 0;
}

static const char *lookup(const struct backend_vars *v, const char *name,
			  size_t len, int *raw)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strlen(v->name[i]) == len && !memcmp(v->name[i], name, len)) {
			*raw = v->raw[i];
			return v->value[i];
		}
	return NULL;
}

static const struct ud_strvec *lookup_list(const struct backend_vars *v,
					   const char *line)
{
	size_t i, len = strlen(line);

	if (len < 5 || strncmp(line, "{{", 2) || strcmp(line + len - 2, "}}"))
		return NULL;
	for (i = 0; i < v->nl; i++)
		if (strlen(v->lname[i]) == len - 4 &&
		    !memcmp(v->lname[i], line + 2, len - 4))
			return &v->list[i];
	return NULL;
}

/* Fill in the {{name}}s of one line (config) or argument (args). Values
 * of a config go inside its quoted strings: refuse what would end them. */
static int substitute(struct ud_buf *out, const char *text, const char *where,
		      int lineno, const struct backend_vars *v, int escape)
{
	const char *p = text, *open, *close, *val;
	int raw = 0;

	while ((open = strstr(p, "{{"))) {
		ud_buf_put(out, p, (size_t)(open - p));
		if (!(close = strstr(open + 2, "}}")))
			return ud_error_set(UD_EINVALID, "%s:%d: unclosed {{",
					    where, lineno);
		if (!(val = lookup(v, open + 2, (size_t)(close - open - 2),
				   &raw)))
			return ud_error_set(UD_EINVALID,
					    "%s:%d: unknown placeholder %.*s",
					    where, lineno,
					    (int)(close - open + 2), open);
		if (escape && !raw && strpbrk(val, "\"\\\n"))
			return ud_error_set(UD_EINVALID,
					    "%s:%d: the value of %.*s (%s) "
					    "cannot go into a quoted string",
					    where, lineno,
					    (int)(close - open + 2), open, val);
		ud_buf_puts(out, val);
		p = close + 2;
	}
	ud_buf_puts(out, p);
	return 0;
}

/* An .args template: one argument per line, # comments and blank lines
 * skipped. */
static int render_args(const char *text, const char *where,
		       const struct backend_vars *v, struct ud_strvec *argv)
{
	char *copy = ud_strdup(text), *line, *save = NULL;
	struct ud_buf arg = UD_BUF_INIT;
	int lineno = 0, err = 0;

	for (line = copy; line; line = save) {
		const struct ud_strvec *l;
		size_t i, len;

		if ((save = strchr(line, '\n')))
			*save++ = '\0';
		lineno++;
		len = strlen(line);
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' ||
			       line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		if ((l = lookup_list(v, line))) {
			for (i = 0; i < l->n; i++)
				ud_strvec_push(argv, l->v[i]);
			continue;
		}
		ud_buf_clear(&arg);
		if ((err = substitute(&arg, line, where, lineno, v, 0)) < 0)
			goto done;
		ud_strvec_push(argv, arg.size ? arg.ptr : "");
	}
done:
	ud_buf_free(&arg);
	free(copy);
	return err;
}

static int render_config(const char *text, const char *where,
			 const struct backend_vars *v, struct ud_buf *out)
{
	char *copy = ud_strdup(text), *line, *save = NULL;
	int lineno = 0, err = 0;

	for (line = copy; line; line = save) {
		if ((save = strchr(line, '\n')))
			*save++ = '\0';
		lineno++;
		if ((err = substitute(out, line, where, lineno, v, 1)) < 0)
			break;
		if (save)
			ud_buf_putc(out, '\n');
	}
	free(copy);
	if (!err && v->json) {
		json_error_t je;
		json_t *j = json_loadb(out->ptr, out->size, 0, &je);

		if (!j)
			err = ud_error_set(UD_EINVALID,
					   "%s rendered: %d:%d: %s", where,
					   je.line, je.column, je.text);
		json_decref(j);
	}
	return err;
}

static int read_template(const struct backend_env *env, const char *target,
			 const char *ext, struct ud_buf *out, char **path)
{
	int err;

	*path = ud_asprintf("%s/%s.%s", env->templates, target, ext);
	out->max = 1024 * 1024;
	if ((err = ud_buf_read_file(out, *path)) < 0)
		ud_error_prefix("backend %s", target);
	return err;
}

/* The placeholders every template may use. */
static void common_vars(const struct backend *b, const struct backend_inst *in,
			const char *config, struct backend_vars *v)
{
	char num[16], *name = backend_vm_name(in), *cmdline;
	struct ud_buf joined = UD_BUF_INIT;
	size_t i;

	for (i = 0; in->args && i < in->args->n; i++) {
		if (i)
			ud_buf_putc(&joined, ' ');
		ud_buf_puts(&joined, in->args->v[i]);
	}
	cmdline = ud_buf_detach(&joined);
	backend_var(v, "arch", in->arch);
	backend_var(v, "image", in->image);
	backend_var(v, "initrd", in->initrd);
	snprintf(num, sizeof(num), "%d",
		 in->m && in->m->run.memory_mb > 0 ? in->m->run.memory_mb : 64);
	backend_var(v, "memory_mb", num);
	backend_var(v, "name", name);
	backend_var(v, "config", config);
	snprintf(num, sizeof(num), "%d", in->port);
	backend_var(v, "port", num);
	snprintf(num, sizeof(num), "%d", in->m ? in->m->run.port : 0);
	backend_var(v, "run_port", num);
	backend_var(v, "cmdline", cmdline);
	backend_var(v, "rundir", in->rundir);
	/* The first network device, as the xen and firecracker templates
	 * name it: the agent's tap on its bridge, or without a host network
	 * ud<id> on xenbr0, the host's own setup. */
	{
		char *tap = ud_asprintf("ud%d", in->id);

		backend_var(v, "tap", in->nnets ? in->nets[0].tap : tap);
		free(tap);
	}
	backend_var(v, "bridge", in->bridge ? in->bridge : "xenbr0");
	backend_var(v, "mac", in->mac);
	backend_var(v, "ip", in->ip);
	backend_var(v, "gateway", in->gateway);
	backend_var(v, "accel", "");
	backend_var(v, "qmp", "");
	ud_strvec_free(backend_list(v, "args"));
	for (i = 0; in->args && i < in->args->n; i++)
		ud_strvec_push(backend_list(v, "args"), in->args->v[i]);
	/* Every row's lists exist, empty unless its prepare fills them. */
	backend_list(v, "net");
	backend_list(v, "append");
	backend_list(v, "machine");
	backend_list(v, "devices");
	backend_list(v, "initrd_args");
	backend_list(v, "drives_args");
	backend_var_raw(v, "drives", "");
	backend_var_raw(v, "boot_initrd", "");
	(void)b;
	free(name);
	free(cmdline);
}

/* The program a template runs: its first argument, with only {{arch}}
 * known (the rest rendered empty). */
int backend_template_program(const struct backend_env *env,
			     const struct backend *b, const char *arch,
			     char **prog)
{
	struct ud_buf t = UD_BUF_INIT;
	struct ud_strvec argv = UD_STRVEC_INIT;
	struct backend_inst none = { .app = "", .arch = arch, .image = "",
				     .rundir = "" };
	struct backend_vars v = { 0 };
	char *where = NULL;
	int err;

	*prog = NULL;
	if ((err = read_template(env, b->target, "args", &t, &where)) < 0)
		goto done;
	common_vars(b, &none, "", &v);
	if ((err = render_args(t.ptr, where, &v, &argv)) < 0)
		goto done;
	if (argv.n == 0) {
		err = ud_error_set(UD_EINVALID, "%s: no command", where);
		goto done;
	}
	*prog = ud_strdup(argv.v[0]);
done:
	vars_free(&v);
	free(where);
	ud_buf_free(&t);
	ud_strvec_free(&argv);
	return err;
}

static int render_command(const struct backend_env *env,
			  const struct backend *b,
			  const struct backend_inst *in, struct ud_strvec *argv)
{
	struct ud_strvec rendered = UD_STRVEC_INIT;
	struct ud_buf t = UD_BUF_INIT, cfg = UD_BUF_INIT;
	struct backend_vars v = { 0 };
	char *where = NULL, *cfg_where = NULL, *config = NULL, *prog;
	size_t i;
	int err;

	if (b->config_ext)
		config = ud_asprintf("%s/%d.%s", in->rundir, in->id,
				     b->config_ext);
	common_vars(b, in, config, &v);
	if (b->prepare && (err = b->prepare(env, in, &v)) < 0)
		goto done;
	if (config) {
		if ((err = read_template(env, b->target, b->config_ext, &t,
					 &cfg_where)) < 0)
			goto done;
		v.json = !strcmp(b->config_ext, "json");
		if ((err = render_config(t.ptr, cfg_where, &v, &cfg)) < 0 ||
		    (err = ud_write_file_atomic(config, cfg.ptr, cfg.size,
						0640)) < 0)
			goto done;
		ud_buf_free(&t);
		v.json = 0;
	}
	if ((err = read_template(env, b->target, "args", &t, &where)) < 0 ||
	    (err = render_args(t.ptr, where, &v, &rendered)) < 0)
		goto done;
	if (rendered.n == 0) {
		err = ud_error_set(UD_EINVALID, "%s: no command", where);
		goto done;
	}
	if (!(prog = backend_find_program(rendered.v[0]))) {
		err = ud_error_set(UD_ENOTFOUND, "backend %s needs %s on host %s",
				   b->target, rendered.v[0], env->host);
		goto done;
	}
	ud_strvec_push(argv, "");
	free(argv->v[argv->n - 1]);
	argv->v[argv->n - 1] = prog;
	for (i = 1; i < rendered.n; i++)
		ud_strvec_push(argv, rendered.v[i]);
done:
	vars_free(&v);
	free(where);
	free(cfg_where);
	free(config);
	ud_buf_free(&t);
	ud_buf_free(&cfg);
	ud_strvec_free(&rendered);
	return err;
}

int backend_argv(const struct backend_env *env, const struct backend *b,
		 const struct backend_inst *in, struct ud_strvec *argv)
{
	if (b->flags & BACKEND_TEMPLATE)
		return render_command(env, b, in, argv);
	return b->command(env, in, argv);
}

/* run.args placeholders */

int backend_fill_args(struct ud_strvec *out, const struct ud_strvec *args,
		      const char *ip, int prefix, const char *gateway,
		      const char *mac, const char *what)
{
	struct ud_buf arg = UD_BUF_INIT;
	char ipv4[32] = "", pfx[8] = "", mask[16] = "";
	size_t i;
	int err = 0;

	if (ip) {
		uint32_t m = prefix ? 0xffffffffu << (32 - prefix) : 0;

		snprintf(ipv4, sizeof(ipv4), "%s/%d", ip, prefix);
		snprintf(pfx, sizeof(pfx), "%d", prefix);
		snprintf(mask, sizeof(mask), "%u.%u.%u.%u", m >> 24,
			 (m >> 16) & 255, (m >> 8) & 255, m & 255);
	}
	for (i = 0; args && i < args->n; i++) {
		const char *p = args->v[i], *open, *close;

		ud_buf_clear(&arg);
		while ((open = strstr(p, "{{"))) {
			const char *val = NULL;
			size_t len;

			ud_buf_put(&arg, p, (size_t)(open - p));
			if (!(close = strstr(open + 2, "}}"))) {
				err = ud_error_set(UD_EINVALID,
						   "run.args: unclosed {{ in "
						   "'%s'",
						   args->v[i]);
				goto done;
			}
			len = (size_t)(close - open - 2);
#define IS(s) (len == sizeof(s) - 1 && !memcmp(open + 2, s, len))
			if (IS("ipv4"))
				val = ipv4;
			else if (IS("ip"))
				val = ip;
			else if (IS("prefix"))
				val = pfx;
			else if (IS("netmask"))
				val = mask;
			else if (IS("gateway"))
				val = gateway;
			else if (IS("mac"))
				val = mac;
			else {
				err = ud_error_set(UD_EINVALID,
						   "run.args: unknown "
						   "placeholder %.*s (known: "
						   "{{ipv4}}, {{ip}}, "
						   "{{prefix}}, {{netmask}}, "
						   "{{gateway}}, {{mac}})",
						   (int)len + 4, open);
				goto done;
			}
#undef IS
			if (!val || !*val) {
				err = ud_error_set(UD_EINVALID,
						   "run.args: %.*s: %s has no "
						   "network address to fill "
						   "in",
						   (int)len + 4, open, what);
				goto done;
			}
			ud_buf_puts(&arg, val);
			p = close + 2;
		}
		ud_buf_puts(&arg, p);
		ud_strvec_push(out, arg.ptr);
	}
done:
	ud_buf_free(&arg);
	return err;
}
