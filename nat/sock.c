/*
 * Socket helpers for NAT traversal (see nat.h): plain POSIX, no event
 * loop. The daemon hands the descriptors to libuv.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nat/nat.h"

int p2p_nat_sock_reuse(int fd)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

static int sock_new(const struct sockaddr *local, bool reuseport)
{
	int fd, rc = 0, one = 1;

	if (!local ||
	    (local->sa_family != AF_INET && local->sa_family != AF_INET6))
		return -EAFNOSUPPORT;
	fd = socket(local->sa_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (reuseport)
		rc = p2p_nat_sock_reuse(fd);
	else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) <
		 0)
		rc = -errno;
	/* A v6 socket on [::]:P must not claim the v4 side of P too. */
	if (rc == 0 && local->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		rc = -errno;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int p2p_nat_sock_bound(const struct sockaddr *local, socklen_t len)
{
	int fd = sock_new(local, true);

	if (fd >= 0 && bind(fd, local, len) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int p2p_nat_sock_port_free(const struct sockaddr *local, socklen_t len)
{
	int fd = sock_new(local, false), rc = 0;

	if (fd < 0)
		return fd;
	if (bind(fd, local, len) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

bool p2p_nat_sock_retry_unbound(int err)
{
	return err == -EADDRINUSE || err == -EADDRNOTAVAIL;
}

int p2p_nat_sock_ttl(int fd, int family, int ttl)
{
	int rc;

	if (family == 4)
		rc = setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	else if (family == 6)
		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl,
				sizeof(ttl));
	else
		return -EAFNOSUPPORT;
	return rc < 0 ? -errno : 0;
}

int p2p_nat_sock_min_ttl(int fd, int family, int min_ttl)
{
	int rc;

	if (family == 4)
		rc = setsockopt(fd, IPPROTO_IP, IP_MINTTL, &min_ttl,
				sizeof(min_ttl));
	else if (family == 6)
		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &min_ttl,
				sizeof(min_ttl));
	else
		return -EAFNOSUPPORT;
	return rc < 0 ? -errno : 0;
}
