/*
 * proxy.h: the agent's front door. For each placed app the agent listens on
 * the placement's `listen` address and forwards every connection to one of
 * the app's ready instances (127.0.0.1:<port>, or a VM's own address). Switching the set of
 * backends never breaks a connection already open, which is what makes a
 * swap zero-downtime: new connections go to the new instance while the old
 * one drains. In HTTP mode (proxy_set_http) an open connection's next
 * request goes to the new set too; in plain TCP mode it stays where it is.
 *
 * The proxy runs on an event loop (lib/evloop.h): its own, on a thread of
 * its own, or the caller's, shared with the daemon's other parts. Every
 * function here is safe to call from other threads and from the loop's.
 *
 * A connection that arrives while an app has no ready backend is held
 * (accepted and queued, never refused) for up to hold_ms, and on_demand is
 * called so the owner can start an instance (summon mode); when backends
 * appear the held connections are forwarded; past hold_ms they are closed.
 *
 * Connections, held ones included, go to the ready backend with the fewest
 * open connections. While the owner says instances are booting
 * (proxy_set_booting) and every ready backend has `concurrency`
 * connections, a connection waits for them (up to hold_ms, then it takes
 * the least loaded backend after all) rather than pile onto a full one.
 */
#ifndef UD_AGENT_PROXY_H
#define UD_AGENT_PROXY_H

#include <stddef.h>
#include <stdint.h>

struct proxy;
struct ud_evloop;

struct proxy_backend {
	int id;        /* the instance's id, for proxy_active() */
	uint32_t addr; /* its IPv4 address (host order); 0: 127.0.0.1 */
	int port;      /* it listens on addr:port */
};

/* Called from the loop's thread, without the proxy's lock held, when a
 * connection for `app` arrives (or is waiting) and there is no ready
 * backend, or when every backend has `concurrency` connections or more.
 * Must not block. */
typedef void (*proxy_demand_fn)(const char *app, size_t waiting,
				void *payload);

/* loop NULL: the proxy makes a loop and runs it on a thread of its own
 * (every signal blocked there). Otherwise it registers on `loop`, which
 * the caller runs (on a thread that blocks SIGPIPE or ignores it: splice
 * raises it) and frees after proxy_stop. UD_ERROR if the loop or thread
 * cannot be made. */
int proxy_start(struct proxy **out, struct ud_evloop *loop,
		proxy_demand_fn on_demand, void *payload);
/* Close every listener and connection, stop and join its own thread (if
 * it has one), free. With the caller's loop, call it on the loop's thread
 * or once the loop no longer runs. NULL is fine. */
void proxy_stop(struct proxy *p);
/* The loop the proxy runs on (its own or the caller's). */
struct ud_evloop *proxy_loop(struct proxy *p);

/* Listen for app on addr ("127.0.0.1:8080"). Idempotent for the same
 * addr; a different addr replaces the listener. UD_ERROR if the address
 * cannot be bound (message names it). hold_ms: how long a connection may
 * wait for a backend; concurrency: 0 = unlimited (see proxy_demand_fn). */
int proxy_listen(struct proxy *p, const char *app, const char *addr,
		 int hold_ms, int concurrency);
/* Stop listening for app and close its held connections; connections
 * already forwarded run to their end. */
void proxy_unlisten(struct proxy *p, const char *app);

/* Replace app's set of ready backends. Connections go to the backend
 * with the fewest open connections. */
void proxy_set_backends(struct proxy *p, const char *app,
			const struct proxy_backend *b, size_t n);
/*
 * HTTP mode for app's connections accepted from now on (on: 1), for apps
 * that speak HTTP/1.x (an `http` health check). The proxy follows each
 * request and its answer (proxy_http.h) and chooses a backend per request:
 * the one the connection has, unless it left the app's set, so after
 * proxy_set_backends the next request of a kept-alive client goes to the
 * new set, a request in flight ends where it began, and a connection to a
 * backend that left the set is closed only between answers (at once for
 * idle ones). A connection it cannot follow (Upgrade, CONNECT, HTTP/2,
 * Connection: close, a body delimited by close, a parse error) goes on as
 * plain TCP to the backend it has. Off (the default): plain TCP.
 */
void proxy_set_http(struct proxy *p, const char *app, int on);

/* How many more of app's instances are booting (will be in a later
 * proxy_set_backends): with `concurrency`, connections the ready ones
 * have no room for wait for them. 0 (the default): nothing is coming.
 * When one becomes ready, set the backends first and the smaller count
 * after: the other order has a moment with nothing coming, in which the
 * waiting connections go to the full ones. */
void proxy_set_booting(struct proxy *p, const char *app, size_t n);

/* Open connections forwarded to instance `id` of app (for draining). */
size_t proxy_active(struct proxy *p, const char *app, int id);
/* Connections for app: open (forwarded) and held (waiting). */
void proxy_counts(struct proxy *p, const char *app, size_t *open,
		  size_t *held);

/* Close app's held connections now (a boot was refused or failed and
 * nothing else will come up for them): the clients see the connection
 * closed rather than hang until hold_ms. Returns how many. */
size_t proxy_drop_held(struct proxy *p, const char *app);
/* When app's oldest held connection arrived (ud_now_ms() clock); 0 when
 * none waits. */
long long proxy_held_since(struct proxy *p, const char *app);

#endif
