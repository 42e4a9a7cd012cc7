/*
 * The simulator's event queue: a 4-ary min-heap of events kept inline in
 * one growing array (no allocation per event), ordered by virtual time and
 * then by insertion sequence, so that equal times pop in FIFO order and a
 * run is deterministic.
 */
#ifndef P2PSIM_HEAP_H
#define P2PSIM_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_event {
	uint64_t at;  /* virtual time, ms */
	uint64_t seq; /* tie breaker, set by sim_heap_push */
	uint8_t type;
	uint32_t a, b; /* node indices (meaning depends on type) */
	uint32_t aux;  /* generation, record index, flags */
	void *buf;     /* message bytes (struct sim_buf), owned by the event */
};

struct sim_heap {
	struct sim_event *ev;
	size_t len, cap;
	uint64_t next_seq;
};

void sim_heap_init(struct sim_heap *h);
void sim_heap_deinit(struct sim_heap *h);
/* Copies *e in and stamps its seq. 0 or -ENOMEM. */
int sim_heap_push(struct sim_heap *h, const struct sim_event *e);
/* Earliest event into *e; false when empty. */
bool sim_heap_pop(struct sim_heap *h, struct sim_event *e);
/* Time of the earliest event, UINT64_MAX when empty. */
uint64_t sim_heap_peek_time(const struct sim_heap *h);

#endif
