/*
 * PCP and NAT-PMP codecs and the mapping state machine (nat/portmap.h).
 * Layouts follow RFC 6887 section 7 (header) and 11.1 (MAP), RFC 6886
 * sections 3.2 and 3.3; every multi-byte field is big-endian.
 */
#include "nat/portmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* PCP carries every address in 16 bytes, IPv4 as ::ffff:a.b.c.d. */
static int put_ip(uint8_t *p, const struct p2p_addr *a)
{
	memset(p, 0, 16);
	if (a->family == 4) {
		p[10] = p[11] = 0xff;
		memcpy(p + 12, a->ip, 4);
		return 0;
	}
	if (a->family == 6) {
		memcpy(p, a->ip, 16);
		return 0;
	}
	return -EINVAL;
}

static void get_ip(struct p2p_addr *a, const uint8_t *p)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};

	memset(a, 0, sizeof(*a));
	if (!memcmp(p, mapped, sizeof(mapped))) {
		a->family = 4;
		memcpy(a->ip, p + 12, 4);
	} else {
		a->family = 6;
		memcpy(a->ip, p, 16);
	}
}

int p2p_pcp_encode(const struct p2p_pcp_msg *m, uint8_t *out, size_t cap,
		   size_t *len)
{
	size_t n = P2P_PCP_HDR_LEN + (m->has_map ? P2P_PCP_MAP_LEN : 0);

	if (m->response)
		return -EINVAL;
	if (cap < n)
		return -EMSGSIZE;
	memset(out, 0, n);
	out[0] = P2P_PCP_VERSION;
	out[1] = m->opcode & 0x7f;
	put32(out + 4, m->lifetime);
	if (put_ip(out + 8, &m->client) < 0)
		return -EINVAL;
	if (m->has_map) {
		uint8_t *b = out + P2P_PCP_HDR_LEN;
		memcpy(b, m->nonce, P2P_PCP_NONCE_LEN);
		b[12] = m->protocol;
		put16(b + 16, m->internal_port);
		put16(b + 18, m->external.port);
		if (put_ip(b + 20, &m->external) < 0)
			return -EINVAL;
	}
	*len = n;
	return 0;
}

/* Options (RFC 6887 section 7.3): code, reserved, length, data padded to
 * 4 bytes. We ask for none and act on none; they only have to fit. */
static int skip_options(const uint8_t *buf, size_t off, size_t len)
{
	while (off < len) {
		size_t olen;
		if (len - off < 4)
			return -EPROTO;
		olen = ((size_t)get16(buf + off + 2) + 3) & ~(size_t)3;
		if (olen > len - off - 4)
			return -EPROTO;
		off += 4 + olen;
	}
	return 0;
}

int p2p_pcp_decode(struct p2p_pcp_msg *m, const uint8_t *buf, size_t len)
{
	memset(m, 0, sizeof(*m));
	if (len < 1)
		return -EPROTO;
	if (buf[0] != P2P_PCP_VERSION)
		return -EPROTONOSUPPORT;
	if (len > P2P_PCP_MAX)
		return -EMSGSIZE;
	if (len < P2P_PCP_HDR_LEN || len % 4 != 0 ||
	    !(buf[1] & P2P_PCP_RESPONSE))
		return -EPROTO;
	m->response = true;
	m->opcode = buf[1] & 0x7f;
	m->result = buf[3];
	m->lifetime = get32(buf + 4);
	m->epoch = get32(buf + 8);
	if (m->opcode == P2P_PCP_OP_ANNOUNCE)
		return skip_options(buf, P2P_PCP_HDR_LEN, len);
	if (m->opcode != P2P_PCP_OP_MAP)
		return 0; /* another opcode's body: not ours to read */
	if (len == P2P_PCP_HDR_LEN && m->result != P2P_PCP_SUCCESS)
		return 0; /* a bare error header (RFC 6887 section 8.3) */
	if (len < P2P_PCP_HDR_LEN + P2P_PCP_MAP_LEN)
		return -EPROTO;
	{
		const uint8_t *b = buf + P2P_PCP_HDR_LEN;
		m->has_map = true;
		memcpy(m->nonce, b, P2P_PCP_NONCE_LEN);
		m->protocol = b[12];
		m->internal_port = get16(b + 16);
		get_ip(&m->external, b + 20);
		m->external.port = get16(b + 18);
	}
	return skip_options(buf, P2P_PCP_HDR_LEN + P2P_PCP_MAP_LEN, len);
}

int p2p_natpmp_encode(const struct p2p_natpmp_msg *m, uint8_t *out, size_t cap,
		      size_t *len)
{
	if (m->response)
		return -EINVAL;
	if (m->opcode == P2P_NATPMP_OP_ADDR) {
		if (cap < P2P_NATPMP_ADDR_REQ_LEN)
			return -EMSGSIZE;
		out[0] = P2P_NATPMP_VERSION;
		out[1] = P2P_NATPMP_OP_ADDR;
		*len = P2P_NATPMP_ADDR_REQ_LEN;
		return 0;
	}
	if (m->opcode != 1 && m->opcode != P2P_NATPMP_OP_MAP_TCP)
		return -EINVAL;
	if (cap < P2P_NATPMP_MAP_LEN)
		return -EMSGSIZE;
	out[0] = P2P_NATPMP_VERSION;
	out[1] = m->opcode;
	out[2] = out[3] = 0;
	put16(out + 4, m->internal_port);
	put16(out + 6, m->external_port);
	put32(out + 8, m->lifetime);
	*len = P2P_NATPMP_MAP_LEN;
	return 0;
}

int p2p_natpmp_decode(struct p2p_natpmp_msg *m, const uint8_t *buf, size_t len)
{
	memset(m, 0, sizeof(*m));
	if (len < 1)
		return -EPROTO;
	if (buf[0] != P2P_NATPMP_VERSION)
		return -EPROTONOSUPPORT;
	if (len < 8 || buf[1] < P2P_NATPMP_RESPONSE)
		return -EPROTO;
	m->response = true;
	m->opcode = (uint8_t)(buf[1] - P2P_NATPMP_RESPONSE);
	m->result = get16(buf + 2);
	m->epoch = get32(buf + 4);
	if (m->result != P2P_NATPMP_SUCCESS) {
		/* Error answers carry at least the common part; servers
		 * differ in whether they pad it to the opcode's size. */
		return len <= P2P_NATPMP_MAP_RESP_LEN && len % 4 == 0 ? 0
								      : -EPROTO;
	}
	if (m->opcode == P2P_NATPMP_OP_ADDR) {
		if (len != P2P_NATPMP_ADDR_RESP_LEN)
			return -EPROTO;
		memcpy(m->external_ip, buf + 8, 4);
		return 0;
	}
	if ((m->opcode != 1 && m->opcode != P2P_NATPMP_OP_MAP_TCP) ||
	    len != P2P_NATPMP_MAP_RESP_LEN)
		return -EPROTO;
	m->internal_port = get16(buf + 8);
	m->external_port = get16(buf + 10);
	m->lifetime = get32(buf + 12);
	return 0;
}

/* ---- the state machine ---- */

enum req {
	REQ_NONE = 0,
	REQ_PCP,
	REQ_NATPMP_ADDR,
	REQ_NATPMP_MAP,
};

enum phase {
	PH_IDLE = 0, /* not started */
	PH_RUN,	     /* asking, or mapped */
	PH_FAILED,   /* nobody answered or the gateway refused */
	PH_STOPPED,
};

struct p2p_pmap {
	struct p2p_pmap_config cfg;
	enum phase phase;
	enum req req;
	struct p2p_addr client;
	uint8_t nonce[P2P_PCP_NONCE_LEN];
	unsigned tries;
	uint32_t rt_ms;
	uint64_t rtx_at;   /* next retransmission of req */
	uint64_t retry_at; /* PH_FAILED: start again */
	/* The mapping held, if any. */
	bool mapped;
	enum p2p_pmap_proto proto;
	struct p2p_addr external;
	uint64_t expires, renew_at;
	uint32_t renewals;
	uint8_t natpmp_ip[4];
	/* The server's epoch at our last response (RFC 6887 section 8.5). */
	bool have_epoch;
	uint32_t epoch;
	uint64_t epoch_at;
	struct p2p_pmap_action q[P2P_PMAP_QUEUE];
	size_t qhead, qlen;
};

struct p2p_pmap *p2p_pmap_new(const struct p2p_pmap_config *cfg)
{
	struct p2p_pmap *pm;

	if (!cfg || cfg->internal_port == 0 || !cfg->random)
		return NULL;
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	pm->cfg = *cfg;
	if (pm->cfg.lifetime_s == 0)
		pm->cfg.lifetime_s = P2P_PMAP_LIFETIME_S;
	return pm;
}

void p2p_pmap_free(struct p2p_pmap *pm)
{
	free(pm);
}

static struct p2p_pmap_action *push(struct p2p_pmap *pm,
				    enum p2p_pmap_action_type t)
{
	struct p2p_pmap_action *a;

	if (pm->qlen == P2P_PMAP_QUEUE) /* the oldest goes: stale anyway */
		pm->qhead = (pm->qhead + 1) % P2P_PMAP_QUEUE, pm->qlen--;
	a = &pm->q[(pm->qhead + pm->qlen++) % P2P_PMAP_QUEUE];
	memset(a, 0, sizeof(*a));
	a->type = t;
	return a;
}

static void changed(struct p2p_pmap *pm)
{
	push(pm, P2P_PMAP_CHANGED);
}

/* The request for req, with lifetime (0: delete). */
static void send_req(struct p2p_pmap *pm, enum req req, uint32_t lifetime)
{
	struct p2p_pmap_action *a = push(pm, P2P_PMAP_SEND);
	int rc;

	if (req == REQ_PCP) {
		struct p2p_pcp_msg m = {
		    .opcode = P2P_PCP_OP_MAP,
		    .lifetime = lifetime,
		    .client = pm->client,
		    .has_map = true,
		    .protocol = P2P_PCP_PROTO_TCP,
		    .internal_port = pm->cfg.internal_port,
		    .external = {.family = 4, .port = pm->cfg.internal_port},
		};
		memcpy(m.nonce, pm->nonce, sizeof(m.nonce));
		/* Ask for what we hold (a renewal keeps it), else for our
		 * own port number on any external address. */
		if (pm->mapped && pm->proto == P2P_PMAP_PCP)
			m.external = pm->external;
		rc = p2p_pcp_encode(&m, a->buf, sizeof(a->buf), &a->len);
	} else {
		struct p2p_natpmp_msg m = {
		    .opcode = req == REQ_NATPMP_ADDR ? P2P_NATPMP_OP_ADDR
						     : P2P_NATPMP_OP_MAP_TCP,
		    .internal_port = pm->cfg.internal_port,
		    .external_port = pm->cfg.internal_port,
		    .lifetime = lifetime,
		};
		if (pm->mapped && pm->proto == P2P_PMAP_NATPMP)
			m.external_port = pm->external.port;
		if (lifetime == 0) /* RFC 6886 section 3.4 */
			m.external_port = 0;
		rc = p2p_natpmp_encode(&m, a->buf, sizeof(a->buf), &a->len);
	}
	if (rc < 0) /* cannot happen with the sizes above; send nothing */
		a->len = 0;
}

static uint32_t jitter(struct p2p_pmap *pm, uint32_t ms)
{
	uint32_t r;

	/* +-10% (RFC 6887 section 8.1.1's RAND) */
	pm->cfg.random(pm->cfg.ctx, &r, sizeof(r));
	return ms - ms / 10 + (uint32_t)((uint64_t)r % (ms / 5 + 1));
}

/* Send req now and schedule its retransmissions from the first. */
static void ask(struct p2p_pmap *pm, uint64_t now, enum req req)
{
	pm->req = req;
	pm->tries = 1;
	pm->rt_ms = req == REQ_PCP ? jitter(pm, P2P_PMAP_PCP_IRT_MS)
				   : P2P_PMAP_NATPMP_IRT_MS;
	pm->rtx_at = now + pm->rt_ms;
	send_req(pm, req, pm->cfg.lifetime_s);
}

static void lose_mapping(struct p2p_pmap *pm)
{
	if (!pm->mapped)
		return;
	pm->mapped = false;
	pm->proto = P2P_PMAP_NONE;
	memset(&pm->external, 0, sizeof(pm->external));
	changed(pm);
}

static void fail(struct p2p_pmap *pm, uint64_t now)
{
	lose_mapping(pm);
	pm->req = REQ_NONE;
	pm->phase = PH_FAILED;
	pm->retry_at = now + P2P_PMAP_RETRY_MS;
}

int p2p_pmap_start(struct p2p_pmap *pm, uint64_t now,
		   const struct p2p_addr *client)
{
	if (!client || client->family != 4 || pm->phase == PH_STOPPED)
		return -EINVAL;
	lose_mapping(pm);
	pm->client = *client;
	pm->have_epoch = false;
	pm->phase = PH_RUN;
	/* A fresh nonce: a new client address is a new mapping. */
	pm->cfg.random(pm->cfg.ctx, pm->nonce, sizeof(pm->nonce));
	ask(pm, now, REQ_PCP);
	return 0;
}

void p2p_pmap_reset(struct p2p_pmap *pm)
{
	if (pm->phase == PH_STOPPED)
		return;
	lose_mapping(pm);
	pm->req = REQ_NONE;
	pm->phase = PH_IDLE;
}

/*
 * RFC 6887 section 8.5 (and RFC 6886 section 3.6): the server's epoch
 * must advance with our clock, within 1/16 and 2 s of slack. True when it
 * did not: the gateway lost its state (rebooted).
 */
static bool epoch_reset(struct p2p_pmap *pm, uint64_t now, uint32_t epoch)
{
	bool reset = false;

	if (pm->have_epoch) {
		uint64_t cd = (now - pm->epoch_at) / 1000;
		uint64_t sd = epoch >= pm->epoch ? epoch - pm->epoch : 0;
		if (epoch + 1 < pm->epoch || cd + 2 < sd - sd / 16 ||
		    sd + 2 < cd - cd / 16)
			reset = true;
	}
	pm->have_epoch = true;
	pm->epoch = epoch;
	pm->epoch_at = now;
	return reset;
}

/* A mapping granted: lifetime in s, external IP and port. */
static void granted(struct p2p_pmap *pm, uint64_t now,
		    enum p2p_pmap_proto proto, const struct p2p_addr *ext,
		    uint32_t lifetime)
{
	uint64_t half = (uint64_t)lifetime * 500;
	bool same = pm->mapped && pm->proto == proto &&
		    p2p_addr_equal(&pm->external, ext);

	pm->req = REQ_NONE;
	pm->phase = PH_RUN;
	pm->mapped = true;
	pm->proto = proto;
	pm->external = *ext;
	pm->expires = now + (uint64_t)lifetime * 1000;
	pm->renew_at =
	    now + (half < P2P_PMAP_RENEW_MIN_MS ? P2P_PMAP_RENEW_MIN_MS : half);
	if (same)
		pm->renewals++;
	else
		changed(pm);
}

/* An unsolicited sign of a reboot while we hold a mapping: map again. */
static void remap(struct p2p_pmap *pm, uint64_t now)
{
	if (pm->mapped && pm->req == REQ_NONE)
		ask(pm, now,
		    pm->proto == P2P_PMAP_PCP ? REQ_PCP : REQ_NATPMP_MAP);
}

static int on_pcp(struct p2p_pmap *pm, uint64_t now,
		  const struct p2p_pcp_msg *m)
{
	bool reset = epoch_reset(pm, now, m->epoch);

	if (m->opcode == P2P_PCP_OP_ANNOUNCE) {
		if (reset)
			remap(pm, now);
		return 0;
	}
	if (pm->req != REQ_PCP || m->opcode != P2P_PCP_OP_MAP)
		return -ENOENT;
	if (m->has_map &&
	    (memcmp(m->nonce, pm->nonce, sizeof(pm->nonce)) != 0 ||
	     m->protocol != P2P_PCP_PROTO_TCP ||
	     m->internal_port != pm->cfg.internal_port))
		return -ENOENT;
	if (m->result == P2P_PCP_UNSUPP_VERSION) {
		lose_mapping(pm);
		ask(pm, now, REQ_NATPMP_ADDR);
		return 0;
	}
	if (m->result != P2P_PCP_SUCCESS || !m->has_map || m->lifetime == 0 ||
	    m->external.family != 4) {
		fail(pm, now); /* refused: NAT-PMP is the same server */
		return 0;
	}
	granted(pm, now, P2P_PMAP_PCP, &m->external, m->lifetime);
	return 0;
}

static int on_natpmp(struct p2p_pmap *pm, uint64_t now,
		     const struct p2p_natpmp_msg *m)
{
	bool reset = epoch_reset(pm, now, m->epoch);
	struct p2p_addr ext = {.family = 4};

	if (pm->req == REQ_PCP) {
		/* A NAT-PMP-only server's answer to PCP (RFC 6887
		 * section 9): it speaks version 0. */
		ask(pm, now, REQ_NATPMP_ADDR);
		return 0;
	}
	if (m->opcode == P2P_NATPMP_OP_ADDR && pm->req != REQ_NATPMP_ADDR) {
		if (reset)
			remap(pm, now);
		return 0;
	}
	if (m->opcode == P2P_NATPMP_OP_ADDR) {
		if (m->result != P2P_NATPMP_SUCCESS) {
			fail(pm, now);
			return 0;
		}
		memcpy(pm->natpmp_ip, m->external_ip, 4);
		ask(pm, now, REQ_NATPMP_MAP);
		return 0;
	}
	if (pm->req != REQ_NATPMP_MAP || m->opcode != P2P_NATPMP_OP_MAP_TCP ||
	    (m->result == P2P_NATPMP_SUCCESS &&
	     m->internal_port != pm->cfg.internal_port))
		return -ENOENT;
	if (m->result != P2P_NATPMP_SUCCESS || m->lifetime == 0 ||
	    m->external_port == 0) {
		fail(pm, now);
		return 0;
	}
	memcpy(ext.ip, pm->natpmp_ip, 4);
	ext.port = m->external_port;
	granted(pm, now, P2P_PMAP_NATPMP, &ext, m->lifetime);
	return 0;
}

int p2p_pmap_input(struct p2p_pmap *pm, uint64_t now, const uint8_t *buf,
		   size_t len)
{
	int rc;

	if (pm->phase == PH_IDLE || pm->phase == PH_STOPPED || len < 1)
		return len < 1 ? -EPROTO : -ENOENT;
	if (buf[0] == P2P_PCP_VERSION) {
		struct p2p_pcp_msg m;
		if ((rc = p2p_pcp_decode(&m, buf, len)) < 0)
			return rc;
		return on_pcp(pm, now, &m);
	}
	if (buf[0] == P2P_NATPMP_VERSION) {
		struct p2p_natpmp_msg m;
		if ((rc = p2p_natpmp_decode(&m, buf, len)) < 0)
			return rc;
		return on_natpmp(pm, now, &m);
	}
	return -EPROTONOSUPPORT;
}

/* The protocol being tried has nobody, or nobody answering, behind it. */
static void give_up(struct p2p_pmap *pm, uint64_t now)
{
	if (pm->req == REQ_PCP) {
		ask(pm, now, REQ_NATPMP_ADDR);
		return;
	}
	if (pm->mapped) {
		/* A renewal unanswered: keep the mapping while it lasts. */
		pm->req = REQ_NONE;
		pm->renew_at = pm->expires;
		return;
	}
	fail(pm, now);
}

void p2p_pmap_unreachable(struct p2p_pmap *pm, uint64_t now)
{
	if (pm->phase == PH_RUN && pm->req != REQ_NONE)
		give_up(pm, now);
}

void p2p_pmap_stop(struct p2p_pmap *pm, uint64_t now)
{
	(void)now;
	if (pm->phase == PH_STOPPED)
		return;
	if (pm->mapped)
		send_req(pm,
			 pm->proto == P2P_PMAP_PCP ? REQ_PCP : REQ_NATPMP_MAP,
			 0);
	else if (pm->req == REQ_PCP || pm->req == REQ_NATPMP_MAP)
		send_req(pm, pm->req, 0); /* an answer we may not have seen */
	lose_mapping(pm);
	pm->req = REQ_NONE;
	pm->phase = PH_STOPPED;
}

uint64_t p2p_pmap_next(const struct p2p_pmap *pm)
{
	uint64_t t = UINT64_MAX;

	if (pm->phase == PH_FAILED)
		return pm->retry_at;
	if (pm->phase != PH_RUN)
		return t;
	if (pm->req != REQ_NONE)
		t = pm->rtx_at;
	if (pm->mapped) {
		if (pm->req == REQ_NONE && pm->renew_at < t)
			t = pm->renew_at;
		if (pm->expires < t)
			t = pm->expires;
	}
	return t;
}

static unsigned max_tries(enum req req)
{
	return req == REQ_PCP ? P2P_PMAP_PCP_TRIES : P2P_PMAP_NATPMP_TRIES;
}

void p2p_pmap_expire(struct p2p_pmap *pm, uint64_t now)
{
	if (pm->phase == PH_FAILED && now >= pm->retry_at) {
		pm->phase = PH_RUN;
		pm->have_epoch = false;
		ask(pm, now, REQ_PCP);
		return;
	}
	if (pm->phase != PH_RUN)
		return;
	if (pm->mapped && now >= pm->expires) {
		/* Lifetime over without a renewal: start over. */
		lose_mapping(pm);
		ask(pm, now, REQ_PCP);
		return;
	}
	if (pm->req != REQ_NONE && now >= pm->rtx_at) {
		if (pm->tries >= max_tries(pm->req)) {
			give_up(pm, now);
			return;
		}
		pm->tries++;
		pm->rt_ms = pm->req == REQ_PCP ? jitter(pm, 2 * pm->rt_ms)
					       : 2 * pm->rt_ms;
		pm->rtx_at = now + pm->rt_ms;
		send_req(pm, pm->req, pm->cfg.lifetime_s);
		return;
	}
	if (pm->mapped && pm->req == REQ_NONE && now >= pm->renew_at)
		ask(pm, now,
		    pm->proto == P2P_PMAP_PCP ? REQ_PCP : REQ_NATPMP_MAP);
}

bool p2p_pmap_poll(struct p2p_pmap *pm, struct p2p_pmap_action *a)
{
	if (pm->qlen == 0)
		return false;
	*a = pm->q[pm->qhead];
	pm->qhead = (pm->qhead + 1) % P2P_PMAP_QUEUE;
	pm->qlen--;
	return true;
}

void p2p_pmap_status(const struct p2p_pmap *pm, struct p2p_pmap_status *st)
{
	memset(st, 0, sizeof(*st));
	st->protocol = pm->mapped ? pm->proto : P2P_PMAP_NONE;
	if (pm->mapped) {
		st->external = pm->external;
		st->expires = pm->expires;
	}
	st->renewals = pm->renewals;
	st->busy = pm->phase == PH_RUN && pm->req != REQ_NONE;
	st->failed = pm->phase == PH_FAILED;
}

const char *p2p_pmap_proto_name(enum p2p_pmap_proto p)
{
	switch (p) {
	case P2P_PMAP_PCP:
		return "pcp";
	case P2P_PMAP_NATPMP:
		return "natpmp";
	case P2P_PMAP_UPNP:
		return "upnp";
	case P2P_PMAP_NONE:
		break;
	}
	return "none";
}
