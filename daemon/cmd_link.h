/*
 * Control commands about links to one peer (SPEC section 9): disconnect.
 */
#ifndef P2PD_CMD_LINK_H
#define P2PD_CMD_LINK_H

#include "control.h"
#include "node.h"

/* Handlers take the node as ctx. */
extern const struct ctl_command cmd_link_commands[];
extern const size_t cmd_link_ncommands;

#endif
