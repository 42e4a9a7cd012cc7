/*
 * Sessions fed hostile input. data[0] picks a mode, the rest is chunks
 * (u16 length + bytes):
 *   0  responder: every chunk is a handshake frame body
 *   1  initiator after start(): every chunk is a handshake frame body
 *   2  responder after a genuine frame 1: chunks are frame 3 candidates
 *   3  genuine frame 2 with the first chunk xor'ed in, to the initiator
 *   4  established pair: chunks are either sealed and opened (must round
 *      trip) or fed raw to open (must fail unless genuine)
 * Randomness is deterministic per input so crashes replay.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "proto/error.h"
#include "proto/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct p2p_identity ids[2];
static uint8_t rec[P2P_FRAME_MAX + P2P_FRAME_HDR], plain[P2P_FRAME_MAX];

static void once(void)
{
	static int done;

	if (done)
		return;
	fuzz_rng_install();
	fuzz_identity(&ids[0], 0);
	fuzz_identity(&ids[1], 1);
	done = 1;
}

static bool ok_error(int rc)
{
	return rc == -EPROTO || rc == -EBADMSG || rc == -EKEYREJECTED ||
	       rc == -EPROTONOSUPPORT || rc == -EPIPE;
}

/* Feed chunks as handshake frames; return the last result. */
static int feed_hs(struct p2p_session *s, struct fuzz_reader *r)
{
	const uint8_t *c;
	size_t n, outlen;
	uint8_t out[P2P_HS_MAX];
	int rc = 0;

	while (fuzz_next_chunk(r, &c, &n)) {
		rc = p2p_session_handshake(s, c, n, out, sizeof(out), &outlen);
		FUZZ_CHECK(rc >= 0 ? outlen <= P2P_HS_MAX : outlen == 0);
		if (rc < 0) {
			FUZZ_CHECK(ok_error(rc));
			FUZZ_CHECK(!p2p_session_established(s));
			break;
		}
		if (rc == 1)
			break;
	}
	return rc;
}

/* Genuine steps 1 and 2; frame 2 body is left in f2. */
static void genuine_12(struct p2p_session *i, struct p2p_session *r,
		       uint8_t *f2, size_t *n2)
{
	uint8_t f1[P2P_HS_MAX];
	size_t n1;

	FUZZ_CHECK(p2p_session_start(i, f1, sizeof(f1), &n1) == 0);
	FUZZ_CHECK(
	    p2p_session_handshake(r, f1 + 4, n1 - 4, f2, P2P_HS_MAX, n2) == 0);
}

static void records(struct p2p_session *i, struct p2p_session *r,
		    struct fuzz_reader *rd)
{
	const uint8_t *c;
	size_t n, len, m;

	while (fuzz_next_chunk(rd, &c, &n)) {
		if (n > 0 && c[0] & 1) {
			FUZZ_CHECK(p2p_session_seal(i, c, n, rec, sizeof(rec),
						    &len) == 0);
			FUZZ_CHECK(p2p_session_open(r, rec + 4, len - 4, plain,
						    sizeof(plain), &m) == 0);
			FUZZ_CHECK(m == n && memcmp(plain, c, n) == 0);
		} else {
			int rc =
			    p2p_session_open(r, c, n, plain, sizeof(plain), &m);

			FUZZ_CHECK(rc == -EBADMSG || rc == -EPROTO);
			return; /* dead now */
		}
	}
}

static void run(int mode, struct fuzz_reader *rd)
{
	struct p2p_session *i = p2p_session_new(&ids[0], true, &ids[1].id);
	struct p2p_session *r = p2p_session_new(&ids[1], false, NULL);
	uint8_t f[P2P_HS_MAX], f3[P2P_HS_MAX];
	const uint8_t *c;
	size_t n, n2, n3;

	FUZZ_CHECK(i != NULL && r != NULL);
	if (mode == 0) {
		feed_hs(r, rd);
	} else if (mode == 1) {
		FUZZ_CHECK(p2p_session_start(i, f, sizeof(f), &n) == 0);
		feed_hs(i, rd);
	} else if (mode == 2) {
		genuine_12(i, r, f, &n2);
		feed_hs(r, rd);
	} else {
		genuine_12(i, r, f, &n2);
		if (mode == 3 && fuzz_next_chunk(rd, &c, &n))
			for (size_t k = 0; k < n && k + 4 < n2; k++)
				f[4 + k] ^= c[k];
		if (p2p_session_handshake(i, f + 4, n2 - 4, f3, sizeof(f3),
					  &n3) == 1 &&
		    p2p_session_handshake(r, f3 + 4, n3 - 4, f, sizeof(f),
					  &n2) == 1)
			records(i, r, rd);
	}
	p2p_session_free(i);
	p2p_session_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader rd = {data + 1, size ? size - 1 : 0};

	if (size < 1)
		return 0;
	once();
	fuzz_rng_reset(0);
	run(data[0] % 5, &rd);
	return 0;
}
