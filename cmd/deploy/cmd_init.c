/*
 * deploy init PATH: create a bare deployment repository with an empty
 * fleet (SPEC §4).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "errors.h"
#include "log.h"
#include "repo.h"

static const char usage[] = "deploy init PATH";

int cmd_init(int argc, char **argv)
{
	struct cli_common c = { 0 };
	const char *path;
	char *abs = NULL, *why = NULL;
	struct ud_sshkey *key = NULL;
	int opt, err;

	if ((opt = cli_no_options(argc, argv, usage, &c)) >= 0)
		return opt;
	if (argc - optind != 1)
		return cli_usage(usage, "init: expected one PATH");
	path = argv[optind];

	/* The first commit is signed like every later one, so an agent
	 * with allowed_signers can check the whole history. */
	if ((err = cli_signer(&c, &key, &why)) < 0)
		return cli_failf(err, "init %s", path);
	if (why)
		ud_log_warn("the first commit is not signed: %s", why);
	free(why);
	if ((err = ud_deployrepo_init(path, key)) < 0)
		return cli_failf(err, "init %s", path);
	/* The repository exists now, so realpath can resolve it. */
	abs = realpath(path, NULL);
	printf("Initialized empty deployment repository in %s\n",
	       abs ? abs : path);
	free(abs);
	return 0;
}
