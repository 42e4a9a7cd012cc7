/* The LAN discovery beacon's codec (proto/beacon.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "proto/beacon.h"

static struct p2p_identity alice, mallory;

static void setup(void)
{
	uint8_t seed[32];

	cr_assert(sodium_init() >= 0);
	memset(seed, 1, sizeof(seed));
	cr_assert_eq(p2p_identity_from_seed(&alice, seed), 0);
	memset(seed, 2, sizeof(seed));
	cr_assert_eq(p2p_identity_from_seed(&mallory, seed), 0);
}

static void teardown(void)
{
	p2p_identity_wipe(&alice);
	p2p_identity_wipe(&mallory);
}

TestSuite(beacon, .init = setup, .fini = teardown);

static void make(uint8_t out[P2P_BEACON_LEN], uint16_t p4, uint16_t p6,
		 uint64_t t)
{
	struct p2p_beacon b = {.port4 = p4, .port6 = p6, .time_ms = t};
	size_t len = 0;

	cr_assert_eq(p2p_beacon_encode(&b, &alice, out, P2P_BEACON_LEN, &len),
		     0);
	cr_assert_eq(len, P2P_BEACON_LEN);
}

Test(beacon, round_trip)
{
	uint8_t buf[P2P_BEACON_LEN];
	struct p2p_beacon b;

	make(buf, 4242, 4343, 1700000000123ull);
	cr_assert_eq(p2p_beacon_decode(&b, buf, sizeof(buf)), 0);
	cr_assert_eq(b.port4, 4242);
	cr_assert_eq(b.port6, 4343);
	cr_assert_eq(b.time_ms, 1700000000123ull);
	cr_assert(p2p_peerid_equal(&b.id, &alice.id));
	cr_assert_eq(memcmp(b.pk, alice.pk, 32), 0);
}

Test(beacon, layout_is_big_endian_and_fixed)
{
	uint8_t buf[P2P_BEACON_LEN];

	make(buf, 0x1234, 0, 0x0102030405060708ull);
	cr_assert_eq(memcmp(buf, "p2pB", 4), 0);
	cr_assert_eq(buf[4], 1);
	cr_assert_eq(buf[5], 0);
	cr_assert_eq(buf[6], 0x12);
	cr_assert_eq(buf[7], 0x34);
	cr_assert_eq(buf[8], 0);
	cr_assert_eq(buf[9], 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(buf[10 + i], i + 1);
	cr_assert_eq(memcmp(buf + 18, alice.pk, 32), 0);
}

Test(beacon, encode_refuses)
{
	uint8_t buf[P2P_BEACON_LEN];
	struct p2p_beacon b = {.port4 = 1};
	size_t len;

	cr_assert_eq(p2p_beacon_encode(&b, &alice, buf, sizeof(buf) - 1, &len),
		     -EMSGSIZE);
	b.port4 = 0;
	cr_assert_eq(p2p_beacon_encode(&b, &alice, buf, sizeof(buf), &len),
		     -EINVAL);
}

/* Any changed bit of what is signed, or of the signature, fails. */
Test(beacon, every_flipped_bit_is_refused)
{
	uint8_t buf[P2P_BEACON_LEN], bad[P2P_BEACON_LEN];
	struct p2p_beacon b;

	make(buf, 4242, 4242, 99);
	for (size_t i = 0; i < sizeof(buf) * 8; i++) {
		memcpy(bad, buf, sizeof(buf));
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		b.port4 = 7;
		cr_assert_neq(p2p_beacon_decode(&b, bad, sizeof(bad)), 0,
			      "bit %zu", i);
		cr_assert_eq(b.port4, 7, "*b written on failure");
	}
}

Test(beacon, structural_errors)
{
	uint8_t buf[P2P_BEACON_LEN + 1], bad[P2P_BEACON_LEN + 1];
	struct p2p_beacon b;

	make(buf, 4242, 0, 5);
	buf[P2P_BEACON_LEN] = 0;
	cr_assert_eq(p2p_beacon_decode(&b, buf, P2P_BEACON_LEN - 1), -EPROTO);
	cr_assert_eq(p2p_beacon_decode(&b, buf, P2P_BEACON_LEN + 1), -EPROTO);
	cr_assert_eq(p2p_beacon_decode(&b, buf, 0), -EPROTO);
	memcpy(bad, buf, sizeof(buf));
	bad[0] = 'x';
	cr_assert_eq(p2p_beacon_decode(&b, bad, P2P_BEACON_LEN), -EPROTO);
	memcpy(bad, buf, sizeof(buf));
	bad[4] = 2;
	cr_assert_eq(p2p_beacon_decode(&b, bad, P2P_BEACON_LEN),
		     -EPROTONOSUPPORT);
	memcpy(bad, buf, sizeof(buf));
	bad[5] = 1;
	cr_assert_eq(p2p_beacon_decode(&b, bad, P2P_BEACON_LEN), -EPROTO);
	memcpy(bad, buf, sizeof(buf));
	bad[6] = bad[7] = 0;
	cr_assert_eq(p2p_beacon_decode(&b, bad, P2P_BEACON_LEN), -EPROTO);
}

Test(beacon, names_key)
{
	uint8_t buf[P2P_BEACON_LEN];

	make(buf, 1, 0, 5);
	cr_assert(p2p_beacon_names_key(buf, sizeof(buf), alice.pk));
	cr_assert(!p2p_beacon_names_key(buf, sizeof(buf), mallory.pk));
	cr_assert(!p2p_beacon_names_key(buf, sizeof(buf) - 1, alice.pk));
}

/* Mallory re-signs Alice's body with her own key: the signature is
 * checked against the key in the beacon, so this can only ever name
 * Mallory; with Alice's key left in place it fails. */
Test(beacon, signature_by_another_key)
{
	uint8_t buf[P2P_BEACON_LEN], sig[P2P_BEACON_LEN];
	struct p2p_beacon b = {.port4 = 1, .time_ms = 5};
	size_t len;

	make(buf, 1, 0, 5);
	cr_assert_eq(p2p_beacon_encode(&b, &mallory, sig, sizeof(sig), &len),
		     0);
	memcpy(buf + P2P_BEACON_BODY_LEN, sig + P2P_BEACON_BODY_LEN,
	       P2P_BEACON_SIG_LEN);
	cr_assert_eq(p2p_beacon_decode(&b, buf, sizeof(buf)), -EBADMSG);
	cr_assert_eq(p2p_beacon_decode(&b, sig, sizeof(sig)), 0);
	cr_assert(p2p_peerid_equal(&b.id, &mallory.id));
}
