/* Peer IDs: hashing, strict base32 text form and the Kademlia XOR metric. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "proto/peerid.h"

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

void p2p_peerid_from_pk(struct p2p_peerid *id, const uint8_t pk[32])
{
	crypto_generichash(id->b, sizeof(id->b), pk, 32, NULL, 0);
}

void p2p_peerid_to_text(const struct p2p_peerid *id, char *out)
{
	unsigned int acc = 0, bits = 0;
	size_t n = 0;

	for (size_t i = 0; i < P2P_ID_LEN; i++) {
		acc = (acc << 8) | id->b[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[n++] = b32_alphabet[(acc >> bits) & 31];
		}
	}
	/* 256 bits leave 1 bit over: pad it with zero bits to a 52nd char. */
	if (bits > 0)
		out[n++] = b32_alphabet[(acc << (5 - bits)) & 31];
	out[n] = '\0';
}

static int b32_value(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

int p2p_peerid_from_text(struct p2p_peerid *id, const char *text, size_t len)
{
	uint8_t b[P2P_ID_LEN];
	unsigned int acc = 0, bits = 0;
	size_t n = 0;

	if (text == NULL || len != P2P_ID_TEXT_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v = b32_value(text[i]);

		if (v < 0)
			return -EINVAL;
		acc = ((acc << 5) | (unsigned int)v) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			b[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* Canonical form only: the leftover bits must be zero. */
	if (n != P2P_ID_LEN || (acc & ((1u << bits) - 1)) != 0)
		return -EINVAL;
	memcpy(id->b, b, sizeof(b));
	return 0;
}

/* Peer IDs are public (they travel in the clear in lookups), so a plain
 * memcmp leaks nothing; comparisons of secrets use sodium_memcmp. */
bool p2p_peerid_equal(const struct p2p_peerid *a, const struct p2p_peerid *b)
{
	return memcmp(a->b, b->b, P2P_ID_LEN) == 0;
}

void p2p_peerid_xor(struct p2p_peerid *out, const struct p2p_peerid *a,
		    const struct p2p_peerid *b)
{
	for (size_t i = 0; i < P2P_ID_LEN; i++)
		out->b[i] = a->b[i] ^ b->b[i];
}

int p2p_peerid_cmp_dist(const struct p2p_peerid *target,
			const struct p2p_peerid *a, const struct p2p_peerid *b)
{
	for (size_t i = 0; i < P2P_ID_LEN; i++) {
		uint8_t da = a->b[i] ^ target->b[i];
		uint8_t db = b->b[i] ^ target->b[i];

		if (da != db)
			return da < db ? -1 : 1;
	}
	return 0;
}

int p2p_peerid_common_bits(const struct p2p_peerid *a,
			   const struct p2p_peerid *b)
{
	for (size_t i = 0; i < P2P_ID_LEN; i++) {
		uint8_t x = a->b[i] ^ b->b[i];

		if (x != 0)
			return (int)i * 8 + __builtin_clz(x) - 24;
	}
	return P2P_ID_LEN * 8;
}
