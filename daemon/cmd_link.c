/*
 * `disconnect` (SPEC section 9): close every link to a peer, so that the
 * next `connect` starts fresh (repeated trials, people). An up link says
 * GOAWAY first (link_close); one still dialling or handshaking is dropped.
 * Tunnels on a closed link are reset when it is gone (tunnel.c on_gone),
 * as for any link that goes away. Answers {peer, closed}, or
 * peer_unreachable when there was no link to close.
 */
#include <string.h>

#include "args.h"
#include "cmd_link.h"
#include "link.h"
#include "log.h"

#define CMD_GOAWAY_DISCONNECT 0 /* GOAWAY code: a normal close */

/* A link to peer: up (HELLO said who) or still expecting it. */
static bool link_to(const struct link *l, const struct p2p_peerid *peer)
{
	const struct p2p_peerid *e = link_expect(l);

	if (link_established(l))
		return p2p_peerid_equal(link_peer(l), peer);
	return e && p2p_peerid_equal(e, peer);
}

static void cmd_disconnect(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_peerid id;
	char text[P2P_ID_TEXT_LEN + 1];
	json_int_t closed = 0;

	if (node_arg_peer(req, args, n->names, &id) < 0)
		return;
	/* Closing only marks a link: the walk stays valid, and a marked
	 * link is no longer listed. */
	for (struct link *l = link_first(n); l; l = link_next_of(l)) {
		if (!link_to(l, &id))
			continue;
		if (link_is_up(l))
			link_close(l, CMD_GOAWAY_DISCONNECT, "disconnect");
		else
			link_fail(l, "disconnect");
		closed++;
	}
	if (closed == 0) {
		ctl_reply_error(req, "peer_unreachable",
				"no link to that peer");
		return;
	}
	p2p_peerid_to_text(&id, text);
	log_info("disconnect %s: %lld link(s) closed", text, (long long)closed);
	ctl_reply_ok(req,
		     json_pack("{s:s, s:I}", "peer", text, "closed", closed));
}

const struct ctl_command cmd_link_commands[] = {
    {"disconnect", cmd_disconnect},
};
const size_t cmd_link_ncommands =
    sizeof(cmd_link_commands) / sizeof(cmd_link_commands[0]);
