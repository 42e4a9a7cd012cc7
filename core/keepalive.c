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

/* The quiet P2P_KA_EVIDENCE distinct peers agree on: the EVIDENCE-th
 * shortest in the window (so one peer's short claim alone counts for
 * nothing), or 0 when fewer peers said anything. */
static uint32_t agreed_quiet(const struct p2p_ka *k, uint64_t now)
{
	uint32_t q[P2P_KA_SLOTS];
	size_t n = 0;

	for (size_t i = 0; i < P2P_KA_SLOTS; i++) {
		size_t j;

		if (!k->ev[i].at || now - k->ev[i].at > P2P_KA_WINDOW_MS)
			continue;
		/* Insertion sort: at most P2P_KA_SLOTS entries. */
		for (j = n++; j > 0 && q[j - 1] > k->ev[i].quiet_ms; j--)
			q[j] = q[j - 1];
		q[j] = k->ev[i].quiet_ms;
	}
	return n < P2P_KA_EVIDENCE ? 0 : q[P2P_KA_EVIDENCE - 1];
}

/* The peer's slot, else a free or the oldest one. */
static size_t slot_of(const struct p2p_ka *k, const struct p2p_peerid *peer)
{
	size_t slot = 0;

	for (size_t i = 0; i < P2P_KA_SLOTS; i++) {
		if (k->ev[i].at && p2p_peerid_equal(&k->ev[i].peer, peer))
			return i;
		if (k->ev[i].at < k->ev[slot].at)
			slot = i;
	}
	return slot;
}

bool p2p_ka_reset(struct p2p_ka *k, uint64_t now, const struct p2p_peerid *peer,
		  uint32_t quiet_ms)
{
	size_t slot;
	uint32_t q, want;

	if (quiet_ms < P2P_KA_MIN_QUIET_MS)
		return false;
	slot = slot_of(k, peer);
	k->ev[slot].peer = *peer;
	k->ev[slot].at = now ? now : 1; /* 0 marks a free slot */
	k->ev[slot].quiet_ms = quiet_ms;
	q = agreed_quiet(k, now);
	if (!q)
		return false;
	/* Half what killed the mappings: below the NAT's timeout whatever
	 * the phase of the peer's own PINGs. */
	want = q / 2 < P2P_KA_FLOOR_MS ? P2P_KA_FLOOR_MS : q / 2;
	if (want >= k->cur_ms)
		return false;
	k->cur_ms = want;
	/* What led here is spent: the next lowering needs new resets, at
	 * the new keepalive. */
	memset(k->ev, 0, sizeof(k->ev));
	return true;
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
