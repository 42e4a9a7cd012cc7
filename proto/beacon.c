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

/* The signed message: a context string, so that a beacon's signature can
 * never pass for a signature of anything else the identity signs. */
static void sig_input(crypto_sign_state *st, const uint8_t *body)
{
	crypto_sign_init(st);
	crypto_sign_update(st, (const uint8_t *)P2P_BEACON_SIG_CTX,
			   sizeof(P2P_BEACON_SIG_CTX) - 1);
	crypto_sign_update(st, body, P2P_BEACON_BODY_LEN);
}

int p2p_beacon_encode(const struct p2p_beacon *b,
		      const struct p2p_identity *self, uint8_t *out, size_t cap,
		      size_t *outlen)
{
	crypto_sign_state st;

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
	sig_input(&st, out);
	crypto_sign_final_create(&st, out + P2P_BEACON_BODY_LEN, NULL,
				 self->sk);
	*outlen = P2P_BEACON_LEN;
	return 0;
}

int p2p_beacon_decode(struct p2p_beacon *b, const uint8_t *in, size_t len)
{
	crypto_sign_state st;
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
	sig_input(&st, in);
	/* libsodium refuses small-order and non-canonical keys here. */
	if (crypto_sign_final_verify(&st, in + P2P_BEACON_BODY_LEN, d.pk) != 0)
		return -EBADMSG;
	p2p_peerid_from_pk(&d.id, d.pk);
	*b = d;
	return 0;
}
