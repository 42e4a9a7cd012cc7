/*
 * Arguments of control commands shared by several command tables.
 */
#ifndef P2PD_ARGS_H
#define P2PD_ARGS_H

#include <jansson.h>

#include "control.h"
#include "names.h"
#include "proto/peerid.h"

/* The "peer" argument: an ID or a name of nm (either may end in ".p2p").
 * On error the request is answered (bad_request or invalid_peer_id) and
 * -EINVAL returned. */
int node_arg_peer(struct ctl_req *req, json_t *args, const struct names *nm,
		  struct p2p_peerid *id);

#endif
