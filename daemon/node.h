/*
 * The hub: the bottom of the daemon's services (daemon/README.md). It owns
 * what every layer shares (loop, identity, limits, listen addresses,
 * services, counters) and the registries through which events flow up:
 * message handlers by type, overlay application handlers, link observers,
 * clocks and after-input hooks. It calls nothing above it: everything it
 * calls was registered with it, in one place (daemon.c).
 *
 * Time: one libuv timer for the whole daemon. Each service registers
 * next() (its earliest deadline, UINT64_MAX for none) and expire(now);
 * the hub arms the timer for the minimum after every input.
 *
 * After-input hooks run once per loop iteration, before the loop waits
 * for I/O: links are reaped there (so teardown never happens inside a
 * call), the overlay's actions are carried out, completions are delivered
 * and the timer is re-armed.
 */
#ifndef P2PD_NODE_H
#define P2PD_NODE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "overlay/overlay.h"
#include "proto/addr.h"
#include "proto/error.h"
#include "proto/identity.h"
#include "proto/msg.h"

#define NODE_CLOCKS_MAX 12
#define NODE_AFTER_MAX 8
#define NODE_OBSERVERS_MAX 8
#define NODE_APPS_MAX 8
#define NODE_BADLOG_MS 10000 /* one bad-input line per peer per this */
#define NODE_BADLOG_SLOTS 64

/* Defaults when the config leaves a limit at 0. */
#define NODE_DEF_MAX_LINKS 256
#define NODE_DEF_HANDSHAKE_MS 10000
#define NODE_DEF_KEEPALIVE_MS 25000
#define NODE_DEF_IDLE_MS 90000

struct link;
/* Each service's state, owned and allocated by its module. */
struct links;
struct ovl;
struct punches;
struct relays;
struct reach;
struct tunnels;
struct cmd_node;
struct admit;
struct names; /* petnames (names.h), kept by daemon.c */
struct progress;
struct lan;	 /* LAN discovery (lan.h); NULL when off */
struct natdepth; /* how deep our NATs are (natdepth.h) */

struct listener {
	struct p2pd_node *n;
	uv_tcp_t tcp;
	struct p2p_addr addr; /* actual bound address */
	bool open;
};

typedef uint64_t (*node_next_fn)(void *arg);
typedef void (*node_expire_fn)(void *arg, uint64_t now);
/* An after-input hook: true when it did something (the pass repeats
 * until no hook does). */
typedef bool (*node_after_fn)(void *arg);

/* A handler of one message type, called by the link that read it. */
typedef void (*node_msg_fn)(void *arg, struct link *l, const struct p2p_msg *m);
enum {
	NODE_MSG_BEFORE_HELLO = 1, /* accepted before the peer's HELLO */
	NODE_MSG_ON_RELAYED = 2,   /* accepted on a relayed link */
};
struct node_msg_handler {
	node_msg_fn fn;
	void *arg;
	unsigned flags;
};

/* An overlay application (routed messages): delivered, or our message
 * could not be routed (msgid as returned by ovl_route). */
typedef void (*node_app_fn)(void *arg, const struct p2p_ov_action *a);
typedef void (*node_app_failed_fn)(void *arg, uint64_t msgid);

/*
 * Link events, in the order of a link's life. Every pointer is valid for
 * the call only: keep link_id(l), never l. gone comes after the input
 * that closed the link, never inside a call, exactly once per link that
 * was announced by link_new.
 */
struct node_link_hooks {
	void (*connected)(void *arg, struct link *l);	   /* TCP connected */
	void (*established)(void *arg, struct link *l);	   /* handshake done */
	void (*up)(void *arg, struct link *l, bool first); /* HELLO in */
	void (*gone)(void *arg, struct link *l, const char *why);
	void (*writable)(void *arg, struct link *l); /* its queue shrank */
	/* A read of l's is done: what its messages pointed to in l's read
	 * chunk (link_input_held) is about to go. */
	void (*read_done)(void *arg, struct link *l);
};

/* What we say in HELLO (the overlay fills it). */
typedef void (*node_hello_fn)(void *arg, const struct link *l,
			      struct p2p_msg *m);

struct node_stats {
	uint64_t bad_frames, bad_msgs, unknown_msgs, hs_failed;
	uint64_t links_refused;
	uint64_t bytes_in, bytes_out; /* every link's stream (link.c) */
	/* Relayed frames that came cut across pass frames: copied by the
	 * framer instead of opened in place (link.c, link_input). */
	uint64_t relay_frames_cut;
	/* Records of relayed links this node sealed straight behind a pass
	 * frame's head (placed) or through the scratch buffer, copied once
	 * (relay.c, end_commit and end_write). */
	uint64_t relay_records_placed, relay_records_copied;
};

struct p2pd_node {
	uv_loop_t *loop;
	struct p2p_identity ident;
	char id_text[P2P_ID_TEXT_LEN + 1];
	struct p2pd_limits limits;
	char state_dir[PATH_MAX];
	size_t nlisten;
	struct listener listeners[P2PD_MAX_LISTEN];
	size_t nservices;
	struct p2pd_service *services; /* P2PD_MAX_SERVICES */
	bool stopping;
	uint64_t start_ms;
	struct node_stats stats;

	/* Services' state (see the module of each). */
	struct links *links;
	struct ovl *ovl;
	struct punches *punch;
	struct relays *relay;
	struct reach *reach;
	struct tunnels *tun;
	struct cmd_node *cmd;
	struct admit *admit; /* unauthenticated inbound (admit.h) */
	struct names *names;
	struct progress *progress;
	struct lan *lan;
	struct natdepth *natdepth;
	struct portmap *pmap;

	/* Registries. */
	struct {
		node_next_fn next;
		node_expire_fn expire;
		void *arg;
	} clocks[NODE_CLOCKS_MAX];
	size_t nclocks;
	struct {
		node_after_fn fn;
		void *arg;
	} after[NODE_AFTER_MAX];
	size_t nafter;
	struct node_msg_handler msgs[256];
	struct {
		uint8_t app;
		node_app_fn deliver;
		node_app_failed_fn failed;
		void *arg;
	} apps[NODE_APPS_MAX];
	size_t napps;
	struct {
		const struct node_link_hooks *h;
		void *arg;
	} observers[NODE_OBSERVERS_MAX];
	size_t nobservers;
	node_hello_fn hello;
	void *hello_arg;

	/* The one timer, and the after-input pass. */
	uv_timer_t timer;
	uv_prepare_t prepare;
	uint64_t timer_at;
	bool in_after;
	unsigned open_handles;
	void (*done)(void *);
	void *done_arg;
	uint64_t badlog[NODE_BADLOG_SLOTS];
};

/* Set up the hub's own handles (timer, after-input pass). 0 or -errno. */
int node_init(struct p2pd_node *n, uv_loop_t *loop,
	      const struct p2pd_config *cfg, const struct p2p_identity *ident);
/* Close the hub's handles; done(arg) once every handle counted with
 * node_handle_opened is closed. */
void node_close(struct p2pd_node *n, void (*done)(void *), void *arg);
void node_handle_opened(struct p2pd_node *n);
void node_handle_closed(struct p2pd_node *n);

uint64_t node_now(const struct p2pd_node *n);

/* Registries. Each returns 0, or -ENOSPC when its table is full (a
 * programming error: the tables are sized for daemon.c's wiring). */
int node_clock(struct p2pd_node *n, node_next_fn next, node_expire_fn expire,
	       void *arg);
int node_after(struct p2pd_node *n, node_after_fn fn, void *arg);
int node_on_msg(struct p2pd_node *n, uint8_t type, unsigned flags,
		node_msg_fn fn, void *arg);
int node_on_app(struct p2pd_node *n, uint8_t app, node_app_fn deliver,
		node_app_failed_fn failed, void *arg);
int node_observe_links(struct p2pd_node *n, const struct node_link_hooks *h,
		       void *arg);
void node_set_hello(struct p2pd_node *n, node_hello_fn fn, void *arg);

/* Dispatch (called by the layer that has the event). */
const struct node_msg_handler *node_msg_handler(const struct p2pd_node *n,
						uint8_t type);
bool node_app_deliver(struct p2pd_node *n, const struct p2p_ov_action *a);
bool node_app_failed(struct p2pd_node *n, uint8_t app, uint64_t msgid);
void node_emit_connected(struct p2pd_node *n, struct link *l);
void node_emit_established(struct p2pd_node *n, struct link *l);
void node_emit_up(struct p2pd_node *n, struct link *l, bool first);
void node_emit_gone(struct p2pd_node *n, struct link *l, const char *why);
void node_emit_writable(struct p2pd_node *n, struct link *l);
void node_emit_read_done(struct p2pd_node *n, struct link *l);
void node_fill_hello(struct p2pd_node *n, const struct link *l,
		     struct p2p_msg *m);

/* Run the after-input hooks and re-arm the timer now (start-up, and
 * tests); the loop does it by itself before each wait. */
void node_settle(struct p2pd_node *n);

/* Earliest of the clocks' deadlines (UINT64_MAX: none). */
uint64_t node_next_deadline(struct p2pd_node *n);
/* Run every clock whose deadline is at or before now. */
void node_expire(struct p2pd_node *n, uint64_t now);

/* One bad-input log line per remote IP per NODE_BADLOG_MS. */
bool node_bad_input_log(struct p2pd_node *n, const struct p2p_addr *from);

/* Our listen port of a family (0: none). */
uint16_t node_listen_port(const struct p2pd_node *n, uint8_t family);

#endif
