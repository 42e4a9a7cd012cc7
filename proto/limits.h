/*
 * Every wire limit of p2pd in one place. Changing one of these changes the
 * protocol; bump P2P_PROTO_VERSION when you do.
 */
#ifndef P2P_PROTO_LIMITS_H
#define P2P_PROTO_LIMITS_H

#define P2P_PROTO_VERSION 1

#define P2P_ID_LEN 32	   /* BLAKE2b-256 of the Ed25519 public key */
#define P2P_ID_TEXT_LEN 52 /* base32, lowercase, no padding */

#define P2P_FRAME_HDR 4	  /* u32 big-endian body length */
#define P2P_MSG_MAX 65536 /* largest plaintext message (64 KiB) */
#define P2P_AEAD_TAG 16	  /* ChaCha20-Poly1305 tag */
#define P2P_FRAME_MAX (P2P_MSG_MAX + P2P_AEAD_TAG) /* largest frame body */
#define P2P_FRAME_PASS 0x80000000u /* length word flag: a relay pass frame */

#define P2P_MSG_HDR 2		/* version u8, type u8 */
#define P2P_MAX_NODES 20	/* contacts in one NODES reply (k) */
#define P2P_MAX_ADDRS 8		/* addresses in one HELLO */
#define P2P_SERVICE_NAME_MAX 63 /* bytes of a service name */
#define P2P_REASON_MAX 255	/* bytes of a close/error reason */
#define P2P_ROUTE_HOPS_MAX 32	/* hop limit ceiling for routed messages */

#endif
