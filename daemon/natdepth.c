/*
 * NAT depth: probes and their answers (see natdepth.h). No libuv handle:
 * a plain non-blocking UDP socket whose error queue is read on the hub's
 * clock, so stopping is freeing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "nat/nat.h"
#include "natdepth.h"
#include "nodeutil.h"

struct natdepth {
	int fd;		     /* probing: the socket, else -1 */
	uint64_t at;	     /* next step */
	int ttl;	     /* the result, 0 unknown */
	struct p2p_addr via; /* the server probed */
};

int natdepth_module_init(struct p2pd_node *n)
{
	n->natdepth = calloc(1, sizeof(*n->natdepth));
	if (!n->natdepth)
		return -ENOMEM;
	n->natdepth->fd = -1;
	n->natdepth->at = node_now(n);
	return 0;
}

void natdepth_free(struct p2pd_node *n)
{
	if (!n->natdepth)
		return;
	if (n->natdepth->fd >= 0)
		close(n->natdepth->fd);
	free(n->natdepth);
	n->natdepth = NULL;
}

int natdepth_ttl(const struct p2pd_node *n)
{
	return n->natdepth ? n->natdepth->ttl : 0;
}

uint64_t natdepth_next(void *arg)
{
	struct p2pd_node *n = arg;

	return n->natdepth && !n->stopping ? n->natdepth->at : UINT64_MAX;
}

/* A server we hold a link to at a public IPv4 address: the path to it
 * leaves through all our NATs. NULL when there is none. */
static const struct p2p_addr *public_server(struct p2pd_node *n)
{
	for (struct link *l = link_first(n); l; l = link_next_of(l)) {
		const struct p2p_addr *r = link_remote(l);
		if (link_is_up(l) && link_peer_server(l) &&
		    link_kind(l) != LINK_RELAY && r->family == 4 &&
		    !p2p_addr_is_private(r))
			return r;
	}
	return NULL;
}

static void send_probes(struct p2pd_node *n, uint64_t now)
{
	struct natdepth *d = n->natdepth;
	const struct p2p_addr *to = public_server(n);
	struct sockaddr_storage ss;
	socklen_t slen;
	struct p2p_addr dst;
	int rc = 0;

	d->at = now + NATDEPTH_RETRY_MS;
	if (!to)
		return;
	dst = *to;
	dst.port = NATDEPTH_PORT;
	if (node_addr_to_sockaddr(&dst, &ss, &slen) < 0)
		return;
	d->fd = p2p_nat_sock_probe_open();
	if (d->fd < 0) {
		log_debug("NAT depth: no probe socket: %s", strerror(-d->fd));
		d->fd = -1;
		d->at = now + NATDEPTH_REFRESH_MS;
		return;
	}
	for (int ttl = 1; ttl <= P2P_NAT_DEPTH_MAX; ttl++)
		if ((rc = p2p_nat_sock_probe_send(d->fd, (struct sockaddr *)&ss,
						  slen, ttl)) < 0)
			log_debug("NAT depth: probe with TTL %d: %s", ttl,
				  strerror(-rc));
	d->via = *to;
	d->at = now + NATDEPTH_WAIT_MS;
}

static void read_answers(struct p2pd_node *n, uint64_t now)
{
	struct natdepth *d = n->natdepth;
	struct p2p_addr off[P2P_NAT_DEPTH_MAX], a;
	char via[P2P_ADDR_TEXT_MAX], hop[P2P_ADDR_TEXT_MAX] = "none";
	int ttl, rc, depth;

	memset(off, 0, sizeof(off));
	while ((rc = p2p_nat_sock_probe_read(d->fd, &ttl, &a)) == 1)
		if (ttl >= 1 && ttl <= P2P_NAT_DEPTH_MAX)
			off[ttl - 1] = a;
	close(d->fd);
	d->fd = -1;
	d->at = now + NATDEPTH_REFRESH_MS;
	depth = p2p_nat_depth(off, P2P_NAT_DEPTH_MAX);
	/* Depth 1: no NAT of ours answered at all (a public host, or a
	 * router that keeps quiet): the default prime is as good. */
	if (depth == 1)
		depth = 0;
	if (depth > 0) {
		a = off[depth - 1];
		a.port = 0;
		p2p_addr_format(&a, hop, sizeof(hop));
		*strrchr(hop, ':') = '\0';
	}
	p2p_addr_format(&d->via, via, sizeof(via));
	if (depth > 0 && depth != d->ttl)
		log_info("NAT depth: primes go with TTL %d (the first public "
			 "hop towards %s is %s)",
			 depth, via, hop);
	else if (depth == 0 && d->ttl != 0)
		log_info("NAT depth: no public hop answered within %d hops "
			 "towards %s; primes go with TTL 2 and 3",
			 P2P_NAT_DEPTH_MAX, via);
	d->ttl = depth;
}

void natdepth_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;

	if (!n->natdepth || n->stopping || now < n->natdepth->at)
		return;
	if (n->natdepth->fd >= 0)
		read_answers(n, now);
	else
		send_probes(n, now);
}
