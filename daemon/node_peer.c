/*
 * What the node does when a link's peer says HELLO or goes away:
 * duplicate links, overlay link_up/link_down, the peer cache, and learned
 * reachability (server mode, dial-backs).
 */
#include <sodium.h>
#include <string.h>

#include "log.h"
#include "node_int.h"
#include "nodeutil.h"

void node_fill_hello(struct p2pd_node *n, const struct link *l,
		     struct p2p_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = P2P_MSG_HELLO;
	m->u.hello.flags = n->server ? P2P_HELLO_SERVER : 0;
	m->u.hello.observed = l->remote;
	/* Wildcard listeners go out as they are (unspecified IP and the
	 * port); the receiver puts in the IP it sees us at. */
	for (size_t i = 0; i < n->nlisten && i < P2P_MAX_ADDRS; i++)
		m->u.hello.addrs[m->u.hello.naddrs++] = n->listeners[i].addr;
}

/*
 * Server mode is learned, never configured. Two proofs count:
 * - a DIALBACK_OK arriving on a link a peer opened to the address we asked
 *   it to dial (the general case, behind NAT or not);
 * - any peer completing a handshake on our listener. That is also a dial
 *   that worked, and it is what lets the first node of a network (which
 *   has nobody to ask) and nodes on loopback serve their first joiners.
 *   Punched links (NAT traversal) do not come through the listener, so
 *   they do not count.
 * A node without a listener never becomes a server.
 */
void node_set_server(struct p2pd_node *n, const char *why)
{
	struct p2p_msg m;

	if (n->server || n->nlisten == 0)
		return;
	n->server = true;
	p2p_overlay_set_server(n->ov, node_now(n), true);
	log_info("reachable (%s): DHT server mode", why);
	/* Tell the peers we already have: HELLO again with the new flag. */
	for (struct link *l = n->links; l; l = l->next) {
		if (l->state != LINK_UP || l->purpose != LP_OVERLAY)
			continue;
		node_fill_hello(n, l, &m);
		link_send_msg(l, &m);
	}
}

static const struct listener *listener_for(struct p2pd_node *n, int family)
{
	for (size_t i = 0; i < n->nlisten; i++)
		if (n->listeners[i].addr.family == family)
			return &n->listeners[i];
	return NULL;
}

static void ask_dialback(struct p2pd_node *n, struct link *l,
			 const struct p2p_addr *observed)
{
	const struct listener *li;
	struct p2p_msg m = {.type = P2P_MSG_DIALBACK};

	if (n->server || !l->peer_server || observed->family == 0)
		return;
	/*
	 * A server serves NODE_DIALBACK_PER_S requests and drops the rest
	 * without a word, so a request made in a burst of joins may never
	 * be tried: each server link is asked up to NODE_DIALBACK_ASKS
	 * times, backing off; after that, a peer that cannot reach us costs
	 * nothing more.
	 */
	if (l->dialback_asks >= NODE_DIALBACK_ASKS ||
	    (l->dialback_asks > 0 && node_now(n) < l->dialback_next))
		return;
	li = listener_for(n, observed->family);
	if (!li)
		return;
	if (!n->db_nonce)
		randombytes_buf(&n->db_nonce, sizeof(n->db_nonce));
	/* Jittered: requests dropped in one burst must not all come back
	 * together, in the same order, and be dropped again. */
	l->dialback_next = node_now(n) +
			   ((uint64_t)NODE_REASK_MS << l->dialback_asks) +
			   randombytes_uniform(NODE_REASK_MS);
	l->dialback_asks++;
	m.u.dialback.nonce = n->db_nonce;
	m.u.dialback.addr = *observed;
	m.u.dialback.addr.port = li->addr.port;
	link_send_msg(l, &m);
}

void node_dialback_tick(struct p2pd_node *n, uint64_t now)
{
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX];
	size_t next;

	if (n->server)
		return;
	next = p2p_nat_external(n->nat, ext, P2P_NAT_EXTERNAL_MAX);
	for (struct link *l = n->links; l; l = l->next) {
		if (l->state != LINK_UP || !l->hello_rx ||
		    l->purpose != LP_OVERLAY || l->dialback_asks == 0 ||
		    l->dialback_asks >= NODE_DIALBACK_ASKS ||
		    now < l->dialback_next)
			continue;
		/* The peer dials the IP it sees us at; only the family and
		 * the port of the address we send matter. */
		for (size_t i = 0; i < next; i++) {
			if (ext[i].family == l->local.family) {
				ask_dialback(n, l, &ext[i]);
				break;
			}
		}
	}
}

/* Another link to the same peer that HELLO'd: the tie-break decides. */
static bool resolve_duplicate(struct p2pd_node *n, struct link *l)
{
	for (struct link *o = n->links; o; o = o->next) {
		if (o == l || o->state != LINK_UP || !o->hello_rx ||
		    o->purpose != LP_OVERLAY ||
		    !p2p_peerid_equal(&o->peer, &l->peer))
			continue;
		if (node_dup_keep_new(&n->ident.id, &l->peer, o->outbound,
				      l->outbound)) {
			l->ov_up = o->ov_up;
			o->ov_up = false;
			link_close(o, 0, "duplicate link");
			return false;
		}
		link_close(l, 0, "duplicate link");
		return true;
	}
	return false;
}

static const struct p2p_addr *dial_addr(const struct link *l)
{
	return l->peer_dial.family ? &l->peer_dial : &l->remote;
}

void node_link_hello(struct p2pd_node *n, struct link *l,
		     const struct p2p_addr *observed, bool first)
{
	uint64_t now = node_now(n);
	char a[P2P_ADDR_TEXT_MAX], id[P2P_ID_TEXT_LEN + 1];

	if (first) {
		p2p_peerid_to_text(&l->peer, id);
		p2p_addr_format(&l->remote, a, sizeof(a));
		log_info("link up: %s at %s (%s%s)", id, a,
			 l->relayed    ? "relayed"
			 : l->outbound ? "out"
				       : "in",
			 l->peer_server ? ", server" : "");
		if (l->relayed) {
			/* Tunnels only: not the overlay's (the address is
			 * the relay's), no dial-back. */
			node_pending_hello(n, l);
			if (!l->handle_closed)
				link_ping(l);
			return;
		}
		punch_link_hello(n, l); /* marks it punched before waiters */
		node_pending_hello(n, l);
		if (resolve_duplicate(n, l))
			return;
		link_ping(l); /* an rtt for `peers` from the start */
	}
	if (l->relayed)
		return;
	/* Repeated HELLO (the peer became a server): link_up updates. */
	p2p_overlay_link_up(n->ov, now, &l->peer, dial_addr(l), l->peer_server,
			    l->outbound);
	l->ov_up = true;
	if (l->peer_server && l->peer_dial.family)
		peercache_add(&n->cache, &l->peer, &l->peer_dial);
	if (!n->bootstrapped) {
		n->bootstrapped = true;
		p2p_overlay_bootstrap(n->ov, now);
	}
	ask_dialback(n, l, observed);
}

static struct link *other_up(struct p2pd_node *n, const struct link *l)
{
	for (struct link *o = n->links; o; o = o->next)
		if (o != l && o->state == LINK_UP && o->hello_rx &&
		    o->purpose == LP_OVERLAY &&
		    p2p_peerid_equal(&o->peer, &l->peer))
			return o;
	return NULL;
}

void node_link_gone(struct p2pd_node *n, struct link *l, const char *why)
{
	uint64_t now = node_now(n);
	struct link *o;

	relay_link_gone(n, l);
	punch_link_gone(n, l, why);
	node_pending_fail_link(n, l, why);
	if (l->purpose == LP_DIALBACK) {
		/* The peer that asked may ask again. */
		for (o = n->links; o; o = o->next)
			if (p2p_peerid_equal(&o->peer, &l->expect))
				o->dialback_busy = false;
		return;
	}
	o = l->hello_rx ? other_up(n, l) : NULL;
	if (l->hello_rx) {
		char id[P2P_ID_TEXT_LEN + 1];
		p2p_peerid_to_text(&l->peer, id);
		if (o)
			log_debug("extra link to %s closed (%s)", id, why);
		else
			log_info("link down: %s (%s)", id, why);
	}
	if (l->ov_up) {
		l->ov_up = false;
		if (o)
			o->ov_up = true; /* the overlay keeps its link */
		else
			p2p_overlay_link_down(n->ov, now, &l->peer);
	} else if (l->boot && !l->hello_rx) {
		char a[P2P_ADDR_TEXT_MAX];
		p2p_addr_format(&l->remote, a, sizeof(a));
		log_warnx("bootstrap %s: %s", a, why);
	} else if (l->ov_dial && !o && !l->hello_rx) {
		p2p_overlay_dial_failed(n->ov, now, &l->expect);
	}
}

/*
 * A peer asks us to dial it back. We only ever dial the IP the request
 * came from (never another host), one dial-back per peer at a time and
 * NODE_DIALBACK_PER_S in all, so the request cannot make us a scanner.
 */
void node_dialback_request(struct p2pd_node *n, struct link *l,
			   const struct p2p_msg *m)
{
	uint64_t now = node_now(n);
	struct p2p_addr to = l->remote;
	struct link *d;
	int err;

	if (l->dialback_busy || m->u.dialback.addr.port == 0)
		return;
	if (now - n->dialback_window >= 1000) {
		n->dialback_window = now;
		n->dialback_count = 0;
	}
	if (n->dialback_count >= NODE_DIALBACK_PER_S)
		return;
	n->dialback_count++;
	to.port = m->u.dialback.addr.port;
	d = link_dial(n, &to, &l->peer, LP_DIALBACK, &err);
	if (!d)
		return;
	d->dialback_nonce = m->u.dialback.nonce;
	l->dialback_busy = true;
}

void node_dialback_ok(struct p2pd_node *n, struct link *l, uint64_t nonce)
{
	/* The nonce went only to peers we asked, over their links. */
	if (l->outbound || !n->db_nonce || nonce != n->db_nonce)
		return;
	node_set_server(n, "dial-back succeeded");
}

bool node_bad_input_log(struct p2pd_node *n, const struct p2p_addr *from)
{
	struct badlog *slot;
	uint32_t h = 2166136261u;

	/* One stamp per hash slot of the remote IP: "per peer" that a peer
	 * cannot dodge by reconnecting from another port. */
	for (size_t i = 0; i < sizeof(from->ip); i++)
		h = (h ^ from->ip[i]) * 16777619u;
	slot = &n->badlog[h % NODE_BADLOG_SLOTS];
	return log_ratelimit(&slot->last, node_now(n), NODE_BADLOG_MS);
}
