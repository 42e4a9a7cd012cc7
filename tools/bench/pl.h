/*
 * p2pload internals: a client-side link driver (initiator handshake,
 * records, HELLO, PING/PONG) over non-blocking sockets and poll(), plus
 * small helpers shared by the subcommands.
 */
#ifndef P2PLOAD_PL_H
#define P2PLOAD_PL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/addr.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/session.h"

#define PL_OUT_MAX (256 * 1024) /* queued bytes before we drop a link */
#define PL_READ_CHUNK 16384

/* Exit codes of the probes ("exit code tells"). */
enum { PL_OK = 0, PL_FAIL = 1, PL_USAGE = 2, PL_IO = 3, PL_PROTO = 4 };

enum pl_state { PL_CONNECTING, PL_HANDSHAKE, PL_UP, PL_DEAD };

struct pl_link {
	int fd;
	enum pl_state state;
	struct p2p_identity ident;
	struct p2p_session *sess;
	struct p2p_framer *fr;
	struct p2p_addr remote;
	uint8_t *out;
	size_t outlen, outcap;
	int err;	/* why it died: -errno, 0 = closed by the peer */
	bool got_hello; /* the daemon's HELLO arrived */
	long long t0_us;
	unsigned pongs;	   /* PINGs we answered */
	unsigned nodes_rx; /* NODES received (harden9: findflood) */
	bool say_server;   /* our HELLO claims server mode (no address) */
	/* low9: the address our HELLO claims (family 0: none), and the
	 * contacts our NODES replies carry (none by default). */
	struct p2p_addr claim;
	const struct p2p_contact *nodes;
	size_t nnodes;
	/* Messages the driver does not answer itself, if set (low9). */
	void (*on_msg)(struct pl_link *l, const struct p2p_msg *m);
	void *ctx;
	/* Routed messages for app NAT delivered to us (punchflood): the
	 * daemon's answers, handed to on_nat. */
	void (*on_nat)(struct pl_link *l, const struct p2p_msg *m);
};

/* harden9 (issue 9 attack tests): global options, any subcommand.
 * --from IP: connects leave from that source address; --claim-subnets:
 * each link's HELLO says "server" and claims an address in a /24 of its
 * own (10.<pid>.<n>.1, the daemon's port), as a Sybil host would. */
extern struct p2p_addr pl_from;
extern bool pl_claim_subnets;
/* --spread: every connect leaves from its own loopback address
 * (127.64.0.0/10, one after the other), as peers on the internet come
 * from their own IPs: what per-IP limits then leave is the node's own
 * capacity. */
extern bool pl_spread;

long long pl_now_us(void);
/* "ADDR:PORT" into a sockaddr; 0 or -EINVAL. */
int pl_sockaddr(const char *text, struct p2p_addr *a,
		struct sockaddr_storage *ss, socklen_t *sslen);
/* Non-blocking TCP connect started; fd or -errno. */
int pl_tcp_connect(const struct sockaddr_storage *ss, socklen_t sslen);

/*
 * Start a link from a fresh identity: connect and queue handshake frame 1.
 * expect may be NULL (any peer). 0 or -errno.
 */
int pl_link_dial(struct pl_link *l, const struct p2p_addr *a,
		 const struct sockaddr_storage *ss, socklen_t sslen,
		 const struct p2p_peerid *expect);
/*
 * The responder's side of a link on fd, a connection accepted from remote
 * (non-blocking), with a fresh identity. 0 or -errno.
 */
int pl_link_accept(struct pl_link *l, int fd, const struct p2p_addr *remote);
/* Queue one message (encoded, sealed); plain: bytes sealed as they are
 * (at most 1024), for malformed messages. */
void pl_link_send(struct pl_link *l, const struct p2p_msg *m);
void pl_link_send_plain(struct pl_link *l, const uint8_t *plain, size_t len);
short pl_link_events(const struct pl_link *l);
/* Drive the link after poll(); afterwards check l->state. */
void pl_link_io(struct pl_link *l, short revents);
void pl_link_free(struct pl_link *l);

/* Subcommands: argv[0] is the subcommand name. Return the exit code. */
int pl_cmd_handshakes(int argc, char **argv);
int pl_cmd_routedforge(int argc, char **argv);
int pl_cmd_noread(int argc, char **argv);
int pl_cmd_badaddrs(int argc, char **argv);
int pl_cmd_dialbackok(int argc, char **argv);
int pl_cmd_routefail(int argc, char **argv);
int pl_cmd_hold(int argc, char **argv);
int pl_cmd_status(int argc, char **argv);
int pl_cmd_echo_baseline(int argc, char **argv);
int pl_cmd_tcp_baseline(int argc, char **argv);
int pl_cmd_garbage(int argc, char **argv);
int pl_cmd_oversize(int argc, char **argv);
int pl_cmd_wrongkey(int argc, char **argv);
int pl_cmd_slowloris(int argc, char **argv);
int pl_cmd_relayflood(int argc, char **argv);
int pl_cmd_findflood(int argc, char **argv);
int pl_cmd_punchflood(int argc, char **argv);
int pl_cmd_relaycapture(int argc, char **argv);
int pl_cmd_badpayload(int argc, char **argv);

/* "--name VALUE" lookup in argv; dflt when absent; -1 when malformed. */
long pl_opt(int argc, char **argv, const char *name, long dflt);
/* Is the bare flag name in argv? */
bool pl_flag(int argc, char **argv, const char *name);

#endif
