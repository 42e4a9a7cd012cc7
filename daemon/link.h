/*
 * Links: one authenticated session to a peer over a transport, a TCP
 * connection of its own or a relay circuit (link_open_on). The link owns
 * the handshake, HELLO, PING/PONG keepalive, GOAWAY and the write queue;
 * every other message goes to the handler registered for its type with
 * the hub (node_on_msg), and its life to the link observers.
 *
 * Names: a link is named by its ID, a uint32_t that is never reused;
 * modules keep IDs and find the link with link_get(), which returns NULL
 * once the link is closing or gone. A struct link pointer handed to a
 * callback is valid for that call only.
 *
 * Teardown is deferred: link_close() and link_fail() (and a failing send)
 * only mark the link; after the current input the hub's after-input pass
 * announces it to the observers (gone) and closes its handle. Nothing is
 * freed inside a call, so callers never re-check after a send.
 */
#ifndef P2PD_LINK_H
#define P2PD_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "proto/addr.h"
#include "proto/msg.h"
#include "proto/peerid.h"

#define LINK_CLOSE_GRACE_MS 2000 /* wait for the peer to close after GOAWAY */
#define LINK_WQ_MAX (4u << 20)	 /* queued bytes before a link is cut */
/* harden9: a peer that does not read what we queue is not read either
 * (its requests would only queue more): reading stops over
 * LINK_WQ_READ_STOP and resumes at LINK_WQ_READ_RESUME. Over
 * LINK_WQ_TOTAL_MAX queued by all links, a link with more than
 * LINK_WQ_SHARE queued is cut when it writes. */
#define LINK_WQ_READ_STOP (2u << 20)
#define LINK_WQ_READ_RESUME (256u * 1024)
#define LINK_WQ_TOTAL_MAX (64u << 20)
#define LINK_WQ_SHARE (256u * 1024)
/* Records a loop turn queued are written together before the loop waits
 * (link_flush); once this many wait, at once: a turn that reads many
 * local buffers would otherwise fill the queue up to TUN_LINK_WQ_HIGH and
 * stop its tunnels' reading only to start it again after the flush. */
#define LINK_FLUSH_BYTES (256u * 1024)
/* Links that may keep a read chunk (BUFQ_CHUNK) for the start of a frame
 * between reads; past it, the start goes to the link's framer (a copy,
 * at most the frame's announced size), so that peers sending a few bytes
 * of a frame each cannot pin a chunk per link. */
#define LINK_READ_HELD_MAX 32

enum link_purpose {
	LP_OVERLAY,  /* overlay DIAL, inbound, or bootstrap by address */
	LP_DIALBACK, /* we dial a peer back to prove its reachability */
};

/* How the link reaches its peer: "overlay" (a plain dial or accept),
 * "direct" (made or met by hole punching), "relay" (over a circuit). */
enum link_kind {
	LINK_OVERLAY,
	LINK_DIRECT,
	LINK_RELAY,
};

/* The transport of a link that has no TCP connection of its own. */
struct link_transport {
	/* Bytes out; < 0 fails the link. */
	int (*write)(void *ctx, const uint8_t *data, size_t len);
	/* Bytes queued beneath (the tunnels' back-pressure). */
	size_t (*queued)(void *ctx);
	/* The link is gone: release ctx (called once, after gone). */
	void (*close)(void *ctx);
	/* Optional: room for a whole frame of up to cap bytes where it
	 * will go out (no copy), or NULL: then write() copies it from a
	 * scratch buffer. commit(ctx, n <= cap) follows, n 0 when the room
	 * goes unused; < 0 fails the link. Nothing else is written on the
	 * link in between. */
	uint8_t *(*reserve)(void *ctx, size_t cap);
	int (*commit)(void *ctx, size_t len);
};

struct link;

/* Set up the link table; registered hooks are link_after/link_next/... */
int link_module_init(struct p2pd_node *n);
/* The chunks links and tunnels queue bytes in (bufq.h). */
struct bufpool *link_bufpool(struct p2pd_node *n);
/* Free the link table (every link closed) and the pooled chunks. */
void link_module_free(struct p2pd_node *n);
/* Close every link now (shutdown): gone is announced, handles close. */
void link_close_all(struct p2pd_node *n);
/* Hub hooks (daemon.c registers them). */
bool link_after(void *n);
/* Writes what links queued (bufq.h); registered as the last hook so that
 * every record a turn produced leaves before the loop waits. */
bool link_flush(void *n);
uint64_t link_next(void *n);
void link_expire(void *n, uint64_t now);

/* Outbound links; NULL with *err set (-EMFILE over limits.max_links). */
struct link *link_dial(struct p2pd_node *n, const struct p2p_addr *addr,
		       const struct p2p_peerid *expect, enum link_purpose p,
		       int *err);
/* A hole punching attempt from the listen port of addr's family (the NAT
 * mapping is the point); ttl > 0: the SYN's IP TTL (a prime); lead: we
 * asked for the punch (linkfsm punch_lead). */
struct link *link_punch(struct p2pd_node *n, const struct p2p_addr *addr,
			const struct p2p_peerid *expect, int ttl, bool lead,
			int *err);
/* A link over a transport: the initiator expects peer; the responder
 * checks it once the handshake is done. */
struct link *link_open_on(struct p2pd_node *n, const struct link_transport *tr,
			  void *ctx, bool initiator,
			  const struct p2p_peerid *peer,
			  const struct p2p_addr *remote,
			  const struct p2p_addr *local);
/* Bytes from the transport of l, read on via (NULL: unknown). */
void link_input(struct link *l, const struct link *via, const uint8_t *data,
		size_t len);
/* A listener has a connection. */
int link_accept(struct p2pd_node *n, uv_stream_t *server);

uint32_t link_id(const struct link *l);
/* The peer reset the link (no GOAWAY): the ms it had been quiet before
 * what the reset answered (p2p_linkfsm_quiet_ms); 0 when it did not end
 * so. */
uint32_t link_reset_quiet_ms(const struct link *l);
/* Every link's keepalive from now on (core/keepalive.h), and new ones'. */
void link_set_keepalive(struct p2pd_node *n, uint32_t keepalive_ms);
/* One link's keepalive (core/keepalive.h, p2p_ka_for). */
void link_set_keepalive_of(struct link *l, uint32_t keepalive_ms);
/* A link_dial/link_punch error as text: -EMFILE (over limits.max_links)
 * is "too many links", not "too many open files". (harden9) */
const char *link_strerror(int err);
/* The link with that ID while it is usable (not closing, not gone). */
struct link *link_get(struct p2pd_node *n, uint32_t id);
/* Iterate over usable links: for (l = link_first(n); l; l = link_next_of(l)) */
struct link *link_first(struct p2pd_node *n);
struct link *link_next_of(struct link *l);
/* Links not closing (any state, dials included). */
size_t link_count(struct p2pd_node *n);
/* Links whose peer said HELLO on an overlay-purpose link. */
size_t link_count_up(struct p2pd_node *n);
/* The link to peer that said HELLO (the one "usable" test), of a kind in
 * kinds (a mask of 1 << enum link_kind); NULL if none. */
struct link *link_find_up(struct p2pd_node *n, const struct p2p_peerid *peer,
			  unsigned kinds);
#define LINK_KINDS_ALL                                                         \
	((1u << LINK_OVERLAY) | (1u << LINK_DIRECT) | (1u << LINK_RELAY))
#define LINK_KINDS_TCP ((1u << LINK_OVERLAY) | (1u << LINK_DIRECT))
/* A link to id being dialled, handshaking or up (overlay purpose). */
bool link_dialling(struct p2pd_node *n, const struct p2p_peerid *id);

/* Properties. */
bool link_is_up(const struct link *l);	     /* HELLO received, usable */
bool link_established(const struct link *l); /* handshake done, usable */
bool link_hello_rx(const struct link *l);    /* HELLO seen (even once gone) */
bool link_goaway_rx(const struct link *l);   /* the peer closed it: GOAWAY */
/* The address the peer says it sees us at (its HELLO). */
const struct p2p_addr *link_observed(const struct link *l);
bool link_outbound(const struct link *l);
enum link_kind link_kind(const struct link *l);
void link_set_kind(struct link *l, enum link_kind k);
enum link_purpose link_purpose(const struct link *l);
const struct p2p_peerid *link_peer(const struct link *l);   /* once up */
const struct p2p_peerid *link_expect(const struct link *l); /* or NULL */
const struct p2p_addr *link_remote(const struct link *l);
const struct p2p_addr *link_local(const struct link *l);
/* Where the peer can be dialled (HELLO), else its remote address. */
const struct p2p_addr *link_dial_addr(const struct link *l);
bool link_peer_server(const struct link *l);
/* The peer keeps per-circuit relay credit (HELLO, core/circuit.h). */
bool link_peer_relay_credit(const struct link *l);
/* The peer reads pass frames (HELLO, proto/msg.h RELAY_PASS). */
bool link_peer_relay_pass(const struct link *l);
double link_rtt(const struct link *l); /* < 0 until measured */
/* The record AEAD's name ("aes256-gcm", "chacha20-poly1305"), "none"
 * before the handshake is done. */
const char *link_cipher(const struct link *l);
size_t link_queued(const struct link *l);
/* The message being dispatched points into l's read chunk, where it stays
 * until the read's end (the read_done hook, node.h); otherwise it is gone
 * when the handler returns. */
bool link_input_held(const struct link *l);
/* Bytes of the link's stream (records and framing) in and out so far. */
uint64_t link_bytes_in(const struct link *l);
uint64_t link_bytes_out(const struct link *l);
/* node_now() when the link was made. */
uint64_t link_born(const struct link *l);
/* Users other than the overlay (tunnels, waiting requests). */
void link_hold(struct link *l);
void link_release(struct link *l);
unsigned link_users(const struct link *l);
/* LP_DIALBACK: the nonce our DIALBACK_OK carries. */
void link_set_dialback_nonce(struct link *l, uint64_t nonce);

/*
 * The data path without a copy: room for up to cap bytes of STREAM_DATA
 * (cap <= P2P_MSG_MAX - P2P_STREAM_DATA_HDR) inside a record set aside in
 * the link's queue, where a read from a local socket can land; NULL when
 * the link takes none now (not up, or its queue is over its limit: then
 * the link fails). link_data_commit(l, stream, len) makes the len bytes
 * there a STREAM_DATA record, sealed in place, and queues it (len 0: the
 * room goes unused). Nothing else may be sent on l in between.
 */
uint8_t *link_data_reserve(struct link *l, size_t cap);
int link_data_commit(struct link *l, uint32_t stream, size_t len);
/* RELAY_DATA as a pass frame (proto/msg.h RELAY_PASS): data[0..len)
 * (<= P2P_PASS_DATA_MAX) copied into the queue unsealed behind a sealed
 * head; only to a peer with link_peer_relay_pass(). 0 or -errno. */
int link_send_pass(struct link *l, uint32_t circ, const uint8_t *data,
		   size_t len);
/* The same with the data written in place: link_pass_reserve gives room
 * for len (<= P2P_PASS_DATA_MAX) data bytes behind a pass frame's head,
 * or NULL (not negotiated, l not up, its queue full: l failed); then
 * link_pass_commit with that pointer and n <= len seals the head (n 0:
 * the room goes unused); 0 or -errno, and a head that cannot be sealed
 * leaves l up, as link_send_pass does. Nothing else may be sent on l in
 * between. */
uint8_t *link_pass_reserve(struct link *l, size_t len);
int link_pass_commit(struct link *l, uint32_t circ, uint8_t *data, size_t len);
/* Send; 0 or -errno. A failure marks the link dead (gone comes later). */
int link_send_msg(struct link *l, const struct p2p_msg *m);
int link_send_raw(struct link *l, const uint8_t *msg, size_t len);
/* A keepalive PING now (its PONG measures the rtt). */
void link_ping(struct link *l);
/* Leave: GOAWAY when up, then wait for the peer to close (bounded); no
 * TIME_WAIT is left at either end (see link.c). */
void link_close(struct link *l, uint8_t code, const char *reason);
/* Drop at once (why: a static string for the logs and observers). */
void link_fail(struct link *l, const char *why);
/* The same, with a reset instead of a FIN: a punch attempt given up
 * leaves its four-tuple free for the next one. */
void link_abort(struct link *l, const char *why);
/* The transport's queue shrank: tell the observers. */
void link_writable(struct link *l);

#endif
