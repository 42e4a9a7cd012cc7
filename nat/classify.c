/*
 * NAT classification from observed addresses (see nat.h).
 *
 * The evidence is a small ring of (local, observed, observer) triples. We
 * classify from the newest observations only, so a host that moves from a
 * NAT to a public address is reclassified once fresh links report it.
 */
#include <stdlib.h>
#include <string.h>

#include "nat/nat.h"
#include "proto/error.h"

struct obs {
	uint64_t when;
	struct p2p_addr local;
	struct p2p_addr observed;
	struct p2p_peerid observer;
};

struct p2p_nat {
	struct obs obs[P2P_NAT_OBS_MAX];
	size_t n;    /* valid entries */
	size_t next; /* ring position of the next insert */
};

struct p2p_nat *p2p_nat_new(void)
{
	return calloc(1, sizeof(struct p2p_nat));
}

void p2p_nat_free(struct p2p_nat *n)
{
	free(n);
}

static bool same_ip(const struct p2p_addr *a, const struct p2p_addr *b)
{
	return a->family == b->family && memcmp(a->ip, b->ip, 16) == 0;
}

int p2p_nat_observe(struct p2p_nat *n, uint64_t now,
		    const struct p2p_addr *local,
		    const struct p2p_addr *observed,
		    const struct p2p_peerid *observer)
{
	if (local->family == 0 || observed->family != local->family ||
	    observed->port == 0 || local->port == 0)
		return -EINVAL;

	/* One vote per observer: a repeat replaces its earlier entry. */
	for (size_t i = 0; i < n->n; i++) {
		struct obs *o = &n->obs[i];
		if (p2p_peerid_equal(&o->observer, observer) &&
		    o->local.port == local->port) {
			o->when = now;
			o->local = *local;
			o->observed = *observed;
			return 0;
		}
	}
	struct obs *o = &n->obs[n->next];
	o->when = now;
	o->local = *local;
	o->observed = *observed;
	o->observer = *observer;
	n->next = (n->next + 1) % P2P_NAT_OBS_MAX;
	if (n->n < P2P_NAT_OBS_MAX)
		n->n++;
	return 0;
}

enum p2p_nat_type p2p_nat_type(const struct p2p_nat *n)
{
	size_t untranslated = 0, preserved = 0, changed = 0;
	bool dependent = false, independent = false;

	for (size_t i = 0; i < n->n; i++) {
		const struct obs *a = &n->obs[i];
		if (same_ip(&a->local, &a->observed) &&
		    a->local.port == a->observed.port)
			untranslated++;
		else if (a->local.port == a->observed.port)
			preserved++;
		else
			changed++;
		/*
		 * The mapping behaviour shows only when one local port was
		 * seen by two observers: same external port means the NAT
		 * maps independently of the destination.
		 */
		for (size_t j = i + 1; j < n->n; j++) {
			const struct obs *b = &n->obs[j];
			if (!p2p_addr_equal(&a->local, &b->local) ||
			    p2p_peerid_equal(&a->observer, &b->observer) ||
			    !same_ip(&a->observed, &b->observed))
				continue;
			if (a->observed.port == b->observed.port)
				independent = true;
			else
				dependent = true;
		}
	}
	if (dependent)
		return P2P_NAT_ENDPOINT_DEPENDENT;
	if (untranslated > 0 && preserved == 0 && changed == 0)
		return P2P_NAT_NONE;
	if (changed == 0 && preserved >= 2)
		return P2P_NAT_PORT_PRESERVING;
	if (changed > 0 && independent)
		return P2P_NAT_ENDPOINT_INDEPENDENT;
	/*
	 * Ports changed on fresh local ports but no port was seen twice:
	 * the mapping may still be endpoint independent; without reuse of
	 * one local port we cannot tell, so we do not guess.
	 */
	return P2P_NAT_UNKNOWN;
}

size_t p2p_nat_external(const struct p2p_nat *n, struct p2p_addr *out,
			size_t max)
{
	size_t cnt = 0;
	/* Walk newest to oldest so the first address is the latest one. */
	for (size_t k = 0; k < n->n && cnt < max; k++) {
		size_t i =
		    (n->next + P2P_NAT_OBS_MAX - 1 - k) % P2P_NAT_OBS_MAX;
		const struct obs *o = &n->obs[i];
		bool seen = false;
		for (size_t j = 0; j < cnt; j++)
			if (same_ip(&out[j], &o->observed))
				seen = true;
		if (!seen)
			out[cnt++] = o->observed;
	}
	return cnt;
}

int p2p_nat_mapped(const struct p2p_nat *n, uint8_t family, uint16_t port,
		   struct p2p_addr *out)
{
	for (size_t k = 0; k < n->n; k++) {
		size_t i =
		    (n->next + P2P_NAT_OBS_MAX - 1 - k) % P2P_NAT_OBS_MAX;
		const struct obs *o = &n->obs[i];
		if (o->local.family == family && o->local.port == port) {
			*out = o->observed;
			return 0;
		}
	}
	return -ENOENT;
}

const char *p2p_nat_type_name(enum p2p_nat_type t)
{
	switch (t) {
	case P2P_NAT_NONE:
		return "none";
	case P2P_NAT_PORT_PRESERVING:
		return "port-preserving";
	case P2P_NAT_ENDPOINT_INDEPENDENT:
		return "endpoint-independent";
	case P2P_NAT_ENDPOINT_DEPENDENT:
		return "endpoint-dependent";
	case P2P_NAT_UNKNOWN:
		break;
	}
	return "unknown";
}
