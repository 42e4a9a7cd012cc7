/*
 * Routing table: one bucket per common-prefix length with our own ID
 * (bucket i holds the IDs that share exactly i leading bits with us), at
 * most P2P_K entries each, oldest first, plus a small replacement cache.
 * Only buckets up to the deepest one in use are allocated, and each grows
 * its arrays as it fills, so a table costs what it holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int ov_bucket_index(const struct p2p_overlay *o, const struct p2p_peerid *id)
{
	return p2p_peerid_common_bits(&o->cfg.self, id);
}

static struct ov_bucket *bucket_get(struct p2p_overlay *o, uint64_t now, int i)
{
	if (i >= P2P_ID_LEN * 8)
		return NULL; /* our own ID */
	if (i >= o->nbk) {
		struct ov_bucket *p =
		    realloc(o->bk, (size_t)(i + 1) * sizeof(*p));

		if (p == NULL)
			return NULL;
		memset(p + o->nbk, 0, (size_t)(i + 1 - o->nbk) * sizeof(*p));
		for (int j = o->nbk; j <= i; j++)
			p[j].touched_s = ov_touch_stamp(now);
		o->bk = p;
		o->nbk = (uint16_t)(i + 1);
	}
	return &o->bk[i];
}

static struct ov_entry *bucket_find(struct ov_bucket *b,
				    const struct p2p_peerid *id)
{
	for (unsigned j = 0; j < b->n; j++)
		if (ov_id_eq(&b->e[j].id, id))
			return &b->e[j];
	return NULL;
}

struct ov_entry *ov_table_find(struct p2p_overlay *o,
			       const struct p2p_peerid *id)
{
	int i = ov_bucket_index(o, id);

	return i < o->nbk ? bucket_find(&o->bk[i], id) : NULL;
}

/*
 * Loopback addresses are exempt from the subnet limits: daemons tested on
 * one host all listen on 127.0.0.1, and a loopback peer can only be a
 * process on this very host, so it cannot be an outside subnet trying to
 * fill our table. Other private ranges stay limited: a LAN is a subnet.
 * Only 127.0.0.0/24 and ::1 are exempt: the rest of 127/8 counts as
 * subnets, so that tests on one host can play a foreign subnet.
 */
static bool is_loopback(const struct p2p_addr *a)
{
	static const uint8_t v6lo[16] = {[15] = 1};

	if (a->family == 4)
		return a->ip[0] == 127 && a->ip[1] == 0 && a->ip[2] == 0;
	return a->family == 6 && memcmp(a->ip, v6lo, 16) == 0;
}

/* Same /24 (IPv4) or /48 (IPv6): p2p_addr_subnet equality, inlined. */
static bool same_subnet(const struct p2p_addr *a, const struct p2p_addr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == 4)
		return a->ip[0] == b->ip[0] && a->ip[1] == b->ip[1] &&
		       a->ip[2] == b->ip[2];
	return a->family == 6 && memcmp(a->ip, b->ip, 6) == 0;
}

/* FNV-1a over the /24 or /48 prefix and the family. */
static unsigned subnet_bin(const struct p2p_addr *a)
{
	size_t len = a->family == 4 ? 3 : 6;
	uint32_t h = 2166136261u ^ a->family;

	for (size_t i = 0; i < len; i++)
		h = (h ^ a->ip[i]) * 16777619u;
	return (h ^ (h >> 16)) % OV_SUBNET_BINS;
}

static unsigned subnet_count(const struct ov_bucket *b,
			     const struct p2p_addr *a)
{
	unsigned n = 0;

	for (unsigned j = 0; j < b->n; j++)
		n += same_subnet(&b->e[j].addr, a);
	return n;
}

static bool bucket_diverse(const struct ov_bucket *b, const struct p2p_addr *a)
{
	return is_loopback(a) || subnet_count(b, a) < P2P_BUCKET_SUBNET_MAX;
}

static bool table_diverse(const struct p2p_overlay *o, const struct p2p_addr *a)
{
	unsigned n = 0;

	if (is_loopback(a) ||
	    o->subnet_bins[subnet_bin(a)] < P2P_TABLE_SUBNET_MAX)
		return true;
	for (unsigned i = 0; i < o->nbk && n < P2P_TABLE_SUBNET_MAX; i++)
		n += subnet_count(&o->bk[i], a);
	return n < P2P_TABLE_SUBNET_MAX;
}

/* One subnet may not fill the replacement cache either. */
static bool repl_diverse(const struct ov_bucket *b, const struct p2p_peerid *id,
			 const struct p2p_addr *a)
{
	unsigned n = 0;

	if (is_loopback(a))
		return true;
	for (unsigned j = 0; j < b->nrepl; j++)
		if (!ov_id_eq(&b->repl[j].id, id) &&
		    same_subnet(&b->repl[j].addr, a))
			n++;
	return n < P2P_BUCKET_SUBNET_MAX;
}

static void repl_remove(struct ov_bucket *b, const struct p2p_peerid *id)
{
	for (unsigned j = 0; j < b->nrepl; j++) {
		if (!ov_id_eq(&b->repl[j].id, id))
			continue;
		memmove(&b->repl[j], &b->repl[j + 1],
			(b->nrepl - j - 1) * sizeof(b->repl[0]));
		b->nrepl--;
		return;
	}
}

/* Newest last; the oldest falls out when the cache is full. */
static void repl_push(struct ov_bucket *b, const struct p2p_peerid *id,
		      const struct p2p_addr *a)
{
	repl_remove(b, id);
	if (b->nrepl == P2P_REPLACEMENTS) {
		memmove(&b->repl[0], &b->repl[1],
			(b->nrepl - 1) * sizeof(b->repl[0]));
		b->nrepl--;
	}
	if (b->nrepl == b->replcap) {
		unsigned cap = b->replcap ? b->replcap * 2 : 2;
		struct p2p_contact *p;

		if (cap > P2P_REPLACEMENTS)
			cap = P2P_REPLACEMENTS;
		p = realloc(b->repl, cap * sizeof(*p));
		if (p == NULL)
			return;
		b->repl = p;
		b->replcap = (uint8_t)cap;
	}
	b->repl[b->nrepl].id = *id;
	b->repl[b->nrepl].addr = *a;
	b->nrepl++;
}

static bool bucket_append(struct p2p_overlay *o, struct ov_bucket *b,
			  const struct p2p_peerid *id, const struct p2p_addr *a)
{
	struct ov_entry *e;

	if (b->n == b->cap) {
		unsigned cap = b->cap ? b->cap * 2 : 4;
		struct ov_entry *p;

		if (cap > P2P_K)
			cap = P2P_K;
		p = realloc(b->e, cap * sizeof(*p));
		if (p == NULL)
			return false;
		b->e = p;
		b->cap = (uint8_t)cap;
	}
	e = &b->e[b->n++];
	memset(e, 0, sizeof(*e));
	e->id = *id;
	e->addr = *a;
	repl_remove(b, id);
	o->table_size++;
	o->subnet_bins[subnet_bin(a)]++;
	ov_set_dirty(o);
	return true;
}

static void bucket_del(struct p2p_overlay *o, struct ov_bucket *b, unsigned j)
{
	o->subnet_bins[subnet_bin(&b->e[j].addr)]--;
	memmove(&b->e[j], &b->e[j + 1], (b->n - j - 1) * sizeof(b->e[0]));
	b->n--;
	o->table_size--;
	ov_set_dirty(o);
}

/* The entry that failed most, if any failed at all. */
static int bucket_worst(const struct ov_bucket *b)
{
	int w = -1;

	for (unsigned j = 0; j < b->n; j++)
		if (b->e[j].fails > 0 &&
		    (w < 0 || b->e[j].fails > b->e[w].fails))
			w = (int)j;
	return w;
}

/*
 * A server was seen (verified: a link to it is up) or suggested (bootstrap,
 * peer cache). Returns true when it is in the table afterwards. A full
 * bucket keeps its old live entries (Kademlia prefers long-lived nodes);
 * a verified newcomer replaces an entry that has failed, else it waits in
 * the replacement cache.
 */
bool ov_table_insert(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *id, const struct p2p_addr *addr,
		     bool verified)
{
	struct ov_bucket *b;
	struct ov_entry *e;
	int w;

	if (addr->family != 4 && addr->family != 6)
		return false;
	b = bucket_get(o, now, ov_bucket_index(o, id));
	if (b == NULL)
		return false;
	e = bucket_find(b, id);
	if (e != NULL) {
		if (verified) {
			o->subnet_bins[subnet_bin(&e->addr)]--;
			o->subnet_bins[subnet_bin(addr)]++;
			e->addr = *addr;
			e->fails = 0;
			e->retry_s = 0;
		}
		return true;
	}
	w = -1;
	if (b->n == P2P_K) {
		w = verified ? bucket_worst(b) : -1;
		if (w < 0) {
			/* this runs for every server a lookup meets: check
			 * only the small cache here, the rest on promotion */
			if (repl_diverse(b, id, addr))
				repl_push(b, id, addr);
			return false;
		}
	}
	if (!bucket_diverse(b, addr) || !table_diverse(o, addr))
		return false;
	if (w < 0)
		return bucket_append(o, b, id, addr);
	bucket_del(o, b, (unsigned)w);
	return bucket_append(o, b, id, addr);
}

void ov_table_remove(struct p2p_overlay *o, const struct p2p_peerid *id)
{
	int i = ov_bucket_index(o, id);
	struct ov_bucket *b;

	if (i >= o->nbk)
		return;
	b = &o->bk[i];
	repl_remove(b, id);
	for (unsigned j = 0; j < b->n; j++) {
		if (ov_id_eq(&b->e[j].id, id)) {
			bucket_del(o, b, j);
			return;
		}
	}
}

/* Take the newest replacement that keeps the bucket diverse. */
static void promote(struct p2p_overlay *o, struct ov_bucket *b)
{
	for (int j = (int)b->nrepl - 1; j >= 0; j--) {
		struct p2p_contact c = b->repl[j];

		if (!bucket_diverse(b, &c.addr) || !table_diverse(o, &c.addr))
			continue;
		bucket_append(o, b, &c.id, &c.addr);
		return;
	}
}

static uint32_t backoff_s(unsigned fails)
{
	uint32_t s = OV_REDIAL_MIN_S << (fails > 8 ? 8 : fails - 1);

	return s > OV_REDIAL_MAX_S ? OV_REDIAL_MAX_S : s;
}

/* A dial, a request or a kept link failed. */
void ov_table_fail(struct p2p_overlay *o, uint64_t now,
		   const struct p2p_peerid *id)
{
	int i = ov_bucket_index(o, id);
	struct ov_bucket *b;
	struct ov_entry *e;

	if (i >= o->nbk || (e = bucket_find(&o->bk[i], id)) == NULL)
		return;
	b = &o->bk[i];
	if (e->fails < UINT8_MAX)
		e->fails++;
	e->retry_s = ov_now_s(now) + backoff_s(e->fails);
	ov_set_dirty(o);
	{
		char t[P2P_ID_TEXT_LEN + 1];

		p2p_peerid_to_text(id, t);
		ov_log(o, 7, "overlay: entry %s failed (%u times, bucket %d)",
		       t, (unsigned)e->fails, i);
	}
	if (e->fails >= OV_ENTRY_FAILS_MAX && b->nrepl > 0) {
		bucket_del(o, b, (unsigned)(e - b->e));
		promote(o, b);
	}
}

/* Insert c into out[0..*n) sorted by distance to target, keeping max. */
static void keep_closest(const struct p2p_peerid *target,
			 const struct ov_entry *e, struct p2p_contact *out,
			 size_t *n, size_t max)
{
	size_t j = *n;

	if (j == max && ov_cmp_dist(target, &e->id, &out[j - 1].id) >= 0)
		return;
	if (j == max)
		j--;
	while (j > 0 && ov_cmp_dist(target, &e->id, &out[j - 1].id) < 0) {
		out[j] = out[j - 1];
		j--;
	}
	out[j].id = e->id;
	out[j].addr = e->addr;
	if (*n < max)
		(*n)++;
}

static void scan_bucket(const struct p2p_overlay *o, unsigned i,
			const struct p2p_peerid *target,
			const struct p2p_peerid *exclude, bool healthy,
			struct p2p_contact *out, size_t *n, size_t max)
{
	const struct ov_bucket *b = &o->bk[i];

	for (unsigned j = 0; j < b->n; j++) {
		const struct ov_entry *e = &b->e[j];

		if (healthy && e->fails >= OV_ENTRY_FAILS_MAX)
			continue;
		if (exclude != NULL && ov_id_eq(&e->id, exclude))
			continue;
		keep_closest(target, e, out, n, max);
	}
}

/*
 * Closest entries without sorting the table. With c = common bits of the
 * target and our ID: bucket c shares more bits with the target than any
 * other; all buckets deeper than c come next (they differ from the target
 * at bit c); then buckets c-1, c-2, ... 0, each farther than the last.
 * We stop after the first group that fills out.
 */
size_t ov_table_closest(const struct p2p_overlay *o,
			const struct p2p_peerid *target,
			const struct p2p_peerid *exclude, bool healthy,
			struct p2p_contact *out, size_t max)
{
	int c = ov_bucket_index(o, target);
	size_t n = 0;

	if (max == 0)
		return 0;
	if (c < o->nbk)
		scan_bucket(o, (unsigned)c, target, exclude, healthy, out, &n,
			    max);
	if (n == max)
		return n;
	for (int i = c + 1; i < o->nbk; i++)
		scan_bucket(o, (unsigned)i, target, exclude, healthy, out, &n,
			    max);
	for (int i = (c < o->nbk ? c : o->nbk) - 1; i >= 0 && n < max; i--)
		scan_bucket(o, (unsigned)i, target, exclude, healthy, out, &n,
			    max);
	return n;
}

void ov_table_free(struct p2p_overlay *o)
{
	for (unsigned i = 0; i < o->nbk; i++) {
		free(o->bk[i].e);
		free(o->bk[i].repl);
	}
	free(o->bk);
	o->bk = NULL;
	o->nbk = 0;
	o->table_size = 0;
	memset(o->subnet_bins, 0, sizeof(o->subnet_bins));
}

static bool any_loopback(const struct p2p_addr *a)
{
	static const uint8_t v6lo[16] = {[15] = 1};

	return (a->family == 4 && a->ip[0] == 127) ||
	       (a->family == 6 && memcmp(a->ip, v6lo, 16) == 0);
}

bool p2p_overlay_addr_dialable(const struct p2p_addr *a,
			       const struct p2p_addr *via)
{
	static const uint8_t zero[16];

	if ((a->family != 4 && a->family != 6) || a->port == 0)
		return false;
	if (a->family == 4 &&
	    (a->ip[0] == 0 || a->ip[0] >= 224)) /* 0/8, multicast, 240/4 */
		return false;
	if (a->family == 6 &&
	    (memcmp(a->ip, zero, 16) == 0 || a->ip[0] == 0xff))
		return false;
	if (any_loopback(a))
		return via != NULL && any_loopback(via);
	return true;
}
