/* Reaching a peer (core/reach.h): every path, with fake time, no sockets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/reach.h"
#include "proto/error.h"

#define T0 1000 /* fake time at the first get */
#define QMAX 64

static struct p2p_reach *R;
static struct p2p_reach_action Q[QMAX]; /* the last drain */
static size_t NQ;

/* An ID whose first byte is b (the rest zero): XOR distances by hand. */
static struct p2p_peerid id(uint8_t b)
{
	struct p2p_peerid x;

	memset(&x, 0, sizeof(x));
	x.b[0] = b;
	return x;
}

static struct p2p_peerid SELF, PEER;

static struct p2p_addr v4(int a, int b, int c, int d, uint16_t port)
{
	struct p2p_addr x = {.family = 4, .port = port};
	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

static bool NEAR; /* relay_near for the handles setup_with makes */

static bool EARLY; /* punch_early for the handles setup_with makes */

static void setup_with(bool relay_with_punch, uint32_t grace)
{
	struct p2p_reach_config cfg = {.relay_with_punch = relay_with_punch,
				       .punch_grace_ms = grace,
				       .punch_early = EARLY,
				       .relay_near = NEAR};

	SELF = id(0xf0);
	PEER = id(0x00);
	PEER.b[31] = 1; /* not all zero, for the look of it */
	cfg.self = SELF;
	/* A test's own .init runs after the suite's: one handle at a time. */
	p2p_reach_free(R);
	R = p2p_reach_new(&cfg);
	cr_assert_not_null(R);
	NQ = 0;
}

static void setup_as(bool relay_with_punch)
{
	setup_with(relay_with_punch, 0);
}

static void setup(void)
{
	NEAR = false;
	setup_as(false);
}

static void setup_grace(void)
{
	NEAR = false;
	EARLY = false;
	setup_with(true, P2P_REACH_PUNCH_GRACE_MS);
}

/* As the daemon: the punch asked for while the lookup runs. */
static void setup_early(void)
{
	NEAR = false;
	EARLY = true;
	setup_with(true, P2P_REACH_PUNCH_GRACE_MS);
	EARLY = false;
}

static void setup_parallel(void)
{
	NEAR = false;
	setup_as(true);
}

/* As the daemon: relays on purpose (the target's neighbours first),
 * asked while the punch runs. */
static void setup_near(void)
{
	NEAR = true;
	setup_as(true);
}

/* Relays on purpose, asked only once the punch failed. */
static void setup_near_seq(void)
{
	NEAR = true;
	setup_as(false);
}

static void teardown(void)
{
	p2p_reach_free(R);
	R = NULL;
}

TestSuite(core, .init = setup, .fini = teardown);

static size_t drain(void)
{
	struct p2p_reach_action a;

	NQ = 0;
	while (p2p_reach_poll(R, &a)) {
		cr_assert_lt(NQ, QMAX);
		Q[NQ++] = a;
	}
	return NQ;
}

/* Exactly one action, of type t. */
static struct p2p_reach_action *one(enum p2p_reach_action_type t)
{
	cr_assert_eq(drain(), 1, "want one action, got %zu", NQ);
	cr_assert_eq(Q[0].type, t, "want type %d, got %d", t, Q[0].type);
	return &Q[0];
}

static void get(uint64_t now, uint64_t token, const struct p2p_addr *addr)
{
	cr_assert_eq(p2p_reach_get(R, now, &PEER, token, NULL, addr), 0);
}

/* A failed DONE for token with code and exactly msg. */
static void failed(const struct p2p_reach_action *a, uint64_t token,
		   const char *code, const char *msg)
{
	cr_assert_eq(a->type, P2P_REACH_DONE);
	cr_assert_eq(a->token, token);
	cr_assert_eq(a->link.id, 0);
	cr_assert_eq(a->method, P2P_REACH_M_NONE);
	cr_assert_not_null(a->code);
	cr_assert_str_eq(a->code, code);
	cr_assert_str_eq(a->text, msg);
}

static const struct p2p_addr ADDR = {
    .family = 4, .ip = {192, 0, 2, 1}, .port = 4242};

/* get with the table's address, the dial started as link 7. */
static void dialling(void)
{
	get(T0, 1, &ADDR);
	cr_assert(p2p_addr_equal(&one(P2P_REACH_DIAL)->addr, &ADDR));
	cr_assert_eq(p2p_reach_dial_started(R, T0, &PEER, 0, 7, NULL), 0);
	cr_assert_eq(drain(), 0);
}

/* ... and the dial went away: now punching. */
static void punching(uint64_t now)
{
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, now, 7, "connection reset", NULL),
		     0);
	one(P2P_REACH_PUNCH);
	cr_assert_eq(p2p_reach_punch_started(R, now, &PEER, 0, NULL), 0);
	cr_assert_eq(drain(), 0);
}

/* ---- at once ---- */

Test(core, existing_link_is_done_from_poll_not_inside_get)
{
	struct p2p_reach_link up = {.id = 42, .kind = P2P_REACH_K_DIRECT};

	cr_assert_eq(p2p_reach_get(R, T0, &PEER, 1, &up, NULL), 0);
	/* Nothing ran yet: the result waits for poll. */
	cr_assert_eq(p2p_reach_waiters(R), 1);
	cr_assert_eq(p2p_reach_attempts(R), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->token, 1);
	cr_assert_null(a->code);
	cr_assert_eq(a->link.id, 42);
	cr_assert_not(a->dialled);
	cr_assert_str_eq(p2p_reach_method_name(a->method), "existing");
	cr_assert_str_eq(p2p_reach_path_name(a->link.kind), "direct");
	cr_assert_eq(p2p_reach_waiters(R), 0);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
}

Test(core, existing_relayed_link_says_path_relay)
{
	struct p2p_reach_link up = {.id = 3, .kind = P2P_REACH_K_RELAYED};

	cr_assert_eq(p2p_reach_get(R, T0, &PEER, 1, &up, NULL), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_str_eq(p2p_reach_method_name(a->method), "existing");
	cr_assert_str_eq(p2p_reach_path_name(a->link.kind), "relay");
}

Test(core, own_id_is_unreachable)
{
	cr_assert_eq(p2p_reach_get(R, T0, &SELF, 5, NULL, &ADDR), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	failed(a, 5, "peer_unreachable", "that is this daemon's own peer ID");
	cr_assert_not(a->dialled);
	cr_assert(p2p_peerid_equal(&a->peer, &SELF));
	cr_assert_eq(p2p_reach_attempts(R), 0);
}

/* ---- dialling ---- */

Test(core, table_address_is_dialled_then_up)
{
	dialling();
	cr_assert_eq(p2p_reach_attempts(R), 1);
	struct p2p_reach_link l = {.id = 7, .kind = P2P_REACH_K_DIRECT};
	cr_assert_eq(p2p_reach_link_up(R, T0 + 50, &PEER, &l), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_null(a->code);
	cr_assert_eq(a->link.id, 7);
	cr_assert(a->dialled);
	cr_assert_eq(a->method, P2P_REACH_M_DIAL);
	cr_assert_str_eq(p2p_reach_method_name(a->method), "dial");
	cr_assert_eq(p2p_reach_attempts(R), 0);
	cr_assert_eq(p2p_reach_waiters(R), 0);
}

Test(core, dial_immediate_failure_text)
{
	get(T0, 1, &ADDR);
	one(P2P_REACH_DIAL);
	cr_assert_eq(p2p_reach_dial_started(R, T0, &PEER, -ECONNREFUSED, 0,
					    "connection refused"),
		     0);
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       "no direct link: dial 192.0.2.1:4242: connection refused");
	cr_assert(Q[0].dialled);
	cr_assert_eq(p2p_reach_attempts(R), 0);
}

Test(core, dial_gone_punches_with_its_context)
{
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 10, 99, "x", NULL), -ENOENT);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(
	    p2p_reach_link_gone(R, T0 + 10, 7, "connection reset", NULL), 0);
	struct p2p_reach_action *a = one(P2P_REACH_PUNCH);
	cr_assert(p2p_peerid_equal(&a->peer, &PEER));
	cr_assert_str_eq(a->text,
			 "dial 192.0.2.1:4242 failed (connection reset)");
	cr_assert_eq(p2p_reach_next_timer(R), T0 + 10 + P2P_REACH_PUNCH_MS);
}

Test(core, dial_gone_with_another_link_up_uses_it)
{
	struct p2p_reach_link o = {.id = 8, .kind = P2P_REACH_K_DIRECT};

	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 10, 7, "duplicate", &o), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_null(a->code);
	cr_assert_eq(a->link.id, 8);
}

/* ---- lookup ---- */

static void looking_up(uint64_t lookup_id)
{
	get(T0, 1, NULL);
	cr_assert(p2p_peerid_equal(&one(P2P_REACH_LOOKUP)->peer, &PEER));
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, 0, lookup_id), 0);
	cr_assert_eq(drain(), 0);
}

Test(core, lookup_found_with_address_dials_it)
{
	struct p2p_contact c[3] = {
	    {.id = id(0x11), .addr = v4(198, 51, 100, 1, 1)},
	    {.id = PEER, .addr = v4(198, 51, 100, 2, 4242)},
	    {.id = id(0x22), .addr = v4(198, 51, 100, 3, 3)},
	};

	looking_up(77);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 5, 78, true, c, 3, NULL),
		     -ENOENT);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 5, 77, true, c, 3, NULL), 0);
	cr_assert(p2p_addr_equal(&one(P2P_REACH_DIAL)->addr, &c[1].addr));
	/* The lookup's deadline still holds for the dial. */
	cr_assert_eq(p2p_reach_next_timer(R), T0 + P2P_REACH_TIMEOUT_MS);
}

Test(core, lookup_found_without_address_punches)
{
	struct p2p_contact c[1] = {{.id = PEER}};

	looking_up(1);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 5, 1, true, c, 1, NULL), 0);
	cr_assert_str_eq(
	    one(P2P_REACH_PUNCH)->text,
	    "the peer is not dialable (no address it can be dialled at)");
}

Test(core, lookup_not_found_punches)
{
	struct p2p_contact c[1] = {{.id = id(0x33), .addr = ADDR}};

	looking_up(1);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 5, 1, false, c, 1, NULL), 0);
	cr_assert_str_eq(
	    one(P2P_REACH_PUNCH)->text,
	    "the peer is not found as a dialable node in the overlay");
}

Test(core, lookup_done_with_a_link_up_meanwhile)
{
	struct p2p_reach_link up = {.id = 9, .kind = P2P_REACH_K_DIRECT};

	looking_up(1);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 5, 1, false, NULL, 0, &up),
		     0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_null(a->code);
	cr_assert_eq(a->link.id, 9);
	cr_assert(a->dialled);
}

Test(core, lookup_that_cannot_start)
{
	struct p2p_peerid other = id(0x44);

	get(T0, 1, NULL);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, -EBUSY, 0), 0);
	failed(one(P2P_REACH_DONE), 1, "busy", "lookup failed to start");

	cr_assert_eq(p2p_reach_get(R, T0, &other, 2, NULL, NULL), 0);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &other, -ENOMEM, 0), 0);
	failed(one(P2P_REACH_DONE), 2, "internal", "lookup failed to start");
}

Test(core, link_up_during_lookup_ends_it)
{
	struct p2p_reach_link l = {.id = 5, .kind = P2P_REACH_K_DIRECT};

	looking_up(1);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 1, &PEER, &l), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 5);
	/* The lookup's late result is no longer ours. */
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 5, 1, true, NULL, 0, NULL),
		     -ENOENT);
	cr_assert_eq(drain(), 0);
}

/* ---- punching ---- */

Test(core, punch_success_says_punch)
{
	struct p2p_reach_link l = {.id = 12, .kind = P2P_REACH_K_PUNCHED};

	punching(T0 + 10);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 3000, &PEER, &l), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_str_eq(p2p_reach_method_name(a->method), "punch");
	cr_assert_str_eq(p2p_reach_path_name(a->link.kind), "direct");
}

Test(core, punch_not_listening_relays_then_none_left)
{
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "refused", NULL), 0);
	one(P2P_REACH_PUNCH);
	cr_assert_eq(
	    p2p_reach_punch_started(R, T0 + 1, &PEER, -EADDRNOTAVAIL, NULL), 0);
	one(P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_next_timer(R), T0 + 1 + P2P_REACH_TIMEOUT_MS);
	/* Only the peer itself and ourselves: nobody to ask. */
	struct p2p_peerid ids[2] = {PEER, SELF};
	cr_assert_eq(p2p_reach_relays(R, T0 + 1, &PEER, ids, 2), 0);
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       "no direct link: dial 192.0.2.1:4242 failed (refused), and "
	       "hole punching could not start: this daemon does not listen "
	       "(no port to punch from); no relay reached the peer (0 "
	       "asked)");
}

Test(core, punch_start_error_text)
{
	punching(T0); /* a first peer, punching */
	struct p2p_peerid p2 = id(0x55), p3 = id(0x66);

	cr_assert_eq(p2p_reach_get(R, T0, &p2, 2, NULL, NULL), 0);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &p2, 0, 2), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0, 2, false, NULL, 0, NULL), 0);
	one(P2P_REACH_PUNCH);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &p2, -EBUSY, NULL), 0);
	one(P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_relays(R, T0, &p2, NULL, 0), 0);
	char want[P2P_REACH_TEXT_MAX];
	snprintf(want, sizeof(want),
		 "no direct link: the peer is not found as a dialable node in "
		 "the overlay, and hole punching could not start: %s; no "
		 "relay reached the peer (0 asked)",
		 p2p_strerror(-EBUSY));
	failed(one(P2P_REACH_DONE), 2, "peer_unreachable", want);

	/* The caller's own text, when it has one. */
	cr_assert_eq(p2p_reach_get(R, T0, &p3, 3, NULL, NULL), 0);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &p3, 0, 3), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0, 3, true, NULL, 0, NULL), 0);
	one(P2P_REACH_PUNCH);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &p3, -EIO, "odd"), 0);
	one(P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_relays(R, T0, &p3, NULL, 0), 0);
	cr_assert(strstr(one(P2P_REACH_DONE)->text,
			 "hole punching could not start: odd; no relay"));
}

Test(core, punch_failed_elsewhere_is_ignored)
{
	dialling();
	/* Not punching: a punch failure for the peer is not ours. */
	cr_assert_eq(
	    p2p_reach_punch_failed(R, T0, &PEER, P2P_PUNCH_R_TIMEOUT, "x"),
	    -ENOENT);
	cr_assert_eq(drain(), 0);
}

Test(core, late_punch_start_failure_after_the_punch_failed)
{
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "refused", NULL), 0);
	one(P2P_REACH_PUNCH);
	/* The punch failed before its start was answered ... */
	cr_assert_eq(p2p_reach_punch_failed(R, T0 + 1, &PEER,
					    P2P_PUNCH_R_TIMEOUT, "first"),
		     0);
	one(P2P_REACH_RELAYS);
	/* ... so a late start failure changes nothing. */
	cr_assert_eq(
	    p2p_reach_punch_started(R, T0 + 2, &PEER, -EADDRNOTAVAIL, NULL), 0);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_next_timer(R), T0 + 1 + P2P_REACH_TIMEOUT_MS);
	cr_assert_eq(p2p_reach_relays(R, T0 + 2, &PEER, NULL, 0), 0);
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       "first; no relay reached the peer (0 asked)");
}

/* ---- relaying ---- */

/* Relay candidates around PEER (0x00..01): distance is the first byte. */
static struct p2p_peerid CAND[6];

static void candidates(void)
{
	const uint8_t b[6] = {0x40, 0x01, 0x80, 0x10, 0x02, 0x20};

	for (int i = 0; i < 6; i++)
		CAND[i] = id(b[i]);
}

/* Answer RELAYS with CAND (and the peer, and us); want RELAY via b. */
static void expect_relay_via(uint64_t now, uint8_t b)
{
	struct p2p_peerid ids[8];

	memcpy(ids, CAND, sizeof(CAND));
	ids[6] = PEER;
	ids[7] = SELF;
	one(P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_relays(R, now, &PEER, ids, 8), 0);
	struct p2p_reach_action *a = one(P2P_REACH_RELAY);
	cr_assert(p2p_peerid_equal(&a->peer, &PEER));
	cr_assert_eq(a->via.b[0], b, "want via %02x, got %02x", b, a->via.b[0]);
}

#define PUNCH_MSG "no direct link: x; hole punching failed after 8.0 s: y"

/* The punch towards PEER ran out of schedule at t; the core expected it. */
static void punch_timed_out(uint64_t t)
{
	cr_assert_eq(
	    p2p_reach_punch_failed(R, t, &PEER, P2P_PUNCH_R_TIMEOUT, PUNCH_MSG),
	    0);
}

Test(core, relays_nearest_first_then_exhausted)
{
	const uint8_t order[6] = {0x01, 0x02, 0x10, 0x20, 0x40, 0x80};

	candidates();
	punching(T0);
	punch_timed_out(T0 + 9000);
	for (int i = 0; i < 6; i++) {
		expect_relay_via(T0 + 9000, order[i]);
		if (i % 2) { /* refused at once */
			cr_assert_eq(p2p_reach_relay_started(R, T0 + 9000,
							     &PEER, -EBUSY, 0),
				     0);
		} else { /* asked, then its link went away */
			cr_assert_eq(p2p_reach_relay_started(R, T0 + 9000,
							     &PEER, 0, 100 + i),
				     0);
			cr_assert_eq(drain(), 0);
			cr_assert_eq(p2p_reach_link_gone(R, T0 + 9100, 100 + i,
							 "relay: busy", NULL),
				     0);
		}
	}
	one(P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_relays(R, T0 + 9200, &PEER, CAND, 6), 0);
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       PUNCH_MSG "; no relay reached the peer (6 asked)");
}

Test(core, relay_tries_are_capped)
{
	struct p2p_peerid many[12];

	for (int i = 0; i < 12; i++)
		many[i] = id((uint8_t)(i + 1));
	punching(T0);
	punch_timed_out(T0 + 9000);
	for (int i = 0; i < P2P_REACH_RELAY_TRIES; i++) {
		one(P2P_REACH_RELAYS);
		cr_assert_eq(p2p_reach_relays(R, T0 + 9000, &PEER, many, 12),
			     0);
		cr_assert_eq(one(P2P_REACH_RELAY)->via.b[0], i + 1);
		cr_assert_eq(p2p_reach_relay_started(R, T0 + 9000, &PEER,
						     -ECONNRESET, 0),
			     0);
	}
	/* Four candidates are left, but eight were asked: no ninth. */
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       PUNCH_MSG "; no relay reached the peer (8 asked)");
}

Test(core, relay_success_says_relay)
{
	struct p2p_reach_link l = {.id = 200, .kind = P2P_REACH_K_RELAYED};

	candidates();
	punching(T0);
	punch_timed_out(T0 + 9000);
	expect_relay_via(T0 + 9000, 0x01);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 9000, &PEER, 0, 200), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 9050, &PEER, &l), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_null(a->code);
	cr_assert_eq(a->link.id, 200);
	cr_assert_str_eq(p2p_reach_method_name(a->method), "relay");
	cr_assert_str_eq(p2p_reach_path_name(a->link.kind), "relay");
}

/* ---- deadlines ---- */

static void expires_at(uint64_t t, const char *msg)
{
	cr_assert_eq(p2p_reach_next_timer(R), t);
	p2p_reach_expire(R, t - 1);
	cr_assert_eq(drain(), 0);
	p2p_reach_expire(R, t);
	failed(one(P2P_REACH_DONE), 1, "timeout", msg);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
	cr_assert_eq(p2p_reach_attempts(R), 0);
}

Test(core, deadline_lookup)
{
	looking_up(1);
	expires_at(T0 + P2P_REACH_TIMEOUT_MS, "no direct link in time");
}

Test(core, deadline_dial)
{
	dialling();
	expires_at(T0 + P2P_REACH_TIMEOUT_MS, "no direct link in time");
}

Test(core, deadline_punch)
{
	punching(T0 + 100);
	expires_at(T0 + 100 + P2P_REACH_PUNCH_MS,
		   "no direct link in time (hole punching did not finish)");
}

Test(core, deadline_relay_rearmed_once)
{
	candidates();
	punching(T0);
	punch_timed_out(T0 + 9000);
	expect_relay_via(T0 + 9000, 0x01);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 9000, &PEER, 0, 50), 0);
	/* The next relay keeps the deadline relaying started with. */
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 15000, 50, "gone", NULL), 0);
	expect_relay_via(T0 + 15000, 0x02);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 15000, &PEER, 0, 51), 0);
	expires_at(T0 + 9000 + P2P_REACH_TIMEOUT_MS, "no relayed link in time");
}

/* ---- waiters ---- */

Test(core, waiters_share_one_attempt)
{
	struct p2p_reach_link l = {.id = 7, .kind = P2P_REACH_K_DIRECT};

	get(T0, 1, NULL);
	get(T0 + 1, 2, &ADDR); /* joins: the address is not used */
	get(T0 + 2, 3, NULL);
	cr_assert_eq(p2p_reach_attempts(R), 1);
	cr_assert_eq(p2p_reach_waiters(R), 3);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_get(R, T0, &PEER, 2, NULL, NULL), -EEXIST);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 5, &PEER, &l), 0);
	cr_assert_eq(drain(), 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(Q[i].type, P2P_REACH_DONE);
		cr_assert_eq(Q[i].token, i + 1); /* first come, first told */
		cr_assert_eq(Q[i].link.id, 7);
		cr_assert(Q[i].dialled);
	}
	cr_assert_eq(p2p_reach_waiters(R), 0);
}

Test(core, cancel_one_waiter)
{
	struct p2p_reach_link l = {.id = 7, .kind = P2P_REACH_K_DIRECT};

	get(T0, 1, NULL);
	get(T0, 2, NULL);
	get(T0, 3, NULL);
	cr_assert_eq(p2p_reach_cancel(R, 2), 0);
	cr_assert_eq(p2p_reach_cancel(R, 2), -ENOENT);
	cr_assert_eq(p2p_reach_attempts(R), 1);
	get(T0, 4, NULL); /* after a cancel in the middle: still in order */
	cr_assert_eq(p2p_reach_link_up(R, T0 + 5, &PEER, &l), 0);
	/* 1, 3, 4; the LOOKUP never polled is dropped with the attempt. */
	cr_assert_eq(drain(), 3);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(Q[i].type, P2P_REACH_DONE);
	cr_assert_eq(Q[0].token, 1);
	cr_assert_eq(Q[1].token, 3);
	cr_assert_eq(Q[2].token, 4);
}

Test(core, cancel_all_forgets_the_attempt)
{
	dialling();
	get(T0, 2, NULL);
	cr_assert_eq(p2p_reach_cancel(R, 1), 0);
	cr_assert_eq(p2p_reach_attempts(R), 1);
	cr_assert_eq(p2p_reach_cancel(R, 2), 0);
	cr_assert_eq(p2p_reach_attempts(R), 0);
	cr_assert_eq(p2p_reach_waiters(R), 0);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
	/* The dial goes on in the caller, unobserved. */
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "x", NULL), -ENOENT);
	cr_assert_eq(drain(), 0);
}

Test(core, cancel_before_a_request_is_polled_drops_it)
{
	get(T0, 1, NULL);
	cr_assert_eq(p2p_reach_cancel(R, 1), 0);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, 0, 1), -ENOENT);
}

Test(core, cancel_of_an_undelivered_result)
{
	struct p2p_reach_link up = {.id = 1, .kind = P2P_REACH_K_DIRECT};

	cr_assert_eq(p2p_reach_get(R, T0, &PEER, 1, &up, NULL), 0);
	cr_assert_eq(p2p_reach_get(R, T0, &SELF, 2, NULL, NULL), 0);
	cr_assert_eq(p2p_reach_get(R, T0, &SELF, 3, NULL, NULL), 0);
	cr_assert_eq(p2p_reach_cancel(R, 3), 0); /* the tail */
	cr_assert_eq(p2p_reach_cancel(R, 1), 0); /* the head */
	cr_assert_eq(p2p_reach_get(R, T0, &SELF, 4, NULL, NULL), 0);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(Q[0].token, 2);
	cr_assert_eq(Q[1].token, 4);
	cr_assert_eq(p2p_reach_waiters(R), 0);
}

Test(core, stop_fails_everyone_and_every_later_get)
{
	struct p2p_peerid p2 = id(0x77);
	struct p2p_reach_link up = {.id = 3, .kind = P2P_REACH_K_DIRECT};

	punching(T0);
	cr_assert_eq(p2p_reach_get(R, T0, &p2, 2, NULL, NULL), 0);
	p2p_reach_stop(R);
	cr_assert_eq(p2p_reach_attempts(R), 0);
	cr_assert_eq(drain(), 2); /* the LOOKUP for p2 is dropped */
	for (size_t i = 0; i < 2; i++)
		failed(&Q[i], Q[i].token, "internal", "daemon shutting down");
	cr_assert_eq(Q[0].token + Q[1].token, 3);
	get(T0 + 1, 9, &ADDR);
	failed(one(P2P_REACH_DONE), 9, "internal", "daemon shutting down");
	cr_assert_not(Q[0].dialled);
	/* A link already up is still handed out. */
	cr_assert_eq(p2p_reach_get(R, T0, &PEER, 10, &up, NULL), 0);
	cr_assert_null(one(P2P_REACH_DONE)->code);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
}

/* ---- limits and misuse ---- */

Test(core, caps_answer_ebusy)
{
	struct p2p_peerid p;
	uint64_t tok = 1;

	for (int i = 0; i < P2P_REACH_ATTEMPTS_MAX; i++) {
		p = id(0);
		p.b[30] = (uint8_t)(i >> 8);
		p.b[31] = (uint8_t)i;
		p.b[29] = 1;
		cr_assert_eq(p2p_reach_get(R, T0, &p, tok++, NULL, NULL), 0);
	}
	p = id(0x99);
	cr_assert_eq(p2p_reach_get(R, T0, &p, tok++, NULL, NULL), -EBUSY);
	cr_assert_eq(p2p_reach_attempts(R), P2P_REACH_ATTEMPTS_MAX);
	/* More waiters for a peer already being reached are fine ... */
	while (p2p_reach_waiters(R) < P2P_REACH_WAITERS_MAX)
		cr_assert_eq(p2p_reach_get(R, T0, &SELF, tok++, NULL, NULL), 0);
	/* ... up to their own cap, results not yet polled included. */
	cr_assert_eq(p2p_reach_get(R, T0, &SELF, tok++, NULL, NULL), -EBUSY);
	cr_assert_eq(p2p_reach_waiters(R), P2P_REACH_WAITERS_MAX);
}

Test(core, answers_nobody_asked_for)
{
	struct p2p_peerid nobody = id(0x12);

	dialling(); /* the DIAL was answered already */
	cr_assert_eq(p2p_reach_dial_started(R, T0, &PEER, 0, 8, NULL), -EINVAL);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &PEER, 0, NULL), -EINVAL);
	cr_assert_eq(p2p_reach_relays(R, T0, &PEER, NULL, 0), -EINVAL);
	cr_assert_eq(p2p_reach_relay_started(R, T0, &PEER, 0, 9), -EINVAL);
	cr_assert_eq(p2p_reach_relay_dial_started(R, T0, &PEER, 0, 9), -EINVAL);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, 0, 9), -EINVAL);
	cr_assert_eq(p2p_reach_dial_started(R, T0, &nobody, 0, 8, NULL),
		     -ENOENT);
	cr_assert_eq(p2p_reach_link_up(R, T0, &nobody, NULL), -ENOENT);
	cr_assert_eq(p2p_reach_link_gone(R, T0, 0, "x", NULL), -ENOENT);
	cr_assert_eq(drain(), 0);
	/* The attempt is untouched: its link still ends it. */
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "reset", NULL), 0);
	one(P2P_REACH_PUNCH);
}

/*
 * The caller's loop, as the daemon runs it: every request is answered from
 * inside the poll loop. A dial that fails at once, a lookup that finds
 * nothing, a punch that fails, two relays: the second one's link comes up.
 */
Test(core, answering_from_inside_the_poll_loop)
{
	struct p2p_reach_action a;
	struct p2p_reach_link l = {.id = 301, .kind = P2P_REACH_K_RELAYED};
	int dones = 0, relays = 0;

	candidates();
	get(T0, 1, NULL);
	while (p2p_reach_poll(R, &a)) {
		switch (a.type) {
		case P2P_REACH_LOOKUP:
			cr_assert_eq(
			    p2p_reach_lookup_started(R, T0, &a.peer, 0, 5), 0);
			cr_assert_eq(p2p_reach_lookup_done(R, T0, 5, false,
							   NULL, 0, NULL),
				     0);
			break;
		case P2P_REACH_PUNCH:
			cr_assert_eq(
			    p2p_reach_punch_started(R, T0, &a.peer, 0, NULL),
			    0);
			cr_assert_eq(p2p_reach_punch_failed(R, T0, &a.peer,
							    P2P_PUNCH_R_TIMEOUT,
							    PUNCH_MSG),
				     0);
			break;
		case P2P_REACH_RELAYS:
			cr_assert_eq(p2p_reach_relays(R, T0, &a.peer, CAND, 6),
				     0);
			break;
		case P2P_REACH_RELAY:
			relays++;
			cr_assert_eq(p2p_reach_relay_started(
					 R, T0, &a.peer, relays == 1 ? -EIO : 0,
					 relays == 1 ? 0 : 301),
				     0);
			if (relays == 2)
				cr_assert_eq(
				    p2p_reach_link_up(R, T0, &a.peer, &l), 0);
			break;
		case P2P_REACH_DONE:
			dones++;
			cr_assert_eq(a.link.id, 301);
			cr_assert_eq(a.method, P2P_REACH_M_RELAY);
			break;
		default:
			cr_assert_fail("unexpected action %d", a.type);
		}
	}
	cr_assert_eq(dones, 1);
	cr_assert_eq(relays, 2);
	cr_assert_eq(p2p_reach_attempts(R), 0);
}

/* ---- issue 8: relays asked while the punch runs ---- */

Test(core, parallel_relay_first, .init = setup_parallel, .fini = teardown)
{
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};

	candidates();
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "refused", NULL), 0);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(Q[0].type, P2P_REACH_PUNCH);
	cr_assert_eq(Q[1].type, P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &PEER, 0, NULL), 0);
	cr_assert_eq(p2p_reach_relays(R, T0, &PEER, CAND, 6), 0);
	cr_assert_eq(one(P2P_REACH_RELAY)->via.b[0], 0x01);
	cr_assert_eq(p2p_reach_relay_started(R, T0, &PEER, 0, 60), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 40, &PEER, &rl), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_RELAY);
	cr_assert_eq(a->link.id, 60);
}

Test(core, parallel_waits_for_the_punch_when_relays_fail,
     .init = setup_parallel, .fini = teardown)
{
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "refused", NULL), 0);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &PEER, 0, NULL), 0);
	cr_assert_eq(p2p_reach_relays(R, T0, &PEER, NULL, 0), 0);
	cr_assert_eq(drain(), 0); /* no relay, but the punch still runs */
	cr_assert_eq(p2p_reach_attempts(R), 1);
	punch_timed_out(T0 + 9000);
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       PUNCH_MSG "; no relay reached the peer (0 asked)");
}

/* The dial refused, a punch started and a relay asked alongside it,
 * whose circuit is link id (on its way, not up yet). */
static void relay_asked_while_punching(uint32_t id)
{
	candidates();
	dialling();
	cr_assert_eq(p2p_reach_link_gone(R, T0, 7, "refused", NULL), 0);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &PEER, 0, NULL), 0);
	cr_assert_eq(p2p_reach_relays(R, T0, &PEER, CAND, 6), 0);
	one(P2P_REACH_RELAY);
	cr_assert_eq(p2p_reach_relay_started(R, T0, &PEER, 0, id), 0);
}

Test(core, parallel_relays_go_on_after_the_punch_fails, .init = setup_parallel,
     .fini = teardown)
{
	struct p2p_reach_link rl = {.id = 61, .kind = P2P_REACH_K_RELAYED};

	relay_asked_while_punching(61);
	punch_timed_out(T0 + 9000);
	cr_assert_eq(drain(), 0); /* the relay asked is still on its way */
	cr_assert_eq(p2p_reach_next_timer(R), T0 + 9000 + P2P_REACH_TIMEOUT_MS);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 9001, &PEER, &rl), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 61);
}

/* With a grace: a relayed link up early waits while the punch may win. */
static void held_relay(void)
{
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};

	relay_asked_while_punching(60);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 40, &PEER, &rl), 0);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_next_timer(R), T0 + P2P_REACH_PUNCH_GRACE_MS);
}

Test(core, grace_punch_wins_over_a_held_relay, .init = setup_grace)
{
	struct p2p_reach_link pl = {.id = 70, .kind = P2P_REACH_K_PUNCHED};

	held_relay();
	cr_assert_eq(p2p_reach_link_up(R, T0 + 400, &PEER, &pl), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_PUNCH);
	cr_assert_eq(a->link.id, 70);
	cr_assert_eq(p2p_reach_attempts(R), 0);
}

Test(core, grace_over_the_held_relay_answers, .init = setup_grace)
{
	held_relay();
	p2p_reach_expire(R, T0 + P2P_REACH_PUNCH_GRACE_MS - 1);
	cr_assert_eq(drain(), 0);
	p2p_reach_expire(R, T0 + P2P_REACH_PUNCH_GRACE_MS);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_RELAY);
	cr_assert_eq(a->link.id, 60);
}

Test(core, grace_punch_failed_answers_the_held_relay_at_once,
     .init = setup_grace)
{
	held_relay();
	punch_timed_out(T0 + 100);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 60);
}

Test(core, grace_unlikely_punch_answers_the_held_relay_at_once,
     .init = setup_grace)
{
	held_relay();
	cr_assert_eq(p2p_reach_punch_unlikely(R, T0 + 100, &PEER), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_RELAY);
	cr_assert_eq(a->link.id, 60);
	cr_assert_eq(p2p_reach_punch_unlikely(R, T0 + 100, &PEER), -ENOENT);
}

/* The REPLY came after 300 ms of signalling: the held relay waits two
 * more signalling round trips and the slack, not the whole fixed grace. */
Test(core, grace_shortened_by_the_signalling_rtt, .init = setup_grace)
{
	const uint64_t until = T0 + 300 + 2 * 300 + P2P_REACH_GRACE_SLACK_MS;

	held_relay();
	cr_assert_eq(p2p_reach_punch_expect(R, T0 + 300, &PEER, 300), 0);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_next_timer(R), until);
	p2p_reach_expire(R, until - 1);
	cr_assert_eq(drain(), 0);
	p2p_reach_expire(R, until);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_RELAY);
	cr_assert_eq(a->link.id, 60);
}

/* A direct link inside the shortened grace still wins. */
Test(core, grace_shortened_punch_still_wins, .init = setup_grace)
{
	struct p2p_reach_link pl = {.id = 70, .kind = P2P_REACH_K_PUNCHED};

	held_relay();
	cr_assert_eq(p2p_reach_punch_expect(R, T0 + 300, &PEER, 300), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 900, &PEER, &pl), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->method, P2P_REACH_M_PUNCH);
}

/* Never longer than the fixed grace; unknown rtt leaves it; no punch. */
Test(core, grace_expect_bounds, .init = setup_grace)
{
	held_relay();
	cr_assert_eq(p2p_reach_punch_expect(R, T0 + 300, &PEER, -1), 0);
	cr_assert_eq(p2p_reach_next_timer(R), T0 + P2P_REACH_PUNCH_GRACE_MS);
	cr_assert_eq(p2p_reach_punch_expect(R, T0 + 900, &PEER, 1500), 0);
	cr_assert_eq(p2p_reach_next_timer(R), T0 + P2P_REACH_PUNCH_GRACE_MS);
	struct p2p_peerid other = id(0x42);
	cr_assert_eq(p2p_reach_punch_expect(R, T0 + 900, &other, 10), -ENOENT);
}

/* Told before the relay is up: the relayed link answers when it comes. */
Test(core, grace_unlikely_punch_lets_the_relay_answer, .init = setup_grace)
{
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};

	relay_asked_while_punching(60);
	cr_assert_eq(p2p_reach_punch_unlikely(R, T0 + 20, &PEER), 0);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 40, &PEER, &rl), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_RELAY);
	cr_assert_eq(a->link.id, 60);
}

Test(core, grace_held_relay_gone_asks_the_next, .init = setup_grace)
{
	held_relay();
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 100, 60, "closed", NULL), 0);
	one(P2P_REACH_RELAYS);
	p2p_reach_expire(R, T0 + P2P_REACH_PUNCH_GRACE_MS);
	cr_assert_eq(drain(), 0); /* nothing held any more */
}

Test(core, grace_relay_after_it_answers_at_once, .init = setup_grace)
{
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};

	relay_asked_while_punching(60);
	cr_assert_eq(
	    p2p_reach_link_up(R, T0 + P2P_REACH_PUNCH_GRACE_MS, &PEER, &rl), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->method, P2P_REACH_M_RELAY);
}

/* ---- upgrades: a relayed pair's punch asked again ---- */

#define GRACE_END (T0 + P2P_REACH_PUNCH_GRACE_MS)

/* The held relay answered at the end of the grace; the punch runs on. */
static void relayed_while_punching(void)
{
	held_relay();
	p2p_reach_expire(R, GRACE_END);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 60);
	cr_assert_eq(p2p_reach_attempts(R), 0);
	cr_assert_eq(p2p_reach_upgrades(R), 1);
}

/* The punch of the relayed pair failed at t: the next one is asked
 * after the backoff for retry n (0-based), not before. */
static void punch_again_after(uint64_t t, unsigned n)
{
	uint64_t at = t + ((uint64_t)P2P_REACH_UPGRADE_BACKOFF_MS << n);

	punch_timed_out(t);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_next_timer(R), at);
	p2p_reach_expire(R, at - 1);
	cr_assert_eq(drain(), 0);
	p2p_reach_expire(R, at);
	struct p2p_reach_action *a = one(P2P_REACH_PUNCH);
	cr_assert(a->upgrade);
	cr_assert(p2p_peerid_equal(&a->peer, &PEER));
	cr_assert(strstr(a->text, "relayed"), "%s", a->text);
	cr_assert_eq(p2p_reach_stats(R)->upgrade_retries, n + 1);
	cr_assert_eq(p2p_reach_punch_started(R, at, &PEER, 0, NULL), 0);
	cr_assert_eq(drain(), 0);
}

Test(core, upgrade_punch_failed_is_asked_again_bounded, .init = setup_grace)
{
	uint64_t t = GRACE_END + 6000;

	relayed_while_punching();
	for (unsigned n = 0; n < P2P_REACH_UPGRADE_TRIES; n++) {
		punch_again_after(t, n);
		t += ((uint64_t)P2P_REACH_UPGRADE_BACKOFF_MS << n) + 9000;
	}
	/* The last one failed too: no more. */
	punch_timed_out(t);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
	p2p_reach_expire(R, t + 100000);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_stats(R)->upgrade_retries,
		     P2P_REACH_UPGRADE_TRIES);
	cr_assert_eq(p2p_reach_stats(R)->upgrades, 0);
}

Test(core, upgrade_direct_link_ends_it, .init = setup_grace)
{
	struct p2p_reach_link pl = {.id = 70, .kind = P2P_REACH_K_PUNCHED};

	relayed_while_punching();
	punch_again_after(GRACE_END + 6000, 0);
	cr_assert_eq(p2p_reach_link_up(R, GRACE_END + 9500, &PEER, &pl),
		     -ENOENT); /* no attempt: nobody waits */
	cr_assert_eq(p2p_reach_upgrades(R), 0);
	cr_assert_eq(p2p_reach_stats(R)->upgrades, 1);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
	cr_assert_eq(p2p_reach_punch_failed(R, GRACE_END + 9600, &PEER,
					    P2P_PUNCH_R_TIMEOUT, PUNCH_MSG),
		     -ENOENT);
}

/* The punch failed inside the grace: the held relay answers at once and
 * the punch is asked again later all the same. */
Test(core, upgrade_after_a_punch_failed_in_the_grace, .init = setup_grace)
{
	held_relay();
	cr_assert_eq(p2p_reach_punch_failed(R, T0 + 100, &PEER,
					    P2P_PUNCH_R_NO_ANSWER, PUNCH_MSG),
		     0);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 60);
	cr_assert_eq(p2p_reach_next_timer(R),
		     T0 + 100 + P2P_REACH_UPGRADE_BACKOFF_MS);
	p2p_reach_expire(R, T0 + 100 + P2P_REACH_UPGRADE_BACKOFF_MS);
	cr_assert(one(P2P_REACH_PUNCH)->upgrade);
}

/* What a new request would only hear again gets no retry. */
Test(core, upgrade_not_after_a_refusal, .init = setup_grace)
{
	const enum p2p_punch_reason no[] = {
	    P2P_PUNCH_R_BOTH_DEPENDENT, P2P_PUNCH_R_NOT_LISTENING,
	    P2P_PUNCH_R_LIMITED, P2P_PUNCH_R_IMPLAUSIBLE};

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		setup_grace();
		relayed_while_punching();
		cr_assert_eq(p2p_reach_punch_failed(R, GRACE_END + 100, &PEER,
						    no[i], PUNCH_MSG),
			     0);
		cr_assert_eq(p2p_reach_upgrades(R), 0, "reason %d", no[i]);
		cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
	}
}

/* An endpoint-dependent side (the signalling said so): never. */
Test(core, upgrade_never_for_an_unlikely_punch, .init = setup_grace)
{
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};

	relay_asked_while_punching(60);
	cr_assert_eq(p2p_reach_punch_unlikely(R, T0 + 20, &PEER), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 40, &PEER, &rl), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 60);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
	cr_assert_eq(p2p_reach_punch_failed(R, T0 + 9000, &PEER,
					    P2P_PUNCH_R_TIMEOUT, PUNCH_MSG),
		     -ENOENT);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);

	/* Held first, then called unlikely: the same. */
	setup_grace();
	held_relay();
	cr_assert_eq(p2p_reach_punch_unlikely(R, T0 + 100, &PEER), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 60);
	cr_assert_eq(p2p_reach_upgrades(R), 0);

	/* An upgrade's own punch found unlikely: no further one. */
	setup_grace();
	relayed_while_punching();
	punch_again_after(GRACE_END + 6000, 0);
	cr_assert_eq(p2p_reach_punch_unlikely(R, GRACE_END + 9100, &PEER), 0);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
}

/* The peer said "dial me" and could not be dialled: never. */
Test(core, upgrade_never_after_dial_me_failed, .init = setup_grace)
{
	struct p2p_addr at = v4(198, 51, 100, 7, 4242);

	held_relay();
	cr_assert_eq(p2p_reach_dial_hint(R, T0 + 100, &PEER, &at), -EALREADY);
	cr_assert_eq(p2p_reach_punch_failed(R, T0 + 100, &PEER,
					    P2P_PUNCH_R_NONE, "dial me failed"),
		     0);
	cr_assert_eq(one(P2P_REACH_DONE)->link.id, 60);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
}

/* The relayed link went: nothing left to upgrade. */
Test(core, upgrade_stops_when_the_relayed_link_goes, .init = setup_grace)
{
	relayed_while_punching();
	punch_timed_out(GRACE_END + 6000);
	cr_assert_eq(
	    p2p_reach_link_gone(R, GRACE_END + 6100, 60, "closed", NULL),
	    -ENOENT);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
	p2p_reach_expire(R, GRACE_END + 6000 + P2P_REACH_UPGRADE_BACKOFF_MS);
	cr_assert_eq(drain(), 0);
}

/* The retry could not start, or nobody tells its end: forgotten. */
Test(core, upgrade_forgotten_when_it_cannot_start_or_never_ends,
     .init = setup_grace)
{
	relayed_while_punching();
	punch_again_after(GRACE_END + 6000, 0);
	cr_assert_eq(p2p_reach_upgrades(R), 1);
	/* A second answer to the same PUNCH is not expected. */
	cr_assert_eq(
	    p2p_reach_punch_started(R, GRACE_END + 9000, &PEER, -EBUSY, NULL),
	    -ENOENT);

	setup_grace();
	relayed_while_punching();
	punch_timed_out(GRACE_END + 10);
	p2p_reach_expire(R, GRACE_END + 10 + P2P_REACH_UPGRADE_BACKOFF_MS);
	one(P2P_REACH_PUNCH);
	cr_assert_eq(
	    p2p_reach_punch_started(R, GRACE_END + 3010, &PEER, -EBUSY, NULL),
	    0);
	cr_assert_eq(p2p_reach_upgrades(R), 0);

	/* No verdict at all: given up after P2P_REACH_PUNCH_MS. */
	setup_grace();
	relayed_while_punching();
	cr_assert_eq(p2p_reach_next_timer(R), GRACE_END + P2P_REACH_PUNCH_MS);
	p2p_reach_expire(R, GRACE_END + P2P_REACH_PUNCH_MS);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
	cr_assert_eq(p2p_reach_next_timer(R), UINT64_MAX);
}

/* Someone asks for the peer while a retry is due (its relayed link
 * closed and a new attempt runs): that attempt punches, not the retry. */
Test(core, upgrade_yields_to_an_attempt, .init = setup_grace)
{
	relayed_while_punching();
	punch_timed_out(GRACE_END + 10);
	get(GRACE_END + 20, 9, &ADDR);
	one(P2P_REACH_DIAL);
	p2p_reach_expire(R, GRACE_END + 10 + P2P_REACH_UPGRADE_BACKOFF_MS);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_upgrades(R), 0);
}

/* ---- relays on purpose: the target's neighbours first ---- */

/*
 * PEER is a NATed client (0x00..01); its lookup answered the servers
 * nearest it: N1 (0x04), N2 (0x08), N3 (0x0c), nearest first. We hold
 * links to L1 (0x01, nearer PEER by XOR than any of them, but not one of
 * its neighbours), L2 (0x80) and, unless NLINKED is 2, N2.
 */
static struct p2p_contact NB[3];
static struct p2p_peerid LINKED[3];
static size_t NLINKED;

static void neighbours(size_t nlinked)
{
	for (int i = 0; i < 3; i++) {
		NB[i].id = id((uint8_t)(4 * (i + 1)));
		NB[i].addr = v4(198, 51, 100, (uint8_t)(10 + i), 4242);
	}
	LINKED[0] = id(0x01);
	LINKED[1] = id(0x80);
	LINKED[2] = NB[1].id;
	NLINKED = nlinked;
}

/* get; the lookup answers NB (and the peer is not found); the punch
 * starts and (with relay_with_punch) RELAYS is asked at once. */
static void near_relaying(bool parallel, size_t nlinked)
{
	neighbours(nlinked);
	get(T0, 1, NULL);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, 0, 9), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 9, false, NB, 3, NULL),
		     0);
	if (parallel) {
		cr_assert_eq(drain(), 2);
		cr_assert_eq(Q[0].type, P2P_REACH_PUNCH);
		cr_assert_eq(Q[1].type, P2P_REACH_RELAYS);
		cr_assert_eq(
		    p2p_reach_punch_started(R, T0 + 100, &PEER, 0, NULL), 0);
	} else {
		one(P2P_REACH_PUNCH);
		cr_assert_eq(
		    p2p_reach_punch_started(R, T0 + 100, &PEER, 0, NULL), 0);
		cr_assert_eq(p2p_reach_punch_failed(R, T0 + 200, &PEER,
						    P2P_PUNCH_R_TIMEOUT,
						    PUNCH_MSG),
			     0);
		one(P2P_REACH_RELAYS);
	}
}

/* Answer RELAYS with our links; the next request must be t via b. */
static struct p2p_reach_action *
next_relay(uint64_t now, enum p2p_reach_action_type t, uint8_t b)
{
	cr_assert_eq(p2p_reach_relays(R, now, &PEER, LINKED, NLINKED), 0);
	struct p2p_reach_action *a = one(t);
	cr_assert(p2p_peerid_equal(&a->peer, &PEER));
	cr_assert_eq(a->via.b[0], b, "want via %02x, got %02x", b, a->via.b[0]);
	return a;
}

Test(core, near_the_targets_neighbour_is_asked_first, .init = setup_near,
     .fini = teardown)
{
	near_relaying(true, 3);
	/* N2, linked: before L1 (nearer PEER by XOR, not its neighbour) and
	 * before N1 (nearer, but not linked: a dial). */
	next_relay(T0 + 100, P2P_REACH_RELAY, 0x08);
}

Test(core, near_relay_dialled_first_when_not_linked, .init = setup_near,
     .fini = teardown)
{
	struct p2p_reach_link d = {.id = 50, .kind = P2P_REACH_K_DIRECT};
	struct p2p_reach_link rl = {.id = 51, .kind = P2P_REACH_K_RELAYED};

	near_relaying(true, 2);
	/* No neighbour linked: N1 is dialled at the address the lookup
	 * gave, before any of our own links (L1 is nearer PEER by XOR). */
	struct p2p_reach_action *a =
	    next_relay(T0 + 100, P2P_REACH_RELAY_DIAL, 0x04);
	cr_assert(p2p_addr_equal(&a->addr, &NB[0].addr));
	cr_assert_eq(p2p_reach_relay_dial_started(R, T0 + 100, &PEER, 0, 50),
		     0);
	cr_assert_eq(drain(), 0);
	/* Its link is up: now it is asked to relay. */
	cr_assert_eq(p2p_reach_link_up(R, T0 + 150, &NB[0].id, &d), 0);
	cr_assert_eq(one(P2P_REACH_RELAY)->via.b[0], 0x04);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 150, &PEER, 0, 51), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 300, &PEER, &rl), 0);
	a = one(P2P_REACH_DONE);
	cr_assert_null(a->code);
	cr_assert_eq(a->link.id, 51);
	cr_assert_eq(a->method, P2P_REACH_M_RELAY);
}

Test(core, near_linked_then_dialled_after_the_punch_failed,
     .init = setup_near_seq, .fini = teardown)
{
	near_relaying(false, 3);
	next_relay(T0 + 200, P2P_REACH_RELAY, 0x08);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 200, &PEER, -EBUSY, 0), 0);
	one(P2P_REACH_RELAYS);
	/* Then the neighbours we must dial, nearest first. */
	next_relay(T0 + 200, P2P_REACH_RELAY_DIAL, 0x04);
	cr_assert_eq(
	    p2p_reach_relay_dial_started(R, T0 + 200, &PEER, -ENETUNREACH, 0),
	    0);
	one(P2P_REACH_RELAYS);
	next_relay(T0 + 200, P2P_REACH_RELAY_DIAL, 0x0c);
}

Test(core, near_refusal_moves_to_the_next, .init = setup_near, .fini = teardown)
{
	near_relaying(true, 3);
	/* N2 (linked) refuses: busy, or no link to the target. */
	next_relay(T0 + 100, P2P_REACH_RELAY, 0x08);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 100, &PEER, 0, 60), 0);
	cr_assert_eq(
	    p2p_reach_link_gone(R, T0 + 150, 60, "relay circuit closed", NULL),
	    0);
	one(P2P_REACH_RELAYS);
	/* N1: its dial fails. */
	next_relay(T0 + 150, P2P_REACH_RELAY_DIAL, 0x04);
	cr_assert_eq(p2p_reach_relay_dial_started(R, T0 + 150, &PEER, 0, 50),
		     0);
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 900, 50, "timed out", NULL),
		     0);
	one(P2P_REACH_RELAYS);
	/* N3: dialled; its link comes up, it goes away before relaying. */
	next_relay(T0 + 950, P2P_REACH_RELAY_DIAL, 0x0c);
	cr_assert_eq(p2p_reach_relay_dial_started(R, T0 + 950, &PEER, 0, 70),
		     0);
	struct p2p_reach_link d = {.id = 70, .kind = P2P_REACH_K_DIRECT};
	cr_assert_eq(p2p_reach_link_up(R, T0 + 999, &NB[2].id, &d), 0);
	one(P2P_REACH_RELAY);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 999, &PEER, -ENOTCONN, 0),
		     0);
	one(P2P_REACH_RELAYS);
	/* Neighbours all tried: our own links, nearest PEER first. */
	next_relay(T0 + 999, P2P_REACH_RELAY, 0x01);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 999, &PEER, -EBUSY, 0), 0);
	one(P2P_REACH_RELAYS);
	next_relay(T0 + 999, P2P_REACH_RELAY, 0x80);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 999, &PEER, -EBUSY, 0), 0);
	/* Nobody left; the punch still runs, and its failure decides. */
	one(P2P_REACH_RELAYS);
	cr_assert_eq(p2p_reach_relays(R, T0 + 999, &PEER, LINKED, NLINKED), 0);
	cr_assert_eq(drain(), 0);
	punch_timed_out(T0 + 9000);
	failed(one(P2P_REACH_DONE), 1, "peer_unreachable",
	       PUNCH_MSG "; no relay reached the peer (5 asked)");
}

Test(core, near_dial_duplicate_with_another_link_up_asks_it, .init = setup_near,
     .fini = teardown)
{
	struct p2p_reach_link other = {.id = 80, .kind = P2P_REACH_K_DIRECT};

	near_relaying(true, 2);
	next_relay(T0 + 100, P2P_REACH_RELAY_DIAL, 0x04);
	cr_assert_eq(p2p_reach_relay_dial_started(R, T0 + 100, &PEER, 0, 50),
		     0);
	/* Our dial lost to a link N1 already had to us. */
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 120, 50, "duplicate", &other),
		     0);
	cr_assert_eq(one(P2P_REACH_RELAY)->via.b[0], 0x04);
}

Test(core, near_lookup_is_run_when_the_attempt_had_none, .init = setup_near_seq,
     .fini = teardown)
{
	neighbours(2);
	/* The table had its address: no lookup; the dial and the punch
	 * fail. */
	punching(T0);
	punch_timed_out(T0 + 9000);
	struct p2p_reach_action *a = one(P2P_REACH_LOOKUP);
	cr_assert(p2p_peerid_equal(&a->peer, &PEER));
	cr_assert_eq(p2p_reach_lookup_started(R, T0 + 9000, &PEER, 0, 33), 0);
	cr_assert_eq(drain(), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 9300, 33, true, NB, 3, NULL),
		     0);
	one(P2P_REACH_RELAYS);
	next_relay(T0 + 9300, P2P_REACH_RELAY_DIAL, 0x04);
}

Test(core, near_lookup_that_cannot_start_uses_our_links, .init = setup_near_seq,
     .fini = teardown)
{
	neighbours(2);
	punching(T0);
	punch_timed_out(T0 + 9000);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0 + 9000, &PEER, -EBUSY, 0),
		     0);
	one(P2P_REACH_RELAYS);
	next_relay(T0 + 9000, P2P_REACH_RELAY, 0x01);
}

Test(core, without_relay_near_links_only)
{
	neighbours(3);
	get(T0, 1, NULL);
	one(P2P_REACH_LOOKUP);
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, 0, 9), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 9, false, NB, 3, NULL),
		     0);
	one(P2P_REACH_PUNCH);
	cr_assert_eq(p2p_reach_punch_started(R, T0 + 100, &PEER, 0, NULL), 0);
	punch_timed_out(T0 + 200);
	one(P2P_REACH_RELAYS);
	next_relay(T0 + 200, P2P_REACH_RELAY, 0x01);
}

/* ---- robustness: random inputs never crash nor exceed the caps ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

#define NPEERS 6
#define NTOKENS 16

static void random_inputs(bool parallel)
{
	struct p2p_peerid peers[NPEERS + 1];
	uint8_t state[NTOKENS] = {0}; /* 0 idle, 1 waiting */
	struct p2p_reach_action a;
	uint64_t now = T0;
	size_t dones = 0;

	for (int i = 0; i < NPEERS; i++)
		peers[i] = id((uint8_t)(0x10 * i + 1));
	peers[NPEERS] = SELF;
	for (int step = 0; step < 200000; step++) {
		const struct p2p_peerid *p = &peers[rnd(NPEERS + 1)];
		struct p2p_reach_link l = {.id = 1 + rnd(8), .kind = rnd(3)};
		struct p2p_contact c = {.id = *p, .addr = ADDR};
		uint64_t tok = rnd(NTOKENS);
		int rc = 0;

		now += rnd(3000);
		switch (rnd(15)) {
		case 0:
		case 1:
			rc = p2p_reach_get(R, now, p, tok, rnd(4) ? NULL : &l,
					   rnd(2) ? &ADDR : NULL);
			cr_assert(rc == 0 || rc == -EEXIST);
			cr_assert_eq(rc == -EEXIST, state[tok] == 1);
			state[tok] = 1;
			break;
		case 2:
			rc = p2p_reach_cancel(R, tok);
			cr_assert_eq(rc == 0, state[tok] == 1);
			state[tok] = 0;
			break;
		case 3:
			p2p_reach_lookup_started(R, now, p, -(int)rnd(2),
						 rnd(4));
			break;
		case 4:
			p2p_reach_lookup_done(R, now, rnd(4), rnd(2), &c,
					      rnd(2), rnd(3) ? NULL : &l);
			break;
		case 5:
			p2p_reach_dial_started(R, now, p, -(int)rnd(2), l.id,
					       rnd(2) ? "refused" : NULL);
			break;
		case 6:
			p2p_reach_punch_started(
			    R, now, p, rnd(2) ? 0 : -EADDRNOTAVAIL, NULL);
			break;
		case 7:
			p2p_reach_punch_failed(R, now, p, P2P_PUNCH_R_TIMEOUT,
					       "punch failed");
			break;
		case 8:
			p2p_reach_relays(R, now, p, peers, rnd(NPEERS + 2));
			break;
		case 9:
			p2p_reach_relay_started(R, now, p, -(int)rnd(2), l.id);
			break;
		case 10:
			p2p_reach_link_up(R, now, p, &l);
			break;
		case 11:
			p2p_reach_link_gone(R, now, l.id, "gone",
					    rnd(4) ? NULL : &l);
			break;
		case 12:
			p2p_reach_expire(R, now);
			break;
		case 13:
			if (rnd(200) == 0) { /* stop, and start afresh */
				p2p_reach_stop(R);
				while (p2p_reach_poll(R, &a)) {
					if (a.type != P2P_REACH_DONE)
						continue;
					cr_assert_eq(state[a.token], 1);
					state[a.token] = 0;
				}
				setup_as(parallel); /* frees the old one */
				cr_assert_eq(p2p_reach_waiters(R), 0);
			}
			break;
		case 14:
			p2p_reach_relay_dial_started(R, now, p, -(int)rnd(2),
						     l.id);
			break;
		}
		/* Poll only sometimes: results may pile up unpolled. */
		while (rnd(3) && p2p_reach_poll(R, &a)) {
			if (a.type != P2P_REACH_DONE)
				continue;
			cr_assert_lt(a.token, NTOKENS);
			cr_assert_eq(state[a.token], 1, "a DONE nobody awaits");
			cr_assert((a.code == NULL) == (a.link.id != 0));
			cr_assert_lt(strlen(a.text), P2P_REACH_TEXT_MAX);
			state[a.token] = 0;
			dones++;
		}
		size_t waiting = 0;
		for (int i = 0; i < NTOKENS; i++)
			waiting += state[i];
		cr_assert_eq(p2p_reach_waiters(R), waiting);
		cr_assert_leq(p2p_reach_attempts(R), waiting);
		cr_assert_leq(p2p_reach_attempts(R), NPEERS);
		if (p2p_reach_attempts(R) > 0)
			cr_assert_neq(p2p_reach_next_timer(R), UINT64_MAX);
	}
	cr_assert_gt(dones, 1000);
}

Test(core, random_inputs_sequential)
{
	random_inputs(false);
}

Test(core, random_inputs_parallel, .init = setup_parallel, .fini = teardown)
{
	random_inputs(true);
}

Test(core, random_inputs_grace, .init = setup_grace)
{
	random_inputs(true);
}

Test(core, random_inputs_near, .init = setup_near, .fini = teardown)
{
	random_inputs(true);
}

Test(core, random_inputs_near_sequential, .init = setup_near_seq,
     .fini = teardown)
{
	random_inputs(false);
}

/* ---- punch_early ---- */

/* A peer to look up: LOOKUP and PUNCH (no context yet) at once. */
static void early_started(void)
{
	get(T0, 1, NULL);
	cr_assert_eq(drain(), 2);
	cr_assert_eq(Q[0].type, P2P_REACH_LOOKUP);
	cr_assert_eq(Q[1].type, P2P_REACH_PUNCH);
	cr_assert_str_eq(Q[1].text, "");
	cr_assert_eq(p2p_reach_lookup_started(R, T0, &PEER, 0, 5), 0);
	cr_assert_eq(p2p_reach_punch_started(R, T0, &PEER, 0, NULL), 0);
	cr_assert_eq(drain(), 0);
}

Test(core, early_punch_with_the_lookup, .init = setup_early)
{
	struct p2p_contact c[1] = {{.id = PEER}};

	early_started();
	/* Its failure before the lookup's answer decides nothing. */
	cr_assert_eq(p2p_reach_punch_failed(R, T0 + 50, &PEER,
					    P2P_PUNCH_R_TIMEOUT, PUNCH_MSG),
		     -ENOENT);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 5, true, c, 1, NULL),
		     0);
	/* Not dialable: PUNCH again with the context (the glue joins the
	 * session that runs), relays alongside. */
	cr_assert_eq(drain(), 2);
	cr_assert_eq(Q[0].type, P2P_REACH_PUNCH);
	cr_assert_str_eq(
	    Q[0].text,
	    "the peer is not dialable (no address it can be dialled at)");
	cr_assert_eq(Q[1].type, P2P_REACH_RELAYS);
}

Test(core, early_punch_link_up_while_looking_up, .init = setup_early)
{
	struct p2p_reach_link pl = {.id = 70, .kind = P2P_REACH_K_PUNCHED};

	early_started();
	cr_assert_eq(p2p_reach_link_up(R, T0 + 80, &PEER, &pl), 0);
	struct p2p_reach_action *a = one(P2P_REACH_DONE);
	cr_assert_eq(a->method, P2P_REACH_M_PUNCH);
	cr_assert_eq(a->link.id, 70);
	cr_assert_eq(p2p_reach_attempts(R), 0);
}

Test(core, early_punch_lookup_finds_an_address, .init = setup_early)
{
	struct p2p_contact c[1] = {{.id = PEER, .addr = ADDR}};

	early_started();
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 5, true, c, 1, NULL),
		     0);
	cr_assert(p2p_addr_equal(&one(P2P_REACH_DIAL)->addr, &ADDR));
}

/* The signalling said "unlikely" before the lookup answered: once
 * punching, a relayed link is the answer at once. */
Test(core, early_punch_unlikely_kept, .init = setup_early)
{
	struct p2p_contact c[1] = {{.id = PEER}};
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};

	early_started();
	cr_assert_eq(p2p_reach_punch_unlikely(R, T0 + 60, &PEER), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 5, true, c, 1, NULL),
		     0);
	drain();
	cr_assert_eq(p2p_reach_punch_started(R, T0 + 100, &PEER, 0, NULL), 0);
	cr_assert_eq(p2p_reach_relays(R, T0 + 100, &PEER, CAND, 6), 0);
	one(P2P_REACH_RELAY);
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 100, &PEER, 0, 60), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 300, &PEER, &rl), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->method, P2P_REACH_M_RELAY);
}

/* The REPLY's round trip measured before the lookup answered: the
 * shortened grace holds from then. */
Test(core, early_punch_expect_kept, .init = setup_early)
{
	struct p2p_contact c[1] = {{.id = PEER}};

	early_started();
	cr_assert_eq(p2p_reach_punch_expect(R, T0 + 60, &PEER, 50), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 5, true, c, 1, NULL),
		     0);
	drain();
	cr_assert_eq(p2p_reach_punch_started(R, T0 + 100, &PEER, 0, NULL), 0);
	/* The attempt's next deadline is the grace: REPLY + 2 x 50 ms +
	 * slack, not punch start + the fixed grace. */
	cr_assert_eq(p2p_reach_relays(R, T0 + 100, &PEER, CAND, 6), 0);
	one(P2P_REACH_RELAY);
	struct p2p_reach_link rl = {.id = 60, .kind = P2P_REACH_K_RELAYED};
	cr_assert_eq(p2p_reach_relay_started(R, T0 + 100, &PEER, 0, 60), 0);
	cr_assert_eq(p2p_reach_link_up(R, T0 + 120, &PEER, &rl), 0);
	cr_assert_eq(drain(), 0, "held while the punch may win");
	cr_assert_eq(p2p_reach_next_timer(R),
		     T0 + 60 + 100 + P2P_REACH_GRACE_SLACK_MS);
}

/* ---- issue 8: the peer says "dial me" ---- */

/* Early, before the lookup answered: dialled at once, the dial's link is
 * the answer (method dial), the lookup's late answer changes nothing. */
Test(core, dial_hint_while_looking_up, .init = setup_early)
{
	struct p2p_contact c[1] = {{.id = PEER, .addr = ADDR}};
	struct p2p_reach_link dl = {.id = 71, .kind = P2P_REACH_K_DIRECT};

	early_started();
	cr_assert_eq(p2p_reach_dial_hint(R, T0 + 60, &PEER, &ADDR), 0);
	cr_assert(p2p_addr_equal(&one(P2P_REACH_DIAL)->addr, &ADDR));
	cr_assert_eq(p2p_reach_dial_started(R, T0 + 60, &PEER, 0, 71, NULL), 0);
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 5, true, c, 1, NULL),
		     -ENOENT);
	cr_assert_eq(drain(), 0, "no second dial, no punch");
	cr_assert_eq(p2p_reach_link_up(R, T0 + 200, &PEER, &dl), 0);
	cr_assert_eq(one(P2P_REACH_DONE)->method, P2P_REACH_M_DIAL);
}

/* The lookup found the address first: its dial goes on alone. */
Test(core, dial_hint_after_the_lookup_dialled, .init = setup_early)
{
	struct p2p_contact c[1] = {{.id = PEER, .addr = ADDR}};

	early_started();
	cr_assert_eq(p2p_reach_lookup_done(R, T0 + 100, 5, true, c, 1, NULL),
		     0);
	one(P2P_REACH_DIAL);
	cr_assert_eq(p2p_reach_dial_hint(R, T0 + 120, &PEER, &ADDR), 0);
	cr_assert_eq(drain(), 0);
}

/* The dial failed and the punch asked again: "dial me" once more is too
 * late (the glue then fails the punch: a relay, not a loop). */
Test(core, dial_hint_after_a_failed_dial_is_refused, .init = setup_early)
{
	early_started();
	cr_assert_eq(p2p_reach_dial_hint(R, T0 + 60, &PEER, &ADDR), 0);
	one(P2P_REACH_DIAL);
	cr_assert_eq(p2p_reach_dial_started(R, T0 + 60, &PEER, 0, 71, NULL), 0);
	cr_assert_eq(p2p_reach_link_gone(R, T0 + 300, 71, "refused", NULL), 0);
	drain(); /* PUNCH (and relays alongside) */
	cr_assert_eq(p2p_reach_dial_hint(R, T0 + 400, &PEER, &ADDR), -EALREADY);
	cr_assert_eq(p2p_reach_dial_hint(R, T0 + 400, &SELF, &ADDR), -ENOENT);
}
