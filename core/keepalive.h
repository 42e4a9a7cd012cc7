/*
 * Keepalive that follows the NAT (issue 8), sans-I/O. A NAT forgets the
 * mapping of a TCP connection that stays quiet longer than its timeout;
 * the far end's next packet is then refused (reset), and our next one
 * leaves through a new mapping the far end does not know, which it
 * resets. So a direct link of ours, through our NAT, reset by the peer
 * without a GOAWAY after q ms of quiet says: this NAT's timeout is at
 * most q.
 *
 * Each such peer's links then ping every q/2 (its shortest, never below
 * P2P_KA_FLOOR_MS): below the NAT's timeout whatever the phase of the
 * peer's own PINGs. One peer's word is enough for its own links, since it
 * can only make us ping that peer faster; it halves again if its links
 * are still reset. Before, only the node's keepalive moved, and a NAT
 * whose timeout sat just under it (8 s against 8.5) reset the same peer's
 * link every keepalive until a second peer's link went quiet long enough
 * to agree: a minute and more in natlab-keepalive.
 *
 * The node's keepalive, for every link and for peers not yet heard of,
 * becomes what P2P_KA_EVIDENCE distinct peers reset within
 * P2P_KA_WINDOW_MS agree on: the EVIDENCE-th shortest of their own (one
 * peer that crashed, restarted, closes links rudely or lies is not a
 * NAT). It never goes back up (NAT timeouts do not grow).
 *
 * The caller feeds p2p_ka_reset() with what it saw, applies
 * p2p_ka_current() to its links when p2p_ka_reset() returns true, and
 * gives each link p2p_ka_for() its peer when it comes up (and again after
 * such a change).
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

struct p2p_ka_peer {
	struct p2p_peerid peer;
	uint64_t at; /* its latest reset; 0: a free slot */
	uint32_t ms; /* its links' keepalive: half its shortest quiet */
};

struct p2p_ka {
	uint32_t conf_ms, cur_ms;
	struct p2p_ka_peer peer[P2P_KA_SLOTS]; /* the latest peers reset */
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
/* The keepalive for links to peer: p2p_ka_current(), or less when this
 * peer's own links were reset. */
uint32_t p2p_ka_for(const struct p2p_ka *k, const struct p2p_peerid *peer);
/* true once lowered below the configured keepalive. */
bool p2p_ka_learned(const struct p2p_ka *k);

#endif
