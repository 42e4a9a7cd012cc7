/*
 * daemon/tcpopt: which sockets count as in-host, and that such a socket
 * (dialled, or accepted from a loopback listener) ends up with a
 * congestion control that does not pace. On a host whose default is
 * cubic the last checks hold either way; on one set to BBR (the bench
 * and CI VMs) they fail unless the option was set before the connect or
 * the listen.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/tcpopt.h"

/* The address ip (IPv4 or IPv6 text), port 0. */
static struct sockaddr_storage ip_addr(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else {
		cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1, "%s",
			     ip);
		s6->sin6_family = AF_INET6;
	}
	return ss;
}

static bool loop_ip(struct sockaddr_storage ss)
{
	return tcpopt_is_loopback((struct sockaddr *)&ss);
}

Test(tcpopt, loopback_is_127_slash_8_and_colon_colon_1_only)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	cr_assert(loop_ip(ip_addr("127.0.0.1")));
	cr_assert(loop_ip(ip_addr("127.255.3.4")));
	cr_assert_not(loop_ip(ip_addr("126.255.255.255")));
	cr_assert_not(loop_ip(ip_addr("128.0.0.1")));
	cr_assert_not(loop_ip(ip_addr("10.0.0.1")));
	cr_assert_not(loop_ip(ip_addr("0.0.0.0")));
	cr_assert(loop_ip(ip_addr("::1")));
	cr_assert(loop_ip(ip_addr("::ffff:127.0.0.1")));
	cr_assert_not(loop_ip(ip_addr("::ffff:10.0.0.1")));
	cr_assert_not(loop_ip(ip_addr("::")));
	cr_assert_not(loop_ip(ip_addr("::2")));
	cr_assert_not(loop_ip(ip_addr("fe80::1")));
	cr_assert_not(tcpopt_is_loopback((struct sockaddr *)&un));
}

static void assert_no_pacing_cc(int fd)
{
	char name[32] = {0};
	socklen_t len = sizeof(name) - 1;

	cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len),
		     0);
	cr_assert(strcmp(name, "cubic") == 0 || strcmp(name, "reno") == 0,
		  "congestion control %s", name);
}

/* A plain listener on 127.0.0.1: its port in *port. */
static int plain_listener(uint16_t *port)
{
	struct sockaddr_storage ss = ip_addr("127.0.0.1");
	socklen_t len = sizeof(struct sockaddr_in);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
	cr_assert_eq(listen(fd, 4), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void on_conn(uv_connect_t *req, int status)
{
	*(int *)req->data = status == 0 ? 1 : status;
}

Test(tcpopt, a_dial_to_loopback_gets_its_socket_and_cc_before_connecting)
{
	uv_loop_t loop;
	uv_tcp_t tcp;
	uv_connect_t req;
	uv_os_fd_t fd;
	uint16_t port;
	int lfd = plain_listener(&port), done = 0;
	struct sockaddr_storage dst = ip_addr("127.0.0.1");

	((struct sockaddr_in *)&dst)->sin_port = htons(port);
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(uv_tcp_init(&loop, &tcp), 0);
	tcpopt_before_connect(&tcp, (struct sockaddr *)&dst);
	/* The socket exists now, not only at uv_tcp_connect. */
	cr_assert_eq(uv_fileno((uv_handle_t *)&tcp, &fd), 0);
	req.data = &done;
	cr_assert_eq(
	    uv_tcp_connect(&req, &tcp, (struct sockaddr *)&dst, on_conn), 0);
	while (!done)
		uv_run(&loop, UV_RUN_ONCE);
	cr_assert_eq(done, 1);
	assert_no_pacing_cc(fd);
	uv_close((uv_handle_t *)&tcp, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
	close(lfd);
}

Test(tcpopt, a_dial_elsewhere_is_left_alone)
{
	uv_loop_t loop;
	uv_tcp_t tcp;
	uv_os_fd_t fd;
	struct sockaddr_storage dst = ip_addr("192.0.2.1");

	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(uv_tcp_init(&loop, &tcp), 0);
	tcpopt_before_connect(&tcp, (struct sockaddr *)&dst);
	cr_assert_neq(uv_fileno((uv_handle_t *)&tcp, &fd), 0);
	uv_close((uv_handle_t *)&tcp, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(tcpopt, sockets_accepted_by_a_loopback_listener_inherit_the_cc)
{
	uv_loop_t loop;
	uv_tcp_t ls;
	uv_os_fd_t lfd;
	struct sockaddr_storage ss = ip_addr("127.0.0.1");
	socklen_t len = sizeof(struct sockaddr_in);
	int c, a;

	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(uv_tcp_init(&loop, &ls), 0);
	cr_assert_eq(uv_tcp_bind(&ls, (struct sockaddr *)&ss, 0), 0);
	tcpopt_before_listen(&ls);
	cr_assert_eq(uv_fileno((uv_handle_t *)&ls, &lfd), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&ss, len), 0);
	a = accept(lfd, NULL, NULL);
	cr_assert_geq(a, 0);
	assert_no_pacing_cc(a);
	close(a);
	close(c);
	uv_close((uv_handle_t *)&ls, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
}
