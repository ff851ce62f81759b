/* test_buf.c: struct ud_buf, the file helpers of buf.c, and errors.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"

static char *make_tmpdir(void)
{
	char *dir = ud_strdup("/tmp/ud-buf-XXXXXX");

	assert_non_null(mkdtemp(dir));
	return dir;
}

static void test_init_is_empty_string(void **state)
{
	struct ud_buf b = UD_BUF_INIT;
	struct ud_buf c;

	(void)state;
	assert_non_null(b.ptr);
	assert_string_equal(b.ptr, "");
	assert_int_equal(b.size, 0);
	assert_int_equal(b.asize, 0);
	ud_buf_init(&c, 10);
	assert_string_equal(c.ptr, "");
	assert_int_equal(c.max, 10);
	/* Freeing a buffer that owns nothing is fine, and so is NULL. */
	ud_buf_free(&b);
	ud_buf_free(NULL);
	assert_string_equal(b.ptr, "");
	/* Clearing and trimming the shared empty must not write into it. */
	ud_buf_clear(&b);
	ud_buf_rtrim(&b);
	assert_string_equal(ud_buf__empty, "");
}

static void test_growth_keeps_nul(void **state)
{
	struct ud_buf b = UD_BUF_INIT;
	char want[10001];
	size_t i;

	(void)state;
	for (i = 0; i < 10000; i++) {
		char c = (char)('a' + i % 26);

		assert_int_equal(ud_buf_putc(&b, c), 0);
		want[i] = c;
		assert_int_equal(b.size, i + 1);
		assert_true(b.asize > b.size);
		assert_int_equal(b.ptr[b.size], '\0');
	}
	want[10000] = '\0';
	assert_string_equal(b.ptr, want);
	assert_int_equal(ud_buf_puts(&b, "XYZ"), 0);
	assert_int_equal(b.size, 10003);
	assert_string_equal(b.ptr + 10000, "XYZ");
	/* Binary data with an embedded NUL is kept byte for byte. */
	ud_buf_clear(&b);
	assert_int_equal(b.size, 0);
	assert_string_equal(b.ptr, "");
	assert_int_equal(ud_buf_put(&b, "a\0b", 3), 0);
	assert_int_equal(b.size, 3);
	assert_memory_equal(b.ptr, "a\0b", 4);
	ud_buf_free(&b);
	assert_int_equal(b.size, 0);
	assert_string_equal(b.ptr, "");
}

static void test_printf(void **state)
{
	struct ud_buf b = UD_BUF_INIT;
	char *big = ud_malloc(5001);

	(void)state;
	assert_int_equal(ud_buf_printf(&b, "%s=%d", "n", 42), 0);
	assert_int_equal(ud_buf_printf(&b, ",%05.1f;%c", 3.14159, 'z'), 0);
	assert_string_equal(b.ptr, "n=42,003.1;z");
	assert_int_equal(b.size, strlen("n=42,003.1;z"));
	/* Longer than any first allocation. */
	memset(big, 'q', 5000);
	big[5000] = '\0';
	assert_int_equal(ud_buf_printf(&b, "[%s]", big), 0);
	assert_int_equal(b.size, 12 + 5002);
	assert_int_equal(b.ptr[12], '[');
	assert_int_equal(b.ptr[12 + 5001], ']');
	assert_int_equal(b.ptr[b.size], '\0');
	/* An empty format on an empty buffer still leaves a C string. */
	ud_buf_free(&b);
	assert_int_equal(ud_buf_printf(&b, "%s", ""), 0);
	assert_string_equal(b.ptr, "");
	ud_buf_free(&b);

	char *s = ud_asprintf("%s-%d", "x", 7);
	assert_string_equal(s, "x-7");
	free(s);
	free(big);
}

static void test_max(void **state)
{
	struct ud_buf b;

	(void)state;
	ud_buf_init(&b, 8);
	ud_error_clear();
	assert_int_equal(ud_buf_puts(&b, "12345678"), 0);
	assert_string_equal(b.ptr, "12345678");
	assert_false(ud_error_has());
	assert_int_equal(ud_buf_putc(&b, '9'), UD_ETOOBIG);
	assert_string_equal(ud_error_last(), "data exceeds the 8-byte limit");
	/* Nothing was appended by the failed call. */
	assert_int_equal(b.size, 8);
	assert_string_equal(b.ptr, "12345678");
	ud_buf_clear(&b);
	assert_int_equal(ud_buf_printf(&b, "%s", "123456789"), UD_ETOOBIG);
	assert_int_equal(b.size, 0);
	/* A huge `extra` must not wrap around the check. */
	assert_int_equal(ud_buf_grow(&b, SIZE_MAX), UD_ETOOBIG);
	ud_buf_free(&b);
	/* The cap survives free and detach. */
	assert_int_equal(b.max, 8);
	assert_int_equal(ud_buf_puts(&b, "0123456789"), UD_ETOOBIG);
	ud_buf_free(&b);
}

static void test_detach(void **state)
{
	struct ud_buf b = UD_BUF_INIT;
	char *p;

	(void)state;
	assert_int_equal(ud_buf_puts(&b, "owned"), 0);
	p = ud_buf_detach(&b);
	assert_string_equal(p, "owned");
	/* The buffer is reset and no longer points at the memory. */
	assert_ptr_not_equal(b.ptr, p);
	assert_int_equal(b.size, 0);
	assert_int_equal(b.asize, 0);
	assert_string_equal(b.ptr, "");
	assert_int_equal(ud_buf_puts(&b, "again"), 0);
	assert_string_equal(p, "owned");
	free(p);
	ud_buf_free(&b);
	/* Detaching an empty buffer gives a fresh string the caller frees,
	 * never the shared empty. */
	p = ud_buf_detach(&b);
	assert_non_null(p);
	assert_ptr_not_equal(p, ud_buf__empty);
	assert_string_equal(p, "");
	free(p);
}

static void test_rtrim_truncate(void **state)
{
	struct ud_buf b = UD_BUF_INIT;

	(void)state;
	assert_int_equal(ud_buf_puts(&b, "  line \t\r\n\n"), 0);
	ud_buf_rtrim(&b);
	assert_string_equal(b.ptr, "  line");
	assert_int_equal(b.size, 6);
	ud_buf_truncate(&b, 100); /* longer: no change */
	assert_string_equal(b.ptr, "  line");
	ud_buf_truncate(&b, 3);
	assert_string_equal(b.ptr, "  l");
	assert_int_equal(b.size, 3);
	ud_buf_clear(&b);
	assert_int_equal(ud_buf_puts(&b, " \n\t "), 0);
	ud_buf_rtrim(&b);
	assert_int_equal(b.size, 0);
	assert_string_equal(b.ptr, "");
	ud_buf_free(&b);
}

static void test_read_file(void **state)
{
	char *dir = make_tmpdir();
	char *path = ud_asprintf("%s/f", dir);
	char *missing = ud_asprintf("%s/nope", dir);
	struct ud_buf b = UD_BUF_INIT;
	char *big = ud_malloc(200000);
	FILE *fp;
	size_t i;

	(void)state;
	for (i = 0; i < 200000; i++)
		big[i] = (char)(i * 7);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(big, 1, 200000, fp), 200000);
	fclose(fp);

	assert_int_equal(ud_buf_puts(&b, "prefix"), 0);
	assert_int_equal(ud_buf_read_file(&b, path), 0);
	assert_int_equal(b.size, 6 + 200000);
	assert_memory_equal(b.ptr, "prefix", 6);
	assert_memory_equal(b.ptr + 6, big, 200000);
	assert_int_equal(b.ptr[b.size], '\0');
	ud_buf_free(&b);

	ud_error_clear();
	assert_int_equal(ud_buf_read_file(&b, missing), UD_ENOTFOUND);
	assert_non_null(strstr(ud_error_last(), missing));
	assert_non_null(strstr(ud_error_last(), strerror(ENOENT)));

	/* Past the cap: UD_ETOOBIG naming the file. */
	ud_buf_init(&b, 1000);
	assert_int_equal(ud_buf_read_file(&b, path), UD_ETOOBIG);
	assert_non_null(strstr(ud_error_last(), path));
	assert_non_null(strstr(ud_error_last(), "1000-byte limit"));
	/* refused on its size, before a byte was read */
	assert_non_null(strstr(ud_error_last(), "is 200000 bytes"));
	assert_non_null(strstr(ud_error_last(), "nothing of it was read"));
	assert_int_equal(b.size, 0);
	ud_buf_free(&b);

	/* A directory cannot be read: UD_ERROR, not "not found". */
	ud_buf_init(&b, 0);
	assert_int_equal(ud_buf_read_file(&b, dir), UD_ERROR);
	assert_non_null(strstr(ud_error_last(), dir));
	ud_buf_free(&b);

	assert_int_equal(ud_rm_rf(dir), 0);
	free(big);
	free(path);
	free(missing);
	free(dir);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write_file_atomic(void **state)
{
	char *dir = make_tmpdir();
	char *path = ud_asprintf("%s/out.json", dir);
	char *bad = ud_asprintf("%s/no/such/dir/f", dir);
	struct ud_buf b = UD_BUF_INIT;
	struct stat st;
	mode_t old = umask(022);

	(void)state;
	assert_int_equal(ud_write_file_atomic(path, "first\n", 6, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ud_buf_read_file(&b, path), 0);
	assert_string_equal(b.ptr, "first\n");
	ud_buf_clear(&b);

	/* Replacing keeps only the new content; no temp file is left. */
	assert_int_equal(ud_write_file_atomic(path, "2", 1, 0644), 0);
	assert_int_equal(ud_buf_read_file(&b, path), 0);
	assert_string_equal(b.ptr, "2");
	assert_int_equal(count_entries(dir), 1);
	ud_buf_clear(&b);

	/* Empty content is a valid file. */
	assert_int_equal(ud_write_file_atomic(path, "", 0, 0644), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(ud_write_file_atomic(bad, "x", 1, 0644), UD_ERROR);
	assert_non_null(strstr(ud_error_last(), "/no/such/dir/f"));
	assert_int_equal(count_entries(dir), 1);

	umask(old);
	ud_buf_free(&b);
	assert_int_equal(ud_rm_rf(dir), 0);
	free(path);
	free(bad);
	free(dir);
}

static void test_mkdir_p_rm_rf(void **state)
{
	char *dir = make_tmpdir();
	char *deep = ud_asprintf("%s/a/b/c/d", dir);
	char *ro = ud_asprintf("%s/a/b/ro", dir);
	char *inro = ud_asprintf("%s/a/b/ro/file", dir);
	char *blocker = ud_asprintf("%s/file", dir);
	char *under = ud_asprintf("%s/file/sub", dir);
	char *link = ud_asprintf("%s/a/link", dir);
	char *outside = make_tmpdir();
	char *keep = ud_asprintf("%s/keep", outside);
	struct stat st;

	(void)state;
	assert_int_equal(ud_mkdir_p(deep, 0755), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* Again: existing directories are fine. */
	assert_int_equal(ud_mkdir_p(deep, 0755), 0);

	assert_int_equal(ud_write_file_atomic(blocker, "x", 1, 0644), 0);
	assert_int_equal(ud_mkdir_p(under, 0755), UD_ERROR);
	assert_non_null(strstr(ud_error_last(), under));

	/* A read-only directory with a file in it, and a symlink to a
	 * directory outside the tree whose contents must survive. */
	assert_int_equal(ud_mkdir_p(ro, 0755), 0);
	assert_int_equal(ud_write_file_atomic(inro, "x", 1, 0444), 0);
	assert_int_equal(chmod(ro, 0555), 0);
	assert_int_equal(ud_write_file_atomic(keep, "k", 1, 0644), 0);
	assert_int_equal(symlink(outside, link), 0);

	assert_int_equal(ud_rm_rf(dir), 0);
	assert_int_equal(lstat(dir, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(keep, &st), 0);
	/* Already gone is success. */
	assert_int_equal(ud_rm_rf(dir), 0);
	/* A plain file. */
	assert_int_equal(ud_rm_rf(keep), 0);
	assert_int_equal(lstat(keep, &st), -1);

	assert_int_equal(ud_rm_rf(outside), 0);
	free(deep);
	free(ro);
	free(inro);
	free(blocker);
	free(under);
	free(link);
	free(keep);
	free(outside);
	free(dir);
}

static int fails_with_context(void)
{
	int err = ud_error_set(UD_EINVALID, "bad value %d", 7);

	ud_error_prefix("%s", "deploy.json");
	return err;
}

static void test_errors(void **state)
{
	(void)state;
	ud_error_clear();
	assert_false(ud_error_has());
	assert_string_equal(ud_error_last(), "unknown error");

	assert_int_equal(ud_error_set(UD_ENOTFOUND, "no app '%s'", "x"),
			 UD_ENOTFOUND);
	assert_true(ud_error_has());
	assert_string_equal(ud_error_last(), "no app 'x'");

	assert_int_equal(fails_with_context(), UD_EINVALID);
	assert_string_equal(ud_error_last(), "deploy.json: bad value 7");
	ud_error_prefix("push %d", 2);
	assert_string_equal(ud_error_last(), "push 2: deploy.json: bad value 7");

	errno = EACCES;
	assert_int_equal(ud_error_set_errno(UD_ERROR, "cannot open %s", "/x"),
			 UD_ERROR);
	assert_string_equal(ud_error_last(),
			    "cannot open /x: Permission denied");

	/* A prefix with nothing set still says something. */
	ud_error_clear();
	ud_error_prefix("stage");
	assert_string_equal(ud_error_last(), "stage: unknown error");

	/* Overlong messages are cut, never overflow. */
	{
		char *longs = ud_malloc(5000);

		memset(longs, 'a', 4999);
		longs[4999] = '\0';
		ud_error_set(UD_ERROR, "%s", longs);
		ud_error_prefix("%s", longs);
		errno = ENOENT;
		ud_error_set_errno(UD_ERROR, "%s", longs);
		assert_true(strlen(ud_error_last()) < 5000);
		assert_int_equal(strncmp(ud_error_last(), longs, 100), 0);
		free(longs);
	}
	ud_error_clear();
	assert_false(ud_error_has());
}

/* A saved message survives cleanup that sets its own; a saved "none"
 * comes back as none. */
static void test_error_save_restore(void **state)
{
	struct ud_error_state saved;

	(void)state;
	ud_error_set(UD_ETIMEOUT, "instance web.1 not healthy");
	ud_error_save(&saved);
	ud_error_set(UD_ERROR, "cannot stop web.1");
	ud_error_restore(&saved);
	assert_true(ud_error_has());
	assert_string_equal(ud_error_last(), "instance web.1 not healthy");
	ud_error_prefix("web");
	assert_string_equal(saved.msg, "instance web.1 not healthy");
	assert_string_equal(ud_error_last(),
			    "web: instance web.1 not healthy");

	ud_error_clear();
	ud_error_save(&saved);
	ud_error_set(UD_ERROR, "noise");
	ud_error_restore(&saved);
	assert_false(ud_error_has());
	assert_string_equal(ud_error_last(), "unknown error");
}

static void test_exit_status(void **state)
{
	(void)state;
	assert_int_equal(ud_error_exit_status(UD_OK), 0);
	assert_int_equal(ud_error_exit_status(UD_EUSAGE), 2);
	assert_int_equal(ud_error_exit_status(UD_EPARTIAL), 3);
	assert_int_equal(ud_error_exit_status(UD_ERROR), 1);
	assert_int_equal(ud_error_exit_status(UD_ENOTFOUND), 1);
	assert_int_equal(ud_error_exit_status(UD_EEXISTS), 1);
	assert_int_equal(ud_error_exit_status(UD_ECONFLICT), 1);
	assert_int_equal(ud_error_exit_status(UD_EAUTH), 1);
	assert_int_equal(ud_error_exit_status(UD_ETIMEOUT), 1);
	assert_int_equal(ud_error_exit_status(UD_EINVALID), 1);
	assert_int_equal(ud_error_exit_status(UD_EBUSY), 1);
	assert_int_equal(ud_error_exit_status(UD_ETOOBIG), 1);
}

struct thread_seen {
	int had_error;
	char last[64];
};

static void *set_in_thread(void *arg)
{
	struct thread_seen *t = arg;

	/* The main thread's message must not be visible here... */
	t->had_error = ud_error_has();
	snprintf(t->last, sizeof(t->last), "%s", ud_error_last());
	/* ...and this one must not leak back. */
	ud_error_set(UD_ETIMEOUT, "thread message");
	return NULL;
}

static void test_errors_thread_local(void **state)
{
	struct thread_seen t = { -1, "" };
	pthread_t tid;

	(void)state;
	ud_error_set(UD_ERROR, "main message");
	assert_int_equal(pthread_create(&tid, NULL, set_in_thread, &t), 0);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(t.had_error, 0);
	assert_string_equal(t.last, "unknown error");
	assert_string_equal(ud_error_last(), "main message");
	ud_error_clear();
}

/* Appending a buffer to itself must survive the buffer moving. */
static void test_put_self(void **state)
{
	struct ud_buf b = UD_BUF_INIT;

	(void)state;
	assert_int_equal(ud_buf_puts(&b, "abcdefgh"), 0);
	for (int i = 0; i < 12; i++)
		assert_int_equal(ud_buf_put(&b, b.ptr, b.size), 0);
	assert_int_equal(b.size, 8u << 12);
	for (size_t i = 0; i < b.size; i += 8)
		assert_memory_equal(b.ptr + i, "abcdefgh", 8);
	ud_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_self),
		cmocka_unit_test(test_init_is_empty_string),
		cmocka_unit_test(test_growth_keeps_nul),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_rtrim_truncate),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_write_file_atomic),
		cmocka_unit_test(test_mkdir_p_rm_rf),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_save_restore),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_errors_thread_local),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
