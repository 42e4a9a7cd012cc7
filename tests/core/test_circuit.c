/* Relay circuits (core/circuit.h): the table, and every relay decision
 * with a fake link table, no sockets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "core/circuit.h"

/* Largest record the credit tests forward. */
#define P2P_RELAY_TEST_MAX (64 * 1024)

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

/* The index under churn: circuits added and deleted in a scrambled
 * order, the index at its fullest (two ends of RELAY_CIRC_MAX circuits), and
 * every end found (with its other end) or not, as a list of what is in says. */
Test(circuit_tab, every_end_is_found_through_adds_and_deletes)
{
	enum { N = RELAY_CIRC_MAX };
	struct relay_tab t = {0};
	struct relay_circ *r;
	bool in[N] = {false};
	uint32_t rng = 12345, o, oc;

	for (int step = 0; step < 20 * N; step++) {
		unsigned i;
		rng = rng * 1103515245u + 12345u;
		i = (rng >> 8) % N;
		/* Circuit i: (i % 31 + 1, i) to (100 + i % 3, 1000 + i); at
		 * most 9 on one link a (RELAY_CIRC_PER_LINK). */
		if (!in[i]) {
			cr_assert_eq(relay_tab_add(&t, i % 31 + 1, i,
						   100 + i % 3, 1000 + i),
				     0, "add %u", i);
			in[i] = true;
		} else {
			r = relay_tab_find(&t, i % 31 + 1, i, &o, &oc);
			cr_assert_not_null(r, "circuit %u", i);
			relay_tab_del(&t, r);
			in[i] = false;
		}
		for (unsigned k = 0; k < N; k++) {
			r = relay_tab_find(&t, k % 31 + 1, k, &o, &oc);
			cr_assert_eq(r != NULL, in[k], "a of %u at step %d", k,
				     step);
			if (r)
				cr_assert(o == 100 + k % 3 && oc == 1000 + k);
			r = relay_tab_find(&t, 100 + k % 3, 1000 + k, &o, &oc);
			cr_assert_eq(r != NULL, in[k], "b of %u at step %d", k,
				     step);
			if (r)
				cr_assert(o == k % 31 + 1 && oc == k);
			cr_assert_eq(relay_tab_used(&t, k % 31 + 1, k), in[k]);
		}
	}
	relay_tab_clear(&t);
	cr_assert_eq(t.n, 0);
	for (unsigned k = 0; k < RELAY_TAB_SLOTS; k++)
		cr_assert_null(t.slot[k].r, "slot %u left after clear", k);
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
static uint64_t T = 1000; /* fake time, ms */
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

/* Per-circuit credit: CREDIT[l], link l's peer keeps it; POS[l], bytes
 * ever queued on l (the test moves it as the caller's sends would). */
static bool CREDIT[NLINKS];
static uint64_t POS[NLINKS];

static bool f_credit(void *arg, uint32_t l)
{
	return CREDIT[l];
}

static uint64_t f_out_pos(void *arg, uint32_t l)
{
	return POS[l];
}

/* Link l's remote address: REMOTE[l] if set, else 10.(l>>8).(l&255).1,
 * a /24 of its own. */
static struct p2p_addr REMOTE[NLINKS];

static bool f_remote(void *arg, uint32_t l, struct p2p_addr *out)
{
	if (REMOTE[l].family) {
		*out = REMOTE[l];
		return true;
	}
	memset(out, 0, sizeof(*out));
	out->family = 4;
	out->ip[0] = 10;
	out->ip[1] = (uint8_t)(l >> 8);
	out->ip[2] = (uint8_t)l;
	out->ip[3] = 1;
	out->port = 4242;
	return true;
}

static void set_ip4(uint32_t l, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	memset(&REMOTE[l], 0, sizeof(REMOTE[l]));
	REMOTE[l].family = 4;
	REMOTE[l].ip[0] = a;
	REMOTE[l].ip[1] = b;
	REMOTE[l].ip[2] = c;
	REMOTE[l].ip[3] = d;
	REMOTE[l].port = (uint16_t)(1000 + l); /* ports never matter */
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
	    .remote = f_remote,
	    .credit = f_credit,
	    .out_pos = f_out_pos,
	};

	memset(OUT, 0, sizeof(OUT));
	memset(CREDIT, 0, sizeof(CREDIT));
	memset(POS, 0, sizeof(POS));
	memset(GONE, 0, sizeof(GONE));
	memset(QUEUED, 0, sizeof(QUEUED));
	memset(TO, 0, sizeof(TO));
	memset(REMOTE, 0, sizeof(REMOTE));
	NEND = 0;
	FULL = false;
	NQ = 0;
	T = 1000;
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
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, ca, false, &X, &A), 0);
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
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 2, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 2, "bad circuit ID");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_BAD_ID);
	/* Link 2 is outbound: odd IDs are ours, incoming or not. */
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 5, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, 5, "bad circuit ID");
}

Test(circuit, no_link_to_the_peer)
{
	struct p2p_peerid y = pid(0x33);
	struct p2p_circuit_stats st;

	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 1, false, &y, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "no link to that peer");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_NONE);
	/* Relaying A to itself: its link is the only one to that peer. */
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 3, false, &A, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 3, "no link to that peer");
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, 0);
	cr_assert_eq(st.opened, 0);
}

Test(circuit, an_id_in_use_is_refused)
{
	open_a_x(1);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 1, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "circuit ID in use");
	/* Our own end on link 1 uses ID 5. */
	add_end(1, 5, true);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 5, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 5, "circuit ID in use");
}

/* Requester k (its own ID 0x01 + k % 0x7f... by k) opens circuit circ
 * on link l to X; returns the action (SEND_OPEN or SEND_CLOSE). */
static struct p2p_circuit_action open_as(uint32_t l, uint32_t circ, unsigned k)
{
	struct p2p_peerid from = pid(0);

	from.b[1] = (uint8_t)(k >> 8);
	from.b[2] = (uint8_t)k;
	from.b[3] = 1;
	cr_assert_eq(p2p_circuit_on_open(C, T, l, circ, false, &X, &from), 0);
	cr_assert_eq(drain(), 1);
	return Q[0];
}

Test(circuit, relay_busy_per_link_and_in_total)
{
	uint32_t i;

	for (i = 0; i < RELAY_CIRC_PER_LINK; i++)
		open_a_x(2 * i + 1);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 101, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 101,
		     "relay busy: too many circuits for your peer ID");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_LIMIT);
	/* Another requester on the same link: the link's limit. */
	assert_close((struct p2p_circuit_action[]){open_as(1, 103, 7)}, 1, 103,
		     "relay busy: too many circuits on this link");
	/* X may still ask for A. */
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 100, false, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_SEND_OPEN);
	cr_assert_eq(Q[0].link, 1);
	cr_assert_eq(Q[0].circ & 1, 0, "our parity on an inbound link");

	/* In total: links 10.., each its own /24, requesters of their own,
	 * open a few each to X. */
	teardown();
	scene();
	for (i = 0; i < RELAY_CIRC_MAX; i++) {
		struct p2p_circuit_action a =
		    open_as(10 + i / 8, 2 * (i % 8) + 1, 10 + i / 8);
		cr_assert_eq(a.type, P2P_CIRCUIT_SEND_OPEN, "circuit %u", i);
	}
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 1, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "relay busy: too many circuits");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_LIMIT);
}

Test(circuit, relay_busy_when_no_fresh_id)
{
	/* Every ID the core would try on link 2 is one of our ends. */
	for (uint32_t i = 1; i <= RELAY_ID_TRIES; i++)
		add_end(2, (i << 1) | 1, false);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 1, false, &X, &A), 0);
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

	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 1, d, 5), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ, cb);
	cr_assert_eq(Q[0].data, d);
	cr_assert_eq(Q[0].len, 5);
	cr_assert_eq(p2p_circuit_on_data(C, T, 2, cb, d, 3), 0);
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
	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 1, d, 8), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	/* One byte over: both ends are told, the circuit is gone. */
	QUEUED[2]++;
	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 1, d, 8), 0);
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
	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 3, d, 1), 0);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 3, "relay queue full");
	assert_close(&Q[1], 2, cb, "relay queue full");
}

Test(circuit, unknown_circuits_are_counted_only)
{
	static const uint8_t d[1];
	struct p2p_circuit_stats st;

	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 7, d, 1), 0);
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
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 40, false, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	TO[0xc0] = 3;
	struct p2p_peerid z = pid(0xc0);
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 42, false, &z, &X), 0);
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
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 4, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_ACCEPT);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ, 4);
	cr_assert(memcmp(&Q[0].peer, &A, sizeof(A)) == 0);
}

Test(circuit, an_incoming_end_is_refused)
{
	add_end(2, 4, true);
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 4, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, 4, "circuit ID in use");
	/* A circuit we relay on that link uses the ID too. */
	open_a_x(1);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 1, true, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, 1, "circuit ID in use");
	/* Per link: closed ends do not count. */
	for (uint32_t i = 0; i < RELAY_CIRC_PER_LINK - 1; i++)
		add_end(2, 100 + 2 * i, false);
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 6, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_ACCEPT);
	add_end(2, 6, false);
	cr_assert_eq(p2p_circuit_on_open(C, T, 2, 8, true, &A, &X), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 2, 8, "too many links");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_REFUSED);
	/* The node's link limit. */
	FULL = true;
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 9, true, &X, &A), 0);
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
	cr_assert_eq(p2p_circuit_on_data(C, T, 2, 4, d, 3), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_END_DATA);
	cr_assert_eq(Q[0].link, 2);
	cr_assert_eq(Q[0].circ, 4);
	cr_assert_eq(Q[0].data, d);
	cr_assert_eq(Q[0].len, 3);
	cr_assert_eq(p2p_circuit_on_data(C, T, 2, 6, d, 3), 0);
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
	for (i = 0; i < RELAY_CIRC_MAX; i++)
		cr_assert_eq(
		    open_as(10 + i / 8, 2 * (i % 8) + 1, 10 + i / 8).type,
		    P2P_CIRCUIT_SEND_OPEN);
	cr_assert_eq(p2p_circuit_link_gone(C, 2), 0);
	/* Two more fit, then nothing. */
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 1, false, &y, &A), 0);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 3, false, &y, &A), 0);
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 5, false, &y, &A), -ENOBUFS);
	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 5, d, 1), -ENOBUFS);
	cr_assert_eq(p2p_circuit_on_close(C, 1, 5, "", 0), -ENOBUFS);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.unknown, 0, "a refused event changes nothing");
	cr_assert_eq(drain(), P2P_CIRCUIT_QUEUE_MAX);
	/* The newest circuit first: link 10 + 255 / 8, ID 2 * 7 + 1. */
	assert_close(&Q[0], 41, 15, "the other end's link is gone");
	assert_close(&Q[P2P_CIRCUIT_QUEUE_MAX - 1], 1, 3,
		     "no link to that peer");
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, 5, false, &y, &A), 0);
}

/* ---- issue 9: limits per requester, deadlines, budgets ---- */

Test(circuit, per_peer_id_over_its_links)
{
	struct p2p_circuit_stats st;
	uint32_t i;

	/* Requester 5 on links 10 and 11 (other /24s): 16 in all. */
	for (i = 0; i < RELAY_CIRC_PER_PEER; i++)
		cr_assert_eq(open_as(10 + i % 2, 2 * i + 1, 5).type,
			     P2P_CIRCUIT_SEND_OPEN);
	assert_close((struct p2p_circuit_action[]){open_as(12, 1, 5)}, 12, 1,
		     "relay busy: too many circuits for your peer ID");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_LIMIT);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.refused_peer, 1);
	cr_assert_eq(st.circuits, RELAY_CIRC_PER_PEER);
	/* Another ID on the same links is not bound by it. */
	cr_assert_eq(open_as(10, 1001, 6).type, P2P_CIRCUIT_SEND_OPEN);
	/* One of requester 5's circuits closes: one more for it. */
	cr_assert_eq(p2p_circuit_on_close(C, 10, 1, "", 0), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(open_as(12, 1, 5).type, P2P_CIRCUIT_SEND_OPEN);
}

Test(circuit, per_ip_and_per_subnet)
{
	struct p2p_circuit_stats st;
	uint32_t i, l;

	/* 40 links from 192.0.2.7, a requester each, one circuit each. */
	for (l = 10; l < 50; l++)
		set_ip4(l, 192, 0, 2, 7);
	for (i = 0; i < RELAY_CIRC_PER_IP; i++)
		cr_assert_eq(open_as(10 + i, 1, 100 + i).type,
			     P2P_CIRCUIT_SEND_OPEN);
	assert_close((struct p2p_circuit_action[]){open_as(45, 1, 300)}, 45, 1,
		     "relay busy: too many circuits from your address");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_LIMIT);
	/* The same /24, another IP: up to the subnet's limit. */
	for (l = 50; l < 50 + RELAY_CIRC_PER_NET - RELAY_CIRC_PER_IP; l++) {
		set_ip4(l, 192, 0, 2, (uint8_t)(l - 40));
		cr_assert_eq(open_as(l, 1, 400 + l).type,
			     P2P_CIRCUIT_SEND_OPEN);
	}
	set_ip4(200, 192, 0, 2, 250);
	assert_close((struct p2p_circuit_action[]){open_as(200, 1, 999)}, 200,
		     1, "relay busy: too many circuits from your network");
	/* Another /24: free. */
	set_ip4(201, 192, 0, 3, 250);
	cr_assert_eq(open_as(201, 1, 998).type, P2P_CIRCUIT_SEND_OPEN);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.refused_ip, 1);
	cr_assert_eq(st.refused_net, 1);
	cr_assert_eq(st.circuits, RELAY_CIRC_PER_NET + 1);
}

Test(circuit, per_subnet_ipv6_is_a_48)
{
	uint32_t l;

	for (l = 10; l < 10 + RELAY_CIRC_PER_NET + 1; l++) {
		memset(&REMOTE[l], 0, sizeof(REMOTE[l]));
		REMOTE[l].family = 6;
		REMOTE[l].ip[0] = 0x20, REMOTE[l].ip[1] = 0x01;
		REMOTE[l].ip[2] = 0x0d, REMOTE[l].ip[3] = 0xb8;
		REMOTE[l].ip[6] = (uint8_t)(l >> 8); /* beyond the /48 */
		REMOTE[l].ip[7] = (uint8_t)l;
		REMOTE[l].ip[15] = 1;
	}
	for (l = 10; l < 10 + RELAY_CIRC_PER_NET; l++)
		cr_assert_eq(open_as(l, 1, l).type, P2P_CIRCUIT_SEND_OPEN);
	assert_close((struct p2p_circuit_action[]){open_as(l, 1, l)}, l, 1,
		     "relay busy: too many circuits from your network");
}

/* Data of len on (l, c) at T: forwarded or not. */
static void data(uint32_t l, uint32_t c, size_t len)
{
	static uint8_t buf[1 << 20];

	cr_assert_leq(len, sizeof(buf));
	cr_assert_eq(p2p_circuit_on_data(C, T, l, c, buf, len), 0);
}

static unsigned circuits(void)
{
	struct p2p_circuit_stats st;

	p2p_circuit_get_stats(C, &st);
	return st.circuits;
}

Test(circuit, no_handshake_in_time_frees_the_slot)
{
	struct p2p_circuit_stats st;
	uint64_t t0 = T;
	uint32_t cb = open_a_x(1);

	cr_assert_eq(p2p_circuit_next(C), t0 + RELAY_HS_MS);
	/* Frame 1 and frame 2 pass, frame 3 never comes. */
	data(1, 1, 100);
	data(2, cb, 100);
	cr_assert_eq(drain(), 2);
	T = t0 + RELAY_HS_MS - 1;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(circuits(), 1);
	T = t0 + RELAY_HS_MS;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 1, "relay: no end-to-end handshake in time");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_EXPIRED);
	assert_close(&Q[1], 2, cb, "relay: no end-to-end handshake in time");
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, 0);
	cr_assert_eq(st.closed_hs, 1);
	cr_assert_eq(p2p_circuit_next(C), UINT64_MAX);
	/* A silent circuit (no data at all) goes the same way. */
	t0 = T;
	open_a_x(3);
	T = t0 + RELAY_HS_MS;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(circuits(), 0);
}

Test(circuit, a_handshake_is_four_runs_however_split)
{
	uint64_t t0 = T;
	uint32_t cb = open_a_x(1);

	/* Frame 1 in two pieces, frame 2, frame 3 and HELLO, HELLO in two. */
	data(1, 1, 50);
	data(1, 1, 50);
	data(2, cb, 90);
	data(1, 1, 60);
	data(1, 1, 40);
	cr_assert_eq(p2p_circuit_next(C), t0 + RELAY_HS_MS, "three runs");
	data(2, cb, 20);
	data(2, cb, 20);
	drain();
	/* Handshaken: the next deadline is the idle one. */
	cr_assert_eq(p2p_circuit_next(C), T + RELAY_IDLE_MS);
	T = t0 + RELAY_HS_MS;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(circuits(), 1);
}

/* The earliest deadline among many circuits, as they move, close and
 * expire: p2p_circuit_next() keeps it rather than walking every circuit
 * on each call, and must still say exactly when. */
Test(circuit, next_is_the_earliest_of_many_as_they_change)
{
	uint64_t t0 = T;
	uint32_t cb[4];

	for (unsigned k = 0; k < 4; k++) {
		T = t0 + 10 * k;
		cb[k] = open_a_x(2 * k + 1);
	}
	cr_assert_eq(p2p_circuit_next(C), t0 + RELAY_HS_MS);
	/* The earliest completes its handshake: its deadline moves on to
	 * the idle one, and the next circuit's is the earliest. */
	T = t0 + 40;
	data(1, 1, 10);
	data(2, cb[0], 10);
	data(1, 1, 10);
	data(2, cb[0], 10);
	drain();
	cr_assert_eq(p2p_circuit_next(C), t0 + 10 + RELAY_HS_MS);
	/* Data on a later one changes nothing. */
	data(1, 7, 10);
	drain();
	cr_assert_eq(p2p_circuit_next(C), t0 + 10 + RELAY_HS_MS);
	/* The earliest closes: the one after it. */
	cr_assert_eq(p2p_circuit_on_close(C, 1, 3, "bye", 3), 0);
	drain();
	cr_assert_eq(p2p_circuit_next(C), t0 + 20 + RELAY_HS_MS);
	/* A new circuit is later than that. */
	T = t0 + 50;
	(void)open_a_x(9);
	cr_assert_eq(p2p_circuit_next(C), t0 + 20 + RELAY_HS_MS);
	/* The earliest expires: the next. */
	T = t0 + 20 + RELAY_HS_MS;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(Q[1].circ, cb[2]);
	cr_assert_eq(p2p_circuit_next(C), t0 + 30 + RELAY_HS_MS);
	/* Only the handshaken circuit left: its idle deadline. */
	T = t0 + 50 + RELAY_HS_MS;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 4);
	cr_assert_eq(circuits(), 1);
	cr_assert_eq(p2p_circuit_next(C), t0 + 40 + RELAY_IDLE_MS);
	/* A new circuit's handshake deadline comes before that. */
	T += 1000;
	(void)open_a_x(11);
	cr_assert_eq(p2p_circuit_next(C), T + RELAY_HS_MS);
}

/* A requester's record stays while it has circuits and is free for
 * others once they closed: after B opened and closed one, RELAY_CIRC_MAX
 * requesters (as many as there are records) each get a circuit. */
Test(circuit, a_requester_record_is_freed_when_its_circuits_close)
{
	struct p2p_peerid b = pid(0x33);
	struct p2p_circuit_stats st;

	cr_assert_eq(p2p_circuit_on_open(C, T, 3, 1, false, &X, &b), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_SEND_OPEN);
	cr_assert_eq(p2p_circuit_on_close(C, 3, 1, "bye", 3), 0);
	drain();
	for (uint32_t k = 0; k < RELAY_CIRC_MAX; k++) {
		struct p2p_peerid from = pid((uint8_t)k);
		from.b[1] = 1; /* none of them is B, A or X */
		T++;
		cr_assert_eq(
		    p2p_circuit_on_open(C, T, 10 + k, 1, false, &X, &from), 0);
		cr_assert_eq(drain(), 1);
		cr_assert_eq(Q[0].type, P2P_CIRCUIT_SEND_OPEN,
			     "requester %u refused", k);
	}
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.circuits, RELAY_CIRC_MAX);
}

/* A circuit through its handshake; returns its ID on link 2. */
static uint32_t handshaken(uint32_t ca)
{
	uint32_t cb = open_a_x(ca);

	data(1, ca, 10);
	data(2, cb, 10);
	data(1, ca, 10);
	data(2, cb, 10);
	drain();
	return cb;
}

Test(circuit, idle_unless_both_ends_use_it)
{
	struct p2p_circuit_stats st;
	uint32_t cb = handshaken(1);
	int i;

	/* Both ends keep talking (keepalives) for ten idle periods. */
	for (i = 0; i < 10; i++) {
		T += RELAY_IDLE_MS - 1;
		p2p_circuit_expire(C, T);
		cr_assert_eq(drain(), 0);
		data(1, 1, 30);
		data(2, cb, 30);
		cr_assert_eq(drain(), 2);
	}
	cr_assert_eq(circuits(), 1);
	/* Only end a talks: b's silence ends it. */
	uint64_t tb = T;
	T += RELAY_IDLE_MS / 2;
	data(1, 1, 30);
	drain();
	T = tb + RELAY_IDLE_MS - 1;
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 0);
	T = tb + RELAY_IDLE_MS;
	cr_assert_eq(p2p_circuit_next(C), T);
	p2p_circuit_expire(C, T);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 1, "relay: circuit idle");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_EXPIRED);
	assert_close(&Q[1], 2, cb, "relay: circuit idle");
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.closed_idle, 1);
	cr_assert_eq(st.circuits, 0);
}

/* Send n MiB each way-alternating on (1, ca)/(2, cb), all forwarded. */
static void pump_mib(uint32_t ca, uint32_t cb, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		if (i & 1)
			data(2, cb, 1 << 20);
		else
			data(1, ca, 1 << 20);
		cr_assert_eq(drain(), 1);
		cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD, "MiB %llu",
			     (unsigned long long)i);
	}
}

Test(circuit, a_circuit_byte_budget)
{
	struct p2p_circuit_stats st;
	uint32_t cb = handshaken(1);

	/* 40 bytes of handshake, then up to exactly the budget. */
	pump_mib(1, cb, RELAY_CIRC_BYTES / (1 << 20) - 1);
	data(1, 1, (1 << 20) - 40);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	data(2, cb, 1);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 1, "relay: circuit byte budget spent");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_EXPIRED);
	assert_close(&Q[1], 2, cb, "relay: circuit byte budget spent");
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.closed_budget, 1);
	cr_assert_eq(st.circuits, 0);
	cr_assert_eq(st.bytes, RELAY_CIRC_BYTES);
	/* The requester has budget left: a new circuit. */
	handshaken(3);
}

Test(circuit, a_requester_byte_budget_per_window)
{
	/* Circuits of 1 GiB - 1 MiB (handshake included), each within its
	 * own budget, until A's is nearly spent. */
	uint64_t mib = RELAY_CIRC_BYTES / (1 << 20) - 1;
	uint64_t per = RELAY_PEER_BYTES / (mib << 20);
	uint64_t t0 = T, left;
	uint32_t ca = 1, cb;

	for (uint64_t k = 0; k < per; k++, ca += 2) {
		cb = handshaken(ca);
		pump_mib(ca, cb, mib - 1);
		data(1, ca, (1 << 20) - 40);
		cr_assert_eq(drain(), 1);
		cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
		cr_assert_eq(p2p_circuit_on_close(C, 1, ca, "", 0), 0);
		cr_assert_eq(drain(), 1);
	}
	left = RELAY_PEER_BYTES - per * (mib << 20);
	cr_assert_lt(left, RELAY_CIRC_BYTES);
	/* A new circuit: A may still open, and spend what is left. */
	cb = handshaken(ca);
	pump_mib(ca, cb, (left - 40) >> 20);
	data(1, ca, (left - 40) & ((1 << 20) - 1));
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	data(2, cb, 1);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, ca,
		     "relay: byte budget spent for the requester");
	assert_close(&Q[1], 2, cb,
		     "relay: byte budget spent for the requester");
	/* New circuits are refused while A's bucket is full; others' are
	 * not. */
	cr_assert_eq(p2p_circuit_on_open(C, T, 1, ca + 2, false, &X, &A), 0);
	cr_assert_eq(drain(), 1);
	assert_close(&Q[0], 1, ca + 2,
		     "relay busy: byte budget spent for your peer ID");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_LIMIT);
	cr_assert_eq(open_as(1, ca + 4, 77).type, P2P_CIRCUIT_SEND_OPEN);
	/* The bucket drains at RELAY_PACE_BPMS: a millisecond later it is
	 * below full, and a full window empties it. */
	T++;
	open_a_x(ca + 6);
	(void)t0;
}

/* ---- per-circuit credit (issue 10) ---- */

/* What a caller's send of a forwarded record adds to the link beyond
 * the payload (frame and message headers, tag): any value will do. */
#define REC_EXTRA 30

/* data of len from (l, c); expects one FORWARD, moves its link on. */
static void fwd(uint32_t l, uint32_t c, size_t len)
{
	static const uint8_t big[P2P_RELAY_TEST_MAX];

	cr_assert_leq(len, sizeof(big));
	cr_assert_eq(p2p_circuit_on_data(C, T, l, c, big, len), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_FORWARD);
	POS[Q[0].link] += len + REC_EXTRA;
}

/* Credit returned by link l's sent position moving to sent. */
static uint64_t sent(uint32_t l, uint64_t to, uint32_t src, uint32_t sc)
{
	uint64_t n = 0;

	cr_assert_eq(p2p_circuit_on_sent(C, T, l, to), 0);
	drain();
	for (size_t i = 0; i < NQ; i++) {
		cr_assert_eq(Q[i].type, P2P_CIRCUIT_SEND_CREDIT);
		cr_assert_eq(Q[i].link, src);
		cr_assert_eq(Q[i].circ, sc);
		n += Q[i].len;
	}
	return n;
}

Test(circuit, credit_returns_as_the_bytes_leave)
{
	const size_t rec = 64 * 1024;
	enum { K = RELAY_CREDIT_BATCH / (64 * 1024) }; /* records in a batch */
	uint64_t ends[K];
	struct p2p_circuit_stats st;
	uint32_t cb;

	CREDIT[1] = CREDIT[2] = true;
	cb = open_a_x(1);
	POS[2] = 5000; /* the link carried other things before */
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		fwd(1, 1, rec);
		ends[i] = POS[2];
	}
	/* Written up to the middle of the last record, or all but its last
	 * payload byte: not a batch yet. */
	cr_assert_eq(sent(2, ends[K - 1] - rec / 2, 1, 1), 0);
	cr_assert_eq(sent(2, ends[K - 1] - REC_EXTRA - 1, 1, 1), 0);
	/* Sending on A's own link returns nothing of A's credit. */
	cr_assert_eq(sent(1, 1u << 30, 1, 1), 0);
	/* Every payload byte written (the circuit counts from the position
	 * before the record, the record's extra bytes may still wait): one
	 * batch back to A, on A's link. */
	cr_assert_eq(sent(2, ends[K - 1] - REC_EXTRA, 1, 1),
		     RELAY_CREDIT_BATCH);
	cr_assert_eq(sent(2, ends[K - 1] + 100, 1, 1), 0, "nothing twice");
	/* The other direction is accounted on its own. */
	fwd(2, cb, 1000);
	cr_assert_eq(sent(1, 0, 2, cb), 0);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.credit_sent, 1);
	cr_assert_eq(st.closed_credit + st.closed_queue, 0);
}

/* Credit goes back on every circuit with bytes out (the ones the core
 * keeps a list of), after one of them closed, and again on a circuit
 * that had none out for a while. */
Test(circuit, credit_returns_on_each_busy_circuit_after_one_closes)
{
	const size_t rec = 64 * 1024;
	enum { K = RELAY_CREDIT_BATCH / (64 * 1024) };
	uint64_t got[8] = {0};

	CREDIT[1] = CREDIT[2] = true;
	for (uint32_t ca = 1; ca <= 5; ca += 2) {
		(void)open_a_x(ca);
		for (size_t k = 0; k < K; k++)
			fwd(1, ca, rec);
	}
	cr_assert_eq(p2p_circuit_on_close(C, 1, 3, "bye", 3), 0);
	drain();
	cr_assert_eq(p2p_circuit_on_sent(C, T, 2, POS[2]), 0);
	drain();
	for (size_t i = 0; i < NQ; i++) {
		cr_assert_eq(Q[i].type, P2P_CIRCUIT_SEND_CREDIT);
		cr_assert_eq(Q[i].link, 1);
		cr_assert_lt(Q[i].circ, 8);
		got[Q[i].circ] += Q[i].len;
	}
	cr_assert_eq(got[1], RELAY_CREDIT_BATCH);
	cr_assert_eq(got[3], 0, "a closed circuit gets nothing");
	cr_assert_eq(got[5], RELAY_CREDIT_BATCH);
	/* Nothing out now; then circuit 5 sends again. */
	cr_assert_eq(sent(2, POS[2] + 1, 1, 5), 0);
	for (size_t k = 0; k < K; k++)
		fwd(1, 5, rec);
	cr_assert_eq(sent(2, POS[2], 1, 5), RELAY_CREDIT_BATCH);
}

Test(circuit, credit_beyond_the_window_cuts_only_that_circuit)
{
	const size_t rec = 64 * 1024;
	struct p2p_circuit_stats st;
	uint32_t cb1, cb3;

	CREDIT[1] = CREDIT[2] = true;
	cb1 = open_a_x(1);
	cb3 = open_a_x(3);
	/* A credited circuit is never cut for the queue, however long. */
	QUEUED[2] = 4 * RELAY_WQ_MAX;
	for (size_t k = 0; k < RELAY_CREDIT / rec; k++)
		fwd(1, 1, rec);
	/* All its credit is out: one byte more breaks the protocol. */
	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 1, (const uint8_t *)"x", 1),
		     0);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 1, "relay: circuit credit exceeded");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_CREDIT);
	assert_close(&Q[1], 2, cb1, "relay: circuit credit exceeded");
	/* The other circuit on the same links goes on. */
	fwd(1, 3, rec);
	cr_assert_eq(Q[0].circ, cb3);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.closed_credit, 1);
	cr_assert_eq(st.circuits, 1);
}

Test(circuit, credit_comes_back_whole_and_is_spent_again)
{
	/* More records than marks: the last mark takes the rest. */
	const size_t rec = RELAY_CREDIT / (4 * RELAY_CREDIT_MARKS);
	uint64_t back = 0;

	CREDIT[1] = CREDIT[2] = true;
	(void)open_a_x(1);
	for (int round = 0; round < 3; round++) {
		uint64_t start = POS[2];
		for (size_t k = 0; k < RELAY_CREDIT / rec; k++)
			fwd(1, 1, rec);
		/* Written record by record: every byte comes back once. */
		for (uint64_t at = start; at <= POS[2]; at += rec / 3)
			back += sent(2, at, 1, 1);
		back += sent(2, POS[2], 1, 1);
		cr_assert_eq(back, (uint64_t)(round + 1) * RELAY_CREDIT,
			     "round %d: %llu", round, (unsigned long long)back);
	}
}

Test(circuit, an_end_without_credit_is_still_cut_at_the_queue_limit)
{
	static const uint8_t d[8];
	uint32_t cb;

	CREDIT[2] = true; /* X keeps credit, A (an older peer) does not */
	cb = open_a_x(1);
	QUEUED[1] = QUEUED[2] = RELAY_WQ_MAX;
	fwd(2, cb, 8); /* X's bytes: within X's credit */
	cr_assert_eq(p2p_circuit_on_data(C, T, 1, 1, d, 8), 0);
	cr_assert_eq(drain(), 2);
	assert_close(&Q[0], 1, 1, "relay queue full");
	cr_assert_eq(Q[0].note, P2P_CIRCUIT_N_QUEUE_FULL);
	/* ... and never gets RELAY_CREDIT: only X did. */
	cr_assert_eq(sent(2, 1u << 30, 1, 1), 0);
}

Test(circuit, credit_for_our_ends_only)
{
	struct p2p_circuit_stats st;

	add_end(1, 4, false);
	cr_assert_eq(p2p_circuit_on_credit(C, 1, 4, 777), 0);
	cr_assert_eq(drain(), 1);
	cr_assert_eq(Q[0].type, P2P_CIRCUIT_END_CREDIT);
	cr_assert_eq(Q[0].link, 1);
	cr_assert_eq(Q[0].circ, 4);
	cr_assert_eq(Q[0].len, 777);
	/* To a circuit we relay, or none: counted, nothing done. */
	(void)open_a_x(1);
	cr_assert_eq(p2p_circuit_on_credit(C, 1, 1, 5), 0);
	cr_assert_eq(p2p_circuit_on_credit(C, 9, 9, 5), 0);
	cr_assert_eq(drain(), 0);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.unknown, 2);
}

Test(circuit_credit, an_end_spends_and_gets_back)
{
	struct relay_credit cr;

	relay_credit_init(&cr);
	cr_assert(relay_credit_take(&cr, 1000));
	/* Whole frames or nothing: what does not fit spends nothing. */
	cr_assert_not(relay_credit_take(&cr, RELAY_CREDIT));
	cr_assert(relay_credit_take(&cr, RELAY_CREDIT - 1000));
	cr_assert_not(relay_credit_take(&cr, 1));
	cr_assert_eq(relay_credit_give(&cr, 600), 0);
	/* Asking spends nothing. */
	cr_assert_not(relay_credit_can(&cr, 601));
	cr_assert(relay_credit_can(&cr, 600));
	cr_assert(relay_credit_can(&cr, 600));
	cr_assert_not(relay_credit_take(&cr, 1000));
	cr_assert(relay_credit_take(&cr, 600));
	cr_assert_not(relay_credit_take(&cr, 1));
	/* Back more than was spent: the relay lies. */
	cr_assert_eq(relay_credit_give(&cr, RELAY_CREDIT + 1), -EPROTO);
	cr_assert_eq(relay_credit_give(&cr, RELAY_CREDIT), 0);
	cr_assert_eq(relay_credit_give(&cr, 1), -EPROTO);
	cr_assert_not(relay_credit_take(&cr, RELAY_CREDIT + 1));
	cr_assert(relay_credit_take(&cr, RELAY_CREDIT));
}

/* ---- byte budgets with credit: paced, not cut ---- */

/* A spends all the credit it has on circuit ca (*avail) in records;
 * what the relay returns once they are written on X's link is what it
 * has next. */
static uint64_t credit_round_on(uint32_t ca, uint64_t *avail)
{
	const size_t rec = 64 * 1024;

	for (uint64_t left = *avail; left > 0;) {
		size_t n = left < rec ? (size_t)left : rec;
		fwd(1, ca, n);
		left -= n;
	}
	*avail = sent(2, POS[2], 1, ca);
	return *avail;
}

static uint64_t credit_round(uint64_t *avail)
{
	return credit_round_on(1, avail);
}

/* Credit held back for a budget, returned by expire at T to link l. */
static uint64_t expired_credit(uint32_t l)
{
	uint64_t n = 0;

	p2p_circuit_expire(C, T);
	drain();
	for (size_t i = 0; i < NQ; i++) {
		cr_assert_eq(Q[i].type, P2P_CIRCUIT_SEND_CREDIT);
		cr_assert_eq(Q[i].link, l);
		n += Q[i].len;
	}
	return n;
}

Test(circuit, a_credited_circuit_past_its_budget_is_paced_not_cut)
{
	struct p2p_circuit_stats st;
	uint64_t rounds = 0, avail, next, pace;
	uint32_t cb;

	CREDIT[1] = CREDIT[2] = true;
	cb = handshaken(1);
	avail = RELAY_CREDIT - 20; /* A's handshake took 20 */
	/* A spends its credit and gets it back, round after round, until the
	 * circuit's bucket is full: the round that fills it gets none. */
	while (credit_round(&avail) != 0)
		cr_assert_leq(++rounds, RELAY_CIRC_BYTES / RELAY_CREDIT,
			      "never paced");
	p2p_circuit_get_stats(C, &st);
	cr_assert_geq(st.bytes, RELAY_CIRC_BYTES);
	cr_assert_lt(st.bytes - RELAY_CREDIT, RELAY_CIRC_BYTES,
		     "paced one round late: %llu rounds",
		     (unsigned long long)rounds);
	cr_assert_eq(st.paced, 1);
	cr_assert_eq(st.closed_budget, 0);
	cr_assert_eq(st.circuits, 1, "not cut");
	/* The credit comes back once the bucket has drained below full. */
	next = p2p_circuit_next(C);
	cr_assert_gt(next, T);
	cr_assert_lt(next, T + RELAY_IDLE_MS, "before any idle deadline");
	T = next - 1;
	cr_assert_eq(expired_credit(1), 0, "not a millisecond early");
	T = next;
	cr_assert_eq(avail = expired_credit(1), RELAY_CREDIT);
	/* From now on, a credit's worth per the time the bucket takes to
	 * drain that much: the circuit runs at the budget's rate. */
	pace = RELAY_CREDIT / RELAY_PACE_BPMS;
	for (int i = 0; i < 3; i++) {
		uint64_t t0 = T;
		cr_assert_eq(credit_round(&avail), 0);
		next = p2p_circuit_next(C);
		cr_assert(next + 2 >= t0 + pace && next <= t0 + pace + 2,
			  "round %d: %llu ms, not about %llu", i,
			  (unsigned long long)(next - t0),
			  (unsigned long long)pace);
		T = next;
		cr_assert_eq(avail = expired_credit(1), RELAY_CREDIT);
	}
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.paced, 4);
	cr_assert_eq(st.circuits, 1);
	/* The other direction fills the same bucket and waits with it. */
	for (size_t k = 0; k < RELAY_CREDIT_BATCH / (64 * 1024); k++)
		fwd(2, cb, 64 * 1024);
	cr_assert_eq(sent(1, POS[1], 2, cb), 0);
	T = p2p_circuit_next(C);
	cr_assert_eq(expired_credit(2), RELAY_CREDIT_BATCH + 20);
}

Test(circuit, a_requester_past_its_budget_is_paced_on_every_circuit)
{
	/* Circuits within their own budget, until A's is nearly full. */
	uint64_t per = RELAY_CIRC_BYTES - RELAY_CREDIT, sum = 0, avail;
	unsigned k, n = (unsigned)(RELAY_PEER_BYTES / per);
	uint32_t ca;
	struct p2p_circuit_stats st;

	CREDIT[1] = CREDIT[2] = true;
	for (k = 0, ca = 1; k < n; k++, ca += 2) {
		(void)handshaken(ca);
		avail = RELAY_CREDIT - 20;
		sum += 40;
		while (sum + avail <= (uint64_t)(k + 1) * per) {
			sum += avail;
			cr_assert_neq(credit_round_on(ca, &avail), 0,
				      "circuit %u paced at %llu", k,
				      (unsigned long long)sum);
		}
	}
	cr_assert_lt(sum, RELAY_PEER_BYTES);
	/* One more circuit, far from its own budget: A's fills, and the
	 * circuit is paced for A's. */
	(void)handshaken(ca);
	avail = RELAY_CREDIT - 20;
	sum += 40;
	while (credit_round_on(ca, &avail) != 0)
		cr_assert_lt(sum += RELAY_CREDIT,
			     RELAY_PEER_BYTES + RELAY_CREDIT);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.paced, 1);
	cr_assert_geq(st.bytes, RELAY_PEER_BYTES);
	cr_assert_eq(st.circuits, n + 1);
	/* An older circuit of A's is held too, though its own bucket has
	 * room. */
	avail = RELAY_CREDIT;
	cr_assert_eq(credit_round_on(1, &avail), 0);
	p2p_circuit_get_stats(C, &st);
	cr_assert_eq(st.paced, 2);
	/* Once A's bucket is below full, both get their credit back, at
	 * once: the first hold's deadline passes while circuit 1's bytes
	 * still fill the bucket, and is put off. */
	uint64_t t0 = T, back = 0;
	unsigned gives = 0;
	for (int i = 0; i < 4 && gives < 2; i++) {
		T = p2p_circuit_next(C);
		cr_assert_gt(T, t0);
		p2p_circuit_expire(C, T);
		drain();
		cr_assert(NQ == 0 || NQ == 2, "%zu credits at once", NQ);
		for (size_t j = 0; j < NQ; j++) {
			cr_assert_eq(Q[j].type, P2P_CIRCUIT_SEND_CREDIT);
			back += Q[j].len;
			gives++;
		}
	}
	cr_assert_eq(gives, 2);
	cr_assert_eq(back, 2 * RELAY_CREDIT);
	cr_assert_geq(T - t0, RELAY_CREDIT / RELAY_PACE_BPMS, "held %llu ms",
		      (unsigned long long)(T - t0));
}
