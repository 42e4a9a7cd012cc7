/*
 * Tunnels (SPEC section 7 "Tunnels"): byte streams between a local socket
 * and a peer's exposed service, multiplexed over the one authenticated
 * link to that peer with STREAM_* messages. tunnel.c is the libuv glue of
 * the stream core (stream.h); tunnel_link.c gets a link to a peer (an
 * existing one, else lookup + dial); tunnel_target.c serves a peer's
 * STREAM_OPEN (access checks, connecting to the service); tunnel_cmd.c
 * holds the control commands open, connect, forward, unforward, forwards.
 *
 * The node calls the hooks below; struct tunnels lives inside the node.
 */
#ifndef P2PD_TUNNEL_H
#define P2PD_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "overlay/overlay.h"
#include "proto/msg.h"
#include "stream.h"

#define TUN_MAX 1024		      /* tunnels in one daemon */
#define TUN_MAX_PER_LINK 256	      /* streams on one link */
#define TUN_OPEN_TIMEOUT_MS 15000     /* OPEN without ACCEPT/RESET */
#define TUN_DIAL_TIMEOUT_MS 20000     /* lookup + dial + handshake */
#define TUN_LINK_WQ_HIGH (1u << 20)   /* stop reading local sockets */
#define TUN_LINK_WQ_LOW (256u * 1024) /* ... resume below this */
#define TUN_MAX_FORWARDS 64
#define TUN_REFUSED_LOG_MS 1000 /* one line about refused opens per this */

struct p2pd_node;
struct link;
struct tun;
struct fwd;
struct tun_dial;

struct tunnels {
	struct tun *list; /* every tunnel not yet closed */
	size_t count;
	struct fwd *fwds;
	struct tun_dial *dials;
	uint32_t next_id;
	unsigned blocked;     /* tunnels waiting for a link's queue to drain */
	uint64_t refused_log; /* rate limit of refusal log lines */
	uint8_t rbuf[STREAM_CHUNK];
};

/* link.c: STREAM_* message in. */
void tunnel_on_msg(struct link *l, const struct p2p_msg *m);
/* link.c: a write on l completed (its queue shrank). */
void tunnel_link_written(struct link *l);
/* node_cmd.c hooks: a link said its first HELLO / is going away. */
void tunnel_link_hello(struct p2pd_node *n, struct link *l);
void tunnel_link_gone(struct p2pd_node *n, struct link *l, const char *why);
/* An overlay lookup finished: true when it was one of ours. */
bool tunnel_lookup_done(struct p2pd_node *n, const struct p2p_ov_action *a);
/* Housekeeping: deadlines. */
void tunnel_expire(struct p2pd_node *n, uint64_t now);
/* Shutdown: close every forward and tunnel, fail every waiting request. */
void tunnel_stop_all(struct p2pd_node *n);

/* Control commands (tunnel_cmd.c). */
void tunnel_cmd_open(void *ctx, struct ctl_req *req, json_t *args);
void tunnel_cmd_connect(void *ctx, struct ctl_req *req, json_t *args);
void tunnel_cmd_forward(void *ctx, struct ctl_req *req, json_t *args);
void tunnel_cmd_unforward(void *ctx, struct ctl_req *req, json_t *args);
void tunnel_cmd_forwards(void *ctx, struct ctl_req *req, json_t *args);

#endif
