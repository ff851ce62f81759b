/*
 * fetch: update a mirror of a deployment repository exactly the way the
 * agent does, through ud_deployrepo_fetch (lib/repo.h), for `make bench`.
 *
 *   fetch MIRROR URL
 *
 * The caller measures what the mirror grew by.
 */
#include <stdio.h>

#include "errors.h"
#include "repo.h"

int main(int argc, char **argv)
{
	struct ud_deployrepo *r = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: fetch MIRROR URL\n");
		return 2;
	}
	if (ud_deployrepo_fetch(&r, argv[1], argv[2]) < 0) {
		fprintf(stderr, "fetch: %s\n", ud_error_last());
		return 1;
	}
	ud_deployrepo_free(r);
	return 0;
}
