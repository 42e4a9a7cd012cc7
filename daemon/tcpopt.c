/* Congestion control of in-host hops (tcpopt.h says why). */
#include "tcpopt.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

bool tcpopt_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

const char *tcpopt_in_host(int fd)
{
	static const char *const cc[] = {"cubic", "reno"};

	for (size_t i = 0; i < sizeof(cc) / sizeof(cc[0]); i++)
		if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc[i],
			       (socklen_t)strlen(cc[i])) == 0)
			return cc[i];
	log_debug("in-host socket keeps the host's congestion control: %s",
		  strerror(errno));
	return NULL;
}

void tcpopt_before_connect(uv_tcp_t *tcp, const struct sockaddr *dst)
{
	uv_os_fd_t fd;

	if (!tcpopt_is_loopback(dst))
		return;
	if (uv_fileno((uv_handle_t *)tcp, &fd) < 0) {
		/* uv_tcp_connect would create it after the point where the
		 * choice still counts. */
		fd = socket(dst->sa_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return;
		if (uv_tcp_open(tcp, fd) < 0) {
			close(fd);
			return;
		}
	}
	tcpopt_in_host(fd);
}

void tcpopt_before_listen(uv_tcp_t *tcp)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_os_fd_t fd;

	if (uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    tcpopt_is_loopback((struct sockaddr *)&ss) &&
	    uv_fileno((uv_handle_t *)tcp, &fd) == 0)
		tcpopt_in_host(fd);
}
