#include "agentconf.h"
#include "buf.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"

#include <stdlib.h>
#include <string.h>

/* Every key agent.json may hold; a new setting starts here. */
static const char *const agentconf_keys[] = {
	"host", "repo", "state_dir", "control", "poll_s", NULL
};

#define DEFAULT_STATE_DIR "/var/lib/unideploy"
#define DEFAULT_CONTROL "unix:/run/deploy-agent.sock"

/* A relative path means "beside the config file", so the agent does not
 * depend on the directory it was started from. */
static char *resolve(const char *path, const char *basedir)
{
	size_t n;

	if (path[0] == '/' || !basedir || !*basedir)
		return ud_strdup(path);
	n = strlen(basedir);
	return ud_asprintf("%s%s%s", basedir, basedir[n - 1] == '/' ? "" : "/",
			   path);
}

int ud_agentconf_parse(struct ud_agentconf **out, const char *name,
		       const char *text, size_t len, const char *basedir)
{
	struct ud_agentconf *c = ud_calloc(1, sizeof(*c));
	const char *host = NULL, *repo = NULL;
	const char *state_dir = DEFAULT_STATE_DIR, *control = DEFAULT_CONTROL;
	long long poll_s = 60;
	json_t *root = NULL;
	char *path;
	int err;

	if ((err = ud_json_parse(&root, name, text, len)) < 0 ||
	    (err = ud_json_check_keys(root, name, "", agentconf_keys)) < 0 ||
	    (err = ud_json_get_str(root, "host", name, "", 1, &host)) < 0)
		goto done;
	if ((err = ud_name_check_host(host)) < 0) {
		ud_error_prefix("%s: host", name);
		goto done;
	}
	if ((err = ud_json_get_str(root, "repo", name, "", 1, &repo)) < 0)
		goto done;
	if (!*repo) {
		err = ud_error_set(UD_EINVALID, "%s: repo: must not be empty",
				   name);
		goto done;
	}
	if ((err = ud_json_get_str(root, "state_dir", name, "", 0,
				   &state_dir)) < 0 ||
	    (err = ud_json_get_str(root, "control", name, "", 0, &control)) <
		    0 ||
	    (err = ud_json_get_int(root, "poll_s", name, "", 0, 0, 86400,
				   &poll_s)) < 0)
		goto done;
	if (!*state_dir) {
		err = ud_error_set(UD_EINVALID,
				   "%s: state_dir: must not be empty", name);
		goto done;
	}
	if (strncmp(control, "unix:", 5) || !control[5]) {
		err = ud_error_set(UD_EINVALID,
				   "%s: control: must be unix:PATH, not '%s'",
				   name, control);
		goto done;
	}
	c->host = ud_strdup(host);
	c->repo = ud_strdup(repo);
	c->state_dir = resolve(state_dir, basedir);
	path = resolve(control + 5, basedir);
	c->control = ud_asprintf("unix:%s", path);
	free(path);
	c->poll_s = (int)poll_s;
	*out = c;
	c = NULL;
done:
	ud_agentconf_free(c);
	json_decref(root);
	return err;
}

int ud_agentconf_load(struct ud_agentconf **out, const char *path)
{
	struct ud_buf b = UD_BUF_INIT;
	char *dir = NULL, *slash, *real = NULL;
	int err;

	if ((err = ud_buf_read_file(&b, path)) < 0)
		goto done;
	dir = ud_strdup(path);
	if ((slash = strrchr(dir, '/')))
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		strcpy(dir, ".");
	/* Absolute, so that the daemon's later chdir("/") changes nothing. */
	real = realpath(dir, NULL);
	err = ud_agentconf_parse(out, path, b.ptr, b.size, real ? real : dir);
done:
	free(real);
	free(dir);
	ud_buf_free(&b);
	return err;
}

void ud_agentconf_free(struct ud_agentconf *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->repo);
	free(c->state_dir);
	free(c->control);
	free(c);
}
