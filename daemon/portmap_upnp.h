/*
 * UPnP-IGD for gateways that speak neither PCP nor NAT-PMP (part of the
 * portmap module): libminiupnpc's SSDP discovery and SOAP calls block, so
 * each round runs in libuv's thread pool and reports back on the loop.
 * Built without libminiupnpc, pm_upnp_map() answers -ENOTSUP.
 */
#ifndef P2PD_PORTMAP_UPNP_H
#define P2PD_PORTMAP_UPNP_H

#include <stdbool.h>
#include <stdint.h>

#include "node.h"
#include "proto/addr.h"

#define PM_UPNP_DISCOVER_MS 2000 /* SSDP: how long to wait for answers */
#define PM_UPNP_LEASE_S 3600	 /* asked for; renewed at half */
#define PM_UPNP_URL_MAX 512
/* The delete on a clean exit waits this long for the IGD, no longer. */
#define PM_UPNP_UNMAP_MS 1000

/* What one round found: the IGD's control URL and service (for renewal
 * and deletion), our LAN address it saw, the mapped external address. */
struct pm_upnp_result {
	int rc;		/* 0, or a negative errno / UPnP error as -EPROTO */
	int upnp_error; /* the IGD's error code when rc is -EPROTO */
	struct p2p_addr external;
	uint32_t lease_s;
	char control[PM_UPNP_URL_MAX];
	char service[PM_UPNP_URL_MAX];
	char lan[64];
};

typedef void (*pm_upnp_cb)(struct p2pd_node *n, const struct pm_upnp_result *r);

/* libminiupnpc was there at build time. */
bool pm_upnp_available(void);

/*
 * Map TCP port (external = internal = port) for PM_UPNP_LEASE_S in the
 * thread pool; cb on the loop when done, unless the node is stopping
 * then (a mapping made meanwhile is deleted there and then). The work is
 * counted as a hub handle, so the node is freed only after it. 0, or a
 * negative errno (-ENOTSUP without libminiupnpc); no cb then.
 */
int pm_upnp_map(struct p2pd_node *n, uint16_t port, pm_upnp_cb cb);

/* Delete the mapping of r (clean exit), waiting at most ms for the
 * gateway's answer: the call itself runs in a thread of its own, left
 * behind if it takes longer. 0, -ETIMEDOUT (no answer in time), or a
 * negative errno (-ENOTSUP without libminiupnpc). */
int pm_upnp_unmap_bounded(const struct pm_upnp_result *r, uint16_t port,
			  unsigned ms);

#endif
