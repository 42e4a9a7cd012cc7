/* Keepalive that follows the NAT: see keepalive.h. */
#include <string.h>

#include "core/keepalive.h"

void p2p_ka_init(struct p2p_ka *k, uint32_t keepalive_ms)
{
	memset(k, 0, sizeof(*k));
	k->conf_ms = k->cur_ms = keepalive_ms;
}

bool p2p_ka_learned(const struct p2p_ka *k)
{
	return k->cur_ms < k->conf_ms;
}

uint32_t p2p_ka_current(const struct p2p_ka *k)
{
	return k->cur_ms;
}

/* The peer's slot, else -1. */
static int find(const struct p2p_ka *k, const struct p2p_peerid *peer)
{
	for (int i = 0; i < P2P_KA_SLOTS; i++)
		if (k->peer[i].at && p2p_peerid_equal(&k->peer[i].peer, peer))
			return i;
	return -1;
}

/* A free slot, else the one reset longest ago. */
static size_t oldest(const struct p2p_ka *k)
{
	size_t slot = 0;

	for (size_t i = 1; i < P2P_KA_SLOTS; i++)
		if (k->peer[i].at < k->peer[slot].at)
			slot = i;
	return slot;
}

/* The keepalive P2P_KA_EVIDENCE distinct peers' resets in the window
 * agree on: the EVIDENCE-th shortest of their own (so one peer's short
 * claim alone counts for nothing), or 0 when fewer peers said anything. */
static uint32_t agreed(const struct p2p_ka *k, uint64_t now)
{
	uint32_t q[P2P_KA_SLOTS];
	size_t n = 0;

	for (size_t i = 0; i < P2P_KA_SLOTS; i++) {
		size_t j;

		if (!k->peer[i].at || now - k->peer[i].at > P2P_KA_WINDOW_MS)
			continue;
		/* Insertion sort: at most P2P_KA_SLOTS entries. */
		for (j = n++; j > 0 && q[j - 1] > k->peer[i].ms; j--)
			q[j] = q[j - 1];
		q[j] = k->peer[i].ms;
	}
	return n < P2P_KA_EVIDENCE ? 0 : q[P2P_KA_EVIDENCE - 1];
}

uint32_t p2p_ka_for(const struct p2p_ka *k, const struct p2p_peerid *peer)
{
	int i = find(k, peer);

	return i >= 0 && k->peer[i].ms < k->cur_ms ? k->peer[i].ms : k->cur_ms;
}

bool p2p_ka_reset(struct p2p_ka *k, uint64_t now, const struct p2p_peerid *peer,
		  uint32_t quiet_ms)
{
	int i;
	size_t slot;
	uint32_t own, node;

	if (quiet_ms < P2P_KA_MIN_QUIET_MS)
		return false;
	/* Half what killed the mapping: below the NAT's timeout whatever
	 * the phase of the peer's own PINGs. */
	own = quiet_ms / 2 < P2P_KA_FLOOR_MS ? P2P_KA_FLOOR_MS : quiet_ms / 2;
	i = find(k, peer);
	slot = i >= 0 ? (size_t)i : oldest(k);
	/* A later reset after a longer quiet (a restart) does not raise
	 * what an earlier one showed. */
	if (i >= 0 && k->peer[slot].ms < own)
		own = k->peer[slot].ms;
	k->peer[slot].peer = *peer;
	k->peer[slot].at = now ? now : 1; /* 0 marks a free slot */
	k->peer[slot].ms = own;
	node = agreed(k, now);
	if (!node || node >= k->cur_ms)
		return false;
	k->cur_ms = node;
	return true;
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
