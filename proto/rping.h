/*
 * Signed payloads of routed PING and PONG (overlay applications
 * P2P_APP_PING and P2P_APP_PONG).
 *
 * A routed message passes through other nodes and its source ID is only
 * what its sender wrote. Unsigned, a node could make us answer a PING
 * "from" a victim (the PONG goes to the victim: reflection), or answer a
 * PING it forwards with a PONG of its own (a fake success). So each side
 * signs: the pinger a fresh random nonce, the pinged node the same nonce
 * back, each with its Ed25519 identity key, over the kind, the source ID
 * and the destination ID. hash(public key) must be the source ID.
 *
 * Wire layout, version 1, integers big-endian (P2P_RPING_LEN bytes):
 *
 *   u8 version (1) | u8 kind (1 ping, 2 pong) | u64 nonce |
 *   32 bytes Ed25519 public key | 64 bytes signature
 *
 * The signature is over "p2pd-rping-v1" || source ID || destination ID ||
 * every byte before it.
 */
#ifndef P2P_PROTO_RPING_H
#define P2P_PROTO_RPING_H

#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "peerid.h"

#define P2P_RPING_VERSION 1
#define P2P_RPING_LEN (1 + 1 + 8 + 32 + 64)

enum p2p_rping_kind {
	P2P_RPING_PING = 1,
	P2P_RPING_PONG = 2,
};

/*
 * Encode and sign a ping or pong with nonce from self to dst into out.
 * 0, or -EINVAL (bad kind, no secret key).
 */
int p2p_rping_encode(enum p2p_rping_kind kind, uint64_t nonce,
		     const struct p2p_identity *self,
		     const struct p2p_peerid *dst, uint8_t out[P2P_RPING_LEN])
    __attribute__((warn_unused_result));

/*
 * Check a payload of the expected kind that the overlay delivered to dst
 * from src, and give its nonce. 0; -EPROTO wrong length or kind;
 * -EPROTONOSUPPORT another version; -EKEYREJECTED the key is not src's;
 * -EBADMSG the signature does not verify (another source, destination or
 * kind, or altered bytes).
 */
int p2p_rping_decode(const uint8_t *in, size_t len, enum p2p_rping_kind kind,
		     const struct p2p_peerid *src, const struct p2p_peerid *dst,
		     uint64_t *nonce) __attribute__((warn_unused_result));

#endif
