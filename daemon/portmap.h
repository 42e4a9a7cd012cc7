/*
 * Port mapping glue (glue of nat/portmap.c): asks the default gateway to
 * forward our IPv4 listen port (TCP) to us, with PCP and then NAT-PMP over
 * a UDP socket connected to the gateway's port 5351. The gateway comes
 * from /proc/net/route, checked at start and every PORTMAP_ROUTE_CHECK_MS:
 * a new gateway or a new source address starts over. A mapping goes to
 * the overlay (ovl_set_mapped: HELLO address, dial-back port); the
 * existing dial-back then proves it. Config port_mapping false: no socket,
 * not one packet. Nothing but the listen port is ever mapped.
 *
 * UPnP-IGD (libminiupnpc) is not spoken yet; "upnp" never appears.
 */
#ifndef P2PD_PORTMAP_H
#define P2PD_PORTMAP_H

#include <stdint.h>

#include "nat/portmap.h"
#include "node.h"

#define PORTMAP_ROUTE_CHECK_MS 30000 /* a cheap look at the default route */
#define PORTMAP_ROUTE_FILE "/proc/net/route"

/* 0 or -ENOMEM. Nothing is sent before the first portmap_expire. */
int portmap_module_init(struct p2pd_node *n, const struct p2pd_config *cfg);

/* Clean exit: the delete request (lifetime 0) goes out at once, then the
 * socket closes. */
void portmap_stop(struct p2pd_node *n);
void portmap_free(struct p2pd_node *n);

uint64_t portmap_next(void *n);
void portmap_expire(void *n, uint64_t now);

/* What status shows (expires in the hub's ms). */
void portmap_status(const struct p2pd_node *n, struct p2p_pmap_status *st);

#endif
