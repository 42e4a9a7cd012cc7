/* Hole punching sessions: signalling, glare, deadlines, the end texts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nat/punch_sess.h"

static struct p2p_peerid lo, hi, other[P2P_PSESS_MAX + 1];

static struct p2p_addr v4(int a, int b, int c, int d, uint16_t port)
{
	struct p2p_addr x = {.family = 4, .port = port};
	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

static struct p2p_addr my_lan[1], my_cand[2], my_pub[1];

#define WALL 1764640000000ull /* "now" on the wall clock, Unix ms */

/* Port-preserving, listening on 4242 (IPv4 only), LAN 10.1.0.10, public
 * 198.19.1.2 (as our overlay peers observed it). */
static struct p2p_psess_local facts(void)
{
	my_lan[0] = v4(10, 1, 0, 10, 0);
	my_cand[0] = v4(198, 19, 1, 2, 4242);
	my_cand[1] = v4(10, 1, 0, 10, 4242);
	my_pub[0] = v4(198, 19, 1, 2, 4242);
	return (struct p2p_psess_local){.nat = P2P_NAT_PORT_PRESERVING,
					.listen4 = 4242,
					.lan = my_lan,
					.nlan = 1,
					.cand = my_cand,
					.ncand = 2,
					.wall_ms = WALL,
					.seen = my_pub[0],
					.pub = my_pub,
					.npub = 1};
}

static void ids(void)
{
	memset(&lo, 0x01, sizeof(lo));
	memset(&hi, 0xf0, sizeof(hi));
	for (size_t i = 0; i < P2P_PSESS_MAX + 1; i++)
		memset(&other[i], 0x20 + (int)i, sizeof(other[i]));
}

TestSuite(psess, .init = ids);

/* ---- draining actions ---- */

static struct p2p_psess_action acts[256];
static size_t nacts;
static int send_rc;		  /* what the "route" of a SEND returns */
static uint64_t next_msgid = 100; /* msgid of the next routed SEND */

/* Poll everything; SENDs are "routed" with send_rc and next_msgid++. */
static size_t drain(struct p2p_psess_table *t, uint64_t now)
{
	struct p2p_psess_action a;

	nacts = 0;
	while (p2p_psess_poll(t, &a)) {
		cr_assert_lt(nacts, sizeof(acts) / sizeof(acts[0]));
		acts[nacts++] = a;
		if (a.type == P2P_PSESS_SEND)
			p2p_psess_sent(t, now, &a, send_rc, next_msgid++);
	}
	return nacts;
}

static size_t count(enum p2p_psess_action_type type)
{
	size_t c = 0;

	for (size_t i = 0; i < nacts; i++)
		c += acts[i].type == type;
	return c;
}

static const struct p2p_psess_action *first(enum p2p_psess_action_type type)
{
	for (size_t i = 0; i < nacts; i++)
		if (acts[i].type == type)
			return &acts[i];
	cr_assert_fail("no action of type %d among %zu", type, nacts);
	return NULL;
}

static struct p2p_punch_sig sig(enum p2p_punch_type type, uint64_t nonce,
				enum p2p_nat_type nat)
{
	return (struct p2p_punch_sig){
	    .type = type, .nonce = nonce, .time_ms = WALL, .nat = nat};
}

static void add_cand(struct p2p_punch_sig *s, struct p2p_addr a)
{
	s->cand[s->ncand++] = a;
}

/* Tick at every deadline up to until, draining after each. Counts the
 * CONNECT actions seen and answers the first `refuse` of them with a
 * reset right away. Returns the number of ABORTs seen. */
static unsigned connects, aborts_seen;
static void answer(struct p2p_psess_table *t, uint64_t now,
		   const struct p2p_peerid *peer, unsigned refuse)
{
	for (size_t i = 0; i < nacts; i++) {
		if (acts[i].type == P2P_PSESS_ABORT)
			aborts_seen++;
		if (acts[i].type != P2P_PSESS_CONNECT)
			continue;
		if (connects++ < refuse)
			p2p_psess_attempt_failed(t, now, peer, acts[i].idx,
						 true);
	}
}

static void run_until(struct p2p_psess_table *t, uint64_t until,
		      const struct p2p_peerid *peer, unsigned refuse)
{
	uint64_t now;

	while ((now = p2p_psess_next_timer(t)) <= until) {
		p2p_psess_tick(t, now);
		drain(t, now);
		answer(t, now, peer, refuse);
		if (count(P2P_PSESS_FAILED) || count(P2P_PSESS_SUCCESS))
			return;
		drain(t, now); /* nothing: attempt_failed acts on timers */
		cr_assert_eq(nacts, 0);
	}
}

/* ---- the requester ---- */

Test(psess, request_reply_schedule_connect_success)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 77, P2P_NAT_NONE);
	const struct p2p_psess_action *a;

	cr_assert_eq(p2p_psess_start(t, 1000, &hi, "tunnel to x", 77, &me), 0);
	cr_assert(p2p_psess_running(t, &hi));
	cr_assert_eq(drain(t, 1000), 1);
	a = first(P2P_PSESS_SEND);
	cr_assert(p2p_peerid_equal(&a->peer, &hi));
	cr_assert_eq(a->sig.type, P2P_PUNCH_REQUEST);
	cr_assert_eq(a->sig.nonce, 77);
	cr_assert_eq(a->sig.nat, P2P_NAT_PORT_PRESERVING);
	cr_assert_eq(a->sig.flags, 0);
	cr_assert_eq(a->sig.ncand, 2);
	cr_assert(p2p_addr_equal(&a->sig.cand[1], &my_cand[1]));
	cr_assert_eq(p2p_psess_next_timer(t), 1000 + P2P_PUNCH_SIGNAL_MS);

	/* The REPLY after a round trip of 100 ms: the requester connects at
	 * once (the replier primed when the REQUEST arrived), full TTL,
	 * whatever the IDs (lo < hi used to make us the primer). */
	add_cand(&r, v4(203, 0, 113, 5, 5000));
	add_cand(&r, v4(203, 0, 113, 6, 5001));
	p2p_psess_on_sig(t, 1100, &hi, &r, &me);
	cr_assert_eq(drain(t, 1100), 3);
	a = first(P2P_PSESS_SCHEDULED);
	cr_assert(!a->primer);
	cr_assert_eq(a->ncand, 2);
	cr_assert_eq(a->peer_nat, P2P_NAT_NONE);
	cr_assert_eq(count(P2P_PSESS_CONNECT), 2);
	cr_assert_eq(acts[1].idx, 0);
	cr_assert(p2p_addr_equal(&acts[1].addr, &r.cand[0]));
	cr_assert_eq(acts[1].ttl, 0);
	cr_assert_eq(acts[2].idx, 1);
	cr_assert_eq(p2p_psess_next_timer(t), 1100 + P2P_PUNCH_ATTEMPT_MS);

	p2p_psess_attempt_connected(t, 1380, &hi, 0);
	p2p_psess_link_hello(t, 1400, &hi, 0);
	cr_assert_eq(drain(t, 1400), 2);
	cr_assert_eq(acts[0].type, P2P_PSESS_ABORT);
	cr_assert_eq(acts[0].idx, 1);
	cr_assert_eq(acts[1].type, P2P_PSESS_SUCCESS);
	cr_assert_eq(acts[1].idx, 0);
	cr_assert(acts[1].requester);
	cr_assert_eq(acts[1].ms, 400);
	cr_assert_eq(acts[1].attempts, 2);
	cr_assert_eq(p2p_psess_count(t), 0);
	cr_assert(!p2p_psess_running(t, &hi));
	cr_assert_eq(p2p_psess_next_timer(t), UINT64_MAX);
	p2p_psess_free(t);
}

Test(psess, start_refusals)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);

	me.listen4 = 0;
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "x", 1, &me), -EADDRNOTAVAIL);
	me = facts();
	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		cr_assert_eq(p2p_psess_start(t, 0, &other[i], "x", i + 1, &me),
			     0);
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "x", 99, &me), -EBUSY);
	cr_assert_eq(p2p_psess_count(t), P2P_PSESS_MAX);
	/* Asking again for a running session joins it. */
	cr_assert_eq(p2p_psess_start(t, 0, &other[0], "y", 98, &me), 0);
	cr_assert_eq(drain(t, 0), P2P_PSESS_MAX);
	p2p_psess_free(t);
}

Test(psess, signal_timeout)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	const struct p2p_psess_action *a;

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "tunnel 3 to hi", 5, &me), 0);
	drain(t, 0);
	p2p_psess_tick(t, P2P_PUNCH_SIGNAL_MS - 1);
	cr_assert_eq(drain(t, P2P_PUNCH_SIGNAL_MS - 1), 0);
	p2p_psess_tick(t, P2P_PUNCH_SIGNAL_MS);
	cr_assert_eq(drain(t, P2P_PUNCH_SIGNAL_MS), 1);
	a = first(P2P_PSESS_FAILED);
	cr_assert(a->requester);
	cr_assert_eq(a->reason, P2P_PUNCH_R_NO_ANSWER);
	cr_assert_str_eq(a->msg,
			 "no direct link: tunnel 3 to hi; hole punching failed "
			 "after 5.0 s: the peer did not answer the punch "
			 "request");
	cr_assert_str_eq(a->log, "failed after 5.0 s: the peer did not answer "
				 "the punch request");
	cr_assert_eq(p2p_psess_count(t), 0);
	p2p_psess_free(t);
}

Test(psess, route_failure_of_our_request)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);

	next_msgid = 42;
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 5, &me), 0);
	/* Not routed yet: its msgid is unknown, 0 matches nothing. */
	cr_assert(!p2p_psess_route_failed(t, 0, 0));
	drain(t, 0);
	cr_assert(!p2p_psess_route_failed(t, 10, 43));
	cr_assert(!p2p_psess_route_failed(t, 10, 0));
	cr_assert_eq(drain(t, 10), 0);
	cr_assert(p2p_psess_route_failed(t, 1200, 42));
	cr_assert_eq(drain(t, 1200), 1);
	cr_assert_str_eq(first(P2P_PSESS_FAILED)->msg,
			 "no direct link: c; hole punching failed after 1.2 s: "
			 "no route to the peer over the overlay");
	cr_assert(!p2p_psess_route_failed(t, 1300, 42));
	p2p_psess_free(t);
}

Test(psess, request_that_cannot_be_routed)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 5, &me), 0);
	send_rc = -EHOSTUNREACH;
	drain(t, 0);
	send_rc = 0;
	cr_assert_eq(nacts, 2);
	cr_assert_eq(acts[1].type, P2P_PSESS_FAILED);
	cr_assert_eq(acts[1].err, -EHOSTUNREACH);
	cr_assert(strstr(acts[1].msg, "cannot route the request"));
	cr_assert_eq(p2p_psess_count(t), 0);
	p2p_psess_free(t);
}

Test(psess, fail_from_the_peer_and_nonce_mismatch)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig f = sig(P2P_PUNCH_FAIL, 6, P2P_NAT_NONE);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 6, P2P_NAT_NONE);

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 5, &me), 0);
	drain(t, 0);
	/* Wrong nonce: ignored, whatever the type; so is another sender. */
	f.reason = P2P_PUNCH_R_BUSY;
	p2p_psess_on_sig(t, 10, &hi, &f, &me);
	add_cand(&r, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 10, &hi, &r, &me);
	f.nonce = 5;
	p2p_psess_on_sig(t, 10, &other[0], &f, &me);
	cr_assert_eq(drain(t, 10), 0);
	cr_assert(p2p_psess_running(t, &hi));
	cr_assert_eq(p2p_psess_next_timer(t), P2P_PUNCH_SIGNAL_MS);

	p2p_psess_on_sig(t, 300, &hi, &f, &me);
	cr_assert_eq(drain(t, 300), 1);
	cr_assert_eq(acts[0].reason, P2P_PUNCH_R_BUSY);
	cr_assert_str_eq(acts[0].log, "failed after 0.3 s: the peer runs too "
				      "many hole punches");
	p2p_psess_free(t);
}

/* ---- the replier ---- */

Test(psess, replier_primes_then_answers_at_once)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	const struct p2p_psess_action *a;

	q.flags = 0x8000; /* a flag we do not know: ignored */
	add_cand(&q, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 2000, &lo, &q, &me);
	/* The prime leaves before the REPLY does: the requester connects
	 * when the REPLY arrives, and its SYN must find our NAT primed. */
	cr_assert_eq(drain(t, 2000), 3);
	cr_assert_eq(acts[0].type, P2P_PSESS_SCHEDULED);
	/* The replier primes, whatever the IDs (hi > lo used to send). */
	cr_assert(acts[0].primer);
	cr_assert_eq(acts[1].type, P2P_PSESS_CONNECT);
	cr_assert_eq(acts[1].ttl, P2P_PUNCH_PRIME_TTL);
	cr_assert_eq(acts[2].type, P2P_PSESS_SEND);
	a = &acts[2];
	cr_assert_eq(a->sig.type, P2P_PUNCH_REPLY);
	cr_assert_eq(a->sig.nonce, 9);
	cr_assert_eq(a->sig.flags, 0);
	cr_assert_eq(a->sig.ncand, 2);
	cr_assert(p2p_psess_running(t, &lo));
	cr_assert_eq(p2p_psess_next_timer(t), 2000 + P2P_PUNCH_PRIME_HOLD_MS);
	/* The same REQUEST again (a duplicate): ignored. */
	p2p_psess_on_sig(t, 2300, &lo, &q, &me);
	cr_assert_eq(drain(t, 2300), 0);
	p2p_psess_free(t);
}

/*
 * The requester starts over while we still prime for its last request
 * (its link went before ours was up, or its punch ended first): the new
 * REQUEST is answered at once, the old attempt closed before the new
 * one opens, and the session's end is reported once.
 */
Test(psess, replier_restarts_on_a_fresh_request)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	struct p2p_punch_sig q2 = sig(P2P_PUNCH_REQUEST, 10, P2P_NAT_NONE);

	add_cand(&q, v4(203, 0, 113, 5, 5000));
	add_cand(&q2, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 2000, &lo, &q, &me);
	cr_assert_eq(drain(t, 2000), 3);
	cr_assert_eq(acts[1].type, P2P_PSESS_CONNECT);
	size_t idx = acts[1].idx;
	cr_assert_not(acts[1].lead, "the replier does not lead");
	/* Our attempt connected; its handshake runs when the new REQUEST
	 * comes. */
	p2p_psess_attempt_connected(t, 2300, &lo, idx);
	cr_assert_eq(drain(t, 2300), 0);
	p2p_psess_on_sig(t, 2500, &lo, &q2, &me);
	cr_assert_eq(drain(t, 2500), 4);
	cr_assert_eq(acts[0].type, P2P_PSESS_ABORT, "the old attempt first");
	cr_assert_eq(acts[0].idx, idx);
	cr_assert_eq(acts[1].type, P2P_PSESS_SCHEDULED);
	cr_assert_eq(acts[2].type, P2P_PSESS_CONNECT);
	cr_assert_eq(acts[2].ttl, P2P_PUNCH_PRIME_TTL);
	cr_assert_eq(acts[3].type, P2P_PSESS_SEND);
	cr_assert_eq(acts[3].sig.type, P2P_PUNCH_REPLY);
	cr_assert_eq(acts[3].sig.nonce, 10);
	cr_assert_eq(p2p_psess_count(t), 1);
	p2p_psess_link_hello(t, 3000, &lo, acts[2].idx);
	cr_assert_eq(drain(t, 3000), 1);
	cr_assert_eq(acts[0].type, P2P_PSESS_SUCCESS);
	cr_assert_eq(acts[0].ms, 500, "timed from the new request");
	cr_assert_eq(p2p_psess_count(t), 0);
	p2p_psess_free(t);
}

/* A fresh request we cannot serve leaves the running session alone. */
Test(psess, replier_restart_refused_keeps_the_session)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	struct p2p_punch_sig q2 = sig(P2P_PUNCH_REQUEST, 10, P2P_NAT_NONE);

	add_cand(&q, v4(203, 0, 113, 5, 5000));
	add_cand(&q2, v4(127, 0, 0, 1, 5000)); /* implausible */
	p2p_psess_on_sig(t, 2000, &lo, &q, &me);
	drain(t, 2000);
	p2p_psess_on_sig(t, 2500, &lo, &q2, &me);
	cr_assert_eq(drain(t, 2500), 1);
	cr_assert_eq(acts[0].sig.type, P2P_PUNCH_FAIL);
	cr_assert_eq(acts[0].sig.reason, P2P_PUNCH_R_IMPLAUSIBLE);
	cr_assert(p2p_psess_running(t, &lo));
	p2p_psess_free(t);
}

/* The requester's CONNECTs lead: its handshake stays initiator. */
Test(psess, requester_connects_lead)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 100, P2P_NAT_NONE);

	add_cand(&r, v4(203, 0, 113, 5, 5000));
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 100, &me), 0);
	drain(t, 0);
	p2p_psess_on_sig(t, 80, &hi, &r, &me);
	drain(t, 80);
	cr_assert(first(P2P_PSESS_CONNECT)->lead);
	p2p_psess_free(t);
}

/* Our NAT endpoint-dependent, the requester public: we dial it outright
 * (full TTL) rather than prime; a NATed requester still gets primes. */
Test(psess, dependent_replier_dials_a_public_requester)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	struct p2p_punch_sig q2 =
	    sig(P2P_PUNCH_REQUEST, 10, P2P_NAT_PORT_PRESERVING);

	me.nat = P2P_NAT_ENDPOINT_DEPENDENT;
	me.ncand = 1; /* the LAN address only */
	me.cand = &my_cand[1];
	add_cand(&q, v4(203, 0, 113, 5, 4242));
	p2p_psess_on_sig(t, 2000, &lo, &q, &me);
	drain(t, 2000);
	cr_assert_eq(first(P2P_PSESS_CONNECT)->ttl, 0, "a plain SYN");
	cr_assert_eq(first(P2P_PSESS_CONNECT)->addr.port, 4242);
	p2p_psess_free(t);

	t = p2p_psess_new(&hi);
	add_cand(&q2, v4(203, 0, 113, 5, 4242));
	p2p_psess_on_sig(t, 2000, &lo, &q2, &me);
	drain(t, 2000);
	cr_assert_eq(first(P2P_PSESS_CONNECT)->ttl, P2P_PUNCH_PRIME_TTL);
	p2p_psess_free(t);
}

static void expect_refusal(struct p2p_psess_table *t,
			   const struct p2p_peerid *src,
			   const struct p2p_punch_sig *q,
			   const struct p2p_psess_local *me,
			   enum p2p_punch_reason why)
{
	size_t before = p2p_psess_count(t);

	p2p_psess_on_sig(t, 0, src, q, me);
	cr_assert_eq(drain(t, 0), 1);
	cr_assert_eq(acts[0].type, P2P_PSESS_SEND);
	cr_assert(p2p_peerid_equal(&acts[0].peer, src));
	cr_assert_eq(acts[0].sig.type, P2P_PUNCH_FAIL);
	cr_assert_eq(acts[0].sig.nonce, q->nonce);
	cr_assert_eq(acts[0].sig.reason, why);
	cr_assert_eq(p2p_psess_count(t), before);
}

Test(psess, replier_refusals)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q =
	    sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_ENDPOINT_DEPENDENT);

	me.listen4 = 0;
	expect_refusal(t, &lo, &q, &me, P2P_PUNCH_R_NOT_LISTENING);
	me = facts();
	me.nat = P2P_NAT_ENDPOINT_DEPENDENT;
	q.nonce = 8; /* the same one again would be a replay */
	expect_refusal(t, &lo, &q, &me, P2P_PUNCH_R_BOTH_DEPENDENT);
	/* One dependent side is fine. */
	me = facts();
	q.nonce = 10;
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	cr_assert_eq(drain(t, 0), 2);
	cr_assert_eq(first(P2P_PSESS_SEND)->sig.type, P2P_PUNCH_REPLY);
	/* Peers from distinct networks fill the slots peers may hold
	 * (issue 9: the rest stay for our own punches). */
	for (size_t i = 1; i < P2P_PSESS_PEER_SESSIONS; i++) {
		q.nonce = 100 + i;
		q.seen = v4(203, 0, (int)i, 1, 4242);
		p2p_psess_on_sig(t, 0, &other[i], &q, &me);
		cr_assert_eq(drain(t, 0), 2);
	}
	cr_assert_eq(p2p_psess_count(t), P2P_PSESS_PEER_SESSIONS);
	q.nonce = 555;
	q.seen = v4(203, 0, 99, 1, 4242);
	expect_refusal(t, &other[0], &q, &me, P2P_PUNCH_R_BUSY);
	cr_assert_eq(p2p_psess_stats(t)->busy, 1);
	/* Ours still start. */
	for (size_t i = P2P_PSESS_PEER_SESSIONS; i < P2P_PSESS_MAX; i++)
		cr_assert_eq(
		    p2p_psess_start(t, 0, &other[i], "x", 900 + i, &me), 0);
	cr_assert_eq(p2p_psess_count(t), P2P_PSESS_MAX);
	p2p_psess_free(t);
}

Test(psess, reply_that_cannot_be_routed)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);

	add_cand(&q, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	send_rc = -ENETUNREACH;
	drain(t, 0);
	send_rc = 0;
	/* The prime went out before the REPLY: it is closed again. */
	cr_assert_eq(count(P2P_PSESS_CONNECT), 1);
	cr_assert_eq(count(P2P_PSESS_ABORT), 1);
	cr_assert_eq(count(P2P_PSESS_FAILED), 1);
	cr_assert(!first(P2P_PSESS_FAILED)->requester);
	cr_assert_eq(first(P2P_PSESS_FAILED)->err, 0);
	cr_assert_str_eq(first(P2P_PSESS_FAILED)->msg,
			 "no direct link: the peer is not dialable; hole "
			 "punching failed after 0.0 s: cannot route the reply");
	cr_assert_eq(p2p_psess_count(t), 0);
	p2p_psess_free(t);
}

/* ---- glare ---- */

Test(psess, glare_lower_id_keeps_its_request)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 200, P2P_NAT_NONE);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 100, P2P_NAT_NONE);

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 100, &me), 0);
	drain(t, 0);
	p2p_psess_on_sig(t, 40, &hi, &q, &me); /* hi's request: ignored */
	cr_assert_eq(drain(t, 40), 0);
	p2p_psess_on_sig(t, 80, &hi, &r, &me); /* hi answers ours */
	cr_assert_eq(drain(t, 80), 1);
	cr_assert_eq(acts[0].type, P2P_PSESS_SCHEDULED);
	p2p_psess_free(t);
}

Test(psess, glare_higher_id_answers_the_lower)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 200, P2P_NAT_NONE);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 100, P2P_NAT_NONE);

	cr_assert_eq(p2p_psess_start(t, 0, &lo, "ctx", 100, &me), 0);
	drain(t, 0);
	p2p_psess_on_sig(t, 40, &lo, &q, &me);
	cr_assert_eq(drain(t, 40), 2);
	cr_assert_eq(acts[0].type, P2P_PSESS_SCHEDULED);
	cr_assert_eq(acts[1].sig.type, P2P_PUNCH_REPLY);
	cr_assert_eq(acts[1].sig.nonce, 200);
	/* Our own request's answer, should lo send one: stale. */
	p2p_psess_on_sig(t, 80, &lo, &r, &me);
	cr_assert_eq(drain(t, 80), 0);
	/* It is still our punch: its end is reported as the requester's. */
	p2p_psess_link_hello(t, 500, &lo, P2P_PSESS_NONE);
	cr_assert_eq(drain(t, 500), 1);
	cr_assert_eq(acts[0].type, P2P_PSESS_SUCCESS);
	cr_assert(acts[0].requester);
	cr_assert_eq(acts[0].ms, 500);
	p2p_psess_free(t);
}

Test(psess, start_joins_a_session_the_peer_began)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	struct p2p_punch_sig f = sig(P2P_PUNCH_FAIL, 9, P2P_NAT_NONE);

	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert_eq(p2p_psess_start(t, 10, &lo, "joined", 1, &me), 0);
	cr_assert_eq(drain(t, 10), 0); /* no second REQUEST */
	f.reason = P2P_PUNCH_R_TIMEOUT;
	p2p_psess_on_sig(t, 100, &lo, &f, &me);
	/* ended, not yet polled: the slot is still held */
	cr_assert_eq(p2p_psess_start(t, 100, &lo, "again", 2, &me), -EAGAIN);
	cr_assert_eq(drain(t, 100), 1);
	cr_assert(acts[0].requester);
	cr_assert(strstr(acts[0].msg, "no direct link: joined; "));
	p2p_psess_free(t);
}

/* ---- the schedule's end ---- */

Test(psess, schedule_timeout_message_with_counts)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q =
	    sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_ENDPOINT_INDEPENDENT);
	const struct p2p_psess_action *a;
	char want[512];

	add_cand(&q, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0); /* the first prime goes out with the REPLY */
	connects = aborts_seen = 0;
	answer(t, 0, &lo, 3);
	run_until(t, UINT64_MAX - 1, &lo, 3);
	a = first(P2P_PSESS_FAILED);
	cr_assert_eq(a->reason, P2P_PUNCH_R_TIMEOUT);
	cr_assert(!a->requester);
	/* Every SYN after the three reset ones went unanswered and was
	 * aborted after P2P_PUNCH_ATTEMPT_MS, except one still out at the
	 * end, aborted then (that abort is not counted as unanswered). */
	cr_assert_gt(connects, 3);
	cr_assert_eq(count(P2P_PSESS_ABORT), 1);
	snprintf(want, sizeof(want),
		 "no direct link: the peer is not dialable; hole punching "
		 "failed after 8.0 s: no connection through the NATs (this "
		 "side port-preserving, the peer endpoint-independent; %u "
		 "attempts, 3 reset, %u unanswered)",
		 connects, aborts_seen - 1);
	cr_assert_str_eq(a->msg, want);
	cr_assert_eq(a->attempts, connects);
	cr_assert_eq(p2p_psess_count(t), 0);
	cr_assert_eq(p2p_psess_next_timer(t), UINT64_MAX);
	p2p_psess_free(t);
}

Test(psess, held_connects_are_counted_in_the_message)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q =
	    sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_ENDPOINT_INDEPENDENT);
	const struct p2p_psess_action *a;
	uint64_t now = 0;
	unsigned held = 0;

	add_cand(&q, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	/* Every prime finds the four-tuple in use: no retry every
	 * P2P_PUNCH_RETRY_MS, one per hold. */
	do {
		for (size_t i = 0; i < nacts; i++) {
			if (acts[i].type != P2P_PSESS_CONNECT)
				continue;
			held++;
			p2p_psess_attempt_held(t, now, &lo, acts[i].idx);
			cr_assert_eq(p2p_psess_inflight(t), 0);
		}
		now = p2p_psess_next_timer(t);
		p2p_psess_tick(t, now);
		drain(t, now);
	} while (!count(P2P_PSESS_FAILED));
	cr_assert_leq(held, P2P_PUNCH_TOTAL_MS / P2P_PUNCH_PRIME_HOLD_MS + 1);
	a = first(P2P_PSESS_FAILED);
	cr_assert(strstr(a->msg, "blocked (address in use)"), "%s", a->msg);
	p2p_psess_free(t);
}

Test(psess, success_through_our_listener_aborts_every_attempt)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 1, P2P_NAT_NONE);

	add_cand(&r, v4(203, 0, 113, 5, 5000));
	add_cand(&r, v4(203, 0, 113, 5, 5001));
	add_cand(&r, v4(203, 0, 113, 5, 5002));
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 1, &me), 0);
	drain(t, 0);
	p2p_psess_on_sig(t, 0, &hi, &r, &me);
	cr_assert_eq(drain(t, 0), 4); /* SCHEDULED, 3 CONNECTs at once */
	cr_assert_eq(count(P2P_PSESS_CONNECT), 3);
	p2p_psess_attempt_connected(t, 350, &hi, 1);
	p2p_psess_link_hello(t, 400, &hi, P2P_PSESS_NONE);
	cr_assert_eq(drain(t, 400), 4);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(acts[i].type, P2P_PSESS_ABORT);
		cr_assert_eq(acts[i].idx, i);
	}
	cr_assert_eq(acts[3].type, P2P_PSESS_SUCCESS);
	cr_assert_eq(acts[3].idx, P2P_PSESS_NONE);
	p2p_psess_free(t);
}

Test(psess, hello_before_the_reply_is_a_success)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 1, &me), 0);
	drain(t, 0);
	p2p_psess_link_hello(t, 30, &hi, 3);
	cr_assert_eq(drain(t, 30), 1);
	cr_assert_eq(acts[0].type, P2P_PSESS_SUCCESS);
	cr_assert_eq(acts[0].idx, P2P_PSESS_NONE);
	cr_assert_eq(acts[0].attempts, 0);
	p2p_psess_free(t);
}

Test(psess, signalling_end_aborts_attempts_in_flight)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 1, P2P_NAT_NONE);

	add_cand(&r, v4(203, 0, 113, 5, 5000));
	add_cand(&r, v4(203, 0, 113, 5, 5001));
	next_msgid = 7;
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 1, &me), 0);
	drain(t, 0);
	p2p_psess_on_sig(t, 0, &hi, &r, &me);
	drain(t, 0); /* SCHEDULED, 2 CONNECTs */
	cr_assert_eq(count(P2P_PSESS_CONNECT), 2);
	p2p_psess_attempt_failed(t, 320, &hi, 0, true); /* 0 waits */
	cr_assert(p2p_psess_route_failed(t, 400, 7));
	cr_assert_eq(drain(t, 400), 2);
	cr_assert_eq(acts[0].type, P2P_PSESS_ABORT);
	cr_assert_eq(acts[0].idx, 1);
	cr_assert_eq(acts[1].type, P2P_PSESS_FAILED);
	p2p_psess_free(t);
}

Test(psess, stop_clears_everything)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 1, P2P_NAT_NONE);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 3, P2P_NAT_NONE);

	add_cand(&r, v4(203, 0, 113, 5, 5000));
	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 1, &me), 0);
	cr_assert_eq(p2p_psess_start(t, 0, &other[0], "d", 2, &me), 0);
	drain(t, 0);
	p2p_psess_on_sig(t, 0, &hi, &r, &me);
	drain(t, 0);
	cr_assert_eq(count(P2P_PSESS_CONNECT), 1); /* CONNECT 0, at once */
	p2p_psess_stop(t);
	cr_assert(!p2p_psess_running(t, &hi));
	cr_assert_eq(drain(t, 400), 1);
	cr_assert_eq(acts[0].type, P2P_PSESS_ABORT);
	cr_assert(p2p_peerid_equal(&acts[0].peer, &hi));
	cr_assert_eq(p2p_psess_count(t), 0);
	cr_assert_eq(p2p_psess_next_timer(t), UINT64_MAX);
	cr_assert_eq(p2p_psess_start(t, 500, &hi, "c", 1, &me), -ESHUTDOWN);
	p2p_psess_on_sig(t, 500, &lo, &q, &me);
	p2p_psess_tick(t, 100000);
	cr_assert_eq(drain(t, 100000), 0);
	p2p_psess_free(t);
}

Test(psess, stop_reports_no_end_not_yet_polled)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "c", 1, &me), 0);
	cr_assert_eq(p2p_psess_start(t, 0, &other[0], "d", 2, &me), 0);
	drain(t, 0);
	p2p_psess_link_hello(t, 10, &hi, P2P_PSESS_NONE);
	p2p_psess_tick(t, P2P_PUNCH_SIGNAL_MS); /* other[0] gives up */
	p2p_psess_stop(t);
	cr_assert_eq(drain(t, P2P_PUNCH_SIGNAL_MS), 0);
	cr_assert_eq(p2p_psess_count(t), 0);
	p2p_psess_free(t);
}

/* ---- candidates and timers ---- */

Test(psess, schedule_keeps_what_we_can_dial_and_not_ourselves)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	struct p2p_addr six = {.family = 6, .port = 5000, .ip = {0x20, 0x01}};
	const struct p2p_psess_action *a;

	/* Behind our NAT (seen at our public IP): LAN candidates pass the
	 * plausibility filter. */
	q.seen = v4(198, 19, 1, 2, 5000);
	add_cand(&q, v4(10, 1, 0, 10, 4242)); /* us: our LAN, our port */
	add_cand(&q, six);		      /* we listen on IPv4 only */
	add_cand(&q, v4(10, 1, 0, 10, 4243)); /* same IP, other port */
	add_cand(&q, v4(198, 19, 1, 2, 5000));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	a = first(P2P_PSESS_SCHEDULED);
	cr_assert_eq(a->ncand, 2);
	cr_assert(p2p_addr_equal(&a->cand[0], &q.cand[2]));
	cr_assert(p2p_addr_equal(&a->cand[1], &q.cand[3]));
	p2p_psess_free(t);

	/* Listening on IPv6 too: the IPv6 candidate is kept. */
	t = p2p_psess_new(&hi);
	me.listen6 = 4242;
	q.nonce = 10;
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 3);
	p2p_psess_free(t);
}

Test(psess, next_timer_is_the_earliest_of_all_sessions)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);
	struct p2p_punch_sig f = sig(P2P_PUNCH_FAIL, 1, P2P_NAT_NONE);

	cr_assert_eq(p2p_psess_next_timer(t), UINT64_MAX);
	cr_assert_eq(p2p_psess_start(t, 0, &other[0], "a", 1, &me), 0);
	cr_assert_eq(p2p_psess_next_timer(t), 0); /* a SEND waits */
	drain(t, 0);
	cr_assert_eq(p2p_psess_start(t, 1000, &other[1], "b", 2, &me), 0);
	drain(t, 1000);
	cr_assert_eq(p2p_psess_next_timer(t), P2P_PUNCH_SIGNAL_MS);
	add_cand(&q, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 2000, &lo, &q, &me); /* we prime, at once */
	drain(t, 2000);
	cr_assert_eq(count(P2P_PSESS_CONNECT), 1);
	cr_assert_eq(p2p_psess_next_timer(t), 2000 + P2P_PUNCH_PRIME_HOLD_MS);
	p2p_psess_attempt_connected(t, 2450, &lo, 0); /* waits for HELLO */
	cr_assert_eq(p2p_psess_next_timer(t), P2P_PUNCH_SIGNAL_MS);
	p2p_psess_on_sig(t, 2500, &other[0], &f, &me);
	drain(t, 2500);
	cr_assert_eq(p2p_psess_next_timer(t), 1000 + P2P_PUNCH_SIGNAL_MS);
	p2p_psess_tick(t, 1000 + P2P_PUNCH_SIGNAL_MS);
	drain(t, 1000 + P2P_PUNCH_SIGNAL_MS);
	cr_assert_eq(p2p_psess_next_timer(t),
		     2000 + P2P_PUNCH_TOTAL_MS); /* the schedule's end */
	p2p_psess_free(t);
}

/* ---- issue 9: plausible candidates ---- */

Test(psess, plausible_drops_what_no_peer_can_be)
{
	struct p2p_addr in[P2P_PUNCH_CAND_MAX] = {
	    v4(127, 0, 0, 1, 4242),   v4(0, 0, 0, 0, 4242),
	    v4(224, 0, 0, 251, 4242), v4(255, 255, 255, 255, 4242),
	    v4(203, 0, 113, 5, 0),    v4(203, 0, 113, 5, 5000),
	    v4(203, 0, 113, 5, 5000), {.family = 6, .port = 1, .ip[15] = 1},
	};
	struct p2p_addr out[P2P_PUNCH_CAND_MAX];
	struct p2p_addr mapped = {.family = 6, .port = 9};

	cr_assert_eq(p2p_psess_plausible(in, 8, NULL, NULL, 0, out), 1);
	cr_assert(p2p_addr_equal(&out[0], &in[5]));
	mapped.ip[10] = mapped.ip[11] = 0xff;
	mapped.ip[12] = 203;
	in[0] = mapped;
	in[1] = (struct p2p_addr){.family = 6, .port = 9, .ip = {0xff, 0x02}};
	in[2] = (struct p2p_addr){.family = 6, .port = 9, .ip = {0x20, 0x01}};
	cr_assert_eq(p2p_psess_plausible(in, 3, NULL, NULL, 0, out), 1);
	cr_assert(p2p_addr_equal(&out[0], &in[2]));
}

Test(psess, plausible_lan_only_behind_our_own_nat)
{
	struct p2p_addr in[3] = {v4(10, 1, 0, 20, 4242),
				 v4(198, 19, 1, 2, 4242),
				 v4(198, 51, 100, 7, 4242)};
	struct p2p_addr ours[1] = {v4(198, 19, 1, 2, 0)};
	struct p2p_addr seen = v4(198, 19, 1, 2, 33333);
	struct p2p_addr out[3];

	/* The peer's observed address is ours: same NAT, LAN kept; the
	 * public candidate that is not the observed IP is dropped. */
	cr_assert_eq(p2p_psess_plausible(in, 3, &seen, ours, 1, out), 2);
	cr_assert(p2p_addr_equal(&out[0], &in[0]));
	cr_assert(p2p_addr_equal(&out[1], &in[1]));
	/* Another public address: no LAN candidate. */
	seen = v4(198, 51, 100, 7, 1);
	cr_assert_eq(p2p_psess_plausible(in, 3, &seen, ours, 1, out), 1);
	cr_assert(p2p_addr_equal(&out[0], &in[2]));
	/* Not observed: public ones only. */
	cr_assert_eq(p2p_psess_plausible(in, 3, NULL, ours, 1, out), 2);
	cr_assert(p2p_addr_equal(&out[0], &in[1]));
}

/* ---- issue 9: what a peer's REQUEST can make us do ---- */

/* A REQUEST from src with n public candidates on seen's IP. */
static struct p2p_punch_sig req_from(uint64_t nonce, struct p2p_addr seen,
				     size_t n)
{
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, nonce, P2P_NAT_NONE);

	q.seen = seen;
	for (size_t i = 0; i < n; i++) {
		struct p2p_addr c = seen;
		c.port = (uint16_t)(5000 + i);
		add_cand(&q, c);
	}
	return q;
}

/* The answer to a REQUEST just given: REPLY (true) or FAIL for why. */
static bool answered(enum p2p_punch_reason *why)
{
	const struct p2p_psess_action *a;

	a = first(P2P_PSESS_SEND);

	*why = a->sig.reason;
	return a->sig.type == P2P_PUNCH_REPLY;
}

Test(psess, loopback_request_is_refused_and_dials_nothing)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 1, P2P_NAT_NONE);
	enum p2p_punch_reason why;

	/* The attack of issue 9: 8 targets of the sender's choice. */
	for (int i = 0; i < P2P_PUNCH_CAND_MAX; i++)
		add_cand(&q, v4(127, 0, 0, 1, (uint16_t)(6000 + i)));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(!answered(&why));
	cr_assert_eq(why, P2P_PUNCH_R_IMPLAUSIBLE);
	cr_assert_eq(p2p_psess_count(t), 0);
	cr_assert_eq(p2p_psess_stats(t)->implausible, 1);
	cr_assert_eq(p2p_psess_stats(t)->dropped, P2P_PUNCH_CAND_MAX);
	/* Loopback among plausible ones: only those are dialled. */
	q = req_from(2, v4(203, 0, 113, 5, 5000), 1);
	add_cand(&q, v4(127, 0, 0, 1, 6000));
	add_cand(&q, v4(0, 0, 0, 0, 6000));
	add_cand(&q, v4(203, 0, 113, 99, 6000)); /* not its seen IP */
	add_cand(&q, v4(192, 168, 1, 1, 80));	 /* not our LAN */
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 1);
	cr_assert(
	    p2p_addr_equal(&first(P2P_PSESS_SCHEDULED)->cand[0], &q.cand[0]));
	run_until(t, 20000, &lo, 1000);
	cr_assert_gt(connects, 0);
	for (size_t i = 0; i < nacts; i++)
		if (acts[i].type == P2P_PSESS_CONNECT)
			cr_assert(p2p_addr_equal(&acts[i].addr, &q.cand[0]));
	p2p_psess_free(t);
}

Test(psess, lan_candidates_only_from_behind_our_nat)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = req_from(1, v4(198, 19, 1, 2, 7000), 1);
	enum p2p_punch_reason why;

	/* Seen at our own public IP: its LAN address is dialled. */
	add_cand(&q, v4(10, 1, 0, 20, 4242));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 2);
	p2p_psess_free(t);

	/* Seen elsewhere: the LAN address is not. */
	t = p2p_psess_new(&hi);
	q = req_from(2, v4(203, 0, 113, 5, 7000), 1);
	add_cand(&q, v4(10, 1, 0, 20, 4242));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 1);
	cr_assert(
	    p2p_addr_equal(&first(P2P_PSESS_SCHEDULED)->cand[0], &q.cand[0]));
	p2p_psess_free(t);

	/* An endpoint-dependent peer of another network offers only its LAN
	 * address: answered, nothing dialled, we wait for its SYNs. */
	t = p2p_psess_new(&hi);
	q = sig(P2P_PUNCH_REQUEST, 3, P2P_NAT_ENDPOINT_DEPENDENT);
	q.seen = v4(203, 0, 113, 5, 7000);
	add_cand(&q, v4(10, 1, 0, 20, 4242));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 0);
	connects = 0;
	run_until(t, 20000, &lo, 0);
	cr_assert_eq(connects, 0);
	p2p_psess_free(t);
}

Test(psess, our_link_to_the_source_beats_what_it_claims)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	/* It claims 203.0.113.5, our link to it comes from 198.51.100.7. */
	struct p2p_punch_sig q = req_from(1, v4(203, 0, 113, 5, 7000), 2);
	enum p2p_punch_reason why;

	me.src_link = v4(198, 51, 100, 7, 40000);
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(!answered(&why));
	cr_assert_eq(why, P2P_PUNCH_R_IMPLAUSIBLE);
	/* Candidates on the IP we see it at are dialled. */
	q = req_from(2, v4(198, 51, 100, 7, 7000), 2);
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 2);
	p2p_psess_free(t);
}

Test(psess, reply_candidates_are_filtered_too)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 7, P2P_NAT_NONE);

	cr_assert_eq(p2p_psess_start(t, 0, &hi, "x", 7, &me), 0);
	drain(t, 0);
	add_cand(&r, v4(127, 0, 0, 1, 22));
	add_cand(&r, v4(224, 0, 0, 1, 22));
	add_cand(&r, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 100, &hi, &r, &me);
	drain(t, 100);
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 1);
	cr_assert(
	    p2p_addr_equal(&first(P2P_PSESS_SCHEDULED)->cand[0], &r.cand[2]));
	p2p_psess_free(t);
}

Test(psess, stale_future_and_replayed_requests_get_no_answer)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = req_from(1, v4(203, 0, 113, 5, 7000), 1);
	enum p2p_punch_reason why;

	q.time_ms = WALL - P2P_PUNCH_SKEW_MS - 1;
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	cr_assert_eq(drain(t, 0), 0);
	q.time_ms = WALL + P2P_PUNCH_SKEW_MS + 1;
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	cr_assert_eq(drain(t, 0), 0);
	cr_assert_eq(p2p_psess_stats(t)->stale, 2);
	/* At the edge of the window: answered. */
	q.time_ms = WALL - P2P_PUNCH_SKEW_MS;
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	/* Its session ends (the peer connected); the same signed REQUEST
	 * comes again, from anyone who kept a copy: refused. */
	p2p_psess_link_hello(t, 50, &lo, P2P_PSESS_NONE);
	drain(t, 50);
	cr_assert_eq(p2p_psess_count(t), 0);
	me.wall_ms = WALL - P2P_PUNCH_SKEW_MS + 1000; /* still fresh */
	p2p_psess_on_sig(t, 1000, &lo, &q, &me);
	cr_assert_eq(drain(t, 1000), 0);
	cr_assert_eq(p2p_psess_stats(t)->replayed, 1);
	cr_assert_eq(p2p_psess_count(t), 0);
	/* A fresh nonce from the same peer is fine. */
	q.nonce = 2;
	q.time_ms = me.wall_ms;
	p2p_psess_on_sig(t, 1000, &lo, &q, &me);
	drain(t, 1000);
	cr_assert(answered(&why));
	/* The same nonce from another peer is not a replay. */
	q.nonce = 1;
	p2p_psess_on_sig(t, 1000, &other[0], &q, &me);
	drain(t, 1000);
	cr_assert(answered(&why));
	p2p_psess_free(t);
}

Test(psess, replay_window_covers_the_whole_skew)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	/* Sent with a clock P2P_PUNCH_SKEW_MS ahead of ours: it stays
	 * fresh until our clock has gone on by 2 x P2P_PUNCH_SKEW_MS. */
	struct p2p_punch_sig q = req_from(1, v4(203, 0, 113, 5, 7000), 0);
	enum p2p_punch_reason why;
	uint64_t last = 2 * P2P_PUNCH_SKEW_MS;

	q.time_ms = WALL + P2P_PUNCH_SKEW_MS;
	q.nat = P2P_NAT_ENDPOINT_DEPENDENT; /* no candidates: just answered */
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	p2p_psess_link_hello(t, 1, &lo, P2P_PSESS_NONE);
	drain(t, 1);
	me.wall_ms = WALL + last;
	p2p_psess_on_sig(t, last - 1, &lo, &q, &me);
	cr_assert_eq(drain(t, last - 1), 0);
	cr_assert_eq(p2p_psess_stats(t)->replayed, 1);
	p2p_psess_free(t);
}

Test(psess, per_id_bucket)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	enum p2p_punch_reason why;
	uint64_t nonce = 1, now = 0;
	size_t ok = 0;

	/* One identity, many requests, each from a new IP: the ID's bucket
	 * holds them. Sessions end at once (HELLO) so none stays open. */
	for (int i = 0; i < 20; i++) {
		struct p2p_punch_sig q =
		    req_from(nonce++, v4(203, 0, i, 5, 7000), 1);
		p2p_psess_on_sig(t, now, &lo, &q, &me);
		drain(t, now);
		if (answered(&why))
			ok++;
		else
			cr_assert_eq(why, P2P_PUNCH_R_LIMITED);
		p2p_psess_link_hello(t, now, &lo, P2P_PSESS_NONE);
		drain(t, now);
	}
	cr_assert_eq(ok, P2P_PSESS_ID_BURST);
	/* One more after each refill. */
	now += P2P_PSESS_ID_REFILL_MS;
	me.wall_ms += now;
	struct p2p_punch_sig q = req_from(nonce++, v4(203, 0, 77, 5, 7000), 1);
	q.time_ms = me.wall_ms;
	p2p_psess_on_sig(t, now, &lo, &q, &me);
	drain(t, now);
	cr_assert(answered(&why));
	p2p_psess_link_hello(t, now, &lo, P2P_PSESS_NONE);
	drain(t, now);
	q = req_from(nonce++, v4(203, 0, 78, 5, 7000), 1);
	q.time_ms = me.wall_ms;
	p2p_psess_on_sig(t, now, &lo, &q, &me);
	drain(t, now);
	cr_assert(!answered(&why));
	/* Another identity is not held by this one's bucket. */
	p2p_psess_on_sig(t, now, &other[1], &q, &me);
	drain(t, now);
	cr_assert(answered(&why));
	p2p_psess_free(t);
}

Test(psess, per_ip_bucket_across_identities)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	enum p2p_punch_reason why;
	size_t ok = 0;

	/* Throwaway identities, all from one host (our link to each comes
	 * from the same IP). */
	me.src_link = v4(203, 0, 113, 5, 40000);
	for (int i = 0; i < 40; i++) {
		struct p2p_peerid id;
		struct p2p_punch_sig q =
		    req_from((uint64_t)i + 1, v4(203, 0, 113, 5, 7000), 1);
		memset(&id, 0x30 + i, sizeof(id));
		p2p_psess_on_sig(t, 0, &id, &q, &me);
		drain(t, 0);
		if (answered(&why))
			ok++;
		p2p_psess_link_hello(t, 0, &id, P2P_PSESS_NONE);
		drain(t, 0);
	}
	cr_assert_eq(ok, P2P_PSESS_IP_BURST);
	cr_assert_eq(p2p_psess_stats(t)->limited, 40 - P2P_PSESS_IP_BURST);
	p2p_psess_free(t);
}

Test(psess, node_wide_request_bucket)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	enum p2p_punch_reason why;
	size_t ok = 0;

	/* Every request from its own identity and its own IP. */
	for (int i = 0; i < 40; i++) {
		struct p2p_peerid id;
		struct p2p_punch_sig q = req_from(
		    (uint64_t)i + 1, v4(198, 51, (uint8_t)i, 5, 7000), 1);
		memset(&id, 0x30 + i, sizeof(id));
		p2p_psess_on_sig(t, 0, &id, &q, &me);
		drain(t, 0);
		if (answered(&why))
			ok++;
		p2p_psess_link_hello(t, 0, &id, P2P_PSESS_NONE);
		drain(t, 0);
	}
	cr_assert_eq(ok, P2P_PSESS_REQ_BURST);
	p2p_psess_free(t);
}

Test(psess, one_network_holds_few_sessions)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	enum p2p_punch_reason why;
	size_t ok = 0;

	/* Eight throwaway identities on eight IPs of one /24: sessions stay
	 * open (nothing connects), two at most. */
	for (int i = 0; i < 8; i++) {
		struct p2p_peerid id;
		struct p2p_punch_sig q =
		    req_from((uint64_t)i + 1,
			     v4(203, 0, 113, (uint8_t)(10 + i), 7000), 8);
		memset(&id, 0x30 + i, sizeof(id));
		p2p_psess_on_sig(t, 0, &id, &q, &me);
		drain(t, 0);
		if (answered(&why))
			ok++;
		else
			cr_assert_eq(why, P2P_PUNCH_R_LIMITED);
	}
	cr_assert_eq(ok, P2P_PSESS_PER_NET);
	cr_assert_eq(p2p_psess_count(t), P2P_PSESS_PER_NET);
	/* Someone from another network still gets a session, and so do we. */
	struct p2p_punch_sig q = req_from(50, v4(198, 51, 100, 7, 7000), 1);
	p2p_psess_on_sig(t, 0, &other[0], &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	cr_assert_eq(p2p_psess_start(t, 0, &other[1], "x", 51, &me), 0);
	p2p_psess_free(t);
}

/* Our own punches to 8 peers, each REPLY with 8 public candidates that
 * refuse nothing and answer nothing: attempts stay in flight. */
Test(psess, node_wide_connection_budget)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	size_t handed = 0, most = 0;
	uint64_t now = 0, next;

	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		struct p2p_punch_sig r =
		    req_from(i + 1, v4(203, 0, (uint8_t)i, 5, 7000), 8);
		r.type = P2P_PUNCH_REPLY;
		cr_assert_eq(p2p_psess_start(t, 0, &other[i], "x", i + 1, &me),
			     0);
		drain(t, 0);
		p2p_psess_on_sig(t, 0, &other[i], &r, &me);
		drain(t, 0); /* the first SYNs go at once */
		handed += count(P2P_PSESS_CONNECT);
		if (p2p_psess_inflight(t) > most)
			most = p2p_psess_inflight(t);
		cr_assert_leq(p2p_psess_inflight(t), P2P_PSESS_INFLIGHT_MAX);
	}
	/* 64 attempts are due at once: at most P2P_PSESS_INFLIGHT_MAX. */
	while ((next = p2p_psess_next_timer(t)) <= 4000) {
		now = next;
		p2p_psess_tick(t, now);
		drain(t, now);
		handed += count(P2P_PSESS_CONNECT);
		if (p2p_psess_inflight(t) > most)
			most = p2p_psess_inflight(t);
		cr_assert_leq(p2p_psess_inflight(t), P2P_PSESS_INFLIGHT_MAX);
	}
	cr_assert_eq(most, P2P_PSESS_INFLIGHT_MAX);
	cr_assert_gt(p2p_psess_stats(t)->deferred, 0);
	/* Each unanswered SYN is given up after P2P_PUNCH_ATTEMPT_MS and its
	 * slot goes to another: the rate budget bounds the total. */
	cr_assert_leq(handed, P2P_PSESS_CONNECT_BURST +
				  now / P2P_PSESS_CONNECT_EVERY_MS + 1);
	cr_assert_eq(handed, p2p_psess_stats(t)->connects);
	p2p_psess_free(t);
}

Test(psess, rate_budget_under_resets)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = req_from(1, v4(203, 0, 113, 5, 7000), 8);
	enum p2p_punch_reason why;

	/* A peer asks; every SYN is reset at once (the schedule retries
	 * after P2P_PUNCH_RETRY_MS): without a budget that is 8 x 53
	 * connections in 8 s. */
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert(answered(&why));
	connects = 0;
	answer(t, 0, &lo, 100000); /* the first primes, reset too */
	run_until(t, 20000, &lo, 100000);
	cr_assert_eq(count(P2P_PSESS_FAILED), 1);
	cr_assert_eq(connects, P2P_PSESS_PEER_ATTEMPTS);
	cr_assert_eq(p2p_psess_inflight(t), 0);
	p2p_psess_free(t);
}

/* ---- issue 11: IPv6 ---- */

static struct p2p_addr v6(uint16_t a, uint16_t b, uint16_t last, uint16_t port)
{
	struct p2p_addr x = {.family = 6, .port = port};
	x.ip[0] = (uint8_t)(a >> 8), x.ip[1] = (uint8_t)a;
	x.ip[2] = (uint8_t)(b >> 8), x.ip[3] = (uint8_t)b;
	x.ip[14] = (uint8_t)(last >> 8), x.ip[15] = (uint8_t)last;
	return x;
}

Test(psess, plausible_v6_keeps_global_refuses_scoped_and_reserved)
{
	struct p2p_addr in[P2P_PUNCH_CAND_MAX] = {
	    v6(0x2001, 0xdb8, 0x10, 4242), /* global: kept */
	    v6(0xfe80, 0, 0x10, 4242),	   /* link-local: needs a scope */
	    v6(0xfec0, 0, 0x10, 4242),	   /* site-local (deprecated) */
	    v6(0xff02, 0, 1, 4242),	   /* multicast */
	    v6(0, 0, 1, 4242),		   /* ::1 */
	    v6(0, 0, 0, 4242),		   /* :: */
	    v6(0x2001, 0xdb8, 0x11, 0),	   /* port 0 */
	    v6(0, 0, 0x0a01, 4242),	   /* ::10.1 (IPv4-compatible) */
	};
	struct p2p_addr out[P2P_PUNCH_CAND_MAX];
	struct p2p_addr mapped = v6(0, 0, 0, 4242);

	cr_assert_eq(p2p_psess_plausible(in, 8, NULL, NULL, 0, out), 1);
	cr_assert(p2p_addr_equal(&out[0], &in[0]));
	/* ::ffff:203.0.113.5 (a real peer sends family 4) */
	mapped.ip[10] = mapped.ip[11] = 0xff;
	mapped.ip[12] = 203, mapped.ip[13] = 0, mapped.ip[14] = 113;
	mapped.ip[15] = 5;
	cr_assert_eq(p2p_psess_plausible(&mapped, 1, NULL, NULL, 0, out), 0);
	/* Seen over IPv6 (no NAT66): an IPv6 candidate must be on that IP;
	 * IPv4 ones are not checked against an IPv6 observation. */
	struct p2p_addr seen = v6(0x2001, 0xdb8, 0x10, 4242);
	in[1] = v6(0x2001, 0xdb8, 0x99, 4242);
	in[2] = v4(203, 0, 113, 5, 4242);
	cr_assert_eq(p2p_psess_plausible(in, 3, &seen, NULL, 0, out), 2);
	cr_assert(p2p_addr_equal(&out[0], &in[0]));
	cr_assert(p2p_addr_equal(&out[1], &in[2]));
	/* Behind our own NAT (seen at our public IP) LAN candidates pass,
	 * a ULA among them, but never a link-local one: it needs a scope. */
	struct p2p_addr ours = v4(198, 19, 1, 2, 0);
	seen = v4(198, 19, 1, 2, 4242);
	in[0] = v4(10, 1, 0, 20, 4242);
	in[1] = v6(0xfe80, 0, 0x20, 4242);
	in[2] = v6(0xfd00, 0, 0x20, 4242);
	cr_assert_eq(p2p_psess_plausible(in, 3, &seen, &ours, 1, out), 2);
	cr_assert(p2p_addr_equal(&out[0], &in[0]));
	cr_assert(p2p_addr_equal(&out[1], &in[2]));
}

/* Dual-stack, IPv4 behind an endpoint-dependent NAT, a global IPv6
 * address 2001:db8:201:1::10 offered with listen6 4242. */
static struct p2p_addr my_cand6[1];

static struct p2p_psess_local facts_dependent_v6(void)
{
	struct p2p_psess_local me = facts();

	my_cand6[0] = v6(0x2001, 0xdb8, 0x10, 4242);
	me.nat = P2P_NAT_ENDPOINT_DEPENDENT;
	me.listen6 = 4242;
	me.cand = my_cand6;
	me.ncand = 1;
	return me;
}

Test(psess, both_dependent_still_punch_over_v6)
{
	struct p2p_psess_local me = facts_dependent_v6();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q =
	    sig(P2P_PUNCH_REQUEST, 21, P2P_NAT_ENDPOINT_DEPENDENT);

	add_cand(&q, v6(0x2001, 0xdb8, 0x20, 4242));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert_eq(first(P2P_PSESS_SEND)->sig.type, P2P_PUNCH_REPLY);
	cr_assert_eq(first(P2P_PSESS_SCHEDULED)->ncand, 1);
	cr_assert_eq(first(P2P_PSESS_CONNECT)->addr.family, 6);
	p2p_psess_free(t);
}

Test(psess, both_dependent_without_our_v6_is_refused)
{
	struct p2p_psess_local me = facts_dependent_v6();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q =
	    sig(P2P_PUNCH_REQUEST, 22, P2P_NAT_ENDPOINT_DEPENDENT);

	add_cand(&q, v6(0x2001, 0xdb8, 0x20, 4242));
	me.listen6 = 0; /* not listening on IPv6: nothing to punch from */
	expect_refusal(t, &lo, &q, &me, P2P_PUNCH_R_BOTH_DEPENDENT);
	me = facts_dependent_v6();
	me.ncand = 0; /* no IPv6 address of ours to offer */
	q.nonce = 23;
	expect_refusal(t, &lo, &q, &me, P2P_PUNCH_R_BOTH_DEPENDENT);
	p2p_psess_free(t);
}

Test(psess, v6_only_node_punches)
{
	struct p2p_psess_local me = facts_dependent_v6();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 24, P2P_NAT_NONE);

	/* No IPv4 listener at all (an IPv6-only host) is not "not
	 * listening": it requests and it answers. */
	me.listen4 = 0;
	me.nat = P2P_NAT_NONE;
	cr_assert_eq(p2p_psess_start(t, 0, &other[0], "x", 900, &me), 0);
	add_cand(&q, v6(0x2001, 0xdb8, 0x20, 4242));
	p2p_psess_on_sig(t, 0, &lo, &q, &me);
	drain(t, 0);
	cr_assert_eq(first(P2P_PSESS_SEND)->sig.type, P2P_PUNCH_REQUEST);
	cr_assert_eq(count(P2P_PSESS_CONNECT), 1);
	cr_assert_eq(first(P2P_PSESS_CONNECT)->addr.family, 6);
	p2p_psess_free(t);
}

Test(psess, plausible_unseen_v6_bounded_to_one_slash64)
{
	/* Seen over IPv4 only: IPv6 candidates cannot be checked against an
	 * observation; only the first one's /64 is kept, at most
	 * P2P_PSESS_V6_UNSEEN_MAX of it. */
	struct p2p_addr in[5] = {
	    v6(0x2001, 0xdb8, 0x10, 4242), v6(0x2001, 0xdb9, 0x10, 4242),
	    v6(0x2001, 0xdb8, 0x11, 4242), v6(0x2001, 0xdb8, 0x12, 4242),
	    v4(203, 0, 113, 5, 4242)};
	struct p2p_addr seen = v4(203, 0, 113, 5, 4242);
	struct p2p_addr out[5];

	cr_assert_eq(P2P_PSESS_V6_UNSEEN_MAX, 2);
	cr_assert_eq(p2p_psess_plausible(in, 5, &seen, NULL, 0, out), 3);
	cr_assert(p2p_addr_equal(&out[0], &in[0]));
	cr_assert(p2p_addr_equal(&out[1], &in[2]));
	cr_assert(p2p_addr_equal(&out[2], &in[4]));
	/* A repeat does not use up the bound. */
	in[1] = in[0];
	cr_assert_eq(p2p_psess_plausible(in, 3, &seen, NULL, 0, out), 2);
	cr_assert(p2p_addr_equal(&out[1], &in[2]));
	/* Seen over IPv6: the observation decides, not the bound. */
	seen = in[0];
	cr_assert_eq(p2p_psess_plausible(in, 5, &seen, NULL, 0, out), 2);
}

/* ---- issue 8: "dial me" ---- */

Test(psess, dialable_replier_answers_dial_me_and_holds_nothing)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q = sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_NONE);

	me.nat = P2P_NAT_NONE;
	me.dialable = true;
	add_cand(&q, v4(203, 0, 113, 5, 5000));
	p2p_psess_on_sig(t, 2000, &lo, &q, &me);
	cr_assert_eq(drain(t, 2000), 1, "one REPLY, no prime, no schedule");
	cr_assert_eq(acts[0].type, P2P_PSESS_SEND);
	cr_assert_eq(acts[0].sig.type, P2P_PUNCH_REPLY);
	cr_assert_eq(acts[0].sig.flags, P2P_PUNCH_F_DIALABLE);
	cr_assert_eq(acts[0].sig.nonce, 9);
	cr_assert_eq(acts[0].sig.ncand, 2);
	cr_assert(p2p_addr_equal(&acts[0].sig.cand[0], &my_cand[0]));
	cr_assert_not(p2p_psess_running(t, &lo));
	cr_assert_eq(p2p_psess_count(t), 0, "no session slot spent");
	cr_assert_eq(p2p_psess_stats(t)->dialable, 1);
	cr_assert_eq(p2p_psess_stats(t)->connects, 0);
	/* The rate limits still hold: the same source, over its bucket. */
	for (uint64_t i = 0; i < P2P_PSESS_ID_BURST; i++) {
		q.nonce = 100 + i;
		p2p_psess_on_sig(t, 2000, &lo, &q, &me);
		drain(t, 2000);
	}
	cr_assert_eq(acts[0].sig.type, P2P_PUNCH_FAIL);
	cr_assert_eq(acts[0].sig.reason, P2P_PUNCH_R_LIMITED);
	p2p_psess_free(t);
}

Test(psess, requester_dials_a_peer_that_says_dial_me)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 77, P2P_NAT_NONE);
	struct p2p_addr srv6 = v6(0x2001, 0xdb8, 0x77, 4242);
	struct p2p_addr srv4 = v4(203, 0, 113, 7, 4242);

	cr_assert_eq(p2p_psess_start(t, 1000, &hi, "ctx", 77, &me), 0);
	drain(t, 1000);
	r.flags = P2P_PUNCH_F_DIALABLE;
	r.seen = srv4;
	add_cand(&r, srv6); /* we have no IPv6: not this one */
	add_cand(&r, srv4);
	p2p_psess_on_sig(t, 1100, &hi, &r, &me);
	cr_assert_eq(drain(t, 1100), 1, "DIAL, nothing else");
	cr_assert_eq(acts[0].type, P2P_PSESS_DIAL);
	cr_assert(acts[0].requester);
	cr_assert(p2p_addr_equal(&acts[0].addr, &srv4));
	cr_assert_eq(p2p_psess_count(t), 0);
	cr_assert_eq(p2p_psess_stats(t)->connects, 0);
	p2p_psess_free(t);

	/* With a global IPv6 address of ours, its IPv6 candidate first. */
	t = p2p_psess_new(&lo);
	me.listen6 = 4242;
	cr_assert_eq(p2p_psess_start(t, 1000, &hi, "ctx", 77, &me), 0);
	drain(t, 1000);
	p2p_psess_on_sig(t, 1100, &hi, &r, &me);
	drain(t, 1100);
	cr_assert(p2p_addr_equal(&first(P2P_PSESS_DIAL)->addr, &srv6));
	p2p_psess_free(t);

	/* Without the flag the same REPLY is punched, as before. */
	t = p2p_psess_new(&lo);
	r.flags = 0;
	cr_assert_eq(p2p_psess_start(t, 1000, &hi, "ctx", 77, &me), 0);
	drain(t, 1000);
	p2p_psess_on_sig(t, 1100, &hi, &r, &me);
	drain(t, 1100);
	cr_assert_eq(count(P2P_PSESS_DIAL), 0);
	cr_assert_geq(count(P2P_PSESS_CONNECT), 1);
	p2p_psess_free(t);
}

Test(psess, dial_me_with_nothing_we_can_dial_is_punched)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);
	struct p2p_punch_sig r = sig(P2P_PUNCH_REPLY, 77, P2P_NAT_NONE);

	cr_assert_eq(p2p_psess_start(t, 1000, &hi, "ctx", 77, &me), 0);
	drain(t, 1000);
	r.flags = P2P_PUNCH_F_DIALABLE;
	add_cand(&r, v6(0x2001, 0xdb8, 0x77, 4242)); /* no IPv6 here */
	p2p_psess_on_sig(t, 1100, &hi, &r, &me);
	drain(t, 1100);
	cr_assert_eq(count(P2P_PSESS_DIAL), 0);
	cr_assert(p2p_psess_running(t, &hi) || count(P2P_PSESS_FAILED) == 1);
	p2p_psess_free(t);
}

Test(psess, dialable_requester_is_dialled_by_a_dependent_replier)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&hi);
	struct p2p_punch_sig q =
	    sig(P2P_PUNCH_REQUEST, 9, P2P_NAT_ENDPOINT_DEPENDENT);

	/* Both endpoint-dependent: refused without the flag ... */
	me.nat = P2P_NAT_ENDPOINT_DEPENDENT;
	add_cand(&q, v4(203, 0, 113, 5, 4242));
	expect_refusal(t, &lo, &q, &me, P2P_PUNCH_R_BOTH_DEPENDENT);
	/* ... dialled outright with it (a port mapping of its own). */
	q.nonce = 10;
	q.flags = P2P_PUNCH_F_DIALABLE;
	p2p_psess_on_sig(t, 2000, &lo, &q, &me);
	drain(t, 2000);
	cr_assert_eq(first(P2P_PSESS_CONNECT)->ttl, 0, "a plain SYN");
	cr_assert_eq(first(P2P_PSESS_CONNECT)->addr.port, 4242);
	cr_assert_eq(first(P2P_PSESS_SEND)->sig.flags, 0, "we prime");
	p2p_psess_free(t);
}

Test(psess, dialable_requester_says_so)
{
	struct p2p_psess_local me = facts();
	struct p2p_psess_table *t = p2p_psess_new(&lo);

	me.dialable = true;
	cr_assert_eq(p2p_psess_start(t, 1000, &hi, "ctx", 77, &me), 0);
	drain(t, 1000);
	cr_assert_eq(first(P2P_PSESS_SEND)->sig.flags, P2P_PUNCH_F_DIALABLE);
	p2p_psess_free(t);
}
