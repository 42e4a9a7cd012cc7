/* Relay circuits: the table and the relay's decisions; see circuit.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/circuit.h"

/* ---- the table ---- */

#define SLOT_MASK (RELAY_TAB_SLOTS - 1)

_Static_assert((RELAY_TAB_SLOTS & SLOT_MASK) == 0 &&
		   RELAY_TAB_SLOTS >= 4 * RELAY_CIRC_MAX,
	       "the index is a power of two, at most half full");

/* Where (l, c) starts probing: a multiplicative hash of both. */
static size_t home(uint32_t l, uint32_t c)
{
	uint64_t k = ((uint64_t)l << 32 | c) * 0x9e3779b97f4a7c15ull;

	return (size_t)(k >> 40) & SLOT_MASK;
}

static void end_of(const struct relay_circ *r, uint8_t end, uint32_t *l,
		   uint32_t *c)
{
	*l = end ? r->b : r->a;
	*c = end ? r->cb : r->ca;
}

/* The slot holding (l, c), or RELAY_TAB_SLOTS. */
static size_t slot_find(const struct relay_tab *t, uint32_t l, uint32_t c)
{
	for (size_t i = home(l, c), k = 0; k < RELAY_TAB_SLOTS;
	     i = (i + 1) & SLOT_MASK, k++) {
		uint32_t sl, sc;
		if (!t->slot[i].r)
			break;
		end_of(t->slot[i].r, t->slot[i].end, &sl, &sc);
		if (sl == l && sc == c)
			return i;
	}
	return RELAY_TAB_SLOTS;
}

static void slot_put(struct relay_tab *t, struct relay_circ *r, uint8_t end)
{
	uint32_t l, c;
	size_t i;

	end_of(r, end, &l, &c);
	for (i = home(l, c); t->slot[i].r; i = (i + 1) & SLOT_MASK)
		; /* never full: at most half */
	t->slot[i].r = r;
	t->slot[i].end = end;
}

/* Take (l, c) out; the run behind it moves up so that no probe stops
 * short of its key (backward-shift deletion: no tombstones). */
static void slot_del(struct relay_tab *t, uint32_t l, uint32_t c)
{
	size_t i = slot_find(t, l, c), j;

	if (i == RELAY_TAB_SLOTS)
		return;
	for (j = (i + 1) & SLOT_MASK; t->slot[j].r; j = (j + 1) & SLOT_MASK) {
		uint32_t jl, jc;
		size_t h;
		end_of(t->slot[j].r, t->slot[j].end, &jl, &jc);
		h = home(jl, jc);
		/* j's entry may fill the hole at i unless its home lies
		 * cyclically in (i, j]. */
		if (((j - h) & SLOT_MASK) >= ((j - i) & SLOT_MASK)) {
			t->slot[i] = t->slot[j];
			i = j;
		}
	}
	t->slot[i].r = NULL;
}

bool relay_tab_used(const struct relay_tab *t, uint32_t l, uint32_t c)
{
	return slot_find(t, l, c) != RELAY_TAB_SLOTS;
}

int relay_tab_add(struct relay_tab *t, uint32_t a, uint32_t ca, uint32_t b,
		  uint32_t cb)
{
	struct relay_circ *r;
	unsigned from_a = 0;

	if (a == b)
		return -EINVAL;
	for (r = t->circs; r; r = r->next)
		if (r->a == a)
			from_a++;
	if (t->n >= RELAY_CIRC_MAX || from_a >= RELAY_CIRC_PER_LINK)
		return -EBUSY;
	if (relay_tab_used(t, a, ca) || relay_tab_used(t, b, cb))
		return -EEXIST;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->a = a;
	r->ca = ca;
	r->b = b;
	r->cb = cb;
	r->next = t->circs;
	t->circs = r;
	t->n++;
	slot_put(t, r, 0);
	slot_put(t, r, 1);
	return 0;
}

struct relay_circ *relay_tab_find(const struct relay_tab *t, uint32_t l,
				  uint32_t c, uint32_t *other, uint32_t *oc)
{
	size_t i = slot_find(t, l, c);
	struct relay_circ *r;

	if (i == RELAY_TAB_SLOTS)
		return NULL;
	r = t->slot[i].r;
	end_of(r, !t->slot[i].end, other, oc);
	return r;
}

struct relay_circ *relay_tab_on(const struct relay_tab *t, uint32_t l)
{
	for (struct relay_circ *r = t->circs; r; r = r->next)
		if (r->a == l || r->b == l)
			return r;
	return NULL;
}

void relay_tab_del(struct relay_tab *t, struct relay_circ *r)
{
	for (struct relay_circ **pp = &t->circs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			t->n--;
			slot_del(t, r->a, r->ca);
			slot_del(t, r->b, r->cb);
			free(r);
			return;
		}
	}
}

void relay_tab_clear(struct relay_tab *t)
{
	while (t->circs)
		relay_tab_del(t, t->circs);
}

/* ---- the decisions ---- */

/*
 * A requester's record: its circuits now and its budget's bucket. Kept while it
 * has circuits; one without any may be replaced when the table is full (so a
 * requester's budget can be forgotten only once RELAY_PEERS_MAX others have
 * asked since: at most RELAY_CIRC_MAX of them hold circuits at a time).
 */
struct relay_peer {
	struct p2p_peerid id;
	uint64_t since, bytes; /* the bucket (bytes), drained to (ms) */
	unsigned circs;
	bool used;
};

struct p2p_circuit {
	struct p2p_circuit_query q;
	struct relay_tab tab;
	struct relay_circ *marked; /* circuits with marks (relay_circ) */
	/* p2p_circuit_next(), kept: exact while next_ok (see moved()). */
	uint64_t next_at;
	bool next_ok;
	uint32_t next_id;
	struct p2p_circuit_stats st; /* circuits: tab.n */
	struct relay_peer peers[RELAY_PEERS_MAX];
	/* The action queue: a ring. */
	struct p2p_circuit_action acts[P2P_CIRCUIT_QUEUE_MAX];
	size_t head, nacts;
};

struct p2p_circuit *p2p_circuit_new(const struct p2p_circuit_query *q)
{
	struct p2p_circuit *c = calloc(1, sizeof(*c));

	if (c)
		c->q = *q;
	return c;
}

void p2p_circuit_free(struct p2p_circuit *c)
{
	if (!c)
		return;
	relay_tab_clear(&c->tab);
	free(c);
}

static bool room(const struct p2p_circuit *c, size_t need)
{
	return P2P_CIRCUIT_QUEUE_MAX - c->nacts >= need;
}

static struct p2p_circuit_action *push(struct p2p_circuit *c,
				       enum p2p_circuit_action_type type,
				       uint32_t link, uint32_t circ)
{
	struct p2p_circuit_action *a =
	    &c->acts[(c->head + c->nacts++) % P2P_CIRCUIT_QUEUE_MAX];

	memset(a, 0, sizeof(*a));
	a->type = type;
	a->link = link;
	a->circ = circ;
	return a;
}

static void push_close(struct p2p_circuit *c, uint32_t link, uint32_t circ,
		       const char *why, enum p2p_circuit_note note)
{
	struct p2p_circuit_action *a =
	    push(c, P2P_CIRCUIT_SEND_CLOSE, link, circ);

	a->text = why;
	a->len = strlen(why);
	a->note = note;
}

bool p2p_circuit_poll(struct p2p_circuit *c, struct p2p_circuit_action *a)
{
	if (!c->nacts)
		return false;
	*a = c->acts[c->head];
	c->head = (c->head + 1) % P2P_CIRCUIT_QUEUE_MAX;
	c->nacts--;
	return true;
}

/* ---- requesters ---- */

static bool same_id(const struct p2p_peerid *x, const struct p2p_peerid *y)
{
	return memcmp(x->b, y->b, sizeof(x->b)) == 0;
}

static bool same_ip(const struct p2p_addr *x, const struct p2p_addr *y)
{
	return x->family == y->family &&
	       memcmp(x->ip, y->ip, x->family == 4 ? 4 : 16) == 0;
}

/* The record of id; NULL if none. */
static struct relay_peer *peer_find(struct p2p_circuit *c,
				    const struct p2p_peerid *id)
{
	for (size_t i = 0; i < RELAY_PEERS_MAX; i++)
		if (c->peers[i].used && same_id(&c->peers[i].id, id))
			return &c->peers[i];
	return NULL;
}

/* A budget's bucket *level, drained to *at, drained to now (a clock
 * that went back drains nothing). */
static void drain_to(uint64_t *level, uint64_t *at, uint64_t now)
{
	uint64_t dt;

	if (now <= *at)
		return;
	dt = now - *at;
	*level =
	    dt > *level / RELAY_PACE_BPMS ? 0 : *level - dt * RELAY_PACE_BPMS;
	*at = now;
}

static void peer_roll(struct relay_peer *p, uint64_t now)
{
	drain_to(&p->bytes, &p->since, now);
}

/* id's record, made (in a free slot or over the oldest without circuits)
 * if need be; NULL only if every record holds circuits. */
static struct relay_peer *peer_get(struct p2p_circuit *c,
				   const struct p2p_peerid *id, uint64_t now)
{
	struct relay_peer *p = peer_find(c, id), *old = NULL;

	if (p) {
		peer_roll(p, now);
		return p;
	}
	for (size_t i = 0; i < RELAY_PEERS_MAX; i++) {
		p = &c->peers[i];
		if (!p->used) {
			old = p;
			break;
		}
		if (!p->circs && (!old || p->since < old->since))
			old = p;
	}
	if (!old)
		return NULL;
	memset(old, 0, sizeof(*old));
	old->used = true;
	old->id = *id;
	old->since = now;
	return old;
}

/*
 * Handshake seen. The relay cannot read what a circuit carries (frames of
 * the ends' handshake, then AEAD records), but it sees who sends and in
 * what order. The relayed link's handshake is three frames: frame 1 from
 * the initiator (end a, which sends it with RELAY_OPEN), frame 2 from the
 * responder (end b), frame 3 from a; b has nothing to say between frame 2
 * and frame 3, and once frame 3 arrives it sends its HELLO. So a completed
 * handshake shows here as data in four runs of alternating direction,
 * a b a b, however the ends' writes are split or joined. Fewer runs
 * within RELAY_HS_MS (one end silent, a frame 1 never answered, a frame 2
 * never confirmed) means the ends never made a link, and the slot is
 * freed. Two ends that collude can fake the runs; they then hold a
 * circuit that the per-requester limits, the idle deadline and the byte
 * budgets still bound.
 */
#define HS_RUNS 4

static bool handshaken(const struct relay_circ *r)
{
	return r->runs >= HS_RUNS;
}

/* When r must have done better: its handshake, or its next use. */
static uint64_t deadline(const struct relay_circ *r)
{
	if (!handshaken(r))
		return r->born + RELAY_HS_MS;
	return (r->last_a < r->last_b ? r->last_a : r->last_b) + RELAY_IDLE_MS;
}

/* r's own next time: its deadline, or its credit's release if earlier. */
static uint64_t circ_next(const struct relay_circ *r)
{
	uint64_t t = deadline(r);

	return r->pace_until && r->pace_until < t ? r->pace_until : t;
}

/*
 * A circuit's own next time went from was to is (UINT64_MAX: it was not,
 * or is no longer, in the table). The hub asks for the earliest after
 * every event, and a walk over every circuit each time is what a relay
 * holding many would spend most on; the earliest is kept instead, exact:
 * an earlier time replaces it, and only the circuit that held it (or
 * tied) moving later makes the next p2p_circuit_next() walk again. Busy
 * circuits move later all the time but hold the earliest only when
 * every other circuit is busier.
 */
static void moved(struct p2p_circuit *c, uint64_t was, uint64_t is)
{
	if (!c->next_ok || was == is)
		return;
	if (is < c->next_at)
		c->next_at = is;
	else if (was == c->next_at)
		c->next_ok = false;
}

_Static_assert(RELAY_PEERS_MAX < UINT16_MAX, "relay_circ.peer holds one");

/* r's requester record, without a search: a record with circuits is
 * never replaced (peer_get), so the index r took stays its own. */
static struct relay_peer *circ_peer(struct p2p_circuit *c,
				    const struct relay_circ *r)
{
	return r->peer ? &c->peers[r->peer - 1] : NULL;
}

/* The circuit is gone (both ends are told by the caller). */
static void circ_del(struct p2p_circuit *c, struct relay_circ *r)
{
	struct relay_peer *p = circ_peer(c, r);

	if (p && p->circs)
		p->circs--;
	moved(c, circ_next(r), UINT64_MAX);
	if (r->marked)
		for (struct relay_circ **pp = &c->marked; *pp;
		     pp = &(*pp)->mnext)
			if (*pp == r) {
				*pp = r->mnext;
				break;
			}
	relay_tab_del(&c->tab, r);
}

static bool picked_by_us(const struct p2p_circuit *c, uint32_t link,
			 uint32_t circ)
{
	return (circ & 1) == (c->q.outbound(c->q.arg, link) ? 1u : 0u);
}

static bool id_in_use(const struct p2p_circuit *c, uint32_t link, uint32_t circ)
{
	return c->q.is_end(c->q.arg, link, circ) ||
	       relay_tab_used(&c->tab, link, circ);
}

static int new_id(struct p2p_circuit *c, uint32_t link, uint32_t *out)
{
	uint32_t parity = c->q.outbound(c->q.arg, link) ? 1 : 0;

	for (int i = 0; i < RELAY_ID_TRIES; i++) {
		uint32_t id = (++c->next_id << 1) | parity;
		if (!id_in_use(c, link, id)) {
			*out = id;
			return 0;
		}
	}
	return -EBUSY;
}

int p2p_circuit_pick(struct p2p_circuit *c, uint32_t via, uint32_t *circ)
{
	if (c->q.ends(c->q.arg, via) >= RELAY_CIRC_PER_LINK)
		return -EBUSY;
	if (c->q.links_full(c->q.arg))
		return -EMFILE;
	return new_id(c, via, circ);
}

/* We are the target: peer reaches us through link, circuit circ. */
static void accept_incoming(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			    const struct p2p_peerid *peer)
{
	struct p2p_circuit_action *a;

	if (id_in_use(c, link, circ)) {
		push_close(c, link, circ, "circuit ID in use",
			   P2P_CIRCUIT_N_NONE);
		return;
	}
	if (c->q.ends(c->q.arg, link) >= RELAY_CIRC_PER_LINK ||
	    c->q.links_full(c->q.arg)) {
		push_close(c, link, circ, "too many links",
			   P2P_CIRCUIT_N_REFUSED);
		return;
	}
	a = push(c, P2P_CIRCUIT_ACCEPT, link, circ);
	a->peer = *peer;
}

/* Circuits requested by the peer at addr: by its ID, its IP, its subnet. */
struct counts {
	unsigned peer, ip, net, link;
};

static void count(const struct p2p_circuit *c, uint32_t a,
		  const struct p2p_peerid *from, const struct p2p_addr *addr,
		  struct counts *n)
{
	uint64_t net = p2p_addr_subnet(addr);

	memset(n, 0, sizeof(*n));
	for (const struct relay_circ *r = c->tab.circs; r; r = r->next) {
		n->peer += same_id(&r->from, from);
		n->ip += same_ip(&r->addr, addr);
		n->net += p2p_addr_subnet(&r->addr) == net;
		n->link += r->a == a;
	}
}

/*
 * Why a request from `from` at addr on link a is refused, or NULL. The
 * narrowest limit is named first, so a requester learns what it hit: its
 * own ID, its host, its network, then the relay's own capacity.
 */
static const char *refusal(struct p2p_circuit *c, uint32_t a,
			   const struct p2p_peerid *from,
			   const struct p2p_addr *addr,
			   const struct relay_peer *p)
{
	struct counts n;

	count(c, a, from, addr, &n);
	if (n.peer >= RELAY_CIRC_PER_PEER) {
		c->st.refused_peer++;
		return "relay busy: too many circuits for your peer ID";
	}
	if (p && p->bytes >= RELAY_PEER_BYTES) {
		c->st.refused_budget++;
		return "relay busy: byte budget spent for your peer ID";
	}
	if (n.ip >= RELAY_CIRC_PER_IP) {
		c->st.refused_ip++;
		return "relay busy: too many circuits from your address";
	}
	if (n.net >= RELAY_CIRC_PER_NET) {
		c->st.refused_net++;
		return "relay busy: too many circuits from your network";
	}
	if (n.link >= RELAY_CIRC_PER_LINK) {
		c->st.refused_busy++;
		return "relay busy: too many circuits on this link";
	}
	if (c->tab.n >= RELAY_CIRC_MAX) {
		c->st.refused_busy++;
		return "relay busy: too many circuits";
	}
	return NULL;
}

static bool credited(const struct p2p_circuit *c, uint32_t link)
{
	return c->q.credit && c->q.out_pos && c->q.credit(c->q.arg, link);
}

/* We are the relay: from (on link a, circuit ca) asks for peer. */
static void serve_open(struct p2p_circuit *c, uint64_t now, uint32_t a,
		       uint32_t ca, const struct p2p_peerid *peer,
		       const struct p2p_peerid *from)
{
	struct p2p_circuit_action *act;
	struct p2p_addr addr = {0};
	uint32_t b = c->q.link_to(c->q.arg, peer), cb;
	struct relay_peer *p;
	struct relay_circ *r;
	const char *why;
	int rc;

	if (!b || b == a) {
		push_close(c, a, ca, "no link to that peer",
			   P2P_CIRCUIT_N_NONE);
		return;
	}
	if (id_in_use(c, a, ca)) {
		push_close(c, a, ca, "circuit ID in use", P2P_CIRCUIT_N_NONE);
		return;
	}
	if (!c->q.remote || !c->q.remote(c->q.arg, a, &addr))
		memset(&addr, 0, sizeof(addr));
	addr.port = 0;
	p = peer_find(c, from);
	if (p)
		peer_roll(p, now);
	if ((why = refusal(c, a, from, &addr, p)) != NULL) {
		push_close(c, a, ca, why, P2P_CIRCUIT_N_LIMIT);
		return;
	}
	if (!p && !(p = peer_get(c, from, now))) {
		/* Cannot happen: RELAY_PEERS_MAX >= RELAY_CIRC_MAX. */
		push_close(c, a, ca, "relay busy: too many circuits",
			   P2P_CIRCUIT_N_LIMIT);
		return;
	}
	if ((rc = new_id(c, b, &cb)) == 0)
		rc = relay_tab_add(&c->tab, a, ca, b, cb);
	if (rc < 0) {
		push_close(c, a, ca,
			   rc == -EBUSY ? "relay busy" : "relay failed",
			   P2P_CIRCUIT_N_NONE);
		return;
	}
	r = c->tab.circs; /* relay_tab_add puts it first */
	r->from = *from;
	r->addr = addr;
	r->born = r->last_a = r->last_b = r->bytes_at = now;
	moved(c, UINT64_MAX, circ_next(r));
	/* Credit for the bytes each end sends: only to an end that keeps it
	 * (and knows our RELAY_CREDIT messages); the other is cut at
	 * RELAY_WQ_MAX as before. */
	r->dir[0].credited = credited(c, a);
	r->dir[1].credited = credited(c, b);
	p->circs++;
	r->peer = (uint16_t)(p - c->peers + 1);
	c->st.opened++;
	act = push(c, P2P_CIRCUIT_SEND_OPEN, b, cb);
	act->peer = *from;
}

int p2p_circuit_on_open(struct p2p_circuit *c, uint64_t now, uint32_t link,
			uint32_t circ, bool incoming,
			const struct p2p_peerid *peer,
			const struct p2p_peerid *from)
{
	if (!room(c, 1))
		return -ENOBUFS;
	if (picked_by_us(c, link, circ))
		push_close(c, link, circ, "bad circuit ID",
			   P2P_CIRCUIT_N_BAD_ID);
	else if (incoming)
		accept_incoming(c, link, circ, peer);
	else
		serve_open(c, now, link, circ, peer, from);
	return 0;
}

static void saw_data(struct p2p_circuit *c, struct relay_circ *r, uint64_t now,
		     bool from_a)
{
	uint64_t was = circ_next(r);
	uint8_t dir = from_a ? 1 : 2;

	if (from_a)
		r->last_a = now;
	else
		r->last_b = now;
	if (dir != r->last_dir && r->runs < HS_RUNS)
		r->runs++;
	r->last_dir = dir;
	moved(c, was, circ_next(r));
}

/* Close both ends of r with why (the caller made room for two). */
static void cut(struct p2p_circuit *c, struct relay_circ *r, const char *why,
		enum p2p_circuit_note note)
{
	uint32_t a = r->a, ca = r->ca, b = r->b, cb = r->cb;

	circ_del(c, r);
	push_close(c, a, ca, why, note);
	push_close(c, b, cb, why, P2P_CIRCUIT_N_NONE);
}

/* The byte budgets: len more on r from its requester p. */
static const char *over_budget(const struct relay_circ *r,
			       const struct relay_peer *p, size_t len)
{
	if (r->bytes + len > RELAY_CIRC_BYTES)
		return "relay: circuit byte budget spent";
	if (p && p->bytes + len > RELAY_PEER_BYTES)
		return "relay: byte budget spent for the requester";
	return NULL;
}

/* ---- credit ---- */

/*
 * len bytes of d's source go out on a link now at position pos: they are
 * written once the link's sent position reaches pos + len. The record
 * around them (frame header, message header, AEAD tag) ends a few bytes
 * later; returning the credit that much early keeps the estimate on the
 * safe side (a late estimate could wait for bytes that never come).
 */
static void mark(struct relay_dir *d, uint64_t pos, size_t len)
{
	d->held += (uint32_t)len;
	if (d->nmarks == RELAY_CREDIT_MARKS) {
		d->marks[d->nmarks - 1].end = pos + len;
		d->marks[d->nmarks - 1].bytes += (uint32_t)len;
		return;
	}
	d->marks[d->nmarks].end = pos + len;
	d->marks[d->nmarks].bytes = (uint32_t)len;
	d->nmarks++;
}

/* The link of d's destination wrote up to sent. */
static void written(struct relay_dir *d, uint64_t sent)
{
	uint8_t k = 0;

	while (k < d->nmarks && d->marks[k].end <= sent)
		d->written += d->marks[k++].bytes;
	if (k > 0) {
		memmove(d->marks, d->marks + k,
			(size_t)(d->nmarks - k) * sizeof(d->marks[0]));
		d->nmarks -= k;
	}
}

/* Credit d may return: what is written, once a batch is together. */
static bool due(const struct relay_dir *d)
{
	return d->credited && d->written >= RELAY_CREDIT_BATCH;
}

static uint32_t take(struct relay_dir *d)
{
	uint32_t n = d->written;

	d->held -= n;
	d->written = 0;
	return n;
}

/* When a bucket at level, full at cap, is below full again (drained at
 * now); 0 if it is now. */
static uint64_t full_until(uint64_t level, uint64_t cap, uint64_t now)
{
	return level >= cap ? now + (level - cap) / RELAY_PACE_BPMS + 1 : 0;
}

/*
 * Whether a byte budget of r holds its credit back at now: its bucket or
 * its requester's is full. If so, *until is when both are below full.
 */
static bool paced(struct p2p_circuit *c, struct relay_circ *r, uint64_t now,
		  uint64_t *until)
{
	struct relay_peer *p = circ_peer(c, r);
	uint64_t t, u = 0;

	drain_to(&r->bytes, &r->bytes_at, now);
	t = full_until(r->bytes, RELAY_CIRC_BYTES, now);
	if (p) {
		peer_roll(p, now);
		u = full_until(p->bytes, RELAY_PEER_BYTES, now);
	}
	*until = u > t ? u : t;
	return *until != 0;
}

static void give(struct p2p_circuit *c, uint32_t link, uint32_t circ,
		 uint32_t n)
{
	struct p2p_circuit_action *a;

	if (!n)
		return;
	a = push(c, P2P_CIRCUIT_SEND_CREDIT, link, circ);
	a->len = n;
	c->st.credit_sent++;
}

/* Direction d of r has credit due: it goes back to its source (l, lc)
 * unless a budget holds it (then p2p_circuit_expire() returns it). */
static void release(struct p2p_circuit *c, struct relay_circ *r,
		    struct relay_dir *d, uint32_t l, uint32_t lc, uint64_t now)
{
	uint64_t was;
	bool held;

	if (!due(d) || r->pace_until)
		return;
	was = circ_next(r);
	held = paced(c, r, now, &r->pace_until);
	moved(c, was, circ_next(r));
	if (held) {
		c->st.paced++;
		return;
	}
	give(c, l, lc, take(d));
}

int p2p_circuit_on_sent(struct p2p_circuit *c, uint64_t now, uint32_t link,
			uint64_t sent)
{
	struct relay_circ **pp = &c->marked, *r;

	if (!room(c, c->tab.n))
		return -ENOBUFS;
	/* Only circuits with marks: without one, a direction has nothing
	 * written to count, and what it had due went back or waits for
	 * its budget (p2p_circuit_expire). */
	while ((r = *pp) != NULL) {
		/* Bytes from a leave on b, bytes from b on a. */
		if (r->b == link && r->dir[0].credited) {
			written(&r->dir[0], sent);
			release(c, r, &r->dir[0], r->a, r->ca, now);
		}
		if (r->a == link && r->dir[1].credited) {
			written(&r->dir[1], sent);
			release(c, r, &r->dir[1], r->b, r->cb, now);
		}
		if (r->dir[0].nmarks || r->dir[1].nmarks) {
			pp = &r->mnext;
			continue;
		}
		*pp = r->mnext;
		r->marked = false;
	}
	return 0;
}

int p2p_circuit_on_credit(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			  uint32_t credit)
{
	struct p2p_circuit_action *a;

	if (!room(c, 1))
		return -ENOBUFS;
	if (!c->q.is_end(c->q.arg, link, circ)) {
		/* Credit goes from a relay to an end only: to us as a relay
		 * it means nothing. */
		c->st.unknown++;
		return 0;
	}
	a = push(c, P2P_CIRCUIT_END_CREDIT, link, circ);
	a->len = credit;
	return 0;
}

void relay_credit_init(struct relay_credit *cr)
{
	cr->avail = RELAY_CREDIT;
}

_Static_assert(P2P_FRAME_HDR + P2P_FRAME_MAX <= RELAY_CREDIT,
	       "a relayed link's frame fits in a circuit's credit");

bool relay_credit_take(struct relay_credit *cr, size_t want)
{
	if (want > cr->avail)
		return false;
	cr->avail -= (uint32_t)want;
	return true;
}

bool relay_credit_can(const struct relay_credit *cr, size_t want)
{
	return want <= cr->avail;
}

int relay_credit_give(struct relay_credit *cr, uint32_t n)
{
	if (n > RELAY_CREDIT - cr->avail)
		return -EPROTO;
	cr->avail += n;
	return 0;
}

int p2p_circuit_on_data(struct p2p_circuit *c, uint64_t now, uint32_t link,
			uint32_t circ, const uint8_t *data, size_t len)
{
	struct p2p_circuit_action *a;
	struct relay_circ *r;
	struct relay_peer *p;
	struct relay_dir *d;
	const char *why;
	uint32_t o, oc;
	size_t q;

	if (!room(c, 2))
		return -ENOBUFS;
	if (c->q.is_end(c->q.arg, link, circ)) {
		a = push(c, P2P_CIRCUIT_END_DATA, link, circ);
		a->data = data;
		a->len = len;
		return 0;
	}
	if (!(r = relay_tab_find(&c->tab, link, circ, &o, &oc))) {
		c->st.unknown++;
		return 0;
	}
	d = &r->dir[r->a == link && r->ca == circ ? 0 : 1];
	q = c->q.queued(c->q.arg, o);
	if (q == SIZE_MAX || (!d->credited && q + len > RELAY_WQ_MAX)) {
		c->st.closed_queue += q != SIZE_MAX;
		circ_del(c, r);
		push_close(c, link, circ, "relay queue full",
			   P2P_CIRCUIT_N_QUEUE_FULL);
		push_close(c, o, oc, "relay queue full", P2P_CIRCUIT_N_NONE);
		return 0;
	}
	if (d->credited && len > RELAY_CREDIT - d->held) {
		c->st.closed_credit++;
		cut(c, r, "relay: circuit credit exceeded",
		    P2P_CIRCUIT_N_CREDIT);
		return 0;
	}
	if ((p = circ_peer(c, r)) != NULL)
		peer_roll(p, now);
	drain_to(&r->bytes, &r->bytes_at, now);
	/* A source with credit is paced by it (release); one without is
	 * cut at the budget. */
	if (!d->credited && (why = over_budget(r, p, len)) != NULL) {
		c->st.closed_budget++;
		cut(c, r, why, P2P_CIRCUIT_N_EXPIRED);
		return 0;
	}
	saw_data(c, r, now, r->a == link && r->ca == circ);
	r->bytes += len;
	if (p)
		p->bytes += len;
	c->st.bytes += len;
	if (d->credited) {
		mark(d, c->q.out_pos(c->q.arg, o), len);
		if (!r->marked) {
			r->marked = true;
			r->mnext = c->marked;
			c->marked = r;
		}
	}
	a = push(c, P2P_CIRCUIT_FORWARD, o, oc);
	a->data = data;
	a->len = len;
	return 0;
}

int p2p_circuit_on_close(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			 const char *reason, size_t len)
{
	struct p2p_circuit_action *a;
	struct relay_circ *r;
	uint32_t o, oc;

	if (!room(c, 1))
		return -ENOBUFS;
	if (c->q.is_end(c->q.arg, link, circ)) {
		a = push(c, P2P_CIRCUIT_END_CLOSED, link, circ);
		a->text = reason;
		a->len = len;
		return 0;
	}
	if (!(r = relay_tab_find(&c->tab, link, circ, &o, &oc))) {
		c->st.unknown++;
		return 0;
	}
	circ_del(c, r);
	push_close(c, o, oc, "closed by the other end", P2P_CIRCUIT_N_NONE);
	return 0;
}

int p2p_circuit_link_gone(struct p2p_circuit *c, uint32_t link)
{
	struct relay_circ *r;

	if (!room(c, c->tab.n))
		return -ENOBUFS;
	while ((r = relay_tab_on(&c->tab, link)) != NULL) {
		uint32_t o = r->a == link ? r->b : r->a;
		uint32_t oc = r->a == link ? r->cb : r->ca;
		circ_del(c, r);
		push_close(c, o, oc, "the other end's link is gone",
			   P2P_CIRCUIT_N_NONE);
	}
	return 0;
}

uint64_t p2p_circuit_next(struct p2p_circuit *c)
{
	if (!c->next_ok) {
		c->next_at = UINT64_MAX;
		for (const struct relay_circ *r = c->tab.circs; r; r = r->next)
			if (circ_next(r) < c->next_at)
				c->next_at = circ_next(r);
		c->next_ok = true;
	}
	return c->next_at;
}

/* r's credit held back until now: it goes back to both sources, unless
 * the requester's budget, drained by its other circuits too, still holds
 * it. */
static void unpace(struct p2p_circuit *c, struct relay_circ *r, uint64_t now)
{
	uint64_t was = circ_next(r);
	bool held;

	r->pace_until = 0;
	held = paced(c, r, now, &r->pace_until);
	moved(c, was, circ_next(r));
	if (held)
		return;
	if (due(&r->dir[0]))
		give(c, r->a, r->ca, take(&r->dir[0]));
	if (due(&r->dir[1]))
		give(c, r->b, r->cb, take(&r->dir[1]));
}

void p2p_circuit_expire(struct p2p_circuit *c, uint64_t now)
{
	struct relay_circ *r = c->tab.circs, *next;

	for (; r && room(c, 4); r = next) {
		next = r->next;
		if (r->pace_until && r->pace_until <= now)
			unpace(c, r, now);
		if (deadline(r) > now)
			continue;
		if (!handshaken(r)) {
			c->st.closed_hs++;
			cut(c, r, "relay: no end-to-end handshake in time",
			    P2P_CIRCUIT_N_EXPIRED);
		} else {
			c->st.closed_idle++;
			cut(c, r, "relay: circuit idle", P2P_CIRCUIT_N_EXPIRED);
		}
	}
}

void p2p_circuit_get_stats(const struct p2p_circuit *c,
			   struct p2p_circuit_stats *st)
{
	*st = c->st;
	st->circuits = c->tab.n;
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
