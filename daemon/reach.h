/*
 * Reaching a peer for tunnels and `connect`: the glue of the sans-I/O
 * core core/reach.h, which decides (the link already up, else the peer's
 * address from the routing table or an overlay lookup and a dial that
 * expects the peer's ID; a peer that cannot be dialled is hole punched;
 * when that cannot work or fails, the link is relayed through a node we
 * hold a link to, nearest first). This file carries out its requests with
 * ovl, link, punch and relay, and feeds it their events. Every waiter for
 * one peer shares one attempt.
 */
#ifndef P2PD_REACH_H
#define P2PD_REACH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/reach.h"
#include "link.h"
#include "nat/nat.h"
#include "node.h"

struct reach_waiter;

/*
 * Called once, from the after-input pass (never inside reach_get): l is
 * an up link to the peer (code NULL), or l is NULL and code/msg say why
 * there is none. dialled: the link was made for this request.
 */
typedef void (*reach_fn)(struct p2pd_node *n, struct reach_waiter *w,
			 struct link *l, bool dialled, const char *code,
			 const char *msg);

struct reach_waiter {
	reach_fn done; /* set by the caller */
	/* The glue's: an answer the core could not take (its caps), told
	 * from the after-input pass like every other. */
	struct reach_waiter *next;
	const char *code, *msg;
};

int reach_module_init(struct p2pd_node *n);
/* Shutdown: every waiter is told ("internal", "daemon shutting down"). */
void reach_stop(struct p2pd_node *n);
/* The core's counters (metrics: upgrade retries). */
const struct p2p_reach_stats *reach_stats(struct p2pd_node *n);
void reach_free(struct p2pd_node *n);

/* Start getting a link to peer for w (w->done set by the caller). */
void reach_get(struct p2pd_node *n, const struct p2p_peerid *peer,
	       struct reach_waiter *w);
/* Stop waiting (w->done is not called). */
void reach_cancel(struct p2pd_node *n, struct reach_waiter *w);

/* Hub hooks (daemon.c registers them). */
/* punch.c, through daemon.c: a punch with peer was agreed (see
 * punch_scheduled_fn). */
/* punch_on_dial: the peer answered our punch request "dial me". */
void reach_punch_dial(void *n, const struct p2p_peerid *peer,
		      const struct p2p_addr *at);
void reach_punch_scheduled(void *n, const struct p2p_peerid *peer,
			   enum p2p_nat_type peer_nat, bool primer,
			   size_t ncand, bool v6);
bool reach_after(void *n);
uint64_t reach_next(void *n);
void reach_expire(void *n, uint64_t now);
extern const struct node_link_hooks reach_link_hooks;

#endif
