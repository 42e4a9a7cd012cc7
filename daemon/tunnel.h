/*
 * Tunnels (SPEC section 7 "Tunnels"): byte streams between a local socket
 * and a peer's exposed service, multiplexed over the one authenticated
 * link to that peer with STREAM_* messages. tunnel.c is the libuv glue of
 * the stream core (stream.h); reach.h gets a link to a peer;
 * tunnel_target.c serves a peer's STREAM_OPEN (access checks, connecting
 * to the service); tunnel_cmd.c holds the control commands open, connect,
 * forward, unforward, forwards, and the forward listeners.
 *
 * The hub calls the hooks below, as daemon.c registered them.
 */
#ifndef P2PD_TUNNEL_H
#define P2PD_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "link.h"
#include "node.h"
#include "proto/msg.h"
#include "core/stream.h"

#define TUN_MAX 1024		      /* tunnels in one daemon */
#define TUN_MAX_PER_LINK 256	      /* streams on one link */
#define TUN_OPEN_TIMEOUT_MS 15000     /* OPEN without ACCEPT/RESET */
#define TUN_DIAL_TIMEOUT_MS 20000     /* lookup + dial + handshake */
#define TUN_LINK_WQ_HIGH (1u << 20)   /* stop reading local sockets */
#define TUN_LINK_WQ_LOW (256u * 1024) /* ... resume below this */
#define TUN_MAX_FORWARDS 64
#define TUN_REFUSED_LOG_MS 1000 /* one line about refused opens per this */
/*
 * Tunnels peers open to our services (issue 9): each peer ID has a memory
 * budget, TUN_PEER_MEM, which is what its streams can pin at most
 * (STREAM_WINDOW each, see stream.h; windows that grow are charged to the
 * link's and the daemon's growth budgets on top, STREAM_BUDGET_LINK and
 * STREAM_BUDGET_DAEMON), hence at most TUN_MAX_PER_PEER of them; and peers
 * together leave TUN_LOCAL_RESERVE tunnels to our own clients (open,
 * forward, connect). All peers' streams together take their base windows
 * from STREAM_BUDGET_BASE, down to STREAM_WINDOW_FLOOR when it is spent
 * (stream.h), which bounds what peers can pin daemon-wide.
 */
#define TUN_PEER_MEM (16u << 20)
#define TUN_MAX_PER_PEER (TUN_PEER_MEM / STREAM_WINDOW) /* 64 */
#define TUN_LOCAL_RESERVE 256
#define TUN_PEER_LOG_MS 10000 /* one tunnel log line per peer per this */
#define TUN_PEER_LOG_SLOTS 64

int tunnel_module_init(struct p2pd_node *n);
/* Shutdown: close every forward and tunnel, fail every waiting request. */
void tunnel_stop(struct p2pd_node *n);
void tunnel_free(struct p2pd_node *n);

/* Hub hooks (daemon.c registers them). */
void tunnel_on_msg(void *n, struct link *l, const struct p2p_msg *m);
uint64_t tunnel_next(void *n);
void tunnel_expire(void *n, uint64_t now);
extern const struct node_link_hooks tunnel_link_hooks;
/* A progress observer (progress.h): steps to the connect and open
 * requests that asked for them. */
void tunnel_on_progress(void *n, const struct p2p_peerid *peer,
			const char *stage, const char *detail);

/*
 * Runtime changes kept in STATE_DIR/runtime.json (tunnel_state.c):
 * services made by expose and forwards made by forward.
 */
#define TUN_RUNTIME_FILE "runtime.json"
/* Write it now, after a change. 0, or -errno (logged). */
int tun_runtime_save(struct p2pd_node *n);
/* At start: the config file's forwards, then runtime.json's services
 * (over the config file's of the same name) and forwards. Whatever cannot
 * be put back is a warning. */
void tunnel_restore(struct p2pd_node *n, const struct p2pd_config *cfg);

/* Control commands (tunnel_cmd.c): open, connect, forward, unforward,
 * forwards, tunnels; handlers take the node as ctx. */
extern const struct ctl_command tunnel_commands[];
extern const size_t tunnel_ncommands;
/* Tunnels not yet closed. */
size_t tunnel_count(struct p2pd_node *n);
/* Tunnels that stopped reading their local socket: their link's queue is
 * full, or a relayed link's circuit is out of credit (relay.c). */
size_t tunnel_blocked(struct p2pd_node *n);

/* What tunnels hold or may hold in memory (issue 10's budgets), for
 * metrics: bytes received for local sockets that have not taken them
 * yet, the receive windows granted (what peers may make us hold), the
 * windows' growth charged to STREAM_BUDGET_DAEMON, the base windows of
 * streams peers opened charged to STREAM_BUDGET_BASE, and how many of
 * those got less than STREAM_WINDOW because it was spent. */
struct tunnel_mem {
	uint64_t buffered;
	uint64_t windows;
	uint64_t grown;
	uint64_t base;
	uint64_t base_small;
};
void tunnel_mem(struct p2pd_node *n, struct tunnel_mem *m);

#endif
