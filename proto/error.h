/*
 * Errors are negative errno values everywhere in p2pd. The few protocol
 * specific verdicts map onto errno names:
 *   -EPROTO    malformed input (bad frame, bad message, bad handshake)
 *   -EMSGSIZE  a length over its named limit
 *   -EBADMSG   authentication failed (AEAD tag, signature)
 *   -EKEYREJECTED  the peer is not the peer ID we expected
 *   -EINVAL    bad argument from the caller (bad text ID, bad address)
 */
#ifndef P2P_PROTO_ERROR_H
#define P2P_PROTO_ERROR_H

#include <errno.h>

/* Human text for a negative errno returned by any p2p_ function. */
const char *p2p_strerror(int err);

#endif
