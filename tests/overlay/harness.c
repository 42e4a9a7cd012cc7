#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

uint64_t h_next(struct h_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ULL;
}

void h_random(void *ctx, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(h_next(ctx) >> 32);
}

struct p2p_peerid h_id_in_bucket(const struct p2p_peerid *self, int bucket,
				 uint32_t n)
{
	struct p2p_peerid id = *self;

	id.b[bucket / 8] ^= (uint8_t)(0x80u >> (bucket % 8));
	/* the tail lives in the last bytes, below any bucket we use */
	id.b[28] ^= (uint8_t)(n >> 24);
	id.b[29] ^= (uint8_t)(n >> 16);
	id.b[30] ^= (uint8_t)(n >> 8);
	id.b[31] ^= (uint8_t)n;
	return id;
}

struct p2p_peerid h_id_random(struct h_rng *r)
{
	struct p2p_peerid id;

	h_random(r, id.b, sizeof(id.b));
	return id;
}

struct p2p_addr h_addr4(int a, int b, int c, int d, uint16_t port)
{
	struct p2p_addr x;

	memset(&x, 0, sizeof(x));
	x.family = 4;
	x.ip[0] = (uint8_t)a;
	x.ip[1] = (uint8_t)b;
	x.ip[2] = (uint8_t)c;
	x.ip[3] = (uint8_t)d;
	x.port = port;
	return x;
}

void h_node_init(struct h_node *h, const struct p2p_peerid *id, bool server,
		 uint64_t seed)
{
	struct p2p_overlay_config cfg;

	memset(h, 0, sizeof(*h));
	h->id = *id;
	h->rng.s = seed ? seed : 88172645463325252ULL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.self = *id;
	cfg.server = server;
	cfg.random = h_random;
	cfg.ctx = &h->rng;
	h->o = p2p_overlay_new(&cfg);
	cr_assert_not_null(h->o);
}

static void free_data(struct h_node *h)
{
	for (size_t i = 0; i < h->log.n; i++) {
		free(h->log.v[i].data);
		h->log.v[i].data = NULL;
	}
}

void h_node_fini(struct h_node *h)
{
	p2p_overlay_free(h->o);
	free_data(h);
	free(h->log.v);
	h->log.v = NULL;
	h->log.n = 0;
}

void h_clear(struct h_node *h)
{
	h_drain(h);
	free_data(h);
	h->log.n = 0;
}

void h_drain(struct h_node *h)
{
	struct p2p_ov_action a;

	if (h->log.v == NULL)
		h->log.v = calloc(H_ACTS_MAX, sizeof(*h->log.v));
	cr_assert_not_null(h->log.v);
	while (p2p_overlay_poll(h->o, &a)) {
		struct h_act *x;

		cr_assert_lt(h->log.n, H_ACTS_MAX, "too many actions");
		x = &h->log.v[h->log.n++];
		x->a = a;
		x->data = NULL;
		if (a.data != NULL) {
			x->data = malloc(a.len ? a.len : 1);
			cr_assert_not_null(x->data);
			memcpy(x->data, a.data, a.len);
			x->a.data = x->data;
		}
		if (a.contacts != NULL) {
			cr_assert_leq(a.ncontacts, P2P_K);
			memcpy(x->contacts, a.contacts,
			       a.ncontacts * sizeof(a.contacts[0]));
			x->a.contacts = x->contacts;
		}
		if (a.type == P2P_OV_SEND)
			cr_assert_eq(p2p_msg_decode(&x->msg, x->data, a.len), 0,
				     "overlay sent an undecodable message");
	}
}

size_t h_count(const struct h_node *h, enum p2p_ov_action_type t, int msgtype)
{
	size_t n = 0;

	for (size_t i = 0; i < h->log.n; i++)
		if (h->log.v[i].a.type == t &&
		    (msgtype == 0 || h->log.v[i].msg.type == msgtype))
			n++;
	return n;
}

const struct h_act *h_find(const struct h_node *h, enum p2p_ov_action_type t,
			   int msgtype, size_t k)
{
	for (size_t i = 0; i < h->log.n; i++)
		if (h->log.v[i].a.type == t &&
		    (msgtype == 0 || h->log.v[i].msg.type == msgtype) &&
		    k-- == 0)
			return &h->log.v[i];
	return NULL;
}

void h_link_server(struct h_node *h, uint64_t now, const struct p2p_peerid *id,
		   const struct p2p_addr *addr)
{
	p2p_overlay_link_up(h->o, now, id, addr, true, true);
	h_drain(h);
}
