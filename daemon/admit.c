/*
 * Admission of unauthenticated inbound connections (admit.h). Tables are
 * small and fixed: pending slots are scanned to count an IP or a subnet,
 * and the per-IP token buckets are a least-recently-used table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"

/* Tokens are kept in thousandths so that refills of a few ms count. */
#define TOKEN 1000u

struct pending {
	uint32_t id; /* 0: free */
	uint8_t family;
	uint8_t ip[16];
	uint64_t net;
};

struct bucket {
	uint8_t family; /* 0: free */
	uint8_t ip[16];
	uint64_t tokens; /* thousandths */
	uint64_t last;	 /* ms of the last refill */
};

struct admit {
	struct pending p[ADMIT_PENDING_MAX];
	size_t npending;
	struct bucket b[ADMIT_BUCKETS];
	struct bucket total;
	struct admit_stats st;
};

struct admit *admit_new(void)
{
	struct admit *a = calloc(1, sizeof(*a));

	if (a) {
		a->total.family = 1;
		a->total.tokens = (uint64_t)ADMIT_BURST_TOTAL * TOKEN;
	}
	return a;
}

void admit_free(struct admit *a)
{
	free(a);
}

static bool same_ip(uint8_t family, const uint8_t *ip, const struct p2p_addr *x)
{
	return family == x->family && memcmp(ip, x->ip, 16) == 0;
}

/* Refill b at rate per second up to burst; take one token if there is. */
static bool take(struct bucket *b, uint64_t now, unsigned rate, unsigned burst)
{
	uint64_t max = (uint64_t)burst * TOKEN;

	if (now > b->last) {
		uint64_t add = (now - b->last) * rate; /* ms * 1/s = 1/1000 */
		b->tokens = b->tokens + add > max ? max : b->tokens + add;
	}
	b->last = now;
	if (b->tokens < TOKEN)
		return false;
	b->tokens -= TOKEN;
	return true;
}

/* The IP's bucket; a new one (full) replaces the least recent. */
static struct bucket *bucket_of(struct admit *a, uint64_t now,
				const struct p2p_addr *from)
{
	struct bucket *old = &a->b[0];

	for (size_t i = 0; i < ADMIT_BUCKETS; i++) {
		struct bucket *b = &a->b[i];
		if (b->family && same_ip(b->family, b->ip, from))
			return b;
		if (!b->family || (old->family && b->last < old->last))
			old = b;
	}
	old->family = from->family;
	memcpy(old->ip, from->ip, 16);
	old->tokens = (uint64_t)ADMIT_BURST * TOKEN;
	old->last = now;
	return old;
}

int admit_accept(struct admit *a, uint64_t now, const struct p2p_addr *from,
		 uint32_t id)
{
	uint64_t net = p2p_addr_subnet(from);
	size_t ip = 0, sub = 0, slot = ADMIT_PENDING_MAX;

	for (size_t i = 0; i < ADMIT_PENDING_MAX; i++) {
		const struct pending *p = &a->p[i];
		if (!p->id) {
			slot = slot < i ? slot : i;
			continue;
		}
		ip += same_ip(p->family, p->ip, from);
		sub += p->net == net;
	}
	/* Budgets first: a refused connection costs no token. */
	if (slot == ADMIT_PENDING_MAX) {
		a->st.over_total++;
		return -EBUSY;
	}
	if (ip >= ADMIT_PER_IP) {
		a->st.over_ip++;
		return -EBUSY;
	}
	if (sub >= ADMIT_PER_NET) {
		a->st.over_net++;
		return -EBUSY;
	}
	if (!take(bucket_of(a, now, from), now, ADMIT_RATE_PER_S,
		  ADMIT_BURST)) {
		a->st.rate_ip++;
		return -EAGAIN;
	}
	if (!take(&a->total, now, ADMIT_RATE_TOTAL_PER_S, ADMIT_BURST_TOTAL)) {
		a->st.rate_total++;
		return -EAGAIN;
	}
	a->p[slot].id = id;
	a->p[slot].family = from->family;
	memcpy(a->p[slot].ip, from->ip, 16);
	a->p[slot].net = net;
	a->npending++;
	a->st.admitted++;
	return 0;
}

void admit_release(struct admit *a, uint32_t id)
{
	if (!a || id == 0)
		return;
	for (size_t i = 0; i < ADMIT_PENDING_MAX; i++) {
		if (a->p[i].id == id) {
			memset(&a->p[i], 0, sizeof(a->p[i]));
			a->npending--;
			return;
		}
	}
}

uint64_t admit_deadline(uint64_t now, uint32_t handshake_timeout_ms)
{
	return now + (handshake_timeout_ms &&
			      handshake_timeout_ms < ADMIT_HANDSHAKE_MS
			  ? handshake_timeout_ms
			  : ADMIT_HANDSHAKE_MS);
}

size_t admit_pending(const struct admit *a)
{
	return a ? a->npending : 0;
}

const struct admit_stats *admit_stats(const struct admit *a)
{
	return &a->st;
}
