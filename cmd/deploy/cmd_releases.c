/*
 * deploy releases APP [--json]: an app's release history, newest first,
 * the live one marked (SPEC §4).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"
#include "release.h"

static const char usage[] = "deploy releases APP [--json]";

static int print_json(struct ud_manifest **list, size_t n, int current)
{
	json_t *arr = json_array();
	struct ud_buf out = UD_BUF_INIT;
	size_t i;
	int err;

	for (i = 0; i < n; i++) {
		const struct ud_manifest *m = list[i];

		json_array_append_new(arr, json_pack(
			"{s:i, s:s, s:s?, s:o, s:b}",
			"release", m->release,
			"commit", m->source.commit,
			"created_at", m->created_at,
			"rollback_of", m->rollback_of ?
				json_integer(m->rollback_of) : json_null(),
			"current", m->release == current));
	}
	if ((err = ud_json_format(&out, arr)) == 0)
		fputs(out.ptr, stdout);
	ud_buf_free(&out);
	json_decref(arr);
	return err;
}

/*
 *   * v3  2026-11-26T12:00:00Z  1a2b3c4  Fix greeting
 *     v2  2026-11-26T11:00:00Z  0f9e8d7  rollback of v1
 */
static void print_text(struct ud_manifest **list, size_t n, int current)
{
	int width = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int w = snprintf(NULL, 0, "v%d", list[i]->release);

		if (w > width)
			width = w;
	}
	for (i = 0; i < n; i++) {
		const struct ud_manifest *m = list[i];
		char version[16];

		snprintf(version, sizeof(version), "v%d", m->release);
		printf("%c %-*s  %s  %.7s  ", m->release == current ? '*' : ' ',
		       width, version, m->created_at ? m->created_at : "-",
		       m->source.commit[0] ? m->source.commit : "-");
		if (m->rollback_of)
			printf("rollback of v%d\n", m->rollback_of);
		else
			printf("%s\n", m->source.subject ? m->source.subject : "");
	}
}

int cmd_releases(int argc, char **argv)
{
	struct cli_common c = { 0 };
	struct ud_deployrepo *r = NULL;
	struct ud_manifest **list = NULL;
	size_t n = 0;
	char *what = NULL;
	const char *app;
	int opt, err = 0, current = 0, status;

	if ((opt = cli_no_options(argc, argv, usage, &c)) >= 0)
		return opt;
	if (argc - optind != 1)
		return cli_usage(usage, "releases: expected one APP");
	app = argv[optind];
	what = ud_asprintf("releases %s", app);

	if ((err = ud_name_check_app(app)) < 0 ||
	    (err = cli_open_repo(&r, &c)) < 0 ||
	    (err = ud_release_list(r, app, &list, &n, &current)) < 0)
		goto done;
	if (n == 0) {
		err = ud_error_set(UD_ENOTFOUND, "%s has no releases", app);
		goto done;
	}
	if (c.json)
		err = print_json(list, n, current);
	else
		print_text(list, n, current);
done:
	status = err < 0 ? cli_fail(err, what) : 0;
	ud_release_list_free(list, n);
	ud_deployrepo_free(r);
	free(what);
	return status;
}
