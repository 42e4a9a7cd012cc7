/*
 * Progress of reaching a peer, for people (progress.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "names.h"
#include "ovl.h"
#include "progress.h"

struct progress {
	struct {
		progress_fn fn;
		void *arg;
	} obs[PROGRESS_OBSERVERS_MAX];
	size_t nobs;
};

int progress_module_init(struct p2pd_node *n)
{
	n->progress = calloc(1, sizeof(*n->progress));
	return n->progress ? 0 : -ENOMEM;
}

void progress_free(struct p2pd_node *n)
{
	free(n->progress);
	n->progress = NULL;
}

int progress_observe(struct p2pd_node *n, progress_fn fn, void *arg)
{
	struct progress *p = n->progress;

	if (p->nobs == PROGRESS_OBSERVERS_MAX)
		return -ENOSPC;
	p->obs[p->nobs].fn = fn;
	p->obs[p->nobs].arg = arg;
	p->nobs++;
	return 0;
}

/* A peer as people know it: its name, else its ID. */
static const char *who(struct p2pd_node *n, const struct p2p_peerid *id,
		       char *buf)
{
	const char *name = n->names ? names_of(n->names, id) : NULL;

	if (name)
		return name;
	p2p_peerid_to_text(id, buf);
	return buf;
}

void progress_reach_step(struct p2pd_node *n, const struct p2p_reach_action *a)
{
	struct progress *p = n->progress;
	char d[PROGRESS_DETAIL_MAX], id[P2P_ID_TEXT_LEN + 1];
	char addr[P2P_ADDR_TEXT_MAX];
	const char *stage;

	if (!p || p->nobs == 0)
		return;
	switch (a->type) {
	case P2P_REACH_LOOKUP:
		stage = "lookup";
		snprintf(d, sizeof(d), "looking up %s in the overlay",
			 who(n, &a->peer, id));
		break;
	case P2P_REACH_DIAL:
		stage = "dial";
		p2p_addr_format(&a->addr, addr, sizeof(addr));
		snprintf(d, sizeof(d), "dialling %s at %s",
			 who(n, &a->peer, id), addr);
		break;
	case P2P_REACH_PUNCH:
		/* The peer's NAT type comes in its punch reply, after this
		 * step (progress_punch_scheduled): ours is what we know. */
		stage = "punch";
		snprintf(d, sizeof(d),
			 "punching a hole to %s (%s%sour NAT: %s)",
			 who(n, &a->peer, id), a->text, a->text[0] ? "; " : "",
			 p2p_nat_type_name(p2p_nat_type(ovl_nat(n))));
		break;
	case P2P_REACH_RELAY:
		stage = "relay";
		snprintf(d, sizeof(d), "relaying via %s", who(n, &a->via, id));
		break;
	case P2P_REACH_RELAY_DIAL:
		/* A server nearest the peer (it holds the peer's links). */
		stage = "relay";
		p2p_addr_format(&a->addr, addr, sizeof(addr));
		snprintf(d, sizeof(d), "dialling %s at %s to relay",
			 who(n, &a->via, id), addr);
		break;
	default:
		return;
	}
	for (size_t i = 0; i < p->nobs; i++)
		p->obs[i].fn(p->obs[i].arg, &a->peer, stage, d);
}

void progress_punch_scheduled(void *arg, const struct p2p_peerid *peer,
			      enum p2p_nat_type peer_nat, bool primer)
{
	struct p2pd_node *n = arg;
	struct progress *p = n->progress;
	char d[PROGRESS_DETAIL_MAX], id[P2P_ID_TEXT_LEN + 1];

	if (!p || p->nobs == 0)
		return;
	snprintf(d, sizeof(d),
		 "punching with %s: its NAT: %s, ours: %s; %s now",
		 who(n, peer, id), p2p_nat_type_name(peer_nat),
		 p2p_nat_type_name(p2p_nat_type(ovl_nat(n))),
		 primer ? "priming" : "connecting");
	for (size_t i = 0; i < p->nobs; i++)
		p->obs[i].fn(p->obs[i].arg, peer, "punch", d);
}
