/*
 * LAN discovery beacons (proto/beacon.h) and what the discovery core
 * (core/lan.h) does with them. Input: 1 byte source family, 16 bytes
 * source IP, 2 bytes of clock skew (signed, seconds), then the datagram.
 * Seeds are beacons signed by fuzz identity 0, so the fuzzer starts past
 * the signature. A beacon that verifies must encode again to exactly the
 * input (Ed25519 signatures are deterministic); the core's answer must be
 * a verdict it names, and a dial must go to the source's IP.
 */
#include <string.h>

#include "core/lan.h"
#include "fuzz_common.h"
#include "proto/error.h"

#define HDR 19

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p2p_identity ids[2];
	static struct p2p_lan *lan;
	static uint64_t now;
	uint8_t out[P2P_BEACON_LEN];
	struct p2p_addr src = {0}, to;
	struct p2p_beacon b;
	enum p2p_lan_verdict v;
	int16_t skew;
	size_t n;
	int rc;

	if (!lan) {
		fuzz_identity(&ids[0], 0);
		fuzz_identity(&ids[1], 1);
		lan = p2p_lan_new(&ids[1].id, 0);
		if (!lan)
			return 0;
	}
	if (size < HDR)
		return 0;
	src.family = data[0] & 1 ? 6 : 4;
	memcpy(src.ip, data + 1, 16);
	if (src.family == 4)
		memset(src.ip + 4, 0, 12);
	src.port = 4243;
	skew = (int16_t)(data[17] << 8 | data[18]);
	now += 1000; /* one datagram a second: the core's tables turn over */
	if (!p2p_lan_admit(lan, now, &src))
		return 0;
	rc = p2p_beacon_decode(&b, data + HDR, size - HDR);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EPROTO || rc == -EPROTONOSUPPORT ||
			   rc == -EBADMSG);
		return 0;
	}
	FUZZ_CHECK(size - HDR == P2P_BEACON_LEN);
	FUZZ_CHECK(b.port4 || b.port6);
	if (p2p_peerid_equal(&b.id, &ids[0].id)) {
		FUZZ_CHECK(
		    p2p_beacon_encode(&b, &ids[0], out, sizeof(out), &n) == 0);
		FUZZ_CHECK(n == size - HDR && memcmp(out, data + HDR, n) == 0);
	}
	v = p2p_lan_on_beacon(lan, now, b.time_ms + (int64_t)skew * 1000, &b,
			      &src, &to);
	FUZZ_CHECK(strcmp(p2p_lan_verdict_name(v), "?") != 0);
	if (v == P2P_LAN_DIAL) {
		FUZZ_CHECK(to.family == src.family && to.port != 0);
		FUZZ_CHECK(memcmp(to.ip, src.ip, 16) == 0);
		FUZZ_CHECK(to.port == (src.family == 4 ? b.port4 : b.port6));
		FUZZ_CHECK(skew <= P2P_LAN_FRESH_MS / 1000 &&
			   skew >= -P2P_LAN_FRESH_MS / 1000);
	}
	return 0;
}
