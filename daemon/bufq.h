/*
 * Byte queues of pooled chunks, and the write policy of the data path
 * (issue 10): no allocation per record, one write call for many records.
 *
 * A bufpool hands out BUFQ_CHUNK-byte chunks and keeps up to
 * BUFQ_POOL_KEEP freed ones for reuse, so a busy link or tunnel takes and
 * returns chunks without touching the heap (no malloc, no free, no trim
 * per record) and an idle daemon holds at most BUFQ_POOL_KEEP of them.
 *
 * A bufq is a FIFO of bytes in chunks. Records are sealed straight into
 * it (bufq_reserve + bufq_commit: the bytes never move afterwards) or
 * copied in (bufq_append). bufq_flush() writes what is queued through a
 * bufq_io: first try_write with every queued piece at once (one writev),
 * then, for what the socket did not take, one asynchronous write of the
 * rest; while that is in flight flush does nothing, and bufq_written()
 * (its completion) releases the bytes, after which the caller flushes
 * again with everything queued meanwhile. No libuv here: the daemon's
 * glue maps bufq_io onto uv_try_write/uv_write, the tests onto a fake.
 */
#ifndef P2PD_BUFQ_H
#define P2PD_BUFQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define BUFQ_CHUNK (256u * 1024) /* holds several 64 KiB records */
#define BUFQ_POOL_KEEP 8	 /* free chunks kept: 2 MiB at most */
#define BUFQ_IOV_MAX 32		 /* pieces in one flush */

struct bufq_chunk;

struct bufpool {
	struct bufq_chunk *free;
	unsigned nfree;
	size_t live; /* chunks handed out and not returned */
};

/* A chunk's data area (BUFQ_CHUNK bytes) or NULL on ENOMEM. */
void *bufpool_get(struct bufpool *p);
void bufpool_put(struct bufpool *p, void *data);
/* Frees the kept chunks (at exit); chunks handed out stay theirs. */
void bufpool_drain(struct bufpool *p);

struct bufq {
	struct bufpool *pool;
	struct bufq_chunk *head, *tail;
	size_t off;	 /* in head: first byte not yet written */
	size_t len;	 /* bytes queued, in flight included */
	size_t inflight; /* bytes of the asynchronous write in progress */
	size_t reserved; /* room promised by the last bufq_reserve */
};

struct bufq_io {
	/* Write what the socket takes now: bytes taken (>= 0), -EAGAIN,
	 * or another -errno (the queue is then failed). */
	ssize_t (*try_write)(void *ctx, const struct iovec *iov, int n);
	/* Start writing all of iov (the bytes stay put until the caller
	 * calls bufq_written): 0 or -errno. */
	int (*write)(void *ctx, const struct iovec *iov, int n);
};

void bufq_init(struct bufq *q, struct bufpool *p);
/* Every chunk back to the pool; queued bytes are dropped. */
void bufq_free(struct bufq *q);
/* Bytes queued, those in flight included. */
static inline size_t bufq_len(const struct bufq *q)
{
	return q->len;
}
/* Bytes not yet handed to a write (what a flush would write). */
static inline size_t bufq_unsent(const struct bufq *q)
{
	return q->len - q->inflight;
}

/* cap contiguous bytes at the end of the queue (cap <= BUFQ_CHUNK), for
 * one bufq_commit; NULL on ENOMEM (or cap too big). */
void *bufq_reserve(struct bufq *q, size_t cap);
/* n <= cap bytes written at the last bufq_reserve are queued. */
void bufq_commit(struct bufq *q, size_t n);
/* Copies len bytes in (across chunks if need be). 0 or -ENOMEM (nothing
 * queued then). */
int bufq_append(struct bufq *q, const void *data, size_t len);

/* The queue read in place (a queue that is not flushed through an io):
 * the first contiguous bytes at *p, how many (0: empty). */
size_t bufq_peek(const struct bufq *q, const uint8_t **p);
/* The first n <= bufq_len() bytes are done with: released. */
void bufq_drop(struct bufq *q, size_t n);
/*
 * Writes what is queued and not in flight: try_write with all of it
 * (up to BUFQ_IOV_MAX pieces), then write() for the rest. Returns the
 * bytes that left at once (released already), or -errno from the io (the
 * caller fails the link; the queue stays as it was apart from what left).
 * With a write in flight it returns 0 and does nothing.
 */
ssize_t bufq_flush(struct bufq *q, const struct bufq_io *io, void *ctx);
/* The asynchronous write finished (any status): its bytes are released.
 * Returns how many. */
size_t bufq_written(struct bufq *q);

#endif
