/*
 * TCP hole punching, the daemon's side (SPEC section 7 "NAT traversal"):
 * per-peer sessions of signalling over the overlay and the connect
 * schedule of nat/punch.h, whose attempts are links (link_punch).
 */
#ifndef P2PD_PUNCH_H
#define P2PD_PUNCH_H

#include <stdbool.h>
#include <stdint.h>

#include "nat/nat.h"
#include "nat/punch.h"
#include "node.h"
#include "proto/peerid.h"

#define PUNCH_MAX 8 /* punches at once (each sends SYNs to 8 addresses) */
#define PUNCH_LAN_MAX 4
#define PUNCH_GLOBAL6_MAX 4 /* our global IPv6 addresses offered */
#define PUNCH_RTT_CACHE 32  /* peers whose signalling rtt we remember */

/* A punch we asked for failed: why (the peer's reason, or
 * P2P_PUNCH_R_NONE for a local cause), msg says why, for the user.
 * Success is seen by everyone as the peer's link coming up. */
typedef void (*punch_failed_fn)(void *arg, const struct p2p_peerid *peer,
				enum p2p_punch_reason why, const char *msg);

/* A punch with peer is agreed and starts now: peer_nat is the NAT type
 * the peer gave in its REQUEST or REPLY; primer: we answered it and prime,
 * else we asked and connect (nat/punch.h); ncand: how many of the peer's
 * candidates we dial (0: none of a family we listen on); v6: one of them
 * is IPv6 and we have a global IPv6 address (issue 11: a direct path
 * whatever the IPv4 NATs are). */
typedef void (*punch_scheduled_fn)(void *arg, const struct p2p_peerid *peer,
				   enum p2p_nat_type peer_nat, bool primer,
				   size_t ncand, bool v6);

/* Issue 8: the peer answered our REQUEST "dial me" (it is a DHT server):
 * nothing was primed and the session is over; dial it at `at`. The
 * punch's failed callback is not called for it. */
typedef void (*punch_dial_fn)(void *arg, const struct p2p_peerid *peer,
			      const struct p2p_addr *at);

/* dial_me: config dial_me (answer "dial me" once a DHT server). */
int punch_module_init(struct p2pd_node *n, bool dial_me);
/* Who is told of each agreed punch (daemon.c: progress); one. */
void punch_on_scheduled(struct p2pd_node *n, punch_scheduled_fn fn, void *arg);
/* Who dials a peer that answered "dial me" (daemon.c: reach); one. */
void punch_on_dial(struct p2pd_node *n, punch_dial_fn fn, void *arg);
/* Issue 11: our global IPv6 addresses with our IPv6 listen port, what
 * punches offer first (none when we do not listen on IPv6); at most max.
 * status lists them among nat.external. */
size_t punch_global6(struct p2pd_node *n, struct p2p_addr *out, size_t max);
/* Shutdown: forget every session. */
void punch_stop(struct p2pd_node *n);
void punch_free(struct p2pd_node *n);

/*
 * Start punching towards peer (context: why, for the failure message).
 * failed(arg, ...) is called later if it fails, never inside this call.
 * 0, -EADDRNOTAVAIL (we do not listen), -EBUSY (PUNCH_MAX), -errno.
 */
int punch_start(struct p2pd_node *n, const struct p2p_peerid *peer,
		const char *context, punch_failed_fn failed, void *arg);

/* The round trip of our latest REQUEST -> REPLY with peer, in ms; < 0
 * when none has been measured. */
int64_t punch_sig_rtt(struct p2pd_node *n, const struct p2p_peerid *peer);

/* The signalling counters (issue 9: refusals, attempts held back). */
struct p2p_psess_stats;
const struct p2p_psess_stats *punch_stats(struct p2pd_node *n);
/* SYNs of punch peers at our listener dropped so that a prime could go
 * out (they held its four-tuple, their SYN-ACKs unanswered). */
uint64_t punch_stale_syns(struct p2pd_node *n);

/* Hub hooks (daemon.c registers them). */
void punch_on_app(void *n, const struct p2p_ov_action *a);
void punch_on_route_failed(void *n, uint64_t msgid);
uint64_t punch_next(void *n);
void punch_expire(void *n, uint64_t now);
extern const struct node_link_hooks punch_link_hooks;

#endif
