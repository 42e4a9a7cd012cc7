/*
 * One link's protocol state machine, sans-I/O: the framer and the session
 * (proto/frame.h, proto/session.h), the handshake roles (simultaneous
 * open), HELLO, PING/PONG keepalive and rtt, the idle timeout, GOAWAY and
 * its grace, and the per-type rules "message before HELLO" and "not on a
 * relayed link". No sockets, no clock, no libuv: the caller feeds bytes
 * and events with the current time and carries out the actions it polls.
 *
 * Time: `now` is a monotonic clock in MICROseconds (the rtt keeps its
 * sub-millisecond precision); the limits in the config are milliseconds.
 *
 * The rules for the caller:
 *  - after every call, poll until p2p_linkfsm_poll() returns false, and
 *    re-arm a timer at p2p_linkfsm_next_timer();
 *  - a WRITE action points into a buffer the fsm owns, valid until the
 *    next call into the fsm (poll included): copy or write it at once.
 *    Pending WRITEs are always polled before any other action, so a
 *    handler called for an action may send at once;
 *  - p2p_linkfsm_input() handles at most one frame per call and returns
 *    how many bytes it took: call it again with the rest after polling.
 *    A decoded message (MSG, HELLO, GOAWAY) points into the fsm's frame
 *    buffer and is valid until the next p2p_linkfsm_input();
 *  - application data is sealed by p2p_linkfsm_seal() straight into a
 *    buffer the caller owns (its write request), so the data path has no
 *    copy and no allocation in the fsm; small control messages can go
 *    through p2p_linkfsm_send_msg() and come out as WRITE.
 *
 * Memory: one allocation for the fsm, the framer (whose buffer grows to
 * the largest frame seen) and the session; nothing per record. Records
 * are decrypted in place in the framer's buffer.
 */
#ifndef P2P_CORE_LINKFSM_H
#define P2P_CORE_LINKFSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"
#include "proto/identity.h"
#include "proto/msg.h"
#include "proto/peerid.h"

#define P2P_LINKFSM_OUT_MAX 1024  /* the fsm's own output per call */
#define P2P_LINKFSM_QUEUE_MAX 8	  /* actions not yet polled */
#define P2P_LINKFSM_GRACE_MS 2000 /* wait for the peer's EOF after GOAWAY */
/* PINGs answered per second per link, after a burst: the peer's own
 * keepalive is one per keepalive_ms and `p2pctl ping` one a second, and a
 * peer that sends PINGs and never reads must not fill our write queue
 * (issue 9). PINGs beyond it get no PONG. */
#define P2P_LINKFSM_PONG_RATE 10
#define P2P_LINKFSM_PONG_BURST 20

/* Per-type policy, a bitmap indexed by message type. */
struct p2p_linkfsm_types {
	uint8_t bits[32];
};

static inline void p2p_linkfsm_types_set(struct p2p_linkfsm_types *t,
					 uint8_t type)
{
	t->bits[type >> 3] |= (uint8_t)(1u << (type & 7));
}

static inline bool p2p_linkfsm_types_has(const struct p2p_linkfsm_types *t,
					 uint8_t type)
{
	return t->bits[type >> 3] & (1u << (type & 7));
}

struct p2p_linkfsm_config {
	/* Signs the handshake; must outlive the fsm (see session.h). */
	const struct p2p_identity *self;
	uint32_t handshake_ms; /* from creation to the peer's HELLO */
	uint32_t keepalive_ms; /* PING this long after the last one */
	uint32_t idle_ms;      /* close after this long without a record */
	uint32_t grace_ms;     /* after GOAWAY; 0: P2P_LINKFSM_GRACE_MS */
	/* Types accepted before the peer's HELLO (HELLO always is). */
	struct p2p_linkfsm_types before_hello;
	/* Types carried on a relayed link besides HELLO/PING/PONG; the
	 * rest is dropped (UNKNOWN). */
	struct p2p_linkfsm_types on_relayed;
	/* Randomness (PING nonces). */
	void (*random)(void *arg, void *buf, size_t len);
	void *random_arg;
};

struct p2p_linkfsm_role {
	bool initiator;
	/* The peer we expect, or NULL for any (bootstrap by address). An
	 * initiator's session rejects another peer; a responder (or a punch
	 * that turned responder) checks it once established. */
	const struct p2p_peerid *expect;
	/* A hole punching attempt, a simultaneous open on purpose: on the
	 * peer's frame 1 the side that asked for the punch (punch_lead: its
	 * REQUEST was answered) stays initiator and ignores it, the other
	 * becomes responder (needs expect). The requester then has its link
	 * one round trip after the TCP handshake: frame 2 comes with the
	 * peer's HELLO (EARLY). */
	bool punch;
	bool punch_lead;
	/* Over a relay circuit: a frame 1 to an initiator fails the
	 * handshake (no address to dial again), and on_relayed applies. */
	bool relayed;
	/* A dial-back: once established, say DIALBACK_OK and close; every
	 * message from the peer is ignored. */
	bool dialback;
};

enum p2p_linkfsm_act {
	P2P_LINKFSM_WRITE,	 /* data, len: send these bytes */
	P2P_LINKFSM_EARLY,	 /* responder: frame 2 written; its HELLO may
				    follow now (p2p_linkfsm_send_msg), the
				    peer not yet proven */
	P2P_LINKFSM_ESTABLISHED, /* handshake done: peer known */
	P2P_LINKFSM_HELLO,	 /* msg; first, announce */
	P2P_LINKFSM_RTT,	 /* rtt_ms: our PING's PONG came back */
	P2P_LINKFSM_MSG,	 /* msg: for the handler of its type */
	P2P_LINKFSM_UNKNOWN,	 /* a message dropped (type, or relayed) */
	P2P_LINKFSM_REDIAL,	 /* plain dial met a dial: dial again (end) */
	P2P_LINKFSM_CLOSING,	 /* GOAWAY written: half-close, await EOF */
	P2P_LINKFSM_DONE,	 /* the link is over: cause, why, err, msg */
};

/* Why a link closes (CLOSING, DONE), for the caller's logs and counters. */
enum p2p_linkfsm_cause {
	P2P_LINKFSM_C_CLOSED,	    /* our close (its reason) or grace over */
	P2P_LINKFSM_C_GOAWAY,	    /* the peer said GOAWAY (msg) */
	P2P_LINKFSM_C_SELF,	    /* we connected to ourselves */
	P2P_LINKFSM_C_EXPECT,	    /* not the expected peer */
	P2P_LINKFSM_C_DIALBACK,	    /* dial-back said */
	P2P_LINKFSM_C_IDLE,	    /* nothing heard for idle_ms */
	P2P_LINKFSM_C_TIMEOUT,	    /* no HELLO within handshake_ms */
	P2P_LINKFSM_C_BAD_FRAME,    /* framing error */
	P2P_LINKFSM_C_HANDSHAKE,    /* handshake failed */
	P2P_LINKFSM_C_BAD_RECORD,   /* record did not authenticate */
	P2P_LINKFSM_C_BAD_MSG,	    /* undecodable message */
	P2P_LINKFSM_C_BEFORE_HELLO, /* message before HELLO */
	P2P_LINKFSM_C_INTERNAL,	    /* out of memory, output overflow */
};

struct p2p_linkfsm_action {
	enum p2p_linkfsm_act type;
	const uint8_t *data; /* WRITE */
	size_t len;
	const struct p2p_msg *msg;    /* HELLO, MSG, DONE by GOAWAY */
	bool first;		      /* HELLO: the peer's first */
	bool announce;		      /* HELLO: first or server flag changed */
	double rtt_ms;		      /* RTT */
	enum p2p_linkfsm_cause cause; /* CLOSING, DONE */
	const char *why;	      /* CLOSING, DONE: a static string */
	int err;		      /* DONE: 0, or -errno the peer caused */
};

struct p2p_linkfsm;

/* A new fsm at now; the handshake deadline starts here. A responder is
 * ready for input; an initiator waits for p2p_linkfsm_connected(). The
 * config is copied; role->expect too. NULL on ENOMEM. */
struct p2p_linkfsm *p2p_linkfsm_new(const struct p2p_linkfsm_config *cfg,
				    const struct p2p_linkfsm_role *role,
				    uint64_t now);
void p2p_linkfsm_free(struct p2p_linkfsm *f);

/* The transport is connected (addresses: for the getters). An initiator
 * writes frame 1. 0, or -errno (then DONE follows). */
int p2p_linkfsm_connected(struct p2p_linkfsm *f, uint64_t now,
			  const struct p2p_addr *local,
			  const struct p2p_addr *remote);

/* Bytes in: takes at most one frame; returns the bytes taken (all of them
 * once the fsm is closing or done). */
size_t p2p_linkfsm_input(struct p2p_linkfsm *f, uint64_t now,
			 const uint8_t *data, size_t len);

/*
 * Bytes in, from a buffer the fsm may change: when data begins with a
 * whole frame it is taken where it lies, without the framer's copy (a
 * record is opened in place; a decoded message points into data until
 * the next input). Returns the bytes taken, at most one frame's: 0 when
 * data holds only the start of a frame (the caller keeps those bytes
 * and comes back with more; a buffer of P2P_FRAME_HDR + P2P_FRAME_MAX
 * bytes always holds a whole frame); all of them once closing or done,
 * or after a bad length. A frame begun with p2p_linkfsm_input() is
 * finished by the framer (copied).
 */
size_t p2p_linkfsm_input_inplace(struct p2p_linkfsm *f, uint64_t now,
				 uint8_t *data, size_t len);
/* A frame begun with p2p_linkfsm_input() waits for its rest: the next
 * input's message, if any, points into the framer's copy. */
bool p2p_linkfsm_partial(const struct p2p_linkfsm *f);

/* Deadlines: call at or after p2p_linkfsm_next_timer() (UINT64_MAX:
 * none). */
void p2p_linkfsm_tick(struct p2p_linkfsm *f, uint64_t now);
uint64_t p2p_linkfsm_next_timer(const struct p2p_linkfsm *f);

/* Leave: GOAWAY(code, reason) and CLOSING when established (DONE when
 * grace_ms passes), else DONE at once. reason: a static string. */
void p2p_linkfsm_close(struct p2p_linkfsm *f, uint64_t now, uint8_t code,
		       const char *reason);

/* A keepalive PING now (its PONG gives RTT). 0 or -ENOTCONN. */
int p2p_linkfsm_ping(struct p2p_linkfsm *f, uint64_t now);

/* The nonce a dial-back's DIALBACK_OK carries (set before it is up). */
void p2p_linkfsm_set_dialback_nonce(struct p2p_linkfsm *f, uint64_t nonce);

/*
 * Seal one encoded message (<= P2P_MSG_MAX) into out, a whole frame;
 * cap >= len + P2P_RECORD_OVERHEAD. 0, -ENOTCONN (not established or
 * closing), -EAGAIN (a WRITE not yet polled: order would break), or the
 * session's -EMSGSIZE/-EPIPE.
 */
int p2p_linkfsm_seal(struct p2p_linkfsm *f, const uint8_t *msg, size_t len,
		     uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));

/*
 * A pass frame (proto/msg.h, RELAY_PASS) into out: the frame header with
 * P2P_FRAME_PASS, the sealed RELAY_PASS head for circuit circ, then the
 * len (1..P2P_PASS_DATA_MAX) data bytes copied as they are. cap >=
 * P2P_FRAME_HDR + P2P_PASS_HDR + len. Only for a peer whose HELLO has
 * P2P_HELLO_RELAY_PASS. 0 or -errno, as p2p_linkfsm_seal.
 */
int p2p_linkfsm_seal_pass(struct p2p_linkfsm *f, uint32_t circ,
			  const uint8_t *data, size_t len, uint8_t *out,
			  size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
/* The same with the data already in place, at out + P2P_FRAME_HDR +
 * P2P_PASS_HDR (a record sealed straight into the queue it leaves from):
 * only the head is written. */
int p2p_linkfsm_seal_pass_head(struct p2p_linkfsm *f, uint32_t circ,
			       uint8_t *out, size_t len, size_t *outlen)
    __attribute__((warn_unused_result));
/* The tail RELAY_PASS binds: data's last P2P_PASS_TAIL bytes, padded. */
void p2p_linkfsm_pass_tail(const uint8_t *data, size_t len,
			   uint8_t tail[P2P_PASS_TAIL]);

/* Encode and seal m into the fsm's buffer (a WRITE action): for small
 * control messages. 0, -ENOTCONN, -EMSGSIZE (no room), -EINVAL. */
int p2p_linkfsm_send_msg(struct p2p_linkfsm *f, const struct p2p_msg *m);

/* The next action; false when there is none. */
bool p2p_linkfsm_poll(struct p2p_linkfsm *f, struct p2p_linkfsm_action *a);

/* Properties. */
bool p2p_linkfsm_initiator(const struct p2p_linkfsm *f); /* after a switch */
bool p2p_linkfsm_established(const struct p2p_linkfsm *f);
bool p2p_linkfsm_done(const struct p2p_linkfsm *f); /* closing or over */
bool p2p_linkfsm_hello_rx(const struct p2p_linkfsm *f);
bool p2p_linkfsm_peer_server(const struct p2p_linkfsm *f);
/* The authenticated peer once established, else NULL. */
const struct p2p_peerid *p2p_linkfsm_peer(const struct p2p_linkfsm *f);
double p2p_linkfsm_rtt(const struct p2p_linkfsm *f); /* < 0 until measured */
/* The record AEAD picked at the handshake (P2P_SUITE_*), 0 before. */
int p2p_linkfsm_suite(const struct p2p_linkfsm *f);
/* How long (ms) the link had been quiet when the packet that a reset at
 * now answers went out: from the last packet heard to our latest PING
 * after it, or to now; 0 before it is up (core/keepalive.h). */
uint32_t p2p_linkfsm_quiet_ms(const struct p2p_linkfsm *f, uint64_t now);
/* A new keepalive interval (core/keepalive.h), from the next PING on. */
void p2p_linkfsm_set_keepalive(struct p2p_linkfsm *f, uint32_t keepalive_ms);

#endif
