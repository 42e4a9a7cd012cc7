/*
 * Reaching a peer (reach.h): one attempt per peer, a small state machine
 * over explicit states, deadlines kept as absolute times.
 *
 *   LOOKUP --addr--> DIAL --gone--> PUNCH --failed--> RELAY --gone--> RELAY
 *      \--no addr-----------------/                     (next, up to 8)
 *
 * Relays (relay_near): the lookup's nearest servers to the peer, in
 * order, each asked over our link to it or dialled first (RELAY_DIAL),
 * then the nodes we hold links to; a->near keeps the former.
 *
 * A relayed link that answers while the punch runs leaves an upgrade
 * behind (struct upgrade): the punch's failure asks for another one
 * later, a bounded number of times (reach.h, P2P_REACH_UPGRADE_TRIES).
 *
 * A link to the peer coming up ends the attempt in any state. Requests
 * (LOOKUP, DIAL, PUNCH, RELAYS, RELAY) are bits in a->req until polled,
 * then in a->wait until answered; completions wait in each waiter, queued
 * on r->ready until polled. Nothing here calls out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reach.h"
#include "proto/error.h"

enum state {
	S_LOOKUP, /* the overlay looks the peer up */
	S_DIAL,	  /* its address is dialled, waiting for the HELLO */
	S_PUNCH,  /* hole punching, waiting for the HELLO */
	S_RELAY,  /* a relay is asked, waiting for the relayed HELLO */
};

#define REQ(t) (1u << (t)) /* t: a request's action type */

struct waiter {
	struct waiter *next;
	uint64_t token;
	struct attempt *at; /* NULL once the result is in */
	struct p2p_peerid peer;
	struct p2p_reach_link link;
	enum p2p_reach_method method;
	bool dialled;
	const char *code;
	char msg[P2P_REACH_TEXT_MAX];
};

struct attempt {
	struct attempt *next;
	struct p2p_peerid peer;
	enum state state;
	unsigned req;  /* requests to poll */
	unsigned wait; /* requests polled, not yet answered */
	uint64_t deadline;
	uint64_t lookup_id;
	uint32_t link; /* DIAL: the dial; PUNCH, RELAY: the relay asked */
	struct p2p_addr addr;
	struct p2p_peerid via;
	bool relaying;	   /* relays are being asked (or all were) */
	uint64_t grace_at; /* PUNCH: a relayed link waits till then */
	/* punch_early: what the punch's signalling said before S_PUNCH */
	bool early_unlikely;
	bool unlikely;	 /* the punch can hardly work: no upgrade retry */
	bool no_upgrade; /* the peer said "dial me" and was not dialled */
	uint64_t early_grace_at;    /* 0: nothing */
	struct p2p_reach_link held; /* the relayed link waiting (id 0 none) */
	char context[P2P_REACH_WHY_MAX]; /* why we punch */
	char why[P2P_REACH_WHY_MAX];	 /* why we relay */
	unsigned ntried;
	struct p2p_peerid tried[P2P_REACH_RELAY_TRIES];
	/* relay_near: the servers nearest the peer, from its lookup */
	struct p2p_contact near[P2P_REACH_NEAR_MAX];
	unsigned nnear;
	bool looked;	  /* a lookup of the peer has answered */
	bool near_lookup; /* a lookup runs only to find near servers */
	uint32_t rdial;	  /* RELAY_DIAL: the dial of a relay candidate */
	struct p2p_addr via_addr; /* RELAY_DIAL: where via is dialled */
	struct waiter *wh, *wt;	  /* waiters, first come first */
};

/* A relayed pair whose punch may still make it direct (reach.h). */
struct upgrade {
	struct upgrade *next;
	struct p2p_peerid peer;
	uint32_t relay; /* the relayed link that answered */
	unsigned tries; /* punches asked again so far */
	uint64_t at;	/* the next punch is asked then (0: none due) */
	uint64_t until; /* a punch's verdict is awaited till then (0: none) */
	bool req, wait; /* PUNCH to poll; polled, not yet answered */
};

struct p2p_reach {
	struct p2p_reach_config cfg;
	struct attempt *attempts;
	struct upgrade *upgrades;
	size_t nupgrades;
	struct p2p_reach_stats stats;
	struct waiter *rh, *rt; /* results ready, oldest first */
	size_t nattempts, nwaiters;
	bool stopping;
};

struct p2p_reach *p2p_reach_new(const struct p2p_reach_config *cfg)
{
	struct p2p_reach *r = calloc(1, sizeof(*r));

	if (r)
		r->cfg = *cfg;
	return r;
}

static void upgrades_free(struct p2p_reach *r)
{
	struct upgrade *u;

	while ((u = r->upgrades) != NULL) {
		r->upgrades = u->next;
		free(u);
	}
	r->nupgrades = 0;
}

void p2p_reach_free(struct p2p_reach *r)
{
	struct attempt *a;
	struct waiter *w;

	if (!r)
		return;
	upgrades_free(r);
	while ((a = r->attempts) != NULL) {
		r->attempts = a->next;
		while ((w = a->wh) != NULL) {
			a->wh = w->next;
			free(w);
		}
		free(a);
	}
	while ((w = r->rh) != NULL) {
		r->rh = w->next;
		free(w);
	}
	free(r);
}

/* ---- bookkeeping ---- */

/* src into dst[cap], cut short if need be (as the daemon always did). */
static void copy(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	for (; src && n + 1 < cap && src[n]; n++)
		dst[n] = src[n];
	dst[n] = '\0';
}

static struct attempt *find(struct p2p_reach *r, const struct p2p_peerid *peer)
{
	for (struct attempt *a = r->attempts; a; a = a->next)
		if (p2p_peerid_equal(&a->peer, peer))
			return a;
	return NULL;
}

static void forget(struct p2p_reach *r, struct attempt *a)
{
	for (struct attempt **pp = &r->attempts; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	r->nattempts--;
	free(a);
}

static void ready(struct p2p_reach *r, struct waiter *w)
{
	w->at = NULL;
	w->next = NULL;
	if (r->rt)
		r->rt->next = w;
	else
		r->rh = w;
	r->rt = w;
}

static enum p2p_reach_method method_of(const struct p2p_reach_link *l,
				       bool dialled)
{
	if (!dialled)
		return P2P_REACH_M_EXISTING;
	switch (l->kind) {
	case P2P_REACH_K_RELAYED:
		return P2P_REACH_M_RELAY;
	case P2P_REACH_K_PUNCHED:
		return P2P_REACH_M_PUNCH;
	default:
		return P2P_REACH_M_DIAL;
	}
}

/* The result for one waiter: l (code NULL), or code and msg. */
static void result(struct waiter *w, const struct p2p_reach_link *l,
		   bool dialled, const char *code, const char *msg)
{
	w->dialled = dialled;
	w->code = code;
	if (l) {
		w->link = *l;
		w->method = method_of(l, dialled);
	}
	copy(w->msg, sizeof(w->msg), msg);
}

/* Tell every waiter (through poll), then forget a. */
static void finish(struct p2p_reach *r, struct attempt *a,
		   const struct p2p_reach_link *l, const char *code,
		   const char *msg)
{
	struct waiter *w;

	while ((w = a->wh) != NULL) {
		a->wh = w->next;
		result(w, l, true, code, msg);
		ready(r, w);
	}
	forget(r, a);
}

static void want(struct attempt *a, enum p2p_reach_action_type t)
{
	a->req |= REQ(t);
}

/* ---- upgrades ---- */

static struct upgrade *upg_find(struct p2p_reach *r,
				const struct p2p_peerid *peer)
{
	for (struct upgrade *u = r->upgrades; u; u = u->next)
		if (p2p_peerid_equal(&u->peer, peer))
			return u;
	return NULL;
}

static void upg_forget(struct p2p_reach *r, struct upgrade *u)
{
	for (struct upgrade **pp = &r->upgrades; *pp; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			r->nupgrades--;
			free(u);
			return;
		}
	}
}

/* A fresh punch may get past this failure: the path lost something, or
 * the peer was busy. Its refusals would only be said again. */
static bool retryable(enum p2p_punch_reason why)
{
	switch (why) {
	case P2P_PUNCH_R_NONE:
	case P2P_PUNCH_R_TIMEOUT:
	case P2P_PUNCH_R_NO_ANSWER:
	case P2P_PUNCH_R_BUSY:
		return true;
	default:
		return false;
	}
}

/* The relayed link l answers a's waiters while a's punch runs: watch
 * for its verdict (nothing when the punch can hardly work). */
static struct upgrade *upg_watch(struct p2p_reach *r, struct attempt *a,
				 const struct p2p_reach_link *l, uint64_t now)
{
	struct upgrade *u;

	if (l->kind != P2P_REACH_K_RELAYED || a->state != S_PUNCH ||
	    a->unlikely || a->no_upgrade)
		return NULL;
	u = upg_find(r, &a->peer);
	if (!u) {
		if (r->nupgrades >= P2P_REACH_UPGRADES_MAX ||
		    !(u = calloc(1, sizeof(*u))))
			return NULL; /* it stays relayed, as it did before */
		u->peer = a->peer;
		u->next = r->upgrades;
		r->upgrades = u;
		r->nupgrades++;
	}
	u->relay = l->id;
	u->at = 0;
	u->until = now + P2P_REACH_PUNCH_MS;
	return u;
}

/* The punch u watched failed (why): once more after the backoff, or
 * never. */
static void upg_failed(struct p2p_reach *r, struct upgrade *u, uint64_t now,
		       enum p2p_punch_reason why)
{
	if (!retryable(why) || u->tries >= P2P_REACH_UPGRADE_TRIES) {
		upg_forget(r, u);
		return;
	}
	u->until = 0;
	u->at = now + ((uint64_t)P2P_REACH_UPGRADE_BACKOFF_MS << u->tries);
}

/* Time for u's next punch, or to stop waiting for a verdict. */
static void upg_expire(struct p2p_reach *r, uint64_t now)
{
	struct upgrade *u, *next;

	for (u = r->upgrades; u; u = next) {
		next = u->next;
		if (u->until && now >= u->until) {
			upg_forget(r, u); /* no verdict came: nothing to do */
		} else if (u->at && now >= u->at) {
			/* Someone asked for the peer meanwhile: that attempt
			 * punches, whatever it finds. */
			if (find(r, &u->peer)) {
				upg_forget(r, u);
				continue;
			}
			u->at = 0;
			u->until = now + P2P_REACH_PUNCH_MS; /* bounded wait */
			u->tries++;
			u->req = true;
			r->stats.upgrade_retries++;
		}
	}
}

/* An answer of type t for peer is expected: the attempt, else NULL. */
static struct attempt *answering(struct p2p_reach *r,
				 const struct p2p_peerid *peer,
				 enum p2p_reach_action_type t, int *rc)
{
	struct attempt *a = find(r, peer);

	if (!a) {
		*rc = -ENOENT;
		return NULL;
	}
	if (!(a->wait & REQ(t))) {
		*rc = -EINVAL;
		return NULL;
	}
	a->wait &= ~REQ(t);
	*rc = 0;
	return a;
}

/* ---- relaying ---- */

static bool tried(const struct attempt *a, const struct p2p_peerid *id)
{
	for (unsigned i = 0; i < a->ntried; i++)
		if (p2p_peerid_equal(&a->tried[i], id))
			return true;
	return false;
}

/* Every relay was asked, in vain. While a punch still runs (relay_with_
 * punch), its failure decides; else the peer is unreachable. */
static void relays_exhausted(struct p2p_reach *r, struct attempt *a)
{
	char msg[P2P_REACH_TEXT_MAX];

	if (a->state == S_PUNCH)
		return;
	snprintf(msg, sizeof(msg), "%s; no relay reached the peer (%u asked)",
		 a->why, a->ntried);
	finish(r, a, NULL, "peer_unreachable", msg);
}

/* Ask the next relay: first, which nodes could. With relay_near and no
 * lookup of the peer yet (its address was in the table), one is run: its
 * nearest servers are the ones the peer links to. */
static void relay_next(struct p2p_reach *r, struct attempt *a)
{
	a->link = 0;
	a->rdial = 0;
	if (a->ntried >= P2P_REACH_RELAY_TRIES) {
		relays_exhausted(r, a);
	} else if (r->cfg.relay_near && !a->looked && a->state != S_LOOKUP) {
		a->looked = true; /* once, whatever it answers */
		a->near_lookup = true;
		want(a, P2P_REACH_LOOKUP);
	} else {
		want(a, P2P_REACH_RELAYS);
	}
}

/* A relay asked, its answer, or its link, is still to come. */
static bool relay_busy(const struct attempt *a)
{
	return ((a->req | a->wait) &
		(REQ(P2P_REACH_RELAYS) | REQ(P2P_REACH_RELAY) |
		 REQ(P2P_REACH_RELAY_DIAL))) ||
	       a->link != 0 || a->rdial != 0 || a->near_lookup;
}

/* The lookup's servers nearest the peer (nearest first), kept for
 * choosing relays; neither us nor the peer, and only with an address. */
static void keep_near(struct p2p_reach *r, struct attempt *a,
		      const struct p2p_contact *c, size_t n)
{
	a->looked = true;
	a->nnear = 0;
	for (size_t i = 0; i < n && a->nnear < P2P_REACH_NEAR_MAX; i++)
		if (c[i].addr.family != 0 &&
		    !p2p_peerid_equal(&c[i].id, &a->peer) &&
		    !p2p_peerid_equal(&c[i].id, &r->cfg.self))
			a->near[a->nnear++] = c[i];
}

/* No direct link, why says why: relay (a new deadline for it). */
static void relay(struct p2p_reach *r, struct attempt *a, uint64_t now,
		  const char *why)
{
	copy(a->why, sizeof(a->why), why);
	a->deadline = now + P2P_REACH_TIMEOUT_MS;
	a->state = S_RELAY;
	if (!a->relaying) {
		a->relaying = true;
		relay_next(r, a);
	} else if (!relay_busy(a)) {
		relays_exhausted(r, a); /* asked while punching, all failed */
	}
}

/* ---- punching, dialling ---- */

/* Not dialable: punch a hole; context says why we punch. */
static void punch(struct p2p_reach *r, struct attempt *a, uint64_t now,
		  const char *context)
{
	copy(a->context, sizeof(a->context), context);
	a->link = 0;
	a->state = S_PUNCH;
	a->deadline = now + P2P_REACH_PUNCH_MS;
	a->grace_at = now + r->cfg.punch_grace_ms;
	a->unlikely = a->early_unlikely;
	if (a->early_unlikely)
		a->grace_at = now;
	else if (a->early_grace_at && a->early_grace_at < a->grace_at)
		a->grace_at = a->early_grace_at > now ? a->early_grace_at : now;
	want(a, P2P_REACH_PUNCH);
	if (r->cfg.relay_with_punch && !a->relaying) {
		a->relaying = true;
		relay_next(r, a);
	}
}

static void dial(struct attempt *a, const struct p2p_addr *addr)
{
	a->addr = *addr;
	a->state = S_DIAL;
	want(a, P2P_REACH_DIAL);
}

/* ---- inputs ---- */

static struct waiter *find_waiter(struct p2p_reach *r, uint64_t token,
				  struct waiter ***slot, struct waiter **prev)
{
	struct waiter **pp;

	*prev = NULL;
	for (pp = &r->rh; *pp; *prev = *pp, pp = &(*pp)->next) {
		if ((*pp)->token == token) {
			*slot = pp;
			return *pp;
		}
	}
	for (struct attempt *a = r->attempts; a; a = a->next) {
		*prev = NULL;
		for (pp = &a->wh; *pp; *prev = *pp, pp = &(*pp)->next) {
			if ((*pp)->token == token) {
				*slot = pp;
				return *pp;
			}
		}
	}
	return NULL;
}

static int new_attempt(struct p2p_reach *r, uint64_t now,
		       const struct p2p_peerid *peer,
		       const struct p2p_addr *addr, struct attempt **out)
{
	struct attempt *a;

	if (r->nattempts >= P2P_REACH_ATTEMPTS_MAX)
		return -EBUSY;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->peer = *peer;
	a->deadline = now + P2P_REACH_TIMEOUT_MS;
	if (addr && addr->family != 0) {
		dial(a, addr);
	} else {
		a->state = S_LOOKUP;
		want(a, P2P_REACH_LOOKUP);
		if (r->cfg.punch_early)
			want(a, P2P_REACH_PUNCH); /* context "": see punch() */
	}
	a->next = r->attempts;
	r->attempts = a;
	r->nattempts++;
	*out = a;
	return 0;
}

int p2p_reach_get(struct p2p_reach *r, uint64_t now,
		  const struct p2p_peerid *peer, uint64_t token,
		  const struct p2p_reach_link *up, const struct p2p_addr *addr)
{
	struct waiter *w, **slot, *prev;
	struct attempt *a = NULL;
	int rc;

	if (r->nwaiters >= P2P_REACH_WAITERS_MAX)
		return -EBUSY;
	if (find_waiter(r, token, &slot, &prev))
		return -EEXIST;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->token = token;
	w->peer = *peer;
	if (up) {
		result(w, up, false, NULL, NULL);
	} else if (r->stopping) {
		result(w, NULL, false, "internal", "daemon shutting down");
	} else if (p2p_peerid_equal(peer, &r->cfg.self)) {
		result(w, NULL, false, "peer_unreachable",
		       "that is this daemon's own peer ID");
	} else {
		a = find(r, peer);
		if (!a && (rc = new_attempt(r, now, peer, addr, &a)) < 0) {
			free(w);
			return rc;
		}
	}
	r->nwaiters++;
	if (!a) {
		ready(r, w);
		return 0;
	}
	w->at = a;
	if (a->wt)
		a->wt->next = w;
	else
		a->wh = w;
	a->wt = w;
	return 0;
}

int p2p_reach_cancel(struct p2p_reach *r, uint64_t token)
{
	struct waiter *w, **slot, *prev;
	struct attempt *a;

	w = find_waiter(r, token, &slot, &prev);
	if (!w)
		return -ENOENT;
	*slot = w->next;
	a = w->at;
	if (!a) {
		if (r->rt == w)
			r->rt = prev;
	} else if (a->wt == w) {
		a->wt = prev;
	}
	free(w);
	r->nwaiters--;
	/* Nobody waits: forgotten; what runs for it goes on unobserved. */
	if (a && !a->wh)
		forget(r, a);
	return 0;
}

int p2p_reach_lookup_started(struct p2p_reach *r, uint64_t now,
			     const struct p2p_peerid *peer, int rc,
			     uint64_t lookup_id)
{
	int err;
	struct attempt *a = answering(r, peer, P2P_REACH_LOOKUP, &err);

	if (!a)
		return err;
	if (rc < 0 && a->near_lookup) {
		a->near_lookup = false; /* then our own links only */
		want(a, P2P_REACH_RELAYS);
		return 0;
	}
	if (rc < 0) {
		finish(r, a, NULL, rc == -EBUSY ? "busy" : "internal",
		       "lookup failed to start");
		return 0;
	}
	a->lookup_id = lookup_id;
	return 0;
}

int p2p_reach_lookup_done(struct p2p_reach *r, uint64_t now, uint64_t lookup_id,
			  bool found, const struct p2p_contact *contacts,
			  size_t ncontacts, const struct p2p_reach_link *up)
{
	struct attempt *a;
	char msg[P2P_REACH_TEXT_MAX];

	for (a = r->attempts; a; a = a->next)
		if ((a->state == S_LOOKUP || a->near_lookup) &&
		    !(a->wait & REQ(P2P_REACH_LOOKUP)) &&
		    !(a->req & REQ(P2P_REACH_LOOKUP)) &&
		    a->lookup_id == lookup_id)
			break;
	if (!a)
		return -ENOENT;
	/* A link may have come up meanwhile (the peer dialled us). */
	if (up) {
		finish(r, a, up, NULL, NULL);
		return 0;
	}
	keep_near(r, a, contacts, ncontacts);
	if (a->near_lookup) {
		a->near_lookup = false;
		want(a, P2P_REACH_RELAYS);
		return 0;
	}
	for (size_t i = 0; i < ncontacts; i++) {
		if (p2p_peerid_equal(&contacts[i].id, &a->peer) &&
		    contacts[i].addr.family != 0) {
			dial(a, &contacts[i].addr);
			return 0;
		}
	}
	snprintf(msg, sizeof(msg), "the peer is %s",
		 found ? "not dialable (no address it can be dialled at)"
		       : "not found as a dialable node in the overlay");
	punch(r, a, now, msg);
	return 0;
}

int p2p_reach_dial_started(struct p2p_reach *r, uint64_t now,
			   const struct p2p_peerid *peer, int rc,
			   uint32_t link_id, const char *errtext)
{
	char at[P2P_ADDR_TEXT_MAX], msg[P2P_REACH_TEXT_MAX];
	int err;
	struct attempt *a = answering(r, peer, P2P_REACH_DIAL, &err);

	if (!a)
		return err;
	if (rc < 0 || link_id == 0) {
		p2p_addr_format(&a->addr, at, sizeof(at));
		snprintf(msg, sizeof(msg), "no direct link: dial %s: %s", at,
			 errtext ? errtext : p2p_strerror(rc < 0 ? rc : -EIO));
		finish(r, a, NULL, "peer_unreachable", msg);
		return 0;
	}
	a->link = link_id;
	return 0;
}

int p2p_reach_punch_started(struct p2p_reach *r, uint64_t now,
			    const struct p2p_peerid *peer, int rc,
			    const char *errtext)
{
	char msg[P2P_REACH_TEXT_MAX];
	int err;
	struct upgrade *u = upg_find(r, peer);
	struct attempt *a = answering(r, peer, P2P_REACH_PUNCH, &err);

	if (!a && u && u->wait) {
		u->wait = false;
		if (rc < 0)
			upg_forget(r, u); /* cannot punch now: stays relayed */
		else
			u->until = now + P2P_REACH_PUNCH_MS;
		return 0;
	}
	if (!a)
		return err;
	if (rc >= 0 || a->state != S_PUNCH)
		return 0;
	snprintf(msg, sizeof(msg),
		 "no direct link: %s, and hole punching could not start: %s",
		 a->context,
		 rc == -EADDRNOTAVAIL
		     ? "this daemon does not listen (no port to punch from)"
		 : errtext ? errtext
			   : p2p_strerror(rc));
	relay(r, a, now, msg);
	return 0;
}

int p2p_reach_punch_failed(struct p2p_reach *r, uint64_t now,
			   const struct p2p_peerid *peer,
			   enum p2p_punch_reason why, const char *msg)
{
	struct attempt *a = find(r, peer);
	struct upgrade *u;

	if (!a || a->state != S_PUNCH) {
		/* The punch of a relayed pair (reach.h: upgrades). */
		u = upg_find(r, peer);
		if (!u || !u->until)
			return -ENOENT;
		upg_failed(r, u, now, why);
		return 0;
	}
	if (a->held.id) {
		/* The relay asked alongside is up already: it is the answer,
		 * and a punch that failed may be asked again. */
		u = upg_watch(r, a, &a->held, now);
		if (u)
			upg_failed(r, u, now, why);
		finish(r, a, &a->held, NULL, NULL);
		return 0;
	}
	relay(r, a, now, msg);
	return 0;
}

int p2p_reach_punch_unlikely(struct p2p_reach *r, uint64_t now,
			     const struct p2p_peerid *peer)
{
	struct attempt *a = find(r, peer);
	struct upgrade *u = a ? NULL : upg_find(r, peer);

	if (a && a->state == S_LOOKUP && r->cfg.punch_early) {
		a->early_unlikely = true; /* for punch() */
		return 0;
	}
	if (u) {
		upg_forget(r, u); /* an upgrade's punch: not worth another */
		return 0;
	}
	if (!a || a->state != S_PUNCH)
		return -ENOENT;
	a->unlikely = true;
	a->grace_at = now;
	if (a->held.id)
		finish(r, a, &a->held, NULL, NULL);
	return 0;
}

int p2p_reach_dial_hint(struct p2p_reach *r, uint64_t now,
			const struct p2p_peerid *peer,
			const struct p2p_addr *addr)
{
	struct attempt *a = find(r, peer);
	struct upgrade *u = a ? NULL : upg_find(r, peer);

	(void)now;
	if (u)
		upg_forget(r, u); /* a server: no punch to ask again */
	if (!a)
		return -ENOENT;
	if (a->state == S_DIAL)
		return 0; /* the lookup found it first: that dial goes on */
	if (a->state != S_LOOKUP || a->near_lookup || addr->family == 0) {
		a->no_upgrade = true;
		return -EALREADY;
	}
	dial(a, addr); /* the lookup's answer will find nothing to do */
	return 0;
}

int p2p_reach_punch_expect(struct p2p_reach *r, uint64_t now,
			   const struct p2p_peerid *peer, int64_t sig_rtt_ms)
{
	struct attempt *a = find(r, peer);
	uint64_t at;

	if (!a || (a->state != S_PUNCH &&
		   !(a->state == S_LOOKUP && r->cfg.punch_early)))
		return -ENOENT;
	if (sig_rtt_ms < 0)
		return 0; /* nothing learned: the fixed grace stands */
	at = now + (uint64_t)sig_rtt_ms * P2P_REACH_GRACE_RTTS +
	     P2P_REACH_GRACE_SLACK_MS;
	if (a->state == S_LOOKUP) {
		a->early_grace_at = at; /* for punch() */
		return 0;
	}
	if (at < a->grace_at)
		a->grace_at = at; /* a held relay answers then (expire) */
	return 0;
}

/* a nearer t than b (XOR metric)? */
static bool nearer(const struct p2p_peerid *a, const struct p2p_peerid *b,
		   const struct p2p_peerid *t)
{
	return p2p_peerid_cmp_dist(t, a, b) < 0;
}

static bool listed(const struct p2p_peerid *ids, size_t n,
		   const struct p2p_peerid *id)
{
	for (size_t i = 0; i < n; i++)
		if (p2p_peerid_equal(&ids[i], id))
			return true;
	return false;
}

/* Ask via next: over our link to it, or dial it first. */
static void ask(struct attempt *a, const struct p2p_peerid *via,
		const struct p2p_addr *dial_at)
{
	a->tried[a->ntried++] = *via;
	a->via = *via;
	if (dial_at) {
		a->via_addr = *dial_at;
		want(a, P2P_REACH_RELAY_DIAL);
	} else {
		want(a, P2P_REACH_RELAY);
	}
}

int p2p_reach_relays(struct p2p_reach *r, uint64_t now,
		     const struct p2p_peerid *peer,
		     const struct p2p_peerid *ids, size_t n)
{
	const struct p2p_peerid *best = NULL;
	int err;
	struct attempt *a = answering(r, peer, P2P_REACH_RELAYS, &err);

	if (!a)
		return err;
	/* The peer's nearest servers first: they hold its links. One we hold
	 * a link to before one we would have to dial (any of them will do:
	 * the peer links to many more than P2P_REACH_NEAR_MAX). */
	for (int pass = 0; r->cfg.relay_near && pass < 2; pass++) {
		for (unsigned i = 0; i < a->nnear; i++) {
			const struct p2p_contact *c = &a->near[i];
			bool linked = listed(ids, n, &c->id);
			if (tried(a, &c->id) || linked != (pass == 0))
				continue;
			ask(a, &c->id, linked ? NULL : &c->addr);
			return 0;
		}
	}
	/* Then our own links: a client keeps its links to the servers
	 * nearest its ID, so those are the likeliest to reach it. */
	for (size_t i = 0; i < n; i++) {
		if (p2p_peerid_equal(&ids[i], &a->peer) ||
		    p2p_peerid_equal(&ids[i], &r->cfg.self) ||
		    tried(a, &ids[i]))
			continue;
		if (!best || nearer(&ids[i], best, &a->peer))
			best = &ids[i];
	}
	if (!best) {
		relays_exhausted(r, a);
		return 0;
	}
	ask(a, best, NULL);
	return 0;
}

int p2p_reach_relay_started(struct p2p_reach *r, uint64_t now,
			    const struct p2p_peerid *peer, int rc,
			    uint32_t link_id)
{
	int err;
	struct attempt *a = answering(r, peer, P2P_REACH_RELAY, &err);

	if (!a)
		return err;
	if (rc < 0 || link_id == 0)
		relay_next(r, a);
	else
		a->link = link_id;
	return 0;
}

int p2p_reach_relay_dial_started(struct p2p_reach *r, uint64_t now,
				 const struct p2p_peerid *peer, int rc,
				 uint32_t link_id)
{
	int err;
	struct attempt *a = answering(r, peer, P2P_REACH_RELAY_DIAL, &err);

	if (!a)
		return err;
	if (rc < 0 || link_id == 0)
		relay_next(r, a);
	else
		a->rdial = link_id;
	return 0;
}

/* The relay candidate's dial came up (or another link to it is up): ask
 * it now. Returns whether link_id was such a dial. */
static bool relay_dialled(struct p2p_reach *r, uint32_t link_id,
			  const struct p2p_reach_link *other)
{
	bool any = false;

	for (struct attempt *a = r->attempts; a; a = a->next) {
		if (link_id == 0 || a->rdial != link_id)
			continue;
		any = true;
		a->rdial = 0;
		if (other)
			want(a, P2P_REACH_RELAY);
		else
			relay_next(r, a); /* could not dial it: the next */
	}
	return any;
}

int p2p_reach_link_up(struct p2p_reach *r, uint64_t now,
		      const struct p2p_peerid *peer,
		      const struct p2p_reach_link *l)
{
	bool dialled = l && relay_dialled(r, l->id, l);
	struct attempt *a = find(r, peer);
	struct upgrade *u = upg_find(r, peer);

	if (u && l->kind != P2P_REACH_K_RELAYED) {
		r->stats.upgrades++; /* direct at last */
		upg_forget(r, u);
	}
	if (!a)
		return dialled ? 0 : -ENOENT;
	if (l->kind == P2P_REACH_K_RELAYED && a->state == S_PUNCH &&
	    now < a->grace_at) {
		a->held = *l; /* the punch may still win */
		return 0;
	}
	upg_watch(r, a, l, now); /* the punch goes on: its verdict counts */
	finish(r, a, l, NULL, NULL);
	return 0;
}

int p2p_reach_link_gone(struct p2p_reach *r, uint64_t now, uint32_t link_id,
			const char *why, const struct p2p_reach_link *up)
{
	char at[P2P_ADDR_TEXT_MAX], msg[P2P_REACH_TEXT_MAX];
	struct attempt *a;

	if (link_id == 0)
		return -ENOENT;
	/* A relayed pair's link went: nothing left to upgrade. */
	for (struct upgrade *u = r->upgrades; u; u = u->next) {
		if (u->relay == link_id) {
			upg_forget(r, u);
			break;
		}
	}
	/* A relay candidate's dial: up is then a link to the candidate. */
	if (relay_dialled(r, link_id, up && up->id != link_id ? up : NULL))
		return 0;
	for (a = r->attempts; a; a = a->next)
		if (a->link == link_id)
			break;
	if (!a)
		return -ENOENT;
	a->link = 0;
	if (a->held.id == link_id)
		a->held.id = 0;
	if (up && up->id != link_id) {
		finish(r, a, up, NULL, NULL);
	} else if (a->state != S_DIAL) {
		relay_next(r, a); /* that relay failed */
	} else {
		p2p_addr_format(&a->addr, at, sizeof(at));
		snprintf(msg, sizeof(msg), "dial %s failed (%s)", at,
			 why ? why : "");
		punch(r, a, now, msg);
	}
	return 0;
}

static const char *expired_text(enum state s)
{
	switch (s) {
	case S_PUNCH:
		return "no direct link in time (hole punching did not finish)";
	case S_RELAY:
		return "no relayed link in time";
	default:
		return "no direct link in time";
	}
}

void p2p_reach_expire(struct p2p_reach *r, uint64_t now)
{
	struct attempt *a, *next;

	for (a = r->attempts; a; a = next) {
		next = a->next;
		if (a->held.id && now >= a->grace_at) {
			upg_watch(r, a, &a->held, now);
			finish(r, a, &a->held, NULL, NULL);
		} else if (now >= a->deadline)
			finish(r, a, NULL, "timeout", expired_text(a->state));
	}
	upg_expire(r, now);
}

uint64_t p2p_reach_next_timer(const struct p2p_reach *r)
{
	uint64_t t = UINT64_MAX;

	for (const struct attempt *a = r->attempts; a; a = a->next) {
		if (a->deadline < t)
			t = a->deadline;
		if (a->held.id && a->grace_at < t)
			t = a->grace_at;
	}
	for (const struct upgrade *u = r->upgrades; u; u = u->next) {
		if (u->at && u->at < t)
			t = u->at;
		if (u->until && u->until < t)
			t = u->until;
	}
	return t;
}

void p2p_reach_stop(struct p2p_reach *r)
{
	r->stopping = true;
	upgrades_free(r);
	while (r->attempts)
		finish(r, r->attempts, NULL, "internal",
		       "daemon shutting down");
}

/* ---- output ---- */

static bool poll_done(struct p2p_reach *r, struct p2p_reach_action *a)
{
	struct waiter *w = r->rh;

	if (!w)
		return false;
	r->rh = w->next;
	if (!r->rh)
		r->rt = NULL;
	a->type = P2P_REACH_DONE;
	a->peer = w->peer;
	a->token = w->token;
	a->link = w->link;
	a->method = w->method;
	a->dialled = w->dialled;
	a->code = w->code;
	memcpy(a->text, w->msg, sizeof(a->text));
	free(w);
	r->nwaiters--;
	return true;
}

static bool poll_request(struct p2p_reach *r, struct p2p_reach_action *out)
{
	for (struct attempt *a = r->attempts; a; a = a->next) {
		for (unsigned t = P2P_REACH_LOOKUP;
		     a->req && t <= P2P_REACH_RELAY_DIAL; t++) {
			if (!(a->req & REQ(t)))
				continue;
			a->req &= ~REQ(t);
			a->wait |= REQ(t);
			out->type = (enum p2p_reach_action_type)t;
			out->peer = a->peer;
			out->addr =
			    t == P2P_REACH_RELAY_DIAL ? a->via_addr : a->addr;
			out->via = a->via;
			if (t == P2P_REACH_PUNCH)
				copy(out->text, sizeof(out->text), a->context);
			return true;
		}
	}
	for (struct upgrade *u = r->upgrades; u; u = u->next) {
		if (!u->req || find(r, &u->peer))
			continue; /* an attempt for the peer punches: see expire
				   */
		u->req = false;
		u->wait = true;
		out->type = P2P_REACH_PUNCH;
		out->peer = u->peer;
		out->upgrade = true;
		snprintf(out->text, sizeof(out->text),
			 "the link is relayed (upgrade, punch %u of %u more)",
			 u->tries, P2P_REACH_UPGRADE_TRIES);
		return true;
	}
	return false;
}

bool p2p_reach_poll(struct p2p_reach *r, struct p2p_reach_action *a)
{
	memset(a, 0, sizeof(*a));
	return poll_done(r, a) || poll_request(r, a);
}

size_t p2p_reach_attempts(const struct p2p_reach *r)
{
	return r->nattempts;
}

size_t p2p_reach_waiters(const struct p2p_reach *r)
{
	return r->nwaiters;
}

const struct p2p_reach_stats *p2p_reach_stats(const struct p2p_reach *r)
{
	return &r->stats;
}

size_t p2p_reach_upgrades(const struct p2p_reach *r)
{
	return r->nupgrades;
}

const char *p2p_reach_method_name(enum p2p_reach_method m)
{
	switch (m) {
	case P2P_REACH_M_EXISTING:
		return "existing";
	case P2P_REACH_M_DIAL:
		return "dial";
	case P2P_REACH_M_PUNCH:
		return "punch";
	case P2P_REACH_M_RELAY:
		return "relay";
	default:
		return "";
	}
}

const char *p2p_reach_path_name(enum p2p_reach_kind k)
{
	return k == P2P_REACH_K_RELAYED ? "relay" : "direct";
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
