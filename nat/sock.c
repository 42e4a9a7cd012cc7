/*
 * Socket helpers for NAT traversal (see nat.h): plain POSIX, no event
 * loop. The daemon hands the descriptors to libuv.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
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

/* ---- who holds a four-tuple (nat.h) ---- */

/* A sock_diag reply buffer: many answers fit in one read. */
#define SOCK_DIAG_BUF 16384

/* Whether m is the socket lport -> remote (v4: 4 bytes, v6: 16). */
static bool diag_match(const struct inet_diag_msg *m, uint16_t lport,
		       const struct sockaddr *remote)
{
	if (remote->sa_family == AF_INET) {
		const struct sockaddr_in *r =
		    (const struct sockaddr_in *)remote;
		return m->id.idiag_sport == htons(lport) &&
		       m->id.idiag_dport == r->sin_port &&
		       !memcmp(m->id.idiag_dst, &r->sin_addr, 4);
	}
	const struct sockaddr_in6 *r6 = (const struct sockaddr_in6 *)remote;
	return m->id.idiag_sport == htons(lport) &&
	       m->id.idiag_dport == r6->sin6_port &&
	       !memcmp(m->id.idiag_dst, &r6->sin6_addr, 16);
}

/* Read the dump's answers: the matching socket's state (its message in
 * *out when out), -ENOENT at the end without one, or -errno. */
static int diag_read(int fd, uint16_t lport, const struct sockaddr *remote,
		     struct inet_diag_msg *out)
{
	uint8_t buf[SOCK_DIAG_BUF] __attribute__((aligned(8)));
	int found = -ENOENT;

	for (;;) {
		ssize_t k = recv(fd, buf, sizeof(buf), 0);
		if (k < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf;
		     NLMSG_OK(h, (size_t)k); h = NLMSG_NEXT(h, k)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			if (h->nlmsg_type == NLMSG_DONE)
				return found;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				return e->error < 0 ? e->error : -EIO;
			}
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(*m)) &&
			    found == -ENOENT && diag_match(m, lport, remote)) {
				found = m->idiag_state;
				if (out)
					*out = *m;
			}
		}
	}
}

/* The kernel's answer to a request with NLM_F_ACK: an NLMSG_ERROR whose
 * error is 0 (done) or -errno (EPERM without CAP_NET_ADMIN). */
static int diag_ack(int fd)
{
	uint8_t buf[1024] __attribute__((aligned(8)));
	ssize_t k = recv(fd, buf, sizeof(buf), 0);
	const struct nlmsghdr *h = (const struct nlmsghdr *)buf;

	if (k < 0)
		return -errno;
	if (!NLMSG_OK(h, (size_t)k) || h->nlmsg_type != NLMSG_ERROR ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
		return -EIO;
	return ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
}

/* One sock_diag request of type (a dump, or SOCK_DESTROY of one socket)
 * on a fresh socket: the dump's match as diag_read, or the kernel's
 * answer to the destroy (0 or -errno). */
static int diag_ask(uint16_t type, const struct sockaddr *remote,
		    const struct inet_diag_sockid *id, uint16_t lport,
		    struct inet_diag_msg *out)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {.nlh = {.nlmsg_len = sizeof(req), .nlmsg_type = type},
		 .r = {.sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u}};
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	int fd, rc;

	if (!remote ||
	    (remote->sa_family != AF_INET && remote->sa_family != AF_INET6))
		return -EAFNOSUPPORT;
	req.r.sdiag_family = (uint8_t)remote->sa_family;
	req.nlh.nlmsg_flags =
	    NLM_F_REQUEST | (type == SOCK_DESTROY ? NLM_F_ACK : NLM_F_DUMP);
	if (id)
		req.r.id = *id;
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel,
		   sizeof(kernel)) < 0)
		rc = -errno;
	else if (type == SOCK_DESTROY)
		rc = diag_ack(fd);
	else
		rc = diag_read(fd, lport, remote, out);
	close(fd);
	return rc;
}

int p2p_nat_sock_tuple_state(uint16_t lport, const struct sockaddr *remote)
{
	return diag_ask(SOCK_DIAG_BY_FAMILY, remote, NULL, lport, NULL);
}

int p2p_nat_sock_drop_stale_syn(uint16_t lport, const struct sockaddr *remote)
{
	struct inet_diag_msg m;
	int st = diag_ask(SOCK_DIAG_BY_FAMILY, remote, NULL, lport, &m);

	if (st < 0)
		return st;
	if (st != TCP_SYN_RECV)
		return -ENOENT;
	if (m.idiag_retrans == 0)
		return -EBUSY; /* its SYN-ACK may still be answered */
	return diag_ask(SOCK_DESTROY, remote, &m.id, lport, NULL);
}

const char *p2p_nat_tcp_state_name(int state)
{
	static const char *const names[] = {[TCP_ESTABLISHED] = "ESTABLISHED",
					    [TCP_SYN_SENT] = "SYN_SENT",
					    [TCP_SYN_RECV] = "SYN_RECV",
					    [TCP_FIN_WAIT1] = "FIN_WAIT1",
					    [TCP_FIN_WAIT2] = "FIN_WAIT2",
					    [TCP_TIME_WAIT] = "TIME_WAIT",
					    [TCP_CLOSE] = "CLOSE",
					    [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
					    [TCP_LAST_ACK] = "LAST_ACK",
					    [TCP_LISTEN] = "LISTEN",
					    [TCP_CLOSING] = "CLOSING"};

	if (state <= 0 || (size_t)state >= sizeof(names) / sizeof(names[0]) ||
	    !names[state])
		return "?";
	return names[state];
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

/* ---- the NAT depth probe (nat.h) ---- */

int p2p_nat_sock_probe_open(void)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int p2p_nat_sock_probe_send(int fd, const struct sockaddr *dst, socklen_t len,
			    int ttl)
{
	uint8_t payload[4] = {'p', '2', 'p', (uint8_t)ttl};

	if (ttl < 1 || ttl > 255 || !dst || dst->sa_family != AF_INET)
		return -EINVAL;
	if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0)
		return -errno;
	/* With IP_RECVERR the answer to an earlier probe (queued for
	 * probe_read) is also reported by the next send, which then sends
	 * nothing: that is no failure of this probe, try it again. */
	for (int tries = 0;; tries++) {
		if (sendto(fd, payload, sizeof(payload), 0, dst, len) >= 0)
			return 0;
		if (tries == 3 ||
		    (errno != EHOSTUNREACH && errno != ENETUNREACH &&
		     errno != ECONNREFUSED && errno != EHOSTDOWN))
			return -errno;
	}
}

int p2p_nat_sock_probe_read(int fd, int *ttl, struct p2p_addr *offender)
{
	uint8_t data[16], ctl[512];
	struct sockaddr_in from;
	struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
	struct msghdr mh = {.msg_name = &from,
			    .msg_namelen = sizeof(from),
			    .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};

	for (;;) {
		ssize_t k = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (k < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0
								       : -errno;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			struct sock_extended_err *ee;
			const struct sockaddr_in *off;
			if (c->cmsg_level != IPPROTO_IP ||
			    c->cmsg_type != IP_RECVERR)
				continue;
			ee = (struct sock_extended_err *)CMSG_DATA(c);
			/* Time exceeded in transit, about our own probe. */
			if (ee->ee_origin != SO_EE_ORIGIN_ICMP ||
			    ee->ee_type != 11 || k != 4 || data[0] != 'p' ||
			    data[1] != '2' || data[2] != 'p')
				continue;
			off = (const struct sockaddr_in *)SO_EE_OFFENDER(ee);
			if (off->sin_family != AF_INET)
				continue;
			memset(offender, 0, sizeof(*offender));
			offender->family = 4;
			memcpy(offender->ip, &off->sin_addr, 4);
			*ttl = data[3];
			return 1;
		}
		/* Something else (port unreachable from the far end): the
		 * next one. */
		mh.msg_namelen = sizeof(from);
		mh.msg_controllen = sizeof(ctl);
	}
}
