/* Peer IDs: hashing, base32 known answers, strict decoding, XOR metric. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "proto/identity.h"
#include "proto/peerid.h"

/* Checked once against Python's hashlib.blake2b and base64.b32encode. */
#define SEED_PK_HEX                                                            \
	"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define SEED_ID_TEXT "tusof3vpe7bkbcffmsrs7qb2raw43gae3panaoqrssi6ks5azezq"
#define DESC_TEXT "777p37h37l47r57w6x2ph4xr6dx653pm5pvot2hh43s6jy7c4hqa"

static void seed_identity(struct p2p_identity *id)
{
	uint8_t seed[32];

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	p2p_identity_from_seed(id, seed);
}

static void desc_bytes(struct p2p_peerid *x)
{
	for (int i = 0; i < P2P_ID_LEN; i++)
		x->b[i] = (uint8_t)(0xff - i);
}

Test(peerid, known_answer_from_seed)
{
	struct p2p_identity id;
	char hex[65], text[P2P_ID_TEXT_LEN + 1];

	seed_identity(&id);
	sodium_bin2hex(hex, sizeof(hex), id.pk, 32);
	cr_assert_str_eq(hex, SEED_PK_HEX);
	p2p_peerid_to_text(&id.id, text);
	cr_assert_str_eq(text, SEED_ID_TEXT);
	cr_assert_eq(strlen(text), P2P_ID_TEXT_LEN);
}

Test(peerid, base32_known_answers)
{
	struct p2p_peerid x, zero = {{0}};
	char text[P2P_ID_TEXT_LEN + 1];

	desc_bytes(&x);
	p2p_peerid_to_text(&x, text);
	cr_assert_str_eq(text, DESC_TEXT);
	p2p_peerid_to_text(&zero, text);
	cr_assert_str_eq(
	    text, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
}

Test(peerid, round_trip_random)
{
	for (int i = 0; i < 200; i++) {
		struct p2p_peerid a, b;
		char text[P2P_ID_TEXT_LEN + 1];

		randombytes_buf(a.b, sizeof(a.b));
		p2p_peerid_to_text(&a, text);
		cr_assert_eq(p2p_peerid_from_text(&b, text, strlen(text)), 0);
		cr_assert(p2p_peerid_equal(&a, &b));
	}
}

static void expect_bad(const char *text, size_t len)
{
	struct p2p_peerid id, orig;

	memset(id.b, 0x5a, sizeof(id.b));
	orig = id;
	cr_assert_eq(p2p_peerid_from_text(&id, text, len), -EINVAL, "%s", text);
	cr_assert_eq(memcmp(&id, &orig, sizeof(id)), 0, "id touched");
}

Test(peerid, bad_text)
{
	char t[P2P_ID_TEXT_LEN + 2];
	const char bad_chars[] = "A0189=!/ \n";

	expect_bad("", 0);
	expect_bad(SEED_ID_TEXT, P2P_ID_TEXT_LEN - 1); /* short */
	strcpy(t, SEED_ID_TEXT "a");
	expect_bad(t, strlen(t)); /* long */
	expect_bad(NULL, 0);
	for (size_t c = 0; c < strlen(bad_chars); c++) {
		for (size_t pos = 0; pos < P2P_ID_TEXT_LEN; pos += 17) {
			strcpy(t, SEED_ID_TEXT);
			t[pos] = bad_chars[c];
			expect_bad(t, strlen(t));
		}
	}
	/* Uppercase version of a valid ID. */
	strcpy(t, SEED_ID_TEXT);
	for (char *p = t; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	expect_bad(t, strlen(t));
}

Test(peerid, trailing_bits_must_be_zero)
{
	char t[P2P_ID_TEXT_LEN + 1];
	struct p2p_peerid id;

	/* 'q' = 16: the only data bit of the last char set, others zero. */
	strcpy(t, DESC_TEXT);
	cr_assert_eq(t[51], 'a');
	cr_assert_eq(p2p_peerid_from_text(&id, t, strlen(t)), 0);
	const char nonzero[] = "bcdefghijklmnop";
	for (size_t i = 0; i < strlen(nonzero); i++) {
		t[51] = nonzero[i]; /* 1..15 use the 4 unused bits */
		expect_bad(t, strlen(t));
	}
	t[51] = 'q';
	cr_assert_eq(p2p_peerid_from_text(&id, t, strlen(t)), 0);
	cr_assert_eq(id.b[31], 0xe0 | 1);
}

Test(peerid, xor_and_distance)
{
	struct p2p_peerid t = {{0}}, a = {{0}}, b = {{0}}, x;

	a.b[0] = 0x01;
	b.b[0] = 0x02;
	p2p_peerid_xor(&x, &a, &b);
	cr_assert_eq(x.b[0], 0x03);
	cr_assert_lt(p2p_peerid_cmp_dist(&t, &a, &b), 0);
	cr_assert_gt(p2p_peerid_cmp_dist(&t, &b, &a), 0);
	cr_assert_eq(p2p_peerid_cmp_dist(&t, &a, &a), 0);
	t.b[0] = 0x02; /* now b is the target itself */
	cr_assert_gt(p2p_peerid_cmp_dist(&t, &a, &b), 0);
	b.b[31] = 1; /* only a low bit differs from the target */
	cr_assert_gt(p2p_peerid_cmp_dist(&t, &a, &b), 0);
}

Test(peerid, common_bits)
{
	struct p2p_peerid a = {{0}}, b = {{0}};

	cr_assert_eq(p2p_peerid_common_bits(&a, &b), 256);
	b.b[0] = 0x80;
	cr_assert_eq(p2p_peerid_common_bits(&a, &b), 0);
	b.b[0] = 0x01;
	cr_assert_eq(p2p_peerid_common_bits(&a, &b), 7);
	b.b[0] = 0;
	b.b[5] = 0x10;
	cr_assert_eq(p2p_peerid_common_bits(&a, &b), 43);
	b.b[5] = 0;
	b.b[31] = 1;
	cr_assert_eq(p2p_peerid_common_bits(&a, &b), 255);
}
