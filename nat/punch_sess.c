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
};

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

static void queue_send(struct sess *s, enum p2p_punch_type type,
		       const struct p2p_psess_local *me)
{
	memset(&s->send, 0, sizeof(s->send));
	s->send.type = type;
	s->send.nonce = s->nonce;
	s->send.nat = me->nat;
	s->send.ncand =
	    me->ncand > P2P_PUNCH_CAND_MAX ? P2P_PUNCH_CAND_MAX : me->ncand;
	if (s->send.ncand)
		memcpy(s->send.cand, me->cand,
		       s->send.ncand * sizeof(s->send.cand[0]));
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

/* Start the schedule towards the peer's candidates now: the replier
 * primes, the requester sends (nat/punch.h, the timing comment). */
static void schedule(struct sess *s, uint64_t now,
		     const struct p2p_punch_sig *sig, bool primer,
		     const struct p2p_psess_local *me)
{
	size_t nc = 0;

	for (size_t i = 0; i < sig->ncand && i < P2P_PUNCH_CAND_MAX; i++) {
		/* Only what we can dial from a listen port. */
		if (port_for(me, sig->cand[i].family) == 0 ||
		    own(me, &sig->cand[i]))
			continue;
		s->sched[nc++] = sig->cand[i];
	}
	s->nsched = nc;
	s->sched_pending = true;
	s->peer_nat = sig->nat;
	s->state = S_RUN;
	s->core_on = true;
	p2p_punch_init(&s->core, s->sched, nc, now, primer);
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
	if (me->listen4 == 0)
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

/* A refusal without a session; dropped when the queue is full (the
 * requester then gives up after P2P_PUNCH_SIGNAL_MS). */
static void answer_fail(struct p2p_psess_table *t, const struct p2p_peerid *to,
			uint64_t nonce, enum p2p_nat_type nat,
			enum p2p_punch_reason why)
{
	struct p2p_punch_sig *f;

	if (t->nfail == P2P_PSESS_FAILQ)
		return;
	t->failq[t->nfail].peer = *to;
	f = &t->failq[t->nfail++].sig;
	memset(f, 0, sizeof(*f));
	f->type = P2P_PUNCH_FAIL;
	f->nonce = nonce;
	f->nat = nat;
	f->reason = why;
}

static void on_request(struct p2p_psess_table *t, uint64_t now,
		       const struct p2p_peerid *src,
		       const struct p2p_punch_sig *sig,
		       const struct p2p_psess_local *me)
{
	struct sess *s = find(t, src);

	if (s) {
		/* Both asked at once: the lower ID's request is answered. */
		if (ended(s) || s->nonce == sig->nonce ||
		    s->state != S_SIGNAL ||
		    memcmp(t->self.b, src->b, sizeof(src->b)) < 0)
			return;
		s->nonce = sig->nonce;
	} else {
		enum p2p_punch_reason why = P2P_PUNCH_R_NONE;
		if (me->listen4 == 0)
			why = P2P_PUNCH_R_NOT_LISTENING;
		else if (!p2p_punch_predictable(sig->nat) &&
			 !p2p_punch_predictable(me->nat))
			why = P2P_PUNCH_R_BOTH_DEPENDENT;
		else if (p2p_psess_count(t) >= P2P_PSESS_MAX ||
			 !(s = sess_new(t, src, now)))
			why = P2P_PUNCH_R_BUSY;
		if (why != P2P_PUNCH_R_NONE) {
			answer_fail(t, src, sig->nonce, me->nat, why);
			return;
		}
		s->nonce = sig->nonce;
	}
	queue_send(s, P2P_PUNCH_REPLY, me);
	schedule(s, now, sig, true, me);
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
	if (sig->type == P2P_PUNCH_REQUEST) {
		on_request(t, now, src, sig, me);
		return;
	}
	s = find(t, src);
	if (!s || ended(s) || s->nonce != sig->nonce)
		return;
	if (sig->type == P2P_PUNCH_REPLY) {
		if (s->state == S_SIGNAL)
			schedule(s, now, sig, false, me);
	} else if (sig->type == P2P_PUNCH_FAIL) {
		end(s, now, sig->reason, NULL, 0);
	}
}

void p2p_psess_sent(struct p2p_psess_table *t, uint64_t now,
		    const struct p2p_psess_action *a, int rc, uint64_t msgid)
{
	struct sess *s;

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

	if (s)
		p2p_punch_connected(&s->core, now, idx);
}

void p2p_psess_attempt_failed(struct p2p_psess_table *t, uint64_t now,
			      const struct p2p_peerid *peer, size_t idx,
			      bool refused)
{
	struct sess *s = running(t, peer);

	if (s)
		p2p_punch_conn_failed(&s->core, now, idx, refused);
}

void p2p_psess_link_hello(struct p2p_psess_table *t, uint64_t now,
			  const struct p2p_peerid *peer, size_t idx)
{
	struct sess *s = t->stopped ? NULL : find(t, peer);

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
	return s->send_pending || s->sched_pending ||
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
	char types[128] = "";
	const char *what = extra ? extra : p2p_punch_reason_text(why);
	double secs = (double)(s->ended_at - s->t0) / 1000.0;

	if (why == P2P_PUNCH_R_TIMEOUT)
		snprintf(types, sizeof(types),
			 " (this side %s, the peer %s; %u attempts, %u reset, "
			 "%u unanswered)",
			 p2p_nat_type_name(t->nat),
			 p2p_nat_type_name(s->peer_nat), s->core.attempts,
			 s->core.refused, s->core.timeouts);
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

/* One of the core's actions as ours. false: not for the caller. */
static bool from_core(const struct p2p_psess_table *t, const struct sess *s,
		      const struct p2p_punch_action *c,
		      struct p2p_psess_action *a)
{
	a->idx = c->idx;
	switch (c->type) {
	case P2P_PUNCH_CONNECT:
		/* An ended session starts nothing new (its aborts follow). */
		if (s->state == S_ENDED)
			return false;
		a->type = P2P_PSESS_CONNECT;
		a->addr = c->addr;
		a->ttl = c->ttl;
		return true;
	case P2P_PUNCH_ABORT:
		a->type = P2P_PSESS_ABORT;
		return true;
	case P2P_PUNCH_SUCCESS:
		a->type = P2P_PSESS_SUCCESS;
		a->idx = c->idx < s->core.n ? c->idx : P2P_PSESS_NONE;
		return !s->quiet;
	case P2P_PUNCH_FAILED:
		compose_failed(t, s, c->reason, NULL, a);
		return !s->quiet;
	}
	return false;
}

/* The next action of s; s may be freed (then *freed). */
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
	if (s->send_pending) {
		s->send_pending = false;
		a->type = P2P_PSESS_SEND;
		a->sig = s->send;
		return true;
	}
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
	if (s->state != S_ENDED)
		return false;
	/* Ended by signalling: every attempt in flight is closed first. */
	for (; s->core_on && s->abort_next < s->core.n; s->abort_next++) {
		size_t i = s->abort_next;
		if (s->core.c[i].state == P2P_PUNCH_C_WAIT)
			continue;
		s->core.c[i].state = P2P_PUNCH_C_WAIT;
		a->type = P2P_PSESS_ABORT;
		a->idx = i;
		s->abort_next++;
		return true;
	}
	quiet = s->quiet;
	if (!quiet)
		compose_failed(t, s, s->why, s->extra, a);
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
 * reserved, IPv4-mapped IPv6 (a real peer sends family 4). */
static bool unusable(const struct p2p_addr *c)
{
	static const uint8_t zero[16], mapped[12] = {[10] = 0xff, [11] = 0xff};
	static const uint8_t one[16] = {[15] = 1};

	if (c->port == 0)
		return true;
	if (c->family == 4)
		return c->ip[0] == 0 || c->ip[0] == 127 || c->ip[0] >= 224;
	if (c->family != 6)
		return true;
	return !memcmp(c->ip, zero, 16) || !memcmp(c->ip, one, 16) ||
	       c->ip[0] == 0xff || !memcmp(c->ip, mapped, 12);
}

size_t p2p_psess_plausible(const struct p2p_addr *cand, size_t n,
			   const struct p2p_addr *peer_seen,
			   const struct p2p_addr *ours, size_t nours,
			   struct p2p_addr *out)
{
	bool seen = peer_seen && peer_seen->family != 0, same_nat = false;
	size_t k = 0;

	for (size_t i = 0; seen && i < nours; i++)
		if (same_ip(&ours[i], peer_seen))
			same_nat = true;
	for (size_t i = 0; i < n; i++) {
		const struct p2p_addr *c = &cand[i];
		bool dup = false;
		if (unusable(c))
			continue;
		if (p2p_addr_is_private(c)
			? !same_nat
			: seen && c->family == peer_seen->family &&
			      !same_ip(c, peer_seen))
			continue;
		for (size_t j = 0; j < k; j++)
			dup = dup || p2p_addr_equal(&out[j], c);
		if (!dup)
			out[k++] = *c;
	}
	return k;
}
