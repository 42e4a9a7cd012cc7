/* NAT depth: the prime's TTL from the probes' answers (nat/depth.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "nat/nat.h"

static struct p2p_addr v4(int a, int b, int c, int d)
{
	struct p2p_addr x = {.family = 4};
	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

Test(depth, first_public_hop)
{
	/* Home router, two carrier transit hops, the carrier's router, the
	 * internet. */
	struct p2p_addr off[P2P_NAT_DEPTH_MAX] = {
	    v4(192, 168, 1, 1), v4(172, 16, 1, 1), v4(100, 64, 0, 1),
	    v4(10, 0, 0, 1),	v4(198, 19, 3, 1), v4(203, 0, 113, 9)};

	cr_assert_eq(p2p_nat_depth(off, P2P_NAT_DEPTH_MAX), 5);
	/* One NAT: the second hop is public. */
	struct p2p_addr one[2] = {v4(10, 1, 0, 1), v4(198, 51, 100, 1)};
	cr_assert_eq(p2p_nat_depth(one, 2), 2);
}

Test(depth, silent_hops_are_passed)
{
	struct p2p_addr off[P2P_NAT_DEPTH_MAX];

	memset(off, 0, sizeof(off));
	off[0] = v4(10, 1, 0, 1);
	/* hops 2 and 3 say nothing */
	off[3] = v4(198, 18, 7, 1);
	cr_assert_eq(p2p_nat_depth(off, P2P_NAT_DEPTH_MAX), 4);
}

Test(depth, unknown)
{
	struct p2p_addr off[P2P_NAT_DEPTH_MAX];

	memset(off, 0, sizeof(off));
	cr_assert_eq(p2p_nat_depth(off, P2P_NAT_DEPTH_MAX), 0, "no answer");
	cr_assert_eq(p2p_nat_depth(NULL, 3), 0);
	for (int i = 0; i < P2P_NAT_DEPTH_MAX; i++)
		off[i] = v4(10, 0, i, 1);
	cr_assert_eq(p2p_nat_depth(off, P2P_NAT_DEPTH_MAX), 0, "all private");
	/* IPv6 answers are not ours to judge here. */
	off[1].family = 6;
	cr_assert_eq(p2p_nat_depth(off, P2P_NAT_DEPTH_MAX), 0);
}

Test(depth, never_beyond_the_bound)
{
	struct p2p_addr off[P2P_NAT_DEPTH_MAX + 4];

	for (int i = 0; i < P2P_NAT_DEPTH_MAX + 4; i++)
		off[i] = v4(10, 0, i, 1);
	off[P2P_NAT_DEPTH_MAX + 1] = v4(198, 51, 100, 1);
	cr_assert_eq(p2p_nat_depth(off, P2P_NAT_DEPTH_MAX + 4), 0);
}
