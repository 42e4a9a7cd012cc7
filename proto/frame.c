/*
 * Length-prefixed framing. The framer holds one header and at most one
 * frame body; its buffer grows to the largest body seen, never beyond
 * max_body, so a peer cannot make it allocate more than it announced and
 * the limit allows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

enum framer_state {
	FR_HEADER,    /* collecting the 4 length bytes */
	FR_BODY,      /* collecting body bytes */
	FR_READY,     /* a whole frame waits for p2p_framer_frame() */
	FR_DELIVERED, /* handed out; valid until the next feed */
	FR_FAILED,
};

struct p2p_framer {
	enum framer_state state;
	int error; /* the verdict that failed the framer */
	size_t max_body;
	uint8_t hdr[P2P_FRAME_HDR];
	size_t hdr_have;
	uint8_t *buf;
	size_t buf_cap;
	size_t body_len;
	size_t body_have;
	bool pass; /* the frame's length word had P2P_FRAME_PASS */
};

struct p2p_framer *p2p_framer_new(size_t max_body)
{
	struct p2p_framer *f;

	if (max_body == 0 || max_body > P2P_FRAME_MAX)
		max_body = P2P_FRAME_MAX;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->max_body = max_body;
	return f;
}

void p2p_framer_free(struct p2p_framer *f)
{
	if (f == NULL)
		return;
	free(f->buf);
	free(f);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int fail(struct p2p_framer *f, int err)
{
	f->state = FR_FAILED;
	f->error = err;
	return err;
}

/* The header is complete: check the length and make room for the body. */
static int start_body(struct p2p_framer *f)
{
	uint32_t len = get_be32(f->hdr);

	f->pass = len & P2P_FRAME_PASS;
	len &= ~P2P_FRAME_PASS;
	if (len == 0)
		return fail(f, -EPROTO);
	if (len > f->max_body)
		return fail(f, -EMSGSIZE);
	if (len > f->buf_cap) {
		uint8_t *nb = realloc(f->buf, len);

		if (nb == NULL)
			return fail(f, -ENOMEM);
		f->buf = nb;
		f->buf_cap = len;
	}
	f->body_len = len;
	f->body_have = 0;
	f->state = FR_BODY;
	return 0;
}

ssize_t p2p_framer_feed(struct p2p_framer *f, const uint8_t *data, size_t len)
{
	size_t used = 0, n;
	int err;

	if (f->state == FR_FAILED)
		return f->error;
	if (f->state == FR_READY)
		return 0; /* the caller has not taken the last frame yet */
	if (f->state == FR_DELIVERED) {
		f->state = FR_HEADER;
		f->hdr_have = 0;
	}
	if (len == 0)
		return 0;
	if (f->state == FR_HEADER) {
		n = P2P_FRAME_HDR - f->hdr_have;
		if (n > len)
			n = len;
		memcpy(f->hdr + f->hdr_have, data, n);
		f->hdr_have += n;
		used += n;
		if (f->hdr_have < P2P_FRAME_HDR)
			return (ssize_t)used;
		err = start_body(f);
		if (err)
			return err;
	}
	n = f->body_len - f->body_have;
	if (n > len - used)
		n = len - used;
	memcpy(f->buf + f->body_have, data + used, n);
	f->body_have += n;
	used += n;
	if (f->body_have == f->body_len)
		f->state = FR_READY;
	return (ssize_t)used;
}

bool p2p_framer_pass(const struct p2p_framer *f)
{
	return f->pass;
}

bool p2p_framer_frame(struct p2p_framer *f, const uint8_t **body, size_t *len)
{
	if (f->state != FR_READY)
		return false;
	*body = f->buf;
	*len = f->body_len;
	f->state = FR_DELIVERED;
	return true;
}

size_t p2p_framer_pending(const struct p2p_framer *f)
{
	switch (f->state) {
	case FR_HEADER:
		return f->hdr_have;
	case FR_BODY:
	case FR_READY:
		return P2P_FRAME_HDR + f->body_have;
	default:
		return 0;
	}
}

void p2p_frame_put_header(uint8_t out[P2P_FRAME_HDR], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}
