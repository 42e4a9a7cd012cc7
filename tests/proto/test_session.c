/* The handshake and records: happy path and every way to break them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto/frame.h"
#include "proto/session.h"

/*
 * Some tests expect a fault on guarded memory; ASan would turn it into a
 * report and exit(1) instead of the signal criterion waits for.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_segv=0:handle_sigbus=0";
}

struct pair {
	struct p2p_identity a, b; /* a initiates, b responds */
	struct p2p_session *i, *r;
	uint8_t f1[P2P_HS_MAX], f2[P2P_HS_MAX], f3[P2P_HS_MAX];
	size_t n1, n2, n3;
};

static void identities(struct pair *p)
{
	uint8_t seed[32];

	memset(seed, 0xa1, sizeof(seed));
	p2p_identity_from_seed(&p->a, seed);
	memset(seed, 0xb2, sizeof(seed));
	p2p_identity_from_seed(&p->b, seed);
}

static void new_sessions(struct pair *p, const struct p2p_peerid *expect)
{
	p->i = p2p_session_new(&p->a, true, expect);
	p->r = p2p_session_new(&p->b, false, NULL);
	cr_assert_not_null(p->i);
	cr_assert_not_null(p->r);
}

static void free_sessions(struct pair *p)
{
	p2p_session_free(p->i);
	p2p_session_free(p->r);
	p->i = p->r = NULL;
}

/* Run the three steps, asserting each succeeds; frames kept in p. */
static void handshake(struct pair *p)
{
	cr_assert_eq(p2p_session_start(p->i, p->f1, sizeof(p->f1), &p->n1), 0);
	cr_assert_eq(p2p_session_handshake(p->r, p->f1 + 4, p->n1 - 4, p->f2,
					   sizeof(p->f2), &p->n2),
		     0);
	cr_assert_gt(p->n2, 0);
	cr_assert_eq(p2p_session_handshake(p->i, p->f2 + 4, p->n2 - 4, p->f3,
					   sizeof(p->f3), &p->n3),
		     1);
	size_t n;
	uint8_t none[P2P_HS_MAX];
	cr_assert_eq(p2p_session_handshake(p->r, p->f3 + 4, p->n3 - 4, none,
					   sizeof(none), &n),
		     1);
	cr_assert_eq(n, 0);
}

static void established_pair(struct pair *p)
{
	identities(p);
	new_sessions(p, &p->b.id);
	handshake(p);
}

static uint32_t hdr_len(const uint8_t *f)
{
	return (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 |
	       (uint32_t)f[2] << 8 | f[3];
}

Test(session, handshake_and_records)
{
	struct pair p;
	uint8_t rec[100], plain[100];
	size_t n, m;

	established_pair(&p);
	cr_assert_eq(p.n1, 4 + 38);
	cr_assert_eq(p.n2, 4 + 145);
	cr_assert_eq(p.n3, 4 + 112);
	cr_assert_eq(hdr_len(p.f1), p.n1 - 4);
	cr_assert_eq(hdr_len(p.f2), p.n2 - 4);
	cr_assert_eq(hdr_len(p.f3), p.n3 - 4);
	cr_assert(p2p_session_established(p.i));
	cr_assert(p2p_session_established(p.r));
	cr_assert(p2p_peerid_equal(p2p_session_peer(p.i), &p.b.id));
	cr_assert(p2p_peerid_equal(p2p_session_peer(p.r), &p.a.id));
	cr_assert_eq(memcmp(p2p_session_peer_pk(p.r), p.a.pk, 32), 0);
	cr_assert_eq(memcmp(p2p_session_peer_pk(p.i), p.b.pk, 32), 0);

	for (int k = 0; k < 5; k++) {
		const struct p2p_session *from = k % 2 ? p.r : p.i;
		struct p2p_session *tx = (struct p2p_session *)from;
		struct p2p_session *rx = k % 2 ? p.i : p.r;
		char msg[32];

		snprintf(msg, sizeof(msg), "hello %d", k);
		cr_assert_eq(p2p_session_seal(tx, (uint8_t *)msg, strlen(msg),
					      rec, sizeof(rec), &n),
			     0);
		cr_assert_eq(n, strlen(msg) + P2P_RECORD_OVERHEAD);
		cr_assert_eq(hdr_len(rec), n - 4);
		cr_assert_eq(p2p_session_open(rx, rec + 4, n - 4, plain,
					      sizeof(plain), &m),
			     0);
		cr_assert_eq(m, strlen(msg));
		cr_assert_eq(memcmp(plain, msg, m), 0);
	}
	free_sessions(&p);
}

Test(session, any_peer_when_no_expectation)
{
	struct pair p;

	identities(&p);
	new_sessions(&p, NULL);
	handshake(&p);
	cr_assert(p2p_peerid_equal(p2p_session_peer(p.i), &p.b.id));
	free_sessions(&p);
}

Test(session, wrong_expected_id_rejected_before_frame3)
{
	struct pair p;
	struct p2p_peerid wrong;
	size_t n;

	identities(&p);
	wrong = p.b.id;
	wrong.b[31] ^= 1;
	new_sessions(&p, &wrong);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2,
					   sizeof(p.f2), &p.n2),
		     0);
	p.n3 = 999;
	cr_assert_eq(p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, p.f3,
					   sizeof(p.f3), &p.n3),
		     -EKEYREJECTED);
	cr_assert_eq(p.n3, 0, "initiator revealed itself to the wrong peer");
	cr_assert_not(p2p_session_established(p.i));
	cr_assert_null(p2p_session_peer(p.i));
	cr_assert_eq(p2p_session_seal(p.i, (const uint8_t *)"x", 1, p.f3,
				      sizeof(p.f3), &n),
		     -EPIPE);
	free_sessions(&p);
}

/* Run a handshake where frame `which` (1..3) has byte pos xor'ed by mask. */
static void tampered(int which, size_t pos, uint8_t mask)
{
	struct pair p;
	uint8_t none[P2P_HS_MAX];
	size_t n;
	int rc;

	identities(&p);
	new_sessions(&p, &p.b.id);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	if (which == 1)
		p.f1[4 + pos] ^= mask;
	rc = p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2, sizeof(p.f2),
				   &p.n2);
	if (rc < 0) {
		cr_assert_eq(which, 1);
		cr_assert_eq(p.n2, 0, "garbage got a reply");
		goto out;
	}
	if (which == 2)
		p.f2[4 + pos] ^= mask;
	rc = p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, p.f3, sizeof(p.f3),
				   &p.n3);
	if (rc < 0) {
		cr_assert(which == 1 || which == 2);
		cr_assert_eq(p.n3, 0);
		goto out;
	}
	cr_assert_eq(which, 3, "frame %d byte %zu accepted", which, pos);
	p.f3[4 + pos] ^= mask;
	rc = p2p_session_handshake(p.r, p.f3 + 4, p.n3 - 4, none, sizeof(none),
				   &n);
	cr_assert_eq(rc, -EBADMSG, "frame 3 byte %zu accepted", pos);
	cr_assert_not(p2p_session_established(p.r));
out:
	free_sessions(&p);
}

Test(session, flipped_bit_in_every_handshake_byte_fails)
{
	static const uint8_t masks[] = {0x01, 0x80, 0x10};
	static const size_t lens[] = {38, 145, 112};

	for (int which = 1; which <= 3; which++)
		for (size_t pos = 0; pos < lens[which - 1]; pos++)
			for (size_t k = 0; k < sizeof(masks); k++)
				tampered(which, pos, masks[k]);
}

Test(session, truncated_handshake_frames_fail)
{
	static const size_t lens[] = {38, 145, 112};

	for (int which = 1; which <= 3; which++) {
		for (size_t cut = 0; cut < lens[which - 1]; cut++) {
			struct pair p;
			uint8_t none[P2P_HS_MAX];
			size_t n = 7;
			struct p2p_session *s;
			const uint8_t *f;

			/* Fresh sessions advanced to the right step. */
			identities(&p);
			new_sessions(&p, NULL);
			cr_assert_eq(
			    p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1),
			    0);
			if (which == 1) {
				s = p.r;
				f = p.f1;
			} else if (which == 2) {
				cr_assert_eq(p2p_session_handshake(
						 p.r, p.f1 + 4, p.n1 - 4, p.f2,
						 sizeof(p.f2), &p.n2),
					     0);
				s = p.i;
				f = p.f2;
			} else {
				cr_assert_eq(p2p_session_handshake(
						 p.r, p.f1 + 4, p.n1 - 4, p.f2,
						 sizeof(p.f2), &p.n2),
					     0);
				cr_assert_eq(p2p_session_handshake(
						 p.i, p.f2 + 4, p.n2 - 4, p.f3,
						 sizeof(p.f3), &p.n3),
					     1);
				s = p.r;
				f = p.f3;
			}
			cr_assert_eq(p2p_session_handshake(s, f + 4, cut, none,
							   sizeof(none), &n),
				     -EPROTO, "frame %d cut %zu", which, cut);
			cr_assert_eq(n, 0);
			free_sessions(&p);
		}
	}
}

Test(session, oversize_handshake_frame_fails)
{
	struct pair p;
	uint8_t big[200] = {0}, out[P2P_HS_MAX];
	size_t n;

	identities(&p);
	new_sessions(&p, NULL);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	memcpy(big, p.f1 + 4, p.n1 - 4);
	cr_assert_eq(
	    p2p_session_handshake(p.r, big, p.n1 - 4 + 1, out, sizeof(out), &n),
	    -EPROTO);
	cr_assert_eq(n, 0);
	free_sessions(&p);
}

Test(session, garbage_gets_no_reply)
{
	struct pair p;
	uint8_t junk[38], out[P2P_HS_MAX];
	size_t n = 5;

	identities(&p);
	new_sessions(&p, NULL);
	randombytes_buf(junk, sizeof(junk));
	junk[0] = 'x';
	cr_assert_eq(p2p_session_handshake(p.r, junk, sizeof(junk), out,
					   sizeof(out), &n),
		     -EPROTO);
	cr_assert_eq(n, 0);
	/* Dead now: even a good frame 1 gets nothing. */
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, out,
					   sizeof(out), &n),
		     -EPIPE);
	free_sessions(&p);
}

Test(session, low_order_ephemeral_rejected)
{
	struct pair p;
	uint8_t f1[38] = {'p', '2', 'p', 'd', P2P_HS_VERSION, P2P_SUITE_ALL},
		out[P2P_HS_MAX];
	size_t n = 5;

	identities(&p);
	new_sessions(&p, NULL);
	/* e_i = 0: X25519 with it gives all zeros, which libsodium refuses. */
	cr_assert_eq(
	    p2p_session_handshake(p.r, f1, sizeof(f1), out, sizeof(out), &n),
	    -EPROTO);
	cr_assert_eq(n, 0);
	free_sessions(&p);
}

Test(session, other_version_refused)
{
	struct pair p;
	uint8_t out[P2P_HS_MAX];
	size_t n;

	identities(&p);
	new_sessions(&p, NULL);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	p.f1[4 + 4] = P2P_HS_VERSION + 1;
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, out,
					   sizeof(out), &n),
		     -EPROTONOSUPPORT);
	free_sessions(&p);
}

Test(session, frame3_from_another_session_fails)
{
	struct pair p, q;
	uint8_t out[P2P_HS_MAX];
	size_t n;

	established_pair(&p);
	identities(&q);
	new_sessions(&q, NULL);
	cr_assert_eq(p2p_session_start(q.i, q.f1, sizeof(q.f1), &q.n1), 0);
	cr_assert_eq(p2p_session_handshake(q.r, q.f1 + 4, q.n1 - 4, q.f2,
					   sizeof(q.f2), &q.n2),
		     0);
	/* Same identities, but p's frame 3 belongs to p's transcript. */
	cr_assert_eq(p2p_session_handshake(q.r, p.f3 + 4, p.n3 - 4, out,
					   sizeof(out), &n),
		     -EBADMSG);
	free_sessions(&p);
	free_sessions(&q);
}

Test(session, misuse_is_refused)
{
	struct pair p;
	uint8_t out[P2P_HS_MAX];
	size_t n;

	identities(&p);
	new_sessions(&p, NULL);
	/* Responders do not start; initiators need start() first. */
	cr_assert_eq(p2p_session_start(p.r, out, sizeof(out), &n), -EINVAL);
	cr_assert_eq(p2p_session_handshake(p.i, out, 38, out, sizeof(out), &n),
		     -EPROTO);
	free_sessions(&p);

	new_sessions(&p, NULL);
	cr_assert_eq(p2p_session_seal(p.i, out, 1, out, sizeof(out), &n),
		     -EINVAL, "seal before the handshake");
	cr_assert_eq(p2p_session_start(p.i, out, 10, &n), -EINVAL);
	free_sessions(&p);

	established_pair(&p);
	cr_assert_eq(p2p_session_handshake(p.r, p.f3 + 4, p.n3 - 4, out,
					   sizeof(out), &n),
		     -EPROTO, "handshake frame after establishment");
	free_sessions(&p);
}

static size_t seal(struct p2p_session *s, const char *msg, uint8_t *out,
		   size_t cap)
{
	size_t n;

	cr_assert_eq(p2p_session_seal(s, (const uint8_t *)msg, strlen(msg), out,
				      cap, &n),
		     0);
	return n;
}

Test(session, flipped_bit_in_every_record_byte_fails)
{
	uint8_t rec[64], copy[64], plain[64];
	size_t n, m;

	for (size_t pos = 4;; pos++) {
		struct pair p;

		established_pair(&p);
		n = seal(p.i, "attack at dawn", rec, sizeof(rec));
		if (pos >= n) {
			free_sessions(&p);
			break;
		}
		memcpy(copy, rec, n);
		copy[pos] ^= (uint8_t)(1u << (pos % 8));
		cr_assert_eq(p2p_session_open(p.r, copy + 4, n - 4, plain,
					      sizeof(plain), &m),
			     -EBADMSG, "byte %zu", pos);
		/* Dead afterwards, even for the genuine record. */
		cr_assert_eq(p2p_session_open(p.r, rec + 4, n - 4, plain,
					      sizeof(plain), &m),
			     -EPIPE);
		free_sessions(&p);
	}
}

Test(session, replayed_record_fails)
{
	struct pair p;
	uint8_t rec[64], plain[64];
	size_t n, m;

	established_pair(&p);
	n = seal(p.i, "once", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, n - 4, plain, sizeof(plain), &m), 0);
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, n - 4, plain, sizeof(plain), &m),
	    -EBADMSG);
	free_sessions(&p);
}

Test(session, reordered_records_fail)
{
	struct pair p;
	uint8_t r1[64], r2[64], plain[64];
	size_t n1, n2, m;

	established_pair(&p);
	n1 = seal(p.i, "first", r1, sizeof(r1));
	n2 = seal(p.i, "second", r2, sizeof(r2));
	cr_assert_eq(
	    p2p_session_open(p.r, r2 + 4, n2 - 4, plain, sizeof(plain), &m),
	    -EBADMSG);
	cr_assert_eq(
	    p2p_session_open(p.r, r1 + 4, n1 - 4, plain, sizeof(plain), &m),
	    -EPIPE);
	free_sessions(&p);
}

Test(session, truncated_records_fail)
{
	uint8_t rec[64], plain[64];
	size_t n, m;

	for (size_t cut = 0;; cut++) {
		struct pair p;

		established_pair(&p);
		n = seal(p.r, "truncate me", rec, sizeof(rec));
		if (cut >= n - 4) {
			free_sessions(&p);
			break;
		}
		int rc = p2p_session_open(p.i, rec + 4, cut, plain,
					  sizeof(plain), &m);
		cr_assert(rc == -EBADMSG || (cut < 16 && rc == -EPROTO),
			  "cut %zu gave %d", cut, rc);
		free_sessions(&p);
	}
}

Test(session, reflected_record_fails)
{
	struct pair p;
	uint8_t rec[64], plain[64];
	size_t n, m;

	established_pair(&p);
	n = seal(p.i, "mirror", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(p.i, rec + 4, n - 4, plain, sizeof(plain), &m),
	    -EBADMSG);
	free_sessions(&p);
}

Test(session, record_from_other_session_fails)
{
	struct pair p, q;
	uint8_t rec[64], plain[64];
	size_t n, m;

	established_pair(&p);
	established_pair(&q);
	n = seal(p.i, "cross", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(q.r, rec + 4, n - 4, plain, sizeof(plain), &m),
	    -EBADMSG);
	free_sessions(&p);
	free_sessions(&q);
}

Test(session, sizes_and_in_place)
{
	struct pair p;
	static uint8_t msg[P2P_MSG_MAX + 1], rec[P2P_MSG_MAX + 64];
	size_t n, m;

	established_pair(&p);
	randombytes_buf(msg, sizeof(msg));
	cr_assert_eq(
	    p2p_session_seal(p.i, msg, P2P_MSG_MAX + 1, rec, sizeof(rec), &n),
	    -EMSGSIZE);
	cr_assert_eq(p2p_session_seal(p.i, msg, 100, rec, 100 + 19, &n),
		     -EMSGSIZE);
	cr_assert_eq(
	    p2p_session_seal(p.i, msg, P2P_MSG_MAX, rec, sizeof(rec), &n), 0);
	cr_assert_eq(n, P2P_MSG_MAX + P2P_RECORD_OVERHEAD);
	cr_assert_eq(hdr_len(rec), P2P_FRAME_MAX);
	cr_assert_eq(p2p_session_open(p.r, rec + 4, n - 4, rec + 4, n - 4, &m),
		     0);
	cr_assert_eq(m, P2P_MSG_MAX);
	cr_assert_eq(memcmp(rec + 4, msg, m), 0);
	/* Empty messages are fine too. */
	cr_assert_eq(p2p_session_seal(p.r, NULL, 0, rec, sizeof(rec), &n), 0);
	cr_assert_eq(n, P2P_RECORD_OVERHEAD);
	cr_assert_eq(p2p_session_open(p.i, rec + 4, n - 4, rec, 0, &m), 0);
	cr_assert_eq(m, 0);
	free_sessions(&p);
}

Test(session, counter_exhaustion)
{
	struct pair p;
	uint8_t rec[64], plain[64];
	size_t n, m;

	established_pair(&p);
	p2p_session_test_set_counters(p.i, UINT64_MAX - 1, 0);
	p2p_session_test_set_counters(p.r, 0, UINT64_MAX - 1);
	n = seal(p.i, "last", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, n - 4, plain, sizeof(plain), &m), 0);
	cr_assert_eq(p2p_session_seal(p.i, (const uint8_t *)"x", 1, rec,
				      sizeof(rec), &n),
		     -EPIPE);
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, 20, plain, sizeof(plain), &m),
	    -EPIPE);
	free_sessions(&p);
}

Test(session, big_counter_nonce_layout)
{
	struct pair p;
	uint8_t rec[64], plain[64];
	size_t n, m;

	/* Counters far apart in every byte must still agree on both sides. */
	established_pair(&p);
	p2p_session_test_set_counters(p.i, 0x0102030405060708ULL, 0);
	p2p_session_test_set_counters(p.r, 0, 0x0102030405060708ULL);
	n = seal(p.i, "n", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, n - 4, plain, sizeof(plain), &m), 0);
	free_sessions(&p);
}

Test(session, frame1_is_recognised)
{
	struct pair p;
	identities(&p);
	new_sessions(&p, NULL);
	handshake(&p);
	cr_expect(p2p_session_is_frame1(p.f1 + 4, p.n1 - 4));
	cr_expect_not(p2p_session_is_frame1(p.f2 + 4, p.n2 - 4));
	cr_expect_not(p2p_session_is_frame1(p.f3 + 4, p.n3 - 4));
	cr_expect_not(p2p_session_is_frame1(p.f1 + 4, p.n1 - 5));
	p.f1[4] ^= 1; /* the magic */
	cr_expect_not(p2p_session_is_frame1(p.f1 + 4, p.n1 - 4));
	cr_expect_not(p2p_session_is_frame1(NULL, 38));
	free_sessions(&p);
}

Test(session, simultaneous_open_initiators_fail)
{
	/* Two initiators on one connection: each gets the other's frame 1,
	 * which an initiator cannot take (the daemon re-dials instead). */
	struct pair p;
	struct p2p_session *i2;
	uint8_t g1[P2P_HS_MAX], out[P2P_HS_MAX];
	size_t m1, n;

	identities(&p);
	p.i = p2p_session_new(&p.a, true, NULL);
	i2 = p2p_session_new(&p.b, true, NULL);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_start(i2, g1, sizeof(g1), &m1), 0);
	cr_expect(p2p_session_is_frame1(g1 + 4, m1 - 4));
	cr_expect_lt(
	    p2p_session_handshake(p.i, g1 + 4, m1 - 4, out, sizeof(out), &n),
	    0);
	p2p_session_free(p.i);
	p2p_session_free(i2);
}

/*
 * issue 9: sessions copied the long-term secret key, one copy per link.
 * Now a session reads the identity's own key, kept in guarded memory:
 * with that memory made inaccessible, the responder's signature over
 * frame 2 faults. A session holding a copy would sign happily.
 */
Test(session, signs_with_the_identity_key_not_a_copy, .signal = SIGSEGV)
{
	struct pair p;
	uint8_t none[P2P_HS_MAX];
	size_t n;

	identities(&p);
	new_sessions(&p, &p.b.id);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	/* Not page-aligned (a copy inside a struct) fails: no fault then. */
	sodium_mprotect_noaccess((void *)p.b.sk);
	int rc = p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, none,
				       sizeof(none), &n);
	cr_log_info("handshake went through: %d", rc);
}

/* The control case: the same steps with the key readable go through. */
Test(session, signs_while_the_identity_key_is_readable)
{
	struct pair p;

	established_pair(&p);
	free_sessions(&p);
	p2p_identity_wipe(&p.a);
	p2p_identity_wipe(&p.b);
}

/* ---- the record AEAD: negotiated, bound to the transcript, rekeyed ---- */

static void suites_pair(struct pair *p, uint8_t offer, uint8_t accept)
{
	identities(p);
	new_sessions(p, &p->b.id);
	p2p_session_test_set_suites(p->i, offer);
	p2p_session_test_set_suites(p->r, accept);
}

/* One record each way opens, with the suite both ends agree on. */
static void records_flow(struct pair *p, int suite)
{
	uint8_t rec[64], plain[64];
	size_t n, m;

	cr_assert_eq(p2p_session_suite(p->i), suite);
	cr_assert_eq(p2p_session_suite(p->r), suite);
	cr_assert_eq(p2p_session_seal(p->i, (const uint8_t *)"ping", 4, rec,
				      sizeof(rec), &n),
		     0);
	cr_assert_eq(
	    p2p_session_open(p->r, rec + 4, n - 4, plain, sizeof(plain), &m),
	    0);
	cr_assert_eq(m, 4);
	cr_assert_eq(memcmp(plain, "ping", 4), 0);
	cr_assert_eq(p2p_session_seal(p->r, (const uint8_t *)"pong", 4, rec,
				      sizeof(rec), &n),
		     0);
	cr_assert_eq(
	    p2p_session_open(p->i, rec + 4, n - 4, plain, sizeof(plain), &m),
	    0);
	cr_assert_eq(memcmp(plain, "pong", 4), 0);
}

Test(session, aes_gcm_when_both_have_it)
{
	struct pair p;

	if (!crypto_aead_aes256gcm_is_available())
		cr_skip_test("no hardware AES here");
	established_pair(&p);
	records_flow(&p, P2P_SUITE_AES256_GCM);
	cr_assert_str_eq(p2p_suite_name(p2p_session_suite(p.i)), "aes256-gcm");
	free_sessions(&p);
}

Test(session, chacha_when_either_side_lacks_aes)
{
	struct pair p;

	suites_pair(&p, P2P_SUITE_CHACHA20_POLY1305, P2P_SUITE_ALL);
	handshake(&p);
	records_flow(&p, P2P_SUITE_CHACHA20_POLY1305);
	free_sessions(&p);
	suites_pair(&p, P2P_SUITE_ALL, P2P_SUITE_CHACHA20_POLY1305);
	handshake(&p);
	records_flow(&p, P2P_SUITE_CHACHA20_POLY1305);
	cr_assert_str_eq(p2p_suite_name(p2p_session_suite(p.r)),
			 "chacha20-poly1305");
	free_sessions(&p);
}

Test(session, forced_aes_both_sides)
{
	struct pair p;

	if (!crypto_aead_aes256gcm_is_available())
		cr_skip_test("no hardware AES here");
	suites_pair(&p, P2P_SUITE_AES256_GCM, P2P_SUITE_AES256_GCM);
	handshake(&p);
	records_flow(&p, P2P_SUITE_AES256_GCM);
	free_sessions(&p);
}

Test(session, no_common_suite_refused)
{
	struct pair p;
	uint8_t out[P2P_HS_MAX];
	size_t n = 9;

	suites_pair(&p, P2P_SUITE_AES256_GCM, P2P_SUITE_CHACHA20_POLY1305);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, out,
					   sizeof(out), &n),
		     -EPROTONOSUPPORT);
	cr_assert_eq(n, 0);
	free_sessions(&p);
}

/* A man in the middle strips AES from the offer (to force the suite he
 * prefers): the transcripts differ and the initiator rejects frame 2. */
Test(session, downgraded_offer_fails)
{
	struct pair p;
	uint8_t none[P2P_HS_MAX];
	size_t n;

	suites_pair(&p, P2P_SUITE_ALL, P2P_SUITE_ALL);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	p.f1[4 + 5] = P2P_SUITE_CHACHA20_POLY1305;
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2,
					   sizeof(p.f2), &p.n2),
		     0);
	cr_assert_eq(p.f2[4 + 32], P2P_SUITE_CHACHA20_POLY1305);
	cr_assert_eq(p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, none,
					   sizeof(none), &n),
		     -EBADMSG);
	free_sessions(&p);
}

/* The responder's pick must be one suite, and one that was offered. */
Test(session, pick_not_offered_fails)
{
	struct pair p;
	uint8_t none[P2P_HS_MAX];
	size_t n;

	suites_pair(&p, P2P_SUITE_CHACHA20_POLY1305, P2P_SUITE_ALL);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2,
					   sizeof(p.f2), &p.n2),
		     0);
	p.f2[4 + 32] = P2P_SUITE_AES256_GCM;
	cr_assert_eq(p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, none,
					   sizeof(none), &n),
		     -EPROTO);
	free_sessions(&p);
	suites_pair(&p, P2P_SUITE_ALL, P2P_SUITE_ALL);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2,
					   sizeof(p.f2), &p.n2),
		     0);
	p.f2[4 + 32] = P2P_SUITE_ALL; /* two at once */
	cr_assert_eq(p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, none,
					   sizeof(none), &n),
		     -EPROTO);
	free_sessions(&p);
}

/* Both ends derive the next key at the same record: records on both
 * sides of the boundary open, in both suites. */
Test(session, rekey_at_the_boundary)
{
	static const uint8_t suites[] = {P2P_SUITE_CHACHA20_POLY1305,
					 P2P_SUITE_AES256_GCM};
	uint8_t rec[64], plain[64];
	size_t n, m;

	for (size_t k = 0; k < sizeof(suites); k++) {
		struct pair p;
		if (suites[k] == P2P_SUITE_AES256_GCM &&
		    !crypto_aead_aes256gcm_is_available())
			continue;
		suites_pair(&p, suites[k], P2P_SUITE_ALL);
		handshake(&p);
		p2p_session_test_set_counters(p.i, P2P_REKEY_RECORDS - 2, 0);
		p2p_session_test_set_counters(p.r, 0, P2P_REKEY_RECORDS - 2);
		for (int r = 0; r < 5; r++) {
			cr_assert_eq(p2p_session_seal(p.i, (const uint8_t *)"x",
						      1, rec, sizeof(rec), &n),
				     0);
			cr_assert_eq(p2p_session_open(p.r, rec + 4, n - 4,
						      plain, sizeof(plain), &m),
				     0, "record %d around the rekey", r);
		}
		free_sessions(&p);
	}
}

/* A sender that crossed the boundary seals with a new key: a receiver
 * that skipped it (still on the old key) cannot open what follows. */
Test(session, rekey_changes_the_key)
{
	struct pair p;
	uint8_t rec[64], plain[64];
	size_t n, m;

	established_pair(&p);
	p2p_session_test_set_counters(p.i, P2P_REKEY_RECORDS, 0);
	cr_assert_eq(p2p_session_seal(p.i, (const uint8_t *)"x", 1, rec,
				      sizeof(rec), &n),
		     0);
	p2p_session_test_set_counters(p.i, P2P_REKEY_RECORDS + 5, 0);
	p2p_session_test_set_counters(p.r, 0, P2P_REKEY_RECORDS + 5);
	cr_assert_eq(p2p_session_seal(p.i, (const uint8_t *)"y", 1, rec,
				      sizeof(rec), &n),
		     0);
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, n - 4, plain, sizeof(plain), &m),
	    -EBADMSG);
	free_sessions(&p);
}

/* Frame 2 cut short, in a buffer of exactly its size: nothing is read past
 * the end (found by fuzz_handshake: the suite byte was read before the
 * length was checked). ASan builds turn a read past the end into a crash. */
Test(session, short_frame2_read_in_bounds)
{
	for (size_t cut = 0; cut < 145; cut++) {
		struct pair p;
		uint8_t none[P2P_HS_MAX], *f;
		size_t n;

		identities(&p);
		new_sessions(&p, NULL);
		cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1),
			     0);
		cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4,
						   p.f2, sizeof(p.f2), &p.n2),
			     0);
		f = malloc(cut ? cut : 1);
		cr_assert_not_null(f);
		memcpy(f, p.f2 + 4, cut);
		cr_assert_eq(
		    p2p_session_handshake(p.i, f, cut, none, sizeof(none), &n),
		    -EPROTO);
		free(f);
		free_sessions(&p);
	}
}

/* Version 3: the responder seals right after frame 2; the initiator opens
 * those records once frame 2 is in, before frame 3 has left; the
 * responder's counter goes on after frame 3 and both directions still
 * work. */
Test(session, responder_records_follow_frame2)
{
	struct pair p;
	uint8_t early[2][64], rec[64], plain[64], none[P2P_HS_MAX];
	size_t ne[2], n, m;

	identities(&p);
	new_sessions(&p, &p.b.id);
	cr_assert_not(p2p_session_can_seal(p.r), "before frame 1");
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_not(p2p_session_can_seal(p.i), "initiator after frame 1");
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2,
					   sizeof(p.f2), &p.n2),
		     0);
	cr_assert(p2p_session_can_seal(p.r));
	cr_assert_not(p2p_session_established(p.r));
	cr_assert_null(p2p_session_peer(p.r), "initiator not proven yet");
	ne[0] = seal(p.r, "hello early", early[0], sizeof(early[0]));
	ne[1] = seal(p.r, "second", early[1], sizeof(early[1]));
	/* Nothing from the initiator opens before frame 3. */
	cr_assert_eq(p2p_session_open(p.r, early[0] + 4, ne[0] - 4, plain,
				      sizeof(plain), &m),
		     -EINVAL);

	cr_assert_eq(p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, p.f3,
					   sizeof(p.f3), &p.n3),
		     1);
	for (int k = 0; k < 2; k++)
		cr_assert_eq(p2p_session_open(p.i, early[k] + 4, ne[k] - 4,
					      plain, sizeof(plain), &m),
			     0);
	cr_assert_eq(m, 6);
	cr_assert_eq(memcmp(plain, "second", 6), 0);

	cr_assert_eq(p2p_session_handshake(p.r, p.f3 + 4, p.n3 - 4, none,
					   sizeof(none), &n),
		     1);
	/* The third record of the responder: counter 2, not 0 again. */
	n = seal(p.r, "after", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(p.i, rec + 4, n - 4, plain, sizeof(plain), &m), 0);
	cr_assert_eq(memcmp(plain, "after", 5), 0);
	n = seal(p.i, "from i", rec, sizeof(rec));
	cr_assert_eq(
	    p2p_session_open(p.r, rec + 4, n - 4, plain, sizeof(plain), &m), 0);
	cr_assert_eq(memcmp(plain, "from i", 6), 0);
	free_sessions(&p);
}

/* An early record is bound to its session's frame 2: a second session
 * between the same two identities cannot open it, and a replay of it
 * after the handshake fails (its counter was used). */
Test(session, early_record_bound_to_its_session)
{
	struct pair p, q;
	uint8_t early[64], plain[64];
	size_t ne, m;

	identities(&p);
	new_sessions(&p, &p.b.id);
	cr_assert_eq(p2p_session_start(p.i, p.f1, sizeof(p.f1), &p.n1), 0);
	cr_assert_eq(p2p_session_handshake(p.r, p.f1 + 4, p.n1 - 4, p.f2,
					   sizeof(p.f2), &p.n2),
		     0);
	ne = seal(p.r, "hello", early, sizeof(early));

	established_pair(&q);
	cr_assert_eq(
	    p2p_session_open(q.i, early + 4, ne - 4, plain, sizeof(plain), &m),
	    -EBADMSG);
	free_sessions(&q);

	cr_assert_eq(p2p_session_handshake(p.i, p.f2 + 4, p.n2 - 4, p.f3,
					   sizeof(p.f3), &p.n3),
		     1);
	cr_assert_eq(
	    p2p_session_open(p.i, early + 4, ne - 4, plain, sizeof(plain), &m),
	    0);
	cr_assert_eq(
	    p2p_session_open(p.i, early + 4, ne - 4, plain, sizeof(plain), &m),
	    -EBADMSG, "replayed early record");
	free_sessions(&p);
}
