/*
 * The simulator's core: nodes, the peer ID index, the event loop and the
 * glue that feeds overlay actions to the network (net.c) and to the
 * scenario (scenario.c).
 */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void node_random(void *ctx, void *buf, size_t len)
{
	struct sim_node *nd = ctx;

	sim_rng_fill(&nd->sim->rng, buf, len);
}

static void node_log(void *ctx, int level, const char *msg)
{
	struct sim_node *nd = ctx;
	struct sim *s = nd->sim;

	if (level <= s->p.log_level)
		fprintf(stderr, "[%llu.%03llu] node %u: %s\n",
			(unsigned long long)(s->now / 1000),
			(unsigned long long)(s->now % 1000),
			(unsigned)(nd - s->nodes), msg);
}

static uint64_t id_key(const struct p2p_peerid *id)
{
	uint64_t k;

	memcpy(&k, id->b, sizeof(k));
	return sim_hash64(k);
}

uint32_t sim_find(const struct sim *s, const struct p2p_peerid *id)
{
	size_t h = id_key(id) & s->idmap_mask;

	for (;; h = (h + 1) & s->idmap_mask) {
		uint32_t v = s->idmap[h];

		if (v == 0)
			return SIM_NO_REC;
		if (p2p_peerid_equal(&s->nodes[v - 1].id, id))
			return v - 1;
	}
}

static void idmap_insert(struct sim *s, uint32_t i)
{
	size_t h = id_key(&s->nodes[i].id) & s->idmap_mask;

	while (s->idmap[h] != 0)
		h = (h + 1) & s->idmap_mask;
	s->idmap[h] = i + 1;
}

static void node_addr(struct p2p_addr *a, uint32_t i)
{
	/* One public-looking /24 per node: labels only, nothing is sent. */
	memset(a, 0, sizeof(*a));
	a->family = 4;
	a->ip[0] = (uint8_t)(20 + (i >> 16));
	a->ip[1] = (uint8_t)(i >> 8);
	a->ip[2] = (uint8_t)i;
	a->ip[3] = 1;
	a->port = SIM_PORT;
}

static int node_init(struct sim *s, uint32_t i)
{
	struct sim_node *nd = &s->nodes[i];

	nd->sim = s;
	nd->alive = true;
	/* Node 0 seeds the network, so it must be dialable. */
	nd->server = i == 0 || sim_rng_unit(&s->rng) >= s->p.clients;
	nd->timer_at = UINT64_MAX;
	nd->lookups = SIM_NO_REC;
	node_addr(&nd->addr, i);
	do
		sim_rng_fill(&s->rng, nd->id.b, sizeof(nd->id.b));
	while (sim_find(s, &nd->id) != SIM_NO_REC);
	idmap_insert(s, i);

	struct p2p_overlay_config cfg = {
	    .self = nd->id,
	    .server = nd->server,
	    .random = node_random,
	    .log = node_log,
	    .ctx = nd,
	};
	nd->ov = p2p_overlay_new(&cfg);
	return nd->ov ? 0 : -ENOMEM;
}

int sim_init(struct sim *s, const struct sim_params *p)
{
	memset(s, 0, sizeof(*s));
	s->p = *p;
	sim_rng_seed(&s->rng, p->seed);
	sim_heap_init(&s->heap);
	s->n = p->nodes;
	size_t cap = 2;

	while (cap < 2 * (size_t)s->n)
		cap *= 2;
	s->idmap_mask = cap - 1;
	s->idmap = calloc(cap, sizeof(*s->idmap));
	s->nodes = calloc(s->n, sizeof(*s->nodes));
	s->servers = calloc(s->n, sizeof(*s->servers));
	if (!s->idmap || !s->nodes || !s->servers)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->n; i++) {
		int r = node_init(s, i);

		if (r < 0)
			return r;
	}
	return 0;
}

void sim_deinit(struct sim *s)
{
	struct sim_event e;

	sim_reach_free(s);
	while (sim_heap_pop(&s->heap, &e))
		if (e.buf)
			free(e.buf);
	sim_heap_deinit(&s->heap);
	for (uint32_t i = 0; s->nodes && i < s->n; i++) {
		p2p_overlay_free(s->nodes[i].ov);
		free(s->nodes[i].links);
	}
	for (struct sim_buf *b = s->free_small, *nx; b; b = nx) {
		nx = b->next;
		free(b);
	}
	for (struct sim_buf *b = s->free_big, *nx; b; b = nx) {
		nx = b->next;
		free(b);
	}
	free(s->nodes);
	free(s->idmap);
	free(s->servers);
	free(s->lk);
	free(s->rt);
	memset(s, 0, sizeof(*s));
}

void sim_schedule(struct sim *s, uint64_t at, uint8_t type, uint32_t a,
		  uint32_t b, uint32_t aux, void *buf)
{
	struct sim_event e = {
	    .at = at, .type = type, .a = a, .b = b, .aux = aux, .buf = buf};

	if (sim_heap_push(&s->heap, &e) < 0) {
		s->oom = true;
		free(buf);
	}
}

static void rearm(struct sim *s, uint32_t i, bool after_tick)
{
	struct sim_node *nd = &s->nodes[i];
	uint64_t t = p2p_overlay_next_timer(nd->ov);

	/* A core that still wants a tick right after one would spin. */
	if (after_tick && t <= s->now)
		t = s->now + 1;
	else if (t < s->now)
		t = s->now;
	if (t == nd->timer_at)
		return;
	nd->timer_gen++;
	nd->timer_at = t;
	if (t != UINT64_MAX)
		sim_schedule(s, t, SIM_EV_TIMER, i, 0, nd->timer_gen, NULL);
}

static void drain(struct sim *s, uint32_t i, bool after_tick)
{
	struct sim_node *nd = &s->nodes[i];
	struct p2p_ov_action a;

	if (!nd->alive)
		return;
	while (p2p_overlay_poll(nd->ov, &a)) {
		switch (a.type) {
		case P2P_OV_SEND:
		case P2P_OV_DIAL:
		case P2P_OV_CLOSE:
			sim_net_action(s, i, &a);
			break;
		default:
			sim_app_action(s, i, &a);
			break;
		}
	}
	rearm(s, i, after_tick);
}

void sim_after(struct sim *s, uint32_t i)
{
	drain(s, i, false);
}

static void on_timer(struct sim *s, const struct sim_event *e)
{
	struct sim_node *nd = &s->nodes[e->a];

	if (!nd->alive || e->aux != nd->timer_gen)
		return; /* re-armed or dead since: stale */
	nd->timer_at = UINT64_MAX;
	s->c.timers++;
	p2p_overlay_tick(nd->ov, s->now);
	drain(s, e->a, true);
}

void sim_run_until(struct sim *s, uint64_t until)
{
	struct sim_event e;

	while (!s->oom && sim_heap_peek_time(&s->heap) <= until) {
		sim_heap_pop(&s->heap, &e);
		s->now = e.at;
		s->c.events++;
		switch (e.type) {
		case SIM_EV_TIMER:
			on_timer(s, &e);
			break;
		case SIM_EV_JOIN:
		case SIM_EV_LOOKUP:
		case SIM_EV_ROUTE:
			sim_app_event(s, &e);
			break;
		case SIM_EV_PAIR:
		case SIM_EV_REACH_IN:
		case SIM_EV_REACH_TIMER:
			sim_reach_event(s, &e);
			break;
		default:
			sim_net_event(s, &e);
			break;
		}
	}
	if (until != UINT64_MAX && until > s->now)
		s->now = until;
}

uint32_t sim_latency(const struct sim *s, uint32_t a, uint32_t b)
{
	uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
	uint64_t h = sim_hash64(s->p.seed ^ sim_hash64(lo << 32 | hi));
	double f = (double)(h >> 11) * 0x1.0p-53;
	double mean = s->p.latency_ms;
	uint32_t ms = (uint32_t)(mean / 8 + f * mean * 14 / 8);

	return ms ? ms : 1;
}
