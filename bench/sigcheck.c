/*
 * sigcheck: the agent's signature check over a deployment repository's
 * whole history, through ud_deployrepo_verify_signed (lib/repo.h), timed,
 * for `make bench`.
 *
 *   sigcheck REPO ALLOWED_SIGNERS ROUNDS
 *
 * Prints the number of commits and the microseconds per commit checked
 * (the median of ROUNDS full checks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "allowed_signers.h"
#include "errors.h"
#include "repo.h"

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct ud_deployrepo *r = NULL;
	struct ud_allowed_signers *allowed = NULL;
	git_revwalk *walk = NULL;
	long long *t;
	git_oid head, id;
	int rounds, i, n = 0;

	if (argc != 4 || (rounds = atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: sigcheck REPO ALLOWED_SIGNERS ROUNDS\n");
		return 2;
	}
	if (ud_deployrepo_open(&r, argv[1]) < 0 ||
	    ud_deployrepo_head(r, &head) < 0 ||
	    ud_allowed_signers_load(&allowed, argv[2]) < 0) {
		fprintf(stderr, "sigcheck: %s\n", ud_error_last());
		return 1;
	}
	git_revwalk_new(&walk, ud_deployrepo_git(r));
	git_revwalk_push(walk, &head);
	while (git_revwalk_next(&id, walk) == 0)
		n++;
	git_revwalk_free(walk);
	t = calloc((size_t)rounds, sizeof(*t));
	for (i = 0; i < rounds; i++) {
		long long t0 = now_us();

		if (ud_deployrepo_verify_signed(r, &head, NULL, allowed,
						NULL) < 0) {
			fprintf(stderr, "sigcheck: %s\n", ud_error_last());
			return 1;
		}
		t[i] = now_us() - t0;
	}
	qsort(t, (size_t)rounds, sizeof(*t), cmp);
	printf("%d %.1f\n", n, (double)t[rounds / 2] / n);
	free(t);
	ud_allowed_signers_free(allowed);
	ud_deployrepo_free(r);
	return 0;
}
