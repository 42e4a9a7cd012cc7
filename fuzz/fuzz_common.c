/* Deterministic randomness and fixed identities for the fuzz targets. */
#include <string.h>

#include <sodium.h>

#include "fuzz_common.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

void fuzz_rng_reset(uint64_t seed)
{
	rng_state = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

static uint64_t next64(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static const char *rng_name(void)
{
	return "fuzz-xorshift";
}

static uint32_t rng_random(void)
{
	return (uint32_t)(next64() >> 32);
}

static void rng_buf(void *const buf, const size_t size)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < size; i++)
		p[i] = (uint8_t)(next64() >> 56);
}

static struct randombytes_implementation rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .stir = NULL,
    .uniform = NULL, /* libsodium falls back to random() */
    .buf = rng_buf,
    .close = NULL,
};

void fuzz_rng_install(void)
{
	randombytes_set_implementation(&rng_impl);
	if (sodium_init() < 0)
		__builtin_trap();
}

void fuzz_identity(struct p2p_identity *id, int which)
{
	uint8_t seed[32];

	memset(seed, which ? 0x52 : 0x49, sizeof(seed));
	p2p_identity_from_seed(id, seed);
}

int fuzz_next_chunk(struct fuzz_reader *r, const uint8_t **chunk, size_t *len)
{
	size_t n;

	if (r->len < 2)
		return 0;
	n = (size_t)r->p[0] << 8 | r->p[1];
	r->p += 2;
	r->len -= 2;
	if (n > r->len)
		n = r->len;
	*chunk = r->p;
	*len = n;
	r->p += n;
	r->len -= n;
	return 1;
}
