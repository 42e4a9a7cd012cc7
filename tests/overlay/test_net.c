/*
 * A small network of overlays wired together in one process: an action
 * pump moves messages, dials and closes between them on a virtual clock.
 * Every node must find every server, and routed messages must reach every
 * node, clients included.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NNODES 50
#define NSERVERS 40

enum ev_type { EV_MSG, EV_UP, EV_DOWN, EV_DIAL_FAILED };

struct ev {
	enum ev_type type;
	int from, to; /* EV_MSG: from -> to; others: at `to` about `from` */
	bool outbound;
	uint8_t *data;
	size_t len;
};

struct node {
	struct p2p_overlay *o;
	struct p2p_peerid id;
	struct p2p_addr addr;
	bool server;
	struct h_rng rng;
	/* last results */
	bool done, found;
	int hops;
	struct p2p_peerid first;
	uint64_t lookup_id;
	int delivered, route_failed;
	struct p2p_peerid last_src;
};

struct net {
	struct node n[NNODES];
	bool link[NNODES][NNODES];
	struct ev *q;
	size_t qhead, qlen, qcap;
	uint64_t now;
	unsigned sends_without_link;
};

static struct net *net;

static int node_by_id(const struct p2p_peerid *id)
{
	for (int i = 0; i < NNODES; i++)
		if (memcmp(net->n[i].id.b, id->b, P2P_ID_LEN) == 0)
			return i;
	return -1;
}

static int node_by_addr(const struct p2p_addr *a)
{
	for (int i = 0; i < NNODES; i++)
		if (p2p_addr_equal(&net->n[i].addr, a))
			return i;
	return -1;
}

static void push(struct ev e)
{
	if (net->qlen == net->qcap) {
		net->qcap = net->qcap ? net->qcap * 2 : 1024;
		net->q = realloc(net->q, net->qcap * sizeof(*net->q));
		cr_assert_not_null(net->q);
	}
	net->q[net->qlen++] = e;
}

static void link_up_ev(int at, int peer, bool outbound)
{
	push((struct ev){
	    .type = EV_UP, .from = peer, .to = at, .outbound = outbound});
}

static void pump_actions(int i)
{
	struct node *me = &net->n[i];
	struct p2p_ov_action a;

	while (p2p_overlay_poll(me->o, &a)) {
		int j = node_by_id(&a.peer);

		switch (a.type) {
		case P2P_OV_SEND: {
			struct ev e = {.type = EV_MSG, .from = i, .to = j};

			cr_assert_geq(j, 0);
			if (!net->link[i][j]) {
				net->sends_without_link++;
				break;
			}
			e.data = malloc(a.len);
			memcpy(e.data, a.data, a.len);
			e.len = a.len;
			push(e);
			break;
		}
		case P2P_OV_DIAL: {
			int k = node_by_addr(&a.addr);

			if (k < 0 || k != j || !net->n[k].server) {
				push((struct ev){.type = EV_DIAL_FAILED,
						 .from = j,
						 .to = i});
				break;
			}
			if (!net->link[i][k]) {
				net->link[i][k] = net->link[k][i] = true;
				link_up_ev(k, i, false);
			}
			link_up_ev(i, k, true);
			break;
		}
		case P2P_OV_CLOSE:
			cr_assert_geq(j, 0);
			if (net->link[i][j]) {
				net->link[i][j] = net->link[j][i] = false;
				push((struct ev){
				    .type = EV_DOWN, .from = i, .to = j});
			}
			break;
		case P2P_OV_LOOKUP_DONE:
			cr_assert_eq(a.id, me->lookup_id);
			me->done = true;
			me->found = a.found;
			me->hops = a.hops;
			if (a.ncontacts > 0)
				me->first = a.contacts[0].id;
			break;
		case P2P_OV_DELIVER:
			me->delivered++;
			me->last_src = a.peer;
			cr_assert_eq(a.len, 4);
			cr_assert_eq(memcmp(a.data, "ping", 4), 0);
			break;
		case P2P_OV_ROUTE_FAILED:
			me->route_failed++;
			break;
		}
	}
}

static void run_queue(void)
{
	while (net->qhead < net->qlen) {
		struct ev e = net->q[net->qhead++];
		struct node *to = &net->n[e.to];
		struct node *from = &net->n[e.from];

		switch (e.type) {
		case EV_MSG: {
			struct p2p_msg m;

			if (net->link[e.from][e.to]) {
				cr_assert_eq(p2p_msg_decode(&m, e.data, e.len),
					     0);
				p2p_overlay_recv(to->o, net->now, &from->id,
						 &m);
			}
			free(e.data);
			break;
		}
		case EV_UP:
			if (net->link[e.from][e.to])
				p2p_overlay_link_up(to->o, net->now, &from->id,
						    &from->addr, from->server,
						    e.outbound);
			break;
		case EV_DOWN:
			p2p_overlay_link_down(to->o, net->now, &from->id);
			break;
		case EV_DIAL_FAILED:
			p2p_overlay_dial_failed(to->o, net->now, &from->id);
			break;
		}
		pump_actions(e.to);
	}
	net->qhead = net->qlen = 0;
}

/* Deliver everything, then fire timers, until the clock passes until. */
static void run_until(uint64_t until)
{
	for (int guard = 0; guard < 1000000; guard++) {
		uint64_t t = UINT64_MAX;

		run_queue();
		for (int i = 0; i < NNODES; i++) {
			uint64_t x = p2p_overlay_next_timer(net->n[i].o);

			if (x < t)
				t = x;
		}
		if (t > until) {
			net->now = until;
			return;
		}
		if (t > net->now)
			net->now = t;
		for (int i = 0; i < NNODES; i++) {
			if (p2p_overlay_next_timer(net->n[i].o) <= net->now) {
				p2p_overlay_tick(net->n[i].o, net->now);
				pump_actions(i);
			}
		}
	}
	cr_assert_fail("timers never settle");
}

static void net_setup(void)
{
	struct h_rng r = {20240601};

	net = calloc(1, sizeof(*net));
	cr_assert_not_null(net);
	net->now = 1;
	for (int i = 0; i < NNODES; i++) {
		struct node *n = &net->n[i];
		struct p2p_overlay_config cfg = {0};

		n->id = h_id_random(&r);
		n->addr = h_addr4(10, i, 0, 1, 4000);
		n->server = i < NSERVERS;
		n->rng.s = h_next(&r) | 1;
		cfg.self = n->id;
		cfg.server = n->server;
		cfg.random = h_random;
		cfg.ctx = &n->rng;
		n->o = p2p_overlay_new(&cfg);
		cr_assert_not_null(n->o);
	}
	/* everyone joins through node 0, one after the other */
	for (int i = 1; i < NNODES; i++) {
		struct node *n = &net->n[i];

		p2p_overlay_add_contact(n->o, net->now, &net->n[0].id,
					&net->n[0].addr);
		p2p_overlay_bootstrap(n->o, net->now);
		pump_actions(i);
		run_until(net->now + 500);
	}
	run_until(net->now + 120000);
}

static void net_teardown(void)
{
	for (int i = 0; i < NNODES; i++)
		p2p_overlay_free(net->n[i].o);
	free(net->q);
	free(net);
}

TestSuite(net, .init = net_setup, .fini = net_teardown, .timeout = 20);

Test(net, every_node_finds_every_server)
{
	int hist[16] = {0}, total = 0, p50 = -1, acc = 0;

	for (int a = 0; a < NNODES; a++) {
		for (int b = 0; b < NSERVERS; b++) {
			struct node *n = &net->n[a];

			if (a == b)
				continue;
			n->done = false;
			cr_assert_eq(p2p_overlay_lookup(n->o, net->now,
							&net->n[b].id,
							&n->lookup_id),
				     0);
			pump_actions(a);
			run_until(net->now + P2P_LOOKUP_TIMEOUT_MS);
			cr_assert(n->done, "lookup %d -> %d did not end", a, b);
			cr_assert(n->found, "node %d did not find %d", a, b);
			cr_assert(p2p_peerid_equal(&n->first, &net->n[b].id));
			hist[n->hops < 15 ? n->hops : 15]++;
			total++;
		}
	}
	for (int i = 0; i < 16 && p50 < 0; i++)
		if ((acc += hist[i]) * 2 >= total)
			p50 = i;
	fprintf(stderr,
		"net: %d lookups, hops p50 %d (0:%d 1:%d 2:%d 3:%d 4+:%d)\n",
		total, p50, hist[0], hist[1], hist[2], hist[3],
		total - hist[0] - hist[1] - hist[2] - hist[3]);
	cr_assert_leq(p50, 4);
}

Test(net, clients_stay_out_of_tables)
{
	for (int a = 0; a < NNODES; a++) {
		struct p2p_contact c[NNODES];
		size_t n =
		    p2p_overlay_closest(net->n[a].o, &net->n[a].id, c, NNODES);

		cr_assert_gt(n, 0, "node %d has an empty table", a);
		for (size_t i = 0; i < n; i++) {
			int k = node_by_id(&c[i].id);

			cr_assert_geq(k, 0);
			cr_assert(net->n[k].server, "client %d in table of %d",
				  k, a);
		}
	}
}

Test(net, clients_link_to_their_closest_servers)
{
	for (int c = NSERVERS; c < NNODES; c++) {
		const struct p2p_peerid *me = &net->n[c].id;
		int order[NSERVERS];

		for (int i = 0; i < NSERVERS; i++) {
			int j = i;

			while (j > 0 && p2p_peerid_cmp_dist(
					    me, &net->n[i].id,
					    &net->n[order[j - 1]].id) < 0) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
		for (int i = 0; i < P2P_K; i++)
			cr_assert(net->link[c][order[i]],
				  "client %d lacks a link to its #%d server", c,
				  i);
	}
}

Test(net, routed_messages_reach_every_node)
{
	unsigned routes = 0;

	for (int a = 0; a < NNODES; a++) {
		for (int b = 0; b < NNODES; b++) {
			struct node *dst = &net->n[b];
			int before = dst->delivered;

			if (a == b)
				continue;
			cr_assert_eq(p2p_overlay_route(net->n[a].o, net->now,
						       &dst->id, P2P_APP_USER,
						       (const uint8_t *)"ping",
						       4, NULL),
				     0);
			pump_actions(a);
			run_until(net->now + 25); /* under the rate limit */
			cr_assert_eq(dst->delivered, before + 1,
				     "route %d -> %d%s lost", a, b,
				     dst->server ? "" : " (client)");
			cr_assert(
			    p2p_peerid_equal(&dst->last_src, &net->n[a].id));
			routes++;
		}
	}
	for (int a = 0; a < NNODES; a++)
		cr_assert_eq(net->n[a].route_failed, 0);
	cr_assert_eq(routes, NNODES * (NNODES - 1));
}

Test(net, links_stay_bounded_and_paired)
{
	for (int a = 0; a < NNODES; a++) {
		struct p2p_overlay_stats st;
		size_t held = 0;

		for (int b = 0; b < NNODES; b++)
			held += net->link[a][b];
		p2p_overlay_get_stats(net->n[a].o, &st);
		cr_assert_eq(st.links, held,
			     "node %d counts %zu links, holds %zu", a, st.links,
			     held);
		if (!net->n[a].server)
			cr_assert_leq(held, P2P_K + 2, "client %d holds %zu", a,
				      held);
	}
	cr_assert_eq(net->sends_without_link, 0);
}
