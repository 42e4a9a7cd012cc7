/* Routed messages: greedy forwarding, delivery, limits and failures. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "harness.h"

static struct p2p_peerid self0(void)
{
	struct p2p_peerid id;

	memset(&id, 0, sizeof(id));
	return id;
}

/* Nodes around dst = 0x80...: near is nearer to dst than us, far is not. */
struct scene {
	struct h_node h;
	struct p2p_peerid self, dst, near, nearer, far, src;
};

static void scene_init(struct scene *s, bool server)
{
	s->self = self0();
	s->dst = h_id_in_bucket(&s->self, 0, 0);
	s->near = h_id_in_bucket(&s->self, 0, 0x1000); /* dst ^ 0x1000 */
	s->nearer = h_id_in_bucket(&s->self, 0, 0x10); /* dst ^ 0x10 */
	s->far = h_id_in_bucket(&s->self, 1, 0);       /* 0x40... */
	s->src = h_id_in_bucket(&s->self, 2, 5);
	h_node_init(&s->h, &s->self, server, 11);
}

static void link(struct scene *s, const struct p2p_peerid *id, int n)
{
	struct p2p_addr a = h_addr4(100, n, 0, 1, 4000);

	h_link_server(&s->h, 1, id, &a);
}

static struct p2p_msg routed(const struct p2p_peerid *src,
			     const struct p2p_peerid *dst, uint64_t msgid,
			     uint8_t hops, uint8_t app, const void *p,
			     size_t len)
{
	struct p2p_msg m;

	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_ROUTED;
	m.u.routed.msgid = msgid;
	m.u.routed.hops = hops;
	m.u.routed.src = *src;
	m.u.routed.dst = *dst;
	m.u.routed.app = app;
	m.u.routed.payload = p;
	m.u.routed.len = len;
	return m;
}

static struct p2p_overlay_stats stats(struct scene *s)
{
	struct p2p_overlay_stats st;

	p2p_overlay_get_stats(s->h.o, &st);
	return st;
}

Test(route, greedy_forward_to_nearest_link)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;

	scene_init(&s, true);
	link(&s, &s.near, 1);
	link(&s, &s.nearer, 2);
	link(&s, &s.far, 3);
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 77, 10, P2P_APP_USER,
		   (const uint8_t *)"hello", 5);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, 0), 1);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.nearer));
	cr_assert_eq(x->msg.u.routed.hops, 9);
	cr_assert_eq(x->msg.u.routed.msgid, 77);
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.src, &s.src));
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.dst, &s.dst));
	cr_assert_eq(x->msg.u.routed.len, 5);
	cr_assert_eq(memcmp(x->msg.u.routed.payload, "hello", 5), 0);
	cr_assert_eq(stats(&s).routed_forwarded, 1);
	h_node_fini(&s.h);
}

/* A client near dst is not a relay: it links only to its neighbourhood. */
Test(route, clients_are_endpoints_not_relays)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;
	struct p2p_addr a = h_addr4(100, 9, 0, 1, 4000);

	scene_init(&s, true);
	link(&s, &s.near, 1);
	/* nearer is a client (inbound, not a server) */
	p2p_overlay_link_up(s.h.o, 1, &s.nearer, &a, false, false);
	link(&s, &s.far, 3);
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 78, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.near),
		  "forwarded to the server, not the nearer client");
	h_clear(&s.h);
	/* but a message for the client itself goes to it */
	m = routed(&s.src, &s.nearer, 79, 10, P2P_APP_USER,
		   (const uint8_t *)"y", 1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 11, &s.far, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.nearer));
	h_node_fini(&s.h);
}

Test(route, never_back_to_the_sender)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;

	scene_init(&s, true);
	link(&s, &s.near, 1);
	link(&s, &s.nearer, 2);
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 78, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.nearer, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.near));
	h_node_fini(&s.h);
}

Test(route, link_to_dst_delivers_there_even_at_last_hop)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;

	scene_init(&s, true);
	link(&s, &s.nearer, 1);
	p2p_overlay_link_up(s.h.o, 1, &s.dst, NULL, false,
			    false); /* a client */
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 79, 1, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.dst));
	cr_assert_eq(x->msg.u.routed.hops, 0);
	h_node_fini(&s.h);
}

Test(route, delivered_when_we_are_dst)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;

	scene_init(&s, true);
	link(&s, &s.far, 1);
	h_clear(&s.h);
	m = routed(&s.src, &s.self, 80, P2P_ROUTE_HOPS - 2, P2P_APP_PING,
		   (const uint8_t *)"payload", 7);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, 0), 0);
	x = h_find(&s.h, P2P_OV_DELIVER, 0, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.src));
	cr_assert_eq(x->a.app, P2P_APP_PING);
	cr_assert_eq(x->a.id, 80);
	cr_assert_eq(x->a.hops, 3);
	cr_assert_eq(x->a.len, 7);
	cr_assert_eq(memcmp(x->a.data, "payload", 7), 0);
	cr_assert_eq(stats(&s).routed_delivered, 1);
	h_node_fini(&s.h);
}

Test(route, duplicates_are_dropped)
{
	struct scene s;
	struct p2p_msg m;

	scene_init(&s, true);
	link(&s, &s.near, 1);
	link(&s, &s.far, 2);
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 81, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 11, &s.far, &m), 0);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 12, &s.near, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, 0), 1);
	cr_assert_eq(stats(&s).routed_dropped, 2);
	/* and a copy of a message for us is delivered once */
	m = routed(&s.src, &s.self, 82, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 13, &s.far, &m), 0);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 14, &s.near, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_DELIVER, 0), 1);
	h_node_fini(&s.h);
}

static void expect_route_fail(struct scene *s, uint64_t msgid)
{
	const struct h_act *x = h_find(&s->h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	uint64_t got = 0;

	cr_assert_not_null(x, "no ROUTE_FAIL sent");
	cr_assert(p2p_peerid_equal(&x->a.peer, &s->far),
		  "not sent back to the hop it came from");
	cr_assert_eq(x->msg.u.routed.app, P2P_APP_ROUTE_FAIL);
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.dst, &s->src));
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.src, &s->self));
	cr_assert_eq(x->msg.u.routed.len, 8);
	for (int i = 0; i < 8; i++)
		got = got << 8 | x->msg.u.routed.payload[i];
	cr_assert_eq(got, msgid);
}

Test(route, hop_limit_reached_gives_route_fail)
{
	struct scene s;
	struct p2p_msg m;

	scene_init(&s, true);
	link(&s, &s.near, 1);
	link(&s, &s.far, 2);
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 0x0102030405060708ULL, 1, P2P_APP_USER,
		   (const uint8_t *)"x", 1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, 0), 1);
	expect_route_fail(&s, 0x0102030405060708ULL);
	cr_assert_eq(stats(&s).routed_forwarded, 0);
	cr_assert_eq(stats(&s).routed_dropped, 1);
	h_node_fini(&s.h);
}

Test(route, no_nearer_peer_gives_route_fail)
{
	struct scene s;
	struct p2p_msg m;

	scene_init(&s, true);
	link(&s, &s.far, 1);
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 4242, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	expect_route_fail(&s, 4242);
	/* a failure that cannot go on is dropped silently */
	h_clear(&s.h);
	m = routed(&s.src, &s.dst, 4243, 10, P2P_APP_ROUTE_FAIL,
		   (const uint8_t *)"12345678", 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 11, &s.far, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(s.h.log.n, 0);
	h_node_fini(&s.h);
}

Test(route, rate_limit_per_peer)
{
	struct scene s;
	struct p2p_msg m;
	uint64_t id = 1000;

	scene_init(&s, true);
	link(&s, &s.near, 1);
	link(&s, &s.far, 2);
	h_clear(&s.h);
	for (int i = 0; i < P2P_ROUTE_RATE; i++) {
		m = routed(&s.src, &s.dst, id++, 10, P2P_APP_USER,
			   (const uint8_t *)"x", 1);
		cr_assert_eq(p2p_overlay_recv(s.h.o, 5000, &s.far, &m), 0,
			     "msg %d", i);
	}
	m = routed(&s.src, &s.dst, id++, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 5000, &s.far, &m), -EAGAIN);
	/* another peer has its own bucket */
	cr_assert_eq(p2p_overlay_recv(s.h.o, 5000, &s.near, &m), 0);
	/* one token comes back every 1000 / RATE ms */
	m = routed(&s.src, &s.dst, id++, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(
	    p2p_overlay_recv(s.h.o, 5000 + 1000 / P2P_ROUTE_RATE, &s.far, &m),
	    0);
	m = routed(&s.src, &s.dst, id++, 10, P2P_APP_USER, (const uint8_t *)"x",
		   1);
	cr_assert_eq(
	    p2p_overlay_recv(s.h.o, 5000 + 1000 / P2P_ROUTE_RATE, &s.far, &m),
	    -EAGAIN);
	h_drain(&s.h);
	h_node_fini(&s.h);
}

Test(route, route_fail_surfaces_at_origin)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;
	uint8_t body[8];
	uint64_t msgid = 0;

	scene_init(&s, true);
	link(&s, &s.near, 1);
	h_clear(&s.h);
	cr_assert_eq(p2p_overlay_route(s.h.o, 10, &s.dst, P2P_APP_USER,
				       (const uint8_t *)"abc", 3, &msgid),
		     0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.near));
	cr_assert_eq(x->msg.u.routed.msgid, msgid);
	cr_assert_eq(x->msg.u.routed.hops, P2P_ROUTE_HOPS);
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.src, &s.self));
	/* a failure for a message we never sent is ignored */
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)((msgid + 1) >> (56 - 8 * i));
	m = routed(&s.near, &s.self, 555, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 11, &s.near, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_ROUTE_FAILED, 0), 0);
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)(msgid >> (56 - 8 * i));
	m = routed(&s.near, &s.self, 556, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 12, &s.near, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_ROUTE_FAILED, 0, 0);
	cr_assert_not_null(x);
	cr_assert_eq(x->a.id, msgid);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.dst));
	cr_assert_eq(h_count(&s.h, P2P_OV_DELIVER, 0), 0);
	h_node_fini(&s.h);
}

static void put_id(uint8_t body[8], uint64_t id)
{
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)(id >> (56 - 8 * i));
}

/* Attack: a linked peer that is not our first hop names our message ID. */
Test(route, route_fail_only_from_the_first_hop)
{
	struct scene s;
	struct p2p_msg m;
	uint8_t body[8];
	uint64_t msgid = 0;

	scene_init(&s, false);
	link(&s, &s.near, 1);
	link(&s, &s.far, 2);
	h_clear(&s.h);
	cr_assert_eq(p2p_overlay_route(s.h.o, 10, &s.dst, P2P_APP_USER,
				       (const uint8_t *)"abc", 3, &msgid),
		     0);
	h_drain(&s.h);
	put_id(body, msgid);
	m = routed(&s.far, &s.self, 600, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 11, &s.far, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_ROUTE_FAILED, 0), 0,
		     "a failure from off the path failed our message");
	/* the first hop's report still counts */
	m = routed(&s.near, &s.self, 601, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 12, &s.near, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_ROUTE_FAILED, 0), 1);
	/* and the overlay's own application cannot be sent by a user */
	cr_assert_eq(p2p_overlay_route(s.h.o, 13, &s.dst, P2P_APP_ROUTE_FAIL,
				       body, 8, NULL),
		     -EINVAL);
	h_node_fini(&s.h);
}

/* A forwarder passes a failure back the way the message came, and only a
 * failure that comes from the hop it passed the message to. */
Test(route, route_fail_goes_back_the_way_it_came)
{
	struct scene s;
	struct p2p_msg m;
	const struct h_act *x;
	uint8_t body[8];

	scene_init(&s, true);
	link(&s, &s.near, 1);
	link(&s, &s.far, 2);
	link(&s, &s.nearer, 3);
	h_clear(&s.h);
	/* src -> (far) -> us -> nearer */
	m = routed(&s.src, &s.dst, 0xabc, 10, P2P_APP_USER,
		   (const uint8_t *)"x", 1);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 10, &s.far, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.nearer));
	h_clear(&s.h);
	put_id(body, 0xabc);
	/* from near, which never had it: dropped */
	m = routed(&s.near, &s.src, 700, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 11, &s.near, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, 0), 0);
	/* a failure for an ID we never passed on: dropped */
	put_id(body, 0xabd);
	m = routed(&s.nearer, &s.src, 701, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 12, &s.nearer, &m), 0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, 0), 0);
	/* from nearer: back to far, unchanged but for the hop count */
	put_id(body, 0xabc);
	m = routed(&s.nearer, &s.src, 702, 10, P2P_APP_ROUTE_FAIL, body, 8);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 13, &s.nearer, &m), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.far));
	cr_assert_eq(x->msg.u.routed.app, P2P_APP_ROUTE_FAIL);
	cr_assert_eq(x->msg.u.routed.msgid, 702);
	cr_assert_eq(x->msg.u.routed.hops, 9);
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.src, &s.nearer));
	cr_assert(p2p_peerid_equal(&x->msg.u.routed.dst, &s.src));
	h_node_fini(&s.h);
}

/* A server that is the nearest node it knows of still asks its nearest
 * server link (which may hold dst's link: a client links to several
 * servers near its ID); that hop's ROUTE_FAIL is the answer otherwise. */
Test(route, server_origin_with_no_nearer_link_asks_its_nearest)
{
	struct scene s;
	const struct h_act *x;
	uint64_t msgid = 0, failid = 77;
	uint8_t body[8];
	struct p2p_msg f;

	scene_init(&s, true);
	link(&s, &s.far, 1);
	h_clear(&s.h);
	cr_assert_eq(p2p_overlay_route(s.h.o, 10, &s.dst, P2P_APP_USER,
				       (const uint8_t *)"a", 1, &msgid),
		     0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x, "the first hop may be no nearer");
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.far));
	cr_assert_null(h_find(&s.h, P2P_OV_ROUTE_FAILED, 0, 0));
	/* far holds no link to dst either: its failure surfaces here. */
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)(msgid >> (56 - 8 * i));
	f = routed(&s.far, &s.self, failid, P2P_ROUTE_HOPS, P2P_APP_ROUTE_FAIL,
		   body, sizeof(body));
	h_clear(&s.h);
	cr_assert_eq(p2p_overlay_recv(s.h.o, 20, &s.far, &f), 0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_ROUTE_FAILED, 0, 0);
	cr_assert_not_null(x);
	cr_assert_eq(x->a.id, msgid);
	h_node_fini(&s.h);
}

Test(route, client_origin_uses_its_nearest_link)
{
	struct scene s;
	const struct h_act *x;

	scene_init(&s, false);
	link(&s, &s.far, 1);
	h_clear(&s.h);
	cr_assert_eq(p2p_overlay_route(s.h.o, 10, &s.dst, P2P_APP_USER,
				       (const uint8_t *)"a", 1, NULL),
		     0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED, 0);
	cr_assert_not_null(x);
	cr_assert(p2p_peerid_equal(&x->a.peer, &s.far));
	h_node_fini(&s.h);
}

Test(route, api_errors_and_local_delivery)
{
	static uint8_t big[P2P_MSG_MAX];
	struct scene s;
	const struct h_act *x;
	uint64_t msgid = 0;

	scene_init(&s, true);
	cr_assert_eq(p2p_overlay_route(s.h.o, 1, &s.dst, P2P_APP_USER,
				       (const uint8_t *)"a", 1, NULL),
		     -EHOSTUNREACH);
	link(&s, &s.near, 1);
	cr_assert_eq(p2p_overlay_route(s.h.o, 1, &s.dst, P2P_APP_USER, big,
				       sizeof(big), NULL),
		     -EMSGSIZE);
	h_clear(&s.h);
	cr_assert_eq(p2p_overlay_route(s.h.o, 2, &s.self, P2P_APP_PING,
				       (const uint8_t *)"me", 2, &msgid),
		     0);
	h_drain(&s.h);
	x = h_find(&s.h, P2P_OV_DELIVER, 0, 0);
	cr_assert_not_null(x);
	cr_assert_eq(x->a.id, msgid);
	cr_assert_eq(x->a.len, 2);
	cr_assert_eq(memcmp(x->a.data, "me", 2), 0);
	/* the largest payload allowed fits in one message */
	cr_assert_eq(p2p_overlay_route(s.h.o, 3, &s.dst, P2P_APP_USER, big,
				       P2P_MSG_MAX - 128, NULL),
		     0);
	h_drain(&s.h);
	cr_assert_eq(h_count(&s.h, P2P_OV_SEND, P2P_MSG_ROUTED), 1);
	h_node_fini(&s.h);
}

Test(route, non_overlay_message_is_rejected)
{
	struct scene s;
	struct p2p_msg m;

	scene_init(&s, true);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_PING;
	cr_assert_eq(p2p_overlay_recv(s.h.o, 1, &s.far, &m), -EPROTO);
	cr_assert_eq(stats(&s).bad_msgs, 1);
	h_node_fini(&s.h);
}
