/*
 * The daemon's network side as main.c sees it: start every service on a
 * loop, wired together in one place (daemon.c), and stop them.
 */
#ifndef P2PD_DAEMON_H
#define P2PD_DAEMON_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "control.h"
#include "proto/identity.h"

struct p2pd_node;

/*
 * Start listening and joining (bootstrap flags, else the peer cache in
 * state_dir). Returns 0 or -errno with a message in err.
 */
int p2pd_node_start(uv_loop_t *loop, const struct p2pd_config *cfg,
		    const struct p2p_identity *ident, struct p2pd_node **out,
		    char *err, size_t errlen);

/* Stop accepting, close links, write the peer cache; done() once all handles
 * are closed. */
void p2pd_node_stop(struct p2pd_node *n, void (*done)(void *arg), void *arg);

/* Services changed (SIGHUP). */
void p2pd_node_set_services(struct p2pd_node *n, const struct p2pd_config *cfg);

size_t p2pd_node_peer_count(struct p2pd_node *n);

/* The addresses listened on, space separated ("" for none). */
void p2pd_node_listen_text(struct p2pd_node *n, char *out, size_t len);

/* For sd_notify's STATUS=: "3 peers, NAT port-preserving, DHT client". */
void p2pd_node_status_line(struct p2pd_node *n, char *out, size_t len);

/* Every control command (the node's and the tunnels'), filled by
 * p2pd_node_start; handlers take the node as ctx. */
extern struct ctl_command p2pd_node_commands[];
extern size_t p2pd_node_ncommands;

#endif
