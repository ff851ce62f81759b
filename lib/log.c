#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum ud_log_level max_level = UD_LOG_INFO;
static int with_time;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *names[] = { "error", "warn", "info", "debug" };

/* A process that forks while another thread logs (the agent fetches in
 * a child, lib/repo_remote.c) must not hand the child a lock it can never
 * take: hold it across fork, release it on both sides. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void fork_release(void)
{
	pthread_mutex_unlock(&lock);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_safe(void)
{
	pthread_atfork(fork_prepare, fork_release, fork_release);
}

void ud_log_init(enum ud_log_level level, int timestamps)
{
	max_level = level;
	with_time = timestamps;
	pthread_once(&fork_once, fork_safe);
}

void ud_log(enum ud_log_level level, const char *fmt, ...)
{
	char stamp[21];
	va_list ap;

	if (level > max_level)
		return;
	pthread_mutex_lock(&lock);
	if (with_time) {
		ud_utc_now(stamp);
		fprintf(stderr, "%s %s ", stamp, names[level]);
	}
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&lock);
}

long long ud_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ud_utc_now(char out[21])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
