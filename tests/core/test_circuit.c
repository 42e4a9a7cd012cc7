/* Relay circuits (core/circuit.h): the table, and every relay decision
 * with a fake link table, no sockets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/circuit.h"

/* ---- the table ---- */

Test(circuit_tab, both_ends_find_each_other)
{
	struct relay_tab t = {0};
	uint32_t o = 0, oc = 0;
	struct relay_circ *r;

	cr_assert_eq(relay_tab_add(&t, 1, 1, 2, 2), 0);
	cr_assert_eq(t.n, 1);
	r = relay_tab_find(&t, 1, 1, &o, &oc);
	cr_assert_not_null(r);
	cr_assert_eq(o, 2);
	cr_assert_eq(oc, 2);
	cr_assert_eq(relay_tab_find(&t, 2, 2, &o, &oc), r);
	cr_assert_eq(o, 1);
	cr_assert_eq(oc, 1);
	/* The same ID on the other link, or another ID: no circuit. */
	cr_assert_null(relay_tab_find(&t, 2, 1, &o, &oc));
	cr_assert_null(relay_tab_find(&t, 1, 2, &o, &oc));
	cr_assert_null(relay_tab_find(&t, 3, 1, &o, &oc));
	cr_assert(relay_tab_used(&t, 1, 1));
	cr_assert(relay_tab_used(&t, 2, 2));
	cr_assert_not(relay_tab_used(&t, 1, 2));
	relay_tab_del(&t, r);
	cr_assert_eq(t.n, 0);
	cr_assert_null(relay_tab_find(&t, 1, 1, &o, &oc));
}

Test(circuit_tab, ids_in_use_and_loops_refused)
{
	struct relay_tab t = {0};

	cr_assert_eq(relay_tab_add(&t, 1, 1, 2, 2), 0);
	cr_assert_eq(relay_tab_add(&t, 1, 1, 3, 4), -EEXIST);
	cr_assert_eq(relay_tab_add(&t, 3, 3, 2, 2), -EEXIST);
	/* An ID used as the b end is in use for an a end on that link. */
	cr_assert_eq(relay_tab_add(&t, 2, 2, 3, 6), -EEXIST);
	cr_assert_eq(relay_tab_add(&t, 4, 1, 4, 2), -EINVAL);
	cr_assert_eq(t.n, 1);
	relay_tab_clear(&t);
	cr_assert_eq(t.n, 0);
	cr_assert_null(t.circs);
}

Test(circuit_tab, per_peer_limit)
{
	struct relay_tab t = {0};
	uint32_t i, o, oc;

	for (i = 0; i < RELAY_CIRC_PER_LINK; i++)
		cr_assert_eq(relay_tab_add(&t, 1, 2 * i + 1, 2, 2 * i), 0);
	cr_assert_eq(relay_tab_add(&t, 1, 999, 2, 1000), -EBUSY);
	/* The limit is on who opens: the target's side may still open. */
	cr_assert_eq(relay_tab_add(&t, 2, 999, 1, 1000), 0);
	/* One of link 1's closes: it may open one more. */
	relay_tab_del(&t, relay_tab_find(&t, 1, 1, &o, &oc));
	cr_assert_eq(relay_tab_add(&t, 1, 1001, 2, 1002), 0);
	cr_assert_eq(relay_tab_add(&t, 1, 1003, 2, 1004), -EBUSY);
	relay_tab_clear(&t);
}

Test(circuit_tab, total_limit)
{
	struct relay_tab t = {0};

	/* Each circuit from its own link, so only the total limit applies. */
	for (uint32_t i = 0; i < RELAY_CIRC_MAX + 1; i++) {
		int rc =
		    relay_tab_add(&t, i + 1, 1, RELAY_CIRC_MAX + 10, 2 * i);
		cr_assert_eq(rc, i < RELAY_CIRC_MAX ? 0 : -EBUSY, "circuit %u",
			     i);
	}
	cr_assert_eq(t.n, RELAY_CIRC_MAX);
	relay_tab_clear(&t);
}

Test(circuit_tab, on_finds_every_circuit_of_a_link)
{
	struct relay_tab t = {0};
	struct relay_circ *r;
	unsigned n = 0;

	cr_assert_eq(relay_tab_add(&t, 1, 1, 2, 2), 0);
	cr_assert_eq(relay_tab_add(&t, 3, 1, 1, 4), 0);
	cr_assert_eq(relay_tab_add(&t, 3, 3, 2, 4), 0);
	while ((r = relay_tab_on(&t, 1)) != NULL) {
		relay_tab_del(&t, r);
		n++;
	}
	cr_assert_eq(n, 2);
	cr_assert_eq(t.n, 1);
	cr_assert_null(relay_tab_on(&t, 1));
	cr_assert_not_null(relay_tab_on(&t, 2));
	relay_tab_clear(&t);
}

/* ---- the decisions, over a fake link table ---- */

#define NLINKS 512
#define NENDS 64

/* Link i (1..NLINKS-1): outbound, queued bytes, gone; peers by first
 * byte: peer k's direct link is TO[k]. */
static bool OUT[NLINKS], GONE[NLINKS];
static size_t QUEUED[NLINKS];
static uint32_t TO[256];
static struct {
	uint32_t link, circ;
	bool closed;
} ENDS[NENDS];
static size_t NEND;
static bool FULL;
static struct p2p_circuit *C;
static struct p2p_circuit_action Q[P2P_CIRCUIT_QUEUE_MAX];
static size_t NQ;

static struct p2p_peerid pid(uint8_t b)
{
	struct p2p_peerid x;

	memset(&x, 0, sizeof(x));
	x.b[0] = b;
	return x;
}

static uint32_t f_link_to(void *arg, const struct p2p_peerid *peer)
{
	return TO[peer->b[0]];
}

static bool f_outbound(void *arg, uint32_t l)
{
	return OUT[l];
}

static size_t f_queued(void *arg, uint32_t l)
{
	return GONE[l] ? SIZE_MAX : QUEUED[l];
}

static bool f_is_end(void *arg, uint32_t l, uint32_t c)
{
	for (size_t i = 0; i < NEND; i++)
		if (ENDS[i].link == l && ENDS[i].circ == c)
			return true;
	return false;
}

static unsigned f_ends(void *arg, uint32_t l)
{
	unsigned n = 0;

	for (size_t i = 0; i < NEND; i++)
		n += ENDS[i].link == l && !ENDS[i].closed;
	return n;
}

static bool f_links_full(void *arg)
{
	return FULL;
}

static void add_end(uint32_t l, uint32_t c, bool closed)
{
	cr_assert_lt(NEND, NENDS);
	ENDS[NEND].link = l;
	ENDS[NEND].circ = c;
	ENDS[NEND++].closed = closed;
}

static void setup(void)
{
	struct p2p_circuit_query q = {
	    .link_to = f_link_to,
	    .outbound = f_outbound,
	    .queued = f_queued,
	    .is_end = f_is_end,
	    .ends = f_ends,
	    .links_full = f_links_full,
	};

	memset(OUT, 0, sizeof(OUT));
	memset(GONE, 0, sizeof(GONE));
	memset(QUEUED, 0, sizeof(QUEUED));
	memset(TO, 0, sizeof(TO));
	NEND = 0;
	FULL = false;
	NQ = 0;
	C = p2p_circuit_new(&q);
	cr_assert_not_null(C);
}

static void teardown(void)
{
	p2p_circuit_free(C);
	C = NULL;
}

/* Poll every action into Q. */
static size_t drain(void)
{
	NQ = 0;
	while (NQ < P2P_CIRCUIT_QUEUE_MAX && p2p_circuit_poll(C, &Q[NQ]))
		NQ++;
	return NQ;
}

static void assert_close(const struct p2p_circuit_action *a, uint32_t l,
			 uint32_t c, const char *why)
{
	cr_assert_eq(a->type, P2P_CIRCUIT_SEND_CLOSE);
	cr_assert_eq(a->link, l);
	cr_assert_eq(a->circ, c);
	cr_assert_eq(a->len, strlen(why));
	cr_assert(memcmp(a->text, why, a->len) == 0, "%.*s != %s", (int)a->len,
		  a->text, why);
}

static struct p2p_peerid A, X;

/*
 * The usual scene: we relay. A (peer 0xa0) reached us on link 1 (inbound:
 * A picks odd IDs there), X (0x80) is on link 2 that we dialled (we pick
 * odd IDs there).
 */
static void scene(void)
{
	setup();
	A = pid(0xa0);
	X = pid(0x80);
	TO[0xa0] = 1;
	TO[0x80] = 2;
	OUT[2] = true;
}

/* A opens circuit ca to X; returns the ID on link 2. */
static uint32_t open_a_x(uint32_t ca)
{
	cr_assert_eq(p2p_circuit_on_open(C, 1, ca, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_SEND_OPEN);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ & 1, 1, "our parity on an outbound link");
	cr_assert(memcmp(&Q[0].peer, &A, sizeof(A)) == 0);
	return Q[0].circ;
}

TestSuite(circuit, .init = scene, .fini = teardown);

Test(circuit, open_is_relayed_with_our_id_and_the_requester)
{
	struct p2p_circuit_stats st;
	uint32_t cb = open_a_x(1);

	cr_assert_eq(cb, (1u << 1) | 1);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, 1);
	cr_assert_eq(st.opened, 1);
	/* Another: a fresh ID. */
	cr_assert_neq(open_a_x(3), cb);
}

Test(circuit, an_id_of_our_parity_is_refused)
{
	/* Link 1 is inbound: even IDs are ours to pick. */
	cr_assert_eq(p2p_circuit_on_open(C, 1, 2, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 2, "bad circuit ID");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_BAD_ID);
	/* Link 2 is outbound: odd IDs are ours, incoming or not. */
	cr_assert_eq(p2p_circuit_on_open(C, 2, 5, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, 5, "bad circuit ID");
}

Test(circuit, no_link_to_the_peer)
{
	struct p2p_peerid y = pid(0x33);
	struct p2p_circuit_stats st;

	cr_assert_eq(p2p_circuit_on_open(C, 1, 1, false, &y, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "no link to that peer");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_NONE);
	/* Relaying A to itself: its link is the only one to that peer. */
	cr_assert_eq(p2p_circuit_on_open(C, 1, 3, false, &A, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 3, "no link to that peer");
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, 0);
	cr_assert_eq(st.opened, 0);
}

Test(circuit, an_id_in_use_is_refused)
{
	open_a_x(1);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 1, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "circuit ID in use");
	/* Our own end on link 1 uses ID 5. */
	add_end(1, 5, true);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 5, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 5, "circuit ID in use");
}

Test(circuit, relay_busy_per_link_and_in_total)
{
	uint32_t i;

	for (i = 0; i < RELAY_CIRC_PER_LINK; i++)
		open_a_x(2 * i + 1);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 101, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 101, "relay busy");
	/* X may still ask for A. */
	cr_assert_eq(p2p_circuit_on_open(C, 2, 100, false, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_SEND_OPEN);
	cr_assert_eq(Q[0].link, 1);
	cr_assert_eq(Q[0].circ & 1, 0, "our parity on an inbound link");

	/* In total: links 10.. each open a few to X. */
	teardown();
	scene();
	for (i = 0; i < RELAY_CIRC_MAX; i++) {
		cr_assert_eq(p2p_circuit_on_open(C, 10 + i / 8, 2 * (i % 8) + 1,
						 false, &X, &A),
			     0);
		cr_assert_eq(drain(), 1);
		cr_assert_eq(Q[0].type, P2P_CIRCUIT_SEND_OPEN, "circuit %u", i);
	}
	cr_assert_eq(p2p_circuit_on_open(C, 1, 1, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "relay busy");
}

Test(circuit, relay_busy_when_no_fresh_id)
{
	/* Every ID the core would try on link 2 is one of our ends. */
	for (uint32_t i = 1; i <= RELAY_ID_TRIES; i++)
		add_end(2, (i << 1) | 1, false);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 1, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "relay busy");
	/* The next try finds a free one. */
	cr_assert_eq(open_a_x(1), ((RELAY_ID_TRIES + 1) << 1) | 1);
}

Test(circuit, data_is_forwarded_both_ways)
{
	static const uint8_t d[] = "hello";
	struct p2p_circuit_stats st;
	uint32_t cb = open_a_x(1);

	cr_assert_eq(p2p_circuit_on_data(C, 1, 1, d, 5), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ, cb);
	cr_assert_eq(Q[0].data, d);
	cr_assert_eq(Q[0].len, 5);
	cr_assert_eq(p2p_circuit_on_data(C, 2, cb, d, 3), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	cr_assert_eq(Q[0].link, 1);
	cr_assert_eq(Q[0].circ, 1);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.bytes, 8);
	cr_assert_eq(st.unknown, 0);
}

Test(circuit, a_full_queue_cuts_the_circuit)
{
	static const uint8_t d[8];
	struct p2p_circuit_stats st;
	uint32_t cb = open_a_x(1);

	/* Exactly at the limit: still forwarded. */
	QUEUED[2] = RELAY_WQ_MAX - 8;
	cr_assert_eq(p2p_circuit_on_data(C, 1, 1, d, 8), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	/* One byte over: both ends are told, the circuit is gone. */
	QUEUED[2]++;
	cr_assert_eq(p2p_circuit_on_data(C, 1, 1, d, 8), 0);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 1, "relay queue full");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_QUEUE_FULL);
	assert_close(&Q[1], 2, cb, "relay queue full");
	cr_assert_eq(Q[1].note, P2P_CIRCUIT_N_NONE);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, 0);
	cr_assert_eq(st.bytes, 8);
	/* The outgoing link gone (not yet announced): the same. */
	cb = open_a_x(3);
	GONE[2] = true;
	cr_assert_eq(p2p_circuit_on_data(C, 1, 3, d, 1), 0);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 3, "relay queue full");
	assert_close(&Q[1], 2, cb, "relay queue full");
}

Test(circuit, unknown_circuits_are_counted_only)
{
	static const uint8_t d[1];
	struct p2p_circuit_stats st;

	cr_assert_eq(p2p_circuit_on_data(C, 1, 7, d, 1), 0);
	cr_assert_eq(p2p_circuit_on_close(C, 1, 7, "x", 1), 0);
	cr_assert_eq(drain(), 0);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.unknown, 2);
}

Test(circuit, close_from_either_end_tells_the_other)
{
	uint32_t cb = open_a_x(1);

	cr_assert_eq(p2p_circuit_on_close(C, 1, 1, "bye", 3), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, cb, "closed by the other end");
	cb = open_a_x(3);
	cr_assert_eq(p2p_circuit_on_close(C, 2, cb, "", 0), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 3, "closed by the other end");
	/* Gone: a second close is unknown. */
	cr_assert_eq(p2p_circuit_on_close(C, 2, cb, "", 0), 0);
	cr_assert_eq(drain(), 0);
}

Test(circuit, a_link_gone_closes_its_circuits)
{
	struct p2p_circuit_stats st;
	uint32_t c1 = open_a_x(1), c3 = open_a_x(3);
	bool seen1 = false, seen3 = false;

	/* And one X opened to A, plus one between links 3 and 2. */
	cr_assert_eq(p2p_circuit_on_open(C, 2, 40, false, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	TO[0xc0] = 3;
	struct p2p_peerid z = pid(0xc0);
	cr_assert_eq(p2p_circuit_on_open(C, 2, 42, false, &z, &X), 0);
	cr_assert_eq(drain(), 1);

	cr_assert_eq(p2p_circuit_link_gone(C, 1), 0);
	cr_assert_eq(drain(), 3);
	for (size_t i = 0; i < NQ; i++) {
		if (Q[i].link == 2 && Q[i].circ == c1)
			seen1 = true;
		else if (Q[i].link == 2 && Q[i].circ == c3)
			seen3 = true;
		else
			assert_close(&Q[i], 2, 40,
				     "the other end's link is gone");
		assert_close(&Q[i], 2, Q[i].circ,
			     "the other end's link is gone");
	}
	cr_assert(seen1 && seen3);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, 1, "the circuit 2-3 stays");
	cr_assert_eq(p2p_circuit_link_gone(C, 1), 0);
	cr_assert_eq(drain(), 0);
}

Test(circuit, an_incoming_end_is_accepted)
{
	/* The relay is on link 2, which we dialled: it picks even IDs. */
	cr_assert_eq(p2p_circuit_on_open(C, 2, 4, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_ACCEPT);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ, 4);
	cr_assert(memcmp(&Q[0].peer, &A, sizeof(A)) == 0);
}

Test(circuit, an_incoming_end_is_refused)
{
	add_end(2, 4, true);
	cr_assert_eq(p2p_circuit_on_open(C, 2, 4, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, 4, "circuit ID in use");
	/* A circuit we relay on that link uses the ID too. */
	open_a_x(1);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 1, true, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "circuit ID in use");
	/* Per link: closed ends do not count. */
	for (uint32_t i = 0; i < RELAY_CIRC_PER_LINK - 1; i++)
		add_end(2, 100 + 2 * i, false);
	cr_assert_eq(p2p_circuit_on_open(C, 2, 6, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_ACCEPT);
	add_end(2, 6, false);
	cr_assert_eq(p2p_circuit_on_open(C, 2, 8, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, 8, "too many links");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_REFUSED);
	/* The node's link limit. */
	FULL = true;
	cr_assert_eq(p2p_circuit_on_open(C, 1, 9, true, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 9, "too many links");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_REFUSED);
}

Test(circuit, our_ends_get_their_data_and_close)
{
	static const uint8_t d[] = "rec";
	struct p2p_circuit_stats st;

	add_end(2, 4, false);
	add_end(2, 6, true); /* closed: still ours, data swallowed there */
	cr_assert_eq(p2p_circuit_on_data(C, 2, 4, d, 3), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_END_DATA);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ, 4);
	cr_assert_eq(Q[0].data, d);
	cr_assert_eq(Q[0].len, 3);
	cr_assert_eq(p2p_circuit_on_data(C, 2, 6, d, 3), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_END_DATA);
	cr_assert_eq(p2p_circuit_on_close(C, 2, 4, "relay busy", 10), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_END_CLOSED);
	cr_assert_eq(Q[0].len, 10);
	cr_assert(memcmp(Q[0].text, "relay busy", 10) == 0);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.unknown, 0);
	cr_assert_eq(st.bytes, 0);
}

Test(circuit, pick_our_ids)
{
	uint32_t c;

	/* Link 1 inbound: even; link 2 outbound: odd; fresh each time. */
	cr_assert_eq(p2p_circuit_pick(C, 1, &c), 0);
	cr_assert_eq(c, 2);
	cr_assert_eq(p2p_circuit_pick(C, 2, &c), 0);
	cr_assert_eq(c, 5);
	/* IDs in use are skipped. */
	add_end(1, 6, true);
	add_end(1, 8, false);
	cr_assert_eq(p2p_circuit_pick(C, 1, &c), 0);
	cr_assert_eq(c, 10);
	/* All RELAY_ID_TRIES in use: -EBUSY. */
	for (uint32_t i = 6; i < 6 + RELAY_ID_TRIES; i++)
		add_end(1, i << 1, true);
	cr_assert_eq(p2p_circuit_pick(C, 1, &c), -EBUSY);
	/* Limits: our open ends on the link, the node's links. */
	teardown();
	scene();
	for (uint32_t i = 0; i < RELAY_CIRC_PER_LINK; i++)
		add_end(2, 2 * i + 1, false);
	cr_assert_eq(p2p_circuit_pick(C, 2, &c), -EBUSY);
	cr_assert_eq(p2p_circuit_pick(C, 1, &c), 0);
	FULL = true;
	cr_assert_eq(p2p_circuit_pick(C, 1, &c), -EMFILE);
}

Test(circuit, an_undrained_queue_refuses_events)
{
	static const uint8_t d[1];
	struct p2p_circuit_stats st;
	struct p2p_peerid y = pid(0x33);
	uint32_t i;

	/* RELAY_CIRC_MAX circuits from links 10.. to X, closed at once by
	 * X's link going: the queue holds that many closes. */
	for (i = 0; i < RELAY_CIRC_MAX; i++) {
		cr_assert_eq(p2p_circuit_on_open(C, 10 + i / 8, 2 * (i % 8) + 1,
						 false, &X, &A),
			     0);
		cr_assert_eq(drain(), 1);
	}
	cr_assert_eq(p2p_circuit_link_gone(C, 2), 0);
	/* Two more fit, then nothing. */
	cr_assert_eq(p2p_circuit_on_open(C, 1, 1, false, &y, &A), 0);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 3, false, &y, &A), 0);
	cr_assert_eq(p2p_circuit_on_open(C, 1, 5, false, &y, &A), -ENOBUFS);
	cr_assert_eq(p2p_circuit_on_data(C, 1, 5, d, 1), -ENOBUFS);
	cr_assert_eq(p2p_circuit_on_close(C, 1, 5, "", 0), -ENOBUFS);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.unknown, 0, "a refused event changes nothing");
	cr_assert_eq(drain(), P2P_CIRCUIT_QUEUE_MAX);
	/* The newest circuit first: link 10 + 255 / 8, ID 2 * 7 + 1. */
	assert_close(&Q[0], 41, 15, "the other end's link is gone");
	assert_close(&Q[P2P_CIRCUIT_QUEUE_MAX - 1], 1, 3,
		     "no link to that peer");
	cr_assert_eq(p2p_circuit_on_open(C, 1, 5, false, &y, &A), 0);
}
