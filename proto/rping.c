/* Signed routed PING/PONG payloads; see rping.h. */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "rping.h"

static const char sig_ctx[] = "p2pd-rping-v1";

#define RPING_BODY (1 + 1 + 8 + 32) /* signed bytes of the payload */

static void sig_input(crypto_sign_state *st, const struct p2p_peerid *src,
		      const struct p2p_peerid *dst, const uint8_t *body)
{
	crypto_sign_init(st);
	crypto_sign_update(st, (const uint8_t *)sig_ctx, sizeof(sig_ctx) - 1);
	crypto_sign_update(st, src->b, sizeof(src->b));
	crypto_sign_update(st, dst->b, sizeof(dst->b));
	crypto_sign_update(st, body, RPING_BODY);
}

int p2p_rping_encode(enum p2p_rping_kind kind, uint64_t nonce,
		     const struct p2p_identity *self,
		     const struct p2p_peerid *dst, uint8_t out[P2P_RPING_LEN])
{
	crypto_sign_state st;

	if ((kind != P2P_RPING_PING && kind != P2P_RPING_PONG) ||
	    self->sk == NULL)
		return -EINVAL;
	out[0] = P2P_RPING_VERSION;
	out[1] = (uint8_t)kind;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(nonce >> (56 - 8 * i));
	memcpy(out + 10, self->pk, 32);
	sig_input(&st, &self->id, dst, out);
	crypto_sign_final_create(&st, out + RPING_BODY, NULL, self->sk);
	return 0;
}

int p2p_rping_decode(const uint8_t *in, size_t len, enum p2p_rping_kind kind,
		     const struct p2p_peerid *src, const struct p2p_peerid *dst,
		     uint64_t *nonce)
{
	crypto_sign_state st;
	struct p2p_peerid who;
	uint64_t v = 0;

	if (len < 1)
		return -EPROTO;
	if (in[0] != P2P_RPING_VERSION)
		return -EPROTONOSUPPORT;
	if (len != P2P_RPING_LEN || in[1] != (uint8_t)kind)
		return -EPROTO;
	/* Who signed must be who the overlay says sent it. */
	p2p_peerid_from_pk(&who, in + 10);
	if (!p2p_peerid_equal(&who, src))
		return -EKEYREJECTED;
	sig_input(&st, src, dst, in);
	if (crypto_sign_final_verify(&st, in + RPING_BODY, in + 10) != 0)
		return -EBADMSG;
	for (int i = 0; i < 8; i++)
		v = v << 8 | in[2 + i];
	*nonce = v;
	return 0;
}
