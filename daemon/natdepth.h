/*
 * NAT depth glue (glue of p2p_nat_depth, nat/nat.h): how many hops a
 * punching prime needs to pass every NAT of ours. Once an overlay server
 * at a public address is linked, UDP probes with TTL 1..P2P_NAT_DEPTH_MAX
 * go towards it (port NATDEPTH_PORT, as traceroute does); the "time
 * exceeded" answers queued on the socket are read NATDEPTH_WAIT_MS later
 * and the first public hop's TTL is kept for the primes. Again every
 * NATDEPTH_REFRESH_MS (a new route, a new carrier NAT). It costs eight
 * small datagrams towards a peer we already talk to, and the answers of
 * the routers on the way.
 */
#ifndef P2PD_NATDEPTH_H
#define P2PD_NATDEPTH_H

#include <stdint.h>

#include "node.h"

#define NATDEPTH_PORT 33434		 /* traceroute's first port */
#define NATDEPTH_WAIT_MS 1500		 /* the answers of slow hops too */
#define NATDEPTH_RETRY_MS 5000		 /* no public server linked yet */
#define NATDEPTH_REFRESH_MS (600 * 1000) /* measured again */

/* 0 or -ENOMEM. Nothing is sent before the first natdepth_expire. */
int natdepth_module_init(struct p2pd_node *n);
void natdepth_free(struct p2pd_node *n);

/* The primes' TTL, 0 while unknown (the punch core's default). */
int natdepth_ttl(const struct p2pd_node *n);

uint64_t natdepth_next(void *n);
void natdepth_expire(void *n, uint64_t now);

#endif
