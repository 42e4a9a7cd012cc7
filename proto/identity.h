/*
 * A daemon's long-term Ed25519 identity and its on-disk form.
 *
 * identity.key holds one line: "p2pd-ed25519-v1 " followed by the 64-byte
 * libsodium secret key (seed || public key) in lowercase hex, then "\n".
 * The file is mode 0600; a file readable or writable by group or others, or
 * owned by another user, is refused, as is anything that does not parse or
 * whose public half does not match its seed.
 */
#ifndef P2P_PROTO_IDENTITY_H
#define P2P_PROTO_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "peerid.h"

/*
 * The secret key is the only copy in the process: 64 bytes of libsodium
 * guarded memory (sodium_malloc: guard pages around it, locked out of
 * swap where the limit allows) kept read-only, so a stray write or an
 * overrun faults instead of leaking or changing it. Copying the struct
 * copies the reference, not the key: sessions and the node refer to it,
 * and exactly one p2p_identity_wipe releases it, after its last user.
 */
struct p2p_identity {
	uint8_t pk[32];
	const uint8_t *sk; /* 64 bytes: seed | pk; NULL once wiped */
	struct p2p_peerid id;
};

/*
 * New random identity. ident is overwritten (wipe it first if it held a
 * key). 0, or -ENOMEM when no guarded memory is left (ident->sk NULL).
 */
int p2p_identity_generate(struct p2p_identity *ident);

/* Derive from a 32-byte seed (tests, known answers). As generate. */
int p2p_identity_from_seed(struct p2p_identity *ident, const uint8_t seed[32]);

/*
 * Load path into ident. Returns 0, -ENOENT when the file does not exist,
 * -EPERM when group/other permission bits are set or the file belongs to
 * another user than the effective uid, -EPROTO when malformed,
 * or another negative errno from the file system. On failure a one-line
 * reason is written to err (errlen bytes) when err is not NULL.
 */
int p2p_identity_load(struct p2p_identity *ident, const char *path, char *err,
		      size_t errlen) __attribute__((warn_unused_result));

/*
 * Create path with mode 0600 holding ident. Never overwrites: an existing
 * file gives -EEXIST. Written to a temporary file and linked into place so
 * a crash leaves no half-written key.
 */
int p2p_identity_save(const struct p2p_identity *ident, const char *path)
    __attribute__((warn_unused_result));

/* Wipe and release the secret key; sk becomes NULL. Idempotent. */
void p2p_identity_wipe(struct p2p_identity *ident);

#endif
