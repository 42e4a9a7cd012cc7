/*
 * Arguments of control commands shared by several command tables.
 */
#ifndef P2PD_ARGS_H
#define P2PD_ARGS_H

#include <jansson.h>

#include "control.h"
#include "proto/peerid.h"

/* The "peer" argument; on error the request is answered (bad_request or
 * invalid_peer_id) and -EINVAL returned. */
int node_arg_peer(struct ctl_req *req, json_t *args, struct p2p_peerid *id);

#endif
