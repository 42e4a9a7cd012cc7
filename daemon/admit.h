/*
 * Admission of unauthenticated inbound connections (issue 9): a pure
 * module, no I/O and no clock of its own (the caller passes now in ms).
 *
 * A connection accepted on a listener holds a pending slot from accept
 * until its handshake completes or it is gone. Pending slots are their own
 * budget, apart from limits.max_links: ADMIT_PENDING_MAX in all, at most
 * ADMIT_PER_IP from one IP and ADMIT_PER_NET from one /24 (IPv4) or /48
 * (IPv6), so idle connections from one host or subnet cannot stop new
 * links, and outgoing dials and established links never compete with
 * them. A pending connection has ADMIT_HANDSHAKE_MS to say HELLO.
 *
 * Before any asymmetric crypto is spent on it (the responder's frame 2),
 * a connection takes a token from its IP's bucket (ADMIT_RATE_PER_S,
 * ADMIT_BURST) and from the node-wide one (ADMIT_RATE_TOTAL_PER_S): one
 * connection is at most one handshake, since a failed one closes it.
 */
#ifndef P2PD_ADMIT_H
#define P2PD_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define ADMIT_PENDING_MAX 64	/* unauthenticated connections in all */
#define ADMIT_PER_IP 8		/* ... from one IP */
#define ADMIT_PER_NET 16	/* ... from one /24 or /48 */
#define ADMIT_HANDSHAKE_MS 5000 /* accept to HELLO */
#define ADMIT_RATE_PER_S 20	/* handshakes per IP per second */
#define ADMIT_BURST 40		/* ... in a burst */
/* Handshakes per second in all: what bounds the responder's asymmetric
 * crypto against many IPs at once (a frame 2 costs about 0.13 ms of a
 * core here: 1000/s is about an eighth of one), while a popular node that
 * restarts still takes its peers back at once. */
#define ADMIT_RATE_TOTAL_PER_S 1000
#define ADMIT_BURST_TOTAL 2000 /* ... in a burst */
#define ADMIT_BUCKETS 256      /* per-IP buckets kept (least recent go) */

struct admit;

struct admit_stats {
	uint64_t admitted, over_ip, over_net, over_total, rate_ip, rate_total;
};

/* NULL when out of memory. */
struct admit *admit_new(void);
void admit_free(struct admit *a);

/*
 * A connection from `from` was accepted; id names it until
 * admit_release(id) (ids are never 0 and unique among pending ones).
 * 0: admitted (a pending slot is held); -EAGAIN: over a handshake rate
 * (the IP's or the node's); -EBUSY: over a pending budget (the IP's, the
 * subnet's or the total). A refused connection holds nothing.
 */
__attribute__((warn_unused_result)) int
admit_accept(struct admit *a, uint64_t now, const struct p2p_addr *from,
	     uint32_t id);
/* The handshake of id completed, or it is gone: its slot is free. Ids not
 * pending are ignored, so calling it twice is harmless. */
void admit_release(struct admit *a, uint32_t id);
/* When a connection accepted now must have said HELLO: ADMIT_HANDSHAKE_MS,
 * or the configured handshake timeout if shorter. */
uint64_t admit_deadline(uint64_t now, uint32_t handshake_timeout_ms);
/* Pending connections now. */
size_t admit_pending(const struct admit *a);
const struct admit_stats *admit_stats(const struct admit *a);

#endif
