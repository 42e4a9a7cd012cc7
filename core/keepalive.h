/*
 * Keepalive that follows the NAT (issue 8), sans-I/O. A NAT forgets the
 * mapping of a TCP connection that stays quiet longer than its timeout;
 * the far end's next packet is then refused (reset), and our next one
 * finds no socket behind the new mapping and is reset too. So a direct
 * link of ours, through our NAT, reset by the peer without a GOAWAY after
 * q ms of quiet says: this NAT's timeout is at most q. Once
 * P2P_KA_EVIDENCE distinct peers said so within P2P_KA_WINDOW_MS (one
 * peer that crashed or restarted is not a NAT), the keepalive becomes
 * half the shortest such quiet, never below P2P_KA_FLOOR_MS; it halves
 * again while links keep being reset, and never goes back up (NAT
 * timeouts do not grow).
 *
 * The caller feeds p2p_ka_reset() with what it saw and applies
 * p2p_ka_current() to its links when p2p_ka_reset() returns true.
 */
#ifndef P2P_CORE_KEEPALIVE_H
#define P2P_CORE_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/peerid.h"

#define P2P_KA_FLOOR_MS 4000	  /* never pinged more often */
#define P2P_KA_MIN_QUIET_MS 3000  /* a reset sooner says nothing of a NAT */
#define P2P_KA_EVIDENCE 2	  /* distinct peers before we believe it */
#define P2P_KA_WINDOW_MS 180000	  /* how long a reset counts as evidence */
#define P2P_KA_SLOTS 8

struct p2p_ka {
	uint32_t cur_ms;
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
 * GOAWAY) at now (ms) after quiet_ms with nothing sent or received.
 * true when the keepalive was lowered (read it with p2p_ka_current).
 */
bool p2p_ka_reset(struct p2p_ka *k, uint64_t now, const struct p2p_peerid *peer,
		  uint32_t quiet_ms);

uint32_t p2p_ka_current(const struct p2p_ka *k);

#endif
