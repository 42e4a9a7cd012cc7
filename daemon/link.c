/*
 * One TCP link to a peer: connect or accept, the session handshake, HELLO,
 * keepalive, bounded reads and writes, teardown. The state machine is
 * link_on_frame() over enum link_state; deadlines are checked by
 * link_tick() from the node's housekeeping timer.
 *
 * Memory rule (libuv): a link is freed only in the close callback of its
 * handle; link_destroy() starts that, and the link stays in the node's
 * list, in state LINK_CLOSING, until then.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "node_int.h"
#include "nodeutil.h"

struct wreq {
	uv_write_t req;
	struct link *l;
	size_t len;
	uint8_t data[];
};

const char *link_state_name(enum link_state s)
{
	switch (s) {
	case LINK_CONNECTING:
		return "connecting";
	case LINK_HANDSHAKE:
		return "handshake";
	case LINK_UP:
		return "up";
	case LINK_CLOSING:
		return "closing";
	}
	return "?";
}

static void on_close(uv_handle_t *h)
{
	struct link *l = h->data;
	struct p2pd_node *n = l->n;
	struct link **pp;

	for (pp = &n->links; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	p2p_framer_free(l->fr);
	p2p_session_free(l->sess);
	free(l);
	node_handle_closed(n);
}

void link_destroy(struct link *l)
{
	if (l->handle_closed)
		return;
	if (l->state != LINK_CLOSING) {
		l->state = LINK_CLOSING;
		node_link_gone(l->n, l, l->why ? l->why : "closed");
	}
	l->handle_closed = true;
	uv_close((uv_handle_t *)&l->tcp, on_close);
}

static struct link *link_new(struct p2pd_node *n, bool outbound)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->fr = p2p_framer_new(0);
	if (!l->fr || uv_tcp_init(n->loop, &l->tcp) < 0) {
		p2p_framer_free(l->fr);
		free(l);
		return NULL;
	}
	n->open_handles++;
	l->n = n;
	l->outbound = outbound;
	l->rtt_ms = -1;
	l->tcp.data = l;
	l->deadline = node_now(n) + n->limits.handshake_timeout_ms;
	l->next = n->links;
	n->links = l;
	return l;
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct link *l = w->l;

	l->wq -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED && !l->handle_closed) {
		log_debug("link %s: write: %s", l->n->id_text,
			  uv_strerror(status));
		link_destroy(l);
	} else if (status == 0 && !l->handle_closed) {
		tunnel_link_written(l); /* tunnels wait for the queue */
	}
}

static struct wreq *wreq_new(struct link *l, size_t cap)
{
	if (l->handle_closed)
		return NULL;
	if (l->wq + cap > NODE_LINK_WQ_MAX) {
		log_warnx("link to peer: write queue over %u bytes, closing",
			  NODE_LINK_WQ_MAX);
		link_destroy(l);
		return NULL;
	}
	struct wreq *w = malloc(sizeof(*w) + cap);
	if (w)
		w->l = l;
	return w;
}

/* A relayed link's transport: its bytes as RELAY_DATA on the via link. */
static int relay_write(struct link *l, const uint8_t *data, size_t len)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_DATA};
	int rc = 0;

	if (!l->via || l->relay_gone)
		return -ENOTCONN;
	m.u.relay.circ = l->circ;
	for (size_t off = 0; off < len && rc == 0; off += m.u.relay.len) {
		m.u.relay.data = data + off;
		m.u.relay.len = len - off < P2P_RELAY_DATA_MAX
				    ? len - off
				    : P2P_RELAY_DATA_MAX;
		rc = link_send_msg(l->via, &m);
	}
	return rc;
}

static int wreq_send(struct wreq *w, size_t len)
{
	struct link *l = w->l;
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
	int rc;

	if (l->relayed) {
		rc = relay_write(l, w->data, len);
		free(w);
		if (rc < 0)
			link_destroy(l);
		return rc;
	}
	w->len = len;
	l->wq += len;
	rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_write);
	if (rc < 0) {
		l->wq -= len;
		free(w);
		link_destroy(l);
	}
	return rc;
}

/* A whole frame (header included), e.g. a handshake frame. */
static int link_write_frame(struct link *l, const uint8_t *data, size_t len)
{
	struct wreq *w = wreq_new(l, len);

	if (!w)
		return -ENOBUFS;
	memcpy(w->data, data, len);
	return wreq_send(w, len);
}

int link_send_raw(struct link *l, const uint8_t *msg, size_t len)
{
	size_t cap = len + P2P_RECORD_OVERHEAD, out;
	struct wreq *w;
	int rc;

	if (!l->sess || !p2p_session_established(l->sess))
		return -ENOTCONN;
	w = wreq_new(l, cap);
	if (!w)
		return -ENOBUFS;
	rc = p2p_session_seal(l->sess, msg, len, w->data, cap, &out);
	if (rc < 0) {
		free(w);
		return rc;
	}
	return wreq_send(w, out);
}

int link_send_msg(struct link *l, const struct p2p_msg *m)
{
	uint8_t buf[P2P_MSG_MAX];
	size_t len;
	int rc = p2p_msg_encode(m, buf, sizeof(buf), &len);

	if (rc < 0) {
		log_warnx("cannot encode %s: %s", p2p_msg_type_name(m->type),
			  p2p_strerror(rc));
		return rc;
	}
	return link_send_raw(l, buf, len);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct link *l = req->data;

	if (status < 0 && !l->handle_closed)
		link_destroy(l);
}

/*
 * Leave the link: say GOAWAY when the session is up, half-close, and wait
 * (bounded by NODE_CLOSE_GRACE_MS) for the peer's EOF so that what we sent
 * last is read, not lost to a reset.
 */
void link_close(struct link *l, uint8_t code, const char *reason)
{
	struct p2pd_node *n = l->n;
	bool can_send;

	if (l->state == LINK_CLOSING)
		return;
	can_send = l->state == LINK_UP;
	l->state = LINK_CLOSING;
	node_link_gone(n, l, reason);
	if (!can_send) {
		link_destroy(l);
		return;
	}
	struct p2p_msg m = {.type = P2P_MSG_GOAWAY};
	m.u.goaway.code = code;
	m.u.goaway.reason = reason;
	m.u.goaway.len = strlen(reason);
	l->shut.data = l;
	/* Stopping: best effort, nobody waits for the peer's EOF. */
	if (link_send_msg(l, &m) < 0 || l->handle_closed || n->stopping ||
	    uv_shutdown(&l->shut, (uv_stream_t *)&l->tcp, on_shutdown) < 0) {
		link_destroy(l);
		return;
	}
	l->deadline = node_now(n) + NODE_CLOSE_GRACE_MS;
}

static void link_bad(struct link *l, const char *what, int err)
{
	char a[P2P_ADDR_TEXT_MAX];

	if (node_bad_input_log(l->n, &l->remote)) {
		p2p_addr_format(&l->remote, a, sizeof(a));
		log_warnx("link %s: %s: %s; closing", a, what,
			  p2p_strerror(err));
	}
	l->why = what;
	link_destroy(l);
}

static void send_hello(struct link *l)
{
	struct p2p_msg m;

	node_fill_hello(l->n, l, &m);
	link_send_msg(l, &m);
}

static void on_established(struct link *l)
{
	struct p2pd_node *n = l->n;

	l->peer = *p2p_session_peer(l->sess);
	l->state = LINK_UP;
	l->last_rx = l->last_ping = node_now(n);
	if (p2p_peerid_equal(&l->peer, &n->ident.id)) {
		log_info("connected to ourselves; closing that link");
		link_close(l, 0, "self connection");
		return;
	}
	/* A punched link that turned responder (see on_hs_frame) checks
	 * the peer's ID here: the responder side of the handshake does not. */
	if (l->has_expect && !p2p_peerid_equal(&l->peer, &l->expect)) {
		l->why = "not the expected peer";
		link_destroy(l);
		return;
	}
	if (l->purpose == LP_DIALBACK) {
		struct p2p_msg m = {.type = P2P_MSG_DIALBACK_OK};
		m.u.dialback.nonce = l->dialback_nonce;
		link_send_msg(l, &m);
		link_close(l, 0, "dial-back done");
		return;
	}
	/*
	 * A peer completed a handshake on our listener: someone could dial
	 * us, which is the reachability that matters for the first nodes of
	 * a network (and on loopback), before any dial-back was asked for.
	 * Decided before our HELLO goes out so that it already says server.
	 */
	if (!l->outbound && !l->relayed && !punch_running(n, &l->peer))
		node_set_server(n, "a peer dialled our listener");
	send_hello(l);
}

static struct link *dial_once(struct p2pd_node *n, const struct p2p_addr *addr,
			      const struct sockaddr_storage *ss,
			      const struct p2p_peerid *expect,
			      enum link_purpose p, bool reuse, int ttl,
			      int *err);

/*
 * Our dial and the peer's dial to us met on one TCP connection (a
 * simultaneous open: both left from their listen ports, see link_dial, at
 * the same moment), so both ends are initiators and each got the other's
 * frame 1. Both ends see it, and each dials again from a fresh port, where
 * the two dials cannot meet; the duplicate rule then keeps one link.
 * Whoever waits on this link (a bootstrap, the overlay) waits on the new
 * one.
 */
static void redial_fresh(struct link *l)
{
	struct p2pd_node *n = l->n;
	struct sockaddr_storage ss;
	socklen_t slen;
	struct link *d = NULL;
	int err;

	log_debug("simultaneous open with a peer's dial: dialling again");
	if (node_addr_to_sockaddr(&l->remote, &ss, &slen) == 0)
		d = dial_once(n, &l->remote, &ss,
			      l->has_expect ? &l->expect : NULL, l->purpose,
			      false, 0, &err);
	if (d) {
		d->boot = l->boot;
		d->ov_dial = l->ov_dial;
		d->dialback_nonce = l->dialback_nonce;
		for (struct pending *p = n->pend; p; p = p->next)
			if (p->link == l)
				p->link = d;
		l->boot = l->ov_dial = false;
	}
	l->why = "simultaneous open";
	link_destroy(l);
}

static void on_hs_frame(struct link *l, const uint8_t *body, size_t len)
{
	uint8_t out[P2P_HS_MAX];
	size_t outlen = 0;
	int rc;

	if (l->outbound && l->punched && p2p_session_is_frame1(body, len) &&
	    !p2p_session_established(l->sess)) {
		/*
		 * A punch is a simultaneous open on purpose: both ends
		 * connected and sent frame 1. The roles follow the IDs: the
		 * lower ID stays initiator and ignores the peer's frame 1;
		 * the higher one becomes the responder and answers it.
		 */
		struct p2p_session *r;
		if (memcmp(l->n->ident.id.b, l->expect.b, P2P_ID_LEN) < 0)
			return;
		r = p2p_session_new(&l->n->ident, false, NULL);
		if (!r) {
			link_destroy(l);
			return;
		}
		p2p_session_free(l->sess);
		l->sess = r;
		/* From here on the link is one the peer initiated, as far
		 * as roles go: stream ID parity, the duplicate tie-break. */
		l->outbound = false;
	} else if (l->outbound && !l->relayed &&
		   p2p_session_is_frame1(body, len)) {
		/* A relayed link has no peer address to dial again: there
		 * a frame 1 fails the handshake below. */
		redial_fresh(l);
		return;
	}
	rc = p2p_session_handshake(l->sess, body, len, out, sizeof(out),
				   &outlen);
	if (outlen > 0 && link_write_frame(l, out, outlen) < 0)
		return;
	if (rc < 0) {
		l->n->stats.hs_failed++;
		link_bad(l, "handshake failed", rc);
		return;
	}
	if (rc == 1)
		on_established(l);
}

static void on_hello(struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = l->n;
	bool server = m->u.hello.flags & P2P_HELLO_SERVER;
	bool first = !l->hello_rx;

	if (node_hello_dial_addr(m->u.hello.addrs, m->u.hello.naddrs,
				 &l->remote, &l->peer_dial) < 0)
		memset(&l->peer_dial, 0, sizeof(l->peer_dial));
	if (!first && server == l->peer_server)
		return;
	l->peer_server = server;
	l->hello_rx = true;
	l->deadline = 0;
	/* A punched link's peer is a NATed host, not an observer of our
	 * overlay mapping (and may see our LAN address). */
	if (first && l->outbound && !l->punched && !l->relayed)
		p2p_nat_observe(n->nat, node_now(n), &l->local,
				&m->u.hello.observed, &l->peer);
	node_link_hello(n, l, &m->u.hello.observed, first);
}

static void on_pong(struct link *l, uint64_t nonce)
{
	if (l->ping_nonce && nonce == l->ping_nonce) {
		l->rtt_ms = (double)(uv_hrtime() - l->ping_sent_hr) / 1e6;
		l->ping_nonce = 0;
	}
	node_pong(l->n, l, nonce);
}

static void on_msg(struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = l->n;
	int rc;

	if (l->purpose == LP_DIALBACK)
		return; /* we only came to say DIALBACK_OK */
	if (m->type == P2P_MSG_GOAWAY) {
		char id[P2P_ID_TEXT_LEN + 1];
		p2p_peerid_to_text(&l->peer, id);
		log_debug("peer %s: goaway: %.*s", id, (int)m->u.goaway.len,
			  m->u.goaway.reason);
		link_destroy(l);
		return;
	}
	if (m->type == P2P_MSG_DIALBACK_OK) {
		node_dialback_ok(n, l, m->u.dialback.nonce);
		return;
	}
	if (!l->hello_rx && m->type != P2P_MSG_HELLO) {
		link_bad(l, "message before HELLO", -EPROTO);
		return;
	}
	/* A relayed link carries tunnels and keepalive, not the overlay. */
	if (l->relayed && m->type != P2P_MSG_HELLO && m->type != P2P_MSG_PING &&
	    m->type != P2P_MSG_PONG &&
	    (m->type < P2P_MSG_STREAM_OPEN || m->type > P2P_MSG_STREAM_RESET)) {
		n->stats.unknown_msgs++;
		return;
	}
	switch (m->type) {
	case P2P_MSG_HELLO:
		on_hello(l, m);
		break;
	case P2P_MSG_PING: {
		struct p2p_msg r = {.type = P2P_MSG_PONG};
		r.u.ping.nonce = m->u.ping.nonce;
		link_send_msg(l, &r);
		break;
	}
	case P2P_MSG_PONG:
		on_pong(l, m->u.ping.nonce);
		break;
	case P2P_MSG_FIND_NODE:
	case P2P_MSG_NODES:
	case P2P_MSG_ROUTED:
		rc = p2p_overlay_recv(n->ov, node_now(n), &l->peer, m);
		if (rc == -EPROTO) {
			n->stats.bad_msgs++;
			link_bad(l, "bad overlay message", rc);
		}
		break;
	case P2P_MSG_DIALBACK:
		node_dialback_request(n, l, m);
		break;
	case P2P_MSG_STREAM_OPEN:
	case P2P_MSG_STREAM_ACCEPT:
	case P2P_MSG_STREAM_DATA:
	case P2P_MSG_STREAM_WINDOW:
	case P2P_MSG_STREAM_FIN:
	case P2P_MSG_STREAM_RESET:
		tunnel_on_msg(l, m);
		break;
	case P2P_MSG_RELAY_OPEN:
	case P2P_MSG_RELAY_DATA:
	case P2P_MSG_RELAY_CLOSE:
		relay_on_msg(l, m);
		break;
	default:
		n->stats.unknown_msgs++;
		break;
	}
}

static void on_record(struct link *l, const uint8_t *body, size_t len)
{
	struct p2pd_node *n = l->n;
	struct p2p_msg m;
	size_t mlen;
	int rc;

	rc = p2p_session_open(l->sess, body, len, n->mbuf, sizeof(n->mbuf),
			      &mlen);
	if (rc < 0) {
		n->stats.bad_frames++;
		link_bad(l, "bad record", rc);
		return;
	}
	l->last_rx = node_now(n);
	rc = p2p_msg_decode(&m, n->mbuf, mlen);
	if (rc == -ENOTSUP) {
		n->stats.unknown_msgs++;
		return;
	}
	if (rc < 0) {
		n->stats.bad_msgs++;
		link_bad(l, "undecodable message", rc);
		return;
	}
	on_msg(l, &m);
}

/* The link's state machine: one frame body in. */
static void link_on_frame(struct link *l, const uint8_t *body, size_t len)
{
	switch (l->state) {
	case LINK_HANDSHAKE:
		on_hs_frame(l, body, len);
		break;
	case LINK_UP:
		on_record(l, body, len);
		break;
	case LINK_CONNECTING:
	case LINK_CLOSING:
		break; /* nothing is read in these states */
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct link *l = h->data;

	/* One shared buffer: read_cb consumes it before the next read. */
	*buf = uv_buf_init((char *)l->n->rbuf, sizeof(l->n->rbuf));
}

/* Bytes of the link's stream in: frames out to the state machine. */
static void link_feed(struct link *l, const uint8_t *data, size_t len)
{
	size_t off = 0;

	while (off < len && l->state != LINK_CLOSING && !l->handle_closed) {
		const uint8_t *body;
		size_t blen;
		ssize_t k = p2p_framer_feed(l->fr, data + off, len - off);
		if (k < 0) {
			l->n->stats.bad_frames++;
			link_bad(l, "bad frame", (int)k);
			break;
		}
		off += (size_t)k;
		if (p2p_framer_frame(l->fr, &body, &blen))
			link_on_frame(l, body, blen);
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct link *l = s->data;
	struct p2pd_node *n = l->n;

	if (nread < 0) {
		if (l->state != LINK_CLOSING)
			log_debug("link: %s", nread == UV_EOF
						  ? "closed by peer"
						  : uv_strerror((int)nread));
		link_destroy(l);
		node_drain(n);
		return;
	}
	link_feed(l, (const uint8_t *)buf->base, (size_t)nread);
	node_drain(n);
}

/*
 * RELAY_DATA for a relayed link. The bytes point into the node's message
 * buffer, which the link's own records are decrypted into: copied first.
 */
void link_relay_input(struct link *l, const uint8_t *data, size_t len)
{
	struct p2pd_node *n = l->n;

	if (len > sizeof(n->relay_buf))
		return; /* the codec never gives more */
	memcpy(n->relay_buf, data, len);
	link_feed(l, n->relay_buf, len);
}

struct link *link_new_relayed(struct p2pd_node *n, struct link *via,
			      uint32_t circ, bool initiator,
			      const struct p2p_peerid *peer)
{
	/* The TCP handle is never opened: it only gives the relayed link
	 * the same close path (and memory rule) as every other link. */
	struct link *l = link_new(n, initiator);
	uint8_t out[P2P_HS_MAX];
	size_t outlen;

	if (!l)
		return NULL;
	l->relayed = true;
	l->via = via;
	l->circ = circ;
	l->remote = via->remote;
	l->local = via->local;
	l->has_expect = true; /* the responder checks it in on_established */
	l->expect = *peer;
	l->state = LINK_HANDSHAKE;
	l->sess =
	    p2p_session_new(&n->ident, initiator, initiator ? peer : NULL);
	if (!l->sess) {
		link_destroy(l);
		return NULL;
	}
	if (initiator) {
		if (p2p_session_start(l->sess, out, sizeof(out), &outlen) < 0) {
			link_destroy(l);
			return NULL;
		}
		link_write_frame(l, out, outlen);
		if (l->handle_closed)
			return NULL;
	}
	return l;
}

static void record_addrs(struct link *l)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0)
		node_addr_from_sockaddr(&l->local, (struct sockaddr *)&ss);
	len = sizeof(ss);
	if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) == 0)
		node_addr_from_sockaddr(&l->remote, (struct sockaddr *)&ss);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct link *l = req->data;
	uint8_t out[P2P_HS_MAX];
	size_t outlen;

	if (status == UV_ECANCELED || l->state == LINK_CLOSING)
		return;
	if (status < 0) {
		char a[P2P_ADDR_TEXT_MAX];
		p2p_addr_format(&l->remote, a, sizeof(a));
		log_debug("dial %s: %s", a, uv_strerror(status));
		l->why = uv_strerror(status);
		link_destroy(l);
		node_drain(l->n);
		return;
	}
	record_addrs(l);
	uv_tcp_nodelay(&l->tcp, 1);
	l->state = LINK_HANDSHAKE;
	if (l->punched) {
		uv_os_fd_t fd;
		/* A prime's minimum TTL is for its SYN only. */
		if (uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0)
			p2p_nat_sock_min_ttl(fd, l->remote.family, 0);
	}
	if (l->punch)
		punch_link_connected(l->n, l);
	if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) < 0 ||
	    p2p_session_start(l->sess, out, sizeof(out), &outlen) < 0) {
		link_destroy(l);
		node_drain(l->n);
		return;
	}
	link_write_frame(l, out, outlen);
}

/*
 * The socket an overlay dial leaves from: the node's listen port of the
 * remote's family (STUNT style, see nat.h), so that every peer observes
 * the same local port and the classifier sees the NAT's mapping. Any IP:
 * the route picks the source. A negative return means "ephemeral port".
 */
static int dial_socket(struct p2pd_node *n, int family)
{
	struct p2p_addr a = {.family = family};
	struct sockaddr_storage ss;
	socklen_t slen;

	for (size_t i = 0; i < n->nlisten; i++) {
		if (n->listeners[i].addr.family != family)
			continue;
		a.port = n->listeners[i].addr.port;
		if (node_addr_to_sockaddr(&a, &ss, &slen) < 0)
			return -EINVAL;
		return p2p_nat_sock_bound((struct sockaddr *)&ss, slen);
	}
	return -ENOENT;
}

static struct link *dial_once(struct p2pd_node *n, const struct p2p_addr *addr,
			      const struct sockaddr_storage *ss,
			      const struct p2p_peerid *expect,
			      enum link_purpose p, bool reuse, int ttl,
			      int *err)
{
	struct link *l;
	int rc = 0, fd = reuse ? dial_socket(n, addr->family) : -ENOENT;

	l = link_new(n, true);
	if (!l) {
		if (fd >= 0)
			close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	l->state = LINK_CONNECTING;
	l->purpose = p;
	l->remote = *addr;
	if (expect) {
		l->has_expect = true;
		l->expect = *expect;
	}
	if (fd >= 0 && uv_tcp_open(&l->tcp, fd) < 0) {
		close(fd);
		rc = -EBADF;
	} else if (fd >= 0 && ttl > 0) {
		/* A prime (nat/punch.h): a short TTL for the SYN, and the
		 * "time exceeded" it provokes must not kill the socket. */
		rc = p2p_nat_sock_ttl(fd, addr->family, ttl);
		if (rc == 0)
			rc = p2p_nat_sock_min_ttl(fd, addr->family, ttl);
	}
	l->sess = p2p_session_new(&n->ident, true, expect);
	l->conn.data = l;
	if (rc == 0)
		rc = l->sess ? uv_tcp_connect(&l->conn, &l->tcp,
					      (const struct sockaddr *)ss,
					      on_connect)
			     : -ENOMEM;
	/* The SYN is out: what follows (retransmissions, the SYN-ACK of a
	 * simultaneous open) goes with the normal TTL. */
	if (rc == 0 && fd >= 0 && ttl > 0)
		rc = p2p_nat_sock_ttl(fd, addr->family, -1);
	if (rc < 0) {
		/* Not a failure of the peer: nobody hears about this link. */
		l->state = LINK_CLOSING;
		l->handle_closed = true;
		uv_close((uv_handle_t *)&l->tcp, on_close);
		*err = rc;
		return NULL;
	}
	return l;
}

/* What every outgoing connection checks first: a usable address, and
 * room under limits.max_links. */
static int dial_admit(struct p2pd_node *n, const struct p2p_addr *addr,
		      struct sockaddr_storage *ss)
{
	socklen_t slen;

	if (node_addr_to_sockaddr(addr, ss, &slen) < 0 || addr->port == 0)
		return -EINVAL;
	if (node_count_links(n) >= n->limits.max_links)
		return -EMFILE;
	return 0;
}

struct link *link_dial(struct p2pd_node *n, const struct p2p_addr *addr,
		       const struct p2p_peerid *expect, enum link_purpose p,
		       int *err)
{
	struct sockaddr_storage ss;
	struct link *l;

	if ((*err = dial_admit(n, addr, &ss)) < 0)
		return NULL;
	/* From the listen port first; where that four-tuple is taken (a
	 * second link to the same address, TIME_WAIT), from a fresh port. */
	l = dial_once(n, addr, &ss, expect, p, true, 0, err);
	if (!l && p2p_nat_sock_retry_unbound(*err))
		l = dial_once(n, addr, &ss, expect, p, false, 0, err);
	return l;
}

struct link *link_punch(struct p2pd_node *n, const struct p2p_addr *addr,
			const struct p2p_peerid *expect, int ttl, int *err)
{
	struct sockaddr_storage ss;
	struct link *l;

	if ((*err = dial_admit(n, addr, &ss)) < 0)
		return NULL;
	l = dial_once(n, addr, &ss, expect, LP_OVERLAY, true, ttl, err);
	if (l)
		l->punched = true;
	return l;
}

int link_accept(struct p2pd_node *n, uv_stream_t *server)
{
	struct link *l = link_new(n, false);
	int rc;

	if (!l)
		return -ENOMEM;
	l->state = LINK_HANDSHAKE;
	rc = uv_accept(server, (uv_stream_t *)&l->tcp);
	if (rc == 0 && node_count_links(n) > n->limits.max_links) {
		n->stats.links_refused++;
		rc = -EMFILE;
	}
	if (rc == 0) {
		record_addrs(l);
		uv_tcp_nodelay(&l->tcp, 1);
		l->sess = p2p_session_new(&n->ident, false, NULL);
		rc = l->sess ? uv_read_start((uv_stream_t *)&l->tcp, on_alloc,
					     on_read)
			     : -ENOMEM;
	}
	if (rc < 0) {
		l->state = LINK_CLOSING;
		l->handle_closed = true;
		uv_close((uv_handle_t *)&l->tcp, on_close);
	}
	return rc;
}

/* Keepalive PING; its PONG also measures the link's rtt. */
void link_ping(struct link *l)
{
	struct p2p_msg m = {.type = P2P_MSG_PING};

	randombytes_buf(&m.u.ping.nonce, sizeof(m.u.ping.nonce));
	m.u.ping.nonce |= 1; /* 0 means "none in flight" */
	l->ping_nonce = m.u.ping.nonce;
	l->ping_sent_hr = uv_hrtime();
	l->last_ping = node_now(l->n);
	link_send_msg(l, &m);
}

void link_tick(struct link *l, uint64_t now)
{
	struct p2pd_node *n = l->n;

	if (l->handle_closed)
		return;
	if (l->state == LINK_CLOSING) {
		if (now >= l->deadline)
			link_destroy(l);
		return;
	}
	if (l->deadline && now >= l->deadline) {
		link_bad(l, "handshake timeout", -ETIMEDOUT);
		return;
	}
	if (l->state != LINK_UP || !l->hello_rx)
		return;
	if (now - l->last_rx >= n->limits.idle_timeout_ms) {
		log_info("link: idle for %u ms, closing",
			 n->limits.idle_timeout_ms);
		link_close(l, 0, "idle timeout");
		return;
	}
	if (now - l->last_ping >= n->limits.keepalive_ms)
		link_ping(l);
}
