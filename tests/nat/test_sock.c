/* Socket helpers of nat/: real sockets on 127.0.0.1, no event loop. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nat/nat.h"

static struct sockaddr_in lo(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

/* A listener on 127.0.0.1 (any port), with or without the reuse options. */
static int listener(bool reuse, uint16_t port)
{
	struct sockaddr_in a = lo(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	if (reuse)
		cr_assert_eq(p2p_nat_sock_reuse(fd), 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

/* Non-blocking connect: 0 once connected, else -errno. */
static int connect_wait(int fd, uint16_t port)
{
	struct sockaddr_in a = lo(port);
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);

	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
	    errno != EINPROGRESS)
		return -errno;
	cr_assert_eq(poll(&p, 1, 5000), 1);
	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	return -err;
}

Test(nat_sock, dial_from_the_listen_port)
{
	int srv = listener(true, 0), peer = listener(false, 0);
	uint16_t p = port_of(srv);
	struct sockaddr_in a = lo(p);
	int fd = p2p_nat_sock_bound((struct sockaddr *)&a, sizeof(a));

	cr_assert_geq(fd, 0, "bind next to a reuse listener: %s",
		      strerror(-fd));
	cr_assert_eq(connect_wait(fd, port_of(peer)), 0);
	cr_expect_eq(port_of(fd), p, "the dial leaves from the listen port");
	/* The listener still accepts on the shared port. */
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_eq(connect_wait(c, p), 0);
	int acc = accept(srv, NULL, NULL);
	cr_expect_geq(acc, 0);
	close(acc);
	close(c);
	close(fd);
	close(peer);
	close(srv);
}

Test(nat_sock, second_link_to_same_address_asks_for_a_fresh_port)
{
	int srv = listener(true, 0), peer = listener(false, 0);
	uint16_t p = port_of(srv);
	struct sockaddr_in a = lo(p);
	int fd1 = p2p_nat_sock_bound((struct sockaddr *)&a, sizeof(a));
	int fd2 = p2p_nat_sock_bound((struct sockaddr *)&a, sizeof(a));

	cr_assert_geq(fd1, 0);
	cr_assert_geq(fd2, 0, "two dialling sockets share the port");
	cr_assert_eq(connect_wait(fd1, port_of(peer)), 0);
	int rc = connect_wait(fd2, port_of(peer));
	cr_expect_eq(rc, -EADDRNOTAVAIL, "same four-tuple: %s", strerror(-rc));
	cr_expect(p2p_nat_sock_retry_unbound(rc));
	close(fd1);
	close(fd2);
	close(peer);
	close(srv);
}

Test(nat_sock, port_of_a_plain_listener_is_refused)
{
	int plain = listener(false, 0);
	struct sockaddr_in a = lo(port_of(plain));
	int fd = p2p_nat_sock_bound((struct sockaddr *)&a, sizeof(a));

	cr_expect_eq(fd, -EADDRINUSE);
	cr_expect(p2p_nat_sock_retry_unbound(fd));
	cr_expect_eq(p2p_nat_sock_port_free((struct sockaddr *)&a, sizeof(a)),
		     -EADDRINUSE);
	close(plain);
}

Test(nat_sock, port_free_sees_a_reuse_listener)
{
	int srv = listener(true, 0);
	uint16_t p = port_of(srv);
	struct sockaddr_in a = lo(p);

	cr_expect_eq(p2p_nat_sock_port_free((struct sockaddr *)&a, sizeof(a)),
		     -EADDRINUSE, "a second daemon must not share a listener");
	close(srv);
	/* Closed: the port is free again (the probe itself holds nothing). */
	cr_expect_eq(p2p_nat_sock_port_free((struct sockaddr *)&a, sizeof(a)),
		     0);
	cr_expect_eq(p2p_nat_sock_port_free((struct sockaddr *)&a, sizeof(a)),
		     0);
}

Test(nat_sock, ipv6_socket_is_v6only)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6};
	int fd = p2p_nat_sock_bound((struct sockaddr *)&a, sizeof(a));
	int v6only = 0;
	socklen_t len = sizeof(v6only);

	if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
		cr_skip_test("no IPv6 here");
	cr_assert_geq(fd, 0, "%s", strerror(-fd));
	cr_expect_eq(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len),
		     0);
	cr_expect_eq(v6only, 1);
	close(fd);
}

Test(nat_sock, bad_family)
{
	struct sockaddr a = {.sa_family = AF_UNIX};
	cr_expect_eq(p2p_nat_sock_bound(&a, sizeof(a)), -EAFNOSUPPORT);
	cr_expect_eq(p2p_nat_sock_bound(NULL, 0), -EAFNOSUPPORT);
	cr_expect_eq(p2p_nat_sock_port_free(&a, sizeof(a)), -EAFNOSUPPORT);
	cr_expect_not(p2p_nat_sock_retry_unbound(-ECONNREFUSED));
}

static int get_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	cr_assert_eq(getsockopt(fd, level, opt, &v, &len), 0);
	return v;
}

Test(nat_sock, prime_ttl_and_min_ttl)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), def;

	cr_assert_geq(fd, 0);
	def = get_int(fd, IPPROTO_IP, IP_TTL);
	cr_expect_eq(p2p_nat_sock_ttl(fd, 4, 2), 0);
	cr_expect_eq(get_int(fd, IPPROTO_IP, IP_TTL), 2);
	cr_expect_eq(p2p_nat_sock_min_ttl(fd, 4, 2), 0);
	cr_expect_eq(get_int(fd, IPPROTO_IP, IP_MINTTL), 2);
	/* -1: the system default again; 0: no minimum. */
	cr_expect_eq(p2p_nat_sock_ttl(fd, 4, -1), 0);
	cr_expect_eq(get_int(fd, IPPROTO_IP, IP_TTL), def);
	cr_expect_eq(p2p_nat_sock_min_ttl(fd, 4, 0), 0);
	cr_expect_eq(get_int(fd, IPPROTO_IP, IP_MINTTL), 0);
	cr_expect_eq(p2p_nat_sock_ttl(fd, 5, 2), -EAFNOSUPPORT);
	cr_expect_eq(p2p_nat_sock_min_ttl(fd, 5, 2), -EAFNOSUPPORT);
	cr_expect_eq(p2p_nat_sock_ttl(fd, 4, 300), -EINVAL);
	close(fd);
}

/* What holds a four-tuple that connect() found in use. */
Test(nat_sock, tuple_state_names_the_holder)
{
	int srv = listener(true, 0), fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in s = lo(port_of(srv));
	int acc, st = -ENOENT;
	uint16_t cport;

	cr_assert_eq(connect_wait(fd, port_of(srv)), 0);
	cport = port_of(fd);
	acc = accept(srv, NULL, NULL);
	cr_assert_geq(acc, 0);
	st = p2p_nat_sock_tuple_state(cport, (struct sockaddr *)&s);
	cr_expect_eq(st, TCP_ESTABLISHED, "%d", st);
	/* Whoever closes first keeps the four-tuple in TIME_WAIT. */
	close(fd);
	close(acc);
	for (int i = 0; i < 200 && st != TCP_TIME_WAIT; i++) {
		usleep(5000);
		st = p2p_nat_sock_tuple_state(cport, (struct sockaddr *)&s);
	}
	cr_expect_eq(st, TCP_TIME_WAIT, "%d (%s)", st,
		     p2p_nat_tcp_state_name(st));
	cr_expect_str_eq(p2p_nat_tcp_state_name(st), "TIME_WAIT");
	/* Another remote port: nobody. */
	s.sin_port = htons((uint16_t)(ntohs(s.sin_port) ^ 1));
	cr_expect_eq(p2p_nat_sock_tuple_state(cport, (struct sockaddr *)&s),
		     -ENOENT);
	cr_expect_str_eq(p2p_nat_tcp_state_name(99), "?");
	cr_expect_eq(p2p_nat_sock_tuple_state(cport, NULL), -EAFNOSUPPORT);
	close(srv);
}

/*
 * A SYN our listener answered and whose SYN-ACK nobody answers, as one
 * that came in while a punch attempt gave up and whose SYN-ACKs die at
 * our NAT. In a network namespace of its own (lo, and a veth pair whose
 * far end answers nothing: 10.9.0.1 here, 192.0.2.0/24 out there), a
 * socket bound to 192.0.2.1 (not ours: IP_TRANSPARENT) sends a SYN to
 * the listener at 10.9.0.1 and is closed (which sends nothing from
 * SYN_SENT). The request holds (listener port, 192.0.2.1:40999) and
 * retransmits its SYN-ACK into the void; drop_stale_syn leaves it until
 * the first retransmit, then aborts it. Needs root (a namespace,
 * IP_TRANSPARENT, SOCK_DESTROY); CI runs it as root.
 */
Test(nat_sock, stale_syn_at_the_listener_is_dropped, .timeout = 20)
{
	struct sockaddr_in from = {.sin_family = AF_INET,
				   .sin_port = htons(40999)};
	struct sockaddr_in to = {.sin_family = AF_INET};
	int srv, c, one = 1, rc, st, tries = 0;
	uint16_t port;

	if (geteuid() != 0 && !getenv("CI"))
		cr_skip_test("needs root (a network namespace of its own)");
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
	cr_assert_eq(system("ip link set lo up && "
			    "ip link add v0 type veth peer name v1 && "
			    "ip link set v0 up && ip link set v1 up && "
			    "ip addr add 10.9.0.1/24 dev v0 && "
			    "ip route add 192.0.2.0/24 dev v0"),
		     0);
	inet_pton(AF_INET, "10.9.0.1", &to.sin_addr);
	inet_pton(AF_INET, "192.0.2.1", &from.sin_addr);
	srv = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(srv, (struct sockaddr *)&to, sizeof(to)), 0);
	cr_assert_eq(listen(srv, 8), 0);
	port = port_of(srv);
	to.sin_port = htons(port);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_eq(setsockopt(c, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)),
		     0);
	cr_assert_eq(bind(c, (struct sockaddr *)&from, sizeof(from)), 0);
	cr_assert(connect(c, (struct sockaddr *)&to, sizeof(to)) < 0 &&
		  errno == EINPROGRESS);
	usleep(100 * 1000);
	close(c);
	st = p2p_nat_sock_tuple_state(port, (struct sockaddr *)&from);
	cr_assert_eq(st, TCP_SYN_RECV, "%d (%s)", st,
		     p2p_nat_tcp_state_name(st));
	/* Its SYN-ACK has not gone out again yet: it may still be
	 * answered, so it stays. */
	cr_assert_eq(
	    p2p_nat_sock_drop_stale_syn(port, (struct sockaddr *)&from),
	    -EBUSY);
	/* The first retransmit comes after about a second. */
	do {
		usleep(50 * 1000);
		rc =
		    p2p_nat_sock_drop_stale_syn(port, (struct sockaddr *)&from);
	} while (rc == -EBUSY && ++tries < 100);
	cr_assert_eq(rc, 0, "%d (%s)", rc, strerror(-rc));
	cr_assert_eq(p2p_nat_sock_tuple_state(port, (struct sockaddr *)&from),
		     -ENOENT);
	cr_assert_eq(
	    p2p_nat_sock_drop_stale_syn(port, (struct sockaddr *)&from),
	    -ENOENT);
	close(srv);
}
