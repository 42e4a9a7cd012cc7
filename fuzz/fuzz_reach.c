/*
 * The reach core (core/reach.h) under arbitrary event sequences: each
 * input byte pair is one event (get, cancel, an answer, a link up or
 * gone, time passing, poll). Whatever the order, it must not crash, leak,
 * exceed its caps, or hand out a DONE nobody waits for, and every waiter
 * it holds is one the caller still waits on.
 */
#include <errno.h>
#include <string.h>

#include "core/reach.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPEERS 4
#define NTOKENS 8

static struct p2p_peerid peers[NPEERS + 1]; /* the last one is us */
static uint8_t waiting[NTOKENS];

static void drain(struct p2p_reach *r, unsigned max)
{
	struct p2p_reach_action a;

	while (max-- && p2p_reach_poll(r, &a)) {
		if (a.type != P2P_REACH_DONE)
			continue;
		FUZZ_CHECK(a.token < NTOKENS && waiting[a.token]);
		FUZZ_CHECK((a.code == NULL) == (a.link.id != 0));
		FUZZ_CHECK(memchr(a.text, 0, sizeof(a.text)) != NULL);
		waiting[a.token] = 0;
	}
}

static void event(struct p2p_reach *r, uint64_t now, uint8_t op, uint8_t arg)
{
	const struct p2p_peerid *p = &peers[arg % (NPEERS + 1)];
	struct p2p_reach_link l = {.id = 1 + (arg >> 4) % 4,
				   .kind = (arg >> 2) % 3};
	struct p2p_addr addr = {.family = 4, .ip = {192, 0, 2, 1}, .port = 1};
	struct p2p_contact c = {.id = *p, .addr = addr};
	uint64_t tok = (arg >> 3) % NTOKENS;
	int rc = -(int)(arg >> 7);

	switch (op % 15) {
	case 0:
		rc = p2p_reach_get(r, now, p, tok, (arg & 0x40) ? &l : NULL,
				   (arg & 0x20) ? &addr : NULL);
		FUZZ_CHECK(rc == 0 || rc == -EEXIST);
		FUZZ_CHECK((rc == -EEXIST) == (waiting[tok] == 1));
		waiting[tok] = 1;
		break;
	case 1:
		rc = p2p_reach_cancel(r, tok);
		FUZZ_CHECK((rc == 0) == (waiting[tok] == 1));
		waiting[tok] = 0;
		break;
	case 2:
		p2p_reach_lookup_started(r, now, p, rc, arg & 3);
		break;
	case 3:
		p2p_reach_lookup_done(r, now, arg & 3, arg & 4, &c,
				      arg & 8 ? 1 : 0, arg & 0x40 ? &l : NULL);
		break;
	case 4:
		p2p_reach_dial_started(r, now, p, rc, l.id,
				       arg & 2 ? "refused" : NULL);
		break;
	case 5:
		p2p_reach_punch_started(r, now, p,
					arg & 1 ? -EADDRNOTAVAIL : rc, NULL);
		break;
	case 6:
		if (arg & 2)
			p2p_reach_punch_expect(r, now, p,
					       (int64_t)(arg >> 2) * 37 - 1);
		else if (arg & 1)
			p2p_reach_punch_unlikely(r, now, p);
		else if (arg & 0x80)
			p2p_reach_dial_hint(r, now, p, &addr);
		else
			p2p_reach_punch_failed(
			    r, now, p,
			    (enum p2p_punch_reason)((arg >> 3) %
						    P2P_PUNCH_R_MAX),
			    "punch failed");
		break;
	case 7:
		p2p_reach_relays(r, now, p, peers, arg % (NPEERS + 2));
		break;
	case 8:
		p2p_reach_relay_started(r, now, p, rc, l.id);
		break;
	case 9:
		p2p_reach_link_up(r, now, p, &l);
		break;
	case 10:
		p2p_reach_link_gone(r, now, l.id, "gone", arg & 1 ? &l : NULL);
		break;
	case 11:
		p2p_reach_expire(r, now);
		break;
	case 12:
		drain(r, arg);
		break;
	case 13:
		if (arg == 0xff)
			p2p_reach_stop(r);
		break;
	case 14:
		p2p_reach_relay_dial_started(r, now, p, rc, l.id);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p2p_reach_config cfg = {0};
	struct p2p_reach *r;
	uint64_t now = 1000;
	size_t n;

	for (int i = 0; i <= NPEERS; i++) {
		memset(&peers[i], 0, sizeof(peers[i]));
		peers[i].b[0] = (uint8_t)(0x10 * i + 1);
	}
	cfg.self = peers[NPEERS];
	cfg.relay_with_punch = size > 0 && (data[0] & 1);
	cfg.relay_near = size > 0 && (data[0] & 2);
	cfg.punch_early = size > 0 && (data[0] & 4);
	cfg.punch_grace_ms = size > 0 && (data[0] & 8) ? 2000 : 0;
	memset(waiting, 0, sizeof(waiting));
	r = p2p_reach_new(&cfg);
	FUZZ_CHECK(r != NULL);
	for (size_t i = 1; i + 1 < size; i += 2) {
		now += (data[i] >> 4) * 1000u;
		event(r, now, data[i], data[i + 1]);
		n = 0;
		for (int t = 0; t < NTOKENS; t++)
			n += waiting[t];
		FUZZ_CHECK(p2p_reach_waiters(r) == n);
		FUZZ_CHECK(p2p_reach_attempts(r) <= n);
		FUZZ_CHECK(p2p_reach_attempts(r) <= NPEERS);
		FUZZ_CHECK(p2p_reach_attempts(r) == 0 ||
			   p2p_reach_next_timer(r) != UINT64_MAX);
		/* One upgrade per peer at most, each with a deadline or a
		 * PUNCH still to poll or answer. */
		FUZZ_CHECK(p2p_reach_upgrades(r) <= NPEERS);
		FUZZ_CHECK(p2p_reach_stats(r)->upgrade_retries <=
			   (uint64_t)size * P2P_REACH_UPGRADE_TRIES);
	}
	drain(r, ~0u);
	p2p_reach_free(r);
	return 0;
}
