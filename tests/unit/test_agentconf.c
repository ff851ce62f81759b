/* agent.json (SPEC §5): real files in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentconf.h"
#include "buf.h"
#include "errors.h"

struct fixture {
	char *dir;  /* realpath of the temp dir */
	char *path; /* dir/agent.json */
};

static int setup(void **state)
{
	struct fixture *fx = ud_calloc(1, sizeof(*fx));
	char tmpl[] = "/tmp/ud-agentconf-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	fx->dir = realpath(tmpl, NULL);
	assert_non_null(fx->dir);
	fx->path = ud_asprintf("%s/agent.json", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	ud_rm_rf(fx->dir);
	free(fx->dir);
	free(fx->path);
	free(fx);
	return 0;
}

static void write_conf(const struct fixture *fx, const char *text)
{
	assert_int_equal(ud_write_file_atomic(fx->path, text, strlen(text),
					      0644),
			 0);
}

static int parse(struct ud_agentconf **c, const char *text)
{
	*c = NULL;
	ud_error_clear();
	return ud_agentconf_parse(c, "agent.json", text, strlen(text),
				  "/etc/unideploy");
}

static void spec_example(void **state)
{
	struct fixture *fx = *state;
	struct ud_agentconf *c = NULL;

	write_conf(fx, "{\n"
		       "  \"host\": \"edge1\",\n"
		       "  \"repo\": \"ssh://git@deploy.example/srv/deploy.git\",\n"
		       "  \"state_dir\": \"/var/lib/unideploy\",\n"
		       "  \"control\": \"unix:/run/deploy-agent.sock\",\n"
		       "  \"poll_s\": 60\n"
		       "}\n");
	assert_int_equal(ud_agentconf_load(&c, fx->path), 0);
	assert_string_equal(c->host, "edge1");
	assert_string_equal(c->repo, "ssh://git@deploy.example/srv/deploy.git");
	assert_string_equal(c->state_dir, "/var/lib/unideploy");
	assert_string_equal(c->control, "unix:/run/deploy-agent.sock");
	assert_int_equal(c->poll_s, 60);
	ud_agentconf_free(c);
}

static void defaults(void **state)
{
	struct ud_agentconf *c;

	(void)state;
	assert_int_equal(parse(&c, "{\"host\": \"h\", \"repo\": \"/srv/d.git\"}"),
			 0);
	assert_string_equal(c->state_dir, "/var/lib/unideploy");
	assert_string_equal(c->control, "unix:/run/deploy-agent.sock");
	assert_int_equal(c->poll_s, 60);
	ud_agentconf_free(c);
	assert_int_equal(parse(&c, "{\"host\": \"h\", \"repo\": \"r\", "
				   "\"poll_s\": 0}"),
			 0);
	assert_int_equal(c->poll_s, 0);
	ud_agentconf_free(c);
}

/* Relative paths are taken from the config file's directory, whatever
 * the current directory is. */
static void relative_paths_follow_the_file(void **state)
{
	struct fixture *fx = *state;
	struct ud_agentconf *c = NULL;
	char *want, cwd[PATH_MAX];

	write_conf(fx, "{\"host\": \"local\", \"repo\": \"/srv/deploy.git\", "
		       "\"state_dir\": \"state\", "
		       "\"control\": \"unix:run/agent.sock\"}");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(fx->dir), 0);
	/* Loaded through a relative name from inside the directory. */
	assert_int_equal(ud_agentconf_load(&c, "agent.json"), 0);
	assert_int_equal(chdir(cwd), 0);
	want = ud_asprintf("%s/state", fx->dir);
	assert_string_equal(c->state_dir, want);
	free(want);
	want = ud_asprintf("unix:%s/run/agent.sock", fx->dir);
	assert_string_equal(c->control, want);
	free(want);
	ud_agentconf_free(c);
}

static void missing_file(void **state)
{
	struct fixture *fx = *state;
	struct ud_agentconf *c = NULL;

	assert_int_equal(ud_agentconf_load(&c, fx->path), UD_ENOTFOUND);
	assert_null(c);
	assert_non_null(strstr(ud_error_last(), fx->path));
}

/* The keys beyond SPEC §5's example: SSH fetching, the per-host cap
 * and DNS summoning. */
static void extras(void **state)
{
	struct ud_agentconf *c;

	(void)state;
	assert_int_equal(parse(&c, "{\"host\": \"h\", \"repo\": \"r\"}"), 0);
	assert_null(c->ssh_key);
	assert_null(c->known_hosts);
	assert_int_equal(c->max_instances, 0);
	assert_int_equal(c->max_memory_mb, 0);
	assert_null(c->dns_listen);
	assert_null(c->dns_zone);
	assert_null(c->user);
	assert_null(c->control_group);
	assert_int_equal(c->control_mode, 0660);
	ud_agentconf_free(c);

	assert_int_equal(
		parse(&c, "{\"host\": \"h\", \"repo\": \"ssh://g@x/d.git\", "
			  "\"ssh_key\": \"keys/id_ed25519\", "
			  "\"known_hosts\": \"/etc/unideploy/known_hosts\", "
			  "\"limits\": {\"max_instances\": 8, "
			  "\"max_memory_mb\": 512}, "
			  "\"dns\": {\"listen\": \"127.0.0.1:5353\", "
			  "\"zone\": \"Apps.Example\"}, "
			  "\"user\": \"unideploy\"}"),
		0);
	assert_string_equal(c->user, "unideploy");
	assert_string_equal(c->ssh_key, "/etc/unideploy/keys/id_ed25519");
	assert_string_equal(c->known_hosts, "/etc/unideploy/known_hosts");
	assert_int_equal(c->max_instances, 8);
	assert_int_equal(c->max_memory_mb, 512);
	assert_string_equal(c->dns_listen, "127.0.0.1:5353");
	assert_string_equal(c->dns_zone, "apps.example.");
	ud_agentconf_free(c);

	/* The control socket for a group: root's group exists everywhere. */
	assert_int_equal(parse(&c, "{\"host\": \"h\", \"repo\": \"r\", "
				   "\"control_group\": \"root\", "
				   "\"control_mode\": \"0660\"}"),
			 0);
	assert_string_equal(c->control_group, "root");
	assert_int_equal(c->control_gid, 0);
	assert_int_equal(c->control_mode, 0660);
	ud_agentconf_free(c);
	assert_int_equal(parse(&c, "{\"host\": \"h\", \"repo\": \"r\", "
				   "\"control_mode\": \"770\"}"),
			 0);
	assert_null(c->control_group);
	assert_int_equal(c->control_mode, 0770);
	ud_agentconf_free(c);
}

static void errors(void **state)
{
	static const struct {
		const char *text, *error;
		int code;
	} cases[] = {
		{ "{\"host\": \"h\",\n \"repo\": }", "agent.json:2:10: "
		  "unexpected token near '}'", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"pol_s\": 5}",
		  "agent.json: unknown key 'pol_s'", UD_EINVALID },
		{ "{\"repo\": \"r\"}", "agent.json: missing key 'host'",
		  UD_ENOTFOUND },
		{ "{\"host\": \"h\"}", "agent.json: missing key 'repo'",
		  UD_ENOTFOUND },
		{ "{\"host\": \"../h\", \"repo\": \"r\"}",
		  "agent.json: host: invalid host name '../h': must match "
		  "[a-z0-9][a-z0-9._-]{0,62}", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"\"}",
		  "agent.json: repo: must not be empty", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"poll_s\": -1}",
		  "agent.json: poll_s: must be an integer from 0 to 86400",
		  UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"poll_s\": \"60\"}",
		  "agent.json: poll_s: must be an integer from 0 to 86400",
		  UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control\": "
		  "\"tcp:1.2.3.4:5\"}",
		  "agent.json: control: must be unix:PATH, not 'tcp:1.2.3.4:5'",
		  UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"state_dir\": 7}",
		  "agent.json: state_dir: must be a string", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"limits\": 3}",
		  "agent.json: limits: must be an object", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"limits\": "
		  "{\"max_instance\": 3}}",
		  "agent.json: unknown key 'limits.max_instance'", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"limits\": "
		  "{\"max_memory_mb\": -1}}",
		  "agent.json: limits.max_memory_mb: must be an integer from 0 "
		  "to 1073741824", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"dns\": "
		  "{\"zone\": \"a.example\"}}",
		  "agent.json: missing key 'dns.listen'", UD_ENOTFOUND },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"dns\": "
		  "{\"listen\": \"localhost\", \"zone\": \"a.example\"}}",
		  "agent.json: dns.listen: 'localhost' is not ADDR:PORT",
		  UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"dns\": "
		  "{\"listen\": \"127.0.0.1:53\", \"zone\": \"a..b\"}}",
		  "agent.json: dns.zone: 'a..b' is not a domain name",
		  UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"ssh_key\": 1}",
		  "agent.json: ssh_key: must be a string", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"user\": \"../root\"}",
		  "agent.json: user: '../root' is not a user name (1 to 32 of "
		  "a-z 0-9 _ -, not starting with a digit or -)", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"user\": \"-x\"}",
		  "agent.json: user: '-x' is not a user name (1 to 32 of "
		  "a-z 0-9 _ -, not starting with a digit or -)", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"user\": 0}",
		  "agent.json: user: must be a string", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_group\": "
		  "\"no-such-group-ud\"}",
		  "agent.json: control_group: no group 'no-such-group-ud' on "
		  "this host", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_group\": "
		  "\"../wheel\"}",
		  "agent.json: control_group: '../wheel' is not a group name",
		  UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_group\": 0}",
		  "agent.json: control_group: must be a string", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_mode\": 660}",
		  "agent.json: control_mode: must be a string", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_mode\": "
		  "\"0680\"}",
		  "agent.json: control_mode: '0680' is not a socket mode (octal, "
		  "like \"0660\", at most 0777, owner rw)", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_mode\": "
		  "\"4770\"}",
		  "agent.json: control_mode: '4770' is not a socket mode (octal, "
		  "like \"0660\", at most 0777, owner rw)", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_mode\": "
		  "\"0060\"}",
		  "agent.json: control_mode: '0060' is not a socket mode (octal, "
		  "like \"0660\", at most 0777, owner rw)", UD_EINVALID },
		{ "{\"host\": \"h\", \"repo\": \"r\", \"control_mode\": "
		  "\" 660\"}",
		  "agent.json: control_mode: ' 660' is not a socket mode (octal, "
		  "like \"0660\", at most 0777, owner rw)", UD_EINVALID },
	};
	struct ud_agentconf *c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(&c, cases[i].text), cases[i].code);
		assert_null(c);
		assert_string_equal(ud_error_last(), cases[i].error);
	}
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(spec_example, setup, teardown),
		cmocka_unit_test(defaults),
		cmocka_unit_test_setup_teardown(relative_paths_follow_the_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(missing_file, setup, teardown),
		cmocka_unit_test(extras),
		cmocka_unit_test(errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
