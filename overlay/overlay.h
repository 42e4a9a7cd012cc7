/*
 * The Kademlia overlay, sans-I/O.
 *
 * The caller (daemon, simulator, test) owns links, sockets and the clock.
 * It feeds events in with the current time in milliseconds (any monotonic
 * origin) and drains actions with p2p_overlay_poll() after every call;
 * then it arms one timer for p2p_overlay_next_timer(). The overlay never
 * reads a clock, opens a socket or logs by itself.
 *
 * Links: the caller reports every authenticated link to a peer with
 * link_up (and its end with link_down). A link is usable for FIND_NODE and
 * routed messages in both directions whoever opened it. The overlay asks
 * for links with DIAL actions and gives up the ones it no longer needs
 * with CLOSE actions (the caller may keep a link open for other users).
 *
 * Server and client mode: a node that peers can dial back is a DHT server
 * and enters others' routing tables; a client (behind NAT) does not, but
 * keeps links to the servers closest to its own ID so that a message routed
 * towards its ID reaches one of them, which then holds a link to it.
 */
#ifndef P2P_OVERLAY_H
#define P2P_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"
#include "proto/msg.h"
#include "proto/peerid.h"

/*
 * Diversity limits: P2P_BUCKET_SUBNET_MAX per bucket and
 * P2P_TABLE_SUBNET_MAX in the table per /24 (IPv4) or /48 (IPv6), loopback
 * addresses exempt. A simulator must give its nodes distinct subnets.
 */
/* Kademlia parameters and limits (SPEC section 7). */
#define P2P_K 20		/* bucket size, lookup result size */
#define P2P_ALPHA 3		/* lookup requests in flight */
#define P2P_BUCKET_SUBNET_MAX 2 /* entries per /24 or /48 per bucket */
#define P2P_TABLE_SUBNET_MAX 10 /* entries per /24 or /48 in the table */
#define P2P_REPLACEMENTS 8	/* replacement cache per bucket */
#define P2P_ROUTE_HOPS 20	/* initial hop limit of routed messages */
#define P2P_ROUTE_RATE 50	/* routed messages accepted per peer per s */
#define P2P_FIND_RATE 20	/* FIND_NODE answered per peer per s ... */
#define P2P_FIND_BURST 50	/* ... after a burst of this many */
#define P2P_LOOKUP_REQ_TIMEOUT_MS 3000	/* one FIND_NODE (dial included) */
#define P2P_LOOKUP_TIMEOUT_MS 20000	/* a whole lookup */
#define P2P_REFRESH_MS (15 * 60 * 1000) /* bucket refresh period */

/* Application numbers carried in routed messages (struct p2p_msg routed.app).
 */
/* overlay internal: payload msgid u64, passed back hop by hop */
#define P2P_APP_ROUTE_FAIL 0
#define P2P_APP_PING 1 /* daemon: routed ping */
#define P2P_APP_PONG 2
#define P2P_APP_NAT 3 /* NAT traversal signalling */
#define P2P_APP_USER 16

struct p2p_overlay;

/*
 * May we dial a (third-party) address told by a peer whose own address is
 * via (NULL: unknown)? Never a port 0, an unspecified, multicast or
 * broadcast address, nor 0.0.0.0/8; loopback (127/8, ::1) only when via
 * is loopback too: only a peer on this host can mean this host.
 */
bool p2p_overlay_addr_dialable(const struct p2p_addr *a,
			       const struct p2p_addr *via);

struct p2p_overlay_config {
	struct p2p_peerid self;
	bool server; /* start in server mode (dialable); see set_server */
	/* Randomness (lookup IDs, message IDs, refresh targets). Required. */
	void (*random)(void *ctx, void *buf, size_t len);
	/* Optional: one line per notable event, level as syslog (3..7). */
	void (*log)(void *ctx, int level, const char *msg);
	void *ctx;
};

enum p2p_ov_action_type {
	P2P_OV_SEND,  /* peer, data/len: encoded message for that link */
	P2P_OV_DIAL,  /* peer, addr: open a link; answer link_up/dial_failed */
	P2P_OV_CLOSE, /* peer: the overlay no longer needs this link */
	P2P_OV_LOOKUP_DONE, /* id, found, contacts/ncontacts, hops */
	P2P_OV_DELIVER, /* routed message for us: peer = src, app, data/len, id
			   = msgid */
	P2P_OV_ROUTE_FAILED, /* our message id to peer = dst was undeliverable
			      */
};

/* Valid until the next call into the overlay. */
struct p2p_ov_action {
	enum p2p_ov_action_type type;
	struct p2p_peerid peer;
	struct p2p_addr addr;
	const uint8_t *data;
	size_t len;
	uint64_t id;
	uint8_t app;
	bool found; /* LOOKUP_DONE: the target itself answered / was seen */
	int hops;   /* LOOKUP_DONE: rounds; DELIVER: hops travelled */
	const struct p2p_contact
	    *contacts; /* LOOKUP_DONE: k closest, nearest first */
	size_t ncontacts;
};

struct p2p_overlay_stats {
	size_t table_size; /* routing table entries */
	size_t links;	   /* links reported up */
	uint64_t lookups_started, lookups_done;
	uint64_t routed_sent, routed_delivered, routed_forwarded,
	    routed_dropped;
	uint64_t msgs_sent, msgs_received, bad_msgs;
	uint64_t finds_dropped; /* FIND_NODE over P2P_FIND_RATE, unanswered */
};

/* NULL on ENOMEM or bad config. */
struct p2p_overlay *p2p_overlay_new(const struct p2p_overlay_config *cfg);
void p2p_overlay_free(struct p2p_overlay *o);

/* Switch between server and client mode (learned reachability). */
void p2p_overlay_set_server(struct p2p_overlay *o, uint64_t now, bool server);
bool p2p_overlay_is_server(const struct p2p_overlay *o);

/* ---- events ---- */

/*
 * An authenticated link to peer is up. addr is where the peer can be
 * dialled (its listen address) when server is true; server says whether
 * the peer is a DHT server (from its HELLO, or the simulator's truth).
 */
void p2p_overlay_link_up(struct p2p_overlay *o, uint64_t now,
			 const struct p2p_peerid *peer,
			 const struct p2p_addr *addr, bool server,
			 bool outbound);
void p2p_overlay_link_down(struct p2p_overlay *o, uint64_t now,
			   const struct p2p_peerid *peer);
/* The peer closed its link to us on purpose (GOAWAY: a disconnect, a
 * shutdown): as link_down, and its entry is not dialled again before
 * the back-off of a failure, even if the link was too young to be one
 * we keep. A daemon would otherwise undo its peer's disconnect at its
 * next maintenance. */
void p2p_overlay_link_closed(struct p2p_overlay *o, uint64_t now,
			     const struct p2p_peerid *peer);
/* A DIAL action failed (refused, timed out, wrong ID). */
void p2p_overlay_dial_failed(struct p2p_overlay *o, uint64_t now,
			     const struct p2p_peerid *peer);

/*
 * An overlay message (FIND_NODE, NODES, ROUTED) arrived on the link from
 * peer. Returns 0, or -EPROTO / -EMSGSIZE / -EAGAIN (rate limited) when it
 * was dropped; the caller counts and may close the link on -EPROTO.
 */
/* Other message types are refused with -EPROTO and counted in bad_msgs. */
int p2p_overlay_recv(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *from, const struct p2p_msg *m);

/* Timers: call when now >= p2p_overlay_next_timer(). */
void p2p_overlay_tick(struct p2p_overlay *o, uint64_t now);
/* Absolute time of the next tick wanted, UINT64_MAX for none. */
uint64_t p2p_overlay_next_timer(const struct p2p_overlay *o);

/* ---- requests ---- */

/* A contact to consider (bootstrap, peer cache). May cause a DIAL. */
void p2p_overlay_add_contact(struct p2p_overlay *o, uint64_t now,
			     const struct p2p_peerid *id,
			     const struct p2p_addr *addr);

/* Join: look up our own ID, then refresh buckets. */
void p2p_overlay_bootstrap(struct p2p_overlay *o, uint64_t now);

/*
 * Lookup results (LOOKUP_DONE): contacts are the P2P_K nearest servers
 * that answered, nearest first; found says the target itself answered.
 * hops: a contact from our own table has depth 0, one first learned from
 * the NODES reply of a node of depth d has depth d + 1; hops is the depth
 * of the nearest result, the rounds of replies it took to learn of it.
 * -EBUSY when too many lookups run already (the overlay's own refreshes
 * count too), -EINVAL for a NULL target.
 */
/* Iterative lookup of target; LOOKUP_DONE with *id later. 0 or -errno. */
int p2p_overlay_lookup(struct p2p_overlay *o, uint64_t now,
		       const struct p2p_peerid *target, uint64_t *id);

/*
 * Route payload (len <= P2P_MSG_MAX - 128) to dst hop by hop; *msgid for
 * matching a later ROUTE_FAILED, which is reported only when the failure
 * comes back from the first hop (see route.c). Delivered locally when dst
 * is us. 0, -EMSGSIZE, -EHOSTUNREACH (no link at all), -EINVAL (app is
 * P2P_APP_ROUTE_FAIL).
 */
int p2p_overlay_route(struct p2p_overlay *o, uint64_t now,
		      const struct p2p_peerid *dst, uint8_t app,
		      const uint8_t *payload, size_t len, uint64_t *msgid);

/* ---- output ---- */

/*
 * Next action; false when there is none. Once it returns false the
 * overlay reuses (or frees) the memory of the actions handed out.
 */
/* Next action; false when there is none. */
bool p2p_overlay_poll(struct p2p_overlay *o, struct p2p_ov_action *a);

/* Up to max table entries closest to target, nearest first. */
size_t p2p_overlay_closest(const struct p2p_overlay *o,
			   const struct p2p_peerid *target,
			   struct p2p_contact *out, size_t max);

void p2p_overlay_get_stats(const struct p2p_overlay *o,
			   struct p2p_overlay_stats *st);

#endif
