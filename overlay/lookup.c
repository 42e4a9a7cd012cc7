/*
 * Iterative lookups (Kademlia FIND_NODE) and bucket refresh.
 *
 * A lookup keeps a shortlist of the OV_LOOKUP_CANDS candidates nearest the
 * target, seeded from the table. It keeps P2P_ALPHA requests in flight to
 * the nearest candidates not yet asked among the P2P_K nearest that have
 * not failed; a request to a node without a link first dials it, and the
 * dial counts in the request's P2P_LOOKUP_REQ_TIMEOUT_MS. It ends when the
 * P2P_K nearest live candidates have all answered (or P2P_LOOKUP_TIMEOUT_MS
 * passed); the result is those that answered, nearest first.
 *
 * hops: a seed from our own table has depth 0; a node first learned from
 * the reply of a node of depth d has depth d + 1 (the smallest such chain
 * counts). hops is the depth of the nearest result, i.e. the number of
 * rounds of replies it took to learn of it (0: we knew it already).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool in_flight(const struct ov_cand *c)
{
	return c->state == OV_C_DIALING || c->state == OV_C_SENT;
}

static void cand_add(struct p2p_overlay *o, struct ov_lookup *lk,
		     const struct p2p_contact *ct, uint8_t depth)
{
	unsigned pos = lk->n;
	int j;

	if (ct->addr.family == 0 || ov_id_eq(&ct->id, &o->cfg.self))
		return;
	for (unsigned i = 0; i < lk->n; i++) {
		if (ov_id_eq(&lk->c[i].c.id, &ct->id)) {
			if (depth < lk->c[i].depth)
				lk->c[i].depth = depth;
			return;
		}
	}
	while (pos > 0 &&
	       ov_cmp_dist(&lk->target, &ct->id, &lk->c[pos - 1].c.id) < 0)
		pos--;
	if (lk->n == OV_LOOKUP_CANDS) {
		/* evict the farthest candidate we are not waiting for */
		for (j = lk->n - 1; j >= 0 && in_flight(&lk->c[j]); j--)
			;
		if (j < 0 || pos > (unsigned)j)
			return;
		memmove(&lk->c[j], &lk->c[j + 1],
			(lk->n - j - 1) * sizeof(lk->c[0]));
		lk->n--;
	}
	memmove(&lk->c[pos + 1], &lk->c[pos], (lk->n - pos) * sizeof(lk->c[0]));
	memset(&lk->c[pos], 0, sizeof(lk->c[0]));
	lk->c[pos].c = *ct;
	lk->c[pos].depth = depth;
	lk->n++;
}

static void send_find(struct p2p_overlay *o, uint64_t now, struct ov_lookup *lk,
		      struct ov_cand *c)
{
	struct p2p_msg m;

	memset(&m, 0, sizeof(m));
	m.type = P2P_MSG_FIND_NODE;
	m.u.find_node.txid = o->next_txid++;
	m.u.find_node.target = lk->target;
	if (ov_send(o, now, &c->c.id, &m) < 0) {
		c->state = OV_C_FAILED;
		return;
	}
	c->txid = m.u.find_node.txid;
	c->state = OV_C_SENT;
}

static void request(struct p2p_overlay *o, uint64_t now, struct ov_lookup *lk,
		    struct ov_cand *c)
{
	struct ov_link *l = ov_link_find(o, &c->c.id);

	c->deadline = now + P2P_LOOKUP_REQ_TIMEOUT_MS;
	if (l != NULL && l->state == OV_LINK_UP)
		send_find(o, now, lk, c);
	else if (ov_link_dial(o, now, &c->c.id, &c->c.addr))
		c->state = OV_C_DIALING;
	else
		c->state = OV_C_FAILED;
}

/* Probe answers: the nearest new servers become (unverified) entries. */
static void probe_learn(struct p2p_overlay *o, uint64_t now,
			const struct ov_lookup *lk)
{
	unsigned seen = 0, learnt = 0;

	for (unsigned i = 0; i < lk->n && seen < P2P_K; i++) {
		if (lk->c[i].depth == 0)
			continue;
		seen++;
		if (ov_table_find(o, &lk->c[i].c.id) == NULL &&
		    ov_table_insert(o, now, &lk->c[i].c.id, &lk->c[i].c.addr,
				    false))
			learnt++;
	}
	/* a quiet neighbourhood is asked less and less often */
	if (learnt > 0 || o->probe_ivl < OV_CLIENT_PROBE_MS)
		o->probe_ivl = OV_CLIENT_PROBE_MS;
	else if (o->probe_ivl < OV_CLIENT_PROBE_MAX_MS)
		o->probe_ivl *= 2;
	if (!o->server)
		o->probe_at = now + o->probe_ivl;
}

static void finish(struct p2p_overlay *o, uint64_t now, unsigned slot)
{
	struct ov_lookup *lk = o->lookups[slot];
	struct p2p_contact *res = NULL;
	struct p2p_contact near;
	size_t n = 0, off = SIZE_MAX;
	bool found = false;
	int hops = 0;

	if (lk->kind == OV_LK_USER)
		res = ov_arena_alloc(o, P2P_K * sizeof(*res), &off);
	for (unsigned i = 0; i < lk->n && n < P2P_K; i++) {
		if (lk->c[i].state != OV_C_DONE)
			continue;
		if (n == 0)
			hops = lk->c[i].depth;
		if (ov_id_eq(&lk->c[i].c.id, &lk->target))
			found = true;
		if (res != NULL)
			res[n] = lk->c[i].c;
		n++;
	}
	if (lk->kind == OV_LK_USER) {
		struct ov_act *x = ov_push(o, P2P_OV_LOOKUP_DONE, &lk->target);

		if (x != NULL) {
			x->a.id = lk->id;
			x->a.found = found;
			x->a.hops = hops;
			x->coff = res != NULL ? off : SIZE_MAX;
			x->a.ncontacts = res != NULL ? n : 0;
		}
	} else if (lk->kind == OV_LK_SELF) {
		o->self_at = now + P2P_REFRESH_MS;
		/* after a join, refresh every bucket farther than our nearest
		 */
		if (o->booting &&
		    ov_table_closest(o, &o->cfg.self, NULL, false, &near, 1)) {
			int c = ov_bucket_index(o, &near.id);

			for (int i = 0; i < c && i < o->nbk; i++)
				o->bk[i].touched_s = 0;
		}
		o->booting = false;
		o->booted = true;
		if (!o->server && o->probe_at == UINT64_MAX)
			o->probe_at = now + OV_CLIENT_PROBE_MS;
		o->refresh_at = now;
	} else if (lk->kind == OV_LK_PROBE) {
		probe_learn(o, now, lk);
	}
	if (o->booted)
		o->refresh_at = now; /* a slot is free: start a due refresh */
	o->st.lookups_done++;
	o->lookups[slot] = o->lookups[--o->nlookups];
	free(lk);
}

/* Issue requests; true when the lookup has finished (and is freed). */
static bool step(struct p2p_overlay *o, uint64_t now, unsigned slot)
{
	struct ov_lookup *lk = o->lookups[slot];
	unsigned inflight = 0, live = 0;
	bool done = true;

	if (now >= lk->deadline) {
		finish(o, now, slot);
		return true;
	}
	for (unsigned i = 0; i < lk->n; i++)
		inflight += in_flight(&lk->c[i]);
	for (unsigned i = 0; i < lk->n && live < P2P_K; i++) {
		struct ov_cand *c = &lk->c[i];

		if (lk->kind == OV_LK_PROBE && c->depth > 0)
			continue; /* one round only */
		if (c->state == OV_C_NEW && inflight < P2P_ALPHA) {
			request(o, now, lk, c);
			inflight += in_flight(c);
		}
		if (c->state == OV_C_FAILED)
			continue;
		live++;
		if (c->state != OV_C_DONE)
			done = false;
	}
	if (done) {
		finish(o, now, slot);
		return true;
	}
	lk->wake = lk->deadline;
	for (unsigned i = 0; i < lk->n; i++)
		if (in_flight(&lk->c[i]) && lk->c[i].deadline < lk->wake)
			lk->wake = lk->c[i].deadline;
	return false;
}

/* Keep the first max contacts we hold a link to (or the first max). */
static size_t linked_first(const struct p2p_overlay *o, struct p2p_contact *c,
			   size_t n, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < max; i++) {
		const struct ov_link *l = ov_link_find(o, &c[i].id);

		if (l != NULL && l->state == OV_LINK_UP)
			c[k++] = c[i];
	}
	return k > 0 ? k : (n < max ? n : max);
}

int ov_lookup_start(struct p2p_overlay *o, uint64_t now,
		    const struct p2p_peerid *target, enum ov_lookup_kind kind,
		    uint64_t *id)
{
	struct p2p_contact seeds[P2P_K];
	struct ov_lookup *lk;
	size_t n;
	int b;

	if (o->nlookups == OV_LOOKUPS_MAX)
		return -EBUSY;
	lk = calloc(1, sizeof(*lk));
	if (lk == NULL)
		return -ENOMEM;
	lk->id = o->next_lookup_id++;
	lk->target = *target;
	lk->kind = (uint8_t)kind;
	lk->deadline = now + P2P_LOOKUP_TIMEOUT_MS;
	n = ov_table_closest(o, target, NULL, true, seeds, P2P_K);
	if (kind == OV_LK_PROBE)
		n = linked_first(o, seeds, n, P2P_ALPHA);
	for (size_t i = 0; i < n; i++)
		cand_add(o, lk, &seeds[i], 0);
	b = ov_bucket_index(o, target);
	if (b < o->nbk)
		o->bk[b].touched_s = ov_touch_stamp(now);
	if (id != NULL)
		*id = lk->id;
	o->lookups[o->nlookups++] = lk;
	o->st.lookups_started++;
	step(o, now, o->nlookups - 1);
	return 0;
}

/* Run fn on every lookup waiting for peer, then step those lookups. */
void ov_lookup_link_up(struct p2p_overlay *o, uint64_t now,
		       const struct p2p_peerid *peer)
{
	for (unsigned s = 0; s < o->nlookups; s++) {
		struct ov_lookup *lk = o->lookups[s];

		for (unsigned i = 0; i < lk->n; i++)
			if (lk->c[i].state == OV_C_DIALING &&
			    ov_id_eq(&lk->c[i].c.id, peer))
				send_find(o, now, lk, &lk->c[i]);
	}
}

void ov_lookup_link_gone(struct p2p_overlay *o, uint64_t now,
			 const struct p2p_peerid *peer)
{
	for (unsigned s = 0; s < o->nlookups;) {
		struct ov_lookup *lk = o->lookups[s];
		bool hit = false;

		for (unsigned i = 0; i < lk->n; i++) {
			if (in_flight(&lk->c[i]) &&
			    ov_id_eq(&lk->c[i].c.id, peer)) {
				lk->c[i].state = OV_C_FAILED;
				hit = true;
			}
		}
		if (!hit || !step(o, now, s))
			s++;
	}
}

int ov_lookup_nodes(struct p2p_overlay *o, uint64_t now,
		    const struct p2p_peerid *from, const struct p2p_msg *m)
{
	uint32_t txid = m->u.nodes.txid;
	const struct ov_link *from_l = ov_link_find(o, from);
	const struct p2p_addr *via = from_l ? &from_l->addr : NULL;

	if (m->u.nodes.count > P2P_MAX_NODES)
		return -EPROTO;
	for (unsigned s = 0; s < o->nlookups; s++) {
		struct ov_lookup *lk = o->lookups[s];

		for (unsigned i = 0; i < lk->n; i++) {
			struct ov_cand *c = &lk->c[i];
			uint8_t depth;

			if (c->state != OV_C_SENT || c->txid != txid ||
			    !ov_id_eq(&c->c.id, from))
				continue;
			c->state = OV_C_DONE;
			depth = c->depth < UINT8_MAX ? c->depth + 1 : UINT8_MAX;
			for (unsigned k = 0; k < m->u.nodes.count; k++)
				if (p2p_overlay_addr_dialable(
					&m->u.nodes.nodes[k].addr, via))
					cand_add(o, lk, &m->u.nodes.nodes[k],
						 depth);
			step(o, now, s);
			return 0;
		}
	}
	/* unsolicited, late or duplicate: ignored, but counted */
	o->st.bad_msgs++;
	return 0;
}

void ov_lookup_tick(struct p2p_overlay *o, uint64_t now)
{
	for (unsigned s = 0; s < o->nlookups;) {
		struct ov_lookup *lk = o->lookups[s];

		if (now < lk->wake) {
			s++;
			continue;
		}
		for (unsigned i = 0; i < lk->n; i++) {
			struct ov_cand *c = &lk->c[i];

			if (in_flight(c) && c->deadline <= now) {
				char t[P2P_ID_TEXT_LEN + 1];

				p2p_peerid_to_text(&c->c.id, t);
				ov_log(o, 7,
				       "overlay: no answer from %s in time", t);
				c->state = OV_C_FAILED;
				ov_table_fail(o, now, &c->c.id);
			}
		}
		if (!step(o, now, s))
			s++;
	}
}

/* A random ID that falls into bucket i (shares exactly i bits with us). */
static void random_in_bucket(struct p2p_overlay *o, unsigned i,
			     struct p2p_peerid *id)
{
	unsigned k = i / 8;
	uint8_t m = (uint8_t)((1u << (7 - i % 8)) - 1);

	o->cfg.random(o->cfg.ctx, id->b, sizeof(id->b));
	memcpy(id->b, o->cfg.self.b, k);
	id->b[k] = (uint8_t)(((o->cfg.self.b[k] & ~m) ^ (0x80u >> (i % 8))) |
			     (id->b[k] & m));
}

static unsigned running(const struct p2p_overlay *o, enum ov_lookup_kind kind)
{
	unsigned n = 0;

	for (unsigned s = 0; s < o->nlookups; s++)
		n += o->lookups[s]->kind == kind;
	return n;
}

/* Own-ID lookup every P2P_REFRESH_MS; buckets not looked into as long. */
void ov_refresh_tick(struct p2p_overlay *o, uint64_t now)
{
	struct p2p_contact near;
	uint64_t next = UINT64_MAX;
	unsigned busy, limit = 0;

	if (!o->booted)
		return;
	if (now >= o->self_at && running(o, OV_LK_SELF) == 0) {
		o->self_at = UINT64_MAX; /* set again when it finishes */
		if (ov_lookup_start(o, now, &o->cfg.self, OV_LK_SELF, NULL) < 0)
			o->self_at = now + OV_MAINT_MIN_MS;
	}
	if (ov_table_closest(o, &o->cfg.self, NULL, false, &near, 1))
		limit = (unsigned)ov_bucket_index(o, &near.id);
	if (o->server) {
		o->probe_at = UINT64_MAX;
	} else if (now >= o->probe_at) {
		/* set again when the probe ends */
		o->probe_at = UINT64_MAX;
		if (running(o, OV_LK_PROBE) > 0 ||
		    ov_lookup_start(o, now, &o->cfg.self, OV_LK_PROBE, NULL) <
			0)
			o->probe_at = now + OV_CLIENT_PROBE_MS;
	}
	busy = running(o, OV_LK_REFRESH);
	for (unsigned i = 0; i < limit && i < o->nbk; i++) {
		uint64_t due =
		    o->bk[i].touched_s == 0
			? now
			: (uint64_t)o->bk[i].touched_s * 1000 + P2P_REFRESH_MS;
		struct p2p_peerid t;

		if (due <= now) {
			if (busy >= OV_REFRESH_PARALLEL)
				continue; /* a finishing refresh re-arms us */
			random_in_bucket(o, i, &t);
			if (ov_lookup_start(o, now, &t, OV_LK_REFRESH, NULL) <
			    0)
				continue;
			busy++;
			due = now + P2P_REFRESH_MS;
		}
		if (due < next)
			next = due;
	}
	o->refresh_at = next;
}

void ov_lookups_free(struct p2p_overlay *o)
{
	for (unsigned s = 0; s < o->nlookups; s++)
		free(o->lookups[s]);
	o->nlookups = 0;
}
