/*
 * Deterministic randomness for the simulator: xoshiro256** seeded through
 * splitmix64, so that one --seed reproduces a whole run bit for bit.
 */
#ifndef P2PSIM_RNG_H
#define P2PSIM_RNG_H

#include <stddef.h>
#include <stdint.h>

struct sim_rng {
	uint64_t s[4];
};

/* One splitmix64 step; also a good 64-bit mixing hash. */
uint64_t sim_splitmix64(uint64_t *state);
uint64_t sim_hash64(uint64_t x);

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n), n > 0, without modulo bias. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
void sim_rng_fill(struct sim_rng *r, void *buf, size_t len);

#endif
