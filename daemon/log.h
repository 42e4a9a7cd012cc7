/*
 * Logging, OpenBSD style: one line per event on stderr, with journald
 * "<N>" priority prefixes when stderr is the journal (JOURNAL_STREAM).
 */
#ifndef P2PD_LOG_H
#define P2PD_LOG_H

#include <stdint.h>

enum {
	LOG_LVL_ERROR = 3,
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7
};

/* level: one of the above; detects JOURNAL_STREAM itself. */
void log_init(int level);
void log_set_level(int level);
/* "error" | "warn" | "info" | "debug" -> level, -EINVAL otherwise. */
int log_level_parse(const char *s);

void log_warn(const char *fmt, ...)
    __attribute__((format(printf, 1, 2))); /* appends strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Rate limit for lines a peer can trigger: returns 1 at most once per
 * interval_ms for the same *last stamp (caller keeps one per peer/kind).
 */
int log_ratelimit(uint64_t *last, uint64_t now_ms, uint64_t interval_ms);

#endif
