/*
 * One link's state machine (linkfsm.h): link_on_frame() of the old
 * daemon/link.c over an explicit state enum, with the timers kept as
 * deadlines and every effect queued as an action.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/linkfsm.h"
#include "proto/frame.h"
#include "proto/session.h"

enum fsm_state {
	S_CONNECTING, /* initiator: the transport is not connected yet */
	S_HANDSHAKE,  /* session handshake frames */
	S_UP,	      /* established: HELLO, then messages */
	S_CLOSING,    /* GOAWAY sent, waiting for the grace to pass */
	S_DONE,	      /* over: nothing more is read or written */
};

struct p2p_linkfsm {
	struct p2p_linkfsm_config cfg;
	enum fsm_state state;
	bool initiator, punch, punch_lead, relayed, dialback;
	bool has_expect;
	bool hello_rx, peer_server;
	struct p2p_peerid expect;
	struct p2p_peerid peer; /* once established */
	struct p2p_addr local, remote;
	struct p2p_framer *fr;
	struct p2p_session *sess;
	uint64_t deadline; /* handshake (until HELLO), or the close grace */
	uint64_t last_rx, last_ping;
	uint64_t ping_nonce, ping_sent; /* a PING in flight */
	uint32_t pong_tokens;		/* P2P_LINKFSM_PONG_RATE, in 1/1000 */
	uint64_t pong_refill;
	double rtt_ms;
	uint64_t dialback_nonce;
	const char *close_why;
	struct p2p_msg msg; /* the last decoded message */
	/* Actions not yet polled, and the fsm's own output. */
	struct p2p_linkfsm_action q[P2P_LINKFSM_QUEUE_MAX];
	size_t qhead, qlen;
	size_t writes_pending; /* WRITE actions in q */
	bool overflow;
	size_t olen;
	uint8_t out[P2P_LINKFSM_OUT_MAX];
};

/* ---- the action queue and the output buffer ---- */

static void push(struct p2p_linkfsm *f, const struct p2p_linkfsm_action *a)
{
	if (f->qlen == P2P_LINKFSM_QUEUE_MAX) {
		f->overflow = true; /* poll reports it as DONE */
		return;
	}
	f->q[(f->qhead + f->qlen) % P2P_LINKFSM_QUEUE_MAX] = *a;
	f->qlen++;
}

static void push_type(struct p2p_linkfsm *f, enum p2p_linkfsm_act type)
{
	struct p2p_linkfsm_action a = {.type = type};
	push(f, &a);
}

/* At the start of each call: output handed out is no longer needed. */
static void begin(struct p2p_linkfsm *f)
{
	if (f->writes_pending == 0)
		f->olen = 0;
}

/* The over: DONE, after which the fsm does nothing. */
static void finish(struct p2p_linkfsm *f, enum p2p_linkfsm_cause cause,
		   const char *why, int err, const struct p2p_msg *m)
{
	struct p2p_linkfsm_action a = {.type = P2P_LINKFSM_DONE};

	if (f->state == S_DONE)
		return;
	f->state = S_DONE;
	a.cause = cause;
	a.why = why;
	a.err = err;
	a.msg = m;
	push(f, &a);
}

/* Room for n bytes at the end of the output, or NULL (the link fails). */
static uint8_t *out_room(struct p2p_linkfsm *f, size_t n)
{
	if (f->olen + n > sizeof(f->out)) {
		finish(f, P2P_LINKFSM_C_INTERNAL, "output overflow", -ENOBUFS,
		       NULL);
		return NULL;
	}
	return f->out + f->olen;
}

/* n bytes were written at out_room(): one WRITE (merged with the last
 * one when that is still queued and adjacent). */
static void out_commit(struct p2p_linkfsm *f, size_t n)
{
	struct p2p_linkfsm_action a = {.type = P2P_LINKFSM_WRITE};

	if (f->qlen > 0) {
		struct p2p_linkfsm_action *last =
		    &f->q[(f->qhead + f->qlen - 1) % P2P_LINKFSM_QUEUE_MAX];
		if (last->type == P2P_LINKFSM_WRITE &&
		    last->data + last->len == f->out + f->olen) {
			last->len += n;
			f->olen += n;
			return;
		}
	}
	a.data = f->out + f->olen;
	a.len = n;
	f->olen += n;
	f->writes_pending++;
	push(f, &a);
}

bool p2p_linkfsm_poll(struct p2p_linkfsm *f, struct p2p_linkfsm_action *a)
{
	if (f->overflow) {
		f->overflow = false;
		f->qlen = 0;
		f->writes_pending = 0;
		f->state = S_DONE;
		*a =
		    (struct p2p_linkfsm_action){.type = P2P_LINKFSM_DONE,
						.cause = P2P_LINKFSM_C_INTERNAL,
						.why = "action queue full",
						.err = -ENOBUFS};
		return true;
	}
	if (f->qlen == 0)
		return false;
	*a = f->q[f->qhead];
	f->qhead = (f->qhead + 1) % P2P_LINKFSM_QUEUE_MAX;
	f->qlen--;
	if (a->type == P2P_LINKFSM_WRITE)
		f->writes_pending--;
	return true;
}

/* ---- life ---- */

struct p2p_linkfsm *p2p_linkfsm_new(const struct p2p_linkfsm_config *cfg,
				    const struct p2p_linkfsm_role *role,
				    uint64_t now)
{
	struct p2p_linkfsm *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->cfg = *cfg;
	if (f->cfg.grace_ms == 0)
		f->cfg.grace_ms = P2P_LINKFSM_GRACE_MS;
	f->initiator = role->initiator;
	f->punch = role->punch && role->expect;
	f->punch_lead = f->punch && role->punch_lead;
	f->relayed = role->relayed;
	f->dialback = role->dialback;
	if (role->expect) {
		f->has_expect = true;
		f->expect = *role->expect;
	}
	f->rtt_ms = -1;
	f->deadline = now + (uint64_t)cfg->handshake_ms * 1000;
	f->pong_tokens = P2P_LINKFSM_PONG_BURST * 1000;
	f->pong_refill = now;
	f->state = f->initiator ? S_CONNECTING : S_HANDSHAKE;
	f->fr = p2p_framer_new(0);
	f->sess =
	    p2p_session_new(cfg->self, f->initiator,
			    f->initiator && f->has_expect ? &f->expect : NULL);
	if (!f->fr || !f->sess) {
		p2p_linkfsm_free(f);
		return NULL;
	}
	return f;
}

void p2p_linkfsm_free(struct p2p_linkfsm *f)
{
	if (!f)
		return;
	p2p_framer_free(f->fr);
	p2p_session_free(f->sess);
	free(f);
}

int p2p_linkfsm_connected(struct p2p_linkfsm *f, uint64_t now,
			  const struct p2p_addr *local,
			  const struct p2p_addr *remote)
{
	uint8_t *o;
	size_t n;

	begin(f);
	if (local)
		f->local = *local;
	if (remote)
		f->remote = *remote;
	if (f->state != S_CONNECTING)
		return f->state == S_HANDSHAKE ? 0 : -ENOTCONN;
	f->state = S_HANDSHAKE;
	o = out_room(f, P2P_HS_MAX);
	if (!o)
		return -ENOBUFS;
	if (p2p_session_start(f->sess, o, P2P_HS_MAX, &n) < 0) {
		finish(f, P2P_LINKFSM_C_INTERNAL, "cannot start the handshake",
		       -EINVAL, NULL);
		return -EINVAL;
	}
	out_commit(f, n);
	return 0;
}

void p2p_linkfsm_set_dialback_nonce(struct p2p_linkfsm *f, uint64_t nonce)
{
	f->dialback_nonce = nonce;
}

/* ---- sending ---- */

int p2p_linkfsm_seal(struct p2p_linkfsm *f, const uint8_t *msg, size_t len,
		     uint8_t *out, size_t cap, size_t *outlen)
{
	if (f->state != S_UP)
		return -ENOTCONN;
	if (f->writes_pending > 0)
		return -EAGAIN;
	return p2p_session_seal(f->sess, msg, len, out, cap, outlen);
}

int p2p_linkfsm_seal_pass(struct p2p_linkfsm *f, uint32_t circ,
			  const uint8_t *data, size_t len, uint8_t *out,
			  size_t cap, size_t *outlen)
{
	if (len == 0 || len > P2P_PASS_DATA_MAX ||
	    cap < P2P_FRAME_HDR + P2P_PASS_HDR + len)
		return -EMSGSIZE;
	memcpy(out + P2P_FRAME_HDR + P2P_PASS_HDR, data, len);
	return p2p_linkfsm_seal_pass_head(f, circ, out, len, outlen);
}

int p2p_linkfsm_seal_pass_head(struct p2p_linkfsm *f, uint32_t circ,
			       uint8_t *out, size_t len, size_t *outlen)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_PASS};
	uint8_t head[P2P_PASS_MSG];
	size_t hlen, n;
	int rc;

	if (len == 0 || len > P2P_PASS_DATA_MAX)
		return -EMSGSIZE;
	m.u.relay.circ = circ;
	m.u.relay.len = len;
	p2p_linkfsm_pass_tail(out + P2P_FRAME_HDR + P2P_PASS_HDR, len,
			      m.u.relay.tail);
	if ((rc = p2p_msg_encode(&m, head, sizeof(head), &hlen)) < 0)
		return rc;
	rc = p2p_linkfsm_seal(f, head, hlen, out, P2P_FRAME_HDR + P2P_PASS_HDR,
			      &n);
	if (rc < 0)
		return rc;
	/* The sealed head's frame header, made the pass frame's. */
	p2p_frame_put_header(out,
			     (uint32_t)(P2P_PASS_HDR + len) | P2P_FRAME_PASS);
	*outlen = n + len;
	return 0;
}

/* Encode and seal into the fsm's own output (state checked by callers). */
static int send_own(struct p2p_linkfsm *f, const struct p2p_msg *m)
{
	uint8_t buf[P2P_LINKFSM_OUT_MAX - P2P_RECORD_OVERHEAD];
	size_t len, n;
	uint8_t *o;
	int rc = p2p_msg_encode(m, buf, sizeof(buf), &len);

	if (rc < 0)
		return rc;
	if (f->olen + len + P2P_RECORD_OVERHEAD > sizeof(f->out))
		return -EMSGSIZE;
	o = out_room(f, len + P2P_RECORD_OVERHEAD);
	rc = p2p_session_seal(f->sess, buf, len, o, len + P2P_RECORD_OVERHEAD,
			      &n);
	if (rc < 0)
		return rc;
	out_commit(f, n);
	return 0;
}

int p2p_linkfsm_send_msg(struct p2p_linkfsm *f, const struct p2p_msg *m)
{
	begin(f);
	/* A responder's HELLO may leave with frame 2 (EARLY): the peer is
	 * not proven yet, so nothing else does. */
	if (f->state == S_HANDSHAKE && m->type == P2P_MSG_HELLO &&
	    p2p_session_can_seal(f->sess))
		return send_own(f, m);
	if (f->state != S_UP)
		return -ENOTCONN;
	return send_own(f, m);
}

/* GOAWAY, then CLOSING with the grace as deadline. */
static void close_up(struct p2p_linkfsm *f, uint64_t now, uint8_t code,
		     enum p2p_linkfsm_cause cause, const char *reason)
{
	struct p2p_msg m = {.type = P2P_MSG_GOAWAY};
	struct p2p_linkfsm_action a = {.type = P2P_LINKFSM_CLOSING};

	m.u.goaway.code = code;
	m.u.goaway.reason = reason;
	m.u.goaway.len = strnlen(reason, P2P_REASON_MAX);
	if (send_own(f, &m) < 0) {
		finish(f, cause, reason, 0, NULL);
		return;
	}
	f->state = S_CLOSING;
	f->close_why = reason;
	f->deadline = now + (uint64_t)f->cfg.grace_ms * 1000;
	a.cause = cause;
	a.why = reason;
	push(f, &a);
}

void p2p_linkfsm_close(struct p2p_linkfsm *f, uint64_t now, uint8_t code,
		       const char *reason)
{
	begin(f);
	if (f->state == S_UP)
		close_up(f, now, code, P2P_LINKFSM_C_CLOSED, reason);
	else if (f->state != S_CLOSING)
		finish(f, P2P_LINKFSM_C_CLOSED, reason, 0, NULL);
}

static int ping(struct p2p_linkfsm *f, uint64_t now)
{
	struct p2p_msg m = {.type = P2P_MSG_PING};

	f->cfg.random(f->cfg.random_arg, &m.u.ping.nonce,
		      sizeof(m.u.ping.nonce));
	m.u.ping.nonce |= 1; /* 0 means "none in flight" */
	f->ping_nonce = m.u.ping.nonce;
	f->ping_sent = now;
	f->last_ping = now;
	return send_own(f, &m);
}

int p2p_linkfsm_ping(struct p2p_linkfsm *f, uint64_t now)
{
	begin(f);
	if (f->state != S_UP)
		return -ENOTCONN;
	return ping(f, now);
}

/* ---- the handshake ---- */

static void on_established(struct p2p_linkfsm *f, uint64_t now)
{
	f->peer = *p2p_session_peer(f->sess);
	f->state = S_UP;
	f->last_rx = f->last_ping = now;
	if (p2p_peerid_equal(&f->peer, &f->cfg.self->id)) {
		close_up(f, now, 0, P2P_LINKFSM_C_SELF, "self connection");
		return;
	}
	/* A punch that turned responder and a relayed responder check the
	 * peer's ID here: the responder side of the handshake does not. */
	if (f->has_expect && !p2p_peerid_equal(&f->peer, &f->expect)) {
		finish(f, P2P_LINKFSM_C_EXPECT, "not the expected peer",
		       -EKEYREJECTED, NULL);
		return;
	}
	/* A dial-back only came to say DIALBACK_OK: it closes at once, and
	 * a closing fsm reads nothing the peer says. */
	if (f->dialback) {
		struct p2p_msg m = {.type = P2P_MSG_DIALBACK_OK};
		m.u.dialback.nonce = f->dialback_nonce;
		(void)send_own(f, &m);
		close_up(f, now, 0, P2P_LINKFSM_C_DIALBACK, "dial-back done");
		return;
	}
	push_type(f, P2P_LINKFSM_ESTABLISHED);
}

/* Both ends sent frame 1 on one connection. A punch settles the roles
 * (true: go on with the frame): the side that asked for it stays
 * initiator, so that its link is up when frame 2 and the peer's HELLO
 * arrive together (punch_lead); the peer knows the same from its own
 * signalling. A plain dial asks to dial again; a relayed link lets the
 * session fail the handshake. */
static bool on_frame1(struct p2p_linkfsm *f)
{
	struct p2p_session *r;

	if (f->punch) {
		if (f->punch_lead)
			return false; /* we stay initiator: ignore it */
		r = p2p_session_new(f->cfg.self, false, NULL);
		if (!r) {
			finish(f, P2P_LINKFSM_C_INTERNAL, "out of memory",
			       -ENOMEM, NULL);
			return false;
		}
		p2p_session_free(f->sess);
		f->sess = r;
		/* The peer initiated, as far as roles go: stream ID
		 * parity, the duplicate tie-break. */
		f->initiator = false;
		return true;
	}
	if (f->relayed)
		return true;
	f->state = S_DONE;
	push_type(f, P2P_LINKFSM_REDIAL);
	return false;
}

static void on_hs_frame(struct p2p_linkfsm *f, uint64_t now,
			const uint8_t *body, size_t len)
{
	uint8_t *o;
	size_t outlen = 0;
	int rc;

	if (f->initiator && p2p_session_is_frame1(body, len) &&
	    !p2p_session_established(f->sess) && !on_frame1(f))
		return;
	o = out_room(f, P2P_HS_MAX);
	if (!o)
		return;
	rc = p2p_session_handshake(f->sess, body, len, o, P2P_HS_MAX, &outlen);
	if (outlen > 0)
		out_commit(f, outlen);
	if (rc < 0)
		finish(f, P2P_LINKFSM_C_HANDSHAKE, "handshake failed", rc,
		       NULL);
	else if (rc == 1)
		on_established(f, now);
	else if (!f->initiator && p2p_session_can_seal(f->sess))
		push_type(f, P2P_LINKFSM_EARLY); /* frame 2 is out */
}

/* ---- records ---- */

static void on_hello(struct p2p_linkfsm *f, const struct p2p_msg *m)
{
	struct p2p_linkfsm_action a = {.type = P2P_LINKFSM_HELLO, .msg = m};
	bool server = m->u.hello.flags & P2P_HELLO_SERVER;

	a.first = !f->hello_rx;
	a.announce = a.first || server != f->peer_server;
	if (a.announce) {
		f->peer_server = server;
		f->hello_rx = true;
		f->deadline = 0;
	}
	push(f, &a);
}

static void on_pong(struct p2p_linkfsm *f, uint64_t now, uint64_t nonce)
{
	struct p2p_linkfsm_action a = {.type = P2P_LINKFSM_RTT};

	if (f->ping_nonce && nonce == f->ping_nonce) {
		f->rtt_ms = (double)(now - f->ping_sent) / 1000.0;
		f->ping_nonce = 0;
		a.rtt_ms = f->rtt_ms;
		push(f, &a);
	}
}

static bool own_type(uint8_t t)
{
	return t == P2P_MSG_HELLO || t == P2P_MSG_PING || t == P2P_MSG_PONG;
}

/* Token bucket of P2P_LINKFSM_PONG_RATE per second (now in us), in
 * thousandths of a token, full (a burst) at creation. */
static bool pong_token(struct p2p_linkfsm *f, uint64_t now)
{
	const uint64_t cap = (uint64_t)P2P_LINKFSM_PONG_BURST * 1000;
	uint64_t t = f->pong_tokens;

	if (now > f->pong_refill)
		t += (now - f->pong_refill) * P2P_LINKFSM_PONG_RATE / 1000;
	if (t > cap)
		t = cap;
	if (now > f->pong_refill)
		f->pong_refill = now;
	if (t < 1000) {
		f->pong_tokens = (uint32_t)t;
		return false;
	}
	f->pong_tokens = (uint32_t)(t - 1000);
	return true;
}

static void on_msg(struct p2p_linkfsm *f, uint64_t now, const struct p2p_msg *m)
{
	struct p2p_linkfsm_action a = {.type = P2P_LINKFSM_MSG, .msg = m};

	if (m->type == P2P_MSG_GOAWAY) {
		finish(f, P2P_LINKFSM_C_GOAWAY, "closed", 0, m);
		return;
	}
	if (!f->hello_rx && m->type != P2P_MSG_HELLO &&
	    !p2p_linkfsm_types_has(&f->cfg.before_hello, m->type)) {
		finish(f, P2P_LINKFSM_C_BEFORE_HELLO, "message before HELLO",
		       -EPROTO, NULL);
		return;
	}
	/* A relayed link carries tunnels and keepalive, not the overlay. */
	if (f->relayed && !own_type(m->type) &&
	    !p2p_linkfsm_types_has(&f->cfg.on_relayed, m->type)) {
		push_type(f, P2P_LINKFSM_UNKNOWN);
		return;
	}
	switch (m->type) {
	case P2P_MSG_HELLO:
		on_hello(f, m);
		return;
	case P2P_MSG_PING: {
		struct p2p_msg r = {.type = P2P_MSG_PONG};
		if (!pong_token(f, now))
			return; /* over the rate: no answer */
		r.u.ping.nonce = m->u.ping.nonce;
		(void)send_own(f, &r);
		return;
	}
	case P2P_MSG_PONG:
		on_pong(f, now, m->u.ping.nonce);
		break; /* its handler sees it too */
	default:
		break;
	}
	push(f, &a);
}

/* The data's last P2P_PASS_TAIL bytes, zero-padded, as RELAY_PASS binds
 * them (proto/msg.h). */
void p2p_linkfsm_pass_tail(const uint8_t *data, size_t len,
			   uint8_t tail[P2P_PASS_TAIL])
{
	size_t n = len < P2P_PASS_TAIL ? len : P2P_PASS_TAIL;

	memset(tail, 0, P2P_PASS_TAIL);
	memcpy(tail, data + len - n, n);
}

/*
 * A pass frame (proto/msg.h, RELAY_PASS): only its head is a record. It
 * is opened (the hop's AEAD, in sequence: a pass frame dropped, repeated
 * or reordered fails here as any record would) and must say RELAY_PASS
 * with the length of the bytes that follow and their tail; those bytes
 * go to the handler as the message's data, not opened: they are the
 * circuit's end-to-end records.
 */
static void on_pass(struct p2p_linkfsm *f, uint64_t now, uint8_t *body,
		    size_t len)
{
	uint8_t tail[P2P_PASS_TAIL];
	size_t mlen;
	int rc;

	if (len <= P2P_PASS_HDR) {
		finish(f, P2P_LINKFSM_C_BAD_FRAME, "bad frame", -EPROTO, NULL);
		return;
	}
	rc = p2p_session_open(f->sess, body, P2P_PASS_HDR, body, P2P_PASS_HDR,
			      &mlen);
	if (rc < 0) {
		finish(f, P2P_LINKFSM_C_BAD_RECORD, "bad record", rc, NULL);
		return;
	}
	f->last_rx = now;
	rc = p2p_msg_decode(&f->msg, body, mlen);
	if (rc == 0 && (f->msg.type != P2P_MSG_RELAY_PASS ||
			f->msg.u.relay.len != len - P2P_PASS_HDR))
		rc = -EPROTO;
	if (rc == 0) {
		p2p_linkfsm_pass_tail(body + P2P_PASS_HDR, len - P2P_PASS_HDR,
				      tail);
		if (memcmp(tail, f->msg.u.relay.tail, P2P_PASS_TAIL) != 0)
			rc = -EBADMSG;
	}
	if (rc < 0) {
		finish(f, P2P_LINKFSM_C_BAD_MSG, "bad pass frame", rc, NULL);
		return;
	}
	f->msg.u.relay.data = body + P2P_PASS_HDR;
	on_msg(f, now, &f->msg);
}

static void on_record(struct p2p_linkfsm *f, uint64_t now, const uint8_t *body,
		      size_t len, bool pass)
{
	/* The framer's buffer is the fsm's own and lives until the next
	 * feed, and an in-place caller's buffer is given to change: the
	 * record is opened in place (session.h allows out == body). */
	uint8_t *buf = (uint8_t *)body;
	size_t mlen;
	int rc;

	if (pass) {
		on_pass(f, now, buf, len);
		return;
	}
	rc = p2p_session_open(f->sess, body, len, buf, len, &mlen);
	if (rc < 0) {
		finish(f, P2P_LINKFSM_C_BAD_RECORD, "bad record", rc, NULL);
		return;
	}
	f->last_rx = now;
	rc = p2p_msg_decode(&f->msg, buf, mlen);
	if (rc == -ENOTSUP) {
		push_type(f, P2P_LINKFSM_UNKNOWN);
		return;
	}
	/* RELAY_PASS heads pass frames only: it has no data of its own. */
	if (rc == 0 && f->msg.type == P2P_MSG_RELAY_PASS)
		rc = -EPROTO;
	if (rc < 0) {
		finish(f, P2P_LINKFSM_C_BAD_MSG, "undecodable message", rc,
		       NULL);
		return;
	}
	on_msg(f, now, &f->msg);
}

/* A frame: a handshake frame (never a pass frame) or a record. */
static void on_frame(struct p2p_linkfsm *f, uint64_t now, const uint8_t *body,
		     size_t len, bool pass)
{
	if (f->state != S_HANDSHAKE)
		on_record(f, now, body, len, pass);
	else if (pass)
		finish(f, P2P_LINKFSM_C_BAD_FRAME, "bad frame", -EPROTO, NULL);
	else
		on_hs_frame(f, now, body, len);
}

size_t p2p_linkfsm_input(struct p2p_linkfsm *f, uint64_t now,
			 const uint8_t *data, size_t len)
{
	const uint8_t *body;
	size_t blen;
	ssize_t k;

	begin(f);
	/* Nothing is read before connecting or once closing. */
	if (f->state != S_HANDSHAKE && f->state != S_UP)
		return len;
	k = p2p_framer_feed(f->fr, data, len);
	if (k < 0) {
		finish(f, P2P_LINKFSM_C_BAD_FRAME, "bad frame", (int)k, NULL);
		return len;
	}
	if (p2p_framer_frame(f->fr, &body, &blen))
		on_frame(f, now, body, blen, p2p_framer_pass(f->fr));
	return (size_t)k;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

bool p2p_linkfsm_partial(const struct p2p_linkfsm *f)
{
	return p2p_framer_pending(f->fr) > 0;
}

size_t p2p_linkfsm_input_inplace(struct p2p_linkfsm *f, uint64_t now,
				 uint8_t *data, size_t len)
{
	uint32_t blen;
	bool pass;

	/* A frame begun by p2p_linkfsm_input: the framer finishes it. */
	if (p2p_framer_pending(f->fr) > 0)
		return p2p_linkfsm_input(f, now, data, len);
	begin(f);
	if (f->state != S_HANDSHAKE && f->state != S_UP)
		return len;
	if (len < P2P_FRAME_HDR)
		return 0;
	/* The framer's rules (frame.h): length 0 and lengths over the
	 * largest frame are errors, found as soon as the header is in. */
	blen = be32(data);
	pass = blen & P2P_FRAME_PASS;
	blen &= ~P2P_FRAME_PASS;
	if (blen == 0 || blen > P2P_FRAME_MAX) {
		finish(f, P2P_LINKFSM_C_BAD_FRAME, "bad frame",
		       blen == 0 ? -EPROTO : -EMSGSIZE, NULL);
		return len;
	}
	if (len - P2P_FRAME_HDR < blen)
		return 0;
	on_frame(f, now, data + P2P_FRAME_HDR, blen, pass);
	return P2P_FRAME_HDR + (size_t)blen;
}

/* ---- time ---- */

uint64_t p2p_linkfsm_next_timer(const struct p2p_linkfsm *f)
{
	uint64_t t = UINT64_MAX;

	if (f->state == S_DONE)
		return t;
	if (f->deadline)
		t = f->deadline;
	if (f->state == S_UP && f->hello_rx) {
		uint64_t idle = f->last_rx + (uint64_t)f->cfg.idle_ms * 1000;
		uint64_t ka =
		    f->last_ping + (uint64_t)f->cfg.keepalive_ms * 1000;
		if (idle < t)
			t = idle;
		if (ka < t)
			t = ka;
	}
	return t;
}

void p2p_linkfsm_tick(struct p2p_linkfsm *f, uint64_t now)
{
	begin(f);
	if (f->state == S_DONE)
		return;
	if (f->state == S_CLOSING) {
		if (now >= f->deadline)
			finish(f, P2P_LINKFSM_C_CLOSED, f->close_why, 0, NULL);
		return;
	}
	if (f->deadline && now >= f->deadline) {
		f->deadline = 0;
		finish(f, P2P_LINKFSM_C_TIMEOUT, "handshake timeout",
		       -ETIMEDOUT, NULL);
		return;
	}
	if (f->state != S_UP || !f->hello_rx)
		return;
	if (now - f->last_rx >= (uint64_t)f->cfg.idle_ms * 1000) {
		close_up(f, now, 0, P2P_LINKFSM_C_IDLE, "idle timeout");
		return;
	}
	if (now - f->last_ping >= (uint64_t)f->cfg.keepalive_ms * 1000)
		(void)ping(f, now);
}

/* ---- properties ---- */

bool p2p_linkfsm_initiator(const struct p2p_linkfsm *f)
{
	return f->initiator;
}

bool p2p_linkfsm_established(const struct p2p_linkfsm *f)
{
	return f->state == S_UP;
}

bool p2p_linkfsm_done(const struct p2p_linkfsm *f)
{
	return f->state >= S_CLOSING;
}

uint32_t p2p_linkfsm_quiet_ms(const struct p2p_linkfsm *f, uint64_t now)
{
	/* A PING after the last packet heard is what found the mapping
	 * gone: the quiet ended when it left, not when the reset came back
	 * (a round trip later). Else the reset answered something of the
	 * peer's or our data: the quiet lasted until now. */
	uint64_t end = f->last_ping > f->last_rx ? f->last_ping : now;
	uint64_t q;

	if (!f->last_rx || end < f->last_rx)
		return 0;
	q = (end - f->last_rx) / 1000;
	return q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}

void p2p_linkfsm_set_keepalive(struct p2p_linkfsm *f, uint32_t keepalive_ms)
{
	if (keepalive_ms > 0 && keepalive_ms < f->cfg.idle_ms)
		f->cfg.keepalive_ms = keepalive_ms;
}

bool p2p_linkfsm_hello_rx(const struct p2p_linkfsm *f)
{
	return f->hello_rx;
}

bool p2p_linkfsm_peer_server(const struct p2p_linkfsm *f)
{
	return f->peer_server;
}

const struct p2p_peerid *p2p_linkfsm_peer(const struct p2p_linkfsm *f)
{
	return p2p_session_established(f->sess) ? &f->peer : NULL;
}

double p2p_linkfsm_rtt(const struct p2p_linkfsm *f)
{
	return f->rtt_ms;
}

int p2p_linkfsm_suite(const struct p2p_linkfsm *f)
{
	return p2p_session_suite(f->sess);
}

#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
