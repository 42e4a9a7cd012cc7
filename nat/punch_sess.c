/*
 * Hole punching sessions (nat/punch_sess.h): the signalling state machine
 * that daemon/punch.c held, without its sockets, timers and links.
 *
 * A session is one slot of the table. Inputs change its state and leave
 * what the caller must do in the session itself (a payload to send, the
 * schedule to announce, the core's queue, the end); poll() turns those
 * into actions and frees a slot after its last one. So an input never
 * frees memory the caller may still be looking at, and the order of a
 * session's actions is fixed: SEND, SCHEDULED, the core's CONNECT/ABORT,
 * then ABORT for every attempt still in flight, then SUCCESS or FAILED.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nat/punch_sess.h"

enum sess_state {
	S_SIGNAL, /* requester: REQUEST sent, waiting for REPLY */
	S_RUN,	  /* the schedule runs (or has just ended in the core) */
	S_ENDED,  /* ended by signalling or stop: aborts, then FAILED */
};

struct sess {
	struct p2p_peerid peer;
	bool requester;
	enum sess_state state;
	uint64_t nonce;
	uint64_t msgid;	   /* our routed message, for route_failed */
	uint64_t t0;	   /* REQUEST sent / received */
	uint64_t deadline; /* S_SIGNAL: no REPLY by then */
	enum p2p_nat_type peer_nat;
	char context[P2P_PSESS_CONTEXT_MAX];
	bool core_on; /* core initialised (S_RUN, or S_ENDED after it) */
	struct p2p_punch core;
	/* Waiting for poll. */
	bool send_pending;
	struct p2p_punch_sig send;
	bool sched_pending;
	struct p2p_addr sched[P2P_PUNCH_CAND_MAX];
	size_t nsched;
	/* How it ended. */
	bool over; /* ended_at is set */
	uint64_t ended_at;
	enum p2p_punch_reason why;
	const char *extra; /* static text instead of the reason's */
	int err;
	bool quiet; /* stop: no SUCCESS / FAILED */
	size_t abort_next;
	/* Issue 9. */
	bool asked;	  /* made for a peer's REQUEST */
	uint64_t net;	  /* asked: p2p_addr_subnet of its source */
	unsigned dialled; /* CONNECTs handed out */
	bool live[P2P_PUNCH_CAND_MAX]; /* handed out, not yet over */
	/* A restart (restart()): the old schedule's attempts, closed
	 * (ABORT) before anything of the new one goes out. */
	bool abort_first[P2P_PUNCH_CAND_MAX];
	size_t nabort_first;
	/* Issue 8: the peer answered DIALABLE: DIAL it here (family 0:
	 * not so). */
	struct p2p_addr dial_to;
};

/* A token bucket as a theoretical arrival time (GCRA): a request at now
 * conforms while tat - now <= (burst - 1) x every; each one taken moves
 * tat on by every. One integer, no rounding. */
struct bucket {
	uint64_t tat;
};

/* A source with a bucket: an ID, or an IP (family, 16 bytes; family 0
 * for "no address known", one bucket for all such sources). */
struct source {
	bool used;
	uint8_t key[P2P_ID_LEN];
	struct bucket b;
};

struct nonce_seen {
	struct p2p_peerid src;
	uint64_t nonce;
	uint64_t until; /* 0: slot free */
};

_Static_assert(P2P_PSESS_NONCES >=
		   P2P_PSESS_REQ_BURST +
		       2 * P2P_PUNCH_SKEW_MS / P2P_PSESS_REQ_REFILL_MS,
	       "the nonce cache holds all the node-wide bucket admits");
_Static_assert(P2P_PSESS_PEER_SESSIONS < P2P_PSESS_MAX,
	       "some session slots stay for our own punches");

struct p2p_psess_table {
	struct p2p_peerid self;
	enum p2p_nat_type nat; /* ours, from the latest local facts */
	bool stopped;
	struct sess *s[P2P_PSESS_MAX];
	struct {
		struct p2p_peerid peer;
		struct p2p_punch_sig sig;
	} failq[P2P_PSESS_FAILQ];
	size_t nfail;
	/* Issue 9. */
	uint64_t now; /* of the latest input (poll has none) */
	struct source ids[P2P_PSESS_SOURCES], ips[P2P_PSESS_SOURCES];
	struct bucket requests, connects;
	struct nonce_seen nonces[P2P_PSESS_NONCES];
	struct p2p_psess_stats stats;
};

struct p2p_psess_table *p2p_psess_new(const struct p2p_peerid *self)
{
	struct p2p_psess_table *t = calloc(1, sizeof(*t));

	if (t)
		t->self = *self;
	return t;
}

void p2p_psess_free(struct p2p_psess_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		free(t->s[i]);
	free(t);
}

/* ---- limits (issue 9) ---- */

static bool bucket_take(struct bucket *b, uint64_t now, uint64_t every,
			unsigned burst)
{
	uint64_t tat = b->tat > now ? b->tat : now;

	if (tat - now > (uint64_t)(burst - 1) * every)
		return false;
	b->tat = tat + every;
	return true;
}

/* The bucket of key; a new source takes the slot whose bucket is the
 * fullest (lowest tat: one that has refilled is as good as new). */
static struct bucket *source(struct source *tab, const uint8_t *key,
			     size_t keylen)
{
	struct source *pick = &tab[0];

	for (size_t i = 0; i < P2P_PSESS_SOURCES; i++) {
		struct source *e = &tab[i];
		if (e->used && !memcmp(e->key, key, keylen))
			return &e->b;
		if (!e->used || (pick->used && e->b.tat < pick->b.tat))
			pick = e;
	}
	memset(pick, 0, sizeof(*pick));
	pick->used = true;
	memcpy(pick->key, key, keylen);
	return &pick->b;
}

static bool ip_take(struct p2p_psess_table *t, uint64_t now,
		    const struct p2p_addr *a)
{
	uint8_t key[P2P_ID_LEN] = {0};

	key[0] = a->family;
	if (a->family)
		memcpy(key + 1, a->ip, sizeof(a->ip));
	return bucket_take(source(t->ips, key, sizeof(key)), now,
			   P2P_PSESS_IP_REFILL_MS, P2P_PSESS_IP_BURST);
}

static bool replayed(const struct p2p_psess_table *t, uint64_t now,
		     const struct p2p_peerid *src, uint64_t nonce)
{
	for (size_t i = 0; i < P2P_PSESS_NONCES; i++) {
		const struct nonce_seen *e = &t->nonces[i];
		if (e->until > now && e->nonce == nonce &&
		    p2p_peerid_equal(&e->src, src))
			return true;
	}
	return false;
}

/* false: no room (cannot happen while the node-wide bucket holds). */
static bool remember(struct p2p_psess_table *t, uint64_t now,
		     const struct p2p_peerid *src, uint64_t nonce)
{
	for (size_t i = 0; i < P2P_PSESS_NONCES; i++) {
		struct nonce_seen *e = &t->nonces[i];
		if (e->until > now)
			continue;
		e->src = *src;
		e->nonce = nonce;
		e->until = now + 2 * P2P_PUNCH_SKEW_MS;
		return true;
	}
	return false;
}

static bool fresh(const struct p2p_punch_sig *sig,
		  const struct p2p_psess_local *me)
{
	uint64_t d = sig->time_ms > me->wall_ms ? sig->time_ms - me->wall_ms
						: me->wall_ms - sig->time_ms;

	return d <= P2P_PUNCH_SKEW_MS;
}

/* Inputs carry now; poll, which carries none, uses the latest. */
static void clock_at(struct p2p_psess_table *t, uint64_t now)
{
	if (now > t->now)
		t->now = now;
}

/* ---- sessions ---- */

static struct sess *find(const struct p2p_psess_table *t,
			 const struct p2p_peerid *peer)
{
	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		if (t->s[i] && p2p_peerid_equal(&t->s[i]->peer, peer))
			return t->s[i];
	return NULL;
}

/* Over: nothing but poll touches it any more. */
static bool ended(const struct sess *s)
{
	return s->state == S_ENDED || (s->core_on && s->core.done);
}

size_t p2p_psess_count(const struct p2p_psess_table *t)
{
	size_t c = 0;

	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		c += t->s[i] != NULL;
	return c;
}

bool p2p_psess_running(const struct p2p_psess_table *t,
		       const struct p2p_peerid *peer)
{
	const struct sess *s = find(t, peer);

	return s && !ended(s);
}

size_t p2p_psess_inflight(const struct p2p_psess_table *t)
{
	size_t c = 0;

	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		for (size_t j = 0; t->s[i] && j < P2P_PUNCH_CAND_MAX; j++)
			c += t->s[i]->live[j];
	return c;
}

const struct p2p_psess_stats *p2p_psess_stats(const struct p2p_psess_table *t)
{
	return &t->stats;
}

/* Sessions peers asked for: all of them, or those from net. */
static size_t asked_count(const struct p2p_psess_table *t, bool by_net,
			  uint64_t net)
{
	size_t c = 0;

	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		c += t->s[i] && t->s[i]->asked && !ended(t->s[i]) &&
		     (!by_net || t->s[i]->net == net);
	return c;
}

static struct sess *sess_new(struct p2p_psess_table *t,
			     const struct p2p_peerid *peer, uint64_t now)
{
	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		if (t->s[i])
			continue;
		t->s[i] = calloc(1, sizeof(*t->s[i]));
		if (!t->s[i])
			return NULL;
		t->s[i]->peer = *peer;
		t->s[i]->t0 = now;
		return t->s[i];
	}
	return NULL;
}

static void sess_free(struct p2p_psess_table *t, struct sess *s)
{
	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		if (t->s[i] == s)
			t->s[i] = NULL;
	free(s);
}

/* After every call into the core: remember when it finished. */
static void note(struct sess *s, uint64_t now)
{
	if (s->core_on && s->core.done && !s->over) {
		s->over = true;
		s->ended_at = now;
	}
}

/* End s by signalling (or a local cause); extra replaces the reason. */
static void end(struct sess *s, uint64_t now, enum p2p_punch_reason why,
		const char *extra, int err)
{
	s->state = S_ENDED;
	/* Nothing more goes out for it: a schedule set by the REPLY that
	 * could not be routed is not announced. */
	s->send_pending = false;
	s->sched_pending = false;
	s->why = why;
	s->extra = extra;
	s->err = err;
	s->over = true;
	s->ended_at = now;
}

static void set_context(struct sess *s, const char *context)
{
	snprintf(s->context, sizeof(s->context), "%s", context ? context : "");
}

/* A REQUEST or REPLY offering our candidates, into *o (zeroed first). */
static void offer(struct p2p_punch_sig *o, enum p2p_punch_type type,
		  uint64_t nonce, const struct p2p_psess_local *me)
{
	memset(o, 0, sizeof(*o));
	o->type = type;
	o->nonce = nonce;
	o->time_ms = me->wall_ms;
	if (me->seen.port != 0)
		o->seen = me->seen;
	o->nat = me->nat;
	o->ncand =
	    me->ncand > P2P_PUNCH_CAND_MAX ? P2P_PUNCH_CAND_MAX : me->ncand;
	if (o->ncand)
		memcpy(o->cand, me->cand, o->ncand * sizeof(o->cand[0]));
}

static void queue_send(struct sess *s, enum p2p_punch_type type,
		       const struct p2p_psess_local *me)
{
	offer(&s->send, type, s->nonce, me);
	/* A REQUEST says we are dialable: an endpoint-dependent replier then
	 * dials us outright instead of priming (schedule). A session's
	 * REPLY never does: we prime, the requester must not just dial. */
	if (me->dialable && type == P2P_PUNCH_REQUEST)
		s->send.flags = P2P_PUNCH_F_DIALABLE;
	s->send_pending = true;
}

/* ---- the schedule ---- */

static uint16_t port_for(const struct p2p_psess_local *me, uint8_t family)
{
	return family == 4 ? me->listen4 : family == 6 ? me->listen6 : 0;
}

/* A candidate of the peer that is our own listener: two LANs may use the
 * same private addresses, and we never punch to ourselves. */
static bool own(const struct p2p_psess_local *me, const struct p2p_addr *c)
{
	for (size_t j = 0; j < me->nlan; j++)
		if (!memcmp(me->lan[j].ip, c->ip, sizeof(c->ip)) &&
		    c->port == me->listen4)
			return true;
	return false;
}

static bool unusable(const struct p2p_addr *c);

/* What the source's candidates are checked against (see the header): a
 * link's far end when it is a usable public address, else what the
 * payload carries. */
static const struct p2p_addr *seen_for(const struct p2p_psess_local *me,
				       const struct p2p_punch_sig *sig)
{
	const struct p2p_addr *l = &me->src_link;

	if (l->family && !unusable(l) && !p2p_addr_is_private(l))
		return l;
	return &sig->seen;
}

/* The source's address for the per-IP bucket and the per-net cap: the
 * link's far end whatever it is, else what the payload carries. */
static const struct p2p_addr *key_for(const struct p2p_psess_local *me,
				      const struct p2p_punch_sig *sig)
{
	return me->src_link.family ? &me->src_link : &sig->seen;
}

/* The peer's candidates we would dial, into out. */
static size_t plausible_of(struct p2p_psess_table *t,
			   const struct p2p_punch_sig *sig,
			   const struct p2p_psess_local *me,
			   struct p2p_addr *out)
{
	size_t n =
	    sig->ncand > P2P_PUNCH_CAND_MAX ? P2P_PUNCH_CAND_MAX : sig->ncand;
	size_t k = p2p_psess_plausible(sig->cand, n, seen_for(me, sig), me->pub,
				       me->npub, out);

	t->stats.dropped += n - k;
	return k;
}

/* Everything sig offered is a LAN address (of another network, or the
 * filter would have kept it), or nothing: an endpoint-dependent peer
 * predicts no public candidate. We dial nothing and wait for its SYNs. */
static bool lan_only(const struct p2p_punch_sig *sig)
{
	for (size_t i = 0; i < sig->ncand && i < P2P_PUNCH_CAND_MAX; i++)
		if (unusable(&sig->cand[i]) ||
		    !p2p_addr_is_private(&sig->cand[i]))
			return false;
	return true;
}

/* Start the schedule towards the peer's (plausible) candidates now: the
 * replier primes, the requester sends (nat/punch.h, the timing comment). */
static void schedule(struct sess *s, uint64_t now, enum p2p_nat_type peer_nat,
		     bool peer_dialable, const struct p2p_addr *cand, size_t n,
		     bool primer, const struct p2p_psess_local *me)
{
	size_t nc = 0;

	for (size_t i = 0; i < n && i < P2P_PUNCH_CAND_MAX; i++) {
		/* Only what we can dial from a listen port. */
		if (port_for(me, cand[i].family) == 0 || own(me, &cand[i]))
			continue;
		s->sched[nc++] = cand[i];
	}
	s->nsched = nc;
	s->sched_pending = true;
	s->peer_nat = peer_nat;
	s->state = S_RUN;
	s->core_on = true;
	p2p_punch_init(&s->core, s->sched, nc, now, primer);
	if (me->prime_ttl > 0 && me->prime_ttl <= P2P_NAT_DEPTH_MAX)
		s->core.prime_ttl = me->prime_ttl;
	/*
	 * A public requester (no NAT: it listens at its candidates, or it
	 * says DIALABLE: a port mapping, a forwarded port) and our IPv4 NAT
	 * endpoint-dependent: its SYNs could never find our mapping, but
	 * ours reach its listener. So we dial it outright instead of
	 * priming: full TTL (the link comes up with us as the handshake's
	 * initiator; it is the requester's punch all the same).
	 */
	if (primer && (peer_nat == P2P_NAT_NONE || peer_dialable) &&
	    me->nat == P2P_NAT_ENDPOINT_DEPENDENT)
		s->core.prime_ttl = P2P_PUNCH_FULL_TTL;
	/* The first SYNs at once: a replier's primes go out before its
	 * REPLY (sess_poll), or on a fast path the requester's SYN could
	 * reach our NAT first and be reset. */
	p2p_punch_tick(&s->core, now);
}

/*
 * The peer answered DIALABLE: the session ends with DIAL at the first of
 * its candidates we can reach (its order: IPv6 first when it has one,
 * which we take only with a global IPv6 address of our own). false when
 * none is usable: then its candidates are punched as usual (it listens
 * there all the same).
 */
static bool dial_pick(struct sess *s, uint64_t now, const struct p2p_addr *c,
		      size_t n, const struct p2p_psess_local *me)
{
	for (size_t i = 0; i < n; i++) {
		if ((c[i].family == 6 && me->listen6 == 0) || own(me, &c[i]))
			continue;
		s->dial_to = c[i];
		s->state = S_ENDED;
		s->over = true;
		s->ended_at = now;
		return true;
	}
	return false;
}

/* ---- inputs ---- */

int p2p_psess_start(struct p2p_psess_table *t, uint64_t now,
		    const struct p2p_peerid *peer, const char *context,
		    uint64_t nonce, const struct p2p_psess_local *me)
{
	struct sess *s;

	if (t->stopped)
		return -ESHUTDOWN;
	t->nat = me->nat;
	clock_at(t, now);
	s = find(t, peer);
	if (s) {
		if (ended(s))
			return -EAGAIN;
		/* Already punching (the peer asked first): its end tells. */
		if (!s->context[0])
			set_context(s, context);
		s->requester = true;
		return 0;
	}
	if (me->listen4 == 0 && me->listen6 == 0)
		return -EADDRNOTAVAIL;
	if (p2p_psess_count(t) >= P2P_PSESS_MAX)
		return -EBUSY;
	s = sess_new(t, peer, now);
	if (!s)
		return -ENOMEM;
	s->requester = true;
	s->state = S_SIGNAL;
	s->nonce = nonce;
	s->deadline = now + P2P_PUNCH_SIGNAL_MS;
	set_context(s, context);
	queue_send(s, P2P_PUNCH_REQUEST, me);
	return 0;
}

/* A slot for an answer without a session, to to; NULL when the queue is
 * full (the answer is dropped: the requester then gives up after
 * P2P_PUNCH_SIGNAL_MS). */
static struct p2p_punch_sig *answer_slot(struct p2p_psess_table *t,
					 const struct p2p_peerid *to)
{
	if (t->nfail == P2P_PSESS_FAILQ)
		return NULL;
	t->failq[t->nfail].peer = *to;
	return &t->failq[t->nfail++].sig;
}

/* A refusal without a session. */
static void answer_fail(struct p2p_psess_table *t, const struct p2p_peerid *to,
			uint64_t nonce, const struct p2p_psess_local *me,
			enum p2p_punch_reason why)
{
	struct p2p_punch_sig *f = answer_slot(t, to);

	if (!f)
		return;
	memset(f, 0, sizeof(*f));
	f->type = P2P_PUNCH_FAIL;
	f->nonce = nonce;
	f->time_ms = me->wall_ms;
	f->nat = me->nat;
	f->reason = why;
}

/* Issue 8: we are a DHT server: "dial me", with what we would offer in a
 * REPLY, and no session (nothing primed, no slot, no CONNECT budget
 * spent). */
static void answer_dialable(struct p2p_psess_table *t,
			    const struct p2p_peerid *to, uint64_t nonce,
			    const struct p2p_psess_local *me)
{
	struct p2p_punch_sig *r = answer_slot(t, to);

	if (!r)
		return;
	offer(r, P2P_PUNCH_REPLY, nonce, me);
	r->flags = P2P_PUNCH_F_DIALABLE;
	t->stats.dialable++;
}

/* Fresh, not seen before, within the rate limits (issue 9). NONE: go on;
 * LIMITED: answer so; MAX: drop without an answer (stale or replayed). */
static enum p2p_punch_reason admit(struct p2p_psess_table *t, uint64_t now,
				   const struct p2p_peerid *src,
				   const struct p2p_punch_sig *sig,
				   const struct p2p_psess_local *me)
{
	if (!fresh(sig, me)) {
		t->stats.stale++;
		return P2P_PUNCH_R_MAX;
	}
	if (replayed(t, now, src, sig->nonce)) {
		t->stats.replayed++;
		return P2P_PUNCH_R_MAX;
	}
	if (!bucket_take(source(t->ids, src->b, P2P_ID_LEN), now,
			 P2P_PSESS_ID_REFILL_MS, P2P_PSESS_ID_BURST) ||
	    !ip_take(t, now, key_for(me, sig)) ||
	    !bucket_take(&t->requests, now, P2P_PSESS_REQ_REFILL_MS,
			 P2P_PSESS_REQ_BURST) ||
	    !remember(t, now, src, sig->nonce)) {
		t->stats.limited++;
		return P2P_PUNCH_R_LIMITED;
	}
	return P2P_PUNCH_R_NONE;
}

/* Why a new session for a REQUEST is refused (NONE: it is not). */
/* Issue 11: the NAT types describe IPv4 only. Global IPv6 addresses need
 * no prediction (no NAT66), so two endpoint-dependent IPv4 NATs still
 * leave a direct IPv6 path when the peer offered a plausible IPv6
 * candidate and we offer one of ours and listen on IPv6. */
static bool both_v6(const struct p2p_psess_local *me,
		    const struct p2p_addr *kept, size_t nkept)
{
	return me->listen6 != 0 && p2p_punch_has_v6(kept, nkept) &&
	       p2p_punch_has_v6(me->cand, me->ncand);
}

/* What the request itself makes impossible. */
static enum p2p_punch_reason refuse_request(struct p2p_psess_table *t,
					    const struct p2p_punch_sig *sig,
					    const struct p2p_psess_local *me,
					    const struct p2p_addr *kept,
					    size_t nkept)
{
	if (me->listen4 == 0 && me->listen6 == 0)
		return P2P_PUNCH_R_NOT_LISTENING;
	/* A DIALABLE requester is dialled outright (schedule). */
	if (!p2p_punch_predictable(sig->nat) &&
	    !(sig->flags & P2P_PUNCH_F_DIALABLE) &&
	    !p2p_punch_predictable(me->nat) && !both_v6(me, kept, nkept))
		return P2P_PUNCH_R_BOTH_DEPENDENT;
	if (nkept == 0 && !lan_only(sig)) {
		t->stats.implausible++;
		return P2P_PUNCH_R_IMPLAUSIBLE;
	}
	return P2P_PUNCH_R_NONE;
}

static enum p2p_punch_reason refuse(struct p2p_psess_table *t,
				    const struct p2p_punch_sig *sig,
				    const struct p2p_psess_local *me,
				    const struct p2p_addr *kept, size_t nkept,
				    uint64_t net)
{
	enum p2p_punch_reason why = refuse_request(t, sig, me, kept, nkept);

	if (why != P2P_PUNCH_R_NONE)
		return why;
	if (asked_count(t, true, net) >= P2P_PSESS_PER_NET) {
		t->stats.limited++;
		return P2P_PUNCH_R_LIMITED;
	}
	if (asked_count(t, false, 0) >= P2P_PSESS_PEER_SESSIONS ||
	    p2p_psess_count(t) >= P2P_PSESS_MAX) {
		t->stats.busy++;
		return P2P_PUNCH_R_BUSY;
	}
	return P2P_PUNCH_R_NONE;
}

/*
 * A fresh REQUEST from the peer of a punch we prime for: the peer has
 * started over (its own punch ended, or its link went before ours was
 * up: with the HELLO that travels with frame 2 the requester is up half
 * a round trip before us). Ignoring it would leave the peer waiting
 * P2P_PUNCH_SIGNAL_MS for an answer; the old schedule is dropped instead
 * (its attempts closed first) and the new request answered as if the
 * session were new.
 */
static void restart(struct sess *s, uint64_t now)
{
	for (size_t i = 0; i < s->core.n && i < P2P_PUNCH_CAND_MAX; i++) {
		if (s->core.c[i].state == P2P_PUNCH_C_WAIT && !s->live[i])
			continue;
		s->live[i] = false;
		if (!s->abort_first[i]) {
			s->abort_first[i] = true;
			s->nabort_first++;
		}
	}
	s->t0 = now;
	s->dialled = 0;
	s->over = false;
}

static void on_request(struct p2p_psess_table *t, uint64_t now,
		       const struct p2p_peerid *src,
		       const struct p2p_punch_sig *sig,
		       const struct p2p_psess_local *me)
{
	struct sess *s = find(t, src);
	const struct p2p_addr *key = key_for(me, sig);
	uint64_t net = key->family ? p2p_addr_subnet(key) : 0;
	struct p2p_addr kept[P2P_PUNCH_CAND_MAX];
	enum p2p_punch_reason why = admit(t, now, src, sig, me);
	size_t nkept;

	if (why == P2P_PUNCH_R_MAX)
		return;
	if (s && why == P2P_PUNCH_R_NONE && !ended(s) && s->state == S_RUN &&
	    s->core.primer && sig->nonce != s->nonce) {
		nkept = plausible_of(t, sig, me, kept);
		why = refuse_request(t, sig, me, kept, nkept);
		if (why != P2P_PUNCH_R_NONE) {
			answer_fail(t, src, sig->nonce, me, why);
			return;
		}
		restart(s, now);
		s->nonce = sig->nonce;
		s->net = net;
	} else if (s) {
		/* Both asked at once: the lower ID's request is answered. A
		 * request over the limits is ignored here: ours is out. */
		if (why != P2P_PUNCH_R_NONE || ended(s) ||
		    s->state != S_SIGNAL ||
		    memcmp(t->self.b, src->b, sizeof(src->b)) < 0)
			return;
		nkept = plausible_of(t, sig, me, kept);
		s->nonce = sig->nonce;
	} else if (me->dialable && me->ncand > 0 && why == P2P_PUNCH_R_NONE) {
		/* Nothing to predict or prime: the requester dials us. The
		 * rate limits above still apply (it costs a signature). */
		answer_dialable(t, src, sig->nonce, me);
		return;
	} else {
		nkept = plausible_of(t, sig, me, kept);
		if (why == P2P_PUNCH_R_NONE)
			why = refuse(t, sig, me, kept, nkept, net);
		if (why == P2P_PUNCH_R_NONE && !(s = sess_new(t, src, now)))
			why = P2P_PUNCH_R_BUSY;
		if (why != P2P_PUNCH_R_NONE) {
			answer_fail(t, src, sig->nonce, me, why);
			return;
		}
		s->asked = true;
		s->net = net;
		s->nonce = sig->nonce;
	}
	queue_send(s, P2P_PUNCH_REPLY, me);
	schedule(s, now, sig->nat, sig->flags & P2P_PUNCH_F_DIALABLE, kept,
		 nkept, true, me);
}

void p2p_psess_on_sig(struct p2p_psess_table *t, uint64_t now,
		      const struct p2p_peerid *src,
		      const struct p2p_punch_sig *sig,
		      const struct p2p_psess_local *me)
{
	struct sess *s;

	if (t->stopped)
		return;
	t->nat = me->nat;
	clock_at(t, now);
	if (sig->type == P2P_PUNCH_REQUEST) {
		on_request(t, now, src, sig, me);
		return;
	}
	s = find(t, src);
	if (!s || ended(s) || s->nonce != sig->nonce)
		return;
	if (sig->type == P2P_PUNCH_REPLY) {
		struct p2p_addr kept[P2P_PUNCH_CAND_MAX];
		size_t nkept;
		if (s->state != S_SIGNAL)
			return;
		nkept = plausible_of(t, sig, me, kept);
		if (!(sig->flags & P2P_PUNCH_F_DIALABLE) ||
		    !dial_pick(s, now, kept, nkept, me))
			schedule(s, now, sig->nat, false, kept, nkept, false,
				 me);
	} else if (sig->type == P2P_PUNCH_FAIL) {
		end(s, now, sig->reason, NULL, 0);
	}
}

void p2p_psess_sent(struct p2p_psess_table *t, uint64_t now,
		    const struct p2p_psess_action *a, int rc, uint64_t msgid)
{
	struct sess *s;

	clock_at(t, now);
	if (t->stopped || a->type != P2P_PSESS_SEND ||
	    (a->sig.type != P2P_PUNCH_REQUEST &&
	     a->sig.type != P2P_PUNCH_REPLY))
		return; /* a FAIL answers a request we hold no session for */
	s = find(t, &a->peer);
	if (!s || ended(s) || s->nonce != a->sig.nonce)
		return;
	s->msgid = msgid;
	if (rc >= 0)
		return;
	if (a->sig.type == P2P_PUNCH_REQUEST)
		end(s, now, P2P_PUNCH_R_NONE, "cannot route the request", rc);
	else
		end(s, now, P2P_PUNCH_R_NONE, "cannot route the reply", 0);
}

bool p2p_psess_route_failed(struct p2p_psess_table *t, uint64_t now,
			    uint64_t msgid)
{
	clock_at(t, now);
	if (t->stopped || msgid == 0)
		return false;
	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		struct sess *s = t->s[i];
		if (s && !ended(s) && s->msgid == msgid) {
			end(s, now, P2P_PUNCH_R_NONE,
			    "no route to the peer over the overlay", 0);
			return true;
		}
	}
	return false;
}

/* The session with peer whose schedule runs, if any. */
static struct sess *running(struct p2p_psess_table *t,
			    const struct p2p_peerid *peer)
{
	struct sess *s = t->stopped ? NULL : find(t, peer);

	return s && !ended(s) && s->state == S_RUN ? s : NULL;
}

void p2p_psess_attempt_connected(struct p2p_psess_table *t, uint64_t now,
				 const struct p2p_peerid *peer, size_t idx)
{
	struct sess *s = running(t, peer);

	clock_at(t, now);
	if (s)
		p2p_punch_connected(&s->core, now, idx);
}

void p2p_psess_attempt_failed(struct p2p_psess_table *t, uint64_t now,
			      const struct p2p_peerid *peer, size_t idx,
			      bool refused)
{
	struct sess *s = t->stopped ? NULL : find(t, peer);

	clock_at(t, now);
	if (s && idx < P2P_PUNCH_CAND_MAX)
		s->live[idx] = false; /* closed: no longer in flight */
	s = running(t, peer);
	if (s)
		p2p_punch_conn_failed(&s->core, now, idx, refused);
}

void p2p_psess_attempt_held(struct p2p_psess_table *t, uint64_t now,
			    const struct p2p_peerid *peer, size_t idx)
{
	struct sess *s = t->stopped ? NULL : find(t, peer);

	clock_at(t, now);
	if (s && idx < P2P_PUNCH_CAND_MAX)
		s->live[idx] = false; /* no socket: not in flight */
	s = running(t, peer);
	if (s)
		p2p_punch_held(&s->core, now, idx);
}

void p2p_psess_link_hello(struct p2p_psess_table *t, uint64_t now,
			  const struct p2p_peerid *peer, size_t idx)
{
	struct sess *s = t->stopped ? NULL : find(t, peer);

	clock_at(t, now);
	if (!s || ended(s))
		return;
	if (s->state == S_SIGNAL) {
		/* The peer reached us before its REPLY did: punched all the
		 * same, with an empty schedule. */
		p2p_punch_init(&s->core, NULL, 0, now, false);
		s->core_on = true;
		s->state = S_RUN;
		idx = P2P_PSESS_NONE;
	}
	p2p_punch_verified(&s->core, now, idx);
	note(s, now);
}

void p2p_psess_tick(struct p2p_psess_table *t, uint64_t now)
{
	clock_at(t, now);
	if (t->stopped)
		return;
	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		struct sess *s = t->s[i];
		if (!s || ended(s))
			continue;
		if (s->state == S_SIGNAL) {
			if (now >= s->deadline)
				end(s, now, P2P_PUNCH_R_NO_ANSWER, NULL, 0);
			continue;
		}
		p2p_punch_tick(&s->core, now);
		note(s, now);
	}
}

static bool pending(const struct sess *s)
{
	return s->nabort_first > 0 || s->send_pending || s->sched_pending ||
	       (s->core_on && s->core.qlen > 0) || s->state == S_ENDED ||
	       (s->core_on && s->core.done);
}

uint64_t p2p_psess_next_timer(const struct p2p_psess_table *t)
{
	uint64_t next = UINT64_MAX, d;

	if (t->nfail > 0)
		return 0;
	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		const struct sess *s = t->s[i];
		if (!s)
			continue;
		if (pending(s))
			return 0;
		d = s->state == S_SIGNAL ? s->deadline
					 : p2p_punch_next_timer(&s->core);
		if (d < next)
			next = d;
	}
	return next;
}

void p2p_psess_stop(struct p2p_psess_table *t)
{
	t->stopped = true;
	t->nfail = 0;
	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		struct sess *s = t->s[i];
		if (!s)
			continue;
		s->state = S_ENDED;
		s->quiet = true;
		s->send_pending = false;
		s->sched_pending = false;
	}
}

/* ---- actions ---- */

static void compose_failed(const struct p2p_psess_table *t,
			   const struct sess *s, enum p2p_punch_reason why,
			   const char *extra, struct p2p_psess_action *a)
{
	char types[160] = "", held[48] = "";
	const char *what = extra ? extra : p2p_punch_reason_text(why);
	double secs = (double)(s->ended_at - s->t0) / 1000.0;

	if (s->core.held > 0)
		snprintf(held, sizeof(held), ", %u blocked (address in use)",
			 s->core.held);
	if (why == P2P_PUNCH_R_TIMEOUT)
		snprintf(types, sizeof(types),
			 " (this side %s, the peer %s; %u attempts, %u reset, "
			 "%u unanswered%s)",
			 p2p_nat_type_name(t->nat),
			 p2p_nat_type_name(s->peer_nat), s->core.attempts,
			 s->core.refused, s->core.timeouts, held);
	snprintf(a->msg, sizeof(a->msg),
		 "no direct link: %s; hole punching failed after %.1f s: %s%s",
		 s->context[0] ? s->context : "the peer is not dialable", secs,
		 what, types);
	snprintf(a->log, sizeof(a->log), "failed after %.1f s: %s%s", secs,
		 what, types);
	a->type = P2P_PSESS_FAILED;
	a->reason = why;
	a->err = s->err;
}

/* A CONNECT within the budgets (issue 9)? Over budget, the schedule
 * takes it as a failed attempt and tries again after P2P_PUNCH_RETRY_MS. */
static bool connect_allowed(struct p2p_psess_table *t, struct sess *s,
			    size_t idx)
{
	if (p2p_psess_inflight(t) < P2P_PSESS_INFLIGHT_MAX &&
	    (!s->asked || s->dialled < P2P_PSESS_PEER_ATTEMPTS) &&
	    bucket_take(&t->connects, t->now, P2P_PSESS_CONNECT_EVERY_MS,
			P2P_PSESS_CONNECT_BURST)) {
		s->dialled++;
		s->live[idx] = true;
		t->stats.connects++;
		return true;
	}
	t->stats.deferred++;
	p2p_punch_conn_failed(&s->core, t->now, idx, false);
	return false;
}

/* One of the core's actions as ours. false: not for the caller. */
static bool from_core(struct p2p_psess_table *t, struct sess *s,
		      const struct p2p_punch_action *c,
		      struct p2p_psess_action *a)
{
	a->idx = c->idx;
	switch (c->type) {
	case P2P_PUNCH_CONNECT:
		/* An ended session starts nothing new (its aborts follow). */
		if (s->state == S_ENDED || c->idx >= P2P_PUNCH_CAND_MAX ||
		    !connect_allowed(t, s, c->idx))
			return false;
		a->type = P2P_PSESS_CONNECT;
		a->addr = c->addr;
		a->ttl = c->ttl;
		a->lead = !s->core.primer;
		return true;
	case P2P_PUNCH_ABORT:
		if (c->idx < P2P_PUNCH_CAND_MAX)
			s->live[c->idx] = false;
		a->type = P2P_PSESS_ABORT;
		return true;
	case P2P_PUNCH_SUCCESS:
		a->type = P2P_PSESS_SUCCESS;
		a->idx = c->idx < s->core.n ? c->idx : P2P_PSESS_NONE;
		if (a->idx != P2P_PSESS_NONE)
			s->live[a->idx] = false; /* a link now */
		return !s->quiet;
	case P2P_PUNCH_FAILED:
		compose_failed(t, s, c->reason, NULL, a);
		return !s->quiet;
	}
	return false;
}

/* The next action of s; s may be freed (then *freed). */
static bool poll_send(struct sess *s, struct p2p_psess_action *a)
{
	if (!s->send_pending)
		return false;
	s->send_pending = false;
	a->type = P2P_PSESS_SEND;
	a->sig = s->send;
	return true;
}

static bool sess_poll(struct p2p_psess_table *t, struct sess *s,
		      struct p2p_psess_action *a, bool *freed)
{
	struct p2p_punch_action c;
	bool quiet;

	memset(a, 0, sizeof(*a));
	a->peer = s->peer;
	a->requester = s->requester;
	a->ms = s->over ? s->ended_at - s->t0 : 0;
	a->attempts = s->core.attempts;
	*freed = false;
	/* A restart's old attempts go before the new ones. */
	for (size_t i = 0; s->nabort_first > 0 && i < P2P_PUNCH_CAND_MAX; i++) {
		if (!s->abort_first[i])
			continue;
		s->abort_first[i] = false;
		s->nabort_first--;
		a->type = P2P_PSESS_ABORT;
		a->idx = i;
		return true;
	}
	/* A replier primes before it answers (see schedule). */
	if (!(s->core_on && s->core.primer) && poll_send(s, a))
		return true;
	if (s->sched_pending) {
		s->sched_pending = false;
		a->type = P2P_PSESS_SCHEDULED;
		a->peer_nat = s->peer_nat;
		memcpy(a->cand, s->sched, sizeof(a->cand));
		a->ncand = s->nsched;
		a->primer = s->core.primer;
		return true;
	}
	while (s->core_on && p2p_punch_poll(&s->core, &c)) {
		bool last =
		    c.type == P2P_PUNCH_SUCCESS || c.type == P2P_PUNCH_FAILED;
		bool out = from_core(t, s, &c, a);
		if (last) {
			sess_free(t, s);
			*freed = true;
		}
		if (out)
			return true;
		if (last)
			return false;
	}
	if (poll_send(s, a))
		return true;
	if (s->state != S_ENDED)
		return false;
	/* Ended by signalling: every attempt in flight is closed first. */
	for (; s->core_on && s->abort_next < s->core.n; s->abort_next++) {
		size_t i = s->abort_next;
		if (s->core.c[i].state == P2P_PUNCH_C_WAIT)
			continue;
		s->core.c[i].state = P2P_PUNCH_C_WAIT;
		s->live[i] = false;
		a->type = P2P_PSESS_ABORT;
		a->idx = i;
		s->abort_next++;
		return true;
	}
	quiet = s->quiet;
	if (!quiet && s->dial_to.family) {
		a->type = P2P_PSESS_DIAL;
		a->addr = s->dial_to;
	} else if (!quiet) {
		compose_failed(t, s, s->why, s->extra, a);
	}
	sess_free(t, s);
	*freed = true;
	return !quiet;
}

bool p2p_psess_poll(struct p2p_psess_table *t, struct p2p_psess_action *a)
{
	bool freed;

	if (t->nfail > 0) {
		memset(a, 0, sizeof(*a));
		a->type = P2P_PSESS_SEND;
		a->peer = t->failq[0].peer;
		a->sig = t->failq[0].sig;
		memmove(&t->failq[0], &t->failq[1],
			--t->nfail * sizeof(t->failq[0]));
		return true;
	}
	for (size_t i = 0; i < P2P_PSESS_MAX; i++) {
		/* A session that ends without an action (stop) frees its
		 * slot: look at the next one. */
		while (t->s[i]) {
			if (sess_poll(t, t->s[i], a, &freed))
				return true;
			if (!freed)
				break;
		}
	}
	return false;
}

/* ---- issue 9: plausible candidates ---- */

static bool same_ip(const struct p2p_addr *a, const struct p2p_addr *b)
{
	return a->family == b->family && !memcmp(a->ip, b->ip, sizeof(a->ip));
}

/* Never a peer's endpoint: unspecified, loopback, multicast, broadcast,
 * reserved; for IPv6 all of ::/8 (unspecified, loopback, IPv4-mapped: a
 * real peer sends family 4, IPv4-compatible), multicast, and link-local
 * and site-local addresses, which mean nothing without the sender's
 * interface (a scope a candidate cannot carry). */
static bool unusable(const struct p2p_addr *c)
{
	if (c->port == 0)
		return true;
	if (c->family == 4)
		return c->ip[0] == 0 || c->ip[0] == 127 || c->ip[0] >= 224;
	if (c->family != 6)
		return true;
	return c->ip[0] == 0x00 || c->ip[0] == 0xff ||
	       (c->ip[0] == 0xfe && (c->ip[1] & 0x80) == 0x80); /* fe80::/9 */
}

size_t p2p_psess_plausible(const struct p2p_addr *cand, size_t n,
			   const struct p2p_addr *peer_seen,
			   const struct p2p_addr *ours, size_t nours,
			   struct p2p_addr *out)
{
	bool seen = peer_seen && peer_seen->family != 0, same_nat = false;
	const struct p2p_addr *v6first = NULL; /* issue 11: unseen IPv6 */
	size_t k = 0, nv6 = 0;

	for (size_t i = 0; seen && i < nours; i++)
		if (same_ip(&ours[i], peer_seen))
			same_nat = true;
	for (size_t i = 0; i < n; i++) {
		const struct p2p_addr *c = &cand[i];
		bool dup = false, unseen6;
		if (unusable(c))
			continue;
		if (p2p_addr_is_private(c)
			? !same_nat
			: seen && c->family == peer_seen->family &&
			      !same_ip(c, peer_seen))
			continue;
		unseen6 = c->family == 6 && !p2p_addr_is_private(c) &&
			  !(seen && peer_seen->family == 6);
		if (unseen6 && (nv6 == P2P_PSESS_V6_UNSEEN_MAX ||
				(v6first && memcmp(v6first->ip, c->ip, 8))))
			continue; /* another /64, or enough of this one */
		for (size_t j = 0; j < k; j++)
			dup = dup || p2p_addr_equal(&out[j], c);
		if (dup)
			continue;
		if (unseen6 && nv6++ == 0)
			v6first = c;
		out[k++] = *c;
	}
	return k;
}
