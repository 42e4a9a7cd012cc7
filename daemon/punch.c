/*
 * TCP hole punching (SPEC section 7 "NAT traversal"): the libuv glue of
 * the sans-I/O core in nat/punch.h.
 *
 * The requester (a tunnel or `connect` wants a link to a peer that cannot
 * be dialled) routes a signed PUNCH_REQUEST with its candidates to the
 * peer over the overlay (app P2P_APP_NAT); the peer answers PUNCH_REPLY
 * with its own candidates and a start offset, or PUNCH_FAIL with a reason
 * (both sides endpoint-dependent, busy, not listening). Both then run the
 * schedule: at the agreed moment each connects from its listen port to
 * every candidate of the other, again and again through resets and
 * timeouts, for P2P_PUNCH_TOTAL_MS. Every attempt is an ordinary outbound
 * link (link_punch) whose handshake expects the peer's ID; the SYNs meet
 * in the NATs as one TCP simultaneous open (both ends initiators: the
 * lower ID keeps that role, see link.c on_hs_frame), or one side's SYN
 * reaches the other's listener. The first link to HELLO wins and the
 * other attempts are closed. Punched links are shown as link "direct" and
 * `connect` answers method "punch".
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nat/punch.h"
#include "node_int.h"
#include "nodeutil.h"
#include "tunnel_int.h"

#define PUNCH_MAX 8 /* punches at once (each sends SYNs to 8 addresses) */
#define PUNCH_LAN_MAX 4

enum punch_state {
	PS_SIGNAL, /* requester: REQUEST sent, waiting for REPLY */
	PS_RUN,	   /* the schedule runs */
};

struct punch {
	struct punch *next;
	struct p2pd_node *n;
	struct p2p_peerid peer;
	char id[P2P_ID_TEXT_LEN + 1];
	bool requester;
	enum punch_state state;
	uint64_t nonce;
	uint64_t msgid; /* our routed message, for ROUTE_FAILED */
	uint64_t t0;	/* punch started (REQUEST sent / received) */
	uint64_t deadline;
	enum p2p_nat_type peer_nat;
	char context[160]; /* why we punch (requester) */
	struct p2p_punch core;
	struct link *att[P2P_PUNCH_CAND_MAX];
};

static void on_timer(uv_timer_t *t);

static void on_timer_closed(uv_handle_t *h)
{
	node_handle_closed(h->data);
}

void punch_init(struct p2pd_node *n)
{
	uv_timer_init(n->loop, &n->punch_timer);
	n->punch_timer.data = n;
	n->open_handles++;
}

static struct punch *find(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	for (struct punch *p = n->punches; p; p = p->next)
		if (p2p_peerid_equal(&p->peer, peer))
			return p;
	return NULL;
}

bool punch_running(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	return find(n, peer) != NULL;
}

static size_t count(struct p2pd_node *n)
{
	size_t c = 0;

	for (struct punch *p = n->punches; p; p = p->next)
		c++;
	return c;
}

/* Forget p: its attempts are closed (they no longer report to it). */
static void punch_free(struct p2pd_node *n, struct punch *p)
{
	for (struct punch **pp = &n->punches; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	for (size_t i = 0; i < P2P_PUNCH_CAND_MAX; i++) {
		struct link *l = p->att[i];
		if (l && l->punch == p) {
			l->punch = NULL;
			if (l->state != LINK_UP)
				link_destroy(l);
		}
	}
	free(p);
}

static void rearm(struct p2pd_node *n)
{
	uint64_t t = UINT64_MAX, now = node_now(n);

	if (n->stopping)
		return;
	for (struct punch *p = n->punches; p; p = p->next) {
		uint64_t d = p->state == PS_SIGNAL
				 ? p->deadline
				 : p2p_punch_next_timer(&p->core);
		if (d < t)
			t = d;
	}
	if (t == UINT64_MAX)
		uv_timer_stop(&n->punch_timer);
	else
		uv_timer_start(&n->punch_timer, on_timer, t > now ? t - now : 0,
			       0);
}

/* ---- our side of the signalling ---- */

static uint16_t listen_port(struct p2pd_node *n, uint8_t family)
{
	for (size_t i = 0; i < n->nlisten; i++)
		if (n->listeners[i].addr.family == family)
			return n->listeners[i].addr.port;
	return 0;
}

/* Our own addresses: the local side of our links (what the routes pick). */
static size_t lan_addrs(struct p2pd_node *n, struct p2p_addr *out, size_t max)
{
	size_t c = 0;

	for (struct link *l = n->links; l && c < max; l = l->next) {
		struct p2p_addr a = l->local;
		bool seen = false;
		if (l->state != LINK_UP || l->punched || a.family != 4)
			continue;
		a.port = 0;
		for (size_t i = 0; i < c; i++)
			if (p2p_addr_equal(&out[i], &a))
				seen = true;
		if (!seen)
			out[c++] = a;
	}
	return c;
}

static size_t our_candidates(struct p2pd_node *n, struct p2p_addr *out)
{
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX], lan[PUNCH_LAN_MAX];
	struct p2p_punch_local in = {.type = p2p_nat_type(n->nat),
				     .listen_port = listen_port(n, 4)};

	in.nexternal = p2p_nat_external(n->nat, ext, P2P_NAT_EXTERNAL_MAX);
	in.external = ext;
	in.nlan = lan_addrs(n, lan, PUNCH_LAN_MAX);
	in.lan = lan;
	if (p2p_nat_mapped(n->nat, 4, in.listen_port, &in.mapped) < 0)
		in.mapped.family = 0;
	return p2p_punch_predict(&in, out, P2P_PUNCH_CAND_MAX);
}

static int send_sig(struct p2pd_node *n, struct punch *p,
		    const struct p2p_peerid *to, struct p2p_punch_sig *s)
{
	uint8_t buf[P2P_PUNCH_PAYLOAD_MAX];
	uint64_t msgid = 0;
	size_t len;
	int rc;

	s->nat = p2p_nat_type(n->nat);
	rc = p2p_punch_encode(s, &n->ident, to, buf, sizeof(buf), &len);
	if (rc == 0)
		rc = p2p_overlay_route(n->ov, node_now(n), to, P2P_APP_NAT, buf,
				       len, &msgid);
	if (p)
		p->msgid = msgid;
	return rc;
}

static void send_fail(struct p2pd_node *n, const struct p2p_peerid *to,
		      uint64_t nonce, enum p2p_punch_reason why)
{
	struct p2p_punch_sig s = {
	    .type = P2P_PUNCH_FAIL, .nonce = nonce, .reason = why};

	send_sig(n, NULL, to, &s);
}

/* ---- ending ---- */

static double secs(struct p2pd_node *n, const struct punch *p)
{
	return (double)(node_now(n) - p->t0) / 1000.0;
}

static void fail(struct p2pd_node *n, struct punch *p,
		 enum p2p_punch_reason why, const char *extra)
{
	char msg[512], types[128] = "";
	struct p2p_peerid peer = p->peer;
	bool requester = p->requester;

	if (why == P2P_PUNCH_R_TIMEOUT)
		snprintf(types, sizeof(types),
			 " (this side %s, the peer %s; %u attempts, %u reset, "
			 "%u unanswered)",
			 p2p_nat_type_name(p2p_nat_type(n->nat)),
			 p2p_nat_type_name(p->peer_nat), p->core.attempts,
			 p->core.refused, p->core.timeouts);
	snprintf(msg, sizeof(msg),
		 "no direct link: %s; hole punching failed after %.1f s: "
		 "%s%s",
		 p->context[0] ? p->context : "the peer is not dialable",
		 secs(n, p), extra ? extra : p2p_punch_reason_text(why), types);
	log_info("punch %s: failed after %.1f s: %s%s", p->id, secs(n, p),
		 extra ? extra : p2p_punch_reason_text(why), types);
	punch_free(n, p);
	if (requester)
		tun_dials_punch_failed(n, &peer, msg);
}

/* The core's actions. Returns false when p is gone. */
static bool run(struct p2pd_node *n, struct punch *p)
{
	struct p2p_punch_action a;
	char at[P2P_ADDR_TEXT_MAX];
	struct link *l;
	int err;

	while (p2p_punch_poll(&p->core, &a)) {
		switch (a.type) {
		case P2P_PUNCH_CONNECT:
			l = link_punch(n, &a.addr, &p->peer, a.ttl, &err);
			if (!l) {
				p2p_addr_format(&a.addr, at, sizeof(at));
				log_debug("punch %s: connect %s: %s", p->id, at,
					  uv_strerror(err));
				p2p_punch_conn_failed(&p->core, node_now(n),
						      a.idx, false);
				break;
			}
			l->punch = p;
			l->punch_idx = a.idx;
			p->att[a.idx] = l;
			break;
		case P2P_PUNCH_ABORT:
			l = p->att[a.idx];
			p->att[a.idx] = NULL;
			if (l && l->punch == p) {
				l->punch = NULL;
				if (l->state != LINK_UP)
					link_destroy(l);
			}
			break;
		case P2P_PUNCH_SUCCESS:
			/* Logged by punch_link_hello, which knows the link. */
			punch_free(n, p);
			return false;
		case P2P_PUNCH_FAILED:
			fail(n, p, a.reason, NULL);
			return false;
		}
	}
	return true;
}

/* Start the schedule towards the peer's candidates at start. */
static void schedule(struct p2pd_node *n, struct punch *p,
		     const struct p2p_punch_sig *s, uint64_t start)
{
	struct p2p_addr c[P2P_PUNCH_CAND_MAX], mine[PUNCH_LAN_MAX];
	size_t nc = 0, nmine = lan_addrs(n, mine, PUNCH_LAN_MAX);
	char list[P2P_PUNCH_CAND_MAX * P2P_ADDR_TEXT_MAX] = "", at[64];

	for (size_t i = 0; i < s->ncand; i++) {
		bool own = false;
		/* Only what we can dial from a listen port, never ourselves
		 * (two LANs may use the same private addresses). */
		if (listen_port(n, s->cand[i].family) == 0)
			continue;
		for (size_t j = 0; j < nmine; j++)
			if (!memcmp(mine[j].ip, s->cand[i].ip, 16) &&
			    s->cand[i].port == listen_port(n, 4))
				own = true;
		if (own)
			continue;
		c[nc++] = s->cand[i];
		p2p_addr_format(&s->cand[i], at, sizeof(at));
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%s%s", nc > 1 ? " " : "", at);
	}
	p->peer_nat = s->nat;
	p->state = PS_RUN;
	p2p_punch_init(&p->core, c, nc, start,
		       p2p_punch_primer(&n->ident.id, &p->peer));
	log_info("punch %s: peer %s, candidates [%s], start in %llu ms as "
		 "the %s",
		 p->id, p2p_nat_type_name(s->nat), list,
		 (unsigned long long)(start - node_now(n)),
		 p->core.primer ? "primer" : "sender");
}

static struct punch *punch_new(struct p2pd_node *n,
			       const struct p2p_peerid *peer)
{
	struct punch *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->n = n;
	p->peer = *peer;
	p2p_peerid_to_text(peer, p->id);
	p->t0 = node_now(n);
	p->next = n->punches;
	n->punches = p;
	return p;
}

int punch_start(struct p2pd_node *n, const struct p2p_peerid *peer,
		const char *context)
{
	struct p2p_punch_sig s = {.type = P2P_PUNCH_REQUEST,
				  .offset_ms = P2P_PUNCH_OFFSET_MS};
	struct punch *p = find(n, peer);
	int rc;

	if (p) {
		/* Already punching (the peer asked first): its end tells. */
		if (!p->context[0])
			snprintf(p->context, sizeof(p->context), "%s", context);
		p->requester = true;
		return 0;
	}
	if (listen_port(n, 4) == 0)
		return -EADDRNOTAVAIL;
	if (count(n) >= PUNCH_MAX)
		return -EBUSY;
	p = punch_new(n, peer);
	if (!p)
		return -ENOMEM;
	p->requester = true;
	p->state = PS_SIGNAL;
	snprintf(p->context, sizeof(p->context), "%s", context);
	randombytes_buf(&p->nonce, sizeof(p->nonce));
	p->deadline = p->t0 + P2P_PUNCH_SIGNAL_MS;
	s.nonce = p->nonce;
	s.ncand = our_candidates(n, s.cand);
	rc = send_sig(n, p, peer, &s);
	if (rc < 0) {
		punch_free(n, p);
		return rc;
	}
	log_info("punch %s: requested (we are %s, %zu candidates)", p->id,
		 p2p_nat_type_name(p2p_nat_type(n->nat)), s.ncand);
	rearm(n);
	node_drain(n);
	return 0;
}

/* ---- the peer's side of the signalling ---- */

static void on_request(struct p2pd_node *n, const struct p2p_peerid *src,
		       const struct p2p_punch_sig *s)
{
	struct p2p_punch_sig r = {.type = P2P_PUNCH_REPLY, .nonce = s->nonce};
	struct punch *p = find(n, src);
	uint64_t now = node_now(n);

	if (p) {
		/* Both asked at once: the lower ID's request is answered. */
		if (p->nonce == s->nonce || p->state != PS_SIGNAL ||
		    memcmp(n->ident.id.b, src->b, P2P_ID_LEN) < 0)
			return;
		p->nonce = s->nonce;
	} else {
		if (listen_port(n, 4) == 0) {
			send_fail(n, src, s->nonce, P2P_PUNCH_R_NOT_LISTENING);
			return;
		}
		if (!p2p_punch_predictable(s->nat) &&
		    !p2p_punch_predictable(p2p_nat_type(n->nat))) {
			send_fail(n, src, s->nonce, P2P_PUNCH_R_BOTH_DEPENDENT);
			return;
		}
		if (count(n) >= PUNCH_MAX || !(p = punch_new(n, src))) {
			send_fail(n, src, s->nonce, P2P_PUNCH_R_BUSY);
			return;
		}
		p->nonce = s->nonce;
	}
	r.offset_ms = p2p_punch_reply_offset(s->offset_ms);
	r.ncand = our_candidates(n, r.cand);
	if (send_sig(n, p, src, &r) < 0) {
		fail(n, p, P2P_PUNCH_R_NONE, "cannot route the reply");
		return;
	}
	schedule(n, p, s, now + r.offset_ms);
}

static void on_reply(struct p2pd_node *n, struct punch *p,
		     const struct p2p_punch_sig *s)
{
	if (p->state != PS_SIGNAL)
		return;
	schedule(n, p, s, p2p_punch_start_at(p->t0, node_now(n), s->offset_ms));
}

void punch_deliver(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	struct p2p_punch_sig s;
	struct p2p_peerid src = a->peer;
	struct punch *p;
	int rc;

	/* a->data lives in the overlay: decoded before we call into it. */
	rc = p2p_punch_decode(&s, a->data, a->len, &src, &n->ident.id);
	if (rc < 0) {
		char id[P2P_ID_TEXT_LEN + 1];
		p2p_peerid_to_text(&src, id);
		n->stats.bad_msgs++;
		log_debug("punch message from %s dropped: %s", id,
			  p2p_strerror(rc));
		return;
	}
	if (n->stopping)
		return;
	if (s.type == P2P_PUNCH_REQUEST) {
		on_request(n, &src, &s);
	} else {
		p = find(n, &src);
		if (!p || p->nonce != s.nonce)
			return;
		if (s.type == P2P_PUNCH_REPLY)
			on_reply(n, p, &s);
		else
			fail(n, p, s.reason, NULL);
	}
	rearm(n);
}

bool punch_route_failed(struct p2pd_node *n, uint64_t msgid)
{
	for (struct punch *p = n->punches; p; p = p->next) {
		if (p->msgid == msgid && msgid != 0) {
			fail(n, p, P2P_PUNCH_R_NONE,
			     "no route to the peer over the overlay");
			rearm(n);
			return true;
		}
	}
	return false;
}

/* ---- links ---- */

void punch_link_connected(struct p2pd_node *n, struct link *l)
{
	struct punch *p = l->punch;

	p2p_punch_connected(&p->core, node_now(n), l->punch_idx);
}

void punch_link_hello(struct p2pd_node *n, struct link *l)
{
	struct punch *p = find(n, &l->peer);
	char a[P2P_ADDR_TEXT_MAX];
	size_t idx = SIZE_MAX;

	if (!p)
		return;
	/* Through one of our attempts, or the peer's SYN reached our
	 * listener: either way the hole is punched. */
	if (l->punch == p)
		idx = l->punch_idx;
	l->punched = true;
	l->punch = NULL;
	if (idx != SIZE_MAX)
		p->att[idx] = NULL;
	p2p_addr_format(&l->remote, a, sizeof(a));
	log_info("punch %s: connected %s %s in %llu ms (%s, %u attempts)",
		 p->id, l->outbound ? "to" : "from", a,
		 (unsigned long long)(node_now(n) - p->t0),
		 p->requester ? "requester" : "replier", p->core.attempts);
	p2p_punch_verified(&p->core, node_now(n), idx);
	run(n, p);
	rearm(n);
}

void punch_link_gone(struct p2pd_node *n, struct link *l, const char *why)
{
	struct punch *p = l->punch;
	bool refused;

	if (!p)
		return;
	l->punch = NULL;
	if (p->att[l->punch_idx] == l)
		p->att[l->punch_idx] = NULL;
	refused = why && !strcmp(why, uv_strerror(UV_ECONNREFUSED));
	p2p_punch_conn_failed(&p->core, node_now(n), l->punch_idx, refused);
	if (run(n, p))
		rearm(n);
}

/* ---- time ---- */

static void on_timer(uv_timer_t *t)
{
	struct p2pd_node *n = t->data;
	uint64_t now = node_now(n);
	struct punch *p, *next;

	for (p = n->punches; p; p = next) {
		next = p->next;
		if (p->state == PS_SIGNAL) {
			if (now >= p->deadline) {
				fail(n, p, P2P_PUNCH_R_NO_ANSWER, NULL);
				next = n->punches;
			}
			continue;
		}
		p2p_punch_tick(&p->core, now);
		if (!run(n, p))
			next = n->punches; /* the list may have changed */
	}
	rearm(n);
	node_drain(n);
}

void punch_close_all(struct p2pd_node *n)
{
	while (n->punches)
		punch_free(n, n->punches);
	if (!uv_is_closing((uv_handle_t *)&n->punch_timer))
		uv_close((uv_handle_t *)&n->punch_timer, on_timer_closed);
}
