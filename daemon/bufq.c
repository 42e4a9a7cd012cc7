/*
 * Pooled byte queues (bufq.h). A chunk is a header followed by its data;
 * chunks never move or grow, so a write in flight may point into a chunk
 * while records are appended behind it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bufq.h"

struct bufq_chunk {
	struct bufq_chunk *next;
	size_t used; /* bytes committed */
	uint8_t data[];
};

static struct bufq_chunk *chunk_of(void *data)
{
	return (struct bufq_chunk *)((uint8_t *)data -
				     offsetof(struct bufq_chunk, data));
}

static struct bufq_chunk *chunk_get(struct bufpool *p)
{
	struct bufq_chunk *c = p->free;

	if (c) {
		p->free = c->next;
		p->nfree--;
	} else {
		c = malloc(sizeof(*c) + BUFQ_CHUNK);
		if (!c)
			return NULL;
	}
	c->next = NULL;
	c->used = 0;
	p->live++;
	return c;
}

static void chunk_put(struct bufpool *p, struct bufq_chunk *c)
{
	p->live--;
	if (p->nfree >= BUFQ_POOL_KEEP) {
		free(c);
		return;
	}
	c->next = p->free;
	p->free = c;
	p->nfree++;
}

void *bufpool_get(struct bufpool *p)
{
	struct bufq_chunk *c = chunk_get(p);

	return c ? c->data : NULL;
}

void bufpool_put(struct bufpool *p, void *data)
{
	if (data)
		chunk_put(p, chunk_of(data));
}

void bufpool_drain(struct bufpool *p)
{
	while (p->free) {
		struct bufq_chunk *c = p->free;
		p->free = c->next;
		free(c);
	}
	p->nfree = 0;
}

void bufq_init(struct bufq *q, struct bufpool *p)
{
	memset(q, 0, sizeof(*q));
	q->pool = p;
}

void bufq_free(struct bufq *q)
{
	while (q->head) {
		struct bufq_chunk *c = q->head;
		q->head = c->next;
		chunk_put(q->pool, c);
	}
	bufq_init(q, q->pool);
}

void *bufq_reserve(struct bufq *q, size_t cap)
{
	struct bufq_chunk *c = q->tail;

	q->reserved = 0;
	if (cap > BUFQ_CHUNK)
		return NULL;
	if (!c || BUFQ_CHUNK - c->used < cap) {
		c = chunk_get(q->pool);
		if (!c)
			return NULL;
		if (q->tail)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
	}
	q->reserved = cap;
	return c->data + c->used;
}

void bufq_commit(struct bufq *q, size_t n)
{
	if (n > q->reserved)
		abort(); /* a caller's bug: bytes past the room promised */
	q->tail->used += n;
	q->len += n;
	q->reserved = 0;
	/* Room given back on an empty queue: so is its chunk (an idle
	 * link or tunnel holds none). */
	if (q->len == 0) {
		chunk_put(q->pool, q->head);
		q->head = q->tail = NULL;
		q->off = 0;
	}
}

int bufq_append(struct bufq *q, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t room = q->tail ? BUFQ_CHUNK - q->tail->used : 0;
	size_t need =
	    len > room ? (len - room + BUFQ_CHUNK - 1) / BUFQ_CHUNK : 0;
	struct bufq_chunk *first = NULL, *last = NULL;

	/* All chunks first, so that a failure queues nothing. */
	for (size_t i = 0; i < need; i++) {
		struct bufq_chunk *c = chunk_get(q->pool);
		if (!c) {
			while (first) {
				struct bufq_chunk *n = first->next;
				chunk_put(q->pool, first);
				first = n;
			}
			return -ENOMEM;
		}
		if (last)
			last->next = c;
		else
			first = c;
		last = c;
	}
	if (room > len)
		room = len;
	if (room > 0) {
		memcpy(q->tail->data + q->tail->used, p, room);
		q->tail->used += room;
		p += room;
	}
	for (struct bufq_chunk *c = first; c; c = c->next) {
		size_t k = len - (size_t)(p - (const uint8_t *)data);
		if (k > BUFQ_CHUNK)
			k = BUFQ_CHUNK;
		memcpy(c->data, p, k);
		c->used = k;
		p += k;
	}
	if (first) {
		if (q->tail)
			q->tail->next = first;
		else
			q->head = first;
		q->tail = last;
	}
	q->len += len;
	return 0;
}

/* n bytes from the front were written: release them; a drained queue
 * gives its last chunk back too, so that an idle link holds none. */
static void consume(struct bufq *q, size_t n)
{
	q->len -= n;
	while (n > 0) {
		struct bufq_chunk *c = q->head;
		size_t k = c->used - q->off;
		if (k > n)
			k = n;
		q->off += k;
		n -= k;
		if (q->off == c->used && c->next) {
			q->head = c->next;
			q->off = 0;
			chunk_put(q->pool, c);
		}
	}
	if (q->len == 0 && q->head) {
		chunk_put(q->pool, q->head);
		q->head = q->tail = NULL;
		q->off = 0;
	}
}

size_t bufq_peek(const struct bufq *q, const uint8_t **p)
{
	if (!q->head || q->len == 0)
		return 0;
	*p = q->head->data + q->off;
	return q->head->used - q->off;
}

void bufq_drop(struct bufq *q, size_t n)
{
	if (n > q->len - q->inflight)
		abort(); /* a caller's bug: more than is there */
	consume(q, n);
}

/* The pieces after the first skip bytes of the queue. */
static int pieces(const struct bufq *q, size_t skip, struct iovec *iov)
{
	struct bufq_chunk *c = q->head;
	size_t off = q->off;
	int n = 0;

	while (c && n < BUFQ_IOV_MAX) {
		size_t k = c->used - off;
		if (skip >= k) {
			skip -= k;
		} else {
			iov[n].iov_base = c->data + off + skip;
			iov[n].iov_len = k - skip;
			skip = 0;
			n++;
		}
		c = c->next;
		off = 0;
	}
	return n;
}

ssize_t bufq_flush(struct bufq *q, const struct bufq_io *io, void *ctx)
{
	struct iovec iov[BUFQ_IOV_MAX];
	size_t total = 0, left;
	ssize_t k;
	int n, i, rc;

	if (q->inflight > 0 || q->len == 0)
		return 0;
	n = pieces(q, 0, iov);
	for (i = 0; i < n; i++)
		total += iov[i].iov_len;
	k = io->try_write(ctx, iov, n);
	if (k < 0 && k != -EAGAIN)
		return k;
	if (k < 0)
		k = 0;
	if ((size_t)k > total)
		k = (ssize_t)total; /* a broken io: never release more */
	consume(q, (size_t)k);
	left = total - (size_t)k;
	if (left == 0)
		return k;
	n = pieces(q, 0, iov);
	/* Only what the first try covered: pieces past BUFQ_IOV_MAX go with
	 * the next flush, after this write completes. */
	total = 0;
	for (i = 0; i < n && total < left; i++) {
		if (iov[i].iov_len > left - total)
			iov[i].iov_len = left - total;
		total += iov[i].iov_len;
	}
	rc = io->write(ctx, iov, i);
	if (rc < 0)
		return rc;
	q->inflight = left;
	return k;
}

size_t bufq_written(struct bufq *q)
{
	size_t n = q->inflight;

	q->inflight = 0;
	consume(q, n);
	return n;
}
