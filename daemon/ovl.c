/*
 * The overlay glue (ovl.h). Per link it keeps a small record, by link ID,
 * of what only the overlay cares about: whether the overlay was told the
 * link is up, whether it was dialled for the overlay or as a bootstrap
 * address, and the dial-back asks made over it.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keepalive.h"
#include "log.h"
#include "nodeutil.h"
#include "ovl.h"
#include "peercache.h"
#include "resolve.h"

struct ovl_link {
	struct ovl_link *next;
	uint32_t id;
	bool up;	    /* reported to the overlay with link_up */
	bool dial;	    /* opened for an overlay DIAL action */
	bool boot;	    /* dialled as a bootstrap address */
	bool dialback_busy; /* peer's DIALBACK being served */
	uint8_t asks;	    /* DIALBACKs we sent this peer */
	uint64_t next_ask;  /* ... the next not before */
	bool verify;	    /* dialled to verify the peer's claimed address */
	bool verify_sent;   /* ... such a dial was made for this link */
	struct p2p_addr verified; /* the peer's claimed address, proven */
};

struct ovl_lookup {
	struct ovl_lookup *next;
	uint64_t id;
	ovl_lookup_fn done;
	void *arg;
};

struct ovl {
	struct p2p_overlay *ov;
	struct p2p_nat *nat;
	bool server;	   /* reachability learned */
	bool bootstrapped; /* p2p_overlay_bootstrap called */
	uint64_t dialback_window, dialback_count;
	uint64_t verify_window, verify_count; /* OVL_VERIFY_PER_S */
	uint64_t db_nonce;	/* sent in our DIALBACK asks (0: none) */
	struct p2p_addr mapped; /* the gateway's mapping of our listen port */
	size_t nboot;
	struct p2p_addr boot[P2PD_MAX_BOOTSTRAP]; /* -b addresses */
	size_t nboot_names;			  /* -b host names */
	char boot_names[P2PD_MAX_BOOTSTRAP][P2P_HOST_NAME_MAX + 8];
	uint64_t rejoin_at, rejoin_ms; /* no links: retry joining then */
	struct p2p_ka ka;	       /* keepalive that follows the NAT */
	bool ka_on;		       /* config keepalive_adapt */
	struct peercache cache;
	uint64_t cache_saved;
	struct ovl_link *links;
	struct ovl_lookup *lookups;
	struct {
		uint64_t msgid;
		uint8_t app;
	} routes[OVL_ROUTES_MAX];
	size_t route_next;
	uint64_t linklog[2][OVL_LINKLOG_SLOTS]; /* up, down */
};

static struct ovl_link *rec(struct p2pd_node *n, uint32_t id, bool create)
{
	struct ovl_link *r;

	for (r = n->ovl->links; r; r = r->next)
		if (r->id == id)
			return r;
	if (!create || !(r = calloc(1, sizeof(*r))))
		return NULL;
	r->id = id;
	r->next = n->ovl->links;
	n->ovl->links = r;
	return r;
}

static void rec_del(struct p2pd_node *n, uint32_t id)
{
	for (struct ovl_link **pp = &n->ovl->links; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct ovl_link *r = *pp;
			*pp = r->next;
			free(r);
			return;
		}
	}
}

/* May "link up" (down: 1) about peer be logged at info now? */
static bool linklog(struct p2pd_node *n, const struct p2p_peerid *peer,
		    int down)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(peer->b); i++)
		h = (h ^ peer->b[i]) * 16777619u;
	return log_ratelimit(&n->ovl->linklog[down][h % OVL_LINKLOG_SLOTS],
			     node_now(n), OVL_LINKLOG_MS);
}

static void ov_random(void *ctx, void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

static void ov_log(void *ctx, int level, const char *msg)
{
	/* The overlay's lines already say "overlay:". */
	if (level <= LOG_LVL_ERROR)
		log_error("%s", msg);
	else if (level == LOG_LVL_WARN)
		log_warnx("%s", msg);
	else if (level <= LOG_LVL_INFO)
		log_info("%s", msg);
	else
		log_debug("%s", msg);
}

/* ---- services for the layers above ---- */

int ovl_route(struct p2pd_node *n, const struct p2p_peerid *to, uint8_t app,
	      const uint8_t *data, size_t len, uint64_t *msgid)
{
	struct ovl *o = n->ovl;
	int rc =
	    p2p_overlay_route(o->ov, node_now(n), to, app, data, len, msgid);

	if (rc == 0) {
		o->routes[o->route_next].msgid = *msgid;
		o->routes[o->route_next].app = app;
		o->route_next = (o->route_next + 1) % OVL_ROUTES_MAX;
	}
	return rc;
}

int ovl_lookup(struct p2pd_node *n, const struct p2p_peerid *target,
	       ovl_lookup_fn done, void *arg, uint64_t *id)
{
	struct ovl_lookup *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return -ENOMEM;
	rc = p2p_overlay_lookup(n->ovl->ov, node_now(n), target, id);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->id = *id;
	w->done = done;
	w->arg = arg;
	w->next = n->ovl->lookups;
	n->ovl->lookups = w;
	return 0;
}

bool ovl_table_addr(struct p2pd_node *n, const struct p2p_peerid *peer,
		    struct p2p_addr *out)
{
	struct p2p_contact c[1];

	if (p2p_overlay_closest(n->ovl->ov, peer, c, 1) < 1 ||
	    !p2p_peerid_equal(&c[0].id, peer) || c[0].addr.family == 0)
		return false;
	*out = c[0].addr;
	return true;
}

void ovl_rebootstrap(struct p2pd_node *n)
{
	if (n->ovl->bootstrapped)
		p2p_overlay_bootstrap(n->ovl->ov, node_now(n));
}

const struct p2p_nat *ovl_nat(const struct p2pd_node *n)
{
	return n->ovl->nat;
}

bool ovl_dialable(const struct p2pd_node *n, struct p2p_addr *mapped)
{
	*mapped = n->ovl->mapped;
	return n->ovl->server;
}

const struct p2p_overlay *ovl_overlay(const struct p2pd_node *n)
{
	return n->ovl->ov;
}

/* ---- the overlay's actions ---- */

static void lookup_done(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	for (struct ovl_lookup **pp = &n->ovl->lookups; *pp;
	     pp = &(*pp)->next) {
		struct ovl_lookup *w = *pp;
		if (w->id != a->id)
			continue;
		*pp = w->next;
		w->done(w->arg, a);
		free(w);
		return;
	}
}

static void route_failed(struct p2pd_node *n, uint64_t msgid)
{
	struct ovl *o = n->ovl;

	for (size_t i = 0; i < OVL_ROUTES_MAX; i++) {
		if (o->routes[i].msgid == msgid && msgid != 0) {
			o->routes[i].msgid = 0;
			node_app_failed(n, o->routes[i].app, msgid);
			return;
		}
	}
}

static void deliver(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	char id[P2P_ID_TEXT_LEN + 1];

	p2p_peerid_to_text(&a->peer, id);
	log_debug("routed app %u from %s, %d hops", a->app, id, a->hops);
	node_app_deliver(n, a);
}

static void do_action(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	struct link *l;
	struct ovl_link *r;
	int err;

	switch (a->type) {
	case P2P_OV_SEND:
		l = link_find_up(n, &a->peer, LINK_KINDS_ALL);
		if (l)
			link_send_raw(l, a->data, a->len);
		else
			log_debug(
			    "overlay message for an unlinked peer dropped");
		break;
	case P2P_OV_DIAL:
		if (link_dialling(n, &a->peer))
			break;
		l = link_dial(n, &a->addr, &a->peer, LP_OVERLAY, &err);
		if (l && (r = rec(n, link_id(l), true)))
			r->dial = true;
		else if (!l)
			p2p_overlay_dial_failed(n->ovl->ov, node_now(n),
						&a->peer);
		break;
	case P2P_OV_CLOSE:
		/* Tunnels, waiting requests and punched links keep theirs. */
		l = link_find_up(n, &a->peer, LINK_KINDS_ALL);
		if (l && link_users(l) == 0 && link_kind(l) != LINK_DIRECT)
			link_close(l, 0, "not needed");
		break;
	case P2P_OV_LOOKUP_DONE:
		lookup_done(n, a);
		break;
	case P2P_OV_DELIVER:
		deliver(n, a);
		break;
	case P2P_OV_ROUTE_FAILED:
		route_failed(n, a->id);
		break;
	}
}

bool ovl_after(void *arg)
{
	struct p2pd_node *n = arg;
	struct p2p_ov_action a;
	bool did = false;

	/* An action may give the overlay input (a handler routes a reply):
	 * the loop picks up what that queues. */
	while (p2p_overlay_poll(n->ovl->ov, &a)) {
		did = true;
		if (!n->stopping)
			do_action(n, &a);
	}
	return did;
}

/* ---- HELLO and reachability ---- */

void ovl_fill_hello(void *arg, const struct link *l, struct p2p_msg *m)
{
	struct p2pd_node *n = arg;

	m->u.hello.flags = n->ovl->server ? P2P_HELLO_SERVER : 0;
	m->u.hello.flags |= P2P_HELLO_RELAY_CREDIT | P2P_HELLO_RELAY_PASS;
	m->u.hello.observed = *link_remote(l);
	/* A port mapping first: a peer that sees us come from its IP takes
	 * it as our address (node_hello_dial_addr) and dials its port. */
	if (n->ovl->mapped.family)
		m->u.hello.addrs[m->u.hello.naddrs++] = n->ovl->mapped;
	/* Wildcard listeners go out as they are (unspecified IP and the
	 * port); the receiver puts in the IP it sees us at. */
	for (size_t i = 0; i < n->nlisten && m->u.hello.naddrs < P2P_MAX_ADDRS;
	     i++)
		m->u.hello.addrs[m->u.hello.naddrs++] = n->listeners[i].addr;
}

/*
 * Server mode is learned, never configured. Two proofs count:
 * - a DIALBACK_OK arriving on a link a peer opened to the address we asked
 *   it to dial (the general case, behind NAT or not);
 * - any peer completing a handshake on our listener. That is also a dial
 *   that worked, and it is what lets the first node of a network (which
 *   has nobody to ask) and nodes on loopback serve their first joiners.
 *   Punched links (NAT traversal) do not come through the listener, so
 *   they do not count.
 * A node without a listener never becomes a server.
 */
static void set_server(struct p2pd_node *n, const char *why)
{
	struct p2p_msg m;

	if (n->ovl->server || n->nlisten == 0)
		return;
	n->ovl->server = true;
	p2p_overlay_set_server(n->ovl->ov, node_now(n), true);
	log_info("reachable (%s): DHT server mode", why);
	/* Tell the peers we already have: HELLO again with the new flag. */
	for (struct link *l = link_first(n); l; l = link_next_of(l)) {
		if (!link_established(l) || link_purpose(l) != LP_OVERLAY)
			continue;
		node_fill_hello(n, l, &m);
		link_send_msg(l, &m);
	}
}

static void ask_dialback(struct p2pd_node *n, struct link *l,
			 const struct p2p_addr *observed)
{
	struct ovl *o = n->ovl;
	struct p2p_msg m = {.type = P2P_MSG_DIALBACK};
	struct ovl_link *r;
	uint16_t port;

	if (o->server || !link_peer_server(l) || observed->family == 0)
		return;
	r = rec(n, link_id(l), true);
	/*
	 * A server serves OVL_DIALBACK_PER_S requests and drops the rest
	 * without a word, so a request made in a burst of joins may never
	 * be tried: each server link is asked up to OVL_DIALBACK_ASKS
	 * times, backing off; after that, a peer that cannot reach us costs
	 * nothing more.
	 */
	if (!r || r->asks >= OVL_DIALBACK_ASKS ||
	    (r->asks > 0 && node_now(n) < r->next_ask))
		return;
	port = node_listen_port(n, observed->family);
	if (port == 0)
		return;
	/* Behind a mapping the gateway forwards its port, not ours. */
	if (o->mapped.family == observed->family)
		port = o->mapped.port;
	if (!o->db_nonce)
		randombytes_buf(&o->db_nonce, sizeof(o->db_nonce));
	/* Jittered: requests dropped in one burst must not all come back
	 * together, in the same order, and be dropped again. */
	r->next_ask = node_now(n) + ((uint64_t)OVL_REASK_MS << r->asks) +
		      randombytes_uniform(OVL_REASK_MS);
	r->asks++;
	m.u.dialback.nonce = o->db_nonce;
	m.u.dialback.addr = *observed;
	m.u.dialback.addr.port = port;
	link_send_msg(l, &m);
}

void ovl_set_mapped(struct p2pd_node *n, const struct p2p_addr *ext)
{
	struct ovl *o = n->ovl;
	struct p2p_msg m;

	if (ext ? p2p_addr_equal(&o->mapped, ext) : !o->mapped.family)
		return;
	if (ext)
		o->mapped = *ext;
	else
		memset(&o->mapped, 0, sizeof(o->mapped));
	if (!ext || o->server)
		return;
	/* A new way in: every server link may be asked to dial it, as if
	 * for the first time, and peers learn the address from HELLO. */
	for (struct link *l = link_first(n); l; l = link_next_of(l)) {
		struct ovl_link *r = rec(n, link_id(l), false);
		if (!link_is_up(l) || link_purpose(l) != LP_OVERLAY)
			continue;
		if (r)
			r->asks = 0;
		node_fill_hello(n, l, &m);
		link_send_msg(l, &m);
		ask_dialback(n, l, link_observed(l));
	}
}

static bool reask_due(const struct ovl_link *r)
{
	return r->asks > 0 && r->asks < OVL_DIALBACK_ASKS;
}

static void dialback_tick(struct p2pd_node *n, uint64_t now)
{
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX];
	size_t next;

	if (n->ovl->server)
		return;
	next = p2p_nat_external(n->ovl->nat, ext, P2P_NAT_EXTERNAL_MAX);
	for (struct link *l = link_first(n); l; l = link_next_of(l)) {
		struct ovl_link *r = rec(n, link_id(l), false);
		if (!r || !link_is_up(l) || link_purpose(l) != LP_OVERLAY ||
		    !reask_due(r) || now < r->next_ask)
			continue;
		/* The peer dials the IP it sees us at; only the family and
		 * the port of the address we send matter. */
		for (size_t i = 0; i < next; i++) {
			if (ext[i].family == link_local(l)->family) {
				ask_dialback(n, l, &ext[i]);
				break;
			}
		}
	}
}

/*
 * A peer asks us to dial it back. We only ever dial the IP the request
 * came from (never another host), one dial-back per peer at a time and
 * OVL_DIALBACK_PER_S in all, so the request cannot make us a scanner.
 */
void ovl_on_dialback(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;
	struct ovl *o = n->ovl;
	uint64_t now = node_now(n);
	struct p2p_addr to = *link_remote(l);
	struct ovl_link *r = rec(n, link_id(l), true);
	struct link *d;
	int err;

	if (!r || r->dialback_busy || m->u.dialback.addr.port == 0)
		return;
	if (now - o->dialback_window >= 1000) {
		o->dialback_window = now;
		o->dialback_count = 0;
	}
	if (o->dialback_count >= OVL_DIALBACK_PER_S)
		return;
	o->dialback_count++;
	to.port = m->u.dialback.addr.port;
	d = link_dial(n, &to, link_peer(l), LP_DIALBACK, &err);
	if (!d)
		return;
	link_set_dialback_nonce(d, m->u.dialback.nonce);
	r->dialback_busy = true;
}

/* Did we send a DIALBACK to peer (over a link that is still there)? */
static bool asked(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	for (struct ovl_link *r = n->ovl->links; r; r = r->next) {
		struct link *x = r->asks ? link_get(n, r->id) : NULL;
		if (x && link_hello_rx(x) &&
		    p2p_peerid_equal(link_peer(x), peer))
			return true;
	}
	return false;
}

/*
 * DIALBACK_OK comes first (and alone: no HELLO) on the link the asked peer
 * opened to our listener. It proves reachability only there: an inbound
 * TCP link of our own listener (not relayed, not punched), from a peer we
 * asked, with our nonce.
 */
void ovl_on_dialback_ok(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;

	if (link_outbound(l) || link_kind(l) != LINK_OVERLAY ||
	    link_hello_rx(l) || !n->ovl->db_nonce ||
	    m->u.dialback.nonce != n->ovl->db_nonce || !asked(n, link_peer(l)))
		return;
	set_server(n, "dial-back succeeded");
}

void ovl_on_msg(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;
	int rc = p2p_overlay_recv(n->ovl->ov, node_now(n), link_peer(l), m);

	if (rc == -EPROTO) {
		char a[P2P_ADDR_TEXT_MAX];
		n->stats.bad_msgs++;
		if (node_bad_input_log(n, link_remote(l))) {
			p2p_addr_format(link_remote(l), a, sizeof(a));
			log_warnx("link %s: bad overlay message: %s; closing",
				  a, p2p_strerror(rc));
		}
		link_fail(l, "bad overlay message");
	}
}

/* ---- link events ---- */

static void on_established(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;

	/*
	 * A peer completed a handshake on our listener: someone could dial
	 * us, which is the reachability that matters for the first nodes of
	 * a network (and on loopback), before any dial-back was asked for.
	 * Decided before our HELLO goes out so that it already says server.
	 * Punched links were marked direct by the punch observer first.
	 */
	if (!link_outbound(l) && link_kind(l) == LINK_OVERLAY)
		set_server(n, "a peer dialled our listener");
}

/* Another link to the same peer that HELLO'd: the tie-break decides.
 * True when l itself goes. */
static bool resolve_duplicate(struct p2pd_node *n, struct link *l)
{
	for (struct link *o = link_first(n); o; o = link_next_of(o)) {
		/* A relayed link is no duplicate of a TCP one (issue 8: a
		 * punch that wins after the relay keeps both). */
		if (o == l || !link_is_up(o) || link_purpose(o) != LP_OVERLAY ||
		    link_kind(o) == LINK_RELAY ||
		    !p2p_peerid_equal(link_peer(o), link_peer(l)))
			continue;
		if (node_dup_keep_new(&n->ident.id, link_peer(l),
				      link_outbound(o), link_outbound(l))) {
			struct ovl_link *ro = rec(n, link_id(o), false);
			struct ovl_link *rl = rec(n, link_id(l), true);
			if (rl && ro) {
				rl->up = ro->up;
				ro->up = false;
			}
			link_close(o, 0, "duplicate link");
			return false;
		}
		link_close(l, 0, "duplicate link");
		return true;
	}
	return false;
}

/*
 * Where the overlay may dial the peer, store it and share it (NODES,
 * peers.json): only an address we have seen, never one it merely claims.
 * An outbound link's remote is the address we dialled; an inbound one's is
 * its observed IP with the listen port it claims in HELLO (its dials leave
 * from that port), unless its claimed address was verified by our own dial
 * (verify_claim).
 */
static void table_addr(struct p2pd_node *n, const struct link *l,
		       struct p2p_addr *out)
{
	const struct p2p_addr *claim = link_dial_addr(l);
	struct ovl_link *r = rec(n, link_id(l), false);

	*out = *link_remote(l);
	if (link_outbound(l))
		return;
	if (r && r->verified.family)
		*out = r->verified;
	else if (claim->family == out->family)
		out->port = claim->port;
}

static bool same_ip(const struct p2p_addr *a, const struct p2p_addr *b)
{
	return a->family == b->family && !memcmp(a->ip, b->ip, sizeof(a->ip));
}

/*
 * An inbound server link whose HELLO claims an IP other than the one it
 * comes from (a multi-homed host): dial the claim once, expecting the
 * peer's ID, at most OVL_VERIFY_PER_S in all; only plausible addresses
 * (never loopback, nor a private address, claimed from afar). If that link
 * comes up, note_verified.
 */
static void verify_claim(struct p2pd_node *n, struct link *l)
{
	struct ovl *o = n->ovl;
	const struct p2p_addr *claim = link_dial_addr(l);
	struct ovl_link *r = rec(n, link_id(l), true), *rd;
	uint64_t now = node_now(n);
	struct link *d;
	int err;

	if (!r || r->verify_sent || link_outbound(l) || !link_peer_server(l) ||
	    claim == link_remote(l) || same_ip(claim, link_remote(l)) ||
	    !p2p_overlay_addr_dialable(claim, link_remote(l)) ||
	    (p2p_addr_is_private(claim) &&
	     !p2p_addr_is_private(link_remote(l))))
		return;
	if (now - o->verify_window >= 1000) {
		o->verify_window = now;
		o->verify_count = 0;
	}
	if (o->verify_count >= OVL_VERIFY_PER_S)
		return;
	o->verify_count++;
	r->verify_sent = true;
	d = link_dial(n, claim, link_peer(l), LP_OVERLAY, &err);
	if (d && (rd = rec(n, link_id(d), true)))
		rd->verify = true;
}

/* Our verifying dial l reached the peer: its other links get l's remote
 * as the peer's address, and the overlay and the cache learn it. */
static void note_verified(struct p2pd_node *n, struct link *l)
{
	char a[P2P_ADDR_TEXT_MAX], id[P2P_ID_TEXT_LEN + 1];

	p2p_addr_format(link_remote(l), a, sizeof(a));
	p2p_peerid_to_text(link_peer(l), id);
	log_debug("address of %s verified: %s", id, a);
	for (struct link *x = link_first(n); x; x = link_next_of(x)) {
		struct ovl_link *rx;
		if (x == l || !link_is_up(x) ||
		    !p2p_peerid_equal(link_peer(x), link_peer(l)) ||
		    !(rx = rec(n, link_id(x), true)))
			continue;
		rx->verified = *link_remote(l);
		if (rx->up)
			p2p_overlay_link_up(n->ovl->ov, node_now(n),
					    link_peer(x), &rx->verified,
					    link_peer_server(x),
					    link_outbound(x));
	}
	if (link_peer_server(l))
		peercache_add(&n->ovl->cache, link_peer(l), link_remote(l));
}

static void on_up(void *arg, struct link *l, bool first)
{
	struct p2pd_node *n = arg;
	struct ovl *o = n->ovl;
	uint64_t now = node_now(n);
	char a[P2P_ADDR_TEXT_MAX], id[P2P_ID_TEXT_LEN + 1];
	bool relayed = link_kind(l) == LINK_RELAY;
	const char *how, *srv;
	struct p2p_addr at;
	struct ovl_link *r;

	if (first) {
		/* A punched link's peer is a NATed host, not an observer of
		 * our overlay mapping (and may see our LAN address). */
		if (link_outbound(l) && link_kind(l) == LINK_OVERLAY)
			p2p_nat_observe(o->nat, now, link_local(l),
					link_observed(l), link_peer(l),
					link_remote(l));
		p2p_peerid_to_text(link_peer(l), id);
		p2p_addr_format(link_remote(l), a, sizeof(a));
		how = relayed ? "relayed" : link_outbound(l) ? "out" : "in";
		srv = link_peer_server(l) ? ", server" : "";
		if (linklog(n, link_peer(l), 0))
			log_info("link up: %s at %s (%s%s)", id, a, how, srv);
		else
			log_debug("link up: %s at %s (%s%s)", id, a, how, srv);
		o->rejoin_ms = OVL_REJOIN_MIN_MS;
		/* Relayed: tunnels only, not the overlay's (the address is
		 * the relay's), no dial-back. */
		r = rec(n, link_id(l), false);
		if (!relayed && r && r->verify)
			note_verified(n, l);
		if (!relayed && resolve_duplicate(n, l))
			return;
		if (o->ka_on) /* faster where this peer's links were reset */
			link_set_keepalive_of(l,
					      p2p_ka_for(&o->ka, link_peer(l)));
		link_ping(l); /* an rtt for `peers` from the start */
	}
	if (relayed)
		return;
	/* Repeated HELLO (the peer became a server): link_up updates. */
	table_addr(n, l, &at);
	p2p_overlay_link_up(o->ov, now, link_peer(l), &at, link_peer_server(l),
			    link_outbound(l));
	r = rec(n, link_id(l), true);
	if (r)
		r->up = true;
	/* A server's listen address: what its HELLO told, with its IP. */
	if (link_peer_server(l) && link_dial_addr(l) != link_remote(l))
		peercache_add(&o->cache, link_peer(l), &at);
	if (!o->bootstrapped) {
		o->bootstrapped = true;
		p2p_overlay_bootstrap(o->ov, now);
	}
	ask_dialback(n, l, link_observed(l));
	verify_claim(n, l);
}

/*
 * A direct link through our NAT that the peer reset after a quiet spell:
 * evidence of the NAT's mapping timeout (core/keepalive.h). Links of a
 * node without a NAT, relayed links, links to a private address (a peer
 * on our side of the NAT) and links reset while busy tell nothing.
 */
static void ka_learn(struct p2pd_node *n, struct link *l)
{
	struct ovl *o = n->ovl;
	enum p2p_nat_type t = p2p_nat_type(o->nat);
	uint32_t quiet = link_reset_quiet_ms(l);
	char id[P2P_ID_TEXT_LEN + 1];

	if (!quiet || link_kind(l) == LINK_RELAY || t == P2P_NAT_NONE ||
	    t == P2P_NAT_UNKNOWN || p2p_addr_is_private(link_remote(l)))
		return;
	p2p_peerid_to_text(link_peer(l), id);
	log_debug(
	    "keepalive: link reset by the peer after %.1f s of quiet (%s)",
	    quiet / 1000.0, id);
	if (!o->ka_on)
		return;
	if (!p2p_ka_reset(&o->ka, node_now(n), link_peer(l), quiet)) {
		/* Not for the node yet, but for this peer's next links. */
		log_debug(
		    "keepalive: every %.1f s to this peer from its next link",
		    p2p_ka_for(&o->ka, link_peer(l)) / 1000.0);
		return;
	}
	log_info("keepalive: every %.1f s now (links were reset after %.1f s "
		 "of quiet: a NAT forgets idle mappings sooner than we pinged)",
		 p2p_ka_current(&o->ka) / 1000.0, quiet / 1000.0);
	link_set_keepalive(n, p2p_ka_current(&o->ka));
	for (struct link *x = link_first(n); x; x = link_next_of(x))
		if (link_is_up(x))
			link_set_keepalive_of(x,
					      p2p_ka_for(&o->ka, link_peer(x)));
}

static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	struct ovl *o = n->ovl;
	uint64_t now = node_now(n);
	struct ovl_link *r = rec(n, link_id(l), false);
	struct ovl_link empty = {0};
	struct link *other;

	if (!r)
		r = &empty;
	if (link_purpose(l) == LP_DIALBACK) {
		/* The peer that asked may ask again. */
		for (struct ovl_link *e = o->links; e; e = e->next) {
			struct link *x = link_get(n, e->id);
			if (x && p2p_peerid_equal(link_peer(x), link_expect(l)))
				e->dialback_busy = false;
		}
	} else {
		ka_learn(n, l);
		other = link_hello_rx(l)
			    ? link_find_up(n, link_peer(l), LINK_KINDS_ALL)
			    : NULL;
		if (link_hello_rx(l)) {
			char id[P2P_ID_TEXT_LEN + 1];
			p2p_peerid_to_text(link_peer(l), id);
			if (other)
				log_debug("extra link to %s closed (%s)", id,
					  why);
			else if (linklog(n, link_peer(l), 1))
				log_info("link down: %s (%s)", id, why);
			else
				log_debug("link down: %s (%s)", id, why);
		}
		if (r->up) {
			struct ovl_link *ro =
			    other ? rec(n, link_id(other), true) : NULL;
			if (ro)
				ro->up = true; /* the overlay keeps its link */
			else if (link_goaway_rx(l)) /* not redialled at once */
				p2p_overlay_link_closed(o->ov, now,
							link_peer(l));
			else
				p2p_overlay_link_down(o->ov, now, link_peer(l));
		} else if (r->boot && !link_hello_rx(l)) {
			char a[P2P_ADDR_TEXT_MAX];
			p2p_addr_format(link_remote(l), a, sizeof(a));
			log_warnx("bootstrap %s: %s", a, why);
		} else if (r->dial && !other && !link_hello_rx(l)) {
			p2p_overlay_dial_failed(o->ov, now, link_expect(l));
		}
	}
	rec_del(n, link_id(l));
	/* Alone now: join again later (ovl_expire). */
	if (!link_first(n))
		o->rejoin_at = now + o->rejoin_ms;
}

const struct node_link_hooks ovl_link_hooks = {
    .established = on_established,
    .up = on_up,
    .gone = on_gone,
};

/* ---- joining, the peer cache ---- */

static void cache_path(struct p2pd_node *n, char *out, size_t len)
{
	snprintf(out, len, "%s/peers.json", n->state_dir);
}

static void save_cache(struct p2pd_node *n)
{
	char path[PATH_MAX + 16];
	int rc;

	cache_path(n, path, sizeof(path));
	rc = peercache_save(&n->ovl->cache, path);
	if (rc < 0)
		log_warnx("cannot write %s: %s", path, strerror(-rc));
	n->ovl->cache_saved = node_now(n);
}

static void add_cached(struct p2pd_node *n, uint64_t now)
{
	struct peercache *c = &n->ovl->cache;

	/* Oldest first so that the newest end up most recently added. */
	for (size_t i = c->n; i-- > 0;)
		p2p_overlay_add_contact(n->ovl->ov, now, &c->e[i].id,
					&c->e[i].addr);
}

/*
 * The cache is read even with bootstrap flags, so that what it holds is
 * kept when it is written again; its contacts are used only without them.
 */
static void load_cache(struct p2pd_node *n, bool use)
{
	char path[PATH_MAX + 16], err[256];
	int rc;

	cache_path(n, path, sizeof(path));
	rc = peercache_load(&n->ovl->cache, path, err, sizeof(err));
	if (rc == -ENOENT)
		return;
	if (rc < 0) {
		log_warnx("ignoring peer cache %s: %s", path, err);
		return;
	}
	if (!use || n->ovl->cache.n == 0)
		return;
	log_info("rejoining through %zu cached peers", n->ovl->cache.n);
	add_cached(n, node_now(n));
}

static void dial_boot_addr(struct p2pd_node *n, const struct p2p_addr *a)
{
	char text[P2P_ADDR_TEXT_MAX];
	struct ovl_link *r;
	struct link *l;
	int err;

	l = link_dial(n, a, NULL, LP_OVERLAY, &err);
	if (l) {
		if ((r = rec(n, link_id(l), true)))
			r->boot = true;
		return;
	}
	p2p_addr_format(a, text, sizeof(text));
	log_warnx("bootstrap %s: %s", text, link_strerror(err));
}

/* A bootstrap host name resolved: every address is dialled. */
static void on_boot_resolved(struct p2pd_node *n, uint64_t i,
			     const struct p2p_addr *addrs, size_t naddrs,
			     int err)
{
	const char *name = n->ovl->boot_names[i];

	if (err < 0) {
		log_warnx("bootstrap %s: %s", name, uv_strerror(err));
		return;
	}
	log_debug("bootstrap %s: %zu address%s", name, naddrs,
		  naddrs == 1 ? "" : "es");
	for (size_t k = 0; k < naddrs; k++)
		dial_boot_addr(n, &addrs[k]);
}

static void dial_bootstrap(struct p2pd_node *n)
{
	int rc;

	for (size_t i = 0; i < n->ovl->nboot; i++)
		dial_boot_addr(n, &n->ovl->boot[i]);
	for (size_t i = 0; i < n->ovl->nboot_names; i++) {
		rc = resolve_start(n, n->ovl->boot_names[i], on_boot_resolved,
				   i);
		if (rc < 0)
			log_warnx("bootstrap %s: %s", n->ovl->boot_names[i],
				  uv_strerror(rc));
	}
}

void ovl_join(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	struct ovl *o = n->ovl;

	o->nboot = cfg->nbootstrap;
	memcpy(o->boot, cfg->bootstrap, cfg->nbootstrap * sizeof(o->boot[0]));
	o->nboot_names = cfg->nbootstrap_names;
	memcpy(o->boot_names, cfg->bootstrap_names,
	       sizeof(cfg->bootstrap_names));
	load_cache(n, cfg->nbootstrap + cfg->nbootstrap_names == 0);
	if (cfg->nbootstrap + cfg->nbootstrap_names == 0 && o->cache.n == 0)
		log_warnx("no bootstrap peer and no peer cache: this node is "
			  "alone until a peer dials it; join with p2pd -b "
			  "HOST:PORT or p2pctl bootstrap HOST:PORT");
	dial_bootstrap(n);
	o->rejoin_ms = OVL_REJOIN_MIN_MS;
	o->rejoin_at = node_now(n) + o->rejoin_ms;
}

/*
 * Alone (no link at all, nothing being dialled): try the bootstrap
 * addresses or the cached peers again, backing off, so that a node started
 * before its bootstrap peer, or cut off for a while, joins by itself.
 */
static bool rejoin_due(struct p2pd_node *n)
{
	return !link_first(n) &&
	       (n->ovl->nboot + n->ovl->nboot_names > 0 || n->ovl->cache.n > 0);
}

static void rejoin(struct p2pd_node *n, uint64_t now)
{
	struct ovl *o = n->ovl;

	o->rejoin_ms = o->rejoin_ms * 2 > OVL_REJOIN_MAX_MS ? OVL_REJOIN_MAX_MS
							    : o->rejoin_ms * 2;
	o->rejoin_at = now + o->rejoin_ms;
	log_debug("no links: joining again");
	o->bootstrapped = false; /* look ourselves up again once linked */
	if (o->nboot + o->nboot_names > 0)
		dial_bootstrap(n);
	else
		add_cached(n, now);
}

static uint64_t dialback_next(struct p2pd_node *n)
{
	uint64_t t = UINT64_MAX;

	if (n->ovl->server)
		return t;
	for (struct ovl_link *r = n->ovl->links; r; r = r->next)
		if (reask_due(r) && r->next_ask < t)
			t = r->next_ask;
	return t;
}

uint64_t ovl_next(void *arg)
{
	struct p2pd_node *n = arg;
	struct ovl *o = n->ovl;
	uint64_t t = p2p_overlay_next_timer(o->ov), d;

	if (n->stopping)
		return UINT64_MAX;
	if (rejoin_due(n) && o->rejoin_at < t)
		t = o->rejoin_at;
	if (o->cache.dirty && (d = o->cache_saved + OVL_PEERCACHE_SAVE_MS) < t)
		t = d;
	if ((d = dialback_next(n)) < t)
		t = d;
	return t;
}

void ovl_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	struct ovl *o = n->ovl;

	if (p2p_overlay_next_timer(o->ov) <= now)
		p2p_overlay_tick(o->ov, now);
	if (rejoin_due(n) && now >= o->rejoin_at)
		rejoin(n, now);
	if (o->cache.dirty && now - o->cache_saved >= OVL_PEERCACHE_SAVE_MS)
		save_cache(n);
	if (dialback_next(n) <= now)
		dialback_tick(n, now);
}

int ovl_init(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	struct p2p_overlay_config oc = {
	    .self = n->ident.id,
	    .server = false,
	    .random = ov_random,
	    .log = ov_log,
	    .ctx = n,
	};
	struct ovl *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	n->ovl = o;
	o->ov = p2p_overlay_new(&oc);
	o->nat = p2p_nat_new();
	if (!o->ov || !o->nat)
		return -ENOMEM;
	peercache_init(&o->cache);
	o->rejoin_ms = OVL_REJOIN_MIN_MS;
	o->rejoin_at = UINT64_MAX;
	/* node.c filled in the limits' defaults before the modules. */
	p2p_ka_init(&o->ka, n->limits.keepalive_ms);
	o->ka_on = cfg->keepalive_adapt;
	return 0;
}

uint32_t ovl_keepalive_ms(const struct p2pd_node *n, bool *learned)
{
	if (learned)
		*learned = p2p_ka_learned(&n->ovl->ka);
	return p2p_ka_current(&n->ovl->ka);
}

void ovl_stop(struct p2pd_node *n)
{
	if (n->ovl && n->ovl->cache.dirty)
		save_cache(n);
}

void ovl_free(struct p2pd_node *n)
{
	struct ovl *o = n->ovl;

	if (!o)
		return;
	while (o->links) {
		struct ovl_link *r = o->links;
		o->links = r->next;
		free(r);
	}
	while (o->lookups) {
		struct ovl_lookup *w = o->lookups;
		o->lookups = w->next;
		free(w);
	}
	p2p_overlay_free(o->ov);
	p2p_nat_free(o->nat);
	free(o);
	n->ovl = NULL;
}
