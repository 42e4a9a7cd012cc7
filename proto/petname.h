/*
 * Petnames (SPEC section 9): a local name for a peer ID, and the text a
 * user may give wherever an ID is taken: ID, ID.p2p, NAME or NAME.p2p.
 * Pure: the daemon keeps the table, p2pctl checks syntax with the same
 * code so that the two never disagree.
 */
#ifndef P2P_PROTO_PETNAME_H
#define P2P_PROTO_PETNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "peerid.h"

#define P2P_NAME_MAX 32	       /* characters of a name */
#define P2P_NAME_SUFFIX ".p2p" /* accepted after a name or an ID */

/* 1..P2P_NAME_MAX of [a-z0-9-], starting with a letter (len is strlen). */
bool p2p_name_valid(const char *s, size_t len);

enum p2p_peer_ref {
	P2P_REF_ID = 1,	  /* *id set */
	P2P_REF_NAME = 2, /* name set (without the suffix), to look up */
};

/*
 * A peer argument: an ID or a name, either optionally followed by
 * ".p2p". Returns P2P_REF_ID or P2P_REF_NAME, or -EINVAL when it is
 * neither. name must hold P2P_NAME_MAX + 1 bytes.
 */
int p2p_peer_ref_parse(const char *text, size_t len, struct p2p_peerid *id,
		       char *name) __attribute__((warn_unused_result));

#endif
