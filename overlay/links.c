/*
 * Links the overlay knows of, and which of them it keeps.
 *
 * What scales: a server keeps links to the P2P_K table entries closest to
 * itself (so that the last hops of a route, and a client's neighbourhood,
 * are always one link away) and to the first OV_BUCKET_LINKS live entries
 * of every bucket (so that greedy routing gains at least one bit per hop).
 * That is O(k + log N) links, capped by OV_LINKS_WANT_MAX. A client keeps
 * only the P2P_K servers closest to its own ID. Links opened for a lookup
 * are closed after OV_LINK_IDLE_MS without overlay traffic. Links others
 * opened to us are theirs to close; client links stay while they live.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * Index slots hold (tag << OV_IDX_BITS) | (record + 1), 0 when empty: the
 * tag (12 more bits of the hash) spares most probes a visit to the record.
 */
#define OV_IDX_BITS 20
#define OV_IDX_MASK ((1u << OV_IDX_BITS) - 1)

static uint64_t link_hash(const struct p2p_overlay *o,
			  const struct p2p_peerid *id)
{
	uint64_t x;

	memcpy(&x, id->b, sizeof(x));
	x ^= o->hseed;
	x *= 0x9E3779B97F4A7C15ULL;
	return x ^ (x >> 29);
}

static uint32_t home_of(const struct p2p_overlay *o, uint64_t h)
{
	return (uint32_t)h & (o->lkidxcap - 1);
}

static uint32_t tag_of(uint64_t h)
{
	return (uint32_t)(h >> 52) << OV_IDX_BITS;
}

/* Slot of the index that holds id, or of the empty slot where it goes. */
static uint32_t slot_of(const struct p2p_overlay *o,
			const struct p2p_peerid *id)
{
	uint64_t h = link_hash(o, id);
	uint32_t mask = o->lkidxcap - 1, s = home_of(o, h), tag = tag_of(h);

	for (;; s = (s + 1) & mask) {
		uint32_t v = o->lkidx[s];

		if (v == 0 || ((v & ~OV_IDX_MASK) == tag &&
			       ov_id_eq(&o->lk[(v & OV_IDX_MASK) - 1].id, id)))
			return s;
	}
}

static uint32_t slot_value(const struct p2p_overlay *o, uint32_t i)
{
	return tag_of(link_hash(o, &o->lk[i].id)) | (i + 1);
}

struct ov_link *ov_link_find(const struct p2p_overlay *o,
			     const struct p2p_peerid *id)
{
	uint32_t s;

	if (o->lkidxcap == 0)
		return NULL;
	s = slot_of(o, id);
	return o->lkidx[s] ? &o->lk[(o->lkidx[s] & OV_IDX_MASK) - 1] : NULL;
}

static int rehash(struct p2p_overlay *o, uint32_t cap)
{
	uint32_t *idx = calloc(cap, sizeof(*idx));

	if (idx == NULL)
		return -ENOMEM;
	free(o->lkidx);
	o->lkidx = idx;
	o->lkidxcap = cap;
	for (uint32_t i = 0; i < o->nlk; i++)
		o->lkidx[slot_of(o, &o->lk[i].id)] = slot_value(o, i);
	return 0;
}

/* A new record (state 0); pointers to other records become invalid. */
struct ov_link *ov_link_add(struct p2p_overlay *o, const struct p2p_peerid *id)
{
	struct ov_link *l;

	if (o->nlk + 1 >= OV_IDX_MASK)
		return NULL;
	if ((o->nlk + 1) * 2 > o->lkidxcap &&
	    rehash(o, o->lkidxcap ? o->lkidxcap * 2 : 16) < 0)
		return NULL;
	if (o->nlk == o->lkcap) {
		uint32_t cap = o->lkcap ? o->lkcap * 2 : 8;
		struct ov_link *p = realloc(o->lk, cap * sizeof(*p));

		if (p == NULL)
			return NULL;
		o->lk = p;
		o->lkcap = cap;
	}
	l = &o->lk[o->nlk];
	memset(l, 0, sizeof(*l));
	l->id = *id;
	o->lkidx[slot_of(o, id)] = slot_value(o, o->nlk);
	o->nlk++;
	return l;
}

/* Backward-shift deletion keeps linear probing free of tombstones. */
static void idx_remove(struct p2p_overlay *o, uint32_t s)
{
	uint32_t mask = o->lkidxcap - 1, j = s;

	o->lkidx[s] = 0;
	for (;;) {
		uint32_t k;

		j = (j + 1) & mask;
		if (o->lkidx[j] == 0)
			return;
		k = home_of(
		    o,
		    link_hash(o, &o->lk[(o->lkidx[j] & OV_IDX_MASK) - 1].id));
		/* leave it when its home lies cyclically in (s, j] */
		if (s <= j ? (s < k && k <= j) : (s < k || k <= j))
			continue;
		o->lkidx[s] = o->lkidx[j];
		o->lkidx[j] = 0;
		s = j;
	}
}

void ov_link_del(struct p2p_overlay *o, struct ov_link *l)
{
	uint32_t i = (uint32_t)(l - o->lk), last = o->nlk - 1;

	idx_remove(o, slot_of(o, &l->id));
	if (i != last) {
		o->lk[i] = o->lk[last];
		o->lkidx[slot_of(o, &o->lk[i].id)] = slot_value(o, i);
	}
	o->nlk--;
}

/* Ask for a link unless one is up or being dialled. */
bool ov_link_dial(struct p2p_overlay *o, uint64_t now,
		  const struct p2p_peerid *id, const struct p2p_addr *addr)
{
	struct ov_link *l = ov_link_find(o, id);
	struct ov_act *x;

	if (l != NULL)
		return true;
	if (addr == NULL || addr->family == 0)
		return false;
	if ((l = ov_link_add(o, id)) == NULL)
		return false;
	l->state = OV_LINK_DIALING;
	l->flags = OV_L_OUT;
	l->addr = *addr;
	l->used = now; /* dial start, for the stuck-dial check */
	if (now + 2 * P2P_LOOKUP_REQ_TIMEOUT_MS < o->idle_at)
		o->idle_at = now + 2 * P2P_LOOKUP_REQ_TIMEOUT_MS;
	x = ov_push(o, P2P_OV_DIAL, id);
	if (x != NULL)
		x->a.addr = *addr;
	return true;
}

static bool healthy(const struct ov_entry *e)
{
	return e->fails < OV_ENTRY_FAILS_MAX;
}

/* Mark the entries whose links we keep; returns how many. */
static unsigned mark_wanted(struct p2p_overlay *o)
{
	struct p2p_contact near[P2P_K];
	unsigned want = 0;
	size_t n;

	for (unsigned i = 0; i < o->nbk; i++)
		for (unsigned j = 0; j < o->bk[i].n; j++)
			o->bk[i].e[j].flags &= (uint8_t)~OV_E_WANT;
	n = ov_table_closest(o, &o->cfg.self, NULL, true, near, P2P_K);
	for (size_t i = 0; i < n; i++) {
		struct ov_entry *e = ov_table_find(o, &near[i].id);

		if (e != NULL) {
			e->flags |= OV_E_WANT;
			want++;
		}
	}
	if (!o->server)
		return want;
	for (unsigned i = 0; i < o->nbk; i++) {
		unsigned got = 0;

		for (unsigned j = 0; j < o->bk[i].n && got < OV_BUCKET_LINKS;
		     j++) {
			struct ov_entry *e = &o->bk[i].e[j];

			if (!healthy(e))
				continue;
			got++;
			if (!(e->flags & OV_E_WANT) &&
			    want < OV_LINKS_WANT_MAX) {
				e->flags |= OV_E_WANT;
				want++;
			}
		}
	}
	return want;
}

/* Dial one wanted entry if it is due and the budget allows. */
static void want_entry(struct p2p_overlay *o, uint64_t now, struct ov_entry *e)
{
	struct ov_link *l = ov_link_find(o, &e->id);
	uint64_t at = (uint64_t)e->retry_s * 1000;

	if (l != NULL) {
		l->flags |= OV_L_WANT;
		return;
	}
	if (at > now) {
		if (at < o->redial_at)
			o->redial_at = at;
		return;
	}
	if (o->maint_dials >= OV_MAINT_DIALS) {
		if (now + OV_MAINT_MIN_MS < o->redial_at)
			o->redial_at = now + OV_MAINT_MIN_MS;
		return;
	}
	if (ov_link_dial(o, now, &e->id, &e->addr)) {
		l = ov_link_find(o, &e->id);
		if (l != NULL && l->state == OV_LINK_DIALING) {
			l->flags |= OV_L_MAINT | OV_L_WANT;
			o->maint_dials++;
		}
	}
}

void ov_maintain(struct p2p_overlay *o, uint64_t now)
{
	mark_wanted(o);
	for (uint32_t i = 0; i < o->nlk; i++)
		o->lk[i].flags &= (uint8_t)~OV_L_WANT;
	o->redial_at = UINT64_MAX;
	for (unsigned i = 0; i < o->nbk; i++)
		for (unsigned j = 0; j < o->bk[i].n; j++)
			if (o->bk[i].e[j].flags & OV_E_WANT)
				want_entry(o, now, &o->bk[i].e[j]);
	o->dirty = false;
	o->last_maint = now;
	ov_idle_check(o, now);
}

/* Close idle links we opened and no longer want; drop stuck dials. */
void ov_idle_check(struct p2p_overlay *o, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (uint32_t i = 0; i < o->nlk;) {
		struct ov_link *l = &o->lk[i];
		uint64_t exp;

		if (l->state == OV_LINK_DIALING)
			exp = l->used + 2 * P2P_LOOKUP_REQ_TIMEOUT_MS;
		else if ((l->flags & (OV_L_OUT | OV_L_WANT)) == OV_L_OUT)
			exp = l->used + OV_LINK_IDLE_MS;
		else
			exp = UINT64_MAX;
		if (exp > now) {
			if (exp < next)
				next = exp;
			i++;
			continue;
		}
		if (l->state == OV_LINK_DIALING) {
			struct p2p_peerid id = l->id;

			if (l->flags & OV_L_MAINT)
				o->maint_dials--;
			ov_link_del(o, l);
			ov_table_fail(o, now, &id);
			continue;
		}
		ov_push(o, P2P_OV_CLOSE, &l->id);
		o->links_up--;
		ov_link_del(o, l);
	}
	o->idle_at = next;
}

void ov_links_free(struct p2p_overlay *o)
{
	free(o->lk);
	free(o->lkidx);
	o->lk = NULL;
	o->lkidx = NULL;
	o->nlk = o->lkcap = o->lkidxcap = 0;
}
