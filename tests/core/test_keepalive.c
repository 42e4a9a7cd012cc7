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
	/* Links still reset at the new keepalive: a's own is halved, and
	 * with b's 20 s the two agree on 10 s for the node. */
	cr_assert(p2p_ka_reset(&k, 15000, &a, 11900));
	cr_assert_eq(p2p_ka_for(&k, &a), 5950);
	cr_assert_eq(p2p_ka_current(&k), 10000, "the longer of the two: b's");
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
	/* The liar again and again: its own links ping at the floor, the
	 * node's stay with the honest peer's word. */
	for (int i = 0; i < 10; i++)
		cr_assert_not(p2p_ka_reset(&k, 3000 + i * 1000, &liar,
					   P2P_KA_MIN_QUIET_MS));
	cr_assert_eq(p2p_ka_current(&k), 12000);
	cr_assert_eq(p2p_ka_for(&k, &liar), P2P_KA_FLOOR_MS);
	cr_assert_eq(p2p_ka_for(&k, &c), 12000);
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

Test(keepalive, one_peer_reset_speeds_up_only_that_peers_links)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1), b = peer(2);

	p2p_ka_init(&k, 25000);
	cr_assert_eq(p2p_ka_for(&k, &a), 25000, "no reset: the node's");
	cr_assert_not(p2p_ka_reset(&k, 1000, &a, 17000));
	cr_assert_eq(p2p_ka_for(&k, &a), 8500, "half a's own quiet");
	cr_assert_eq(p2p_ka_for(&k, &b), 25000, "b's links: unchanged");
	cr_assert_eq(p2p_ka_current(&k), 25000);
	cr_assert_not(p2p_ka_learned(&k), "one peer: not the node's");
	/* Reset again at its new keepalive: halved again, one peer alone. */
	cr_assert_not(p2p_ka_reset(&k, 11000, &a, 8500));
	cr_assert_eq(p2p_ka_for(&k, &a), 4250);
	/* A later reset after a longer quiet (a restart) does not raise it. */
	cr_assert_not(p2p_ka_reset(&k, 40000, &a, 20000));
	cr_assert_eq(p2p_ka_for(&k, &a), 4250);
	cr_assert_not(p2p_ka_reset(&k, 45000, &a, 5000));
	cr_assert_eq(p2p_ka_for(&k, &a), P2P_KA_FLOOR_MS,
		     "never below the floor");
	/* Below the quiet that says anything: ignored for the peer too. */
	cr_assert_not(p2p_ka_reset(&k, 46000, &b, P2P_KA_MIN_QUIET_MS - 1));
	cr_assert_eq(p2p_ka_for(&k, &b), 25000);
}

Test(keepalive, peer_keepalives_outlive_the_nodes_lowering)
{
	struct p2p_ka k;
	struct p2p_peerid a = peer(1), b = peer(2), c = peer(3);

	p2p_ka_init(&k, 25000);
	cr_assert_not(p2p_ka_reset(&k, 1000, &a, 9000));
	cr_assert(p2p_ka_reset(&k, 2000, &b, 20000));
	cr_assert_eq(p2p_ka_current(&k), 10000, "the second shortest: 20 s");
	cr_assert_eq(p2p_ka_for(&k, &a), 4500, "a's own, below the node's");
	cr_assert_eq(p2p_ka_for(&k, &b), 10000, "b's own is 10 s too");
	cr_assert_eq(p2p_ka_for(&k, &c), 10000, "the node's");
}

Test(keepalive, peer_keepalives_keep_the_latest_peers)
{
	struct p2p_ka k;
	struct p2p_peerid p = peer(10);

	p2p_ka_init(&k, 25000);
	cr_assert_not(p2p_ka_reset(&k, 1000, &p, 9000));
	cr_assert_eq(p2p_ka_for(&k, &p), 4500);
	/* P2P_KA_SLOTS more peers (the node goes to 12 s on the way). */
	for (int i = 1; i <= P2P_KA_SLOTS; i++) {
		p = peer(10 + i);
		(void)p2p_ka_reset(&k, 1000 + (uint64_t)i, &p,
				   i == P2P_KA_SLOTS ? 10000 : 24000);
	}
	cr_assert_eq(p2p_ka_current(&k), 12000);
	p = peer(10);
	cr_assert_eq(p2p_ka_for(&k, &p), 12000,
		     "the oldest peer's own was forgotten: the node's");
	p = peer(10 + P2P_KA_SLOTS);
	cr_assert_eq(p2p_ka_for(&k, &p), 5000, "the latest is kept");
}
