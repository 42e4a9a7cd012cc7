/* The message codec: round trips, known bytes, and strict rejection. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "proto/msg.h"

#define NSAMPLES 20

static const uint8_t payload[] = "routed payload bytes";
static const uint8_t data[] = "stream data";

static void fill_id(struct p2p_peerid *id, uint8_t v)
{
	for (int i = 0; i < P2P_ID_LEN; i++)
		id->b[i] = (uint8_t)(v + i);
}

static void v4(struct p2p_addr *a, uint8_t last, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = 4;
	a->ip[0] = 203;
	a->ip[1] = 0;
	a->ip[2] = 113;
	a->ip[3] = last;
	a->port = port;
}

static void v6(struct p2p_addr *a, uint8_t last, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = 6;
	a->ip[0] = 0x20;
	a->ip[1] = 0x01;
	a->ip[15] = last;
	a->port = port;
}

static void sample_hello(struct p2p_msg *m)
{
	m->type = P2P_MSG_HELLO;
	m->u.hello.flags = P2P_HELLO_SERVER;
	v4(&m->u.hello.observed, 9, 4000);
	m->u.hello.naddrs = P2P_MAX_ADDRS;
	for (int i = 0; i < P2P_MAX_ADDRS; i++) {
		if (i % 2)
			v6(&m->u.hello.addrs[i], (uint8_t)i,
			   (uint16_t)(100 + i));
		else
			v4(&m->u.hello.addrs[i], (uint8_t)i,
			   (uint16_t)(100 + i));
	}
}

static void sample_nodes(struct p2p_msg *m)
{
	m->type = P2P_MSG_NODES;
	m->u.nodes.txid = 0xdeadbeef;
	m->u.nodes.count = P2P_MAX_NODES;
	for (int i = 0; i < P2P_MAX_NODES; i++) {
		fill_id(&m->u.nodes.nodes[i].id, (uint8_t)i);
		if (i == 3)
			continue; /* family 0: no address */
		if (i % 2)
			v6(&m->u.nodes.nodes[i].addr, (uint8_t)i, 7000);
		else
			v4(&m->u.nodes.nodes[i].addr, (uint8_t)i, 7000);
	}
}

/* One valid message of every type (and a few variants). */
static void sample(int k, struct p2p_msg *m)
{
	memset(m, 0, sizeof(*m));
	switch (k) {
	case 0:
		sample_hello(m);
		break;
	case 1:
		m->type = P2P_MSG_PING;
		m->u.ping.nonce = 0x0102030405060708ULL;
		break;
	case 2:
		m->type = P2P_MSG_PONG;
		m->u.ping.nonce = UINT64_MAX;
		break;
	case 3:
		m->type = P2P_MSG_FIND_NODE;
		m->u.find_node.txid = 42;
		fill_id(&m->u.find_node.target, 0x80);
		break;
	case 4:
		sample_nodes(m);
		break;
	case 5:
		m->type = P2P_MSG_ROUTED;
		m->u.routed.msgid = 77;
		m->u.routed.hops = P2P_ROUTE_HOPS_MAX;
		fill_id(&m->u.routed.src, 1);
		fill_id(&m->u.routed.dst, 2);
		m->u.routed.app = 3;
		m->u.routed.payload = payload;
		m->u.routed.len = sizeof(payload);
		break;
	case 6:
		m->type = P2P_MSG_DIALBACK;
		m->u.dialback.nonce = 5;
		v6(&m->u.dialback.addr, 1, 4433);
		break;
	case 7:
		m->type = P2P_MSG_DIALBACK_OK;
		m->u.dialback.nonce = 6;
		break;
	case 8:
		m->type = P2P_MSG_GOAWAY;
		m->u.goaway.code = 2;
		m->u.goaway.reason = "shutting down";
		m->u.goaway.len = 13;
		break;
	case 9:
		m->type = P2P_MSG_STREAM_OPEN;
		m->u.stream_open.stream = 1;
		m->u.stream_open.window = 65536;
		m->u.stream_open.service = "ssh";
		m->u.stream_open.service_len = 3;
		break;
	case 10:
		m->type = P2P_MSG_STREAM_ACCEPT;
		m->u.stream_open.stream = 1;
		m->u.stream_open.window = 1024;
		break;
	case 11:
		m->type = P2P_MSG_STREAM_DATA;
		m->u.stream.stream = 9;
		m->u.stream.data = data;
		m->u.stream.len = sizeof(data);
		break;
	case 12:
		m->type = P2P_MSG_STREAM_WINDOW;
		m->u.stream.stream = 9;
		m->u.stream.credit = 4096;
		break;
	case 13:
		m->type = P2P_MSG_STREAM_FIN;
		m->u.stream.stream = 9;
		break;
	case 14:
		m->type = P2P_MSG_STREAM_RESET;
		m->u.reset.stream = 9;
		m->u.reset.code = 1;
		m->u.reset.reason = "refused";
		m->u.reset.len = 7;
		break;
	case 15:
		m->type = P2P_MSG_RELAY_OPEN;
		m->u.relay.circ = 0x80000001u;
		m->u.relay.code = P2P_RELAY_F_INCOMING;
		fill_id(&m->u.relay.peer, 0x42);
		break;
	case 16:
		m->type = P2P_MSG_RELAY_DATA;
		m->u.relay.circ = 3;
		m->u.relay.data = data;
		m->u.relay.len = sizeof(data);
		break;
	case 17:
		m->type = P2P_MSG_RELAY_CLOSE;
		m->u.relay.circ = 3;
		m->u.relay.code = 1;
		m->u.relay.reason = "no link to that peer";
		m->u.relay.len = 20;
		break;
	case 18:
		m->type = P2P_MSG_RELAY_CREDIT;
		m->u.relay.circ = 4;
		m->u.relay.credit = 0x00100000u;
		break;
	default:
		m->type = P2P_MSG_GOAWAY; /* empty reason */
		m->u.goaway.code = 0;
		break;
	}
}

static size_t encode(const struct p2p_msg *m, uint8_t *buf, size_t cap)
{
	size_t n;

	cr_assert_eq(p2p_msg_encode(m, buf, cap, &n), 0, "type %d", m->type);
	return n;
}

/* Bytes of the payload that runs to the end, or -1 if the type has none. */
static long tail_len(const struct p2p_msg *m)
{
	if (m->type == P2P_MSG_ROUTED)
		return (long)m->u.routed.len;
	if (m->type == P2P_MSG_STREAM_DATA)
		return (long)m->u.stream.len;
	if (m->type == P2P_MSG_RELAY_DATA) /* at least one byte */
		return (long)m->u.relay.len - 1;
	return -1;
}

Test(msg, every_type_round_trips)
{
	uint8_t buf[P2P_MSG_MAX], again[P2P_MSG_MAX];

	for (int k = 0; k < NSAMPLES; k++) {
		struct p2p_msg m, d;
		size_t n, n2;

		sample(k, &m);
		n = encode(&m, buf, sizeof(buf));
		cr_assert_eq(buf[0], P2P_PROTO_VERSION);
		cr_assert_eq(buf[1], m.type);
		cr_assert_eq(p2p_msg_decode(&d, buf, n), 0, "sample %d", k);
		cr_assert_eq(d.type, m.type);
		n2 = encode(&d, again, sizeof(again));
		cr_assert_eq(n2, n);
		cr_assert_eq(memcmp(buf, again, n), 0, "sample %d", k);
	}
}

Test(msg, decoded_fields)
{
	uint8_t buf[4096];
	struct p2p_msg m, d;
	size_t n;

	sample(0, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.hello.flags, P2P_HELLO_SERVER);
	cr_assert(p2p_addr_equal(&d.u.hello.observed, &m.u.hello.observed));
	cr_assert_eq(d.u.hello.naddrs, P2P_MAX_ADDRS);
	for (int i = 0; i < P2P_MAX_ADDRS; i++)
		cr_assert_eq(memcmp(&d.u.hello.addrs[i], &m.u.hello.addrs[i],
				    sizeof(struct p2p_addr)),
			     0);

	sample(4, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.nodes.txid, 0xdeadbeef);
	cr_assert_eq(d.u.nodes.count, P2P_MAX_NODES);
	cr_assert(
	    p2p_peerid_equal(&d.u.nodes.nodes[19].id, &m.u.nodes.nodes[19].id));
	cr_assert_eq(d.u.nodes.nodes[3].addr.family, 0);

	sample(5, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.routed.hops, P2P_ROUTE_HOPS_MAX);
	cr_assert_eq(d.u.routed.len, sizeof(payload));
	cr_assert_eq(d.u.routed.payload, buf + n - sizeof(payload));
	cr_assert_eq(memcmp(d.u.routed.payload, payload, sizeof(payload)), 0);

	sample(9, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.stream_open.window, 65536);
	cr_assert_eq(d.u.stream_open.service_len, 3);
	cr_assert_eq(memcmp(d.u.stream_open.service, "ssh", 3), 0);
}

Test(msg, known_bytes)
{
	uint8_t buf[64];
	struct p2p_msg m;
	size_t n;
	static const uint8_t ping[] = {1, 2, 1, 2, 3, 4, 5, 6, 7, 8};
	static const uint8_t dialback[] = {1, 7,    0, 0, 0, 0, 0, 0,	 0,   5,
					   6, 0x20, 1, 0, 0, 0, 0, 0,	 0,   0,
					   0, 0,    0, 0, 0, 0, 1, 0x11, 0x51};
	static const uint8_t open[] = {1, 16, 0, 0, 0,	 1,   0,  1,
				       0, 0,  0, 3, 's', 's', 'h'};

	sample(1, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, sizeof(ping));
	cr_assert_eq(memcmp(buf, ping, n), 0);
	sample(6, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, sizeof(dialback));
	cr_assert_eq(memcmp(buf, dialback, n), 0);
	sample(9, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, sizeof(open));
	cr_assert_eq(memcmp(buf, open, n), 0);
}

Test(msg, every_truncation_fails)
{
	uint8_t buf[4096];

	for (int k = 0; k < NSAMPLES; k++) {
		struct p2p_msg m, d;
		size_t n;
		long tail;

		sample(k, &m);
		n = encode(&m, buf, sizeof(buf));
		tail = tail_len(&m);
		for (size_t cut = 0; cut < n; cut++) {
			int rc = p2p_msg_decode(&d, buf, cut);

			/* A payload running to the end just gets shorter. */
			if (tail >= 0 && cut >= n - (size_t)tail) {
				cr_assert_eq(rc, 0);
				continue;
			}
			cr_assert_eq(rc, -EPROTO, "sample %d cut %zu: %d", k,
				     cut, rc);
		}
	}
}

Test(msg, trailing_byte_fails)
{
	uint8_t buf[4096];

	for (int k = 0; k < NSAMPLES; k++) {
		struct p2p_msg m, d;
		size_t n;

		sample(k, &m);
		if (tail_len(&m) >= 0)
			continue; /* trailing bytes are payload there */
		n = encode(&m, buf, sizeof(buf));
		buf[n] = 0;
		cr_assert_eq(p2p_msg_decode(&d, buf, n + 1), -EPROTO,
			     "sample %d", k);
	}
}

Test(msg, version_and_type)
{
	uint8_t buf[16] = {P2P_PROTO_VERSION + 1, P2P_MSG_PING};
	struct p2p_msg d;

	cr_assert_eq(p2p_msg_decode(&d, buf, 10), -EPROTONOSUPPORT);
	buf[0] = 0;
	cr_assert_eq(p2p_msg_decode(&d, buf, 10), -EPROTONOSUPPORT);
	buf[0] = P2P_PROTO_VERSION;
	for (int t = 0; t < 256; t++) {
		buf[1] = (uint8_t)t;
		bool known = (t >= 1 && t <= 9) || (t >= 16 && t <= 21) ||
			     (t >= 24 && t <= 28);
		int rc = p2p_msg_decode(&d, buf, 10);

		if (!known) {
			cr_assert_eq(rc, -ENOTSUP, "type %d", t);
			cr_assert_str_eq(p2p_msg_type_name((uint8_t)t),
					 "unknown");
		} else {
			cr_assert_neq(rc, -ENOTSUP);
			cr_assert_str_neq(p2p_msg_type_name((uint8_t)t),
					  "unknown");
		}
	}
	cr_assert_str_eq(p2p_msg_type_name(P2P_MSG_HELLO), "hello");
	cr_assert_str_eq(p2p_msg_type_name(P2P_MSG_STREAM_RESET),
			 "stream_reset");
	cr_assert_eq(p2p_msg_decode(&d, buf, 0), -EPROTO);
	cr_assert_eq(p2p_msg_decode(&d, buf, 1), -EPROTO);
}

Test(msg, bad_family_fails)
{
	uint8_t buf[64];
	struct p2p_msg m, d;
	size_t n;

	sample(6, &m); /* DIALBACK: nonce then addr at offset 10 */
	n = encode(&m, buf, sizeof(buf));
	for (int fam = 0; fam < 256; fam++) {
		if (fam == 6)
			continue;
		buf[10] = (uint8_t)fam;
		cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO, "family %d",
			     fam);
	}
	m.u.dialback.addr.family = 5;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
	/* Family 0 carries port 0 only. */
	memset(&m.u.dialback.addr, 0, sizeof(m.u.dialback.addr));
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, 13);
	buf[12] = 1;
	cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO);
	m.u.dialback.addr.port = 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
}

Test(msg, counts_over_limits)
{
	uint8_t buf[4096];
	struct p2p_msg m, d;
	size_t n;

	sample(0, &m);
	n = encode(&m, buf, sizeof(buf));
	buf[2 + 1 + 7] = P2P_MAX_ADDRS + 1; /* naddrs after flags, v4 addr */
	cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO);
	m.u.hello.naddrs = P2P_MAX_ADDRS + 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);

	sample(4, &m);
	n = encode(&m, buf, sizeof(buf));
	buf[2 + 4] = P2P_MAX_NODES + 1;
	cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO);
	m.u.nodes.count = P2P_MAX_NODES + 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);

	sample(5, &m);
	n = encode(&m, buf, sizeof(buf));
	buf[2 + 8] = P2P_ROUTE_HOPS_MAX + 1;
	cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO);
	m.u.routed.hops = P2P_ROUTE_HOPS_MAX + 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
}

Test(msg, string_limits)
{
	static char longstr[P2P_REASON_MAX + 2];
	uint8_t buf[4096];
	struct p2p_msg m, d;
	size_t n;

	memset(longstr, 'r', sizeof(longstr));
	sample(9, &m);
	m.u.stream_open.service = longstr;
	m.u.stream_open.service_len = P2P_SERVICE_NAME_MAX;
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	m.u.stream_open.service_len = P2P_SERVICE_NAME_MAX + 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);
	m.u.stream_open.service_len = 0;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
	/* Service name of length 0 and 64 on the wire. */
	static const uint8_t empty[] = {1, 16, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0};
	cr_assert_eq(p2p_msg_decode(&d, empty, sizeof(empty)), -EPROTO);
	uint8_t over[12 + P2P_SERVICE_NAME_MAX + 1];
	memcpy(over, empty, sizeof(empty));
	over[11] = P2P_SERVICE_NAME_MAX + 1;
	memset(over + 12, 's', P2P_SERVICE_NAME_MAX + 1);
	cr_assert_eq(p2p_msg_decode(&d, over, sizeof(over)), -EPROTO);

	sample(8, &m);
	m.u.goaway.reason = longstr;
	m.u.goaway.len = P2P_REASON_MAX;
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.goaway.len, P2P_REASON_MAX);
	m.u.goaway.len = P2P_REASON_MAX + 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);
	/* Forge a 256-byte reason on the wire. */
	buf[3] = 1;
	buf[4] = 0;
	memset(buf + 5, 'r', 256);
	cr_assert_eq(p2p_msg_decode(&d, buf, 5 + 256), -EPROTO);

	sample(14, &m);
	m.u.reset.reason = longstr;
	m.u.reset.len = P2P_REASON_MAX + 1;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);
}

Test(msg, relay_fields_and_limits)
{
	static uint8_t big[P2P_MSG_MAX], buf[P2P_MSG_MAX + 16];
	struct p2p_msg m, d;
	size_t n;

	sample(15, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, 2 + 4 + 1 + P2P_ID_LEN);
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.relay.circ, 0x80000001u);
	cr_assert_eq(d.u.relay.code, P2P_RELAY_F_INCOMING);
	cr_assert(p2p_peerid_equal(&d.u.relay.peer, &m.u.relay.peer));
	/* Unknown flag bits: refused both ways. */
	buf[6] = 0x02;
	cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO);
	m.u.relay.code = 0x80;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);

	sample(17, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.relay.code, 1);
	cr_assert_eq(d.u.relay.len, 20);
	cr_assert_eq(memcmp(d.u.relay.reason, "no link to that peer", 20), 0);

	/* DATA: never empty, at most P2P_RELAY_DATA_MAX bytes. */
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_RELAY_DATA;
	m.u.relay.circ = 7;
	m.u.relay.data = big;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
	m.u.relay.len = P2P_RELAY_DATA_MAX;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), 0);
	cr_assert_eq(n, P2P_MSG_MAX);
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.relay.len, P2P_RELAY_DATA_MAX);
	cr_assert_eq(d.u.relay.data, buf + 6);
	m.u.relay.len++;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);
	cr_assert_eq(p2p_msg_decode(&d, buf, 6), -EPROTO);
	cr_assert_str_eq(p2p_msg_type_name(P2P_MSG_RELAY_DATA), "relay_data");

	/* CREDIT: circuit and a credit of at least one byte. */
	sample(18, &m);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, 2 + 4 + 4);
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.relay.circ, 4);
	cr_assert_eq(d.u.relay.credit, 0x00100000u);
	cr_assert_eq(p2p_msg_decode(&d, buf, n - 1), -EPROTO);
	memset(buf + 6, 0, 4);
	cr_assert_eq(p2p_msg_decode(&d, buf, n), -EPROTO);
	m.u.relay.credit = 0;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
	cr_assert_str_eq(p2p_msg_type_name(P2P_MSG_RELAY_CREDIT),
			 "relay_credit");

	/* PASS: the head of a pass frame, exactly P2P_PASS_MSG bytes; its
	 * length 1..P2P_PASS_DATA_MAX; no data of its own. */
	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_RELAY_PASS;
	m.u.relay.circ = 9;
	m.u.relay.len = P2P_PASS_DATA_MAX;
	memset(m.u.relay.tail, 0xab, P2P_PASS_TAIL);
	n = encode(&m, buf, sizeof(buf));
	cr_assert_eq(n, P2P_PASS_MSG);
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	cr_assert_eq(d.u.relay.circ, 9);
	cr_assert_eq(d.u.relay.len, P2P_PASS_DATA_MAX);
	cr_assert_null(d.u.relay.data);
	cr_assert_eq(memcmp(d.u.relay.tail, m.u.relay.tail, P2P_PASS_TAIL), 0);
	cr_assert_eq(p2p_msg_decode(&d, buf, n + 1), -EPROTO);
	m.u.relay.len++;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
	m.u.relay.len = 0;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
	cr_assert_str_eq(p2p_msg_type_name(P2P_MSG_RELAY_PASS), "relay_pass");
}

Test(msg, whole_message_limit)
{
	static uint8_t big[P2P_MSG_MAX + 16], buf[P2P_MSG_MAX + 16];
	struct p2p_msg m, d;
	size_t n;

	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_STREAM_DATA;
	m.u.stream.data = big;
	m.u.stream.len = P2P_MSG_MAX - 6; /* header 2 + stream 4 */
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), 0);
	cr_assert_eq(n, P2P_MSG_MAX);
	cr_assert_eq(p2p_msg_decode(&d, buf, n), 0);
	m.u.stream.len++;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EMSGSIZE);
	cr_assert_eq(p2p_msg_decode(&d, buf, P2P_MSG_MAX + 1), -EPROTO);
}

Test(msg, small_output_buffer)
{
	uint8_t buf[4096];
	struct p2p_msg m;
	size_t n, full;

	for (int k = 0; k < NSAMPLES; k++) {
		sample(k, &m);
		full = encode(&m, buf, sizeof(buf));
		for (size_t cap = 0; cap < full; cap++)
			cr_assert_eq(p2p_msg_encode(&m, buf, cap, &n),
				     -EMSGSIZE, "sample %d cap %zu", k, cap);
	}
	m.type = 99;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), -EINVAL);
}

/* The header a sender writes in front of data read in place is what the
 * encoder writes: the record decodes to the same stream and data. */
Test(msg, stream_data_header_matches_encoder)
{
	uint8_t buf[64], hdr[P2P_STREAM_DATA_HDR + 5];
	struct p2p_msg m = {.type = P2P_MSG_STREAM_DATA}, d;
	size_t n;

	m.u.stream.stream = 0x01020304u;
	m.u.stream.data = (const uint8_t *)"bytes";
	m.u.stream.len = 5;
	cr_assert_eq(p2p_msg_encode(&m, buf, sizeof(buf), &n), 0);
	p2p_msg_stream_data_hdr(hdr, m.u.stream.stream);
	memcpy(hdr + P2P_STREAM_DATA_HDR, "bytes", 5);
	cr_assert_eq(n, sizeof(hdr));
	cr_assert_eq(memcmp(hdr, buf, n), 0);
	cr_assert_eq(p2p_msg_decode(&d, hdr, sizeof(hdr)), 0);
	cr_assert_eq(d.type, P2P_MSG_STREAM_DATA);
	cr_assert_eq(d.u.stream.stream, 0x01020304u);
	cr_assert_eq(d.u.stream.len, 5);
}
