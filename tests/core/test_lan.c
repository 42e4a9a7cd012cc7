/* LAN discovery's core (core/lan.h): its schedule and its verdicts, on
 * fake time. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/lan.h"

static struct p2p_peerid self_id, peer_id;

static void ids(void)
{
	memset(&self_id, 1, sizeof(self_id));
	memset(&peer_id, 2, sizeof(peer_id));
}

TestSuite(lan, .init = ids);

static struct p2p_addr v4(uint8_t last, uint16_t port)
{
	struct p2p_addr a = {.family = 4, .port = port};

	a.ip[0] = 10;
	a.ip[3] = last;
	return a;
}

static struct p2p_beacon beacon(uint64_t t)
{
	struct p2p_beacon b = {.port4 = 4242, .port6 = 4343, .time_ms = t};

	b.id = peer_id;
	return b;
}

Test(lan, schedule_start_second_then_jittered_interval)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 1000);
	uint64_t t, lo = UINT64_MAX, hi = 0;

	cr_assert_eq(p2p_lan_next(l), 1000);
	cr_assert(!p2p_lan_announce_due(l, 999, 0));
	cr_assert(p2p_lan_announce_due(l, 1000, 0));
	cr_assert(!p2p_lan_announce_due(l, 1000, 0), "once per deadline");
	cr_assert_eq(p2p_lan_next(l), 1000 + P2P_LAN_SECOND_MS);
	t = p2p_lan_next(l);
	cr_assert(p2p_lan_announce_due(l, t, 0));
	cr_assert_eq(p2p_lan_next(l),
		     t + P2P_LAN_INTERVAL_MS - P2P_LAN_JITTER_MS);
	for (uint32_t r = 0; r < 20000; r += 7) {
		t = p2p_lan_next(l);
		cr_assert(p2p_lan_announce_due(l, t, r * 2654435761u));
		uint64_t gap = p2p_lan_next(l) - t;
		lo = gap < lo ? gap : lo;
		hi = gap > hi ? gap : hi;
	}
	cr_assert_geq(lo, P2P_LAN_INTERVAL_MS - P2P_LAN_JITTER_MS);
	cr_assert_leq(hi, P2P_LAN_INTERVAL_MS + P2P_LAN_JITTER_MS);
	cr_assert_gt(hi - lo, P2P_LAN_JITTER_MS, "jitter spreads the gaps");
	p2p_lan_free(l);
}

Test(lan, dial_at_source_ip_and_advertised_port)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_beacon b = beacon(50000);
	struct p2p_addr src = v4(7, 4243), to;

	cr_assert_eq(p2p_lan_on_beacon(l, 10, 50000, &b, &src, &to),
		     P2P_LAN_DIAL);
	cr_assert_eq(to.family, 4);
	cr_assert_eq(memcmp(to.ip, src.ip, 16), 0);
	cr_assert_eq(to.port, 4242);
	p2p_lan_free(l);
}

Test(lan, self_is_ignored)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_beacon b = beacon(50000);
	struct p2p_addr src = v4(7, 4243), to;

	b.id = self_id;
	cr_assert_eq(p2p_lan_on_beacon(l, 10, 50000, &b, &src, &to),
		     P2P_LAN_SELF);
	p2p_lan_free(l);
}

Test(lan, freshness_both_ways)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_beacon b;
	struct p2p_addr src = v4(7, 4243), to;
	uint64_t wall = 1700000000000ull;

	b = beacon(wall - P2P_LAN_FRESH_MS - 1);
	cr_assert_eq(p2p_lan_on_beacon(l, 10, wall, &b, &src, &to),
		     P2P_LAN_STALE);
	b = beacon(wall + P2P_LAN_FRESH_MS + 1);
	cr_assert_eq(p2p_lan_on_beacon(l, 10, wall, &b, &src, &to),
		     P2P_LAN_STALE);
	b = beacon(0);
	cr_assert_eq(p2p_lan_on_beacon(l, 10, wall, &b, &src, &to),
		     P2P_LAN_STALE);
	b = beacon(wall - P2P_LAN_FRESH_MS);
	cr_assert_eq(p2p_lan_on_beacon(l, 10, wall, &b, &src, &to),
		     P2P_LAN_DIAL);
	p2p_lan_free(l);
}

Test(lan, family_port_and_link_local)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_beacon b = beacon(5);
	struct p2p_addr src = v4(7, 4243), to;

	b.port4 = 0;
	cr_assert_eq(p2p_lan_on_beacon(l, 10, 5, &b, &src, &to),
		     P2P_LAN_NO_PORT);
	src.family = 6;
	memset(src.ip, 0, 16);
	src.ip[0] = 0xfe;
	src.ip[1] = 0x80;
	src.ip[15] = 1;
	cr_assert_eq(p2p_lan_on_beacon(l, 10, 5, &b, &src, &to),
		     P2P_LAN_LINKLOCAL);
	src.ip[0] = 0xfd; /* a ULA source is dialled at port6 */
	src.ip[1] = 0;
	cr_assert_eq(p2p_lan_on_beacon(l, 10, 5, &b, &src, &to), P2P_LAN_DIAL);
	cr_assert_eq(to.family, 6);
	cr_assert_eq(to.port, 4343);
	p2p_lan_free(l);
}

Test(lan, one_dial_per_peer_and_address_per_redial_gap)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_beacon b = beacon(5);
	struct p2p_addr src = v4(7, 4243), other = v4(8, 4243), to;

	cr_assert_eq(p2p_lan_on_beacon(l, 100, 5, &b, &src, &to), P2P_LAN_DIAL);
	cr_assert_eq(
	    p2p_lan_on_beacon(l, 100 + P2P_LAN_REDIAL_MS - 1, 5, &b, &src, &to),
	    P2P_LAN_RECENT);
	/* The same peer's beacon replayed from another host is its own
	 * (peer, address): it cannot keep the real one from being dialled. */
	cr_assert_eq(p2p_lan_on_beacon(l, 200, 5, &b, &other, &to),
		     P2P_LAN_DIAL);
	cr_assert_eq(
	    p2p_lan_on_beacon(l, 100 + P2P_LAN_REDIAL_MS, 5, &b, &src, &to),
	    P2P_LAN_DIAL);
	p2p_lan_free(l);
}

Test(lan, dial_table_is_bounded_and_forgets_the_oldest)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_beacon b = beacon(5);
	struct p2p_addr src, to;

	for (unsigned i = 0; i <= P2P_LAN_DIAL_SLOTS; i++) {
		src = v4((uint8_t)i, 4243);
		cr_assert_eq(p2p_lan_on_beacon(l, 100 + i, 5, &b, &src, &to),
			     P2P_LAN_DIAL);
	}
	/* .0 was the oldest and has been replaced; .64 is remembered. */
	src = v4(0, 4243);
	cr_assert_eq(p2p_lan_on_beacon(l, 200, 5, &b, &src, &to), P2P_LAN_DIAL);
	src = v4(P2P_LAN_DIAL_SLOTS, 4243);
	cr_assert_eq(p2p_lan_on_beacon(l, 200, 5, &b, &src, &to),
		     P2P_LAN_RECENT);
	p2p_lan_free(l);
}

Test(lan, admit_is_a_token_bucket_per_source_ip)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_addr a = v4(7, 1), a2 = v4(7, 2), b = v4(9, 1);

	for (int i = 0; i < P2P_LAN_SRC_BURST; i++)
		cr_assert(p2p_lan_admit(l, 1000, i % 2 ? &a : &a2));
	cr_assert(!p2p_lan_admit(l, 1000, &a), "the port does not count");
	cr_assert(p2p_lan_admit(l, 1000, &b), "another source has its own");
	cr_assert(!p2p_lan_admit(l, 1000 + P2P_LAN_SRC_REFILL_MS - 1, &a));
	cr_assert(p2p_lan_admit(l, 1000 + P2P_LAN_SRC_REFILL_MS, &a));
	cr_assert(!p2p_lan_admit(l, 1000 + P2P_LAN_SRC_REFILL_MS, &a));
	/* A long silence refills the bucket, never beyond the burst. */
	for (int i = 0; i < P2P_LAN_SRC_BURST; i++)
		cr_assert(p2p_lan_admit(l, 1000000, &a));
	cr_assert(!p2p_lan_admit(l, 1000000, &a));
	p2p_lan_free(l);
}

Test(lan, admit_table_is_bounded)
{
	struct p2p_lan *l = p2p_lan_new(&self_id, 0);
	struct p2p_addr a = v4(250, 1), s;

	for (int i = 0; i < P2P_LAN_SRC_BURST; i++)
		cr_assert(p2p_lan_admit(l, 10, &a));
	cr_assert(!p2p_lan_admit(l, 10, &a));
	/* Spoofed sources by the hundred take slots, oldest first: a's
	 * slot goes and a comes back with a full bucket; nothing grows. */
	for (unsigned i = 0; i < 3 * P2P_LAN_SRC_SLOTS; i++) {
		s = v4((uint8_t)i, 1);
		s.ip[2] = (uint8_t)(i >> 8);
		s.ip[1] = 1;
		cr_assert(p2p_lan_admit(l, 20 + i, &s));
	}
	cr_assert(p2p_lan_admit(l, 1000, &a));
	p2p_lan_free(l);
}
