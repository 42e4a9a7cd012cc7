/* Keepalive that follows the NAT (core/keepalive.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/keepalive.h"

static struct p2p_peerid peer(int k)
{
	struct p2p_peerid p;

	memset(&p, k, sizeof(p));
	return p;
}

Test(keepalive, two_peers_reset_after_quiet_halve_it)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1), b = peer(2);

	p2p_ka_init(&k, 25000);
	cr_assert_not(p2p_ka_reset(&k, 1000, &a, 24000), "one peer: no");
	cr_assert_eq(p2p_ka_current(&k), 25000);
	cr_assert(p2p_ka_reset(&k, 2000, &b, 20000));
	cr_assert_eq(p2p_ka_current(&k), 10000, "half the shortest quiet");
	/* Links still reset at the new keepalive: halved again. */
	cr_assert_not(p2p_ka_reset(&k, 15000, &a, 10000));
	cr_assert(p2p_ka_reset(&k, 15100, &b, 10100));
	cr_assert_eq(p2p_ka_current(&k), 5000);
	cr_assert_not(p2p_ka_reset(&k, 21000, &a, 5000));
	cr_assert(p2p_ka_reset(&k, 21000, &b, 5000));
	cr_assert_eq(p2p_ka_current(&k), P2P_KA_FLOOR_MS, "the floor");
	cr_assert_not(p2p_ka_reset(&k, 26000, &a, 4000));
	cr_assert_not(p2p_ka_reset(&k, 26000, &b, 4000));
	cr_assert_eq(p2p_ka_current(&k), P2P_KA_FLOOR_MS);
}

Test(keepalive, one_peer_again_and_again_is_not_a_nat)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1);

	p2p_ka_init(&k, 25000);
	for (int i = 0; i < 20; i++)
		cr_assert_not(p2p_ka_reset(&k, 1000 + i * 30000, &a, 20000));
	cr_assert_eq(p2p_ka_current(&k), 25000);
}

Test(keepalive, old_evidence_and_short_quiet_do_not_count)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1), b = peer(2);

	p2p_ka_init(&k, 25000);
	cr_assert_not(p2p_ka_reset(&k, 1000, &a, 20000));
	cr_assert_not(p2p_ka_reset(&k, 1000 + P2P_KA_WINDOW_MS + 1, &b, 20000),
		      "a's reset is too old");
	cr_assert_not(p2p_ka_reset(&k, 400000, &a, P2P_KA_MIN_QUIET_MS - 1),
		      "reset while busy: not a mapping that timed out");
	cr_assert_eq(p2p_ka_current(&k), 25000);
}

Test(keepalive, never_raised)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1), b = peer(2);

	p2p_ka_init(&k, 6000);
	cr_assert_not(p2p_ka_reset(&k, 1000, &a, 30000));
	cr_assert_not(p2p_ka_reset(&k, 1000, &b, 30000), "15 s > 6 s");
	cr_assert_eq(p2p_ka_current(&k), 6000);
}

Test(keepalive, many_peers_fit_the_slots)
{
	struct p2p_ka k;

	p2p_ka_init(&k, 25000);
	for (int i = 0; i < 3 * P2P_KA_SLOTS; i++) {
		struct p2p_peerid p = peer(10 + i);
		if (p2p_ka_reset(&k, 1000 + i, &p, 30000 - i))
			break;
	}
	cr_assert_eq(p2p_ka_current(&k), (30000 - 1) / 2);
}
