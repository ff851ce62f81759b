/*
 * cases.h: data-driven parser tests in the manner of jansson's
 * test/suites: a directory per case under tests/unit/data/<parser>/
 * {invalid,valid}/, holding `input` (and, for invalid cases, the exact
 * `error`). Each case directory becomes a cmocka test named after it, so a
 * failure names the case. Include after cmocka.h.
 */
#ifndef UD_TEST_CASES_H
#define UD_TEST_CASES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"

/* tests/unit/data, or $UD_TEST_DATA. */
static inline const char *data_dir(void)
{
	const char *d = getenv("UD_TEST_DATA");

	return d && *d ? d : "tests/unit/data";
}

/* The whole of dir/file (caller frees); *len its size when len != NULL. */
static inline char *read_case(const char *dir, const char *file, size_t *len)
{
	struct ud_buf b = UD_BUF_INIT;
	char *path = ud_asprintf("%s/%s", dir, file);

	assert_int_equal(ud_buf_read_file(&b, path), 0);
	free(path);
	if (len)
		*len = b.size;
	return ud_buf_detach(&b);
}

/* Append a test per case directory under data_dir()/sub; each gets its
 * directory's path as initial state. */
static inline size_t add_cases(struct CMUnitTest **tests, size_t n,
			       const char *sub, CMUnitTestFunction fn)
{
	char *dir = ud_asprintf("%s/%s", data_dir(), sub);
	struct dirent **ents;
	int i, count;

	count = scandir(dir, &ents, NULL, alphasort);
	if (count < 0) {
		fprintf(stderr, "cannot read %s (run from the repository "
				"root or set UD_TEST_DATA)\n",
			dir);
		exit(1);
	}
	for (i = 0; i < count; i++) {
		if (ents[i]->d_name[0] != '.') {
			*tests = ud_realloc(*tests, (n + 1) * sizeof(**tests));
			(*tests)[n] = (struct CMUnitTest){
				.name = ud_asprintf("%s/%s", sub,
						    ents[i]->d_name),
				.test_func = fn,
				.initial_state = ud_asprintf(
					"%s/%s", dir, ents[i]->d_name),
			};
			n++;
		}
		free(ents[i]);
	}
	free(ents);
	free(dir);
	return n;
}

/* Run `fixed`, then a test per case of <group>/invalid and <group>/valid. */
static inline int run_with_cases(const char *group,
				 const struct CMUnitTest *fixed, size_t nfixed,
				 CMUnitTestFunction invalid,
				 CMUnitTestFunction valid)
{
	struct CMUnitTest *tests = NULL;
	char *sub;
	size_t i, n = 0;
	int rc;

	for (i = 0; i < nfixed; i++) {
		tests = ud_realloc(tests, (n + 1) * sizeof(*tests));
		tests[n] = fixed[i];
		tests[n].name = ud_strdup(fixed[i].name);
		n++;
	}
	sub = ud_asprintf("%s/invalid", group);
	n = add_cases(&tests, n, sub, invalid);
	free(sub);
	sub = ud_asprintf("%s/valid", group);
	n = add_cases(&tests, n, sub, valid);
	free(sub);
	rc = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	for (i = 0; i < n; i++) {
		free((char *)tests[i].name);
		free(tests[i].initial_state);
	}
	free(tests);
	return rc;
}

#endif
