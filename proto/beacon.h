/*
 * The LAN discovery beacon (SPEC section 9 `lan_discovery`; the wire
 * details are ours, the SPEC says no more): one UDP datagram, sent to a
 * multicast group on the local link, that says "peer ID X listens on
 * these TCP ports here", signed by X's identity key so that nobody can
 * announce another node.
 *
 *   off  len  field
 *     0    4  magic "p2pB"
 *     4    1  version (P2P_BEACON_VERSION)
 *     5    1  flags, 0 (anything else is refused, for later use)
 *     6    2  IPv4 listen port, big-endian (0: none)
 *     8    2  IPv6 listen port, big-endian (0: none)
 *    10    8  sender's wall clock, ms since the Unix epoch, big-endian
 *    18   32  Ed25519 public key (the peer ID is its BLAKE2b-256)
 *    50   64  Ed25519 signature (crypto_sign_detached) of the 18 bytes
 *             P2P_BEACON_SIG_CTX followed by bytes 0..49
 *
 * The datagram is exactly P2P_BEACON_LEN bytes. The receiver dials the
 * datagram's source address at the advertised port of its family; the
 * timestamp lets it refuse old beacons replayed later (core/lan.h).
 */
#ifndef P2P_PROTO_BEACON_H
#define P2P_PROTO_BEACON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "peerid.h"

#define P2P_BEACON_VERSION 1
#define P2P_BEACON_MAGIC "p2pB"
#define P2P_BEACON_BODY_LEN 50 /* what the signature covers */
#define P2P_BEACON_SIG_LEN 64
#define P2P_BEACON_LEN (P2P_BEACON_BODY_LEN + P2P_BEACON_SIG_LEN)
#define P2P_BEACON_SIG_CTX "p2pd-lan-beacon-v1"

/* Where beacons go: a fixed UDP port and one group per family. The IPv4
 * group is in the administratively scoped 239.255.0.0/16 (site-local);
 * beacons are sent with TTL/hop limit 1, so they stay on the link. The
 * IPv6 group is link-local (ff02::). */
#define P2P_BEACON_PORT 4243
#define P2P_BEACON_GROUP4 "239.255.42.43"
#define P2P_BEACON_GROUP6 "ff02::4242:4243"

struct p2p_beacon {
	struct p2p_peerid id; /* of pk, set by decode */
	uint8_t pk[32];
	uint16_t port4, port6;
	uint64_t time_ms;
};

/*
 * Encode b's ports and time_ms as self's beacon (b->id and b->pk are not
 * read: the identity's are used). 0, -EMSGSIZE when cap is less than
 * P2P_BEACON_LEN, -EINVAL when both ports are 0 (nothing to dial).
 */
int p2p_beacon_encode(const struct p2p_beacon *b,
		      const struct p2p_identity *self, uint8_t *out, size_t cap,
		      size_t *outlen) __attribute__((warn_unused_result));

/*
 * Decode and verify a datagram. 0 with *b filled; -EPROTO when it is not
 * a beacon of this layout (length, magic, flags, both ports 0),
 * -EPROTONOSUPPORT for another version, -EBADMSG when the signature does
 * not verify. *b is written only on success.
 */
int p2p_beacon_decode(struct p2p_beacon *b, const uint8_t *in, size_t len)
    __attribute__((warn_unused_result));

/* Does the datagram name pk as its signer (not verified)? Our own
 * beacons come back through the multicast loop: they are dropped with
 * this before they cost a rate-limit token or a signature check. */
bool p2p_beacon_names_key(const uint8_t *in, size_t len, const uint8_t pk[32]);

#endif
