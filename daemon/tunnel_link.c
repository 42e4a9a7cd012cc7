/*
 * A link to a peer for tunnels and `connect`: the one already up, else the
 * peer's address from the routing table or an overlay lookup, then a dial
 * that expects the peer's ID (the handshake proves it). Waiters for the
 * same peer share one attempt. A peer that cannot be dialled (a client
 * behind NAT, or the dial failed) is hole punched (punch.c); when that
 * cannot work or fails, the link is relayed (relay.c) through a node we
 * hold a link to, asking up to RELAY_TRIES of them in turn. Only when no
 * relay reaches the peer is it unreachable, and the message says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nat/punch.h"
#include "tunnel_int.h"

/* Signalling, the start offset, the schedule, and the handshake. */
#define DIAL_PUNCH_MS                                                          \
	(P2P_PUNCH_SIGNAL_MS + P2P_PUNCH_OFFSET_MAX_MS + P2P_PUNCH_TOTAL_MS +  \
	 5000)

static struct tun_dial *dial_find(struct p2pd_node *n,
				  const struct p2p_peerid *peer)
{
	for (struct tun_dial *d = n->tun.dials; d; d = d->next)
		if (p2p_peerid_equal(&d->peer, peer))
			return d;
	return NULL;
}

static void dial_unlink(struct p2pd_node *n, struct tun_dial *d)
{
	for (struct tun_dial **pp = &n->tun.dials; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			return;
		}
	}
}

/* Tell every waiter, then forget d. */
static void dial_finish(struct p2pd_node *n, struct tun_dial *d, struct link *l,
			const char *code, const char *msg)
{
	struct tun_waiter *w;

	dial_unlink(n, d);
	while ((w = d->waiters) != NULL) {
		d->waiters = w->next;
		w->d = NULL;
		w->done(n, w, l, true, code, msg);
	}
	free(d);
}

static bool tried(const struct tun_dial *d, const struct p2p_peerid *id)
{
	for (unsigned i = 0; i < d->ntried; i++)
		if (p2p_peerid_equal(&d->tried[i], id))
			return true;
	return false;
}

/* a nearer t than b (XOR metric)? */
static bool nearer(const struct p2p_peerid *a, const struct p2p_peerid *b,
		   const struct p2p_peerid *t)
{
	for (size_t i = 0; i < P2P_ID_LEN; i++) {
		uint8_t x = a->b[i] ^ t->b[i], y = b->b[i] ^ t->b[i];
		if (x != y)
			return x < y;
	}
	return false;
}

/*
 * No direct link (why says why; NULL: the last relay asked failed): ask
 * the next relay. Candidates are the nodes we hold direct links to,
 * nearest the peer first: a client keeps its links to the servers nearest
 * its ID, so those are the likeliest to reach it.
 */
static void dial_relay(struct p2pd_node *n, struct tun_dial *d, const char *why)
{
	char msg[320];

	if (why) {
		snprintf(d->why, sizeof(d->why), "%s", why);
		d->deadline = node_now(n) + TUN_DIAL_TIMEOUT_MS;
	}
	d->state = DIAL_RELAY;
	d->link = NULL;
	while (d->ntried < RELAY_TRIES) {
		struct link *best = NULL, *rl;
		for (struct link *l = n->links; l; l = l->next) {
			if (l->state != LINK_UP || !l->hello_rx || l->relayed ||
			    l->purpose != LP_OVERLAY ||
			    p2p_peerid_equal(&l->peer, &d->peer) ||
			    tried(d, &l->peer))
				continue;
			if (!best || nearer(&l->peer, &best->peer, &d->peer))
				best = l;
		}
		if (!best)
			break;
		d->tried[d->ntried++] = best->peer;
		if (relay_open(n, best, &d->peer, &rl) == 0) {
			log_debug("tunnel: asking a relay");
			d->link = rl;
			return;
		}
	}
	snprintf(msg, sizeof(msg), "%s; no relay reached the peer (%u asked)",
		 d->why, d->ntried);
	dial_finish(n, d, NULL, "peer_unreachable", msg);
}

/* Not dialable: punch a hole; context says why we punch. */
static void dial_punch(struct p2pd_node *n, struct tun_dial *d,
		       const char *context)
{
	char msg[256];
	int rc;

	d->link = NULL;
	d->state = DIAL_PUNCH;
	d->deadline = node_now(n) + DIAL_PUNCH_MS;
	rc = punch_start(n, &d->peer, context);
	if (rc < 0) {
		snprintf(msg, sizeof(msg),
			 "no direct link: %s, and hole punching could not "
			 "start: %s",
			 context,
			 rc == -EADDRNOTAVAIL
			     ? "this daemon does not listen (no port to punch "
			       "from)"
			     : p2p_strerror(rc));
		dial_relay(n, d, msg);
	}
}

static void dial_addr(struct p2pd_node *n, struct tun_dial *d,
		      const struct p2p_addr *addr)
{
	char a[P2P_ADDR_TEXT_MAX], msg[128];
	int err;

	p2p_addr_format(addr, a, sizeof(a));
	d->link = link_dial(n, addr, &d->peer, LP_OVERLAY, &err);
	if (!d->link) {
		snprintf(msg, sizeof(msg), "no direct link: dial %s: %s", a,
			 uv_strerror(err));
		dial_finish(n, d, NULL, "peer_unreachable", msg);
		return;
	}
	log_debug("tunnel: dialling %s for a direct link", a);
	d->state = DIAL_CONNECT;
}

/* The peer's address in our own table, if it is there. */
static bool table_addr(struct p2pd_node *n, const struct p2p_peerid *peer,
		       struct p2p_addr *out)
{
	struct p2p_contact c[1];

	if (p2p_overlay_closest(n->ov, peer, c, 1) < 1 ||
	    !p2p_peerid_equal(&c[0].id, peer) || c[0].addr.family == 0)
		return false;
	*out = c[0].addr;
	return true;
}

static void dial_start(struct p2pd_node *n, struct tun_dial *d)
{
	struct p2p_addr addr;
	int rc;

	if (table_addr(n, &d->peer, &addr)) {
		dial_addr(n, d, &addr);
		return;
	}
	rc = p2p_overlay_lookup(n->ov, node_now(n), &d->peer, &d->lookup_id);
	if (rc < 0) {
		dial_finish(n, d, NULL, rc == -EBUSY ? "busy" : "internal",
			    "lookup failed to start");
		return;
	}
	d->state = DIAL_LOOKUP;
	node_drain(n);
}

void tun_link_get(struct p2pd_node *n, const struct p2p_peerid *peer,
		  struct tun_waiter *w)
{
	struct link *l = node_find_up(n, peer);
	struct tun_dial *d;

	w->d = NULL;
	if (l) {
		w->done(n, w, l, false, NULL, NULL);
		return;
	}
	if (n->stopping) {
		w->done(n, w, NULL, false, "internal", "daemon shutting down");
		return;
	}
	if (p2p_peerid_equal(peer, &n->ident.id)) {
		w->done(n, w, NULL, false, "peer_unreachable",
			"that is this daemon's own peer ID");
		return;
	}
	d = dial_find(n, peer);
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d) {
			w->done(n, w, NULL, false, "internal", "out of memory");
			return;
		}
		d->peer = *peer;
		d->deadline = node_now(n) + TUN_DIAL_TIMEOUT_MS;
		d->next = n->tun.dials;
		n->tun.dials = d;
		w->d = d;
		w->next = NULL;
		d->waiters = w;
		dial_start(n, d);
		return;
	}
	w->d = d;
	w->next = d->waiters;
	d->waiters = w;
}

void tun_link_cancel(struct p2pd_node *n, struct tun_waiter *w)
{
	struct tun_dial *d = w->d;

	if (!d)
		return;
	for (struct tun_waiter **pp = &d->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->d = NULL;
	/* Nobody waits: the dial, if any, goes on and is simply kept. */
	if (!d->waiters) {
		dial_unlink(n, d);
		free(d);
	}
}

bool tunnel_lookup_done(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	struct tun_dial *d;
	char msg[200];

	for (d = n->tun.dials; d; d = d->next)
		if (d->state == DIAL_LOOKUP && d->lookup_id == a->id)
			break;
	if (!d)
		return false;
	/* A link may have come up meanwhile (the peer dialled us). */
	struct link *l = node_find_up(n, &d->peer);
	if (l) {
		dial_finish(n, d, l, NULL, NULL);
		return true;
	}
	for (size_t i = 0; i < a->ncontacts; i++) {
		if (p2p_peerid_equal(&a->contacts[i].id, &d->peer) &&
		    a->contacts[i].addr.family != 0) {
			struct p2p_addr addr = a->contacts[i].addr;
			dial_addr(n, d, &addr);
			return true;
		}
	}
	snprintf(msg, sizeof(msg), "the peer is %s",
		 a->found ? "not dialable (no address it can be dialled at)"
			  : "not found as a dialable node in the overlay");
	dial_punch(n, d, msg);
	return true;
}

void tunnel_link_hello(struct p2pd_node *n, struct link *l)
{
	struct tun_dial *d = dial_find(n, &l->peer);

	if (d)
		dial_finish(n, d, l, NULL, NULL);
}

void tun_dials_link_gone(struct p2pd_node *n, struct link *l, const char *why)
{
	struct tun_dial *d, *next;
	char a[P2P_ADDR_TEXT_MAX], msg[200];

	for (d = n->tun.dials; d; d = next) {
		next = d->next;
		if (d->link != l)
			continue;
		struct link *o = node_find_up(n, &d->peer);
		if (o && o != l) {
			dial_finish(n, d, o, NULL, NULL);
			next = n->tun.dials; /* waiters may change the list */
			continue;
		}
		if (d->state == DIAL_RELAY) {
			log_debug("tunnel: relay attempt failed (%s)", why);
			dial_relay(n, d, NULL);
			next = n->tun.dials;
			continue;
		}
		p2p_addr_format(&l->remote, a, sizeof(a));
		snprintf(msg, sizeof(msg), "dial %s failed (%s)", a, why);
		dial_punch(n, d, msg);
		next = n->tun.dials;
	}
}

void tun_dials_expire(struct p2pd_node *n, uint64_t now)
{
	struct tun_dial *d;

	for (d = n->tun.dials; d; d = d->next) {
		if (now >= d->deadline) {
			dial_finish(n, d, NULL, "timeout",
				    d->state == DIAL_PUNCH
					? "no direct link in time (hole "
					  "punching did not finish)"
				    : d->state == DIAL_RELAY
					? "no relayed link in time"
					: "no direct link in time");
			tun_dials_expire(n, now); /* the list changed */
			return;
		}
	}
}

void tun_dials_fail_all(struct p2pd_node *n, const char *code, const char *msg)
{
	while (n->tun.dials)
		dial_finish(n, n->tun.dials, NULL, code, msg);
}

void tun_dials_punch_failed(struct p2pd_node *n, const struct p2p_peerid *peer,
			    const char *msg)
{
	struct tun_dial *d = dial_find(n, peer);

	if (d && d->state == DIAL_PUNCH)
		dial_relay(n, d, msg);
}
