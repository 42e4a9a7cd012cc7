/* Client mode: never in tables, links to its nearest servers, probes. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static void answer_all_find_nodes(struct h_node *h, uint64_t now,
				  const struct p2p_contact *give, int ngive)
{
	size_t n = h->log.n;

	for (size_t i = 0; i < n; i++) {
		const struct h_act *x = &h->log.v[i];
		struct p2p_msg m;

		if (x->a.type != P2P_OV_SEND ||
		    x->msg.type != P2P_MSG_FIND_NODE)
			continue;
		memset(&m, 0, sizeof(m));
		m.type = P2P_MSG_NODES;
		m.u.nodes.txid = x->msg.u.find_node.txid;
		m.u.nodes.count = (uint8_t)ngive;
		for (int k = 0; k < ngive; k++)
			m.u.nodes.nodes[k] = give[k];
		cr_assert_eq(p2p_overlay_recv(h->o, now, &x->a.peer, &m), 0);
	}
}

Test(client, keeps_links_to_nearest_servers_and_probes_for_new_ones)
{
	struct h_rng r = {31337};
	struct p2p_peerid self = h_id_random(&r);
	struct p2p_peerid far[3], newcomer;
	struct p2p_contact give;
	struct h_node h;
	uint64_t now = 1;
	bool probed = false, dialled = false;

	h_node_init(&h, &self, false, 1);
	cr_assert(!p2p_overlay_is_server(h.o));
	for (int i = 0; i < 3; i++) {
		struct p2p_addr a = h_addr4(110, i, 0, 1, 4000);

		far[i] = h_id_in_bucket(&self, i, 9);
		h_link_server(&h, now, &far[i], &a);
	}
	h_clear(&h);
	p2p_overlay_bootstrap(h.o, now);
	h_drain(&h);
	cr_assert_eq(h_count(&h, P2P_OV_SEND, P2P_MSG_FIND_NODE), 3);
	answer_all_find_nodes(&h, ++now, NULL, 0);
	h_clear(&h);
	/* a server joins right next to us; only a probe can tell us */
	newcomer = h_id_in_bucket(&self, 200, 1);
	give.id = newcomer;
	give.addr = h_addr4(111, 0, 0, 1, 4000);
	while (!dialled && now < 200000) {
		now = p2p_overlay_next_timer(h.o);
		cr_assert_neq(now, UINT64_MAX);
		p2p_overlay_tick(h.o, now);
		h_drain(&h);
		for (size_t i = 0; i < h.log.n; i++) {
			const struct h_act *x = &h.log.v[i];

			if (x->a.type == P2P_OV_SEND &&
			    x->msg.type == P2P_MSG_FIND_NODE &&
			    p2p_peerid_equal(&x->msg.u.find_node.target,
					     &self)) {
				cr_assert_geq(now, 1 + 30000,
					      "probe too early");
				probed = true;
			}
			if (x->a.type == P2P_OV_DIAL &&
			    p2p_peerid_equal(&x->a.peer, &newcomer))
				dialled = true;
		}
		answer_all_find_nodes(&h, now, &give, 1);
		h_clear(&h);
	}
	cr_assert(probed, "no probe");
	cr_assert(dialled, "the new nearest server was never dialled");
	h_node_fini(&h);
}

Test(client, answers_find_node_but_servers_never_list_clients)
{
	struct h_rng r = {4};
	struct p2p_peerid self = h_id_random(&r), cl = h_id_random(&r);
	struct p2p_peerid srv = h_id_random(&r);
	struct p2p_addr a = h_addr4(112, 0, 0, 1, 4000);
	struct p2p_addr b = h_addr4(113, 0, 0, 1, 4000);
	const struct h_act *x;
	struct p2p_msg m;
	struct h_node h;

	h_node_init(&h, &self, true, 2);
	p2p_overlay_link_up(h.o, 1, &cl, &a, false, false);
	h_link_server(&h, 1, &srv, &b);
	h_clear(&h);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_FIND_NODE;
	m.u.find_node.txid = 5;
	m.u.find_node.target = cl; /* even looking for the client itself */
	cr_assert_eq(p2p_overlay_recv(h.o, 2, &cl, &m), 0);
	h_drain(&h);
	x = h_find(&h, P2P_OV_SEND, P2P_MSG_NODES, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &cl));
	cr_assert_eq(x->msg.u.nodes.count, 1);
	cr_assert(p2p_peerid_equal(&x->msg.u.nodes.nodes[0].id, &srv));
	h_node_fini(&h);
}

Test(client, server_never_closes_client_links)
{
	struct h_rng r = {5};
	struct p2p_peerid self = h_id_random(&r), cl = h_id_random(&r);
	struct p2p_addr a = h_addr4(114, 0, 0, 1, 4000);
	struct p2p_overlay_stats st;
	struct h_node h;
	uint64_t now = 1;

	h_node_init(&h, &self, true, 3);
	p2p_overlay_link_up(h.o, now, &cl, &a, false, false);
	h_clear(&h);
	for (int i = 0; i < 100; i++) {
		uint64_t t = p2p_overlay_next_timer(h.o);

		now = t == UINT64_MAX || t < now ? now + 5000 : t;
		p2p_overlay_tick(h.o, now);
		h_drain(&h);
	}
	cr_assert_geq(now, 5 * 60 * 1000);
	cr_assert_eq(h_count(&h, P2P_OV_CLOSE, 0), 0);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_eq(st.links, 1);
	h_node_fini(&h);
}

Test(client, transient_server_links_are_closed_when_idle)
{
	struct h_rng r = {6};
	struct p2p_peerid self = h_id_random(&r);
	struct p2p_peerid kept = h_id_random(&r);
	struct p2p_addr a = h_addr4(115, 0, 0, 1, 4000);
	struct p2p_overlay_stats st;
	struct h_node h;
	uint64_t now = 1;
	int lookup_dials = 0;

	/* a client keeps links only to its nearest servers; fill with 30 */
	h_node_init(&h, &self, false, 4);
	for (int i = 0; i < 30; i++) {
		struct p2p_peerid id = h_id_random(&r);
		struct p2p_addr b = h_addr4(116, i, 0, 1, 4000);

		h_link_server(&h, now, &id, &b);
	}
	h_link_server(&h, now, &kept, &a);
	h_clear(&h);
	for (int i = 0; i < 20; i++) {
		uint64_t t = p2p_overlay_next_timer(h.o);

		if (t == UINT64_MAX)
			break;
		now = t;
		p2p_overlay_tick(h.o, now);
		h_drain(&h);
		lookup_dials += (int)h_count(&h, P2P_OV_DIAL, 0);
	}
	cr_assert_eq(lookup_dials, 0);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_eq(h_count(&h, P2P_OV_CLOSE, 0), 31 - P2P_K);
	cr_assert_eq(st.links, P2P_K);
	h_node_fini(&h);
}
