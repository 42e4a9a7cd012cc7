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
 * other attempts are closed. Punched links are kind LINK_DIRECT (shown as
 * link "direct"; `connect` answers method "punch").
 *
 * Attempts are held by link ID: a session never points into a link.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"
#include "log.h"
#include "nat/punch.h"
#include "ovl.h"
#include "punch.h"

enum punch_state {
	PS_SIGNAL, /* requester: REQUEST sent, waiting for REPLY */
	PS_RUN,	   /* the schedule runs */
};

struct punch {
	struct punch *next;
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
	punch_failed_fn failed;
	void *failed_arg;
	struct p2p_punch core;
	uint32_t att[P2P_PUNCH_CAND_MAX]; /* attempts' link IDs */
};

struct punches {
	struct punch *list;
};

int punch_module_init(struct p2pd_node *n)
{
	n->punch = calloc(1, sizeof(*n->punch));
	return n->punch ? 0 : -ENOMEM;
}

static struct punch *find(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	for (struct punch *p = n->punch->list; p; p = p->next)
		if (p2p_peerid_equal(&p->peer, peer))
			return p;
	return NULL;
}

/* The session and index of attempt link id. */
static struct punch *find_att(struct p2pd_node *n, uint32_t id, size_t *idx)
{
	for (struct punch *p = n->punch->list; p; p = p->next) {
		for (size_t i = 0; i < P2P_PUNCH_CAND_MAX; i++) {
			if (p->att[i] == id) {
				*idx = i;
				return p;
			}
		}
	}
	return NULL;
}

static size_t count(struct p2pd_node *n)
{
	size_t c = 0;

	for (struct punch *p = n->punch->list; p; p = p->next)
		c++;
	return c;
}

/* Close attempt idx of p unless its handshake is done (a link that
 * handshook is the peer's, whatever the punch thinks). */
static void drop_attempt(struct p2pd_node *n, struct punch *p, size_t idx)
{
	struct link *l = link_get(n, p->att[idx]);

	p->att[idx] = 0;
	if (l && !link_established(l))
		link_fail(l, "punch attempt closed");
}

/* Forget p: its attempts are closed (they no longer report to it). */
static void session_free(struct p2pd_node *n, struct punch *p)
{
	for (struct punch **pp = &n->punch->list; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	for (size_t i = 0; i < P2P_PUNCH_CAND_MAX; i++)
		drop_attempt(n, p, i);
	free(p);
}

/* ---- our side of the signalling ---- */

/* Our own addresses: the local side of our links (what the routes pick). */
static size_t lan_addrs(struct p2pd_node *n, struct p2p_addr *out, size_t max)
{
	size_t c = 0;

	for (struct link *l = link_first(n); l && c < max;
	     l = link_next_of(l)) {
		struct p2p_addr a = *link_local(l);
		bool seen = false;
		if (!link_established(l) || link_kind(l) == LINK_DIRECT ||
		    a.family != 4)
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
	const struct p2p_nat *nat = ovl_nat(n);
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX], lan[PUNCH_LAN_MAX];
	struct p2p_punch_local in = {.type = p2p_nat_type(nat),
				     .listen_port = node_listen_port(n, 4)};

	in.nexternal = p2p_nat_external(nat, ext, P2P_NAT_EXTERNAL_MAX);
	in.external = ext;
	in.nlan = lan_addrs(n, lan, PUNCH_LAN_MAX);
	in.lan = lan;
	if (p2p_nat_mapped(nat, 4, in.listen_port, &in.mapped) < 0)
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

	s->nat = p2p_nat_type(ovl_nat(n));
	rc = p2p_punch_encode(s, &n->ident, to, buf, sizeof(buf), &len);
	if (rc == 0)
		rc = ovl_route(n, to, P2P_APP_NAT, buf, len, &msgid);
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
	punch_failed_fn failed = p->requester ? p->failed : NULL;
	void *arg = p->failed_arg;

	if (why == P2P_PUNCH_R_TIMEOUT)
		snprintf(types, sizeof(types),
			 " (this side %s, the peer %s; %u attempts, %u reset, "
			 "%u unanswered)",
			 p2p_nat_type_name(p2p_nat_type(ovl_nat(n))),
			 p2p_nat_type_name(p->peer_nat), p->core.attempts,
			 p->core.refused, p->core.timeouts);
	snprintf(msg, sizeof(msg),
		 "no direct link: %s; hole punching failed after %.1f s: "
		 "%s%s",
		 p->context[0] ? p->context : "the peer is not dialable",
		 secs(n, p), extra ? extra : p2p_punch_reason_text(why), types);
	log_info("punch %s: failed after %.1f s: %s%s", p->id, secs(n, p),
		 extra ? extra : p2p_punch_reason_text(why), types);
	session_free(n, p);
	if (failed)
		failed(arg, &peer, msg);
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
			p->att[a.idx] = link_id(l);
			break;
		case P2P_PUNCH_ABORT:
			drop_attempt(n, p, a.idx);
			break;
		case P2P_PUNCH_SUCCESS:
			/* Logged by on_up, which knows the link. */
			session_free(n, p);
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
		if (node_listen_port(n, s->cand[i].family) == 0)
			continue;
		for (size_t j = 0; j < nmine; j++)
			if (!memcmp(mine[j].ip, s->cand[i].ip, 16) &&
			    s->cand[i].port == node_listen_port(n, 4))
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

static struct punch *session_new(struct p2pd_node *n,
				 const struct p2p_peerid *peer)
{
	struct punch *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->peer = *peer;
	p2p_peerid_to_text(peer, p->id);
	p->t0 = node_now(n);
	p->next = n->punch->list;
	n->punch->list = p;
	return p;
}

int punch_start(struct p2pd_node *n, const struct p2p_peerid *peer,
		const char *context, punch_failed_fn failed, void *arg)
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
		p->failed = failed;
		p->failed_arg = arg;
		return 0;
	}
	if (node_listen_port(n, 4) == 0)
		return -EADDRNOTAVAIL;
	if (count(n) >= PUNCH_MAX)
		return -EBUSY;
	p = session_new(n, peer);
	if (!p)
		return -ENOMEM;
	p->requester = true;
	p->failed = failed;
	p->failed_arg = arg;
	p->state = PS_SIGNAL;
	snprintf(p->context, sizeof(p->context), "%s", context);
	randombytes_buf(&p->nonce, sizeof(p->nonce));
	p->deadline = p->t0 + P2P_PUNCH_SIGNAL_MS;
	s.nonce = p->nonce;
	s.ncand = our_candidates(n, s.cand);
	rc = send_sig(n, p, peer, &s);
	if (rc < 0) {
		session_free(n, p);
		return rc;
	}
	log_info("punch %s: requested (we are %s, %zu candidates)", p->id,
		 p2p_nat_type_name(p2p_nat_type(ovl_nat(n))), s.ncand);
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
		if (node_listen_port(n, 4) == 0) {
			send_fail(n, src, s->nonce, P2P_PUNCH_R_NOT_LISTENING);
			return;
		}
		if (!p2p_punch_predictable(s->nat) &&
		    !p2p_punch_predictable(p2p_nat_type(ovl_nat(n)))) {
			send_fail(n, src, s->nonce, P2P_PUNCH_R_BOTH_DEPENDENT);
			return;
		}
		if (count(n) >= PUNCH_MAX || !(p = session_new(n, src))) {
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

void punch_on_app(void *arg, const struct p2p_ov_action *a)
{
	struct p2pd_node *n = arg;
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
		return;
	}
	p = find(n, &src);
	if (!p || p->nonce != s.nonce)
		return;
	if (s.type == P2P_PUNCH_REPLY)
		on_reply(n, p, &s);
	else
		fail(n, p, s.reason, NULL);
}

void punch_on_route_failed(void *arg, uint64_t msgid)
{
	struct p2pd_node *n = arg;

	for (struct punch *p = n->punch->list; p; p = p->next) {
		if (p->msgid == msgid && msgid != 0) {
			fail(n, p, P2P_PUNCH_R_NONE,
			     "no route to the peer over the overlay");
			return;
		}
	}
}

/* ---- links ---- */

static void on_connected(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;
	size_t idx;
	struct punch *p = find_att(n, link_id(l), &idx);

	if (p)
		p2p_punch_connected(&p->core, node_now(n), idx);
}

/* A link to the peer of a running punch is the punch's: through one of
 * our attempts, or the peer's SYN reached our listener. Marked before the
 * overlay decides what an inbound link proves (ovl.c on_established). */
static void on_established(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;

	if (link_kind(l) != LINK_RELAY && find(n, link_peer(l)))
		link_set_kind(l, LINK_DIRECT);
}

static void on_up(void *arg, struct link *l, bool first)
{
	struct p2pd_node *n = arg;
	struct punch *p;
	char a[P2P_ADDR_TEXT_MAX];
	size_t idx = SIZE_MAX, i;

	if (!first || link_kind(l) == LINK_RELAY ||
	    !(p = find(n, link_peer(l))))
		return;
	link_set_kind(l, LINK_DIRECT);
	if (find_att(n, link_id(l), &i) == p) {
		idx = i;
		p->att[i] = 0;
	}
	p2p_addr_format(link_remote(l), a, sizeof(a));
	log_info("punch %s: connected %s %s in %llu ms (%s, %u attempts)",
		 p->id, link_outbound(l) ? "to" : "from", a,
		 (unsigned long long)(node_now(n) - p->t0),
		 p->requester ? "requester" : "replier", p->core.attempts);
	p2p_punch_verified(&p->core, node_now(n), idx);
	run(n, p);
}

static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	size_t idx;
	struct punch *p = find_att(n, link_id(l), &idx);
	bool refused;

	if (!p)
		return;
	p->att[idx] = 0;
	refused = why && !strcmp(why, uv_strerror(UV_ECONNREFUSED));
	p2p_punch_conn_failed(&p->core, node_now(n), idx, refused);
	run(n, p);
}

const struct node_link_hooks punch_link_hooks = {
    .connected = on_connected,
    .established = on_established,
    .up = on_up,
    .gone = on_gone,
};

/* ---- time ---- */

static uint64_t session_next(const struct punch *p)
{
	return p->state == PS_SIGNAL ? p->deadline
				     : p2p_punch_next_timer(&p->core);
}

uint64_t punch_next(void *arg)
{
	struct p2pd_node *n = arg;
	uint64_t t = UINT64_MAX;

	for (struct punch *p = n->punch->list; p; p = p->next)
		if (session_next(p) < t)
			t = session_next(p);
	return t;
}

void punch_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	struct punch *p, *next;

	/* Each step changes only its own session (failure callbacks never
	 * start a punch), so the next one is safe to keep. */
	for (p = n->punch->list; p; p = next) {
		next = p->next;
		if (session_next(p) > now)
			continue;
		if (p->state == PS_SIGNAL) {
			fail(n, p, P2P_PUNCH_R_NO_ANSWER, NULL);
			continue;
		}
		p2p_punch_tick(&p->core, now);
		run(n, p);
	}
}

void punch_stop(struct p2pd_node *n)
{
	while (n->punch && n->punch->list)
		session_free(n, n->punch->list);
}

void punch_free(struct p2pd_node *n)
{
	punch_stop(n);
	free(n->punch);
	n->punch = NULL;
}
