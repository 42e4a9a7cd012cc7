/*
 * Routed messages: greedy forwarding over held links towards dst.
 *
 * Each hop sends the message to the linked peer (server or client) nearest
 * to dst, and only when that peer is strictly nearer than itself, so the
 * distance falls at every hop and a message cannot loop; the recent-ID
 * cache drops copies that come back anyway, and the hop limit bounds the
 * path. Only a first hop may be no nearer than its sender: from a client
 * (it links only to its own neighbourhood) and for a failure report.
 * What cannot go on is answered with a P2P_APP_ROUTE_FAIL message routed
 * back to its source, which reports ROUTE_FAILED for its msgid.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool seen_check_add(struct p2p_overlay *o, uint64_t msgid)
{
	if (o->seen == NULL) {
		o->seen = malloc(OV_SEEN_MAX * sizeof(*o->seen));
		if (o->seen == NULL)
			return false;
	}
	for (unsigned i = 0; i < o->nseen; i++)
		if (o->seen[i] == msgid)
			return true;
	o->seen[o->seenpos] = msgid;
	o->seenpos = (o->seenpos + 1) % OV_SEEN_MAX;
	if (o->nseen < OV_SEEN_MAX)
		o->nseen++;
	return false;
}

static void sent_add(struct p2p_overlay *o, uint64_t msgid,
		     const struct p2p_peerid *dst)
{
	if (o->sent == NULL) {
		o->sent = malloc(OV_SENT_MAX * sizeof(*o->sent));
		if (o->sent == NULL)
			return;
	}
	o->sent[o->sentpos].msgid = msgid;
	o->sent[o->sentpos].dst = *dst;
	o->sentpos = (o->sentpos + 1) % OV_SENT_MAX;
	if (o->nsent < OV_SENT_MAX)
		o->nsent++;
}

/* Our message msgid failed: report it once, if it is ours at all. */
static void sent_failed(struct p2p_overlay *o, uint64_t msgid)
{
	for (unsigned i = 0; i < o->nsent; i++) {
		struct ov_act *x;

		if (o->sent[i].msgid != msgid)
			continue;
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

	if (app == P2P_APP_ROUTE_FAIL) {
		uint64_t id = 0;

		if (len != 8)
			return;
		for (int i = 0; i < 8; i++)
			id = id << 8 | payload[i];
		sent_failed(o, id);
		return;
	}
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
 * Send a message of ours on its first hop. A server sends only to a nearer
 * peer (else it is itself the nearest node it knows of); a client, and a
 * failure report (which must find its way back whatever our position),
 * take the nearest link they have.
 */
static int originate(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *dst, uint8_t app,
		     const uint8_t *payload, size_t len, uint64_t msgid)
{
	const struct ov_link *l = nearest_link(o, dst, NULL);
	bool strict = o->server && app != P2P_APP_ROUTE_FAIL;

	seen_check_add(o, msgid);
	if (l == NULL)
		return -EHOSTUNREACH;
	if (strict && !ov_id_eq(&l->id, dst) &&
	    ov_cmp_dist(dst, &l->id, &o->cfg.self) >= 0)
		return -ENETUNREACH; /* we are the nearest node we know */
	return emit(o, now, &l->id, msgid, P2P_ROUTE_HOPS, &o->cfg.self, dst,
		    app, payload, len);
}

static void undeliverable(struct p2p_overlay *o, uint64_t now,
			  const struct p2p_msg *m)
{
	uint8_t body[8];
	uint64_t id;

	o->st.routed_dropped++;
	if (m->u.routed.app == P2P_APP_ROUTE_FAIL)
		return; /* never answer a failure with a failure */
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)(m->u.routed.msgid >> (56 - 8 * i));
	o->cfg.random(o->cfg.ctx, &id, sizeof(id));
	originate(o, now, &m->u.routed.src, P2P_APP_ROUTE_FAIL, body,
		  sizeof(body), id);
}

int ov_route_recv(struct p2p_overlay *o, uint64_t now,
		  const struct p2p_peerid *from, const struct p2p_msg *m)
{
	struct ov_link *in = ov_link_find(o, from);
	const struct p2p_peerid *dst = &m->u.routed.dst;
	const struct ov_link *next;
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
	if (seen_check_add(o, m->u.routed.msgid)) {
		o->st.routed_dropped++; /* a copy, or a loop */
		return 0;
	}
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
		undeliverable(o, now, m);
		return 0;
	}
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
	uint64_t id;
	int rc;

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
	sent_add(o, id, dst);
	o->st.routed_sent++;
	rc = originate(o, now, dst, app, payload, len, id);
	if (rc == -ENETUNREACH) {
		o->st.routed_dropped++;
		sent_failed(o, id);
		return 0;
	}
	return rc;
}

void ov_route_free(struct p2p_overlay *o)
{
	free(o->seen);
	free(o->sent);
	o->seen = NULL;
	o->sent = NULL;
}
