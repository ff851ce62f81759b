/*
 * health.h: is an instance ready? HTTP 2xx (libcurl), a TCP connect, or a
 * regex printed on its console, polled tightly until a deadline.
 */
#ifndef UD_HEALTH_H
#define UD_HEALTH_H

#include <stddef.h>

enum ud_health_kind { UD_HEALTH_HTTP, UD_HEALTH_TCP, UD_HEALTH_SERIAL };

struct ud_health {
	enum ud_health_kind kind;
	char *http_path;    /* UD_HEALTH_HTTP: "/health" */
	char *serial_regex; /* UD_HEALTH_SERIAL: POSIX extended regex */
	int timeout_s;      /* default 20 */
	int rollback;       /* on_failure: 1 "rollback" (default), 0 "keep" */
};

void ud_health_free(struct ud_health *h); /* frees members; accepts NULL */

/* Returns 1 to keep waiting, 0 if the instance is gone (fills why). */
typedef int (*ud_alive_fn)(void *payload, char *why, size_t whylen);

/*
 * Poll until healthy (0), until timeout_ms passes (UD_ETIMEOUT, message
 * says what the last attempt saw: "GET /health answered 503", "connection
 * refused"), or until alive() says the instance died (UD_ERROR, message
 * from alive()). host/port: where the instance listens; console_path: file
 * its console output goes to (for UD_HEALTH_SERIAL). Polls run every
 * millisecond for the first 5 s while nothing listens (readiness of a
 * summoned instance is noticed within a millisecond or two), then back off
 * to 50 ms; an HTTP check that finds the app listening but not yet healthy
 * backs off at once.
 */
int ud_health_wait(const struct ud_health *h, const char *host, int port,
		   const char *console_path, int timeout_ms,
		   ud_alive_fn alive, void *payload);

/* One attempt each; 0 healthy, else UD_ERROR with the reason. */
int ud_health_http_once(const char *host, int port, const char *path,
			int timeout_ms);
int ud_health_tcp_once(const char *host, int port, int timeout_ms);

#endif
