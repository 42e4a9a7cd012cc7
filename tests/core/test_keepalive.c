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
	cr_assert_not(p2p_ka_learned(&k));
	cr_assert(p2p_ka_reset(&k, 2000, &b, 20000));
	cr_assert_eq(p2p_ka_current(&k), 12000,
		     "half the quiet both peers agree on (the longer)");
	cr_assert(p2p_ka_learned(&k));
	/* Links still reset at the new keepalive: halved again. */
	cr_assert_not(p2p_ka_reset(&k, 15000, &a, 11900));
	cr_assert(p2p_ka_reset(&k, 15100, &b, 12000));
	cr_assert_eq(p2p_ka_current(&k), 6000);
	cr_assert_not(p2p_ka_reset(&k, 21000, &a, 6000));
	cr_assert(p2p_ka_reset(&k, 21000, &b, 6000));
	cr_assert_eq(p2p_ka_current(&k), P2P_KA_FLOOR_MS, "the floor");
	cr_assert_not(p2p_ka_reset(&k, 26000, &a, 4000));
	cr_assert_not(p2p_ka_reset(&k, 26000, &b, 4000));
	cr_assert_eq(p2p_ka_current(&k), P2P_KA_FLOOR_MS);
}

Test(keepalive, one_peer_again_and_again_is_not_a_nat)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1);

	/* A peer that just closes (resets) every link we open to it. */
	p2p_ka_init(&k, 25000);
	for (int i = 0; i < 20; i++)
		cr_assert_not(p2p_ka_reset(&k, 1000 + i * 30000, &a, 20000));
	cr_assert_eq(p2p_ka_current(&k), 25000);
	cr_assert_not(p2p_ka_learned(&k));
}

Test(keepalive, one_lying_peer_cannot_pull_it_to_the_floor)
{
	struct p2p_ka k;
	struct p2p_peerid liar = peer(1), b = peer(2), c = peer(3);

	p2p_ka_init(&k, 25000);
	/* The liar resets every link after just over the minimum quiet. */
	cr_assert_not(p2p_ka_reset(&k, 1000, &liar, P2P_KA_MIN_QUIET_MS));
	/* One honest reset (a restarted peer, or a real NAT) joins it: the
	 * keepalive follows the honest quiet, not the liar's. */
	cr_assert(p2p_ka_reset(&k, 2000, &b, 24000));
	cr_assert_eq(p2p_ka_current(&k), 12000);
	/* The liar again and again, with the honest peer's old word spent:
	 * nothing more. */
	for (int i = 0; i < 10; i++)
		cr_assert_not(p2p_ka_reset(&k, 3000 + i * 1000, &liar,
					   P2P_KA_MIN_QUIET_MS));
	cr_assert_eq(p2p_ka_current(&k), 12000);
	/* Two peers that agree on a short quiet do lower it. */
	cr_assert(p2p_ka_reset(&k, 20000, &c, P2P_KA_MIN_QUIET_MS));
	cr_assert_eq(p2p_ka_current(&k), P2P_KA_FLOOR_MS);
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
	int i;

	/* Peers whose quiets are too long to lower it fill every slot and
	 * more; then two short ones still count. */
	p2p_ka_init(&k, 10000);
	for (i = 0; i < 3 * P2P_KA_SLOTS; i++) {
		struct p2p_peerid p = peer(10 + i);
		cr_assert_not(p2p_ka_reset(&k, 1000 + i, &p, 30000 - i));
	}
	struct p2p_peerid x = peer(100), y = peer(101);
	cr_assert_not(p2p_ka_reset(&k, 2000, &x, 9000));
	cr_assert(p2p_ka_reset(&k, 2001, &y, 8000));
	cr_assert_eq(p2p_ka_current(&k), 4500);
}
