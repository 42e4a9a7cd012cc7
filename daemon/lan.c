/*
 * LAN discovery over UDP multicast (lan.h): sockets, interfaces, and the
 * dial a heard beacon asks for. What to send when and what to believe is
 * core/lan.c's; the beacon's bytes are proto/beacon.c's.
 *
 * One socket per family, bound to the wildcard address on
 * P2P_BEACON_PORT with SO_REUSEADDR, so that every daemon on a host gets
 * every beacon (several daemons on one host find each other too; our
 * own beacons come back through the multicast loop and the core drops
 * them). The group is joined on every interface that has an address of
 * the family, and each beacon is sent once per such interface with
 * TTL/hop limit 1. Interfaces are enumerated again at every beacon, so an
 * interface that comes up later joins then.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lan.h"
#include "lan.h"
#include "link.h"
#include "log.h"
#include "nodeutil.h"

/* Interface names kept per family and beacon (IPv6 sends by name). */
#define LAN_IFACES_MAX 32

struct lan_sock {
	uv_udp_t udp;
	struct p2pd_node *n;
	uint8_t family;
	bool open;			/* counted with node_handle_opened */
	bool warned;			/* a failed send was logged once */
	uint8_t rx[P2P_BEACON_LEN + 1]; /* one datagram at a time */
};

struct lan {
	struct p2p_lan *core;
	struct lan_sock s[2]; /* IPv4, IPv6 */
};

static const char *fam_name(uint8_t family)
{
	return family == 4 ? "IPv4" : "IPv6";
}

/* ---- interfaces ---- */

/* The interfaces of a family as libuv's multicast calls want them: the
 * IPv4 address in text, or "::%NAME" for IPv6 (the zone is the
 * interface). Loopback is left out: nothing on it is another host. */
static size_t ifaces(uint8_t family, char out[][64], size_t max)
{
	uv_interface_address_t *ia;
	size_t c = 0;
	int cnt;

	if (uv_interface_addresses(&ia, &cnt) < 0)
		return 0;
	for (int i = 0; i < cnt && c < max; i++) {
		char t[64];
		bool seen = false;
		if (ia[i].is_internal)
			continue;
		if (family == 4 && ia[i].address.address4.sin_family == AF_INET)
			uv_ip4_name(&ia[i].address.address4, t, sizeof(t));
		else if (family == 6 &&
			 ia[i].address.address6.sin6_family == AF_INET6)
			snprintf(t, sizeof(t), "::%%%s", ia[i].name);
		else
			continue;
		for (size_t k = 0; k < c; k++)
			seen |= strcmp(out[k], t) == 0;
		if (!seen)
			snprintf(out[c++], 64, "%s", t);
	}
	uv_free_interface_addresses(ia, cnt);
	return c;
}

/* Join the group on every interface; how many are joined (already
 * joined counts). */
static size_t join_all(struct lan_sock *s)
{
	char names[LAN_IFACES_MAX][64];
	const char *group =
	    s->family == 4 ? P2P_BEACON_GROUP4 : P2P_BEACON_GROUP6;
	size_t k = ifaces(s->family, names, LAN_IFACES_MAX), joined = 0;

	for (size_t i = 0; i < k; i++) {
		int rc = uv_udp_set_membership(&s->udp, group, names[i],
					       UV_JOIN_GROUP);
		if (rc == 0 || rc == UV_EADDRINUSE)
			joined++;
		else
			log_debug("LAN discovery: join %s on %s: %s", group,
				  names[i], uv_strerror(rc));
	}
	return joined;
}

/* ---- receiving ---- */

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct lan_sock *s = h->data;

	(void)size;
	*buf = uv_buf_init((char *)s->rx, sizeof(s->rx));
}

/* Our wall clock in ms (beacons carry the sender's, for freshness). */
static uint64_t wall_ms(void)
{
	uv_timeval64_t tv;

	if (uv_gettimeofday(&tv) < 0)
		return 0;
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void dial(struct p2pd_node *n, const struct p2p_beacon *b,
		 const struct p2p_addr *to)
{
	char id[P2P_ID_TEXT_LEN + 1], at[P2P_ADDR_TEXT_MAX];
	int err = 0;

	p2p_peerid_to_text(&b->id, id);
	p2p_addr_format(to, at, sizeof(at));
	if (link_find_up(n, &b->id, LINK_KINDS_TCP) ||
	    link_dialling(n, &b->id)) {
		log_debug("LAN discovery: %s at %s: linked already", id, at);
		return;
	}
	if (link_dial(n, to, &b->id, LP_OVERLAY, &err))
		log_info("LAN discovery: found %s at %s, dialling", id, at);
	else
		log_debug("LAN discovery: dial %s at %s: %s", id, at,
			  link_strerror(err));
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
		    const struct sockaddr *sa, unsigned flags)
{
	struct lan_sock *s = h->data;
	struct p2pd_node *n = s->n;
	struct p2p_addr src, to;
	struct p2p_beacon b;
	enum p2p_lan_verdict v;
	char at[P2P_ADDR_TEXT_MAX];
	int rc;

	(void)buf;
	if (nread <= 0 || !sa || n->stopping || !n->lan ||
	    node_addr_from_sockaddr(&src, sa) < 0 ||
	    p2p_beacon_names_key(s->rx, (size_t)nread, n->ident.pk))
		return; /* ours, looped back: the core would say SELF */
	if (!p2p_lan_admit(n->lan->core, node_now(n), &src))
		return; /* a flood: not even a signature check */
	rc = (flags & UV_UDP_PARTIAL)
		 ? -EPROTO
		 : p2p_beacon_decode(&b, s->rx, (size_t)nread);
	if (rc < 0) {
		n->stats.bad_msgs++;
		if (node_bad_input_log(n, &src)) {
			p2p_addr_format(&src, at, sizeof(at));
			log_info("LAN discovery: beacon from %s ignored: %s",
				 at, p2p_strerror(rc));
		}
		return;
	}
	v = p2p_lan_on_beacon(n->lan->core, node_now(n), wall_ms(), &b, &src,
			      &to);
	p2p_addr_format(&src, at, sizeof(at));
	if (v == P2P_LAN_DIAL)
		dial(n, &b, &to);
	else if (v == P2P_LAN_STALE && node_bad_input_log(n, &src))
		log_info("LAN discovery: beacon from %s ignored: %s", at,
			 p2p_lan_verdict_name(v));
	else if (v == P2P_LAN_NO_PORT || v == P2P_LAN_LINKLOCAL)
		log_debug("LAN discovery: beacon from %s not dialled: %s", at,
			  p2p_lan_verdict_name(v));
}

/* ---- sending ---- */

static void announce(struct p2pd_node *n, struct lan_sock *s,
		     const uint8_t *msg, size_t len)
{
	char names[LAN_IFACES_MAX][64];
	struct sockaddr_storage ss;
	size_t k, sent = 0;
	int rc = UV_EADDRNOTAVAIL;
	uv_buf_t buf = uv_buf_init((char *)msg, (unsigned)len);

	if (!s->open)
		return;
	join_all(s); /* interfaces that came up since */
	if (s->family == 4)
		uv_ip4_addr(P2P_BEACON_GROUP4, P2P_BEACON_PORT,
			    (struct sockaddr_in *)&ss);
	else
		uv_ip6_addr(P2P_BEACON_GROUP6, P2P_BEACON_PORT,
			    (struct sockaddr_in6 *)&ss);
	k = ifaces(s->family, names, LAN_IFACES_MAX);
	for (size_t i = 0; i < k; i++) {
		int r = uv_udp_set_multicast_interface(&s->udp, names[i]);
		if (r == 0)
			r = uv_udp_try_send(&s->udp, &buf, 1,
					    (const struct sockaddr *)&ss);
		if (r >= 0)
			sent++;
		else
			rc = r;
	}
	if (sent > 0 || s->warned) {
		if (sent == 0)
			log_debug("LAN discovery: %s beacon: %s",
				  fam_name(s->family), uv_strerror(rc));
		return;
	}
	s->warned = true;
	log_warnx("LAN discovery: cannot send %s beacons (%s); running on "
		  "without them until an interface can",
		  fam_name(s->family), k ? uv_strerror(rc) : "no interface");
}

uint64_t lan_next(void *arg)
{
	struct p2pd_node *n = arg;

	return n->lan ? p2p_lan_next(n->lan->core) : UINT64_MAX;
}

void lan_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	struct p2p_beacon b = {.port4 = node_listen_port(n, 4),
			       .port6 = node_listen_port(n, 6)};
	uint8_t msg[P2P_BEACON_LEN];
	size_t len;

	if (!n->lan || n->stopping ||
	    !p2p_lan_announce_due(n->lan->core, now, randombytes_random()))
		return;
	b.time_ms = wall_ms();
	/* A node that does not listen hears beacons but has none to send. */
	if (p2p_beacon_encode(&b, &n->ident, msg, sizeof(msg), &len) < 0)
		return;
	for (int i = 0; i < 2; i++)
		announce(n, &n->lan->s[i], msg, len);
}

/* ---- start and stop ---- */

static void on_closed(uv_handle_t *h)
{
	struct lan_sock *s = h->data;

	node_handle_closed(s->n);
}

static int sock_open(struct p2pd_node *n, struct lan_sock *s, uint8_t family)
{
	struct sockaddr_storage ss;
	unsigned flags = UV_UDP_REUSEADDR;
	int rc;

	s->n = n;
	s->family = family;
	rc = uv_udp_init_ex(n->loop, &s->udp, family == 4 ? AF_INET : AF_INET6);
	if (rc < 0)
		return rc;
	s->udp.data = s;
	s->open = true;
	node_handle_opened(n);
	if (family == 4) {
		uv_ip4_addr("0.0.0.0", P2P_BEACON_PORT,
			    (struct sockaddr_in *)&ss);
	} else {
		uv_ip6_addr("::", P2P_BEACON_PORT, (struct sockaddr_in6 *)&ss);
		flags |= UV_UDP_IPV6ONLY;
	}
	rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&ss, flags);
	if (rc == 0)
		rc = uv_udp_set_multicast_ttl(&s->udp, 1);
	if (rc == 0) /* other daemons on this host hear us */
		rc = uv_udp_set_multicast_loop(&s->udp, 1);
	if (rc == 0 && join_all(s) == 0)
		rc = UV_EADDRNOTAVAIL;
	if (rc == 0)
		rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
	if (rc < 0) {
		s->open = false;
		uv_close((uv_handle_t *)&s->udp, on_closed);
	}
	return rc;
}

int lan_start(struct p2pd_node *n, bool on)
{
	char why[128] = "";
	size_t open = 0;

	if (!on)
		return 0;
	n->lan = calloc(1, sizeof(*n->lan));
	if (n->lan)
		n->lan->core = p2p_lan_new(&n->ident.id, node_now(n));
	if (!n->lan || !n->lan->core) {
		lan_free(n);
		return -ENOMEM;
	}
	for (uint8_t i = 0; i < 2; i++) {
		uint8_t fam = i == 0 ? 4 : 6;
		int rc = sock_open(n, &n->lan->s[i], fam);
		if (rc == 0) {
			open++;
			continue;
		}
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "%s%s: %s", why[0] ? ", " : "", fam_name(fam),
			 rc == UV_EADDRNOTAVAIL ? "no multicast interface"
						: uv_strerror(rc));
	}
	if (open == 0)
		log_warnx("LAN discovery: not available on this host (%s); "
			  "running on without it",
			  why);
	else if (why[0])
		log_info("LAN discovery on, except %s", why);
	else
		log_info("LAN discovery on (UDP %u, groups %s and %s)",
			 P2P_BEACON_PORT, P2P_BEACON_GROUP4, P2P_BEACON_GROUP6);
	return 0;
}

void lan_stop(struct p2pd_node *n)
{
	if (!n->lan)
		return;
	for (int i = 0; i < 2; i++) {
		struct lan_sock *s = &n->lan->s[i];
		if (!s->open)
			continue;
		s->open = false;
		uv_udp_recv_stop(&s->udp);
		uv_close((uv_handle_t *)&s->udp, on_closed);
	}
}

void lan_free(struct p2pd_node *n)
{
	if (!n->lan)
		return;
	p2p_lan_free(n->lan->core);
	free(n->lan);
	n->lan = NULL;
}
