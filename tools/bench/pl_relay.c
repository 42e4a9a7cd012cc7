/*
 * relay9 (issue 9) probes over authenticated links:
 *
 *  - relaycapture: one host with many identities asks a node to relay
 *    circuits between its own IDs and never handshakes on them: how many
 *    the node carries for it, what it says to the rest, and how long the
 *    accepted ones live;
 *  - badpayload: random and truncated relay messages and routed NAT
 *    (punch) payloads, as a peer that completed a real handshake sends
 *    them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "nat/punch.h"
#include "overlay/overlay.h"
#include "pl.h"

#define UP_MS 10000	  /* links up, HELLO included */
#define SETTLE_MS 1500	  /* answers to what we sent */
#define CAP_IDS_MAX 256	  /* identities of one relaycapture */
#define CAP_REASONS 16	  /* distinct close reasons kept */
#define BAD_CLOSE_MS 3000 /* wait for the close of a malformed message */
#define BAD_NAT_MAX 400	  /* bytes of a random NAT payload */

/* Drive every link for ms milliseconds. */
static void pump_all(struct pl_link *ls, int k, long ms)
{
	long long end = pl_now_us() + ms * 1000LL;
	struct pollfd p[CAP_IDS_MAX];

	for (;;) {
		long long left = end - pl_now_us();
		int n = 0;
		if (left <= 0)
			return;
		for (int i = 0; i < k; i++)
			p[i] = (struct pollfd){
			    .fd = ls[i].fd, .events = pl_link_events(&ls[i])};
		n = poll(p, (nfds_t)k,
			 left / 1000 < 50 ? (int)(left / 1000) : 50);
		for (int i = 0; n > 0 && i < k; i++)
			pl_link_io(&ls[i], p[i].revents);
	}
}

static bool all_up(const struct pl_link *ls, int k)
{
	for (int i = 0; i < k; i++)
		if (ls[i].state != PL_UP || !ls[i].got_hello)
			return false;
	return true;
}

/* Dial k links from fresh identities, one after the other (a node takes
 * only a few unauthenticated connections from one IP at a time: admit.h),
 * and wait for their HELLOs. */
static int links_up(struct pl_link *ls, int k, const struct p2p_addr *a,
		    const struct sockaddr_storage *ss, socklen_t sl)
{
	for (int i = 0; i < k; i++) {
		long long end = pl_now_us() + UP_MS * 1000LL;
		if (pl_link_dial(&ls[i], a, ss, sl, NULL) < 0)
			return -1;
		while (!all_up(ls, i + 1) && pl_now_us() < end)
			pump_all(ls, i + 1, 5);
		if (!all_up(ls, i + 1))
			return -1;
	}
	return 0;
}

/* ---- relaycapture ---- */

static struct {
	long long *t_open; /* by request index: when we asked */
	long nreq;
	unsigned accepted, refused, closed, closed_target;
	long long freed_min, freed_max; /* ms from our ask to its close */
	struct {
		char text[96];
		unsigned n;
	} reasons[CAP_REASONS];
	unsigned nreasons;
} cap;

static void cap_reason(const char *text, size_t len)
{
	unsigned i;

	if (len >= sizeof(cap.reasons[0].text))
		len = sizeof(cap.reasons[0].text) - 1;
	for (i = 0; i < cap.nreasons; i++)
		if (strlen(cap.reasons[i].text) == len &&
		    !memcmp(cap.reasons[i].text, text, len))
			break;
	if (i == cap.nreasons) {
		if (i == CAP_REASONS)
			return;
		memcpy(cap.reasons[i].text, text, len);
		cap.reasons[i].text[len] = 0;
		cap.nreasons++;
	}
	cap.reasons[i].n++;
}

/* Our requests have odd IDs (we initiated every link), the relay's
 * circuits to us as a target even ones. */
static void cap_on_msg(struct pl_link *l, const struct p2p_msg *m)
{
	uint32_t c = m->u.relay.circ;

	if (m->type == P2P_MSG_RELAY_OPEN && !(c & 1) &&
	    (m->u.relay.code & P2P_RELAY_F_INCOMING)) {
		cap.accepted++; /* we stay silent on it */
		return;
	}
	if (m->type != P2P_MSG_RELAY_CLOSE)
		return;
	if (!(c & 1)) {
		cap.closed_target++;
		return;
	}
	cap_reason(m->u.relay.reason, m->u.relay.len);
	if (m->u.relay.len >= 10 &&
	    !memcmp(m->u.relay.reason, "relay busy", 10)) {
		cap.refused++;
	} else if ((long)(c / 2) < cap.nreq) {
		long long ms = (pl_now_us() - cap.t_open[c / 2]) / 1000;
		if (!cap.closed || ms < cap.freed_min)
			cap.freed_min = ms;
		if (ms > cap.freed_max)
			cap.freed_max = ms;
		cap.closed++;
	}
}

static void cap_print_reasons(void)
{
	for (unsigned i = 0; i < cap.nreasons; i++)
		printf("relaycapture: reason \"%s\" x %u\n",
		       cap.reasons[i].text, cap.reasons[i].n);
}

int pl_cmd_relaycapture(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	long k = pl_opt(argc, argv, "--ids", 20);
	long n = pl_opt(argc, argv, "--count", 300);
	long hold = pl_opt(argc, argv, "--hold-ms", 0);
	struct pl_link *ls;
	int alive = 0, rc = PL_OK;

	if (argc < 2 || k < 2 || k > CAP_IDS_MAX || n < 1 || hold < 0 ||
	    pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	ls = calloc((size_t)k, sizeof(*ls));
	cap.t_open = calloc((size_t)n, sizeof(*cap.t_open));
	if (!ls || !cap.t_open)
		return PL_IO;
	cap.nreq = n;
	if (links_up(ls, (int)k, &a, &ss, sl) < 0) {
		printf("relaycapture: not every link came up\n");
		rc = PL_IO;
		goto out;
	}
	for (long i = 0; i < k; i++)
		ls[i].on_msg = cap_on_msg;
	/* Request i: from identity i % k to identity (i + 1) % k. */
	for (long i = 0; i < n; i++) {
		struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
		m.u.relay.circ = (uint32_t)(2 * i + 1);
		m.u.relay.peer = ls[(i + 1) % k].ident.id;
		cap.t_open[i] = pl_now_us();
		pl_link_send(&ls[i % k], &m);
		if (i % k == k - 1)
			pump_all(ls, (int)k, 1);
	}
	pump_all(ls, (int)k, SETTLE_MS);
	printf("relaycapture: asked=%ld accepted=%u refused=%u\n", n,
	       cap.accepted, cap.refused);
	cap_print_reasons();
	fflush(stdout);
	if (hold) {
		pump_all(ls, (int)k, hold);
		for (long i = 0; i < k; i++)
			alive += ls[i].state == PL_UP;
		printf("relaycapture: held %ld ms: closed=%u (as target %u) "
		       "freed_ms_min=%lld freed_ms_max=%lld links_alive=%d\n",
		       hold, cap.closed, cap.closed_target, cap.freed_min,
		       cap.freed_max, alive);
		cap_print_reasons();
	}
out:
	for (long i = 0; i < k; i++)
		pl_link_free(&ls[i]);
	free(ls);
	free(cap.t_open);
	return rc;
}

/* ---- badpayload ---- */

static uint32_t rnd(uint32_t below)
{
	return randombytes_uniform(below);
}

/* A routed NAT payload to dst: random bytes, or a signed punch message
 * truncated or with one byte changed. */
static void bad_nat(struct pl_link *l, const struct p2p_peerid *dst)
{
	uint8_t pay[BAD_NAT_MAX];
	struct p2p_msg m = {.type = P2P_MSG_ROUTED};
	struct p2p_punch_sig s = {.type = 1 + rnd(3)};
	size_t len = 0;

	m.u.routed.msgid =
	    ((uint64_t)randombytes_random() << 32) | randombytes_random();
	m.u.routed.hops = (uint8_t)(1 + rnd(P2P_ROUTE_HOPS_MAX));
	m.u.routed.src = l->ident.id;
	m.u.routed.dst = *dst;
	m.u.routed.app = P2P_APP_NAT;
	switch (rnd(3)) {
	case 0:
		len = rnd(sizeof(pay));
		randombytes_buf(pay, len);
		break;
	default:
		randombytes_buf(&s.nonce, sizeof(s.nonce));
		s.ncand = rnd(P2P_PUNCH_CAND_MAX + 1);
		for (size_t i = 0; i < s.ncand; i++) {
			/* Documentation addresses: nothing to punch anyway. */
			s.cand[i].family = 4;
			s.cand[i].ip[0] = 192, s.cand[i].ip[2] = 2;
			s.cand[i].ip[3] = (uint8_t)(1 + i);
			s.cand[i].port = (uint16_t)(1 + rnd(65535));
		}
		if (s.type == P2P_PUNCH_FAIL)
			s.reason = P2P_PUNCH_R_TIMEOUT;
		if (p2p_punch_encode(&s, &l->ident, dst, pay, sizeof(pay),
				     &len) < 0 ||
		    len < 2)
			return;
		if (rnd(2))
			len = rnd((uint32_t)len); /* truncated */
		else
			pay[rnd((uint32_t)len)] ^= (uint8_t)(1 + rnd(255));
		break;
	}
	m.u.routed.payload = pay;
	m.u.routed.len = len;
	pl_link_send(l, &m);
}

/* A well-formed relay message with random fields (unknown circuits,
 * peers nobody has, INCOMING offers nobody asked for). */
static void bad_relay(struct pl_link *l)
{
	static const uint8_t types[] = {P2P_MSG_RELAY_OPEN, P2P_MSG_RELAY_DATA,
					P2P_MSG_RELAY_CLOSE};
	uint8_t buf[300];
	struct p2p_msg m = {.type = types[rnd(3)]};

	m.u.relay.circ = randombytes_random();
	m.u.relay.code = (uint8_t)rnd(m.type == P2P_MSG_RELAY_OPEN ? 2 : 256);
	randombytes_buf(m.u.relay.peer.b, P2P_ID_LEN);
	randombytes_buf(buf, sizeof(buf));
	if (m.type == P2P_MSG_RELAY_DATA) {
		m.u.relay.data = buf;
		m.u.relay.len = 1 + rnd(sizeof(buf) - 1);
	} else if (m.type == P2P_MSG_RELAY_CLOSE) {
		m.u.relay.reason = (const char *)buf;
		m.u.relay.len = rnd(64);
	}
	pl_link_send(l, &m);
}

/* A malformed relay message, which the daemon closes the link for: cut
 * short, an OPEN with unknown flags, an empty DATA, a CLOSE whose reason
 * runs past the end. */
static void malformed_relay(struct pl_link *l)
{
	uint8_t p[2 + 4 + 1 + 32 + 2];
	size_t len;

	randombytes_buf(p, sizeof(p));
	p[0] = P2P_PROTO_VERSION;
	switch (rnd(4)) {
	case 0:
		p[1] = (uint8_t)(P2P_MSG_RELAY_OPEN + rnd(3));
		len = 2 + rnd(4);
		break;
	case 1:
		p[1] = P2P_MSG_RELAY_OPEN;
		p[6] |= 0x80;
		len = 2 + 4 + 1 + 32;
		break;
	case 2:
		p[1] = P2P_MSG_RELAY_DATA;
		len = 2 + 4;
		break;
	default:
		p[1] = P2P_MSG_RELAY_CLOSE;
		p[7] = 0xff; /* reason length 0xff.. */
		len = 2 + 4 + 1 + 2 + 3;
		break;
	}
	pl_link_send_plain(l, p, len);
}

int pl_cmd_badpayload(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	long links = pl_opt(argc, argv, "--links", 10);
	long n = pl_opt(argc, argv, "--count", 200);
	long sent = 0, closed = 0, early = 0;

	if (argc < 2 || links < 1 || n < 0 ||
	    pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	for (long i = 0; i < links; i++) {
		struct pl_link l;
		struct p2p_peerid dst;
		long long end;
		if (links_up(&l, 1, &a, &ss, sl) < 0) {
			printf("badpayload: link %ld did not come up\n", i);
			pl_link_free(&l);
			return PL_IO;
		}
		dst = *p2p_session_peer(l.sess);
		for (long j = 0; j < n && l.state == PL_UP; j++, sent++) {
			if (rnd(2))
				bad_relay(&l);
			else
				bad_nat(&l, &dst);
			if (l.outlen > PL_OUT_MAX / 2)
				pump_all(&l, 1, 5);
		}
		pump_all(&l, 1, 200);
		if (l.state != PL_UP) {
			/* closed before the malformed one */
			printf("badpayload: link %ld closed after %ld: %s\n", i,
			       n, l.err ? strerror(-l.err) : "by the daemon");
			early++;
		} else {
			malformed_relay(&l);
			end = pl_now_us() + BAD_CLOSE_MS * 1000LL;
			while (l.state == PL_UP && pl_now_us() < end)
				pump_all(&l, 1, 20);
			closed += l.state != PL_UP;
		}
		pl_link_free(&l);
	}
	printf("badpayload: links=%ld sent=%ld closed_on_malformed=%ld "
	       "closed_before=%ld\n",
	       links, sent, closed, early);
	return PL_OK;
}
