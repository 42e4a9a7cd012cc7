/*
 * The overlay glue: the sans-I/O overlay core (overlay/overlay.h) and the
 * NAT classifier (nat/nat.h) driven over links, plus what the node learns
 * from its peers: HELLO content, duplicate links, reachability (server
 * mode, dial-backs), joining and rejoining, the peer cache.
 *
 * Above it, routed messages and lookups are asked for with ovl_route() and
 * ovl_lookup(); what comes back goes to the application handlers
 * registered with the hub (node_on_app) and to the lookup's callback,
 * always from the after-input pass, never inside the call.
 */
#ifndef P2PD_OVL_H
#define P2PD_OVL_H

#include <stdbool.h>
#include <stdint.h>

#include "link.h"
#include "nat/nat.h"
#include "node.h"
#include "overlay/overlay.h"

#define OVL_PEERCACHE_SAVE_MS 5000 /* debounce of peers.json writes */
#define OVL_DIALBACK_PER_S 4	   /* dial-backs we make per second */
#define OVL_DIALBACK_ASKS 3	   /* we ask a server link at most this */
#define OVL_REASK_MS 5000	   /* ... again after this, doubling */
#define OVL_REJOIN_MIN_MS 2000	   /* no links: first retry of joining */
#define OVL_REJOIN_MAX_MS 60000	   /* ... backing off up to this */
#define OVL_ROUTES_MAX 64	   /* routed messages remembered for failures */
/* "link up"/"link down" at info once per peer per this (hash slots by
 * peer ID), the rest at debug: a flapping peer cannot flood the log. */
#define OVL_LINKLOG_MS 10000
#define OVL_LINKLOG_SLOTS 64
#define OVL_VERIFY_PER_S 4 /* dials to verify claimed addresses, per second */

/* Create the overlay and classifier, read the peer cache. 0 or -errno. */
int ovl_init(struct p2pd_node *n, const struct p2pd_config *cfg);
/* Once listening: dial the bootstrap addresses, else the cached peers. */
void ovl_join(struct p2pd_node *n, const struct p2pd_config *cfg);
/* Shutdown: write the peer cache. */
void ovl_stop(struct p2pd_node *n);
void ovl_free(struct p2pd_node *n);

/* Hub hooks (daemon.c registers them). */
bool ovl_after(void *n); /* carry out the overlay's actions */
uint64_t ovl_next(void *n);
void ovl_expire(void *n, uint64_t now);
extern const struct node_link_hooks ovl_link_hooks;
void ovl_fill_hello(void *n, const struct link *l, struct p2p_msg *m);
void ovl_on_msg(void *n, struct link *l, const struct p2p_msg *m);
void ovl_on_dialback(void *n, struct link *l, const struct p2p_msg *m);
void ovl_on_dialback_ok(void *n, struct link *l, const struct p2p_msg *m);

/* A routed message to an application; a failure to route it comes to the
 * app's failed handler with *msgid. 0 or -errno. */
int ovl_route(struct p2pd_node *n, const struct p2p_peerid *to, uint8_t app,
	      const uint8_t *data, size_t len, uint64_t *msgid);
/* An iterative lookup; done(arg, action) once it finishes. The action's
 * contacts live until done returns. 0 or -errno (-EBUSY: too many). */
typedef void (*ovl_lookup_fn)(void *arg, const struct p2p_ov_action *a);
int ovl_lookup(struct p2pd_node *n, const struct p2p_peerid *target,
	       ovl_lookup_fn done, void *arg, uint64_t *id);
/* We joined through one more peer: look ourselves up again (if we
 * already did once). */
void ovl_rebootstrap(struct p2pd_node *n);
/* The peer's dialable address in our routing table, if it is there. */
bool ovl_table_addr(struct p2pd_node *n, const struct p2p_peerid *peer,
		    struct p2p_addr *out);
/* Read access for status and hole punching. */
const struct p2p_nat *ovl_nat(const struct p2pd_node *n);
/* The keepalive links use now (ms); *learned (if not NULL): lowered from
 * limits.keepalive_ms because links through our NAT were reset after
 * quiet spells (core/keepalive.h). */
uint32_t ovl_keepalive_ms(const struct p2pd_node *n, bool *learned);
/* Whether peers can dial us (DHT server mode, learned), and the port
 * mapping our gateway made (family 0: none), dialled before anything. */
bool ovl_dialable(const struct p2pd_node *n, struct p2p_addr *mapped);

/*
 * The gateway mapped our listen port to ext (NULL: no mapping any more).
 * It goes first in our HELLO addresses and is what we ask peers to dial
 * back; a new one re-asks every server link (portmap.c calls this).
 */
void ovl_set_mapped(struct p2pd_node *n, const struct p2p_addr *ext);
const struct p2p_overlay *ovl_overlay(const struct p2pd_node *n);

#endif
