/* Relay circuit bookkeeping; see relaytab.h. */
#include <errno.h>
#include <stdlib.h>

#include "relaytab.h"

bool relay_tab_used(const struct relay_tab *t, const void *l, uint32_t c)
{
	for (const struct relay_circ *r = t->circs; r; r = r->next)
		if ((r->a == l && r->ca == c) || (r->b == l && r->cb == c))
			return true;
	return false;
}

int relay_tab_add(struct relay_tab *t, const void *a, uint32_t ca,
		  const void *b, uint32_t cb)
{
	struct relay_circ *r;
	unsigned from_a = 0;

	if (a == b)
		return -EINVAL;
	for (r = t->circs; r; r = r->next)
		if (r->a == a)
			from_a++;
	if (t->n >= RELAY_CIRC_MAX || from_a >= RELAY_CIRC_PER_LINK)
		return -EBUSY;
	if (relay_tab_used(t, a, ca) || relay_tab_used(t, b, cb))
		return -EEXIST;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->a = a;
	r->ca = ca;
	r->b = b;
	r->cb = cb;
	r->next = t->circs;
	t->circs = r;
	t->n++;
	return 0;
}

struct relay_circ *relay_tab_find(const struct relay_tab *t, const void *l,
				  uint32_t c, const void **other, uint32_t *oc)
{
	for (struct relay_circ *r = t->circs; r; r = r->next) {
		if (r->a == l && r->ca == c) {
			*other = r->b;
			*oc = r->cb;
			return r;
		}
		if (r->b == l && r->cb == c) {
			*other = r->a;
			*oc = r->ca;
			return r;
		}
	}
	return NULL;
}

struct relay_circ *relay_tab_on(const struct relay_tab *t, const void *l)
{
	for (struct relay_circ *r = t->circs; r; r = r->next)
		if (r->a == l || r->b == l)
			return r;
	return NULL;
}

void relay_tab_del(struct relay_tab *t, struct relay_circ *r)
{
	for (struct relay_circ **pp = &t->circs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			t->n--;
			free(r);
			return;
		}
	}
}

void relay_tab_clear(struct relay_tab *t)
{
	while (t->circs)
		relay_tab_del(t, t->circs);
}
