/*
 * Message codec. Layouts (after version u8, type u8; all big-endian):
 *   HELLO          flags u8, observed addr, naddrs u8, naddrs x addr
 *   PING, PONG     nonce u64
 *   FIND_NODE      txid u32, target id[32]
 *   NODES          txid u32, count u8, count x (id[32], addr)
 *   ROUTED         msgid u64, hops u8, src[32], dst[32], app u8, payload..
 *   DIALBACK       nonce u64, addr
 *   DIALBACK_OK    nonce u64
 *   GOAWAY         code u8, reason u16 len + bytes
 *   STREAM_OPEN    stream u32, window u32, service u16 len + bytes
 *   STREAM_ACCEPT  stream u32, window u32
 *   STREAM_DATA    stream u32, data..
 *   STREAM_WINDOW  stream u32, credit u32
 *   STREAM_FIN     stream u32
 *   STREAM_RESET   stream u32, code u8, reason u16 len + bytes
 *   RELAY_OPEN     circuit u32, flags u8 (P2P_RELAY_F_*), peer id[32]
 *   RELAY_DATA     circuit u32, data.. (at least one byte)
 *   RELAY_CLOSE    circuit u32, code u8, reason u16 len + bytes
 *   RELAY_CREDIT   circuit u32, credit u32 (at least 1)
 *   RELAY_PASS     circuit u32, len u32 (1..P2P_PASS_DATA_MAX), tail[16]
 *                  (the head of a pass frame; its data follows the record)
 * addr = family u8 (0/4/6), 0/4/16 bytes of IP, port u16 (0 for family 0).
 * Encoding is canonical: a decoded message re-encodes to the same bytes.
 */
#include <errno.h>
#include <string.h>

#include "proto/msg.h"

struct wbuf {
	uint8_t *p;
	size_t cap, len;
	bool over; /* something did not fit */
};

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool bad; /* read past the end or an invalid field */
};

static void put(struct wbuf *w, const void *src, size_t n)
{
	if (w->over || n > w->cap - w->len) {
		w->over = true;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put_uint(struct wbuf *w, uint64_t v, size_t n)
{
	uint8_t b[8];

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	put(w, b, n);
}

static const uint8_t *get(struct rbuf *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t get_uint(struct rbuf *r, size_t n)
{
	const uint8_t *p = get(r, n);
	uint64_t v = 0;

	if (p == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void get_copy(struct rbuf *r, void *dst, size_t n)
{
	const uint8_t *p = get(r, n);

	if (p != NULL)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

static size_t family_len(uint8_t family)
{
	return family == 4 ? 4 : 16;
}

static int put_addr(struct wbuf *w, const struct p2p_addr *a)
{
	if (a->family != 0 && a->family != 4 && a->family != 6)
		return -EINVAL;
	if (a->family == 0 && a->port != 0)
		return -EINVAL;
	put_uint(w, a->family, 1);
	if (a->family != 0)
		put(w, a->ip, family_len(a->family));
	put_uint(w, a->port, 2);
	return 0;
}

static void get_addr(struct rbuf *r, struct p2p_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = (uint8_t)get_uint(r, 1);
	if (a->family != 0 && a->family != 4 && a->family != 6) {
		r->bad = true;
		return;
	}
	if (a->family != 0)
		get_copy(r, a->ip, family_len(a->family));
	a->port = (uint16_t)get_uint(r, 2);
	if (a->family == 0 && a->port != 0)
		r->bad = true;
}

/* u16 length + bytes, with its own limit. */
static int put_str(struct wbuf *w, const void *s, size_t len, size_t max)
{
	if (len > max)
		return -EMSGSIZE;
	if (len > 0 && s == NULL)
		return -EINVAL;
	put_uint(w, len, 2);
	put(w, s, len);
	return 0;
}

static const char *get_str(struct rbuf *r, size_t *len, size_t min, size_t max)
{
	size_t n = (size_t)get_uint(r, 2);
	const uint8_t *p;

	if (n < min || n > max) {
		r->bad = true;
		return NULL;
	}
	p = get(r, n);
	*len = r->bad ? 0 : n;
	return (const char *)p;
}

/* The rest of the message, for payloads and stream data. */
static const uint8_t *get_rest(struct rbuf *r, size_t *len)
{
	*len = r->bad ? 0 : r->len - r->off;
	return get(r, *len);
}

static int enc_hello(struct wbuf *w, const struct p2p_msg *m)
{
	int err;

	if (m->u.hello.naddrs > P2P_MAX_ADDRS)
		return -EMSGSIZE;
	put_uint(w, m->u.hello.flags, 1);
	err = put_addr(w, &m->u.hello.observed);
	if (err)
		return err;
	put_uint(w, m->u.hello.naddrs, 1);
	for (size_t i = 0; i < m->u.hello.naddrs; i++) {
		err = put_addr(w, &m->u.hello.addrs[i]);
		if (err)
			return err;
	}
	return 0;
}

static int enc_nodes(struct wbuf *w, const struct p2p_msg *m)
{
	int err;

	if (m->u.nodes.count > P2P_MAX_NODES)
		return -EMSGSIZE;
	put_uint(w, m->u.nodes.txid, 4);
	put_uint(w, m->u.nodes.count, 1);
	for (size_t i = 0; i < m->u.nodes.count; i++) {
		put(w, m->u.nodes.nodes[i].id.b, P2P_ID_LEN);
		err = put_addr(w, &m->u.nodes.nodes[i].addr);
		if (err)
			return err;
	}
	return 0;
}

static int enc_routed(struct wbuf *w, const struct p2p_msg *m)
{
	if (m->u.routed.hops > P2P_ROUTE_HOPS_MAX)
		return -EINVAL;
	if (m->u.routed.len > 0 && m->u.routed.payload == NULL)
		return -EINVAL;
	put_uint(w, m->u.routed.msgid, 8);
	put_uint(w, m->u.routed.hops, 1);
	put(w, m->u.routed.src.b, P2P_ID_LEN);
	put(w, m->u.routed.dst.b, P2P_ID_LEN);
	put_uint(w, m->u.routed.app, 1);
	put(w, m->u.routed.payload, m->u.routed.len);
	return 0;
}

static int enc_stream(struct wbuf *w, const struct p2p_msg *m)
{
	switch (m->type) {
	case P2P_MSG_STREAM_OPEN:
		if (m->u.stream_open.service_len == 0)
			return -EINVAL;
		put_uint(w, m->u.stream_open.stream, 4);
		put_uint(w, m->u.stream_open.window, 4);
		return put_str(w, m->u.stream_open.service,
			       m->u.stream_open.service_len,
			       P2P_SERVICE_NAME_MAX);
	case P2P_MSG_STREAM_ACCEPT:
		put_uint(w, m->u.stream_open.stream, 4);
		put_uint(w, m->u.stream_open.window, 4);
		return 0;
	case P2P_MSG_STREAM_DATA:
		if (m->u.stream.len > 0 && m->u.stream.data == NULL)
			return -EINVAL;
		put_uint(w, m->u.stream.stream, 4);
		put(w, m->u.stream.data, m->u.stream.len);
		return 0;
	case P2P_MSG_STREAM_WINDOW:
		put_uint(w, m->u.stream.stream, 4);
		put_uint(w, m->u.stream.credit, 4);
		return 0;
	case P2P_MSG_STREAM_FIN:
		put_uint(w, m->u.stream.stream, 4);
		return 0;
	default: /* P2P_MSG_STREAM_RESET */
		put_uint(w, m->u.reset.stream, 4);
		put_uint(w, m->u.reset.code, 1);
		return put_str(w, m->u.reset.reason, m->u.reset.len,
			       P2P_REASON_MAX);
	}
}

static int enc_relay(struct wbuf *w, const struct p2p_msg *m)
{
	put_uint(w, m->u.relay.circ, 4);
	switch (m->type) {
	case P2P_MSG_RELAY_OPEN:
		if (m->u.relay.code & ~P2P_RELAY_F_INCOMING)
			return -EINVAL;
		put_uint(w, m->u.relay.code, 1);
		put(w, m->u.relay.peer.b, P2P_ID_LEN);
		return 0;
	case P2P_MSG_RELAY_DATA:
		if (m->u.relay.len == 0 || m->u.relay.data == NULL)
			return -EINVAL;
		put(w, m->u.relay.data, m->u.relay.len);
		return 0;
	case P2P_MSG_RELAY_CREDIT:
		if (m->u.relay.credit == 0)
			return -EINVAL;
		put_uint(w, m->u.relay.credit, 4);
		return 0;
	case P2P_MSG_RELAY_PASS:
		if (m->u.relay.len == 0 || m->u.relay.len > P2P_PASS_DATA_MAX)
			return -EINVAL;
		put_uint(w, m->u.relay.len, 4);
		put(w, m->u.relay.tail, P2P_PASS_TAIL);
		return 0;
	default: /* P2P_MSG_RELAY_CLOSE */
		put_uint(w, m->u.relay.code, 1);
		return put_str(w, m->u.relay.reason, m->u.relay.len,
			       P2P_REASON_MAX);
	}
}

static int enc_body(struct wbuf *w, const struct p2p_msg *m)
{
	switch (m->type) {
	case P2P_MSG_HELLO:
		return enc_hello(w, m);
	case P2P_MSG_PING:
	case P2P_MSG_PONG:
		put_uint(w, m->u.ping.nonce, 8);
		return 0;
	case P2P_MSG_FIND_NODE:
		put_uint(w, m->u.find_node.txid, 4);
		put(w, m->u.find_node.target.b, P2P_ID_LEN);
		return 0;
	case P2P_MSG_NODES:
		return enc_nodes(w, m);
	case P2P_MSG_ROUTED:
		return enc_routed(w, m);
	case P2P_MSG_DIALBACK:
		put_uint(w, m->u.dialback.nonce, 8);
		return put_addr(w, &m->u.dialback.addr);
	case P2P_MSG_DIALBACK_OK:
		put_uint(w, m->u.dialback.nonce, 8);
		return 0;
	case P2P_MSG_GOAWAY:
		put_uint(w, m->u.goaway.code, 1);
		return put_str(w, m->u.goaway.reason, m->u.goaway.len,
			       P2P_REASON_MAX);
	case P2P_MSG_STREAM_OPEN:
	case P2P_MSG_STREAM_ACCEPT:
	case P2P_MSG_STREAM_DATA:
	case P2P_MSG_STREAM_WINDOW:
	case P2P_MSG_STREAM_FIN:
	case P2P_MSG_STREAM_RESET:
		return enc_stream(w, m);
	case P2P_MSG_RELAY_OPEN:
	case P2P_MSG_RELAY_DATA:
	case P2P_MSG_RELAY_CLOSE:
	case P2P_MSG_RELAY_CREDIT:
	case P2P_MSG_RELAY_PASS:
		return enc_relay(w, m);
	default:
		return -EINVAL;
	}
}

int p2p_msg_encode(const struct p2p_msg *m, uint8_t *out, size_t cap,
		   size_t *outlen)
{
	struct wbuf w = {.p = out, .cap = cap};
	int err;

	if (m == NULL || outlen == NULL || (out == NULL && cap > 0))
		return -EINVAL;
	put_uint(&w, P2P_PROTO_VERSION, 1);
	put_uint(&w, m->type, 1);
	err = enc_body(&w, m);
	if (err)
		return err;
	if (w.over || w.len > P2P_MSG_MAX)
		return -EMSGSIZE;
	*outlen = w.len;
	return 0;
}

void p2p_msg_stream_data_hdr(uint8_t out[P2P_STREAM_DATA_HDR], uint32_t stream)
{
	struct wbuf w = {.p = out, .cap = P2P_STREAM_DATA_HDR};

	put_uint(&w, P2P_PROTO_VERSION, 1);
	put_uint(&w, P2P_MSG_STREAM_DATA, 1);
	put_uint(&w, stream, 4);
}

static void dec_hello(struct rbuf *r, struct p2p_msg *m)
{
	m->u.hello.flags = (uint8_t)get_uint(r, 1);
	get_addr(r, &m->u.hello.observed);
	m->u.hello.naddrs = (uint8_t)get_uint(r, 1);
	if (m->u.hello.naddrs > P2P_MAX_ADDRS) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < m->u.hello.naddrs && !r->bad; i++)
		get_addr(r, &m->u.hello.addrs[i]);
}

static void dec_nodes(struct rbuf *r, struct p2p_msg *m)
{
	m->u.nodes.txid = (uint32_t)get_uint(r, 4);
	m->u.nodes.count = (uint8_t)get_uint(r, 1);
	if (m->u.nodes.count > P2P_MAX_NODES) {
		r->bad = true;
		return;
	}
	for (size_t i = 0; i < m->u.nodes.count && !r->bad; i++) {
		get_copy(r, m->u.nodes.nodes[i].id.b, P2P_ID_LEN);
		get_addr(r, &m->u.nodes.nodes[i].addr);
	}
}

static void dec_routed(struct rbuf *r, struct p2p_msg *m)
{
	m->u.routed.msgid = get_uint(r, 8);
	m->u.routed.hops = (uint8_t)get_uint(r, 1);
	if (m->u.routed.hops > P2P_ROUTE_HOPS_MAX)
		r->bad = true;
	get_copy(r, m->u.routed.src.b, P2P_ID_LEN);
	get_copy(r, m->u.routed.dst.b, P2P_ID_LEN);
	m->u.routed.app = (uint8_t)get_uint(r, 1);
	m->u.routed.payload = get_rest(r, &m->u.routed.len);
}

static void dec_stream(struct rbuf *r, struct p2p_msg *m)
{
	switch (m->type) {
	case P2P_MSG_STREAM_OPEN:
		m->u.stream_open.stream = (uint32_t)get_uint(r, 4);
		m->u.stream_open.window = (uint32_t)get_uint(r, 4);
		m->u.stream_open.service = get_str(
		    r, &m->u.stream_open.service_len, 1, P2P_SERVICE_NAME_MAX);
		break;
	case P2P_MSG_STREAM_ACCEPT:
		m->u.stream_open.stream = (uint32_t)get_uint(r, 4);
		m->u.stream_open.window = (uint32_t)get_uint(r, 4);
		break;
	case P2P_MSG_STREAM_DATA:
		m->u.stream.stream = (uint32_t)get_uint(r, 4);
		m->u.stream.data = get_rest(r, &m->u.stream.len);
		break;
	case P2P_MSG_STREAM_WINDOW:
		m->u.stream.stream = (uint32_t)get_uint(r, 4);
		m->u.stream.credit = (uint32_t)get_uint(r, 4);
		break;
	case P2P_MSG_STREAM_FIN:
		m->u.stream.stream = (uint32_t)get_uint(r, 4);
		break;
	default: /* P2P_MSG_STREAM_RESET */
		m->u.reset.stream = (uint32_t)get_uint(r, 4);
		m->u.reset.code = (uint8_t)get_uint(r, 1);
		m->u.reset.reason =
		    get_str(r, &m->u.reset.len, 0, P2P_REASON_MAX);
		break;
	}
}

static void dec_relay(struct rbuf *r, struct p2p_msg *m)
{
	m->u.relay.circ = (uint32_t)get_uint(r, 4);
	switch (m->type) {
	case P2P_MSG_RELAY_OPEN:
		m->u.relay.code = (uint8_t)get_uint(r, 1);
		if (m->u.relay.code & ~P2P_RELAY_F_INCOMING)
			r->bad = true;
		get_copy(r, m->u.relay.peer.b, P2P_ID_LEN);
		break;
	case P2P_MSG_RELAY_DATA:
		m->u.relay.data = get_rest(r, &m->u.relay.len);
		if (m->u.relay.len == 0)
			r->bad = true;
		break;
	case P2P_MSG_RELAY_CREDIT:
		m->u.relay.credit = (uint32_t)get_uint(r, 4);
		if (m->u.relay.credit == 0)
			r->bad = true;
		break;
	case P2P_MSG_RELAY_PASS:
		m->u.relay.len = (size_t)get_uint(r, 4);
		if (m->u.relay.len == 0 || m->u.relay.len > P2P_PASS_DATA_MAX)
			r->bad = true;
		get_copy(r, m->u.relay.tail, P2P_PASS_TAIL);
		m->u.relay.data = NULL; /* the frame's, set by the link */
		break;
	default: /* P2P_MSG_RELAY_CLOSE */
		m->u.relay.code = (uint8_t)get_uint(r, 1);
		m->u.relay.reason =
		    get_str(r, &m->u.relay.len, 0, P2P_REASON_MAX);
		break;
	}
}

static int dec_body(struct rbuf *r, struct p2p_msg *m)
{
	switch (m->type) {
	case P2P_MSG_HELLO:
		dec_hello(r, m);
		return 0;
	case P2P_MSG_PING:
	case P2P_MSG_PONG:
		m->u.ping.nonce = get_uint(r, 8);
		return 0;
	case P2P_MSG_FIND_NODE:
		m->u.find_node.txid = (uint32_t)get_uint(r, 4);
		get_copy(r, m->u.find_node.target.b, P2P_ID_LEN);
		return 0;
	case P2P_MSG_NODES:
		dec_nodes(r, m);
		return 0;
	case P2P_MSG_ROUTED:
		dec_routed(r, m);
		return 0;
	case P2P_MSG_DIALBACK:
		m->u.dialback.nonce = get_uint(r, 8);
		get_addr(r, &m->u.dialback.addr);
		return 0;
	case P2P_MSG_DIALBACK_OK:
		m->u.dialback.nonce = get_uint(r, 8);
		return 0;
	case P2P_MSG_GOAWAY:
		m->u.goaway.code = (uint8_t)get_uint(r, 1);
		m->u.goaway.reason =
		    get_str(r, &m->u.goaway.len, 0, P2P_REASON_MAX);
		return 0;
	case P2P_MSG_STREAM_OPEN:
	case P2P_MSG_STREAM_ACCEPT:
	case P2P_MSG_STREAM_DATA:
	case P2P_MSG_STREAM_WINDOW:
	case P2P_MSG_STREAM_FIN:
	case P2P_MSG_STREAM_RESET:
		dec_stream(r, m);
		return 0;
	case P2P_MSG_RELAY_OPEN:
	case P2P_MSG_RELAY_DATA:
	case P2P_MSG_RELAY_CLOSE:
	case P2P_MSG_RELAY_CREDIT:
	case P2P_MSG_RELAY_PASS:
		dec_relay(r, m);
		return 0;
	default:
		return -ENOTSUP;
	}
}

int p2p_msg_decode(struct p2p_msg *m, const uint8_t *buf, size_t len)
{
	struct rbuf r = {.p = buf, .len = len};
	int err;

	if (m == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	if (len < P2P_MSG_HDR || len > P2P_MSG_MAX)
		return -EPROTO;
	if (buf[0] != P2P_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	m->type = buf[1];
	r.off = P2P_MSG_HDR;
	err = dec_body(&r, m);
	if (err)
		return err;
	if (r.bad || r.off != r.len)
		return -EPROTO;
	return 0;
}

const char *p2p_msg_type_name(uint8_t type)
{
	static const char *const names[] = {
	    [P2P_MSG_HELLO] = "hello",
	    [P2P_MSG_PING] = "ping",
	    [P2P_MSG_PONG] = "pong",
	    [P2P_MSG_FIND_NODE] = "find_node",
	    [P2P_MSG_NODES] = "nodes",
	    [P2P_MSG_ROUTED] = "routed",
	    [P2P_MSG_DIALBACK] = "dialback",
	    [P2P_MSG_DIALBACK_OK] = "dialback_ok",
	    [P2P_MSG_GOAWAY] = "goaway",
	    [P2P_MSG_STREAM_OPEN] = "stream_open",
	    [P2P_MSG_STREAM_ACCEPT] = "stream_accept",
	    [P2P_MSG_STREAM_DATA] = "stream_data",
	    [P2P_MSG_STREAM_WINDOW] = "stream_window",
	    [P2P_MSG_STREAM_FIN] = "stream_fin",
	    [P2P_MSG_STREAM_RESET] = "stream_reset",
	    [P2P_MSG_RELAY_OPEN] = "relay_open",
	    [P2P_MSG_RELAY_DATA] = "relay_data",
	    [P2P_MSG_RELAY_CLOSE] = "relay_close",
	    [P2P_MSG_RELAY_CREDIT] = "relay_credit",
	    [P2P_MSG_RELAY_PASS] = "relay_pass",
	};

	if (type < sizeof(names) / sizeof(names[0]) && names[type] != NULL)
		return names[type];
	return "unknown";
}
