/*
 * Relays (SPEC 7): when no direct link can be made to a peer X, a node R
 * that holds links to both ends carries a circuit between them. The
 * requester A sends RELAY_OPEN (flags 0, peer X) to R; R, if it holds a
 * direct link to X, sends RELAY_OPEN (INCOMING, peer A) to X and from then
 * on forwards RELAY_DATA between the two links, unread. A and X run the
 * normal session handshake over the circuit (A as initiator expecting X's
 * ID, X checking A's), then HELLO, keepalive and tunnels: a relayed link
 * is an ordinary link whose transport (struct relay_end here) sends its
 * bytes as RELAY_DATA on the via link. R only ever sees handshake frames
 * and AEAD records.
 *
 * A circuit ends with RELAY_CLOSE from either end or from R, and when
 * either underlying link goes away (R tells the other end). R's memory is
 * bounded: RELAY_CIRC_MAX circuits, RELAY_CIRC_PER_LINK opened by one
 * peer, and a circuit is cut when its outgoing link's write queue is over
 * RELAY_WQ_MAX (the tunnels' credit normally keeps it far below).
 *
 * Circuit IDs: whoever opens a circuit on a link picks its ID, odd when
 * it is the link's initiator, even otherwise, so both ends can open.
 * Links are named by ID everywhere here, the circuit table included.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "relay.h"
#include "relaytab.h"

/* Our end of a circuit: the transport of a relayed link. */
struct relay_end {
	struct relay_end *next;
	struct p2pd_node *n;
	uint32_t via;  /* the link the circuit runs on */
	uint32_t circ; /* its ID there */
	uint32_t link; /* the relayed link */
	bool closed;   /* the circuit is gone: nothing more to send */
};

struct relays {
	struct relay_tab tab; /* circuits we carry, keyed by link ID */
	struct relay_end *ends;
	uint32_t next_id;
	uint64_t opened, bytes, unknown;
};

/* The circuit table keys links by an opaque pointer: our link IDs. */
static const void *key(uint32_t id)
{
	return (const void *)(uintptr_t)id;
}

static uint32_t unkey(const void *k)
{
	return (uint32_t)(uintptr_t)k;
}

int relay_module_init(struct p2pd_node *n)
{
	n->relay = calloc(1, sizeof(*n->relay));
	return n->relay ? 0 : -ENOMEM;
}

void relay_free(struct p2pd_node *n)
{
	if (!n->relay)
		return;
	relay_tab_clear(&n->relay->tab);
	while (n->relay->ends) {
		struct relay_end *e = n->relay->ends;
		n->relay->ends = e->next;
		free(e);
	}
	free(n->relay);
	n->relay = NULL;
}

void relay_get_stats(const struct p2pd_node *n, struct relay_stats *st)
{
	st->circuits = n->relay->tab.n;
	st->opened = n->relay->opened;
	st->bytes = n->relay->bytes;
	st->unknown = n->relay->unknown;
}

static bool picked_by_us(const struct link *l, uint32_t circ)
{
	return (circ & 1) == (link_outbound(l) ? 1u : 0u);
}

static struct relay_end *find_end(struct p2pd_node *n, uint32_t via,
				  uint32_t circ)
{
	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		if (e->via == via && e->circ == circ)
			return e;
	return NULL;
}

static bool id_in_use(struct p2pd_node *n, uint32_t l, uint32_t c)
{
	return find_end(n, l, c) || relay_tab_used(&n->relay->tab, key(l), c);
}

static int new_id(struct p2pd_node *n, const struct link *l, uint32_t *out)
{
	for (int i = 0; i < 8; i++) {
		uint32_t c =
		    (++n->relay->next_id << 1) | (link_outbound(l) ? 1 : 0);
		if (!id_in_use(n, link_id(l), c)) {
			*out = c;
			return 0;
		}
	}
	return -EBUSY;
}

static void send_close(struct link *l, uint32_t circ, const char *why)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_CLOSE};

	if (!l)
		return;
	m.u.relay.circ = circ;
	m.u.relay.reason = why;
	m.u.relay.len = strlen(why);
	link_send_msg(l, &m);
}

static unsigned count_ends(struct p2pd_node *n, uint32_t via)
{
	unsigned c = 0;

	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		c += e->via == via && !e->closed;
	return c;
}

/* ---- the transport of a relayed link ---- */

static int end_write(void *ctx, const uint8_t *data, size_t len)
{
	struct relay_end *e = ctx;
	struct link *via = e->closed ? NULL : link_get(e->n, e->via);
	struct p2p_msg m = {.type = P2P_MSG_RELAY_DATA};
	int rc = 0;

	if (!via)
		return -ENOTCONN;
	m.u.relay.circ = e->circ;
	for (size_t off = 0; off < len && rc == 0; off += m.u.relay.len) {
		m.u.relay.data = data + off;
		m.u.relay.len = len - off < P2P_RELAY_DATA_MAX
				    ? len - off
				    : P2P_RELAY_DATA_MAX;
		rc = link_send_msg(via, &m);
	}
	return rc;
}

static size_t end_queued(void *ctx)
{
	struct relay_end *e = ctx;
	struct link *via = link_get(e->n, e->via);

	/* No link to the relay: as full as can be (it is going away). */
	return via ? link_queued(via) : SIZE_MAX;
}

static void end_close(void *ctx)
{
	struct relay_end *e = ctx;
	struct p2pd_node *n = e->n;

	if (!e->closed)
		send_close(link_get(n, e->via), e->circ, "closed");
	for (struct relay_end **pp = &n->relay->ends; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	free(e);
}

static const struct link_transport end_ops = {
    .write = end_write,
    .queued = end_queued,
    .close = end_close,
};

/* A new end on via, circuit circ, and its link. */
static struct link *end_open(struct p2pd_node *n, struct link *via,
			     uint32_t circ, bool initiator,
			     const struct p2p_peerid *peer)
{
	struct relay_end *e = calloc(1, sizeof(*e));
	struct link *l;

	if (!e)
		return NULL;
	e->n = n;
	e->via = link_id(via);
	e->circ = circ;
	e->next = n->relay->ends;
	n->relay->ends = e;
	l = link_open_on(n, &end_ops, e, initiator, peer, link_remote(via),
			 link_local(via));
	if (!l) {
		e->closed = true;
		end_close(e);
		return NULL;
	}
	e->link = link_id(l);
	return l;
}

/* ---- messages ---- */

/* We are the relay: A (on link a, circuit ca) asks for peer. */
static void serve_open(struct p2pd_node *n, struct link *a, uint32_t ca,
		       const struct p2p_peerid *peer)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
	struct link *b = link_find_up(n, peer, LINK_KINDS_TCP);
	uint32_t cb;
	int rc;

	if (!b || b == a) {
		send_close(a, ca, "no link to that peer");
		return;
	}
	if (id_in_use(n, link_id(a), ca)) {
		send_close(a, ca, "circuit ID in use");
		return;
	}
	if ((rc = new_id(n, b, &cb)) == 0)
		rc = relay_tab_add(&n->relay->tab, key(link_id(a)), ca,
				   key(link_id(b)), cb);
	if (rc < 0) {
		send_close(a, ca, rc == -EBUSY ? "relay busy" : "relay failed");
		return;
	}
	n->relay->opened++;
	m.u.relay.circ = cb;
	m.u.relay.code = P2P_RELAY_F_INCOMING;
	m.u.relay.peer = *link_peer(a);
	link_send_msg(b, &m);
}

/* We are the target: peer reaches us through via, circuit circ. */
static void accept_incoming(struct p2pd_node *n, struct link *via,
			    uint32_t circ, const struct p2p_peerid *peer)
{
	if (id_in_use(n, link_id(via), circ)) {
		send_close(via, circ, "circuit ID in use");
		return;
	}
	if (count_ends(n, link_id(via)) >= RELAY_CIRC_PER_LINK ||
	    link_count(n) >= n->limits.max_links) {
		n->stats.links_refused++;
		send_close(via, circ, "too many links");
		return;
	}
	if (!end_open(n, via, circ, false, peer))
		send_close(via, circ, "out of memory");
}

int relay_open(struct p2pd_node *n, struct link *via,
	       const struct p2p_peerid *peer, struct link **out)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
	uint32_t circ;
	int rc;

	if (count_ends(n, link_id(via)) >= RELAY_CIRC_PER_LINK)
		return -EBUSY;
	if (link_count(n) >= n->limits.max_links)
		return -EMFILE;
	if ((rc = new_id(n, via, &circ)) < 0)
		return rc;
	m.u.relay.circ = circ;
	m.u.relay.peer = *peer;
	if ((rc = link_send_msg(via, &m)) < 0)
		return rc;
	*out = end_open(n, via, circ, true, peer);
	return *out ? 0 : -ENOMEM;
}

static struct relay_circ *find_circ(struct p2pd_node *n, uint32_t l,
				    uint32_t circ, uint32_t *other,
				    uint32_t *ocirc)
{
	const void *o = NULL;
	struct relay_circ *r =
	    relay_tab_find(&n->relay->tab, key(l), circ, &o, ocirc);

	*other = unkey(o);
	return r;
}

static void on_data(struct p2pd_node *n, struct link *l,
		    const struct p2p_msg *m)
{
	struct relay_end *e = find_end(n, link_id(l), m->u.relay.circ);
	struct relay_circ *r;
	struct link *o, *end;
	uint32_t oid, oc;

	if (e) {
		if (!e->closed && (end = link_get(n, e->link)))
			link_input(end, m->u.relay.data, m->u.relay.len);
		return;
	}
	r = find_circ(n, link_id(l), m->u.relay.circ, &oid, &oc);
	if (!r) {
		n->relay->unknown++;
		return;
	}
	o = link_get(n, oid);
	if (!o || link_queued(o) + m->u.relay.len > RELAY_WQ_MAX) {
		log_info("relay: a circuit's queue is over %u bytes; closing "
			 "it",
			 RELAY_WQ_MAX);
		relay_tab_del(&n->relay->tab, r);
		send_close(l, m->u.relay.circ, "relay queue full");
		send_close(o, oc, "relay queue full");
		return;
	}
	struct p2p_msg f = *m;
	f.u.relay.circ = oc;
	n->relay->bytes += m->u.relay.len;
	link_send_msg(o, &f);
}

static void on_close_msg(struct p2pd_node *n, struct link *l,
			 const struct p2p_msg *m)
{
	struct relay_end *e = find_end(n, link_id(l), m->u.relay.circ);
	struct relay_circ *r;
	struct link *end;
	uint32_t oid, oc;

	if (e) {
		e->closed = true; /* nothing to tell the relay */
		end = link_get(n, e->link);
		if (end && !link_hello_rx(end))
			log_info("relay: circuit refused: %.*s",
				 (int)m->u.relay.len, m->u.relay.reason);
		if (end)
			link_fail(end, "relay circuit closed");
		return;
	}
	r = find_circ(n, link_id(l), m->u.relay.circ, &oid, &oc);
	if (!r) {
		n->relay->unknown++;
		return;
	}
	relay_tab_del(&n->relay->tab, r);
	send_close(link_get(n, oid), oc, "closed by the other end");
}

void relay_on_msg(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;

	if (link_kind(l) == LINK_RELAY) {
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

/* ---- link events ---- */

/* Link l is gone: its relayed links and the circuits over it go. */
static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	uint32_t id = link_id(l);
	struct relay_circ *r;

	if (link_kind(l) == LINK_RELAY)
		return; /* its transport closes the circuit (end_close) */
	for (struct relay_end *e = n->relay->ends; e; e = e->next) {
		struct link *end;
		if (e->via != id || e->closed)
			continue;
		e->closed = true;
		if ((end = link_get(n, e->link)))
			link_fail(end, "relay link gone");
	}
	while ((r = relay_tab_on(&n->relay->tab, key(id))) != NULL) {
		uint32_t o = unkey(r->a) == id ? unkey(r->b) : unkey(r->a);
		uint32_t oc = unkey(r->a) == id ? r->cb : r->ca;
		relay_tab_del(&n->relay->tab, r);
		send_close(link_get(n, o), oc, "the other end's link is gone");
	}
}

/* The link to a relay drained: so did every relayed link over it. */
static void on_writable(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;
	struct link *end;

	if (link_kind(l) == LINK_RELAY)
		return;
	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		if (e->via == link_id(l) && !e->closed &&
		    (end = link_get(n, e->link)))
			link_writable(end);
}

const struct node_link_hooks relay_link_hooks = {
    .gone = on_gone,
    .writable = on_writable,
};
