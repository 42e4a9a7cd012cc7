/*
 * Port mapping with the gateway, sans-I/O: PCP MAP (RFC 6887) first,
 * NAT-PMP (RFC 6886) when the gateway does not speak PCP.
 *
 * One struct p2p_pmap asks for one mapping: TCP, our IPv4 listen port,
 * nothing else. The caller owns a UDP socket connected to the default
 * gateway's port P2P_PMAP_PORT and feeds what comes back; the core says
 * what to send and when it next wants to be woken:
 *
 *   start ─> [PCP] ──SUCCESS──────────────────> [MAPPED] ─renew at 1/2─┐
 *             │ UNSUPP_VERSION, a NAT-PMP answer,                    │
 *             │ no answer after P2P_PMAP_PCP_TRIES, port unreachable  │
 *             v                                                        │
 *           [NATPMP: address, then map] ─success─> [MAPPED] <─────────┘
 *             │ refusal, no answer, unreachable        epoch reset ─> re-map
 *             v
 *           [FAILED] ─ after P2P_PMAP_RETRY_MS ─> start again
 *   stop ─> one request with lifetime 0 (delete), then [STOPPED]
 *
 * A refusal of PCP (NOT_AUTHORIZED and the like) is final for this round:
 * the same server would refuse NAT-PMP too. Time is ms on any monotonic
 * origin; the caller supplies randomness (the PCP nonce, retransmission
 * jitter). After every call the caller polls actions until none is left.
 */
#ifndef P2P_NAT_PORTMAP_H
#define P2P_NAT_PORTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define P2P_PMAP_PORT 5351	  /* the server's port (both RFCs) */
#define P2P_PCP_VERSION 2	  /* RFC 6887 */
#define P2P_NATPMP_VERSION 0	  /* RFC 6886 */
#define P2P_PCP_HDR_LEN 24	  /* common request/response header */
#define P2P_PCP_MAP_LEN 36	  /* MAP opcode body */
#define P2P_PCP_MAX 1100	  /* RFC 6887 section 7: largest message */
#define P2P_PCP_NONCE_LEN 12	  /* MAP mapping nonce */
#define P2P_NATPMP_ADDR_REQ_LEN 2 /* external address request */
#define P2P_NATPMP_ADDR_RESP_LEN 12
#define P2P_NATPMP_MAP_LEN 12 /* mapping request */
#define P2P_NATPMP_MAP_RESP_LEN 16
#define P2P_PMAP_DGRAM_MAX 64 /* the largest datagram we send */

#define P2P_PMAP_LIFETIME_S 7200   /* asked for; RFC 6886 section 3.3 */
#define P2P_PMAP_RENEW_MIN_MS 1000 /* never renew more often than this */
/* PCP retransmission (RFC 6887 section 8.1.1): IRT 3 s, doubling with
 * +-10% jitter; bounded here, after which NAT-PMP is tried. */
#define P2P_PMAP_PCP_IRT_MS 3000
#define P2P_PMAP_PCP_TRIES 3
/* NAT-PMP retransmission (RFC 6886 section 3.1): 250 ms doubling, 9
 * tries in all. */
#define P2P_PMAP_NATPMP_IRT_MS 250
#define P2P_PMAP_NATPMP_TRIES 9
/* After a refusal or silence: ask again (a gateway may be replaced, its
 * policy changed). A gateway or route change starts at once. */
#define P2P_PMAP_RETRY_MS (10 * 60 * 1000)
/* A renewal that goes unanswered: retransmitted as above; the mapping is
 * reported lost only when its lifetime ends. */
#define P2P_PMAP_QUEUE 4 /* actions pending at once */

#define P2P_PCP_OP_ANNOUNCE 0
#define P2P_PCP_OP_MAP 1
#define P2P_PCP_RESPONSE 0x80 /* the R bit of the opcode byte */
#define P2P_PCP_PROTO_TCP 6

/* PCP result codes (RFC 6887 section 7.4), those we act on. */
#define P2P_PCP_SUCCESS 0
#define P2P_PCP_UNSUPP_VERSION 1
#define P2P_PCP_NOT_AUTHORIZED 2

/* NAT-PMP opcodes and results (RFC 6886 sections 3.2, 3.3, 3.5). */
#define P2P_NATPMP_OP_ADDR 0
#define P2P_NATPMP_OP_MAP_TCP 2
#define P2P_NATPMP_RESPONSE 128
#define P2P_NATPMP_SUCCESS 0
#define P2P_NATPMP_UNSUPP_VERSION 1

/* A PCP MAP request or response (the fields both directions carry). */
struct p2p_pcp_msg {
	bool response;
	uint8_t opcode;		/* P2P_PCP_OP_* */
	uint8_t result;		/* response only */
	uint32_t lifetime;	/* requested, or granted */
	uint32_t epoch;		/* response only */
	struct p2p_addr client; /* request only: our address, port unused */
	/* MAP body; absent in a short error response or an ANNOUNCE. */
	bool has_map;
	uint8_t nonce[P2P_PCP_NONCE_LEN];
	uint8_t protocol;
	uint16_t internal_port;
	struct p2p_addr external; /* suggested or assigned (IP and port) */
};

/*
 * Encode a request (m->response false) into out: header and, for MAP, the
 * MAP body; no options. 0 with *len set, -EMSGSIZE, -EINVAL (not IPv4/6).
 */
int p2p_pcp_encode(const struct p2p_pcp_msg *m, uint8_t *out, size_t cap,
		   size_t *len);
/*
 * Decode a response: version 2, the R bit, a length that is a multiple of
 * 4 between P2P_PCP_HDR_LEN and P2P_PCP_MAX, well-formed options after a
 * MAP body (skipped). An error response may be the bare header. 0,
 * -EPROTO (malformed), -EPROTONOSUPPORT (another version: buf[0] says
 * which), -EMSGSIZE.
 */
int p2p_pcp_decode(struct p2p_pcp_msg *m, const uint8_t *buf, size_t len);

/* A NAT-PMP request or response. */
struct p2p_natpmp_msg {
	bool response;
	uint8_t opcode; /* P2P_NATPMP_OP_*, without the response bit */
	uint16_t result;
	uint32_t epoch;		/* response only */
	uint8_t external_ip[4]; /* address response */
	uint16_t internal_port; /* map */
	uint16_t external_port; /* map: suggested or granted */
	uint32_t lifetime;	/* map */
};

/* Request (m->response false): 0 with *len, -EMSGSIZE, -EINVAL. */
int p2p_natpmp_encode(const struct p2p_natpmp_msg *m, uint8_t *out, size_t cap,
		      size_t *len);
/*
 * Response: version 0, response bit, exact length for its opcode (an
 * error answer to an opcode we do not know may be 8 bytes: the common
 * part). 0, -EPROTO, -EPROTONOSUPPORT (not version 0).
 */
int p2p_natpmp_decode(struct p2p_natpmp_msg *m, const uint8_t *buf, size_t len);

/* ---- the mapping state machine ---- */

enum p2p_pmap_proto {
	P2P_PMAP_NONE = 0,
	P2P_PMAP_PCP,
	P2P_PMAP_NATPMP,
	P2P_PMAP_UPNP, /* reported by the glue; not spoken here */
};

struct p2p_pmap_config {
	uint16_t internal_port; /* our listen port (TCP, IPv4) */
	uint32_t lifetime_s;	/* 0: P2P_PMAP_LIFETIME_S */
	/* Fill buf with len random bytes (nonce, jitter). */
	void (*random)(void *ctx, void *buf, size_t len);
	void *ctx;
};

enum p2p_pmap_action_type {
	P2P_PMAP_SEND,	  /* send buf[0..len) to the gateway */
	P2P_PMAP_CHANGED, /* the mapping came, went or moved: read status */
};

struct p2p_pmap_action {
	enum p2p_pmap_action_type type;
	size_t len;
	uint8_t buf[P2P_PMAP_DGRAM_MAX];
};

struct p2p_pmap_status {
	enum p2p_pmap_proto protocol; /* NONE while unmapped */
	struct p2p_addr external;     /* mapped address and port */
	uint64_t expires;	      /* ms, same origin as now */
	uint32_t renewals;	      /* successful renewals so far */
	bool busy;		      /* a request is outstanding */
	bool failed; /* refused, or nobody answered: retried later */
};

struct p2p_pmap;

/* NULL on bad config (port 0, no random) or out of memory. */
struct p2p_pmap *p2p_pmap_new(const struct p2p_pmap_config *cfg);
void p2p_pmap_free(struct p2p_pmap *pm);

/*
 * (Re)start with PCP: at start-up and whenever the gateway or our own
 * address changed. client is our IPv4 address on the gateway's side
 * (PCP's client address field). A mapping held so far is forgotten
 * (CHANGED if there was one). 0 or -EINVAL.
 */
int p2p_pmap_start(struct p2p_pmap *pm, uint64_t now,
		   const struct p2p_addr *client);

/* No gateway any more: the mapping is forgotten (CHANGED if there was
 * one) and nothing is asked until the next start. */
void p2p_pmap_reset(struct p2p_pmap *pm);

/*
 * A datagram from the gateway (the caller checked its source). 0 when it
 * was used, -EPROTO and friends when malformed, -ENOENT when well-formed
 * but not for us (nonce, port, opcode, or nothing outstanding).
 */
int p2p_pmap_input(struct p2p_pmap *pm, uint64_t now, const uint8_t *buf,
		   size_t len);

/* The gateway said port unreachable: nobody speaks the protocol being
 * tried, so give up on it now instead of retransmitting. */
void p2p_pmap_unreachable(struct p2p_pmap *pm, uint64_t now);

/* Clean exit: a delete request (lifetime 0) if a mapping is held, then
 * nothing more. */
void p2p_pmap_stop(struct p2p_pmap *pm, uint64_t now);

/* Earliest deadline (UINT64_MAX: none), and what to do when it comes. */
uint64_t p2p_pmap_next(const struct p2p_pmap *pm);
void p2p_pmap_expire(struct p2p_pmap *pm, uint64_t now);

/* Next action, false when there is none. */
bool p2p_pmap_poll(struct p2p_pmap *pm, struct p2p_pmap_action *a);

void p2p_pmap_status(const struct p2p_pmap *pm, struct p2p_pmap_status *st);

/* "pcp", "natpmp", "upnp", "none" (SPEC section 9). */
const char *p2p_pmap_proto_name(enum p2p_pmap_proto p);

#endif
