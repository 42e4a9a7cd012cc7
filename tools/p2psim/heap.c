#include "heap.h"

#include <errno.h>
#include <stdlib.h>

#define SIM_HEAP_INITIAL 1024
/* Four children per node: half the depth of a binary heap, and the
 * children of one node share cache lines. */
#define SIM_HEAP_ARITY 4

void sim_heap_init(struct sim_heap *h)
{
	h->ev = NULL;
	h->len = 0;
	h->cap = 0;
	h->next_seq = 0;
}

void sim_heap_deinit(struct sim_heap *h)
{
	free(h->ev);
	sim_heap_init(h);
}

static bool before(const struct sim_event *x, const struct sim_event *y)
{
	if (x->at != y->at)
		return x->at < y->at;
	return x->seq < y->seq;
}

int sim_heap_push(struct sim_heap *h, const struct sim_event *e)
{
	if (h->len == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : SIM_HEAP_INITIAL;
		struct sim_event *ev = realloc(h->ev, cap * sizeof(*ev));

		if (ev == NULL)
			return -ENOMEM;
		h->ev = ev;
		h->cap = cap;
	}
	/* Sift up: move parents down until the new event's slot is found. */
	struct sim_event x = *e;
	size_t i = h->len++;

	x.seq = h->next_seq++;
	while (i > 0) {
		size_t parent = (i - 1) / SIM_HEAP_ARITY;

		if (!before(&x, &h->ev[parent]))
			break;
		h->ev[i] = h->ev[parent];
		i = parent;
	}
	h->ev[i] = x;
	return 0;
}

bool sim_heap_pop(struct sim_heap *h, struct sim_event *e)
{
	if (h->len == 0)
		return false;
	*e = h->ev[0];
	struct sim_event last = h->ev[--h->len];
	size_t n = h->len, i = 0;

	/* Sift down the last event from the root. */
	for (;;) {
		size_t first = SIM_HEAP_ARITY * i + 1, c = first;

		if (first >= n)
			break;
		for (size_t k = first + 1; k < first + SIM_HEAP_ARITY && k < n;
		     k++)
			if (before(&h->ev[k], &h->ev[c]))
				c = k;
		if (!before(&h->ev[c], &last))
			break;
		h->ev[i] = h->ev[c];
		i = c;
	}
	if (n > 0)
		h->ev[i] = last;
	return true;
}

uint64_t sim_heap_peek_time(const struct sim_heap *h)
{
	return h->len ? h->ev[0].at : UINT64_MAX;
}
