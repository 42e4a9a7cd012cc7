/* Relay circuits: the table and the relay's decisions; see circuit.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/circuit.h"

/* ---- the table ---- */

bool relay_tab_used(const struct relay_tab *t, uint32_t l, uint32_t c)
{
	for (const struct relay_circ *r = t->circs; r; r = r->next)
		if ((r->a == l && r->ca == c) || (r->b == l && r->cb == c))
			return true;
	return false;
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
	return 0;
}

struct relay_circ *relay_tab_find(const struct relay_tab *t, uint32_t l,
				  uint32_t c, uint32_t *other, uint32_t *oc)
{
	for (struct relay_circ *r = t->circs; r; r = r->next) {
		if (r->a == l && r->ca == c) {
			*other = r->b;
			*oc = r->cb;
			return r;
		}
		if (r->b == l && r->cb == c) {
			*other = r->a;
			*oc = r->ca;
			return r;
		}
	}
	return NULL;
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

struct p2p_circuit {
	struct p2p_circuit_query q;
	struct relay_tab tab;
	uint32_t next_id;
	uint64_t opened, bytes, unknown;
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

/* We are the relay: from (on link a, circuit ca) asks for peer. */
static void serve_open(struct p2p_circuit *c, uint32_t a, uint32_t ca,
		       const struct p2p_peerid *peer,
		       const struct p2p_peerid *from)
{
	struct p2p_circuit_action *act;
	uint32_t b = c->q.link_to(c->q.arg, peer), cb;
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
	if ((rc = new_id(c, b, &cb)) == 0)
		rc = relay_tab_add(&c->tab, a, ca, b, cb);
	if (rc < 0) {
		push_close(c, a, ca,
			   rc == -EBUSY ? "relay busy" : "relay failed",
			   P2P_CIRCUIT_N_NONE);
		return;
	}
	c->opened++;
	act = push(c, P2P_CIRCUIT_SEND_OPEN, b, cb);
	act->peer = *from;
}

int p2p_circuit_on_open(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			bool incoming, const struct p2p_peerid *peer,
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
		serve_open(c, link, circ, peer, from);
	return 0;
}

int p2p_circuit_on_data(struct p2p_circuit *c, uint32_t link, uint32_t circ,
			const uint8_t *data, size_t len)
{
	struct p2p_circuit_action *a;
	struct relay_circ *r;
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
		c->unknown++;
		return 0;
	}
	q = c->q.queued(c->q.arg, o);
	if (q == SIZE_MAX || q + len > RELAY_WQ_MAX) {
		relay_tab_del(&c->tab, r);
		push_close(c, link, circ, "relay queue full",
			   P2P_CIRCUIT_N_QUEUE_FULL);
		push_close(c, o, oc, "relay queue full", P2P_CIRCUIT_N_NONE);
		return 0;
	}
	c->bytes += len;
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
		c->unknown++;
		return 0;
	}
	relay_tab_del(&c->tab, r);
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
		relay_tab_del(&c->tab, r);
		push_close(c, o, oc, "the other end's link is gone",
			   P2P_CIRCUIT_N_NONE);
	}
	return 0;
}

void p2p_circuit_get_stats(const struct p2p_circuit *c,
			   struct p2p_circuit_stats *st)
{
	st->circuits = c->tab.n;
	st->opened = c->opened;
	st->bytes = c->bytes;
	st->unknown = c->unknown;
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
