/*
 * Logging: one line per event on stderr. Each line is formatted into one
 * buffer and written with a single write(2) so lines from a forked child or
 * a signal path never interleave mid-line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static int log_level = LOG_LVL_INFO;
static bool log_journal; /* stderr is the journal: "<N>" prefix, no time */

/*
 * systemd sets JOURNAL_STREAM=DEV:INO for the stderr it connected to the
 * journal; a child whose stderr was redirected inherits the variable, so
 * it only counts when stderr is still that very file.
 */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_init(int level)
{
	log_set_level(level);
	log_journal = stderr_is_journal();
}

void log_set_level(int level)
{
	if (level < LOG_LVL_ERROR)
		level = LOG_LVL_ERROR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	log_level = level;
}

int log_level_parse(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
	    {"error", LOG_LVL_ERROR},
	    {"warn", LOG_LVL_WARN},
	    {"info", LOG_LVL_INFO},
	    {"debug", LOG_LVL_DEBUG},
	};

	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].level;
	return -EINVAL;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_LVL_ERROR:
		return "error";
	case LOG_LVL_WARN:
		return "warn";
	case LOG_LVL_INFO:
		return "info";
	default:
		return "debug";
	}
}

static size_t format_prefix(char *buf, size_t len, int level)
{
	struct timespec ts;
	struct tm tm;
	int n;

	if (log_journal)
		n = snprintf(buf, len, "<%d>", level);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(buf, len,
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ p2pd[%ld]: "
			     "%s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000L, (long)getpid(),
			     level_name(level));
	}
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* errnum >= 0 appends ": strerror(errnum)". */
static void log_vemit(int level, int errnum, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	size_t off;
	int n;

	if (level > log_level)
		return;
	off = format_prefix(buf, sizeof(buf), level);
	n = vsnprintf(buf + off, sizeof(buf) - off, fmt, ap);
	if (n > 0)
		off += (size_t)n < sizeof(buf) - off ? (size_t)n
						     : sizeof(buf) - off - 1;
	if (errnum >= 0 && off < sizeof(buf) - 1) {
		n = snprintf(buf + off, sizeof(buf) - off, ": %s",
			     strerror(errnum));
		if (n > 0)
			off += (size_t)n < sizeof(buf) - off
				   ? (size_t)n
				   : sizeof(buf) - off - 1;
	}
	/* A message never spans lines: the journal would split it. */
	for (size_t i = 0; i < off; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	if (off >= sizeof(buf) - 1)
		off = sizeof(buf) - 2;
	buf[off++] = '\n';
	while (write(STDERR_FILENO, buf, off) < 0 && errno == EINTR)
		;
}

#define LOG_FN(name, level, errexpr)                                           \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		int saved = errno;                                             \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vemit(level, errexpr, fmt, ap);                            \
		va_end(ap);                                                    \
		errno = saved;                                                 \
	}

LOG_FN(log_warn, LOG_LVL_WARN, saved)
LOG_FN(log_warnx, LOG_LVL_WARN, -1)
LOG_FN(log_info, LOG_LVL_INFO, -1)
LOG_FN(log_debug, LOG_LVL_DEBUG, -1)
LOG_FN(log_error, LOG_LVL_ERROR, -1)

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, -1, fmt, ap);
	va_end(ap);
	exit(1);
}

int log_ratelimit(uint64_t *last, uint64_t now_ms, uint64_t interval_ms)
{
	/*
	 * *last holds the emission time plus one, so that 0 means "never"
	 * even when the caller's clock starts at 0. A clock that went
	 * backwards lets the line through rather than muting it for good.
	 */
	if (*last != 0 && now_ms + 1 >= *last &&
	    now_ms + 1 - *last < interval_ms)
		return 0;
	*last = now_ms + 1;
	return 1;
}
