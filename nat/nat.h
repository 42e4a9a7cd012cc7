/*
 * NAT classification from observed addresses, sans-I/O.
 *
 * Every outgoing link tells us, in the peer's HELLO, the address the peer
 * saw our connection come from. Fed with (local address of that link,
 * observed address, observer), the classifier answers SPEC section 5's
 * nat.type:
 *   none                  observed == local address (no translation)
 *   port-preserving       IP translated, port kept, by >= 2 observers
 *   endpoint-independent  port changed, same external port for one local
 *                         port seen by >= 2 observers
 *   endpoint-dependent    port changed, different external ports for one
 *                         local port towards different observers
 *   unknown               not enough evidence yet
 *
 * Agreement (issue 9): observers can lie. A mapping (local address seen as
 * observed address) counts only once observers in P2P_NAT_AGREE distinct
 * networks (the /24, or /48, of the address we reached them at) report
 * it, or while every observer heard from so far is in one network (a
 * network whose only public node is its bootstrap must work: its word is
 * all there is). Endpoint-dependent needs one local address seen by
 * P2P_NAT_DEPENDENT_NETS networks with no two of them agreeing: with two,
 * a liar and an honest observer look just like a dependent NAT. The
 * external addresses and the mapping offered for hole punching are
 * counted mappings only, so one observer cannot steer them either.
 */
#ifndef P2P_NAT_H
#define P2P_NAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/addr.h"
#include "proto/peerid.h"

#define P2P_NAT_OBS_MAX 32 /* observations kept (newest replace oldest) */
#define P2P_NAT_EXTERNAL_MAX 4
#define P2P_NAT_AGREE 2		 /* networks that must agree on a mapping */
#define P2P_NAT_DEPENDENT_NETS 3 /* disagreeing networks for dependent */

enum p2p_nat_type {
	P2P_NAT_UNKNOWN = 0,
	P2P_NAT_NONE,
	P2P_NAT_PORT_PRESERVING,
	P2P_NAT_ENDPOINT_INDEPENDENT,
	P2P_NAT_ENDPOINT_DEPENDENT,
};

struct p2p_nat;

struct p2p_nat *p2p_nat_new(void);
void p2p_nat_free(struct p2p_nat *n);

/*
 * One observation: our link bound to local was seen as observed by the
 * peer observer, which we reached at observer_addr (its network is what
 * counts towards agreement). Observations with family 0 or mismatched
 * families are ignored (-EINVAL). A repeat from the same observer
 * replaces its last one.
 */
int p2p_nat_observe(struct p2p_nat *n, uint64_t now,
		    const struct p2p_addr *local,
		    const struct p2p_addr *observed,
		    const struct p2p_peerid *observer,
		    const struct p2p_addr *observer_addr);

enum p2p_nat_type p2p_nat_type(const struct p2p_nat *n);

/* Distinct external IPs seen by enough networks (see above; port = the
 * latest observed port), newest first. */
size_t p2p_nat_external(const struct p2p_nat *n, struct p2p_addr *out,
			size_t max);

/*
 * The external address observed, by the newest observation that enough
 * networks agree on, for a link that left from local port port of family
 * (4 or 6): what the NAT maps our listen port to (hole punching predicts
 * from it). 0, or -ENOENT.
 */
int p2p_nat_mapped(const struct p2p_nat *n, uint8_t family, uint16_t port,
		   struct p2p_addr *out);

/* "none", "port-preserving", ... as in SPEC section 5. */
const char *p2p_nat_type_name(enum p2p_nat_type t);

/*
 * Socket helpers (nat/sock.c, plain POSIX). STUNT-style traversal needs
 * outgoing links to leave from the port the node listens on, so that one
 * local port is seen by many peers and the NAT's mapping shows; the
 * listener and every such dialling socket carry SO_REUSEADDR and
 * SO_REUSEPORT.
 */

/* Set SO_REUSEADDR and SO_REUSEPORT on fd. 0 or -errno. */
int p2p_nat_sock_reuse(int fd);

/*
 * A new non-blocking, close-on-exec TCP socket of local's family with
 * both reuse options (and IPV6_V6ONLY for IPv6), bound to local. Returns
 * the descriptor, or -errno (-EAFNOSUPPORT for a family other than IPv4
 * or IPv6; -EADDRINUSE when the port is held by a socket without
 * SO_REUSEPORT or of another user).
 */
int p2p_nat_sock_bound(const struct sockaddr *local, socklen_t len);

/*
 * Whether local could be bound by a socket with SO_REUSEADDR only, i.e.
 * nobody listens there: a listener with SO_REUSEPORT would otherwise
 * share its port with another daemon's listener without a word. 0 or
 * -errno (-EADDRINUSE).
 */
int p2p_nat_sock_port_free(const struct sockaddr *local, socklen_t len);

/*
 * Whether a bind or connect of a reused port failed in a way that a
 * fresh ephemeral port avoids: -EADDRINUSE, or -EADDRNOTAVAIL (the same
 * four-tuple is already taken, e.g. a second link to one remote address).
 */
bool p2p_nat_sock_retry_unbound(int err);

/*
 * Who holds a four-tuple that connect() found in use (EADDRNOTAVAIL):
 * the TCP state (TCP_SYN_SENT, TCP_SYN_RECV for a SYN our listener
 * answered, TCP_TIME_WAIT, ... as in <netinet/tcp.h>) of this network
 * namespace's socket from local port lport to remote (IP and port), read
 * with a sock_diag dump (NETLINK_SOCK_DIAG: no privilege needed). -ENOENT
 * when no socket has it, else -errno. Blocking, one dump: for the rare
 * connect that fails so, never on a hot path.
 */
int p2p_nat_sock_tuple_state(uint16_t lport, const struct sockaddr *remote);
/* "SYN_SENT", "TIME_WAIT", ... ("?" for what it does not know). */
const char *p2p_nat_tcp_state_name(int state);
/*
 * A SYN from remote that our listener on lport answered and that is
 * still not acknowledged after its SYN-ACK went out again (TCP_SYN_RECV,
 * retransmitted at least once: a second or more): abort it (sock_diag
 * SOCK_DESTROY, which needs CAP_NET_ADMIN), so that the four-tuple is
 * free for a connect of ours. Why: a punch attempt that gives up just
 * as the peer's SYN is on its way leaves that SYN at our listener, and
 * its SYN-ACKs need not get through: our NAT saw the attempt's reset and
 * may pass no SYN-ACK of a connection it no longer knows. Such a request
 * holds the four-tuple for a minute of retransmits (a CI run of
 * natlab-paths saw one hold it for over 20 s), in which our primes
 * cannot go out and the peer's SYNs find no mapping. 0 when aborted; -EBUSY
 * when not yet retransmitted, -ENOENT when there is no such SYN, else -errno
 * (-EPERM: no privilege). Blocking, as p2p_nat_sock_tuple_state.
 */
int p2p_nat_sock_drop_stale_syn(uint16_t lport, const struct sockaddr *remote);

/*
 * The IP TTL (IPv4) or unicast hop limit (IPv6) of fd's packets; -1 puts
 * the system default back. family is 4 or 6. 0 or -errno.
 */
int p2p_nat_sock_ttl(int fd, int family, int ttl);

/*
 * The minimum TTL (hop limit) of what fd accepts, ICMP errors about its
 * own packets included (those quote the TTL the packet had when it
 * expired, 1): with min_ttl 2 a punching prime (nat/punch.h) survives
 * the "time exceeded" its short TTL provokes. 0 turns it off.
 */
int p2p_nat_sock_min_ttl(int fd, int family, int min_ttl);

/*
 * NAT depth (issue 8). A prime (nat/punch.h) must pass every NAT of ours
 * and die before the peer's: with the NATs the first one or two hops, TTL
 * 2 and 3 do, but a home router behind a carrier NAT several hops away
 * needs more. The daemon sends UDP probes with TTL 1, 2, ... towards a
 * public overlay server and notes which router answered each with "time
 * exceeded"; offender[i] is the one that answered TTL i + 1 (family 0:
 * none). The first hop with a public address is past our last NAT (a
 * router answers from its inner side, which is private while it is one
 * of ours or a carrier's): its TTL is the prime's. Returns that TTL, or 0
 * when no public hop answered within n (the default primes then).
 */
#define P2P_NAT_DEPTH_MAX 8 /* hops probed; primes go no further */
int p2p_nat_depth(const struct p2p_addr *offender, size_t n);

/*
 * The probe's sockets (nat/sock.c): a non-blocking UDP socket of family
 * 4 that queues ICMP errors (IP_RECVERR); a probe with the given TTL to
 * dst (its payload says the TTL); and the next queued "time exceeded":
 * 1 with *ttl and *offender set, 0 when none is queued, -errno.
 */
int p2p_nat_sock_probe_open(void);
int p2p_nat_sock_probe_send(int fd, const struct sockaddr *dst, socklen_t len,
			    int ttl);
int p2p_nat_sock_probe_read(int fd, int *ttl, struct p2p_addr *offender);

#endif
