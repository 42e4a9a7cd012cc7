/*
 * Test helpers for the overlay: deterministic randomness, IDs placed in
 * chosen buckets, and a recorder that copies drained actions so tests can
 * look at them after later calls.
 */
#ifndef TEST_OVERLAY_HARNESS_H
#define TEST_OVERLAY_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "overlay/overlay.h"
#include "proto/msg.h"

#define H_ACTS_MAX 4096

struct h_rng {
	uint64_t s;
};

/* xorshift64*, for the overlay's random callback (ctx is a struct h_rng). */
void h_random(void *ctx, void *buf, size_t len);
uint64_t h_next(struct h_rng *r);

/* An ID sharing exactly `bucket` leading bits with self, tail from n. */
struct p2p_peerid h_id_in_bucket(const struct p2p_peerid *self, int bucket,
				 uint32_t n);
struct p2p_peerid h_id_random(struct h_rng *r);
struct p2p_addr h_addr4(int a, int b, int c, int d, uint16_t port);

/* A copied action; data and contacts point into the copy. */
struct h_act {
	struct p2p_ov_action a;
	uint8_t *data; /* malloc'd copy */
	struct p2p_contact contacts[P2P_K];
	struct p2p_msg msg; /* decoded when a.type == P2P_OV_SEND */
};

struct h_log {
	struct h_act *v;
	size_t n;
};

struct h_node {
	struct p2p_overlay *o;
	struct p2p_peerid id;
	struct h_rng rng;
	struct h_log log;
};

/* New overlay with self id (server or client), fresh recorder. */
void h_node_init(struct h_node *h, const struct p2p_peerid *id, bool server,
		 uint64_t seed);
void h_node_fini(struct h_node *h);
/* Drain the overlay's actions into h->log (appended). */
void h_drain(struct h_node *h);
void h_clear(struct h_node *h);
/* Count actions of a type (and of a message type when SEND, 0: any). */
size_t h_count(const struct h_node *h, enum p2p_ov_action_type t, int msgtype);
/* The i-th action of that type, or NULL. */
const struct h_act *h_find(const struct h_node *h, enum p2p_ov_action_type t,
			   int msgtype, size_t i);
/* Bring up a server link to id with address addr. */
void h_link_server(struct h_node *h, uint64_t now, const struct p2p_peerid *id,
		   const struct p2p_addr *addr);

#endif
