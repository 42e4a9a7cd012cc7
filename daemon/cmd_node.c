/*
 * Control commands of the node (SPEC section 5) and the requests that
 * wait for the network: bootstrap (HELLO), ping (PONG, direct or routed),
 * lookup (the overlay's answer). Every request gets exactly one reply; the
 * waiting ones are in a list with a deadline, and hold the link they wait
 * on (by ID, with link_hold) so that the overlay does not close it.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cmd_node.h"
#include "link.h"
#include "log.h"
#include "names.h"
#include "nodeutil.h"
#include "ovl.h"
#include "proto/rping.h"
#include "portmap.h"
#include "punch.h"
#include "relay.h"
#include "resolve.h"
#include "tunnel.h"

#define CMD_BOOTSTRAP_TIMEOUT_MS 10000 /* `bootstrap` command */
#define CMD_PING_TIMEOUT_MS 5000       /* `ping` command */
#define CMD_LOOKUP_TIMEOUT_MS (P2P_LOOKUP_TIMEOUT_MS + 5000)
#define CMD_PING_SEEN_MAX 64	  /* routed PING nonces answered, remembered */
#define CMD_BAD_PING_LOG_MS 10000 /* one line per interval for bad ones */

enum pend_kind {
	PEND_BOOTSTRAP,
	PEND_PING_DIRECT,
	PEND_PING_ROUTED,
	PEND_LOOKUP
};

/* A control request waiting for the network. */
struct pending {
	struct pending *next;
	enum pend_kind kind;
	struct ctl_req *req;
	uint64_t deadline;
	uint64_t key;		/* ping nonce, lookup id */
	uint64_t msgid;		/* routed ping */
	struct p2p_peerid peer; /* routed ping: who must sign the PONG */
	uint64_t t0_hr;
	uint32_t link; /* bootstrap, direct ping */
	/* bootstrap by host name: its addresses, tried in turn */
	struct p2p_addr addrs[RESOLVE_ADDRS_MAX];
	size_t naddrs, next_addr;
	char last_err[128]; /* why the last address failed */
};

struct cmd_node {
	struct pending *list;
	uint64_t next_key; /* of bootstrap requests resolving a name */
	/* Routed PINGs answered lately: a PING copied off the path and
	 * sent again gets no second PONG. */
	uint64_t ping_seen[CMD_PING_SEEN_MAX];
	unsigned nping_seen, ping_seen_pos;
	uint64_t bad_ping_logged; /* log_ratelimit */
};

static json_t *id_json(const struct p2p_peerid *id)
{
	char t[P2P_ID_TEXT_LEN + 1];

	p2p_peerid_to_text(id, t);
	return json_string(t);
}

static json_t *addr_json(const struct p2p_addr *a)
{
	char t[P2P_ADDR_TEXT_MAX];

	p2p_addr_format(a, t, sizeof(t));
	return json_string(t);
}

/* ---- pending requests ---- */

int cmd_node_init(struct p2pd_node *n)
{
	n->cmd = calloc(1, sizeof(*n->cmd));
	return n->cmd ? 0 : -ENOMEM;
}

void cmd_node_free(struct p2pd_node *n)
{
	free(n->cmd);
	n->cmd = NULL;
}

static struct pending *pend_new(struct p2pd_node *n, enum pend_kind kind,
				struct ctl_req *req, uint64_t timeout_ms)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p) {
		ctl_reply_error(req, "internal", "out of memory");
		return NULL;
	}
	p->kind = kind;
	p->req = req;
	p->deadline = node_now(n) + timeout_ms;
	p->t0_hr = uv_hrtime();
	p->next = n->cmd->list;
	n->cmd->list = p;
	return p;
}

static void pend_hold(struct pending *p, struct link *l)
{
	p->link = link_id(l);
	link_hold(l);
}

/* Unlink p, release its link, free it; the caller has replied. */
static void pend_done(struct p2pd_node *n, struct pending *p)
{
	struct link *l = link_get(n, p->link);

	for (struct pending **pp = &n->cmd->list; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (l)
		link_release(l);
	free(p);
}

static double since_ms(const struct pending *p)
{
	return (double)(uv_hrtime() - p->t0_hr) / 1e6;
}

/*
 * The relay a relayed link goes through: relay.c opens our end with the
 * addresses of the link it rides on (link_open_on), and that pair of
 * addresses names one TCP connection.
 */
static const struct p2p_peerid *relay_of(struct p2pd_node *n, struct link *rl)
{
	for (struct link *l = link_first(n); l; l = link_next_of(l))
		if (link_kind(l) != LINK_RELAY && link_is_up(l) &&
		    p2p_addr_equal(link_remote(l), link_remote(rl)) &&
		    p2p_addr_equal(link_local(l), link_local(rl)))
			return link_peer(l);
	return NULL;
}

static const char *const link_kinds[] = {
    [LINK_OVERLAY] = "overlay",
    [LINK_DIRECT] = "direct",
    [LINK_RELAY] = "relay",
};

/*
 * path: "direct" over a TCP link, "relay" over a relayed one or routed
 * through the overlay; link says which of the three ("routed" for the
 * last), via names the relay of a relayed link.
 */
static void reply_ping(struct p2pd_node *n, struct pending *p, struct link *l)
{
	const struct p2p_peerid *via = NULL;
	json_t *o;

	if (l && link_kind(l) == LINK_RELAY)
		via = relay_of(n, l);
	o = json_pack("{s:f, s:s, s:s}", "rtt_ms", since_ms(p), "path",
		      l && link_kind(l) != LINK_RELAY ? "direct" : "relay",
		      "link", l ? link_kinds[link_kind(l)] : "routed");
	if (o && via) {
		const char *name = names_of(n->names, via);
		json_object_set_new(o, "via", id_json(via));
		if (name)
			json_object_set_new(o, "via_name", json_string(name));
	}
	ctl_reply_ok(p->req, o);
	pend_done(n, p);
}

static void pend_fail(struct p2pd_node *n, struct pending *p, const char *code,
		      const char *msg)
{
	ctl_reply_error(p->req, code, "%s", msg);
	pend_done(n, p);
}

static void on_up(void *arg, struct link *l, bool first)
{
	struct p2pd_node *n = arg;
	struct pending *p, *next;

	if (!first)
		return;
	for (p = n->cmd->list; p; p = next) {
		next = p->next;
		if (p->kind != PEND_BOOTSTRAP || p->link != link_id(l))
			continue;
		ctl_reply_ok(p->req,
			     json_pack("{s:o}", "peer", id_json(link_peer(l))));
		pend_done(n, p);
		/* Joining through one more peer: look ourselves up again. */
		ovl_rebootstrap(n);
	}
}

/* Dial the next address of a bootstrap host name; none left: fail. */
static void boot_next(struct p2pd_node *n, struct pending *p)
{
	char text[P2P_ADDR_TEXT_MAX];
	struct link *l;
	int err;

	while (p->next_addr < p->naddrs) {
		const struct p2p_addr *a = &p->addrs[p->next_addr++];
		l = link_dial(n, a, NULL, LP_OVERLAY, &err);
		if (l) {
			pend_hold(p, l);
			return;
		}
		p2p_addr_format(a, text, sizeof(text));
		snprintf(p->last_err, sizeof(p->last_err), "cannot dial %s: %s",
			 text, uv_strerror(err));
	}
	pend_fail(n, p, "peer_unreachable",
		  p->last_err[0] ? p->last_err : "no address");
}

static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	struct pending *p, *next;

	for (p = n->cmd->list; p; p = next) {
		next = p->next;
		if (p->link != link_id(l))
			continue;
		p->link = 0;
		if (p->kind == PEND_BOOTSTRAP && p->next_addr < p->naddrs) {
			snprintf(p->last_err, sizeof(p->last_err), "%s", why);
			boot_next(n, p);
		} else if (p->kind == PEND_BOOTSTRAP)
			pend_fail(n, p, "peer_unreachable", why);
		else
			pend_fail(n, p, "peer_unreachable", "link closed");
	}
}

const struct node_link_hooks cmd_node_link_hooks = {
    .up = on_up,
    .gone = on_gone,
};

uint64_t cmd_node_next(void *arg)
{
	struct p2pd_node *n = arg;
	uint64_t t = UINT64_MAX;

	for (struct pending *p = n->cmd->list; p; p = p->next)
		if (p->deadline < t)
			t = p->deadline;
	return t;
}

void cmd_node_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	struct pending *p, *next;

	for (p = n->cmd->list; p; p = next) {
		next = p->next;
		if (now >= p->deadline)
			pend_fail(n, p, "timeout", "no answer in time");
	}
}

void cmd_node_stop(struct p2pd_node *n)
{
	while (n->cmd && n->cmd->list)
		pend_fail(n, n->cmd->list, "internal", "daemon shutting down");
}

void cmd_node_on_pong(void *arg, struct link *l, const struct p2p_msg *m)
{
	struct p2pd_node *n = arg;

	for (struct pending *p = n->cmd->list; p; p = p->next) {
		if (p->kind == PEND_PING_DIRECT && p->link == link_id(l) &&
		    p->key == m->u.ping.nonce) {
			reply_ping(n, p, l);
			return;
		}
	}
}

/* A nonce of a PING from src already answered? Remember it if not. */
static bool ping_seen(struct cmd_node *c, const struct p2p_peerid *src,
		      uint64_t nonce)
{
	uint64_t key = nonce;

	/* Bind the nonce to its source: two pingers may pick one nonce. */
	for (int i = 0; i < 8; i++)
		key ^= (uint64_t)src->b[i] << (8 * i);
	for (unsigned i = 0; i < c->nping_seen; i++)
		if (c->ping_seen[i] == key)
			return true;
	c->ping_seen[c->ping_seen_pos] = key;
	c->ping_seen_pos = (c->ping_seen_pos + 1) % CMD_PING_SEEN_MAX;
	if (c->nping_seen < CMD_PING_SEEN_MAX)
		c->nping_seen++;
	return false;
}

static void bad_ping(struct p2pd_node *n, const struct p2p_ov_action *a, int rc)
{
	char t[P2P_ID_TEXT_LEN + 1];

	n->stats.bad_msgs++;
	if (!log_ratelimit(&n->cmd->bad_ping_logged, node_now(n),
			   CMD_BAD_PING_LOG_MS))
		return;
	p2p_peerid_to_text(&a->peer, t);
	log_info("routed %s \"from\" %.12s dropped: %s",
		 a->app == P2P_APP_PING ? "ping" : "pong", t, p2p_strerror(rc));
}

/*
 * Routed PING and PONG (overlay applications P2P_APP_PING/PONG), signed
 * (proto/rping.h): a PING is answered only when its source signed it, so
 * no one makes us send PONGs to a victim; a PONG counts only when the
 * peer we pinged signed our nonce, so no node on the way fakes success.
 */
void cmd_node_on_app(void *arg, const struct p2p_ov_action *a)
{
	struct p2pd_node *n = arg;
	uint8_t out[P2P_RPING_LEN];
	uint64_t nonce, msgid;
	struct p2p_peerid src;
	int rc;

	/* Copy out: a->data lives in the overlay, which we call next. */
	src = a->peer;
	rc = p2p_rping_decode(a->data, a->len,
			      a->app == P2P_APP_PING ? P2P_RPING_PING
						     : P2P_RPING_PONG,
			      &src, &n->ident.id, &nonce);
	if (rc < 0) {
		bad_ping(n, a, rc);
		return;
	}
	if (a->app == P2P_APP_PING) {
		if (ping_seen(n->cmd, &src, nonce))
			return;
		if (p2p_rping_encode(P2P_RPING_PONG, nonce, &n->ident, &src,
				     out) < 0)
			return;
		/* Answer the way it came: routed back to the source. */
		ovl_route(n, &src, P2P_APP_PONG, out, sizeof(out), &msgid);
		return;
	}
	for (struct pending *p = n->cmd->list; p; p = p->next) {
		if (p->kind == PEND_PING_ROUTED && p->key == nonce &&
		    p2p_peerid_equal(&p->peer, &src)) {
			reply_ping(n, p, NULL);
			return;
		}
	}
	log_debug("routed pong %016llx matches no ping",
		  (unsigned long long)nonce);
}

void cmd_node_on_route_failed(void *arg, uint64_t msgid)
{
	struct p2pd_node *n = arg;

	for (struct pending *p = n->cmd->list; p; p = p->next) {
		if (p->kind == PEND_PING_ROUTED && p->msgid == msgid) {
			pend_fail(n, p, "peer_unreachable",
				  "no route to that peer");
			return;
		}
	}
}

static void on_lookup(void *arg, const struct p2p_ov_action *a)
{
	struct p2pd_node *n = arg;
	struct pending *p;
	json_t *closest;

	for (p = n->cmd->list; p; p = p->next)
		if (p->kind == PEND_LOOKUP && p->key == a->id)
			break;
	if (!p)
		return;
	closest = json_array();
	for (size_t i = 0; i < a->ncontacts; i++)
		json_array_append_new(
		    closest,
		    json_pack("{s:o, s:o}", "id", id_json(&a->contacts[i].id),
			      "addr", addr_json(&a->contacts[i].addr)));
	ctl_reply_ok(p->req, json_pack("{s:b, s:o}", "found", a->found,
				       "closest", closest));
	pend_done(n, p);
}

/* ---- commands ---- */

/* status.nat.mapping (SPEC section 9): the gateway's port mapping. */
static json_t *mapping_json(struct p2pd_node *n)
{
	struct p2p_pmap_status st;
	uint64_t now = node_now(n);

	portmap_status(n, &st);
	if (st.protocol == P2P_PMAP_NONE)
		return json_pack("{s:s, s:n, s:I}", "protocol", "none",
				 "external", "expires_s", (json_int_t)0);
	return json_pack(
	    "{s:s, s:o, s:I}", "protocol", p2p_pmap_proto_name(st.protocol),
	    "external", addr_json(&st.external), "expires_s",
	    (json_int_t)(st.expires > now ? (st.expires - now) / 1000 : 0));
}

static void cmd_status(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_overlay_stats st;
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX];
	size_t next = p2p_nat_external(ovl_nat(n), ext, P2P_NAT_EXTERNAL_MAX);
	json_t *listen = json_array(), *external = json_array();
	struct relay_stats rs;

	relay_get_stats(n, &rs);
	p2p_overlay_get_stats(ovl_overlay(n), &st);
	for (size_t i = 0; i < n->nlisten; i++)
		json_array_append_new(listen, addr_json(&n->listeners[i].addr));
	for (size_t i = 0; i < next; i++)
		json_array_append_new(external, addr_json(&ext[i]));
	/* Issue 11: global IPv6 addresses are external too (no NAT66), also
	 * when no overlay peer has observed us over IPv6. */
	struct p2p_addr g6[PUNCH_GLOBAL6_MAX];
	size_t ng6 = punch_global6(n, g6, PUNCH_GLOBAL6_MAX);
	for (size_t i = 0; i < ng6; i++) {
		bool seen = false;
		for (size_t j = 0; j < next; j++)
			seen = seen || (ext[j].family == 6 &&
					!memcmp(ext[j].ip, g6[i].ip, 16));
		if (!seen)
			json_array_append_new(external, addr_json(&g6[i]));
	}
	json_t *counters =
	    json_pack("{s:I, s:I, s:I, s:I, s:I}", "bad_frames",
		      (json_int_t)n->stats.bad_frames, "bad_msgs",
		      (json_int_t)n->stats.bad_msgs, "unknown_msgs",
		      (json_int_t)n->stats.unknown_msgs, "handshakes_failed",
		      (json_int_t)n->stats.hs_failed, "links_refused",
		      (json_int_t)n->stats.links_refused);
	const char *mode =
	    p2p_overlay_is_server(ovl_overlay(n)) ? "server" : "client";

	json_t *o = json_pack(
	    "{s:s, s:s, s:I, s:o, s:{s:s, s:o}, s:I, "
	    "s:{s:s, s:I}, s:o, s:{s:I, s:I, s:I, s:I}}",
	    "id", n->id_text, "version", P2PD_VERSION, "uptime_s",
	    (json_int_t)((node_now(n) - n->start_ms) / 1000), "listen", listen,
	    "nat", "type", p2p_nat_type_name(p2p_nat_type(ovl_nat(n))),
	    "external", external, "peers", (json_int_t)link_count_up(n), "dht",
	    "mode", mode, "table_size", (json_int_t)st.table_size, "counters",
	    counters, "relay", "circuits", (json_int_t)rs.circuits, "opened",
	    (json_int_t)rs.opened, "bytes", (json_int_t)rs.bytes,
	    "unknown_circuit", (json_int_t)rs.unknown);
	json_t *relay = o ? json_object_get(o, "relay") : NULL;
	/* Issue 9: requests refused over a limit, circuits closed at a
	 * deadline or over a budget; paced: credit held for a budget. */
	if (relay)
		json_object_update_new(
		    relay,
		    json_pack("{s:I, s:I, s:I, s:I, s:I}", "refused",
			      (json_int_t)rs.refused, "closed_handshake",
			      (json_int_t)rs.closed_hs, "closed_idle",
			      (json_int_t)rs.closed_idle, "closed_budget",
			      (json_int_t)rs.closed_budget, "paced",
			      (json_int_t)rs.paced));
	if (o)
		json_object_set_new(json_object_get(o, "nat"), "mapping",
				    mapping_json(n));
	/* Issue 8: the keepalive in use, and whether the NAT taught it. */
	bool learned;
	uint32_t ka = ovl_keepalive_ms(n, &learned);
	if (o)
		json_object_update_new(json_object_get(o, "nat"),
				       json_pack("{s:I, s:b}", "keepalive_ms",
						 (json_int_t)ka,
						 "keepalive_learned", learned));
	/* Alone: say so, and what to do (issue 12 item 1). */
	if (o && link_count_up(n) == 0)
		json_object_set_new(
		    o, "hint",
		    json_string("no peers: join through one with p2pctl "
				"bootstrap HOST:PORT (or p2pd -b HOST:PORT)"));
	ctl_reply_ok(req, o);
}

static json_t *peer_json(struct p2pd_node *n, struct link *l)
{
	const struct p2p_peerid *via;
	const char *name;
	json_t *p = json_pack(
	    "{s:o, s:o, s:s, s:s, s:o, s:I, s:I, s:I, s:s}", "id",
	    id_json(link_peer(l)), "addr", addr_json(link_remote(l)), "dir",
	    link_outbound(l) ? "out" : "in", "link", link_kinds[link_kind(l)],
	    "rtt_ms", link_rtt(l) < 0 ? json_null() : json_real(link_rtt(l)),
	    "bytes_in", (json_int_t)link_bytes_in(l), "bytes_out",
	    (json_int_t)link_bytes_out(l), "age_s",
	    (json_int_t)((node_now(n) - link_born(l)) / 1000), "cipher",
	    link_cipher(l));

	name = names_of(n->names, link_peer(l));
	if (name)
		json_object_set_new(p, "name", json_string(name));
	via = link_kind(l) == LINK_RELAY ? relay_of(n, l) : NULL;
	if (via)
		json_object_set_new(p, "via", id_json(via));
	return p;
}

static void cmd_peers(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *peers = json_array();

	for (struct link *l = link_first(n); l; l = link_next_of(l))
		if (link_is_up(l) && link_purpose(l) == LP_OVERLAY)
			json_array_append_new(peers, peer_json(n, l));
	ctl_reply_ok(req, json_pack("{s:o}", "peers", peers));
}

#define BOOT_ADDR_SYNTAX                                                       \
	"addr: expected ADDR:PORT or HOST:PORT (IPv6 as [ADDR]:PORT)"

static void on_boot_resolved(struct p2pd_node *n, uint64_t key,
			     const struct p2p_addr *addrs, size_t naddrs,
			     int err)
{
	struct pending *p;

	for (p = n->cmd->list; p; p = p->next)
		if (p->kind == PEND_BOOTSTRAP && p->key == key)
			break;
	if (!p)
		return; /* timed out meanwhile */
	if (err < 0) {
		snprintf(p->last_err, sizeof(p->last_err),
			 "cannot resolve the name: %s", uv_strerror(err));
		pend_fail(n, p, "peer_unreachable", p->last_err);
		return;
	}
	memcpy(p->addrs, addrs, naddrs * sizeof(addrs[0]));
	p->naddrs = naddrs;
	boot_next(n, p);
}

/* bootstrap HOST:PORT: resolved off the loop, each address in turn. */
static void boot_by_name(struct p2pd_node *n, struct ctl_req *req,
			 const char *text)
{
	uint64_t key = n->cmd->next_key + 1;
	struct pending *p;
	int rc = resolve_start(n, text, on_boot_resolved, key);

	if (rc == -EINVAL) {
		ctl_reply_error(req, "bad_request", BOOT_ADDR_SYNTAX);
		return;
	}
	if (rc < 0) {
		ctl_reply_error(req, "internal", "cannot resolve: %s",
				uv_strerror(rc));
		return;
	}
	/* Never answered inside resolve_start: the request can wait. */
	n->cmd->next_key = key;
	p = pend_new(n, PEND_BOOTSTRAP, req, CMD_BOOTSTRAP_TIMEOUT_MS);
	if (p)
		p->key = key;
}

static void cmd_bootstrap(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *v = json_object_get(args, "addr");
	struct p2p_addr a;
	struct pending *p;
	struct link *l;
	int err;

	if (json_is_string(v) &&
	    (p2p_addr_parse(&a, json_string_value(v), false) < 0 ||
	     a.port == 0)) {
		boot_by_name(n, req, json_string_value(v));
		return;
	}
	if (!json_is_string(v)) {
		ctl_reply_error(req, "bad_request", BOOT_ADDR_SYNTAX);
		return;
	}
	l = link_dial(n, &a, NULL, LP_OVERLAY, &err);
	if (!l) {
		ctl_reply_error(req, "peer_unreachable", "cannot dial: %s",
				link_strerror(err));
		return;
	}
	p = pend_new(n, PEND_BOOTSTRAP, req, CMD_BOOTSTRAP_TIMEOUT_MS);
	if (p)
		pend_hold(p, l);
}

static void ping_direct(struct p2pd_node *n, struct ctl_req *req,
			struct link *l)
{
	struct p2p_msg m = {.type = P2P_MSG_PING};
	uint64_t t0 = uv_hrtime();
	struct pending *p;

	/* Send first: a failure closes the link, and the PONG can only come
	 * in a later loop iteration. */
	randombytes_buf(&m.u.ping.nonce, sizeof(m.u.ping.nonce));
	if (link_send_msg(l, &m) < 0) {
		ctl_reply_error(req, "peer_unreachable",
				"cannot send on the link");
		return;
	}
	p = pend_new(n, PEND_PING_DIRECT, req, CMD_PING_TIMEOUT_MS);
	if (!p)
		return;
	pend_hold(p, l);
	p->key = m.u.ping.nonce;
	p->t0_hr = t0;
}

static void ping_routed(struct p2pd_node *n, struct ctl_req *req,
			const struct p2p_peerid *id)
{
	struct pending *p;
	uint64_t nonce;
	int rc;

	uint8_t out[P2P_RPING_LEN];

	randombytes_buf(&nonce, sizeof(nonce));
	if (p2p_rping_encode(P2P_RPING_PING, nonce, &n->ident, id, out) < 0) {
		ctl_reply_error(req, "internal", "cannot sign the ping");
		return;
	}
	p = pend_new(n, PEND_PING_ROUTED, req, CMD_PING_TIMEOUT_MS);
	if (!p)
		return;
	p->key = nonce;
	p->peer = *id;
	rc = ovl_route(n, id, P2P_APP_PING, out, sizeof(out), &p->msgid);
	if (rc < 0)
		pend_fail(n, p, "peer_unreachable", "no route to that peer");
}

static void cmd_ping(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_peerid id;
	struct link *l;

	if (node_arg_peer(req, args, n->names, &id) < 0)
		return;
	l = link_find_up(n, &id, LINK_KINDS_ALL);
	if (l) {
		ping_direct(n, req, l);
		return;
	}
	if (link_count_up(n) == 0 && !p2p_peerid_equal(&id, &n->ident.id)) {
		ctl_reply_error(req, "peer_unreachable", "no links at all");
		return;
	}
	ping_routed(n, req, &id);
}

static void cmd_lookup(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_peerid id;
	struct pending *p;
	uint64_t lid;
	int rc;

	if (node_arg_peer(req, args, n->names, &id) < 0)
		return;
	rc = ovl_lookup(n, &id, on_lookup, n, &lid);
	if (rc < 0) {
		ctl_reply_error(req, rc == -EBUSY ? "busy" : "internal",
				"lookup: %s", p2p_strerror(rc));
		return;
	}
	p = pend_new(n, PEND_LOOKUP, req, CMD_LOOKUP_TIMEOUT_MS);
	if (p)
		p->key = lid;
}

static void cmd_expose(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2pd_service svc;
	char msg[256];
	size_t i;
	int rc;

	rc = node_service_from_args(args, &svc, msg, sizeof(msg));
	if (rc < 0) {
		ctl_reply_error(
		    req, rc == -EBADR ? "invalid_peer_id" : "bad_request", "%s",
		    msg);
		return;
	}
	for (i = 0; i < n->nservices; i++)
		if (!strcmp(n->services[i].name, svc.name))
			break;
	if (i == P2PD_MAX_SERVICES) {
		ctl_reply_error(req, "busy", "already %d services",
				P2PD_MAX_SERVICES);
		return;
	}
	svc.runtime = true;
	n->services[i] = svc;
	if (i == n->nservices)
		n->nservices++;
	log_info("service %s exposed: %s", svc.name, svc.target);
	tun_runtime_save(n);
	ctl_reply_ok(req, NULL);
}

static void cmd_unexpose(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *v = json_object_get(args, "service");

	if (!json_is_string(v)) {
		ctl_reply_error(req, "bad_request",
				"service: expected a string");
		return;
	}
	for (size_t i = 0; i < n->nservices; i++) {
		bool runtime = n->services[i].runtime;
		if (strcmp(n->services[i].name, json_string_value(v)))
			continue;
		memmove(&n->services[i], &n->services[i + 1],
			(n->nservices - i - 1) * sizeof(n->services[0]));
		n->nservices--;
		if (runtime)
			tun_runtime_save(n);
		log_info("service %s withdrawn%s", json_string_value(v),
			 runtime ? ""
				 : " (the config file's: back at SIGHUP or "
				   "the next start)");
		ctl_reply_ok(req, NULL);
		return;
	}
	ctl_reply_error(req, "unknown_service", "no service named '%.64s'",
			json_string_value(v));
}

static void cmd_services(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *arr = json_array();

	for (size_t i = 0; i < n->nservices; i++)
		json_array_append_new(arr,
				      node_service_to_json(&n->services[i]));
	ctl_reply_ok(req, json_pack("{s:o}", "services", arr));
}

const struct ctl_command cmd_node_commands[] = {
    {"status", cmd_status},	  {"peers", cmd_peers},
    {"bootstrap", cmd_bootstrap}, {"ping", cmd_ping},
    {"lookup", cmd_lookup},	  {"expose", cmd_expose},
    {"unexpose", cmd_unexpose},	  {"services", cmd_services},
};
const size_t cmd_node_ncommands =
    sizeof(cmd_node_commands) / sizeof(cmd_node_commands[0]);
