/*
 * sd_notify(3) wire protocol, written out: a datagram to $NOTIFY_SOCKET.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

#define NOTIFY_MSG_MAX 1024

/* Fill sun from $NOTIFY_SOCKET; returns the address length or -errno. */
static int notify_addr(const char *name, struct sockaddr_un *sun)
{
	size_t len = strlen(name);

	if (len < 2 || len >= sizeof(sun->sun_path))
		return -EINVAL;
	/* Only paths and abstract names; vsock is not ours to speak. */
	if (name[0] != '/' && name[0] != '@')
		return -EAFNOSUPPORT;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, name, len);
	if (name[0] == '@') {
		sun->sun_path[0] = '\0';
		/* Abstract names are counted, not NUL terminated. */
		return (int)(offsetof(struct sockaddr_un, sun_path) + len);
	}
	return (int)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

static int notify_send(const char *name, const char *msg, size_t len)
{
	struct sockaddr_un sun;
	int alen = notify_addr(name, &sun);
	int fd, r = 1;

	if (alen < 0)
		return alen;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sun,
		   (socklen_t)alen) < 0)
		r = -errno;
	close(fd);
	return r;
}

int p2pd_notifyf(const char *fmt, ...)
{
	const char *name = getenv("NOTIFY_SOCKET");
	char msg[NOTIFY_MSG_MAX];
	va_list ap;
	int n;

	if (name == NULL || name[0] == '\0')
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(msg))
		return -EMSGSIZE;
	return notify_send(name, msg, (size_t)n);
}

/* Strict decimal: the whole string, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

uint64_t p2pd_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	uint64_t usec, p;

	if (parse_u64(getenv("WATCHDOG_USEC"), &usec) < 0 || usec == 0)
		return 0;
	/* The manager sets WATCHDOG_PID for the main process only. */
	if (pid != NULL && (parse_u64(pid, &p) < 0 || p != (uint64_t)getpid()))
		return 0;
	return usec;
}
