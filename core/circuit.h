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
 * on one link, a fixed action queue, RELAY_PEERS_MAX requester records.
 * No globals, no clock: events that need the time take now (ms, any
 * monotonic origin), and p2p_circuit_next()/p2p_circuit_expire() are the
 * core's deadlines.
 *
 * Capture (issue 9): one host must not fill a relay. The requester of a
 * circuit (the peer on end a) is limited per peer ID, per source IP and
 * per /24 (IPv4) or /48 (IPv6) of its link's observed address, besides
 * the per-link and total limits; each refusal names the limit in the
 * RELAY_CLOSE reason. A circuit must carry a completed end-to-end
 * handshake within RELAY_HS_MS, keep both directions in use (RELAY_IDLE_MS)
 * and stay within its byte budget, and a requester within its own over
 * all its circuits (below: paced, not cut, where the ends keep credit).
 */
#ifndef P2P_CORE_CIRCUIT_H
#define P2P_CORE_CIRCUIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/peerid.h"

#include "proto/addr.h"

#define RELAY_CIRC_MAX 256     /* circuits one node relays */
#define RELAY_CIRC_PER_LINK 16 /* ... opened on one link (end a); our ends */
#define RELAY_CIRC_PER_PEER 16 /* ... requested by one peer ID, all links */
#define RELAY_CIRC_PER_IP 32   /* ... by requesters at one IP */
#define RELAY_CIRC_PER_NET 64  /* ... by requesters in one /24 or /48 */
/* A circuit whose source end keeps no credit (an older peer) is cut when
 * its outgoing link's write queue is over this. */
#define RELAY_WQ_MAX (2u << 20)
#define RELAY_ID_TRIES 8 /* fresh circuit IDs tried before -EBUSY */
/*
 * Time and bytes. RELAY_HS_MS: from RELAY_OPEN to a completed end-to-end
 * handshake (see circuit.c, "handshake seen"); an honest one takes two
 * round trips between the ends, and the ends' own link handshake timeout
 * (NODE_DEF_HANDSHAKE_MS, 10 s) starts at the same time. RELAY_IDLE_MS:
 * each direction must carry something this often; the ends keep their
 * links alive with a PING every 25 s and drop them after 90 s of silence
 * (NODE_DEF_KEEPALIVE_MS, NODE_DEF_IDLE_MS), so a live relayed link is
 * never idle that long.
 */
#define RELAY_HS_MS 5000
#define RELAY_IDLE_MS 120000
/*
 * Byte budgets: a bucket per circuit (RELAY_CIRC_BYTES, both ways) and
 * one per requester over all its circuits (RELAY_PEER_BYTES). Relayed
 * bytes fill both; both drain at RELAY_PACE_BPMS, RELAY_PEER_BYTES per
 * RELAY_PEER_WINDOW_MS (4 GiB an hour: 1.19 MB/s, 9.5 Mbit/s). While
 * either is full, a direction whose source keeps credit gets none back
 * (RELAY_CREDIT below), so its circuit goes on at the drain rate: a long
 * relayed transfer slows down past the budget instead of being reset.
 * The bytes past a full bucket are bounded by the credit the ends hold.
 * A source without credit cannot be slowed: its circuit is cut. A
 * requester whose own bucket is full gets no new circuit (each would
 * bring fresh credit, bytes past the budget).
 */
#define RELAY_CIRC_BYTES (1ull << 30)	    /* burst, one circuit */
#define RELAY_PEER_BYTES (4ull << 30)	    /* burst, one requester */
#define RELAY_PEER_WINDOW_MS (3600 * 1000u) /* refills RELAY_PEER_BYTES */
#define RELAY_PACE_BPMS (RELAY_PEER_BYTES / RELAY_PEER_WINDOW_MS) /* B/ms */
#define RELAY_PEERS_MAX RELAY_CIRC_MAX /* requester records kept */
/*
 * Per-circuit credit (issue 10). Each end that keeps credit (its HELLO
 * has P2P_HELLO_RELAY_CREDIT, and so has the relay's) may have at most
 * RELAY_CREDIT bytes of RELAY_DATA payload on a circuit that the relay
 * has not yet written out on the circuit's other link; it starts with
 * all of it when the circuit opens and gets it back in RELAY_CREDIT
 * messages as the relay's write queue towards the other end drains
 * (handed to the kernel), in batches of at least RELAY_CREDIT_BATCH.
 * A busy or stalled circuit thus holds at most RELAY_CREDIT queued at
 * the relay per direction and waits at its source (whose relayed link's
 * queue stalls its tunnels) instead of being cut; the relay never stops
 * reading a link for one circuit, so the others and the overlay on the
 * same links go on. An end that sends beyond its credit breaks the
 * protocol: that circuit (only) is closed.
 *
 * RELAY_CREDIT is a window per circuit and direction: a relayed stream
 * gets at most RELAY_CREDIT per round trip between its source and the
 * relay (1 MiB: 84 Mbit/s at 100 ms, far more on a LAN), however big the
 * end-to-end stream windows (no longer capped for relayed links,
 * core/stream.h). It stays under the relay's own per-link queue limits
 * (LINK_WQ_READ_STOP 2 MiB, LINK_WQ_MAX 4 MiB, daemon/link.h), so one
 * circuit alone never makes the relay stop reading or cut a link.
 * RELAY_CREDIT_TOTAL is what all circuits may hold queued at a relay
 * (512 MiB; the relay's LINK_WQ_TOTAL_MAX cuts the most loaded links
 * well before that).
 */
#define RELAY_CREDIT (1u << 20)
#define RELAY_CREDIT_BATCH (RELAY_CREDIT / 8) /* smallest credit returned */
#define RELAY_CREDIT_TOTAL ((uint64_t)RELAY_CIRC_MAX * 2 * RELAY_CREDIT)
/* Positions remembered per circuit and direction to return credit as
 * its bytes leave: more are merged into the last (returned later). */
#define RELAY_CREDIT_MARKS 8

/* Actions one event may queue: a link gone closes every circuit. */
#define P2P_CIRCUIT_QUEUE_MAX (RELAY_CIRC_MAX + 2)

/* ---- the table: pure bookkeeping ---- */

/* One direction of a circuit at the relay: payload from its source not
 * yet returned as credit, and where in the outgoing link's byte stream
 * it ends (returned once the link has written that far). */
struct relay_dir {
	bool credited;	  /* the source end keeps credit */
	uint32_t held;	  /* received, credit not yet returned */
	uint32_t written; /* of held: written out, not yet returned */
	uint8_t nmarks;
	struct {
		uint64_t end;	/* the outgoing link's position past it */
		uint32_t bytes; /* payload bytes up to there */
	} marks[RELAY_CREDIT_MARKS];
};

struct relay_circ {
	struct relay_circ *next;
	uint32_t a, b;	 /* a: the requester's link, b: the target's */
	uint32_t ca, cb; /* the circuit's ID on a and on b */
	/* What the decisions keep (zero when only the table is used). */
	struct p2p_peerid from; /* the requester */
	uint16_t peer; /* its record's index + 1 (kept while it has circuits) */
	struct p2p_addr addr;	       /* its link's remote address */
	uint64_t born, last_a, last_b; /* ms: opened, last data from a, b */
	uint64_t bytes, bytes_at;      /* the budget's bucket, drained to */
	uint64_t pace_until;	       /* ms: credit held back; 0: none */
	uint8_t runs;		       /* direction changes seen, up to 4 */
	uint8_t last_dir;	       /* 0 none, 1 from a, 2 from b */
	struct relay_dir dir[2];       /* [0]: a to b, [1]: b to a */
	/* The decisions' list of circuits with credit to return (a mark in
	 * either direction): what p2p_circuit_on_sent() walks. */
	struct relay_circ *mnext;
	bool marked;
};

/* The index (issue 10): each circuit under both its ends, (link, ID),
 * so that a relayed frame finds its circuit in a probe or two rather than
 * in a walk over every circuit the relay carries. Open addressing with
 * linear probing, at most half full; zeroed is empty. IDs are picked by
 * peers, so a probe run is bounded only by the table's size: no worse
 * than the walk it replaces. */
#define RELAY_TAB_SLOTS (4 * RELAY_CIRC_MAX) /* a power of two */

struct relay_tab {
	struct relay_circ *circs;
	unsigned n;
	struct {
		struct relay_circ *r; /* NULL: free */
		uint8_t end;	      /* 0: (a, ca), 1: (b, cb) */
	} slot[RELAY_TAB_SLOTS];
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
	/* link's remote (observed) address into *out; false if unknown (all
	 * unknown addresses then count as one). NULL: always unknown. */
	bool (*remote)(void *arg, uint32_t link, struct p2p_addr *out);
	/* link's peer keeps per-circuit credit (its HELLO said so). NULL:
	 * none does (every circuit is cut at RELAY_WQ_MAX instead). */
	bool (*credit)(void *arg, uint32_t link);
	/* Bytes ever queued on link (its position); the caller reports what
	 * was written with p2p_circuit_on_sent(). Needed with credit. */
	uint64_t (*out_pos)(void *arg, uint32_t link);
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
	/* Send RELAY_CREDIT with circ and credit len on link. */
	P2P_CIRCUIT_SEND_CREDIT,
	/* The relay returned credit len to our end (link, circ). */
	P2P_CIRCUIT_END_CREDIT,
};

/* Why a SEND_CLOSE, for the caller's counters and logs. */
enum p2p_circuit_note {
	P2P_CIRCUIT_N_NONE,
	P2P_CIRCUIT_N_BAD_ID,	  /* the peer picked an ID of our parity */
	P2P_CIRCUIT_N_REFUSED,	  /* an incoming end over the limits */
	P2P_CIRCUIT_N_QUEUE_FULL, /* the first of a cut circuit's closes */
	P2P_CIRCUIT_N_LIMIT,	  /* a request over a requester limit */
	P2P_CIRCUIT_N_EXPIRED,	  /* the first close of a circuit past a
				     deadline or over a budget */
	P2P_CIRCUIT_N_CREDIT,	  /* the first close of a circuit whose end
				     sent beyond its credit */
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
	/* Requests refused: per peer ID, per IP, per /24 or /48, per link or
	 * in total, over the requester's byte budget. */
	uint64_t refused_peer, refused_ip, refused_net, refused_busy,
	    refused_budget;
	/* Circuits closed: no handshake in time, idle, over a byte budget
	 * (an end without credit). paced: credit held back for a budget. */
	uint64_t closed_hs, closed_idle, closed_budget, paced;
	/* Cut: queue over RELAY_WQ_MAX (an end without credit), an end over
	 * its credit. credit_sent: RELAY_CREDIT messages. */
	uint64_t closed_queue, closed_credit, credit_sent;
};

struct p2p_circuit;

/* NULL when out of memory. q is copied. */
struct p2p_circuit *p2p_circuit_new(const struct p2p_circuit_query *q);
void p2p_circuit_free(struct p2p_circuit *c);

/*
 * RELAY_OPEN received on link with circuit circ at now. incoming: the
 * INCOMING flag (a relay offers us a circuit from peer); else the sender
 * asks us to relay it to peer, and from is the sender's ID. 0 or -ENOBUFS.
 */
int p2p_circuit_on_open(struct p2p_circuit *c, uint64_t now, uint32_t link,
			uint32_t circ, bool incoming,
			const struct p2p_peerid *peer,
			const struct p2p_peerid *from)
    __attribute__((warn_unused_result));
/* RELAY_DATA received on link for circ at now. 0 or -ENOBUFS. */
int p2p_circuit_on_data(struct p2p_circuit *c, uint64_t now, uint32_t link,
			uint32_t circ, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
/* RELAY_CLOSE received on link for circ, reason[0..len). 0 or -ENOBUFS. */
int p2p_circuit_on_close(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			 const char *reason, size_t len)
    __attribute__((warn_unused_result));
/* RELAY_CREDIT received on link for circ: for one of our ends, an
 * END_CREDIT; anything else is counted as unknown. 0 or -ENOBUFS. */
int p2p_circuit_on_credit(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			  uint32_t credit) __attribute__((warn_unused_result));
/* link has written (handed to the kernel) everything up to position sent
 * (see out_pos) at now: credit goes back to the sources of its circuits'
 * bytes, SEND_CREDIT each, unless a byte budget holds it back until
 * p2p_circuit_next(). 0 or -ENOBUFS. */
int p2p_circuit_on_sent(struct p2p_circuit *c, uint64_t now, uint32_t link,
			uint64_t sent) __attribute__((warn_unused_result));
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

/* The earliest deadline of a circuit we relay (ms), or when credit held
 * back for a budget may go; UINT64_MAX: none. Kept as circuits change,
 * so a call costs a walk over the circuits only after the one holding
 * the earliest moved later or went (the hub asks after every event). */
uint64_t p2p_circuit_next(struct p2p_circuit *c);
/*
 * Close every circuit past a deadline at now: both ends get a RELAY_CLOSE
 * with the reason; return the credit held back for a budget that has
 * drained since. Stops while the queue has no room for four actions (the
 * caller drains, p2p_circuit_next() is then still <= now, and it calls
 * again).
 */
void p2p_circuit_expire(struct p2p_circuit *c, uint64_t now);

/* The next action; false when there is none. */
bool p2p_circuit_poll(struct p2p_circuit *c, struct p2p_circuit_action *a);

void p2p_circuit_get_stats(const struct p2p_circuit *c,
			   struct p2p_circuit_stats *st);

/* ---- our ends' credit ---- */

/* What one of our ends may still send on its circuit (starts full). */
struct relay_credit {
	uint32_t avail;
};

void relay_credit_init(struct relay_credit *cr);
/* want bytes, one whole frame of the relayed link, may go now: true
 * (spent), or false and nothing spent. Whole frames only, so that each
 * pass frame carries one record, which the far end opens where it lies
 * (daemon/link.c, link_input); a frame always fits in the credit. */
bool relay_credit_take(struct relay_credit *cr, size_t want);
/* Whether want bytes may go now (nothing spent). */
bool relay_credit_can(const struct relay_credit *cr, size_t want);
/* The relay returned n: 0, or -EPROTO when it returns more than we spent
 * (the end then closes the circuit). */
int relay_credit_give(struct relay_credit *cr, uint32_t n)
    __attribute__((warn_unused_result));

#endif
