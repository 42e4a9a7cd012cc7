/*
 * The virtual network: links as each end sees them, dials, message
 * delivery through the real codec, closes and crashes. The model is
 * described at the top of sim.h.
 */
#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SIM_BUF_SMALL 256
#define SIM_BUF_BIG 2048

struct sim_buf *sim_buf_get(struct sim *s, size_t len)
{
	struct sim_buf **list = NULL;
	size_t cap = len;

	/* Two size classes cover FIND_NODE and NODES without a malloc. */
	if (len <= SIM_BUF_SMALL) {
		list = &s->free_small;
		cap = SIM_BUF_SMALL;
	} else if (len <= SIM_BUF_BIG) {
		list = &s->free_big;
		cap = SIM_BUF_BIG;
	}
	struct sim_buf *b = list ? *list : NULL;

	if (b)
		*list = b->next;
	else if ((b = malloc(sizeof(*b) + cap)) == NULL)
		return NULL;
	b->cap = (uint32_t)cap;
	b->len = (uint32_t)len;
	b->next = NULL;
	return b;
}

void sim_buf_put(struct sim *s, struct sim_buf *b)
{
	if (b == NULL)
		return;
	if (b->cap == SIM_BUF_SMALL) {
		b->next = s->free_small;
		s->free_small = b;
	} else if (b->cap == SIM_BUF_BIG) {
		b->next = s->free_big;
		s->free_big = b;
	} else {
		free(b);
	}
}

struct sim_link *sim_link_find(struct sim_node *nd, uint32_t peer)
{
	for (uint32_t k = 0; k < nd->nlinks; k++)
		if (nd->links[k].peer == peer)
			return &nd->links[k];
	return NULL;
}

static struct sim_link *link_add(struct sim *s, struct sim_node *nd,
				 uint32_t peer, uint8_t state)
{
	if (nd->nlinks == nd->caplinks) {
		uint32_t cap = nd->caplinks ? nd->caplinks * 2 : 8;
		struct sim_link *l = realloc(nd->links, cap * sizeof(*l));

		if (l == NULL) {
			s->oom = true;
			return NULL;
		}
		nd->links = l;
		nd->caplinks = cap;
	}
	struct sim_link *l = &nd->links[nd->nlinks++];

	l->peer = peer;
	l->state = state;
	l->gen = ++s->link_gen;
	return l;
}

static void link_del(struct sim_node *nd, struct sim_link *l)
{
	*l = nd->links[--nd->nlinks];
}

/* ---- actions from a node's overlay ---- */

static void do_send(struct sim *s, uint32_t i, const struct p2p_ov_action *a)
{
	uint32_t j = sim_find(s, &a->peer);
	struct sim_link *l =
	    j == SIM_NO_REC ? NULL : sim_link_find(&s->nodes[i], j);

	if (l == NULL || l->state != SIM_LINK_UP) {
		s->c.send_no_link++;
		return;
	}
	s->c.msgs_sent++;
	s->c.bytes_sent += a->len;
	if (a->len >= P2P_MSG_HDR && a->data[1] < SIM_MSG_TYPES)
		s->c.msgs_by_type[a->data[1]]++;
	if (!s->nodes[j].alive) {
		s->c.msgs_to_dead++;
		return;
	}
	if (s->p.loss > 0 && sim_rng_unit(&s->rng) < s->p.loss) {
		s->c.msgs_lost++;
		return;
	}
	struct sim_buf *b = sim_buf_get(s, a->len);

	if (b == NULL) {
		s->oom = true;
		return;
	}
	memcpy(b->data, a->data, a->len);
	sim_schedule(s, s->now + sim_latency(s, i, j), SIM_EV_MSG, j, i, 0, b);
}

static void fail_later(struct sim *s, uint32_t i, uint32_t j,
		       const struct p2p_peerid *peer)
{
	/* An unknown ID has no index: its bytes ride along in a buffer. */
	struct sim_buf *b = NULL;

	if (j == SIM_NO_REC) {
		b = sim_buf_get(s, sizeof(*peer));
		if (b == NULL) {
			s->oom = true;
			return;
		}
		memcpy(b->data, peer->b, sizeof(peer->b));
	}
	sim_schedule(s, s->now + s->p.dial_timeout_ms, SIM_EV_DIAL_FAIL, i, j,
		     0, b);
}

static void do_dial(struct sim *s, uint32_t i, const struct p2p_ov_action *a)
{
	uint32_t j = sim_find(s, &a->peer);
	struct sim_node *nd = &s->nodes[i];

	s->c.dials++;
	if (j == SIM_NO_REC || j == i ||
	    !p2p_addr_equal(&a->addr, &s->nodes[j].addr)) {
		if (j == SIM_NO_REC)
			s->c.dials_unknown++;
		else if (j == i)
			s->c.dials_self++;
		else
			s->c.dials_wrong_addr++;
		fail_later(s, i, j == i ? j : SIM_NO_REC, &a->peer);
		return;
	}
	struct sim_link *l = sim_link_find(nd, j);

	if (l && l->state == SIM_LINK_UP) {
		s->c.dials_existing++;
		sim_schedule(s, s->now, SIM_EV_LINK_UP, i, j, 0, NULL);
		return;
	}
	if (l) {
		s->c.dials_pending++; /* the dial in progress answers */
		return;
	}
	if (link_add(s, nd, j, SIM_LINK_DIALING) == NULL)
		return;
	if (s->nodes[j].alive && s->nodes[j].server)
		sim_schedule(s, s->now + 2 * sim_latency(s, i, j),
			     SIM_EV_DIAL_DONE, i, j, 0, NULL);
	else
		fail_later(s, i, j, &a->peer);
}

static void do_close(struct sim *s, uint32_t i, const struct p2p_ov_action *a)
{
	uint32_t j = sim_find(s, &a->peer);
	struct sim_link *l =
	    j == SIM_NO_REC ? NULL : sim_link_find(&s->nodes[i], j);

	if (l == NULL) {
		s->c.close_no_link++;
		return;
	}
	s->c.closes++;
	bool was_up = l->state == SIM_LINK_UP;

	link_del(&s->nodes[i], l);
	if (!was_up || !s->nodes[j].alive)
		return;
	struct sim_link *r = sim_link_find(&s->nodes[j], i);

	if (r && r->state == SIM_LINK_UP)
		sim_schedule(s, s->now + sim_latency(s, i, j), SIM_EV_LINK_DOWN,
			     j, i, r->gen, NULL);
}

void sim_net_action(struct sim *s, uint32_t i, const struct p2p_ov_action *a)
{
	switch (a->type) {
	case P2P_OV_SEND:
		do_send(s, i, a);
		break;
	case P2P_OV_DIAL:
		do_dial(s, i, a);
		break;
	case P2P_OV_CLOSE:
		do_close(s, i, a);
		break;
	default:
		break;
	}
}

/* ---- events ---- */

static void link_up(struct sim *s, uint32_t i, uint32_t j, bool outbound)
{
	struct sim_node *peer = &s->nodes[j];

	p2p_overlay_link_up(s->nodes[i].ov, s->now, &peer->id, &peer->addr,
			    peer->server, outbound);
	sim_after(s, i);
}

static void dial_failed(struct sim *s, uint32_t i,
			const struct p2p_peerid *peer)
{
	s->c.dials_failed++;
	p2p_overlay_dial_failed(s->nodes[i].ov, s->now, peer);
	sim_after(s, i);
}

static void on_dial_done(struct sim *s, uint32_t i, uint32_t j)
{
	struct sim_link *l = sim_link_find(&s->nodes[i], j);

	if (l == NULL) {
		s->c.dials_cancelled++; /* the overlay closed it meanwhile */
		return;
	}
	if (l->state != SIM_LINK_DIALING) {
		s->c.dials_crossed++; /* the peer's own dial made the link */
		return;
	}
	if (!s->nodes[j].alive) {
		link_del(&s->nodes[i], l);
		dial_failed(s, i, &s->nodes[j].id);
		return;
	}
	l->state = SIM_LINK_UP;
	l->gen = ++s->link_gen;
	s->c.dials_ok++;
	/* The target's view: new, or its own dial crossing ours. */
	struct sim_link *r = sim_link_find(&s->nodes[j], i);
	bool cross = r && r->state == SIM_LINK_DIALING;

	if (r == NULL)
		r = link_add(s, &s->nodes[j], i, SIM_LINK_UP);
	if (r == NULL)
		return;
	r->state = SIM_LINK_UP;
	r->gen = ++s->link_gen; /* a LINK_DOWN in flight is now stale */
	link_up(s, i, j, true);
	link_up(s, j, i, cross);
}

static void on_dial_fail(struct sim *s, const struct sim_event *e)
{
	struct sim_buf *b = e->buf;
	uint32_t i = e->a, j = e->b;
	struct p2p_peerid id;

	if (j == SIM_NO_REC) {
		memcpy(id.b, b->data, sizeof(id.b));
	} else {
		struct sim_link *l = sim_link_find(&s->nodes[i], j);

		/* The peer dialled us meanwhile: the link answers. */
		if (l && l->state == SIM_LINK_UP)
			return;
		if (l && j != i)
			link_del(&s->nodes[i], l);
		id = s->nodes[j].id;
	}
	dial_failed(s, i, &id);
}

static void on_msg(struct sim *s, uint32_t j, uint32_t i, struct sim_buf *b)
{
	struct sim_link *l = sim_link_find(&s->nodes[j], i);
	struct p2p_msg m;

	if (l == NULL || l->state != SIM_LINK_UP) {
		s->c.recv_no_link++; /* closed by us while in flight */
		return;
	}
	s->c.msgs_received++;
	if (p2p_msg_decode(&m, b->data, b->len) < 0) {
		s->c.decode_errors++;
		return;
	}
	if (p2p_overlay_recv(s->nodes[j].ov, s->now, &s->nodes[i].id, &m) < 0)
		s->c.recv_errors++;
	sim_after(s, j);
}

static void on_link_down(struct sim *s, uint32_t j, uint32_t i, uint32_t gen)
{
	struct sim_link *l = sim_link_find(&s->nodes[j], i);

	if (l == NULL || l->gen != gen || l->state != SIM_LINK_UP)
		return; /* a newer link replaced the one that ended */
	link_del(&s->nodes[j], l);
	s->c.link_downs++;
	p2p_overlay_link_down(s->nodes[j].ov, s->now, &s->nodes[i].id);
	sim_after(s, j);
}

void sim_net_event(struct sim *s, const struct sim_event *e)
{
	bool alive = s->nodes[e->a].alive;

	switch (e->type) {
	case SIM_EV_MSG:
		if (alive)
			on_msg(s, e->a, e->b, e->buf);
		else
			s->c.msgs_to_dead++;
		break;
	case SIM_EV_DIAL_DONE:
		if (alive)
			on_dial_done(s, e->a, e->b);
		break;
	case SIM_EV_DIAL_FAIL:
		if (alive)
			on_dial_fail(s, e);
		break;
	case SIM_EV_LINK_UP:
		if (alive && sim_link_find(&s->nodes[e->a], e->b))
			link_up(s, e->a, e->b, true);
		else if (alive)
			dial_failed(s, e->a, &s->nodes[e->b].id);
		break;
	case SIM_EV_LINK_DOWN:
		if (alive)
			on_link_down(s, e->a, e->b, e->aux);
		break;
	default:
		break;
	}
	sim_buf_put(s, e->buf);
}

void sim_kill(struct sim *s, uint32_t i)
{
	struct sim_node *nd = &s->nodes[i];

	nd->alive = false;
	for (uint32_t k = 0; k < nd->nlinks; k++) {
		uint32_t j = nd->links[k].peer;
		struct sim_link *r = sim_link_find(&s->nodes[j], i);

		if (s->p.link_timeout_ms == 0 || !s->nodes[j].alive ||
		    r == NULL || r->state != SIM_LINK_UP)
			continue;
		/*
		 * The daemon drops a link after link_timeout_ms without
		 * traffic, and keepalives flow every third of it or so: each
		 * survivor notices within the last third of the timeout.
		 */
		uint64_t t = s->p.link_timeout_ms;
		uint64_t at = s->now + t - sim_rng_below(&s->rng, t / 3 + 1);

		s->c.timeout_downs++;
		sim_schedule(s, at, SIM_EV_LINK_DOWN, j, i, r->gen, NULL);
	}
	p2p_overlay_free(nd->ov);
	nd->ov = NULL;
	free(nd->links);
	nd->links = NULL;
	nd->nlinks = nd->caplinks = 0;
}
