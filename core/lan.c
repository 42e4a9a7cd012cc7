/* LAN discovery, sans-I/O: see lan.h. */
#include <stdlib.h>
#include <string.h>

#include "core/lan.h"

struct src_slot {
	struct p2p_addr ip; /* port 0; family 0: free */
	uint64_t at;	    /* tokens counted at this time */
	uint32_t tokens;
};

struct dial_slot {
	struct p2p_peerid peer;
	struct p2p_addr to;
	uint64_t at; /* 0: free */
};

struct p2p_lan {
	struct p2p_peerid self;
	uint64_t next;
	unsigned sent;
	struct src_slot src[P2P_LAN_SRC_SLOTS];
	struct dial_slot dial[P2P_LAN_DIAL_SLOTS];
};

struct p2p_lan *p2p_lan_new(const struct p2p_peerid *self, uint64_t now)
{
	struct p2p_lan *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->self = *self;
	l->next = now;
	return l;
}

void p2p_lan_free(struct p2p_lan *l)
{
	free(l);
}

uint64_t p2p_lan_next(const struct p2p_lan *l)
{
	return l->next;
}

bool p2p_lan_announce_due(struct p2p_lan *l, uint64_t now, uint32_t rnd)
{
	if (now < l->next)
		return false;
	if (l->sent++ == 0) {
		l->next = now + P2P_LAN_SECOND_MS;
	} else {
		uint64_t span = 2 * P2P_LAN_JITTER_MS + 1;
		l->next =
		    now + P2P_LAN_INTERVAL_MS - P2P_LAN_JITTER_MS + rnd % span;
	}
	return true;
}

/* A token bucket per source IP; an unknown source takes the slot of the
 * one heard from longest ago (it starts with a full bucket, so a flood
 * of spoofed sources only ever costs its own datagrams a check each). */
bool p2p_lan_admit(struct p2p_lan *l, uint64_t now, const struct p2p_addr *src)
{
	struct p2p_addr ip = *src;
	struct src_slot *s = NULL, *old = &l->src[0];
	uint64_t add;

	ip.port = 0;
	for (size_t i = 0; i < P2P_LAN_SRC_SLOTS && !s; i++) {
		if (l->src[i].ip.family && p2p_addr_equal(&l->src[i].ip, &ip))
			s = &l->src[i];
		else if (!l->src[i].ip.family ||
			 (old->ip.family && l->src[i].at < old->at))
			old = &l->src[i];
	}
	if (!s) {
		s = old;
		s->ip = ip;
		s->at = now;
		s->tokens = P2P_LAN_SRC_BURST;
	}
	add = now > s->at ? (now - s->at) / P2P_LAN_SRC_REFILL_MS : 0;
	if (add > 0) {
		s->tokens = add >= P2P_LAN_SRC_BURST - s->tokens
				? P2P_LAN_SRC_BURST
				: s->tokens + (uint32_t)add;
		s->at += add * P2P_LAN_SRC_REFILL_MS;
	}
	if (s->tokens == P2P_LAN_SRC_BURST)
		s->at = now; /* full: refill counts from now */
	if (s->tokens == 0)
		return false;
	s->tokens--;
	return true;
}

static bool link_local6(const struct p2p_addr *a)
{
	return a->family == 6 && a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80;
}

/* Was (peer, to) dialled within P2P_LAN_REDIAL_MS? If not, note it now. */
static bool recently(struct p2p_lan *l, uint64_t now,
		     const struct p2p_peerid *peer, const struct p2p_addr *to)
{
	struct dial_slot *d = NULL, *old = &l->dial[0];

	for (size_t i = 0; i < P2P_LAN_DIAL_SLOTS && !d; i++) {
		struct dial_slot *e = &l->dial[i];
		if (e->at && p2p_peerid_equal(&e->peer, peer) &&
		    p2p_addr_equal(&e->to, to))
			d = e;
		else if (e->at < old->at)
			old = e;
	}
	if (d && now < d->at + P2P_LAN_REDIAL_MS)
		return true;
	if (!d) {
		d = old;
		d->peer = *peer;
		d->to = *to;
	}
	d->at = now ? now : 1;
	return false;
}

enum p2p_lan_verdict p2p_lan_on_beacon(struct p2p_lan *l, uint64_t now,
				       uint64_t wall_ms,
				       const struct p2p_beacon *b,
				       const struct p2p_addr *src,
				       struct p2p_addr *to)
{
	uint64_t skew =
	    wall_ms > b->time_ms ? wall_ms - b->time_ms : b->time_ms - wall_ms;
	uint16_t port = src->family == 4 ? b->port4 : b->port6;

	if (p2p_peerid_equal(&b->id, &l->self))
		return P2P_LAN_SELF;
	if (skew > P2P_LAN_FRESH_MS)
		return P2P_LAN_STALE;
	if (port == 0 || (src->family != 4 && src->family != 6))
		return P2P_LAN_NO_PORT;
	if (link_local6(src))
		return P2P_LAN_LINKLOCAL;
	*to = *src;
	to->port = port;
	if (recently(l, now, &b->id, to))
		return P2P_LAN_RECENT;
	return P2P_LAN_DIAL;
}

const char *p2p_lan_verdict_name(enum p2p_lan_verdict v)
{
	switch (v) {
	case P2P_LAN_DIAL:
		return "dial";
	case P2P_LAN_SELF:
		return "our own";
	case P2P_LAN_STALE:
		return "stale timestamp";
	case P2P_LAN_NO_PORT:
		return "no listen port for its family";
	case P2P_LAN_LINKLOCAL:
		return "IPv6 link-local source";
	case P2P_LAN_RECENT:
		return "dialled a moment ago";
	}
	return "?";
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
