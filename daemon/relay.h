/*
 * Relays (SPEC 7): circuits between two peers through a node that holds
 * links to both. Our end of a circuit is the transport of a relayed link
 * (link_open_on); as the relay we forward RELAY_DATA between two links,
 * unread.
 */
#ifndef P2PD_RELAY_H
#define P2PD_RELAY_H

#include <stdint.h>

#include "link.h"
#include "node.h"

#define RELAY_TRIES 8 /* relays a dial asks in turn */

int relay_module_init(struct p2pd_node *n);
void relay_free(struct p2pd_node *n);

/* Ask the node at the other end of via to relay us to peer: *out is our
 * end, handshaking. 0 or -errno (-EBUSY, -EMFILE). */
int relay_open(struct p2pd_node *n, struct link *via,
	       const struct p2p_peerid *peer, struct link **out);

/* l is a relayed link of ours whose relay keeps credit for it (issue
 * 10): its tunnels' windows need no cap to spare the relay's queue. */
bool relay_credited(struct p2pd_node *n, const struct link *l);

/* Hub hooks (daemon.c registers them). */
void relay_on_msg(void *n, struct link *l, const struct p2p_msg *m);
extern const struct node_link_hooks relay_link_hooks;

/* The circuits' deadlines (core/circuit.h), for node_clock. */
uint64_t relay_next(void *n);
void relay_expire(void *n, uint64_t now);

struct relay_stats {
	unsigned circuits;
	uint64_t opened, bytes, unknown;
	uint64_t refused; /* requests over a limit (circuit.h) */
	uint64_t closed_hs, closed_idle, closed_budget; /* deadlines, budgets */
	uint64_t paced; /* credit held back for a full byte budget */
	/* Cut for a full queue (an end without credit), for an end over its
	 * credit; RELAY_CREDIT messages sent (issue 10). */
	uint64_t closed_queue, closed_credit, credit_sent;
};
void relay_get_stats(const struct p2pd_node *n, struct relay_stats *st);

#endif
