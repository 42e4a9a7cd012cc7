/*
 * The reach phase: random pairs ask for a link to each other through the
 * daemon's own reach core (core/reach.h), which the simulator drives the
 * way daemon/reach.c does, over a model of what the daemon's glue would
 * see:
 *
 * - NAT kinds: servers have none; a client is endpoint-dependent with
 *   probability --dependent, else port-preserving or endpoint-independent
 *   (even odds). Hole punching works between two NATs unless one is
 *   endpoint-dependent (as in the NAT lab): both dependent are refused at
 *   the first reply, one dependent fails when the 8 s schedule runs out;
 * - DIAL: a live server answers (link up after two round trips: TCP and
 *   the handshake); a client or a dead node times out (--dial-timeout-ms);
 * - PUNCH: the routed signalling takes two round trips (request and
 *   reply, over about two overlay hops), then the start offset, then one
 *   round trip of SYNs and the handshake;
 * - RELAY_DIAL of a relay candidate: as DIAL (the link counts as ours
 *   from then on);
 * - RELAY via R: the requester must hold a link to R (as the daemon's
 *   glue, which answers -ENOTCONN otherwise); R must hold an overlay link
 *   to the target (a client's links are to the servers nearest its ID),
 *   else it refuses. Each circuit is counted on R.
 *
 * The relay candidates the requester offers the core (RELAYS) are the
 * servers it holds links to. With --relays lookup (the default, as the
 * daemon) the core asks first the servers a lookup of the target's ID
 * returned (the target's neighbours, which it links to), dialling them
 * if need be: that is what makes relays work at any network size.
 */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reach.h"

#define SIM_PAIR_MS 20		   /* between pair starts */
#define SIM_PUNCH_SCHEDULE_MS 8000 /* a schedule that cannot work */
#define SIM_REACH_DRAIN_MS 60000   /* after the last pair starts */

enum sim_in_type { IN_UP, IN_GONE, IN_PUNCH_FAILED };

/* An input to a node's reach core, delivered by an event. */
struct sim_in {
	uint8_t type, kind;
	uint32_t node, peer, link;
	const char *text;
};

/* A link the model made: who holds it and to whom; up once it is. */
struct sim_rlink {
	uint32_t node, peer;
	bool up;
};

struct sim_lkmap {
	uint32_t node;
	uint64_t ovid;
};

struct sim_reach {
	struct p2p_reach **core; /* per node, made on first use */
	uint32_t *timer_gen;
	uint8_t *nat;
	struct sim_in *in;
	size_t nin, capin;
	struct sim_rlink *links; /* index: link ID - 1 */
	size_t nlinks, caplinks;
	struct sim_lkmap *lk;
	size_t nlk, caplk;
	uint32_t *circuits; /* per node: circuits it relays */
};

static void *grow(void *p, size_t *cap, size_t need, size_t size, bool *oom)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap * 2 : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * size);
	if (!q) {
		*oom = true;
		return p;
	}
	*cap = c;
	return q;
}

static uint32_t new_link(struct sim *s, uint32_t node, uint32_t peer)
{
	struct sim_reach *r = s->rc;

	r->links = grow(r->links, &r->caplinks, r->nlinks + 1,
			sizeof(*r->links), &s->oom);
	if (s->oom)
		return 0;
	/* grow() does not zero: a link is down until its IN_UP arrives. */
	r->links[r->nlinks] = (struct sim_rlink){.node = node, .peer = peer};
	return (uint32_t)++r->nlinks;
}

static void input(struct sim *s, uint64_t delay, uint8_t type, uint32_t node,
		  uint32_t peer, uint32_t link, uint8_t kind, const char *text)
{
	struct sim_reach *r = s->rc;

	r->in = grow(r->in, &r->capin, r->nin + 1, sizeof(*r->in), &s->oom);
	if (s->oom)
		return;
	r->in[r->nin] = (struct sim_in){.type = type,
					.kind = kind,
					.node = node,
					.peer = peer,
					.link = link,
					.text = text};
	sim_schedule(s, s->now + delay, SIM_EV_REACH_IN, node, peer,
		     (uint32_t)r->nin++, NULL);
}

static uint64_t rtt(const struct sim *s, uint32_t a, uint32_t b)
{
	return 2 * (uint64_t)sim_latency(s, a, b);
}

static bool linked(struct sim *s, uint32_t a, uint32_t b)
{
	struct sim_link *l = sim_link_find(&s->nodes[a], b);

	return l && l->state == SIM_LINK_UP;
}

/* a holds a link to b: an overlay one, or one the model made (a relay
 * candidate dialled). */
static bool linked_any(struct sim *s, uint32_t a, uint32_t b)
{
	if (linked(s, a, b))
		return true;
	for (size_t k = 0; k < s->rc->nlinks; k++)
		if (s->rc->links[k].up && s->rc->links[k].node == a &&
		    s->rc->links[k].peer == b)
			return true;
	return false;
}

static struct p2p_reach *core_of(struct sim *s, uint32_t i)
{
	struct sim_reach *r = s->rc;

	if (!r->core[i]) {
		struct p2p_reach_config cfg = {
		    .self = s->nodes[i].id,
		    .relay_with_punch = s->p.relay_with_punch,
		    .relay_near = s->p.relays_lookup};
		r->core[i] = p2p_reach_new(&cfg);
		if (!r->core[i])
			s->oom = true;
	}
	return r->core[i];
}

static void rearm(struct sim *s, uint32_t i)
{
	uint64_t t = p2p_reach_next_timer(s->rc->core[i]);

	s->rc->timer_gen[i]++;
	if (t != UINT64_MAX)
		sim_schedule(s, t > s->now ? t : s->now, SIM_EV_REACH_TIMER, i,
			     0, s->rc->timer_gen[i], NULL);
}

/* ---- the core's requests, carried out by the model ---- */

static void dial(struct sim *s, uint32_t i, const struct p2p_reach_action *a)
{
	uint32_t j = sim_find(s, &a->peer);
	uint32_t id = new_link(s, i, j);

	s->c.dials++;
	p2p_reach_dial_started(s->rc->core[i], s->now, &a->peer, 0, id, NULL);
	if (j != SIM_NO_REC && s->nodes[j].alive && s->nodes[j].server)
		input(s, 2 * rtt(s, i, j), IN_UP, i, j, id, P2P_REACH_K_DIRECT,
		      NULL);
	else
		input(s, s->p.dial_timeout_ms, IN_GONE, i, j, id, 0,
		      "connection timed out");
}

static bool dependent(const struct sim *s, uint32_t i)
{
	return s->rc->nat[i] == P2P_NAT_ENDPOINT_DEPENDENT;
}

static void punch(struct sim *s, uint32_t i, const struct p2p_reach_action *a)
{
	uint32_t j = sim_find(s, &a->peer);
	uint64_t sig;

	p2p_reach_punch_started(s->rc->core[i], s->now, &a->peer, 0, NULL);
	if (j == SIM_NO_REC || !s->nodes[j].alive) {
		input(s, P2P_PUNCH_SIGNAL_MS, IN_PUNCH_FAILED, i, j, 0, 0,
		      "no direct link; hole punching failed: no answer");
		return;
	}
	sig = 2 * rtt(s, i, j); /* request and reply, over about two hops */
	if (dependent(s, i) && dependent(s, j)) {
		input(s, sig, IN_PUNCH_FAILED, i, j, 0, 0,
		      "no direct link; hole punching failed: both sides are "
		      "endpoint-dependent");
	} else if (dependent(s, i) || dependent(s, j)) {
		input(s, sig + SIM_PUNCH_SCHEDULE_MS, IN_PUNCH_FAILED, i, j, 0,
		      0, "no direct link; hole punching failed: timeout");
	} else {
		/* The requester connects when the REPLY arrives (the peer
		 * primed when the REQUEST did): SYN and SYN-ACK, then the
		 * handshake and both HELLOs (nat/punch.h). */
		uint32_t id = new_link(s, i, j);
		input(s, sig + 3 * rtt(s, i, j), IN_UP, i, j, id,
		      P2P_REACH_K_PUNCHED, NULL);
	}
}

static void relays(struct sim *s, uint32_t i, const struct p2p_reach_action *a)
{
	struct sim_node *nd = &s->nodes[i];
	struct p2p_peerid ids[512];
	size_t n = 0;

	for (uint32_t k = 0; k < nd->nlinks && n < 512; k++)
		if (nd->links[k].state == SIM_LINK_UP &&
		    s->nodes[nd->links[k].peer].server)
			ids[n++] = s->nodes[nd->links[k].peer].id;
	p2p_reach_relays(s->rc->core[i], s->now, &a->peer, ids, n);
}

/* A relay candidate near the target, not linked yet: dial it. */
static void relay_dial(struct sim *s, uint32_t i,
		       const struct p2p_reach_action *a)
{
	uint32_t v = sim_find(s, &a->via);
	uint32_t id = new_link(s, i, v);

	s->reach_relay_dials++;
	p2p_reach_relay_dial_started(s->rc->core[i], s->now, &a->peer, 0, id);
	if (v != SIM_NO_REC && s->nodes[v].alive && s->nodes[v].server)
		input(s, 2 * rtt(s, i, v), IN_UP, i, v, id, P2P_REACH_K_DIRECT,
		      NULL);
	else
		input(s, s->p.dial_timeout_ms, IN_GONE, i, v, id, 0,
		      "connection timed out");
}

static void relay(struct sim *s, uint32_t i, const struct p2p_reach_action *a)
{
	uint32_t v = sim_find(s, &a->via), j = sim_find(s, &a->peer);
	uint32_t id;
	uint64_t t = 0;

	if (v == SIM_NO_REC || !linked_any(s, i, v)) {
		/* As the daemon's glue: no link to it, nothing sent. */
		p2p_reach_relay_started(s->rc->core[i], s->now, &a->peer,
					-ENOTCONN, 0);
		return;
	}
	id = new_link(s, i, j);
	s->reach_relay_asks++;
	p2p_reach_relay_started(s->rc->core[i], s->now, &a->peer, 0, id);
	if (!s->nodes[v].alive) {
		input(s, s->p.dial_timeout_ms, IN_GONE, i, j, id, 0,
		      "relay gone");
		return;
	}
	t += rtt(s, i, v); /* RELAY_OPEN, and CLOSE or the path */
	if (j == SIM_NO_REC || !linked(s, v, j)) {
		s->reach_relay_refused++;
		input(s, t, IN_GONE, i, j, id, 0, "relay circuit closed");
		return;
	}
	s->rc->circuits[v]++;
	t += rtt(s, v, j) + rtt(s, i, v) + rtt(s, v, j); /* handshake */
	input(s, t, IN_UP, i, j, id, P2P_REACH_K_RELAYED, NULL);
}

static void done(struct sim *s, uint32_t i, const struct p2p_reach_action *a)
{
	struct sim_pair_rec *p = &s->pairs[a->token];

	p->done = true;
	p->ms = s->now - p->started;
	p->method = (uint8_t)a->method;
	p->ok = a->code == NULL;
}

static void drain(struct sim *s, uint32_t i)
{
	struct p2p_reach *c = s->rc->core[i];
	struct p2p_reach_action a;
	uint64_t id = 0;
	int rc;

	if (!c)
		return;
	while (p2p_reach_poll(c, &a)) {
		switch (a.type) {
		case P2P_REACH_LOOKUP:
			rc = p2p_overlay_lookup(s->nodes[i].ov, s->now, &a.peer,
						&id);
			if (rc == 0) {
				struct sim_reach *r = s->rc;
				r->lk = grow(r->lk, &r->caplk, r->nlk + 1,
					     sizeof(*r->lk), &s->oom);
				if (!s->oom)
					r->lk[r->nlk++] = (struct sim_lkmap){
					    .node = i, .ovid = id};
			}
			s->reach_lookups++;
			p2p_reach_lookup_started(c, s->now, &a.peer, rc, id);
			sim_after(s, i);
			break;
		case P2P_REACH_DIAL:
			dial(s, i, &a);
			break;
		case P2P_REACH_PUNCH:
			punch(s, i, &a);
			break;
		case P2P_REACH_RELAYS:
			relays(s, i, &a);
			break;
		case P2P_REACH_RELAY:
			relay(s, i, &a);
			break;
		case P2P_REACH_RELAY_DIAL:
			relay_dial(s, i, &a);
			break;
		case P2P_REACH_DONE:
			done(s, i, &a);
			break;
		}
	}
	rearm(s, i);
}

bool sim_reach_lookup_done(struct sim *s, uint32_t i,
			   const struct p2p_ov_action *a)
{
	struct sim_lkmap *m = NULL;

	if (!s->rc || !s->rc->core[i])
		return false;
	for (size_t k = 0; k < s->rc->nlk; k++)
		if (s->rc->lk[k].node == i && s->rc->lk[k].ovid == a->id)
			m = &s->rc->lk[k];
	if (!m)
		return false;
	p2p_reach_lookup_done(s->rc->core[i], s->now, a->id, a->found,
			      a->contacts, a->ncontacts, NULL);
	drain(s, i);
	return true;
}

/* ---- events ---- */

static void on_in(struct sim *s, const struct sim_in *in)
{
	struct p2p_reach *c = s->rc->core[in->node];
	struct p2p_reach_link l = {.id = in->link,
				   .kind = (enum p2p_reach_kind)in->kind};

	if (in->type == IN_UP && in->link)
		s->rc->links[in->link - 1].up = true;
	if (in->type == IN_UP)
		p2p_reach_link_up(c, s->now, &s->nodes[in->peer].id, &l);
	else if (in->type == IN_GONE)
		p2p_reach_link_gone(c, s->now, in->link, in->text, NULL);
	else
		p2p_reach_punch_failed(
		    c, s->now, &s->nodes[in->peer].id,
		    strstr(in->text, "both sides")  ? P2P_PUNCH_R_BOTH_DEPENDENT
		    : strstr(in->text, "no answer") ? P2P_PUNCH_R_NO_ANSWER
						    : P2P_PUNCH_R_TIMEOUT,
		    in->text);
	drain(s, in->node);
}

static bool relay_possible(struct sim *s, uint32_t dst)
{
	struct sim_node *d = &s->nodes[dst];

	if (d->server)
		return true; /* dialable */
	for (uint32_t k = 0; k < d->nlinks; k++)
		if (d->links[k].state == SIM_LINK_UP &&
		    s->nodes[d->links[k].peer].server &&
		    s->nodes[d->links[k].peer].alive)
			return true;
	return false;
}

static void on_pair(struct sim *s, uint32_t r)
{
	struct sim_pair_rec *p = &s->pairs[r];
	struct p2p_reach *c = core_of(s, p->src);
	struct p2p_reach_link up = {0};
	struct p2p_addr addr = {0};

	if (!c)
		return;
	p->started = s->now;
	p->relay_possible = relay_possible(s, p->dst);
	if (linked(s, p->src, p->dst))
		up.id = new_link(s, p->src, p->dst);
	if (s->nodes[p->dst].server)
		addr = s->nodes[p->dst].addr; /* as a routing table has it */
	if (p2p_reach_get(c, s->now, &s->nodes[p->dst].id, r,
			  up.id ? &up : NULL, &addr) < 0)
		return;
	drain(s, p->src);
}

void sim_reach_event(struct sim *s, const struct sim_event *e)
{
	switch (e->type) {
	case SIM_EV_PAIR:
		on_pair(s, e->aux);
		break;
	case SIM_EV_REACH_IN:
		on_in(s, &s->rc->in[e->aux]);
		break;
	case SIM_EV_REACH_TIMER:
		if (e->aux != s->rc->timer_gen[e->a])
			return;
		p2p_reach_expire(s->rc->core[e->a], s->now);
		drain(s, e->a);
		break;
	default:
		break;
	}
}

static uint32_t pick(struct sim *s, uint32_t not )
{
	for (;;) {
		uint32_t i = (uint32_t)sim_rng_below(&s->rng, s->n);
		if (s->nodes[i].alive && s->nodes[i].joined && i != not )
			return i;
	}
}

int sim_reach_run(struct sim *s)
{
	struct sim_reach *r;
	uint64_t t0 = s->now;

	if (s->p.pairs == 0)
		return 0;
	r = s->rc = calloc(1, sizeof(*r));
	s->pairs = calloc(s->p.pairs, sizeof(*s->pairs));
	if (!r || !s->pairs)
		return -ENOMEM;
	r->core = calloc(s->n, sizeof(*r->core));
	r->timer_gen = calloc(s->n, sizeof(*r->timer_gen));
	r->nat = calloc(s->n, sizeof(*r->nat));
	r->circuits = calloc(s->n, sizeof(*r->circuits));
	if (!r->core || !r->timer_gen || !r->nat || !r->circuits)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->nodes[i].server)
			r->nat[i] = P2P_NAT_NONE;
		else if (sim_rng_below(&s->rng, 1000000) <
			 (uint64_t)(s->p.dependent * 1000000))
			r->nat[i] = P2P_NAT_ENDPOINT_DEPENDENT;
		else
			r->nat[i] = sim_rng_below(&s->rng, 2)
					? P2P_NAT_PORT_PRESERVING
					: P2P_NAT_ENDPOINT_INDEPENDENT;
	}
	for (uint32_t p = 0; p < s->p.pairs; p++) {
		s->pairs[p].src = pick(s, SIM_NO_REC);
		s->pairs[p].dst = pick(s, s->pairs[p].src);
		s->pairs[p].dependent = dependent(s, s->pairs[p].src) ||
					dependent(s, s->pairs[p].dst);
		sim_schedule(s, t0 + (uint64_t)p * SIM_PAIR_MS, SIM_EV_PAIR,
			     s->pairs[p].src, 0, p, NULL);
	}
	sim_run_until(s, t0 + (uint64_t)s->p.pairs * SIM_PAIR_MS +
			     SIM_REACH_DRAIN_MS);
	for (uint32_t i = 0; i < s->n; i++)
		if (r->circuits[i] > s->reach_max_circuits)
			s->reach_max_circuits = r->circuits[i];
	return s->oom ? -ENOMEM : 0;
}

void sim_reach_free(struct sim *s)
{
	struct sim_reach *r = s->rc;

	if (!r)
		return;
	for (uint32_t i = 0; r->core && i < s->n; i++)
		p2p_reach_free(r->core[i]);
	free(r->core);
	free(r->timer_gen);
	free(r->nat);
	free(r->circuits);
	free(r->in);
	free(r->links);
	free(r->lk);
	free(r);
	free(s->pairs);
	s->rc = NULL;
	s->pairs = NULL;
}
