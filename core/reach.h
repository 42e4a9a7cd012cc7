/*
 * Reaching a peer, sans-I/O: how a tunnel or `p2pctl connect` gets a link
 * to a peer (SPEC section 5 "connect", section 7 "NAT traversal").
 *
 * A link already up is used at once. Else the peer's address (from the
 * routing table, else an overlay lookup) is dialled; a peer that cannot
 * be dialled (a client behind NAT, or the dial failed) is hole punched;
 * when that cannot start or fails, the link is relayed, asking up to
 * P2P_REACH_RELAY_TRIES relays in turn. With relay_near, the first asked
 * are the servers nearest the peer's ID that a lookup of it returned (a
 * NATed client keeps its links to the servers nearest its own ID, so those
 * are the ones that hold a link to it; dialled first if we hold no link to
 * one); then the nodes we hold direct links to, nearest the peer first
 * (XOR metric). A relay that refuses or goes away is replaced by the next.
 * Only when no relay reaches the peer is it unreachable, and the message
 * says why at every step.
 *
 * Every waiter for one peer (a tunnel, a connect request: an opaque
 * uint64_t token chosen by the caller) shares that peer's one attempt.
 *
 * No sockets, no clock, no callbacks: the caller feeds events with the
 * current time and carries out the actions it polls. The rules:
 *
 *  - after every input, poll until p2p_reach_poll() returns false, and
 *    re-arm one timer at p2p_reach_next_timer();
 *  - a completion (P2P_REACH_DONE) only ever comes out of poll, never
 *    inside a call, not even for a link already up: the caller's object
 *    is never re-entered;
 *  - LOOKUP, DIAL, PUNCH, RELAYS, RELAY and RELAY_DIAL are requests:
 *    answer each with
 *    its *_started (or p2p_reach_relays) call, best at once from inside the
 *    poll loop (answering from inside the loop is allowed; an answer only
 *    queues more actions). An answer for an attempt that has been
 *    forgotten meanwhile (its waiters cancelled) returns -ENOENT and does
 *    nothing: whatever the caller started then goes on unobserved, as it
 *    did before this core existed;
 *  - link IDs are the caller's, never 0 and never reused.
 *
 * Memory is bounded: at most P2P_REACH_ATTEMPTS_MAX attempts and
 * P2P_REACH_WAITERS_MAX waiters (completions not yet polled included);
 * beyond, p2p_reach_get() answers -EBUSY. No globals: one handle per node,
 * so a simulator can hold thousands.
 */
#ifndef P2P_CORE_REACH_H
#define P2P_CORE_REACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/punch.h"
#include "proto/addr.h"
#include "proto/msg.h"
#include "proto/peerid.h"

#define P2P_REACH_ATTEMPTS_MAX 1024 /* peers being reached at once */
#define P2P_REACH_WAITERS_MAX 2048  /* waiters, undelivered results too */
#define P2P_REACH_RELAY_TRIES 8	    /* relays asked in turn */
/* With relay_near: the servers nearest the peer from its lookup asked
 * first, at most this many (a client links to the P2P_K nearest its ID, so
 * the first few hold its links; the rest of the tries go to our links). */
#define P2P_REACH_NEAR_MAX 5
#define P2P_REACH_TIMEOUT_MS 20000 /* lookup + dial; again for relaying */
/* Punching: signalling, the schedule, the handshake. */
#define P2P_REACH_PUNCH_MS (P2P_PUNCH_SIGNAL_MS + P2P_PUNCH_TOTAL_MS + 5000)
/* Why there is no direct link, kept while relaying: short enough that the
 * relay verdict appended to it always fits in P2P_REACH_TEXT_MAX. */
#define P2P_REACH_PUNCH_GRACE_MS 2000 /* a relay waits for a punch */
#define P2P_REACH_GRACE_RTTS 2	      /* ... its REPLY + this x sig rtt */
#define P2P_REACH_GRACE_SLACK_MS 150  /* ... + this (jitter, scheduling) */
/*
 * Upgrades. A relayed link that answered while the punch still
 * ran (the grace was over) is the pair's path until that punch makes a
 * direct link. When the punch then fails outright (its schedule ran out,
 * no answer, no route: not a refusal that a new request would get too),
 * the core asks for one more punch after P2P_REACH_UPGRADE_BACKOFF_MS
 * (fresh candidates and nonce: a new request), doubling the wait, at
 * most P2P_REACH_UPGRADE_TRIES times per relayed link. Never for a pair
 * the punch's signalling called unlikely (an endpoint-dependent side),
 * whose peer said "dial me" and could not be dialled, or whose relayed
 * link has gone. A loss on the path or a busy NAT costs one punch, not
 * the direct link for as long as the relayed one lives.
 */
#define P2P_REACH_UPGRADE_TRIES 2	  /* punches asked again */
#define P2P_REACH_UPGRADE_BACKOFF_MS 3000 /* before the first; x2 each */
#define P2P_REACH_UPGRADES_MAX 256	  /* relayed pairs watched at once */
#define P2P_REACH_WHY_MAX 200
#define P2P_REACH_TEXT_MAX 320 /* a punch context, a failure message */

/* What a link to the peer is, as the caller's link table knows it. */
enum p2p_reach_kind {
	P2P_REACH_K_DIRECT,  /* dialled or accepted */
	P2P_REACH_K_PUNCHED, /* direct, made by hole punching */
	P2P_REACH_K_RELAYED, /* through a relay */
};

struct p2p_reach_link {
	uint32_t id; /* never 0 */
	enum p2p_reach_kind kind;
};

/* How the link was had, as `connect` answers it ("method"). */
enum p2p_reach_method {
	P2P_REACH_M_NONE,     /* failed */
	P2P_REACH_M_EXISTING, /* it was up already */
	P2P_REACH_M_DIAL,     /* made for this, direct */
	P2P_REACH_M_PUNCH,    /* made for this, punched */
	P2P_REACH_M_RELAY,    /* made for this, relayed */
};

enum p2p_reach_action_type {
	/* peer: start an overlay lookup of peer; answer
	 * p2p_reach_lookup_started, then p2p_reach_lookup_done. */
	P2P_REACH_LOOKUP,
	/* peer, addr: dial addr expecting peer's ID in the handshake; answer
	 * p2p_reach_dial_started, then link_up or link_gone. */
	P2P_REACH_DIAL,
	/* peer, text (the context: why we punch): start hole punching;
	 * answer p2p_reach_punch_started, then link_up or punch_failed.
	 * Also an upgrade's retry (upgrade true): nobody waits on it; its
	 * end comes back the same way. */
	P2P_REACH_PUNCH,
	/* peer: which nodes could relay? Answer p2p_reach_relays with the IDs
	 * of the nodes we hold direct (not relayed) links to. With
	 * relay_near, a LOOKUP of peer may come first when the attempt ran
	 * none (its result names the servers nearest peer). */
	P2P_REACH_RELAYS,
	/* peer, via: ask via to relay a link to peer; answer
	 * p2p_reach_relay_started, then link_up or link_gone. */
	P2P_REACH_RELAY,
	/* peer, via, addr: via (a server nearest peer, a relay candidate we
	 * hold no link to) is to be dialled at addr; answer
	 * p2p_reach_relay_dial_started with the dial's link ID, then
	 * link_up (its peer is via) or link_gone. RELAY via it follows. */
	P2P_REACH_RELAY_DIAL,
	/* peer, token: the end for that waiter. Success: code NULL, link,
	 * method. Failure: link.id 0, code ("peer_unreachable", "timeout",
	 * "busy", "internal") and text, the message for the user. */
	P2P_REACH_DONE,
};

struct p2p_reach_action {
	enum p2p_reach_action_type type;
	struct p2p_peerid peer;
	struct p2p_addr addr;	      /* DIAL, RELAY_DIAL */
	struct p2p_peerid via;	      /* RELAY, RELAY_DIAL */
	uint64_t token;		      /* DONE */
	struct p2p_reach_link link;   /* DONE: id 0 on failure */
	enum p2p_reach_method method; /* DONE */
	bool dialled;	  /* DONE: an attempt ran for it (not at once) */
	bool upgrade;	  /* PUNCH: a retry to upgrade a relayed link */
	const char *code; /* DONE: NULL on success; a static string */
	char text[P2P_REACH_TEXT_MAX]; /* PUNCH: context; DONE: message */
};

struct p2p_reach_config {
	struct p2p_peerid self; /* our own ID: never reached */
	/*
	 * Issue 8: ask relays while the punch runs instead of after it
	 * failed; the first link up wins (a relayed link first; the punch
	 * goes on in the caller and its direct link serves later tunnels).
	 * false (today's behaviour): relay only once punching has failed.
	 * With it, relays that all fail wait for the punch's verdict, and a
	 * punch that fails leaves the relay asked running (deadline re-armed
	 * as when relaying starts); expiry while punching still says "hole
	 * punching did not finish".
	 */
	bool relay_with_punch;
	/*
	 * Issue 8: a peer that must be looked up is asked to punch at once,
	 * in parallel with the lookup (PUNCH with an empty context while
	 * LOOKUP runs), so the signalling round trip overlaps the lookup's.
	 * The lookup still decides: an address found is dialled (the punch
	 * goes on; whichever link comes first is the answer), none found
	 * wants PUNCH again with the real context (the glue joins the
	 * session that runs). What the punch's signalling tells meanwhile
	 * (punch_unlikely, punch_expect) is kept for then.
	 */
	bool punch_early;
	/*
	 * With relay_with_punch: a relayed link that comes up less than this
	 * many ms after the punch began is held back while the punch may
	 * still win (a direct link up first is the answer); at the end of the
	 * grace, or as soon as the punch fails, the waiters get the relayed
	 * link. 0: the first link up wins.
	 */
	uint32_t punch_grace_ms;
	/*
	 * Issue 8: relays chosen on purpose. The servers nearest the peer
	 * that its lookup returned (a lookup is run for it if the attempt
	 * had none) are asked first, up to P2P_REACH_NEAR_MAX, dialled first
	 * when we hold no link to one (RELAY_DIAL); then our own links.
	 * false: only the nodes we hold links to (nearest the peer first).
	 */
	bool relay_near;
};

struct p2p_reach;

/* NULL when out of memory. */
struct p2p_reach *p2p_reach_new(const struct p2p_reach_config *cfg);
/* Forgets everything, undelivered completions included. */
void p2p_reach_free(struct p2p_reach *r);

/*
 * token wants a link to peer. up: a link to peer that is up already (the
 * caller's link table; NULL: none). addr: peer's address in the routing
 * table (NULL or family 0: none), used if an attempt starts. 0: a DONE
 * for token will come out of poll unless cancelled first; -EBUSY (a cap
 * reached), -EEXIST (token waits already), -ENOMEM: nothing happens.
 */
int p2p_reach_get(struct p2p_reach *r, uint64_t now,
		  const struct p2p_peerid *peer, uint64_t token,
		  const struct p2p_reach_link *up, const struct p2p_addr *addr)
    __attribute__((warn_unused_result));

/* token stops waiting: no DONE for it, not even one already due. When
 * nobody waits for its peer any more the attempt is forgotten. 0 or
 * -ENOENT. */
int p2p_reach_cancel(struct p2p_reach *r, uint64_t token);

/* Answers to LOOKUP: rc 0 and the lookup's id, or rc < 0 (-EBUSY: too
 * many lookups). 0, -ENOENT (no such attempt), -EINVAL (no LOOKUP was
 * polled for it). The other answers return the same codes. */
int p2p_reach_lookup_started(struct p2p_reach *r, uint64_t now,
			     const struct p2p_peerid *peer, int rc,
			     uint64_t lookup_id);
/* The lookup lookup_id finished: found (the peer itself answered or was
 * seen) and the closest contacts. up: a link to the peer up meanwhile
 * (NULL: none). -ENOENT: not a lookup of ours. */
int p2p_reach_lookup_done(struct p2p_reach *r, uint64_t now, uint64_t lookup_id,
			  bool found, const struct p2p_contact *contacts,
			  size_t ncontacts, const struct p2p_reach_link *up);

/* Answer to DIAL: rc 0 and the dialling link's ID, or rc < 0 and errtext
 * (the I/O layer's text for it; NULL: p2p_strerror(rc)). */
int p2p_reach_dial_started(struct p2p_reach *r, uint64_t now,
			   const struct p2p_peerid *peer, int rc,
			   uint32_t link_id, const char *errtext);

/* Answer to PUNCH: rc 0, or rc < 0 (-EADDRNOTAVAIL: we do not listen;
 * errtext NULL: p2p_strerror(rc)). */
int p2p_reach_punch_started(struct p2p_reach *r, uint64_t now,
			    const struct p2p_peerid *peer, int rc,
			    const char *errtext);
/* Punching towards peer gave up; why is the reason (P2P_PUNCH_R_NONE:
 * a local cause, a route that failed), msg says why (the user's text).
 * For a relayed link that answered while the punch ran, an upgrade retry
 * may follow (see P2P_REACH_UPGRADE_TRIES): the peer's refusals
 * (both endpoint-dependent, not listening, limited, implausible) get
 * none. -ENOENT: neither an attempt nor an upgrade waited for it. */
int p2p_reach_punch_failed(struct p2p_reach *r, uint64_t now,
			   const struct p2p_peerid *peer,
			   enum p2p_punch_reason why, const char *msg);
/*
 * The punch towards peer runs but can hardly work (our NAT or the peer's
 * is endpoint-dependent, as the punch's signalling told): a relayed link
 * no longer waits punch_grace_ms for it, it is the answer as soon as it
 * is up (the punch goes on and may still upgrade the peer's link later).
 * 0; -ENOENT no punch for peer runs here.
 */
int p2p_reach_punch_unlikely(struct p2p_reach *r, uint64_t now,
			     const struct p2p_peerid *peer);

/*
 * Issue 8: the peer answered our punch request "dial me at addr" (it is a
 * DHT server; nat/punch.h P2P_PUNCH_F_DIALABLE), nothing was primed. While
 * the lookup runs (punch_early) it is dialled at once, as the lookup
 * would have had it dialled; a dial that runs already goes on. 0, or
 * -EALREADY when it is too late for that (the lookup said otherwise and
 * the punch, or a relay, runs: the glue then reports the punch failed,
 * so a peer that keeps saying "dial me" where it cannot be dialled ends
 * on a relay, not in a loop); -ENOENT nothing for peer runs here.
 */
int p2p_reach_dial_hint(struct p2p_reach *r, uint64_t now,
			const struct p2p_peerid *peer,
			const struct p2p_addr *addr);

/*
 * Our punch towards peer starts now (the peer's REPLY is in), and its
 * signalling took sig_rtt_ms (< 0: unknown). A direct link needs two
 * round trips of the host path from here (SYN, then handshake frames 1
 * and 2 with the peer's HELLO), and the host path is rarely slower than
 * the overlay route the signalling took; so a relayed link up meanwhile
 * waits only P2P_REACH_GRACE_RTTS of sig_rtt_ms more plus
 * P2P_REACH_GRACE_SLACK_MS, never beyond punch_grace_ms from the punch's
 * start: a SYN lost on the way then costs a relayed answer at once (and
 * an upgrade later), not a retransmission timeout before the first
 * byte. 0; -ENOENT no punch for peer runs here.
 */
int p2p_reach_punch_expect(struct p2p_reach *r, uint64_t now,
			   const struct p2p_peerid *peer, int64_t sig_rtt_ms);

/* Answer to RELAYS: ids[0..n) of the nodes we hold direct links to (the
 * peer itself and nodes already asked are skipped here). With relay_near
 * the peer's nearest servers from its lookup go first: those in ids are
 * asked (RELAY) before those not in ids are dialled (RELAY_DIAL). */
int p2p_reach_relays(struct p2p_reach *r, uint64_t now,
		     const struct p2p_peerid *peer,
		     const struct p2p_peerid *ids, size_t n);
/* Answer to RELAY: rc 0 and the relayed link's ID, or rc < 0. */
int p2p_reach_relay_started(struct p2p_reach *r, uint64_t now,
			    const struct p2p_peerid *peer, int rc,
			    uint32_t link_id);
/* Answer to RELAY_DIAL: rc 0 and the dial's link ID (its link_up names
 * the relay candidate, not peer), or rc < 0: the next candidate. */
int p2p_reach_relay_dial_started(struct p2p_reach *r, uint64_t now,
				 const struct p2p_peerid *peer, int rc,
				 uint32_t link_id);

/* A link to peer came up (its first HELLO), whatever made it; also the
 * end of a RELAY_DIAL (peer is then the relay candidate). */
int p2p_reach_link_up(struct p2p_reach *r, uint64_t now,
		      const struct p2p_peerid *peer,
		      const struct p2p_reach_link *l);
/* Link link_id went away (why: the user's text); up: another link to the
 * same peer that is up (NULL: none; for a RELAY_DIAL's link, a link to the
 * relay candidate). -ENOENT: no attempt waited on it. */
int p2p_reach_link_gone(struct p2p_reach *r, uint64_t now, uint32_t link_id,
			const char *why, const struct p2p_reach_link *up);

/* Call when now >= p2p_reach_next_timer(). */
void p2p_reach_expire(struct p2p_reach *r, uint64_t now);
/* Absolute time of the earliest deadline; UINT64_MAX when none. */
uint64_t p2p_reach_next_timer(const struct p2p_reach *r);

/* Shutting down: every attempt fails ("internal", "daemon shutting
 * down"), and so does every later get. */
void p2p_reach_stop(struct p2p_reach *r);

/* The next action; false when there is none. */
bool p2p_reach_poll(struct p2p_reach *r, struct p2p_reach_action *a);

/* Attempts and waiters held now (for tests and the simulator). */
size_t p2p_reach_attempts(const struct p2p_reach *r);
size_t p2p_reach_waiters(const struct p2p_reach *r);

/* Counters (metrics); they only grow. */
struct p2p_reach_stats {
	uint64_t upgrade_retries; /* PUNCH asked again for a relayed pair */
	uint64_t upgrades;	  /* relayed pairs that got a direct link */
};
const struct p2p_reach_stats *p2p_reach_stats(const struct p2p_reach *r);
/* Relayed pairs watched for an upgrade now (for tests). */
size_t p2p_reach_upgrades(const struct p2p_reach *r);

/* "existing", "dial", "punch", "relay" ("" for NONE). */
const char *p2p_reach_method_name(enum p2p_reach_method m);
/* "relay" or "direct", as `connect` answers "path". */
const char *p2p_reach_path_name(enum p2p_reach_kind k);

#endif
