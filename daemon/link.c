/*
 * Links (link.h): connect or accept, the session handshake, HELLO,
 * keepalive, bounded reads and writes, deferred teardown. The state
 * machine is link_on_frame() over enum link_state; deadlines are one of
 * the hub's clocks (link_next/link_expire).
 *
 * Memory rule (libuv): a link is freed only in the close callback of its
 * handle. Teardown is two steps: link_fail()/link_close() mark the link,
 * and link_after(), run by the hub after the current input, announces it
 * (gone) and closes the handle. A relayed link has a TCP handle that is
 * never opened, so that it shares that path.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "nat/nat.h"
#include "nodeutil.h"
#include "proto/frame.h"
#include "proto/session.h"

enum link_state {
	LINK_CONNECTING, /* outbound TCP connect in progress */
	LINK_HANDSHAKE,	 /* session handshake frames */
	LINK_UP,	 /* established: HELLO, then messages */
	LINK_CLOSING,	 /* GOAWAY sent, waiting for the peer's EOF */
	LINK_DEAD,	 /* to be closed by link_after */
};

struct link {
	struct link *next;
	struct p2pd_node *n;
	uint32_t id;
	uv_tcp_t tcp;
	uv_connect_t conn;
	uv_shutdown_t shut;
	enum link_state state;
	enum link_purpose purpose;
	enum link_kind kind;
	bool outbound;
	bool has_expect;
	bool hello_rx;	    /* peer's HELLO arrived: the link counts as up */
	bool punch_attempt; /* link_punch: a simultaneous open on purpose */
	bool gone_sent;	    /* observers told */
	bool handle_closed;
	bool peer_server;
	struct p2p_peerid expect;
	struct p2p_peerid peer; /* valid once the handshake is done */
	struct p2p_framer *fr;
	struct p2p_session *sess;
	struct p2p_addr local, remote;
	struct p2p_addr peer_dial; /* where the peer can be dialled (HELLO) */
	struct p2p_addr observed;  /* where the peer sees us (HELLO) */
	uint64_t deadline;	   /* handshake deadline, or close grace */
	uint64_t last_rx, last_ping;
	uint64_t ping_nonce, ping_sent_hr; /* keepalive PING in flight */
	double rtt_ms;			   /* < 0 until measured */
	uint64_t dialback_nonce;	   /* LP_DIALBACK: nonce to send */
	size_t wq;			   /* bytes queued for writing */
	unsigned users;
	const char *why; /* static reason for the close */
	const struct link_transport *tr;
	void *tr_ctx;
	uint64_t born;		      /* node_now() at creation */
	uint64_t bytes_in, bytes_out; /* of its stream, framing included */
};

struct links {
	struct link *list;
	uint32_t next_id;
	bool dirty; /* a link was marked: link_after has work */
	uint8_t rbuf[64 * 1024];
	uint8_t mbuf[P2P_MSG_MAX + P2P_RECORD_OVERHEAD];
	uint8_t tbuf[P2P_MSG_MAX]; /* link_input */
};

struct wreq {
	uv_write_t req;
	struct link *l;
	size_t len;
	uint8_t data[];
};

static bool usable(const struct link *l)
{
	return l->state < LINK_CLOSING;
}

int link_module_init(struct p2pd_node *n)
{
	n->links = calloc(1, sizeof(*n->links));
	return n->links ? 0 : -ENOMEM;
}

/* ---- names and properties ---- */

uint32_t link_id(const struct link *l)
{
	return l->id;
}

struct link *link_get(struct p2pd_node *n, uint32_t id)
{
	if (id == 0 || !n->links)
		return NULL;
	for (struct link *l = n->links->list; l; l = l->next)
		if (l->id == id)
			return usable(l) ? l : NULL;
	return NULL;
}

static struct link *skip_unusable(struct link *l)
{
	while (l && !usable(l))
		l = l->next;
	return l;
}

struct link *link_first(struct p2pd_node *n)
{
	return skip_unusable(n->links->list);
}

struct link *link_next_of(struct link *l)
{
	return skip_unusable(l->next);
}

size_t link_count(struct p2pd_node *n)
{
	size_t c = 0;

	for (struct link *l = link_first(n); l; l = link_next_of(l))
		c++;
	return c;
}

bool link_is_up(const struct link *l)
{
	return l->state == LINK_UP && l->hello_rx;
}

bool link_established(const struct link *l)
{
	return l->state == LINK_UP;
}

bool link_hello_rx(const struct link *l)
{
	return l->hello_rx;
}

const struct p2p_addr *link_observed(const struct link *l)
{
	return &l->observed;
}

size_t link_count_up(struct p2pd_node *n)
{
	size_t c = 0;

	for (struct link *l = link_first(n); l; l = link_next_of(l))
		c += link_is_up(l) && l->purpose == LP_OVERLAY;
	return c;
}

struct link *link_find_up(struct p2pd_node *n, const struct p2p_peerid *peer,
			  unsigned kinds)
{
	for (struct link *l = link_first(n); l; l = link_next_of(l))
		if (link_is_up(l) && l->purpose == LP_OVERLAY &&
		    (kinds & (1u << l->kind)) &&
		    p2p_peerid_equal(&l->peer, peer))
			return l;
	return NULL;
}

bool link_dialling(struct p2pd_node *n, const struct p2p_peerid *id)
{
	for (struct link *l = link_first(n); l; l = link_next_of(l))
		if (l->purpose == LP_OVERLAY &&
		    ((l->has_expect && p2p_peerid_equal(&l->expect, id)) ||
		     (l->state == LINK_UP && p2p_peerid_equal(&l->peer, id))))
			return true;
	return false;
}

bool link_outbound(const struct link *l)
{
	return l->outbound;
}

enum link_kind link_kind(const struct link *l)
{
	return l->kind;
}

void link_set_kind(struct link *l, enum link_kind k)
{
	l->kind = k;
}

enum link_purpose link_purpose(const struct link *l)
{
	return l->purpose;
}

const struct p2p_peerid *link_peer(const struct link *l)
{
	return &l->peer;
}

const struct p2p_peerid *link_expect(const struct link *l)
{
	return l->has_expect ? &l->expect : NULL;
}

const struct p2p_addr *link_remote(const struct link *l)
{
	return &l->remote;
}

const struct p2p_addr *link_local(const struct link *l)
{
	return &l->local;
}

const struct p2p_addr *link_dial_addr(const struct link *l)
{
	return l->peer_dial.family ? &l->peer_dial : &l->remote;
}

bool link_peer_server(const struct link *l)
{
	return l->peer_server;
}

double link_rtt(const struct link *l)
{
	return l->rtt_ms;
}

uint64_t link_bytes_in(const struct link *l)
{
	return l->bytes_in;
}

uint64_t link_bytes_out(const struct link *l)
{
	return l->bytes_out;
}

uint64_t link_born(const struct link *l)
{
	return l->born;
}

size_t link_queued(const struct link *l)
{
	return l->tr ? l->tr->queued(l->tr_ctx) : l->wq;
}

void link_hold(struct link *l)
{
	l->users++;
}

void link_release(struct link *l)
{
	if (l->users > 0)
		l->users--;
}

unsigned link_users(const struct link *l)
{
	return l->users;
}

void link_set_dialback_nonce(struct link *l, uint64_t nonce)
{
	l->dialback_nonce = nonce;
}

/* ---- life ---- */

static void on_close(uv_handle_t *h)
{
	struct link *l = h->data;
	struct p2pd_node *n = l->n;

	for (struct link **pp = &n->links->list; *pp; pp = &(*pp)->next) {
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

void link_fail(struct link *l, const char *why)
{
	if (l->state == LINK_DEAD)
		return;
	if (!l->why)
		l->why = why;
	l->state = LINK_DEAD;
	l->n->links->dirty = true;
}

/*
 * After the current input: announce what was marked (an observer may
 * mark more, so until nothing changes), then close the dead handles.
 */
bool link_after(void *arg)
{
	struct p2pd_node *n = arg;
	struct link *l;
	bool did = false;

	while (n->links->dirty) {
		n->links->dirty = false;
		for (l = n->links->list; l; l = l->next) {
			if (l->state < LINK_CLOSING || l->gone_sent)
				continue;
			l->gone_sent = true;
			did = true;
			node_emit_gone(n, l, l->why ? l->why : "closed");
			n->links->dirty = true;
			break; /* observers may have added links */
		}
	}
	for (l = n->links->list; l; l = l->next) {
		if (l->state != LINK_DEAD || l->handle_closed)
			continue;
		l->handle_closed = true;
		did = true;
		if (l->tr) {
			l->tr->close(l->tr_ctx);
			l->tr = NULL;
		}
		uv_close((uv_handle_t *)&l->tcp, on_close);
	}
	return did;
}

void link_close_all(struct p2pd_node *n)
{
	for (struct link *l = n->links->list; l; l = l->next)
		link_fail(l, "shutting down");
	link_after(n);
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
	node_handle_opened(n);
	l->n = n;
	l->id = ++n->links->next_id;
	if (l->id == 0) /* 2^32 links later: 0 means "none" */
		l->id = ++n->links->next_id;
	l->outbound = outbound;
	l->born = node_now(n);
	l->rtt_ms = -1;
	l->tcp.data = l;
	l->deadline = node_now(n) + n->limits.handshake_timeout_ms;
	l->next = n->links->list;
	n->links->list = l;
	return l;
}

/* A link nobody has heard of yet (a failed dial): closed silently. */
static void link_drop_silent(struct link *l)
{
	l->state = LINK_DEAD;
	l->gone_sent = true;
	l->handle_closed = true;
	uv_close((uv_handle_t *)&l->tcp, on_close);
}

/* ---- writing ---- */

void link_writable(struct link *l)
{
	if (usable(l))
		node_emit_writable(l->n, l);
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct link *l = w->l;

	l->wq -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		log_debug("link %s: write: %s", l->n->id_text,
			  uv_strerror(status));
		link_fail(l, "write failed");
	} else if (status == 0) {
		link_writable(l); /* tunnels wait for the queue */
	}
}

static struct wreq *wreq_new(struct link *l, size_t cap)
{
	if (l->state == LINK_DEAD)
		return NULL;
	if (l->wq + cap > LINK_WQ_MAX) {
		log_warnx("link to peer: write queue over %u bytes, closing",
			  LINK_WQ_MAX);
		link_fail(l, "write queue full");
		return NULL;
	}
	struct wreq *w = malloc(sizeof(*w) + cap);
	if (w)
		w->l = l;
	return w;
}

static int wreq_send(struct wreq *w, size_t len)
{
	struct link *l = w->l;
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
	int rc;

	l->bytes_out += len;
	l->n->stats.bytes_out += len;
	if (l->tr) {
		rc = l->tr->write(l->tr_ctx, w->data, len);
		free(w);
		if (rc < 0)
			link_fail(l, "relay circuit failed");
		return rc;
	}
	w->len = len;
	l->wq += len;
	rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_write);
	if (rc < 0) {
		l->wq -= len;
		free(w);
		link_fail(l, "write failed");
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

	if (l->state != LINK_UP || !l->sess ||
	    !p2p_session_established(l->sess))
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

	if (status < 0)
		link_fail(l, l->why);
}

/*
 * Leave the link: say GOAWAY when the session is up, half-close, and wait
 * (bounded by LINK_CLOSE_GRACE_MS) for the peer's EOF so that what we sent
 * last is read, not lost to a reset.
 */
void link_close(struct link *l, uint8_t code, const char *reason)
{
	struct p2pd_node *n = l->n;
	struct p2p_msg m = {.type = P2P_MSG_GOAWAY};

	if (!usable(l))
		return;
	if (l->state != LINK_UP) {
		link_fail(l, reason);
		return;
	}
	m.u.goaway.code = code;
	m.u.goaway.reason = reason;
	m.u.goaway.len = strlen(reason);
	l->shut.data = l;
	/* Stopping: best effort, nobody waits for the peer's EOF. A relayed
	 * link has no stream to half-close: its circuit is closed. */
	if (link_send_msg(l, &m) < 0 || n->stopping || l->tr ||
	    uv_shutdown(&l->shut, (uv_stream_t *)&l->tcp, on_shutdown) < 0) {
		link_fail(l, reason);
		return;
	}
	l->why = reason;
	l->state = LINK_CLOSING;
	l->deadline = node_now(n) + LINK_CLOSE_GRACE_MS;
	n->links->dirty = true;
}

/* ---- reading ---- */

static void link_bad(struct link *l, const char *what, int err)
{
	char a[P2P_ADDR_TEXT_MAX];

	if (node_bad_input_log(l->n, &l->remote)) {
		p2p_addr_format(&l->remote, a, sizeof(a));
		log_warnx("link %s: %s: %s; closing", a, what,
			  p2p_strerror(err));
	}
	link_fail(l, what);
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
	/* A punched link that turned responder (see on_hs_frame) and a
	 * relayed responder check the peer's ID here: the responder side of
	 * the handshake does not. */
	if (l->has_expect && !p2p_peerid_equal(&l->peer, &l->expect)) {
		link_fail(l, "not the expected peer");
		return;
	}
	if (l->purpose == LP_DIALBACK) {
		struct p2p_msg m = {.type = P2P_MSG_DIALBACK_OK};
		m.u.dialback.nonce = l->dialback_nonce;
		link_send_msg(l, &m);
		link_close(l, 0, "dial-back done");
		return;
	}
	/* Observers first: what they learn (a punched link, reachability)
	 * goes into the HELLO we send. */
	node_emit_established(n, l);
	if (usable(l))
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
 * the two dials cannot meet; the duplicate rule then keeps one link. The
 * new link takes this one's ID: whoever waits on it waits on the new one.
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
		uint32_t id = d->id;
		d->id = l->id;
		l->id = id;
		d->dialback_nonce = l->dialback_nonce;
		d->users = l->users;
		l->users = 0;
		/* The old one goes silently: its ID lives on in d. */
		l->gone_sent = true;
	}
	link_fail(l, "simultaneous open");
}

static void on_hs_frame(struct link *l, const uint8_t *body, size_t len)
{
	uint8_t out[P2P_HS_MAX];
	size_t outlen = 0;
	int rc;

	if (l->outbound && l->punch_attempt &&
	    p2p_session_is_frame1(body, len) &&
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
			link_fail(l, "out of memory");
			return;
		}
		p2p_session_free(l->sess);
		l->sess = r;
		/* From here on the link is one the peer initiated, as far
		 * as roles go: stream ID parity, the duplicate tie-break. */
		l->outbound = false;
	} else if (l->outbound && !l->tr && p2p_session_is_frame1(body, len)) {
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
	bool server = m->u.hello.flags & P2P_HELLO_SERVER;
	bool first = !l->hello_rx;

	if (node_hello_dial_addr(m->u.hello.addrs, m->u.hello.naddrs,
				 &l->remote, &l->peer_dial) < 0)
		memset(&l->peer_dial, 0, sizeof(l->peer_dial));
	if (!first && server == l->peer_server)
		return;
	l->peer_server = server;
	l->observed = m->u.hello.observed;
	l->hello_rx = true;
	l->deadline = 0;
	node_emit_up(l->n, l, first);
}

static void on_pong(struct link *l, uint64_t nonce)
{
	if (l->ping_nonce && nonce == l->ping_nonce) {
		l->rtt_ms = (double)(uv_hrtime() - l->ping_sent_hr) / 1e6;
		l->ping_nonce = 0;
	}
}

static void on_msg(struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = l->n;
	const struct node_msg_handler *h = node_msg_handler(n, m->type);
	bool own = m->type == P2P_MSG_HELLO || m->type == P2P_MSG_PING ||
		   m->type == P2P_MSG_PONG;

	if (l->purpose == LP_DIALBACK)
		return; /* we only came to say DIALBACK_OK */
	if (m->type == P2P_MSG_GOAWAY) {
		char id[P2P_ID_TEXT_LEN + 1];
		p2p_peerid_to_text(&l->peer, id);
		log_debug("peer %s: goaway: %.*s", id, (int)m->u.goaway.len,
			  m->u.goaway.reason);
		link_fail(l, "closed");
		return;
	}
	if (!l->hello_rx && m->type != P2P_MSG_HELLO &&
	    !(h && (h->flags & NODE_MSG_BEFORE_HELLO))) {
		link_bad(l, "message before HELLO", -EPROTO);
		return;
	}
	/* A relayed link carries tunnels and keepalive, not the overlay. */
	if (l->kind == LINK_RELAY && !own &&
	    !(h && (h->flags & NODE_MSG_ON_RELAYED))) {
		n->stats.unknown_msgs++;
		return;
	}
	switch (m->type) {
	case P2P_MSG_HELLO:
		on_hello(l, m);
		return;
	case P2P_MSG_PING: {
		struct p2p_msg r = {.type = P2P_MSG_PONG};
		r.u.ping.nonce = m->u.ping.nonce;
		link_send_msg(l, &r);
		return;
	}
	case P2P_MSG_PONG:
		on_pong(l, m->u.ping.nonce);
		break; /* a registered handler sees it too (ping) */
	default:
		break;
	}
	if (h)
		h->fn(h->arg, l, m);
	else if (m->type != P2P_MSG_PONG)
		n->stats.unknown_msgs++;
}

static void on_record(struct link *l, const uint8_t *body, size_t len)
{
	struct p2pd_node *n = l->n;
	struct p2p_msg m;
	size_t mlen;
	int rc;

	rc = p2p_session_open(l->sess, body, len, n->links->mbuf,
			      sizeof(n->links->mbuf), &mlen);
	if (rc < 0) {
		n->stats.bad_frames++;
		link_bad(l, "bad record", rc);
		return;
	}
	l->last_rx = node_now(n);
	rc = p2p_msg_decode(&m, n->links->mbuf, mlen);
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
	case LINK_DEAD:
		break; /* nothing is read in these states */
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct link *l = h->data;

	/* One shared buffer: read_cb consumes it before the next read. */
	*buf =
	    uv_buf_init((char *)l->n->links->rbuf, sizeof(l->n->links->rbuf));
}

/* Bytes of the link's stream in: frames out to the state machine. */
static void link_feed(struct link *l, const uint8_t *data, size_t len)
{
	size_t off = 0;

	l->bytes_in += len;
	l->n->stats.bytes_in += len;
	while (off < len && usable(l)) {
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

	if (nread < 0) {
		if (usable(l))
			log_debug("link: %s", nread == UV_EOF
						  ? "closed by peer"
						  : uv_strerror((int)nread));
		uv_read_stop(s);
		link_fail(l, "closed");
		return;
	}
	link_feed(l, (const uint8_t *)buf->base, (size_t)nread);
}

/*
 * Bytes from a transport (RELAY_DATA for a relayed link). They may point
 * into the message buffer the via link's records are decrypted into,
 * which this link's own records use too: copied first.
 */
void link_input(struct link *l, const uint8_t *data, size_t len)
{
	struct links *ls = l->n->links;

	if (len > sizeof(ls->tbuf))
		return; /* the codec never gives more */
	memcpy(ls->tbuf, data, len);
	link_feed(l, ls->tbuf, len);
}

struct link *link_open_on(struct p2pd_node *n, const struct link_transport *tr,
			  void *ctx, bool initiator,
			  const struct p2p_peerid *peer,
			  const struct p2p_addr *remote,
			  const struct p2p_addr *local)
{
	/* The TCP handle is never opened: it only gives the link the same
	 * close path (and memory rule) as every other link. */
	struct link *l = link_new(n, initiator);
	uint8_t out[P2P_HS_MAX];
	size_t outlen;

	if (!l)
		return NULL;
	l->kind = LINK_RELAY;
	l->remote = *remote;
	l->local = *local;
	l->has_expect = true; /* the responder checks it in on_established */
	l->expect = *peer;
	l->state = LINK_HANDSHAKE;
	l->sess =
	    p2p_session_new(&n->ident, initiator, initiator ? peer : NULL);
	if (!l->sess ||
	    (initiator &&
	     p2p_session_start(l->sess, out, sizeof(out), &outlen) < 0)) {
		link_drop_silent(l);
		return NULL;
	}
	l->tr = tr;
	l->tr_ctx = ctx;
	if (initiator)
		link_write_frame(l, out, outlen);
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

	if (status == UV_ECANCELED || !usable(l))
		return;
	if (status < 0) {
		char a[P2P_ADDR_TEXT_MAX];
		p2p_addr_format(&l->remote, a, sizeof(a));
		log_debug("dial %s: %s", a, uv_strerror(status));
		link_fail(l, uv_strerror(status));
		return;
	}
	record_addrs(l);
	uv_tcp_nodelay(&l->tcp, 1);
	l->state = LINK_HANDSHAKE;
	if (l->punch_attempt) {
		uv_os_fd_t fd;
		/* A prime's minimum TTL is for its SYN only. */
		if (uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0)
			p2p_nat_sock_min_ttl(fd, l->remote.family, 0);
	}
	node_emit_connected(l->n, l);
	if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) < 0 ||
	    p2p_session_start(l->sess, out, sizeof(out), &outlen) < 0) {
		link_fail(l, "cannot start the handshake");
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

	a.port = node_listen_port(n, family);
	if (a.port == 0)
		return -ENOENT;
	if (node_addr_to_sockaddr(&a, &ss, &slen) < 0)
		return -EINVAL;
	return p2p_nat_sock_bound((struct sockaddr *)&ss, slen);
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
		link_drop_silent(l);
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
	if (link_count(n) >= n->limits.max_links)
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
	if (l) {
		l->punch_attempt = true;
		l->kind = LINK_DIRECT;
	}
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
	if (rc == 0 && link_count(n) > n->limits.max_links) {
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
	if (rc < 0)
		link_drop_silent(l);
	return rc;
}

/* ---- time ---- */

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

static uint64_t link_deadline(const struct link *l, const struct p2pd_node *n)
{
	uint64_t t = UINT64_MAX;

	if (l->state == LINK_DEAD)
		return t;
	if (l->deadline)
		t = l->deadline;
	if (l->state == LINK_UP && l->hello_rx) {
		uint64_t idle = l->last_rx + n->limits.idle_timeout_ms;
		uint64_t ka = l->last_ping + n->limits.keepalive_ms;
		if (idle < t)
			t = idle;
		if (ka < t)
			t = ka;
	}
	return t;
}

uint64_t link_next(void *arg)
{
	struct p2pd_node *n = arg;
	uint64_t t = UINT64_MAX;

	for (struct link *l = n->links->list; l; l = l->next) {
		uint64_t d = link_deadline(l, n);
		if (d < t)
			t = d;
	}
	return t;
}

static void link_tick(struct link *l, uint64_t now)
{
	struct p2pd_node *n = l->n;

	if (l->state == LINK_DEAD)
		return;
	if (l->state == LINK_CLOSING) {
		if (now >= l->deadline)
			link_fail(l, l->why);
		return;
	}
	if (l->deadline && now >= l->deadline) {
		l->deadline = 0;
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

void link_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;

	for (struct link *l = n->links->list; l; l = l->next)
		link_tick(l, now);
}
