/*
 * Petnames (SPEC section 9): the daemon's table of NAME -> peer ID, kept
 * in STATE_DIR/names.json ({"NAME": "ID", ...}). A name is unique; a peer
 * may have several (tables show the first in name order).
 */
#ifndef P2PD_NAMES_H
#define P2PD_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/peerid.h"
#include "proto/petname.h"

#define NAMES_MAX 1024
#define NAMES_FILE "names.json"

struct names;

struct names *names_new(void);
void names_free(struct names *nm);

/* Set name to id (a new name, or a new ID for it): 0, -EINVAL for a bad
 * name, -ENOSPC when NAMES_MAX names exist. */
int names_set(struct names *nm, const char *name, const struct p2p_peerid *id);
/* 0, or -ENOENT when there is no such name. */
int names_rm(struct names *nm, const char *name);
const struct p2p_peerid *names_get(const struct names *nm, const char *name);
/* A name of id (the first in order), or NULL. */
const char *names_of(const struct names *nm, const struct p2p_peerid *id);
size_t names_count(const struct names *nm);
/* The i-th entry in name order, i < names_count. */
const char *names_at(const struct names *nm, size_t i,
		     const struct p2p_peerid **id);

/*
 * A peer argument (ID, ID.p2p, NAME, NAME.p2p) to an ID: 0, -EINVAL when
 * it is neither form, -ENOENT for a name not in the table.
 */
int names_resolve(const struct names *nm, const char *text, size_t len,
		  struct p2p_peerid *id);

/*
 * Load path, replacing the table: 0, -ENOENT when absent (table left
 * empty), -EPROTO/-errno with err set (table left empty).
 */
int names_load(struct names *nm, const char *path, char *err, size_t errlen);
/* Write atomically, mode 0600. 0 or -errno. */
int names_save(const struct names *nm, const char *path);

#endif
