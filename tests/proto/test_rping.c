/* Signed routed PING/PONG payloads: round trip and every forgery. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "proto/rping.h"

static struct p2p_identity a, b, c;

static void setup(void)
{
	uint8_t seed[32];

	cr_assert_geq(sodium_init(), 0);
	memset(seed, 1, sizeof(seed));
	cr_assert_eq(p2p_identity_from_seed(&a, seed), 0);
	memset(seed, 2, sizeof(seed));
	cr_assert_eq(p2p_identity_from_seed(&b, seed), 0);
	memset(seed, 3, sizeof(seed));
	cr_assert_eq(p2p_identity_from_seed(&c, seed), 0);
}

static void teardown(void)
{
	p2p_identity_wipe(&a);
	p2p_identity_wipe(&b);
	p2p_identity_wipe(&c);
}

TestSuite(rping, .init = setup, .fini = teardown);

Test(rping, round_trip)
{
	uint8_t buf[P2P_RPING_LEN];
	uint64_t nonce = 0;

	cr_assert_eq(p2p_rping_encode(P2P_RPING_PING, 0x0102030405060708ULL, &a,
				      &b.id, buf),
		     0);
	cr_assert_eq(buf[0], P2P_RPING_VERSION);
	cr_assert_eq(buf[1], P2P_RPING_PING);
	cr_assert_eq(buf[2], 0x01);
	cr_assert_eq(buf[9], 0x08);
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PING, &a.id,
				      &b.id, &nonce),
		     0);
	cr_assert_eq(nonce, 0x0102030405060708ULL);
}

/* PING "from" a victim, signed by someone else: the reflection attack. */
Test(rping, source_must_have_signed)
{
	uint8_t buf[P2P_RPING_LEN];
	uint64_t nonce;

	cr_assert_eq(p2p_rping_encode(P2P_RPING_PING, 7, &c, &b.id, buf), 0);
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PING, &a.id,
				      &b.id, &nonce),
		     -EKEYREJECTED);
	/* a's key in place of c's, c's signature: does not verify */
	memcpy(buf + 10, a.pk, 32);
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PING, &a.id,
				      &b.id, &nonce),
		     -EBADMSG);
}

/* A forwarder answers a PING it passes on with a PONG of its own: it can
 * echo the nonce but not sign as the pinged node. */
Test(rping, pong_bound_to_source_destination_and_kind)
{
	uint8_t buf[P2P_RPING_LEN];
	uint64_t nonce;

	/* b's PONG to a */
	cr_assert_eq(p2p_rping_encode(P2P_RPING_PONG, 9, &b, &a.id, buf), 0);
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PONG, &b.id,
				      &a.id, &nonce),
		     0);
	/* replayed to c */
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PONG, &b.id,
				      &c.id, &nonce),
		     -EBADMSG);
	/* taken for a PING */
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PING, &b.id,
				      &a.id, &nonce),
		     -EPROTO);
	buf[1] = P2P_RPING_PING;
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PING, &b.id,
				      &a.id, &nonce),
		     -EBADMSG);
	buf[1] = P2P_RPING_PONG;
	/* another nonce */
	buf[9] ^= 1;
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PONG, &b.id,
				      &a.id, &nonce),
		     -EBADMSG);
	buf[9] ^= 1;
	/* an altered signature */
	buf[P2P_RPING_LEN - 1] ^= 0x80;
	cr_assert_eq(p2p_rping_decode(buf, sizeof(buf), P2P_RPING_PONG, &b.id,
				      &a.id, &nonce),
		     -EBADMSG);
}

Test(rping, malformed)
{
	uint8_t buf[P2P_RPING_LEN + 1];
	uint64_t nonce = 42;

	cr_assert_eq(p2p_rping_encode(P2P_RPING_PING, 1, &a, &b.id, buf), 0);
	cr_assert_eq(
	    p2p_rping_decode(buf, 0, P2P_RPING_PING, &a.id, &b.id, &nonce),
	    -EPROTO);
	cr_assert_eq(p2p_rping_decode(buf, P2P_RPING_LEN - 1, P2P_RPING_PING,
				      &a.id, &b.id, &nonce),
		     -EPROTO);
	buf[P2P_RPING_LEN] = 0;
	cr_assert_eq(p2p_rping_decode(buf, P2P_RPING_LEN + 1, P2P_RPING_PING,
				      &a.id, &b.id, &nonce),
		     -EPROTO, "trailing byte accepted");
	/* the old unsigned form: a bare 8-byte nonce */
	cr_assert_eq(
	    p2p_rping_decode(buf + 2, 8, P2P_RPING_PING, &a.id, &b.id, &nonce),
	    buf[2] == P2P_RPING_VERSION ? -EPROTO : -EPROTONOSUPPORT);
	buf[0] = 2;
	cr_assert_eq(p2p_rping_decode(buf, P2P_RPING_LEN, P2P_RPING_PING, &a.id,
				      &b.id, &nonce),
		     -EPROTONOSUPPORT);
	cr_assert_eq(nonce, 42, "nonce written on failure");
	cr_assert_eq(
	    p2p_rping_encode((enum p2p_rping_kind)3, 1, &a, &b.id, buf),
	    -EINVAL);
}
