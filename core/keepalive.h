/*
 * Keepalive that follows the NAT (issue 8), sans-I/O. A NAT forgets the
 * mapping of a TCP connection that stays quiet longer than its timeout;
 * the far end's next packet is then refused (reset), and our next one
 * leaves through a new mapping the far end does not know, which it
 * resets. So a direct link of ours, through our NAT, reset by the peer
 * without a GOAWAY after q ms of quiet says: this NAT's timeout is at
 * most q. Once P2P_KA_EVIDENCE distinct peers said so within
 * P2P_KA_WINDOW_MS (one peer that crashed, restarted, closes links
 * rudely or lies is not a NAT), the keepalive becomes half the shortest
 * such quiet, never below P2P_KA_FLOOR_MS; the evidence is then spent,
 * so it halves again only when links keep being reset at the new
 * keepalive, and it never goes back up (NAT timeouts do not grow).
 *
 * The caller feeds p2p_ka_reset() with what it saw and applies
 * p2p_ka_current() to its links when p2p_ka_reset() returns true.
 */
#ifndef P2P_CORE_KEEPALIVE_H
#define P2P_CORE_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/peerid.h"

/* Never pinged more often. NATs keep established TCP mappings for
 * minutes (RFC 5382 asks for 2 h; the shortest seen in the wild are tens
 * of seconds), so resets after a few seconds of quiet are not a NAT
 * timeout but peers misbehaving; the floor bounds what two of them can
 * cost us: one PING and PONG per link every 4 s. */
#define P2P_KA_FLOOR_MS 4000
/* A reset after less quiet says nothing of a NAT (below the floor). */
#define P2P_KA_MIN_QUIET_MS 3000
#define P2P_KA_EVIDENCE 2	/* distinct peers before we believe it */
#define P2P_KA_WINDOW_MS 180000 /* how long a reset counts as evidence */
#define P2P_KA_SLOTS 8		/* peers remembered (the latest reset each) */

struct p2p_ka {
	uint32_t conf_ms, cur_ms;
	struct {
		struct p2p_peerid peer;
		uint64_t at; /* 0: free */
		uint32_t quiet_ms;
	} ev[P2P_KA_SLOTS];
};

/* Start from the configured keepalive. */
void p2p_ka_init(struct p2p_ka *k, uint32_t keepalive_ms);

/*
 * A direct link to peer, through our NAT, was reset by the far end (no
 * GOAWAY) at now (ms) after quiet_ms with nothing heard
 * (p2p_linkfsm_quiet_ms). true when the keepalive was lowered (read it
 * with p2p_ka_current).
 */
bool p2p_ka_reset(struct p2p_ka *k, uint64_t now, const struct p2p_peerid *peer,
		  uint32_t quiet_ms);

uint32_t p2p_ka_current(const struct p2p_ka *k);
/* true once lowered below the configured keepalive. */
bool p2p_ka_learned(const struct p2p_ka *k);

#endif
