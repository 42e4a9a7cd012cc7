/* daemon/sdnotify.c: datagrams to $NOTIFY_SOCKET, watchdog settings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/sdnotify.h"

/* A datagram socket bound at name ('@' = abstract), like systemd's. */
static int listen_notify(const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	cr_assert(fd >= 0);
	strcpy(sun.sun_path, name);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			  strlen(name) + (name[0] == '@' ? 0 : 1));
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	cr_assert(bind(fd, (struct sockaddr *)&sun, len) == 0, "bind: %s",
		  strerror(errno));
	setenv("NOTIFY_SOCKET", name, 1);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[2048];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	cr_assert(n >= 0, "no datagram: %s", strerror(errno));
	buf[n] = '\0';
	cr_expect_str_eq(buf, want);
}

Test(sdnotify, unset_is_noop)
{
	unsetenv("NOTIFY_SOCKET");
	cr_expect_eq(p2pd_notifyf("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	cr_expect_eq(p2pd_notifyf("READY=1"), 0);
}

Test(sdnotify, path_socket)
{
	char path[64];

	snprintf(path, sizeof(path), "/tmp/p2pd-notify-%d", (int)getpid());
	unlink(path);
	int fd = listen_notify(path);
	cr_expect_eq(p2pd_notifyf("READY=1\nSTATUS=%d peers", 3), 1);
	expect_datagram(fd, "READY=1\nSTATUS=3 peers");
	cr_expect_eq(p2pd_notifyf("STOPPING=1"), 1);
	expect_datagram(fd, "STOPPING=1");
	close(fd);
	unlink(path);
	/* Nobody listening any more: an error, not a crash or a hang. */
	cr_expect_lt(p2pd_notifyf("WATCHDOG=1"), 0);
}

Test(sdnotify, abstract_socket)
{
	char name[64];

	snprintf(name, sizeof(name), "@p2pd-notify-test-%d", (int)getpid());
	int fd = listen_notify(name);
	cr_expect_eq(p2pd_notifyf("WATCHDOG=1"), 1);
	expect_datagram(fd, "WATCHDOG=1");
	close(fd);
}

Test(sdnotify, bad_socket_names)
{
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	cr_expect_eq(p2pd_notifyf("READY=1"), -EAFNOSUPPORT);
	setenv("NOTIFY_SOCKET", "@", 1);
	cr_expect_eq(p2pd_notifyf("READY=1"), -EINVAL);
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	cr_expect_eq(p2pd_notifyf("READY=1"), -EINVAL);
}

Test(sdnotify, watchdog)
{
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	cr_expect_eq(p2pd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	cr_expect_eq(p2pd_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	cr_expect_eq(p2pd_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	cr_expect_eq(p2pd_watchdog_usec(), 0, "meant for another process");
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "abc", 1);
	cr_expect_eq(p2pd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "-5", 1);
	cr_expect_eq(p2pd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "0", 1);
	cr_expect_eq(p2pd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "12x", 1);
	cr_expect_eq(p2pd_watchdog_usec(), 0);
}
