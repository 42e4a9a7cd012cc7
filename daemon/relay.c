/*
 * Relays (SPEC 7): when no direct link can be made to a peer X, a node R
 * that holds links to both ends carries a circuit between them. The
 * requester A sends RELAY_OPEN (flags 0, peer X) to R; R, if it holds a
 * direct link to X, sends RELAY_OPEN (INCOMING, peer A) to X and from then
 * on forwards RELAY_DATA between the two links, unread. A and X run the
 * normal session handshake over the circuit (A as initiator expecting X's
 * ID, X checking A's), then HELLO, keepalive and tunnels: a relayed link
 * is an ordinary struct link whose bytes go out as RELAY_DATA on its via
 * link (link.c). R only ever sees handshake frames and AEAD records.
 *
 * A circuit ends with RELAY_CLOSE from either end or from R, and when
 * either underlying link goes away (R tells the other end). R's memory is
 * bounded: RELAY_CIRC_MAX circuits, RELAY_CIRC_PER_LINK opened by one
 * peer, and a circuit is cut when its outgoing link's write queue is over
 * RELAY_WQ_MAX (the tunnels' credit normally keeps it far below).
 *
 * Circuit IDs: whoever opens a circuit on a link picks its ID, odd when
 * it is the link's initiator, even otherwise, so both ends can open.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node_int.h"
#include "nodeutil.h"

static bool picked_by_us(const struct link *l, uint32_t circ)
{
	return (circ & 1) == (l->outbound ? 1u : 0u);
}

static bool id_in_use(struct p2pd_node *n, const struct link *l, uint32_t c)
{
	for (struct link *e = n->links; e; e = e->next)
		if (e->relayed && e->via == l && e->circ == c)
			return true;
	return relay_tab_used(&n->relay.tab, l, c);
}

static int new_id(struct p2pd_node *n, const struct link *l, uint32_t *out)
{
	for (int i = 0; i < 8; i++) {
		uint32_t c = (++n->relay.next_id << 1) | (l->outbound ? 1 : 0);
		if (!id_in_use(n, l, c)) {
			*out = c;
			return 0;
		}
	}
	return -EBUSY;
}

static void send_close(struct link *l, uint32_t circ, const char *why)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_CLOSE};

	if (!l || l->state != LINK_UP || l->handle_closed)
		return;
	m.u.relay.circ = circ;
	m.u.relay.reason = why;
	m.u.relay.len = strlen(why);
	link_send_msg(l, &m);
}

/* A direct (not relayed) link to id that said HELLO. */
static struct link *find_direct(struct p2pd_node *n,
				const struct p2p_peerid *id)
{
	for (struct link *l = n->links; l; l = l->next)
		if (l->state == LINK_UP && l->hello_rx && !l->relayed &&
		    l->purpose == LP_OVERLAY && p2p_peerid_equal(&l->peer, id))
			return l;
	return NULL;
}

static unsigned count_ends(struct p2pd_node *n, const struct link *via)
{
	unsigned c = 0;

	for (struct link *e = n->links; e; e = e->next)
		if (e->relayed && e->via == via && e->state != LINK_CLOSING)
			c++;
	return c;
}

/* We are the relay: A (on link a, circuit ca) asks for peer. */
static void serve_open(struct p2pd_node *n, struct link *a, uint32_t ca,
		       const struct p2p_peerid *peer)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
	struct link *b = find_direct(n, peer);
	uint32_t cb;
	int rc;

	if (!b || b == a) {
		send_close(a, ca, "no link to that peer");
		return;
	}
	if (id_in_use(n, a, ca)) {
		send_close(a, ca, "circuit ID in use");
		return;
	}
	if ((rc = new_id(n, b, &cb)) == 0)
		rc = relay_tab_add(&n->relay.tab, a, ca, b, cb);
	if (rc < 0) {
		send_close(a, ca, rc == -EBUSY ? "relay busy" : "relay failed");
		return;
	}
	n->relay.opened++;
	m.u.relay.circ = cb;
	m.u.relay.code = P2P_RELAY_F_INCOMING;
	m.u.relay.peer = a->peer;
	link_send_msg(b, &m);
}

/* We are the target: peer reaches us through via, circuit circ. */
static void accept_incoming(struct p2pd_node *n, struct link *via,
			    uint32_t circ, const struct p2p_peerid *peer)
{
	struct link *l;

	if (id_in_use(n, via, circ)) {
		send_close(via, circ, "circuit ID in use");
		return;
	}
	if (count_ends(n, via) >= RELAY_CIRC_PER_LINK ||
	    node_count_links(n) >= n->limits.max_links) {
		n->stats.links_refused++;
		send_close(via, circ, "too many links");
		return;
	}
	l = link_new_relayed(n, via, circ, false, peer);
	if (!l)
		send_close(via, circ, "out of memory");
}

int relay_open(struct p2pd_node *n, struct link *via,
	       const struct p2p_peerid *peer, struct link **out)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
	uint32_t circ;
	int rc;

	if (count_ends(n, via) >= RELAY_CIRC_PER_LINK)
		return -EBUSY;
	if (node_count_links(n) >= n->limits.max_links)
		return -EMFILE;
	if ((rc = new_id(n, via, &circ)) < 0)
		return rc;
	m.u.relay.circ = circ;
	m.u.relay.peer = *peer;
	if ((rc = link_send_msg(via, &m)) < 0)
		return rc;
	*out = link_new_relayed(n, via, circ, true, peer);
	return *out ? 0 : -ENOMEM;
}

static struct link *find_end(struct p2pd_node *n, const struct link *via,
			     uint32_t circ)
{
	for (struct link *e = n->links; e; e = e->next)
		if (e->relayed && e->via == via && e->circ == circ)
			return e;
	return NULL;
}

static struct relay_circ *find_circ(struct p2pd_node *n, const struct link *l,
				    uint32_t circ, struct link **other,
				    uint32_t *ocirc)
{
	const void *o = NULL;
	struct relay_circ *r =
	    relay_tab_find(&n->relay.tab, l, circ, &o, ocirc);

	*other = (struct link *)o; /* the table holds our links */
	return r;
}

static void on_data(struct p2pd_node *n, struct link *l,
		    const struct p2p_msg *m)
{
	struct link *e = find_end(n, l, m->u.relay.circ), *o;
	struct relay_circ *r;
	uint32_t oc;

	if (e) {
		if (!e->handle_closed)
			link_relay_input(e, m->u.relay.data, m->u.relay.len);
		return;
	}
	r = find_circ(n, l, m->u.relay.circ, &o, &oc);
	if (!r) {
		n->relay.unknown++;
		return;
	}
	if (o->wq + m->u.relay.len > RELAY_WQ_MAX) {
		log_info("relay: a circuit's queue is over %u bytes; closing "
			 "it",
			 RELAY_WQ_MAX);
		/* Forgotten before anything is sent: a send can close a
		 * link, and that frees its circuits. */
		relay_tab_del(&n->relay.tab, r);
		send_close(l, m->u.relay.circ, "relay queue full");
		send_close(o, oc, "relay queue full");
		return;
	}
	struct p2p_msg f = *m;
	f.u.relay.circ = oc;
	n->relay.bytes += m->u.relay.len;
	link_send_msg(o, &f);
}

static void on_close_msg(struct p2pd_node *n, struct link *l,
			 const struct p2p_msg *m)
{
	struct link *e = find_end(n, l, m->u.relay.circ), *o;
	struct relay_circ *r;
	uint32_t oc;

	if (e) {
		e->relay_gone = true; /* nothing to tell the relay */
		e->why = "relay circuit closed";
		if (!e->hello_rx)
			log_info("relay: circuit refused: %.*s",
				 (int)m->u.relay.len, m->u.relay.reason);
		link_destroy(e);
		return;
	}
	r = find_circ(n, l, m->u.relay.circ, &o, &oc);
	if (!r) {
		n->relay.unknown++;
		return;
	}
	relay_tab_del(&n->relay.tab, r);
	send_close(o, oc, "closed by the other end");
}

void relay_on_msg(struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = l->n;

	if (l->relayed) {
		/* No circuits inside circuits. */
		n->stats.unknown_msgs++;
		return;
	}
	switch (m->type) {
	case P2P_MSG_RELAY_OPEN:
		if (picked_by_us(l, m->u.relay.circ)) {
			n->stats.bad_msgs++;
			send_close(l, m->u.relay.circ, "bad circuit ID");
		} else if (m->u.relay.code & P2P_RELAY_F_INCOMING) {
			accept_incoming(n, l, m->u.relay.circ,
					&m->u.relay.peer);
		} else {
			serve_open(n, l, m->u.relay.circ, &m->u.relay.peer);
		}
		break;
	case P2P_MSG_RELAY_DATA:
		on_data(n, l, m);
		break;
	default: /* P2P_MSG_RELAY_CLOSE */
		on_close_msg(n, l, m);
		break;
	}
}

/* Link l is going away: its relayed links and the circuits over it go. */
void relay_link_gone(struct p2pd_node *n, struct link *l)
{
	struct relay_circ *r;

	if (l->relayed) {
		if (!l->relay_gone) {
			l->relay_gone = true;
			send_close(l->via, l->circ, "closed");
		}
		return;
	}
	for (struct link *e = n->links; e; e = e->next) {
		if (e->relayed && e->via == l && !e->relay_gone) {
			e->relay_gone = true;
			e->why = "relay link gone";
			link_destroy(e);
			e->via = NULL;
		}
	}
	/* One at a time: a send can close a link, which frees (and tells)
	 * its own circuits. */
	while ((r = relay_tab_on(&n->relay.tab, l)) != NULL) {
		struct link *o = (struct link *)(r->a == l ? r->b : r->a);
		uint32_t oc = r->a == l ? r->cb : r->ca;
		relay_tab_del(&n->relay.tab, r);
		send_close(o, oc, "the other end's link is gone");
	}
}
