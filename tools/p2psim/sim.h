/*
 * p2psim internals: many p2p_overlay instances in one process, driven by
 * one event queue on a virtual clock over a virtual network.
 *
 * Network model (all of it documented in tools/p2psim/README.md):
 * - node i has the label address 20+(i>>16).(i>>8).(i&255).1:4242, one /24
 *   per node so that subnet diversity limits never bite by accident;
 * - one-way latency per pair is fixed, drawn uniformly from
 *   [latency/8, latency*15/8] by a hash of (seed, pair): mean = latency;
 * - DIAL to a live server: link_up at both ends after one RTT; DIAL to a
 *   client (behind NAT), a dead node or an unknown ID: dial_failed after
 *   dial_timeout;
 * - SEND: the bytes arrive after the one-way latency, are decoded with
 *   p2p_msg_decode and handed to p2p_overlay_recv; --loss drops a message
 *   with that probability;
 * - CLOSE: the closer forgets the link at once, the other end gets
 *   link_down after the one-way latency (TCP FIN);
 * - crashed nodes (churn) tell nobody: survivors get link_down only after
 *   2/3..1 x link_timeout_ms (the daemon's idle timeout, 75 s, with
 *   keepalives every 25 s), never if it is 0.
 */
#ifndef P2PSIM_SIM_H
#define P2PSIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "overlay/overlay.h"
#include "proto/msg.h"

#include "heap.h"
#include "rng.h"

#define SIM_PORT 4242
#define SIM_DIAL_TIMEOUT_MS 2000  /* SYN to a NAT or a dead host */
#define SIM_LINK_TIMEOUT_MS 75000 /* daemon idle timeout: crash noticed */
#define SIM_LATENCY_MS 80	  /* mean one-way latency */
#define SIM_JOIN_BOOTSTRAPS 3	  /* contacts given to a joining node */
#define SIM_MSG_TYPES 32	  /* counters per message type */
#define SIM_NODES_MAX 1000000
#define SIM_NO_REC UINT32_MAX
#define SIM_CLIENT_SAMPLE 1000 /* clients checked by the report */

enum sim_event_type {
	SIM_EV_TIMER,	    /* a: node, aux: timer generation */
	SIM_EV_MSG,	    /* a: to, b: from, buf: bytes */
	SIM_EV_DIAL_DONE,   /* a: dialler, b: target */
	SIM_EV_DIAL_FAIL,   /* a: dialler, b: target (UINT32_MAX: unknown) */
	SIM_EV_LINK_UP,	    /* a: node, b: peer; existing link redialled */
	SIM_EV_LINK_DOWN,   /* a: node, b: peer, aux: link generation */
	SIM_EV_JOIN,	    /* a: node */
	SIM_EV_LOOKUP,	    /* aux: lookup record */
	SIM_EV_ROUTE,	    /* aux: route record */
	SIM_EV_PAIR,	    /* aux: reach pair record (reach.c) */
	SIM_EV_REACH_IN,    /* aux: reach input record */
	SIM_EV_REACH_TIMER, /* a: node, aux: reach timer generation */
};

enum sim_link_state {
	SIM_LINK_DIALING = 1,
	SIM_LINK_UP = 2,
};

/* One end's view of a link. */
struct sim_link {
	uint32_t peer;
	uint8_t state;
	uint32_t gen; /* matches SIM_EV_LINK_DOWN to the link it ends */
};

struct sim_node {
	struct sim *sim; /* the overlay callbacks' ctx is the node */
	struct p2p_overlay *ov;
	struct p2p_peerid id;
	struct p2p_addr addr;
	bool alive, server, joined;
	uint32_t timer_gen;
	uint64_t timer_at; /* UINT64_MAX: none armed */
	struct sim_link *links;
	uint32_t nlinks, caplinks;
	uint32_t lookups; /* head of this node's pending lookup records */
};

struct sim_params {
	uint32_t nodes;
	uint32_t lookups;
	double churn, clients, loss;
	uint64_t seed;
	uint32_t latency_ms;
	uint32_t join_ms;	  /* interval between joins */
	uint32_t settle_ms;	  /* quiet time after the last join */
	uint32_t link_timeout_ms; /* 0: crashed peers are never noticed */
	uint32_t dial_timeout_ms;
	uint32_t interval_ms; /* between lookups, between routed messages */
	int log_level;	      /* overlay log lines to stderr up to this */
	uint32_t pairs;	      /* reach phase: random pairs (0: none) */
	double dependent;     /* share of clients endpoint-dependent */
	bool relays_lookup; /* core/reach relay_near: the target's lookup first
			     */
	bool relay_with_punch; /* core/reach: relays asked while punching */
};

/* A pair of the reach phase: src asks its reach core for a link to dst. */
struct sim_pair_rec {
	uint32_t src, dst;
	uint64_t started, ms;
	uint8_t method; /* enum p2p_reach_method */
	bool done, ok, relay_possible, dependent;
};

struct sim_counters {
	uint64_t msgs_sent, msgs_by_type[SIM_MSG_TYPES], bytes_sent;
	uint64_t msgs_received, msgs_lost, msgs_to_dead;
	uint64_t send_no_link, recv_no_link, decode_errors, recv_errors;
	uint64_t dials, dials_ok, dials_failed, dials_existing, dials_pending;
	uint64_t dials_unknown, dials_self, dials_wrong_addr;
	uint64_t dials_crossed, dials_cancelled;
	uint64_t closes, close_no_link, link_downs, timeout_downs;
	uint64_t events, timers;
};

struct sim_lookup_rec {
	uint32_t src, target, next;
	uint64_t ovid, started, finished;
	uint8_t phase; /* 0 before churn, 1 after */
	bool started_ok, done, target_in_results, found;
	int hops;
	double precision; /* share of results among the true k closest */
};

struct sim_route_rec {
	uint32_t src, dst;
	uint64_t msgid, sent_at;
	bool started_ok, delivered, failed, wrong_src;
	int hops;
	uint32_t deliveries;
};

struct sim_buf {
	struct sim_buf *next; /* free list link */
	uint32_t len, cap;
	uint8_t data[];
};

struct sim {
	struct sim_params p;
	struct sim_rng rng;
	struct sim_heap heap;
	uint64_t now;
	struct sim_node *nodes;
	uint32_t n;
	uint32_t *idmap; /* open addressing: node index + 1, 0 empty */
	size_t idmap_mask;
	struct sim_buf *free_small, *free_big;
	uint32_t link_gen;
	uint32_t *servers; /* joined server nodes, bootstrap candidates */
	uint32_t nservers;
	struct sim_counters c;
	struct sim_lookup_rec *lk;
	uint32_t nlk;
	struct sim_route_rec *rt;
	uint32_t nrt;
	/* What the lookup and route phases cost, all nodes together. */
	uint64_t lookup_msgs, lookup_dials, route_msgs;
	uint64_t t_settled; /* virtual time when the joins were done */
	uint64_t t_churn;
	bool oom;
	/* The reach phase (reach.c). */
	struct sim_reach *rc;
	struct sim_pair_rec *pairs;
	uint64_t reach_relay_asks, reach_lookups;
	/* relay finding: candidates dialled first, RELAY_OPENs refused (the
	 * relay held no link to the target) */
	uint64_t reach_relay_dials, reach_relay_refused;
	uint32_t reach_max_circuits;
};

/* sim.c */
int sim_init(struct sim *s, const struct sim_params *p);
void sim_deinit(struct sim *s);
uint32_t sim_find(const struct sim *s, const struct p2p_peerid *id);
void sim_schedule(struct sim *s, uint64_t at, uint8_t type, uint32_t a,
		  uint32_t b, uint32_t aux, void *buf);
/* Drain node i's actions and re-arm its timer: after every overlay call. */
void sim_after(struct sim *s, uint32_t i);
void sim_run_until(struct sim *s, uint64_t until);
void sim_kill(struct sim *s, uint32_t i);
uint32_t sim_latency(const struct sim *s, uint32_t a, uint32_t b);

/* net.c */
void sim_net_action(struct sim *s, uint32_t i, const struct p2p_ov_action *a);
void sim_net_event(struct sim *s, const struct sim_event *e);
struct sim_link *sim_link_find(struct sim_node *nd, uint32_t peer);
struct sim_buf *sim_buf_get(struct sim *s, size_t len);
void sim_buf_put(struct sim *s, struct sim_buf *b);

/* scenario.c */
void sim_app_event(struct sim *s, const struct sim_event *e);
void sim_app_action(struct sim *s, uint32_t i, const struct p2p_ov_action *a);
int sim_scenario_run(struct sim *s);

/* reach.c */
int sim_reach_run(struct sim *s);
void sim_reach_event(struct sim *s, const struct sim_event *e);
/* A lookup of a reach core's: true when it was one (then handled). */
bool sim_reach_lookup_done(struct sim *s, uint32_t i,
			   const struct p2p_ov_action *a);
void sim_reach_free(struct sim *s);

/* report.c */
int sim_report(const struct sim *s, double wall_s);

#endif
