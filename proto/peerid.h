/*
 * Peer IDs: BLAKE2b-256 of the Ed25519 public key, 256-bit Kademlia keys.
 * Text form: RFC 4648 base32, lowercase, no padding, 52 characters.
 */
#ifndef P2P_PROTO_PEERID_H
#define P2P_PROTO_PEERID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

struct p2p_peerid {
	uint8_t b[P2P_ID_LEN];
};

/* ID of an Ed25519 public key (32 bytes). */
void p2p_peerid_from_pk(struct p2p_peerid *id, const uint8_t pk[32]);

/* Text form into out, which must hold P2P_ID_TEXT_LEN + 1 bytes. */
void p2p_peerid_to_text(const struct p2p_peerid *id, char *out);

/*
 * Strict decoder: exactly 52 characters of [a-z2-7], NUL terminated (len is
 * strlen), with the unused low bits of the last character zero. Anything
 * else: -EINVAL, and *id is untouched.
 */
int p2p_peerid_from_text(struct p2p_peerid *id, const char *text, size_t len)
    __attribute__((warn_unused_result));

bool p2p_peerid_equal(const struct p2p_peerid *a, const struct p2p_peerid *b);

/* Kademlia helpers. */
void p2p_peerid_xor(struct p2p_peerid *out, const struct p2p_peerid *a,
		    const struct p2p_peerid *b);
/* <0, 0, >0 as a is closer to, as close as, farther from target than b. */
int p2p_peerid_cmp_dist(const struct p2p_peerid *target,
			const struct p2p_peerid *a, const struct p2p_peerid *b);
/* Length of the common prefix in bits, 0..256 (256 when equal). */
int p2p_peerid_common_bits(const struct p2p_peerid *a,
			   const struct p2p_peerid *b);

#endif
