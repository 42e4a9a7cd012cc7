/*
 * Signed routed PING/PONG payloads (proto/rping.h). The source ID is the
 * hash of whatever public key the input carries, so inputs get past the
 * key check; the first byte of the kind decides which kind is expected.
 * Seeds are signed by fuzz identity 0 for identity 1. Whatever decodes
 * must encode again to exactly the input bytes (Ed25519 signatures are
 * deterministic).
 */
#include <string.h>

#include "fuzz_common.h"
#include "proto/error.h"
#include "proto/rping.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p2p_identity ids[2];
	static int init;
	enum p2p_rping_kind kind = P2P_RPING_PING;
	uint8_t out[P2P_RPING_LEN];
	struct p2p_peerid src;
	uint64_t nonce;
	int rc;

	if (!init) {
		fuzz_identity(&ids[0], 0);
		fuzz_identity(&ids[1], 1);
		init = 1;
	}
	src = ids[0].id;
	if (size >= 42)
		p2p_peerid_from_pk(&src, data + 10);
	if (size >= 2 && data[1] == P2P_RPING_PONG)
		kind = P2P_RPING_PONG;
	rc = p2p_rping_decode(data, size, kind, &src, &ids[1].id, &nonce);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EPROTO || rc == -EPROTONOSUPPORT ||
			   rc == -EKEYREJECTED || rc == -EBADMSG);
		return 0;
	}
	FUZZ_CHECK(size == P2P_RPING_LEN);
	if (p2p_peerid_equal(&src, &ids[0].id)) {
		FUZZ_CHECK(p2p_rping_encode(kind, nonce, &ids[0], &ids[1].id,
					    out) == 0);
		FUZZ_CHECK(memcmp(out, data, size) == 0);
	}
	return 0;
}
