/* Keepalive that follows the NAT: see keepalive.h. */
#include <string.h>

#include "core/keepalive.h"

void p2p_ka_init(struct p2p_ka *k, uint32_t keepalive_ms)
{
	memset(k, 0, sizeof(*k));
	k->cur_ms = keepalive_ms;
}

uint32_t p2p_ka_current(const struct p2p_ka *k)
{
	return k->cur_ms;
}

bool p2p_ka_reset(struct p2p_ka *k, uint64_t now, const struct p2p_peerid *peer,
		  uint32_t quiet_ms)
{
	size_t slot = 0, n = 0;
	uint32_t shortest = UINT32_MAX, want;

	if (quiet_ms < P2P_KA_MIN_QUIET_MS)
		return false;
	/* One entry per peer (its latest), the oldest replaced. */
	for (size_t i = 0; i < P2P_KA_SLOTS; i++) {
		if (k->ev[i].at && p2p_peerid_equal(&k->ev[i].peer, peer)) {
			slot = i;
			break;
		}
		if (k->ev[i].at < k->ev[slot].at)
			slot = i;
	}
	k->ev[slot].peer = *peer;
	k->ev[slot].at = now;
	k->ev[slot].quiet_ms = quiet_ms;
	for (size_t i = 0; i < P2P_KA_SLOTS; i++) {
		if (!k->ev[i].at || now - k->ev[i].at > P2P_KA_WINDOW_MS)
			continue;
		n++;
		if (k->ev[i].quiet_ms < shortest)
			shortest = k->ev[i].quiet_ms;
	}
	if (n < P2P_KA_EVIDENCE)
		return false;
	want = shortest / 2;
	if (want < P2P_KA_FLOOR_MS)
		want = P2P_KA_FLOOR_MS;
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
