/*
 * NAT depth: the TTL that takes a prime past our last NAT (see nat.h).
 * Pure: the probes' answers in, a TTL out.
 */
#include "nat/nat.h"

int p2p_nat_depth(const struct p2p_addr *offender, size_t n)
{
	if (!offender)
		return 0;
	for (size_t i = 0; i < n && i < P2P_NAT_DEPTH_MAX; i++) {
		/* A silent hop tells nothing: it may be a NAT, so the prime
		 * goes on past it to the first public one that answers. */
		if (offender[i].family != 4)
			continue;
		if (!p2p_addr_is_private(&offender[i]))
			return (int)i + 1;
	}
	return 0;
}
