/*
 * Control commands of the node (SPEC section 5) and the requests that
 * wait for the network: bootstrap (HELLO), ping (PONG, direct or routed),
 * lookup (LOOKUP_DONE). Every request gets exactly one reply; the waiting
 * ones are in n->pend with a deadline.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node_int.h"
#include "nodeutil.h"

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
	p->next = n->pend;
	n->pend = p;
	return p;
}

/* Unlink p and free it; the caller has replied. */
static void pend_done(struct p2pd_node *n, struct pending *p)
{
	for (struct pending **pp = &n->pend; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	free(p);
}

static double since_ms(const struct pending *p)
{
	return (double)(uv_hrtime() - p->t0_hr) / 1e6;
}

static void reply_ping(struct p2pd_node *n, struct pending *p, const char *path)
{
	ctl_reply_ok(p->req, json_pack("{s:f, s:s}", "rtt_ms", since_ms(p),
				       "path", path));
	pend_done(n, p);
}

static void pend_fail(struct p2pd_node *n, struct pending *p, const char *code,
		      const char *msg)
{
	ctl_reply_error(p->req, code, "%s", msg);
	pend_done(n, p);
}

void node_pending_hello(struct p2pd_node *n, struct link *l)
{
	struct pending *p, *next;

	for (p = n->pend; p; p = next) {
		next = p->next;
		if (p->kind != PEND_BOOTSTRAP || p->link != l)
			continue;
		ctl_reply_ok(p->req,
			     json_pack("{s:o}", "peer", id_json(&l->peer)));
		pend_done(n, p);
		/* Joining through one more peer: look ourselves up again. */
		if (n->bootstrapped)
			p2p_overlay_bootstrap(n->ov, node_now(n));
	}
	tunnel_link_hello(n, l);
}

void node_pending_fail_link(struct p2pd_node *n, struct link *l,
			    const char *why)
{
	struct pending *p, *next;

	for (p = n->pend; p; p = next) {
		next = p->next;
		if (p->link != l)
			continue;
		if (p->kind == PEND_BOOTSTRAP)
			pend_fail(n, p, "peer_unreachable", why);
		else
			pend_fail(n, p, "peer_unreachable", "link closed");
	}
	tunnel_link_gone(n, l, why);
}

void node_pending_expire(struct p2pd_node *n, uint64_t now)
{
	struct pending *p, *next;

	for (p = n->pend; p; p = next) {
		next = p->next;
		if (now >= p->deadline)
			pend_fail(n, p, "timeout", "no answer in time");
	}
	tunnel_expire(n, now);
}

void node_pending_fail_all(struct p2pd_node *n)
{
	while (n->pend)
		pend_fail(n, n->pend, "internal", "daemon shutting down");
	tunnel_stop_all(n);
}

void node_pong(struct p2pd_node *n, struct link *l, uint64_t nonce)
{
	for (struct pending *p = n->pend; p; p = p->next) {
		if (p->kind == PEND_PING_DIRECT && p->link == l &&
		    p->key == nonce) {
			l->rtt_ms = since_ms(p);
			reply_ping(n, p, "direct");
			return;
		}
	}
}

void node_deliver(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	uint64_t nonce, msgid;
	char id[P2P_ID_TEXT_LEN + 1];

	p2p_peerid_to_text(&a->peer, id);
	log_debug("routed app %u from %s, %d hops", a->app, id, a->hops);
	if (a->app == P2P_APP_NAT) {
		punch_deliver(n, a);
		return;
	}
	if ((a->app != P2P_APP_PING && a->app != P2P_APP_PONG) ||
	    a->len != sizeof(nonce))
		return;
	/* Copy out: a->data lives in the overlay, which we call next. */
	memcpy(&nonce, a->data, sizeof(nonce));
	if (a->app == P2P_APP_PING) {
		struct p2p_peerid src = a->peer;
		/* Answer the way it came: routed back to the source. */
		p2p_overlay_route(n->ov, node_now(n), &src, P2P_APP_PONG,
				  (const uint8_t *)&nonce, sizeof(nonce),
				  &msgid);
		return;
	}
	for (struct pending *p = n->pend; p; p = p->next) {
		if (p->kind == PEND_PING_ROUTED && p->key == nonce) {
			reply_ping(n, p, "relay");
			return;
		}
	}
	log_debug("routed pong %016llx matches no ping",
		  (unsigned long long)nonce);
}

void node_route_failed(struct p2pd_node *n, uint64_t msgid)
{
	if (punch_route_failed(n, msgid))
		return;
	for (struct pending *p = n->pend; p; p = p->next) {
		if (p->kind == PEND_PING_ROUTED && p->msgid == msgid) {
			pend_fail(n, p, "peer_unreachable",
				  "no route to that peer");
			return;
		}
	}
}

void node_lookup_done(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	struct pending *p;
	json_t *closest;

	for (p = n->pend; p; p = p->next)
		if (p->kind == PEND_LOOKUP && p->key == a->id)
			break;
	if (!p) {
		tunnel_lookup_done(n, a);
		return;
	}
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

/* ---- argument helpers ---- */

int node_arg_peer(struct ctl_req *req, json_t *args, struct p2p_peerid *id)
{
	json_t *v = json_object_get(args, "peer");

	if (!json_is_string(v)) {
		ctl_reply_error(req, "bad_request",
				"peer: expected a peer ID string");
		return -EINVAL;
	}
	if (p2p_peerid_from_text(id, json_string_value(v),
				 json_string_length(v)) < 0) {
		ctl_reply_error(req, "invalid_peer_id",
				"peer: not a peer ID (52 base32 characters)");
		return -EINVAL;
	}
	return 0;
}

/* ---- commands ---- */

static void cmd_status(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_overlay_stats st;
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX];
	size_t next = p2p_nat_external(n->nat, ext, P2P_NAT_EXTERNAL_MAX);
	json_t *listen = json_array(), *external = json_array();

	p2p_overlay_get_stats(n->ov, &st);
	for (size_t i = 0; i < n->nlisten; i++)
		json_array_append_new(listen, addr_json(&n->listeners[i].addr));
	for (size_t i = 0; i < next; i++)
		json_array_append_new(external, addr_json(&ext[i]));
	json_t *counters =
	    json_pack("{s:I, s:I, s:I, s:I, s:I}", "bad_frames",
		      (json_int_t)n->stats.bad_frames, "bad_msgs",
		      (json_int_t)n->stats.bad_msgs, "unknown_msgs",
		      (json_int_t)n->stats.unknown_msgs, "handshakes_failed",
		      (json_int_t)n->stats.hs_failed, "links_refused",
		      (json_int_t)n->stats.links_refused);
	const char *mode = p2p_overlay_is_server(n->ov) ? "server" : "client";

	ctl_reply_ok(
	    req,
	    json_pack("{s:s, s:s, s:I, s:o, s:{s:s, s:o}, s:I, "
		      "s:{s:s, s:I}, s:o, s:{s:I, s:I, s:I, s:I}}",
		      "id", n->id_text, "version", P2PD_VERSION, "uptime_s",
		      (json_int_t)((node_now(n) - n->start_ms) / 1000),
		      "listen", listen, "nat", "type",
		      p2p_nat_type_name(p2p_nat_type(n->nat)), "external",
		      external, "peers", (json_int_t)p2pd_node_peer_count(n),
		      "dht", "mode", mode, "table_size",
		      (json_int_t)st.table_size, "counters", counters, "relay",
		      "circuits", (json_int_t)n->relay.tab.n, "opened",
		      (json_int_t)n->relay.opened, "bytes",
		      (json_int_t)n->relay.bytes, "unknown_circuit",
		      (json_int_t)n->relay.unknown));
}

static void cmd_peers(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *peers = json_array();

	for (struct link *l = n->links; l; l = l->next) {
		if (l->state != LINK_UP || !l->hello_rx ||
		    l->purpose != LP_OVERLAY)
			continue;
		json_array_append_new(
		    peers,
		    json_pack("{s:o, s:o, s:s, s:s, s:o}", "id",
			      id_json(&l->peer), "addr", addr_json(&l->remote),
			      "dir", l->outbound ? "out" : "in", "link",
			      l->relayed   ? "relay"
			      : l->punched ? "direct"
					   : "overlay",
			      "rtt_ms",
			      l->rtt_ms < 0 ? json_null()
					    : json_real(l->rtt_ms)));
	}
	ctl_reply_ok(req, json_pack("{s:o}", "peers", peers));
}

static void cmd_bootstrap(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *v = json_object_get(args, "addr");
	struct p2p_addr a;
	struct pending *p;
	struct link *l;
	int err;

	if (!json_is_string(v) ||
	    p2p_addr_parse(&a, json_string_value(v), false) < 0 ||
	    a.port == 0) {
		ctl_reply_error(
		    req, "bad_request",
		    "addr: expected ADDR:PORT (IPv6 as [ADDR]:PORT)");
		return;
	}
	l = link_dial(n, &a, NULL, LP_OVERLAY, &err);
	if (!l) {
		ctl_reply_error(req, "peer_unreachable", "cannot dial: %s",
				uv_strerror(err));
		return;
	}
	p = pend_new(n, PEND_BOOTSTRAP, req, NODE_BOOTSTRAP_TIMEOUT_MS);
	if (p)
		p->link = l;
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
	p = pend_new(n, PEND_PING_DIRECT, req, NODE_PING_TIMEOUT_MS);
	if (!p)
		return;
	p->link = l;
	p->key = m.u.ping.nonce;
	p->t0_hr = t0;
}

static void ping_routed(struct p2pd_node *n, struct ctl_req *req,
			const struct p2p_peerid *id)
{
	struct pending *p;
	uint64_t nonce;
	int rc;

	randombytes_buf(&nonce, sizeof(nonce));
	p = pend_new(n, PEND_PING_ROUTED, req, NODE_PING_TIMEOUT_MS);
	if (!p)
		return;
	p->key = nonce;
	rc = p2p_overlay_route(n->ov, node_now(n), id, P2P_APP_PING,
			       (const uint8_t *)&nonce, sizeof(nonce),
			       &p->msgid);
	if (rc < 0)
		pend_fail(n, p, "peer_unreachable", "no route to that peer");
	node_drain(n);
}

static void cmd_ping(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_peerid id;
	struct link *l;

	if (node_arg_peer(req, args, &id) < 0)
		return;
	l = node_find_up(n, &id);
	if (l) {
		ping_direct(n, req, l);
		return;
	}
	if (p2pd_node_peer_count(n) == 0 &&
	    !p2p_peerid_equal(&id, &n->ident.id)) {
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

	if (node_arg_peer(req, args, &id) < 0)
		return;
	rc = p2p_overlay_lookup(n->ov, node_now(n), &id, &lid);
	if (rc < 0) {
		ctl_reply_error(req, rc == -EBUSY ? "busy" : "internal",
				"lookup: %s", p2p_strerror(rc));
		return;
	}
	p = pend_new(n, PEND_LOOKUP, req, NODE_LOOKUP_TIMEOUT_MS);
	if (p)
		p->key = lid;
	node_drain(n);
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
	n->services[i] = svc;
	if (i == n->nservices)
		n->nservices++;
	log_info("service %s exposed: %s", svc.name, svc.target);
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
		if (strcmp(n->services[i].name, json_string_value(v)))
			continue;
		memmove(&n->services[i], &n->services[i + 1],
			(n->nservices - i - 1) * sizeof(n->services[0]));
		n->nservices--;
		log_info("service %s withdrawn", json_string_value(v));
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

const struct ctl_command p2pd_node_commands[] = {
    {"status", cmd_status},
    {"peers", cmd_peers},
    {"bootstrap", cmd_bootstrap},
    {"ping", cmd_ping},
    {"lookup", cmd_lookup},
    {"expose", cmd_expose},
    {"unexpose", cmd_unexpose},
    {"services", cmd_services},
    {"open", tunnel_cmd_open},
    {"connect", tunnel_cmd_connect},
    {"forward", tunnel_cmd_forward},
    {"unforward", tunnel_cmd_unforward},
    {"forwards", tunnel_cmd_forwards},
};
const size_t p2pd_node_ncommands =
    sizeof(p2pd_node_commands) / sizeof(p2pd_node_commands[0]);
