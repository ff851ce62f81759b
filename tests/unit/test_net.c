#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "net.h"

static void test_parse_good(void **state)
{
	struct ud_addr a;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
	struct sockaddr_un *sun = (struct sockaddr_un *)&a.ss;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	assert_int_equal(ud_addr_parse(&a, "127.0.0.1:8080"), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 8080);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_string_equal(a.text, "127.0.0.1:8080");

	assert_int_equal(ud_addr_parse(&a, "0.0.0.0:0"), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 0);

	assert_int_equal(ud_addr_parse(&a, "[::1]:80"), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 80);
	inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
	assert_string_equal(text, "::1");

	assert_int_equal(ud_addr_parse(&a, "localhost:65535"), 0);
	assert_true(a.family == AF_INET || a.family == AF_INET6);
	assert_int_equal(ntohs(sin->sin_port), 65535);

	assert_int_equal(ud_addr_parse(&a, "unix:/run/x.sock"), 0);
	assert_int_equal(a.family, AF_UNIX);
	assert_string_equal(sun->sun_path, "/run/x.sock");
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *spec, *msg;
	} cases[] = {
		{ "127.0.0.1", "invalid address '127.0.0.1': missing port" },
		{ "127.0.0.1:", "invalid address '127.0.0.1:': bad port" },
		{ "127.0.0.1:65536",
		  "invalid address '127.0.0.1:65536': bad port" },
		{ "127.0.0.1:-1", "invalid address '127.0.0.1:-1': bad port" },
		{ "127.0.0.1:80x", "invalid address '127.0.0.1:80x': bad port" },
		{ ":80", "invalid address ':80': missing host" },
		{ "[::1:80", "invalid address '[::1:80': missing ']'" },
		{ "[::1]80", "invalid address '[::1]80': missing port" },
		{ "[]:80", "invalid address '[]:80': not an IPv6 address" },
		{ "::1:80",
		  "invalid address '::1:80': IPv6 addresses need brackets" },
		{ "unix:", "invalid address 'unix:': empty unix socket path" },
	};
	struct ud_addr a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ud_addr_parse(&a, cases[i].spec), UD_EINVALID);
		assert_string_equal(ud_error_last(), cases[i].msg);
	}
}

static void test_parse_long_unix_and_unresolvable(void **state)
{
	struct ud_buf spec = UD_BUF_INIT;
	struct ud_addr a;
	int i;

	(void)state;
	ud_buf_puts(&spec, "unix:/");
	for (i = 0; i < 200; i++)
		ud_buf_putc(&spec, 'x');
	assert_int_equal(ud_addr_parse(&a, spec.ptr), UD_EINVALID);
	assert_non_null(strstr(ud_error_last(), "unix socket path too long"));
	ud_buf_free(&spec);

	assert_int_equal(ud_addr_parse(&a, "no-such-host.invalid:80"),
			 UD_EINVALID);
	assert_true(strncmp(ud_error_last(),
			    "invalid address 'no-such-host.invalid:80': "
			    "cannot resolve 'no-such-host.invalid'", 64) == 0);
}

static int listen_loopback(int *port)
{
	struct ud_addr a;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	assert_int_equal(ud_addr_parse(&a, "127.0.0.1:0"), 0);
	assert_int_equal(ud_net_listen(&fd, &a, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	assert_true(*port > 0);
	return fd;
}

static int accept_one(int lfd)
{
	int fd;

	/* The listener is non-blocking: wait for the pending connection. */
	assert_int_equal(ud_net_nonblock(lfd, 0), 0);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	assert_int_equal(ud_net_nonblock(lfd, 1), 0);
	return fd;
}

static void test_listen_connect_tcp(void **state)
{
	struct ud_buf line = UD_BUF_INIT;
	struct ud_addr a;
	char *spec;
	int lfd, cfd, sfd, port, flags;

	(void)state;
	lfd = listen_loopback(&port);
	flags = fcntl(lfd, F_GETFL);
	assert_true(flags & O_NONBLOCK);
	assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);

	spec = ud_asprintf("127.0.0.1:%d", port);
	assert_int_equal(ud_addr_parse(&a, spec), 0);
	assert_int_equal(ud_net_connect(&cfd, &a, 2000), 0);
	assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
	sfd = accept_one(lfd);

	assert_int_equal(ud_write_all(sfd, "hello\nworld\n", 12), 0);
	assert_int_equal(ud_read_line(cfd, &line, 2000), 0);
	assert_string_equal(line.ptr, "hello");
	/* The second line was not swallowed by the first read. */
	assert_int_equal(ud_read_line(cfd, &line, 2000), 0);
	assert_string_equal(line.ptr, "world");

	close(sfd);
	close(cfd);
	close(lfd);
	ud_buf_free(&line);
	free(spec);
}

static void test_read_line_cap_timeout_eof(void **state)
{
	struct ud_buf line = UD_BUF_INIT;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

	/* Nothing written yet: the deadline passes. */
	assert_int_equal(ud_read_line(sv[0], &line, 50), UD_ETIMEOUT);

	ud_buf_init(&line, 8);
	assert_int_equal(ud_write_all(sv[1], "0123456789abcdef\n", 17), 0);
	assert_int_equal(ud_read_line(sv[0], &line, 2000), UD_ETOOBIG);
	ud_buf_free(&line);

	ud_buf_init(&line, 0);
	assert_int_equal(ud_write_all(sv[1], "partial", 7), 0);
	close(sv[1]);
	/* The oversized line was consumed; what follows has no newline. */
	assert_int_equal(ud_read_line(sv[0], &line, 2000), UD_ERROR);
	assert_string_equal(ud_error_last(),
			    "connection closed before end of line");

	close(sv[0]);
	ud_buf_free(&line);
}

static void test_read_line_pipe(void **state)
{
	struct ud_buf line = UD_BUF_INIT;
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ud_write_all(p[1], "a b\nc\n", 6), 0);
	assert_int_equal(ud_read_line(p[0], &line, 0), 0);
	assert_string_equal(line.ptr, "a b");
	assert_int_equal(ud_read_line(p[0], &line, 0), 0);
	assert_string_equal(line.ptr, "c");
	close(p[0]);
	close(p[1]);
	ud_buf_free(&line);
}

static void test_connect_refused(void **state)
{
	struct ud_addr a;
	char *spec;
	int port, fd = 123;

	(void)state;
	assert_int_equal(ud_net_free_port(&port), 0);
	spec = ud_asprintf("127.0.0.1:%d", port);
	assert_int_equal(ud_addr_parse(&a, spec), 0);
	assert_int_equal(ud_net_connect(&fd, &a, 2000), UD_ERROR);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(ud_error_last(), spec));
	assert_non_null(strstr(ud_error_last(), "Connection refused"));
	free(spec);
}

static void test_connect_timeout(void **state)
{
	struct ud_addr a;
	int lfd, cfd[64], fd = -1, port, i, n = 0, err = 0;
	char *spec;

	(void)state;
	/* A listener with a full backlog that never accepts: further
	 * connects hang in SYN_SENT until the deadline. */
	{
		struct ud_addr la;

		assert_int_equal(ud_addr_parse(&la, "127.0.0.1:0"), 0);
		assert_int_equal(ud_net_listen(&lfd, &la, 1), 0);
	}
	{
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);

		getsockname(lfd, (struct sockaddr *)&sin, &len);
		port = ntohs(sin.sin_port);
	}
	spec = ud_asprintf("127.0.0.1:%d", port);
	assert_int_equal(ud_addr_parse(&a, spec), 0);
	for (i = 0; i < 64; i++) {
		err = ud_net_connect(&fd, &a, 200);
		if (err < 0)
			break;
		cfd[n++] = fd;
	}
	assert_int_equal(err, UD_ETIMEOUT);
	assert_non_null(strstr(ud_error_last(), "timed out"));
	assert_non_null(strstr(ud_error_last(), spec));
	for (i = 0; i < n; i++)
		close(cfd[i]);
	close(lfd);
	free(spec);
}

static void test_unix_socket(void **state)
{
	char dir[] = "/tmp/ud-net-XXXXXX";
	struct ud_buf line = UD_BUF_INIT;
	struct ud_addr a;
	struct stat st;
	char *spec, *path;
	int lfd, lfd2, cfd, sfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = ud_asprintf("%s/s.sock", dir);
	spec = ud_asprintf("unix:%s", path);
	assert_int_equal(ud_addr_parse(&a, spec), 0);
	assert_int_equal(ud_net_listen(&lfd, &a, 4), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);

	assert_int_equal(ud_net_connect(&cfd, &a, 1000), 0);
	sfd = accept_one(lfd);
	assert_int_equal(ud_write_all(cfd, "ping\n", 5), 0);
	assert_int_equal(ud_read_line(sfd, &line, 1000), 0);
	assert_string_equal(line.ptr, "ping");
	close(sfd);
	close(cfd);

	/* A live listener is not replaced. */
	assert_int_equal(ud_net_listen(&lfd2, &a, 4), UD_EBUSY);
	assert_non_null(strstr(ud_error_last(), "another process"));
	close(lfd);

	/* The socket file outlived its listener: it is stale, replaced. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(ud_net_listen(&lfd, &a, 4), 0);
	close(lfd);

	ud_buf_free(&line);
	free(spec);
	free(path);
	ud_rm_rf(dir);
}

static void test_free_port(void **state)
{
	struct ud_addr a;
	char *spec;
	int port, fd;

	(void)state;
	assert_int_equal(ud_net_free_port(&port), 0);
	assert_true(port > 0 && port < 65536);
	spec = ud_asprintf("127.0.0.1:%d", port);
	assert_int_equal(ud_addr_parse(&a, spec), 0);
	assert_int_equal(ud_net_listen(&fd, &a, 1), 0);
	close(fd);
	free(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_long_unix_and_unresolvable),
		cmocka_unit_test(test_listen_connect_tcp),
		cmocka_unit_test(test_read_line_cap_timeout_eof),
		cmocka_unit_test(test_read_line_pipe),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_unix_socket),
		cmocka_unit_test(test_free_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
