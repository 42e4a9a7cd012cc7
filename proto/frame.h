/*
 * Framing: every unit on a link is u32 big-endian body length, then body.
 * Length 0 and lengths over the decoder's maximum are errors.
 *
 * P2P_FRAME_PASS in the length word (issue 10) marks a relay pass frame:
 * its body is a sealed RELAY_PASS record (P2P_PASS_HDR bytes) followed by
 * bytes the hop does not seal (see proto/msg.h, RELAY_PASS); the length
 * is the rest of the word. Only sent to a peer that said it knows them
 * (HELLO P2P_HELLO_RELAY_PASS); older framers reject the word as a length
 * over their maximum.
 */
#ifndef P2P_PROTO_FRAME_H
#define P2P_PROTO_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "limits.h"

struct p2p_framer;

/* max_body <= P2P_FRAME_MAX; 0 means P2P_FRAME_MAX. NULL on ENOMEM. */
struct p2p_framer *p2p_framer_new(size_t max_body);
void p2p_framer_free(struct p2p_framer *f);

/*
 * Take bytes as they come. Consumes at most up to the end of the current
 * frame and returns how many bytes it took (0..len); call
 * p2p_framer_frame() after each call, then call again with the rest.
 * Returns -EMSGSIZE for a length over max_body, -EPROTO for length 0. After
 * an error the framer stays failed (the link must be closed).
 */
ssize_t p2p_framer_feed(struct p2p_framer *f, const uint8_t *data, size_t len);

/*
 * If a whole frame is buffered, point *body at it (valid until the next
 * feed) and return true; the framer then starts on the next frame.
 */
bool p2p_framer_frame(struct p2p_framer *f, const uint8_t **body, size_t *len);

/* The frame p2p_framer_frame() handed out had P2P_FRAME_PASS. */
bool p2p_framer_pass(const struct p2p_framer *f);

/* Bytes of a partial frame currently held (0 between frames). */
size_t p2p_framer_pending(const struct p2p_framer *f);

/* Write the 4-byte header for a body of len bytes. */
void p2p_frame_put_header(uint8_t out[P2P_FRAME_HDR], uint32_t len);

#endif
