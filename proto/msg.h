/*
 * Messages carried inside session records. Every message starts with
 * version u8 (P2P_PROTO_VERSION) and type u8; fields are big-endian;
 * byte strings are u16 length + bytes unless they run to the end of the
 * message (routed payload, stream data). Decoders check every length and
 * count against limits.h and reject short input and trailing bytes.
 *
 * Address on the wire: family u8 (0, 4 or 6), then 0, 4 or 16 bytes of IP,
 * then port u16 (family 0 has no IP and port 0).
 */
#ifndef P2P_PROTO_MSG_H
#define P2P_PROTO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "limits.h"
#include "peerid.h"

enum p2p_msg_type {
	P2P_MSG_HELLO = 1,	    /* flags, observed addr, own addrs */
	P2P_MSG_PING = 2,	    /* nonce */
	P2P_MSG_PONG = 3,	    /* nonce */
	P2P_MSG_FIND_NODE = 4,	    /* txid, target */
	P2P_MSG_NODES = 5,	    /* txid, contacts */
	P2P_MSG_ROUTED = 6,	    /* msgid, hops, src, dst, app, payload */
	P2P_MSG_DIALBACK = 7,	    /* nonce, addr: "dial me back there" */
	P2P_MSG_DIALBACK_OK = 8,    /* nonce: sent on the dial-back link */
	P2P_MSG_GOAWAY = 9,	    /* code, reason: sender closes after it */
	P2P_MSG_STREAM_OPEN = 16,   /* stream, window, service */
	P2P_MSG_STREAM_ACCEPT = 17, /* stream, window */
	P2P_MSG_STREAM_DATA = 18,   /* stream, bytes */
	P2P_MSG_STREAM_WINDOW = 19, /* stream, credit */
	P2P_MSG_STREAM_FIN = 20,    /* stream */
	P2P_MSG_STREAM_RESET = 21,  /* stream, code, reason */
	P2P_MSG_RELAY_OPEN = 24,    /* circuit, flags, peer */
	P2P_MSG_RELAY_DATA = 25,    /* circuit, bytes (1..) of the inner link */
	P2P_MSG_RELAY_CLOSE = 26,   /* circuit, code, reason */
	P2P_MSG_RELAY_CREDIT = 27,  /* circuit, credit: relay to an end */
	P2P_MSG_RELAY_PASS = 28, /* circuit, len, tail: a pass frame's head */
};

/* Relay circuit IDs: the side that opens a circuit on a link picks its ID;
 * the link's initiator picks odd IDs, the responder even ones. */
/* RELAY_OPEN flags. 0: "relay me to peer" (to a relay); INCOMING: "peer
 * reaches you through me" (from the relay to the target). */
#define P2P_RELAY_F_INCOMING 0x01
#define P2P_RELAY_DATA_MAX (P2P_MSG_MAX - P2P_MSG_HDR - 4)
/* RELAY_CREDIT (issue 10): the relay wrote credit more bytes of the
 * circuit's RELAY_DATA from this end out on the other link; the end may
 * send that many more (core/circuit.h, RELAY_CREDIT). Only sent to a peer
 * whose HELLO has P2P_HELLO_RELAY_CREDIT. credit >= 1. */

/*
 * RELAY_PASS (issue 10): RELAY_DATA without the hop's AEAD over the data.
 * A pass frame (P2P_FRAME_PASS, proto/frame.h) is a sealed record holding
 * only RELAY_PASS (circuit, len, tail: the data's last P2P_PASS_TAIL
 * bytes, zero-padded when shorter), then the len data bytes as they are:
 * they are the circuit's own end-to-end records, already sealed by the
 * ends. The hop's AEAD and nonce sequence cover the header, so framing,
 * lengths, circuits, order and the data's tail cannot be changed without
 * the hop failing; a change to other data bytes fails the ends' own
 * record open, and the relayed link dies (as a reset TCP connection
 * would). RELAY_PASS in an ordinary record is a protocol error. Used on
 * a hop only when both its HELLOs have P2P_HELLO_RELAY_PASS.
 */
#define P2P_PASS_TAIL 16
#define P2P_PASS_MSG (P2P_MSG_HDR + 4 + 4 + P2P_PASS_TAIL)
#define P2P_PASS_HDR (P2P_PASS_MSG + P2P_AEAD_TAG) /* its sealed record */
#define P2P_PASS_DATA_MAX (P2P_FRAME_MAX - P2P_PASS_HDR)

/* HELLO flags */
/* sender believes it is dialable (DHT server) */
#define P2P_HELLO_SERVER 0x01
/* sender keeps per-circuit relay credit (RELAY_CREDIT, issue 10): as a
 * relay it returns credit to this peer's circuit ends and holds it to
 * it; as an end it sends RELAY_DATA only within its credit. Older
 * daemons ignore the bit (and never set it). */
#define P2P_HELLO_RELAY_CREDIT 0x02
/* sender reads pass frames (RELAY_PASS above) */
#define P2P_HELLO_RELAY_PASS 0x04

struct p2p_contact {
	struct p2p_peerid id;
	struct p2p_addr addr;
};

struct p2p_msg {
	uint8_t type;
	union {
		struct {
			uint8_t flags;
			struct p2p_addr observed; /* how the sender sees us */
			uint8_t naddrs;
			struct p2p_addr addrs[P2P_MAX_ADDRS];
		} hello;
		struct {
			uint64_t nonce;
		} ping; /* PING and PONG */
		struct {
			uint32_t txid;
			struct p2p_peerid target;
		} find_node;
		struct {
			uint32_t txid;
			uint8_t count;
			struct p2p_contact nodes[P2P_MAX_NODES];
		} nodes;
		struct {
			uint64_t msgid;
			uint8_t hops; /* remaining, <= P2P_ROUTE_HOPS_MAX */
			struct p2p_peerid src, dst;
			uint8_t app;
			const uint8_t
			    *payload; /* points into the decoded buffer */
			size_t len;
		} routed;
		struct {
			uint64_t nonce;
			struct p2p_addr addr; /* unused by DIALBACK_OK */
		} dialback;		      /* DIALBACK and DIALBACK_OK */
		struct {
			uint8_t code;
			const char *reason; /* not NUL terminated */
			size_t len;	    /* <= P2P_REASON_MAX */
		} goaway;
		struct {
			uint32_t stream;
			uint32_t window;     /* OPEN, ACCEPT: initial credit */
			const char *service; /* OPEN: not NUL terminated */
			size_t service_len;  /* 1..P2P_SERVICE_NAME_MAX */
		} stream_open;		     /* STREAM_OPEN and STREAM_ACCEPT */
		struct {
			uint32_t stream;
			const uint8_t *data; /* DATA: points into the buffer */
			size_t len;
			uint32_t credit; /* WINDOW */
		} stream; /* STREAM_DATA, STREAM_WINDOW, STREAM_FIN */
		struct {
			uint32_t stream;
			uint8_t code;
			const char *reason;
			size_t len;
		} reset;
		struct {
			uint32_t circ;
			struct p2p_peerid peer; /* OPEN */
			const uint8_t *data;	/* DATA: into the buffer */
			size_t len;		/* DATA: 1..; CLOSE: reason */
			uint8_t code;		/* CLOSE; OPEN: flags */
			const char *reason;	/* CLOSE: not NUL terminated */
			uint32_t credit;	/* CREDIT: 1.. */
			uint8_t tail[P2P_PASS_TAIL]; /* PASS */
		} relay; /* RELAY_OPEN, RELAY_DATA, RELAY_CLOSE, RELAY_CREDIT */
	} u;
};

/* STREAM_DATA's bytes before its data (version, type, stream ID): a
 * sender that reads data straight into a record writes this in front of
 * it (p2p_msg_stream_data_hdr) instead of encoding a copy. */
#define P2P_STREAM_DATA_HDR 6
/* The same bytes p2p_msg_encode writes for STREAM_DATA before data. */
void p2p_msg_stream_data_hdr(uint8_t out[P2P_STREAM_DATA_HDR], uint32_t stream);

/*
 * Encode m into out. Returns 0 and sets *outlen, -EMSGSIZE when out is too
 * small or a field is over its limit, -EINVAL for an unknown type or bad
 * field (family not 0/4/6, hops over the ceiling).
 */
int p2p_msg_encode(const struct p2p_msg *m, uint8_t *out, size_t cap,
		   size_t *outlen) __attribute__((warn_unused_result));

/*
 * Decode buf into m; pointer fields point into buf. Returns 0, -EPROTO for
 * malformed input (short, trailing bytes, bad family, count over limit),
 * -EPROTONOSUPPORT for another version, -ENOTSUP for an unknown type.
 */
int p2p_msg_decode(struct p2p_msg *m, const uint8_t *buf, size_t len)
    __attribute__((warn_unused_result));

/* "hello", "ping", ... or "unknown" (for logs). */
const char *p2p_msg_type_name(uint8_t type);

#endif
