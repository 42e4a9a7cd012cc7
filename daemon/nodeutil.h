/*
 * Small pure helpers of the node, kept apart so that tests can drive them
 * with plain values: sockaddr conversion, the duplicate-link tie-break,
 * the choice of a peer's dial address from its HELLO, and the validation
 * of control command arguments for services.
 */
#ifndef P2PD_NODEUTIL_H
#define P2PD_NODEUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "proto/addr.h"
#include "proto/msg.h"
#include "proto/peerid.h"

/* p2p_addr <-> sockaddr_in/in6. 0 or -EINVAL (family not 4/6). */
int node_addr_to_sockaddr(const struct p2p_addr *a, struct sockaddr_storage *ss,
			  socklen_t *len);
int node_addr_from_sockaddr(struct p2p_addr *a, const struct sockaddr *sa);

/* True when the IP is 0.0.0.0 or :: (a wildcard listener). */
bool node_addr_is_unspec(const struct p2p_addr *a);

/*
 * Two links between us (self) and peer: which one to keep. Both ends must
 * reach the same verdict without talking, so the rule only uses what both
 * know: keep the link whose initiator has the lower peer ID. Links opened
 * in the same direction (same initiator) keep the older one. Returns true
 * when the new link wins and the existing one must go.
 */
bool node_dup_keep_new(const struct p2p_peerid *self,
		       const struct p2p_peerid *peer, bool existing_outbound,
		       bool new_outbound);

/*
 * Where a peer can be dialled, from the addresses it advertised in HELLO
 * and the address its connection came from (remote). A listener on a
 * wildcard IP is advertised with the unspecified IP and its port; we put
 * in the IP we see the peer at. Preference: an advertised address with the
 * remote's IP, then a wildcard of the remote's family, then any address of
 * that family, then any usable address. 0 or -ENOENT when none fits.
 */
int node_hello_dial_addr(const struct p2p_addr *addrs, size_t naddrs,
			 const struct p2p_addr *remote, struct p2p_addr *out);

/* Service names: 1..P2P_SERVICE_NAME_MAX of [A-Za-z0-9._-]. */
bool node_service_name_ok(const char *name);

/* "HOST:PORT" with a numeric IP or a host name, port 1..65535. */
bool node_target_ok(const char *target);

/*
 * Build a service from expose arguments {service, target, allow}; allow
 * is required: an array of peer IDs or "any". Returns
 * 0, or a control error code ("bad_request", "invalid_peer_id") as a
 * negative errno (-EINVAL, -EBADR) with a message naming the argument.
 */
int node_service_from_args(json_t *args, struct p2pd_service *svc, char *msg,
			   size_t msglen);

/* {service, target, allow: [ids] or "any"} */
json_t *node_service_to_json(const struct p2pd_service *svc);

#endif
