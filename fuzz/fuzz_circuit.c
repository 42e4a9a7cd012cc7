/*
 * The relay circuit core (core/circuit.h) under arbitrary event sequences,
 * as a peer drives it with RELAY_OPEN, RELAY_DATA, RELAY_CLOSE and
 * RELAY_CREDIT (fields of its choosing), with links going away, writing
 * out (on_sent, per-circuit credit: links whose ID is not a multiple of 3
 * keep credit) and time passing. Each input byte triple is one event;
 * one of them is a burst of up to 1.1 GiB on one circuit (burst() below),
 * so the byte budgets are reached too. Whatever the order, it must not crash,
 * leak, carry more than RELAY_CIRC_MAX circuits, ask for a link that is not up,
 * return more credit than it forwarded or more than RELAY_CREDIT at once, let a
 * burst through past the circuit's budget by more than the credit, or
 * leave a deadline in the past once expiry has been run to the end.
 */
#include <errno.h>
#include <string.h>

#include "core/circuit.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NLINKS 8 /* links 1..NLINKS; peer k is on link k */
#define NENDS 32

static bool gone[NLINKS + 1];
static size_t queued[NLINKS + 1];
static uint64_t pos[NLINKS + 1];     /* bytes ever queued per link */
static uint64_t forwarded, returned; /* payload bytes, credit */
static uint32_t last_to;	     /* the link of the last FORWARD */
static struct {
	uint32_t link, circ;
} ends[NENDS];
static size_t nends;
static bool full;

static struct p2p_peerid peer(unsigned k)
{
	struct p2p_peerid p;

	memset(&p, 0, sizeof(p));
	p.b[0] = (uint8_t)k;
	return p;
}

static uint32_t q_link_to(void *arg, const struct p2p_peerid *p)
{
	unsigned k = p->b[0];

	return k >= 1 && k <= NLINKS && !gone[k] ? k : 0;
}

static bool q_outbound(void *arg, uint32_t l)
{
	return l & 1;
}

static size_t q_queued(void *arg, uint32_t l)
{
	return l <= NLINKS && !gone[l] ? queued[l] : SIZE_MAX;
}

static bool q_is_end(void *arg, uint32_t l, uint32_t c)
{
	for (size_t i = 0; i < nends; i++)
		if (ends[i].link == l && ends[i].circ == c)
			return true;
	return false;
}

static unsigned q_ends(void *arg, uint32_t l)
{
	unsigned n = 0;

	for (size_t i = 0; i < nends; i++)
		n += ends[i].link == l;
	return n;
}

static bool q_credit(void *arg, uint32_t l)
{
	return l % 3 != 0;
}

static uint64_t q_out_pos(void *arg, uint32_t l)
{
	return l <= NLINKS ? pos[l] : 0;
}

static bool q_links_full(void *arg)
{
	return full;
}

/* Links 1..4 share one IP, 5..6 another in the same /24, 7..8 are IPv6
 * in one /48. */
static bool q_remote(void *arg, uint32_t l, struct p2p_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (l == 0 || l > NLINKS)
		return false;
	if (l <= 6) {
		out->family = 4;
		out->ip[0] = 198, out->ip[1] = 51, out->ip[2] = 100;
		out->ip[3] = l <= 4 ? 1 : 2;
	} else {
		out->family = 6;
		out->ip[0] = 0x20, out->ip[1] = 0x01, out->ip[15] = (uint8_t)l;
	}
	out->port = (uint16_t)(1000 + l);
	return true;
}

static void drain(struct p2p_circuit *c)
{
	struct p2p_circuit_action a;

	while (p2p_circuit_poll(c, &a)) {
		FUZZ_CHECK(a.link >= 1 && a.link <= NLINKS);
		switch (a.type) {
		case P2P_CIRCUIT_SEND_OPEN:
			/* Only over links the caller said were up. */
			FUZZ_CHECK(!gone[a.link]);
			break;
		case P2P_CIRCUIT_FORWARD:
			FUZZ_CHECK(!gone[a.link]);
			FUZZ_CHECK(a.len > 0);
			pos[a.link] +=
			    a.len + 10; /* the record's extra bytes */
			forwarded += a.len;
			last_to = a.link;
			break;
		case P2P_CIRCUIT_SEND_CREDIT:
			FUZZ_CHECK(a.len > 0 && a.len <= RELAY_CREDIT);
			returned += a.len;
			FUZZ_CHECK(returned <= forwarded);
			break;
		case P2P_CIRCUIT_SEND_CLOSE:
			FUZZ_CHECK(a.text && a.len > 0 && a.len <= 255);
			break;
		case P2P_CIRCUIT_ACCEPT:
			if (nends < NENDS) {
				ends[nends].link = a.link;
				ends[nends++].circ = a.circ;
			}
			break;
		default:
			break;
		}
	}
}

/*
 * A transfer at full speed on (l, circ) in quarter-credit frames (as
 * big as the core lets a source send at once, 4x fewer calls than pass
 * frames), the link each frame went to writing it out at once as a fast
 * link would: 1024 to 4608 frames (256 MiB to past RELAY_CIRC_BYTES).
 * It stops where the circuit stops forwarding (closed, unknown, or
 * paced and then cut for going past its credit). No time passes, so no
 * budget refills: what went through is at most the circuit's budget
 * plus the credit its source held, and a frame the budget check let in.
 */
#define BURST_FRAME (RELAY_CREDIT / 4)

static void burst(struct p2p_circuit *c, uint64_t now, uint32_t l,
		  uint32_t circ, unsigned frames)
{
	static const uint8_t big[BURST_FRAME];
	uint64_t start = forwarded, was;

	drain(c);
	for (unsigned k = 0; k < frames; k++) {
		was = forwarded;
		(void)p2p_circuit_on_data(c, now, l, circ, big, sizeof(big));
		drain(c);
		if (forwarded == was)
			break;
		if (p2p_circuit_on_sent(c, now, last_to, pos[last_to]) == 0)
			drain(c);
	}
	FUZZ_CHECK(forwarded - start <=
		   RELAY_CIRC_BYTES + RELAY_CREDIT + sizeof(big));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t buf[4096];
	struct p2p_circuit_query q = {
	    .link_to = q_link_to,
	    .outbound = q_outbound,
	    .queued = q_queued,
	    .is_end = q_is_end,
	    .ends = q_ends,
	    .links_full = q_links_full,
	    .remote = q_remote,
	    .credit = q_credit,
	    .out_pos = q_out_pos,
	};
	struct p2p_circuit_stats st;
	struct p2p_circuit *c;
	uint64_t now = 1000;
	uint32_t id;
	int rc = 0;

	memset(gone, 0, sizeof(gone));
	memset(queued, 0, sizeof(queued));
	memset(pos, 0, sizeof(pos));
	forwarded = returned = 0;
	last_to = 0;
	nends = 0;
	full = false;
	c = p2p_circuit_new(&q);
	FUZZ_CHECK(c != NULL);
	for (size_t i = 0; i + 2 < size; i += 3) {
		uint8_t op = data[i], x = data[i + 1], y = data[i + 2];
		uint32_t l = 1 + x % NLINKS, circ = y | (x & 0xf0u) << 4;
		struct p2p_peerid p = peer(1 + y % (NLINKS + 1));
		struct p2p_peerid from = peer(l);

		now += (op >> 4) * 500u;
		switch (op % 10) {
		case 0:
			rc = p2p_circuit_on_open(c, now, l, circ, false, &p,
						 &from);
			break;
		case 1:
			rc = p2p_circuit_on_open(c, now, l, circ, true, &p,
						 &from);
			break;
		case 2:
		case 3:
			rc = p2p_circuit_on_data(c, now, l, circ, buf,
						 1 + (size_t)y * 16);
			break;
		case 4:
			rc = p2p_circuit_on_close(c, l, circ, "x", 1);
			break;
		case 5:
			/* What was asked before the link went is checked
			 * against the table as it was then. */
			drain(c);
			gone[l] = true;
			rc = p2p_circuit_link_gone(c, l);
			break;
		case 6:
			/* As the daemon's clock does: a core that stopped with
			 * its queue full leaves next() <= now and is called
			 * again once drained. Each round closes at least one
			 * circuit, so everything due is closed within
			 * RELAY_CIRC_MAX + 1 rounds. */
			for (unsigned k = 0;
			     k <= RELAY_CIRC_MAX && p2p_circuit_next(c) <= now;
			     k++) {
				p2p_circuit_expire(c, now);
				drain(c);
			}
			FUZZ_CHECK(p2p_circuit_next(c) > now);
			break;
		case 7:
			if (x & 0x80)
				burst(c, now, l, circ,
				      512u * (2u + (x >> 4 & 7u)));
			else
				now += (uint64_t)y * 60000u;
			break;
		case 8:
			queued[l] = (size_t)y << 14;
			full = y & 1;
			rc = p2p_circuit_pick(c, l, &id);
			FUZZ_CHECK(rc == 0 || rc == -EBUSY || rc == -EMFILE);
			rc = 0;
			break;
		default:
			/* The link wrote up to a point behind its position
			 * (y * 256 bytes behind), a RELAY_CREDIT arrives, or
			 * the caller drains. */
			if (x & 0x80)
				rc = p2p_circuit_on_sent(
				    c, now, l,
				    pos[l] - (pos[l] < (uint64_t)y << 8
						  ? pos[l]
						  : (uint64_t)y << 8));
			else if (x & 0x40)
				rc = p2p_circuit_on_credit(c, l, circ,
							   1u + y * 4096u);
			else
				drain(c);
			break;
		}
		/* Events are refused only when actions were left undrained. */
		FUZZ_CHECK(rc == 0 || rc == -ENOBUFS);
		if (x & 1)
			drain(c);
		p2p_circuit_get_stats(c, &st);
		FUZZ_CHECK(st.circuits <= RELAY_CIRC_MAX);
		/* Requesters are links 1..8, at most 16 circuits each. */
		FUZZ_CHECK(st.circuits <= NLINKS * RELAY_CIRC_PER_PEER);
	}
	drain(c);
	p2p_circuit_free(c);
	return 0;
}
