/*
 * Hole punching sessions (nat/punch_sess.h) under random event sequences.
 * Each input byte pair is one event (start, a signalling payload, a route
 * outcome, an attempt's fate, HELLO, time, stop) from or about one of ten
 * peers, some above and some below our ID. After every event the actions
 * are drained as the glue would and checked: at most P2P_PSESS_MAX
 * sessions, a CONNECT only for an index not in flight, every attempt
 * aborted or won before its session's SUCCESS / FAILED, nothing left in
 * flight after stop, texts terminated, and nothing pending once drained.
 * Issue 9: payloads carry a time around our wall clock (some stale, some
 * from the future), a seen address, and sometimes come over a link of
 * ours; candidates include loopback ones, which must never be dialled, and
 * connection attempts in flight stay within P2P_PSESS_INFLIGHT_MAX.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "nat/punch_sess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPEER 10
#define WALL 1764640000000ull /* our wall clock, Unix ms */

static struct p2p_peerid self, peers[NPEER];
static bool inflight[NPEER][P2P_PUNCH_CAND_MAX];
static uint64_t msgid;

static int peer_index(const struct p2p_peerid *p)
{
	for (int i = 0; i < NPEER; i++)
		if (p2p_peerid_equal(p, &peers[i]))
			return i;
	FUZZ_CHECK(0);
	return 0;
}

static void check_ended(int p, const struct p2p_psess_action *a)
{
	for (size_t i = 0; i < P2P_PUNCH_CAND_MAX; i++) {
		if (a->type == P2P_PSESS_SUCCESS && i == a->idx)
			inflight[p][i] = false; /* the winner: a link now */
		FUZZ_CHECK(!inflight[p][i]);
	}
}

static void drain(struct p2p_psess_table *t, uint64_t now, uint8_t rcbits)
{
	struct p2p_psess_action a;
	int p;

	while (p2p_psess_poll(t, &a)) {
		p = peer_index(&a.peer);
		switch (a.type) {
		case P2P_PSESS_SEND:
			FUZZ_CHECK(a.sig.ncand <= P2P_PUNCH_CAND_MAX);
			p2p_psess_sent(t, now, &a,
				       (rcbits & 1) ? -EHOSTUNREACH : 0,
				       ++msgid % 8);
			rcbits >>= 1;
			break;
		case P2P_PSESS_SCHEDULED:
			FUZZ_CHECK(a.ncand <= P2P_PUNCH_CAND_MAX);
			break;
		case P2P_PSESS_CONNECT:
			FUZZ_CHECK(a.idx < P2P_PUNCH_CAND_MAX);
			FUZZ_CHECK(a.addr.family == 4 || a.addr.family == 6);
			FUZZ_CHECK(a.addr.family != 4 || a.addr.ip[0] != 127);
			FUZZ_CHECK(!inflight[p][a.idx]);
			inflight[p][a.idx] = true;
			FUZZ_CHECK(p2p_psess_inflight(t) <=
				   P2P_PSESS_INFLIGHT_MAX);
			break;
		case P2P_PSESS_ABORT:
			FUZZ_CHECK(a.idx < P2P_PUNCH_CAND_MAX);
			inflight[p][a.idx] = false;
			break;
		case P2P_PSESS_SUCCESS:
			FUZZ_CHECK(a.idx == P2P_PSESS_NONE ||
				   a.idx < P2P_PUNCH_CAND_MAX);
			check_ended(p, &a);
			break;
		case P2P_PSESS_FAILED:
			FUZZ_CHECK(memchr(a.msg, 0, sizeof(a.msg)) != NULL);
			FUZZ_CHECK(memchr(a.log, 0, sizeof(a.log)) != NULL);
			FUZZ_CHECK(strncmp(a.msg, "no direct link: ", 16) == 0);
			check_ended(p, &a);
			break;
		case P2P_PSESS_DIAL:
			/* A plausible address, never loopback, the session
			 * over: nothing of it may stay in flight. */
			FUZZ_CHECK(a.addr.family == 4 || a.addr.family == 6);
			FUZZ_CHECK(a.addr.family != 4 || a.addr.ip[0] != 127);
			FUZZ_CHECK(a.requester);
			check_ended(p, &a);
			break;
		}
	}
	FUZZ_CHECK(p2p_psess_count(t) <= P2P_PSESS_MAX);
	FUZZ_CHECK(p2p_psess_next_timer(t) != 0);
}

static struct p2p_addr cand_from(uint8_t b)
{
	struct p2p_addr a = {.family = (b & 0x80) ? 6 : 4,
			     .port = (uint16_t)(4240 + (b & 3))};

	/* A few IPs, our own LAN address and loopback among them. */
	a.ip[0] = (b & 0x40) ? 10 : (b & 0x30) == 0x30 ? 127 : 203;
	a.ip[3] = (uint8_t)((b >> 2) & 3);
	if (a.ip[0] == 10)
		a.ip[1] = 1, a.ip[3] = 10;
	return a;
}

static void on_sig(struct p2p_psess_table *t, uint64_t now, int p,
		   const uint8_t *d, struct p2p_psess_local *me)
{
	struct p2p_punch_sig s = {
	    .type = (enum p2p_punch_type)(1 + d[0] % 3),
	    .nonce = d[1] & 3,
	    .time_ms = WALL + now + (uint64_t)((int8_t)d[10] * 1000),
	    .nat = (enum p2p_nat_type)((d[1] >> 2) % 5),
	    .reason = (enum p2p_punch_reason)((d[1] >> 4) % P2P_PUNCH_R_MAX),
	    .flags = (uint16_t)(d[2] & 3),
	    .ncand = d[0] >> 5};

	for (size_t i = 0; i < s.ncand; i++)
		s.cand[i] = cand_from(d[3 + i]);
	if (d[11] & 1)
		s.seen = cand_from(d[11]);
	me->src_link =
	    (d[11] & 2) ? cand_from(d[11] >> 2) : (struct p2p_addr){0};
	me->wall_ms = WALL + now;
	p2p_psess_on_sig(t, now, &peers[p], &s, me);
	me->src_link = (struct p2p_addr){0};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p2p_addr lan[1] = {{.family = 4, .ip = {10, 1, 0, 10}}};
	static struct p2p_addr cand[2] = {
	    {.family = 4, .port = 4242, .ip = {198, 19, 1, 2}},
	    {.family = 4, .port = 4242, .ip = {10, 1, 0, 10}}};
	static struct p2p_addr pub[1] = {
	    {.family = 4, .port = 4242, .ip = {203, 0, 0, 1}}};
	struct p2p_psess_local me = {.nat = P2P_NAT_PORT_PRESERVING,
				     .listen4 = 4242,
				     .lan = lan,
				     .nlan = 1,
				     .cand = cand,
				     .ncand = 2,
				     .wall_ms = WALL,
				     .seen = pub[0],
				     .pub = pub,
				     .npub = 1};
	struct p2p_psess_table *t;
	uint64_t now = 1000, next;
	int p, rc;

	memset(&self, 0x80, sizeof(self));
	for (int i = 0; i < NPEER; i++)
		memset(&peers[i], 0x08 + 0x19 * i, sizeof(peers[i]));
	memset(inflight, 0, sizeof(inflight));
	msgid = 0;
	t = p2p_psess_new(&self);
	if (!t)
		return 0;
	/* Events: op, arg, then up to 11 bytes a payload may use. */
	for (size_t i = 0; i + 2 <= size; i += 2) {
		uint8_t op = data[i], arg = data[i + 1];
		uint8_t d[14] = {0};
		memcpy(d, data + i,
		       size - i < sizeof(d) ? size - i : sizeof(d));
		p = arg % NPEER;
		me.nat = (enum p2p_nat_type)((op >> 4) % 5);
		me.listen4 = (op & 0x80) && (arg & 0x80) ? 0 : 4242;
		me.listen6 = (arg & 0x40) ? 4242 : 0;
		me.dialable = (op & 0x40) && (arg & 0x20);
		switch (op % 10) {
		case 0:
			rc = p2p_psess_start(t, now, &peers[p], "fuzz", arg & 3,
					     &me);
			FUZZ_CHECK(rc == 0 || rc == -EBUSY || rc == -EAGAIN ||
				   rc == -EADDRNOTAVAIL || rc == -ESHUTDOWN);
			break;
		case 1:
			on_sig(t, now, p, d + 2, &me);
			i += 11;
			break;
		case 2:
			(void)p2p_psess_route_failed(t, now, arg % 8);
			break;
		case 3:
		case 4: {
			size_t idx = (arg >> 4) % P2P_PUNCH_CAND_MAX;
			if (!inflight[p][idx])
				break; /* the glue only reports its own */
			if (op % 10 == 3) {
				p2p_psess_attempt_connected(t, now, &peers[p],
							    idx);
				break;
			}
			inflight[p][idx] = false;
			if (arg & 4) /* connect(): four-tuple in use */
				p2p_psess_attempt_held(t, now, &peers[p], idx);
			else
				p2p_psess_attempt_failed(t, now, &peers[p], idx,
							 arg & 8);
			break;
		}
		case 5: {
			size_t idx = (arg >> 4) % P2P_PUNCH_CAND_MAX;
			p2p_psess_link_hello(t, now, &peers[p],
					     inflight[p][idx] ? idx
							      : P2P_PSESS_NONE);
			break;
		}
		case 6:
			now += (uint64_t)arg * arg;
			p2p_psess_tick(t, now);
			break;
		case 7:
			next = p2p_psess_next_timer(t);
			if (next != UINT64_MAX && next > now)
				now = next;
			p2p_psess_tick(t, now);
			break;
		case 8:
			if (arg == 0xff)
				p2p_psess_stop(t);
			break;
		case 9:
			now += arg;
			break;
		}
		drain(t, now, op);
	}
	p2p_psess_stop(t);
	drain(t, now, 0);
	FUZZ_CHECK(p2p_psess_count(t) == 0);
	for (int i = 0; i < NPEER; i++)
		for (size_t j = 0; j < P2P_PUNCH_CAND_MAX; j++)
			FUZZ_CHECK(!inflight[i][j]);
	p2p_psess_free(t);
	return 0;
}
