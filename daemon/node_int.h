/*
 * Internals of the node shared by node.c (lifecycle, listeners, overlay
 * wiring), link.c (one TCP link: handshake, HELLO, keepalive) and
 * node_cmd.c (control commands). Not a public interface.
 */
#ifndef P2PD_NODE_INT_H
#define P2PD_NODE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "control.h"
#include "nat/nat.h"
#include "node.h"
#include "overlay/overlay.h"
#include "peercache.h"
#include "proto/error.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/session.h"
#include "relaytab.h"
#include "tunnel.h"

#define NODE_TICK_MS 250	    /* housekeeping period (deadlines) */
#define NODE_CLOSE_GRACE_MS 2000    /* wait for the peer's EOF after GOAWAY */
#define NODE_LINK_WQ_MAX (4u << 20) /* queued bytes before a link is cut */
#define NODE_PEERCACHE_SAVE_MS 5000 /* debounce of peers.json writes */
#define NODE_BOOTSTRAP_TIMEOUT_MS 10000 /* `bootstrap` command */
#define NODE_PING_TIMEOUT_MS 5000	/* `ping` command */
#define NODE_LOOKUP_TIMEOUT_MS (P2P_LOOKUP_TIMEOUT_MS + 5000)
#define NODE_BADLOG_MS 10000 /* one bad-input line per peer per this */
#define NODE_BADLOG_SLOTS 64
#define NODE_DIALBACK_PER_S 4	 /* dial-backs we make per second */
#define NODE_DIALBACK_ASKS 3	 /* we ask a server link at most this */
#define NODE_REASK_MS 5000	 /* ... again after this, doubling */
#define NODE_REJOIN_MIN_MS 2000	 /* no links: first retry of joining */
#define NODE_REJOIN_MAX_MS 60000 /* ... backing off up to this */
#define RELAY_WQ_MAX (2u << 20)	 /* a circuit is cut beyond this */
#define RELAY_TRIES 8		 /* relays a dial asks in turn */

/* Defaults when the config leaves a limit at 0. */
#define NODE_DEF_MAX_LINKS 256
#define NODE_DEF_HANDSHAKE_MS 10000
#define NODE_DEF_KEEPALIVE_MS 25000
#define NODE_DEF_IDLE_MS 90000

enum link_state {
	LINK_CONNECTING, /* outbound TCP connect in progress */
	LINK_HANDSHAKE,	 /* session handshake frames */
	LINK_UP,	 /* established: HELLO, then messages */
	LINK_CLOSING,	 /* GOAWAY sent / handle closing */
};

enum link_purpose {
	LP_OVERLAY,  /* overlay DIAL, inbound, or bootstrap by address */
	LP_DIALBACK, /* we dial a peer back to prove its reachability */
};

struct link {
	struct link *next;
	struct p2pd_node *n;
	uv_tcp_t tcp;
	uv_connect_t conn;
	uv_shutdown_t shut;
	enum link_state state;
	enum link_purpose purpose;
	bool outbound;
	bool has_expect;
	bool hello_rx; /* peer's HELLO arrived: the link counts as UP */
	bool ov_up;    /* reported to the overlay with link_up */
	bool ov_dial;  /* opened for an overlay DIAL action */
	bool handle_closed;
	struct p2p_peerid expect;
	struct p2p_peerid peer; /* valid once the handshake is done */
	struct p2p_framer *fr;
	struct p2p_session *sess;
	struct p2p_addr local, remote;
	struct p2p_addr peer_dial; /* where the peer can be dialled (HELLO) */
	bool peer_server;
	uint64_t deadline; /* handshake deadline, or close grace */
	uint64_t last_rx, last_ping;
	uint64_t ping_nonce, ping_sent_hr; /* keepalive PING in flight */
	double rtt_ms;			   /* < 0 until measured */
	uint64_t dialback_nonce;	   /* LP_DIALBACK: nonce to send */
	bool dialback_busy;		   /* peer's DIALBACK being served */
	uint8_t dialback_asks;		   /* DIALBACKs we sent this peer */
	uint64_t dialback_next;		   /* ... the next not before */
	bool boot;			   /* dialled as a bootstrap address */
	size_t wq;			   /* bytes queued for writing */
	unsigned users;			   /* non-overlay users (tunnels) */
	const char *why;		   /* static reason for the close */
	/* Hole punching (punch.c): a link made by a punch, or accepted on
	 * our listener from the peer of a running punch, is "punched": shown
	 * as link "direct", kept when the overlay no longer needs it. */
	bool punched;
	struct punch *punch; /* the punch this attempt belongs to, or NULL */
	size_t punch_idx;    /* ... its candidate index */
	/* A relayed link (relay.c): its bytes travel as RELAY_DATA on via,
	 * circuit circ; shown as link "relay". relay_gone: the circuit is
	 * closed (or via is gone), nothing more to send on it. */
	bool relayed, relay_gone;
	struct link *via;
	uint32_t circ;
};

struct listener {
	struct p2pd_node *n;
	uv_tcp_t tcp;
	struct p2p_addr addr; /* actual bound address */
	bool open;
};

enum pend_kind {
	PEND_BOOTSTRAP,
	PEND_PING_DIRECT,
	PEND_PING_ROUTED,
	PEND_LOOKUP
};

/* A control request waiting for the network. */
struct pending {
	struct pending *next;
	enum pend_kind kind;
	struct ctl_req *req;
	uint64_t deadline;
	uint64_t key;	/* ping nonce, lookup id */
	uint64_t msgid; /* routed ping */
	uint64_t t0_hr;
	struct link *link; /* bootstrap, direct ping */
};

struct punch;

struct badlog {
	uint64_t last;
};

struct p2pd_node {
	uv_loop_t *loop;
	struct p2p_identity ident;
	char id_text[P2P_ID_TEXT_LEN + 1];
	struct p2pd_limits limits;
	char state_dir[PATH_MAX];
	struct p2p_overlay *ov;
	struct p2p_nat *nat;
	uv_timer_t ov_timer, tick;
	size_t nlisten;
	struct listener listeners[P2PD_MAX_LISTEN];
	struct link *links;
	struct pending *pend;
	struct peercache cache;
	uint64_t cache_saved;
	size_t nservices;
	struct p2pd_service *services; /* P2PD_MAX_SERVICES */
	bool server;		       /* reachability learned */
	bool bootstrapped;	       /* p2p_overlay_bootstrap called */
	bool draining;
	bool stopping;
	uint64_t start_ms;
	uint64_t dialback_window, dialback_count;
	uint64_t db_nonce; /* sent in our DIALBACK asks (0: none) */
	size_t nboot;
	struct p2p_addr boot[P2PD_MAX_BOOTSTRAP]; /* -b addresses */
	uint64_t rejoin_at, rejoin_ms; /* no links: retry joining then */
	unsigned open_handles;
	void (*done)(void *);
	void *done_arg;
	struct badlog badlog[NODE_BADLOG_SLOTS];
	struct tunnels tun;    /* tunnel.h */
	struct punch *punches; /* punch.c */
	struct {
		struct relay_tab tab;
		uint32_t next_id;
		uint64_t opened, bytes, unknown;
	} relay; /* relay.c: circuits we carry for others */
	uv_timer_t punch_timer;
	struct {
		uint64_t bad_frames, bad_msgs, unknown_msgs, hs_failed;
		uint64_t links_refused;
	} stats;
	uint8_t rbuf[64 * 1024];
	uint8_t mbuf[P2P_MSG_MAX + P2P_RECORD_OVERHEAD];
	uint8_t relay_buf[P2P_MSG_MAX]; /* link_relay_input */
};

/* node.c */
uint64_t node_now(struct p2pd_node *n);
void node_drain(struct p2pd_node *n); /* overlay actions, timer re-arm */
void node_handle_closed(struct p2pd_node *n);
void node_set_server(struct p2pd_node *n, const char *why);
void node_link_hello(struct p2pd_node *n, struct link *l,
		     const struct p2p_addr *observed, bool first);
void node_link_gone(struct p2pd_node *n, struct link *l, const char *why);
void node_deliver(struct p2pd_node *n, const struct p2p_ov_action *a);
void node_route_failed(struct p2pd_node *n, uint64_t msgid);
void node_lookup_done(struct p2pd_node *n, const struct p2p_ov_action *a);
void node_pong(struct p2pd_node *n, struct link *l, uint64_t nonce);
bool node_bad_input_log(struct p2pd_node *n, const struct p2p_addr *from);
void node_dialback_request(struct p2pd_node *n, struct link *l,
			   const struct p2p_msg *m);
void node_dialback_ok(struct p2pd_node *n, struct link *l, uint64_t nonce);
/* Housekeeping: ask again where a dial-back request may have been
 * dropped by a busy server (NODE_DIALBACK_PER_S). */
void node_dialback_tick(struct p2pd_node *n, uint64_t now);
void node_pending_fail_link(struct p2pd_node *n, struct link *l,
			    const char *why);
void node_pending_hello(struct p2pd_node *n, struct link *l);
size_t node_count_links(const struct p2pd_node *n);
struct link *node_find_up(struct p2pd_node *n, const struct p2p_peerid *id);
void node_fill_hello(struct p2pd_node *n, const struct link *l,
		     struct p2p_msg *m);
void node_pending_expire(struct p2pd_node *n, uint64_t now);
void node_pending_fail_all(struct p2pd_node *n);
/* The "peer" argument of a control request; on error the request is
 * answered (bad_request or invalid_peer_id) and -EINVAL returned. */
int node_arg_peer(struct ctl_req *req, json_t *args, struct p2p_peerid *id);

/* link.c */
struct link *link_dial(struct p2pd_node *n, const struct p2p_addr *addr,
		       const struct p2p_peerid *expect, enum link_purpose p,
		       int *err);
int link_accept(struct p2pd_node *n, uv_stream_t *server);
int link_send_msg(struct link *l, const struct p2p_msg *m);
int link_send_raw(struct link *l, const uint8_t *msg, size_t len);
void link_close(struct link *l, uint8_t code, const char *reason);
void link_destroy(struct link *l);
void link_tick(struct link *l, uint64_t now);
void link_ping(struct link *l);
const char *link_state_name(enum link_state s);
/* A hole punching attempt: connect from the listen port of addr's family
 * (never a fresh port: the NAT mapping is the point), expecting peer;
 * ttl > 0: the SYN's IP TTL (a prime, see nat/punch.h). */
struct link *link_punch(struct p2pd_node *n, const struct p2p_addr *addr,
			const struct p2p_peerid *expect, int ttl, int *err);

/* A relayed link over via (relay.c): the handshake's initiator expects
 * peer; the responder checks it once the handshake is done. */
struct link *link_new_relayed(struct p2pd_node *n, struct link *via,
			      uint32_t circ, bool initiator,
			      const struct p2p_peerid *peer);
void link_relay_input(struct link *l, const uint8_t *data, size_t len);

/* relay.c (RELAY_CIRC_PER_LINK also bounds our relayed links over one
 * link) */
void relay_on_msg(struct link *l, const struct p2p_msg *m);
void relay_link_gone(struct p2pd_node *n, struct link *l);
/* Ask the node at the other end of via to relay us to peer: *out is our
 * end of the circuit, handshaking. 0 or -errno. */
int relay_open(struct p2pd_node *n, struct link *via,
	       const struct p2p_peerid *peer, struct link **out);

/* punch.c */
void punch_init(struct p2pd_node *n);
void punch_close_all(struct p2pd_node *n);
/* Start punching towards peer (a tunnel dial needs it). 0 or -errno. */
int punch_start(struct p2pd_node *n, const struct p2p_peerid *peer,
		const char *context);
bool punch_running(struct p2pd_node *n, const struct p2p_peerid *peer);
void punch_deliver(struct p2pd_node *n, const struct p2p_ov_action *a);
bool punch_route_failed(struct p2pd_node *n, uint64_t msgid);
void punch_link_connected(struct p2pd_node *n, struct link *l);
void punch_link_hello(struct p2pd_node *n, struct link *l);
void punch_link_gone(struct p2pd_node *n, struct link *l, const char *why);

#endif
