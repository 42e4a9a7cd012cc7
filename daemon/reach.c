/*
 * Reaching a peer (reach.h). One struct reach_dial per peer goes through
 * LOOKUP -> CONNECT -> PUNCH -> RELAY as each way fails, and ends DONE
 * with a link or a reason; the after-input pass then tells its waiters.
 * Only when no relay reaches the peer is it unreachable, and the message
 * says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ovl.h"
#include "punch.h"
#include "reach.h"
#include "relay.h"

enum dial_state {
	DIAL_LOOKUP,  /* overlay lookup of the peer's address */
	DIAL_CONNECT, /* link dialled, waiting for its HELLO */
	DIAL_PUNCH,   /* hole punching (punch.c), waiting for its HELLO */
	DIAL_RELAY,   /* a relayed link (relay.c), waiting for its HELLO */
	DIAL_DONE,    /* finished: waiters are told after this input */
};

/* Getting a link to one peer; every waiter for that peer shares it. */
struct reach_dial {
	struct reach_dial *next;
	struct p2p_peerid peer;
	enum dial_state state;
	uint64_t lookup_id;
	uint32_t link; /* the attempt's link ID */
	uint64_t deadline;
	struct reach_waiter *waiters;
	char why[200]; /* DIAL_RELAY: why there is no direct link */
	unsigned ntried;
	struct p2p_peerid tried[RELAY_TRIES]; /* relays asked */
	/* DIAL_DONE: the outcome. */
	uint32_t result;
	bool dialled;
	const char *code;
	char msg[320];
};

struct reach {
	struct reach_dial *dials;
};

int reach_module_init(struct p2pd_node *n)
{
	n->reach = calloc(1, sizeof(*n->reach));
	return n->reach ? 0 : -ENOMEM;
}

/* The running (not finished) dial to peer. */
static struct reach_dial *dial_find(struct p2pd_node *n,
				    const struct p2p_peerid *peer)
{
	for (struct reach_dial *d = n->reach->dials; d; d = d->next)
		if (d->state != DIAL_DONE && p2p_peerid_equal(&d->peer, peer))
			return d;
	return NULL;
}

static struct reach_dial *dial_new(struct p2pd_node *n,
				   const struct p2p_peerid *peer)
{
	struct reach_dial *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->peer = *peer;
	d->deadline = node_now(n) + REACH_TIMEOUT_MS;
	d->next = n->reach->dials;
	n->reach->dials = d;
	return d;
}

static void dial_unlink(struct p2pd_node *n, struct reach_dial *d)
{
	for (struct reach_dial **pp = &n->reach->dials; *pp;
	     pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			return;
		}
	}
}

/* Done: the waiters are told after the current input (reach_after). */
static void dial_finish(struct reach_dial *d, struct link *l, bool dialled,
			const char *code, const char *msg)
{
	d->state = DIAL_DONE;
	d->result = l ? link_id(l) : 0;
	d->dialled = dialled;
	d->code = code;
	snprintf(d->msg, sizeof(d->msg), "%s", msg ? msg : "");
}

static void tell_waiters(struct p2pd_node *n, struct reach_dial *d)
{
	struct reach_waiter *w;
	struct link *l = NULL;
	const char *code = d->code, *msg = d->msg;

	if (d->result) {
		/* Closed since (a duplicate, a failure): another link to the
		 * peer will do. */
		l = link_get(n, d->result);
		if (!l)
			l = link_find_up(n, &d->peer, LINK_KINDS_ALL);
		if (!l) {
			code = "peer_unreachable";
			msg = "the link to the peer closed";
		}
	}
	while ((w = d->waiters) != NULL) {
		d->waiters = w->next;
		w->d = NULL;
		w->done(n, w, l, d->dialled, l ? NULL : code, l ? NULL : msg);
	}
}

bool reach_after(void *arg)
{
	struct p2pd_node *n = arg;
	struct reach_dial *d;
	bool did = false;

	/* A waiter's callback may start another dial: from the top each
	 * time, until none is done. */
	for (d = n->reach->dials; d;) {
		if (d->state != DIAL_DONE) {
			d = d->next;
			continue;
		}
		dial_unlink(n, d);
		tell_waiters(n, d);
		free(d);
		did = true;
		d = n->reach->dials;
	}
	return did;
}

static bool tried(const struct reach_dial *d, const struct p2p_peerid *id)
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
static void dial_relay(struct p2pd_node *n, struct reach_dial *d,
		       const char *why)
{
	char msg[320];

	if (why) {
		snprintf(d->why, sizeof(d->why), "%s", why);
		d->deadline = node_now(n) + REACH_TIMEOUT_MS;
	}
	d->state = DIAL_RELAY;
	d->link = 0;
	while (d->ntried < RELAY_TRIES) {
		struct link *best = NULL, *rl;
		for (struct link *l = link_first(n); l; l = link_next_of(l)) {
			if (!link_is_up(l) || link_kind(l) == LINK_RELAY ||
			    link_purpose(l) != LP_OVERLAY ||
			    p2p_peerid_equal(link_peer(l), &d->peer) ||
			    tried(d, link_peer(l)))
				continue;
			if (!best ||
			    nearer(link_peer(l), link_peer(best), &d->peer))
				best = l;
		}
		if (!best)
			break;
		d->tried[d->ntried++] = *link_peer(best);
		if (relay_open(n, best, &d->peer, &rl) == 0) {
			log_debug("tunnel: asking a relay");
			d->link = link_id(rl);
			return;
		}
	}
	snprintf(msg, sizeof(msg), "%s; no relay reached the peer (%u asked)",
		 d->why, d->ntried);
	dial_finish(d, NULL, true, "peer_unreachable", msg);
}

static void on_punch_failed(void *arg, const struct p2p_peerid *peer,
			    const char *msg)
{
	struct p2pd_node *n = arg;
	struct reach_dial *d = dial_find(n, peer);

	if (d && d->state == DIAL_PUNCH)
		dial_relay(n, d, msg);
}

/* Not dialable: punch a hole; context says why we punch. */
static void dial_punch(struct p2pd_node *n, struct reach_dial *d,
		       const char *context)
{
	char msg[256];
	int rc;

	d->link = 0;
	d->state = DIAL_PUNCH;
	d->deadline = node_now(n) + REACH_PUNCH_MS;
	rc = punch_start(n, &d->peer, context, on_punch_failed, n);
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

static void dial_addr(struct p2pd_node *n, struct reach_dial *d,
		      const struct p2p_addr *addr)
{
	char a[P2P_ADDR_TEXT_MAX], msg[128];
	struct link *l;
	int err;

	p2p_addr_format(addr, a, sizeof(a));
	l = link_dial(n, addr, &d->peer, LP_OVERLAY, &err);
	if (!l) {
		snprintf(msg, sizeof(msg), "no direct link: dial %s: %s", a,
			 uv_strerror(err));
		dial_finish(d, NULL, true, "peer_unreachable", msg);
		return;
	}
	log_debug("tunnel: dialling %s for a direct link", a);
	d->link = link_id(l);
	d->state = DIAL_CONNECT;
}

static void on_lookup(void *arg, const struct p2p_ov_action *a)
{
	struct p2pd_node *n = arg;
	struct reach_dial *d;
	struct link *l;
	char msg[200];

	for (d = n->reach->dials; d; d = d->next)
		if (d->state == DIAL_LOOKUP && d->lookup_id == a->id)
			break;
	if (!d)
		return;
	/* A link may have come up meanwhile (the peer dialled us). */
	l = link_find_up(n, &d->peer, LINK_KINDS_ALL);
	if (l) {
		dial_finish(d, l, true, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < a->ncontacts; i++) {
		if (p2p_peerid_equal(&a->contacts[i].id, &d->peer) &&
		    a->contacts[i].addr.family != 0) {
			struct p2p_addr addr = a->contacts[i].addr;
			dial_addr(n, d, &addr);
			return;
		}
	}
	snprintf(msg, sizeof(msg), "the peer is %s",
		 a->found ? "not dialable (no address it can be dialled at)"
			  : "not found as a dialable node in the overlay");
	dial_punch(n, d, msg);
}

static void dial_start(struct p2pd_node *n, struct reach_dial *d)
{
	struct p2p_addr addr;
	int rc;

	if (ovl_table_addr(n, &d->peer, &addr)) {
		dial_addr(n, d, &addr);
		return;
	}
	rc = ovl_lookup(n, &d->peer, on_lookup, n, &d->lookup_id);
	if (rc < 0) {
		dial_finish(d, NULL, true, rc == -EBUSY ? "busy" : "internal",
			    "lookup failed to start");
		return;
	}
	d->state = DIAL_LOOKUP;
}

static void wait_on(struct reach_dial *d, struct reach_waiter *w)
{
	w->d = d;
	w->next = d->waiters;
	d->waiters = w;
}

/* An answer known at once: a finished dial of its own, told later. */
static void answer(struct p2pd_node *n, const struct p2p_peerid *peer,
		   struct reach_waiter *w, struct link *l, const char *code,
		   const char *msg)
{
	struct reach_dial *d = dial_new(n, peer);

	if (!d) {
		/* No memory even for that: nothing can be told later. */
		w->d = NULL;
		w->done(n, w, NULL, false, "internal", "out of memory");
		return;
	}
	wait_on(d, w);
	dial_finish(d, l, false, code, msg);
}

void reach_get(struct p2pd_node *n, const struct p2p_peerid *peer,
	       struct reach_waiter *w)
{
	struct link *l = link_find_up(n, peer, LINK_KINDS_ALL);
	struct reach_dial *d;

	w->d = NULL;
	if (l) {
		answer(n, peer, w, l, NULL, NULL);
		return;
	}
	if (n->stopping) {
		answer(n, peer, w, NULL, "internal", "daemon shutting down");
		return;
	}
	if (p2p_peerid_equal(peer, &n->ident.id)) {
		answer(n, peer, w, NULL, "peer_unreachable",
		       "that is this daemon's own peer ID");
		return;
	}
	d = dial_find(n, peer);
	if (d) {
		wait_on(d, w);
		return;
	}
	d = dial_new(n, peer);
	if (!d) {
		answer(n, peer, w, NULL, "internal", "out of memory");
		return;
	}
	wait_on(d, w);
	dial_start(n, d);
}

void reach_cancel(struct p2pd_node *n, struct reach_waiter *w)
{
	struct reach_dial *d = w->d;

	if (!d)
		return;
	for (struct reach_waiter **pp = &d->waiters; *pp; pp = &(*pp)->next) {
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

/* ---- link events ---- */

static void on_up(void *arg, struct link *l, bool first)
{
	struct p2pd_node *n = arg;
	struct reach_dial *d;

	if (!first || !(d = dial_find(n, link_peer(l))))
		return;
	dial_finish(d, l, true, NULL, NULL);
}

static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	char a[P2P_ADDR_TEXT_MAX], msg[200];

	for (struct reach_dial *d = n->reach->dials; d; d = d->next) {
		if (d->state == DIAL_DONE || d->link != link_id(l))
			continue;
		struct link *o = link_find_up(n, &d->peer, LINK_KINDS_ALL);
		if (o) {
			dial_finish(d, o, true, NULL, NULL);
		} else if (d->state == DIAL_RELAY) {
			log_debug("tunnel: relay attempt failed (%s)", why);
			dial_relay(n, d, NULL);
		} else {
			p2p_addr_format(link_remote(l), a, sizeof(a));
			snprintf(msg, sizeof(msg), "dial %s failed (%s)", a,
				 why);
			dial_punch(n, d, msg);
		}
	}
}

const struct node_link_hooks reach_link_hooks = {
    .up = on_up,
    .gone = on_gone,
};

/* ---- time ---- */

uint64_t reach_next(void *arg)
{
	struct p2pd_node *n = arg;
	uint64_t t = UINT64_MAX;

	for (struct reach_dial *d = n->reach->dials; d; d = d->next)
		if (d->state != DIAL_DONE && d->deadline < t)
			t = d->deadline;
	return t;
}

void reach_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;

	for (struct reach_dial *d = n->reach->dials; d; d = d->next) {
		if (d->state == DIAL_DONE || now < d->deadline)
			continue;
		dial_finish(d, NULL, true, "timeout",
			    d->state == DIAL_PUNCH
				? "no direct link in time (hole punching did "
				  "not finish)"
			    : d->state == DIAL_RELAY
				? "no relayed link in time"
				: "no direct link in time");
	}
}

void reach_stop(struct p2pd_node *n)
{
	for (struct reach_dial *d = n->reach->dials; d; d = d->next)
		if (d->state != DIAL_DONE)
			dial_finish(d, NULL, true, "internal",
				    "daemon shutting down");
	reach_after(n);
}

void reach_free(struct p2pd_node *n)
{
	if (!n->reach)
		return;
	while (n->reach->dials) {
		struct reach_dial *d = n->reach->dials;
		n->reach->dials = d->next;
		free(d);
	}
	free(n->reach);
	n->reach = NULL;
}
