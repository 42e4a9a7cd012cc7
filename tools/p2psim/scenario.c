/*
 * The experiment: join every node, let the network settle, run lookups
 * (half before and half after churn when --churn is given), then routed
 * messages, and record what each one achieved.
 *
 * Lookup targets are live nodes of either kind; "success" counts only
 * server targets (a lookup finds DHT servers: clients are never in routing
 * tables), as "target among the results". For every lookup, precision is
 * the share of its results that are among the k live servers truly closest
 * to the target, which measures client targets too.
 */
#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SIM_ROUTE_MAGIC 0x70327073u /* "p2ps" */
#define SIM_DRAIN_MS (P2P_LOOKUP_TIMEOUT_MS + 5000)
#define SIM_PICK_TRIES 64

static uint32_t pick_live(struct sim *s, uint32_t not )
{
	/* Rejection sampling: churn kills at most a fraction of the nodes. */
	for (;;) {
		uint32_t i = (uint32_t)sim_rng_below(&s->rng, s->n);

		if (s->nodes[i].alive && s->nodes[i].joined && i != not )
			return i;
	}
}

static void on_join(struct sim *s, uint32_t i)
{
	struct sim_node *nd = &s->nodes[i];
	uint32_t given = 0;

	for (int t = 0; t < SIM_PICK_TRIES && given < SIM_JOIN_BOOTSTRAPS &&
			s->nservers > 0;
	     t++) {
		uint32_t j = s->servers[sim_rng_below(&s->rng, s->nservers)];

		if (!s->nodes[j].alive)
			continue;
		p2p_overlay_add_contact(nd->ov, s->now, &s->nodes[j].id,
					&s->nodes[j].addr);
		given++;
		if (given >= s->nservers)
			break;
	}
	nd->joined = true;
	if (nd->server)
		s->servers[s->nservers++] = i;
	if (given > 0)
		p2p_overlay_bootstrap(nd->ov, s->now);
	sim_after(s, i);
}

static void on_lookup(struct sim *s, uint32_t r)
{
	struct sim_lookup_rec *rec = &s->lk[r];
	struct sim_node *nd = &s->nodes[rec->src];

	rec->started = s->now;
	if (!nd->alive)
		return;
	int err = p2p_overlay_lookup(nd->ov, s->now, &s->nodes[rec->target].id,
				     &rec->ovid);

	if (err == 0) {
		rec->started_ok = true;
		rec->next = nd->lookups;
		nd->lookups = r;
	}
	sim_after(s, rec->src);
}

static void on_route(struct sim *s, uint32_t r)
{
	struct sim_route_rec *rec = &s->rt[r];
	struct sim_node *nd = &s->nodes[rec->src];
	uint8_t payload[8];
	uint32_t magic = SIM_ROUTE_MAGIC;

	rec->sent_at = s->now;
	if (!nd->alive)
		return;
	memcpy(payload, &r, 4);
	memcpy(payload + 4, &magic, 4);
	int err = p2p_overlay_route(nd->ov, s->now, &s->nodes[rec->dst].id,
				    P2P_APP_USER, payload, sizeof(payload),
				    &rec->msgid);

	rec->started_ok = err == 0;
	sim_after(s, rec->src);
}

void sim_app_event(struct sim *s, const struct sim_event *e)
{
	switch (e->type) {
	case SIM_EV_JOIN:
		on_join(s, e->a);
		break;
	case SIM_EV_LOOKUP:
		on_lookup(s, e->aux);
		break;
	case SIM_EV_ROUTE:
		on_route(s, e->aux);
		break;
	default:
		break;
	}
}

/* Share of res among the k live servers truly closest to target. */
static double precision(const struct sim *s, const struct p2p_peerid *target,
			const struct p2p_contact *res, size_t nres)
{
	struct p2p_peerid best[P2P_K];
	size_t nbest = 0;

	for (uint32_t i = 0; i < s->n; i++) {
		const struct sim_node *nd = &s->nodes[i];

		if (!nd->alive || !nd->server || !nd->joined)
			continue;
		/* Insertion into the sorted top k. */
		size_t pos = nbest;

		while (pos > 0 &&
		       p2p_peerid_cmp_dist(target, &nd->id, &best[pos - 1]) < 0)
			pos--;
		if (pos >= P2P_K)
			continue;
		size_t last = nbest < P2P_K ? nbest : P2P_K - 1;

		memmove(&best[pos + 1], &best[pos],
			(last - pos) * sizeof(*best));
		best[pos] = nd->id;
		if (nbest < P2P_K)
			nbest++;
	}
	if (nbest == 0)
		return 0;
	size_t hit = 0;

	for (size_t r = 0; r < nres; r++)
		for (size_t b = 0; b < nbest; b++)
			if (p2p_peerid_equal(&res[r].id, &best[b]))
				hit++;
	return (double)hit / (double)nbest;
}

static void lookup_done(struct sim *s, uint32_t i,
			const struct p2p_ov_action *a)
{
	struct sim_node *nd = &s->nodes[i];
	uint32_t *link = &nd->lookups;

	if (sim_reach_lookup_done(s, i, a))
		return;

	while (*link != SIM_NO_REC && s->lk[*link].ovid != a->id)
		link = &s->lk[*link].next;
	if (*link == SIM_NO_REC)
		return; /* the overlay's own lookup (join, refresh) */
	struct sim_lookup_rec *rec = &s->lk[*link];
	const struct p2p_peerid *target = &s->nodes[rec->target].id;

	*link = rec->next;
	rec->done = true;
	rec->finished = s->now;
	rec->found = a->found;
	rec->hops = a->hops;
	for (size_t k = 0; k < a->ncontacts; k++)
		if (p2p_peerid_equal(&a->contacts[k].id, target))
			rec->target_in_results = true;
	rec->precision = precision(s, target, a->contacts, a->ncontacts);
}

static void delivered(struct sim *s, uint32_t i, const struct p2p_ov_action *a)
{
	uint32_t r, magic;

	if (a->app != P2P_APP_USER || a->len != 8)
		return;
	memcpy(&r, a->data, 4);
	memcpy(&magic, a->data + 4, 4);
	if (magic != SIM_ROUTE_MAGIC || r >= s->nrt)
		return;
	struct sim_route_rec *rec = &s->rt[r];

	rec->deliveries++;
	if (i != rec->dst)
		return; /* counted as misdelivered by the report */
	if (!p2p_peerid_equal(&a->peer, &s->nodes[rec->src].id))
		rec->wrong_src = true;
	if (!rec->delivered)
		rec->hops = a->hops;
	rec->delivered = true;
}

void sim_app_action(struct sim *s, uint32_t i, const struct p2p_ov_action *a)
{
	switch (a->type) {
	case P2P_OV_LOOKUP_DONE:
		lookup_done(s, i, a);
		break;
	case P2P_OV_DELIVER:
		delivered(s, i, a);
		break;
	case P2P_OV_ROUTE_FAILED:
		for (uint32_t r = 0; r < s->nrt; r++)
			if (s->rt[r].src == i && s->rt[r].msgid == a->id)
				s->rt[r].failed = true;
		break;
	default:
		break;
	}
}

/* Lookups [from, to) of the record array, one every interval_ms. */
static void run_lookups(struct sim *s, uint32_t from, uint32_t to,
			uint8_t phase)
{
	uint64_t t0 = s->now;
	uint64_t msgs = s->c.msgs_by_type[P2P_MSG_FIND_NODE] +
			s->c.msgs_by_type[P2P_MSG_NODES];
	uint64_t dials = s->c.dials;

	for (uint32_t r = from; r < to; r++) {
		struct sim_lookup_rec *rec = &s->lk[r];

		rec->src = pick_live(s, SIM_NO_REC);
		rec->target = pick_live(s, rec->src);
		rec->next = SIM_NO_REC;
		rec->phase = phase;
		sim_schedule(s, t0 + (uint64_t)(r - from) * s->p.interval_ms,
			     SIM_EV_LOOKUP, rec->src, 0, r, NULL);
	}
	sim_run_until(s, t0 + (uint64_t)(to - from) * s->p.interval_ms +
			     SIM_DRAIN_MS);
	s->lookup_msgs += s->c.msgs_by_type[P2P_MSG_FIND_NODE] +
			  s->c.msgs_by_type[P2P_MSG_NODES] - msgs;
	s->lookup_dials += s->c.dials - dials;
}

static void churn(struct sim *s)
{
	uint32_t kill = (uint32_t)(s->p.churn * s->n + 0.5);

	if (kill >= s->n)
		kill = s->n - 2; /* lookups need a source and a target */
	s->t_churn = s->now;
	for (uint32_t k = 0; k < kill; k++)
		sim_kill(s, pick_live(s, SIM_NO_REC));
}

static void run_routes(struct sim *s)
{
	uint64_t t0 = s->now;

	/*
	 * Routed messages measure the network once survivors have noticed
	 * the crashes; the lookups after churn measured the reaction.
	 */
	if (s->p.churn > 0 && s->p.link_timeout_ms > 0 &&
	    t0 < s->t_churn + s->p.link_timeout_ms + 1000)
		t0 = s->t_churn + s->p.link_timeout_ms + 1000;
	uint64_t msgs = s->c.msgs_by_type[P2P_MSG_ROUTED];

	for (uint32_t r = 0; r < s->nrt; r++) {
		struct sim_route_rec *rec = &s->rt[r];

		rec->src = pick_live(s, SIM_NO_REC);
		rec->dst = pick_live(s, rec->src);
		sim_schedule(s, t0 + (uint64_t)r * s->p.interval_ms,
			     SIM_EV_ROUTE, rec->src, 0, r, NULL);
	}
	sim_run_until(s,
		      t0 + (uint64_t)s->nrt * s->p.interval_ms + SIM_DRAIN_MS);
	s->route_msgs = s->c.msgs_by_type[P2P_MSG_ROUTED] - msgs;
}

int sim_scenario_run(struct sim *s)
{
	s->nlk = s->p.lookups;
	s->nrt = s->p.lookups;
	s->lk = calloc(s->nlk ? s->nlk : 1, sizeof(*s->lk));
	s->rt = calloc(s->nrt ? s->nrt : 1, sizeof(*s->rt));
	if (!s->lk || !s->rt)
		return -ENOMEM;

	for (uint32_t i = 0; i < s->n; i++)
		sim_schedule(s, (uint64_t)i * s->p.join_ms, SIM_EV_JOIN, i, 0,
			     0, NULL);
	sim_run_until(s, (uint64_t)(s->n - 1) * s->p.join_ms + s->p.settle_ms);
	s->t_settled = s->now;

	uint32_t half = s->p.churn > 0 ? s->nlk / 2 : s->nlk;

	run_lookups(s, 0, half, 0);
	if (s->p.churn > 0) {
		churn(s);
		run_lookups(s, half, s->nlk, 1);
	}
	run_routes(s);
	if (!s->oom && sim_reach_run(s) < 0)
		return -ENOMEM;
	return s->oom ? -ENOMEM : 0;
}
