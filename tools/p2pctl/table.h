/*
 * Aligned text tables for people: a header row, then rows of cells, each
 * column as wide as its widest cell, two spaces between columns.
 */
#ifndef P2PCTL_TABLE_H
#define P2PCTL_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 12

struct table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols strings, row 0 is the header */
};

/* Header cells; ncols <= TABLE_MAX_COLS. 0 or -ENOMEM. */
int table_init(struct table *t, size_t ncols, const char *const *header);
/* One row of ncols cells (copied). 0 or -ENOMEM. */
int table_add(struct table *t, const char *const *cells);
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

#endif
