/*
 * The node's control commands (SPEC section 5): status, peers, bootstrap,
 * ping, lookup, expose, unexpose, services; and the requests among them
 * that wait for the network.
 */
#ifndef P2PD_CMD_NODE_H
#define P2PD_CMD_NODE_H

#include "control.h"
#include "node.h"

int cmd_node_init(struct p2pd_node *n);
/* Shutdown: every waiting request is answered. */
void cmd_node_stop(struct p2pd_node *n);
void cmd_node_free(struct p2pd_node *n);

/* Hub hooks (daemon.c registers them). */
extern const struct node_link_hooks cmd_node_link_hooks;
uint64_t cmd_node_next(void *n);
void cmd_node_expire(void *n, uint64_t now);
void cmd_node_on_pong(void *n, struct link *l, const struct p2p_msg *m);
void cmd_node_on_app(void *n, const struct p2p_ov_action *a);
void cmd_node_on_route_failed(void *n, uint64_t msgid);

/* Handlers take the node as ctx. */
extern const struct ctl_command cmd_node_commands[];
extern const size_t cmd_node_ncommands;
/* name_add, name_rm, names (cmd_names.c); ctx: the node. */
extern const struct ctl_command cmd_names_commands[];
extern const size_t cmd_names_ncommands;
/* metrics (cmd_metrics.c); ctx: the node. */
extern const struct ctl_command cmd_metrics_commands[];
extern const size_t cmd_metrics_ncommands;

#endif
