/* Hole punching core: prediction, the signed codec, the schedule. */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "nat/punch.h"
#include "proto/error.h"

static struct p2p_addr v4(int a, int b, int c, int d, uint16_t port)
{
	struct p2p_addr x = {.family = 4, .port = port};
	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

static bool has(const struct p2p_addr *c, size_t n, struct p2p_addr a)
{
	for (size_t i = 0; i < n; i++)
		if (p2p_addr_equal(&c[i], &a))
			return true;
	return false;
}

/* ---- prediction ---- */

static struct p2p_addr ext[1], lan[2];

static struct p2p_punch_local local(enum p2p_nat_type t, uint16_t mapped)
{
	struct p2p_punch_local in = {.type = t, .listen_port = 4242};

	ext[0] = v4(198, 19, 1, 2, 5555); /* the port of the latest link */
	lan[0] = v4(10, 1, 0, 10, 0);
	lan[1] = v4(10, 1, 0, 10, 0); /* a duplicate: offered once */
	in.external = ext;
	in.nexternal = 1;
	in.lan = lan;
	in.nlan = 2;
	if (mapped)
		in.mapped = v4(198, 19, 1, 2, mapped);
	return in;
}

Test(predict, port_preserving_offers_listen_port_and_lan)
{
	struct p2p_punch_local in = local(P2P_NAT_PORT_PRESERVING, 4242);
	struct p2p_addr c[8];
	size_t n = p2p_punch_predict(&in, c, 8);

	cr_assert_eq(n, 2);
	cr_assert(p2p_addr_equal(&c[0], &(struct p2p_addr){0}) == false);
	cr_assert(has(c, n, v4(198, 19, 1, 2, 4242)));
	cr_assert(has(c, n, v4(10, 1, 0, 10, 4242)));
	cr_assert(!has(c, n, v4(198, 19, 1, 2, 5555)));
}

Test(predict, port_preserving_without_mapping_uses_external_ip)
{
	struct p2p_punch_local in = local(P2P_NAT_PORT_PRESERVING, 0);
	struct p2p_addr c[8];
	size_t n = p2p_punch_predict(&in, c, 8);

	cr_assert_eq(n, 2);
	cr_assert(p2p_addr_equal(
	    &c[0], &(struct p2p_addr){
		       .family = 4, .port = 4242, .ip = {198, 19, 1, 2}}));
}

Test(predict, endpoint_independent_offers_the_mapped_port)
{
	/* The lab's ei NAT maps 4242 to 4242 ^ 0x4000 = 20626. */
	struct p2p_punch_local in =
	    local(P2P_NAT_ENDPOINT_INDEPENDENT, 4242 ^ 0x4000);
	struct p2p_addr c[8];
	size_t n = p2p_punch_predict(&in, c, 8);

	cr_assert_eq(n, 2);
	cr_assert(p2p_addr_equal(
	    &c[0], &(struct p2p_addr){
		       .family = 4, .port = 20626, .ip = {198, 19, 1, 2}}));
	cr_assert(!has(c, n, v4(198, 19, 1, 2, 4242)));
	cr_assert(has(c, n, v4(10, 1, 0, 10, 4242)));
	/* Without an observation of the listen port: nothing external. */
	in.mapped.family = 0;
	n = p2p_punch_predict(&in, c, 8);
	cr_assert_eq(n, 1);
	cr_assert(has(c, n, v4(10, 1, 0, 10, 4242)));
}

Test(predict, endpoint_dependent_predicts_nothing_external)
{
	struct p2p_punch_local in = local(P2P_NAT_ENDPOINT_DEPENDENT, 31337);
	struct p2p_addr c[8];
	size_t n = p2p_punch_predict(&in, c, 8);

	cr_assert_eq(n, 1);
	cr_assert(has(c, n, v4(10, 1, 0, 10, 4242)));
	cr_assert(!p2p_punch_predictable(P2P_NAT_ENDPOINT_DEPENDENT));
	cr_assert(p2p_punch_predictable(P2P_NAT_ENDPOINT_INDEPENDENT));
	cr_assert(p2p_punch_predictable(P2P_NAT_PORT_PRESERVING));
}

Test(predict, respects_max)
{
	struct p2p_punch_local in = local(P2P_NAT_PORT_PRESERVING, 4242);
	struct p2p_addr c[1];

	cr_assert_eq(p2p_punch_predict(&in, c, 1), 1);
	cr_assert(p2p_addr_equal(
	    &c[0], &(struct p2p_addr){
		       .family = 4, .port = 4242, .ip = {198, 19, 1, 2}}));
}

Test(predict, mapped_port_from_observations)
{
	struct p2p_nat *nat = p2p_nat_new();
	struct p2p_addr l1 = v4(10, 1, 0, 10, 4242), l2 = v4(10, 1, 0, 10, 999);
	struct p2p_addr o1 = v4(198, 19, 1, 2, 20626),
			o2 = v4(198, 19, 1, 2, 7);
	struct p2p_peerid a, b;
	struct p2p_addr m;

	memset(a.b, 1, sizeof(a.b));
	memset(b.b, 2, sizeof(b.b));
	cr_assert_eq(p2p_nat_mapped(nat, 4, 4242, &m), -ENOENT);
	/* one network (the bootstrap's /24) is believed while alone */
	struct p2p_addr at1 = v4(198, 18, 0, 1, 4242),
			at2 = v4(198, 18, 0, 2, 1);
	cr_assert_eq(p2p_nat_observe(nat, 1, &l1, &o1, &a, &at1), 0);
	cr_assert_eq(p2p_nat_observe(nat, 2, &l2, &o2, &b, &at2), 0);
	cr_assert_eq(p2p_nat_mapped(nat, 4, 4242, &m), 0);
	cr_assert(p2p_addr_equal(&m, &o1));
	cr_assert_eq(p2p_nat_mapped(nat, 6, 4242, &m), -ENOENT);
	p2p_nat_free(nat);
}

/* ---- codec ---- */

static struct p2p_identity alice, bob, eve;
static uint8_t buf[P2P_PUNCH_PAYLOAD_MAX + 16];

static void ids(void)
{
	uint8_t seed[32];
	memset(seed, 1, 32);
	p2p_identity_from_seed(&alice, seed);
	memset(seed, 2, 32);
	p2p_identity_from_seed(&bob, seed);
	memset(seed, 3, 32);
	p2p_identity_from_seed(&eve, seed);
}

static struct p2p_punch_sig request(void)
{
	struct p2p_punch_sig s = {.type = P2P_PUNCH_REQUEST,
				  .nonce = 0x0102030405060708ull,
				  .time_ms = 1764640000123ull,
				  .nat = P2P_NAT_ENDPOINT_INDEPENDENT,
				  .flags = P2P_PUNCH_F_DIALABLE,
				  .ncand = 2};
	s.cand[0] = v4(198, 19, 1, 2, 20626);
	s.seen = v4(198, 19, 1, 2, 20626);
	s.cand[1].family = 6;
	s.cand[1].ip[0] = 0xfd;
	s.cand[1].ip[15] = 1;
	s.cand[1].port = 4242;
	return s;
}

static size_t encode(const struct p2p_punch_sig *s)
{
	size_t n = 0;
	cr_assert_eq(p2p_punch_encode(s, &alice, &bob.id, buf, sizeof(buf), &n),
		     0);
	return n;
}

TestSuite(codec, .init = ids);

Test(codec, roundtrip)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	cr_assert_eq(n, P2P_PUNCH_PAYLOAD_MIN + 2 * P2P_PUNCH_CAND_LEN);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0);
	cr_assert_eq(d.type, P2P_PUNCH_REQUEST);
	cr_assert_eq(d.nonce, s.nonce);
	cr_assert_eq(d.time_ms, s.time_ms);
	cr_assert(p2p_addr_equal(&d.seen, &s.seen));
	cr_assert_eq(d.nat, P2P_NAT_ENDPOINT_INDEPENDENT);
	cr_assert_eq(d.flags, P2P_PUNCH_F_DIALABLE);
	cr_assert_eq(d.ncand, 2);
	cr_assert(p2p_addr_equal(&d.cand[0], &s.cand[0]));
	cr_assert(p2p_addr_equal(&d.cand[1], &s.cand[1]));
}

Test(codec, fail_with_reason_and_no_candidates)
{
	struct p2p_punch_sig s = {.type = P2P_PUNCH_FAIL,
				  .nonce = 9,
				  .nat = P2P_NAT_ENDPOINT_DEPENDENT,
				  .reason = P2P_PUNCH_R_BOTH_DEPENDENT},
			     d;
	size_t n = encode(&s);

	cr_assert_eq(n, P2P_PUNCH_PAYLOAD_MIN);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0);
	cr_assert_eq(d.type, P2P_PUNCH_FAIL);
	cr_assert_eq(d.reason, P2P_PUNCH_R_BOTH_DEPENDENT);
	cr_assert_eq(d.ncand, 0);
	cr_assert_eq(d.seen.family, 0);
	cr_assert(
	    strstr(p2p_punch_reason_text(d.reason), "endpoint-dependent"));
}

/* Version 2 (issue 9): the time and the seen address are signed like the
 * rest, and a seen address must be well formed or absent (all zero). */
Test(codec, time_and_seen_are_signed_and_checked)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	cr_assert_eq(buf[0], 2);
	buf[17] ^= 1; /* the lowest byte of time_ms */
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EBADMSG);
	buf[17] ^= 1;
	buf[P2P_PUNCH_SEEN_OFF + 4] ^= 1; /* the seen address's last byte */
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EBADMSG);
	/* Signed, but malformed seen fields. */
	s.seen.ip[9] = 1; /* past an IPv4 address: zeroed by the encoder */
	n = encode(&s);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0);
	s.seen.port = 0;
	n = encode(&s);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), -EPROTO);
	s.seen.family = 7;
	cr_assert_eq(
	    p2p_punch_encode(&s, &alice, &bob.id, buf, sizeof(buf), &n),
	    -EINVAL);
	/* Absent: family 0, every byte zero. */
	s.seen = (struct p2p_addr){0};
	n = encode(&s);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0);
	cr_assert_eq(d.seen.family, 0);
}

Test(codec, truncated_at_every_length)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	for (size_t k = 0; k < n; k++)
		cr_assert_lt(p2p_punch_decode(&d, buf, k, &alice.id, &bob.id),
			     0, "prefix of %zu bytes accepted", k);
	/* Trailing bytes too. */
	buf[n] = 0;
	cr_assert_eq(p2p_punch_decode(&d, buf, n + 1, &alice.id, &bob.id),
		     -EPROTO);
}

Test(codec, oversize_count)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	buf[P2P_PUNCH_NCAND_OFF] = P2P_PUNCH_CAND_MAX + 1;
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), -EPROTO);
	buf[P2P_PUNCH_NCAND_OFF] = 255;
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), -EPROTO);
	s.ncand = P2P_PUNCH_CAND_MAX + 1;
	cr_assert_eq(
	    p2p_punch_encode(&s, &alice, &bob.id, buf, sizeof(buf), &n),
	    -EINVAL);
	s.ncand = 2;
	cr_assert_eq(p2p_punch_encode(&s, &alice, &bob.id, buf, 20, &n),
		     -EMSGSIZE);
}

Test(codec, other_version)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	buf[0] = 1; /* before the time and nonce checks of issue 9 */
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EPROTONOSUPPORT);
	buf[0] = 3;
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EPROTONOSUPPORT);
}

Test(codec, every_bit_flip_is_rejected)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1 << bit);
			cr_assert_lt(
			    p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0,
			    "flip of byte %zu bit %d accepted", i, bit);
			buf[i] ^= (uint8_t)(1 << bit);
		}
	}
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0);
}

Test(codec, bad_signature)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	buf[n - 1] ^= 1;
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EBADMSG);
	buf[n - 1] ^= 1;
	/* Altered in transit (an offset changed by a relay node). */
	buf[21] ^= 1;
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EBADMSG);
}

Test(codec, wrong_key_for_src)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	/* Signed by alice but delivered as if from eve. */
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &eve.id, &bob.id),
		     -EKEYREJECTED);
	/* Eve signs with her key and claims alice's ID. */
	cr_assert_eq(p2p_punch_encode(&s, &eve, &bob.id, buf, sizeof(buf), &n),
		     0);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id),
		     -EKEYREJECTED);
}

Test(codec, meant_for_another_node)
{
	struct p2p_punch_sig s = request(), d;
	size_t n = encode(&s);

	/* Signed for bob, replayed to eve: the signature covers dst. */
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &eve.id),
		     -EBADMSG);
}

Test(codec, bad_fields)
{
	struct p2p_punch_sig s = request(), d;
	size_t n;

	s.cand[0].family = 5;
	cr_assert_eq(
	    p2p_punch_encode(&s, &alice, &bob.id, buf, sizeof(buf), &n),
	    -EINVAL);
	s = request();
	s.reason = P2P_PUNCH_R_MAX;
	cr_assert_eq(
	    p2p_punch_encode(&s, &alice, &bob.id, buf, sizeof(buf), &n),
	    -EINVAL);
	s = request();
	s.type = 4;
	cr_assert_eq(
	    p2p_punch_encode(&s, &alice, &bob.id, buf, sizeof(buf), &n),
	    -EINVAL);
	/* Signed but malformed: a v4 candidate with bytes past its 4. */
	s = request();
	s.cand[0].ip[7] = 1;
	n = encode(&s);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), 0);
	cr_assert_eq(d.cand[0].ip[7], 0); /* encoder zeroes them */
	s = request();
	s.cand[0].port = 0;
	n = encode(&s);
	cr_assert_eq(p2p_punch_decode(&d, buf, n, &alice.id, &bob.id), -EPROTO);
}

/* ---- scheduling ---- */

static struct p2p_punch P;

static size_t drain(struct p2p_punch_action *out, size_t max)
{
	size_t n = 0;
	struct p2p_punch_action a;

	while (p2p_punch_poll(&P, &a))
		if (n < max)
			out[n++] = a;
	return n;
}

static void two_as(uint64_t start, bool primer)
{
	struct p2p_addr c[2] = {v4(198, 19, 2, 2, 4242),
				v4(10, 2, 0, 10, 4242)};
	p2p_punch_init(&P, c, 2, start, primer);
}

static void two(uint64_t start)
{
	two_as(start, false);
}

Test(sched, primer_primes_all_at_start_and_holds)
{
	struct p2p_punch_action a[8];

	two_as(1000, true);
	cr_assert_eq(p2p_punch_next_timer(&P), 1000);
	p2p_punch_tick(&P, 999);
	cr_assert_eq(drain(a, 8), 0);
	p2p_punch_tick(&P, 1000);
	cr_assert_eq(drain(a, 8), 2);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(a[i].type, P2P_PUNCH_CONNECT);
		cr_assert_eq(a[i].idx, (size_t)i);
		cr_assert_eq(a[i].addr.port, 4242);
		cr_assert_eq(a[i].ttl, P2P_PUNCH_PRIME_TTL);
	}
	cr_assert_eq(p2p_punch_next_timer(&P), 1000 + P2P_PUNCH_PRIME_HOLD_MS);
	/* A prime that dies (a reset after its retransmission): again,
	 * one hop further (a second NAT), then back. */
	p2p_punch_conn_failed(&P, 1200, 1, true);
	p2p_punch_tick(&P, 1200 + P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].idx, 1);
	cr_assert_eq(a[0].ttl, P2P_PUNCH_PRIME_TTL_MAX);
	p2p_punch_conn_failed(&P, 1400, 1, true);
	p2p_punch_tick(&P, 1400 + P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].ttl, P2P_PUNCH_PRIME_TTL);
}

/* A measured NAT depth: every prime gets that TTL, retries too. */
Test(sched, primer_uses_the_measured_depth)
{
	struct p2p_punch_action a[8];

	two_as(1000, true);
	P.prime_ttl = 5;
	p2p_punch_tick(&P, 1000);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].ttl, 5);
	cr_assert_eq(a[1].ttl, 5);
	p2p_punch_conn_failed(&P, 1200, 1, true);
	p2p_punch_tick(&P, 1200 + P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].ttl, 5);
}

Test(sched, sender_starts_at_once_with_full_ttl)
{
	struct p2p_punch_action a[8];

	two(1000);
	cr_assert_eq(p2p_punch_next_timer(&P), 1000);
	p2p_punch_tick(&P, 999);
	cr_assert_eq(drain(a, 8), 0);
	p2p_punch_tick(&P, 1000);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].type, P2P_PUNCH_CONNECT);
	cr_assert_eq(a[0].ttl, 0);
	cr_assert_eq(a[1].ttl, 0);
	cr_assert_eq(p2p_punch_next_timer(&P), 1000 + P2P_PUNCH_ATTEMPT_MS);
}

Test(sched, retries_through_resets)
{
	struct p2p_punch_action a[8];

	two_as(0, true);
	p2p_punch_tick(&P, 0);
	drain(a, 8);
	p2p_punch_conn_failed(&P, 20, 0, true);
	cr_assert_eq(p2p_punch_next_timer(&P), 20 + P2P_PUNCH_RETRY_MS);
	p2p_punch_tick(&P, 20 + P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].type, P2P_PUNCH_CONNECT);
	cr_assert_eq(a[0].idx, 0);
	cr_assert_eq(P.refused, 1);
	cr_assert_eq(P.attempts, 3);
}

Test(sched, unanswered_syn_aborted_and_retried)
{
	struct p2p_punch_action a[8];
	uint64_t t = 0;

	two(0);
	p2p_punch_tick(&P, t);
	cr_assert_eq(drain(a, 8), 2);
	t += P2P_PUNCH_ATTEMPT_MS;
	cr_assert_eq(p2p_punch_next_timer(&P), t);
	p2p_punch_tick(&P, t);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].type, P2P_PUNCH_ABORT);
	cr_assert_eq(a[1].type, P2P_PUNCH_ABORT);
	cr_assert_eq(P.timeouts, 2);
	t += P2P_PUNCH_RETRY_MS;
	p2p_punch_tick(&P, t);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].type, P2P_PUNCH_CONNECT);
}

Test(sched, bounded_total_then_fails)
{
	struct p2p_punch_action a[8];
	uint64_t now = 500, t;
	size_t connects = 0;
	bool failed = false;

	two_as(500, true);
	/* Every attempt refused at once: retried until the end, no longer. */
	for (int guard = 0; guard < 10000 && !failed; guard++) {
		t = p2p_punch_next_timer(&P);
		cr_assert_neq(t, UINT64_MAX);
		cr_assert_geq(t, now);
		now = t;
		p2p_punch_tick(&P, now);
		size_t n = drain(a, 8);
		for (size_t i = 0; i < n; i++) {
			if (a[i].type == P2P_PUNCH_CONNECT) {
				connects++;
				p2p_punch_conn_failed(&P, now, a[i].idx, true);
			} else if (a[i].type == P2P_PUNCH_FAILED) {
				failed = true;
				cr_assert_eq(a[i].reason, P2P_PUNCH_R_TIMEOUT);
			}
		}
	}
	cr_assert(failed);
	cr_assert_eq(now, 500 + P2P_PUNCH_TOTAL_MS);
	cr_assert_gt(connects, 20);
	cr_assert_eq(p2p_punch_next_timer(&P), UINT64_MAX);
	p2p_punch_tick(&P, now + 1);
	cr_assert_eq(drain(a, 8), 0);
}

Test(sched, success_aborts_the_others)
{
	struct p2p_punch_action a[8];

	two_as(0, true);
	p2p_punch_tick(&P, 0);
	drain(a, 8);
	p2p_punch_connected(&P, 30, 1);
	/* A verifying attempt is not timed out by the attempt timer. */
	p2p_punch_tick(&P, P2P_PUNCH_PRIME_HOLD_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].idx, 0);
	p2p_punch_verified(&P, P2P_PUNCH_PRIME_HOLD_MS + 5, 1);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].type, P2P_PUNCH_SUCCESS);
	cr_assert_eq(a[0].idx, 1);
	cr_assert_eq(p2p_punch_next_timer(&P), UINT64_MAX);
}

Test(sched, success_aborts_connecting)
{
	struct p2p_punch_action a[8];

	two_as(0, true);
	p2p_punch_tick(&P, 0);
	drain(a, 8);
	p2p_punch_connected(&P, 30, 0);
	p2p_punch_verified(&P, 40, 0);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].type, P2P_PUNCH_ABORT);
	cr_assert_eq(a[0].idx, 1);
	cr_assert_eq(a[1].type, P2P_PUNCH_SUCCESS);
}

Test(sched, handshake_failure_retries_and_peer_link_succeeds)
{
	struct p2p_punch_action a[8];

	two_as(0, true);
	p2p_punch_tick(&P, 0);
	drain(a, 8);
	p2p_punch_connected(&P, 10, 1);
	p2p_punch_conn_failed(&P, 20, 1, false); /* not the peer answered */
	p2p_punch_tick(&P, 20 + P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].type, P2P_PUNCH_CONNECT);
	/* The peer's SYN reached our listener instead. */
	p2p_punch_verified(&P, 300, SIZE_MAX);
	cr_assert_eq(drain(a, 8), 3);
	cr_assert_eq(a[2].type, P2P_PUNCH_SUCCESS);
	cr_assert_eq(a[2].idx, SIZE_MAX);
}

Test(sched, no_candidates_waits_for_the_peer)
{
	struct p2p_punch_action a[8];

	p2p_punch_init(&P, NULL, 0, 100, false);
	cr_assert_eq(p2p_punch_next_timer(&P), 100 + P2P_PUNCH_TOTAL_MS);
	p2p_punch_tick(&P, 100 + P2P_PUNCH_TOTAL_MS);
	cr_assert_eq(drain(a, 8), 1);
	cr_assert_eq(a[0].type, P2P_PUNCH_FAILED);
}

/* ---- issue 11: IPv6 candidates and the happy-eyeballs head start ---- */

static struct p2p_addr v6doc(uint8_t last, uint16_t port)
{
	struct p2p_addr x = {
	    .family = 6, .port = port, .ip = {0x20, 0x01, 0x0d, 0xb8}};
	x.ip[15] = last;
	return x;
}

Test(predict, global_v6_offered_first_with_listen6)
{
	struct p2p_punch_local in = local(P2P_NAT_ENDPOINT_DEPENDENT, 0);
	struct p2p_addr g[3] = {v6doc(0x10, 0),
				v6doc(0x10, 0),
				{.family = 6, .ip = {0xfe, 0x80, [15] = 1}}};
	struct p2p_addr c[8];
	size_t n;

	in.global6 = g;
	in.nglobal6 = 3;
	in.listen6 = 4343;
	n = p2p_punch_predict(&in, c, 8);
	/* The global one (once, with the IPv6 port), then the LAN one; the
	 * link-local address is never offered. */
	cr_assert_eq(n, 2);
	struct p2p_addr want = v6doc(0x10, 4343);
	cr_assert(p2p_addr_equal(&c[0], &want));
	cr_assert(has(c, n, v4(10, 1, 0, 10, 4242)));
	/* Not listening on IPv6: no IPv6 candidate. */
	in.listen6 = 0;
	n = p2p_punch_predict(&in, c, 8);
	cr_assert_eq(n, 1);
	cr_assert(!p2p_punch_has_v6(c, n));
}

/* The CONNECTs the schedule hands out at now. */
static size_t connects_at(struct p2p_punch *p, uint64_t now,
			  struct p2p_punch_action *out, size_t max)
{
	struct p2p_punch_action a;
	size_t k = 0;

	p2p_punch_tick(p, now);
	while (p2p_punch_poll(p, &a))
		if (a.type == P2P_PUNCH_CONNECT && k < max)
			out[k++] = a;
	return k;
}

Test(schedule, v6_first_v4_after_the_head_start)
{
	struct p2p_addr cand[3] = {v4(198, 19, 1, 2, 4242), v6doc(0x10, 4242),
				   v4(10, 1, 0, 10, 4242)};
	struct p2p_punch_action got[4];
	struct p2p_punch p;

	for (int primer = 0; primer < 2; primer++) {
		p2p_punch_init(&p, cand, 3, 1000, primer);
		cr_assert_eq(connects_at(&p, 1000, got, 4), 1);
		cr_assert_eq(got[0].idx, 1);
		cr_assert_eq(got[0].addr.family, 6);
		cr_assert_eq(p2p_punch_next_timer(&p),
			     1000 + P2P_PUNCH_V4_HEADSTART_MS);
		cr_assert_eq(connects_at(&p,
					 1000 + P2P_PUNCH_V4_HEADSTART_MS - 1,
					 got, 4),
			     0);
		cr_assert_eq(
		    connects_at(&p, 1000 + P2P_PUNCH_V4_HEADSTART_MS, got, 4),
		    2);
		cr_assert_eq(got[0].addr.family, 4);
		cr_assert_eq(got[1].addr.family, 4);
	}
}

Test(schedule, v4_alone_starts_at_once_and_the_first_link_wins)
{
	struct p2p_addr cand[2] = {v4(198, 19, 1, 2, 4242), v6doc(0x10, 4242)};
	struct p2p_punch_action got[4], a;
	struct p2p_punch p;
	size_t aborts = 0, wins = 0;

	/* Without IPv6 nothing waits. */
	p2p_punch_init(&p, cand, 1, 1000, false);
	cr_assert_eq(connects_at(&p, 1000, got, 4), 1);
	/* Both families out; IPv4 verifies first: it wins, IPv6 is aborted
	 * (the race is real: the head start is no veto). */
	p2p_punch_init(&p, cand, 2, 1000, false);
	connects_at(&p, 1000, got, 4);
	connects_at(&p, 1000 + P2P_PUNCH_V4_HEADSTART_MS, got, 4);
	p2p_punch_connected(&p, 1150, 0);
	p2p_punch_verified(&p, 1160, 0);
	while (p2p_punch_poll(&p, &a)) {
		if (a.type == P2P_PUNCH_ABORT) {
			cr_assert_eq(a.idx, 1);
			aborts++;
		}
		if (a.type == P2P_PUNCH_SUCCESS) {
			cr_assert_eq(a.idx, 0);
			wins++;
		}
	}
	cr_assert_eq(aborts, 1);
	cr_assert_eq(wins, 1);
}

Test(sched, held_four_tuple_waits_for_the_hold_not_the_retry)
{
	struct p2p_punch_action a[8];

	two_as(0, true);
	p2p_punch_tick(&P, 0);
	cr_assert_eq(drain(a, 8), 2);
	/* connect() found the four-tuple of candidate 0 in use: a retry
	 * after P2P_PUNCH_RETRY_MS would meet the same holder. */
	p2p_punch_held(&P, 0, 0);
	cr_assert_eq(P.held, 1);
	cr_assert_eq(P.c[0].state, P2P_PUNCH_C_CONNECTING);
	cr_assert_eq(p2p_punch_next_timer(&P), P2P_PUNCH_PRIME_HOLD_MS);
	p2p_punch_tick(&P, P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 0);
	/* The hold over: tried again like an unanswered prime. */
	p2p_punch_tick(&P, P2P_PUNCH_PRIME_HOLD_MS);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].type, P2P_PUNCH_ABORT);
	p2p_punch_tick(&P, P2P_PUNCH_PRIME_HOLD_MS + P2P_PUNCH_RETRY_MS);
	cr_assert_eq(drain(a, 8), 2);
	cr_assert_eq(a[0].type, P2P_PUNCH_CONNECT);
	cr_assert_eq(a[0].idx, 0);
	/* Only an attempt under way can be held. */
	p2p_punch_held(&P, 0, 5);
	cr_assert_eq(P.held, 1);
}
