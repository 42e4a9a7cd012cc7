/*
 * Routed messages: greedy forwarding over held links towards dst.
 *
 * Each hop sends the message to the linked peer (server or client) nearest
 * to dst, and only when that peer is strictly nearer than itself, so the
 * distance falls at every hop and a message cannot loop; the recent-ID
 * cache drops copies that come back anyway, and the hop limit bounds the
 * path. Only a first hop may be no nearer than its sender: from a client
 * (it links only to its own neighbourhood) and for a failure report.
 * What cannot go on is answered with a P2P_APP_ROUTE_FAIL message that
 * goes back hop by hop the way the message came, to its source, which
 * reports ROUTE_FAILED for its msgid.
 *
 * Why back the same way: a failure report names a message ID, which every
 * node on the path has seen, and carries no proof of who failed it. Each
 * node therefore remembers, for each message it passed on, the hop it came
 * from and the hop it went to, and passes a failure only from the latter
 * to the former; the source acts on one only from its first hop. A node
 * can then fail just the messages that it could have dropped anyway (it is
 * on their path), and no node off the path can fail anyone's request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * An ID folded to 64 bits (its four words XORed): enough to tell the links
 * of one node apart, since IDs are hashes of keys and matching another's
 * fold would take about 2^64 tries at making keys. Never 0, which means
 * "none".
 */
static uint64_t id_tag(const struct p2p_peerid *id)
{
	uint64_t t = 0;

	for (int i = 0; i < P2P_ID_LEN; i++)
		t ^= (uint64_t)id->b[i] << (8 * (i % 8));
	return t != 0 ? t : 1;
}

static struct ov_seen *seen_find(struct p2p_overlay *o, uint64_t msgid)
{
	for (unsigned i = 0; i < o->nseen; i++)
		if (o->seen[i].msgid == msgid)
			return &o->seen[i];
	return NULL;
}

/*
 * Remember msgid as seen, coming from prev (NULL: ours). Returns true for
 * a copy (already seen); *slot is its record, NULL when out of memory.
 */
static bool seen_check_add(struct p2p_overlay *o, uint64_t msgid,
			   const struct p2p_peerid *prev, struct ov_seen **slot)
{
	struct ov_seen *e;

	*slot = NULL;
	if (o->seen == NULL) {
		o->seen = malloc(OV_SEEN_MAX * sizeof(*o->seen));
		if (o->seen == NULL)
			return false;
	}
	if ((e = seen_find(o, msgid)) != NULL)
		return true;
	e = &o->seen[o->seenpos];
	e->msgid = msgid;
	e->prev = prev != NULL ? id_tag(prev) : 0;
	e->next = 0;
	o->seenpos = (o->seenpos + 1) % OV_SEEN_MAX;
	if (o->nseen < OV_SEEN_MAX)
		o->nseen++;
	*slot = e;
	return false;
}

static void sent_add(struct p2p_overlay *o, uint64_t msgid,
		     const struct p2p_peerid *dst, const struct p2p_peerid *via)
{
	if (o->sent == NULL) {
		o->sent = malloc(OV_SENT_MAX * sizeof(*o->sent));
		if (o->sent == NULL)
			return;
	}
	o->sent[o->sentpos].msgid = msgid;
	o->sent[o->sentpos].via = via != NULL ? id_tag(via) : 0;
	o->sent[o->sentpos].dst = *dst;
	o->sentpos = (o->sentpos + 1) % OV_SENT_MAX;
	if (o->nsent < OV_SENT_MAX)
		o->nsent++;
}

/*
 * Our message msgid failed: report it once, if it is ours at all and the
 * report came from the hop we sent it to (from NULL: we found it
 * ourselves).
 */
static void sent_failed(struct p2p_overlay *o, uint64_t msgid,
			const struct p2p_peerid *from)
{
	for (unsigned i = 0; i < o->nsent; i++) {
		struct ov_act *x;

		if (o->sent[i].msgid != msgid)
			continue;
		if (from != NULL && o->sent[i].via != id_tag(from))
			return; /* not from our first hop: not authentic */
		x = ov_push(o, P2P_OV_ROUTE_FAILED, &o->sent[i].dst);
		if (x != NULL)
			x->a.id = msgid;
		o->sent[i].msgid ^= 1; /* never matches msgid again */
		return;
	}
}

/* Token bucket of P2P_ROUTE_RATE per second, in thousandths of a token. */
static bool take_token(uint32_t *tokens, uint64_t *refill, uint64_t now)
{
	uint64_t t = *tokens;

	if (now > *refill)
		t += (now - *refill) * P2P_ROUTE_RATE;
	if (t > P2P_ROUTE_RATE * 1000)
		t = P2P_ROUTE_RATE * 1000;
	*refill = now > *refill ? now : *refill;
	if (t < 1000) {
		*tokens = (uint32_t)t;
		return false;
	}
	*tokens = (uint32_t)(t - 1000);
	return true;
}

/*
 * The held link nearest dst, other than exclude; NULL if none. A client is
 * an endpoint, never a relay: it links only to its own neighbourhood, so a
 * message handed to a client that is not its destination would be stuck
 * there (seen in p2psim with half the nodes clients: 0.2% of routed
 * messages died on a client that happened to be near dst).
 */
static const struct ov_link *nearest_link(const struct p2p_overlay *o,
					  const struct p2p_peerid *dst,
					  const struct p2p_peerid *exclude)
{
	const struct ov_link *best = NULL;

	for (uint32_t i = 0; i < o->nlk; i++) {
		const struct ov_link *l = &o->lk[i];

		if (l->state != OV_LINK_UP ||
		    (exclude != NULL && ov_id_eq(&l->id, exclude)))
			continue;
		if (!(l->flags & OV_L_SERVER) && !ov_id_eq(&l->id, dst))
			continue;
		if (best == NULL || ov_cmp_dist(dst, &l->id, &best->id) < 0)
			best = l;
	}
	return best;
}

static int emit(struct p2p_overlay *o, uint64_t now,
		const struct p2p_peerid *to, uint64_t msgid, uint8_t hops,
		const struct p2p_peerid *src, const struct p2p_peerid *dst,
		uint8_t app, const uint8_t *payload, size_t len)
{
	struct p2p_msg m;

	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_ROUTED;
	m.u.routed.msgid = msgid;
	m.u.routed.hops = hops;
	m.u.routed.src = *src;
	m.u.routed.dst = *dst;
	m.u.routed.app = app;
	m.u.routed.payload = payload;
	m.u.routed.len = len;
	return ov_send(o, now, to, &m);
}

static void deliver(struct p2p_overlay *o, const struct p2p_peerid *src,
		    uint64_t msgid, uint8_t app, const uint8_t *payload,
		    size_t len, int hops)
{
	struct ov_act *x;
	size_t off = SIZE_MAX;
	uint8_t *copy;

	copy = ov_arena_alloc(o, len, &off);
	if (copy == NULL)
		return;
	if (len > 0)
		memcpy(copy, payload, len);
	x = ov_push(o, P2P_OV_DELIVER, src);
	if (x == NULL)
		return;
	x->a.app = app;
	x->a.id = msgid;
	x->a.hops = hops;
	x->a.len = len;
	x->off = off;
	o->st.routed_delivered++;
}

/*
 * Send a message of ours on its first hop: to the nearest link we hold,
 * even when it is no nearer than we are. A client always does (it links
 * only to its own neighbourhood). A server that is itself the nearest
 * node it knows of may still not hold the destination's link: a client
 * links to several servers near its ID, and the one it dropped (or that
 * dropped it: `disconnect`) is often the nearest. Its nearest server
 * link then delivers when it holds one to dst, else answers ROUTE_FAIL
 * (it may not pass on what comes no nearer), one round trip later than
 * failing here would. *via: the first hop.
 */
static int originate(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *dst, uint8_t app,
		     const uint8_t *payload, size_t len, uint64_t msgid,
		     struct p2p_peerid *via)
{
	const struct ov_link *l = nearest_link(o, dst, NULL);
	struct ov_seen *e;

	seen_check_add(o, msgid, NULL, &e);
	if (l == NULL)
		return -EHOSTUNREACH;
	*via = l->id;
	if (e != NULL)
		e->next = id_tag(&l->id);
	return emit(o, now, &l->id, msgid, P2P_ROUTE_HOPS, &o->cfg.self, dst,
		    app, payload, len);
}

/* m, which came from the hop from, cannot go on: tell that hop. */
static void undeliverable(struct p2p_overlay *o, uint64_t now,
			  const struct p2p_peerid *from,
			  const struct p2p_msg *m)
{
	uint8_t body[8];
	uint64_t id;
	struct ov_seen *e;

	o->st.routed_dropped++;
	if (m->u.routed.app == P2P_APP_ROUTE_FAIL)
		return; /* never answer a failure with a failure */
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)(m->u.routed.msgid >> (56 - 8 * i));
	o->cfg.random(o->cfg.ctx, &id, sizeof(id));
	seen_check_add(o, id, NULL, &e);
	emit(o, now, from, id, P2P_ROUTE_HOPS, &o->cfg.self, &m->u.routed.src,
	     P2P_APP_ROUTE_FAIL, body, sizeof(body));
}

/*
 * A failure report from the hop from: act on it if it names our message
 * and from is its first hop, pass it back if it names one we passed to
 * from, else drop it (whoever sent it could not have failed that message).
 */
static int fail_recv(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *from, const struct p2p_msg *m)
{
	const struct ov_seen *e;
	uint64_t id = 0, prev;

	if (m->u.routed.len != 8)
		return -EPROTO;
	for (int i = 0; i < 8; i++)
		id = id << 8 | m->u.routed.payload[i];
	if (ov_id_eq(&m->u.routed.dst, &o->cfg.self)) {
		sent_failed(o, id, from);
		return 0;
	}
	e = o->seen != NULL ? seen_find(o, id) : NULL;
	if (e == NULL || e->prev == 0 || e->next != id_tag(from) ||
	    m->u.routed.hops == 0) {
		o->st.routed_dropped++;
		return 0;
	}
	prev = e->prev;
	for (uint32_t i = 0; i < o->nlk; i++) {
		const struct ov_link *l = &o->lk[i];

		if (l->state != OV_LINK_UP || id_tag(&l->id) != prev)
			continue;
		o->st.routed_forwarded++;
		return emit(o, now, &l->id, m->u.routed.msgid,
			    m->u.routed.hops - 1, &m->u.routed.src,
			    &m->u.routed.dst, P2P_APP_ROUTE_FAIL,
			    m->u.routed.payload, m->u.routed.len) == -ENOMEM
			   ? -ENOMEM
			   : 0;
	}
	o->st.routed_dropped++; /* the way back is gone */
	return 0;
}

int ov_route_recv(struct p2p_overlay *o, uint64_t now,
		  const struct p2p_peerid *from, const struct p2p_msg *m)
{
	struct ov_link *in = ov_link_find(o, from);
	const struct p2p_peerid *dst = &m->u.routed.dst;
	const struct ov_link *next;
	struct ov_seen *seen;
	bool ok;
	uint8_t hops;

	if (in != NULL && in->state == OV_LINK_UP)
		ok = take_token(&in->tokens, &in->refill, now);
	else
		ok = take_token(&o->anon_tokens, &o->anon_refill, now);
	if (!ok) {
		o->st.routed_dropped++;
		return -EAGAIN;
	}
	if (m->u.routed.len > P2P_MSG_MAX - OV_ROUTE_OVERHEAD ||
	    m->u.routed.hops > P2P_ROUTE_HOPS_MAX)
		return -EMSGSIZE;
	if (seen_check_add(o, m->u.routed.msgid, from, &seen)) {
		o->st.routed_dropped++; /* a copy, or a loop */
		return 0;
	}
	if (m->u.routed.app == P2P_APP_ROUTE_FAIL)
		return fail_recv(o, now, from, m);
	hops = m->u.routed.hops > 0 ? m->u.routed.hops - 1 : 0;
	if (ov_id_eq(dst, &o->cfg.self)) {
		int travelled = P2P_ROUTE_HOPS - m->u.routed.hops + 1;

		deliver(o, &m->u.routed.src, m->u.routed.msgid, m->u.routed.app,
			m->u.routed.payload, m->u.routed.len,
			travelled > 0 ? travelled : 1);
		return 0;
	}
	next = nearest_link(o, dst, from);
	if (next == NULL ||
	    (!ov_id_eq(&next->id, dst) &&
	     (hops == 0 || ov_cmp_dist(dst, &next->id, &o->cfg.self) >= 0))) {
		undeliverable(o, now, from, m);
		return 0;
	}
	if (seen != NULL)
		seen->next = id_tag(&next->id);
	o->st.routed_forwarded++;
	return emit(o, now, &next->id, m->u.routed.msgid, hops,
		    &m->u.routed.src, dst, m->u.routed.app, m->u.routed.payload,
		    m->u.routed.len) == -ENOMEM
		   ? -ENOMEM
		   : 0;
}

int ov_route_origin(struct p2p_overlay *o, uint64_t now,
		    const struct p2p_peerid *dst, uint8_t app,
		    const uint8_t *payload, size_t len, uint64_t *msgid)
{
	struct p2p_peerid via;
	uint64_t id;
	int rc;

	if (app == P2P_APP_ROUTE_FAIL)
		return -EINVAL; /* the overlay's own, sent hop by hop */
	o->cfg.random(o->cfg.ctx, &id, sizeof(id));
	if (msgid != NULL)
		*msgid = id;
	if (ov_id_eq(dst, &o->cfg.self)) {
		o->st.routed_sent++;
		deliver(o, &o->cfg.self, id, app, payload, len, 0);
		return 0;
	}
	if (o->links_up == 0)
		return -EHOSTUNREACH;
	o->st.routed_sent++;
	rc = originate(o, now, dst, app, payload, len, id, &via);
	if (rc == 0)
		sent_add(o, id, dst, &via);
	return rc;
}

void ov_route_free(struct p2p_overlay *o)
{
	free(o->seen);
	free(o->sent);
	o->seen = NULL;
	o->sent = NULL;
}
