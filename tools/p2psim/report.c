/*
 * The one JSON object p2psim prints. Everything but wall_s and rss_mb
 * follows from the seed, so two runs can be compared field by field.
 */
#include "sim.h"

#include "core/reach.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array; 0 when empty. */
static int pct(const int *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t rank = (size_t)ceil(p * (double)n);

	return v[rank > 0 ? rank - 1 : 0];
}

static json_t *dist(int *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_int);
	return json_pack("{s:i, s:i, s:i}", "p50", pct(v, n, 0.5), "p95",
			 pct(v, n, 0.95), "max", n ? v[n - 1] : 0);
}

static double ratio(double num, double den)
{
	return den > 0 ? num / den : 0;
}

static double rss_mb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtod(line + 6, NULL);
	fclose(f);
	return kb / 1024;
}

struct lookup_sums {
	uint32_t counted[2], ok[2], started, done, found, client_targets;
	double precision;
};

static json_t *lookups_json(const struct sim *s, int *hops, int *ms,
			    size_t *nhops)
{
	struct lookup_sums t = {0};

	*nhops = 0;
	for (uint32_t r = 0; r < s->nlk; r++) {
		const struct sim_lookup_rec *rec = &s->lk[r];

		t.started += rec->started_ok;
		t.done += rec->done;
		t.found += rec->found;
		t.precision += rec->precision;
		if (!s->nodes[rec->target].server) {
			t.client_targets++;
			continue;
		}
		t.counted[rec->phase]++;
		if (!rec->target_in_results)
			continue;
		t.ok[rec->phase]++;
		hops[*nhops] = rec->hops;
		ms[(*nhops)++] = (int)(rec->finished - rec->started);
	}
	return json_pack(
	    "{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "started",
	    t.started, "done", t.done, "server_targets",
	    t.counted[0] + t.counted[1], "client_targets", t.client_targets,
	    "found", t.found, "success_rate_before_churn",
	    ratio(t.ok[0], t.counted[0]), "success_rate_after_churn",
	    ratio(t.ok[1], t.counted[1]), "precision",
	    ratio(t.precision, s->nlk), "msgs_per_lookup",
	    ratio(s->lookup_msgs, s->nlk), "dials_per_lookup",
	    ratio(s->lookup_dials, s->nlk));
}

static json_t *routed_json(const struct sim *s, int *hops)
{
	uint32_t started = 0, ok = 0, failed = 0, dup = 0, wrong = 0;
	uint32_t to_clients = 0, ok_clients = 0;
	size_t n = 0;

	for (uint32_t r = 0; r < s->nrt; r++) {
		const struct sim_route_rec *rec = &s->rt[r];

		started += rec->started_ok;
		failed += rec->failed;
		dup += rec->deliveries > 1;
		wrong +=
		    rec->wrong_src || (rec->deliveries > 0 && !rec->delivered);
		if (rec->delivered)
			hops[n++] = rec->hops;
		if (!s->nodes[rec->dst].server) {
			to_clients++;
			ok_clients += rec->delivered;
		}
	}
	ok = (uint32_t)n;
	qsort(hops, n, sizeof(*hops), cmp_int);
	return json_pack(
	    "{s:i, s:i, s:i, s:f, s:i, s:f, s:i, s:i, s:i, s:i, s:i, "
	    "s:f}",
	    "sent", s->nrt, "accepted", started, "delivered", ok,
	    "delivered_rate", ratio(ok, s->nrt), "to_clients", to_clients,
	    "delivered_rate_to_clients", ratio(ok_clients, to_clients),
	    "hops_p50", pct(hops, n, 0.5), "hops_p95", pct(hops, n, 0.95),
	    "hops_max", n ? hops[n - 1] : 0, "failed_reported", failed,
	    "duplicates", dup + wrong, "msgs_per_route",
	    ratio(s->route_msgs, s->nrt));
}

static json_t *net_json(const struct sim *s)
{
	const struct sim_counters *c = &s->c;
	json_t *o = json_object();

#define PUT(f) json_object_set_new(o, #f, json_integer((json_int_t)c->f))
	PUT(msgs_sent);
	PUT(bytes_sent);
	PUT(msgs_received);
	PUT(msgs_lost);
	PUT(msgs_to_dead);
	PUT(send_no_link);
	PUT(recv_no_link);
	PUT(decode_errors);
	PUT(recv_errors);
	PUT(dials);
	PUT(dials_ok);
	PUT(dials_failed);
	PUT(dials_existing);
	PUT(dials_pending);
	PUT(dials_unknown);
	PUT(dials_self);
	PUT(dials_wrong_addr);
	PUT(dials_crossed);
	PUT(dials_cancelled);
	PUT(closes);
	PUT(close_no_link);
	PUT(link_downs);
	PUT(timeout_downs);
	PUT(events);
	PUT(timers);
#undef PUT
	return o;
}

/* The live server nearest to id; SIM_NO_REC if none. */
static uint32_t nearest_server(const struct sim *s, const struct p2p_peerid *id)
{
	uint32_t best = SIM_NO_REC;

	for (uint32_t i = 0; i < s->n; i++) {
		const struct sim_node *nd = &s->nodes[i];

		if (!nd->alive || !nd->server)
			continue;
		if (best == SIM_NO_REC ||
		    p2p_peerid_cmp_dist(id, &nd->id, &s->nodes[best].id) < 0)
			best = i;
	}
	return best;
}

/*
 * Greedy routing reaches a client only through the server nearest to its
 * ID: share of (up to SIM_CLIENT_SAMPLE) live clients that server links.
 */
static double clients_held(const struct sim *s)
{
	uint32_t seen = 0, held = 0;

	for (uint32_t i = 0; i < s->n && seen < SIM_CLIENT_SAMPLE; i++) {
		struct sim_node *nd = &s->nodes[i];

		if (!nd->alive || nd->server)
			continue;
		uint32_t b = nearest_server(s, &nd->id);
		struct sim_link *l =
		    b == SIM_NO_REC ? NULL : sim_link_find(nd, b);

		seen++;
		held += l != NULL && l->state == SIM_LINK_UP;
	}
	return ratio(held, seen);
}

static json_t *tables_json(const struct sim *s)
{
	uint64_t table = 0, links = 0, bad = 0, live = 0, servers = 0;

	for (uint32_t i = 0; i < s->n; i++) {
		struct p2p_overlay_stats st;

		if (!s->nodes[i].alive)
			continue;
		p2p_overlay_get_stats(s->nodes[i].ov, &st);
		live++;
		servers += s->nodes[i].server;
		table += st.table_size;
		links += st.links;
		bad += st.bad_msgs;
	}
	return json_pack("{s:I, s:I, s:f, s:f, s:I, s:f}", "live",
			 (json_int_t)live, "live_servers", (json_int_t)servers,
			 "table_size_mean", ratio((double)table, (double)live),
			 "links_mean", ratio((double)links, (double)live),
			 "bad_msgs", (json_int_t)bad, "clients_held_by_nearest",
			 clients_held(s));
}

/* The reach phase: how each pair got its link, or why not. */
static json_t *reach_json(const struct sim *s, int *ms)
{
	uint32_t by[P2P_REACH_M_RELAY + 1] = {0}, ok = 0, possible = 0;
	uint32_t failed_possible = 0, dep = 0, dep_ok = 0;
	size_t nms = 0;

	for (uint32_t r = 0; r < s->p.pairs; r++) {
		const struct sim_pair_rec *p = &s->pairs[r];
		possible += p->relay_possible;
		dep += p->dependent;
		if (p->done && p->ok) {
			ok++;
			dep_ok += p->dependent;
			by[p->method <= P2P_REACH_M_RELAY ? p->method : 0]++;
			ms[nms++] = (int)p->ms;
		} else if (p->relay_possible) {
			failed_possible++;
		}
	}
	return json_pack(
	    "{s:i, s:i, s:f, s:i, s:i, s:{s:f, s:f, s:f, s:f}, s:i, s:i, "
	    "s:o, s:I, s:I, s:i, s:s, s:b, s:{s:I, s:I, s:I, s:I}}",
	    "pairs", s->p.pairs, "linked", ok, "linked_rate",
	    ratio(ok, s->p.pairs), "reachable_pairs", possible,
	    "failed_reachable", failed_possible, "method_share", "existing",
	    ratio(by[P2P_REACH_M_EXISTING], ok), "dial",
	    ratio(by[P2P_REACH_M_DIAL], ok), "punch",
	    ratio(by[P2P_REACH_M_PUNCH], ok), "relay",
	    ratio(by[P2P_REACH_M_RELAY], ok), "dependent_pairs", dep,
	    "dependent_linked", dep_ok, "ms", dist(ms, nms), "relay_asks",
	    (json_int_t)s->reach_relay_asks, "lookups",
	    (json_int_t)s->reach_lookups, "max_circuits_on_one_node",
	    s->reach_max_circuits, "relay_candidates",
	    s->p.relays_lookup ? "lookup+links" : "links", "relay_with_punch",
	    s->p.relay_with_punch, "relay_finding", "msgs",
	    (json_int_t)(s->reach_relay_asks + s->reach_relay_refused), "asks",
	    (json_int_t)s->reach_relay_asks, "refused",
	    (json_int_t)s->reach_relay_refused, "dials",
	    (json_int_t)s->reach_relay_dials);
}

static json_t *params_json(const struct sim *s)
{
	uint32_t clients = 0;

	for (uint32_t i = 0; i < s->n; i++)
		clients += !s->nodes[i].server;
	return json_pack("{s:i, s:i, s:f, s:f, s:I, s:f, s:i, s:i, s:i}",
			 "nodes", s->n, "lookups", s->nlk, "churn", s->p.churn,
			 "clients", s->p.clients, "seed", (json_int_t)s->p.seed,
			 "loss", s->p.loss, "latency_ms", s->p.latency_ms,
			 "client_nodes", clients, "link_timeout_ms",
			 s->p.link_timeout_ms);
}

/* CPU seconds of this process: wall_s is unfair on a shared machine. */
static double cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int sim_report(const struct sim *s, double wall_s)
{
	size_t cap = (s->nlk > s->nrt ? s->nlk : s->nrt) + 1;
	int *hops = calloc(cap, sizeof(int)), *ms = calloc(cap, sizeof(int));
	size_t nhops;
	int err = -ENOMEM;

	if (!hops || !ms)
		goto out;
	json_t *o = params_json(s);
	json_t *lk = lookups_json(s, hops, ms, &nhops);
	double ok =
	    json_real_value(json_object_get(lk, "success_rate_before_churn"));

	if (s->p.churn > 0) {
		/* Over both phases, weighted by their server targets. */
		uint32_t okn = 0;

		for (uint32_t r = 0; r < s->nlk; r++)
			okn += s->lk[r].target_in_results &&
			       s->nodes[s->lk[r].target].server;
		ok = ratio(okn, json_integer_value(
				    json_object_get(lk, "server_targets")));
	}
	json_object_set_new(o, "success_rate", json_real(ok));
	json_object_set_new(o, "hops", dist(hops, nhops));
	json_object_set_new(o, "lookup_ms", dist(ms, nhops));
	json_object_set(o, "msgs_per_lookup",
			json_object_get(lk, "msgs_per_lookup"));
	json_object_set_new(o, "lookup", lk);
	json_object_set_new(o, "routed", routed_json(s, hops));
	json_object_set_new(o, "overlay", tables_json(s));
	if (s->p.pairs > 0) {
		int *rms = calloc(s->p.pairs, sizeof(int));
		if (!rms)
			goto out;
		json_object_set_new(o, "reach", reach_json(s, rms));
		free(rms);
	}
	json_object_set_new(o, "net", net_json(s));
	json_object_set_new(o, "settled_s", json_real(s->t_settled / 1000.0));
	json_object_set_new(o, "virtual_s", json_real(s->now / 1000.0));
	json_object_set_new(o, "wall_s", json_real(wall_s));
	json_object_set_new(o, "cpu_s", json_real(cpu_s()));
	json_object_set_new(o, "rss_mb", json_real(rss_mb()));
	err = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6))
		  ? -EIO
		  : 0;
	putchar('\n');
	json_decref(o);
out:
	free(hops);
	free(ms);
	return err;
}
