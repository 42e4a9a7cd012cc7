/* The simulator's event heap and PRNG: order, ties, determinism. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "heap.h"
#include "rng.h"

static struct sim_event ev(uint64_t at, uint32_t tag)
{
	struct sim_event e = {.at = at, .aux = tag};

	return e;
}

Test(heap, empty_pops_nothing)
{
	struct sim_heap h;
	struct sim_event e;

	sim_heap_init(&h);
	cr_assert_not(sim_heap_pop(&h, &e));
	cr_assert_eq(sim_heap_peek_time(&h), UINT64_MAX);
	sim_heap_deinit(&h);
}

Test(heap, pops_in_time_order_and_fifo_on_ties)
{
	struct sim_heap h;
	struct sim_event e;
	uint64_t times[] = {50, 10, 30, 10, 50, 0, 30, 10};
	size_t n = sizeof(times) / sizeof(times[0]);

	sim_heap_init(&h);
	for (size_t i = 0; i < n; i++) {
		struct sim_event x = ev(times[i], (uint32_t)i);

		cr_assert_eq(sim_heap_push(&h, &x), 0);
	}
	uint64_t last_at = 0;
	uint32_t last_tag = 0;

	for (size_t k = 0; k < n; k++) {
		cr_assert(sim_heap_pop(&h, &e));
		cr_assert_geq(e.at, last_at);
		/* Same time: inserted earlier pops earlier. */
		if (k > 0 && e.at == last_at)
			cr_assert_gt(e.aux, last_tag);
		last_at = e.at;
		last_tag = e.aux;
	}
	cr_assert_not(sim_heap_pop(&h, &e));
	sim_heap_deinit(&h);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

Test(heap, random_interleaving_matches_sorted_order)
{
	enum { N = 20000 };
	struct sim_heap h;
	struct sim_rng r;
	struct sim_event e;
	uint64_t *want = malloc(N * sizeof(*want));
	size_t nwant = 0, popped = 0;

	sim_heap_init(&h);
	sim_rng_seed(&r, 7);
	/* Push everything (with pops in between), then check global order. */
	for (size_t i = 0; i < N; i++) {
		struct sim_event x = ev(sim_rng_below(&r, 1000), (uint32_t)i);

		want[nwant++] = x.at;
		cr_assert_eq(sim_heap_push(&h, &x), 0);
	}
	qsort(want, nwant, sizeof(*want), cmp_u64);
	while (sim_heap_pop(&h, &e)) {
		cr_assert_eq(e.at, want[popped], "pop %zu: %llu != %llu",
			     popped, (unsigned long long)e.at,
			     (unsigned long long)want[popped]);
		popped++;
	}
	cr_assert_eq(popped, N);
	free(want);
	sim_heap_deinit(&h);
}

Test(rng, same_seed_same_stream_other_seed_other_stream)
{
	struct sim_rng a, b, c;

	sim_rng_seed(&a, 42);
	sim_rng_seed(&b, 42);
	sim_rng_seed(&c, 43);
	int differ = 0;

	for (int i = 0; i < 100; i++) {
		uint64_t x = sim_rng_next(&a);

		cr_assert_eq(x, sim_rng_next(&b));
		differ += x != sim_rng_next(&c);
	}
	cr_assert_gt(differ, 90);
}

Test(rng, below_stays_in_range_and_covers_it)
{
	struct sim_rng r;
	int seen[10] = {0};

	sim_rng_seed(&r, 1);
	for (int i = 0; i < 10000; i++) {
		uint64_t x = sim_rng_below(&r, 10);

		cr_assert_lt(x, 10);
		seen[x]++;
	}
	/* Each bucket near 1000: a biased or stuck generator fails. */
	for (int k = 0; k < 10; k++)
		cr_assert(seen[k] > 850 && seen[k] < 1150, "bucket %d: %d", k,
			  seen[k]);
	for (int i = 0; i < 1000; i++) {
		double u = sim_rng_unit(&r);

		cr_assert(u >= 0 && u < 1);
	}
}

Test(rng, fill_is_deterministic_for_odd_lengths)
{
	struct sim_rng a, b;
	uint8_t x[13], y[13];

	sim_rng_seed(&a, 5);
	sim_rng_seed(&b, 5);
	sim_rng_fill(&a, x, sizeof(x));
	sim_rng_fill(&b, y, sizeof(y));
	cr_assert_arr_eq(x, y, sizeof(x));
	sim_rng_fill(&a, x, sizeof(x));
	cr_assert_arr_neq(x, y, sizeof(x));
}
