/*
 * circuit-bench: what a relay's circuit core (core/circuit.h) costs per
 * relayed frame while it carries many circuits, against the same with
 * one circuit, in the same run (tools/bench/bench prints the ratio).
 *
 *   circuit-bench [FRAMES]
 *
 * One busy circuit moves FRAMES frames of P2P_PASS_DATA_MAX bytes, as a
 * relay's loop does for each: RELAY_DATA in (p2p_circuit_on_data), the
 * FORWARD out, the actions drained; and per FRAMES_PER_TURN frames, the
 * outgoing link's write reported (p2p_circuit_on_sent, which returns
 * credit) and the hub asking for the next deadline (p2p_circuit_next). The
 * other circuits are idle, as most of a busy relay's are: a relay's cost per
 * byte should not grow with the circuits it merely holds. Prints one line per
 * table size: "circuits N: X ns/frame".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/circuit.h"
#include "proto/msg.h"

#define NLINK (RELAY_CIRC_MAX + 8)
#define TARGET_LINK (RELAY_CIRC_MAX + 2) /* every circuit's target */
#define TARGET_BYTE 0xee		 /* the target's peer ID */
#define FRAMES_DEFAULT 8000		 /* 500 MiB: under RELAY_CIRC_BYTES */
#define ROUNDS 5			 /* the best of */
/* Frames per loop turn: a relay reads about 4 frames at a time (a 256
 * KiB chunk), writes them in one writev (one p2p_circuit_on_sent) and
 * rearms its timer once (one p2p_circuit_next). */
#define FRAMES_PER_TURN 4

static uint64_t pos[NLINK];

static uint32_t q_link_to(void *arg, const struct p2p_peerid *peer)
{
	(void)arg;
	return peer->b[0] == TARGET_BYTE ? TARGET_LINK : 0;
}

static bool q_outbound(void *arg, uint32_t l)
{
	(void)arg;
	return l == TARGET_LINK; /* its IDs: odd, ours there */
}

static size_t q_queued(void *arg, uint32_t l)
{
	(void)arg;
	(void)l;
	return 0;
}

static bool q_is_end(void *arg, uint32_t l, uint32_t c)
{
	(void)arg;
	(void)l;
	(void)c;
	return false;
}

static unsigned q_ends(void *arg, uint32_t l)
{
	(void)arg;
	(void)l;
	return 0;
}

static bool q_full(void *arg)
{
	(void)arg;
	return false;
}

/* Each requester link at an address of its own /24. */
static bool q_remote(void *arg, uint32_t l, struct p2p_addr *out)
{
	(void)arg;
	memset(out, 0, sizeof(*out));
	out->family = 4;
	out->ip[0] = 10;
	out->ip[1] = (uint8_t)(l >> 8);
	out->ip[2] = (uint8_t)l;
	out->ip[3] = 1;
	out->port = 4000;
	return true;
}

static bool q_credit(void *arg, uint32_t l)
{
	(void)arg;
	(void)l;
	return true;
}

static uint64_t q_pos(void *arg, uint32_t l)
{
	(void)arg;
	return pos[l];
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int drain(struct p2p_circuit *c, uint32_t *target_circ)
{
	struct p2p_circuit_action a;
	int forwards = 0;

	while (p2p_circuit_poll(c, &a)) {
		if (a.type == P2P_CIRCUIT_SEND_OPEN && target_circ)
			*target_circ = a.circ;
		if (a.type == P2P_CIRCUIT_FORWARD) {
			pos[a.link] += a.len;
			forwards++;
		}
	}
	return forwards;
}

/* ns per frame with n circuits in the table; < 0 on a failure. */
static double run(unsigned n, unsigned frames)
{
	struct p2p_circuit_query q = {
	    .link_to = q_link_to,
	    .outbound = q_outbound,
	    .queued = q_queued,
	    .is_end = q_is_end,
	    .ends = q_ends,
	    .links_full = q_full,
	    .remote = q_remote,
	    .credit = q_credit,
	    .out_pos = q_pos,
	};
	static uint8_t data[P2P_PASS_DATA_MAX];
	struct p2p_circuit *c = p2p_circuit_new(&q);
	struct p2p_peerid target, from;
	uint64_t now = 1000, sink = 0;
	uint32_t tc[RELAY_CIRC_MAX];
	double t0, t1;
	int fwd = 0;

	if (!c)
		return -1;
	memset(pos, 0, sizeof(pos));
	memset(&target, 0, sizeof(target));
	target.b[0] = TARGET_BYTE;
	/* Circuit i from requester i on link i + 1, circuit ID 1 (odd: the
	 * requester dialled that link). */
	for (unsigned i = 0; i < n; i++) {
		memset(&from, 0, sizeof(from));
		from.b[0] = (uint8_t)i;
		from.b[1] = (uint8_t)(i >> 8);
		from.b[2] = 1;
		if (p2p_circuit_on_open(c, now, i + 1, 1, false, &target,
					&from) < 0)
			return -1;
		tc[i] = 0;
		drain(c, &tc[i]);
		if (!tc[i])
			return -1; /* refused: a limit the bench should not hit
				    */
	}
	/* Both ends speak once on each: handshaken, as live circuits are. */
	for (unsigned i = 0; i < n; i++) {
		if (p2p_circuit_on_data(c, now, i + 1, 1, data, 64) < 0 ||
		    p2p_circuit_on_data(c, now, TARGET_LINK, tc[i], data, 64) <
			0)
			return -1;
		drain(c, NULL);
	}
	/* ... and what was forwarded is written out, as it soon is. */
	for (uint32_t l = 1; l < NLINK; l++) {
		if (p2p_circuit_on_sent(c, now, l, pos[l]) < 0)
			return -1;
		drain(c, NULL);
	}
	t0 = now_ns();
	for (unsigned f = 0; f < frames; f++) {
		/* The busy circuit is the last opened: the worst place for
		 * anything that walks the circuits or requesters in order. */
		if (p2p_circuit_on_data(c, now, n, 1, data, sizeof(data)) < 0)
			return -1;
		fwd += drain(c, NULL);
		if (f % FRAMES_PER_TURN != FRAMES_PER_TURN - 1)
			continue;
		if (p2p_circuit_on_sent(c, now, TARGET_LINK, pos[TARGET_LINK]) <
		    0)
			return -1;
		drain(c, NULL);
		sink += p2p_circuit_next(c);
		now++; /* 1 ms per turn: 256 KiB/ms */
	}
	t1 = now_ns();
	p2p_circuit_free(c);
	if (fwd != (int)frames || sink == 0)
		return -1; /* the circuit was cut: a budget the bench hit */
	return (t1 - t0) / frames;
}

int main(int argc, char **argv)
{
	unsigned frames = argc > 1 ? (unsigned)atoi(argv[1]) : FRAMES_DEFAULT;
	const unsigned sizes[] = {1, 16, RELAY_CIRC_MAX};

	if (frames == 0) {
		fprintf(stderr, "usage: circuit-bench [FRAMES]\n");
		return 2;
	}
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		double best = -1;
		for (int r = 0; r < ROUNDS; r++) {
			double ns = run(sizes[s], frames);
			if (ns < 0) {
				fprintf(stderr,
					"circuit-bench: %u circuits: the "
					"circuit was refused or cut\n",
					sizes[s]);
				return 1;
			}
			if (best < 0 || ns < best)
				best = ns;
		}
		printf("circuits %u: %.0f ns/frame\n", sizes[s], best);
	}
	return 0;
}
