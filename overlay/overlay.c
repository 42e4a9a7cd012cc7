/*
 * The overlay handle: events in, actions out, one timer.
 *
 * Actions are queued with their bytes in an arena owned by the handle.
 * The queue and the arena are emptied once the caller has drained them
 * (poll() returned false) or at the start of the next event, so what poll()
 * hands out stays valid until the next call, and an idle handle keeps no
 * buffer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void ov_log(struct p2p_overlay *o, int level, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (o->cfg.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	o->cfg.log(o->cfg.ctx, level, buf);
}

uint32_t ov_now_s(uint64_t now)
{
	return (uint32_t)(now / 1000);
}

/* A bucket touch time; never 0, which asks for a refresh at once. */
uint32_t ov_touch_stamp(uint64_t now)
{
	uint32_t s = ov_now_s(now);

	return s ? s : 1;
}

void ov_set_dirty(struct p2p_overlay *o)
{
	o->dirty = true;
}

/*
 * Forget what the caller has drained: at the start of every event, and when
 * poll() runs dry (then nothing handed out can be in use any more, and an
 * idle handle gives its buffers back: 100,000 of them share one process).
 */
static void begin(struct p2p_overlay *o)
{
	if (o->ahead < o->nacts)
		return;
	o->ahead = o->nacts = 0;
	o->alen = 0;
	if (o->arcap > OV_ARENA_KEEP) {
		free(o->arena);
		o->arena = NULL;
		o->arcap = 0;
	}
	if (o->acap > OV_ACTS_KEEP) {
		free(o->acts);
		o->acts = NULL;
		o->acap = 0;
	}
}

void *ov_arena_alloc(struct p2p_overlay *o, size_t len, size_t *off)
{
	size_t start = (o->alen + 7) & ~(size_t)7;

	if (start + len > o->arcap) {
		size_t cap = o->arcap ? o->arcap : 1024;
		uint8_t *p;

		while (cap < start + len)
			cap *= 2;
		p = realloc(o->arena, cap);
		if (p == NULL)
			return NULL;
		o->arena = p;
		o->arcap = cap;
	}
	o->alen = start + len;
	*off = start;
	return o->arena + start;
}

struct ov_act *ov_push(struct p2p_overlay *o, enum p2p_ov_action_type type,
		       const struct p2p_peerid *peer)
{
	struct ov_act *x;

	if (o->nacts == o->acap) {
		size_t cap = o->acap ? o->acap * 2 : 8;
		struct ov_act *p = realloc(o->acts, cap * sizeof(*p));

		if (p == NULL) {
			ov_log(o, 3, "overlay: action dropped (no memory)");
			return NULL;
		}
		o->acts = p;
		o->acap = cap;
	}
	x = &o->acts[o->nacts++];
	memset(x, 0, sizeof(*x));
	x->a.type = type;
	if (peer != NULL)
		x->a.peer = *peer;
	x->off = x->coff = SIZE_MAX;
	return x;
}

int ov_send(struct p2p_overlay *o, uint64_t now, const struct p2p_peerid *peer,
	    const struct p2p_msg *m)
{
	size_t cap = 256, off, len;
	struct ov_link *l;
	struct ov_act *x;
	uint8_t *buf;
	int rc;

	if (m->type == P2P_MSG_ROUTED)
		cap = OV_ROUTE_OVERHEAD + m->u.routed.len;
	else if (m->type == P2P_MSG_NODES)
		cap = OV_NODES_MAX_BYTES;
	buf = ov_arena_alloc(o, cap, &off);
	if (buf == NULL)
		return -ENOMEM;
	rc = p2p_msg_encode(m, buf, cap, &len);
	if (rc < 0) {
		o->alen = off;
		return rc;
	}
	o->alen = off + len;
	x = ov_push(o, P2P_OV_SEND, peer);
	if (x == NULL)
		return -ENOMEM;
	x->off = off;
	x->a.len = len;
	o->st.msgs_sent++;
	l = ov_link_find(o, peer);
	if (l != NULL)
		l->used = now;
	return 0;
}

struct p2p_overlay *p2p_overlay_new(const struct p2p_overlay_config *cfg)
{
	struct p2p_overlay *o;

	if (cfg == NULL || cfg->random == NULL)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	o->cfg = *cfg;
	o->server = cfg->server;
	cfg->random(cfg->ctx, &o->hseed, sizeof(o->hseed));
	cfg->random(cfg->ctx, &o->next_txid, sizeof(o->next_txid));
	o->next_lookup_id = 1;
	o->idle_at = o->redial_at = o->refresh_at = o->self_at = UINT64_MAX;
	o->probe_at = UINT64_MAX;
	o->anon_tokens = P2P_ROUTE_RATE * 1000;
	o->anon_find_tokens = P2P_FIND_BURST * 1000;
	return o;
}

void p2p_overlay_free(struct p2p_overlay *o)
{
	if (o == NULL)
		return;
	ov_lookups_free(o);
	ov_route_free(o);
	ov_links_free(o);
	ov_table_free(o);
	free(o->acts);
	free(o->arena);
	free(o);
}

void p2p_overlay_set_server(struct p2p_overlay *o, uint64_t now, bool server)
{
	begin(o);
	if (o->server != server)
		ov_log(o, 6, "overlay: now in %s mode",
		       server ? "server" : "client");
	o->server = server;
	o->probe_at =
	    server || !o->booted ? UINT64_MAX : now + OV_CLIENT_PROBE_MS;
	ov_set_dirty(o);
}

bool p2p_overlay_is_server(const struct p2p_overlay *o)
{
	return o->server;
}

void p2p_overlay_link_up(struct p2p_overlay *o, uint64_t now,
			 const struct p2p_peerid *peer,
			 const struct p2p_addr *addr, bool server,
			 bool outbound)
{
	struct ov_entry *e;
	struct ov_link *l;

	begin(o);
	if (ov_id_eq(peer, &o->cfg.self))
		return;
	l = ov_link_find(o, peer);
	if (l == NULL && (l = ov_link_add(o, peer)) == NULL)
		return;
	if (l->state != OV_LINK_UP) {
		o->links_up++;
		l->tokens = P2P_ROUTE_RATE * 1000;
		l->refill = now;
		l->find_tokens = P2P_FIND_BURST * 1000;
		l->find_refill = now;
	}
	if (l->flags & OV_L_MAINT)
		o->maint_dials--;
	l->state = OV_LINK_UP;
	l->flags =
	    (uint8_t)((l->flags & OV_L_WANT) | (server ? OV_L_SERVER : 0) |
		      (outbound ? OV_L_OUT : 0));
	if (addr != NULL)
		l->addr = *addr;
	l->used = now;
	if (outbound && now + OV_LINK_IDLE_MS < o->idle_at)
		o->idle_at = now + OV_LINK_IDLE_MS;
	if (server && addr != NULL && addr->family != 0)
		ov_table_insert(o, now, peer, addr, true);
	else if (!server)
		ov_table_remove(o, peer); /* it told us it is a client now */
	e = ov_table_find(o, peer);
	if (e != NULL && (e->flags & OV_E_WANT) && l != NULL)
		l->flags |= OV_L_WANT;
	ov_lookup_link_up(o, now, peer);
}

/* Why a link went: it never came up, it went down, or the peer closed
 * it (GOAWAY). */
enum gone { GONE_FAILED, GONE_DOWN, GONE_CLOSED };

/* A link is gone or could not be made: a failure of the entry when we
 * wanted the link, could not make it, or the peer closed it. */
static void link_gone(struct p2p_overlay *o, uint64_t now,
		      const struct p2p_peerid *peer, enum gone why)
{
	static const char *const what[][2] = {
	    [GONE_FAILED] = {"no ", "made"},
	    [GONE_DOWN] = {"lost ", "we keep"},
	    [GONE_CLOSED] = {"", "closed by the peer"},
	};
	struct ov_link *l = ov_link_find(o, peer);

	if (l == NULL)
		return; /* we closed it already, or never knew it */
	if (l->state == OV_LINK_UP)
		o->links_up--;
	if (l->flags & OV_L_MAINT && l->state == OV_LINK_DIALING)
		o->maint_dials--;
	if (why != GONE_DOWN || (l->flags & OV_L_WANT)) {
		char t[P2P_ID_TEXT_LEN + 1];

		p2p_peerid_to_text(peer, t);
		ov_log(o, 7, "overlay: %slink to %s %s", what[why][0], t,
		       what[why][1]);
		ov_table_fail(o, now, peer);
	}
	if (l->flags & OV_L_WANT) {
		ov_set_dirty(o);
		/* a client lost a neighbour: ask the others who is next */
		o->probe_ivl = OV_CLIENT_PROBE_MS;
		if (!o->server && o->booted && o->probe_at != UINT64_MAX &&
		    now + OV_MAINT_MIN_MS < o->probe_at)
			o->probe_at = now + OV_MAINT_MIN_MS;
	}
	ov_link_del(o, l);
	ov_lookup_link_gone(o, now, peer);
}

void p2p_overlay_link_down(struct p2p_overlay *o, uint64_t now,
			   const struct p2p_peerid *peer)
{
	begin(o);
	link_gone(o, now, peer, GONE_DOWN);
}

void p2p_overlay_link_closed(struct p2p_overlay *o, uint64_t now,
			     const struct p2p_peerid *peer)
{
	begin(o);
	link_gone(o, now, peer, GONE_CLOSED);
}

void p2p_overlay_dial_failed(struct p2p_overlay *o, uint64_t now,
			     const struct p2p_peerid *peer)
{
	struct ov_link *l;

	begin(o);
	l = ov_link_find(o, peer);
	if (l != NULL && l->state == OV_LINK_UP)
		return; /* a stale report: the link is up */
	link_gone(o, now, peer, GONE_FAILED);
}

/* P2P_FIND_RATE a second after a burst of P2P_FIND_BURST, in
 * thousandths of a token. */
static bool take_find_token(uint32_t *tokens, uint64_t *refill, uint64_t now)
{
	uint64_t t = *tokens;

	if (now > *refill)
		t += (now - *refill) * P2P_FIND_RATE;
	if (t > P2P_FIND_BURST * 1000)
		t = P2P_FIND_BURST * 1000;
	*refill = now > *refill ? now : *refill;
	*tokens = (uint32_t)(t < 1000 ? t : t - 1000);
	return t >= 1000;
}

/*
 * A FIND_NODE earns a NODES reply about 13 times its size: answered at
 * P2P_FIND_RATE per peer (a shared bucket for peers without a link), the
 * rest dropped without a word (the asker's request times out).
 */
static int recv_find_node(struct p2p_overlay *o, uint64_t now,
			  const struct p2p_peerid *from,
			  const struct p2p_msg *m)
{
	struct ov_link *l = ov_link_find(o, from);
	struct p2p_msg r;
	size_t n;

	if (l != NULL && l->state == OV_LINK_UP
		? !take_find_token(&l->find_tokens, &l->find_refill, now)
		: !take_find_token(&o->anon_find_tokens, &o->anon_find_refill,
				   now)) {
		o->st.finds_dropped++;
		return 0;
	}

	memset(&r, 0, sizeof(r));
	r.type = P2P_MSG_NODES;
	r.u.nodes.txid = m->u.find_node.txid;
	n = ov_table_closest(o, &m->u.find_node.target, from, true,
			     r.u.nodes.nodes, P2P_K);
	r.u.nodes.count = (uint8_t)n;
	return ov_send(o, now, from, &r);
}

int p2p_overlay_recv(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *from, const struct p2p_msg *m)
{
	struct ov_link *l;
	int rc;

	begin(o);
	o->st.msgs_received++;
	l = ov_link_find(o, from);
	if (l != NULL && l->state == OV_LINK_UP)
		l->used = now;
	switch (m->type) {
	case P2P_MSG_FIND_NODE:
		rc = recv_find_node(o, now, from, m);
		return rc == -ENOMEM ? rc : 0;
	case P2P_MSG_NODES:
		rc = ov_lookup_nodes(o, now, from, m);
		break;
	case P2P_MSG_ROUTED:
		rc = ov_route_recv(o, now, from, m);
		break;
	default:
		rc = -EPROTO; /* not an overlay message */
		break;
	}
	if (rc == -EPROTO || rc == -EMSGSIZE)
		o->st.bad_msgs++;
	return rc;
}

void p2p_overlay_tick(struct p2p_overlay *o, uint64_t now)
{
	begin(o);
	ov_lookup_tick(o, now);
	if ((o->dirty && now >= o->last_maint + OV_MAINT_MIN_MS) ||
	    now >= o->redial_at)
		ov_maintain(o, now);
	if (now >= o->idle_at)
		ov_idle_check(o, now);
	ov_refresh_tick(o, now);
}

uint64_t p2p_overlay_next_timer(const struct p2p_overlay *o)
{
	uint64_t t = UINT64_MAX;

	for (unsigned i = 0; i < o->nlookups; i++)
		if (o->lookups[i]->wake < t)
			t = o->lookups[i]->wake;
	if (o->dirty && o->last_maint + OV_MAINT_MIN_MS < t)
		t = o->last_maint + OV_MAINT_MIN_MS;
	if (o->redial_at < t)
		t = o->redial_at;
	if (o->idle_at < t)
		t = o->idle_at;
	if (o->refresh_at < t)
		t = o->refresh_at;
	if (o->self_at < t)
		t = o->self_at;
	if (o->probe_at < t)
		t = o->probe_at;
	return t;
}

void p2p_overlay_add_contact(struct p2p_overlay *o, uint64_t now,
			     const struct p2p_peerid *id,
			     const struct p2p_addr *addr)
{
	begin(o);
	if (addr == NULL || addr->family == 0 || ov_id_eq(id, &o->cfg.self))
		return;
	/* Unverified until a link comes up; maintenance dials it. */
	ov_table_insert(o, now, id, addr, false);
}

void p2p_overlay_bootstrap(struct p2p_overlay *o, uint64_t now)
{
	begin(o);
	if (o->booting)
		return;
	o->booting = true; /* the own-ID lookup may end at once */
	if (ov_lookup_start(o, now, &o->cfg.self, OV_LK_SELF, NULL) < 0)
		o->booting = false;
}

int p2p_overlay_lookup(struct p2p_overlay *o, uint64_t now,
		       const struct p2p_peerid *target, uint64_t *id)
{
	begin(o);
	if (target == NULL)
		return -EINVAL;
	return ov_lookup_start(o, now, target, OV_LK_USER, id);
}

int p2p_overlay_route(struct p2p_overlay *o, uint64_t now,
		      const struct p2p_peerid *dst, uint8_t app,
		      const uint8_t *payload, size_t len, uint64_t *msgid)
{
	begin(o);
	if (dst == NULL || (payload == NULL && len > 0))
		return -EINVAL;
	if (len > P2P_MSG_MAX - OV_ROUTE_OVERHEAD)
		return -EMSGSIZE;
	return ov_route_origin(o, now, dst, app, payload, len, msgid);
}

bool p2p_overlay_poll(struct p2p_overlay *o, struct p2p_ov_action *a)
{
	struct ov_act *x;

	if (o->ahead >= o->nacts) {
		begin(o);
		return false;
	}
	x = &o->acts[o->ahead++];
	*a = x->a;
	if (x->off != SIZE_MAX)
		a->data = o->arena + x->off;
	if (x->coff != SIZE_MAX)
		a->contacts = (const struct p2p_contact *)(o->arena + x->coff);
	return true;
}

size_t p2p_overlay_closest(const struct p2p_overlay *o,
			   const struct p2p_peerid *target,
			   struct p2p_contact *out, size_t max)
{
	return ov_table_closest(o, target, NULL, false, out, max);
}

void p2p_overlay_get_stats(const struct p2p_overlay *o,
			   struct p2p_overlay_stats *st)
{
	*st = o->st;
	st->table_size = o->table_size;
	st->links = o->links_up;
}
