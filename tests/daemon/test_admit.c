/*
 * admit.h: the budget of unauthenticated inbound connections and the
 * per-IP handshake rate, with fake time (ms) and no sockets.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "daemon/admit.h"

static struct p2p_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	struct p2p_addr x = {.family = 4, .port = 4000};

	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

Test(admit, per_ip_cap_and_release)
{
	struct admit *a = admit_new();
	struct p2p_addr x = v4(198, 51, 100, 7);
	uint32_t id = 1;

	for (int i = 0; i < ADMIT_PER_IP; i++)
		cr_assert_eq(admit_accept(a, 1, &x, id++), 0);
	cr_assert_eq(admit_accept(a, 1, &x, id++), -EBUSY);
	cr_assert_eq(admit_stats(a)->over_ip, 1);
	/* Another IP of another subnet is not affected. */
	struct p2p_addr y = v4(203, 0, 113, 9);
	cr_assert_eq(admit_accept(a, 1, &y, 100), 0);
	cr_assert_eq(admit_pending(a), ADMIT_PER_IP + 1);
	/* A handshake done (or a link gone) frees its slot, once. */
	admit_release(a, 1);
	admit_release(a, 1);
	admit_release(a, 9999);
	cr_assert_eq(admit_pending(a), ADMIT_PER_IP);
	cr_assert_eq(admit_accept(a, 2, &x, id++), 0);
	admit_free(a);
}

Test(admit, per_subnet_cap)
{
	struct admit *a = admit_new();
	uint32_t id = 1;
	uint8_t host = 1;

	/* ADMIT_PER_IP from each of a few IPs of one /24. */
	while (admit_pending(a) < ADMIT_PER_NET) {
		struct p2p_addr x = v4(198, 51, 100, host++);
		for (int i = 0;
		     i < ADMIT_PER_IP && admit_pending(a) < ADMIT_PER_NET; i++)
			cr_assert_eq(admit_accept(a, 1, &x, id++), 0);
	}
	struct p2p_addr z = v4(198, 51, 100, 250);
	cr_assert_eq(admit_accept(a, 1, &z, id++), -EBUSY);
	cr_assert_eq(admit_stats(a)->over_net, 1);
	struct p2p_addr o = v4(198, 51, 101, 250);
	cr_assert_eq(admit_accept(a, 1, &o, id++), 0);
	admit_free(a);
}

Test(admit, total_cap)
{
	struct admit *a = admit_new();
	uint32_t id = 1;

	for (int i = 0; i < ADMIT_PENDING_MAX; i++) {
		struct p2p_addr x = v4(10, (uint8_t)i, 0, 1);
		cr_assert_eq(admit_accept(a, 1, &x, id++), 0);
	}
	struct p2p_addr y = v4(10, 200, 0, 1);
	cr_assert_eq(admit_accept(a, 1, &y, id++), -EBUSY);
	cr_assert_eq(admit_stats(a)->over_total, 1);
	admit_release(a, 5);
	cr_assert_eq(admit_accept(a, 1, &y, id++), 0);
	admit_free(a);
}

/* One IP gets its burst, then ADMIT_RATE_PER_S a second. */
Test(admit, per_ip_rate)
{
	struct admit *a = admit_new();
	struct p2p_addr x = v4(198, 51, 100, 7);
	uint32_t id = 1;
	int ok = 0;

	for (int i = 0; i < 1000; i++) {
		if (admit_accept(a, 1000, &x, id) == 0) {
			ok++;
			admit_release(a, id); /* handshake done at once */
		}
		id++;
	}
	cr_assert_eq(ok, ADMIT_BURST);
	cr_assert_eq(admit_accept(a, 1000, &x, id++), -EAGAIN);
	/* Ten seconds of attempts every ms: about the rate, no more. */
	ok = 0;
	for (uint64_t t = 1001; t <= 11000; t++) {
		if (admit_accept(a, t, &x, id) == 0) {
			ok++;
			admit_release(a, id);
		}
		id++;
	}
	cr_assert(ok >= 10 * ADMIT_RATE_PER_S - 1 &&
		      ok <= 10 * ADMIT_RATE_PER_S + 1,
		  "%d handshakes in 10 s", ok);
	/* Another IP still has its burst. */
	struct p2p_addr y = v4(203, 0, 113, 9);
	cr_assert_eq(admit_accept(a, 11000, &y, id++), 0);
	admit_free(a);
}

/* Many IPs: the node-wide bucket bounds the total. */
Test(admit, total_rate)
{
	struct admit *a = admit_new();
	uint32_t id = 1;
	int ok = 0;

	for (int i = 0; i < 5000; i++) {
		struct p2p_addr x = v4(10, (uint8_t)(i >> 8), (uint8_t)i, 1);
		if (admit_accept(a, 1, &x, id) == 0) {
			ok++;
			admit_release(a, id);
		}
		id++;
	}
	cr_assert_eq(ok, ADMIT_BURST_TOTAL);
	cr_assert_gt(admit_stats(a)->rate_total, 0);
	admit_free(a);
}

/* A refused connection costs no token: the budget is checked first. */
Test(admit, refused_costs_no_token)
{
	struct admit *a = admit_new();
	struct p2p_addr x = v4(198, 51, 100, 7);
	uint32_t id = 1;

	for (int i = 0; i < ADMIT_PER_IP; i++)
		cr_assert_eq(admit_accept(a, 1, &x, id++), 0);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(admit_accept(a, 1, &x, 5000 + i), -EBUSY);
	for (uint32_t i = 1; i <= ADMIT_PER_IP; i++)
		admit_release(a, i);
	for (int i = 0; i < ADMIT_BURST - ADMIT_PER_IP; i++) {
		cr_assert_eq(admit_accept(a, 1, &x, id), 0);
		admit_release(a, id++);
	}
	cr_assert_eq(admit_accept(a, 1, &x, id), -EAGAIN);
	admit_free(a);
}

/* IPv6: one /48 is one subnet. */
Test(admit, v6_subnet)
{
	struct admit *a = admit_new();
	struct p2p_addr x = {.family = 6, .port = 1};
	uint32_t id = 1;

	x.ip[0] = 0x20, x.ip[1] = 0x01, x.ip[2] = 0x0d, x.ip[3] = 0xb8;
	for (int i = 0; i < ADMIT_PER_NET; i++) {
		x.ip[15] = (uint8_t)(i / 4), x.ip[14] = (uint8_t)i;
		cr_assert_eq(admit_accept(a, 1, &x, id++), 0);
	}
	x.ip[8] = 0x77;
	cr_assert_eq(admit_accept(a, 1, &x, id++), -EBUSY);
	x.ip[5] = 0x01; /* another /48 */
	cr_assert_eq(admit_accept(a, 1, &x, id++), 0);
	admit_free(a);
}
