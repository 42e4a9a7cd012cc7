/*
 * The peer cache: STATE_DIR/peers.json, the server peers we have linked
 * to, newest first, so that a restart rejoins without flags. Pure file and
 * JSON handling; the node decides when to save.
 *
 * Format: [{"id": "<52 chars>", "addr": "1.2.3.4:4242", "seen": 3}, ...]
 * ("seen" optional, 1 when absent).
 */
#ifndef P2PD_PEERCACHE_H
#define P2PD_PEERCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/msg.h"

#define PEERCACHE_MAX 64
/* Entries per /24 (IPv4) or /48 (IPv6); 127.0.0.0/24 and ::1 exempt, as in
 * the routing table (tests run every daemon there). */
#define PEERCACHE_SUBNET_MAX 4
#define PEERCACHE_SEEN_MAX 1000000	/* seen counts saturate */
#define PEERCACHE_FILE_MAX (256 * 1024) /* larger files are malformed */

struct peercache {
	size_t n;
	struct p2p_contact e[PEERCACHE_MAX]; /* newest first */
	uint32_t seen[PEERCACHE_MAX];	     /* link-ups, across restarts */
	bool dirty;			     /* changed since last save */
};

void peercache_init(struct peercache *pc);

/*
 * Put (id, addr) first; an existing entry for id moves up and counts one
 * more sighting. A new entry whose subnet already has PEERCACHE_SUBNET_MAX
 * replaces the least seen of that subnet; otherwise, when full, the least
 * seen entry (the oldest of those) drops out: peers seen again and again
 * (long-lived ones) outlast a crowd of new identities. Sets dirty when
 * anything changed.
 */
void peercache_add(struct peercache *pc, const struct p2p_peerid *id,
		   const struct p2p_addr *addr);

/*
 * Parse the JSON text. All or nothing: on -EPROTO the cache is left empty
 * and err names the problem.
 */
int peercache_parse(struct peercache *pc, const char *text, size_t len,
		    char *err, size_t errlen);

/*
 * Read path: 0, -ENOENT when absent, -EPROTO (err set) or -errno (-ELOOP
 * for a symbolic link, which is never followed).
 */
int peercache_load(struct peercache *pc, const char *path, char *err,
		   size_t errlen);

/* Serialize; malloc'd NUL-terminated string, NULL on ENOMEM. */
char *peercache_dump(const struct peercache *pc);

/*
 * Write atomically: a new path.tmp.XXXXXX (mkostemp, mode 0600), fsync,
 * rename over path, fsync the directory; clears dirty. 0 or -errno.
 */
int peercache_save(struct peercache *pc, const char *path);

#endif
