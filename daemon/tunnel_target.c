/*
 * The acceptor side of tunnels: a peer's STREAM_OPEN names a service; it
 * must be exposed and the peer's ID allowed (else STREAM_RESET with
 * STREAM_RST_NO_SERVICE / STREAM_RST_DENIED), then we connect to the
 * service's target (resolving a host name first) and answer
 * STREAM_ACCEPT, or STREAM_RESET with STREAM_RST_UNREACHABLE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nodeutil.h"
#include "tcpopt.h"
#include "tunnel_int.h"

/* One log line per peer per TUN_PEER_LOG_MS (a peer opening tunnels in a
 * loop must not flood the log); the rest at debug. */
static bool peer_log(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(peer->b); i++)
		h = (h ^ peer->b[i]) * 16777619u;
	return log_ratelimit(&n->tun->peer_log[h % TUN_PEER_LOG_SLOTS],
			     node_now(n), TUN_PEER_LOG_MS);
}

static void target_failed(struct tun *t, const char *what)
{
	struct link *l = tun_link(t);
	uint32_t id = t->s.id;
	char msg[160];

	snprintf(msg, sizeof(msg), "target unreachable: %s", what);
	if (peer_log(t->n, &t->peer))
		log_info("tunnel to service %s: %s", t->service, msg);
	else
		log_debug("tunnel to service %s: %s", t->service, msg);
	t->s.state = STREAM_DONE;
	tun_close(t, false);
	tun_send_reset_id(l, id, STREAM_RST_UNREACHABLE, msg);
}

static void on_target_connect(uv_connect_t *req, int status)
{
	struct tun *t = req->data;
	struct p2p_msg m = {.type = P2P_MSG_STREAM_ACCEPT};

	if (t->closing)
		return;
	if (status < 0) {
		target_failed(t, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&t->tcp, 1);
	m.u.stream_open.stream = t->s.id;
	/* What stream_base_window() gave it at the open (no data yet). */
	m.u.stream_open.window = t->s.window;
	tun_send_msg(t, &m);
	tun_opened(t, t->peer_window, NULL, 0);
}

/* A name a peer sent is logged only if it is a plain service name. */
static bool printable(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr(
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789._-",
			name[i]) ||
		    name[i] == '\0')
			return false;
	return true;
}

static const struct p2pd_service *find_service(struct p2pd_node *n,
					       const char *name, size_t len)
{
	for (size_t i = 0; i < n->nservices; i++)
		if (strlen(n->services[i].name) == len &&
		    !memcmp(n->services[i].name, name, len))
			return &n->services[i];
	return NULL;
}

static bool allowed(const struct p2pd_service *svc, const struct p2p_peerid *id)
{
	if (svc->allow_any)
		return true;
	for (size_t i = 0; i < svc->nallow; i++)
		if (p2p_peerid_equal(&svc->allow[i], id))
			return true;
	return false;
}

/* Tunnels peers opened to our services: all of them, and peer's. */
static void count_targets(struct p2pd_node *n, const struct p2p_peerid *peer,
			  size_t *all, size_t *of_peer)
{
	*all = *of_peer = 0;
	for (struct tun *t = n->tun->list; t; t = t->next) {
		if (t->kind != TUN_TARGET)
			continue;
		(*all)++;
		*of_peer += p2p_peerid_equal(&t->peer, peer);
	}
}

/* Room for one more tunnel from peer (tunnel.h: budget, reserve). */
static bool peer_has_room(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	size_t all, mine;

	count_targets(n, peer, &all, &mine);
	return mine < TUN_MAX_PER_PEER && all < TUN_MAX - TUN_LOCAL_RESERVE;
}

static int connect_target(struct tun *t, const struct sockaddr *sa)
{
	t->conn.data = t;
	tcpopt_before_connect(&t->tcp, sa);
	return uv_tcp_connect(&t->conn, &t->tcp, sa, on_target_connect);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct tun_resolve *r = (struct tun_resolve *)req;
	struct tun *t = r->t;
	int rc = status;

	free(r);
	if (!t) { /* the tunnel closed meanwhile */
		uv_freeaddrinfo(res);
		return;
	}
	t->resolve = NULL;
	if (rc == 0)
		rc = res ? connect_target(t, res->ai_addr) : UV_EAI_NONAME;
	uv_freeaddrinfo(res);
	if (rc < 0)
		target_failed(t, uv_strerror(rc));
}

/* "HOST:PORT" with a host name: resolve it first. */
static int resolve_target(struct tun *t, const char *target)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	const char *colon = strrchr(target, ':');
	char host[256];
	struct tun_resolve *r;
	int rc;

	if (!colon || (size_t)(colon - target) >= sizeof(host))
		return -EINVAL;
	memcpy(host, target, (size_t)(colon - target));
	host[colon - target] = '\0';
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->t = t;
	rc = uv_getaddrinfo(t->n->loop, &r->req, on_resolved, host, colon + 1,
			    &hints);
	if (rc < 0) {
		free(r);
		return rc;
	}
	t->resolve = r;
	return 0;
}

static int start_target(struct tun *t, const struct p2pd_service *svc)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	int rc;

	rc = uv_tcp_init(t->n->loop, &t->tcp);
	if (rc < 0)
		return rc;
	node_handle_opened(t->n);
	t->tcp.data = t;
	t->h = (uv_stream_t *)&t->tcp;
	if (node_addr_to_sockaddr(&svc->target_addr, &ss, &slen) < 0)
		return resolve_target(t, svc->target);
	return connect_target(t, (struct sockaddr *)&ss);
}

void tun_on_open_msg(struct p2pd_node *n, struct link *l,
		     const struct p2p_msg *m)
{
	uint32_t id = m->u.stream_open.stream;
	const struct p2pd_service *svc;
	char idt[P2P_ID_TEXT_LEN + 1];
	struct tun *t;
	int rc;

	if (!stream_id_from_peer(id, link_outbound(l)) || tun_find(n, l, id)) {
		tun_send_reset_id(l, id, STREAM_RST_PROTOCOL, "bad stream id");
		return;
	}
	if (n->stopping) {
		tun_send_reset_id(l, id, STREAM_RST_SHUTDOWN, "shutting down");
		return;
	}
	p2p_peerid_to_text(link_peer(l), idt);
	svc = find_service(n, m->u.stream_open.service,
			   m->u.stream_open.service_len);
	if (!svc) {
		if (log_ratelimit(&n->tun->refused_log, node_now(n),
				  TUN_REFUSED_LOG_MS))
			log_info("tunnel from %s: no service '%.*s'", idt,
				 printable(m->u.stream_open.service,
					   m->u.stream_open.service_len)
				     ? (int)m->u.stream_open.service_len
				     : 0,
				 m->u.stream_open.service);
		tun_send_reset_id(l, id, STREAM_RST_NO_SERVICE,
				  "no such service");
		return;
	}
	if (!allowed(svc, link_peer(l))) {
		if (log_ratelimit(&n->tun->refused_log, node_now(n),
				  TUN_REFUSED_LOG_MS))
			log_info("tunnel from %s to %s: not allowed", idt,
				 svc->name);
		tun_send_reset_id(l, id, STREAM_RST_DENIED,
				  "access denied: this peer ID is not allowed");
		return;
	}
	if (tun_link_streams(n, l) >= TUN_MAX_PER_LINK ||
	    !peer_has_room(n, link_peer(l)) || !(t = tun_new(n, TUN_TARGET))) {
		if (log_ratelimit(&n->tun->refused_log, node_now(n),
				  TUN_REFUSED_LOG_MS))
			log_info("tunnel from %s to %s: too many tunnels", idt,
				 svc->name);
		tun_send_reset_id(l, id, STREAM_RST_BUSY, "too many tunnels");
		return;
	}
	/* Its window comes out of the daemon's base budget (stream.h). */
	stream_init_window(&t->s, id, stream_base_window(&n->tun->base));
	t->link = link_id(l);
	link_hold(l);
	t->peer = *link_peer(l);
	t->peer_window = m->u.stream_open.window;
	snprintf(t->service, sizeof(t->service), "%s", svc->name);
	t->deadline = node_now(n) + TUN_OPEN_TIMEOUT_MS;
	rc = start_target(t, svc);
	if (rc < 0) {
		target_failed(t, uv_strerror(rc));
		return;
	}
	if (peer_log(n, &t->peer))
		log_info("tunnel %u from %s to service %s", id, idt, svc->name);
	else
		log_debug("tunnel %u from %s to service %s", id, idt,
			  svc->name);
}
