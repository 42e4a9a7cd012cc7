/*
 * Relays (SPEC 7): when no direct link can be made to a peer X, a node R
 * that holds links to both ends carries a circuit between them. The
 * requester A sends RELAY_OPEN (flags 0, peer X) to R; R, if it holds a
 * direct link to X, sends RELAY_OPEN (INCOMING, peer A) to X and from then
 * on forwards RELAY_DATA between the two links, unread. A and X run the
 * normal session handshake over the circuit (A as initiator expecting X's
 * ID, X checking A's), then HELLO, keepalive and tunnels: a relayed link
 * is an ordinary link whose transport (struct relay_end here) sends its
 * bytes as RELAY_DATA on the via link. R only ever sees handshake frames
 * and AEAD records.
 *
 * A circuit ends with RELAY_CLOSE from either end or from R, and when
 * either underlying link goes away (R tells the other end). R's memory is
 * bounded: RELAY_CIRC_MAX circuits, RELAY_CIRC_PER_LINK opened on one
 * link, and per circuit and direction RELAY_CREDIT bytes queued (issue
 * 10): an end sends RELAY_DATA only within its credit, and R returns
 * credit (RELAY_CREDIT) as it hands the bytes to the other link's socket,
 * so a busy circuit waits at its source instead of filling R, and R never
 * stops reading a link for one circuit. Where an end does not keep
 * credit (an older peer: no P2P_HELLO_RELAY_CREDIT in its HELLO), its
 * circuit is cut instead when the outgoing queue is over RELAY_WQ_MAX.
 *
 * Pass frames (issue 10, proto/msg.h RELAY_PASS): what a circuit carries
 * is already sealed end to end (the relayed link's own records), so on a
 * hop whose both ends say so in HELLO (P2P_HELLO_RELAY_PASS) RELAY_DATA
 * goes as a pass frame, whose hop AEAD covers only a small head: the
 * circuit, the data's length and its last 16 bytes (for a whole record:
 * its end-to-end tag). A seals each byte once (end to end) and X opens
 * it once; R opens and seals 42-byte heads only, and copies the data once
 * into the outgoing queue (it is read in place and not decrypted). Why
 * this is as safe as sealing twice: the hop's head is sealed in the hop's
 * nonce sequence, so an on-path attacker cannot drop, repeat, reorder,
 * resize or redirect (another circuit) a pass frame, nor change its
 * tail, without the hop's open failing (the hop link dies, as for any bad
 * record); it can change other data bytes, which the hop does not see,
 * but those are the ends' AEAD records: X's open fails and the relayed
 * link dies, which is what the attacker could do anyway by resetting the
 * TCP connection. It learns nothing new: the data are ciphertext under
 * keys only A and X hold (an observer of both hops may match the same
 * ciphertext bytes on either side of R, which sizes and timing already
 * allowed). A peer that has not said it reads pass frames never gets
 * one (older framers would take the flag for an oversized length).
 *
 * Our end's credit: what the relayed link writes beyond it waits in the
 * end's own queue (pend), which counts in the relayed link's queue
 * (end_queued), so its tunnels stop reading as for a full TCP link;
 * every RELAY_CREDIT from the relay sends more of it.
 *
 * One host must not fill R (issue 9): requests are limited per requester
 * ID, per source IP and per /24 or /48 (the observed address of the
 * requester's link), a circuit whose ends do not complete their handshake
 * within RELAY_HS_MS is closed, so is one idle for RELAY_IDLE_MS or over
 * its byte budget (core/circuit.h names every limit; the RELAY_CLOSE
 * reason names the one hit, and the requester logs it).
 *
 * Circuit IDs: whoever opens a circuit on a link picks its ID, odd when
 * it is the link's initiator, even otherwise, so both ends can open.
 * Links are named by ID everywhere here.
 *
 * The decisions (which circuit, which ID, which limit, which close
 * reason) are core/circuit.c's, sans-I/O and unit tested; this file is
 * its glue: our circuit ends as link transports, the core's queries over
 * the link table, and its actions carried out as messages.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bufq.h"
#include "core/circuit.h"
#include "log.h"
#include "relay.h"

/* What our end keeps beyond its credit: as much as a TCP link may queue
 * (the tunnels stop reading far below, at TUN_LINK_WQ_HIGH). */
#define RELAY_END_PEND_MAX LINK_WQ_MAX

/* The largest record a relayed link writes (a whole frame). While our
 * end's credit covers less than this, or something waits in pend, its
 * tunnels do not read (end_queued): what they read would only wait in
 * pend, copied, instead of going out in place (end_reserve). */
#define RELAY_END_RECORD_MAX (P2P_FRAME_HDR + P2P_FRAME_MAX)

/* Our end of a circuit: the transport of a relayed link. */
struct relay_end {
	struct relay_end *next;
	struct p2pd_node *n;
	uint32_t via;  /* the link the circuit runs on */
	uint32_t circ; /* its ID there */
	uint32_t link; /* the relayed link */
	bool closed;   /* the circuit is gone: nothing more to send */
	bool credited; /* the relay keeps credit for us (its HELLO) */
	struct relay_credit cr;
	struct bufq pend; /* written by the link beyond the credit */
	uint8_t *placed;  /* end_reserve's room in via's queue, or NULL */
};

struct relays {
	struct p2p_circuit *core; /* circuits we carry, the decisions */
	struct relay_end *ends;
};

static struct relay_end *find_end(struct p2pd_node *n, uint32_t via,
				  uint32_t circ)
{
	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		if (e->via == via && e->circ == circ)
			return e;
	return NULL;
}

static unsigned count_ends(struct p2pd_node *n, uint32_t via)
{
	unsigned c = 0;

	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		c += e->via == via && !e->closed;
	return c;
}

/* ---- what the core asks ---- */

static uint32_t q_link_to(void *arg, const struct p2p_peerid *peer)
{
	struct link *l = link_find_up(arg, peer, LINK_KINDS_TCP);

	return l ? link_id(l) : 0;
}

static bool q_outbound(void *arg, uint32_t id)
{
	struct link *l = link_get(arg, id);

	return l && link_outbound(l);
}

static size_t q_queued(void *arg, uint32_t id)
{
	struct link *l = link_get(arg, id);

	return l ? link_queued(l) : SIZE_MAX;
}

static bool q_is_end(void *arg, uint32_t via, uint32_t circ)
{
	return find_end(arg, via, circ) != NULL;
}

static unsigned q_ends(void *arg, uint32_t via)
{
	return count_ends(arg, via);
}

static bool q_links_full(void *arg)
{
	struct p2pd_node *n = arg;

	return link_count(n) >= n->limits.max_links;
}

static bool q_credit(void *arg, uint32_t id)
{
	struct link *l = link_get(arg, id);

	return l && link_peer_relay_credit(l);
}

static uint64_t q_out_pos(void *arg, uint32_t id)
{
	struct link *l = link_get(arg, id);

	return l ? link_bytes_out(l) : 0;
}

static bool q_remote(void *arg, uint32_t id, struct p2p_addr *out)
{
	struct link *l = link_get(arg, id);
	const struct p2p_addr *a = l ? link_remote(l) : NULL;

	if (!a || !a->family)
		return false;
	*out = *a;
	return true;
}

int relay_module_init(struct p2pd_node *n)
{
	struct p2p_circuit_query q = {
	    .link_to = q_link_to,
	    .outbound = q_outbound,
	    .queued = q_queued,
	    .is_end = q_is_end,
	    .ends = q_ends,
	    .links_full = q_links_full,
	    .remote = q_remote,
	    .credit = q_credit,
	    .out_pos = q_out_pos,
	    .arg = n,
	};

	n->relay = calloc(1, sizeof(*n->relay));
	if (!n->relay)
		return -ENOMEM;
	n->relay->core = p2p_circuit_new(&q);
	if (!n->relay->core) {
		free(n->relay);
		n->relay = NULL;
		return -ENOMEM;
	}
	return 0;
}

void relay_free(struct p2pd_node *n)
{
	if (!n->relay)
		return;
	p2p_circuit_free(n->relay->core);
	while (n->relay->ends) {
		struct relay_end *e = n->relay->ends;
		n->relay->ends = e->next;
		bufq_free(&e->pend);
		free(e);
	}
	free(n->relay);
	n->relay = NULL;
}

void relay_get_stats(const struct p2pd_node *n, struct relay_stats *st)
{
	struct p2p_circuit_stats cs;

	p2p_circuit_get_stats(n->relay->core, &cs);
	st->circuits = cs.circuits;
	st->opened = cs.opened;
	st->bytes = cs.bytes;
	st->unknown = cs.unknown;
	st->refused = cs.refused_peer + cs.refused_ip + cs.refused_net +
		      cs.refused_busy + cs.refused_budget;
	st->closed_hs = cs.closed_hs;
	st->closed_idle = cs.closed_idle;
	st->closed_budget = cs.closed_budget;
	st->paced = cs.paced;
	st->closed_queue = cs.closed_queue;
	st->closed_credit = cs.closed_credit;
	st->credit_sent = cs.credit_sent;
}

static void send_close(struct link *l, uint32_t circ, const char *why,
		       size_t len)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_CLOSE};

	if (!l)
		return;
	m.u.relay.circ = circ;
	m.u.relay.reason = why;
	m.u.relay.len = len;
	link_send_msg(l, &m);
}

/* RELAY_OPEN or RELAY_DATA on link id (gone: nothing to send). */
static void send_relay(struct p2pd_node *n, uint8_t type, uint32_t id,
		       const struct p2p_circuit_action *a)
{
	struct link *l = link_get(n, id);
	struct p2p_msg m = {.type = type};

	if (!l)
		return;
	m.u.relay.circ = a->circ;
	if (type == P2P_MSG_RELAY_OPEN) {
		m.u.relay.code = P2P_RELAY_F_INCOMING;
		m.u.relay.peer = a->peer;
	} else {
		m.u.relay.data = a->data;
		m.u.relay.len = a->len;
	}
	link_send_msg(l, &m);
}

/* ---- the transport of a relayed link ---- */

static int relay_data_send(struct link *l, uint32_t circ, const uint8_t *data,
			   size_t len);

/* What we relay, on to the other link (gone: nothing to send). */
static void send_forward(struct p2pd_node *n,
			 const struct p2p_circuit_action *a)
{
	struct link *l = link_get(n, a->link);

	if (l)
		(void)relay_data_send(l, a->circ, a->data, a->len);
}

/*
 * RELAY_DATA for circ on l with data[0..len), split into messages; as
 * pass frames (proto/msg.h RELAY_PASS) when l's peer reads them: the
 * data are a relayed link's records, sealed end to end already, so the
 * hop seals only each frame's head (circuit, length, the data's tail)
 * instead of every byte again. 0 or -errno.
 */
static int relay_data_send(struct link *l, uint32_t circ, const uint8_t *data,
			   size_t len)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_DATA};
	bool pass = link_peer_relay_pass(l);
	size_t max = pass ? P2P_PASS_DATA_MAX : P2P_RELAY_DATA_MAX, k;
	int rc = 0;

	m.u.relay.circ = circ;
	for (size_t off = 0; off < len && rc == 0; off += k) {
		k = len - off < max ? len - off : max;
		if (pass) {
			rc = link_send_pass(l, circ, data + off, k);
			continue;
		}
		m.u.relay.data = data + off;
		m.u.relay.len = k;
		rc = link_send_msg(l, &m);
	}
	return rc;
}

/* RELAY_DATA on via with data[0..len); 0 or -errno. */
static int end_send(struct relay_end *e, struct link *via, const uint8_t *data,
		    size_t len)
{
	return relay_data_send(via, e->circ, data, len);
}

/* The length of the frame at p (k bytes there), header included: what
 * end_write queued is whole frames, each in one piece of pend. */
static size_t frame_len(const uint8_t *p, size_t k)
{
	uint32_t b;

	if (k < P2P_FRAME_HDR)
		return k;
	b = ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
	     p[3]) &
	    ~P2P_FRAME_PASS;
	return b <= k - P2P_FRAME_HDR ? P2P_FRAME_HDR + b : k;
}

/* Send what waits in pend, a frame at a time, while the credit lasts;
 * 0 or -errno. */
static int end_drain(struct relay_end *e, struct link *via)
{
	const uint8_t *p;
	size_t k;
	int rc;

	while ((k = bufq_peek(&e->pend, &p)) > 0) {
		k = frame_len(p, k);
		if (!relay_credit_take(&e->cr, k))
			break;
		if ((rc = end_send(e, via, p, k)) < 0)
			return rc;
		bufq_drop(&e->pend, k);
	}
	return 0;
}

static int end_write(void *ctx, const uint8_t *data, size_t len)
{
	struct relay_end *e = ctx;
	struct link *via = e->closed ? NULL : link_get(e->n, e->via);
	uint8_t *p;

	if (!via)
		return -ENOTCONN;
	e->n->stats.relay_records_copied++;
	if (!e->credited)
		return end_send(e, via, data, len);
	/* In order: nothing overtakes what already waits. A frame goes
	 * whole, now or later, and waits in one piece (end_drain). */
	if (bufq_len(&e->pend) == 0 && relay_credit_take(&e->cr, len))
		return end_send(e, via, data, len);
	if (bufq_len(&e->pend) + len > RELAY_END_PEND_MAX ||
	    !(p = bufq_reserve(&e->pend, len)))
		return -ENOBUFS;
	memcpy(p, data, len);
	bufq_commit(&e->pend, len);
	return 0;
}

/*
 * The relayed link's next record goes straight behind a pass frame's
 * head in the queue of the link to the relay, sealed there in place, when
 * it can go now (pass frames negotiated, nothing waiting in pend, credit
 * for all of cap): no scratch buffer and no copy. Else NULL, and
 * end_write gets it from the scratch buffer.
 */
static uint8_t *end_reserve(void *ctx, size_t cap)
{
	struct relay_end *e = ctx;
	struct link *via = e->closed ? NULL : link_get(e->n, e->via);

	e->placed = NULL;
	if (!via || !link_peer_relay_pass(via))
		return NULL;
	if (e->credited &&
	    (bufq_len(&e->pend) > 0 || !relay_credit_can(&e->cr, cap)))
		return NULL;
	e->placed = link_pass_reserve(via, cap);
	return e->placed;
}

static int end_commit(void *ctx, size_t len)
{
	struct relay_end *e = ctx;
	struct link *via = e->closed ? NULL : link_get(e->n, e->via);
	uint8_t *p = e->placed;

	e->placed = NULL;
	if (!via || !p)
		return len == 0 ? 0 : -ENOTCONN;
	/* end_reserve saw credit for cap >= len and nothing was spent
	 * since: a failure here is a bug, and the relayed link fails. */
	if (len > 0 && e->credited && !relay_credit_take(&e->cr, len)) {
		(void)link_pass_commit(via, e->circ, p, 0);
		return -EPROTO;
	}
	if (link_pass_commit(via, e->circ, p, len) < 0)
		return -EIO;
	if (len > 0)
		e->n->stats.relay_records_placed++;
	return 0;
}

/* Whether our end has to hold a record back now: credit for less than
 * the largest one, or others already wait. */
static bool end_short(const struct relay_end *e)
{
	return e->credited && (bufq_len(&e->pend) > 0 ||
			       !relay_credit_can(&e->cr, RELAY_END_RECORD_MAX));
}

static size_t end_queued(void *ctx)
{
	struct relay_end *e = ctx;
	struct link *via = link_get(e->n, e->via);

	/* No link to the relay: as full as can be (it is going away). So
	 * is an end short of credit for a record: its tunnels wait for the
	 * credit (do_end_credit wakes them) with their bytes in their own
	 * sockets, not in pend. */
	if (!via || end_short(e))
		return SIZE_MAX;
	return link_queued(via) + bufq_len(&e->pend);
}

static void end_close(void *ctx)
{
	struct relay_end *e = ctx;
	struct p2pd_node *n = e->n;
	struct link *via = link_get(n, e->via);

	if (via)
		link_release(via); /* held by end_open */
	if (!e->closed)
		send_close(via, e->circ, "closed", strlen("closed"));
	for (struct relay_end **pp = &n->relay->ends; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	bufq_free(&e->pend);
	free(e);
}

static const struct link_transport end_ops = {
    .write = end_write,
    .queued = end_queued,
    .close = end_close,
    .reserve = end_reserve,
    .commit = end_commit,
};

/* A new end on via, circuit circ, and its link. */
static struct link *end_open(struct p2pd_node *n, struct link *via,
			     uint32_t circ, bool initiator,
			     const struct p2p_peerid *peer)
{
	struct relay_end *e = calloc(1, sizeof(*e));
	struct link *l;

	if (!e)
		return NULL;
	e->n = n;
	e->via = link_id(via);
	e->circ = circ;
	e->credited = link_peer_relay_credit(via);
	relay_credit_init(&e->cr);
	bufq_init(&e->pend, link_bufpool(n));
	e->next = n->relay->ends;
	n->relay->ends = e;
	/* The circuit uses via: the overlay must not close it as idle (a
	 * lookup's link carries no overlay traffic once it is a relay's);
	 * end_close releases it. */
	link_hold(via);
	l = link_open_on(n, &end_ops, e, initiator, peer, link_remote(via),
			 link_local(via));
	if (!l) {
		e->closed = true;
		end_close(e);
		return NULL;
	}
	e->link = link_id(l);
	return l;
}

bool relay_credited(struct p2pd_node *n, const struct link *l)
{
	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		if (e->link == link_id(l))
			return e->credited;
	return false;
}

/* ---- the core's actions ---- */

static void do_close(struct p2pd_node *n, const struct p2p_circuit_action *a)
{
	switch (a->note) {
	case P2P_CIRCUIT_N_BAD_ID:
		n->stats.bad_msgs++;
		break;
	case P2P_CIRCUIT_N_REFUSED:
		n->stats.links_refused++;
		break;
	case P2P_CIRCUIT_N_QUEUE_FULL:
		log_info("relay: a circuit's queue is over %u bytes; closing "
			 "it",
			 RELAY_WQ_MAX);
		break;
	case P2P_CIRCUIT_N_CREDIT:
		n->stats.bad_msgs++;
		log_info("relay: a circuit's end sent beyond its credit; "
			 "closing it");
		break;
	case P2P_CIRCUIT_N_LIMIT:
		/* A peer can ask for these by the thousand: counted (status
		 * relay.refused), logged at debug level only. */
		n->stats.links_refused++;
		log_debug("relay: refused: %.*s", (int)a->len, a->text);
		break;
	case P2P_CIRCUIT_N_EXPIRED:
		log_debug("relay: closed: %.*s", (int)a->len, a->text);
		break;
	default:
		break;
	}
	send_close(link_get(n, a->link), a->circ, a->text, a->len);
}

static void do_accept(struct p2pd_node *n, const struct p2p_circuit_action *a)
{
	struct link *via = link_get(n, a->link);

	if (!via || !end_open(n, via, a->circ, false, &a->peer))
		send_close(via, a->circ, "out of memory",
			   strlen("out of memory"));
}

static void do_end_data(struct p2pd_node *n, const struct p2p_circuit_action *a)
{
	struct relay_end *e = find_end(n, a->link, a->circ);
	struct link *end;

	if (e && !e->closed && (end = link_get(n, e->link)))
		link_input(end, link_get(n, a->link), a->data, a->len);
}

static void do_end_closed(struct p2pd_node *n,
			  const struct p2p_circuit_action *a)
{
	struct relay_end *e = find_end(n, a->link, a->circ);
	struct link *end;

	if (!e)
		return;
	e->closed = true; /* nothing to tell the relay */
	end = link_get(n, e->link);
	if (!end)
		return;
	if (!link_hello_rx(end)) {
		log_info("relay: circuit refused: %.*s", (int)a->len, a->text);
	} else {
		/* An established relayed link cut by R (its byte budget, the
		 * other end's link gone, ...): its tunnels are reset, and
		 * this line is where the user finds out why. */
		static const char none[] = "no reason given";
		char id[P2P_ID_TEXT_LEN + 1];
		p2p_peerid_to_text(link_peer(end), id);
		log_info("relayed link to %s: the relay closed its circuit: "
			 "%.*s",
			 id, a->len ? (int)a->len : (int)strlen(none),
			 a->len ? a->text : none);
	}
	link_fail(end, "relay circuit closed");
}

/* RELAY_CREDIT for our end: more of what waits goes out. */
static void do_end_credit(struct p2pd_node *n,
			  const struct p2p_circuit_action *a)
{
	struct relay_end *e = find_end(n, a->link, a->circ);
	struct link *via = link_get(n, a->link), *end;

	if (!e || e->closed || !via || !(end = link_get(n, e->link)))
		return;
	if (!e->credited || relay_credit_give(&e->cr, (uint32_t)a->len) < 0) {
		/* More back than we sent, or credit we never asked for. */
		n->stats.bad_msgs++;
		link_fail(end, "relay credit overflow");
		return;
	}
	if (end_drain(e, via) < 0)
		link_fail(end, "relay circuit failed");
	else if (!end_short(e))
		link_writable(end); /* its tunnels may read again */
}

static void send_credit(struct p2pd_node *n, const struct p2p_circuit_action *a)
{
	struct link *l = link_get(n, a->link);
	struct p2p_msg m = {.type = P2P_MSG_RELAY_CREDIT};

	if (!l)
		return;
	m.u.relay.circ = a->circ;
	m.u.relay.credit = (uint32_t)a->len;
	link_send_msg(l, &m);
}

/* Carry out what the core decided (after every event). */
static void run(struct p2pd_node *n)
{
	struct p2p_circuit_action a;

	while (p2p_circuit_poll(n->relay->core, &a)) {
		switch (a.type) {
		case P2P_CIRCUIT_SEND_OPEN:
			send_relay(n, P2P_MSG_RELAY_OPEN, a.link, &a);
			break;
		case P2P_CIRCUIT_SEND_CLOSE:
			do_close(n, &a);
			break;
		case P2P_CIRCUIT_FORWARD:
			send_forward(n, &a);
			break;
		case P2P_CIRCUIT_ACCEPT:
			do_accept(n, &a);
			break;
		case P2P_CIRCUIT_END_DATA:
			do_end_data(n, &a);
			break;
		case P2P_CIRCUIT_END_CLOSED:
			do_end_closed(n, &a);
			break;
		case P2P_CIRCUIT_SEND_CREDIT:
			send_credit(n, &a);
			break;
		case P2P_CIRCUIT_END_CREDIT:
			do_end_credit(n, &a);
			break;
		}
	}
}

/* ---- messages ---- */

int relay_open(struct p2pd_node *n, struct link *via,
	       const struct p2p_peerid *peer, struct link **out)
{
	struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
	uint32_t circ;
	int rc;

	if ((rc = p2p_circuit_pick(n->relay->core, link_id(via), &circ)) < 0)
		return rc;
	m.u.relay.circ = circ;
	m.u.relay.peer = *peer;
	if ((rc = link_send_msg(via, &m)) < 0)
		return rc;
	*out = end_open(n, via, circ, true, peer);
	return *out ? 0 : -ENOMEM;
}

void relay_on_msg(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;
	struct p2p_circuit *c = n->relay->core;
	int rc;

	if (link_kind(l) == LINK_RELAY) {
		/* No circuits inside circuits. */
		n->stats.unknown_msgs++;
		return;
	}
	switch (m->type) {
	case P2P_MSG_RELAY_OPEN:
		rc = p2p_circuit_on_open(c, node_now(n), link_id(l),
					 m->u.relay.circ,
					 m->u.relay.code & P2P_RELAY_F_INCOMING,
					 &m->u.relay.peer, link_peer(l));
		break;
	case P2P_MSG_RELAY_DATA:
	case P2P_MSG_RELAY_PASS: /* the same bytes, in a pass frame */
		rc = p2p_circuit_on_data(c, node_now(n), link_id(l),
					 m->u.relay.circ, m->u.relay.data,
					 m->u.relay.len);
		break;
	case P2P_MSG_RELAY_CREDIT:
		rc = p2p_circuit_on_credit(c, link_id(l), m->u.relay.circ,
					   m->u.relay.credit);
		break;
	default: /* P2P_MSG_RELAY_CLOSE */
		rc = p2p_circuit_on_close(c, link_id(l), m->u.relay.circ,
					  m->u.relay.reason, m->u.relay.len);
		break;
	}
	/* -ENOBUFS only when actions were left undrained: run() drains
	 * after every event, so it cannot happen here. */
	if (rc < 0)
		log_warnx("relay: %s", p2p_strerror(rc));
	run(n);
}

/* ---- the clock: the circuits' deadlines ---- */

uint64_t relay_next(void *arg)
{
	struct p2pd_node *n = arg;

	return p2p_circuit_next(n->relay->core);
}

void relay_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;

	/* Should the core stop with its queue full, next() stays <= now
	 * and the hub calls again at once. */
	p2p_circuit_expire(n->relay->core, now);
	run(n);
}

/* ---- link events ---- */

/* Link l is gone: its relayed links and the circuits over it go. */
static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	uint32_t id = link_id(l);

	if (link_kind(l) == LINK_RELAY)
		return; /* its transport closes the circuit (end_close) */
	for (struct relay_end *e = n->relay->ends; e; e = e->next) {
		struct link *end;
		if (e->via != id || e->closed)
			continue;
		e->closed = true;
		if ((end = link_get(n, e->link)))
			link_fail(end, "relay link gone");
	}
	if (p2p_circuit_link_gone(n->relay->core, id) == 0)
		run(n);
}

/* A link drained: the circuits we relay onto it return credit to their
 * sources, and every relayed link of ours over it drained too. */
static void on_writable(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;
	struct link *end;

	if (link_kind(l) == LINK_RELAY)
		return;
	if (p2p_circuit_on_sent(n->relay->core, node_now(n), link_id(l),
				link_bytes_out(l) - link_queued(l)) == 0)
		run(n);
	for (struct relay_end *e = n->relay->ends; e; e = e->next)
		if (e->via == link_id(l) && !e->closed &&
		    (end = link_get(n, e->link)))
			link_writable(end);
}

const struct node_link_hooks relay_link_hooks = {
    .gone = on_gone,
    .writable = on_writable,
};
