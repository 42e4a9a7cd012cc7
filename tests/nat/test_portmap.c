/* Port mapping: PCP and NAT-PMP codecs, and the state machine on fake time
 * with a hand-played gateway. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "nat/portmap.h"

#define PORT 4242

static uint8_t rnd_byte = 0x5a;

/* Deterministic "randomness": every byte the same, so the jitter is one
 * fixed value inside +-10%. */
static void fake_random(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	memset(buf, rnd_byte, len);
}

static struct p2p_addr v4(int a, int b, int c, int d, uint16_t port)
{
	struct p2p_addr x = {.family = 4, .port = port};
	x.ip[0] = a, x.ip[1] = b, x.ip[2] = c, x.ip[3] = d;
	return x;
}

static struct p2p_pmap_action acts[16];
static size_t nacts;

static size_t drain(struct p2p_pmap *pm)
{
	nacts = 0;
	while (nacts < 16 && p2p_pmap_poll(pm, &acts[nacts]))
		nacts++;
	return nacts;
}

/* The one datagram sent by the last drain; fails if there is not one. */
static const struct p2p_pmap_action *sent(void)
{
	const struct p2p_pmap_action *s = NULL;
	for (size_t i = 0; i < nacts; i++)
		if (acts[i].type == P2P_PMAP_SEND) {
			cr_assert_null(s, "two datagrams at once");
			s = &acts[i];
		}
	cr_assert_not_null(s, "no datagram sent");
	return s;
}

static bool was_changed(void)
{
	for (size_t i = 0; i < nacts; i++)
		if (acts[i].type == P2P_PMAP_CHANGED)
			return true;
	return false;
}

static struct p2p_pmap *new_pm(uint32_t lifetime)
{
	struct p2p_pmap_config c = {.internal_port = PORT,
				    .lifetime_s = lifetime,
				    .random = fake_random};
	struct p2p_pmap *pm = p2p_pmap_new(&c);
	cr_assert_not_null(pm);
	return pm;
}

static struct p2p_addr client(void)
{
	return v4(10, 1, 0, 10, 0);
}

/* ---- a PCP server, written from RFC 6887's layouts ---- */

static size_t pcp_answer(const uint8_t *req, uint8_t result, uint32_t lifetime,
			 uint32_t epoch, const struct p2p_addr *ext,
			 uint8_t *out)
{
	memset(out, 0, 60);
	out[0] = 2;
	out[1] = 0x80 | req[1];
	out[3] = result;
	out[4] = lifetime >> 24, out[5] = lifetime >> 16;
	out[6] = lifetime >> 8, out[7] = lifetime;
	out[8] = epoch >> 24, out[9] = epoch >> 16;
	out[10] = epoch >> 8, out[11] = epoch;
	memcpy(out + 24, req + 24, 16); /* nonce, protocol, reserved */
	out[40] = req[40], out[41] = req[41];
	out[42] = ext->port >> 8, out[43] = ext->port & 0xff;
	out[54] = out[55] = 0xff;
	memcpy(out + 56, ext->ip, 4);
	return 60;
}

static size_t natpmp_addr_answer(uint8_t result, uint32_t epoch,
				 const uint8_t ip[4], uint8_t *out)
{
	memset(out, 0, 12);
	out[1] = 128;
	out[3] = result;
	out[4] = epoch >> 24, out[5] = epoch >> 16;
	out[6] = epoch >> 8, out[7] = epoch;
	memcpy(out + 8, ip, 4);
	return 12;
}

static size_t natpmp_map_answer(const uint8_t *req, uint8_t result,
				uint32_t epoch, uint16_t ext_port,
				uint32_t lifetime, uint8_t *out)
{
	memset(out, 0, 16);
	out[1] = 128 + req[1];
	out[3] = result;
	out[4] = epoch >> 24, out[5] = epoch >> 16;
	out[6] = epoch >> 8, out[7] = epoch;
	out[8] = req[4], out[9] = req[5];
	out[10] = ext_port >> 8, out[11] = ext_port & 0xff;
	out[12] = lifetime >> 24, out[13] = lifetime >> 16;
	out[14] = lifetime >> 8, out[15] = lifetime;
	return 16;
}

/* ---- codecs ---- */

Test(pcp, request_layout)
{
	struct p2p_pcp_msg m = {.opcode = P2P_PCP_OP_MAP,
				.lifetime = 7200,
				.client = v4(10, 1, 0, 10, 0),
				.has_map = true,
				.protocol = 6,
				.internal_port = PORT,
				.external = v4(0, 0, 0, 0, PORT)};
	uint8_t b[64];
	size_t n;

	memset(m.nonce, 0xab, sizeof(m.nonce));
	cr_assert_eq(p2p_pcp_encode(&m, b, sizeof(b), &n), 0);
	cr_assert_eq(n, 60);
	cr_assert_eq(b[0], 2);
	cr_assert_eq(b[1], 1); /* MAP, R clear */
	cr_assert_eq(b[6] << 8 | b[7], 7200);
	cr_assert_eq(b[18], 0xff); /* ::ffff:10.1.0.10 */
	cr_assert_eq(b[19], 0xff);
	cr_assert_eq(b[20], 10);
	cr_assert_eq(b[23], 10);
	cr_assert_eq(b[24], 0xab);
	cr_assert_eq(b[36], 6);
	cr_assert_eq(b[40] << 8 | b[41], PORT);
	cr_assert_eq(b[42] << 8 | b[43], PORT);
	cr_assert_eq(b[54], 0xff);
	cr_assert_eq(p2p_pcp_encode(&m, b, 59, &n), -EMSGSIZE);
}

Test(pcp, response_decodes_and_rejects_garbage)
{
	uint8_t req[64], resp[128];
	struct p2p_pcp_msg m = {.opcode = 1,
				.client = v4(10, 1, 0, 10, 0),
				.has_map = true,
				.protocol = 6,
				.internal_port = PORT,
				.external = v4(0, 0, 0, 0, PORT)},
			   d;
	struct p2p_addr ext = v4(7, 7, 7, 7, 5000);
	size_t n;

	cr_assert_eq(p2p_pcp_encode(&m, req, sizeof(req), &n), 0);
	n = pcp_answer(req, 0, 600, 99, &ext, resp);
	cr_assert_eq(p2p_pcp_decode(&d, resp, n), 0);
	cr_assert(d.response && d.has_map);
	cr_assert_eq(d.lifetime, 600);
	cr_assert_eq(d.epoch, 99);
	cr_assert(p2p_addr_equal(&d.external, &ext));
	cr_assert_eq(d.internal_port, PORT);
	/* A well-formed option after the body is skipped... */
	memset(resp + 60, 0, 8);
	resp[60] = 0x80, resp[63] = 4;
	cr_assert_eq(p2p_pcp_decode(&d, resp, 68), 0);
	/* ...one that runs past the end is not. */
	resp[63] = 5;
	cr_assert_eq(p2p_pcp_decode(&d, resp, 68), -EPROTO);
	cr_assert_eq(p2p_pcp_decode(&d, resp, 59), -EPROTO); /* not /4 */
	cr_assert_eq(p2p_pcp_decode(&d, resp, 56), -EPROTO); /* short */
	cr_assert_eq(p2p_pcp_decode(&d, resp, 1104), -EMSGSIZE);
	resp[1] = 1; /* a request, not a response */
	cr_assert_eq(p2p_pcp_decode(&d, resp, 60), -EPROTO);
	resp[0] = 0;
	cr_assert_eq(p2p_pcp_decode(&d, resp, 60), -EPROTONOSUPPORT);
	/* A bare error header is fine; a bare success is not. */
	memset(resp, 0, 24);
	resp[0] = 2, resp[1] = 0x81, resp[3] = 2;
	cr_assert_eq(p2p_pcp_decode(&d, resp, 24), 0);
	cr_assert(!d.has_map);
	resp[3] = 0;
	cr_assert_eq(p2p_pcp_decode(&d, resp, 24), -EPROTO);
}

Test(natpmp, layouts)
{
	struct p2p_natpmp_msg m = {.opcode = 2,
				   .internal_port = PORT,
				   .external_port = PORT,
				   .lifetime = 7200},
			      d;
	uint8_t b[16], r[16], ip[4] = {7, 7, 7, 7};
	size_t n;

	cr_assert_eq(p2p_natpmp_encode(&m, b, sizeof(b), &n), 0);
	cr_assert_eq(n, 12);
	cr_assert_eq(b[0], 0);
	cr_assert_eq(b[1], 2);
	cr_assert_eq(b[4] << 8 | b[5], PORT);
	cr_assert_eq(b[10] << 8 | b[11], 7200);
	n = natpmp_map_answer(b, 0, 5, 6000, 3600, r);
	cr_assert_eq(p2p_natpmp_decode(&d, r, n), 0);
	cr_assert_eq(d.opcode, 2);
	cr_assert_eq(d.external_port, 6000);
	cr_assert_eq(d.lifetime, 3600);
	cr_assert_eq(p2p_natpmp_decode(&d, r, 15), -EPROTO);
	n = natpmp_addr_answer(0, 5, ip, b);
	cr_assert_eq(p2p_natpmp_decode(&d, b, n), 0);
	cr_assert_eq(d.external_ip[0], 7);
	cr_assert_eq(p2p_natpmp_decode(&d, b, 16), -EPROTO);
	b[1] = 0; /* a request */
	cr_assert_eq(p2p_natpmp_decode(&d, b, 12), -EPROTO);
	b[0] = 2;
	cr_assert_eq(p2p_natpmp_decode(&d, b, 12), -EPROTONOSUPPORT);
}

/* ---- the state machine ---- */

Test(pmap, pcp_maps_renews_at_half_and_deletes)
{
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr c = client(), ext = v4(7, 7, 7, 7, PORT);
	struct p2p_pmap_status st;
	uint8_t resp[64], req[64];
	size_t n;

	cr_assert_eq(p2p_pmap_start(pm, 1000, &c), 0);
	drain(pm);
	memcpy(req, sent()->buf, 60);
	cr_assert_eq(sent()->len, 60);
	cr_assert_eq(req[0], 2);
	cr_assert_eq(req[4] << 24 | req[5] << 16 | req[6] << 8 | req[7],
		     P2P_PMAP_LIFETIME_S);
	/* A response with another nonce is not ours. */
	n = pcp_answer(req, 0, 600, 10, &ext, resp);
	resp[24] ^= 1;
	cr_assert_eq(p2p_pmap_input(pm, 1010, resp, n), -ENOENT);
	resp[24] ^= 1;
	cr_assert_eq(p2p_pmap_input(pm, 1010, resp, n), 0);
	drain(pm);
	cr_assert(was_changed());
	p2p_pmap_status(pm, &st);
	cr_assert_eq(st.protocol, P2P_PMAP_PCP);
	cr_assert(p2p_addr_equal(&st.external, &ext));
	cr_assert_eq(st.expires, 1010 + 600 * 1000);
	/* Renewal at half the lifetime, with the same nonce. */
	cr_assert_eq(p2p_pmap_next(pm), 1010 + 300 * 1000);
	p2p_pmap_expire(pm, 1010 + 300 * 1000);
	drain(pm);
	cr_assert_eq(memcmp(sent()->buf + 24, req + 24, 12), 0);
	memcpy(req, sent()->buf, 60);
	n = pcp_answer(req, 0, 600, 310, &ext, resp);
	cr_assert_eq(p2p_pmap_input(pm, 301010, resp, n), 0);
	drain(pm);
	cr_assert(!was_changed(), "a renewal of the same mapping is quiet");
	p2p_pmap_status(pm, &st);
	cr_assert_eq(st.renewals, 1);
	cr_assert_eq(st.expires, 301010 + 600 * 1000);
	/* Clean exit: lifetime 0 for the same mapping. */
	p2p_pmap_stop(pm, 302000);
	drain(pm);
	cr_assert_eq(sent()->buf[0], 2);
	cr_assert_eq(sent()->buf[4] | sent()->buf[5] | sent()->buf[6] |
			 sent()->buf[7],
		     0);
	cr_assert_eq(memcmp(sent()->buf + 24, req + 24, 12), 0);
	cr_assert_eq(p2p_pmap_next(pm), UINT64_MAX);
	p2p_pmap_free(pm);
}

Test(pmap, pcp_retransmits_with_backoff_then_natpmp)
{
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr c = client();
	uint64_t now = 0, prev_rt = 0;

	p2p_pmap_start(pm, now, &c);
	drain(pm);
	cr_assert_eq(sent()->buf[0], 2);
	for (int i = 1; i < P2P_PMAP_PCP_TRIES; i++) {
		uint64_t t = p2p_pmap_next(pm), rt = t - now;
		/* IRT 3 s +-10%, then doubling (+-10%) */
		if (i == 1)
			cr_assert(rt >= 2700 && rt <= 3300, "rt %lu",
				  (unsigned long)rt);
		else
			cr_assert(rt >= prev_rt * 18 / 10 &&
				      rt <= prev_rt * 22 / 10,
				  "rt %lu after %lu", (unsigned long)rt,
				  (unsigned long)prev_rt);
		prev_rt = rt;
		now = t;
		p2p_pmap_expire(pm, now);
		drain(pm);
		cr_assert_eq(sent()->buf[0], 2, "retransmission %d", i);
	}
	now = p2p_pmap_next(pm);
	p2p_pmap_expire(pm, now);
	drain(pm);
	/* PCP given up: NAT-PMP's external address request. */
	cr_assert_eq(sent()->len, 2);
	cr_assert_eq(sent()->buf[0], 0);
	cr_assert_eq(sent()->buf[1], 0);
	cr_assert_eq(p2p_pmap_next(pm), now + 250);
	p2p_pmap_free(pm);
}

Test(pmap, natpmp_after_unsupp_version_and_epoch_reset_remaps)
{
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr c = client();
	struct p2p_pmap_status st;
	uint8_t resp[64], req[64], ip[4] = {7, 7, 7, 8};
	size_t n;

	p2p_pmap_start(pm, 0, &c);
	drain(pm);
	/* A NAT-PMP-only server answers version 2 with version 0, result
	 * 1 (RFC 6887 section 9). */
	memset(resp, 0, 8);
	resp[1] = 128 + 1, resp[3] = 1;
	cr_assert_eq(p2p_pmap_input(pm, 5, resp, 8), 0);
	drain(pm);
	cr_assert_eq(sent()->len, 2);
	n = natpmp_addr_answer(0, 100, ip, resp);
	cr_assert_eq(p2p_pmap_input(pm, 10, resp, n), 0);
	drain(pm);
	memcpy(req, sent()->buf, 12);
	cr_assert_eq(sent()->len, 12);
	cr_assert_eq(req[1], 2);
	/* NAT-PMP retransmits at 250 ms, then 500 ms. */
	cr_assert_eq(p2p_pmap_next(pm), 260);
	p2p_pmap_expire(pm, 260);
	drain(pm);
	cr_assert_eq(sent()->len, 12);
	cr_assert_eq(p2p_pmap_next(pm), 760);
	n = natpmp_map_answer(req, 0, 101, 6000, 3600, resp);
	cr_assert_eq(p2p_pmap_input(pm, 1000, resp, n), 0);
	drain(pm);
	cr_assert(was_changed());
	p2p_pmap_status(pm, &st);
	cr_assert_eq(st.protocol, P2P_PMAP_NATPMP);
	cr_assert(p2p_addr_equal(&st.external, &(struct p2p_addr){0}) == 0);
	cr_assert_eq(st.external.ip[3], 8);
	cr_assert_eq(st.external.port, 6000);
	/* 100 s later the gateway says its epoch is 3: it rebooted. */
	n = natpmp_addr_answer(0, 3, ip, resp);
	cr_assert_eq(p2p_pmap_input(pm, 101000, resp, n), 0);
	drain(pm);
	cr_assert_eq(sent()->len, 12, "an epoch reset maps again");
	cr_assert_eq(sent()->buf[1], 2);
	/* An epoch that advanced with our clock is no reset. */
	n = natpmp_map_answer(sent()->buf, 0, 3, 6000, 3600, resp);
	cr_assert_eq(p2p_pmap_input(pm, 101010, resp, n), 0);
	n = natpmp_addr_answer(0, 53, ip, resp);
	cr_assert_eq(p2p_pmap_input(pm, 151010, resp, n), 0);
	cr_assert_eq(drain(pm), 0);
	p2p_pmap_free(pm);
}

Test(pmap, refusal_fails_without_natpmp_and_retries_later)
{
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr c = client(), ext = v4(7, 7, 7, 7, PORT);
	struct p2p_pmap_status st;
	uint8_t resp[64];
	size_t n;

	p2p_pmap_start(pm, 0, &c);
	drain(pm);
	n = pcp_answer(sent()->buf, P2P_PCP_NOT_AUTHORIZED, 0, 1, &ext, resp);
	cr_assert_eq(p2p_pmap_input(pm, 5, resp, n), 0);
	cr_assert_eq(drain(pm), 0, "no NAT-PMP after a PCP refusal");
	p2p_pmap_status(pm, &st);
	cr_assert_eq(st.protocol, P2P_PMAP_NONE);
	cr_assert(!st.busy);
	cr_assert(st.failed);
	cr_assert_eq(p2p_pmap_next(pm), 5 + P2P_PMAP_RETRY_MS);
	p2p_pmap_expire(pm, 5 + P2P_PMAP_RETRY_MS);
	drain(pm);
	cr_assert_eq(sent()->buf[0], 2);
	p2p_pmap_free(pm);
}

Test(pmap, unreachable_gives_up_fast_and_stop_sends_nothing_unmapped)
{
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr c = client();
	struct p2p_pmap_status st;

	p2p_pmap_start(pm, 0, &c);
	drain(pm);
	p2p_pmap_unreachable(pm, 1);
	drain(pm);
	cr_assert_eq(sent()->buf[0], 0, "NAT-PMP next");
	p2p_pmap_unreachable(pm, 2);
	cr_assert_eq(drain(pm), 0);
	p2p_pmap_status(pm, &st);
	cr_assert_eq(st.protocol, P2P_PMAP_NONE);
	cr_assert_eq(p2p_pmap_next(pm), 2 + P2P_PMAP_RETRY_MS);
	p2p_pmap_stop(pm, 3);
	cr_assert_eq(drain(pm), 0, "nothing to delete");
	p2p_pmap_free(pm);
}

Test(pmap, short_lifetime_renews_and_expiry_loses_mapping)
{
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr c = client(), ext = v4(7, 7, 7, 7, PORT);
	struct p2p_pmap_status st;
	uint8_t resp[64];
	uint64_t now;
	size_t n;

	p2p_pmap_start(pm, 0, &c);
	drain(pm);
	n = pcp_answer(sent()->buf, 0, 4, 1, &ext, resp);
	cr_assert_eq(p2p_pmap_input(pm, 0, resp, n), 0);
	drain(pm);
	cr_assert_eq(p2p_pmap_next(pm), 2000);
	/* The renewal is never answered: retransmissions (PCP IRT 3 s)
	 * outlast the lifetime, which ends at 4 s; the mapping is lost and
	 * asked for anew. */
	p2p_pmap_expire(pm, 2000);
	drain(pm);
	cr_assert_eq(sent()->buf[0], 2);
	now = p2p_pmap_next(pm);
	cr_assert_eq(now, 4000);
	p2p_pmap_expire(pm, now);
	drain(pm);
	cr_assert(was_changed());
	p2p_pmap_status(pm, &st);
	cr_assert_eq(st.protocol, P2P_PMAP_NONE);
	cr_assert(st.busy);
	p2p_pmap_free(pm);
}

Test(pmap, bad_input_and_bad_config)
{
	struct p2p_pmap_config c = {.internal_port = 0, .random = fake_random};
	struct p2p_pmap *pm = new_pm(0);
	struct p2p_addr cl = client(), v6 = {.family = 6};
	uint8_t junk[3] = {9, 9, 9};

	cr_assert_null(p2p_pmap_new(&c));
	cr_assert_eq(p2p_pmap_start(pm, 0, &v6), -EINVAL);
	cr_assert_eq(p2p_pmap_input(pm, 0, junk, 3), -ENOENT, "not started");
	p2p_pmap_start(pm, 0, &cl);
	cr_assert_eq(p2p_pmap_input(pm, 0, junk, 3), -EPROTONOSUPPORT);
	cr_assert_eq(p2p_pmap_input(pm, 0, junk, 0), -EPROTO);
	junk[0] = 2;
	cr_assert_eq(p2p_pmap_input(pm, 0, junk, 3), -EPROTO);
	cr_assert_str_eq(p2p_pmap_proto_name(P2P_PMAP_NATPMP), "natpmp");
	cr_assert_str_eq(p2p_pmap_proto_name(P2P_PMAP_NONE), "none");
	p2p_pmap_free(pm);
}
