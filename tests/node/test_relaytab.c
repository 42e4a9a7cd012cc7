/* The relay's circuit table (daemon/relaytab.c): limits, both ends, IDs. */
#include <criterion/criterion.h>
#include <errno.h>

#include "relaytab.h"

static int links[RELAY_CIRC_MAX + 2]; /* opaque link identities */

Test(relaytab, both_ends_find_each_other)
{
	struct relay_tab t = {0};
	const void *o = NULL;
	uint32_t oc = 0;
	struct relay_circ *r;

	cr_assert_eq(relay_tab_add(&t, &links[0], 1, &links[1], 2), 0);
	cr_assert_eq(t.n, 1);
	r = relay_tab_find(&t, &links[0], 1, &o, &oc);
	cr_assert_not_null(r);
	cr_assert_eq(o, &links[1]);
	cr_assert_eq(oc, 2);
	cr_assert_eq(relay_tab_find(&t, &links[1], 2, &o, &oc), r);
	cr_assert_eq(o, &links[0]);
	cr_assert_eq(oc, 1);
	/* The same ID on the other link, or another ID: no circuit. */
	cr_assert_null(relay_tab_find(&t, &links[1], 1, &o, &oc));
	cr_assert_null(relay_tab_find(&t, &links[0], 2, &o, &oc));
	cr_assert_null(relay_tab_find(&t, &links[2], 1, &o, &oc));
	cr_assert(relay_tab_used(&t, &links[0], 1));
	cr_assert(relay_tab_used(&t, &links[1], 2));
	cr_assert_not(relay_tab_used(&t, &links[0], 2));
	relay_tab_del(&t, r);
	cr_assert_eq(t.n, 0);
	cr_assert_null(relay_tab_find(&t, &links[0], 1, &o, &oc));
}

Test(relaytab, ids_in_use_and_loops_refused)
{
	struct relay_tab t = {0};

	cr_assert_eq(relay_tab_add(&t, &links[0], 1, &links[1], 2), 0);
	cr_assert_eq(relay_tab_add(&t, &links[0], 1, &links[2], 4), -EEXIST);
	cr_assert_eq(relay_tab_add(&t, &links[2], 3, &links[1], 2), -EEXIST);
	/* An ID used as the b end is in use for an a end on that link. */
	cr_assert_eq(relay_tab_add(&t, &links[1], 2, &links[2], 6), -EEXIST);
	cr_assert_eq(relay_tab_add(&t, &links[3], 1, &links[3], 2), -EINVAL);
	cr_assert_eq(t.n, 1);
	relay_tab_clear(&t);
	cr_assert_eq(t.n, 0);
	cr_assert_null(t.circs);
}

Test(relaytab, per_peer_limit)
{
	struct relay_tab t = {0};
	uint32_t i;

	for (i = 0; i < RELAY_CIRC_PER_LINK; i++)
		cr_assert_eq(
		    relay_tab_add(&t, &links[0], 2 * i + 1, &links[1], 2 * i),
		    0);
	cr_assert_eq(relay_tab_add(&t, &links[0], 999, &links[1], 1000),
		     -EBUSY);
	/* The limit is on who opens: the target's side may still open. */
	cr_assert_eq(relay_tab_add(&t, &links[1], 999, &links[0], 1000), 0);
	/* One of links[0]'s closes: it may open one more. */
	const void *o;
	uint32_t oc;
	relay_tab_del(&t, relay_tab_find(&t, &links[0], 1, &o, &oc));
	cr_assert_eq(relay_tab_add(&t, &links[0], 1001, &links[1], 1002), 0);
	cr_assert_eq(relay_tab_add(&t, &links[0], 1003, &links[1], 1004),
		     -EBUSY);
	relay_tab_clear(&t);
}

Test(relaytab, total_limit)
{
	struct relay_tab t = {0};
	unsigned added = 0;

	/* Each circuit from its own link, so only the total limit applies. */
	for (unsigned i = 0; i < RELAY_CIRC_MAX + 1; i++) {
		int rc = relay_tab_add(&t, &links[i], 1,
				       &links[RELAY_CIRC_MAX + 1], 2 * i);
		if (i < RELAY_CIRC_MAX) {
			cr_assert_eq(rc, 0, "circuit %u", i);
			added++;
		} else {
			cr_assert_eq(rc, -EBUSY);
		}
	}
	cr_assert_eq(t.n, added);
	cr_assert_eq(t.n, RELAY_CIRC_MAX);
	relay_tab_clear(&t);
}

Test(relaytab, on_finds_every_circuit_of_a_link)
{
	struct relay_tab t = {0};
	struct relay_circ *r;
	unsigned n = 0;

	cr_assert_eq(relay_tab_add(&t, &links[0], 1, &links[1], 2), 0);
	cr_assert_eq(relay_tab_add(&t, &links[2], 1, &links[0], 4), 0);
	cr_assert_eq(relay_tab_add(&t, &links[2], 3, &links[1], 4), 0);
	while ((r = relay_tab_on(&t, &links[0])) != NULL) {
		relay_tab_del(&t, r);
		n++;
	}
	cr_assert_eq(n, 2);
	cr_assert_eq(t.n, 1);
	cr_assert_null(relay_tab_on(&t, &links[0]));
	cr_assert_not_null(relay_tab_on(&t, &links[1]));
	relay_tab_clear(&t);
}
