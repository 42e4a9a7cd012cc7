/*
 * gen_seeds OUTDIR: write a few valid inputs for each fuzz target into
 * OUTDIR/fuzz_frame, OUTDIR/fuzz_msg, OUTDIR/fuzz_handshake and
 * OUTDIR/fuzz_punch (signed by fuzz identity 0 for identity 1) and
 * OUTDIR/fuzz_linkfsm (messages its established pair seals), OUTDIR/fuzz_lan
 * (beacons of identity 0 behind a source and a clock skew) and
 * OUTDIR/fuzz_circuit (a relayed circuit's events). The
 * handshake seeds replay the fuzzer's deterministic randomness, so the
 * genuine frames in them are accepted and fuzzing starts deep.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "nat/portmap.h"
#include "nat/punch.h"
#include "proto/beacon.h"
#include "proto/rping.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/session.h"

struct seed {
	uint8_t b[4096];
	size_t n;
};

static const char *outdir;
static int nwritten;

static void put(struct seed *s, const void *p, size_t n)
{
	if (n > sizeof(s->b) - s->n)
		exit(2);
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void put_chunk(struct seed *s, const void *p, size_t n)
{
	uint8_t h[2] = {(uint8_t)(n >> 8), (uint8_t)n};

	put(s, h, 2);
	put(s, p, n);
}

static void save(const char *target, int k, const struct seed *s)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/seed-%02d", outdir, target, k);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(s->b, 1, s->n, f) != s->n) {
		perror(path);
		exit(1);
	}
	fclose(f);
	nwritten++;
}

static void frame_seeds(void)
{
	struct seed s = {.n = 0};
	uint8_t h[4], body[300];

	memset(body, 0x41, sizeof(body));
	put(&s, (uint8_t[]){0, 7}, 2);
	for (uint32_t len = 1; len < 300; len += 37) {
		p2p_frame_put_header(h, len);
		put(&s, h, 4);
		put(&s, body, len);
	}
	save("fuzz_frame", 0, &s);
	s.b[0] = 3; /* max_body 48: later frames are too big */
	save("fuzz_frame", 1, &s);
	s.n = 0;
	put(&s, (uint8_t[]){0, 1, 0, 0, 0, 0}, 6); /* zero length */
	save("fuzz_frame", 2, &s);
}

static void msg_seed(int k, const struct p2p_msg *m)
{
	struct seed s;

	if (p2p_msg_encode(m, s.b, sizeof(s.b), &s.n) != 0)
		exit(3);
	save("fuzz_msg", k, &s);
}

static void msg_seeds(void)
{
	struct p2p_msg m;
	int k = 0;

	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_HELLO;
	m.u.hello.observed.family = 4;
	m.u.hello.observed.port = 9;
	m.u.hello.naddrs = 2;
	m.u.hello.addrs[0].family = 6;
	m.u.hello.addrs[1].family = 4;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_NODES;
	m.u.nodes.count = 3;
	m.u.nodes.nodes[1].addr.family = 6;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_ROUTED;
	m.u.routed.hops = 8;
	m.u.routed.payload = (const uint8_t *)"payload";
	m.u.routed.len = 7;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_STREAM_OPEN;
	m.u.stream_open.service = "ssh";
	m.u.stream_open.service_len = 3;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_STREAM_RESET;
	m.u.reset.reason = "no";
	m.u.reset.len = 2;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_GOAWAY;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_RELAY_OPEN;
	m.u.relay.circ = 1;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_RELAY_DATA;
	m.u.relay.circ = 1;
	m.u.relay.data = (const uint8_t *)"frame";
	m.u.relay.len = 5;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_RELAY_CLOSE;
	m.u.relay.reason = "gone";
	m.u.relay.len = 4;
	msg_seed(k++, &m);
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_RELAY_CREDIT;
	m.u.relay.circ = 1;
	m.u.relay.credit = 256 * 1024;
	msg_seed(k++, &m);
	static const uint8_t simple[] = {
	    P2P_MSG_PING,	 P2P_MSG_PONG,		P2P_MSG_FIND_NODE,
	    P2P_MSG_DIALBACK,	 P2P_MSG_DIALBACK_OK,	P2P_MSG_STREAM_ACCEPT,
	    P2P_MSG_STREAM_DATA, P2P_MSG_STREAM_WINDOW, P2P_MSG_STREAM_FIN};
	for (size_t i = 0; i < sizeof(simple); i++) {
		memset(&m, 0, sizeof(m));
		m.type = simple[i];
		msg_seed(k++, &m);
	}
}

/* Replays the fuzzer's setup: reset(0), sessions, start, frame 2, 3. */
static void genuine(struct p2p_identity ids[2], uint8_t f[3][P2P_HS_MAX],
		    size_t n[3])
{
	struct p2p_session *i, *r;
	uint8_t reply[P2P_HS_MAX];
	size_t none;

	fuzz_rng_reset(0);
	i = p2p_session_new(&ids[0], true, &ids[1].id);
	r = p2p_session_new(&ids[1], false, NULL);
	if (p2p_session_start(i, f[0], P2P_HS_MAX, &n[0]) != 0 ||
	    p2p_session_handshake(r, f[0] + 4, n[0] - 4, f[1], P2P_HS_MAX,
				  &n[1]) != 0 ||
	    p2p_session_handshake(i, f[1] + 4, n[1] - 4, f[2], P2P_HS_MAX,
				  &n[2]) != 1 ||
	    p2p_session_handshake(r, f[2] + 4, n[2] - 4, reply, sizeof(reply),
				  &none) != 1) {
		fprintf(stderr, "gen_seeds: genuine handshake failed\n");
		exit(4);
	}
	p2p_session_free(i);
	p2p_session_free(r);
}

static void handshake_seeds(void)
{
	struct p2p_identity ids[2];
	uint8_t f[3][P2P_HS_MAX], zeros[145] = {0};
	size_t n[3];
	struct seed s;

	fuzz_identity(&ids[0], 0);
	fuzz_identity(&ids[1], 1);
	genuine(ids, f, n);
	for (int mode = 0; mode < 5; mode++) {
		s.n = 0;
		put(&s, (uint8_t[]){(uint8_t)mode}, 1);
		if (mode == 0)
			put_chunk(&s, f[0] + 4, n[0] - 4);
		else if (mode == 1)
			put_chunk(&s, f[1] + 4, n[1] - 4);
		else if (mode == 2)
			put_chunk(&s, f[2] + 4, n[2] - 4);
		else if (mode == 3)
			put_chunk(&s, zeros, sizeof(zeros));
		if (mode >= 3) {
			put_chunk(&s, "\x01hello", 6);
			put_chunk(&s, "\x03world", 6);
			put_chunk(&s, zeros, 40);
		}
		save("fuzz_handshake", mode, &s);
	}
}

static void punch_seeds(void)
{
	struct p2p_identity ids[2];
	struct p2p_punch_sig sig = {.type = P2P_PUNCH_REQUEST,
				    .nonce = 42,
				    .time_ms = 1764640000000ull,
				    .nat = P2P_NAT_PORT_PRESERVING};
	struct seed s;

	fuzz_identity(&ids[0], 0);
	fuzz_identity(&ids[1], 1);
	for (int k = 0; k < 4; k++) {
		if (k == 1) {
			sig.type = P2P_PUNCH_REPLY;
			sig.nat = P2P_NAT_ENDPOINT_INDEPENDENT;
			sig.ncand = 2;
			sig.cand[0] = (struct p2p_addr){
			    .family = 4, .ip = {198, 19, 1, 2}, .port = 20626};
			sig.cand[1] = (struct p2p_addr){
			    .family = 6, .ip = {0xfd, [15] = 1}, .port = 4242};
			sig.seen = sig.cand[0]; /* v2: the observed address */
		} else if (k == 2) {
			sig.ncand = P2P_PUNCH_CAND_MAX;
			for (size_t i = 2; i < sig.ncand; i++)
				sig.cand[i] = sig.cand[i % 2];
		} else if (k == 3) {
			sig.type = P2P_PUNCH_FAIL;
			sig.reason = P2P_PUNCH_R_BOTH_DEPENDENT;
			sig.ncand = 0;
		}
		if (p2p_punch_encode(&sig, &ids[0], &ids[1].id, s.b,
				     sizeof(s.b), &s.n) < 0)
			exit(2);
		save("fuzz_punch", k, &s);
	}
}

/* Signed routed ping and pong, identity 0 to identity 1. */
static void rping_seeds(void)
{
	struct p2p_identity ids[2];
	struct seed s;

	fuzz_identity(&ids[0], 0);
	fuzz_identity(&ids[1], 1);
	for (int k = 0; k < 2; k++) {
		if (p2p_rping_encode(k ? P2P_RPING_PONG : P2P_RPING_PING,
				     0x1122334455667788ULL + (uint64_t)k,
				     &ids[0], &ids[1].id, s.b) < 0)
			exit(2);
		s.n = P2P_RPING_LEN;
		save("fuzz_rping", k, &s);
	}
}

/* fuzz_linkfsm mode 1: HELLO first, then one message of each kind the
 * link owns or hands on, each behind an even byte ("seal this"). */
static void linkfsm_seeds(void)
{
	struct p2p_msg m[4] = {{.type = P2P_MSG_HELLO},
			       {.type = P2P_MSG_PING},
			       {.type = P2P_MSG_FIND_NODE},
			       {.type = P2P_MSG_GOAWAY}};
	uint8_t buf[512];
	struct seed s;
	size_t n;

	m[1].u.ping.nonce = 7;
	m[3].u.goaway.reason = "bye";
	m[3].u.goaway.len = 3;
	for (int k = 0; k < 4; k++) {
		s.n = 0;
		put(&s, (uint8_t[]){1 | (k & 1) << 2}, 1);
		for (int i = 0; i <= k; i++) {
			buf[0] = 0;
			if (p2p_msg_encode(&m[i], buf + 1, sizeof(buf) - 1,
					   &n) < 0)
				exit(2);
			put_chunk(&s, buf, n + 1);
		}
		put_chunk(&s, (uint8_t[]){0x03}, 1); /* a tick */
		save("fuzz_linkfsm", k, &s);
	}
	/* Seed 4 (issue 10): HELLO, a pass frame, a tampered one. */
	s.n = 0;
	put(&s, (uint8_t[]){1}, 1);
	buf[0] = 0;
	if (p2p_msg_encode(&m[0], buf + 1, sizeof(buf) - 1, &n) < 0)
		exit(2);
	put_chunk(&s, buf, n + 1);
	put_chunk(&s,
		  (const uint8_t *)"\x80"
				   "end-to-end record",
		  18);
	put_chunk(&s,
		  (const uint8_t *)"\xc0"
				   "end-to-end record",
		  18);
	save("fuzz_linkfsm", 4, &s);
}

/* fuzz_lan: a source (family, IP), a clock skew, a beacon of identity 0. */
static void lan_seeds(void)
{
	struct p2p_identity id;
	struct p2p_beacon b = {
	    .port4 = 4242, .port6 = 4242, .time_ms = 1700000000000ull};
	uint8_t hdr[19] = {0, 10, 1, 0, 7};
	struct seed s;
	size_t n;

	fuzz_identity(&id, 0);
	for (int k = 0; k < 4; k++) {
		s.n = 0;
		hdr[0] = (uint8_t)(k & 1);
		hdr[18] = (uint8_t)(k * 30); /* 0, 30, 60, 90 s of skew */
		if (k == 3)
			b.port4 = 0;
		put(&s, hdr, sizeof(hdr));
		if (p2p_beacon_encode(&b, &id, s.b + s.n, sizeof(s.b) - s.n,
				      &n) < 0)
			exit(2);
		s.n += n;
		save("fuzz_lan", k, &s);
	}
}

/* fuzz_circuit: link 2's peer asks for peer 4 (circuit 3; the relay's ID
 * on link 4 is 2), the two ends handshake (four runs), then time passes
 * and the circuit expires idle; seed 1 stays silent until its deadline. */
static void circuit_seeds(void)
{
	static const uint8_t talk[] = {
	    0x00, 0x01, 0x03, 0x02, 0x01, 0x03, 0x02, 0x03, 0x02, 0x02, 0x01,
	    0x03, 0x02, 0x03, 0x02, 0x07, 0x00, 0x03, 0x06, 0x00, 0x00};
	static const uint8_t silent[] = {0x00, 0x01, 0x03, 0xa6, 0x00, 0x00};
	struct seed s = {.n = 0};

	put(&s, talk, sizeof(talk));
	save("fuzz_circuit", 0, &s);
	s.n = 0;
	put(&s, silent, sizeof(silent));
	save("fuzz_circuit", 1, &s);
	/* Seed 2 (issue 10, credit): links 2 and 4 keep credit; link 2's
	 * peer opens circuit 0xff to peer 4 and sends 4 KiB records (op 2,
	 * y 0xff), link 4 writing everything out every 50 records (op 9, x
	 * 0x83: on sent, link 4, nothing behind), then 300 more without:
	 * past its credit, the circuit is cut. Last, a RELAY_CREDIT for an
	 * end that is not ours (op 9, x 0x41). */
	static const uint8_t open_ff[] = {0x00, 0x01, 0xff};
	static const uint8_t rec[] = {0x02, 0x01, 0xff};
	static const uint8_t out[] = {0x09, 0x83, 0x00};
	static const uint8_t credit[] = {0x09, 0x41, 0x03};
	s.n = 0;
	put(&s, open_ff, sizeof(open_ff));
	for (int k = 0; k < 500; k++) {
		put(&s, rec, sizeof(rec));
		if (k < 200 && k % 50 == 49)
			put(&s, out, sizeof(out));
	}
	put(&s, credit, sizeof(credit));
	save("fuzz_circuit", 2, &s);
	/* Seed 3 (budgets): link 2's peer (credit) opens circuit 0xfff and
	 * link 3's (none, our outbound link: even IDs) circuit 0xf0c, both
	 * to peer 4, and each sends 1.1 GiB at once (op 7, x 0xf_: a burst
	 * of 4608 frames): the first is paced, then cut past its credit,
	 * the second closed over its budget. */
	static const uint8_t budgets[] = {0x00, 0xf1, 0xff, 0x07, 0xf1, 0xff,
					  0x00, 0xf2, 0x0c, 0x07, 0xf2, 0x0c};
	s.n = 0;
	put(&s, budgets, sizeof(budgets));
	save("fuzz_circuit", 3, &s);
}

/* Gateway answers for fuzz_portmap: a PCP MAP success for its all-zero
 * nonce and port 4242, a NAT-PMP-only server's answer to PCP, then its
 * address and mapping answers. */
static void portmap_seeds(void)
{
	uint8_t pcp[60] = {2, 0x81, 0, 0, 0, 0, 0, 60, 0, 0, 0, 9};
	uint8_t unsupp[8] = {0, 129, 0, 1, 0, 0, 0, 9};
	uint8_t addr[12] = {0, 128, 0, 0, 0, 0, 0, 9, 7, 7, 7, 7};
	uint8_t map[16] = {0,	 130,  0,    0,	   0, 0, 0, 9,
			   0x10, 0x92, 0x10, 0x92, 0, 0, 0, 60};
	struct seed s = {.n = 0};

	pcp[36] = 6;
	pcp[40] = pcp[42] = 0x10, pcp[41] = pcp[43] = 0x92;
	pcp[54] = pcp[55] = 0xff, pcp[56] = pcp[57] = 7;
	pcp[58] = pcp[59] = 7;
	put_chunk(&s, pcp, sizeof(pcp));
	save("fuzz_portmap", 0, &s);
	s.n = 0;
	put_chunk(&s, unsupp, sizeof(unsupp));
	put_chunk(&s, addr, sizeof(addr));
	put_chunk(&s, map, sizeof(map));
	save("fuzz_portmap", 1, &s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
		perror(outdir);
		return 1;
	}
	fuzz_rng_install();
	frame_seeds();
	msg_seeds();
	handshake_seeds();
	punch_seeds();
	rping_seeds();
	linkfsm_seeds();
	lan_seeds();
	circuit_seeds();
	portmap_seeds();
	printf("gen_seeds: wrote %d seeds under %s\n", nwritten, outdir);
	return 0;
}
