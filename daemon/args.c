/*
 * Arguments of control commands (args.h).
 */
#include <errno.h>

#include "args.h"

int node_arg_peer(struct ctl_req *req, json_t *args, const struct names *nm,
		  struct p2p_peerid *id)
{
	json_t *v = json_object_get(args, "peer");
	int rc;

	if (!json_is_string(v)) {
		ctl_reply_error(req, "bad_request",
				"peer: expected a peer ID string");
		return -EINVAL;
	}
	rc = names_resolve(nm, json_string_value(v), json_string_length(v), id);
	if (rc == -ENOENT) {
		ctl_reply_error(req, "invalid_peer_id",
				"peer: no peer named '%s' (see p2pctl names)",
				json_string_value(v));
		return -EINVAL;
	}
	if (rc < 0) {
		ctl_reply_error(req, "invalid_peer_id",
				"peer: not a peer ID (52 base32 characters) "
				"or a name");
		return -EINVAL;
	}
	return 0;
}
