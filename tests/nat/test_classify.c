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

/* Observer who, reached at an address of network net (a /24 each). */
static void obs_in(struct p2p_addr local, struct p2p_addr seen, uint8_t who,
		   uint8_t net)
{
	struct p2p_peerid id = peer(who);
	struct p2p_addr at = v4(100, net, 0, who, 4242);
	cr_assert_eq(p2p_nat_observe(nat, who, &local, &seen, &id, &at), 0);
}

/* Observer who in a network of its own. */
static void obs(struct p2p_addr local, struct p2p_addr seen, uint8_t who)
{
	obs_in(local, seen, who, who);
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
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN,
		     "two disagreeing networks: one of them may be lying");
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61013), 3);
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
	cr_assert_eq(p2p_nat_observe(nat, 1, &none, &l, &id, &l), -EINVAL);
	cr_assert_eq(p2p_nat_observe(nat, 1, &l, &o6, &id, &l), -EINVAL);
	cr_assert_eq(p2p_nat_observe(nat, 1, &l, &l, &id, &none), -EINVAL);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN);
}

Test(nat, external_addresses_newest_first_and_distinct)
{
	obs(v4(192, 168, 1, 2, 1), v4(203, 0, 113, 9, 1), 1);
	obs(v4(192, 168, 1, 2, 2), v4(203, 0, 113, 9, 2), 2);
	obs(v4(192, 168, 1, 2, 3), v4(198, 51, 100, 1, 3), 3);
	struct p2p_addr out[4];
	size_t n = p2p_nat_external(nat, out, 4);
	cr_assert_eq(n, 1, "an IP only one network saw is offered");
	cr_assert_eq(out[0].ip[0], 203);
	cr_assert_eq(out[0].port, 2, "latest port of that IP");
	/* a second network sees the new IP too: it counts, newest first */
	obs(v4(192, 168, 1, 2, 4), v4(198, 51, 100, 1, 4), 4);
	n = p2p_nat_external(nat, out, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0].ip[0], 198);
	cr_assert_eq(out[1].ip[0], 203);
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

/* ---- agreement of observers (issue 9) ---- */

/* Attack: one observer lies about the port of our listen port, which two
 * honest networks see port-preserved. */
Test(nat, one_liar_cannot_make_us_dependent)
{
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 4242), 1);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 4242), 2);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 50001), 66);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING,
		     "one observer made us endpoint-dependent");
	/* nor can many identities of one /24 */
	for (uint8_t who = 67; who < 75; who++)
		obs_in(v4(192, 168, 1, 2, 4242),
		       v4(203, 0, 113, 9, (uint16_t)(50000 + who)), who, 66);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING,
		     "one /24 made us endpoint-dependent");
}

/* Attack: the liar also says where we are, to steer our punch candidates. */
Test(nat, one_liar_cannot_steer_the_mapping)
{
	struct p2p_addr m, out[4];

	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 1);
	obs(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 2);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_ENDPOINT_INDEPENDENT);
	/* newest, from its own network, another IP and port */
	obs(v4(192, 168, 1, 2, 4242), v4(192, 0, 2, 66, 22), 66);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_ENDPOINT_INDEPENDENT);
	cr_assert_eq(p2p_nat_mapped(nat, 4, 4242, &m), 0);
	cr_assert(
	    p2p_addr_equal(&m, &(struct p2p_addr){.family = 4,
						  .port = 61000,
						  .ip = {203, 0, 113, 9}}),
	    "the liar's mapping offered");
	cr_assert_eq(p2p_nat_external(nat, out, 4), 1);
	cr_assert_eq(out[0].ip[0], 203);
}

/* A classification from one observer's network stands while it is the
 * only one (a network whose only public node is its bootstrap). */
Test(nat, one_network_alone_is_believed)
{
	struct p2p_addr m;

	obs_in(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 1, 7);
	cr_assert_eq(p2p_nat_mapped(nat, 4, 4242, &m), 0);
	cr_assert_eq(m.port, 61000);
	obs_in(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 61000), 2, 7);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_ENDPOINT_INDEPENDENT);
	p2p_nat_free(nat);
	nat = p2p_nat_new();
	/* one bootstrap, two of our local ports: port-preserving */
	obs_in(v4(192, 168, 1, 2, 4242), v4(203, 0, 113, 9, 4242), 1, 7);
	obs_in(v4(192, 168, 1, 2, 5000), v4(203, 0, 113, 9, 5000), 1, 7);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING);
	/* a second network that disagrees: nobody is believed alone now */
	obs_in(v4(192, 168, 1, 2, 4242), v4(198, 51, 100, 1, 9999), 66, 66);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_UNKNOWN);
	cr_assert_eq(p2p_nat_mapped(nat, 4, 4242, &m), -ENOENT);
	/* a public node's lone bootstrap: none */
	p2p_nat_free(nat);
	nat = p2p_nat_new();
	obs_in(v4(198, 51, 100, 7, 4242), v4(198, 51, 100, 7, 4242), 1, 7);
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_NONE);
}

/* An IPv6 observer's network is its /48. */
Test(nat, ipv6_networks_are_48s)
{
	struct p2p_addr l = {.family = 6, .port = 4242, .ip = {0xfd, [15] = 2}};
	struct p2p_addr seen = {.family = 6,
				.port = 4242,
				.ip = {0x20, 0x01, 0x0d, 0xb8, [15] = 9}};
	struct p2p_addr liar = seen;
	struct p2p_peerid id;

	liar.port = 1;
	for (uint8_t who = 1; who <= 2; who++) {
		struct p2p_addr at = {.family = 6,
				      .port = 4242,
				      .ip = {0x20, 0x01, 0x0d, 0xb8, 0, who}};
		id = peer(who);
		cr_assert_eq(p2p_nat_observe(nat, who, &l, &seen, &id, &at), 0);
	}
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING);
	/* three liars in one /48 (they differ past it) */
	for (uint8_t who = 3; who <= 5; who++) {
		struct p2p_addr at = {
		    .family = 6,
		    .port = 4242,
		    .ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0x66, who}};
		id = peer(who);
		liar.port = who;
		cr_assert_eq(p2p_nat_observe(nat, who, &l, &liar, &id, &at), 0);
	}
	cr_assert_eq(p2p_nat_type(nat), P2P_NAT_PORT_PRESERVING);
}
