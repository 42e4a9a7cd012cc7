/*
 * The link handshake and record layer. See session.h for the shape; the
 * concrete wire layout is:
 *
 *   frame1 (38)  "p2pd" | version u8 | suites u8 | e_i.pk[32]
 *   frame2 (145) e_r.pk[32] | suite u8 |
 *                AEAD(k2, n=0, ad=h2a)(s_r.pk[32] | sig_r[64])
 *   frame3 (112) AEAD(k3, n=0, ad=h2)(s_i.pk[32] | sig_i[64])
 *
 *   kx   = crypto_kx session keys over (e_i, e_r): (i2r, r2i), 64 bytes
 *   h1   = H(frame1)            h2a = H(h1 | e_r.pk | suite)
 *   h2   = H(h2a | ct2)         h3  = H(h2 | ct3)
 *   sig_r = Ed25519(s_r, "p2pd-resp" | h2a)
 *   sig_i = Ed25519(s_i, "p2pd-init" | h2)
 *   k(label, h) = BLAKE2b-256(key = kx, label[8] | h)
 *   k2 = k("p2pd hs2", h2a), k3 = k("p2pd hs3", h2),
 *   record keys k("p2pd r2i", h2), k("p2pd i2r", h3)
 *
 * Both signatures cover both fresh ephemerals, so neither can be replayed
 * into another session. The responder-to-initiator key depends on the
 * transcript up to frame 2 so that the responder's first records (its
 * HELLO) leave with frame 2 and the initiator is up one round trip
 * sooner (version 3; TLS 1.3 calls it 0.5-RTT data, Noise XX's second
 * message carries such a payload). What the responder says then is
 * readable only by whoever holds e_i, the peer that frame 3 then proves
 * to be the initiator; nothing the initiator sends is trusted before
 * frame 3, and its records use a key over the whole transcript.
 * The record AEAD: the initiator offers suites (a bit each), the responder
 * picks one; the offer is in h1 and the pick in h2a, so both signatures
 * cover them and nobody on the path can force the weaker choice. Records
 * use the suite with nonce 0^32 | u64 BE counter, one counter per
 * direction; a frame out of order or replayed fails to open. Every
 * P2P_REKEY_RECORDS records a direction's key becomes
 * BLAKE2b-256(key = old key, "p2pd rekey"), at the same counter on both
 * sides, so no key seals more than that many records.
 * Garbage never produces a reply: the responder answers only a well-formed
 * frame 1, which carries nothing to authenticate yet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto/frame.h"
#include "proto/session.h"

#define HS_MAGIC "p2pd"
#define HS_MAGIC_LEN 4
#define HS_LABEL_LEN 9 /* "p2pd-resp", "p2pd-init" */
#define KDF_LABEL_LEN 8
#define HASH_LEN 32
#define KEY_LEN 32
#define SIG_LEN crypto_sign_BYTES
#define HS1_LEN (HS_MAGIC_LEN + 2 + crypto_kx_PUBLICKEYBYTES)
#define HS1_EPK (HS_MAGIC_LEN + 2) /* offset of e_i.pk */
#define HS_PLAIN_LEN (crypto_sign_PUBLICKEYBYTES + SIG_LEN)
#define HS_SEALED_LEN (HS_PLAIN_LEN + P2P_AEAD_TAG)
#define HS2_SEALED (crypto_kx_PUBLICKEYBYTES + 1) /* after the suite */
#define HS2_LEN (HS2_SEALED + HS_SEALED_LEN)
#define HS3_LEN HS_SEALED_LEN
#define NONCE_LEN crypto_aead_chacha20poly1305_ietf_NPUBBYTES

enum session_state {
	S_INIT,	 /* initiator before start(), responder before frame 1 */
	S_SENT1, /* initiator waits for frame 2 */
	S_SENT2, /* responder waits for frame 3 */
	S_ESTABLISHED,
	S_DEAD,
};

struct p2p_session {
	enum session_state state;
	bool initiator;
	bool has_expect;
	struct p2p_peerid expect;
	struct p2p_identity self; /* self.sk refers to the identity's key */
	uint8_t e_pk[crypto_kx_PUBLICKEYBYTES];
	uint8_t e_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t kx[2 * crypto_kx_SESSIONKEYBYTES]; /* i2r | r2i */
	uint8_t h[HASH_LEN];
	uint8_t peer_pk[crypto_sign_PUBLICKEYBYTES];
	struct p2p_peerid peer;
	uint8_t suites; /* what we offer (initiator) or accept (responder) */
	uint8_t suite;	/* the one in use once established */
	uint8_t tx_key[KEY_LEN], rx_key[KEY_LEN];
	uint64_t tx_ctr, rx_ctr;
};

/* The suites this machine can run: AES-256-GCM only with hardware AES
 * (libsodium's check), where it is the faster of the two. */
static uint8_t local_suites(void)
{
	uint8_t s = P2P_SUITE_CHACHA20_POLY1305;

	if (crypto_aead_aes256gcm_is_available())
		s |= P2P_SUITE_AES256_GCM;
	return s;
}

struct p2p_session *p2p_session_new(const struct p2p_identity *self,
				    bool initiator,
				    const struct p2p_peerid *expect)
{
	struct p2p_session *s;

	if (self == NULL || self->sk == NULL || sodium_init() < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->initiator = initiator;
	s->self = *self;
	s->suites = local_suites();
	if (initiator && expect != NULL) {
		s->has_expect = true;
		s->expect = *expect;
	}
	return s;
}

void p2p_session_free(struct p2p_session *s)
{
	if (s == NULL)
		return;
	sodium_memzero(s, sizeof(*s));
	free(s);
}

/* Forget every secret and refuse all further use. */
static int die(struct p2p_session *s, int err)
{
	sodium_memzero(s, sizeof(*s));
	s->state = S_DEAD;
	return err;
}

/* h = H(a | b) */
static void hash2(uint8_t out[HASH_LEN], const uint8_t *a, size_t alen,
		  const uint8_t *b, size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, HASH_LEN);
	crypto_generichash_update(&st, a, alen);
	crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, HASH_LEN);
}

static void kdf(uint8_t out[KEY_LEN], const uint8_t kx[64],
		const char label[KDF_LABEL_LEN], const uint8_t h[HASH_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, kx, 64, KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)label, KDF_LABEL_LEN);
	crypto_generichash_update(&st, h, HASH_LEN);
	crypto_generichash_final(&st, out, KEY_LEN);
}

static void sign(uint8_t sig[SIG_LEN], const uint8_t sk[64], const char *label,
		 const uint8_t h[HASH_LEN])
{
	uint8_t m[HS_LABEL_LEN + HASH_LEN];

	memcpy(m, label, HS_LABEL_LEN);
	memcpy(m + HS_LABEL_LEN, h, HASH_LEN);
	crypto_sign_detached(sig, NULL, m, sizeof(m), sk);
}

static bool verify(const uint8_t sig[SIG_LEN], const uint8_t pk[32],
		   const char *label, const uint8_t h[HASH_LEN])
{
	uint8_t m[HS_LABEL_LEN + HASH_LEN];

	memcpy(m, label, HS_LABEL_LEN);
	memcpy(m + HS_LABEL_LEN, h, HASH_LEN);
	return crypto_sign_verify_detached(sig, m, sizeof(m), pk) == 0;
}

/* out = AEAD(key, nonce 0, ad = h)(s.pk | sig over label and h). */
static void seal_static(uint8_t out[HS_SEALED_LEN], const struct p2p_session *s,
			const uint8_t key[KEY_LEN], const char *label)
{
	uint8_t plain[HS_PLAIN_LEN];
	static const uint8_t nonce[NONCE_LEN];

	memcpy(plain, s->self.pk, 32);
	sign(plain + 32, s->self.sk, label, s->h);
	crypto_aead_chacha20poly1305_ietf_encrypt(
	    out, NULL, plain, sizeof(plain), s->h, HASH_LEN, NULL, nonce, key);
	sodium_memzero(plain, sizeof(plain));
}

/* Inverse of seal_static: sets peer_pk and peer on success. */
static int open_static(struct p2p_session *s, const uint8_t *ct,
		       const uint8_t key[KEY_LEN], const char *label)
{
	uint8_t plain[HS_PLAIN_LEN];
	static const uint8_t nonce[NONCE_LEN];

	if (crypto_aead_chacha20poly1305_ietf_decrypt(
		plain, NULL, NULL, ct, HS_SEALED_LEN, s->h, HASH_LEN, nonce,
		key) != 0)
		return -EBADMSG;
	if (!verify(plain + 32, plain, label, s->h))
		return -EBADMSG;
	memcpy(s->peer_pk, plain, 32);
	p2p_peerid_from_pk(&s->peer, s->peer_pk);
	return 0;
}

static void put_frame_header(uint8_t *out, size_t body_len, size_t *outlen)
{
	p2p_frame_put_header(out, (uint32_t)body_len);
	*outlen = P2P_FRAME_HDR + body_len;
}

int p2p_session_start(struct p2p_session *s, uint8_t *out, size_t cap,
		      size_t *outlen)
{
	uint8_t *body = out + P2P_FRAME_HDR;

	if (s->state == S_DEAD)
		return -EPIPE;
	if (!s->initiator || s->state != S_INIT || out == NULL ||
	    outlen == NULL || cap < P2P_FRAME_HDR + HS1_LEN)
		return die(s, -EINVAL);
	crypto_kx_keypair(s->e_pk, s->e_sk);
	memcpy(body, HS_MAGIC, HS_MAGIC_LEN);
	body[HS_MAGIC_LEN] = P2P_HS_VERSION;
	body[HS_MAGIC_LEN + 1] = s->suites;
	memcpy(body + HS1_EPK, s->e_pk, sizeof(s->e_pk));
	crypto_generichash(s->h, HASH_LEN, body, HS1_LEN, NULL, 0);
	put_frame_header(out, HS1_LEN, outlen);
	s->state = S_SENT1;
	return 0;
}

bool p2p_session_is_frame1(const uint8_t *body, size_t len)
{
	return body != NULL && len == HS1_LEN &&
	       memcmp(body, HS_MAGIC, HS_MAGIC_LEN) == 0;
}

/* Responder: frame 1 in, frame 2 out. */
static int on_frame1(struct p2p_session *s, const uint8_t *body, size_t len,
		     uint8_t *out, size_t *outlen)
{
	uint8_t e_sk[crypto_kx_SECRETKEYBYTES], k2[KEY_LEN];
	uint8_t *ct = out + P2P_FRAME_HDR + HS2_SEALED;
	const uint8_t *e_i = body + HS1_EPK;
	uint8_t common;
	int rc = 0;

	if (len != HS1_LEN || memcmp(body, HS_MAGIC, HS_MAGIC_LEN) != 0)
		return -EPROTO;
	if (body[HS_MAGIC_LEN] != P2P_HS_VERSION)
		return -EPROTONOSUPPORT;
	common = body[HS_MAGIC_LEN + 1] & s->suites;
	if (!(common & P2P_SUITE_ALL))
		return -EPROTONOSUPPORT; /* no suite in common */
	s->suite = (common & P2P_SUITE_AES256_GCM)
		       ? P2P_SUITE_AES256_GCM
		       : P2P_SUITE_CHACHA20_POLY1305;
	crypto_kx_keypair(s->e_pk, e_sk);
	/* Server rx is the initiator-to-responder key: kx = i2r | r2i. */
	if (crypto_kx_server_session_keys(s->kx, s->kx + KEY_LEN, s->e_pk, e_sk,
					  e_i) != 0) {
		rc = -EPROTO; /* a small-order point, not a real key */
		goto out;
	}
	crypto_generichash(s->h, HASH_LEN, body, len, NULL, 0);
	memcpy(out + P2P_FRAME_HDR, s->e_pk, sizeof(s->e_pk));
	out[P2P_FRAME_HDR + crypto_kx_PUBLICKEYBYTES] = s->suite;
	hash2(s->h, s->h, HASH_LEN, out + P2P_FRAME_HDR, HS2_SEALED);
	kdf(k2, s->kx, "p2pd hs2", s->h);
	seal_static(ct, s, k2, "p2pd-resp");
	hash2(s->h, s->h, HASH_LEN, ct, HS_SEALED_LEN);
	put_frame_header(out, HS2_LEN, outlen);
	/* Our records may leave now, with frame 2: see the top. */
	kdf(s->tx_key, s->kx, "p2pd r2i", s->h);
	s->tx_ctr = 0;
	s->state = S_SENT2;
out:
	sodium_memzero(e_sk, sizeof(e_sk));
	sodium_memzero(k2, sizeof(k2));
	return rc;
}

/* Both sides, at the end: the initiator-to-responder key from the full
 * transcript (the other one was made at frame 2, and a responder may have
 * used it already: its counter goes on). */
static void finish(struct p2p_session *s, const uint8_t *ct3)
{
	hash2(s->h, s->h, HASH_LEN, ct3, HS_SEALED_LEN);
	if (s->initiator) {
		kdf(s->tx_key, s->kx, "p2pd i2r", s->h);
		s->tx_ctr = 0;
	} else {
		kdf(s->rx_key, s->kx, "p2pd i2r", s->h);
		s->rx_ctr = 0;
	}
	sodium_memzero(s->kx, sizeof(s->kx));
	sodium_memzero(s->e_sk, sizeof(s->e_sk));
	s->state = S_ESTABLISHED;
}

/* Initiator: frame 2 in, frame 3 out. */
static int on_frame2(struct p2p_session *s, const uint8_t *body, size_t len,
		     uint8_t *out, size_t *outlen)
{
	uint8_t k[KEY_LEN];
	uint8_t *ct3 = out + P2P_FRAME_HDR;
	const uint8_t *e_r = body;
	uint8_t suite;
	int rc;

	if (len != HS2_LEN)
		return -EPROTO;
	suite = body[crypto_kx_PUBLICKEYBYTES];
	/* One suite, and one we offered. */
	if ((suite != P2P_SUITE_CHACHA20_POLY1305 &&
	     suite != P2P_SUITE_AES256_GCM) ||
	    !(suite & s->suites))
		return -EPROTO;
	s->suite = suite;
	/* Client tx is the initiator-to-responder key: kx = i2r | r2i. */
	if (crypto_kx_client_session_keys(s->kx + KEY_LEN, s->kx, s->e_pk,
					  s->e_sk, e_r) != 0) {
		rc = -EPROTO;
		goto out;
	}
	hash2(s->h, s->h, HASH_LEN, e_r, HS2_SEALED);
	kdf(k, s->kx, "p2pd hs2", s->h);
	rc = open_static(s, body + HS2_SEALED, k, "p2pd-resp");
	if (rc < 0)
		goto out;
	/* Check who answered before we reveal who we are. */
	if (s->has_expect && !p2p_peerid_equal(&s->peer, &s->expect)) {
		rc = -EKEYREJECTED;
		goto out;
	}
	hash2(s->h, s->h, HASH_LEN, body + HS2_SEALED, HS_SEALED_LEN);
	/* The responder's records may follow frame 2 at once. */
	kdf(s->rx_key, s->kx, "p2pd r2i", s->h);
	s->rx_ctr = 0;
	kdf(k, s->kx, "p2pd hs3", s->h);
	seal_static(ct3, s, k, "p2pd-init");
	put_frame_header(out, HS3_LEN, outlen);
	finish(s, ct3);
	rc = 1;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(s->e_sk, sizeof(s->e_sk));
	return rc;
}

/* Responder: frame 3 in, nothing out. */
static int on_frame3(struct p2p_session *s, const uint8_t *body, size_t len)
{
	uint8_t k3[KEY_LEN];
	int rc;

	if (len != HS3_LEN)
		return -EPROTO;
	kdf(k3, s->kx, "p2pd hs3", s->h);
	rc = open_static(s, body, k3, "p2pd-init");
	sodium_memzero(k3, sizeof(k3));
	if (rc < 0)
		return rc;
	finish(s, body);
	return 1;
}

int p2p_session_handshake(struct p2p_session *s, const uint8_t *body,
			  size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	int rc;

	if (s->state == S_DEAD)
		return -EPIPE;
	if (body == NULL || out == NULL || outlen == NULL || cap < P2P_HS_MAX)
		return die(s, -EINVAL);
	*outlen = 0;
	if (s->initiator && s->state == S_SENT1)
		rc = on_frame2(s, body, len, out, outlen);
	else if (!s->initiator && s->state == S_INIT)
		rc = on_frame1(s, body, len, out, outlen);
	else if (!s->initiator && s->state == S_SENT2)
		rc = on_frame3(s, body, len);
	else
		rc = -EPROTO; /* a handshake frame where none belongs */
	if (rc < 0) {
		*outlen = 0;
		return die(s, rc);
	}
	return rc;
}

bool p2p_session_established(const struct p2p_session *s)
{
	return s->state == S_ESTABLISHED;
}

bool p2p_session_can_seal(const struct p2p_session *s)
{
	return s->state == S_ESTABLISHED ||
	       (!s->initiator && s->state == S_SENT2);
}

const struct p2p_peerid *p2p_session_peer(const struct p2p_session *s)
{
	return s->state == S_ESTABLISHED ? &s->peer : NULL;
}

const uint8_t *p2p_session_peer_pk(const struct p2p_session *s)
{
	return s->state == S_ESTABLISHED ? s->peer_pk : NULL;
}

static void make_nonce(uint8_t nonce[NONCE_LEN], uint64_t ctr)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(ctr >> (56 - 8 * i));
}

/* Before record ctr: a fresh key every P2P_REKEY_RECORDS records. */
static void maybe_rekey(uint8_t key[KEY_LEN], uint64_t ctr)
{
	if (ctr == 0 || ctr % P2P_REKEY_RECORDS != 0)
		return;
	crypto_generichash(key, KEY_LEN, (const uint8_t *)"p2pd rekey", 10, key,
			   KEY_LEN);
}

int p2p_session_suite(const struct p2p_session *s)
{
	return s->state == S_ESTABLISHED ? s->suite : 0;
}

const char *p2p_suite_name(int suite)
{
	switch (suite) {
	case P2P_SUITE_CHACHA20_POLY1305:
		return "chacha20-poly1305";
	case P2P_SUITE_AES256_GCM:
		return "aes256-gcm";
	}
	return "none";
}

void p2p_session_test_set_suites(struct p2p_session *s, uint8_t suites)
{
	s->suites = suites;
}

int p2p_session_seal(struct p2p_session *s, const uint8_t *msg, size_t len,
		     uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t nonce[NONCE_LEN];

	if (s->state == S_DEAD)
		return -EPIPE;
	if (!p2p_session_can_seal(s) || out == NULL || outlen == NULL ||
	    (msg == NULL && len > 0))
		return -EINVAL; /* caller mistakes leave the session intact */
	if (len > P2P_MSG_MAX || cap < len + P2P_RECORD_OVERHEAD)
		return -EMSGSIZE;
	if (s->tx_ctr == UINT64_MAX)
		return die(s, -EPIPE); /* never reuse a nonce */
	maybe_rekey(s->tx_key, s->tx_ctr);
	make_nonce(nonce, s->tx_ctr++);
	if (s->suite == P2P_SUITE_AES256_GCM)
		crypto_aead_aes256gcm_encrypt(out + P2P_FRAME_HDR, NULL, msg,
					      len, NULL, 0, NULL, nonce,
					      s->tx_key);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt(
		    out + P2P_FRAME_HDR, NULL, msg, len, NULL, 0, NULL, nonce,
		    s->tx_key);
	put_frame_header(out, len + P2P_AEAD_TAG, outlen);
	return 0;
}

int p2p_session_open(struct p2p_session *s, const uint8_t *body, size_t len,
		     uint8_t *out, size_t cap, size_t *outlen)
{
	uint8_t nonce[NONCE_LEN];
	unsigned long long mlen;

	if (s->state == S_DEAD)
		return -EPIPE;
	if (s->state != S_ESTABLISHED || body == NULL || out == NULL ||
	    outlen == NULL)
		return -EINVAL;
	if (len < P2P_AEAD_TAG || len > P2P_FRAME_MAX)
		return die(s, -EPROTO);
	if (cap < len - P2P_AEAD_TAG)
		return -EMSGSIZE;
	if (s->rx_ctr == UINT64_MAX)
		return die(s, -EPIPE);
	maybe_rekey(s->rx_key, s->rx_ctr);
	make_nonce(nonce, s->rx_ctr);
	if ((s->suite == P2P_SUITE_AES256_GCM
		 ? crypto_aead_aes256gcm_decrypt(out, &mlen, NULL, body, len,
						 NULL, 0, nonce, s->rx_key)
		 : crypto_aead_chacha20poly1305_ietf_decrypt(
		       out, &mlen, NULL, body, len, NULL, 0, nonce,
		       s->rx_key)) != 0)
		return die(s, -EBADMSG);
	s->rx_ctr++;
	*outlen = (size_t)mlen;
	return 0;
}

void p2p_session_test_set_counters(struct p2p_session *s, uint64_t tx,
				   uint64_t rx)
{
	s->tx_ctr = tx;
	s->rx_ctr = rx;
}
