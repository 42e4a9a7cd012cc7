/* NAT classification from hand-built observations, no sockets. */
#include <criterion/criterion.h>
#include <string.h>

#include "nat/nat.h"
#include "proto/error.h"

static struct p2p_addr v4(int a, int b, int c, int d, uint16_t port)
{
	struct p2p_addr x = {.family = 4, .port = port};
	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

static struct p2p_peerid peer(uint8_t n)
{
	struct p2p_peerid id;
	memset(id.b, n, sizeof(id.b));
	return id;
}

static struct p2p_nat *nat;

static void setup(void)
{
	nat = p2p_nat_new();
	cr_assert_not_null(nat);
}

static void teardown(void)
{
	p2p_nat_free(nat);
}

static void obs(struct p2p_addr local, struct p2p_addr seen, uint8_t who)
{
	struct p2p_peerid id = peer(who);
	cr_assert_eq(p2p_nat_observe(nat, who, &local, &seen, &id), 0);
}

TestSuite(nat, .init = setup, .fini = teardown);

Test(nat, unknown_without_evidence)
{
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN);
	cr_assert_str_eq(p2p_nat_type_name(p2p_nat_type(nat)), "unknown");
	struct p2p_addr out[2];
	cr_assert_eq(p2p_nat_external(nat, out, 2), 0);
}

Test(nat, public_address_is_none)
{
	obs(v4(198, 51, 100, 7, 40000), v4(198, 51, 100, 7, 40000), 1);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_NONE);
	cr_assert_str_eq(p2p_nat_type_name(P2P_NAT_NONE), "none");
}

Test(nat, port_preserving_needs_two_observers)
{
	obs(v4(192, 168, 1, 2, 40000), v4(203, 0, 113, 9, 40000), 1);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN,
		     "one observer is not enough evidence");
	obs(v4(192, 168, 1, 2, 40001), v4(203, 0, 113, 9, 40001), 2);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING);
	cr_assert_str_eq(p2p_nat_type_name(P2P_NAT_PORT_PRESERVING),
			 "port-preserving");
}

Test(nat, endpoint_independent_from_reused_port)
{
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 1);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 2);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_ENDPOINT_INDEPENDENT);
}

Test(nat, endpoint_dependent_from_reused_port)
{
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 1);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61007), 2);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_ENDPOINT_DEPENDENT);
	cr_assert_str_eq(p2p_nat_type_name(P2P_NAT_ENDPOINT_DEPENDENT),
			 "endpoint-dependent");
}

Test(nat, changed_ports_on_fresh_ports_are_not_guessed)
{
	obs(v4(192, 168, 1, 2, 40000), v4(203, 0, 113, 9, 1000), 1);
	obs(v4(192, 168, 1, 2, 40001), v4(203, 0, 113, 9, 1001), 2);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN);
}

Test(nat, repeat_observer_replaces_its_vote)
{
	/* The same observer twice must not count as two observers. */
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 1);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61005), 1);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN);
}

Test(nat, bad_observations_rejected)
{
	struct p2p_addr none = {0}, l = v4(10, 0, 0, 1, 5),
			o6 = {.family = 6, .port = 5};
	struct p2p_peerid id = peer(1);
	cr_assert_eq(p2p_nat_observe(nat, 1, &none, &l, &id), -EINVAL);
	cr_assert_eq(p2p_nat_observe(nat, 1, &l, &o6, &id), -EINVAL);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN);
}

Test(nat, external_addresses_newest_first_and_distinct)
{
	obs(v4(192, 168, 1, 2, 1), v4(203, 0, 113, 9, 1), 1);
	obs(v4(192, 168, 1, 2, 2), v4(203, 0, 113, 9, 2), 2);
	obs(v4(192, 168, 1, 2, 3), v4(198, 51, 100, 1, 3), 3);
	struct p2p_addr out[4];
	size_t n = p2p_nat_external(nat, out, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0].ip[0], 198);
	cr_assert_eq(out[1].ip[0], 203);
	cr_assert_eq(out[1].port, 2, "latest port of that IP");
}

Test(nat, ring_keeps_newest_observations)
{
	/* Fill the ring with a dependent NAT's evidence, then overwrite it
	 * all with a public address: only the newest count. */
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 1);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61007), 2);
	for (int i = 0; i < P2P_NAT_OBS_MAX; i++)
		obs(v4(198, 51, 100, 7, 1000 + i),
		    v4(198, 51, 100, 7, 1000 + i), (uint8_t)(10 + i));
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_NONE);
}
