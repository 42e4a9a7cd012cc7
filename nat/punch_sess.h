/*
 * Hole punching sessions, sans-I/O: the per-peer signalling state machine
 * around the schedule of nat/punch.h (SPEC section 7 "NAT traversal").
 *
 * One table per node holds at most P2P_PSESS_MAX sessions, one per peer:
 *
 *   requester: start() -> SEND(REQUEST) -> [SIGNAL] --REPLY--> [RUN]
 *              [SIGNAL] --FAIL / route failed / P2P_PUNCH_SIGNAL_MS--> FAILED
 *              [SIGNAL] --REPLY DIALABLE--> DIAL (the session is over)
 *   replier:   REQUEST -> SEND(REPLY) -> [RUN], or SEND(FAIL) and no
 *              session (not listening, both endpoint-dependent, busy);
 *              dialable (a DHT server): SEND(REPLY DIALABLE), no session
 *   [RUN]:     the schedule (struct p2p_punch) emits CONNECT / ABORT per
 *              candidate index; HELLO on a link to the peer -> SUCCESS;
 *              its deadline, a FAIL or a route failure -> FAILED
 *   glare:     both sent a REQUEST: the lower ID's request is answered;
 *              the higher side adopts the peer's nonce and replies
 *
 * The table does no I/O and reads no clock: every input carries now (ms,
 * any monotonic origin), the caller supplies the nonces and the local
 * facts (struct p2p_psess_local), signs, routes and connects. After every
 * input the caller polls until p2p_psess_poll() returns false, carries out
 * each action, and arms one timer for p2p_psess_next_timer(); an ended
 * session keeps its slot until its last action has been polled.
 *
 * Attempts are named by (peer, candidate index), never by link: the glue
 * maps them to its own link IDs, forgets a mapping on ABORT, SUCCESS (the
 * winning index) and FAILED (the core aborts every other attempt first).
 *
 * Why this shape (rather than callbacks): an action queue lets the caller
 * finish the current input before it routes, dials or tears down, which is
 * what the daemon's deferred teardown wants, and tests read the actions
 * one by one. The SEND action carries the unsigned payload; signing stays
 * with the identity in the glue, and the route's outcome comes back with
 * p2p_psess_sent() (msgid for ROUTE_FAILED, or an error).
 *
 * What a peer can make us do (issue 9). A REQUEST makes us connect to
 * addresses the requester names, so before a session is made for it:
 *   - freshness: its signed time must be within P2P_PUNCH_SKEW_MS of our
 *     wall clock, and its (source, nonce) must not have been seen in the
 *     last 2 x P2P_PUNCH_SKEW_MS (a replay is dropped without an answer:
 *     the FAIL would go to the signer, not to whoever replayed it);
 *   - rate: token buckets per source ID, per source IP and node-wide
 *     (P2P_PSESS_ID_*, _IP_*, _REQ_*); then at most P2P_PSESS_PER_NET
 *     sessions at once per /24 (/48) of the source, and at most
 *     P2P_PSESS_PEER_SESSIONS of the P2P_PSESS_MAX slots for sessions peers
 *     asked for (answered FAIL, reason LIMITED or BUSY);
 *   - plausibility: p2p_psess_plausible() on its candidates (and on a
 *     REPLY's): a request left with no candidate to dial is answered FAIL
 *     (IMPLAUSIBLE), except when all it offered were LAN addresses of
 *     another network (an endpoint-dependent requester: we dial nothing
 *     and wait for its SYNs);
 * and every CONNECT passes a node-wide budget (P2P_PSESS_INFLIGHT_MAX
 * attempts open at once, P2P_PSESS_CONNECT_* per second) and, in a session
 * a peer asked for, P2P_PSESS_PEER_ATTEMPTS in all; a CONNECT over budget
 * is not handed out, the schedule tries it again later.
 *
 * "Observed" for a routed request: the request comes over the overlay,
 * usually from a node we hold no link with, so we have no observation of
 * our own. The source is the requester's address as the glue sees it (the
 * far end of an established direct or overlay link to it, else what the
 * signed request carries in "seen": its public address as its own overlay
 * peers observed it in HELLO). That one address is the key of the per-IP
 * bucket and of the per-/24 cap. For plausibility the link's address is
 * used only when it is a usable public one (a LAN link says nothing about
 * public IPs). A requester that lies about "seen" gains nothing: its public
 * candidates must then be on the IP it claims, so each claimed IP is also
 * a per-target limit, and LAN candidates pass only when it claims our own
 * public IP, a bucket all such requests share.
 */
#ifndef P2P_NAT_PUNCH_SESS_H
#define P2P_NAT_PUNCH_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/nat.h"
#include "nat/punch.h"
#include "proto/addr.h"
#include "proto/peerid.h"

#define P2P_PSESS_MAX 8		  /* sessions at once (8 x 8 candidates) */
#define P2P_PSESS_CONTEXT_MAX 160 /* why we punch, in the failure text */
#define P2P_PSESS_MSG_MAX 512	  /* FAILED: the user-facing text */
#define P2P_PSESS_LOG_MAX 384	  /* FAILED: the log line's text */
#define P2P_PSESS_FAILQ 8	  /* FAIL answers waiting to be polled */
#define P2P_PSESS_NONE SIZE_MAX	  /* no attempt index (our listener) */

/* Issue 9: limits on what peers can make us do (see above). A bucket
 * holds BURST requests and gains one every REFILL_MS. */
#define P2P_PSESS_PEER_SESSIONS 6 /* of P2P_PSESS_MAX: 2 stay for ours */
#define P2P_PSESS_PER_NET 2	  /* sessions per /24 (/48) of the source */
#define P2P_PSESS_ID_BURST 4	  /* REQUESTs per source ID */
#define P2P_PSESS_ID_REFILL_MS 2000
#define P2P_PSESS_IP_BURST 8 /* REQUESTs per source IP */
#define P2P_PSESS_IP_REFILL_MS 1000
#define P2P_PSESS_REQ_BURST 16 /* REQUESTs node-wide */
#define P2P_PSESS_REQ_REFILL_MS 500
#define P2P_PSESS_SOURCES 64 /* source IDs (and IPs) with a bucket */
/* Nonces of admitted REQUESTs, each kept 2 x P2P_PUNCH_SKEW_MS: room for
 * all the node-wide bucket admits in that time. */
#define P2P_PSESS_NONCES 256
#define P2P_PSESS_INFLIGHT_MAX 32     /* connection attempts open, node-wide */
#define P2P_PSESS_CONNECT_BURST 48    /* attempts started, node-wide ... */
#define P2P_PSESS_CONNECT_EVERY_MS 25 /* ... then one per this (40/s) */
#define P2P_PSESS_PEER_ATTEMPTS 64    /* in a session a peer asked for */
/* Issue 11: public IPv6 candidates of a peer not seen over IPv6 cannot be
 * checked against an observation (no NAT66 makes them differ from its
 * IPv4 one). They are kept only in the /64 of the first such candidate,
 * at most this many: a liar then aims our SYNs at one subnet, not at
 * eight hosts of its choice (a host has one or two global addresses). */
#define P2P_PSESS_V6_UNSEEN_MAX 2

/* What the glue knows about us at the time of an input. */
struct p2p_psess_local {
	enum p2p_nat_type nat;
	uint16_t listen4, listen6; /* listen port per family, 0 none */
	/* Our own (LAN) addresses, port ignored: a peer's candidate equal
	 * to one of them with our IPv4 listen port is ourselves. */
	const struct p2p_addr *lan;
	size_t nlan;
	/* What we offer (p2p_punch_predict), at most P2P_PUNCH_CAND_MAX. */
	const struct p2p_addr *cand;
	size_t ncand;
	/* Issue 9. Our wall clock (Unix ms): the time of what we send, the
	 * freshness of what we get. */
	uint64_t wall_ms;
	/* Our public address as our overlay peers observed it (family 0:
	 * none yet): sent as "seen". */
	struct p2p_addr seen;
	/* Our public addresses (p2p_nat_external): a peer seen at one of
	 * them is behind our NAT, and only then are its LAN candidates
	 * dialled. */
	const struct p2p_addr *pub;
	size_t npub;
	/* p2p_psess_on_sig: the far end of an established direct or overlay
	 * link we hold to the payload's source (family 0: none). */
	struct p2p_addr src_link;
	/* Issue 8: our primes' TTL (p2p_nat_depth), 0 unknown. */
	int prime_ttl;
	/* Issue 8: peers have dialled our listener (DHT server mode): a
	 * REQUEST is answered REPLY with P2P_PUNCH_F_DIALABLE and nothing
	 * else (no session, no primes): the requester dials us. */
	bool dialable;
};

/* Counters (for metrics and tests); they only grow. */
struct p2p_psess_stats {
	uint64_t stale;	      /* REQUEST refused: time too old or too new */
	uint64_t replayed;    /* REQUEST refused: nonce seen before */
	uint64_t limited;     /* REQUEST refused: a rate or per-net limit */
	uint64_t busy;	      /* REQUEST refused: no session slot */
	uint64_t implausible; /* REQUEST refused: nothing left to dial */
	uint64_t dropped;     /* candidates dropped as implausible */
	uint64_t connects;    /* CONNECT actions handed out */
	uint64_t dialable;    /* REQUESTs answered "dial me" (no session) */
	uint64_t deferred;    /* CONNECTs held back by a budget */
};

enum p2p_psess_action_type {
	P2P_PSESS_SEND,	     /* sig: encode, sign, route to peer, then
				p2p_psess_sent() */
	P2P_PSESS_SCHEDULED, /* information: the schedule is set (log it) */
	P2P_PSESS_CONNECT,   /* idx, addr, ttl: connect from the listen port */
	P2P_PSESS_ABORT,     /* idx: close that attempt (unless it is up) */
	P2P_PSESS_SUCCESS,   /* idx (P2P_PSESS_NONE: not one of ours) */
	P2P_PSESS_FAILED,    /* reason, err, msg, log */
	/* addr: our REQUEST was answered DIALABLE: dial the peer there as
	 * any server is dialled (the session is over, nothing was primed;
	 * requester says whether someone waits for it) */
	P2P_PSESS_DIAL,
};

struct p2p_psess_action {
	enum p2p_psess_action_type type;
	struct p2p_peerid peer;
	bool requester; /* SUCCESS, FAILED: someone waits for this punch */
	/* SEND */
	struct p2p_punch_sig sig;
	/* SCHEDULED: the peer's NAT, the candidates kept, our part */
	enum p2p_nat_type peer_nat;
	struct p2p_addr cand[P2P_PUNCH_CAND_MAX];
	size_t ncand;
	bool primer;
	/* CONNECT, ABORT, SUCCESS */
	size_t idx;
	struct p2p_addr addr; /* CONNECT, DIAL */
	int ttl;	      /* CONNECT: 0 for the default */
	/* CONNECT: our REQUEST was answered (we are not the primer): on a
	 * simultaneous open our handshake stays initiator, the peer's
	 * yields (linkfsm punch_lead); both sides know it from the
	 * signalling, glare included. */
	bool lead;
	/* SUCCESS, FAILED */
	uint64_t ms; /* since the session began */
	unsigned attempts;
	/* FAILED */
	enum p2p_punch_reason reason; /* R_NONE: a local cause (see msg) */
	int err; /* our REQUEST could not be routed: the route's error */
	/* "no direct link: CONTEXT; hole punching failed after X.Y s:
	 * REASON (this side T, the peer U; N attempts, R reset, T
	 * unanswered[, H blocked])", the counts only for a schedule that
	 * ran out (H: connects refused with the four-tuple in use; "this
	 * side": our NAT type in the latest local facts an input carried). */
	char msg[P2P_PSESS_MSG_MAX];
	/* The same without the context: "failed after X.Y s: REASON ..." */
	char log[P2P_PSESS_LOG_MAX];
};

struct p2p_psess_table;

/* NULL when out of memory. self decides glare. */
struct p2p_psess_table *p2p_psess_new(const struct p2p_peerid *self);
void p2p_psess_free(struct p2p_psess_table *t);

/*
 * We want a link to peer: ask it to punch (context says why, for the
 * failure text; nonce is random, from the caller). Queues SEND(REQUEST).
 * 0 (also when a session with peer runs already: it becomes ours and its
 * end is reported to us); -EADDRNOTAVAIL we have no IPv4 listen port;
 * -EBUSY P2P_PSESS_MAX sessions run; -EAGAIN the session with peer has
 * ended and waits to be polled; -ESHUTDOWN after stop; -ENOMEM.
 */
int p2p_psess_start(struct p2p_psess_table *t, uint64_t now,
		    const struct p2p_peerid *peer, const char *context,
		    uint64_t nonce, const struct p2p_psess_local *me)
    __attribute__((warn_unused_result));

/*
 * A PUNCH_* payload from src that p2p_punch_decode() accepted (signed by
 * src, for us). REQUEST: answered (SEND) or refused (SEND of a FAIL);
 * REPLY and FAIL: matched by nonce to our session with src, else ignored.
 */
void p2p_psess_on_sig(struct p2p_psess_table *t, uint64_t now,
		      const struct p2p_peerid *src,
		      const struct p2p_punch_sig *sig,
		      const struct p2p_psess_local *me);

/*
 * The glue carried out SEND action a: rc is the route's result (0 or a
 * negative errno), msgid the routed message's ID (for route_failed).
 * A REQUEST or REPLY that could not be routed fails its session.
 */
void p2p_psess_sent(struct p2p_psess_table *t, uint64_t now,
		    const struct p2p_psess_action *a, int rc, uint64_t msgid);

/* The overlay could not deliver msgid. true when it was one of ours (the
 * session fails: "no route to the peer over the overlay"). */
bool p2p_psess_route_failed(struct p2p_psess_table *t, uint64_t now,
			    uint64_t msgid);

/* Attempt idx to peer got a TCP connection; its handshake runs. */
void p2p_psess_attempt_connected(struct p2p_psess_table *t, uint64_t now,
				 const struct p2p_peerid *peer, size_t idx);
/* Attempt idx failed (refused: a reset), or its link went away before
 * HELLO: tried again later. */
void p2p_psess_attempt_failed(struct p2p_psess_table *t, uint64_t now,
			      const struct p2p_peerid *peer, size_t idx,
			      bool refused);
/* Attempt idx could not start: the four-tuple is in use (nat/punch.h
 * p2p_punch_held): tried again when its hold is over, not in a loop. */
void p2p_psess_attempt_held(struct p2p_psess_table *t, uint64_t now,
			    const struct p2p_peerid *peer, size_t idx);
/* An authenticated link to peer said HELLO: through attempt idx, or
 * P2P_PSESS_NONE (the peer's SYN reached our listener, or the link came
 * another way). The session succeeds whatever its state. */
void p2p_psess_link_hello(struct p2p_psess_table *t, uint64_t now,
			  const struct p2p_peerid *peer, size_t idx);

/* Call when now >= p2p_psess_next_timer(). */
void p2p_psess_tick(struct p2p_psess_table *t, uint64_t now);

/* The earliest deadline of all sessions: UINT64_MAX none, 0 when actions
 * wait to be polled. */
uint64_t p2p_psess_next_timer(const struct p2p_psess_table *t);

/* The next action; false when none. */
bool p2p_psess_poll(struct p2p_psess_table *t, struct p2p_psess_action *a);

/* Whether a session with peer runs (not ended). */
bool p2p_psess_running(const struct p2p_psess_table *t,
		       const struct p2p_peerid *peer);
size_t p2p_psess_count(const struct p2p_psess_table *t);

/* The counters so far. */
const struct p2p_psess_stats *p2p_psess_stats(const struct p2p_psess_table *t);

/* Connection attempts handed out and not yet aborted, failed or won. */
size_t p2p_psess_inflight(const struct p2p_psess_table *t);

/*
 * Shutting down: every session ends without FAILED; poll then gives an
 * ABORT per attempt in flight. Later inputs are ignored.
 */
void p2p_psess_stop(struct p2p_psess_table *t);

/*
 * Issue 9: keep the plausible ones of a peer's n candidates in out (at
 * most n), return their count (p2p_psess_on_sig applies it to every
 * REQUEST's and REPLY's candidates before anything is dialled). Dropped: port
 * 0, unspecified, loopback, multicast, broadcast and reserved (240/4),
 * IPv4-mapped IPv6, repeats; private (LAN) candidates unless peer_seen (the
 * address we observed for the peer, family 0 unknown) has the IP of one of
 * ours[] (our public addresses): only then are we behind the same NAT; public
 * candidates of peer_seen's family whose IP is not peer_seen's; IPv6
 * link-local and site-local (no scope can travel) and all of ::/8; when
 * peer_seen is not IPv6, public IPv6 candidates outside the /64 of the
 * first one or beyond P2P_PSESS_V6_UNSEEN_MAX. Pure.
 */
size_t p2p_psess_plausible(const struct p2p_addr *cand, size_t n,
			   const struct p2p_addr *peer_seen,
			   const struct p2p_addr *ours, size_t nours,
			   struct p2p_addr *out);

#endif
