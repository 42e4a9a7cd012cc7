/*
 * NAT classification from observed addresses (see nat.h).
 *
 * The evidence is a small ring of (local, observed, observer, observer's
 * network) entries. We classify from the newest observations only, so a
 * host that moves from a NAT to a public address is reclassified once
 * fresh links report it.
 *
 * Trust: an observer can say anything about how it sees us. A report
 * counts only once observers from P2P_NAT_AGREE distinct networks (/24 or
 * /48 of the address we dialled them at) report the same thing, so one
 * host, or many from one subnet, can neither change our type nor choose
 * the addresses we offer for hole punching. While every observer so far
 * is in one network (a network whose only public node is its bootstrap),
 * that network's word is all there is, and it counts.
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
	uint8_t net[7]; /* family, then the /24 or /48 of the observer */
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

static void net_of(const struct p2p_addr *a, uint8_t net[7])
{
	memset(net, 0, 7);
	net[0] = a->family;
	memcpy(net + 1, a->ip, a->family == 6 ? 6 : 3);
}

static bool same_net(const struct obs *a, const struct obs *b)
{
	return memcmp(a->net, b->net, sizeof(a->net)) == 0;
}

int p2p_nat_observe(struct p2p_nat *n, uint64_t now,
		    const struct p2p_addr *local,
		    const struct p2p_addr *observed,
		    const struct p2p_peerid *observer,
		    const struct p2p_addr *observer_addr)
{
	struct obs *o;

	if (local->family == 0 || observed->family != local->family ||
	    observed->port == 0 || local->port == 0 ||
	    (observer_addr->family != 4 && observer_addr->family != 6))
		return -EINVAL;

	/* One vote per observer: a repeat replaces its earlier entry. */
	for (size_t i = 0; i < n->n; i++) {
		o = &n->obs[i];
		if (p2p_peerid_equal(&o->observer, observer) &&
		    o->local.port == local->port) {
			o->when = now;
			o->local = *local;
			o->observed = *observed;
			net_of(observer_addr, o->net);
			return 0;
		}
	}
	o = &n->obs[n->next];
	o->when = now;
	o->local = *local;
	o->observed = *observed;
	o->observer = *observer;
	net_of(observer_addr, o->net);
	n->next = (n->next + 1) % P2P_NAT_OBS_MAX;
	if (n->n < P2P_NAT_OBS_MAX)
		n->n++;
	return 0;
}

/* Distinct observer networks in the evidence (counted up to want). */
static size_t networks(const struct p2p_nat *n, size_t want)
{
	size_t cnt = 0;

	for (size_t i = 0; i < n->n && cnt < want; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = same_net(&n->obs[i], &n->obs[j]);
		if (!dup)
			cnt++;
	}
	return cnt;
}

/* How many networks must agree: P2P_NAT_AGREE, or 1 while one is all
 * we have heard from. */
static size_t quorum(const struct p2p_nat *n)
{
	return networks(n, P2P_NAT_AGREE);
}

/*
 * Distinct networks whose observers saw what obs i saw: the same local
 * address mapped to the same observed address (ip_only: the same
 * observed IP, any local address or port).
 */
static size_t support(const struct p2p_nat *n, size_t i, bool ip_only)
{
	const struct obs *a = &n->obs[i];
	size_t cnt = 0;

	for (size_t j = 0; j < n->n; j++) {
		const struct obs *b = &n->obs[j];
		bool dup = false;
		if (ip_only ? !same_ip(&a->observed, &b->observed)
			    : !p2p_addr_equal(&a->local, &b->local) ||
				  !p2p_addr_equal(&a->observed, &b->observed))
			continue;
		for (size_t k = 0; k < j && !dup; k++) {
			const struct obs *c = &n->obs[k];
			dup = same_net(b, c) &&
			      (ip_only ? same_ip(&a->observed, &c->observed)
				       : p2p_addr_equal(&a->local, &c->local) &&
					     p2p_addr_equal(&a->observed,
							    &c->observed));
		}
		if (!dup)
			cnt++;
	}
	return cnt;
}

/*
 * Endpoint dependence shows as disagreement: one local address seen at
 * different external ports. A liar disagrees with everyone too, so it
 * takes P2P_NAT_DEPENDENT_NETS networks seeing that local address, no two
 * of which agree on its mapping, while the same local address seen by
 * two networks alike is a confirmed mapping (see nat.h).
 */
static bool dependent(const struct p2p_nat *n, size_t i)
{
	const struct obs *a = &n->obs[i];
	uint8_t nets[P2P_NAT_DEPENDENT_NETS][7];
	size_t cnt = 0;
	bool ports_differ = false;

	for (size_t j = 0; j < n->n && cnt < P2P_NAT_DEPENDENT_NETS; j++) {
		const struct obs *b = &n->obs[j];
		bool dup = false;
		if (!p2p_addr_equal(&a->local, &b->local) ||
		    !same_ip(&a->observed, &b->observed))
			continue;
		if (support(n, j, false) >= 2)
			return false; /* a mapping that two networks agree on */
		if (b->observed.port != a->observed.port)
			ports_differ = true;
		for (size_t k = 0; k < cnt && !dup; k++)
			dup = memcmp(nets[k], b->net, 7) == 0;
		if (!dup)
			memcpy(nets[cnt++], b->net, 7);
	}
	return ports_differ && cnt >= P2P_NAT_DEPENDENT_NETS;
}

enum obs_kind { OBS_UNTRANSLATED, OBS_PRESERVED, OBS_CHANGED, OBS_KINDS };

static enum obs_kind kind_of(const struct obs *a)
{
	if (a->local.port != a->observed.port)
		return OBS_CHANGED;
	return same_ip(&a->local, &a->observed) ? OBS_UNTRANSLATED
						: OBS_PRESERVED;
}

/* Networks that reported a kind of mapping, counted up to want. */
static size_t kind_networks(const struct p2p_nat *n, enum obs_kind kind,
			    size_t want)
{
	size_t cnt = 0;

	for (size_t i = 0; i < n->n && cnt < want; i++) {
		bool dup = false;
		if (kind_of(&n->obs[i]) != kind)
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = kind_of(&n->obs[j]) == kind &&
			      same_net(&n->obs[i], &n->obs[j]);
		if (!dup)
			cnt++;
	}
	return cnt;
}

/*
 * A kind of mapping (untranslated, port kept, port changed) counts when
 * the quorum of networks reported it; a mapping of one local port that
 * distinct observers agree on shows endpoint independence, when the quorum
 * of networks agrees on it.
 */
enum p2p_nat_type p2p_nat_type(const struct p2p_nat *n)
{
	size_t q = quorum(n), cnt[OBS_KINDS] = {0};
	bool seen[OBS_KINDS], independent = false;

	for (size_t i = 0; i < n->n; i++) {
		const struct obs *a = &n->obs[i];
		if (dependent(n, i))
			return P2P_NAT_ENDPOINT_DEPENDENT;
		cnt[kind_of(a)]++;
		if (kind_of(a) != OBS_CHANGED || support(n, i, false) < q)
			continue;
		for (size_t j = i + 1; j < n->n; j++) {
			const struct obs *b = &n->obs[j];
			if (p2p_addr_equal(&a->local, &b->local) &&
			    !p2p_peerid_equal(&a->observer, &b->observer) &&
			    p2p_addr_equal(&a->observed, &b->observed))
				independent = true;
		}
	}
	for (int k = 0; k < OBS_KINDS; k++)
		seen[k] =
		    cnt[k] > 0 && kind_networks(n, (enum obs_kind)k, q) >= q;
	if (seen[OBS_UNTRANSLATED] && !seen[OBS_PRESERVED] &&
	    !seen[OBS_CHANGED])
		return P2P_NAT_NONE;
	if (!seen[OBS_CHANGED] && seen[OBS_PRESERVED] &&
	    cnt[OBS_PRESERVED] >= 2)
		return P2P_NAT_PORT_PRESERVING;
	if (seen[OBS_CHANGED] && independent)
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
	size_t cnt = 0, q = quorum(n);

	/* Walk newest to oldest so the first address is the latest one;
	 * only IPs that enough networks saw. */
	for (size_t k = 0; k < n->n && cnt < max; k++) {
		size_t i =
		    (n->next + P2P_NAT_OBS_MAX - 1 - k) % P2P_NAT_OBS_MAX;
		const struct obs *o = &n->obs[i];
		bool seen = false;
		for (size_t j = 0; j < cnt; j++)
			if (same_ip(&out[j], &o->observed))
				seen = true;
		if (!seen && support(n, i, true) >= q)
			out[cnt++] = o->observed;
	}
	return cnt;
}

int p2p_nat_mapped(const struct p2p_nat *n, uint8_t family, uint16_t port,
		   struct p2p_addr *out)
{
	size_t q = quorum(n);

	for (size_t k = 0; k < n->n; k++) {
		size_t i =
		    (n->next + P2P_NAT_OBS_MAX - 1 - k) % P2P_NAT_OBS_MAX;
		const struct obs *o = &n->obs[i];
		if (o->local.family == family && o->local.port == port &&
		    support(n, i, false) >= q) {
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
