/*
 * LAN discovery, sans-I/O (SPEC section 9 `lan_discovery`): when to send
 * our beacon (proto/beacon.h), and what to do with one received. The
 * daemon's glue (daemon/lan.c) owns the multicast sockets and the clock
 * and hands in (now, wall clock, datagram source); the core hands back
 * "send a beacon now" and "dial this peer at this address".
 *
 * Sending: once at start, again P2P_LAN_SECOND_MS later (the first may
 * go out while an interface is still coming up), then every
 * P2P_LAN_INTERVAL_MS plus or minus P2P_LAN_JITTER_MS, the jitter from the
 * caller's random numbers so that nodes started together drift apart.
 *
 * Receiving, in the order the caller asks:
 *  1. p2p_lan_admit(src) before any signature is checked: each source IP
 *     has a token bucket (P2P_LAN_SRC_BURST, one token per
 *     P2P_LAN_SRC_REFILL_MS), so a host flooding the group costs us a
 *     table lookup per datagram, not a signature check;
 *  2. p2p_lan_on_beacon(verified beacon, src): ignore ourselves, refuse a
 *     timestamp more than P2P_LAN_FRESH_MS from our wall clock (a
 *     recorded beacon replayed later), refuse a port of 0 for the
 *     datagram's family and IPv6 link-local sources (an address without
 *     its interface cannot be dialled), and ask for a dial of (peer, src
 *     IP, advertised port) at most once per P2P_LAN_REDIAL_MS, so a peer
 *     announcing every 15 s is not dialled every 15 s while its first
 *     dial is still running or has failed.
 * Whether a link to the peer already exists is the caller's question.
 *
 * Memory is fixed: P2P_LAN_SRC_SLOTS sources and P2P_LAN_DIAL_SLOTS
 * recent dials, the oldest replaced.
 */
#ifndef P2P_CORE_LAN_H
#define P2P_CORE_LAN_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/addr.h"
#include "proto/beacon.h"
#include "proto/peerid.h"

#define P2P_LAN_SECOND_MS 2000	   /* the repeat after the first beacon */
#define P2P_LAN_INTERVAL_MS 15000  /* then one beacon per this ... */
#define P2P_LAN_JITTER_MS 3000	   /* ... plus or minus up to this */
#define P2P_LAN_FRESH_MS 60000	   /* |their clock - ours| accepted */
#define P2P_LAN_REDIAL_MS 10000	   /* one dial per (peer, address) per */
#define P2P_LAN_SRC_BURST 4	   /* datagrams a source may send at once */
#define P2P_LAN_SRC_REFILL_MS 2000 /* ... and one more per this */
#define P2P_LAN_SRC_SLOTS 64
#define P2P_LAN_DIAL_SLOTS 64

/* What to do with a beacon. */
enum p2p_lan_verdict {
	P2P_LAN_DIAL,	   /* dial *to, expecting the beacon's peer ID */
	P2P_LAN_SELF,	   /* our own, looped back */
	P2P_LAN_STALE,	   /* timestamp out of P2P_LAN_FRESH_MS */
	P2P_LAN_NO_PORT,   /* no listen port for the source's family */
	P2P_LAN_LINKLOCAL, /* IPv6 link-local source: not dialable */
	P2P_LAN_RECENT,	   /* dialled this (peer, address) a moment ago */
};

struct p2p_lan;

/* A core for the node with ID self; now: the caller's monotonic ms (the
 * first beacon is due at now). NULL when out of memory. */
struct p2p_lan *p2p_lan_new(const struct p2p_peerid *self, uint64_t now);
void p2p_lan_free(struct p2p_lan *l);

/* When the next beacon is due. */
uint64_t p2p_lan_next(const struct p2p_lan *l);
/* Is a beacon due at now? If so the next is scheduled (rnd: any random
 * number, for the jitter) and the caller sends one on every interface. */
bool p2p_lan_announce_due(struct p2p_lan *l, uint64_t now, uint32_t rnd);

/* May a datagram from src's IP be looked at (its port is ignored)? */
bool p2p_lan_admit(struct p2p_lan *l, uint64_t now, const struct p2p_addr *src);

/*
 * A verified beacon b from src (the datagram's source address). wall_ms:
 * our wall clock (ms since the Unix epoch), compared with b->time_ms.
 * On P2P_LAN_DIAL *to is src's IP with the advertised port.
 */
enum p2p_lan_verdict p2p_lan_on_beacon(struct p2p_lan *l, uint64_t now,
				       uint64_t wall_ms,
				       const struct p2p_beacon *b,
				       const struct p2p_addr *src,
				       struct p2p_addr *to);

const char *p2p_lan_verdict_name(enum p2p_lan_verdict v);

#endif
