/*
 * Handshake and session crypto for one link. Sans-I/O: frame bodies in,
 * frames out (each output already carries its 4-byte frame header).
 *
 * Handshake (three frames, libsodium primitives only):
 *   1 I->R  "p2pd" ver | e_i (X25519 ephemeral)
 *   2 R->I  e_r | seal_k(s_r.pk | sig_r)     [R may seal records now]
 *   3 I->R  seal_k(s_i.pk | sig_i)
 * k and the two record keys come from crypto_kx over (e_i, e_r); h is the
 * BLAKE2b transcript hash of the frames so far; sig_x is Ed25519 over a
 * role label and h. The initiator states the peer ID it expects and fails
 * with -EKEYREJECTED when s_r.pk does not hash to it.
 * Records: the suite the responder picked from the initiator's offer
 * (AES-256-GCM where both have hardware AES, else ChaCha20-Poly1305 IETF;
 * both are in the signed transcript, so the choice cannot be downgraded),
 * one key per direction (responder to initiator from the transcript up to
 * frame 2, so that the responder's first records travel with frame 2 and
 * the initiator's link is up after one round trip of handshake; initiator
 * to responder from the whole transcript), nonce = 64-bit counter, a new key
 * derived from the old every P2P_REKEY_RECORDS records. A tampered, replayed,
 * reordered or truncated record fails with -EBADMSG and the session is dead
 * afterwards.
 *
 * Concrete layout (bodies; every output frame carries its 4-byte header):
 *   frame1 (38)  "p2pd" | version u8 | suites u8 | e_i.pk[32]
 *   frame2 (145) e_r.pk[32] | suite u8 | AEAD(k2, n=0, ad=h2a)(s_r.pk[32] |
 *                sig_r[64])
 *   frame3 (112) AEAD(k3, n=0, ad=h2)(s_i.pk[32] | sig_i[64])
 *   kx = crypto_kx session keys over (e_i, e_r); h1 = H(frame1),
 *   h2a = H(h1 | e_r.pk | suite), h2 = H(h2a | ct2), h3 = H(h2 | ct3);
 *   sig_r = Ed25519(s_r, "p2pd-resp" | h2a), sig_i = Ed25519(s_i,
 *   "p2pd-init" | h2); k(label, h) = BLAKE2b-256 keyed by kx of label | h;
 *   k2 = k("p2pd hs2", h2a), k3 = k("p2pd hs3", h2), record keys
 *   k("p2pd i2r", h3) and k("p2pd r2i", h2). Record nonce: 4 zero bytes |
 *   u64 BE counter; counter exhaustion gives -EPIPE. Version mismatch in
 *   frame 1 gives -EPROTONOSUPPORT. Caller mistakes in seal/open (NULL,
 *   small cap, not yet established) return -EINVAL/-EMSGSIZE and leave the
 *   session alive; everything the peer causes kills it.
 */
#ifndef P2P_PROTO_SESSION_H
#define P2P_PROTO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "limits.h"

/* upper bound of one handshake frame, header included */
#define P2P_HS_MAX 256

/* The handshake's version, in frame 1 (2: the record AEAD is offered and
 * picked; 3: the responder's records may follow frame 2; the messages
 * inside keep P2P_PROTO_VERSION). */
#define P2P_HS_VERSION 3

/* Record AEADs, one bit each in frame 1's offer. */
#define P2P_SUITE_CHACHA20_POLY1305 0x01
#define P2P_SUITE_AES256_GCM 0x02
#define P2P_SUITE_ALL (P2P_SUITE_CHACHA20_POLY1305 | P2P_SUITE_AES256_GCM)
/* Records sealed with one key before the next is derived: far below the
 * usage bounds of AES-GCM with counter nonces (and of ChaCha20). */
#define P2P_REKEY_RECORDS (1ull << 20)
#define P2P_RECORD_OVERHEAD (P2P_FRAME_HDR + P2P_AEAD_TAG)

struct p2p_session;

/*
 * New session. Its public key and ID are copied; its secret key is not:
 * the session signs with self's one guarded copy, which must therefore
 * outlive the session (wipe the identity after freeing its sessions).
 * Initiators pass the peer ID they
 * dial (expect) or NULL to accept any peer (bootstrap by address);
 * responders pass NULL. NULL on ENOMEM.
 */
struct p2p_session *p2p_session_new(const struct p2p_identity *self,
				    bool initiator,
				    const struct p2p_peerid *expect);
/* Wipes keys and frees. */
void p2p_session_free(struct p2p_session *s);

/* Initiator only: write frame 1 into out (cap >= P2P_HS_MAX). */
int p2p_session_start(struct p2p_session *s, uint8_t *out, size_t cap,
		      size_t *outlen) __attribute__((warn_unused_result));

/*
 * Feed one handshake frame body. May write a reply frame into out
 * (cap >= P2P_HS_MAX; *outlen 0 when there is none). Returns 1 once the
 * session is established, 0 when more frames are needed, or a negative
 * errno (-EPROTO, -EBADMSG, -EKEYREJECTED); on error the session is dead.
 */
int p2p_session_handshake(struct p2p_session *s, const uint8_t *body,
			  size_t len, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));

bool p2p_session_established(const struct p2p_session *s);

/* Whether p2p_session_seal() may be called: once established, and for a
 * responder already after frame 2 (its first records leave with frame 2;
 * the peer is not authenticated yet, so they must not say more than a
 * HELLO does). */
bool p2p_session_can_seal(const struct p2p_session *s);

/*
 * Whether body looks like a frame 1 (length and magic). An initiator that
 * receives one is in a TCP simultaneous open: the peer dialled us from
 * the port we dialled, at the same moment, and both ended on one
 * connection as initiators.
 */
bool p2p_session_is_frame1(const uint8_t *body, size_t len);

/* The authenticated remote ID and public key once established. */
const struct p2p_peerid *p2p_session_peer(const struct p2p_session *s);
const uint8_t *p2p_session_peer_pk(const struct p2p_session *s);

/*
 * Encrypt one message (len <= P2P_MSG_MAX) into a whole frame in out;
 * cap >= len + P2P_RECORD_OVERHEAD. msg may be out + P2P_FRAME_HDR (sealed
 * in place: libsodium's AEADs allow c == m). Returns 0 or
 * -EMSGSIZE/-EINVAL/-EPIPE.
 */
int p2p_session_seal(struct p2p_session *s, const uint8_t *msg, size_t len,
		     uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));

/*
 * Decrypt one record frame body into out (cap >= len - P2P_AEAD_TAG; out
 * may equal body for in-place). Returns 0 or -EBADMSG/-EPROTO/-EPIPE.
 */
int p2p_session_open(struct p2p_session *s, const uint8_t *body, size_t len,
		     uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));

/* The record suite in use (P2P_SUITE_*; 0 before established), and its
 * name ("chacha20-poly1305", "aes256-gcm"). */
int p2p_session_suite(const struct p2p_session *s);
const char *p2p_suite_name(int suite);

/* Tests only: the suites a new session offers or accepts (before start
 * or frame 1), to test the negotiation on any machine. */
void p2p_session_test_set_suites(struct p2p_session *s, uint8_t suites);

/*
 * Tests only: jump the record counters (to reach nonce exhaustion without
 * sending 2^64 records).
 */
void p2p_session_test_set_counters(struct p2p_session *s, uint64_t tx,
				   uint64_t rx);

#endif
