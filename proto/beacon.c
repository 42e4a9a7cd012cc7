/*
 * The LAN discovery beacon's codec (beacon.h).
 */
#include <sodium.h>
#include <string.h>

#include "beacon.h"
#include "error.h"

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

#define CTX_LEN (sizeof(P2P_BEACON_SIG_CTX) - 1)

/* The signed message: a context string, so that a beacon's signature can
 * never pass for a signature of anything else the identity signs, then
 * the body. Plain Ed25519 (crypto_sign_detached) over these 68 bytes. */
static void sig_input(uint8_t m[CTX_LEN + P2P_BEACON_BODY_LEN],
		      const uint8_t *body)
{
	memcpy(m, P2P_BEACON_SIG_CTX, CTX_LEN);
	memcpy(m + CTX_LEN, body, P2P_BEACON_BODY_LEN);
}

int p2p_beacon_encode(const struct p2p_beacon *b,
		      const struct p2p_identity *self, uint8_t *out, size_t cap,
		      size_t *outlen)
{
	uint8_t m[CTX_LEN + P2P_BEACON_BODY_LEN];

	if (cap < P2P_BEACON_LEN)
		return -EMSGSIZE;
	if (b->port4 == 0 && b->port6 == 0)
		return -EINVAL;
	memcpy(out, P2P_BEACON_MAGIC, 4);
	out[4] = P2P_BEACON_VERSION;
	out[5] = 0;
	put_be(out + 6, b->port4, 2);
	put_be(out + 8, b->port6, 2);
	put_be(out + 10, b->time_ms, 8);
	memcpy(out + 18, self->pk, 32);
	sig_input(m, out);
	crypto_sign_detached(out + P2P_BEACON_BODY_LEN, NULL, m, sizeof(m),
			     self->sk);
	*outlen = P2P_BEACON_LEN;
	return 0;
}

int p2p_beacon_decode(struct p2p_beacon *b, const uint8_t *in, size_t len)
{
	uint8_t m[CTX_LEN + P2P_BEACON_BODY_LEN];
	struct p2p_beacon d;

	if (len != P2P_BEACON_LEN || memcmp(in, P2P_BEACON_MAGIC, 4) != 0)
		return -EPROTO;
	if (in[4] != P2P_BEACON_VERSION)
		return -EPROTONOSUPPORT;
	if (in[5] != 0)
		return -EPROTO;
	memset(&d, 0, sizeof(d));
	d.port4 = (uint16_t)get_be(in + 6, 2);
	d.port6 = (uint16_t)get_be(in + 8, 2);
	if (d.port4 == 0 && d.port6 == 0)
		return -EPROTO;
	d.time_ms = get_be(in + 10, 8);
	memcpy(d.pk, in + 18, 32);
	sig_input(m, in);
	/* libsodium refuses small-order and non-canonical keys here. */
	if (crypto_sign_verify_detached(in + P2P_BEACON_BODY_LEN, m, sizeof(m),
					d.pk) != 0)
		return -EBADMSG;
	p2p_peerid_from_pk(&d.id, d.pk);
	*b = d;
	return 0;
}

bool p2p_beacon_names_key(const uint8_t *in, size_t len, const uint8_t pk[32])
{
	return len == P2P_BEACON_LEN && memcmp(in + 18, pk, 32) == 0;
}
