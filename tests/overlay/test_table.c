/* Routing table: insert, full buckets, replacement, diversity, ordering. */
#include <criterion/criterion.h>
#include <string.h>

#include "harness.h"

static struct p2p_peerid zero_id(void)
{
	struct p2p_peerid id;

	memset(&id, 0, sizeof(id));
	return id;
}

static bool in_table(struct h_node *h, const struct p2p_peerid *id)
{
	struct p2p_contact c[1];

	return p2p_overlay_closest(h->o, id, c, 1) == 1 &&
	       p2p_peerid_equal(&c[0].id, id);
}

static size_t table_size(struct h_node *h)
{
	struct p2p_overlay_stats st;

	p2p_overlay_get_stats(h->o, &st);
	return st.table_size;
}

Test(table, bucket_holds_k_then_replacement_cache)
{
	struct p2p_peerid self = zero_id();
	struct h_node h;

	h_node_init(&h, &self, true, 1);
	for (uint32_t i = 0; i < P2P_K + 5; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, 0, i + 1);
		struct p2p_addr a = h_addr4(20, (int)i, 0, 1, 4000);

		h_link_server(&h, 1 + i, &id, &a);
	}
	cr_assert_eq(table_size(&h), P2P_K);
	/* oldest kept: the first K, not the newcomers */
	for (uint32_t i = 0; i < P2P_K + 5; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, 0, i + 1);

		cr_assert_eq(in_table(&h, &id), i < P2P_K, "entry %u", i);
	}
	h_node_fini(&h);
}

Test(table, failed_entry_replaced_from_cache)
{
	struct p2p_peerid self = zero_id();
	struct p2p_peerid victim = h_id_in_bucket(&self, 0, 1);
	struct p2p_peerid newest = h_id_in_bucket(&self, 0, P2P_K + 3);
	uint64_t now = 1;
	struct h_node h;
	int fails = 0;

	h_node_init(&h, &self, true, 2);
	for (uint32_t i = 0; i < P2P_K + 3; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, 0, i + 1);
		struct p2p_addr a = h_addr4(20, (int)i, 0, 1, 4000);

		h_link_server(&h, now++, &id, &a);
	}
	cr_assert(!in_table(&h, &newest));
	/* maintenance marks the first entries as kept */
	now = 2000;
	p2p_overlay_tick(h.o, now);
	h_clear(&h);
	/* the kept link drops, then every redial fails */
	p2p_overlay_link_down(h.o, now, &victim);
	fails++;
	for (int round = 0; round < 50 && in_table(&h, &victim); round++) {
		now = p2p_overlay_next_timer(h.o);
		cr_assert_neq(now, UINT64_MAX, "no redial scheduled");
		p2p_overlay_tick(h.o, now);
		h_drain(&h);
		for (size_t i = 0; i < h.log.n; i++) {
			const struct h_act *x = &h.log.v[i];

			if (x->a.type == P2P_OV_DIAL &&
			    p2p_peerid_equal(&x->a.peer, &victim)) {
				p2p_overlay_dial_failed(h.o, now, &victim);
				fails++;
			}
		}
		h_clear(&h);
	}
	cr_assert(!in_table(&h, &victim), "victim still in table");
	cr_assert(in_table(&h, &newest), "newest replacement not promoted");
	cr_assert_eq(table_size(&h), P2P_K);
	cr_assert_eq(fails, 3, "replacement took %d failures", fails);
	h_node_fini(&h);
}

Test(table, redial_of_kept_link_is_a_dial_action)
{
	struct p2p_peerid self = zero_id();
	struct p2p_peerid peer = h_id_in_bucket(&self, 3, 7);
	struct p2p_addr a = h_addr4(30, 1, 2, 3, 4242);
	const struct h_act *d;
	uint64_t now;
	struct h_node h;

	h_node_init(&h, &self, true, 3);
	h_link_server(&h, 1, &peer, &a);
	p2p_overlay_tick(h.o, 1000);
	h_clear(&h);
	p2p_overlay_link_down(h.o, 1000, &peer);
	/* back-off, then a dial; not before OV_REDIAL_MIN_S */
	for (int i = 0; i < 5 && h_count(&h, P2P_OV_DIAL, 0) == 0; i++) {
		now = p2p_overlay_next_timer(h.o);
		cr_assert_gt(now, 1000);
		cr_assert_lt(now, 1000 + 60000);
		p2p_overlay_tick(h.o, now);
		h_drain(&h);
	}
	cr_assert_geq(now, 1000 + 1000, "redial without back-off");
	d = h_find(&h, P2P_OV_DIAL, 0, 0);
	cr_assert_not_null(d, "kept link not redialled");
	cr_assert(p2p_peerid_equal(&d->a.peer, &peer));
	cr_assert(p2p_addr_equal(&d->a.addr, &a));
	h_node_fini(&h);
}

Test(table, subnet_limit_per_bucket)
{
	struct p2p_peerid self = zero_id();
	struct h_node h;

	h_node_init(&h, &self, true, 4);
	for (uint32_t i = 0; i < 4; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, 2, i + 1);
		struct p2p_addr a = h_addr4(40, 1, 1, (int)i + 1, 4000);

		h_link_server(&h, 1, &id, &a);
	}
	cr_assert_eq(table_size(&h), P2P_BUCKET_SUBNET_MAX);
	/* another /24 is fine */
	{
		struct p2p_peerid id = h_id_in_bucket(&self, 2, 99);
		struct p2p_addr a = h_addr4(40, 1, 2, 1, 4000);

		h_link_server(&h, 1, &id, &a);
	}
	cr_assert_eq(table_size(&h), P2P_BUCKET_SUBNET_MAX + 1);
	h_node_fini(&h);
}

Test(table, subnet_limit_per_table_ipv6_48)
{
	struct p2p_peerid self = zero_id();
	struct h_node h;

	h_node_init(&h, &self, true, 5);
	for (uint32_t i = 0; i < P2P_TABLE_SUBNET_MAX + 5; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, (int)i, 1);
		struct p2p_addr a;

		memset(&a, 0, sizeof(a));
		a.family = 6;
		a.ip[0] = 0x20;
		a.ip[1] = 0x01;
		a.ip[5] = 7;	      /* same /48 */
		a.ip[7] = (uint8_t)i; /* different /64 */
		a.ip[15] = 1;
		a.port = 4000;
		h_link_server(&h, 1, &id, &a);
	}
	cr_assert_eq(table_size(&h), P2P_TABLE_SUBNET_MAX);
	h_node_fini(&h);
}

Test(table, loopback_is_exempt_from_subnet_limits)
{
	struct p2p_peerid self = zero_id();
	struct h_node h;

	h_node_init(&h, &self, true, 6);
	for (uint32_t i = 0; i < 12; i++) {
		struct p2p_peerid id =
		    h_id_in_bucket(&self, (int)(i % 2), i + 1);
		struct p2p_addr a = h_addr4(127, 0, 0, 1, (uint16_t)(5000 + i));

		h_link_server(&h, 1, &id, &a);
	}
	cr_assert_eq(table_size(&h), 12);
	/* but a LAN /24 is limited like any other */
	for (uint32_t i = 0; i < 3; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, 5, i + 1);
		struct p2p_addr a = h_addr4(192, 168, 1, (int)i + 1, 4000);

		h_link_server(&h, 1, &id, &a);
	}
	cr_assert_eq(table_size(&h), 12 + P2P_BUCKET_SUBNET_MAX);
	/* issue 9: only 127.0.0.0/24 is exempt; 127.9.9.0/24 is a subnet
	 * (tests on one host play a foreign host there) */
	for (uint32_t i = 0; i < 3; i++) {
		struct p2p_peerid id = h_id_in_bucket(&self, 6, i + 1);
		struct p2p_addr a = h_addr4(127, 9, 9, 9, (uint16_t)(4000 + i));

		h_link_server(&h, 1, &id, &a);
	}
	cr_assert_eq(table_size(&h), 12 + 2 * P2P_BUCKET_SUBNET_MAX);
	h_node_fini(&h);
}

/* issue 9: third-party addresses told in NODES are dialled only when
 * plausible; loopback only when the informant is on loopback too. */
Test(table, dialable_addresses)
{
	struct p2p_addr lo = h_addr4(127, 0, 0, 1, 4000);
	struct p2p_addr pub = h_addr4(198, 51, 100, 1, 4000);
	struct p2p_addr a;

	cr_assert(p2p_overlay_addr_dialable(&pub, &pub));
	cr_assert(p2p_overlay_addr_dialable(&pub, NULL));
	a = h_addr4(198, 51, 100, 1, 0);
	cr_assert(!p2p_overlay_addr_dialable(&a, &pub), "port 0");
	a = h_addr4(0, 0, 0, 0, 4000);
	cr_assert(!p2p_overlay_addr_dialable(&a, &pub), "unspecified");
	a = h_addr4(0, 1, 2, 3, 4000);
	cr_assert(!p2p_overlay_addr_dialable(&a, &pub), "0/8");
	a = h_addr4(224, 0, 0, 1, 4000);
	cr_assert(!p2p_overlay_addr_dialable(&a, &pub), "multicast");
	a = h_addr4(255, 255, 255, 255, 4000);
	cr_assert(!p2p_overlay_addr_dialable(&a, &pub), "broadcast");
	cr_assert(!p2p_overlay_addr_dialable(&lo, &pub), "loopback, told");
	cr_assert(!p2p_overlay_addr_dialable(&lo, NULL));
	cr_assert(p2p_overlay_addr_dialable(&lo, &lo), "loopback, local");
	struct p2p_addr v6 = {.family = 6, .port = 4000};
	cr_assert(!p2p_overlay_addr_dialable(&v6, &pub), "::");
	v6.ip[15] = 1;
	cr_assert(!p2p_overlay_addr_dialable(&v6, &pub), "::1");
	v6.ip[0] = 0xff;
	cr_assert(!p2p_overlay_addr_dialable(&v6, &pub), "ff00::/8");
	struct p2p_addr none = {0};
	cr_assert(!p2p_overlay_addr_dialable(&none, &pub));
}

Test(table, clients_and_addressless_servers_stay_out)
{
	struct p2p_peerid self = zero_id();
	struct p2p_peerid c = h_id_in_bucket(&self, 0, 1);
	struct p2p_peerid s = h_id_in_bucket(&self, 0, 2);
	struct p2p_addr a = h_addr4(50, 0, 0, 1, 4000);
	struct p2p_addr none;
	struct p2p_overlay_stats st;
	struct h_node h;

	memset(&none, 0, sizeof(none));
	h_node_init(&h, &self, true, 7);
	p2p_overlay_link_up(h.o, 1, &c, &a, false, false);
	p2p_overlay_link_up(h.o, 1, &s, &none, true, false);
	h_drain(&h);
	p2p_overlay_get_stats(h.o, &st);
	cr_assert_eq(st.table_size, 0);
	cr_assert_eq(st.links, 2);
	/* a server that turns client leaves the table */
	h_link_server(&h, 2, &s, &a);
	cr_assert_eq(table_size(&h), 1);
	p2p_overlay_link_up(h.o, 3, &s, &a, false, false);
	cr_assert_eq(table_size(&h), 0);
	h_node_fini(&h);
}

Test(table, closest_matches_brute_force)
{
	struct h_rng r = {12345};
	struct p2p_peerid self = h_id_random(&r);
	struct p2p_peerid ids[60];
	struct h_node h;

	h_node_init(&h, &self, true, 8);
	for (int i = 0; i < 60; i++) {
		/* at most 5 per bucket so that all of them fit */
		struct p2p_peerid t = h_id_random(&r);
		int b = i % 12;
		struct p2p_addr a = h_addr4(60, i, 0, 1, 4000);

		ids[i] = h_id_in_bucket(&self, b, 0);
		memcpy(ids[i].b + b / 8 + 1, t.b + b / 8 + 1, 31 - b / 8);
		cr_assert_eq(p2p_peerid_common_bits(&self, &ids[i]), b);
		h_link_server(&h, 1, &ids[i], &a);
	}
	cr_assert_eq(table_size(&h), 60);
	for (int k = 0; k < 200; k++) {
		struct p2p_peerid t = k == 0 ? self : h_id_random(&r);
		struct p2p_peerid sorted[60];
		struct p2p_contact out[P2P_K];
		size_t n;

		memcpy(sorted, ids, sizeof(ids));
		for (int i = 1; i < 60; i++)
			for (int j = i;
			     j > 0 && p2p_peerid_cmp_dist(&t, &sorted[j],
							  &sorted[j - 1]) < 0;
			     j--) {
				struct p2p_peerid x = sorted[j];

				sorted[j] = sorted[j - 1];
				sorted[j - 1] = x;
			}
		n = p2p_overlay_closest(h.o, &t, out, P2P_K);
		cr_assert_eq(n, P2P_K);
		for (size_t i = 0; i < n; i++)
			cr_assert(p2p_peerid_equal(&out[i].id, &sorted[i]),
				  "target %d rank %zu", k, i);
	}
	h_node_fini(&h);
}

/*
 * The table-wide limit keeps per-bin counts of subnet hashes and scans the
 * table only when a bin looks full. 33 buckets of 20 distinct /24s put
 * more than P2P_TABLE_SUBNET_MAX entries in some bin (64 bins, 660
 * entries), so this walks the slow path and must still admit them all.
 */
Test(table, many_subnets_sharing_a_bin_are_all_admitted)
{
	struct p2p_peerid self = zero_id();
	struct h_node h;
	uint32_t n = 0;

	h_node_init(&h, &self, true, 7);
	for (int b = 0; b < 33; b++) {
		for (uint32_t i = 0; i < P2P_K; i++, n++) {
			struct p2p_peerid id = h_id_in_bucket(&self, b, i + 1);
			struct p2p_addr a =
			    h_addr4(10, (int)(n >> 8), (int)(n & 255), 1, 4000);

			h_link_server(&h, 1, &id, &a);
		}
	}
	cr_assert_eq(table_size(&h), n);
	h_node_fini(&h);
}

#define REDIAL_MIN_MS 2000 /* overlay/internal.h: OV_REDIAL_MIN_S */

/* The first DIAL to peer after time from: its time, or UINT64_MAX when
 * none comes within a minute. */
static uint64_t first_dial_after(struct h_node *h, uint64_t from,
				 const struct p2p_peerid *peer)
{
	uint64_t now = from;

	h_clear(h);
	while (now < from + 60000) {
		now = p2p_overlay_next_timer(h->o);
		if (now == UINT64_MAX)
			break;
		p2p_overlay_tick(h->o, now);
		h_drain(h);
		for (size_t i = 0; i < h->log.n; i++)
			if (h->log.v[i].a.type == P2P_OV_DIAL &&
			    p2p_peerid_equal(&h->log.v[i].a.peer, peer))
				return now;
		h_clear(h);
	}
	return UINT64_MAX;
}

/*
 * A link too young to be one we keep (no maintenance since it came up)
 * that goes down is redialled at the next maintenance; one the peer
 * closed (GOAWAY: a `p2pctl disconnect` there) waits out a failure's
 * back-off, so a daemon does not undo its peer's disconnect at once.
 */
Test(table, link_closed_by_peer_is_not_redialled_at_once)
{
	struct p2p_peerid self = zero_id();
	struct p2p_peerid peer = h_id_in_bucket(&self, 3, 7);
	struct p2p_addr a = h_addr4(30, 1, 2, 3, 4242);
	struct h_node h;
	uint64_t at;

	h_node_init(&h, &self, true, 3);
	h_link_server(&h, 1000, &peer, &a);
	p2p_overlay_link_down(h.o, 1010, &peer);
	at = first_dial_after(&h, 1010, &peer);
	cr_assert_lt(at, 1010 + REDIAL_MIN_MS,
		     "a young link lost at 1010 ms redialled at %llu",
		     (unsigned long long)at);
	h_node_fini(&h);

	h_node_init(&h, &self, true, 3);
	h_link_server(&h, 1000, &peer, &a);
	p2p_overlay_link_closed(h.o, 1010, &peer);
	at = first_dial_after(&h, 1010, &peer);
	cr_assert_neq(at, UINT64_MAX, "never redialled");
	cr_assert_geq(at, 1010 + REDIAL_MIN_MS - 1000,
		      "redialled at %llu ms, the peer closed it at 1010",
		      (unsigned long long)at);
	h_node_fini(&h);
}
