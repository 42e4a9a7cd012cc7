/*
 * p2psim: many overlay nodes in one process on a virtual clock and a
 * virtual network, deterministic from --seed; prints one JSON object.
 */
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

static const char usage[] =
    "usage: p2psim --nodes N --lookups L [--churn F] [--clients F]\n"
    "              [--seed S] [--loss P] [--latency-ms MEAN]\n"
    "              [--join-ms MS] [--settle-s S] [--link-timeout-ms MS]\n"
    "              [--dial-timeout-ms MS] [--interval-ms MS] [--log-level "
    "3..7]\n"
    "              [--pairs P] [--dependent F] [--relays links|lookup]\n"
    "              [--relay-with-punch]\n"
    "  --nodes N          nodes, 2..1000000 (required)\n"
    "  --lookups L        lookups, and as many routed messages (required)\n"
    "  --churn F          fraction of nodes crashed half-way through the\n"
    "                     lookups, 0 <= F <= 0.9 (default 0)\n"
    "  --clients F        fraction of nodes behind NAT (DHT clients),\n"
    "                     0 <= F <= 0.9 (default 0)\n"
    "  --seed S           PRNG seed (default 1)\n"
    "  --loss P           message loss probability, 0 <= P < 1 (default 0)\n"
    "  --latency-ms MEAN  mean one-way latency, 1..10000 (default 80)\n"
    "  --join-ms MS       interval between joins (default 20)\n"
    "  --settle-s S       quiet time after the last join (default 60)\n"
    "  --link-timeout-ms MS  survivors notice a crashed peer within the\n"
    "                     last third of this, 0 = never (default 75000)\n"
    "  --dial-timeout-ms MS  dial to a NAT or dead host fails after this\n"
    "                     (default 2000)\n"
    "  --interval-ms MS   between lookups and routed messages (default 20)\n"
    "  --log-level N      overlay log lines to stderr up to syslog level N\n"
    "  --pairs P          then P random pairs ask for a link through the\n"
    "                     daemon's reach core (default 0: no reach phase)\n"
    "  --dependent F      share of clients behind endpoint-dependent NATs\n"
    "                     (default 0.2)\n"
    "  --relays links|lookup  relay candidates: the servers the requester\n"
    "                     holds links to, or first the servers nearest\n"
    "                     the target from its lookup, dialled if need be\n"
    "                     (default lookup, as the daemon does)\n"
    "  --relay-with-punch ask relays while the punch runs\n";

static int bad(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "p2psim: invalid value '%s' for %s: %s\n", val, flag,
		why);
	fprintf(stderr, "try 'p2psim --help'\n");
	return -EINVAL;
}

static int parse_u64(const char *flag, const char *val, uint64_t min,
		     uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	if (val[0] < '0' || val[0] > '9')
		return bad(flag, val, "not a non-negative integer");
	unsigned long long v = strtoull(val, &end, 10);

	if (errno || *end)
		return bad(flag, val, "not an integer in range");
	if (v < min || v > max) {
		char why[96];

		snprintf(why, sizeof(why), "must be %llu..%llu",
			 (unsigned long long)min, (unsigned long long)max);
		return bad(flag, val, why);
	}
	*out = v;
	return 0;
}

static int parse_u32(const char *flag, const char *val, uint32_t min,
		     uint32_t max, uint32_t *out)
{
	uint64_t v;
	int r = parse_u64(flag, val, min, max, &v);

	if (r == 0)
		*out = (uint32_t)v;
	return r;
}

static int parse_frac(const char *flag, const char *val, double max,
		      double *out)
{
	char *end;

	errno = 0;
	double v = strtod(val, &end);

	if (errno || *end || end == val || !isfinite(v))
		return bad(flag, val, "not a number");
	if (v < 0 || v > max) {
		char why[64];

		snprintf(why, sizeof(why), "must be 0..%g", max);
		return bad(flag, val, why);
	}
	*out = v;
	return 0;
}

enum {
	OPT_NODES = 256,
	OPT_LOOKUPS,
	OPT_CHURN,
	OPT_CLIENTS,
	OPT_SEED,
	OPT_LOSS,
	OPT_LATENCY,
	OPT_JOIN,
	OPT_SETTLE,
	OPT_LINK_TIMEOUT,
	OPT_DIAL_TIMEOUT,
	OPT_INTERVAL,
	OPT_LOG,
	OPT_PAIRS,
	OPT_DEPENDENT,
	OPT_RELAYS,
	OPT_RELAY_WITH_PUNCH,
	OPT_HELP,
};

static const struct option opts[] = {
    {"nodes", required_argument, NULL, OPT_NODES},
    {"lookups", required_argument, NULL, OPT_LOOKUPS},
    {"churn", required_argument, NULL, OPT_CHURN},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"loss", required_argument, NULL, OPT_LOSS},
    {"latency-ms", required_argument, NULL, OPT_LATENCY},
    {"join-ms", required_argument, NULL, OPT_JOIN},
    {"settle-s", required_argument, NULL, OPT_SETTLE},
    {"link-timeout-ms", required_argument, NULL, OPT_LINK_TIMEOUT},
    {"dial-timeout-ms", required_argument, NULL, OPT_DIAL_TIMEOUT},
    {"interval-ms", required_argument, NULL, OPT_INTERVAL},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"pairs", required_argument, NULL, OPT_PAIRS},
    {"dependent", required_argument, NULL, OPT_DEPENDENT},
    {"relays", required_argument, NULL, OPT_RELAYS},
    {"relay-with-punch", no_argument, NULL, OPT_RELAY_WITH_PUNCH},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int parse_one(struct sim_params *p, int opt, const char *v)
{
	const char *f = NULL;

	for (const struct option *o = opts; o->name; o++)
		if (o->val == opt)
			f = o->name;
	switch (opt) {
	case OPT_NODES:
		return parse_u32(f, v, 2, SIM_NODES_MAX, &p->nodes);
	case OPT_LOOKUPS:
		return parse_u32(f, v, 0, 10000000, &p->lookups);
	case OPT_CHURN:
		return parse_frac(f, v, 0.9, &p->churn);
	case OPT_CLIENTS:
		return parse_frac(f, v, 0.9, &p->clients);
	case OPT_SEED:
		return parse_u64(f, v, 0, UINT64_MAX, &p->seed);
	case OPT_LOSS:
		return parse_frac(f, v, 0.99, &p->loss);
	case OPT_LATENCY:
		return parse_u32(f, v, 1, 10000, &p->latency_ms);
	case OPT_JOIN:
		return parse_u32(f, v, 0, 60000, &p->join_ms);
	case OPT_SETTLE: {
		uint32_t sec = 0;
		int r = parse_u32(f, v, 0, 86400, &sec);

		p->settle_ms = sec * 1000;
		return r;
	}
	case OPT_LINK_TIMEOUT:
		return parse_u32(f, v, 0, 3600000, &p->link_timeout_ms);
	case OPT_DIAL_TIMEOUT:
		return parse_u32(f, v, 1, 600000, &p->dial_timeout_ms);
	case OPT_INTERVAL:
		return parse_u32(f, v, 0, 60000, &p->interval_ms);
	case OPT_PAIRS:
		return parse_u32(f, v, 0, 1000000, &p->pairs);
	case OPT_DEPENDENT:
		return parse_frac(f, v, 1.0, &p->dependent);
	case OPT_RELAYS:
		if (strcmp(v, "links") && strcmp(v, "lookup"))
			return bad(f, v, "expected links or lookup");
		p->relays_lookup = !strcmp(v, "lookup");
		return 0;
	case OPT_RELAY_WITH_PUNCH:
		p->relay_with_punch = true;
		return 0;
	case OPT_LOG: {
		uint32_t lvl = 0;
		int r = parse_u32(f, v, 0, 7, &lvl);

		p->log_level = (int)lvl;
		return r;
	}
	}
	return -EINVAL;
}

/* 0, 1 for --help, or -EINVAL after printing why. */
static int parse_args(int argc, char **argv, struct sim_params *p)
{
	bool have_nodes = false, have_lookups = false;
	int opt;

	*p = (struct sim_params){
	    .seed = 1,
	    .latency_ms = SIM_LATENCY_MS,
	    .join_ms = 20,
	    .settle_ms = 60000,
	    .link_timeout_ms = SIM_LINK_TIMEOUT_MS,
	    .dial_timeout_ms = SIM_DIAL_TIMEOUT_MS,
	    .interval_ms = 20,
	    .log_level = -1,
	    .dependent = 0.2,
	    .relays_lookup = true,
	};
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == OPT_HELP)
			return 1;
		if (opt == '?' || opt == ':') {
			fprintf(
			    stderr,
			    "p2psim: unknown option or missing value: '%s'\n",
			    argv[optind - 1]);
			fprintf(stderr, "try 'p2psim --help'\n");
			return -EINVAL;
		}
		if (parse_one(p, opt, optarg) < 0)
			return -EINVAL;
		have_nodes |= opt == OPT_NODES;
		have_lookups |= opt == OPT_LOOKUPS;
	}
	if (optind < argc) {
		fprintf(stderr, "p2psim: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	if (!have_nodes || !have_lookups) {
		fprintf(stderr,
			"p2psim: --nodes and --lookups are required\n%s",
			usage);
		return -EINVAL;
	}
	return 0;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sim_params p;
	struct sim s;
	int r = parse_args(argc, argv, &p);

	if (r == 1) {
		fputs(usage, stdout);
		return 0;
	}
	if (r < 0)
		return EXIT_USAGE;
	double t0 = mono_s();

	r = sim_init(&s, &p);
	if (r == 0)
		r = sim_scenario_run(&s);
	if (r == 0)
		r = sim_report(&s, mono_s() - t0);
	if (r < 0)
		fprintf(stderr, "p2psim: %s\n", strerror(-r));
	sim_deinit(&s);
	return r < 0 ? 1 : 0;
}
