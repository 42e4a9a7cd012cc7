/*
 * Progress of slow work (SPEC section 9 "progress"): each step reach.c
 * takes to get a link to a peer (looking it up, dialling, hole punching,
 * asking a relay) is told to the observers registered here, which pass it
 * on to the control requests waiting on that peer. reach.c makes one call
 * per step (progress_reach_step) and knows nothing else of this.
 */
#ifndef P2PD_PROGRESS_H
#define P2PD_PROGRESS_H

#include "core/reach.h"
#include "nat/nat.h"
#include "node.h"

#define PROGRESS_OBSERVERS_MAX 4
#define PROGRESS_DETAIL_MAX 512

/* stage: "lookup", "dial", "punch", "relay"; detail: for people. Both
 * are valid for the call only. */
typedef void (*progress_fn)(void *arg, const struct p2p_peerid *peer,
			    const char *stage, const char *detail);

int progress_module_init(struct p2pd_node *n);
void progress_free(struct p2pd_node *n);

/* 0, or -ENOSPC over PROGRESS_OBSERVERS_MAX (daemon.c's wiring). */
int progress_observe(struct p2pd_node *n, progress_fn fn, void *arg);

/* punch.c, through daemon.c (punch_on_scheduled): a punch with peer is
 * agreed, and the peer's NAT type is known (it came in its REQUEST or
 * REPLY): a second "punch" step that names both NAT types. */
void progress_punch_scheduled(void *n, const struct p2p_peerid *peer,
			      enum p2p_nat_type peer_nat, bool primer);

/* reach.c: the core asked for a; tell the observers what it means. */
void progress_reach_step(struct p2pd_node *n, const struct p2p_reach_action *a);

#endif
