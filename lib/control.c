/* control.c: the client side of the agent's control protocol. */
#include "control.h"

#include "buf.h"
#include "errors.h"
#include "log.h"
#include "net.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONNECT_PREFIX "cannot connect to "

/* ud_net_connect() says "cannot connect to ADDR: why"; for the user the
 * thing behind ADDR is the agent. */
static void name_the_agent(const char *addr)
{
	const char *msg = ud_error_last();
	char *why;

	if (strncmp(msg, CONNECT_PREFIX, strlen(CONNECT_PREFIX))) {
		ud_error_prefix("cannot reach agent at %s", addr);
		return;
	}
	why = ud_strdup(msg + strlen(CONNECT_PREFIX));
	ud_error_set(UD_ERROR, "cannot reach agent at %s", why);
	free(why);
}

static char *request_line(const char *cmd, const char *app)
{
	json_t *req = json_object();
	size_t vlen = strcspn(cmd, " ");
	char *text, *line, *verb = ud_strndup(cmd, vlen);

	json_object_set_new(req, "cmd", json_string(verb));
	free(verb);
	if (!strcmp(cmd + vlen, " --retry"))
		json_object_set_new(req, "retry", json_true());
	if (app)
		json_object_set_new(req, "app", json_string(app));
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return NULL;
	line = ud_asprintf("%s\n", text);
	free(text);
	return line;
}

int ud_control_call(json_t **reply, const char *addr, const char *cmd,
		    const char *app, int timeout_ms)
{
	long long deadline = ud_now_ms() + timeout_ms;
	struct ud_buf line = UD_BUF_INIT;
	struct ud_addr ua;
	json_error_t jerr;
	json_t *obj = NULL;
	char *req = NULL;
	int fd = -1, err, left;

	*reply = NULL;
	if ((err = ud_addr_parse(&ua, addr)) < 0)
		goto done;
	if ((err = ud_net_connect(&fd, &ua, timeout_ms)) < 0) {
		if (err == UD_ETIMEOUT)
			ud_error_prefix("agent at %s", addr);
		else
			name_the_agent(addr);
		goto done;
	}
	if (!(req = request_line(cmd, app))) {
		err = ud_error_set(UD_EINVALID, "cannot encode the %s request "
				   "(not UTF-8?)", cmd);
		goto done;
	}
	if ((err = ud_write_all(fd, req, strlen(req))) < 0) {
		ud_error_prefix("cannot send to agent at %s", addr);
		goto done;
	}
	/* ud_read_line() takes <= 0 as "forever": a deadline that has just
	 * passed must not turn into that. */
	left = 0;
	if (timeout_ms > 0 && (left = (int)(deadline - ud_now_ms())) < 1)
		left = 1;
	ud_buf_init(&line, UD_CONTROL_MAX);
	if ((err = ud_read_line(fd, &line, left)) < 0) {
		if (err == UD_ETOOBIG)
			ud_error_prefix("bad reply from %s", addr);
		else
			ud_error_prefix("no reply from agent at %s", addr);
		goto done;
	}
	if (!(obj = json_loadb(line.ptr, line.size, 0, &jerr))) {
		err = ud_error_set(UD_EINVALID, "bad reply from %s: %s "
				   "(line %d, column %d)", addr, jerr.text,
				   jerr.line, jerr.column);
		goto done;
	}
	if (!json_is_object(obj)) {
		err = ud_error_set(UD_EINVALID, "bad reply from %s: not a JSON "
				   "object", addr);
		goto done;
	}
	*reply = obj;
	obj = NULL;
done:
	json_decref(obj);
	free(req);
	ud_buf_free(&line);
	if (fd >= 0)
		close(fd);
	return err;
}
