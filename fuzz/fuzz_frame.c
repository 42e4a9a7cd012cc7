/*
 * The framer fed in random chunks. Input: max_body selector, chunk seed,
 * then the byte stream. Checks that feed never over-consumes and that every
 * frame handed out is exactly the bytes that preceded it in the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p2p_framer *f;
	size_t max_body, off = 0;
	uint32_t lcg;

	if (size < 2)
		return 0;
	max_body = data[0] % 4 == 0 ? 0 : (size_t)data[0] * 16;
	lcg = data[1];
	data += 2;
	size -= 2;
	f = p2p_framer_new(max_body);
	FUZZ_CHECK(f != NULL);
	while (off < size) {
		const uint8_t *body;
		size_t len, chunk;
		ssize_t used;

		lcg = lcg * 1103515245u + 12345u;
		chunk = 1 + (lcg >> 16) % 97;
		if (chunk > size - off)
			chunk = size - off;
		used = p2p_framer_feed(f, data + off, chunk);
		if (used < 0)
			break;
		FUZZ_CHECK((size_t)used <= chunk);
		if (p2p_framer_frame(f, &body, &len)) {
			FUZZ_CHECK(len > 0 && len <= P2P_FRAME_MAX);
			FUZZ_CHECK(max_body == 0 || len <= max_body);
			FUZZ_CHECK(off + (size_t)used >= len);
			FUZZ_CHECK(memcmp(body, data + off + used - len, len) ==
				   0);
			FUZZ_CHECK(p2p_framer_pending(f) == 0);
		} else {
			FUZZ_CHECK(used > 0);
		}
		off += (size_t)used;
	}
	p2p_framer_free(f);
	return 0;
}
