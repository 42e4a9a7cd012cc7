/*
 * Port mapping answers from the gateway (nat/portmap.h): each chunk of the
 * input (fuzz_common.h's u16-length framing) is a datagram. Each is
 * decoded as PCP and as NAT-PMP directly, then fed to a mapping state
 * machine that started at time 0 with an all-zero nonce (so the fuzzer
 * can match it), with time moving on and deadlines run between chunks.
 */
#include <string.h>

#include "fuzz_common.h"
#include "nat/portmap.h"
#include "proto/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void zero_random(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	memset(buf, 0, len);
}

static void check_decoders(const uint8_t *p, size_t n)
{
	struct p2p_pcp_msg pm;
	struct p2p_natpmp_msg nm;
	int rc;

	rc = p2p_pcp_decode(&pm, p, n);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT ||
		   rc == -EMSGSIZE);
	if (rc == 0)
		FUZZ_CHECK(
		    pm.response && n >= P2P_PCP_HDR_LEN && n <= P2P_PCP_MAX &&
		    (!pm.has_map || n >= P2P_PCP_HDR_LEN + P2P_PCP_MAP_LEN));
	rc = p2p_natpmp_decode(&nm, p, n);
	FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT);
	if (rc == 0)
		FUZZ_CHECK(nm.response && n >= 8 &&
			   n <= P2P_NATPMP_MAP_RESP_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p2p_pmap_config c = {
	    .internal_port = 4242, .lifetime_s = 60, .random = zero_random};
	struct p2p_addr client = {.family = 4, .ip = {10, 1, 0, 10}};
	struct fuzz_reader r = {data, size};
	struct p2p_pmap *pm = p2p_pmap_new(&c);
	struct p2p_pmap_action a;
	struct p2p_pmap_status st;
	const uint8_t *p;
	uint64_t now = 0;
	size_t n;

	if (!pm)
		return 0;
	FUZZ_CHECK(p2p_pmap_start(pm, now, &client) == 0);
	while (fuzz_next_chunk(&r, &p, &n)) {
		int rc;
		check_decoders(p, n);
		rc = p2p_pmap_input(pm, now, p, n);
		FUZZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EPROTONOSUPPORT ||
			   rc == -EMSGSIZE || rc == -ENOENT);
		while (p2p_pmap_poll(pm, &a))
			FUZZ_CHECK(a.len <= sizeof(a.buf));
		p2p_pmap_status(pm, &st);
		FUZZ_CHECK(st.protocol == P2P_PMAP_NONE ||
			   (st.external.family == 4 && st.expires > now));
		/* Time moves on by the chunk's first byte in seconds. */
		now += (n ? p[0] : 1) * 1000ull;
		if (p2p_pmap_next(pm) <= now)
			p2p_pmap_expire(pm, now);
		while (p2p_pmap_poll(pm, &a))
			FUZZ_CHECK(a.len <= sizeof(a.buf));
	}
	p2p_pmap_stop(pm, now);
	while (p2p_pmap_poll(pm, &a))
		FUZZ_CHECK(a.len <= sizeof(a.buf));
	p2p_pmap_free(pm);
	return 0;
}
