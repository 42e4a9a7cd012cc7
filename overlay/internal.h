/*
 * Internals of the overlay core, shared by its files:
 *   overlay.c  handle, events, action queue, timers
 *   table.c    routing table (buckets, replacement caches, diversity)
 *   links.c    link map, which links to keep, dialling and idle close
 *   lookup.c   iterative FIND_NODE lookups, bucket refresh
 *   route.c    routed messages
 * Everything here is internal (ov_ prefix); overlay.h is the contract.
 */
#ifndef P2P_OVERLAY_INTERNAL_H
#define P2P_OVERLAY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "overlay.h"

/* Internal limits (the wire and Kademlia ones are in overlay.h). */
#define OV_ENTRY_FAILS_MAX 3	 /* failures before an entry is replaced */
#define OV_REDIAL_MIN_S 2	 /* first back-off after a failure */
#define OV_REDIAL_MAX_S 300	 /* back-off ceiling */
#define OV_BUCKET_LINKS 3	 /* links kept per bucket (greedy routing) */
#define OV_LINKS_WANT_MAX 128	 /* links the overlay keeps at most */
#define OV_MAINT_DIALS 8	 /* maintenance dials in flight at most */
#define OV_MAINT_MIN_MS 1000	 /* maintenance runs at most this often */
#define OV_LINK_IDLE_MS 10000	 /* transient link closed after this */
#define OV_LOOKUPS_MAX 32	 /* concurrent lookups */
#define OV_REFRESH_PARALLEL 3	 /* concurrent refresh lookups */
#define OV_CLIENT_PROBE_MS 30000 /* a client asks its neighbours for news */
/* ... and less often, up to this, while nothing changes */
#define OV_CLIENT_PROBE_MAX_MS 240000
#define OV_LOOKUP_CANDS (2 * P2P_K) /* shortlist of one lookup */
#define OV_SEEN_MAX 128		    /* recent routed message IDs remembered */
#define OV_SENT_MAX 32		    /* our own routed messages remembered */
#define OV_ARENA_KEEP 0		    /* action bytes kept once drained */
#define OV_ACTS_KEEP 0		    /* action slots kept once drained */
#define OV_ROUTE_OVERHEAD 128	/* bytes of a ROUTED message besides payload */
#define OV_NODES_MAX_BYTES 2048 /* an encoded NODES message fits in this */

/* One routing table entry; kept compact (100,000 simulated tables). */
struct ov_entry {
	struct p2p_peerid id;
	struct p2p_addr addr;
	uint8_t fails;	  /* consecutive failures; 0 after any success */
	uint8_t flags;	  /* OV_E_* */
	uint32_t retry_s; /* no dial before this time (seconds) */
};
#define OV_E_WANT 0x01 /* we keep a link to this entry */

struct ov_bucket {
	struct ov_entry *e; /* oldest first: old nodes are the stable ones */
	struct p2p_contact *repl; /* replacement cache, newest last */
	uint8_t n, cap, nrepl, replcap;
	uint32_t touched_s; /* last lookup into it (seconds); 0: refresh now */
};

enum ov_link_state { OV_LINK_DIALING = 1, OV_LINK_UP };
#define OV_L_SERVER 0x01 /* peer is a DHT server */
#define OV_L_OUT 0x02	 /* we opened it */
#define OV_L_WANT 0x04	 /* the table wants it kept */
#define OV_L_MAINT 0x08	 /* dialled by maintenance (counts in its budget) */

struct ov_link {
	struct p2p_peerid id;
	struct p2p_addr addr;
	uint8_t state;
	uint8_t flags;
	uint32_t tokens;      /* routed messages, in thousandths */
	uint64_t refill;      /* time tokens were last refilled */
	uint64_t used;	      /* last overlay traffic, for the idle close */
	uint32_t find_tokens; /* FIND_NODE answered, in thousandths */
	uint64_t find_refill;
};

enum ov_cand_state {
	OV_C_NEW = 0,
	OV_C_DIALING, /* waiting for a link, then SENT */
	OV_C_SENT,
	OV_C_DONE,
	OV_C_FAILED,
};

struct ov_cand {
	struct p2p_contact c;
	uint8_t state;
	uint8_t depth; /* replies on the chain that taught us this node */
	uint32_t txid;
	uint64_t deadline;
};

/*
 * PROBE: a client asks the P2P_ALPHA servers nearest to it, over the links
 * it holds, for its own ID (one round, no dials) and adds what they answer
 * to its table. Servers learn new neighbours when these look themselves up
 * and dial them; clients are never dialled, so they must ask.
 */
enum ov_lookup_kind { OV_LK_USER, OV_LK_SELF, OV_LK_REFRESH, OV_LK_PROBE };

struct ov_lookup {
	uint64_t id;
	struct p2p_peerid target;
	uint64_t deadline; /* whole lookup */
	uint64_t wake;	   /* earliest deadline of this lookup */
	uint8_t kind;
	uint8_t n;
	struct ov_cand c[OV_LOOKUP_CANDS]; /* nearest first */
};

/* Internal form of a queued action: data lives in the arena at off. */
struct ov_act {
	struct p2p_ov_action a;
	size_t off;  /* data offset in the arena */
	size_t coff; /* contacts offset in the arena */
};

#define OV_SUBNET_BINS 64

struct p2p_overlay {
	struct p2p_overlay_config cfg;
	bool server;

	/* routing table */
	struct ov_bucket *bk;
	uint16_t nbk; /* buckets 0..nbk-1 exist */
	size_t table_size;
	/*
	 * Entries per hash of their subnet: an upper bound on any one
	 * subnet's count, so the table-wide diversity check only scans the
	 * table when a bin is near the limit (rare: ~200 entries over the
	 * bins average 3 each).
	 */
	uint16_t subnet_bins[OV_SUBNET_BINS];

	/* links: dense array plus an open-addressing index (slot = i + 1) */
	struct ov_link *lk;
	uint32_t nlk, lkcap;
	uint32_t *lkidx;
	uint32_t lkidxcap; /* power of two */
	uint64_t hseed;
	size_t links_up;
	unsigned maint_dials;

	/* lookups */
	struct ov_lookup *lookups[OV_LOOKUPS_MAX];
	unsigned nlookups;
	uint64_t next_lookup_id;
	uint32_t next_txid;
	bool booting;	    /* own-ID lookup of bootstrap in progress */
	bool booted;	    /* bootstrap started refreshes */
	uint64_t self_at;   /* next own-ID lookup */
	uint64_t probe_at;  /* client: next probe of its neighbourhood */
	uint32_t probe_ivl; /* and its current interval */
	uint64_t refresh_at;

	/* routing */
	/*
	 * Ring of recent message IDs, lazily allocated, with the hops each
	 * came from and went to (their IDs folded to 64 bits, 0 for none), so
	 * that a failure report goes back the way its message came.
	 */
	struct ov_seen {
		uint64_t msgid;
		uint64_t prev, next;
	} * seen;
	unsigned nseen, seenpos;
	struct ov_sent {
		uint64_t msgid;
		uint64_t via; /* the first hop (tag), which alone may fail it */
		struct p2p_peerid dst;
	} * sent;
	unsigned nsent, sentpos;
	uint32_t anon_tokens; /* shared bucket for peers without a link */
	uint64_t anon_refill;
	uint32_t anon_find_tokens; /* FIND_NODE, peers without a link */
	uint64_t anon_find_refill;

	/* timers */
	bool dirty; /* wanted links must be recomputed */
	uint64_t last_maint;
	uint64_t idle_at; /* next idle check */
	uint64_t redial_at;

	/* actions */
	struct ov_act *acts;
	size_t nacts, acap, ahead;
	uint8_t *arena;
	size_t alen, arcap;

	struct p2p_overlay_stats st;
};

/*
 * Peer IDs are public: compare them with plain memcmp, not the
 * constant-time p2p_peerid_equal (sodium_memcmp), which dominated the
 * profile of a simulated network.
 */
static inline bool ov_id_eq(const struct p2p_peerid *a,
			    const struct p2p_peerid *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* p2p_peerid_cmp_dist, with the first 64 bits compared at once. */
static inline int ov_cmp_dist(const struct p2p_peerid *t,
			      const struct p2p_peerid *a,
			      const struct p2p_peerid *b)
{
	uint64_t x, y, z;

	memcpy(&x, t->b, 8);
	memcpy(&y, a->b, 8);
	memcpy(&z, b->b, 8);
	y = __builtin_bswap64(y ^ x);
	z = __builtin_bswap64(z ^ x);
	if (y != z)
		return y < z ? -1 : 1;
	return p2p_peerid_cmp_dist(t, a, b);
}

/* overlay.c */
void ov_log(struct p2p_overlay *o, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct ov_act *ov_push(struct p2p_overlay *o, enum p2p_ov_action_type type,
		       const struct p2p_peerid *peer);
void *ov_arena_alloc(struct p2p_overlay *o, size_t len, size_t *off);
int ov_send(struct p2p_overlay *o, uint64_t now, const struct p2p_peerid *peer,
	    const struct p2p_msg *m);
void ov_set_dirty(struct p2p_overlay *o);
uint32_t ov_now_s(uint64_t now);
uint32_t ov_touch_stamp(uint64_t now);

/* table.c */
int ov_bucket_index(const struct p2p_overlay *o, const struct p2p_peerid *id);
struct ov_entry *ov_table_find(struct p2p_overlay *o,
			       const struct p2p_peerid *id);
bool ov_table_insert(struct p2p_overlay *o, uint64_t now,
		     const struct p2p_peerid *id, const struct p2p_addr *addr,
		     bool verified);
void ov_table_remove(struct p2p_overlay *o, const struct p2p_peerid *id);
void ov_table_fail(struct p2p_overlay *o, uint64_t now,
		   const struct p2p_peerid *id);
size_t ov_table_closest(const struct p2p_overlay *o,
			const struct p2p_peerid *target,
			const struct p2p_peerid *exclude, bool healthy,
			struct p2p_contact *out, size_t max);
void ov_table_free(struct p2p_overlay *o);

/* links.c */
struct ov_link *ov_link_find(const struct p2p_overlay *o,
			     const struct p2p_peerid *id);
struct ov_link *ov_link_add(struct p2p_overlay *o, const struct p2p_peerid *id);
void ov_link_del(struct p2p_overlay *o, struct ov_link *l);
bool ov_link_dial(struct p2p_overlay *o, uint64_t now,
		  const struct p2p_peerid *id, const struct p2p_addr *addr);
void ov_maintain(struct p2p_overlay *o, uint64_t now);
void ov_idle_check(struct p2p_overlay *o, uint64_t now);
void ov_links_free(struct p2p_overlay *o);

/* lookup.c */
int ov_lookup_start(struct p2p_overlay *o, uint64_t now,
		    const struct p2p_peerid *target, enum ov_lookup_kind kind,
		    uint64_t *id);
void ov_lookup_link_up(struct p2p_overlay *o, uint64_t now,
		       const struct p2p_peerid *peer);
void ov_lookup_link_gone(struct p2p_overlay *o, uint64_t now,
			 const struct p2p_peerid *peer);
int ov_lookup_nodes(struct p2p_overlay *o, uint64_t now,
		    const struct p2p_peerid *from, const struct p2p_msg *m);
void ov_lookup_tick(struct p2p_overlay *o, uint64_t now);
void ov_refresh_tick(struct p2p_overlay *o, uint64_t now);
void ov_lookups_free(struct p2p_overlay *o);

/* route.c */
int ov_route_recv(struct p2p_overlay *o, uint64_t now,
		  const struct p2p_peerid *from, const struct p2p_msg *m);
int ov_route_origin(struct p2p_overlay *o, uint64_t now,
		    const struct p2p_peerid *dst, uint8_t app,
		    const uint8_t *payload, size_t len, uint64_t *msgid);
void ov_route_free(struct p2p_overlay *o);

#endif
