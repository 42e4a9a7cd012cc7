/*
 * LAN discovery, the daemon's side (SPEC section 9 `lan_discovery`): the
 * UDP multicast sockets of the sans-I/O core core/lan.h. We announce our
 * listen ports in a signed beacon (proto/beacon.h) on every interface,
 * and dial the peers whose beacons we hear, as a bootstrap address is
 * dialled (link_dial, expecting the beacon's peer ID: admission, the
 * link limit and the overlay's diversity rules apply as to any dial).
 *
 * A host without multicast (no interface, no route, EADDRNOTAVAIL) logs
 * one warning and runs on without it. With lan_discovery false nothing
 * is opened at all.
 */
#ifndef P2PD_LAN_H
#define P2PD_LAN_H

#include <stdbool.h>
#include <stdint.h>

#include "node.h"

/* Once listening: open the sockets (when on), first beacon at once.
 * Never fails the daemon: problems are logged. 0 or -ENOMEM. */
int lan_start(struct p2pd_node *n, bool on);
/* Shutdown: close the sockets (their close callbacks are counted). */
void lan_stop(struct p2pd_node *n);
void lan_free(struct p2pd_node *n);

/* Hub hooks (daemon.c registers them; nothing to do when off). */
uint64_t lan_next(void *n);
void lan_expire(void *n, uint64_t now);

#endif
