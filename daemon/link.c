/*
 * Links (link.h): the I/O glue of core/linkfsm. This file connects,
 * accepts, reads, queues writes and tears down; the protocol (framing,
 * the handshake and its roles, HELLO, keepalive, idle, GOAWAY, the
 * per-type rules) is the link's p2p_linkfsm, fed with bytes and events
 * and polled for actions after every call (link_run). Its deadlines are
 * one of the hub's clocks (link_next/link_expire).
 *
 * The fsm's clock is uv_hrtime() in microseconds (the rtt keeps its
 * sub-millisecond precision); the hub's is uv_now() in milliseconds, the
 * same monotonic clock read coarser, so a deadline rounded up to the
 * millisecond has passed for the fsm when the hub's timer fires.
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

#include "admit.h"
#include "bufq.h"
#include "core/linkfsm.h"
#include "link.h"
#include "log.h"
#include "nat/nat.h"
#include "nodeutil.h"
#include "proto/session.h"
#include "tcpopt.h"

enum link_state {
	LINK_CONNECTING, /* outbound TCP connect in progress */
	LINK_HANDSHAKE,	 /* session handshake frames */
	LINK_UP,	 /* established: HELLO, then messages */
	LINK_CLOSING,	 /* GOAWAY sent, waiting for the peer's EOF */
	LINK_DEAD,	 /* to be closed by link_after */
};

/* What an outgoing connection is for the handshake (dial_once). */
enum dial_kind {
	DIAL_PLAIN,
	DIAL_PUNCH,	 /* a punch attempt; the peer asked for it */
	DIAL_PUNCH_LEAD, /* ... we asked: we stay initiator */
};

struct link {
	struct link *next;
	struct p2pd_node *n;
	uint32_t id;
	uv_tcp_t tcp;
	uv_connect_t conn;
	enum link_state state;
	enum link_purpose purpose;
	enum link_kind kind;
	bool outbound;
	bool has_expect;
	bool punch_attempt; /* link_punch: a simultaneous open on purpose */
	bool hello_early;   /* our HELLO left with frame 2 (responder) */
	uint32_t reset_quiet_ms; /* link_reset_quiet_ms */
	bool gone_sent;		 /* observers told */
	bool handle_closed;
	bool rst;	   /* close with a reset: no TIME_WAIT (link_after) */
	bool goaway_rx;	   /* the peer closed it: GOAWAY */
	bool read_paused;  /* LINK_WQ_READ_STOP: reading stopped */
	bool relay_credit; /* the peer's HELLO: P2P_HELLO_RELAY_CREDIT */
	bool relay_pass;   /* ... P2P_HELLO_RELAY_PASS */
	uint32_t hs_ms;	   /* handshake deadline if not the configured one */
	struct p2p_peerid expect;
	struct p2p_peerid peer;	 /* valid once the handshake is done */
	struct p2p_linkfsm *fsm; /* the protocol; NULL only before start */
	struct p2p_addr local, remote;
	struct p2p_addr peer_dial; /* where the peer can be dialled (HELLO) */
	struct p2p_addr observed;  /* where the peer sees us (HELLO) */
	uint64_t dialback_nonce;   /* LP_DIALBACK: nonce to send */
	/* Writing (see "writing" below): sealed records queued in pooled
	 * chunks, one uv_write at a time, flushed before the loop waits. */
	struct bufq q;
	uv_write_t wreq;
	struct link *flush_next; /* on links.flush */
	bool flush_listed;
	/* Reading: a pooled chunk while bytes are held (a partial frame
	 * at rb[rb_off .. rb_off + rb_len)); none on an idle link. */
	uint8_t *rb;
	size_t rb_off, rb_len;
	bool rb_held;  /* counted in links.rb_held */
	bool in_place; /* messages point into rb until the read is done */
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
	bool dirty;	     /* a link was marked: link_after has work */
	bool reap;	     /* a link is dead: link_after closes its handle */
	struct bufpool pool; /* chunks of the links' queues and reads */
	struct link *flush;  /* links with records not yet written */
	unsigned rb_held;    /* links keeping a read chunk between reads */
	uint8_t *data_rec;   /* the record link_data_reserve set aside */
	size_t data_cap;
	/* The relayed link whose record its transport placed (reserve):
	 * its commit goes back there. NULL: the record is in scratch. */
	struct link *placed;
	/* A relayed link's record, sealed here and copied by its transport
	 * when it has no place for it. */
	uint8_t scratch[P2P_FRAME_HDR + P2P_FRAME_MAX];
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

struct bufpool *link_bufpool(struct p2pd_node *n)
{
	return &n->links->pool;
}

void link_module_free(struct p2pd_node *n)
{
	if (n->links)
		bufpool_drain(&n->links->pool);
	free(n->links);
	n->links = NULL;
}

/* ---- names and properties ---- */

uint32_t link_reset_quiet_ms(const struct link *l)
{
	return l->reset_quiet_ms;
}

void link_set_keepalive_of(struct link *l, uint32_t keepalive_ms)
{
	if (l->fsm)
		p2p_linkfsm_set_keepalive(l->fsm, keepalive_ms);
}

void link_set_keepalive(struct p2pd_node *n, uint32_t keepalive_ms)
{
	n->limits.keepalive_ms = keepalive_ms;
	for (struct link *l = n->links->list; l; l = l->next)
		link_set_keepalive_of(l, keepalive_ms);
}

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

/* The fsm's clock (see the top of this file). */
static uint64_t now_us(void)
{
	return uv_hrtime() / 1000;
}

bool link_is_up(const struct link *l)
{
	return l->state == LINK_UP && link_hello_rx(l);
}

bool link_established(const struct link *l)
{
	return l->state == LINK_UP;
}

bool link_hello_rx(const struct link *l)
{
	return l->fsm && p2p_linkfsm_hello_rx(l->fsm);
}

bool link_goaway_rx(const struct link *l)
{
	return l->goaway_rx;
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
	return l->fsm && p2p_linkfsm_peer_server(l->fsm);
}

bool link_peer_relay_credit(const struct link *l)
{
	return l->relay_credit;
}

bool link_peer_relay_pass(const struct link *l)
{
	return l->relay_pass;
}

double link_rtt(const struct link *l)
{
	return l->fsm ? p2p_linkfsm_rtt(l->fsm) : -1;
}

const char *link_cipher(const struct link *l)
{
	return p2p_suite_name(l->fsm ? p2p_linkfsm_suite(l->fsm) : 0);
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

bool link_input_held(const struct link *l)
{
	return l->in_place;
}

size_t link_queued(const struct link *l)
{
	return l->tr ? l->tr->queued(l->tr_ctx) : bufq_len(&l->q);
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
	if (l->fsm)
		p2p_linkfsm_set_dialback_nonce(l->fsm, nonce);
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
	admit_release(n->admit, l->id); /* a pending slot, if any */
	/* Not on the flush list: link_flush drops dead links from it. */
	for (struct link **pp = &n->links->flush; *pp;
	     pp = &(*pp)->flush_next) {
		if (*pp == l) {
			*pp = l->flush_next;
			break;
		}
	}
	/* libuv has called back every write (ECANCELED) before this. */
	bufq_free(&l->q);
	bufpool_put(&n->links->pool, l->rb);
	if (l->rb_held)
		n->links->rb_held--;
	p2p_linkfsm_free(l->fsm);
	free(l);
	node_handle_closed(n);
}

void link_abort(struct link *l, const char *why)
{
	if (l->state != LINK_DEAD)
		l->rst = true;
	link_fail(l, why);
}

void link_fail(struct link *l, const char *why)
{
	if (l->state == LINK_DEAD)
		return;
	/* A punch attempt that dies before its session is up (given up,
	 * handshake failed) holds the listen-port four-tuple to the peer's
	 * candidate: closed with a FIN it would stay in FIN_WAIT or
	 * TIME_WAIT for up to a minute, and every later prime or SYN to
	 * that candidate would fail with "address not available". Nothing
	 * on it is worth a FIN yet. */
	if (l->punch_attempt && l->state < LINK_UP)
		l->rst = true;
	if (!l->why)
		l->why = why;
	l->state = LINK_DEAD;
	l->n->links->dirty = true;
	l->n->links->reap = true;
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
	/* The pass runs before every wait: walk the list only when a link
	 * died (a transport's close may kill another: the next pass). */
	if (!n->links->reap)
		return did;
	n->links->reap = false;
	for (l = n->links->list; l; l = l->next) {
		if (l->state != LINK_DEAD || l->handle_closed)
			continue;
		l->handle_closed = true;
		did = true;
		if (l->tr) {
			l->tr->close(l->tr_ctx);
			l->tr = NULL;
		} else if (l->rst &&
			   uv_tcp_close_reset(&l->tcp, on_close) == 0) {
			continue;
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
	if (uv_tcp_init(n->loop, &l->tcp) < 0) {
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
	bufq_init(&l->q, &n->links->pool);
	l->tcp.data = l;
	l->wreq.data = l;
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

static void fsm_random(void *arg, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

/* The link's protocol: its fsm, with the node's limits and the policy of
 * the registered message handlers. 0 or -ENOMEM. */
static int link_start(struct link *l, const struct p2p_linkfsm_role *role)
{
	struct p2pd_node *n = l->n;
	struct p2p_linkfsm_config c = {
	    .self = &n->ident,
	    .handshake_ms =
		l->hs_ms ? l->hs_ms : n->limits.handshake_timeout_ms,
	    .keepalive_ms = n->limits.keepalive_ms,
	    .idle_ms = n->limits.idle_timeout_ms,
	    .grace_ms = LINK_CLOSE_GRACE_MS,
	    .random = fsm_random,
	};

	for (unsigned t = 0; t < 256; t++) {
		const struct node_msg_handler *h = node_msg_handler(n, t);
		if (h && (h->flags & NODE_MSG_BEFORE_HELLO))
			p2p_linkfsm_types_set(&c.before_hello, t);
		if (h && (h->flags & NODE_MSG_ON_RELAYED))
			p2p_linkfsm_types_set(&c.on_relayed, t);
	}
	l->fsm = p2p_linkfsm_new(&c, role, now_us());
	return l->fsm ? 0 : -ENOMEM;
}

/* ---- writing ---- */

void link_writable(struct link *l)
{
	if (usable(l))
		node_emit_writable(l->n, l);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/*
 * Records are sealed straight into the link's queue (bufq.h: pooled
 * chunks, nothing allocated per record) and written before the loop
 * waits again (link_flush, the last after-input hook): everything a turn
 * produced (data, window credit, pings) leaves in one writev, tried at
 * once; what the socket does not take goes as one uv_write of several
 * buffers, and what is queued behind it waits for its completion.
 */
static void want_flush(struct link *l)
{
	if (l->flush_listed || l->state == LINK_DEAD)
		return;
	l->flush_listed = true;
	l->flush_next = l->n->links->flush;
	l->n->links->flush = l;
}

/* The queue shrank: reading again (harden9), tunnels told. */
static void drained(struct link *l)
{
	if (l->read_paused && bufq_len(&l->q) <= LINK_WQ_READ_RESUME &&
	    usable(l) &&
	    uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) == 0)
		l->read_paused = false; /* harden9 */
	link_writable(l);		/* tunnels wait for the queue */
}

static void on_write(uv_write_t *req, int status)
{
	struct link *l = req->data;

	bufq_written(&l->q);
	if (status < 0 && status != UV_ECANCELED) {
		log_debug("link %s: write: %s", l->n->id_text,
			  uv_strerror(status));
		link_fail(l, "write failed");
		return;
	}
	if (status < 0)
		return;
	drained(l);
	want_flush(l); /* what was queued behind it, if anything */
}

static void bufs_of(uv_buf_t *b, const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		b[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
}

static ssize_t io_try(void *ctx, const struct iovec *iov, int n)
{
	struct link *l = ctx;
	uv_buf_t b[BUFQ_IOV_MAX];

	bufs_of(b, iov, n);
	return uv_try_write((uv_stream_t *)&l->tcp, b, (unsigned)n);
}

static int io_write(void *ctx, const struct iovec *iov, int n)
{
	struct link *l = ctx;
	uv_buf_t b[BUFQ_IOV_MAX];

	bufs_of(b, iov, n);
	return uv_write(&l->wreq, (uv_stream_t *)&l->tcp, b, (unsigned)n,
			on_write);
}

static const struct bufq_io link_io = {io_try, io_write};

/* Write what is queued. */
static void flush_one(struct link *l)
{
	ssize_t k;

	if (l->state == LINK_DEAD)
		return;
	k = bufq_flush(&l->q, &link_io, l);
	if (k < 0) {
		log_debug("link %s: write: %s", l->n->id_text,
			  uv_strerror((int)k));
		link_fail(l, "write failed");
		return;
	}
	if (k > 0)
		drained(l);
}

bool link_flush(void *arg)
{
	struct p2pd_node *n = arg;
	bool did = false;

	/* Flushing tells tunnels the queue drained; they may queue more:
	 * until the list stays empty. */
	while (n->links->flush) {
		struct link *l = n->links->flush;
		n->links->flush = l->flush_next;
		l->flush_next = NULL;
		l->flush_listed = false;
		flush_one(l);
		did |= l->state == LINK_DEAD; /* link_after has work */
	}
	return did;
}

/* harden9: bytes queued by every link (LINK_WQ_TOTAL_MAX). */
static size_t wq_total(struct p2pd_node *n)
{
	size_t t = 0;

	for (struct link *l = n->links->list; l; l = l->next)
		t += bufq_len(&l->q);
	return t;
}

/* Room for a record of up to cap bytes: in the queue, or for a relayed
 * link where its transport places it (say in the queue of the link to
 * the relay, behind a pass frame's head), else in the scratch buffer its
 * transport copies from. One link_commit or link_unreserve follows. */
static uint8_t *link_reserve(struct link *l, size_t cap)
{
	uint8_t *p;

	if (l->state == LINK_DEAD)
		return NULL;
	if (l->tr) {
		l->n->links->placed = NULL;
		if (l->tr->reserve && (p = l->tr->reserve(l->tr_ctx, cap))) {
			l->n->links->placed = l;
			return p;
		}
		return cap <= sizeof(l->n->links->scratch)
			   ? l->n->links->scratch
			   : NULL;
	}
	if (bufq_len(&l->q) + cap > LINK_WQ_MAX ||
	    (bufq_len(&l->q) > LINK_WQ_SHARE &&
	     wq_total(l->n) > LINK_WQ_TOTAL_MAX)) {
		log_warnx("link to peer: write queue over %u bytes, closing",
			  LINK_WQ_MAX);
		link_fail(l, "write queue full");
		return NULL;
	}
	p = bufq_reserve(&l->q, cap);
	if (!p)
		link_fail(l, "out of memory");
	return p;
}

/* Whether the last link_reserve on l went where its transport placed it
 * (and no longer: this gives it back to the caller). */
static bool take_placed(struct link *l)
{
	if (!l->tr || l->n->links->placed != l)
		return false;
	l->n->links->placed = NULL;
	return true;
}

/* The room the last link_reserve set aside goes unused. */
static void link_unreserve(struct link *l)
{
	if (take_placed(l))
		(void)l->tr->commit(l->tr_ctx, 0);
	else if (!l->tr)
		bufq_commit(&l->q, 0);
}

/* len bytes at the last link_reserve are a record (or frame): queued. */
static int link_commit(struct link *l, size_t len)
{
	bool placed = take_placed(l);
	int rc;

	l->bytes_out += len;
	l->n->stats.bytes_out += len;
	if (l->tr) {
		rc = placed
			 ? l->tr->commit(l->tr_ctx, len)
			 : l->tr->write(l->tr_ctx, l->n->links->scratch, len);
		if (rc < 0)
			link_fail(l, "relay circuit failed");
		return rc;
	}
	bufq_commit(&l->q, len);
	if (bufq_unsent(&l->q) >= LINK_FLUSH_BYTES)
		flush_one(l); /* a failure marks the link dead */
	else
		want_flush(l);
	return 0;
}

/* A whole frame (header included), e.g. a handshake frame. */
static int link_write_frame(struct link *l, const uint8_t *data, size_t len)
{
	uint8_t *p = link_reserve(l, len);

	if (!p)
		return -ENOBUFS;
	memcpy(p, data, len);
	return link_commit(l, len);
}

int link_send_raw(struct link *l, const uint8_t *msg, size_t len)
{
	size_t cap = len + P2P_RECORD_OVERHEAD, out;
	uint8_t *p;
	int rc;

	if (l->state != LINK_UP)
		return -ENOTCONN;
	p = link_reserve(l, cap);
	if (!p)
		return -ENOBUFS;
	/* Sealed straight into the queue: no copy. */
	rc = p2p_linkfsm_seal(l->fsm, msg, len, p, cap, &out);
	if (rc < 0) {
		link_unreserve(l);
		return rc;
	}
	return link_commit(l, out);
}

int link_send_pass(struct link *l, uint32_t circ, const uint8_t *data,
		   size_t len)
{
	uint8_t *p;

	if (l->state != LINK_UP)
		return -ENOTCONN;
	if (l->tr || !l->relay_pass)
		return -EINVAL; /* a caller's bug: not negotiated */
	if (len == 0 || len > P2P_PASS_DATA_MAX)
		return -EMSGSIZE;
	if (!(p = link_pass_reserve(l, len)))
		return -ENOBUFS;
	memcpy(p, data, len); /* the one copy of the scratch path */
	return link_pass_commit(l, circ, p, len);
}

uint8_t *link_pass_reserve(struct link *l, size_t len)
{
	const size_t hdr = P2P_FRAME_HDR + P2P_PASS_HDR;
	uint8_t *p;

	if (l->state != LINK_UP || l->tr || !l->relay_pass || len == 0 ||
	    len > P2P_PASS_DATA_MAX)
		return NULL;
	p = link_reserve(l, hdr + len);
	return p ? p + hdr : NULL;
}

int link_pass_commit(struct link *l, uint32_t circ, uint8_t *data, size_t len)
{
	uint8_t *p = data - P2P_FRAME_HDR - P2P_PASS_HDR;
	size_t out;
	int rc;

	if (len == 0 || l->state != LINK_UP) {
		link_unreserve(l);
		return len == 0 ? 0 : -ENOTCONN;
	}
	/* A failure is the caller's: the relayed link fails, not l. */
	rc = p2p_linkfsm_seal_pass_head(l->fsm, circ, p, len, &out);
	if (rc < 0) {
		link_unreserve(l);
		return rc;
	}
	return link_commit(l, out);
}

uint8_t *link_data_reserve(struct link *l, size_t cap)
{
	const size_t hdr = P2P_FRAME_HDR + P2P_STREAM_DATA_HDR;

	l->n->links->data_rec = NULL;
	if (l->state != LINK_UP || cap == 0 ||
	    cap > P2P_MSG_MAX - P2P_STREAM_DATA_HDR)
		return NULL;
	l->n->links->data_cap = hdr + cap + P2P_AEAD_TAG;
	l->n->links->data_rec = link_reserve(l, l->n->links->data_cap);
	return l->n->links->data_rec ? l->n->links->data_rec + hdr : NULL;
}

int link_data_commit(struct link *l, uint32_t stream, size_t len)
{
	uint8_t *p = l->n->links->data_rec, *msg;
	size_t out;
	int rc;

	l->n->links->data_rec = NULL;
	if (!p)
		return -EINVAL;
	if (len == 0 || l->state != LINK_UP) {
		link_unreserve(l); /* the room goes unused */
		return len == 0 ? 0 : -ENOTCONN;
	}
	msg = p + P2P_FRAME_HDR;
	/* The data is where a record's plaintext goes: the header in
	 * front, sealed in place (session.h: msg may be out + 4). */
	p2p_msg_stream_data_hdr(msg, stream);
	rc = p2p_linkfsm_seal(l->fsm, msg, P2P_STREAM_DATA_HDR + len, p,
			      l->n->links->data_cap, &out);
	if (rc < 0) {
		link_unreserve(l);
		link_fail(l, "cannot seal");
		return rc;
	}
	return link_commit(l, out);
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

static void link_run(struct link *l);

/*
 * Leave the link: the fsm says GOAWAY when the session is up (CLOSING,
 * see on_closing), and the link waits (bounded by LINK_CLOSE_GRACE_MS)
 * for the peer to read it and close.
 *
 * Neither end sends a FIN. A link leaves from the listen port to the
 * peer's listen port (punched links, dials from the listen port): the
 * end that closed first would hold that four-tuple in TIME_WAIT for a
 * minute, and every connect() from the listen port to that peer (the
 * next punch, a re-dial after `disconnect`) would fail with "address not
 * available". So the peer resets the link once it has read our GOAWAY
 * (on_done), and we reset it when it is gone or the grace is over: what
 * either end sent has been read by then, and a reset leaves no
 * TIME_WAIT behind at either end.
 */
void link_close(struct link *l, uint8_t code, const char *reason)
{
	if (!usable(l))
		return;
	if (l->state != LINK_UP) {
		link_fail(l, reason);
		return;
	}
	p2p_linkfsm_close(l->fsm, now_us(), code, reason);
	link_run(l);
}

/* The fsm wrote GOAWAY: wait for the peer to close. */
static void on_closing(struct link *l, const struct p2p_linkfsm_action *a)
{
	struct p2pd_node *n = l->n;

	if (a->cause == P2P_LINKFSM_C_SELF)
		log_info("connected to ourselves; closing that link");
	else if (a->cause == P2P_LINKFSM_C_IDLE)
		log_info("link: idle for %u ms, closing",
			 n->limits.idle_timeout_ms);
	/* Stopping: best effort, nobody waits for the peer. A relayed link
	 * has no stream of its own: its circuit is closed. */
	if (n->stopping || l->tr) {
		link_fail(l, a->why);
		return;
	}
	/* No half-close (see link_close): the GOAWAY goes out with this
	 * turn's writes, and the link is reset once the peer has gone. */
	l->rst = true;
	want_flush(l);
	l->why = a->why;
	l->state = LINK_CLOSING;
	n->links->dirty = true;
}

/* ---- the fsm's actions ---- */

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
	l->state = LINK_UP;
	admit_release(l->n->admit, l->id); /* authenticated now */
	/* Observers first: what they learn (a punched link, reachability)
	 * goes into the HELLO we send. A responder sent its HELLO with
	 * frame 2 already (on_early); should what they learn change it (we
	 * became a server), they send it again themselves. */
	node_emit_established(l->n, l);
	if (usable(l) && !l->hello_early)
		send_hello(l);
}

/*
 * Responder: frame 2 is written and our HELLO can go with it, so that
 * the initiator's link is up one round trip after the TCP handshake
 * instead of two (proto/session.h). It carries nothing the peer could
 * not learn by finishing a handshake with any identity.
 */
static void on_early(struct link *l)
{
	struct p2p_msg m;

	if (!usable(l))
		return;
	node_fill_hello(l->n, l, &m);
	if (p2p_linkfsm_send_msg(l->fsm, &m) == 0)
		l->hello_early = true;
}

static struct link *dial_once(struct p2pd_node *n, const struct p2p_addr *addr,
			      const struct sockaddr_storage *ss,
			      const struct p2p_peerid *expect,
			      enum link_purpose p, int punch, int ttl,
			      bool reuse, int *err);

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
			      DIAL_PLAIN, 0, false, &err);
	if (d) {
		uint32_t id = d->id;
		d->id = l->id;
		l->id = id;
		link_set_dialback_nonce(d, l->dialback_nonce);
		d->users = l->users;
		l->users = 0;
		/* The old one goes silently: its ID lives on in d. */
		l->gone_sent = true;
	}
	link_fail(l, "simultaneous open");
}

static void on_hello(struct link *l, const struct p2p_linkfsm_action *a)
{
	const struct p2p_msg *m = a->msg;

	if (node_hello_dial_addr(m->u.hello.addrs, m->u.hello.naddrs,
				 &l->remote, &l->peer_dial) < 0)
		memset(&l->peer_dial, 0, sizeof(l->peer_dial));
	/* Once said, kept: circuits decide on it when they open. */
	if (m->u.hello.flags & P2P_HELLO_RELAY_CREDIT)
		l->relay_credit = true;
	if (m->u.hello.flags & P2P_HELLO_RELAY_PASS)
		l->relay_pass = true;
	if (!a->announce)
		return;
	l->observed = m->u.hello.observed;
	node_emit_up(l->n, l, a->first);
}

/* A message the link does not own: to the handler of its type. */
static void on_msg(struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = l->n;
	const struct node_msg_handler *h = node_msg_handler(n, m->type);

	if (h)
		h->fn(h->arg, l, m);
	else if (m->type != P2P_MSG_PONG)
		n->stats.unknown_msgs++;
}

/* The link is over, in the fsm's words: counted, logged, marked. */
static void on_done(struct link *l, const struct p2p_linkfsm_action *a)
{
	struct node_stats *st = &l->n->stats;
	char id[P2P_ID_TEXT_LEN + 1];

	switch (a->cause) {
	case P2P_LINKFSM_C_GOAWAY:
		p2p_peerid_to_text(&l->peer, id);
		log_debug("peer %s: goaway: %.*s", id,
			  (int)a->msg->u.goaway.len, a->msg->u.goaway.reason);
		l->rst = true; /* see link_close */
		l->goaway_rx = true;
		link_fail(l, a->why);
		return;
	case P2P_LINKFSM_C_BAD_FRAME:
	case P2P_LINKFSM_C_BAD_RECORD:
		st->bad_frames++;
		break;
	case P2P_LINKFSM_C_HANDSHAKE:
		st->hs_failed++;
		break;
	case P2P_LINKFSM_C_BAD_MSG:
		st->bad_msgs++;
		break;
	case P2P_LINKFSM_C_TIMEOUT:
	case P2P_LINKFSM_C_BEFORE_HELLO:
		break;
	default: /* ours, or not the peer's fault to log */
		link_fail(l, a->why);
		return;
	}
	link_bad(l, a->why, a->err);
}

static void link_act(struct link *l, const struct p2p_linkfsm_action *a)
{
	const struct p2p_peerid *peer = p2p_linkfsm_peer(l->fsm);

	if (peer)
		l->peer = *peer;
	/* A punch that turned responder: the peer initiated, as far as
	 * roles go (stream ID parity, the duplicate tie-break). */
	if (l->punch_attempt)
		l->outbound = p2p_linkfsm_initiator(l->fsm);
	switch (a->type) {
	case P2P_LINKFSM_WRITE:
		link_write_frame(l, a->data, a->len);
		break;
	case P2P_LINKFSM_EARLY:
		on_early(l);
		break;
	case P2P_LINKFSM_ESTABLISHED:
		on_established(l);
		break;
	case P2P_LINKFSM_HELLO:
		on_hello(l, a);
		break;
	case P2P_LINKFSM_RTT:
		break; /* link_rtt() reads it */
	case P2P_LINKFSM_MSG:
		on_msg(l, a->msg);
		break;
	case P2P_LINKFSM_UNKNOWN:
		l->n->stats.unknown_msgs++;
		break;
	case P2P_LINKFSM_REDIAL:
		redial_fresh(l);
		break;
	case P2P_LINKFSM_CLOSING:
		on_closing(l, a);
		break;
	case P2P_LINKFSM_DONE:
		on_done(l, a);
		break;
	}
}

/*
 * Carry out what the fsm asks, after each call into it. A dead link only
 * empties the queue: nothing more is written or dispatched.
 */
static void link_run(struct link *l)
{
	struct p2p_linkfsm_action a;

	while (p2p_linkfsm_poll(l->fsm, &a))
		if (l->state != LINK_DEAD)
			link_act(l, &a);
}

/*
 * Reading: into a pooled chunk of the link's own, so that whole frames
 * are opened where they lie (p2p_linkfsm_input_inplace) and only a
 * partial frame stays for the next read; the chunk goes back to the pool
 * once no byte is held. A partial frame is moved to the chunk's start
 * when a whole frame might no longer fit behind it: at most one frame's
 * bytes per chunk's worth read.
 */
#define LINK_READ_ROOM (P2P_FRAME_HDR + P2P_FRAME_MAX)

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct link *l = h->data;
	size_t end;

	(void)hint;
	if (!l->rb && !(l->rb = bufpool_get(&l->n->links->pool))) {
		*buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
		return;
	}
	if (l->rb_off > 0 && l->rb_off + LINK_READ_ROOM > BUFQ_CHUNK) {
		memmove(l->rb, l->rb + l->rb_off, l->rb_len);
		l->rb_off = 0;
	}
	end = l->rb_off + l->rb_len;
	*buf = uv_buf_init((char *)l->rb + end, (unsigned)(BUFQ_CHUNK - end));
}

static void rb_release(struct link *l)
{
	struct links *ls = l->n->links;

	/* Over LINK_READ_HELD_MAX: the start of a frame to the framer. */
	if (l->rb_len > 0 && ls->rb_held >= LINK_READ_HELD_MAX) {
		while (l->rb_len > 0 && usable(l)) {
			size_t k = p2p_linkfsm_input(
			    l->fsm, now_us(), l->rb + l->rb_off, l->rb_len);
			link_run(l);
			l->rb_off += k;
			l->rb_len -= k;
		}
		l->rb_len = 0;
	}
	if (l->rb && l->rb_len > 0 && !l->rb_held) {
		l->rb_held = true;
		ls->rb_held++;
	}
	if (l->rb && l->rb_len == 0) {
		if (l->rb_held) {
			l->rb_held = false;
			ls->rb_held--;
		}
		bufpool_put(&l->n->links->pool, l->rb);
		l->rb = NULL;
		l->rb_off = 0;
	}
}

/* Whole frames of the link's read chunk, in place; what is left is the
 * start of a frame. */
static void feed_inplace(struct link *l)
{
	while (l->rb_len > 0 && usable(l)) {
		size_t k;
		l->in_place = !p2p_linkfsm_partial(l->fsm);
		k = p2p_linkfsm_input_inplace(l->fsm, now_us(),
					      l->rb + l->rb_off, l->rb_len);
		link_run(l);
		if (k == 0)
			break;
		l->rb_off += k;
		l->rb_len -= k;
	}
	l->in_place = false;
	if (!usable(l))
		l->rb_len = 0; /* nothing more is read */
}

/* Bytes of the link's stream in: the fsm takes a frame at a time, and
 * what it asks is done before the next one (a message points into the
 * fsm's frame buffer until then). */
static void link_feed(struct link *l, const uint8_t *data, size_t len)
{
	size_t off = 0;

	l->bytes_in += len;
	l->n->stats.bytes_in += len;
	while (off < len && usable(l)) {
		off +=
		    p2p_linkfsm_input(l->fsm, now_us(), data + off, len - off);
		link_run(l);
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
		/* How quiet it was: a NAT that forgot the mapping says so
		 * (core/keepalive.h, ovl.c). */
		if (nread == UV_ECONNRESET && usable(l) &&
		    p2p_linkfsm_hello_rx(l->fsm))
			l->reset_quiet_ms =
			    p2p_linkfsm_quiet_ms(l->fsm, now_us());
		uv_read_stop(s);
		link_fail(l, nread == UV_ENOBUFS ? "out of memory" : "closed");
		return;
	}
	l->bytes_in += (size_t)nread;
	l->n->stats.bytes_in += (size_t)nread;
	l->rb_len += (size_t)nread;
	feed_inplace(l);
	node_emit_read_done(l->n, l);
	rb_release(l);
	if (bufq_len(&l->q) > LINK_WQ_READ_STOP && usable(l) && !l->tr) {
		uv_read_stop(s); /* harden9: on_write reads again */
		l->read_paused = true;
	}
}

/*
 * Bytes from a transport (RELAY_DATA for a relayed link), which point
 * where the via link opened its record. In the via link's read chunk
 * (link_input_held(via)) they are ours until its read is done, and the
 * whole frames among them (a pass frame carries one) are opened where
 * they lie, as a TCP link's are; the start of a frame, or bytes in the
 * via fsm's frame buffer (which stays put until its next input), go to
 * this link's framer, which copies them.
 */
void link_input(struct link *l, const struct link *via, const uint8_t *data,
		size_t len)
{
	uint8_t *p = (uint8_t *)data; /* via's read chunk, when held */
	size_t k = 0;

	if (len > P2P_MSG_MAX)
		return; /* the codec never gives more */
	if (!via || !link_input_held(via)) {
		link_feed(l, data, len);
		return;
	}
	l->bytes_in += len;
	l->n->stats.bytes_in += len;
	while (len > 0 && usable(l)) {
		l->in_place = !p2p_linkfsm_partial(l->fsm);
		k = p2p_linkfsm_input_inplace(l->fsm, now_us(), p, len);
		if (k == 0) { /* the start of a frame: the framer's */
			k = p2p_linkfsm_input(l->fsm, now_us(), p, len);
			l->n->stats.relay_frames_cut++;
		}
		link_run(l);
		p += k;
		len -= k;
	}
	l->in_place = false;
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
	/* The responder's fsm checks the peer once established. */
	struct p2p_linkfsm_role role = {
	    .initiator = initiator, .expect = peer, .relayed = true};

	if (!l)
		return NULL;
	l->kind = LINK_RELAY;
	l->remote = *remote;
	l->local = *local;
	l->has_expect = true;
	l->expect = *peer;
	l->state = LINK_HANDSHAKE;
	if (link_start(l, &role) < 0) {
		link_drop_silent(l);
		return NULL;
	}
	l->tr = tr;
	l->tr_ctx = ctx;
	/* An initiator writes frame 1 (a failing write marks it dead). */
	if (p2p_linkfsm_connected(l->fsm, now_us(), local, remote) == 0)
		link_run(l);
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
	if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) < 0) {
		link_fail(l, "cannot start the handshake");
		return;
	}
	/* Frame 1 (or DONE, when the handshake cannot start). */
	p2p_linkfsm_connected(l->fsm, now_us(), &l->local, &l->remote);
	link_run(l);
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
			      enum link_purpose p, int punch, int ttl,
			      bool reuse, int *err)
{
	struct p2p_linkfsm_role role = {.initiator = true,
					.expect = expect,
					.punch = punch != DIAL_PLAIN,
					.punch_lead = punch == DIAL_PUNCH_LEAD,
					.dialback = p == LP_DIALBACK};
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
	if (punch != DIAL_PLAIN) {
		l->punch_attempt = true;
		l->kind = LINK_DIRECT;
	}
	l->conn.data = l;
	if (rc == 0)
		rc = link_start(l, &role);
	if (rc == 0) {
		tcpopt_before_connect(&l->tcp, (const struct sockaddr *)ss);
		rc = uv_tcp_connect(&l->conn, &l->tcp,
				    (const struct sockaddr *)ss, on_connect);
	}
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
	if (link_count(n) >= n->limits.max_links + admit_pending(n->admit))
		return -EMFILE; /* harden9: pending inbound have their own */
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
	l = dial_once(n, addr, &ss, expect, p, DIAL_PLAIN, 0, true, err);
	if (!l && p2p_nat_sock_retry_unbound(*err))
		l = dial_once(n, addr, &ss, expect, p, DIAL_PLAIN, 0, false,
			      err);
	return l;
}

struct link *link_punch(struct p2pd_node *n, const struct p2p_addr *addr,
			const struct p2p_peerid *expect, int ttl, bool lead,
			int *err)
{
	struct sockaddr_storage ss;

	if ((*err = dial_admit(n, addr, &ss)) < 0)
		return NULL;
	return dial_once(n, addr, &ss, expect, LP_OVERLAY,
			 lead ? DIAL_PUNCH_LEAD : DIAL_PUNCH, ttl, true, err);
}

int link_accept(struct p2pd_node *n, uv_stream_t *server)
{
	struct link *l = link_new(n, false);
	struct p2p_linkfsm_role role = {.initiator = false};
	int rc;

	if (!l)
		return -ENOMEM;
	l->state = LINK_HANDSHAKE;
	rc = uv_accept(server, (uv_stream_t *)&l->tcp);
	if (rc == 0) { /* harden9: admit.h: own budget, short deadline */
		record_addrs(l);
		l->hs_ms =
		    (uint32_t)(admit_deadline(node_now(n),
					      n->limits.handshake_timeout_ms) -
			       node_now(n));
	}
	if (rc == 0 &&
	    ((rc = admit_accept(n->admit, node_now(n), &l->remote, l->id)) <
		 0 ||
	     link_count(n) > n->limits.max_links + admit_pending(n->admit))) {
		n->stats.links_refused++;
		rc = rc < 0 ? rc : -EMFILE;
	}
	if (rc == 0) {
		uv_tcp_nodelay(&l->tcp, 1);
		rc = link_start(l, &role);
		if (rc == 0)
			rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc,
					   on_read);
	}
	if (rc < 0)
		link_drop_silent(l);
	return rc;
}

/* ---- time ---- */

void link_ping(struct link *l)
{
	if (l->state == LINK_DEAD || !l->fsm)
		return;
	(void)p2p_linkfsm_ping(l->fsm, now_us());
	link_run(l);
}

/* In the hub's milliseconds, rounded up (see the top of this file). */
static uint64_t link_deadline(const struct link *l)
{
	uint64_t t;

	if (l->state == LINK_DEAD || !l->fsm)
		return UINT64_MAX;
	t = p2p_linkfsm_next_timer(l->fsm);
	return t == UINT64_MAX ? t : (t + 999) / 1000;
}

uint64_t link_next(void *arg)
{
	struct p2pd_node *n = arg;
	uint64_t t = UINT64_MAX;

	for (struct link *l = n->links->list; l; l = l->next) {
		uint64_t d = link_deadline(l);
		if (d < t)
			t = d;
	}
	return t;
}

void link_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	uint64_t us = now_us();

	for (struct link *l = n->links->list; l; l = l->next) {
		if (l->state == LINK_DEAD || !l->fsm)
			continue;
		p2p_linkfsm_tick(l->fsm, us);
		link_run(l);
	}
}

/* harden9: max_links is not the fd limit. */
const char *link_strerror(int err)
{
	return err == -EMFILE ? "too many links" : uv_strerror(err);
}
