/*
 * TCP hole punching, sans-I/O (SPEC section 7 "NAT traversal").
 *
 * Three parts, none of which touches a socket or a clock:
 *
 *  - prediction: from our NAT type, what the overlay peers observed of our
 *    listen port, our external and LAN addresses, the endpoints a peer
 *    should connect to (p2p_punch_predict);
 *  - signalling: PUNCH_REQUEST / PUNCH_REPLY / PUNCH_FAIL payloads carried
 *    in routed P2P_APP_NAT messages, signed with the sender's Ed25519 key
 *    (p2p_punch_encode / p2p_punch_decode). Routed messages pass through
 *    other nodes: the signature covers the destination ID and everything
 *    else, and hash(public key) must be the overlay source ID, so no node
 *    on the way can forge or alter what we offer;
 *  - scheduling: both sides connect from their listen port to every
 *    candidate of the other, the replier as soon as the REQUEST arrives,
 *    the requester as soon as the REPLY does, retrying through resets and
 *    timeouts for a bounded time (struct p2p_punch: events in, actions
 *    out, one deadline).
 *
 * Wire layout of a payload, version 2, integers big-endian:
 *
 *   u8 version (2) | u8 type | u64 nonce | u64 time_ms | u8 sender nat
 *   type | u8 reason | u16 flags | seen (u8 family 0|4|6, 16 bytes
 *   ip, u16 port) | u8 ncand (<= P2P_PUNCH_CAND_MAX) |
 *   ncand x (u8 family 4|6, 16 bytes ip, u16 port) |
 *   32 bytes Ed25519 public key | 64 bytes signature
 *
 * The signature is over "p2pd-punch-v2" || destination ID || every byte
 * before it (public key included). Version 2 (issue 9) added time_ms, the
 * sender's wall clock in Unix milliseconds (with the nonce it lets the
 * receiver refuse a replayed or stale request: P2P_PUNCH_SKEW_MS), and
 * seen, the public address the sender's overlay peers observed for it
 * (family 0: none yet), which the receiver checks the sender's public
 * candidates against when it has no observation of its own. flags was
 * offset_ms, a start offset version 1 agreed on; version 2 senders before
 * issue 8's DIALABLE sent it as 0, and unknown bits are ignored, so the
 * field took flags without a new version:
 *   P2P_PUNCH_F_DIALABLE (REPLY): the replier is a DHT server (peers have
 *   dialled its listener): it primes nothing and holds no session; the
 *   requester dials its candidates as it would dial any server. A
 *   connect may then ask before its lookup has answered (see core/reach.h
 *   punch_early) without racing a punch against the dial the lookup
 *   leads to, and a server spends no punch slot on being reached.
 */
#ifndef P2P_NAT_PUNCH_H
#define P2P_NAT_PUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/nat.h"
#include "proto/addr.h"
#include "proto/identity.h"
#include "proto/peerid.h"

#define P2P_PUNCH_VERSION 2
#define P2P_PUNCH_CAND_MAX 8  /* candidates in one payload */
#define P2P_PUNCH_CAND_LEN 19 /* family, ip, port */
#define P2P_PUNCH_SEEN_OFF 22 /* the seen address (P2P_PUNCH_CAND_LEN) */
#define P2P_PUNCH_NCAND_OFF 41
#define P2P_PUNCH_HDR_LEN 42 /* up to and including ncand */
#define P2P_PUNCH_PK_LEN 32  /* Ed25519 public key */
#define P2P_PUNCH_SIG_LEN 64 /* Ed25519 signature */
#define P2P_PUNCH_PAYLOAD_MAX                                                  \
	(P2P_PUNCH_HDR_LEN + P2P_PUNCH_CAND_MAX * P2P_PUNCH_CAND_LEN +         \
	 P2P_PUNCH_PK_LEN + P2P_PUNCH_SIG_LEN)
#define P2P_PUNCH_PAYLOAD_MIN                                                  \
	(P2P_PUNCH_HDR_LEN + P2P_PUNCH_PK_LEN + P2P_PUNCH_SIG_LEN)

/*
 * Timing (milliseconds) and roles. Two Linux NATs that reset unsolicited
 * SYNs defeat two SYNs that merely cross: whichever arrives first is
 * reset, the reset closes the conntrack entry of its sender's NAT, and
 * that NAT then takes the peer's SYN, arriving on a closed entry, for
 * invalid. A handshake must also be answered by the very socket whose
 * SYN made the entry (a SYN-ACK with another sequence number is out of
 * the entry's window, and leaves the NAT untranslated). So the sides
 * play two parts, chosen by who asked:
 *
 *  - the replier primes: as soon as the REQUEST arrives, before it even
 *    sends its REPLY, it connects to each of the requester's candidates
 *    with a small TTL (a "prime"): the SYN passes its own NAT, which now
 *    expects the requester's endpoint, and dies at the next router
 *    instead of being reset by the requester's NAT. The socket ignores
 *    the ICMP error that comes back (the daemon sets a minimum TTL on
 *    it), gets its normal TTL back, and waits;
 *  - the requester sends: as soon as the REPLY arrives it connects with a
 *    full TTL, again and again (a reset is tried again after
 *    P2P_PUNCH_RETRY_MS). Its SYN finds the replier's NAT expecting it
 *    and reaches the waiting socket: a simultaneous open whose SYN-ACK
 *    the replier's NAT lets through.
 *
 * No clock has to be agreed: the prime leaves before the REPLY does, so
 * it is ahead of the requester's SYN by at least the REPLY's trip plus
 * the SYN's, and the link is up about one signalling round trip plus two
 * host round trips (SYN, handshake) and a half (HELLO) after the request.
 * An agreed start (as before) added an offset of 3/4 of the signalling
 * round trip and a margin, and when a round-trip estimate was wrong the
 * SYN beat the prime and the first attempt was lost. The one bound: the
 * prime's own retransmission (full TTL, after the kernel's 1 s RTO) must
 * not reach the requester's NAT before the requester's SYN has left it,
 * which holds while the signalling round trip stays under about 2 s.
 *
 * TTL 2: our router forwards the prime with TTL 1, the next hop drops
 * it. Behind two NATs (double NAT) that prime dies before the outer
 * NAT's mapping exists, so the primes to a candidate alternate between
 * TTL 2 and 3 (3 passes two NATs; towards a peer behind one NAT it may
 * be reset by the peer's router, and the next prime is a 2 again). A
 * prime that reaches a peer on our own LAN is simply a connection.
 * Where the daemon has measured how deep its NATs are (p2p_nat_depth:
 * a home router behind a carrier NAT some hops away), every prime gets
 * that TTL instead (prime_ttl).
 */
/*
 * How long a socket is kept before it starts over. A socket's SYN that
 * has crossed a NAT (a Linux router: conntrack) fixes the sequence numbers
 * that NAT lets through on that four-tuple; once both sides' SYNs have
 * met there (SYN_SENT2), only the packets of those two sockets pass, for
 * as long as either keeps sending (120 s each time). So a socket must not
 * be replaced while the other side's kernel may still answer it: when the
 * first SYN of either side is lost, the other's retransmission comes one
 * RTO (1 s) later plus a host round trip, and a socket started over in
 * the meantime answers it with a new sequence number that the NAT drops;
 * every later attempt of the schedule was then lost too (natlab-paths,
 * 150 ms + 120 ms each way with 2% loss: the slow pair failed 1 run in
 * 12). 2.5 s covers the RTO and host round trips up to 1.5 s.
 */
#define P2P_PUNCH_PRIME_TTL 2	     /* first prime; then +1, +0, +1, ... */
#define P2P_PUNCH_PRIME_TTL_MAX 3    /* a second NAT in front of us */
#define P2P_PUNCH_FULL_TTL (-1)	     /* prime_ttl: the system's TTL */
#define P2P_PUNCH_PRIME_HOLD_MS 2500 /* a prime waits (its retransmission) */
#define P2P_PUNCH_RETRY_MS 150	     /* a refused connect is tried again */
#define P2P_PUNCH_ATTEMPT_MS 2500    /* an unanswered SYN: start over */
#define P2P_PUNCH_TOTAL_MS 8000	     /* the whole schedule, from its start */
#define P2P_PUNCH_SIGNAL_MS 5000     /* REQUEST without REPLY: give up */
/*
 * Happy eyeballs (issue 11). When the schedule holds candidates of both
 * families, the IPv4 ones start this much after the IPv6 ones, on both
 * sides (the replier's primes and the requester's SYNs alike, so a prime
 * still leads its SYN). IPv6 behind a stateful firewall needs no
 * translation that can go wrong, and a path without NAT keeps working
 * when a NAT reboots; with a head start of a few host round trips' worth
 * of jitter it wins whenever it works, while a dead IPv6 path costs IPv4
 * no more than this. Both families then race in earnest: the first
 * authenticated link wins and the other attempts are aborted. Shorter than
 * RFC 8305's 250 ms because both sides start at a moment the signalling
 * already synchronised; no DNS answer has to be waited for.
 */
#define P2P_PUNCH_V4_HEADSTART_MS 100
/* A payload whose time_ms is further than this from our wall clock, either
 * way, is refused (stale or replayed later; clocks are NTP-synchronised
 * to well under this). Nonces are remembered at least twice as long. */
#define P2P_PUNCH_SKEW_MS 30000

enum p2p_punch_type {
	P2P_PUNCH_REQUEST = 1, /* nonce, time, seen, candidates */
	P2P_PUNCH_REPLY = 2,   /* nonce, time, seen, candidates */
	P2P_PUNCH_FAIL = 3,    /* nonce, reason */
};

#define P2P_PUNCH_F_DIALABLE 0x0001 /* REPLY: dial me, I prime nothing */

enum p2p_punch_reason {
	P2P_PUNCH_R_NONE = 0,
	P2P_PUNCH_R_BOTH_DEPENDENT, /* no prediction on either side */
	P2P_PUNCH_R_BUSY,	    /* too many punches running */
	P2P_PUNCH_R_TIMEOUT,	    /* schedule over, nothing connected */
	P2P_PUNCH_R_NO_ANSWER,	    /* no REPLY to our REQUEST */
	P2P_PUNCH_R_NOT_LISTENING,  /* no listen port to punch from */
	P2P_PUNCH_R_LIMITED,	    /* too many requests from that source */
	P2P_PUNCH_R_IMPLAUSIBLE,    /* no candidate we would dial */
	P2P_PUNCH_R_MAX,
};

/* One decoded (or to be encoded) signalling payload. */
struct p2p_punch_sig {
	enum p2p_punch_type type;
	uint64_t nonce;
	uint64_t time_ms;      /* the sender's wall clock, Unix ms */
	enum p2p_nat_type nat; /* the sender's NAT type */
	enum p2p_punch_reason reason;
	uint16_t flags;	      /* P2P_PUNCH_F_* (unknown bits ignored) */
	struct p2p_addr seen; /* sender's public address observed by its
				 overlay peers; family 0 none */
	size_t ncand;
	struct p2p_addr cand[P2P_PUNCH_CAND_MAX];
};

/*
 * Encode and sign s as self, for the node dst. 0, -EINVAL (bad type,
 * reason, family (seen: 0, 4 or 6) or too many candidates), -EMSGSIZE
 * (cap too small).
 */
int p2p_punch_encode(const struct p2p_punch_sig *s,
		     const struct p2p_identity *self,
		     const struct p2p_peerid *dst, uint8_t *out, size_t cap,
		     size_t *outlen) __attribute__((warn_unused_result));

/*
 * Decode a payload that the overlay delivered to us (dst) from src.
 * 0; -EPROTO malformed (short, trailing bytes, bad count, type, family,
 * reason, port 0, bytes of an absent or IPv4 address not zero);
 * -EPROTONOSUPPORT another version; -EKEYREJECTED the public key
 * is not src's; -EBADMSG the signature does not verify.
 */
int p2p_punch_decode(struct p2p_punch_sig *s, const uint8_t *in, size_t len,
		     const struct p2p_peerid *src, const struct p2p_peerid *dst)
    __attribute__((warn_unused_result));

/* "both sides are behind endpoint-dependent NATs", ... */
const char *p2p_punch_reason_text(enum p2p_punch_reason r);

/* ---- prediction ---- */

struct p2p_punch_local {
	enum p2p_nat_type type;
	uint16_t listen_port;
	/* The external address overlay peers observed for a link that left
	 * from our listen port (p2p_nat_mapped), family 0 when none. */
	struct p2p_addr mapped;
	const struct p2p_addr *external; /* p2p_nat_external, newest first */
	size_t nexternal;
	const struct p2p_addr *lan; /* our own addresses (port ignored) */
	size_t nlan;
	/* Issue 11: our global IPv6 addresses (port ignored), offered with
	 * listen6 whatever the IPv4 NAT is: no NAT66, a stateful firewall
	 * at most, which the punch opens as it opens a NAT. */
	const struct p2p_addr *global6;
	size_t nglobal6;
	uint16_t listen6; /* our IPv6 listen port, 0 none */
};

/*
 * Candidates to offer, best first, at most max (distinct): first each
 * global IPv6 address with listen6 (when listen6 is set), then
 *   none / port-preserving: the mapped address, else external IP and our
 *                listen port (dials leave from it, so the NAT keeps it);
 *   endpoint-independent: the mapped address only (the port the NAT
 *                gave our listen port is the same for every destination);
 *   endpoint-dependent: no external candidate (nothing to predict);
 *   unknown:     as port-preserving, a guess;
 * then each LAN address with our listen port, for peers behind the same
 * NAT. Returns the count.
 */
size_t p2p_punch_predict(const struct p2p_punch_local *in, struct p2p_addr *out,
			 size_t max);

/* Whether a NAT type lets the other side predict anything. */
bool p2p_punch_predictable(enum p2p_nat_type t);

/* Whether any of cand[0..n) is an IPv6 address: an IPv6 path needs no
 * prediction, whatever the IPv4 NAT types say. */
bool p2p_punch_has_v6(const struct p2p_addr *cand, size_t n);

/* ---- scheduling ---- */

enum p2p_punch_action_type {
	P2P_PUNCH_CONNECT, /* idx, addr, ttl: connect from the listen port */
	P2P_PUNCH_ABORT,   /* idx: close that attempt's socket */
	P2P_PUNCH_SUCCESS, /* idx (SIZE_MAX: the link came another way) */
	P2P_PUNCH_FAILED,  /* reason */
};

struct p2p_punch_action {
	enum p2p_punch_action_type type;
	size_t idx;
	struct p2p_addr addr;
	int ttl; /* CONNECT: IP TTL for the SYN, 0 for the default */
	enum p2p_punch_reason reason;
};

enum p2p_punch_cand_state {
	P2P_PUNCH_C_WAIT,	/* next attempt at .at */
	P2P_PUNCH_C_CONNECTING, /* SYN out; given up at .at */
	P2P_PUNCH_C_VERIFYING,	/* TCP up, handshake running */
};

#define P2P_PUNCH_QUEUE 32 /* >= 2 * P2P_PUNCH_CAND_MAX + 2 */

struct p2p_punch {
	size_t n;
	struct {
		struct p2p_addr addr;
		enum p2p_punch_cand_state state;
		uint64_t at;
		unsigned tries;
	} c[P2P_PUNCH_CAND_MAX];
	uint64_t start, end;
	bool primer;
	/* The primes' TTL where our NAT depth is known (p2p_nat_depth;
	 * set after init): every prime gets it. 0: TTL 2 and 3 in turn.
	 * P2P_PUNCH_FULL_TTL: no prime at all, plain SYNs (the peer is
	 * public and listens: our SYN reaches its listener). */
	int prime_ttl;
	bool done;
	unsigned attempts, refused, timeouts; /* for the log line */
	unsigned held; /* connects the kernel refused: four-tuple in use */
	struct p2p_punch_action q[P2P_PUNCH_QUEUE];
	size_t qhead, qlen;
};

/* Connect to cand[0..n) from start on, priming (the replier) or sending
 * (the requester; see the timing comment), give up at start +
 * P2P_PUNCH_TOTAL_MS. With IPv6 among them, IPv4 candidates start at
 * start + P2P_PUNCH_V4_HEADSTART_MS. n may be 0: we then only wait for
 * the peer. */
void p2p_punch_init(struct p2p_punch *p, const struct p2p_addr *cand, size_t n,
		    uint64_t start, bool primer);
/* Call when now >= p2p_punch_next_timer(). */
void p2p_punch_tick(struct p2p_punch *p, uint64_t now);
/* The attempt idx got a TCP connection: its handshake runs. */
void p2p_punch_connected(struct p2p_punch *p, uint64_t now, size_t idx);
/* The attempt idx failed (refused, reset, handshake failed): again later. */
void p2p_punch_conn_failed(struct p2p_punch *p, uint64_t now, size_t idx,
			   bool refused);
/*
 * The attempt idx could not even start: connect() from the listen port
 * said the four-tuple is in use (EADDRNOTAVAIL: a socket of ours to that
 * candidate lives on, a TIME_WAIT, or the peer's SYN that reached our
 * listener and waits for its ACK). Connecting again after
 * P2P_PUNCH_RETRY_MS would fail the same way for as long as the holder
 * lives, so the attempt counts as under way until its hold (or attempt)
 * time is over: the next try comes then, like after an unanswered SYN.
 */
void p2p_punch_held(struct p2p_punch *p, uint64_t now, size_t idx);
/* An authenticated link to the peer is up: through attempt idx, or
 * SIZE_MAX when the peer's SYN reached our listener. */
void p2p_punch_verified(struct p2p_punch *p, uint64_t now, size_t idx);
bool p2p_punch_poll(struct p2p_punch *p, struct p2p_punch_action *a);
/* Absolute time of the next tick wanted; UINT64_MAX when done. */
uint64_t p2p_punch_next_timer(const struct p2p_punch *p);

#endif
