/*
 * Hole punching signalling payloads (nat/punch.h). The source ID is the
 * hash of whatever public key the input carries, so inputs get past the
 * key check; seeds are signed by fuzz identity 0 for identity 1, so the
 * fuzzer starts from payloads that verify. Whatever decodes must encode
 * again to exactly the input bytes (Ed25519 signatures are deterministic).
 */
#include <string.h>

#include "fuzz_common.h"
#include "nat/punch.h"
#include "proto/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[P2P_PUNCH_PAYLOAD_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p2p_identity ids[2];
	static int init;
	struct p2p_punch_sig s;
	struct p2p_peerid src;
	size_t n, ncand;
	int rc;

	if (!init) {
		fuzz_identity(&ids[0], 0);
		fuzz_identity(&ids[1], 1);
		init = 1;
	}
	src = ids[0].id;
	if (size >= P2P_PUNCH_HDR_LEN) {
		ncand = data[P2P_PUNCH_NCAND_OFF];
		size_t pk = P2P_PUNCH_HDR_LEN + ncand * P2P_PUNCH_CAND_LEN;
		if (pk + P2P_PUNCH_PK_LEN <= size)
			p2p_peerid_from_pk(&src, data + pk);
	}
	rc = p2p_punch_decode(&s, data, size, &src, &ids[1].id);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EPROTO || rc == -EPROTONOSUPPORT ||
			   rc == -EKEYREJECTED || rc == -EBADMSG);
		return 0;
	}
	FUZZ_CHECK(s.ncand <= P2P_PUNCH_CAND_MAX);
	FUZZ_CHECK(size <= P2P_PUNCH_PAYLOAD_MAX);
	if (p2p_peerid_equal(&src, &ids[0].id)) {
		FUZZ_CHECK(p2p_punch_encode(&s, &ids[0], &ids[1].id, out,
					    sizeof(out), &n) == 0);
		FUZZ_CHECK(n == size && memcmp(out, data, size) == 0);
	}
	return 0;
}
