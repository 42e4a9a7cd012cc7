/*
 * One link's state machine (core/linkfsm.h) fed hostile bytes. data[0]
 * picks a mode (low 2 bits) and role flags (the rest); the rest is chunks
 * (u16 length + bytes):
 *   0  a responder: every chunk is raw bytes from the peer
 *   1  a responder established with a genuine initiator: a chunk whose
 *      first byte is even is a message sealed by the initiator (so the
 *      fsm's message rules are reached), or with its top bit set a pass
 *      frame (RELAY_PASS, issue 10) carrying the rest as its data (bit
 *      0x40: one byte of it changed after sealing); odd ones are raw
 *      bytes, a tick, a PING or a close
 *   2  a punching initiator after connect: raw bytes (frame 1 and the
 *      role switch)
 * Flag 32 feeds the fsm as daemon/link.c does: p2p_linkfsm_input_inplace
 * on a read buffer that keeps the start of a frame for the next read.
 * Whatever comes, the fsm must not crash, must take 1..len bytes per
 * input, and must say nothing after its last action (DONE or REDIAL).
 */
#include <string.h>

#include "core/linkfsm.h"
#include "fuzz_common.h"
#include "proto/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct p2p_identity ids[2];
static uint8_t rec[P2P_MSG_MAX + P2P_RECORD_OVERHEAD];
static uint64_t now;

static void once(void)
{
	static int done;

	if (done)
		return;
	fuzz_rng_install();
	fuzz_identity(&ids[0], 0);
	fuzz_identity(&ids[1], 1);
	done = 1;
}

static void rnd(void *arg, void *buf, size_t len)
{
	memset(buf, 0x5a, len);
}

/* Poll everything; the bytes written go to out (may be NULL). */
static void drain(struct p2p_linkfsm *f, bool *ended, uint8_t *out,
		  size_t *olen)
{
	struct p2p_linkfsm_action a;
	unsigned n = 0;

	while (p2p_linkfsm_poll(f, &a)) {
		FUZZ_CHECK(++n <= P2P_LINKFSM_QUEUE_MAX + 1);
		FUZZ_CHECK(!*ended);
		if (a.type == P2P_LINKFSM_DONE || a.type == P2P_LINKFSM_REDIAL)
			*ended = true;
		if (a.type == P2P_LINKFSM_WRITE) {
			FUZZ_CHECK(a.len > 0 && a.len <= P2P_LINKFSM_OUT_MAX);
			if (out && *olen + a.len <= P2P_LINKFSM_OUT_MAX * 4) {
				memcpy(out + *olen, a.data, a.len);
				*olen += a.len;
			}
		}
		if (a.type == P2P_LINKFSM_MSG || a.type == P2P_LINKFSM_HELLO)
			FUZZ_CHECK(a.msg != NULL);
	}
}

static void feed(struct p2p_linkfsm *f, bool *ended, const uint8_t *p,
		 size_t len, uint8_t *out, size_t *olen)
{
	size_t off = 0;

	while (off < len) {
		size_t k = p2p_linkfsm_input(f, now, p + off, len - off);
		FUZZ_CHECK(k > 0 && k <= len - off);
		off += k;
		drain(f, ended, out, olen);
	}
}

/*
 * The glue's way (daemon/link.c): bytes land in a read buffer behind what
 * is held, whole frames are taken in place, the start of a frame stays.
 * The buffer holds a whole frame of the largest size, so the fsm must
 * always take one once it is there.
 */
static bool inplace;
static uint8_t held[2 * (P2P_FRAME_HDR + P2P_FRAME_MAX)];
static size_t hlen;

static void feed_held(struct p2p_linkfsm *f, bool *ended, const uint8_t *p,
		      size_t len)
{
	while (len > 0) {
		size_t room = sizeof(held) - hlen, off = 0, k;
		if (room > len)
			room = len;
		memcpy(held + hlen, p, room);
		hlen += room;
		p += room;
		len -= room;
		while (off < hlen &&
		       (k = p2p_linkfsm_input_inplace(f, now, held + off,
						      hlen - off)) > 0) {
			FUZZ_CHECK(k <= hlen - off);
			off += k;
			drain(f, ended, NULL, NULL);
		}
		FUZZ_CHECK(hlen - off < P2P_FRAME_HDR + P2P_FRAME_MAX);
		memmove(held, held + off, hlen - off);
		hlen -= off;
	}
}

static void feed_f(struct p2p_linkfsm *f, bool *ended, const uint8_t *p,
		   size_t len)
{
	if (inplace)
		feed_held(f, ended, p, len);
	else
		feed(f, ended, p, len, NULL, NULL);
}

/* Pipe an initiator into r until both are quiet; the initiator. */
static struct p2p_linkfsm *pair(const struct p2p_linkfsm_config *cfg,
				struct p2p_linkfsm *r, bool *rend)
{
	static uint8_t ab[P2P_LINKFSM_OUT_MAX * 4], ba[P2P_LINKFSM_OUT_MAX * 4];
	struct p2p_linkfsm_config ic = *cfg;
	struct p2p_linkfsm_role role = {.initiator = true,
					.expect = &ids[1].id};
	struct p2p_linkfsm *i;
	bool iend = false;
	size_t nab = 0, nba = 0;

	ic.self = &ids[0];
	i = p2p_linkfsm_new(&ic, &role, now);
	if (!i)
		return NULL;
	(void)p2p_linkfsm_connected(i, now, NULL, NULL);
	drain(i, &iend, ab, &nab);
	for (int round = 0; round < 4 && (nab || nba); round++) {
		size_t k = nab;
		nab = 0;
		feed(r, rend, ab, k, ba, &nba);
		k = nba;
		nba = 0;
		feed(i, &iend, ba, k, ab, &nab);
	}
	return i;
}

static void step(struct p2p_linkfsm *f, struct p2p_linkfsm *i, bool *ended,
		 const uint8_t *c, size_t len)
{
	size_t n;

	if (len == 0)
		return;
	if (i && (c[0] & 0x81) == 0x80) {
		if (p2p_linkfsm_seal_pass(i, c[0], c + 1, len - 1, rec,
					  sizeof(rec), &n) == 0) {
			if (c[0] & 0x40)
				rec[n - 1 - c[0] % (len - 1)] ^= 1;
			feed_f(f, ended, rec, n);
		}
		return;
	}
	if (i && (c[0] & 1) == 0) {
		if (p2p_linkfsm_seal(i, c + 1, len - 1, rec, sizeof(rec), &n) ==
		    0)
			feed_f(f, ended, rec, n);
		return;
	}
	switch ((c[0] >> 1) % 4) {
	case 0:
		feed_f(f, ended, c + 1, len - 1);
		break;
	case 1:
		now += (uint64_t)c[0] * 1000000;
		p2p_linkfsm_tick(f, now);
		break;
	case 2:
		(void)p2p_linkfsm_ping(f, now);
		break;
	case 3:
		p2p_linkfsm_close(f, now, c[0], "fuzz");
		break;
	}
	drain(f, ended, NULL, NULL);
	FUZZ_CHECK(!*ended || p2p_linkfsm_next_timer(f) == UINT64_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p2p_linkfsm_config cfg = {.handshake_ms = 10000,
					 .keepalive_ms = 25000,
					 .idle_ms = 90000,
					 .random = rnd};
	struct p2p_linkfsm_role role = {0};
	struct p2p_linkfsm *f, *i = NULL;
	struct fuzz_reader r;
	const uint8_t *c;
	bool ended = false;
	size_t len;
	int mode;

	if (size < 1)
		return 0;
	once();
	fuzz_rng_reset(size);
	now = 1000000;
	mode = data[0] & 3;
	role.relayed = data[0] & 4;
	if (data[0] & 8)
		p2p_linkfsm_types_set(&cfg.before_hello, P2P_MSG_FIND_NODE);
	if (data[0] & 16)
		p2p_linkfsm_types_set(&cfg.on_relayed, P2P_MSG_STREAM_DATA);
	inplace = data[0] & 32; /* p2p_linkfsm_input_inplace */
	hlen = 0;
	cfg.self = &ids[1];
	if (mode == 2) {
		role.initiator = true;
		role.punch = true;
		role.expect = &ids[0].id;
		role.punch_lead = data[0] & 64; /* stays initiator */
	}
	f = p2p_linkfsm_new(&cfg, &role, now);
	if (!f)
		return 0;
	if (mode == 2)
		(void)p2p_linkfsm_connected(f, now, NULL, NULL);
	drain(f, &ended, NULL, NULL);
	if (mode == 1)
		i = pair(&cfg, f, &ended);
	r.p = data + 1;
	r.len = size - 1;
	while (fuzz_next_chunk(&r, &c, &len))
		step(f, i, &ended, c, len);
	p2p_linkfsm_free(i);
	p2p_linkfsm_free(f);
	return 0;
}
