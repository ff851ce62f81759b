/*
 * test_agent_proxy.c: the proxy between real loopback sockets: clients
 * here, backends in threads here, the proxy's own thread in between.
 *
 * Every backend greets a new connection with "B<id>.<seq>\n", so a client
 * knows where it landed and in which order the backend saw it. Waits poll a condition with a generous deadline (a bug
 * fails the test instead of hanging it); nothing asserts on durations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "errors.h"
#include "evloop.h"
#include "log.h"
#include "net.h"
#include "proxy.h"
#include "proxy_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BIG (8 * 1024 * 1024)
#define REPLY (1024 * 1024)
#define MAX_CONNS 64
#define WAIT_MS 20000

enum mode {
	ECHO,   /* echo until EOF, then shut down writing */
	AT_EOF, /* read until EOF, then answer "<bytes read>\n" + REPLY bytes */
	HTTP,   /* an HTTP/1.1 server, keep-alive (see http_serve) */
};

struct backend {
	int id;
	int port;
	int lfd;
	enum mode mode;
	int stop[2];
	int gate[2]; /* HTTP GET /slow sends the rest of its body after a byte */
	pthread_t acceptor;
	pthread_mutex_t mu;
	int fds[MAX_CONNS];
	pthread_t th[MAX_CONNS];
	int n;
};

struct bconn {
	struct backend *b;
	int fd;
	int seq; /* accepted as the seq-th connection of b */
};

static unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 31 + (i >> 13)) & 0xff);
}

static int send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static int send_pattern(int fd, size_t total)
{
	unsigned char chunk[16384];
	size_t off = 0, i, n;

	while (off < total) {
		n = total - off < sizeof(chunk) ? total - off : sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = pattern(off + i);
		if (send_all(fd, chunk, n) < 0)
			return -1;
		off += n;
	}
	return 0;
}

/*
 * HTTP mode: answer each request of a kept-alive connection with
 * "B<id>.<seq> <request number on this connection> <body bytes>\n" (so a
 * client sees which backend and which connection served it). GET /slow
 * sends half the answer, waits for a byte on the gate, then the rest; GET
 * /bye answers, then closes (an idle timeout); GET /big answers REPLY
 * bytes of pattern(); a request with Upgrade is answered 101 and the
 * connection echoes from then on.
 */
static void http_serve(struct bconn *bc)
{
	char buf[65536], body[64], head[128];
	size_t len = 0, hl, blen, need, got;
	char *end, *cl;
	int nreq = 0, upgrade;
	ssize_t n;

	for (;;) {
		while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
			n = read(bc->fd, buf + len, sizeof(buf) - len);
			if (n <= 0)
				return;
			len += n;
		}
		hl = end - buf + 4;
		need = 0;
		if ((cl = memmem(buf, hl, "Content-Length: ", 16)))
			need = strtoul(cl + 16, NULL, 10);
		if (memmem(buf, hl, "chunked", 7)) {
			/* The tests' chunks hold no CRLFCRLF: it ends the
			 * trailer section. */
			while (!(end = memmem(buf + hl, len - hl,
					      "\r\n\r\n", 4))) {
				n = read(bc->fd, buf + len, sizeof(buf) - len);
				if (n <= 0)
					return;
				len += n;
			}
			need = end + 4 - (buf + hl);
		}
		/* A body larger than buf is read and dropped as it comes
		 * (nothing is pipelined behind one in these tests). */
		got = need;
		if (hl + need > sizeof(buf)) {
			size_t left = need - (len - hl);

			while (left) {
				n = read(bc->fd, buf + hl, left < sizeof(buf) -
					 hl ? left : sizeof(buf) - hl);
				if (n <= 0)
					return;
				left -= n;
			}
			len = hl;
			need = 0;
		}
		while (len < hl + need) {
			n = read(bc->fd, buf + len, sizeof(buf) - len);
			if (n <= 0)
				return;
			len += n;
		}
		upgrade = memmem(buf, hl, "Upgrade:", 8) != NULL;
		snprintf(body, sizeof(body), "B%d.%d %d %zu\n", bc->b->id,
			 bc->seq, nreq++, got);
		blen = strlen(body);
		if (upgrade) {
			snprintf(head, sizeof(head), "HTTP/1.1 101 Switching "
				 "Protocols\r\nUpgrade: echo\r\n"
				 "Connection: Upgrade\r\n\r\n");
			if (send_all(bc->fd, head, strlen(head)) < 0 ||
			    send_all(bc->fd, buf + hl + need,
				     len - hl - need) < 0)
				return;
			while ((n = read(bc->fd, buf, sizeof(buf))) > 0)
				if (send_all(bc->fd, buf, n) < 0)
					return;
			return;
		}
		if (!strncmp(buf, "GET /big ", 9)) {
			snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n"
				 "Content-Length: %d\r\n\r\n", REPLY);
			if (send_all(bc->fd, head, strlen(head)) < 0 ||
			    send_pattern(bc->fd, REPLY) < 0)
				return;
			memmove(buf, buf + hl + need, len - hl - need);
			len -= hl + need;
			continue;
		}
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n"
			 "Content-Length: %zu\r\n\r\n", blen);
		if (send_all(bc->fd, head, strlen(head)) < 0)
			return;
		if (!strncmp(buf, "GET /slow ", 10)) {
			char c;

			if (send_all(bc->fd, body, 3) < 0 ||
			    read(bc->b->gate[0], &c, 1) != 1 ||
			    send_all(bc->fd, body + 3, blen - 3) < 0)
				return;
		} else if (send_all(bc->fd, body, blen) < 0) {
			return;
		}
		if (!strncmp(buf, "GET /bye ", 9))
			return;
		memmove(buf, buf + hl + need, len - hl - need);
		len -= hl + need;
	}
}

static void *backend_conn(void *arg)
{
	struct bconn *bc = arg;
	char buf[16384], line[32];
	size_t total = 0;
	ssize_t n;

	if (bc->b->mode == HTTP) {
		http_serve(bc);
		shutdown(bc->fd, SHUT_RDWR);
		goto done;
	}
	snprintf(line, sizeof(line), "B%d.%d\n", bc->b->id, bc->seq);
	if (send_all(bc->fd, line, strlen(line)) < 0)
		goto done;
	for (;;) {
		n = read(bc->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += n;
		if (bc->b->mode == ECHO && send_all(bc->fd, buf, n) < 0)
			goto done;
	}
	if (n == 0 && bc->b->mode == AT_EOF) {
		snprintf(line, sizeof(line), "%zu\n", total);
		if (send_all(bc->fd, line, strlen(line)) < 0 ||
		    send_pattern(bc->fd, REPLY) < 0)
			goto done;
	}
	shutdown(bc->fd, SHUT_WR);
done:
	free(bc);
	return NULL;
}

static void *backend_accept(void *arg)
{
	struct backend *b = arg;
	struct pollfd pf[2] = { { b->lfd, POLLIN, 0 }, { b->stop[0], POLLIN, 0 } };
	struct bconn *bc;
	int fd;

	for (;;) {
		if (poll(pf, 2, -1) < 0 && errno == EINTR)
			continue;
		if (pf[1].revents)
			return NULL;
		if ((fd = accept(b->lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&b->mu);
		if (b->n == MAX_CONNS) {
			close(fd);
		} else {
			bc = calloc(1, sizeof(*bc));
			bc->b = b;
			bc->fd = fd;
			bc->seq = b->n;
			b->fds[b->n] = fd;
			if (pthread_create(&b->th[b->n], NULL, backend_conn,
					   bc) == 0)
				b->n++;
			else
				close(fd);
		}
		pthread_mutex_unlock(&b->mu);
	}
}

static struct backend *backend_start(int id, enum mode mode)
{
	struct backend *b = calloc(1, sizeof(*b));
	struct sockaddr_in sa = { 0 };
	socklen_t len = sizeof(sa);

	b->id = id;
	b->mode = mode;
	pthread_mutex_init(&b->mu, NULL);
	b->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(b->lfd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(b->lfd, 64), 0);
	assert_int_equal(getsockname(b->lfd, (struct sockaddr *)&sa, &len), 0);
	b->port = ntohs(sa.sin_port);
	assert_int_equal(pipe(b->stop), 0);
	assert_int_equal(pipe(b->gate), 0);
	assert_int_equal(pthread_create(&b->acceptor, NULL, backend_accept, b),
			 0);
	return b;
}

static void backend_stop(struct backend *b)
{
	int i;

	if (!b)
		return;
	assert_int_equal(write(b->stop[1], "q", 1), 1);
	pthread_join(b->acceptor, NULL);
	for (i = 0; i < b->n; i++)
		shutdown(b->fds[i], SHUT_RDWR);
	for (i = 0; i < b->n; i++) {
		pthread_join(b->th[i], NULL);
		close(b->fds[i]);
	}
	close(b->lfd);
	close(b->stop[0]);
	close(b->stop[1]);
	close(b->gate[0]);
	close(b->gate[1]);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* --- the proxy's side of a test --- */

struct fixture {
	struct proxy *p;
	struct ud_evloop *loop; /* the test's own loop (setup_shared) */
	pthread_t loop_thread;
	char addr[32];
	int port;
	pthread_mutex_t mu;
	int demands;
	char demand_app[32];
	size_t demand_waiting;
};

static void on_demand(const char *app, size_t waiting, void *payload)
{
	struct fixture *f = payload;

	pthread_mutex_lock(&f->mu);
	f->demands++;
	snprintf(f->demand_app, sizeof(f->demand_app), "%s", app);
	f->demand_waiting = waiting;
	pthread_mutex_unlock(&f->mu);
}

struct seen {
	int demands;
	char app[32];
	size_t waiting;
};

/* What on_demand has seen, once it has been called `at_least` times.
 * Copied out so that no assertion fails with the lock held (the proxy
 * thread would wait for it forever). */
static struct seen demands(struct fixture *f, int at_least)
{
	struct seen s;
	int i;

	for (i = 0; i < WAIT_MS; i++) {
		pthread_mutex_lock(&f->mu);
		s.demands = f->demands;
		memcpy(s.app, f->demand_app, sizeof(s.app));
		s.waiting = f->demand_waiting;
		pthread_mutex_unlock(&f->mu);
		if (s.demands >= at_least)
			break;
		usleep(1000);
	}
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	pthread_mutex_init(&f->mu, NULL);
	assert_int_equal(ud_net_free_port(&f->port), 0);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
	assert_int_equal(proxy_start(&f->p, NULL, on_demand, f), 0);
	*state = f;
	return 0;
}

static void *run_loop(void *arg)
{
	ud_evloop_run(arg);
	return NULL;
}

/* The same, on a loop the test makes and runs, as the agent's main will
 * (shared with its other parts). */
static int setup_shared(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	pthread_mutex_init(&f->mu, NULL);
	assert_int_equal(ud_net_free_port(&f->port), 0);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
	assert_int_equal(ud_evloop_new(&f->loop), 0);
	assert_int_equal(proxy_start(&f->p, f->loop, on_demand, f), 0);
	assert_ptr_equal(proxy_loop(f->p), f->loop);
	assert_int_equal(pthread_create(&f->loop_thread, NULL, run_loop,
					f->loop), 0);
	*state = f;
	return 0;
}

/* The same, moving bytes through buffers as when splice(2) is refused. */
static int setup_copy(void **state)
{
	setenv("UD_PROXY_NO_SPLICE", "1", 1);
	return setup(state);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unsetenv("UD_PROXY_NO_SPLICE");
	if (f->loop) {
		/* The caller's loop: stopped before the proxy goes. */
		ud_evloop_stop(f->loop);
		pthread_join(f->loop_thread, NULL);
	}
	proxy_stop(f->p);
	ud_evloop_free(f->loop);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return 0;
}

static int try_connect(int port)
{
	struct sockaddr_in sa = { 0 };
	struct timeval tv = { WAIT_MS / 1000, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	/* A bug must fail the test, not hang it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int client(struct fixture *f)
{
	int fd = try_connect(f->port);

	assert_true(fd >= 0);
	return fd;
}

/* One line, without its newline; "" on EOF. */
static char *read_line(int fd)
{
	struct ud_buf b = UD_BUF_INIT;
	char c;
	ssize_t n;

	while ((n = read(fd, &c, 1)) == 1 && c != '\n')
		ud_buf_putc(&b, c);
	assert_true(n >= 0); /* not a timeout */
	return ud_buf_detach(&b);
}

static void expect_line(int fd, const char *want)
{
	char *got = read_line(fd);

	assert_string_equal(got, want);
	free(got);
}

/* Which backend a new connection landed on. */
static int landed(int fd)
{
	char *got = read_line(fd);
	int id;

	assert_int_equal(got[0], 'B');
	id = atoi(got + 1);
	free(got);
	return id;
}

static int wait_for(struct fixture *f, const char *app, int id, size_t want)
{
	int i;

	for (i = 0; i < WAIT_MS; i++) {
		if (proxy_active(f->p, app, id) == want)
			return 1;
		usleep(1000);
	}
	return 0;
}

static int wait_held(struct fixture *f, const char *app, size_t want)
{
	size_t held;
	int i;

	for (i = 0; i < WAIT_MS; i++) {
		proxy_counts(f->p, app, NULL, &held);
		if (held == want)
			return 1;
		usleep(1000);
	}
	return 0;
}

/* Reads must see EOF (the proxy closed or shut down its side). */
static void expect_eof(int fd)
{
	char c;
	ssize_t n;

	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

static void set_one(struct fixture *f, const char *app, struct backend *b)
{
	struct proxy_backend pb = { .id = b->id, .port = b->port };

	proxy_set_backends(f->p, app, &pb, 1);
}

struct sender {
	int fd;
	size_t total;
	int rc;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	s->rc = send_pattern(s->fd, s->total);
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

/* Send `total` pattern bytes (then shut down writing) while reading them
 * back; everything must come back intact, then EOF. */
static void echo_exchange(int fd, size_t total)
{
	struct sender s = { fd, total, -1 };
	unsigned char buf[65536];
	size_t got = 0, i;
	pthread_t th;
	ssize_t n;

	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n >= 0);
		if (n == 0)
			break;
		for (i = 0; i < (size_t)n; i++)
			if (buf[i] != pattern(got + i))
				fail_msg("byte %zu differs", got + i);
		got += n;
	}
	pthread_join(th, NULL);
	assert_int_equal(s.rc, 0);
	assert_int_equal(got, total);
}

/* --- tests --- */

static void test_large_echo(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	size_t open, held;
	int fd;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", b);
	fd = client(f);
	assert_int_equal(landed(fd), 1);
	assert_int_equal(proxy_active(f->p, "app", 1), 1);
	echo_exchange(fd, BIG);
	close(fd);
	assert_true(wait_for(f, "app", 1, 0));
	proxy_counts(f->p, "app", &open, &held);
	assert_int_equal(open, 0);
	assert_int_equal(held, 0);
	backend_stop(b);
}

/* Small and large messages in turn on one connection, each echoed whole
 * before the next: the proxy copies small reads and splices bulk ones,
 * and must switch both ways without losing or reordering a byte. */
static void test_small_and_bulk(void **state)
{
	static const size_t sizes[] = { 5, 1 << 20, 1, 16384, 3, 300000, 7 };
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	unsigned char *out = ud_malloc(1 << 20), *in = ud_malloc(1 << 20);
	size_t i, j, got, sent;
	ssize_t n;
	int fd;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", b);
	fd = client(f);
	assert_int_equal(landed(fd), 1);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (j = 0; j < sizes[i]; j++)
			out[j] = (unsigned char)(i * 31 + j);
		/* Writing and reading at once: the echo of a big message
		 * cannot all wait in socket buffers. */
		for (sent = got = 0; got < sizes[i];) {
			struct pollfd pfd = { fd, POLLIN, 0 };

			if (sent < sizes[i])
				pfd.events |= POLLOUT;
			assert_true(poll(&pfd, 1, 10000) > 0);
			if ((pfd.revents & POLLOUT) &&
			    (n = send(fd, out + sent, sizes[i] - sent,
				      MSG_DONTWAIT | MSG_NOSIGNAL)) > 0)
				sent += n;
			if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
				n = read(fd, in + got, sizes[i] - got);
				assert_true(n > 0);
				got += n;
			}
		}
		assert_memory_equal(in, out, sizes[i]);
	}
	close(fd);
	assert_true(wait_for(f, "app", 1, 0));
	free(out);
	free(in);
	backend_stop(b);
}

static void test_half_close(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, AT_EOF);
	unsigned char buf[65536];
	size_t got = 0, i;
	ssize_t n;
	int fd;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", b);
	fd = client(f);
	assert_int_equal(send_all(fd, "hello world", 11), 0);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	assert_int_equal(landed(fd), 1);
	expect_line(fd, "11");
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < (size_t)n; i++)
			assert_int_equal(buf[i], pattern(got + i));
		got += n;
	}
	assert_int_equal(n, 0);
	assert_int_equal(got, REPLY);
	close(fd);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_held_then_served(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(7, ECHO);
	struct seen seen;
	size_t open, held;
	int fd;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	fd = client(f);
	/* Sent while held: must reach the backend once there is one. */
	assert_int_equal(send_all(fd, "ping\n", 5), 0);
	assert_true(wait_held(f, "app", 1));
	seen = demands(f, 1);
	assert_true(seen.demands >= 1);
	assert_string_equal(seen.app, "app");
	assert_int_equal(seen.waiting, 1);
	/* And again while it waits, in case the owner was not ready. */
	seen = demands(f, 2);
	assert_true(seen.demands >= 2);
	assert_int_equal(seen.waiting, 1);
	proxy_counts(f->p, "app", &open, &held);
	assert_int_equal(open, 0);

	set_one(f, "app", b);
	assert_int_equal(landed(fd), 7);
	expect_line(fd, "ping");
	proxy_counts(f->p, "app", &open, &held);
	assert_int_equal(open, 1);
	assert_int_equal(held, 0);
	close(fd);
	assert_true(wait_for(f, "app", 7, 0));
	backend_stop(b);
}

static void test_held_in_order(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	char msg[16];
	int fd[5], i;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	for (i = 0; i < 5; i++) {
		fd[i] = client(f);
		snprintf(msg, sizeof(msg), "c%d\n", i);
		assert_int_equal(send_all(fd[i], msg, strlen(msg)), 0);
		assert_true(wait_held(f, "app", i + 1));
	}
	set_one(f, "app", b);
	/* FIFO: the backend saw them in the order they arrived. */
	for (i = 0; i < 5; i++) {
		snprintf(msg, sizeof(msg), "B1.%d", i);
		expect_line(fd[i], msg);
		snprintf(msg, sizeof(msg), "c%d", i);
		expect_line(fd[i], msg);
	}
	assert_int_equal(proxy_active(f->p, "app", 1), 5);
	for (i = 0; i < 5; i++)
		close(fd[i]);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_held_expires(void **state)
{
	struct fixture *f = *state;
	int fd;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 50, 0), 0);
	fd = client(f);
	expect_eof(fd);
	assert_true(wait_held(f, "app", 0));
	assert_int_equal(demands(f, 1).demands, 1);
	close(fd);
}

/* A refused boot closes the waiting clients at once (they see EOF, not a
 * hang until hold_ms), and the oldest held connection's arrival time is
 * what the cold-start latency is measured from. */
static void test_drop_held(void **state)
{
	struct fixture *f = *state;
	long long before = ud_now_ms(), since;
	int c1, c2;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	assert_int_equal(proxy_held_since(f->p, "app"), 0);
	c1 = client(f);
	assert_true(wait_held(f, "app", 1));
	c2 = client(f);
	assert_true(wait_held(f, "app", 2));
	since = proxy_held_since(f->p, "app");
	assert_true(since >= before && since <= ud_now_ms());
	assert_int_equal(proxy_drop_held(f->p, "app"), 2);
	expect_eof(c1);
	expect_eof(c2);
	assert_true(wait_held(f, "app", 0));
	assert_int_equal(proxy_held_since(f->p, "app"), 0);
	assert_int_equal(proxy_drop_held(f->p, "nobody"), 0);
	close(c1);
	close(c2);
}

static void test_switch_backends(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, ECHO);
	struct backend *b = backend_start(2, ECHO);
	int old, new;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", a);
	old = client(f);
	assert_int_equal(landed(old), 1);

	set_one(f, "app", b);
	new = client(f);
	assert_int_equal(landed(new), 2);
	/* The old connection drains on its instance, untouched. */
	assert_int_equal(send_all(old, "still here\n", 11), 0);
	expect_line(old, "still here");
	assert_int_equal(proxy_active(f->p, "app", 1), 1);
	assert_int_equal(proxy_active(f->p, "app", 2), 1);

	close(old);
	assert_true(wait_for(f, "app", 1, 0));
	assert_int_equal(send_all(new, "new\n", 4), 0);
	expect_line(new, "new");
	close(new);
	assert_true(wait_for(f, "app", 2, 0));
	backend_stop(a);
	backend_stop(b);
}

static void test_active_exact(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(3, ECHO);
	size_t open, held;
	int fd[4], i;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", b);
	assert_int_equal(proxy_active(f->p, "app", 3), 0);
	for (i = 0; i < 4; i++) {
		fd[i] = client(f);
		assert_int_equal(landed(fd[i]), 3);
		assert_int_equal(proxy_active(f->p, "app", 3), i + 1);
	}
	proxy_counts(f->p, "app", &open, &held);
	assert_int_equal(open, 4);
	assert_int_equal(held, 0);
	assert_int_equal(proxy_active(f->p, "app", 4), 0);
	assert_int_equal(proxy_active(f->p, "other", 3), 0);
	for (i = 0; i < 4; i++) {
		close(fd[i]);
		assert_true(wait_for(f, "app", 3, 3 - i));
	}
	backend_stop(b);
}

static void test_least_loaded(void **state)
{
	struct fixture *f = *state;
	struct backend *b1 = backend_start(1, ECHO);
	struct backend *b2 = backend_start(2, ECHO);
	struct proxy_backend pb[2] = { { .id = 1, .port = b1->port },
					 { .id = 2, .port = b2->port } };
	int c[6];

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	proxy_set_backends(f->p, "app", pb, 2);
	c[0] = client(f);
	assert_int_equal(landed(c[0]), 1);
	c[1] = client(f);
	assert_int_equal(landed(c[1]), 2);
	/* 1:1, a tie: round robin goes on to the first. */
	c[2] = client(f);
	assert_int_equal(landed(c[2]), 1);
	c[3] = client(f);
	assert_int_equal(landed(c[3]), 2);
	close(c[1]);
	close(c[3]);
	assert_true(wait_for(f, "app", 2, 0));
	/* 2:0 then 2:1: the less loaded takes both. */
	c[4] = client(f);
	assert_int_equal(landed(c[4]), 2);
	c[5] = client(f);
	assert_int_equal(landed(c[5]), 2);
	assert_int_equal(proxy_active(f->p, "app", 1), 2);
	assert_int_equal(proxy_active(f->p, "app", 2), 2);
	close(c[0]);
	close(c[2]);
	close(c[4]);
	close(c[5]);
	assert_true(wait_for(f, "app", 1, 0));
	assert_true(wait_for(f, "app", 2, 0));
	backend_stop(b1);
	backend_stop(b2);
}

static void test_stalled_clients(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	char chunk[16384];
	int half, flood, fd;
	ssize_t n;

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", b);

	/* Half a request, never finished, never read. */
	half = client(f);
	assert_int_equal(send_all(half, "GET / HT", 8), 0);
	/* A client that floods an echo and never reads: every buffer on
	 * its path fills up. */
	flood = client(f);
	assert_int_equal(ud_net_nonblock(flood, 1), 0);
	while ((n = send(flood, chunk, sizeof(chunk), MSG_NOSIGNAL)) > 0 ||
	       (n < 0 && errno == EINTR))
		;
	assert_true(n < 0 && errno == EAGAIN);

	fd = client(f);
	assert_int_equal(landed(fd), 1);
	echo_exchange(fd, BIG);
	close(fd);
	assert_true(wait_for(f, "app", 1, 2));
	close(half);
	close(flood);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_unlisten(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	int fd, served;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	fd = client(f);
	assert_true(wait_held(f, "app", 1));
	proxy_unlisten(f->p, "app");
	/* The held connection is closed, new ones are refused. */
	expect_eof(fd);
	close(fd);
	assert_true(wait_held(f, "app", 0));
	assert_int_equal(try_connect(f->port), -1);

	/* Forwarded connections outlive the listener. */
	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	set_one(f, "app", b);
	served = client(f);
	assert_int_equal(landed(served), 1);
	proxy_unlisten(f->p, "app");
	assert_int_equal(try_connect(f->port), -1);
	assert_int_equal(send_all(served, "on\n", 3), 0);
	expect_line(served, "on");
	close(served);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_listen_again(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	char other[32], *want;
	int port2, fd;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
	set_one(f, "app", b);
	fd = client(f);
	assert_int_equal(landed(fd), 1);
	close(fd);

	/* A new address replaces the old one. */
	assert_int_equal(ud_net_free_port(&port2), 0);
	snprintf(other, sizeof(other), "127.0.0.1:%d", port2);
	assert_int_equal(proxy_listen(f->p, "app", other, 5000, 0), 0);
	assert_int_equal(try_connect(f->port), -1);
	fd = try_connect(port2);
	assert_true(fd >= 0);
	assert_int_equal(landed(fd), 1);
	close(fd);

	/* An address that cannot be bound is an error naming it. */
	want = ud_asprintf("cannot listen on %s", other);
	assert_int_equal(proxy_listen(f->p, "second", other, 5000, 0),
			 UD_ERROR);
	assert_non_null(strstr(ud_error_last(), want));
	free(want);
	assert_true(proxy_listen(f->p, "third", "nonsense", 5000, 0) < 0);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_refused_backend(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	struct proxy_backend pb[2] = { { 0 } };
	int dead, fd, i;

	assert_int_equal(ud_net_free_port(&dead), 0);
	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);

	/* Only a dead backend (it crashed and its owner was not told yet):
	 * the client is held, not closed, the owner is asked for an
	 * instance, and the next ready backend takes it. */
	pb[0].id = 9;
	pb[0].port = dead;
	pb[1].id = 1;
	pb[1].port = b->port;
	proxy_set_backends(f->p, "app", pb, 1);
	fd = client(f);
	assert_true(wait_held(f, "app", 1));
	assert_int_equal(demands(f, 1).demands, 1);
	assert_true(wait_for(f, "app", 9, 0));
	proxy_set_backends(f->p, "app", &pb[1], 1);
	assert_int_equal(landed(fd), 1);
	close(fd);
	assert_true(wait_held(f, "app", 0));

	/* A dead and a live one: every connection ends up on the live one. */
	proxy_set_backends(f->p, "app", pb, 2);
	for (i = 0; i < 4; i++) {
		fd = client(f);
		assert_int_equal(landed(fd), 1);
		assert_int_equal(proxy_active(f->p, "app", 9), 0);
		close(fd);
	}
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_concurrency_demand(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	struct seen seen;
	int c1, c2;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 2), 0);
	set_one(f, "app", b);
	c1 = client(f);
	assert_int_equal(landed(c1), 1);
	assert_int_equal(demands(f, 0).demands, 0);
	/* The second connection fills the only instance. */
	c2 = client(f);
	assert_int_equal(landed(c2), 1);
	seen = demands(f, 1);
	assert_int_equal(seen.demands, 1);
	assert_string_equal(seen.app, "app");
	assert_int_equal(seen.waiting, 0);
	close(c1);
	close(c2);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

/* Hold n clients (no backend yet), each sending "c<i>". */
static void hold_clients(struct fixture *f, int *fd, int n)
{
	char msg[16];
	int i;

	for (i = 0; i < n; i++) {
		fd[i] = client(f);
		snprintf(msg, sizeof(msg), "c%d\n", i);
		assert_int_equal(send_all(fd[i], msg, strlen(msg)), 0);
		assert_true(wait_held(f, "app", i + 1));
	}
}

/* Client i landed on backend `id` and its bytes went through. */
static void expect_landed(int fd, int i, int id)
{
	char msg[16];

	assert_int_equal(landed(fd), id);
	snprintf(msg, sizeof(msg), "c%d", i);
	expect_line(fd, msg);
}

/* Backends that appear together share the held connections. */
static void test_held_spread_at_once(void **state)
{
	struct fixture *f = *state;
	struct backend *b[3];
	struct proxy_backend pb[3];
	int fd[6], i;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 2), 0);
	for (i = 0; i < 3; i++) {
		b[i] = backend_start(i + 1, ECHO);
		pb[i] = (struct proxy_backend){ .id = i + 1,
						.port = b[i]->port };
	}
	hold_clients(f, fd, 6);
	proxy_set_backends(f->p, "app", pb, 3);
	for (i = 0; i < 3; i++)
		assert_true(wait_for(f, "app", i + 1, 2));
	assert_true(wait_held(f, "app", 0));
	for (i = 0; i < 6; i++)
		close(fd[i]);
	for (i = 0; i < 3; i++) {
		assert_true(wait_for(f, "app", i + 1, 0));
		backend_stop(b[i]);
	}
}

/*
 * Issue 15: instances that become ready one after the other. The first
 * used to take every held connection (all of them for its whole life)
 * while the later ones idled. Now, while the owner says more are booting,
 * each takes `concurrency` (FIFO) and the rest wait for the next; once
 * nothing more is coming, a full instance takes what is left.
 */
static void test_held_spread_as_they_come(void **state)
{
	struct fixture *f = *state;
	struct backend *b[3];
	struct proxy_backend pb[3];
	struct seen seen;
	int fd[8], i;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 2), 0);
	for (i = 0; i < 3; i++) {
		b[i] = backend_start(i + 1, ECHO);
		pb[i] = (struct proxy_backend){ .id = i + 1,
						.port = b[i]->port };
	}
	/* The owner boots three for the first connections; the first
	 * becomes ready (backends first, then the smaller count: the other
	 * way round there would be a moment with nothing coming). */
	proxy_set_booting(f->p, "app", 3);
	hold_clients(f, fd, 7);
	proxy_set_backends(f->p, "app", pb, 1);
	proxy_set_booting(f->p, "app", 2);
	expect_landed(fd[0], 0, 1);
	expect_landed(fd[1], 1, 1);
	assert_true(wait_held(f, "app", 5));
	assert_int_equal(proxy_active(f->p, "app", 1), 2);
	/* The owner hears that they still wait. */
	seen = demands(f, 1);
	assert_true(seen.demands >= 1);
	/* A newcomer queues behind them rather than fill the full one. */
	fd[7] = client(f);
	assert_int_equal(send_all(fd[7], "c7\n", 3), 0);
	assert_true(wait_held(f, "app", 6));

	proxy_set_backends(f->p, "app", pb, 2);
	proxy_set_booting(f->p, "app", 1);
	expect_landed(fd[2], 2, 2);
	expect_landed(fd[3], 3, 2);
	assert_true(wait_held(f, "app", 4));
	assert_int_equal(proxy_active(f->p, "app", 1), 2);
	assert_int_equal(proxy_active(f->p, "app", 2), 2);

	/* A connection that ends makes room for the oldest waiting. */
	close(fd[0]);
	expect_landed(fd[4], 4, 1);
	assert_true(wait_held(f, "app", 3));

	proxy_set_backends(f->p, "app", pb, 3);
	proxy_set_booting(f->p, "app", 0);
	expect_landed(fd[5], 5, 3);
	expect_landed(fd[6], 6, 3);
	/* Nothing more is coming and all three are full: the last one
	 * goes to the least loaded (round robin among equals) at once. */
	assert_true(wait_held(f, "app", 0));
	assert_true(landed(fd[7]) >= 1);
	expect_line(fd[7], "c7");
	assert_int_equal(proxy_active(f->p, "app", 1) +
				 proxy_active(f->p, "app", 2) +
				 proxy_active(f->p, "app", 3), 7);
	for (i = 1; i < 8; i++)
		close(fd[i]);
	for (i = 0; i < 3; i++) {
		assert_true(wait_for(f, "app", i + 1, 0));
		backend_stop(b[i]);
	}
}

/* Full, and the owner boots nothing more (max_instances): held
 * connections go to the full instance at once, not wait for hold_ms. */
static void test_held_full_nothing_coming(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	int fd[3], i;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 1), 0);
	hold_clients(f, fd, 3);
	set_one(f, "app", b);
	for (i = 0; i < 3; i++)
		expect_landed(fd[i], i, 1);
	assert_int_equal(proxy_active(f->p, "app", 1), 3);
	for (i = 0; i < 3; i++)
		close(fd[i]);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

/* Past hold_ms a connection waiting for a booting instance takes a full
 * one rather than be closed. */
static void test_held_full_deadline(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	int fd[2];

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 200, 1), 0);
	proxy_set_booting(f->p, "app", 2);
	hold_clients(f, fd, 2);
	set_one(f, "app", b);
	proxy_set_booting(f->p, "app", 1);
	expect_landed(fd[0], 0, 1);
	/* The booting one never comes. */
	expect_landed(fd[1], 1, 1);
	assert_int_equal(proxy_active(f->p, "app", 1), 2);
	close(fd[0]);
	close(fd[1]);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(b);
}

static void test_stop_with_connections(void **state)
{
	struct fixture *f = *state;
	struct backend *b = backend_start(1, ECHO);
	int fd, held;

	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	assert_int_equal(proxy_listen(f->p, "idle", "127.0.0.1:0", 60000, 0),
			 0);
	set_one(f, "app", b);
	fd = client(f);
	assert_int_equal(landed(fd), 1);
	proxy_unlisten(f->p, "app");
	proxy_set_backends(f->p, "app", NULL, 0);
	assert_int_equal(proxy_listen(f->p, "app", f->addr, 60000, 0), 0);
	held = client(f);
	assert_true(wait_held(f, "app", 1));
	/* Stopping closes both, and frees all (ASan checks). */
	proxy_stop(f->p);
	f->p = NULL;
	expect_eof(fd);
	expect_eof(held);
	close(fd);
	close(held);
	backend_stop(b);
}

/* --- HTTP mode: requests of a kept-alive connection routed one by one --- */

static void read_exact(int fd, char *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, buf + got, n - got);
		assert_true(r > 0); /* not EOF, not a timeout */
		got += r;
	}
}

/* The head of a response, up to its blank line, and its Content-Length. */
static size_t read_head(int fd, char *head, size_t max)
{
	size_t len = 0;
	char *cl;

	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4)) {
		assert_true(len + 1 < max);
		read_exact(fd, head + len, 1);
		len++;
	}
	head[len] = 0;
	cl = strstr(head, "Content-Length: ");
	return cl ? strtoul(cl + 16, NULL, 10) : 0;
}

/* Send a request and return the body of its answer, without its "\n". */
static char *http_ask(int fd, const char *req)
{
	char head[1024], *body;
	size_t n;

	assert_int_equal(send_all(fd, req, strlen(req)), 0);
	n = read_head(fd, head, sizeof(head));
	assert_true(!strncmp(head, "HTTP/1.1 200 ", 13));
	assert_true(n > 0);
	body = calloc(1, n + 1);
	read_exact(fd, body, n);
	body[n - 1] = 0;
	return body;
}

static void expect_answer(int fd, const char *req, const char *want)
{
	char *got = http_ask(fd, req);

	assert_string_equal(got, want);
	free(got);
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"

static void http_listen(struct fixture *f)
{
	proxy_set_http(f->p, "app", 1);
	assert_int_equal(proxy_listen(f->p, "app", f->addr, 5000, 0), 0);
}

/* After a swap the next request of a kept-alive client goes to the new
 * backend; an idle client lets go of the old one at once. */
static void test_http_moves_keepalive(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, HTTP);
	struct backend *b = backend_start(2, HTTP);
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	expect_answer(fd, GET("/"), "B1.0 0 0");
	expect_answer(fd, GET("/"), "B1.0 1 0"); /* the same connection */

	set_one(f, "app", b);
	assert_true(wait_for(f, "app", 1, 0));
	expect_answer(fd, GET("/"), "B2.0 0 0");
	expect_answer(fd, "POST /p HTTP/1.1\r\nHost: t\r\n"
		      "Content-Length: 5\r\n\r\nhello", "B2.0 1 5");
	expect_answer(fd, "POST /c HTTP/1.1\r\nHost: t\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n"
		      "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "B2.0 2 23");
	/* And back: the connection follows every swap. */
	set_one(f, "app", a);
	expect_answer(fd, GET("/"), "B1.1 0 0");
	close(fd);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(a);
	backend_stop(b);
}

/* A request in flight during a swap finishes on its backend, and only then
 * does the connection move. */
static void test_http_in_flight(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, HTTP);
	struct backend *b = backend_start(2, HTTP);
	char head[1024], body[16];
	size_t n;
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	assert_int_equal(send_all(fd, GET("/slow"), strlen(GET("/slow"))), 0);
	n = read_head(fd, head, sizeof(head));
	assert_int_equal(n, 9);
	read_exact(fd, body, 3); /* the answer has begun */

	set_one(f, "app", b);
	/* Another client goes to the new backend meanwhile. */
	{
		int other = client(f);

		expect_answer(other, GET("/"), "B2.0 0 0");
		close(other);
	}
	assert_int_equal(proxy_active(f->p, "app", 1), 1);
	assert_int_equal(write(a->gate[1], "g", 1), 1);
	read_exact(fd, body + 3, n - 3);
	assert_memory_equal(body, "B1.0 0 0\n", 9);
	assert_true(wait_for(f, "app", 1, 0));
	expect_answer(fd, GET("/"), "B2.1 0 0");
	close(fd);
	backend_stop(a);
	backend_stop(b);
}

/* Bodies larger than the proxy's buffers, both ways, then a swap. */
static void test_http_large(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, HTTP);
	struct backend *b = backend_start(2, HTTP);
	char head[1024], want[32], *big = malloc(BIG), *got = malloc(REPLY);
	size_t i, n;
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	n = snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: t\r\n"
		     "Content-Length: %d\r\n\r\n", BIG);
	assert_int_equal(send_all(fd, head, n), 0);
	for (i = 0; i < BIG; i++)
		big[i] = (char)pattern(i);
	assert_int_equal(send_all(fd, big, BIG), 0);
	snprintf(want, sizeof(want), "B1.0 0 %d", BIG);
	expect_answer(fd, "", want);

	assert_int_equal(send_all(fd, GET("/big"), strlen(GET("/big"))), 0);
	assert_int_equal(read_head(fd, head, sizeof(head)), REPLY);
	read_exact(fd, got, REPLY);
	for (i = 0; i < REPLY; i++)
		if ((unsigned char)got[i] != pattern(i))
			fail_msg("byte %zu differs", i);

	set_one(f, "app", b);
	expect_answer(fd, GET("/"), "B2.0 0 0");
	close(fd);
	free(big);
	free(got);
	backend_stop(a);
	backend_stop(b);
}

/* Pipelined requests are answered in order, one after the other. */
static void test_http_pipelined(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, HTTP);
	char *got;
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	assert_int_equal(send_all(fd, GET("/1") GET("/2") GET("/3"),
				  3 * strlen(GET("/1"))), 0);
	got = http_ask(fd, "");
	assert_string_equal(got, "B1.0 0 0");
	free(got);
	expect_answer(fd, "", "B1.0 1 0");
	expect_answer(fd, "", "B1.0 2 0");
	close(fd);
	backend_stop(a);
}

/* A backend that closes an idle kept-alive connection costs the client
 * nothing: its next request gets a fresh backend connection. */
static void test_http_backend_closes_idle(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, HTTP);
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	expect_answer(fd, GET("/bye"), "B1.0 0 0");
	assert_true(wait_for(f, "app", 1, 0));
	expect_answer(fd, GET("/"), "B1.1 0 0");
	close(fd);
	backend_stop(a);
}

/* An upgraded connection is plain TCP from then on: it stays on its
 * backend across a swap. */
static void test_http_upgrade_tunnels(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, HTTP);
	struct backend *b = backend_start(2, HTTP);
	const char *req = "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade"
			  "\r\nUpgrade: echo\r\n\r\n";
	char head[1024];
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	assert_int_equal(send_all(fd, req, strlen(req)), 0);
	read_head(fd, head, sizeof(head));
	assert_true(!strncmp(head, "HTTP/1.1 101 ", 13));
	set_one(f, "app", b);
	assert_int_equal(send_all(fd, "ping\n", 5), 0);
	expect_line(fd, "ping");
	assert_int_equal(proxy_active(f->p, "app", 1), 1);
	close(fd);
	assert_true(wait_for(f, "app", 1, 0));
	backend_stop(a);
	backend_stop(b);
}

/* What is not HTTP (a backend that speaks first, a client line that is no
 * request) passes as plain TCP. */
static void test_http_not_http(void **state)
{
	struct fixture *f = *state;
	struct backend *a = backend_start(1, ECHO);
	int fd;

	http_listen(f);
	set_one(f, "app", a);
	fd = client(f);
	assert_int_equal(landed(fd), 1);
	assert_int_equal(send_all(fd, "hello\n", 6), 0);
	expect_line(fd, "hello");
	close(fd);
	assert_true(wait_for(f, "app", 1, 0));
	fd = client(f);
	assert_int_equal(send_all(fd, "\x16\x03\x01\n", 4), 0);
	assert_int_equal(landed(fd), 1);
	expect_line(fd, "\x16\x03\x01");
	close(fd);
	backend_stop(a);
}

/* --- HTTP boundaries (proxy_http.c) --- */

struct hcase {
	const char *name;
	int response, head;
	const char *in;
	enum proxy_http_result want;
	size_t tail; /* bytes not this message's (or not yet usable) */
};

static const struct hcase hcases[] = {
	{ "GET, no body, next request follows", 0, 0,
	  "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n",
	  PROXY_HTTP_DONE, 17 },
	{ "POST with Content-Length", 0, 0,
	  "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET",
	  PROXY_HTTP_DONE, 3 },
	{ "POST body not all there yet", 0, 0,
	  "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello",
	  PROXY_HTTP_MORE, 0 },
	{ "chunked request with extension and trailers", 0, 0,
	  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Two: 2\r\n\r\nNEXT",
	  PROXY_HTTP_DONE, 4 },
	{ "header block not whole yet", 0, 0,
	  "GET / HTTP/1.1\r\nHost: a\r\n",
	  PROXY_HTTP_MORE, 25 },
	{ "HTTP/1.0 with keep-alive", 0, 0,
	  "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	  PROXY_HTTP_DONE, 0 },
	{ "response with Content-Length", 1, 0,
	  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	  PROXY_HTTP_DONE, 0 },
	{ "chunked response with trailer", 1, 0,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "3\r\nabc\r\nA\r\n0123456789\r\n0\r\nEtag: x\r\n\r\n",
	  PROXY_HTTP_DONE, 0 },
	{ "204 has no body", 1, 0,
	  "HTTP/1.1 204 No Content\r\n\r\n", PROXY_HTTP_DONE, 0 },
	{ "304 has no body despite its length", 1, 0,
	  "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
	  PROXY_HTTP_DONE, 0 },
	{ "the answer to HEAD has no body", 1, 1,
	  "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
	  PROXY_HTTP_DONE, 0 },
	{ "100 Continue, then the final answer", 1, 0,
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
	  "Content-Length: 0\r\n\r\n",
	  PROXY_HTTP_DONE, 0 },
	{ "status line without a reason", 1, 0,
	  "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	  PROXY_HTTP_DONE, 0 },
	/* Everything else: plain TCP. */
	{ "close-delimited response", 1, 0,
	  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "response that closes", 1, 0,
	  "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "101 Switching Protocols", 1, 0,
	  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "websocket upgrade request", 0, 0,
	  "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "CONNECT", 0, 0, "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "HTTP/2 preface", 0, 0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "HTTP/1.0 without keep-alive", 0, 0, "GET / HTTP/1.0\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "request asking to close", 0, 0,
	  "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", PROXY_HTTP_TUNNEL, 0 },
	{ "TLS hello (binary)", 0, 0, "\x16\x03\x01\x02", PROXY_HTTP_TUNNEL, 0 },
	{ "bare LF", 0, 0, "GET / HTTP/1.1\nHost: a\n\n", PROXY_HTTP_TUNNEL, 0 },
	{ "folded header", 0, 0, "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "space before the colon", 0, 0,
	  "GET / HTTP/1.1\r\nContent-Length : 1\r\n\r\nx", PROXY_HTTP_TUNNEL, 0 },
	{ "two different lengths", 0, 0,
	  "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "length with a sign", 0, 0,
	  "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", PROXY_HTTP_TUNNEL, 0 },
	{ "length and chunked", 0, 0,
	  "POST / HTTP/1.1\r\nContent-Length: 1\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", PROXY_HTTP_TUNNEL, 0 },
	{ "gzip, chunked", 0, 0,
	  "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	  PROXY_HTTP_TUNNEL, 0 },
	{ "bad chunk size", 0, 0,
	  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	  PROXY_HTTP_TUNNEL, 47 },
	{ "chunk size past 2^60", 0, 0,
	  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "1000000000000000\r\n", PROXY_HTTP_TUNNEL, 47 },
	{ "chunk data not ended by CRLF", 0, 0,
	  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab",
	  PROXY_HTTP_TUNNEL, 51 },
	{ "HTTP/1.2", 0, 0, "GET / HTTP/1.2\r\n\r\n", PROXY_HTTP_TUNNEL, 0 },
};

static void test_http_cases(void **state)
{
	size_t i, used, n, off, u;
	enum proxy_http_result r;
	struct proxy_http m;

	(void)state;
	for (i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++) {
		const struct hcase *c = &hcases[i];

		n = strlen(c->in);
		print_message("%s\n", c->name);
		if (c->response)
			proxy_http_response(&m, c->head);
		else
			proxy_http_request(&m);
		r = proxy_http_feed(&m, c->in, n, &used);
		assert_int_equal(r, c->want);
		if (r == PROXY_HTTP_TUNNEL)
			assert_non_null(m.why);
		else
			assert_int_equal(used, n - c->tail);

		/* The same bytes in pieces of one: the same answer, as the
		 * caller keeps what was not used and feeds it with more. */
		if (c->response)
			proxy_http_response(&m, c->head);
		else
			proxy_http_request(&m);
		for (off = 0, u = 0, r = PROXY_HTTP_MORE;
		     r == PROXY_HTTP_MORE && u < n; u++) {
			r = proxy_http_feed(&m, c->in + off, u + 1 - off,
					    &used);
			off += used;
		}
		if (c->want == PROXY_HTTP_MORE)
			assert_int_equal(r, PROXY_HTTP_MORE);
		else
			assert_int_equal(r, c->want);
		if (r != PROXY_HTTP_TUNNEL)
			assert_int_equal(off, n - c->tail);
	}
}

/* A header block past the cap, and a chunk line past its own. */
static void test_http_limits(void **state)
{
	struct ud_buf b = UD_BUF_INIT;
	struct proxy_http m;
	size_t used;

	(void)state;
	ud_buf_puts(&b, "GET / HTTP/1.1\r\n");
	while (b.size < PROXY_HTTP_HEADER_MAX)
		ud_buf_puts(&b, "X-Filler: 0123456789abcdef\r\n");
	proxy_http_request(&m);
	assert_int_equal(proxy_http_feed(&m, b.ptr, b.size, &used),
			 PROXY_HTTP_TUNNEL);
	assert_string_equal(m.why, "header block too large");

	ud_buf_clear(&b);
	ud_buf_puts(&b, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;");
	while (b.size < 47 + PROXY_HTTP_LINE_MAX)
		ud_buf_puts(&b, "e=x;");
	proxy_http_request(&m);
	assert_int_equal(proxy_http_feed(&m, b.ptr, b.size, &used),
			 PROXY_HTTP_TUNNEL);
	assert_int_equal(used, 47);
	ud_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_cases),
		cmocka_unit_test(test_http_limits),
		cmocka_unit_test_setup_teardown(test_http_moves_keepalive, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_pipelined, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_backend_closes_idle, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_upgrade_tunnels, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_not_http, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_moves_keepalive,
						setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_http_in_flight,
						setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_http_large, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_large, setup_copy,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_moves_keepalive,
						setup_shared, teardown),
		cmocka_unit_test_setup_teardown(test_large_echo, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_small_and_bulk, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_half_close, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_then_served, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_in_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_expires, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drop_held, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_switch_backends, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_active_exact, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_least_loaded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stalled_clients, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unlisten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_again, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refused_backend, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_demand, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_spread_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_spread_as_they_come,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_full_nothing_coming,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_full_deadline,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_connections,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_echo, setup_copy,
						teardown),
		cmocka_unit_test_setup_teardown(test_small_and_bulk,
						setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_half_close, setup_copy,
						teardown),
		cmocka_unit_test_setup_teardown(test_stalled_clients,
						setup_copy, teardown),
		cmocka_unit_test_setup_teardown(test_large_echo, setup_shared,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_then_served,
						setup_shared, teardown),
		cmocka_unit_test_setup_teardown(test_held_spread_as_they_come,
						setup_shared, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_demand,
						setup_shared, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
