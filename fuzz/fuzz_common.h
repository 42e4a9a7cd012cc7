/* Shared by the fuzz targets and the seed generator. */
#ifndef P2P_FUZZ_COMMON_H
#define P2P_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "proto/identity.h"

/*
 * Make libsodium's randombytes deterministic (a fixed xorshift stream
 * restarted by fuzz_rng_reset) so every input replays exactly. Call
 * before sodium_init(). Fuzzing only: never for real keys.
 */
void fuzz_rng_install(void);
void fuzz_rng_reset(uint64_t seed);

/* Two fixed identities: 0 is the initiator, 1 the responder. */
void fuzz_identity(struct p2p_identity *id, int which);

/* Split input into chunks: u16 big-endian length then bytes (clamped). */
struct fuzz_reader {
	const uint8_t *p;
	size_t len;
};
int fuzz_next_chunk(struct fuzz_reader *r, const uint8_t **chunk, size_t *len);

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			__builtin_trap();                                      \
	} while (0)

#endif
