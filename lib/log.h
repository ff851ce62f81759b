/*
 * log.h: leveled logging for the agent and the pipeline (OpenBSD daemons'
 * log.c). Lines go to stderr as "<time> <level> <message>" when the
 * destination is a terminal or a file, and as plain messages for the CLI.
 */
#ifndef UD_LOG_H
#define UD_LOG_H

enum ud_log_level { UD_LOG_ERROR, UD_LOG_WARN, UD_LOG_INFO, UD_LOG_DEBUG };

/* `timestamps`: prefix lines with an ISO-8601 time (daemon mode). */
void ud_log_init(enum ud_log_level level, int timestamps);
void ud_log(enum ud_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ud_log_error(...) ud_log(UD_LOG_ERROR, __VA_ARGS__)
#define ud_log_warn(...) ud_log(UD_LOG_WARN, __VA_ARGS__)
#define ud_log_info(...) ud_log(UD_LOG_INFO, __VA_ARGS__)
#define ud_log_debug(...) ud_log(UD_LOG_DEBUG, __VA_ARGS__)

/* Milliseconds on the monotonic clock, for stage timings. */
long long ud_now_ms(void);
/* "2026-11-26T12:00:00Z" for now, into `out` (at least 21 bytes). */
void ud_utc_now(char out[21]);

#endif
