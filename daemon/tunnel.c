/*
 * The libuv glue of tunnel streams: each tunnel pairs one local socket (a
 * control client's pipe, a connection accepted by a forward, or our
 * connection to an exposed service) with one stream on a link. Every event
 * goes through the stream core (stream.h) and its actions are carried out
 * by apply(); whether the local socket is read follows
 * stream_read_budget() and the link's write queue (sync_read()).
 *
 * Memory rule (libuv): a tunnel with a local handle is freed in that
 * handle's close callback; pending local writes hold at most the window we
 * granted, so a tunnel holds at most its window: STREAM_WINDOW for one we
 * open, what the daemon's base budget (tunnels.base, stream_base_window())
 * gave one a peer opened, grown by the core (auto-tuning, stream.h) with
 * the link's RTT while the budgets allow. Both go back when the tunnel is
 * unlisted. The daemon's budget (tunnels.grown) counts every window's growth;
 * a link's is counted afresh from its tunnels when a window may grow
 * (link_budget()): growth over STREAM_BUDGET_LINK, or on a link relayed
 * by a relay that keeps no per-circuit credit (an older one) the whole
 * windows over STREAM_RELAY_WINDOWS, so that it never queues enough of
 * our data to cut the circuit (RELAY_WQ_MAX). A relay that keeps credit
 * (issue 10, core/circuit.h) holds our sending instead: its links get
 * the budget of direct ones.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nodeutil.h"
#include "relay.h"
#include "tunnel_int.h"

/* An opener sends the bytes a control client wrote behind its "open" line
 * (less than CTL_LINE_MAX) at once and aborts if the window is smaller. */
_Static_assert(STREAM_WINDOW_FLOOR >= CTL_LINE_MAX,
	       "a floor window must take what follows an open line");
/* The bound core/stream.h and README.md state for what peers can pin. */
_Static_assert((uint64_t)STREAM_BUDGET_BASE +
		       (uint64_t)STREAM_WINDOW_FLOOR *
			   (TUN_MAX - TUN_LOCAL_RESERVE -
			    STREAM_BUDGET_BASE / STREAM_WINDOW) +
		       STREAM_BUDGET_DAEMON ==
		   124u << 20,
	       "update the bound in core/stream.h and README.md");

static void apply(struct tun *t, int act);
static void pend_unlist(struct tun *t);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

int tunnel_module_init(struct p2pd_node *n)
{
	n->tun = calloc(1, sizeof(*n->tun));
	if (!n->tun)
		return -ENOMEM;
	n->tun->grown.max = STREAM_BUDGET_DAEMON;
	n->tun->base.max = STREAM_BUDGET_BASE;
	return 0;
}

void tunnel_free(struct p2pd_node *n)
{
	free(n->tun);
	n->tun = NULL;
}

struct tun *tun_new(struct p2pd_node *n, enum tun_kind kind)
{
	struct tun *t;

	if (n->tun->count >= TUN_MAX)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->n = n;
	t->kind = kind;
	t->t0_hr = uv_hrtime();
	bufq_init(&t->wq, link_bufpool(n));
	t->wreq.data = t;
	t->next = n->tun->list;
	n->tun->list = t;
	n->tun->count++;
	return t;
}

static void unlist(struct tun *t)
{
	struct p2pd_node *n = t->n;

	/* The window's growth goes back to the daemon's budget, and the base
	 * window of a stream a peer opened to the base budget. */
	stream_release(&t->s, t->kind == TUN_TARGET ? &n->tun->base : NULL,
		       &n->tun->grown);

	for (struct tun **pp = &n->tun->list; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			n->tun->count--;
			return;
		}
	}
}

struct link *tun_link(const struct tun *t)
{
	return link_get(t->n, t->link);
}

void tun_on_handle_closed(uv_handle_t *h)
{
	struct tun *t = h->data;
	struct p2pd_node *n = t->n;

	if (t->h_malloced)
		free(h);
	/* libuv called the write back (ECANCELED) before this. */
	bufq_free(&t->wq);
	free(t);
	node_handle_closed(n);
}

static bool link_full(const struct link *l)
{
	/* A relayed link counts what its relay link has queued. */
	return l && link_queued(l) >= TUN_LINK_WQ_HIGH;
}

static void set_blocked(struct tun *t, bool blocked)
{
	if (t->counted_blocked == blocked)
		return;
	t->counted_blocked = blocked;
	if (blocked)
		t->n->tun->blocked++;
	else
		t->n->tun->blocked--;
	stream_set_link_blocked(&t->s, blocked);
}

/* Forget the tunnel: release its link and close its local socket. */
void tun_close(struct tun *t, bool abort)
{
	struct p2pd_node *n = t->n;

	if (t->closing)
		return;
	t->closing = true;
	/* Only an abort finds data pending: dropped, as a reset does. */
	pend_unlist(t);
	set_blocked(t, false);
	reach_cancel(n, &t->w);
	if (t->req) {
		ctl_reply_error(t->req, "peer_unreachable", "tunnel closed");
		t->req = NULL;
	}
	if (tun_link(t))
		link_release(tun_link(t));
	t->link = 0;
	if (t->resolve) {
		t->resolve->t = NULL;
		uv_cancel((uv_req_t *)&t->resolve->req);
		t->resolve = NULL;
	}
	unlist(t);
	if (!t->h) {
		bufq_free(&t->wq);
		free(t);
		return;
	}
	t->reading = false;
	if (abort && (t->kind == TUN_FWD || t->kind == TUN_TARGET) &&
	    uv_tcp_close_reset(&t->tcp, tun_on_handle_closed) == 0)
		return;
	uv_close((uv_handle_t *)t->h, tun_on_handle_closed);
}

void tun_send_msg(struct tun *t, struct p2p_msg *m)
{
	struct link *l = tun_link(t);

	if (l)
		link_send_msg(l, m);
}

void tun_send_reset_id(struct link *l, uint32_t id, uint8_t code,
		       const char *reason)
{
	struct p2p_msg m = {.type = P2P_MSG_STREAM_RESET};

	m.u.reset.stream = id;
	m.u.reset.code = code;
	m.u.reset.reason = reason;
	m.u.reset.len = strlen(reason);
	if (l)
		link_send_msg(l, &m);
}

/* ---- the local socket ---- */

/*
 * The read lands where its record's plaintext goes, in the link's queue
 * (link_data_reserve), and is sealed there in place: no copy between the
 * socket and the link. Without a link (it went), the shared buffer.
 */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct tun *t = h->data;
	struct link *l = tun_link(t);
	size_t budget = stream_read_budget(&t->s);
	uint8_t *p;

	(void)hint;
	t->reserved = false;
	if (link_full(l)) {
		set_blocked(t, true);
		budget = 0;
	}
	if (budget > STREAM_CHUNK)
		budget = STREAM_CHUNK;
	if (l && budget > 0 && (p = link_data_reserve(l, budget))) {
		t->reserved = true;
		*buf = uv_buf_init((char *)p, (unsigned)budget);
		return;
	}
	/* One shared buffer: on_read sends it before the next read. */
	*buf = uv_buf_init((char *)t->n->tun->rbuf, (unsigned)budget);
}

static void sync_read(struct tun *t)
{
	bool want;

	if (t->closing || !t->h)
		return;
	if (link_full(tun_link(t)))
		set_blocked(t, true);
	want = stream_read_budget(&t->s) > 0;
	if (want && !t->reading) {
		if (uv_read_start(t->h, on_alloc, on_read) == 0)
			t->reading = true;
	} else if (!want && t->reading) {
		uv_read_stop(t->h);
		t->reading = false;
	}
}

static void send_data(struct tun *t, const uint8_t *data, size_t len)
{
	struct p2p_msg m = {.type = P2P_MSG_STREAM_DATA};

	m.u.stream.stream = t->s.id;
	m.u.stream.data = data;
	m.u.stream.len = len;
	tun_send_msg(t, &m);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tun *t = s->data;
	bool reserved = t->reserved;
	struct link *l = tun_link(t);
	int act;

	t->reserved = false;
	/* The record on_alloc set aside: sealed below, or given back. */
	if (reserved && l && nread <= 0)
		(void)link_data_commit(l, t->s.id, 0);
	if (nread == 0 || nread == UV_ENOBUFS) {
		sync_read(t);
		return;
	}
	if (nread == UV_EOF) {
		act = stream_on_local_eof(&t->s);
	} else if (nread < 0) {
		log_debug("tunnel %u: local read: %s", t->s.id,
			  uv_strerror((int)nread));
		act = stream_on_local_error(&t->s);
	} else {
		act = stream_on_local_read(&t->s, (size_t)nread);
		if (reserved && l)
			(void)link_data_commit(
			    l, t->s.id,
			    act & STREAM_ACT_SEND_RESET ? 0 : (size_t)nread);
		else if (!(act & STREAM_ACT_SEND_RESET))
			send_data(t, (const uint8_t *)buf->base, (size_t)nread);
	}
	apply(t, act);
	sync_read(t);
}

/* What the windows of l's tunnels may still grow by (see the top). */
static void link_budget(struct p2pd_node *n, const struct link *l,
			struct stream_budget *b)
{
	bool relayed = link_kind(l) == LINK_RELAY && !relay_credited(n, l);

	b->used = 0;
	b->max = relayed ? STREAM_RELAY_WINDOWS : STREAM_BUDGET_LINK;
	for (struct tun *t = n->tun->list; t; t = t->next)
		if (t->link == link_id(l))
			b->used +=
			    relayed ? t->s.window : t->s.window - t->s.base;
}

/* len bytes went into the local socket: credit, maybe a bigger window. */
static void local_written(struct tun *t, size_t len)
{
	struct stream_budget lb;
	struct stream_env env = {0};
	struct link *l;

	if ((l = tun_link(t))) {
		double rtt = link_rtt(l);
		link_budget(t->n, l, &lb);
		env.now_us = uv_hrtime() / 1000;
		env.rtt_us = rtt > 0 ? (uint64_t)(rtt * 1000.0) : 0;
		env.link = &lb;
		env.daemon = &t->n->tun->grown;
	}
	apply(t, stream_on_local_written(&t->s, len, l ? &env : NULL));
}

static ssize_t local_try(void *ctx, const struct iovec *iov, int n)
{
	struct tun *t = ctx;
	uv_buf_t b[BUFQ_IOV_MAX];

	for (int i = 0; i < n; i++)
		b[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
	return uv_try_write(t->h, b, (unsigned)n);
}

static void on_local_write(uv_write_t *req, int status);

static int local_async(void *ctx, const struct iovec *iov, int n)
{
	struct tun *t = ctx;
	uv_buf_t b[BUFQ_IOV_MAX];

	for (int i = 0; i < n; i++)
		b[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
	return uv_write(&t->wreq, t->h, b, (unsigned)n, on_local_write);
}

static const struct bufq_io local_io = {local_try, local_async};

/* What is queued for the local socket: tried, the rest as one write. */
static void local_flush(struct tun *t)
{
	ssize_t k = bufq_flush(&t->wq, &local_io, t);

	if (k < 0)
		apply(t, stream_on_local_error(&t->s));
	else if (k > 0)
		local_written(t, (size_t)k);
}

static void on_local_write(uv_write_t *req, int status)
{
	struct tun *t = req->data;
	size_t len = bufq_written(&t->wq);

	if (t->closing)
		return;
	if (status < 0) {
		apply(t, stream_on_local_error(&t->s));
		return;
	}
	local_written(t, len);
	if (!t->closing)
		local_flush(t);
}

static void on_local_shutdown(uv_shutdown_t *req, int status)
{
	struct tun *t = req->data;

	if (t->closing)
		return;
	/* Failed or not, nothing more is written on that side. */
	apply(t, stream_on_local_shutdown(&t->s));
}

/*
 * Bytes for the local socket: written at once when nothing waits before
 * them and the socket takes them; only what it does not take is copied
 * (into the tunnel's queue). The credit for what went goes out after.
 */
static void local_writev(struct tun *t, const uv_buf_t *b, unsigned n)
{
	size_t done = 0, skip;
	int k = 0;

	if (bufq_len(&t->wq) == 0) {
		k = uv_try_write(t->h, b, n);
		if (k < 0 && k != UV_EAGAIN) {
			apply(t, stream_on_local_error(&t->s));
			return;
		}
		done = k > 0 ? (size_t)k : 0;
	}
	skip = done;
	for (unsigned i = 0; i < n; i++) {
		ssize_t q;
		if (skip >= b[i].len) {
			skip -= b[i].len;
			continue;
		}
		q = bufq_append(&t->wq, (const uint8_t *)b[i].base + skip,
				b[i].len - skip);
		skip = 0;
		if (q < 0) {
			apply(t, stream_on_local_error(&t->s));
			return;
		}
	}
	if (bufq_len(&t->wq) > 0) {
		/* Written behind a write in flight, or tried once more. */
		ssize_t q = bufq_flush(&t->wq, &local_io, t);
		if (q < 0) {
			apply(t, stream_on_local_error(&t->s));
			return;
		}
		done += (size_t)q;
	}
	if (done > 0)
		local_written(t, done);
}

static void pend_unlist(struct tun *t)
{
	struct tun **pp = &t->n->tun->pend;

	while (*pp && *pp != t)
		pp = &(*pp)->pend_next;
	if (*pp)
		*pp = t->pend_next;
	t->pend_next = NULL;
	t->npend = 0;
}

/* What waits in a link's read chunk goes out (or into the queue) now. */
static void pend_flush(struct tun *t)
{
	uv_buf_t b[TUN_PEND_MAX];
	unsigned n = t->npend;

	if (n == 0)
		return;
	memcpy(b, t->pend, n * sizeof(b[0]));
	pend_unlist(t);
	local_writev(t, b, n);
}

/*
 * STREAM_DATA for the local socket. A record opened in place in its
 * link's read chunk stays there until the read is done (read_done), so
 * the records one read brings a tunnel go to its socket in one writev
 * then: one wakeup of the local reader per read instead of one per
 * record, the wakeups that preempt the daemons on a busy host. Other
 * data (a relayed link's, copied out of its frame) are written at once,
 * after whatever waits.
 */
static void local_write(struct tun *t, const uint8_t *data, size_t len)
{
	struct link *l = tun_link(t);
	uv_buf_t one = uv_buf_init((char *)data, (unsigned)len);

	if (l && link_input_held(l) && bufq_len(&t->wq) == 0) {
		if (t->npend == TUN_PEND_MAX)
			pend_flush(t);
		if (t->npend == 0) {
			t->pend_next = t->n->tun->pend;
			t->n->tun->pend = t;
		}
		t->pend[t->npend++] = one;
		return;
	}
	pend_flush(t);
	local_writev(t, &one, 1);
}

/* A link's read is done: every tunnel's records in it go out. */
static void on_read_done(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;

	(void)l;
	while (n->tun->pend)
		pend_flush(n->tun->pend);
}

/*
 * Carry out what the stream core asked for. The local side is dealt with
 * first and the messages go out last, from values copied before: closing
 * frees a tunnel without a local socket at once. Callers do not touch t
 * after apply() when act may close it.
 */
static void apply(struct tun *t, int act)
{
	struct link *l = tun_link(t);
	uint32_t id = t->s.id, credit = t->s.credit_out;
	uint8_t code = t->s.reset_code;
	struct p2p_msg m = {0};

	if ((act & STREAM_ACT_SHUTDOWN) && t->h && !t->closing) {
		t->shut.data = t;
		if (uv_shutdown(&t->shut, t->h, on_local_shutdown) < 0)
			act |= stream_on_local_shutdown(&t->s);
	}
	if (act & STREAM_ACT_ABORT)
		tun_close(t, true);
	else if (act & STREAM_ACT_CLOSE)
		tun_close(t, false);
	if (!l)
		return;
	if (act & STREAM_ACT_SEND_WINDOW) {
		m.type = P2P_MSG_STREAM_WINDOW;
		m.u.stream.stream = id;
		m.u.stream.credit = credit;
		link_send_msg(l, &m);
	}
	if (act & STREAM_ACT_SEND_FIN) {
		m.type = P2P_MSG_STREAM_FIN;
		m.u.stream.stream = id;
		link_send_msg(l, &m);
	}
	if (act & STREAM_ACT_SEND_RESET)
		tun_send_reset_id(l, id, code, stream_reset_name(code));
}

/* ---- opening ---- */

/* Our side of an opening tunnel failed before ACCEPT: reply, close. */
void tun_fail_open(struct tun *t, const char *code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->req) {
		ctl_reply_error(t->req, code, "%s", msg);
		t->req = NULL;
	} else {
		log_info("tunnel to service %s: %s: %s", t->service, code, msg);
	}
	tun_close(t, true);
}

size_t tun_link_streams(struct p2pd_node *n, const struct link *l)
{
	size_t c = 0;

	for (struct tun *t = n->tun->list; t; t = t->next)
		c += t->link == link_id(l);
	return c;
}

/* We have a link: send STREAM_OPEN and wait for ACCEPT or RESET. */
void tun_start_open(struct p2pd_node *n, struct tun *t, struct link *l)
{
	struct p2p_msg m = {.type = P2P_MSG_STREAM_OPEN};

	if (tun_link_streams(n, l) >= TUN_MAX_PER_LINK) {
		tun_fail_open(t, "busy", "already %d tunnels on that link",
			      TUN_MAX_PER_LINK);
		return;
	}
	stream_init(&t->s, stream_id_make(++n->tun->next_id, link_outbound(l)));
	t->link = link_id(l);
	link_hold(l);
	t->deadline = node_now(n) + TUN_OPEN_TIMEOUT_MS;
	m.u.stream_open.stream = t->s.id;
	m.u.stream_open.window = t->s.window;
	m.u.stream_open.service = t->service;
	m.u.stream_open.service_len = strlen(t->service);
	/* A failed send fails the link; its gone event closes this tunnel. */
	link_send_msg(l, &m);
}

struct tun *tun_find(struct p2pd_node *n, const struct link *l, uint32_t id)
{
	for (struct tun *t = n->tun->list; t; t = t->next)
		if (t->link == link_id(l) && t->s.id == id && !t->closing)
			return t;
	return NULL;
}

/* The stream is open both ways: take data from the local socket. */
void tun_opened(struct tun *t, uint32_t window, const char *rest,
		size_t restlen)
{
	int act = stream_on_open(&t->s, window);

	t->deadline = 0;
	/* Bytes a control client sent after its open line. */
	while (!act && restlen > 0) {
		size_t k = stream_read_budget(&t->s);
		if (k == 0) { /* a peer granting less than our line limit */
			act = stream_abort(&t->s, STREAM_RST_ABORT);
			break;
		}
		if (k > restlen)
			k = restlen;
		act = stream_on_local_read(&t->s, k);
		send_data(t, (const uint8_t *)rest, k);
		rest += k;
		restlen -= k;
	}
	apply(t, act);
	sync_read(t);
}

static void on_accept_msg(struct p2pd_node *n, struct tun *t,
			  const struct p2p_msg *m)
{
	uint32_t window = m->u.stream_open.window;
	char *rest = NULL;
	size_t restlen = 0;

	if (t->kind == TUN_TARGET || t->s.state != STREAM_OPENING) {
		apply(t, stream_abort(&t->s, STREAM_RST_PROTOCOL));
		return;
	}
	if (t->kind == TUN_OPEN) {
		uv_stream_t *h =
		    ctl_req_take_stream(t->req, NULL, &rest, &restlen);
		t->req = NULL;
		if (!h) { /* the client has gone */
			apply(t, stream_abort(&t->s, STREAM_RST_ABORT));
			return;
		}
		t->h = h;
		t->h_malloced = true;
		h->data = t;
		node_handle_opened(n);
	}
	tun_opened(t, window, rest, restlen);
	free(rest);
}

static void on_reset_msg(struct tun *t, const struct p2p_msg *m)
{
	uint8_t code = m->u.reset.code;

	if (t->s.state == STREAM_OPENING && t->kind != TUN_TARGET) {
		if (m->u.reset.len == 0)
			tun_fail_open(t, stream_reset_error(code),
				      "service '%s': %s", t->service,
				      stream_reset_name(code));
		else
			tun_fail_open(t, stream_reset_error(code),
				      "service '%s': %.*s", t->service,
				      (int)m->u.reset.len, m->u.reset.reason);
		return;
	}
	log_debug("tunnel %u: reset by peer: %s", t->s.id,
		  stream_reset_name(code));
	apply(t, stream_on_reset(&t->s));
}

/* ---- hooks ---- */

void tunnel_on_msg(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;
	struct tun *t;

	if (m->type == P2P_MSG_STREAM_OPEN) {
		tun_on_open_msg(n, l, m);
		return;
	}
	/* Every other STREAM_* message has the stream ID first. */
	t = tun_find(n, l,
		     m->type == P2P_MSG_STREAM_RESET ? m->u.reset.stream
		     : m->type == P2P_MSG_STREAM_ACCEPT
			 ? m->u.stream_open.stream
			 : m->u.stream.stream);
	if (!t)
		return; /* closed here already: late messages are normal */
	/*
	 * What comes after data is carried out after it. A FIN's shutdown
	 * also waits in the stream core until every byte is written, so
	 * either keeps EOF behind the data (test_tunnel's
	 * data_then_eof_to_a_full_socket_arrive_whole).
	 */
	if (m->type != P2P_MSG_STREAM_DATA)
		pend_flush(t);
	switch (m->type) {
	case P2P_MSG_STREAM_ACCEPT:
		on_accept_msg(n, t, m);
		break;
	case P2P_MSG_STREAM_DATA: {
		int act = stream_on_data(&t->s, m->u.stream.len);
		if (!act && m->u.stream.len > 0)
			local_write(t, m->u.stream.data, m->u.stream.len);
		else
			apply(t, act);
		break;
	}
	case P2P_MSG_STREAM_WINDOW: {
		int act = stream_on_window(&t->s, m->u.stream.credit);
		if (act)
			apply(t, act);
		else
			sync_read(t);
		break;
	}
	case P2P_MSG_STREAM_FIN:
		apply(t, stream_on_fin(&t->s));
		break;
	case P2P_MSG_STREAM_RESET:
		on_reset_msg(t, m);
		break;
	default:
		break;
	}
}

/* A link's queue shrank: tunnels waiting on it read again (a relayed
 * link is told when the link to its relay drains, see relay.c). */
static void on_writable(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;
	struct tun *t, *next;

	if (n->tun->blocked == 0 || link_queued(l) > TUN_LINK_WQ_LOW)
		return;
	for (t = n->tun->list; t; t = next) {
		next = t->next;
		if (t->link == link_id(l) && t->counted_blocked) {
			set_blocked(t, false);
			sync_read(t);
		}
	}
}

/* Closing a tunnel changes nothing but that tunnel: next stays valid. */
static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	struct tun *t, *next;

	for (t = n->tun->list; t; t = next) {
		next = t->next;
		if (t->link != link_id(l))
			continue;
		pend_flush(t); /* what came before the link went */
		t->link = 0;
		if (t->s.state == STREAM_OPENING && t->kind != TUN_TARGET)
			tun_fail_open(t, "peer_unreachable",
				      "the link to the peer closed (%s)", why);
		else
			apply(t, stream_abort(&t->s, STREAM_RST_ABORT));
	}
}

const struct node_link_hooks tunnel_link_hooks = {
    .gone = on_gone,
    .writable = on_writable,
    .read_done = on_read_done,
};

uint64_t tunnel_next(void *arg)
{
	struct p2pd_node *n = arg;
	uint64_t t = UINT64_MAX;

	for (struct tun *u = n->tun->list; u; u = u->next)
		if (u->deadline && u->s.state == STREAM_OPENING && u->link &&
		    u->deadline < t)
			t = u->deadline;
	return t;
}

void tunnel_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	struct tun *t, *next;

	for (t = n->tun->list; t; t = next) {
		next = t->next;
		if (!t->deadline || now < t->deadline ||
		    t->s.state != STREAM_OPENING || !t->link)
			continue;
		struct link *l = tun_link(t);
		uint32_t id = t->s.id;
		t->s.state = STREAM_DONE;
		if (t->kind == TUN_TARGET)
			tun_close(t, true);
		else
			tun_fail_open(t, "timeout",
				      "the peer did not answer the open in "
				      "time");
		tun_send_reset_id(l, id, STREAM_RST_TIMEOUT, "open timed out");
	}
}

void tunnel_stop(struct p2pd_node *n)
{
	tun_fwds_close_all(n);
	while (n->tun->list) {
		struct tun *t = n->tun->list;
		if (t->req) {
			ctl_reply_error(t->req, "internal",
					"daemon shutting down");
			t->req = NULL;
		}
		/* Closed here either way, even when DONE in the core. */
		apply(t, stream_abort(&t->s, STREAM_RST_SHUTDOWN) |
			     STREAM_ACT_ABORT);
	}
}
