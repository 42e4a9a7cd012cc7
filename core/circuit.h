/*
 * Relay circuits, sans-I/O (SPEC 7): the circuit table a relay carries and
 * every decision daemon/relay.c takes on RELAY_OPEN, RELAY_DATA and
 * RELAY_CLOSE, and when a link goes away. Tested on its own with no
 * sockets (tests/core/test_circuit.c).
 *
 * A circuit joins two links, each end named by (link ID, circuit ID on
 * that link). Link IDs are the caller's: uint32_t, never 0, never reused.
 * Whoever opens a circuit on a link picks its ID, odd when it initiated
 * the link, even otherwise, so both ends can open.
 *
 * Our own ends of circuits (the transports of relayed links) belong to
 * the caller; what the core needs to know of them and of the links it
 * asks through a small query struct (struct p2p_circuit_query), filled by
 * the caller with functions over its own tables: no pointers into the
 * caller's objects.
 *
 * The rules for the caller:
 *  - after every event, poll until p2p_circuit_poll() returns false and
 *    carry out each action; an action's data and text point into the
 *    event's arguments (or static strings) and live until the next event;
 *  - an event finds room for every action it may queue, or returns
 *    -ENOBUFS and changes nothing (only when the caller did not drain).
 *
 * Memory is bounded: RELAY_CIRC_MAX circuits, RELAY_CIRC_PER_LINK opened
 * by one peer, a fixed action queue. No globals.
 */
#ifndef P2P_CORE_CIRCUIT_H
#define P2P_CORE_CIRCUIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/peerid.h"

#define RELAY_CIRC_MAX 256	/* circuits one node relays */
#define RELAY_CIRC_PER_LINK 16	/* ... opened by one peer (end a); our ends */
#define RELAY_WQ_MAX (2u << 20) /* a circuit is cut beyond this */
#define RELAY_ID_TRIES 8	/* fresh circuit IDs tried before -EBUSY */
/* Actions one event may queue: a link gone closes every circuit. */
#define P2P_CIRCUIT_QUEUE_MAX (RELAY_CIRC_MAX + 2)

/* ---- the table: pure bookkeeping ---- */

struct relay_circ {
	struct relay_circ *next;
	uint32_t a, b;	 /* a: the requester's link, b: the target's */
	uint32_t ca, cb; /* the circuit's ID on a and on b */
};

struct relay_tab {
	struct relay_circ *circs;
	unsigned n;
};

/* Is circuit ID c in use on link l (either end)? */
bool relay_tab_used(const struct relay_tab *t, uint32_t l, uint32_t c);

/*
 * Add a circuit. 0, -EBUSY over RELAY_CIRC_MAX or RELAY_CIRC_PER_LINK
 * (circuits with end a), -EEXIST if either ID is in use on its link,
 * -EINVAL when a == b, -ENOMEM.
 */
int relay_tab_add(struct relay_tab *t, uint32_t a, uint32_t ca, uint32_t b,
		  uint32_t cb) __attribute__((warn_unused_result));

/* The circuit with end (l, c), and its other end; NULL if none. */
struct relay_circ *relay_tab_find(const struct relay_tab *t, uint32_t l,
				  uint32_t c, uint32_t *other, uint32_t *oc);

/* Some circuit with an end on l, or NULL. */
struct relay_circ *relay_tab_on(const struct relay_tab *t, uint32_t l);

void relay_tab_del(struct relay_tab *t, struct relay_circ *r);
void relay_tab_clear(struct relay_tab *t);

/* ---- the decisions ---- */

/* What the core asks the caller. arg is passed back to each. */
struct p2p_circuit_query {
	/* The direct (not relayed) link up to peer; 0: none. */
	uint32_t (*link_to)(void *arg, const struct p2p_peerid *peer);
	/* We initiated link: the circuit IDs we pick on it are odd. */
	bool (*outbound)(void *arg, uint32_t link);
	/* Bytes in link's write queue; SIZE_MAX when the link is gone. */
	size_t (*queued)(void *arg, uint32_t link);
	/* circ is the ID of one of our own ends on link (closed or not). */
	bool (*is_end)(void *arg, uint32_t link, uint32_t circ);
	/* Our ends on link whose circuit is not closed. */
	unsigned (*ends)(void *arg, uint32_t link);
	/* No room for one more link (the node's link limit). */
	bool (*links_full)(void *arg);
	void *arg;
};

enum p2p_circuit_action_type {
	/* Send RELAY_OPEN (INCOMING, peer: the requester) with circ on link. */
	P2P_CIRCUIT_SEND_OPEN,
	/* Send RELAY_CLOSE with circ and the reason text[0..len) on link (a
	 * link that is gone: nothing to send). */
	P2P_CIRCUIT_SEND_CLOSE,
	/* Send RELAY_DATA data[0..len) with circ on link (we relay it). */
	P2P_CIRCUIT_FORWARD,
	/* Open our end of circuit circ on link: peer reaches us through it.
	 * If that fails, the caller closes the circuit itself. */
	P2P_CIRCUIT_ACCEPT,
	/* data[0..len) for our end (link, circ). */
	P2P_CIRCUIT_END_DATA,
	/* The relay closed our end (link, circ); text[0..len): its reason. */
	P2P_CIRCUIT_END_CLOSED,
};

/* Why a SEND_CLOSE, for the caller's counters and logs. */
enum p2p_circuit_note {
	P2P_CIRCUIT_N_NONE,
	P2P_CIRCUIT_N_BAD_ID,	  /* the peer picked an ID of our parity */
	P2P_CIRCUIT_N_REFUSED,	  /* an incoming end over the limits */
	P2P_CIRCUIT_N_QUEUE_FULL, /* the first of a cut circuit's closes */
};

struct p2p_circuit_action {
	enum p2p_circuit_action_type type;
	uint32_t link, circ;
	struct p2p_peerid peer;	    /* SEND_OPEN, ACCEPT */
	const uint8_t *data;	    /* FORWARD, END_DATA */
	const char *text;	    /* SEND_CLOSE, END_CLOSED: not terminated */
	size_t len;		    /* of data or text */
	enum p2p_circuit_note note; /* SEND_CLOSE */
};

struct p2p_circuit_stats {
	unsigned circuits;		 /* carried now */
	uint64_t opened, bytes, unknown; /* unknown: DATA/CLOSE, no circuit */
};

struct p2p_circuit;

/* NULL when out of memory. q is copied. */
struct p2p_circuit *p2p_circuit_new(const struct p2p_circuit_query *q);
void p2p_circuit_free(struct p2p_circuit *c);

/*
 * RELAY_OPEN received on link with circuit circ. incoming: the INCOMING
 * flag (a relay offers us a circuit from peer); else the sender asks us
 * to relay it to peer, and from is the sender's ID. 0 or -ENOBUFS.
 */
int p2p_circuit_on_open(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			bool incoming, const struct p2p_peerid *peer,
			const struct p2p_peerid *from)
    __attribute__((warn_unused_result));
/* RELAY_DATA received on link for circ. 0 or -ENOBUFS. */
int p2p_circuit_on_data(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
/* RELAY_CLOSE received on link for circ, reason[0..len). 0 or -ENOBUFS. */
int p2p_circuit_on_close(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			 const char *reason, size_t len)
    __attribute__((warn_unused_result));
/* link is gone: every circuit on it ends, the other end is told. 0 or
 * -ENOBUFS. (Our own ends on it are the caller's.) */
int p2p_circuit_link_gone(struct p2p_circuit *c, uint32_t link)
    __attribute__((warn_unused_result));

/*
 * We open a circuit on via (to ask the node there to relay us): a fresh
 * ID of our parity in *circ. 0, -EBUSY (RELAY_CIRC_PER_LINK ends on via,
 * or no free ID), -EMFILE (links_full).
 */
int p2p_circuit_pick(struct p2p_circuit *c, uint32_t via, uint32_t *circ)
    __attribute__((warn_unused_result));

/* The next action; false when there is none. */
bool p2p_circuit_poll(struct p2p_circuit *c, struct p2p_circuit_action *a);

void p2p_circuit_get_stats(const struct p2p_circuit *c,
			   struct p2p_circuit_stats *st);

#endif
