/*
 * One link's state machine (core/linkfsm.h): two instances piped into each
 * other with fake time, no sockets. Each side records what it polled; the
 * harness plays the glue (it says HELLO once established, as link.c does).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "core/linkfsm.h"
#include "proto/frame.h"
#include "proto/session.h"

#define T0 1000000 /* fake time (us) at creation */
#define WIRE_MAX (256 * 1024)

struct side {
	struct p2p_linkfsm *f;
	bool auto_hello; /* say HELLO on EARLY or ESTABLISHED, like the glue */
	int early;	 /* EARLY actions seen */
	uint8_t hello_flags;
	/* what was polled */
	unsigned established, hellos, announces, firsts, msgs, unknown;
	unsigned redial, closing, done, rtts;
	uint8_t last_type;     /* of the last MSG */
	uint32_t last_txid;    /* FIND_NODE */
	uint64_t last_nonce;   /* PONG, DIALBACK_OK */
	uint8_t last_data[64]; /* STREAM_DATA */
	size_t last_len;
	struct p2p_addr observed; /* the last HELLO */
	double rtt_ms;
	enum p2p_linkfsm_cause closing_cause, done_cause;
	const char *done_why;
	int done_err;
	char goaway[P2P_REASON_MAX + 1];
	/* bytes written towards the other side, not yet delivered */
	uint8_t wire[WIRE_MAX];
	size_t wlen;
};

static struct p2p_identity IA, IB, IC; /* IA.id < IB.id */
static struct side A, B;
static uint64_t NOW;
static struct p2p_linkfsm_config CFG;

static void fake_random(void *arg, void *buf, size_t len)
{
	static uint8_t c;

	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = ++c;
}

static void ident(struct p2p_identity *id, uint8_t v)
{
	uint8_t seed[32];

	memset(seed, v, sizeof(seed));
	cr_assert_eq(p2p_identity_from_seed(id, seed), 0);
}

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	ident(&IA, 1);
	ident(&IB, 2);
	ident(&IC, 3);
	/* IA is the lower ID: swap the seeds if it is not. */
	if (memcmp(IA.id.b, IB.id.b, P2P_ID_LEN) > 0) {
		p2p_identity_wipe(&IA);
		p2p_identity_wipe(&IB);
		ident(&IA, 2);
		ident(&IB, 1);
	}
	cr_assert_lt(memcmp(IA.id.b, IB.id.b, P2P_ID_LEN), 0);
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	A.auto_hello = B.auto_hello = true;
	NOW = T0;
	memset(&CFG, 0, sizeof(CFG));
	CFG.handshake_ms = 10000;
	CFG.keepalive_ms = 25000;
	CFG.idle_ms = 90000;
	CFG.grace_ms = 2000;
	CFG.random = fake_random;
	p2p_linkfsm_types_set(&CFG.before_hello, P2P_MSG_DIALBACK_OK);
	p2p_linkfsm_types_set(&CFG.on_relayed, P2P_MSG_STREAM_DATA);
}

static void teardown(void)
{
	p2p_linkfsm_free(A.f);
	p2p_linkfsm_free(B.f);
	p2p_identity_wipe(&IA);
	p2p_identity_wipe(&IB);
	p2p_identity_wipe(&IC);
}

TestSuite(core, .init = setup, .fini = teardown);

static struct p2p_linkfsm *mk(const struct p2p_identity *self,
			      struct p2p_linkfsm_role role)
{
	struct p2p_linkfsm_config c = CFG;
	struct p2p_linkfsm *f;

	c.self = self;
	f = p2p_linkfsm_new(&c, &role, NOW);
	cr_assert_not_null(f);
	return f;
}

static void say_hello(struct side *s)
{
	struct p2p_msg m = {.type = P2P_MSG_HELLO};

	m.u.hello.flags = s->hello_flags;
	m.u.hello.observed =
	    (struct p2p_addr){.family = 4, .ip = {192, 0, 2, 7}, .port = 4242};
	cr_assert_eq(p2p_linkfsm_send_msg(s->f, &m), 0);
}

static void on_msg(struct side *s, const struct p2p_msg *m)
{
	s->msgs++;
	s->last_type = m->type;
	switch (m->type) {
	case P2P_MSG_FIND_NODE:
		s->last_txid = m->u.find_node.txid;
		break;
	case P2P_MSG_PONG:
		s->last_nonce = m->u.ping.nonce;
		break;
	case P2P_MSG_DIALBACK_OK:
		s->last_nonce = m->u.dialback.nonce;
		break;
	case P2P_MSG_STREAM_DATA:
		s->last_len = m->u.stream.len;
		memcpy(s->last_data, m->u.stream.data,
		       m->u.stream.len < sizeof(s->last_data)
			   ? m->u.stream.len
			   : sizeof(s->last_data));
		break;
	case P2P_MSG_RELAY_PASS:
		s->last_txid = m->u.relay.circ;
		s->last_len = m->u.relay.len;
		memcpy(s->last_data, m->u.relay.data,
		       m->u.relay.len < sizeof(s->last_data)
			   ? m->u.relay.len
			   : sizeof(s->last_data));
		break;
	default:
		break;
	}
}

/* Poll everything s has for the glue. */
static void drain(struct side *s)
{
	struct p2p_linkfsm_action a;

	while (p2p_linkfsm_poll(s->f, &a)) {
		switch (a.type) {
		case P2P_LINKFSM_WRITE:
			cr_assert_leq(s->wlen + a.len, WIRE_MAX);
			memcpy(s->wire + s->wlen, a.data, a.len);
			s->wlen += a.len;
			break;
		case P2P_LINKFSM_EARLY:
			s->early++;
			if (s->auto_hello)
				say_hello(s);
			break;
		case P2P_LINKFSM_ESTABLISHED:
			s->established++;
			if (s->auto_hello && !s->early)
				say_hello(s);
			break;
		case P2P_LINKFSM_HELLO:
			s->hellos++;
			s->firsts += a.first;
			s->announces += a.announce;
			s->observed = a.msg->u.hello.observed;
			break;
		case P2P_LINKFSM_RTT:
			s->rtts++;
			s->rtt_ms = a.rtt_ms;
			break;
		case P2P_LINKFSM_MSG:
			on_msg(s, a.msg);
			break;
		case P2P_LINKFSM_UNKNOWN:
			s->unknown++;
			break;
		case P2P_LINKFSM_REDIAL:
			s->redial++;
			break;
		case P2P_LINKFSM_CLOSING:
			s->closing++;
			s->closing_cause = a.cause;
			break;
		case P2P_LINKFSM_DONE:
			s->done++;
			s->done_cause = a.cause;
			s->done_why = a.why;
			s->done_err = a.err;
			if (a.msg && a.msg->type == P2P_MSG_GOAWAY)
				memcpy(s->goaway, a.msg->u.goaway.reason,
				       a.msg->u.goaway.len);
			break;
		}
	}
}

/* How deliver() hands bytes over: p2p_linkfsm_input (the framer), or
 * p2p_linkfsm_input_inplace with the bytes arriving as one read, or one
 * byte per read (the glue's read chunk: unconsumed bytes stay). */
enum feed_mode { FEED_FRAMER, FEED_INPLACE, FEED_INPLACE_BYTES };
static enum feed_mode feed_mode;

static void deliver_inplace(struct side *from, struct side *to)
{
	static uint8_t rb[WIRE_MAX];
	size_t have = 0, off = 0;
	size_t step = feed_mode == FEED_INPLACE_BYTES ? 1 : from->wlen;

	while (have < from->wlen) {
		size_t k;
		/* A "read" of step bytes lands behind what is held. */
		memcpy(rb + have, from->wire + have, step);
		have += step;
		while (off < have &&
		       (k = p2p_linkfsm_input_inplace(to->f, NOW, rb + off,
						      have - off)) > 0) {
			off += k;
			drain(to);
		}
		drain(to);
	}
	cr_assert_eq(off, have, "whole frames only: nothing left");
	from->wlen = 0;
}

/* Deliver what from wrote into to, one frame (or less) per call. */
static bool deliver(struct side *from, struct side *to)
{
	size_t off = 0;

	if (from->wlen == 0)
		return false;
	if (feed_mode != FEED_FRAMER) {
		deliver_inplace(from, to);
		return true;
	}
	/* The receiver's writes go to its own wire: no overlap. */
	while (off < from->wlen) {
		size_t k = p2p_linkfsm_input(to->f, NOW, from->wire + off,
					     from->wlen - off);
		cr_assert_gt(k, 0);
		off += k;
		drain(to);
	}
	from->wlen = 0;
	return true;
}

/* Run both until nothing moves. */
static void pump(void)
{
	bool moved;

	do {
		drain(&A);
		drain(&B);
		moved = deliver(&A, &B);
		moved |= deliver(&B, &A);
	} while (moved);
}

static void connect_both(void)
{
	cr_assert_eq(p2p_linkfsm_connected(A.f, NOW, NULL, NULL), 0);
	cr_assert_eq(p2p_linkfsm_connected(B.f, NOW, NULL, NULL), 0);
	drain(&A);
	drain(&B);
}

/* A dials B (expecting it), B accepts; both up. */
static void up(void)
{
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	cr_assert_eq(A.established, 1);
	cr_assert_eq(B.established, 1);
	cr_assert_eq(A.firsts, 1);
	cr_assert_eq(B.firsts, 1);
}

static void send_find(struct side *s, uint32_t txid)
{
	struct p2p_msg m = {.type = P2P_MSG_FIND_NODE};

	m.u.find_node.txid = txid;
	cr_assert_eq(p2p_linkfsm_send_msg(s->f, &m), 0);
}

/* ---- handshake ---- */

static void handshake(const struct p2p_identity *ii,
		      const struct p2p_identity *ir)
{
	A.f = mk(ii, (struct p2p_linkfsm_role){.initiator = true,
					       .expect = &ir->id});
	B.f = mk(ir, (struct p2p_linkfsm_role){.initiator = false});
	/* A responder waits for frame 1; an initiator for connected(). */
	cr_assert_eq(A.wlen, 0);
	connect_both();
	cr_assert_eq(A.wlen, 38 + P2P_FRAME_HDR, "frame 1");
	cr_assert_eq(B.wlen, 0, "a responder says nothing first");
	pump();
	cr_assert_eq(A.established, 1);
	cr_assert_eq(B.established, 1);
	cr_assert(p2p_peerid_equal(p2p_linkfsm_peer(A.f), &ir->id));
	cr_assert(p2p_peerid_equal(p2p_linkfsm_peer(B.f), &ii->id));
	cr_assert(p2p_linkfsm_initiator(A.f));
	cr_assert_not(p2p_linkfsm_initiator(B.f));
	cr_assert_eq(A.done + B.done, 0);
}

Test(core, linkfsm_handshake_lower_dials)
{
	handshake(&IA, &IB);
}

Test(core, linkfsm_handshake_higher_dials)
{
	handshake(&IB, &IA);
}

Test(core, linkfsm_hello_exchange)
{
	up();
	cr_assert(p2p_linkfsm_hello_rx(A.f));
	cr_assert(p2p_linkfsm_hello_rx(B.f));
	cr_assert_eq(A.observed.port, 4242);
	cr_assert_eq(B.observed.ip[3], 7);
	cr_assert_not(p2p_linkfsm_peer_server(B.f));
	/* The same HELLO again: not announced; the server flag: announced. */
	say_hello(&A);
	pump();
	cr_assert_eq(B.hellos, 2);
	cr_assert_eq(B.announces, 1);
	A.hello_flags = P2P_HELLO_SERVER;
	say_hello(&A);
	pump();
	cr_assert_eq(B.hellos, 3);
	cr_assert_eq(B.announces, 2);
	cr_assert_eq(B.firsts, 1);
	cr_assert(p2p_linkfsm_peer_server(B.f));
}

Test(core, linkfsm_messages_both_paths)
{
	uint8_t enc[128], rec[128 + P2P_RECORD_OVERHEAD];
	struct p2p_msg m = {.type = P2P_MSG_STREAM_DATA};
	size_t len, rlen;

	up();
	send_find(&A, 77);
	pump();
	cr_assert_eq(B.msgs, 1);
	cr_assert_eq(B.last_type, P2P_MSG_FIND_NODE);
	cr_assert_eq(B.last_txid, 77);
	/* The data path: sealed into the caller's buffer. */
	m.u.stream.stream = 3;
	m.u.stream.data = (const uint8_t *)"hello";
	m.u.stream.len = 5;
	cr_assert_eq(p2p_msg_encode(&m, enc, sizeof(enc), &len), 0);
	cr_assert_eq(p2p_linkfsm_seal(B.f, enc, len, rec, sizeof(rec), &rlen),
		     0);
	memcpy(B.wire, rec, rlen);
	B.wlen = rlen;
	pump();
	cr_assert_eq(A.last_type, P2P_MSG_STREAM_DATA);
	cr_assert_eq(A.last_len, 5);
	cr_assert_eq(memcmp(A.last_data, "hello", 5), 0);
}

Test(core, linkfsm_seal_refuses_out_of_order)
{
	uint8_t enc[16] = {P2P_PROTO_VERSION, P2P_MSG_PING}, rec[64];
	size_t rlen;

	up();
	/* A WRITE not yet polled: sealing now would reorder records. */
	send_find(&A, 1);
	cr_assert_eq(p2p_linkfsm_seal(A.f, enc, 10, rec, sizeof(rec), &rlen),
		     -EAGAIN);
	drain(&A);
	cr_assert_eq(p2p_linkfsm_seal(A.f, enc, 10, rec, sizeof(rec), &rlen),
		     0);
	/* Not up: nothing to seal with. */
	p2p_linkfsm_free(B.f);
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	cr_assert_eq(p2p_linkfsm_seal(B.f, enc, 10, rec, sizeof(rec), &rlen),
		     -ENOTCONN);
}

/* ---- time ---- */

Test(core, linkfsm_keepalive_ping_pong_rtt)
{
	up();
	cr_assert_eq(p2p_linkfsm_rtt(A.f), -1);
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), T0 + 25000 * 1000ull);
	NOW = T0 + 24999 * 1000ull;
	p2p_linkfsm_tick(A.f, NOW);
	drain(&A);
	cr_assert_eq(A.wlen, 0, "no PING before keepalive_ms");
	NOW = T0 + 25000 * 1000ull;
	p2p_linkfsm_tick(A.f, NOW);
	drain(&A);
	cr_assert_gt(A.wlen, 0, "PING");
	deliver(&A, &B); /* B answers PONG at once */
	NOW += 1500;	 /* 1.5 ms later it arrives */
	deliver(&B, &A);
	cr_assert_eq(A.rtts, 1);
	cr_assert_float_eq(A.rtt_ms, 1.5, 1e-9);
	cr_assert_float_eq(p2p_linkfsm_rtt(A.f), 1.5, 1e-9);
	cr_assert_eq(A.last_type, P2P_MSG_PONG, "its handler sees it too");
	cr_assert_eq(A.last_nonce & 1, 1);
	/* The next PING keepalive_ms after this one. */
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), T0 + 50000 * 1000ull);
	/* B's PING: A answers, and A's rtt is not touched. */
	cr_assert_eq(p2p_linkfsm_ping(B.f, NOW), 0);
	pump();
	cr_assert_eq(A.rtts, 1);
	cr_assert_eq(B.rtts, 1);
}

/* Issue 8: how quiet the link was when a reset came (core/keepalive.h).
 * A reset a round trip after our PING measures the quiet up to the PING,
 * not up to the reset; one answering something else, up to now. */
Test(core, linkfsm_quiet_before_a_reset)
{
	up();
	NOW = T0 + 25000 * 1000ull;
	p2p_linkfsm_tick(A.f, NOW); /* A's keepalive PING, lost */
	drain(&A);
	cr_assert_gt(A.wlen, 0, "PING");
	A.wlen = 0;
	cr_assert_eq(p2p_linkfsm_quiet_ms(A.f, NOW + 80 * 1000ull), 25000,
		     "from the last packet heard to the PING");
	/* B's PING arrives: A heard something, and then a reset comes for
	 * A's PONG 3 s later. */
	cr_assert_eq(p2p_linkfsm_ping(B.f, NOW), 0);
	drain(&B);
	deliver(&B, &A);
	cr_assert_eq(p2p_linkfsm_quiet_ms(A.f, NOW + 3000 * 1000ull), 3000,
		     "no PING since: up to now");
}

/* Attack: PINGs as fast as the link takes them, never reading. Each one
 * used to earn a PONG in our write queue. */
Test(core, linkfsm_pongs_are_rate_limited)
{
	unsigned answered = 0;

	up();
	for (int i = 0; i < 10 * P2P_LINKFSM_PONG_BURST; i++) {
		cr_assert_eq(p2p_linkfsm_ping(B.f, NOW), 0);
		drain(&B);
		deliver(&B, &A);
		drain(&A);
		if (A.wlen > 0)
			answered++;
		A.wlen = 0;
	}
	cr_assert_eq(answered, P2P_LINKFSM_PONG_BURST,
		     "PONGs for a burst of PINGs: %u", answered);
	/* tokens come back at P2P_LINKFSM_PONG_RATE a second */
	NOW += 1000000;
	answered = 0;
	for (int i = 0; i < 4 * P2P_LINKFSM_PONG_RATE; i++) {
		cr_assert_eq(p2p_linkfsm_ping(B.f, NOW), 0);
		drain(&B);
		deliver(&B, &A);
		drain(&A);
		if (A.wlen > 0)
			answered++;
		A.wlen = 0;
	}
	cr_assert_eq(answered, P2P_LINKFSM_PONG_RATE);
	cr_assert_eq(A.done, 0, "the link stays up");
}

/* Attack (issue 9): a DIALBACK_OK over a relayed link, which proves
 * nothing about our listener, never reaches its handler (the daemon
 * registers DIALBACK_OK for before HELLO, not for relayed links). */
Test(core, linkfsm_relayed_dialback_ok_dropped)
{
	uint8_t enc[64], rec[64 + P2P_RECORD_OVERHEAD];
	struct p2p_msg m = {.type = P2P_MSG_DIALBACK_OK};
	size_t len, rlen;

	A.auto_hello = B.auto_hello = false; /* before HELLO, too */
	A.f =
	    mk(&IA, (struct p2p_linkfsm_role){
			.initiator = true, .expect = &IB.id, .relayed = true});
	B.f = mk(&IB,
		 (struct p2p_linkfsm_role){.expect = &IA.id, .relayed = true});
	connect_both();
	pump();
	for (int after_hello = 0; after_hello < 2; after_hello++) {
		if (after_hello) {
			say_hello(&A);
			pump();
		}
		m.u.dialback.nonce = 42;
		cr_assert_eq(p2p_msg_encode(&m, enc, sizeof(enc), &len), 0);
		cr_assert_eq(
		    p2p_linkfsm_seal(A.f, enc, len, rec, sizeof(rec), &rlen),
		    0);
		memcpy(A.wire, rec, rlen);
		A.wlen = rlen;
		pump();
		cr_assert_eq(B.msgs, 0, "DIALBACK_OK handed on (hello %d)",
			     after_hello);
		cr_assert_eq(B.unknown, (unsigned)after_hello + 1);
	}
}

Test(core, linkfsm_idle_timeout_then_grace)
{
	up();
	/* B falls silent: A hears nothing (its PINGs are lost). */
	for (NOW = T0; NOW < T0 + 90000 * 1000ull;) {
		NOW = p2p_linkfsm_next_timer(A.f);
		p2p_linkfsm_tick(A.f, NOW);
		drain(&A);
		A.wlen = 0;
		if (A.closing)
			break;
	}
	cr_assert_eq(NOW, T0 + 90000 * 1000ull);
	cr_assert_eq(A.closing, 1);
	cr_assert_eq(A.closing_cause, P2P_LINKFSM_C_IDLE);
	cr_assert_eq(A.done, 0);
	cr_assert(p2p_linkfsm_done(A.f));
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), NOW + 2000 * 1000ull);
	NOW += 2000 * 1000ull;
	p2p_linkfsm_tick(A.f, NOW);
	drain(&A);
	cr_assert_eq(A.done, 1);
	cr_assert_eq(A.done_cause, P2P_LINKFSM_C_CLOSED);
	cr_assert_str_eq(A.done_why, "idle timeout");
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), UINT64_MAX);
}

Test(core, linkfsm_a_record_defers_idle)
{
	CFG.keepalive_ms = 200000; /* no PING (and PONG) in between */
	up();
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), T0 + 90000 * 1000ull);
	NOW = T0 + 60000 * 1000ull;
	send_find(&B, 3);
	pump();
	cr_assert_eq(A.last_txid, 3);
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), NOW + 90000 * 1000ull);
	p2p_linkfsm_tick(A.f, T0 + 90000 * 1000ull);
	drain(&A);
	cr_assert_eq(A.closing, 0);
}

Test(core, linkfsm_handshake_timeout)
{
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	cr_assert_eq(p2p_linkfsm_connected(A.f, NOW, NULL, NULL), 0);
	drain(&A);
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), T0 + 10000 * 1000ull);
	p2p_linkfsm_tick(A.f, T0 + 10000 * 1000ull - 1);
	drain(&A);
	cr_assert_eq(A.done, 0);
	p2p_linkfsm_tick(A.f, T0 + 10000 * 1000ull);
	drain(&A);
	cr_assert_eq(A.done, 1);
	cr_assert_eq(A.done_cause, P2P_LINKFSM_C_TIMEOUT);
	cr_assert_eq(A.done_err, -ETIMEDOUT);
}

Test(core, linkfsm_no_hello_times_out)
{
	/* Established but the peer never says HELLO. */
	B.auto_hello = false;
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	cr_assert_eq(A.established, 1);
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), T0 + 10000 * 1000ull);
	cr_assert_eq(A.firsts, 0);
	cr_assert_eq(B.firsts, 1, "B heard A's HELLO: keepalive from now");
	cr_assert_eq(p2p_linkfsm_next_timer(B.f), T0 + 25000 * 1000ull);
	p2p_linkfsm_tick(A.f, T0 + 10000 * 1000ull - 1);
	drain(&A);
	cr_assert_eq(A.done, 0);
	p2p_linkfsm_tick(A.f, T0 + 10000 * 1000ull);
	drain(&A);
	cr_assert_eq(A.done_cause, P2P_LINKFSM_C_TIMEOUT);
	cr_assert_eq(A.done, 1);
}

Test(core, linkfsm_goaway_then_grace)
{
	up();
	p2p_linkfsm_close(A.f, NOW, 0, "bye");
	drain(&A);
	cr_assert_eq(A.closing, 1);
	cr_assert_eq(A.closing_cause, P2P_LINKFSM_C_CLOSED);
	cr_assert_gt(A.wlen, 0, "GOAWAY");
	/* Nothing more goes out on a closing link. */
	cr_assert_eq(
	    p2p_linkfsm_send_msg(A.f, &(struct p2p_msg){.type = P2P_MSG_PING}),
	    -ENOTCONN);
	deliver(&A, &B);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_GOAWAY);
	cr_assert_str_eq(B.goaway, "bye");
	cr_assert_eq(p2p_linkfsm_next_timer(B.f), UINT64_MAX);
	NOW += 1999 * 1000ull;
	p2p_linkfsm_tick(A.f, NOW);
	drain(&A);
	cr_assert_eq(A.done, 0);
	NOW += 1000;
	p2p_linkfsm_tick(A.f, NOW);
	drain(&A);
	cr_assert_eq(A.done, 1);
	cr_assert_str_eq(A.done_why, "bye");
	/* Closing a link that is not up ends it at once. */
	p2p_linkfsm_free(A.f);
	A = (struct side){0};
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true});
	p2p_linkfsm_close(A.f, NOW, 0, "stop");
	drain(&A);
	cr_assert_eq(A.closing, 0);
	cr_assert_eq(A.done, 1);
	cr_assert_str_eq(A.done_why, "stop");
}

/* ---- who is at the other end ---- */

Test(core, linkfsm_expected_id_mismatch)
{
	/* An initiator expecting C meets B: its session rejects B. */
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IC.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	cr_assert_eq(A.established, 0);
	cr_assert_eq(A.done, 1);
	cr_assert_eq(A.done_cause, P2P_LINKFSM_C_HANDSHAKE);
	cr_assert_eq(A.done_err, -EKEYREJECTED);
}

Test(core, linkfsm_expected_id_mismatch_responder)
{
	/* A relayed responder expects C and meets A. */
	A.f =
	    mk(&IA, (struct p2p_linkfsm_role){
			.initiator = true, .expect = &IB.id, .relayed = true});
	B.f = mk(&IB,
		 (struct p2p_linkfsm_role){.expect = &IC.id, .relayed = true});
	connect_both();
	pump();
	cr_assert_eq(B.established, 0);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_EXPECT);
	cr_assert_str_eq(B.done_why, "not the expected peer");
}

Test(core, linkfsm_self_connection)
{
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true});
	B.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	cr_assert_eq(A.established + B.established, 0);
	cr_assert_eq(A.closing, 1);
	cr_assert_eq(A.closing_cause, P2P_LINKFSM_C_SELF);
	cr_assert_eq(B.closing, 1);
	cr_assert_eq(B.closing_cause, P2P_LINKFSM_C_SELF);
}

/* ---- simultaneous open ---- */

/* Both ends dial at once (a punch). A (the lower ID) asked for it when
 * a_leads, else B did; the one that asked stays initiator whatever the
 * IDs, the other answers. */
static void punch(bool a_leads, bool a_first)
{
	struct side *lead = a_leads ? &A : &B, *other = a_leads ? &B : &A;

	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id,
						.punch = true,
						.punch_lead = a_leads});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IA.id,
						.punch = true,
						.punch_lead = !a_leads});
	connect_both();
	cr_assert_gt(A.wlen, 0);
	cr_assert_gt(B.wlen, 0);
	/* Either frame 1 arrives first. */
	if (a_first) {
		deliver(&A, &B);
		deliver(&B, &A);
	} else {
		deliver(&B, &A);
		deliver(&A, &B);
	}
	pump();
	cr_assert_eq(A.established, 1);
	cr_assert_eq(B.established, 1);
	cr_assert_eq(A.redial + B.redial, 0);
	cr_assert(p2p_linkfsm_initiator(lead->f), "who asked stays initiator");
	cr_assert_not(p2p_linkfsm_initiator(other->f), "the other answers");
	cr_assert_eq(other->early, 1, "its HELLO went with frame 2");
	cr_assert(p2p_peerid_equal(p2p_linkfsm_peer(B.f), &IA.id));
	cr_assert(p2p_peerid_equal(p2p_linkfsm_peer(A.f), &IB.id));
	cr_assert_eq(A.firsts + B.firsts, 2);
}

Test(core, linkfsm_punch_lower_leads_its_frame1_first)
{
	punch(true, true);
}

Test(core, linkfsm_punch_lower_leads_peer_frame1_first)
{
	punch(true, false);
}

Test(core, linkfsm_punch_higher_leads_its_frame1_first)
{
	punch(false, false);
}

Test(core, linkfsm_punch_higher_leads_peer_frame1_first)
{
	punch(false, true);
}

/*
 * The requester's link is up one round trip after the TCP handshake: the
 * punch's replier answers its frame 1 with frame 2 and its HELLO in one
 * flight, so after one delivery each way the requester has the peer's
 * HELLO (the link is usable) while its frame 3 is still on the wire.
 */
Test(core, linkfsm_punch_requester_up_after_one_round_trip)
{
	/* A has the higher ID here: the role comes from the signalling. */
	A.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IA.id,
						.punch = true,
						.punch_lead = true});
	B.f = mk(&IA, (struct p2p_linkfsm_role){
			  .initiator = true, .expect = &IB.id, .punch = true});
	connect_both();
	/* One way: A's frame 1. B turns responder: frame 2 and its HELLO. */
	deliver(&A, &B);
	cr_assert_eq(B.early, 1);
	cr_assert_eq(B.established, 0);
	/* The other way: B's own frame 1 (ignored), frame 2, HELLO. */
	deliver(&B, &A);
	cr_assert_eq(A.established, 1);
	cr_assert(p2p_linkfsm_hello_rx(A.f), "usable after one round trip");
	cr_assert_eq(A.firsts, 1);
	cr_assert_eq(B.established, 0, "frame 3 still on the wire");
	/* A may send at once; B reads it after frame 3 and A's HELLO. */
	send_find(&A, 77);
	pump();
	cr_assert_eq(B.established, 1);
	cr_assert_eq(B.firsts, 1);
	cr_assert_eq(B.last_txid, 77);
	cr_assert_eq(A.hellos, 1, "B's HELLO once: not again when established");
	cr_assert_eq(A.done + B.done, 0);
}

/* Only a HELLO may go before the peer is proven, and only from a
 * responder that has written frame 2. */
Test(core, linkfsm_early_is_hello_only)
{
	struct p2p_msg m = {.type = P2P_MSG_FIND_NODE};

	A.auto_hello = B.auto_hello = false;
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	m.u.find_node.txid = 1;
	cr_assert_eq(p2p_linkfsm_send_msg(B.f, &m), -ENOTCONN);
	connect_both();
	cr_assert_eq(p2p_linkfsm_send_msg(A.f, &m), -ENOTCONN);
	deliver(&A, &B);
	cr_assert_eq(B.early, 1);
	cr_assert_eq(p2p_linkfsm_send_msg(B.f, &m), -ENOTCONN,
		     "not before frame 3");
	say_hello(&B);
	drain(&B);
	deliver(&B, &A);
	cr_assert_eq(A.established, 1);
	cr_assert(p2p_linkfsm_hello_rx(A.f));
}

Test(core, linkfsm_punch_to_the_wrong_peer)
{
	/* B turns responder (C asked) and then meets C, not A. */
	A.f = mk(&IC, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id,
						.punch = true,
						.punch_lead = true});
	B.f = mk(&IB, (struct p2p_linkfsm_role){
			  .initiator = true, .expect = &IA.id, .punch = true});
	connect_both();
	pump();
	cr_assert_eq(B.established, 0);
	cr_assert_eq(B.done, 1);
}

Test(core, linkfsm_plain_dial_frame1_redials)
{
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IA.id});
	connect_both();
	pump();
	cr_assert_eq(A.redial, 1);
	cr_assert_eq(B.redial, 1);
	cr_assert_eq(A.done + B.done, 0, "REDIAL is the end");
	cr_assert(p2p_linkfsm_done(A.f));
	cr_assert_eq(p2p_linkfsm_next_timer(A.f), UINT64_MAX);
}

Test(core, linkfsm_relayed_frame1_fails)
{
	A.f =
	    mk(&IA, (struct p2p_linkfsm_role){
			.initiator = true, .expect = &IB.id, .relayed = true});
	B.f =
	    mk(&IB, (struct p2p_linkfsm_role){
			.initiator = true, .expect = &IA.id, .relayed = true});
	connect_both();
	pump();
	cr_assert_eq(A.redial + B.redial, 0);
	cr_assert_eq(A.done, 1);
	cr_assert_eq(A.done_cause, P2P_LINKFSM_C_HANDSHAKE);
}

/* ---- bad input ---- */

Test(core, linkfsm_corrupted_record_fails)
{
	up();
	send_find(&A, 5);
	drain(&A);
	A.wire[A.wlen - 3] ^= 0x40; /* inside the tag */
	deliver(&A, &B);
	cr_assert_eq(B.msgs, 0);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_RECORD);
	cr_assert_eq(B.done_err, -EBADMSG);
	cr_assert_str_eq(B.done_why, "bad record");
}

Test(core, linkfsm_corrupted_frame_fails)
{
	static const uint8_t zero_len[4] = {0, 0, 0, 0};

	up();
	memcpy(A.wire, zero_len, 4);
	A.wlen = 4;
	deliver(&A, &B);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_FRAME);
	cr_assert_eq(B.done_err, -EPROTO);
}

Test(core, linkfsm_corrupted_handshake_fails)
{
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	A.wire[P2P_FRAME_HDR + 1] ^= 1; /* the magic */
	pump();
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_HANDSHAKE);
	cr_assert_lt(B.done_err, 0);
	cr_assert_eq(B.established, 0);
}

Test(core, linkfsm_message_before_hello_fails)
{
	A.auto_hello = false;
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	cr_assert_eq(A.established, 1);
	send_find(&A, 9);
	pump();
	cr_assert_eq(B.msgs, 0);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BEFORE_HELLO);
	cr_assert_eq(B.done_err, -EPROTO);
}

Test(core, linkfsm_before_hello_policy_allows)
{
	struct p2p_msg m = {.type = P2P_MSG_DIALBACK_OK};

	A.auto_hello = false;
	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	m.u.dialback.nonce = 5;
	cr_assert_eq(p2p_linkfsm_send_msg(A.f, &m), 0);
	pump();
	cr_assert_eq(B.done, 0);
	cr_assert_eq(B.last_type, P2P_MSG_DIALBACK_OK);
}

Test(core, linkfsm_relayed_policy_drops)
{
	uint8_t enc[64], rec[64 + P2P_RECORD_OVERHEAD];
	struct p2p_msg m = {.type = P2P_MSG_STREAM_DATA};
	size_t len, rlen;

	A.f =
	    mk(&IA, (struct p2p_linkfsm_role){
			.initiator = true, .expect = &IB.id, .relayed = true});
	B.f = mk(&IB,
		 (struct p2p_linkfsm_role){.expect = &IA.id, .relayed = true});
	connect_both();
	pump();
	cr_assert_eq(B.firsts, 1, "HELLO is the link's own");
	send_find(&A, 1);
	pump();
	cr_assert_eq(B.unknown, 1);
	cr_assert_eq(B.msgs, 0);
	m.u.stream.data = (const uint8_t *)"x";
	m.u.stream.len = 1;
	cr_assert_eq(p2p_msg_encode(&m, enc, sizeof(enc), &len), 0);
	cr_assert_eq(p2p_linkfsm_seal(A.f, enc, len, rec, sizeof(rec), &rlen),
		     0);
	memcpy(A.wire, rec, rlen);
	A.wlen = rlen;
	pump();
	cr_assert_eq(B.msgs, 1);
	cr_assert_eq(B.last_type, P2P_MSG_STREAM_DATA);
	cr_assert_eq(B.done, 0);
}

Test(core, linkfsm_unknown_type_is_dropped)
{
	uint8_t enc[2] = {P2P_PROTO_VERSION, 200}, rec[64];
	size_t rlen;

	up();
	cr_assert_eq(p2p_linkfsm_seal(A.f, enc, 2, rec, sizeof(rec), &rlen), 0);
	memcpy(A.wire, rec, rlen);
	A.wlen = rlen;
	pump();
	cr_assert_eq(B.unknown, 1);
	cr_assert_eq(B.done, 0);
}

Test(core, linkfsm_dialback_says_ok_and_closes)
{
	A.f =
	    mk(&IA, (struct p2p_linkfsm_role){
			.initiator = true, .expect = &IB.id, .dialback = true});
	p2p_linkfsm_set_dialback_nonce(A.f, 0x1234);
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	pump();
	cr_assert_eq(A.established, 0, "a dial-back is not announced");
	cr_assert_eq(A.closing, 1);
	cr_assert_eq(A.closing_cause, P2P_LINKFSM_C_DIALBACK);
	cr_assert_eq(B.msgs, 1);
	cr_assert_eq(B.last_type, P2P_MSG_DIALBACK_OK);
	cr_assert_eq(B.last_nonce, 0x1234);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_GOAWAY);
	cr_assert_str_eq(B.goaway, "dial-back done");
	/* B's HELLO reached A, which ignores everything. */
	cr_assert_eq(A.hellos + A.msgs, 0);
}

Test(core, linkfsm_send_msg_is_for_small_messages)
{
	struct p2p_msg m = {.type = P2P_MSG_NODES};

	up();
	/* 20 contacts are over the fsm's own buffer: the caller seals
	 * those into its own (p2p_linkfsm_seal). */
	m.u.nodes.count = P2P_MAX_NODES;
	for (size_t i = 0; i < P2P_MAX_NODES; i++)
		m.u.nodes.nodes[i].addr = (struct p2p_addr){
		    .family = 6, .ip = {0xfd, [15] = 1}, .port = 1};
	cr_assert_eq(p2p_linkfsm_send_msg(A.f, &m), -EMSGSIZE);
	drain(&A);
	cr_assert_eq(A.wlen, 0);
	cr_assert_eq(A.done, 0, "the link lives on");
	m.u.nodes.count = 2;
	cr_assert_eq(p2p_linkfsm_send_msg(A.f, &m), 0);
	pump();
	cr_assert_eq(B.last_type, P2P_MSG_NODES);
}

/* ---- whole frames in place (the glue's read chunk) ---- */

static void messages_in_place(enum feed_mode mode)
{
	uint8_t enc[2048], rec[2048 + P2P_RECORD_OVERHEAD], data[1500];
	struct p2p_msg m = {.type = P2P_MSG_STREAM_DATA};
	size_t len, rlen;

	feed_mode = mode;
	up(); /* handshake and HELLOs, in place */
	send_find(&A, 78);
	pump();
	cr_assert_eq(B.last_type, P2P_MSG_FIND_NODE);
	cr_assert_eq(B.last_txid, 78);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 1);
	m.u.stream.stream = 5;
	m.u.stream.data = data;
	m.u.stream.len = sizeof(data);
	cr_assert_eq(p2p_msg_encode(&m, enc, sizeof(enc), &len), 0);
	cr_assert_eq(p2p_linkfsm_seal(B.f, enc, len, rec, sizeof(rec), &rlen),
		     0);
	memcpy(B.wire, rec, rlen);
	B.wlen = rlen;
	send_find(&B, 79); /* a second record behind it, same read */
	pump();
	cr_assert_eq(A.msgs, 2);
	cr_assert_eq(A.last_txid, 79);
	cr_assert_eq(A.last_len, sizeof(data));
	cr_assert_eq(memcmp(A.last_data, data, sizeof(A.last_data)), 0);
	cr_assert_eq(A.done + B.done, 0);
}

Test(core, linkfsm_inplace_whole_reads)
{
	messages_in_place(FEED_INPLACE);
}

/* Every read boundary inside every frame: 0 until a frame is whole. */
Test(core, linkfsm_inplace_split_at_every_byte)
{
	messages_in_place(FEED_INPLACE_BYTES);
}

/* A frame begun through the framer is finished by it. */
Test(core, linkfsm_inplace_after_framer_partial)
{
	up();
	send_find(&A, 80);
	drain(&A);
	cr_assert_gt(A.wlen, 6);
	cr_assert_eq(p2p_linkfsm_input(B.f, NOW, A.wire, 3), 3);
	drain(&B);
	cr_assert_eq(
	    p2p_linkfsm_input_inplace(B.f, NOW, A.wire + 3, A.wlen - 3),
	    A.wlen - 3);
	drain(&B);
	cr_assert_eq(B.last_txid, 80);
	A.wlen = 0;
}

/* Bad lengths are found from the header alone, as the framer does. */
static void bad_length(uint32_t blen, int err)
{
	uint8_t hdr[P2P_FRAME_HDR] = {(uint8_t)(blen >> 24),
				      (uint8_t)(blen >> 16),
				      (uint8_t)(blen >> 8), (uint8_t)blen};

	up();
	cr_assert_eq(p2p_linkfsm_input_inplace(B.f, NOW, hdr, 3), 0);
	cr_assert_eq(p2p_linkfsm_input_inplace(B.f, NOW, hdr, 4), 4);
	drain(&B);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_FRAME);
	cr_assert_eq(B.done_err, err);
}

Test(core, linkfsm_inplace_zero_length_fails)
{
	bad_length(0, -EPROTO);
}

Test(core, linkfsm_inplace_oversized_fails)
{
	bad_length(P2P_FRAME_MAX + 1, -EMSGSIZE);
}

/* ---- pass frames (issue 10, proto/msg.h RELAY_PASS) ---- */

static const uint8_t PASS_DATA[40] = "end-to-end record bytes, then its tag!!";

/* A's pass frame for circuit 7 with PASS_DATA[0..len) onto A's wire. */
static size_t put_pass(size_t len)
{
	uint8_t fr[P2P_FRAME_HDR + P2P_PASS_HDR + sizeof(PASS_DATA)];
	size_t n;

	cr_assert_eq(
	    p2p_linkfsm_seal_pass(A.f, 7, PASS_DATA, len, fr, sizeof(fr), &n),
	    0);
	cr_assert_eq(n, P2P_FRAME_HDR + P2P_PASS_HDR + len);
	memcpy(A.wire + A.wlen, fr, n);
	A.wlen += n;
	return n;
}

static void pass_frames(enum feed_mode mode)
{
	size_t n;

	feed_mode = mode;
	up();
	n = put_pass(sizeof(PASS_DATA));
	/* The data travel as they are: only the head is sealed. */
	cr_assert_eq(memcmp(A.wire + n - sizeof(PASS_DATA), PASS_DATA,
			    sizeof(PASS_DATA)),
		     0);
	put_pass(3); /* shorter than the tail: padded */
	send_find(&A, 80);
	drain(&A);
	pump();
	cr_assert_eq(B.done, 0, "%s", B.done_why ? B.done_why : "");
	cr_assert_eq(B.msgs, 3);
	cr_assert_eq(B.last_type, P2P_MSG_FIND_NODE, "records in sequence");
	cr_assert_eq(B.last_len, 3);
	cr_assert_eq(memcmp(B.last_data, PASS_DATA, 3), 0);
}

Test(core, linkfsm_pass_frames_framer)
{
	pass_frames(FEED_FRAMER);
}

Test(core, linkfsm_pass_frames_in_place)
{
	pass_frames(FEED_INPLACE);
}

Test(core, linkfsm_pass_frames_byte_reads)
{
	pass_frames(FEED_INPLACE_BYTES);
}

/* The data already in the queue (a record sealed there): only the head
 * is written, and the far end reads it as a copied pass frame. */
Test(core, linkfsm_pass_head_in_place)
{
	uint8_t fr[P2P_FRAME_HDR + P2P_PASS_HDR + sizeof(PASS_DATA)];
	uint8_t *data = fr + P2P_FRAME_HDR + P2P_PASS_HDR;
	size_t n;

	feed_mode = FEED_INPLACE;
	up();
	memset(fr, 0xee, sizeof(fr));
	memcpy(data, PASS_DATA, sizeof(PASS_DATA));
	cr_assert_eq(
	    p2p_linkfsm_seal_pass_head(A.f, 9, fr, sizeof(PASS_DATA), &n), 0);
	cr_assert_eq(n, sizeof(fr));
	cr_assert_eq(memcmp(data, PASS_DATA, sizeof(PASS_DATA)), 0,
		     "the data stay as they were");
	cr_assert_eq(p2p_linkfsm_seal_pass_head(A.f, 9, fr, 0, &n), -EMSGSIZE);
	cr_assert_eq(
	    p2p_linkfsm_seal_pass_head(A.f, 9, fr, P2P_PASS_DATA_MAX + 1, &n),
	    -EMSGSIZE);
	memcpy(A.wire + A.wlen, fr, sizeof(fr));
	A.wlen += sizeof(fr);
	pump();
	cr_assert_eq(B.done, 0, "%s", B.done_why ? B.done_why : "");
	cr_assert_eq(B.msgs, 1);
	cr_assert_eq(B.last_type, P2P_MSG_RELAY_PASS);
	cr_assert_eq(B.last_txid, 9);
	cr_assert_eq(B.last_len, sizeof(PASS_DATA));
	cr_assert_eq(memcmp(B.last_data, PASS_DATA, sizeof(PASS_DATA)), 0);
}

/* What the hop authenticates: the tail of the data, the length. */
Test(core, linkfsm_pass_tail_is_bound)
{
	size_t n;

	up();
	n = put_pass(sizeof(PASS_DATA));
	A.wire[n - 1] ^= 1; /* the data's last byte: inside the tail */
	deliver(&A, &B);
	cr_assert_eq(B.msgs, 0);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_MSG);
	cr_assert_eq(B.done_err, -EBADMSG);
	cr_assert_str_eq(B.done_why, "bad pass frame");
}

Test(core, linkfsm_pass_other_bytes_are_the_ends_business)
{
	size_t n;

	up();
	n = put_pass(sizeof(PASS_DATA));
	/* A byte before the tail: the hop passes it on (the ends' own
	 * AEAD fails on it and their relayed link dies). */
	A.wire[n - sizeof(PASS_DATA)] ^= 1;
	deliver(&A, &B);
	cr_assert_eq(B.done, 0);
	cr_assert_eq(B.last_type, P2P_MSG_RELAY_PASS);
	cr_assert_eq(B.last_txid, 7);
	cr_assert_eq(B.last_data[0], PASS_DATA[0] ^ 1);
}

Test(core, linkfsm_pass_length_is_bound)
{
	size_t n;

	up();
	n = put_pass(sizeof(PASS_DATA));
	/* One byte more in the frame than the head says. */
	A.wire[3]++;
	A.wire[n] = 'x';
	A.wlen = n + 1;
	deliver(&A, &B);
	cr_assert_eq(B.msgs, 0);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_MSG);
	cr_assert_eq(B.done_err, -EPROTO);
}

Test(core, linkfsm_pass_head_alone_is_refused)
{
	uint8_t enc[64], rec[64 + P2P_RECORD_OVERHEAD];
	struct p2p_msg m = {.type = P2P_MSG_RELAY_PASS};
	size_t len, rlen;

	up();
	/* RELAY_PASS in an ordinary record: no data to go with it. */
	m.u.relay.circ = 7;
	m.u.relay.len = 5;
	cr_assert_eq(p2p_msg_encode(&m, enc, sizeof(enc), &len), 0);
	cr_assert_eq(p2p_linkfsm_seal(A.f, enc, len, rec, sizeof(rec), &rlen),
		     0);
	memcpy(A.wire, rec, rlen);
	A.wlen = rlen;
	deliver(&A, &B);
	cr_assert_eq(B.msgs, 0);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_MSG);
	cr_assert_eq(B.done_err, -EPROTO);
}

Test(core, linkfsm_pass_frame_in_the_handshake_fails)
{
	static const uint8_t fr[8] = {0x80, 0, 0, 4, 1, 2, 3, 4};

	A.f = mk(&IA, (struct p2p_linkfsm_role){.initiator = true,
						.expect = &IB.id});
	B.f = mk(&IB, (struct p2p_linkfsm_role){.initiator = false});
	connect_both();
	A.wlen = 0; /* frame 1 dropped: a pass frame instead */
	memcpy(A.wire, fr, sizeof(fr));
	A.wlen = sizeof(fr);
	deliver(&A, &B);
	cr_assert_eq(B.done, 1);
	cr_assert_eq(B.done_cause, P2P_LINKFSM_C_BAD_FRAME);
}
