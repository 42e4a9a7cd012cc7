/*
 * Reaching a peer (reach.h): the glue of core/reach.h. Events from the
 * layers below (a link up or gone, a lookup done, a punch failed, time)
 * go into the core; its requests are carried out, and its completions
 * told to the waiters, from the after-input pass.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/reach.h"
#include "log.h"
#include "ovl.h"
#include "progress.h"
#include "punch.h"
#include "reach.h"
#include "relay.h"

struct reach {
	struct p2p_reach *core;
	struct reach_waiter *failed; /* told from the after-input pass */
};

int reach_module_init(struct p2pd_node *n)
{
	/* Issue 8: relays are asked while the punch runs; a relayed link up
	 * first waits a little for the punch, then serves; the punch is
	 * asked for while the lookup runs (reach.h). */
	struct p2p_reach_config cfg = {.self = n->ident.id,
				       .relay_with_punch = true,
				       .punch_early = true,
				       .punch_grace_ms =
					   P2P_REACH_PUNCH_GRACE_MS,
				       .relay_near = true};

	n->reach = calloc(1, sizeof(*n->reach));
	if (!n->reach)
		return -ENOMEM;
	n->reach->core = p2p_reach_new(&cfg);
	return n->reach->core ? 0 : -ENOMEM;
}

void reach_free(struct p2pd_node *n)
{
	if (!n->reach)
		return;
	p2p_reach_free(n->reach->core);
	free(n->reach);
	n->reach = NULL;
}

static uint64_t token(const struct reach_waiter *w)
{
	return (uint64_t)(uintptr_t)w;
}

static struct p2p_reach_link rlink(const struct link *l)
{
	struct p2p_reach_link r = {.id = link_id(l)};

	r.kind = link_kind(l) == LINK_RELAY    ? P2P_REACH_K_RELAYED
		 : link_kind(l) == LINK_DIRECT ? P2P_REACH_K_PUNCHED
					       : P2P_REACH_K_DIRECT;
	return r;
}

/* The best link up to peer: a TCP link of its own (dialled, accepted or
 * punched) before a relayed one, so that once a punch has succeeded new
 * tunnels go direct while those on the relay keep it. */
static struct link *best_up(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	struct link *l = link_find_up(n, peer, LINK_KINDS_TCP);

	return l ? l : link_find_up(n, peer, LINK_KINDS_ALL);
}

/* The link to peer that is up, for the core (NULL: none). */
static const struct p2p_reach_link *up_of(struct p2pd_node *n,
					  const struct p2p_peerid *peer,
					  struct p2p_reach_link *buf)
{
	struct link *l = peer ? best_up(n, peer) : NULL;

	if (!l)
		return NULL;
	*buf = rlink(l);
	return buf;
}

void reach_get(struct p2pd_node *n, const struct p2p_peerid *peer,
	       struct reach_waiter *w)
{
	struct p2p_reach_link ub;
	struct p2p_addr addr = {0};
	int rc;

	const struct p2p_reach_link *up = up_of(n, peer, &ub);

	w->code = w->msg = NULL;
	/* The routing table is searched only when a dial may follow. */
	if (!up)
		ovl_table_addr(n, peer, &addr);
	rc = p2p_reach_get(n->reach->core, node_now(n), peer, token(w), up,
			   &addr);
	if (rc == 0)
		return;
	w->code = rc == -EBUSY ? "busy" : "internal";
	w->msg = rc == -EBUSY ? "too many peers being reached at once"
			      : "cannot reach the peer";
	w->next = n->reach->failed;
	n->reach->failed = w;
}

void reach_cancel(struct p2pd_node *n, struct reach_waiter *w)
{
	for (struct reach_waiter **pp = &n->reach->failed; *pp;
	     pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
	p2p_reach_cancel(n->reach->core, token(w));
}

/* ---- the core's requests ---- */

static void on_lookup(void *arg, const struct p2p_ov_action *a)
{
	struct p2pd_node *n = arg;

	/* A link that came up meanwhile was told to the core already. */
	p2p_reach_lookup_done(n->reach->core, node_now(n), a->id, a->found,
			      a->contacts, a->ncontacts, NULL);
}

static void on_punch_failed(void *arg, const struct p2p_peerid *peer,
			    enum p2p_punch_reason why, const char *msg)
{
	struct p2pd_node *n = arg;

	p2p_reach_punch_failed(n->reach->core, node_now(n), peer, why, msg);
}

void reach_punch_dial(void *arg, const struct p2p_peerid *peer,
		      const struct p2p_addr *at)
{
	struct p2pd_node *n = arg;
	char msg[P2P_REACH_TEXT_MAX], a[P2P_ADDR_TEXT_MAX];

	if (p2p_reach_dial_hint(n->reach->core, node_now(n), peer, at) !=
	    -EALREADY)
		return;
	p2p_addr_format(at, a, sizeof(a));
	snprintf(msg, sizeof(msg),
		 "no direct link: the peer says it is dialable at %s, but it "
		 "could not be dialled",
		 a);
	p2p_reach_punch_failed(n->reach->core, node_now(n), peer,
			       P2P_PUNCH_R_NONE, msg);
}

void reach_punch_scheduled(void *arg, const struct p2p_peerid *peer,
			   enum p2p_nat_type peer_nat, bool primer,
			   size_t ncand, bool v6)
{
	struct p2pd_node *n = arg;
	enum p2p_nat_type own = p2p_nat_type(ovl_nat(n));
	struct p2p_addr map;
	bool dialled_back;

	if (primer)
		return; /* the peer's punch: nobody here waits on a relay */
	/* We are public (or peers dial us: our REQUEST said DIALABLE) and
	 * listen on IPv4, the peer's NAT endpoint-dependent: it dials us
	 * outright (nat/punch_sess.c), likely. */
	dialled_back = (own == P2P_NAT_NONE || ovl_dialable(n, &map)) &&
		       peer_nat == P2P_NAT_ENDPOINT_DEPENDENT &&
		       node_listen_port(n, 4) != 0;
	/* Otherwise one side that cannot be predicted: the replier primes
	 * no endpoint our SYN could come from, or we offered none. A relay
	 * up meanwhile is the answer (the punch goes on in the background).
	 * The NAT types are IPv4's: with an IPv6 candidate (no NAT66, no
	 * prediction needed) the punch is likely whatever they say. With
	 * nothing we can dial (issue 11: an IPv6-only node and an IPv4-only
	 * peer) it cannot work at all: the replier's primes never reach us. */
	if (!dialled_back &&
	    (ncand == 0 || (!v6 && (!p2p_punch_predictable(peer_nat) ||
				    !p2p_punch_predictable(own))))) {
		p2p_reach_punch_unlikely(n->reach->core, node_now(n), peer);
		return;
	}
	/* Our punch starts on the REPLY that just measured the signalling
	 * round trip: it tells how long the relay should wait for it. */
	p2p_reach_punch_expect(n->reach->core, node_now(n), peer,
			       punch_sig_rtt(n, peer));
}

static void relay_candidates(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	struct p2p_peerid ids[NODE_DEF_MAX_LINKS];
	size_t c = 0;

	for (struct link *l = link_first(n); l && c < NODE_DEF_MAX_LINKS;
	     l = link_next_of(l))
		if (link_is_up(l) && link_kind(l) != LINK_RELAY &&
		    link_purpose(l) == LP_OVERLAY)
			ids[c++] = *link_peer(l);
	p2p_reach_relays(n->reach->core, node_now(n), peer, ids, c);
}

static void ask_relay(struct p2pd_node *n, const struct p2p_reach_action *a)
{
	struct link *via = link_find_up(n, &a->via, LINK_KINDS_TCP), *rl = NULL;
	int rc = via ? relay_open(n, via, &a->peer, &rl) : -ENOTCONN;

	if (rc == 0) {
		char v[P2P_ID_TEXT_LEN + 1], p[P2P_ID_TEXT_LEN + 1];
		p2p_peerid_to_text(&a->via, v);
		p2p_peerid_to_text(&a->peer, p);
		log_debug("reach: asking %s to relay to %s", v, p);
	}
	p2p_reach_relay_started(n->reach->core, node_now(n), &a->peer, rc,
				rc == 0 ? link_id(rl) : 0);
}

/* A relay candidate (a server nearest the peer) we hold no link to: dial
 * it; RELAY via it follows once its link is up. A link that came up
 * since the core asked is used at once. */
static void relay_dial(struct p2pd_node *n, const struct p2p_reach_action *a)
{
	struct link *l = link_find_up(n, &a->via, LINK_KINDS_TCP);
	struct p2p_reach_link rl;
	int err = 0;

	if (l) {
		rl = rlink(l);
		p2p_reach_relay_dial_started(n->reach->core, node_now(n),
					     &a->peer, 0, rl.id);
		p2p_reach_link_up(n->reach->core, node_now(n), &a->via, &rl);
		return;
	}
	l = link_dial(n, &a->addr, &a->via, LP_OVERLAY, &err);
	if (l) {
		char v[P2P_ID_TEXT_LEN + 1], p[P2P_ID_TEXT_LEN + 1];
		char at[P2P_ADDR_TEXT_MAX];
		p2p_peerid_to_text(&a->via, v);
		p2p_peerid_to_text(&a->peer, p);
		p2p_addr_format(&a->addr, at, sizeof(at));
		log_debug("reach: dialling %s at %s to relay to %s", v, at, p);
	}
	p2p_reach_relay_dial_started(n->reach->core, node_now(n), &a->peer,
				     l ? 0 : err, l ? link_id(l) : 0);
}

static void dial(struct p2pd_node *n, const struct p2p_reach_action *a)
{
	char at[P2P_ADDR_TEXT_MAX];
	struct link *l;
	int err = 0;

	l = link_dial(n, &a->addr, &a->peer, LP_OVERLAY, &err);
	if (l) {
		p2p_addr_format(&a->addr, at, sizeof(at));
		log_debug("tunnel: dialling %s for a direct link", at);
	}
	p2p_reach_dial_started(n->reach->core, node_now(n), &a->peer,
			       l ? 0 : err, l ? link_id(l) : 0,
			       l ? NULL : link_strerror(err));
}

static void done(struct p2pd_node *n, const struct p2p_reach_action *a)
{
	struct reach_waiter *w = (struct reach_waiter *)(uintptr_t)a->token;
	struct link *l = NULL;
	const char *code = a->code, *msg = a->text;

	if (a->link.id) {
		/* Closed since (a duplicate, a failure): another link to the
		 * peer will do. */
		l = link_get(n, a->link.id);
		if (!l || link_kind(l) == LINK_RELAY)
			l = best_up(n, &a->peer);
		if (!l) {
			code = "peer_unreachable";
			msg = "the link to the peer closed";
		}
	}
	w->done(n, w, l, a->dialled, l ? NULL : code, l ? NULL : msg);
}

static void carry_out(struct p2pd_node *n, const struct p2p_reach_action *a)
{
	struct p2p_reach *r = n->reach->core;
	uint64_t id = 0;
	int rc;

	/* An upgrade's punch has no waiter to tell (the pair is relayed). */
	if (!a->upgrade)
		progress_reach_step(n, a);
	switch (a->type) {
	case P2P_REACH_LOOKUP:
		rc = ovl_lookup(n, &a->peer, on_lookup, n, &id);
		p2p_reach_lookup_started(r, node_now(n), &a->peer, rc, id);
		break;
	case P2P_REACH_DIAL:
		dial(n, a);
		break;
	case P2P_REACH_PUNCH:
		if (a->upgrade) {
			char who[P2P_ID_TEXT_LEN + 1];
			p2p_peerid_to_text(&a->peer, who);
			log_info("reach %s: punching again: %s", who, a->text);
		}
		rc = punch_start(n, &a->peer, a->text, on_punch_failed, n);
		p2p_reach_punch_started(r, node_now(n), &a->peer, rc, NULL);
		break;
	case P2P_REACH_RELAYS:
		relay_candidates(n, &a->peer);
		break;
	case P2P_REACH_RELAY:
		ask_relay(n, a);
		break;
	case P2P_REACH_RELAY_DIAL:
		relay_dial(n, a);
		break;
	case P2P_REACH_DONE:
		done(n, a);
		break;
	}
}

bool reach_after(void *arg)
{
	struct p2pd_node *n = arg;
	struct p2p_reach_action a;
	struct reach_waiter *w;
	bool did = false;

	while ((w = n->reach->failed) != NULL) {
		n->reach->failed = w->next;
		did = true;
		w->done(n, w, NULL, false, w->code, w->msg);
	}
	while (p2p_reach_poll(n->reach->core, &a)) {
		did = true;
		carry_out(n, &a);
	}
	return did;
}

/* ---- events ---- */

/* A direct link to peer is up: relayed links to it that nobody uses
 * (asked alongside a punch that has now won) are closed; those that
 * carry tunnels stay until they are idle. Only the end that asked for
 * the relay closes it: the other end cannot know that a stream is about
 * to be opened on it (a waiter told of the relayed link in this same
 * pass), and would close it under that stream. */
static void drop_idle_relays(struct p2pd_node *n, const struct link *direct)
{
	for (struct link *o = link_first(n); o; o = link_next_of(o)) {
		if (o == direct || link_kind(o) != LINK_RELAY ||
		    !link_outbound(o) || !link_is_up(o) || link_users(o) != 0 ||
		    !p2p_peerid_equal(link_peer(o), link_peer(direct)))
			continue;
		log_debug("reach: relayed link closed, a direct one is up");
		link_close(o, 0, "direct link up");
	}
}

static void on_up(void *arg, struct link *l, bool first)
{
	struct p2pd_node *n = arg;
	struct p2p_reach_link rl = rlink(l);

	if (!first)
		return;
	p2p_reach_link_up(n->reach->core, node_now(n), link_peer(l), &rl);
	if (link_kind(l) != LINK_RELAY && link_purpose(l) == LP_OVERLAY)
		drop_idle_relays(n, l);
	/* The relay asked alongside a punch answered after the punch won
	 * (a fast path): nobody waits for it, and its circuit would hold a
	 * slot on the relay until the idle deadline. */
	else if (link_kind(l) == LINK_RELAY && link_outbound(l) &&
		 link_users(l) == 0 &&
		 link_find_up(n, link_peer(l), LINK_KINDS_TCP)) {
		log_debug("reach: relayed link closed, a direct one was up");
		link_close(l, 0, "direct link up");
	}
}

static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	const struct p2p_peerid *peer =
	    link_hello_rx(l) ? link_peer(l) : link_expect(l);
	struct p2p_reach_link ub;

	p2p_reach_link_gone(n->reach->core, node_now(n), link_id(l), why,
			    up_of(n, peer, &ub));
}

const struct node_link_hooks reach_link_hooks = {
    .up = on_up,
    .gone = on_gone,
};

uint64_t reach_next(void *arg)
{
	struct p2pd_node *n = arg;

	return p2p_reach_next_timer(n->reach->core);
}

void reach_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;

	p2p_reach_expire(n->reach->core, now);
}

const struct p2p_reach_stats *reach_stats(struct p2pd_node *n)
{
	return p2p_reach_stats(n->reach->core);
}

void reach_stop(struct p2pd_node *n)
{
	p2p_reach_stop(n->reach->core);
	reach_after(n);
}
