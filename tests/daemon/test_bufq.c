/*
 * bufq (daemon/bufq.h) against a fake transport: records go in, the fake
 * takes bytes as its script says (everything, k bytes, EAGAIN, an error,
 * an asynchronous write completed later), and what comes out must be the
 * records in order, nothing lost or repeated. Leaks show under ASan.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "daemon/bufq.h"

#define OUT_MAX (4u << 20)

struct fake {
	uint8_t *out; /* everything the "socket" took, in order */
	size_t out_len;
	size_t try_limit; /* try_write takes at most this many bytes */
	bool try_again;	  /* try_write says -EAGAIN */
	int try_err;	  /* try_write fails with this */
	int write_err;	  /* write fails with this */
	/* The asynchronous write in flight (copied at completion). */
	struct iovec pend[BUFQ_IOV_MAX];
	int npend;
	unsigned tries, writes, max_iov;
};

static void take(struct fake *f, const struct iovec *iov, int n, size_t max)
{
	for (int i = 0; i < n && max > 0; i++) {
		size_t k = iov[i].iov_len < max ? iov[i].iov_len : max;
		cr_assert(f->out_len + k <= OUT_MAX);
		memcpy(f->out + f->out_len, iov[i].iov_base, k);
		f->out_len += k;
		max -= k;
	}
}

static ssize_t fake_try(void *ctx, const struct iovec *iov, int n)
{
	struct fake *f = ctx;
	size_t before = f->out_len;

	f->tries++;
	if ((unsigned)n > f->max_iov)
		f->max_iov = (unsigned)n;
	if (f->try_err)
		return f->try_err;
	if (f->try_again)
		return -EAGAIN;
	take(f, iov, n, f->try_limit);
	return (ssize_t)(f->out_len - before);
}

static int fake_write(void *ctx, const struct iovec *iov, int n)
{
	struct fake *f = ctx;

	f->writes++;
	cr_assert_eq(f->npend, 0, "two writes in flight");
	if (f->write_err)
		return f->write_err;
	memcpy(f->pend, iov, sizeof(*iov) * (size_t)n);
	f->npend = n;
	return 0;
}

/* The asynchronous write completes: its bytes reach the output (read
 * from the queue's chunks now, so a chunk reused too early shows). */
static size_t complete(struct fake *f, struct bufq *q)
{
	size_t want = 0;

	for (int i = 0; i < f->npend; i++)
		want += f->pend[i].iov_len;
	take(f, f->pend, f->npend, SIZE_MAX);
	f->npend = 0;
	cr_assert_eq(bufq_written(q), want);
	return want;
}

static const struct bufq_io fake_io = {fake_try, fake_write};

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	f->out = malloc(OUT_MAX);
	f->try_limit = SIZE_MAX;
	return f;
}

static void fake_free(struct fake *f)
{
	free(f->out);
	free(f);
}

/* Record i: its length and a byte pattern that names it. */
static size_t rec_len(unsigned i)
{
	static const size_t lens[] = {30, 61460, 1, 65556, 4096, 200, 9};
	return lens[i % 7];
}

static void rec_fill(uint8_t *p, unsigned i)
{
	for (size_t k = 0; k < rec_len(i); k++)
		p[k] = (uint8_t)(i * 131 + k * 7);
}

static void put_record(struct bufq *q, unsigned i)
{
	uint8_t *p = bufq_reserve(q, rec_len(i) + 16);
	cr_assert_not_null(p);
	rec_fill(p, i);
	bufq_commit(q, rec_len(i));
}

static void check_records(const struct fake *f, unsigned count)
{
	static uint8_t want[65556];
	size_t off = 0;

	for (unsigned i = 0; i < count; i++) {
		cr_assert_leq(off + rec_len(i), f->out_len, "record %u missing",
			      i);
		rec_fill(want, i);
		cr_assert(memcmp(f->out + off, want, rec_len(i)) == 0,
			  "record %u damaged or out of order", i);
		off += rec_len(i);
	}
	cr_assert_eq(off, f->out_len, "bytes beyond the records");
}

Test(bufq, whole_try_write_one_call_for_many_records)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();

	bufq_init(&q, &pool);
	for (unsigned i = 0; i < 12; i++)
		put_record(&q, i);
	cr_assert_eq(bufq_flush(&q, &fake_io, f), (ssize_t)f->out_len);
	cr_assert_eq(f->tries, 1, "one writev for every record queued");
	cr_assert_eq(f->writes, 0);
	cr_assert_gt(f->max_iov, 1, "records span several chunks");
	check_records(f, 12);
	cr_assert_eq(bufq_len(&q), 0);
	cr_assert_eq(pool.live, 0, "a drained queue holds no chunk");
	cr_assert_gt(pool.nfree, 0);
	bufpool_drain(&pool);
	fake_free(f);
}

/* The socket takes k bytes at the first try, for every k up to the
 * whole: the rest goes as one asynchronous write, nothing lost. */
Test(bufq, partial_try_write_at_every_byte_boundary)
{
	struct bufpool pool = {0};
	size_t total = 30 + 61460 + 1;

	for (size_t k = 0; k <= total;
	     k += (k < 70 || k > total - 70) ? 1 : 997) {
		struct fake *f = fake_new();
		struct bufq q;

		bufq_init(&q, &pool);
		for (unsigned i = 0; i < 3; i++)
			put_record(&q, i);
		f->try_limit = k;
		cr_assert_eq(bufq_flush(&q, &fake_io, f), (ssize_t)k);
		cr_assert_eq(f->writes, k < total ? 1u : 0u);
		cr_assert_eq(bufq_len(&q), total - k);
		/* Records queued while the write is in flight wait. */
		put_record(&q, 3);
		cr_assert_eq(bufq_flush(&q, &fake_io, f), 0);
		if (k < total)
			cr_assert_eq(f->tries, 1,
				     "no try while a write is in flight");
		if (f->npend)
			complete(f, &q);
		f->try_limit = SIZE_MAX;
		bufq_flush(&q, &fake_io, f);
		check_records(f, 4);
		cr_assert_eq(bufq_len(&q), 0);
		fake_free(f);
	}
	cr_assert_eq(pool.live, 0);
	bufpool_drain(&pool);
}

/* A socket that takes one byte per try: write boundaries inside
 * records, records appended in between, writes completing between. */
Test(bufq, one_byte_at_a_time)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();
	unsigned next = 0;

	bufq_init(&q, &pool);
	f->try_limit = 1;
	put_record(&q, next++);
	for (unsigned round = 0; round < 40; round++) {
		bufq_flush(&q, &fake_io, f);
		if (f->npend && round % 3 == 0)
			complete(f, &q);
		if (round % 5 == 0)
			put_record(&q, next++);
	}
	f->try_limit = SIZE_MAX;
	while (bufq_len(&q) > 0) {
		bufq_flush(&q, &fake_io, f);
		if (f->npend)
			complete(f, &q);
	}
	check_records(f, next);
	cr_assert_eq(pool.live, 0);
	bufpool_drain(&pool);
	fake_free(f);
}

Test(bufq, eagain_then_async_write)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();

	bufq_init(&q, &pool);
	for (unsigned i = 0; i < 12; i++) /* more than one chunk */
		put_record(&q, i);
	f->try_again = true;
	cr_assert_eq(bufq_flush(&q, &fake_io, f), 0);
	cr_assert_eq(f->writes, 1, "the rest as one write with many bufs");
	cr_assert_gt(f->npend, 1);
	cr_assert_eq(f->out_len, 0);
	complete(f, &q);
	check_records(f, 12);
	cr_assert_eq(bufq_len(&q), 0);
	bufpool_drain(&pool);
	fake_free(f);
}

Test(bufq, errors_are_returned_and_nothing_released)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();

	bufq_init(&q, &pool);
	put_record(&q, 0);
	f->try_err = -EPIPE;
	cr_assert_eq(bufq_flush(&q, &fake_io, f), -EPIPE);
	cr_assert_eq(bufq_len(&q), rec_len(0));
	f->try_err = 0;
	f->try_again = true;
	f->write_err = -EBADF;
	cr_assert_eq(bufq_flush(&q, &fake_io, f), -EBADF);
	cr_assert_eq(q.inflight, 0, "a failed write is not in flight");
	bufq_free(&q);
	cr_assert_eq(pool.live, 0);
	bufpool_drain(&pool);
	fake_free(f);
}

/* A link closed with writes queued and one in flight: the libuv glue
 * completes the in-flight write (ECANCELED) before freeing the queue;
 * every chunk goes back. */
Test(bufq, closed_with_queued_writes)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();

	bufq_init(&q, &pool);
	for (unsigned i = 0; i < 20; i++)
		put_record(&q, i);
	f->try_limit = 100;
	bufq_flush(&q, &fake_io, f);
	for (unsigned i = 20; i < 30; i++)
		put_record(&q, i);
	cr_assert_gt(pool.live, 2);
	bufq_written(&q); /* cancelled */
	bufq_free(&q);
	cr_assert_eq(pool.live, 0);
	cr_assert_leq(pool.nfree, BUFQ_POOL_KEEP);
	bufpool_drain(&pool);
	fake_free(f);
}

Test(bufq, append_copies_across_chunks_in_order)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();
	size_t big = BUFQ_CHUNK * 2 + 12345;
	uint8_t *src = malloc(big);

	for (size_t i = 0; i < big; i++)
		src[i] = (uint8_t)(i * 13 + 5);
	bufq_init(&q, &pool);
	cr_assert_eq(bufq_append(&q, src, 7), 0);
	cr_assert_eq(bufq_append(&q, src + 7, big - 7), 0);
	cr_assert_eq(bufq_len(&q), big);
	f->try_again = true;
	bufq_flush(&q, &fake_io, f);
	complete(f, &q);
	cr_assert_eq(f->out_len, big);
	cr_assert(memcmp(f->out, src, big) == 0);
	cr_assert_eq(pool.live, 0);
	free(src);
	bufpool_drain(&pool);
	fake_free(f);
}

/* Read in place (a relay end's pend queue): pieces in order, any split,
 * every chunk back once empty. */
Test(bufq, peek_and_drop_in_pieces)
{
	struct bufpool pool = {0};
	struct bufq q;
	size_t big = BUFQ_CHUNK * 2 + 999, got = 0;
	uint8_t *src = malloc(big), *out = malloc(big);
	const uint8_t *p;
	size_t k;

	for (size_t i = 0; i < big; i++)
		src[i] = (uint8_t)(i * 7 + 3);
	bufq_init(&q, &pool);
	cr_assert_eq(bufq_peek(&q, &p), 0);
	cr_assert_eq(bufq_append(&q, src, big), 0);
	while ((k = bufq_peek(&q, &p)) > 0) {
		cr_assert_leq(k, BUFQ_CHUNK);
		if (k > 1000 + got % 777)
			k = 1000 + got % 777; /* uneven takes */
		memcpy(out + got, p, k);
		got += k;
		bufq_drop(&q, k);
		cr_assert_eq(bufq_len(&q), big - got);
	}
	cr_assert_eq(got, big);
	cr_assert(memcmp(out, src, big) == 0);
	cr_assert_eq(pool.live, 0);
	free(src);
	free(out);
	bufpool_drain(&pool);
}

Test(bufq, pool_reuses_chunks_and_keeps_a_bounded_number)
{
	struct bufpool pool = {0};
	void *a[BUFQ_POOL_KEEP + 4];

	for (unsigned i = 0; i < BUFQ_POOL_KEEP + 4; i++)
		cr_assert_not_null(a[i] = bufpool_get(&pool));
	cr_assert_eq(pool.live, BUFQ_POOL_KEEP + 4);
	for (unsigned i = 0; i < BUFQ_POOL_KEEP + 4; i++)
		bufpool_put(&pool, a[i]);
	cr_assert_eq(pool.nfree, BUFQ_POOL_KEEP);
	void *b = bufpool_get(&pool);
	cr_assert_eq(b, a[BUFQ_POOL_KEEP - 1], "the last kept is reused");
	bufpool_put(&pool, b);
	cr_assert_null(
	    bufq_reserve(&(struct bufq){.pool = &pool}, BUFQ_CHUNK + 1));
	bufpool_drain(&pool);
	cr_assert_eq(pool.nfree, 0);
}

/* Room set aside and not used (a read that found nothing) costs nothing:
 * an empty queue holds no chunk, a busy one is unchanged. */
Test(bufq, unused_reservation_is_given_back)
{
	struct bufpool pool = {0};
	struct bufq q;
	struct fake *f = fake_new();

	bufq_init(&q, &pool);
	cr_assert_not_null(bufq_reserve(&q, 60000));
	bufq_commit(&q, 0);
	cr_assert_eq(pool.live, 0);
	put_record(&q, 0);
	cr_assert_not_null(bufq_reserve(&q, BUFQ_CHUNK)); /* a new chunk */
	bufq_commit(&q, 0);
	put_record(&q, 1);
	cr_assert_eq(bufq_len(&q), rec_len(0) + rec_len(1));
	bufq_flush(&q, &fake_io, f);
	check_records(f, 2);
	cr_assert_eq(pool.live, 0);
	bufpool_drain(&pool);
	fake_free(f);
}
