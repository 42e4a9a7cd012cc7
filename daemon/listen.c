/*
 * Listeners of the overlay port: bound with SO_REUSEPORT, because outgoing
 * links dial from the same port (link.c dial_socket); every connection
 * becomes a link (link_accept).
 */
#include <errno.h>
#include <ifaddrs.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "link.h"
#include "listen.h"
#include "log.h"
#include "nat/nat.h"
#include "nodeutil.h"
#include "tcpopt.h"

static void on_connection(uv_stream_t *s, int status)
{
	struct listener *li = s->data;
	int rc;

	if (status < 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	rc = link_accept(li->n, s);
	if (rc < 0)
		log_debug("inbound link refused: %s", link_strerror(rc));
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *li = h->data;
	node_handle_closed(li->n);
}

static bool host_has_family(int family)
{
	struct ifaddrs *ifs, *i;
	bool found = false;

	if (getifaddrs(&ifs) < 0)
		return true; /* cannot tell: not missing */
	for (i = ifs; i && !found; i = i->ifa_next)
		found = i->ifa_addr && i->ifa_addr->sa_family == family;
	freeifaddrs(ifs);
	return found;
}

/*
 * The host lacks the family of sa: no socket of it (IPv6 compiled out or
 * ipv6.disable=1), or its address cannot be bound while no interface has
 * an address of that family (net.ipv6.conf.*.disable_ipv6). Probed with a
 * throwaway socket on port 0 before the listener takes a slot.
 */
static bool family_missing(const struct sockaddr_storage *ss, socklen_t len)
{
	struct sockaddr_storage probe = *ss;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool missing;

	if (fd < 0)
		return errno == EAFNOSUPPORT;
	if (probe.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&probe)->sin6_port = 0;
	else
		((struct sockaddr_in *)&probe)->sin_port = 0;
	missing = bind(fd, (struct sockaddr *)&probe, len) < 0 &&
		  errno == EADDRNOTAVAIL && !host_has_family(ss->ss_family);
	close(fd);
	return missing;
}

int listen_start(struct p2pd_node *n, const struct p2p_addr *a, char *err,
		 size_t errlen)
{
	struct listener *li = &n->listeners[n->nlisten];
	struct sockaddr_storage ss;
	socklen_t slen;
	char text[P2P_ADDR_TEXT_MAX];
	int len = sizeof(ss), rc;
	uv_os_fd_t fd;

	p2p_addr_format(a, text, sizeof(text));
	if (node_addr_to_sockaddr(a, &ss, &slen) < 0) {
		snprintf(err, errlen, "cannot listen on %s: bad address", text);
		return -EINVAL;
	}
	if (family_missing(&ss, slen)) {
		snprintf(err, errlen,
			 "not listening on %s: this host has no IPv%d", text,
			 a->family);
		return -EAFNOSUPPORT;
	}
	/* Created now (not at bind) so that SO_REUSEPORT goes on first:
	 * outgoing links dial from this port too (see link_dial). */
	rc = uv_tcp_init_ex(n->loop, &li->tcp,
			    a->family == 6 ? AF_INET6 : AF_INET);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", text,
			 uv_strerror(rc));
		return rc;
	}
	node_handle_opened(n);
	n->nlisten++;
	li->n = n;
	li->tcp.data = li;
	li->open = true;
	/* SO_REUSEPORT would let a second daemon share a busy port: check
	 * that nobody listens there first. */
	if (a->port != 0)
		rc = p2p_nat_sock_port_free((const struct sockaddr *)&ss, slen);
	if (rc == 0)
		rc = uv_fileno((uv_handle_t *)&li->tcp, &fd);
	if (rc == 0)
		rc = p2p_nat_sock_reuse(fd);
	/* IPV6ONLY so that 0.0.0.0:P and [::]:P can coexist. */
	if (rc == 0)
		rc = uv_tcp_bind(&li->tcp, (const struct sockaddr *)&ss,
				 a->family == 6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0) {
		tcpopt_before_listen(&li->tcp);
		rc = uv_listen((uv_stream_t *)&li->tcp, 128, on_connection);
	}
	if (rc == 0)
		rc = uv_tcp_getsockname(&li->tcp, (struct sockaddr *)&ss, &len);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", text,
			 uv_strerror(rc));
		return rc;
	}
	node_addr_from_sockaddr(&li->addr, (struct sockaddr *)&ss);
	p2p_addr_format(&li->addr, text, sizeof(text));
	log_info("listening on %s", text);
	return 0;
}

void listen_stop_all(struct p2pd_node *n)
{
	for (size_t i = 0; i < n->nlisten; i++) {
		if (n->listeners[i].open) {
			n->listeners[i].open = false;
			uv_close((uv_handle_t *)&n->listeners[i].tcp,
				 on_listener_closed);
		}
	}
}
