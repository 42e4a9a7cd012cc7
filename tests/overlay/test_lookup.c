/* FIND_NODE answers and iterative lookups driven by hand-fed replies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "harness.h"

#define UNIVERSE 300

struct universe {
	struct p2p_peerid id[UNIVERSE];
	struct p2p_addr addr[UNIVERSE];
};

static void universe_init(struct universe *u, struct h_rng *r)
{
	for (int i = 0; i < UNIVERSE; i++) {
		u->id[i] = h_id_random(r);
		u->addr[i] = h_addr4(70 + i / 256, i % 256, 1, 1, 4000);
	}
}

static int universe_find(const struct universe *u, const struct p2p_peerid *id)
{
	for (int i = 0; i < UNIVERSE; i++)
		if (p2p_peerid_equal(&u->id[i], id))
			return i;
	return -1;
}

/* Brute force: the n members nearest to t, skipping skip (may be NULL). */
static size_t universe_closest(const struct universe *u,
			       const struct p2p_peerid *t,
			       const struct p2p_peerid *skip,
			       struct p2p_contact *out, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < UNIVERSE; i++) {
		size_t j;

		if (skip != NULL && p2p_peerid_equal(&u->id[i], skip))
			continue;
		if (got == n &&
		    p2p_peerid_cmp_dist(t, &u->id[i], &out[n - 1].id) >= 0)
			continue;
		j = got < n ? got++ : n - 1;
		while (j > 0 &&
		       p2p_peerid_cmp_dist(t, &u->id[i], &out[j - 1].id) < 0) {
			out[j] = out[j - 1];
			j--;
		}
		out[j].id = u->id[i];
		out[j].addr = u->addr[i];
	}
	return got;
}

Test(lookup, find_node_answers_servers_only)
{
	struct h_rng r = {777};
	struct p2p_peerid self = h_id_random(&r), target = h_id_random(&r);
	struct p2p_peerid servers[30], clients[5];
	struct p2p_contact want[30];
	struct p2p_msg m;
	const struct h_act *x;
	struct h_node h;
	size_t nw = 0;

	h_node_init(&h, &self, true, 1);
	for (int i = 0; i < 30; i++) {
		struct p2p_addr a = h_addr4(80, i, 0, 1, 4000);

		servers[i] = h_id_random(&r);
		h_link_server(&h, 1, &servers[i], &a);
	}
	for (int i = 0; i < 5; i++) {
		struct p2p_addr a = h_addr4(81, i, 0, 1, 4000);

		/* clients nearer the target than anyone */
		clients[i] = target;
		clients[i].b[31] ^= (uint8_t)(i + 1);
		p2p_overlay_link_up(h.o, 1, &clients[i], &a, false, false);
	}
	h_clear(&h);
	/* expected: the servers nearest to target, requester excluded */
	for (int i = 1; i < 30; i++) {
		size_t j = nw++;

		while (j > 0 && p2p_peerid_cmp_dist(&target, &servers[i],
						    &want[j - 1].id) < 0) {
			want[j] = want[j - 1];
			j--;
		}
		want[j].id = servers[i];
	}
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_FIND_NODE;
	m.u.find_node.txid = 0xabcdef01;
	m.u.find_node.target = target;
	cr_assert_eq(p2p_overlay_recv(h.o, 2, &servers[0], &m), 0);
	h_drain(&h);
	x = h_find(&h, P2P_OV_SEND, P2P_MSG_NODES, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &servers[0]));
	cr_assert_eq(x->msg.u.nodes.txid, 0xabcdef01);
	cr_assert_eq(x->msg.u.nodes.count, P2P_K);
	for (int i = 0; i < P2P_K; i++) {
		cr_assert(
		    p2p_peerid_equal(&x->msg.u.nodes.nodes[i].id, &want[i].id),
		    "rank %d", i);
		cr_assert_eq(x->msg.u.nodes.nodes[i].addr.family, 4);
	}
	h_node_fini(&h);
}

struct pump {
	struct h_node *h;
	const struct universe *u;
	struct p2p_peerid
	    out[64]; /* requests in flight, as the test sees them */
	int nout;
	int max_out;
	uint64_t now;
	bool answer; /* false: let every request time out */
};

static void out_add(struct pump *p, const struct p2p_peerid *id)
{
	for (int i = 0; i < p->nout; i++)
		if (p2p_peerid_equal(&p->out[i], id))
			return;
	cr_assert_lt(p->nout, 64);
	p->out[p->nout++] = *id;
	if (p->nout > p->max_out)
		p->max_out = p->nout;
}

static void out_del(struct pump *p, const struct p2p_peerid *id)
{
	for (int i = 0; i < p->nout; i++)
		if (p2p_peerid_equal(&p->out[i], id)) {
			p->out[i] = p->out[--p->nout];
			return;
		}
}

/*
 * Process the recorded actions from index *pos on: answer dials with
 * link_up and FIND_NODE with the universe's true nearest nodes, one at a
 * time, so that in-flight counts are checked after every step.
 */
static const struct h_act *pump_run(struct pump *p)
{
	size_t pos = 0;

	for (int steps = 0; steps < 10000; steps++) {
		const struct h_act *x;

		h_drain(p->h);
		if (pos >= p->h->log.n)
			return NULL;
		x = &p->h->log.v[pos++];
		if (x->a.type == P2P_OV_LOOKUP_DONE)
			return x;
		if (x->a.type == P2P_OV_DIAL) {
			int i = universe_find(p->u, &x->a.peer);

			cr_assert_geq(i, 0,
				      "dial to a node that was never named");
			cr_assert(p2p_addr_equal(&x->a.addr, &p->u->addr[i]));
			out_add(p, &x->a.peer);
			cr_assert_leq(p->nout, P2P_ALPHA,
				      "more than alpha in flight");
			if (p->answer)
				p2p_overlay_link_up(p->h->o, p->now, &x->a.peer,
						    &x->a.addr, true, true);
			continue;
		}
		if (x->a.type == P2P_OV_SEND &&
		    x->msg.type == P2P_MSG_FIND_NODE) {
			struct p2p_msg m;
			size_t n;

			out_add(p, &x->a.peer);
			cr_assert_leq(p->nout, P2P_ALPHA,
				      "more than alpha in flight");
			if (!p->answer)
				continue;
			memset(&m, 0, sizeof(m));
			m.type = P2P_MSG_NODES;
			m.u.nodes.txid = x->msg.u.find_node.txid;
			n = universe_closest(p->u, &x->msg.u.find_node.target,
					     &x->a.peer, m.u.nodes.nodes,
					     P2P_K);
			m.u.nodes.count = (uint8_t)n;
			p->now++;
			out_del(p, &x->a.peer);
			cr_assert_eq(
			    p2p_overlay_recv(p->h->o, p->now, &x->a.peer, &m),
			    0);
		}
	}
	cr_assert_fail("lookup did not end");
	return NULL;
}

Test(lookup, finds_target_with_alpha_in_flight)
{
	struct h_rng r = {4242};
	static struct universe u;
	struct p2p_peerid self = h_id_random(&r);
	struct p2p_contact truth[P2P_K];
	const struct h_act *done;
	struct pump p;
	struct h_node h;
	uint64_t lid = 0;

	universe_init(&u, &r);
	h_node_init(&h, &self, true, 2);
	/* we know 5 random members to start with */
	for (int i = 0; i < 5; i++)
		h_link_server(&h, 1, &u.id[i * 37], &u.addr[i * 37]);
	h_clear(&h);
	cr_assert_eq(p2p_overlay_lookup(h.o, 2, &u.id[123], &lid), 0);
	cr_assert_neq(lid, 0);
	/* alpha requests at once, to the nearest seeds */
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE), P2P_ALPHA);
	memset(&p, 0, sizeof(p));
	p.h = &h;
	p.u = &u;
	p.now = 2;
	p.answer = true;
	done = pump_run(&p);
	cr_assert_not_null(done);
	cr_assert_eq(done->a.id, lid);
	cr_assert(done->a.found);
	cr_assert_eq(p.max_out, P2P_ALPHA);
	cr_assert_eq(done->a.ncontacts, P2P_K);
	universe_closest(&u, &u.id[123], NULL, truth, P2P_K);
	for (int i = 0; i < P2P_K; i++)
		cr_assert(
		    p2p_peerid_equal(&done->a.contacts[i].id, &truth[i].id),
		    "rank %d", i);
	cr_assert_geq(done->a.hops, 1);
	cr_assert_leq(done->a.hops, 6);
	h_node_fini(&h);
}

Test(lookup, request_timeouts_then_next_candidates)
{
	struct h_rng r = {99};
	static struct universe u;
	struct p2p_peerid self = h_id_random(&r);
	const struct h_act *done;
	struct h_node h;
	uint64_t now = 10, lid;

	universe_init(&u, &r);
	h_node_init(&h, &self, true, 3);
	for (int i = 0; i < 5; i++)
		h_link_server(&h, 1, &u.id[i], &u.addr[i]);
	h_clear(&h);
	cr_assert_eq(p2p_overlay_lookup(h.o, now, &u.id[200], &lid), 0);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE), P2P_ALPHA);
	cr_assert_leq(p2p_overlay_next_timer(h.o),
		      now + P2P_LOOKUP_REQ_TIMEOUT_MS);
	/* other timers (maintenance) may come first; no request fails early */
	while (p2p_overlay_next_timer(h.o) < now + P2P_LOOKUP_REQ_TIMEOUT_MS)
		p2p_overlay_tick(h.o, p2p_overlay_next_timer(h.o));
	cr_assert_eq(p2p_overlay_next_timer(h.o),
		     now + P2P_LOOKUP_REQ_TIMEOUT_MS);
	p2p_overlay_tick(h.o, now + P2P_LOOKUP_REQ_TIMEOUT_MS - 1);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE), P2P_ALPHA);
	now += P2P_LOOKUP_REQ_TIMEOUT_MS;
	p2p_overlay_tick(h.o, now);
	h_drain(&h);
	/* the two seeds left get their turn */
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE), 5);
	cr_assert_eq(h_count(&h, P2P_OV_LOOKUP_DONE, 0), 0);
	now = p2p_overlay_next_timer(h.o);
	p2p_overlay_tick(h.o, now);
	h_drain(&h);
	done = h_find(&h, P2P_OV_LOOKUP_DONE, 0, 0);
	cr_assert_not_null(done);
	cr_assert_eq(done->a.id, lid);
	cr_assert(!done->a.found);
	cr_assert_eq(done->a.ncontacts, 0);
	h_node_fini(&h);
}

Test(lookup, dial_counts_in_request_timeout)
{
	struct h_rng r = {5};
	struct p2p_peerid self = h_id_random(&r), seed = h_id_random(&r);
	struct p2p_addr a = h_addr4(90, 0, 0, 1, 4000);
	const struct h_act *d;
	struct h_node h;
	uint64_t now = 100;

	h_node_init(&h, &self, true, 4);
	p2p_overlay_add_contact(h.o, now, &seed, &a);
	cr_assert_eq(p2p_overlay_lookup(h.o, now, &self, NULL), 0);
	h_drain(&h);
	d = h_find(&h, P2P_OV_DIAL, 0, 0);
	cr_assert_not_null(d, "no dial for an unlinked candidate");
	cr_assert(p2p_peerid_equal(&d->a.peer, &seed));
	cr_assert_eq(h_count(&h, P2P_OV_SEND, 0), 0);
	/* the link comes up late: the request goes out, with the same deadline
	 */
	now += P2P_LOOKUP_REQ_TIMEOUT_MS - 10;
	p2p_overlay_link_up(h.o, now, &seed, &a, true, true);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE), 1);
	now += 10;
	p2p_overlay_tick(h.o, now);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_LOOKUP_DONE, 0), 1);
	cr_assert_eq(h_find(&h, P2P_OV_LOOKUP_DONE, 0, 0)->a.ncontacts, 0);
	h_node_fini(&h);
}

Test(lookup, dial_failure_fails_the_candidate_at_once)
{
	struct h_rng r = {6};
	struct p2p_peerid self = h_id_random(&r), seed = h_id_random(&r);
	struct p2p_addr a = h_addr4(91, 0, 0, 1, 4000);
	struct h_node h;

	h_node_init(&h, &self, true, 5);
	p2p_overlay_add_contact(h.o, 1, &seed, &a);
	cr_assert_eq(p2p_overlay_lookup(h.o, 1, &seed, NULL), 0);
	h_clear(&h);
	p2p_overlay_dial_failed(h.o, 2, &seed);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_LOOKUP_DONE, 0), 1);
	cr_assert(!h_find(&h, P2P_OV_LOOKUP_DONE, 0, 0)->a.found);
	h_node_fini(&h);
}

Test(lookup, unsolicited_and_duplicate_replies_are_counted)
{
	struct h_rng r = {7};
	struct p2p_peerid self = h_id_random(&r), seed = h_id_random(&r);
	struct p2p_addr a = h_addr4(92, 0, 0, 1, 4000);
	struct p2p_overlay_stats st;
	const struct h_act *f;
	struct p2p_msg m;
	struct h_node h;

	h_node_init(&h, &self, true, 6);
	h_link_server(&h, 1, &seed, &a);
	cr_assert_eq(p2p_overlay_lookup(h.o, 2, &self, NULL), 0);
	h_clear(&h);
	h_drain(&h);
	/* the request went out before the clear: re-read it */
	cr_assert_eq(p2p_overlay_lookup(h.o, 3, &seed, NULL), 0);
	h_drain(&h);
	f = h_find(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE, 0);
	cr_assert_not_null(f);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_NODES;
	m.u.nodes.txid = f->msg.u.find_node.txid + 1000;
	cr_assert_eq(p2p_overlay_recv(h.o, 4, &seed, &m), 0);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_eq(st.bad_msgs, 1);
	/* right txid from the wrong peer */
	m.u.nodes.txid = f->msg.u.find_node.txid;
	cr_assert_eq(p2p_overlay_recv(h.o, 4, &self, &m), 0);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_eq(st.bad_msgs, 2);
	/* the real answer ends that lookup; its duplicate is counted */
	cr_assert_eq(p2p_overlay_recv(h.o, 5, &seed, &m), 0);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_LOOKUP_DONE, 0), 1);
	cr_assert_eq(p2p_overlay_recv(h.o, 6, &seed, &m), 0);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_eq(st.bad_msgs, 3);
	cr_assert_eq(st.lookups_done, 1);
	h_node_fini(&h);
}

Test(lookup, no_contacts_ends_at_once)
{
	struct h_rng r = {8};
	struct p2p_peerid self = h_id_random(&r), t = h_id_random(&r);
	struct h_node h;

	h_node_init(&h, &self, true, 7);
	cr_assert_eq(p2p_overlay_lookup(h.o, 1, &t, NULL), 0);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_LOOKUP_DONE, 0), 1);
	cr_assert_eq(p2p_overlay_lookup(h.o, 1, NULL, NULL), -EINVAL);
	h_node_fini(&h);
}

Test(lookup, too_many_lookups_is_ebusy)
{
	struct h_rng r = {9};
	struct p2p_peerid self = h_id_random(&r), seed = h_id_random(&r);
	struct p2p_addr a = h_addr4(93, 0, 0, 1, 4000);
	struct h_node h;
	int rc = 0, n = 0;

	h_node_init(&h, &self, true, 8);
	h_link_server(&h, 1, &seed, &a);
	while (n < 1000 && (rc = p2p_overlay_lookup(h.o, 2, &self, NULL)) == 0)
		n++;
	cr_assert_eq(rc, -EBUSY);
	cr_assert_gt(n, 1);
	h_clear(&h);
	h_node_fini(&h);
}

Test(lookup, bootstrap_refreshes_buckets_farther_than_nearest)
{
	struct p2p_peerid self;
	bool asked[8] = {false};
	struct h_node h;
	uint64_t now = 1;

	memset(&self, 0x5a, sizeof(self));
	h_node_init(&h, &self, true, 10);
	/* we know servers only in buckets 6 and 7: our nearest is in 7 */
	for (int i = 0; i < 4; i++) {
		struct p2p_peerid id =
		    h_id_in_bucket(&self, 6 + i % 2, (uint32_t)i + 1);
		struct p2p_addr a = h_addr4(120, i, 0, 1, 4000);

		h_link_server(&h, now, &id, &a);
	}
	h_clear(&h);
	p2p_overlay_bootstrap(h.o, now);
	for (int round = 0; round < 200; round++) {
		h_drain(&h);
		for (size_t i = 0; i < h.log.n; i++) {
			const struct h_act *x = &h.log.v[i];
			struct p2p_msg m;
			int b;

			if (x->a.type != P2P_OV_SEND ||
			    x->msg.type != P2P_MSG_FIND_NODE)
				continue;
			b = p2p_peerid_common_bits(&self,
						   &x->msg.u.find_node.target);
			if (b < 8)
				asked[b] = true;
			memset(&m, 0, sizeof(m));
			m.type = P2P_MSG_NODES;
			m.u.nodes.txid = x->msg.u.find_node.txid;
			cr_assert_eq(p2p_overlay_recv(h.o, now, &x->a.peer, &m),
				     0);
		}
		h_clear(&h);
		now = p2p_overlay_next_timer(h.o);
		if (now > 60000)
			break;
		p2p_overlay_tick(h.o, now);
	}
	/* every bucket farther than bucket 7 was looked into */
	for (int b = 0; b < 7; b++)
		cr_assert(asked[b], "bucket %d not refreshed", b);
	h_node_fini(&h);
}

Test(lookup, next_timer_is_none_when_idle)
{
	struct h_rng r = {11};
	struct p2p_peerid self = h_id_random(&r);
	struct h_node h;

	h_node_init(&h, &self, true, 11);
	cr_assert_eq(p2p_overlay_next_timer(h.o), UINT64_MAX);
	cr_assert(!p2p_overlay_poll(h.o, &(struct p2p_ov_action){0}));
	h_node_fini(&h);
}

/* issue 9: a NODES reply from a peer on the Internet cannot make us dial
 * loopback, unspecified, multicast or port 0; a plausible contact is. */
Test(lookup, implausible_contacts_from_nodes_are_not_dialled)
{
	struct h_rng r = {11};
	struct p2p_peerid self = h_id_random(&r), seed = h_id_random(&r);
	struct p2p_addr a = h_addr4(92, 0, 0, 1, 4000);
	const struct p2p_addr bad[] = {
	    h_addr4(127, 0, 0, 1, 22), h_addr4(0, 0, 0, 0, 4000),
	    h_addr4(224, 0, 0, 5, 4000), h_addr4(93, 0, 0, 1, 0)};
	const struct h_act *f;
	struct p2p_msg m;
	struct h_node h;
	size_t k = 0;

	h_node_init(&h, &self, true, 12);
	h_link_server(&h, 1, &seed, &a);
	h_clear(&h);
	cr_assert_eq(p2p_overlay_lookup(h.o, 3, &self, NULL), 0);
	h_drain(&h);
	f = h_find(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE, 0);
	cr_assert_not_null(f);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_NODES;
	m.u.nodes.txid = f->msg.u.find_node.txid;
	for (; k < sizeof(bad) / sizeof(bad[0]); k++) {
		m.u.nodes.nodes[k].id = h_id_random(&r);
		m.u.nodes.nodes[k].addr = bad[k];
	}
	m.u.nodes.nodes[k].id = h_id_random(&r);
	m.u.nodes.nodes[k++].addr = h_addr4(94, 0, 0, 1, 4000);
	m.u.nodes.count = (uint8_t)k;
	h_clear(&h);
	cr_assert_eq(p2p_overlay_recv(h.o, 4, &seed, &m), 0);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_DIAL, 0), 1);
	f = h_find(&h, P2P_OV_DIAL, 0, 0);
	cr_assert_eq(f->a.addr.ip[0], 94);
	h_node_fini(&h);
}

/* issue 9: FIND_NODE is answered at P2P_FIND_RATE per peer after a burst;
 * another peer keeps its own budget. */
Test(lookup, find_node_rate_limited_per_peer)
{
	struct h_rng r = {13};
	struct p2p_peerid self = h_id_random(&r), p1 = h_id_random(&r),
			  p2 = h_id_random(&r);
	struct p2p_addr a1 = h_addr4(92, 0, 0, 1, 4000),
			a2 = h_addr4(93, 0, 0, 1, 4000);
	struct p2p_overlay_stats st;
	struct p2p_msg m;
	struct h_node h;

	h_node_init(&h, &self, true, 14);
	h_link_server(&h, 1, &p1, &a1);
	h_link_server(&h, 1, &p2, &a2);
	h_clear(&h);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_FIND_NODE;
	m.u.find_node.target = h_id_random(&r);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(p2p_overlay_recv(h.o, 2, &p1, &m), 0);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_NODES), P2P_FIND_BURST);
	/* ten seconds later: P2P_FIND_RATE a second, no more */
	h_clear(&h);
	for (uint64_t t = 3; t < 10003; t += 5)
		cr_assert_eq(p2p_overlay_recv(h.o, t, &p1, &m), 0);
	h_drain(&h);
	cr_assert_leq(h_count(&h, P2P_OV_SEND, P2P_MSG_NODES),
		      10 * P2P_FIND_RATE + 1);
	cr_assert_geq(h_count(&h, P2P_OV_SEND, P2P_MSG_NODES),
		      10 * P2P_FIND_RATE - 1);
	h_clear(&h);
	cr_assert_eq(p2p_overlay_recv(h.o, 10003, &p2, &m), 0);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_NODES), 1);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_gt(st.finds_dropped, 900);
	h_node_fini(&h);
}
