/*
 * Message decoding. The codec is canonical, so whatever decodes must
 * re-encode to exactly the input bytes, and decode again the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "proto/error.h"
#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[P2P_MSG_MAX], out2[P2P_MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p2p_msg m, m2;
	size_t n, n2;
	int rc;

	rc = p2p_msg_decode(&m, data, size);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EPROTO || rc == -EPROTONOSUPPORT ||
			   rc == -ENOTSUP);
		return 0;
	}
	FUZZ_CHECK(p2p_msg_type_name(m.type)[0] != 'u');
	FUZZ_CHECK(p2p_msg_encode(&m, out, sizeof(out), &n) == 0);
	FUZZ_CHECK(n == size && memcmp(out, data, size) == 0);
	FUZZ_CHECK(p2p_msg_decode(&m2, out, n) == 0);
	FUZZ_CHECK(p2p_msg_encode(&m2, out2, sizeof(out2), &n2) == 0);
	FUZZ_CHECK(n2 == n && memcmp(out, out2, n) == 0);
	return 0;
}
