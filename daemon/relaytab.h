/*
 * The circuits a relay carries (relay.c): pure bookkeeping, no I/O, so it
 * is unit tested on its own (tests/node/test_relaytab.c). A circuit joins
 * two links, each end named by (link, circuit ID on that link); links are
 * opaque pointers here. Every limit is checked on add.
 */
#ifndef P2PD_RELAYTAB_H
#define P2PD_RELAYTAB_H

#include <stdbool.h>
#include <stdint.h>

#define RELAY_CIRC_MAX 256     /* circuits one node relays */
#define RELAY_CIRC_PER_LINK 16 /* ... opened by one peer (end a) */

struct relay_circ {
	struct relay_circ *next;
	const void *a, *b; /* a: the requester's link, b: the target's */
	uint32_t ca, cb;   /* the circuit's ID on a and on b */
};

struct relay_tab {
	struct relay_circ *circs;
	unsigned n;
};

/* Is circuit ID c in use on link l (either end)? */
bool relay_tab_used(const struct relay_tab *t, const void *l, uint32_t c);

/*
 * Add a circuit. 0, -EBUSY over RELAY_CIRC_MAX or RELAY_CIRC_PER_LINK
 * (circuits with end a), -EEXIST if either ID is in use on its link,
 * -EINVAL when a == b, -ENOMEM.
 */
int relay_tab_add(struct relay_tab *t, const void *a, uint32_t ca,
		  const void *b, uint32_t cb)
    __attribute__((warn_unused_result));

/* The circuit with end (l, c), and its other end; NULL if none. */
struct relay_circ *relay_tab_find(const struct relay_tab *t, const void *l,
				  uint32_t c, const void **other, uint32_t *oc);

/* Some circuit with an end on l, or NULL. */
struct relay_circ *relay_tab_on(const struct relay_tab *t, const void *l);

void relay_tab_del(struct relay_tab *t, struct relay_circ *r);
void relay_tab_clear(struct relay_tab *t);

#endif
