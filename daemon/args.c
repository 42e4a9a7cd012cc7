/*
 * Arguments of control commands (args.h).
 */
#include <errno.h>

#include "args.h"

int node_arg_peer(struct ctl_req *req, json_t *args, struct p2p_peerid *id)
{
	json_t *v = json_object_get(args, "peer");

	if (!json_is_string(v)) {
		ctl_reply_error(req, "bad_request",
				"peer: expected a peer ID string");
		return -EINVAL;
	}
	if (p2p_peerid_from_text(id, json_string_value(v),
				 json_string_length(v)) < 0) {
		ctl_reply_error(req, "invalid_peer_id",
				"peer: not a peer ID (52 base32 characters)");
		return -EINVAL;
	}
	return 0;
}
