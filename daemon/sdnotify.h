/*
 * The sd_notify protocol without libsystemd: one datagram of
 * "KEY=VALUE\n..." lines to the AF_UNIX socket named by $NOTIFY_SOCKET
 * ('@' prefix: abstract namespace). Everything is a no-op when p2pd does
 * not run under a notify-aware service manager.
 */
#ifndef P2PD_SDNOTIFY_H
#define P2PD_SDNOTIFY_H

#include <stdint.h>

/*
 * Format and send one notification ("READY=1", "STATUS=..."). Returns 1
 * when sent, 0 when $NOTIFY_SOCKET is unset, or -errno (bad socket name,
 * send failure).
 */
int p2pd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Watchdog interval in microseconds from $WATCHDOG_USEC, or 0 when the
 * watchdog is off (unset, unparsable, or $WATCHDOG_PID names another
 * process). Send "WATCHDOG=1" at about half this interval.
 */
uint64_t p2pd_watchdog_usec(void);

#endif
