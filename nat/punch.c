/*
 * TCP hole punching, sans-I/O: prediction, the signed signalling codec and
 * the connect schedule (see punch.h).
 */
#include <sodium.h>
#include <string.h>

#include "nat/punch.h"
#include "proto/error.h"

static const char sig_ctx[] = "p2pd-punch-v2";

/* ---- codec ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* One address field: family 4|6, or family 0 (none): all zero. */
static void put_addr(uint8_t *p, const struct p2p_addr *a)
{
	memset(p, 0, P2P_PUNCH_CAND_LEN);
	if (a->family == 0)
		return;
	p[0] = a->family;
	memcpy(p + 1, a->ip, a->family == 4 ? 4 : 16);
	put16(p + 17, a->port);
}

/* What the signature covers: context, destination, the signed bytes. */
static void sig_input(crypto_sign_state *st, const struct p2p_peerid *dst,
		      const uint8_t *body, size_t len)
{
	crypto_sign_init(st);
	crypto_sign_update(st, (const uint8_t *)sig_ctx, sizeof(sig_ctx) - 1);
	crypto_sign_update(st, dst->b, sizeof(dst->b));
	crypto_sign_update(st, body, len);
}

int p2p_punch_encode(const struct p2p_punch_sig *s,
		     const struct p2p_identity *self,
		     const struct p2p_peerid *dst, uint8_t *out, size_t cap,
		     size_t *outlen)
{
	crypto_sign_state st;
	size_t len, off;

	if (s->type < P2P_PUNCH_REQUEST || s->type > P2P_PUNCH_FAIL ||
	    s->reason >= P2P_PUNCH_R_MAX || s->ncand > P2P_PUNCH_CAND_MAX ||
	    (unsigned)s->nat > P2P_NAT_ENDPOINT_DEPENDENT ||
	    (s->seen.family != 0 && s->seen.family != 4 && s->seen.family != 6))
		return -EINVAL;
	for (size_t i = 0; i < s->ncand; i++)
		if (s->cand[i].family != 4 && s->cand[i].family != 6)
			return -EINVAL;
	len = P2P_PUNCH_PAYLOAD_MIN + s->ncand * P2P_PUNCH_CAND_LEN;
	if (cap < len)
		return -EMSGSIZE;
	out[0] = P2P_PUNCH_VERSION;
	out[1] = (uint8_t)s->type;
	put64(out + 2, s->nonce);
	put64(out + 10, s->time_ms);
	out[18] = (uint8_t)s->nat;
	out[19] = (uint8_t)s->reason;
	put16(out + 20, s->flags);
	put_addr(out + P2P_PUNCH_SEEN_OFF, &s->seen);
	out[P2P_PUNCH_NCAND_OFF] = (uint8_t)s->ncand;
	off = P2P_PUNCH_HDR_LEN;
	for (size_t i = 0; i < s->ncand; i++) {
		put_addr(out + off, &s->cand[i]);
		off += P2P_PUNCH_CAND_LEN;
	}
	memcpy(out + off, self->pk, P2P_PUNCH_PK_LEN);
	off += P2P_PUNCH_PK_LEN;
	sig_input(&st, dst, out, off);
	crypto_sign_final_create(&st, out + off, NULL, self->sk);
	*outlen = off + P2P_PUNCH_SIG_LEN;
	return 0;
}

static bool zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* An address field: family 4|6 (or 0 with every byte zero when absent
 * is allowed), no bytes past an IPv4 address, a port. */
static int get_addr(struct p2p_addr *a, const uint8_t *c, bool absent_ok)
{
	memset(a, 0, sizeof(*a));
	if (c[0] == 0 && absent_ok)
		return zero(c, P2P_PUNCH_CAND_LEN) ? 0 : -EPROTO;
	if ((c[0] != 4 && c[0] != 6) || (c[0] == 4 && !zero(c + 5, 12)))
		return -EPROTO;
	a->family = c[0];
	memcpy(a->ip, c + 1, 16);
	a->port = get16(c + 17);
	return a->port == 0 ? -EPROTO : 0;
}

int p2p_punch_decode(struct p2p_punch_sig *s, const uint8_t *in, size_t len,
		     const struct p2p_peerid *src, const struct p2p_peerid *dst)
{
	crypto_sign_state st;
	struct p2p_peerid who;
	size_t ncand, body;
	const uint8_t *pk;

	if (len < 1)
		return -EPROTO;
	if (in[0] != P2P_PUNCH_VERSION)
		return -EPROTONOSUPPORT;
	if (len < P2P_PUNCH_PAYLOAD_MIN)
		return -EPROTO;
	ncand = in[P2P_PUNCH_NCAND_OFF];
	if (ncand > P2P_PUNCH_CAND_MAX ||
	    len != P2P_PUNCH_PAYLOAD_MIN + ncand * P2P_PUNCH_CAND_LEN)
		return -EPROTO;
	if (in[1] < P2P_PUNCH_REQUEST || in[1] > P2P_PUNCH_FAIL ||
	    in[18] > P2P_NAT_ENDPOINT_DEPENDENT || in[19] >= P2P_PUNCH_R_MAX)
		return -EPROTO;
	body = P2P_PUNCH_HDR_LEN + ncand * P2P_PUNCH_CAND_LEN;
	pk = in + body;
	/* Who signed must be who the overlay says sent it. */
	p2p_peerid_from_pk(&who, pk);
	if (!p2p_peerid_equal(&who, src))
		return -EKEYREJECTED;
	sig_input(&st, dst, in, body + P2P_PUNCH_PK_LEN);
	if (crypto_sign_final_verify(&st, in + body + P2P_PUNCH_PK_LEN, pk) !=
	    0)
		return -EBADMSG;

	memset(s, 0, sizeof(*s));
	s->type = (enum p2p_punch_type)in[1];
	s->nonce = get64(in + 2);
	s->time_ms = get64(in + 10);
	s->nat = (enum p2p_nat_type)in[18];
	s->reason = (enum p2p_punch_reason)in[19];
	s->flags = get16(in + 20);
	if (get_addr(&s->seen, in + P2P_PUNCH_SEEN_OFF, true) < 0)
		return -EPROTO;
	s->ncand = ncand;
	for (size_t i = 0; i < ncand; i++)
		if (get_addr(&s->cand[i],
			     in + P2P_PUNCH_HDR_LEN + i * P2P_PUNCH_CAND_LEN,
			     false) < 0)
			return -EPROTO;
	return 0;
}

const char *p2p_punch_reason_text(enum p2p_punch_reason r)
{
	switch (r) {
	case P2P_PUNCH_R_NONE:
		return "no reason";
	case P2P_PUNCH_R_BOTH_DEPENDENT:
		return "both sides behind endpoint-dependent NATs (no port "
		       "prediction)";
	case P2P_PUNCH_R_BUSY:
		return "the peer runs too many hole punches";
	case P2P_PUNCH_R_TIMEOUT:
		return "no connection through the NATs";
	case P2P_PUNCH_R_NO_ANSWER:
		return "the peer did not answer the punch request";
	case P2P_PUNCH_R_NOT_LISTENING:
		return "no listen port to punch from on the peer's side";
	case P2P_PUNCH_R_LIMITED:
		return "the peer limits hole punch requests from this source; "
		       "try again later";
	case P2P_PUNCH_R_IMPLAUSIBLE:
		return "the peer found none of our addresses plausible";
	case P2P_PUNCH_R_MAX:
		break;
	}
	return "?";
}

/* ---- prediction ---- */

bool p2p_punch_predictable(enum p2p_nat_type t)
{
	return t != P2P_NAT_ENDPOINT_DEPENDENT;
}

bool p2p_punch_has_v6(const struct p2p_addr *cand, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cand[i].family == 6)
			return true;
	return false;
}

static size_t add(struct p2p_addr *out, size_t n, size_t max,
		  const struct p2p_addr *a)
{
	if (n >= max || a->port == 0 || (a->family != 4 && a->family != 6))
		return n;
	for (size_t i = 0; i < n; i++)
		if (p2p_addr_equal(&out[i], a))
			return n;
	out[n] = *a;
	return n + 1;
}

size_t p2p_punch_predict(const struct p2p_punch_local *in, struct p2p_addr *out,
			 size_t max)
{
	size_t n = 0;
	struct p2p_addr a;

	for (size_t i = 0; in->listen6 && i < in->nglobal6; i++) {
		a = in->global6[i];
		a.port = in->listen6;
		if (a.family == 6 && !p2p_addr_is_private(&a))
			n = add(out, n, max, &a);
	}
	switch (in->type) {
	case P2P_NAT_ENDPOINT_INDEPENDENT:
		if (in->mapped.family)
			n = add(out, n, max, &in->mapped);
		break;
	case P2P_NAT_NONE:
	case P2P_NAT_PORT_PRESERVING:
	case P2P_NAT_UNKNOWN:
		if (in->mapped.family && in->type != P2P_NAT_UNKNOWN)
			n = add(out, n, max, &in->mapped);
		for (size_t i = 0; i < in->nexternal; i++) {
			a = in->external[i];
			a.port = in->listen_port;
			n = add(out, n, max, &a);
		}
		break;
	case P2P_NAT_ENDPOINT_DEPENDENT:
		break; /* the port changes per destination: nothing to say */
	}
	for (size_t i = 0; i < in->nlan; i++) {
		a = in->lan[i];
		a.port = in->listen_port;
		n = add(out, n, max, &a);
	}
	return n;
}

/* ---- scheduling ---- */

static struct p2p_punch_action *push(struct p2p_punch *p,
				     enum p2p_punch_action_type t, size_t idx,
				     enum p2p_punch_reason r)
{
	static struct p2p_punch_action sink; /* written, never read */
	struct p2p_punch_action *a;

	if (p->qlen == P2P_PUNCH_QUEUE)
		return &sink; /* cannot happen: <= 2 per candidate + 2 */
	a = &p->q[(p->qhead + p->qlen++) % P2P_PUNCH_QUEUE];
	memset(a, 0, sizeof(*a));
	a->type = t;
	a->idx = idx;
	a->reason = r;
	if (idx < p->n)
		a->addr = p->c[idx].addr;
	return a;
}

void p2p_punch_init(struct p2p_punch *p, const struct p2p_addr *cand, size_t n,
		    uint64_t start, bool primer)
{
	bool v6;

	memset(p, 0, sizeof(*p));
	p->n = n > P2P_PUNCH_CAND_MAX ? P2P_PUNCH_CAND_MAX : n;
	v6 = p2p_punch_has_v6(cand, p->n);
	for (size_t i = 0; i < p->n; i++) {
		p->c[i].addr = cand[i];
		p->c[i].state = P2P_PUNCH_C_WAIT;
		/* Happy eyeballs: IPv6 first (see P2P_PUNCH_V4_HEADSTART_MS).
		 */
		p->c[i].at = v6 && cand[i].family == 4
				 ? start + P2P_PUNCH_V4_HEADSTART_MS
				 : start;
	}
	p->primer = primer;
	p->start = start;
	p->end = start + P2P_PUNCH_TOTAL_MS;
}

/* Stop every attempt but keep (SIZE_MAX: none). */
static void abort_all(struct p2p_punch *p, size_t keep)
{
	for (size_t i = 0; i < p->n; i++) {
		if (i != keep && p->c[i].state != P2P_PUNCH_C_WAIT)
			push(p, P2P_PUNCH_ABORT, i, P2P_PUNCH_R_NONE);
		p->c[i].state = P2P_PUNCH_C_WAIT;
	}
}

void p2p_punch_tick(struct p2p_punch *p, uint64_t now)
{
	if (p->done)
		return;
	if (now >= p->end) {
		p->done = true;
		abort_all(p, SIZE_MAX);
		push(p, P2P_PUNCH_FAILED, SIZE_MAX, P2P_PUNCH_R_TIMEOUT);
		return;
	}
	for (size_t i = 0; i < p->n; i++) {
		if (now < p->c[i].at)
			continue;
		if (p->c[i].state == P2P_PUNCH_C_CONNECTING) {
			/* SYN unanswered (a dropping NAT): start over. */
			p->timeouts++;
			push(p, P2P_PUNCH_ABORT, i, P2P_PUNCH_R_NONE);
			p->c[i].state = P2P_PUNCH_C_WAIT;
			p->c[i].at = now + P2P_PUNCH_RETRY_MS;
		} else if (p->c[i].state == P2P_PUNCH_C_WAIT) {
			p->attempts++;
			push(p, P2P_PUNCH_CONNECT, i, P2P_PUNCH_R_NONE)->ttl =
			    !p->primer				 ? 0
			    : p->prime_ttl == P2P_PUNCH_FULL_TTL ? 0
			    : p->prime_ttl > 0			 ? p->prime_ttl
			    : p->c[i].tries % 2 == 0 ? P2P_PUNCH_PRIME_TTL
						     : P2P_PUNCH_PRIME_TTL_MAX;
			p->c[i].tries++;
			p->c[i].state = P2P_PUNCH_C_CONNECTING;
			p->c[i].at = now + (p->primer ? P2P_PUNCH_PRIME_HOLD_MS
						      : P2P_PUNCH_ATTEMPT_MS);
		}
	}
}

void p2p_punch_connected(struct p2p_punch *p, uint64_t now, size_t idx)
{
	if (p->done || idx >= p->n || p->c[idx].state != P2P_PUNCH_C_CONNECTING)
		return;
	p->c[idx].state = P2P_PUNCH_C_VERIFYING;
	p->c[idx].at = p->end; /* the handshake has its own deadline */
}

void p2p_punch_conn_failed(struct p2p_punch *p, uint64_t now, size_t idx,
			   bool refused)
{
	if (p->done || idx >= p->n || p->c[idx].state == P2P_PUNCH_C_WAIT)
		return;
	if (refused)
		p->refused++;
	p->c[idx].state = P2P_PUNCH_C_WAIT;
	p->c[idx].at = now + P2P_PUNCH_RETRY_MS;
}

void p2p_punch_held(struct p2p_punch *p, uint64_t now, size_t idx)
{
	(void)now;
	if (p->done || idx >= p->n || p->c[idx].state != P2P_PUNCH_C_CONNECTING)
		return;
	p->held++; /* its deadline (tick) stands: the next try comes then */
}

void p2p_punch_verified(struct p2p_punch *p, uint64_t now, size_t idx)
{
	if (p->done)
		return;
	p->done = true;
	abort_all(p, idx < p->n ? idx : SIZE_MAX);
	push(p, P2P_PUNCH_SUCCESS, idx < p->n ? idx : SIZE_MAX,
	     P2P_PUNCH_R_NONE);
}

bool p2p_punch_poll(struct p2p_punch *p, struct p2p_punch_action *a)
{
	if (p->qlen == 0)
		return false;
	*a = p->q[p->qhead];
	p->qhead = (p->qhead + 1) % P2P_PUNCH_QUEUE;
	p->qlen--;
	return true;
}

uint64_t p2p_punch_next_timer(const struct p2p_punch *p)
{
	uint64_t t = p->end;

	if (p->done)
		return UINT64_MAX;
	for (size_t i = 0; i < p->n; i++)
		if (p->c[i].state != P2P_PUNCH_C_VERIFYING && p->c[i].at < t)
			t = p->c[i].at;
	return t;
}
