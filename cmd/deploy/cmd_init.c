/*
 * deploy init PATH: create a bare deployment repository with an empty
 * fleet (SPEC §4).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "errors.h"
#include "repo.h"

static const char usage[] = "deploy init PATH";

int cmd_init(int argc, char **argv)
{
	struct cli_common c = { 0 };
	const char *path;
	char *abs = NULL;
	int opt, err;

	if ((opt = cli_no_options(argc, argv, usage, &c)) >= 0)
		return opt;
	if (argc - optind != 1)
		return cli_usage(usage, "init: expected one PATH");
	path = argv[optind];

	if ((err = ud_deployrepo_init(path)) < 0)
		return cli_failf(err, "init %s", path);
	/* The repository exists now, so realpath can resolve it. */
	abs = realpath(path, NULL);
	printf("Initialized empty deployment repository in %s\n",
	       abs ? abs : path);
	free(abs);
	return 0;
}
