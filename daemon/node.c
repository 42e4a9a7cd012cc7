/*
 * The node: lifecycle (start, stop), listeners, the housekeeping timer,
 * the peer cache, and the wiring of the sans-I/O overlay core: every input
 * is followed by node_drain(), which carries out the overlay's actions and
 * re-arms its one timer.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node_int.h"
#include "nodeutil.h"

uint64_t node_now(struct p2pd_node *n)
{
	return uv_now(n->loop);
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

size_t node_count_links(const struct p2pd_node *n)
{
	size_t c = 0;

	for (const struct link *l = n->links; l; l = l->next)
		if (l->state != LINK_CLOSING)
			c++;
	return c;
}

struct link *node_find_up(struct p2pd_node *n, const struct p2p_peerid *id)
{
	for (struct link *l = n->links; l; l = l->next)
		if (l->state == LINK_UP && l->hello_rx &&
		    l->purpose == LP_OVERLAY && p2p_peerid_equal(&l->peer, id))
			return l;
	return NULL;
}

/* A link to id being dialled or handshaking: no need for another. */
static bool dialling(struct p2pd_node *n, const struct p2p_peerid *id)
{
	for (struct link *l = n->links; l; l = l->next)
		if (l->state != LINK_CLOSING && l->purpose == LP_OVERLAY &&
		    ((l->has_expect && p2p_peerid_equal(&l->expect, id)) ||
		     (l->state == LINK_UP && p2p_peerid_equal(&l->peer, id))))
			return true;
	return false;
}

static bool link_in_use(struct p2pd_node *n, const struct link *l)
{
	if (l->users > 0 || l->punched)
		return true;
	for (struct pending *p = n->pend; p; p = p->next)
		if (p->link == l)
			return true;
	return false;
}

static void do_action(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	struct link *l;
	int err;

	switch (a->type) {
	case P2P_OV_SEND:
		l = node_find_up(n, &a->peer);
		if (l)
			link_send_raw(l, a->data, a->len);
		else
			log_debug(
			    "overlay message for an unlinked peer dropped");
		break;
	case P2P_OV_DIAL:
		if (n->stopping || dialling(n, &a->peer))
			break;
		l = link_dial(n, &a->addr, &a->peer, LP_OVERLAY, &err);
		if (l)
			l->ov_dial = true;
		else
			p2p_overlay_dial_failed(n->ov, node_now(n), &a->peer);
		break;
	case P2P_OV_CLOSE:
		l = node_find_up(n, &a->peer);
		if (l && !link_in_use(n, l))
			link_close(l, 0, "not needed");
		break;
	case P2P_OV_LOOKUP_DONE:
		node_lookup_done(n, a);
		break;
	case P2P_OV_DELIVER:
		node_deliver(n, a);
		break;
	case P2P_OV_ROUTE_FAILED:
		node_route_failed(n, a->id);
		break;
	}
}

static void on_ov_timer(uv_timer_t *t);
static void maybe_rejoin(struct p2pd_node *n, uint64_t now);

static void rearm(struct p2pd_node *n)
{
	uint64_t t = p2p_overlay_next_timer(n->ov), now = node_now(n);

	if (n->stopping || t == UINT64_MAX) {
		uv_timer_stop(&n->ov_timer);
		return;
	}
	uv_timer_start(&n->ov_timer, on_ov_timer, t > now ? t - now : 0, 0);
}

void node_drain(struct p2pd_node *n)
{
	struct p2p_ov_action a;

	/* Actions may cause overlay input (link_down...): the outer loop
	 * picks up what those queue. */
	if (n->draining)
		return;
	n->draining = true;
	while (p2p_overlay_poll(n->ov, &a))
		if (!n->stopping)
			do_action(n, &a);
	n->draining = false;
	rearm(n);
}

static void on_ov_timer(uv_timer_t *t)
{
	struct p2pd_node *n = t->data;

	p2p_overlay_tick(n->ov, node_now(n));
	node_drain(n);
}

static void cache_path(struct p2pd_node *n, char *out, size_t len)
{
	snprintf(out, len, "%s/peers.json", n->state_dir);
}

static void save_cache(struct p2pd_node *n)
{
	char path[PATH_MAX + 16];
	int rc;

	cache_path(n, path, sizeof(path));
	rc = peercache_save(&n->cache, path);
	if (rc < 0)
		log_warnx("cannot write %s: %s", path, strerror(-rc));
	n->cache_saved = node_now(n);
}

static void on_tick(uv_timer_t *t)
{
	struct p2pd_node *n = t->data;
	uint64_t now = node_now(n);

	for (struct link *l = n->links; l; l = l->next)
		link_tick(l, now);
	node_pending_expire(n, now);
	node_dialback_tick(n, now);
	maybe_rejoin(n, now);
	if (n->cache.dirty && now - n->cache_saved >= NODE_PEERCACHE_SAVE_MS)
		save_cache(n);
	node_drain(n);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct listener *li = s->data;
	int rc;

	if (status < 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	rc = link_accept(li->n, s);
	if (rc < 0)
		log_debug("inbound link refused: %s", uv_strerror(rc));
}

void node_handle_closed(struct p2pd_node *n)
{
	if (--n->open_handles > 0 || !n->stopping)
		return;
	p2p_overlay_free(n->ov);
	p2p_nat_free(n->nat);
	free(n->services);
	void (*done)(void *) = n->done;
	void *arg = n->done_arg;
	sodium_memzero(&n->ident, sizeof(n->ident));
	free(n);
	if (done)
		done(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
	node_handle_closed(h->data);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct listener *li = h->data;
	node_handle_closed(li->n);
}

static int listen_one(struct p2pd_node *n, const struct p2p_addr *a, char *err,
		      size_t errlen)
{
	struct listener *li = &n->listeners[n->nlisten];
	struct sockaddr_storage ss;
	socklen_t slen;
	char text[P2P_ADDR_TEXT_MAX];
	int len = sizeof(ss), rc;
	uv_os_fd_t fd;

	p2p_addr_format(a, text, sizeof(text));
	if (node_addr_to_sockaddr(a, &ss, &slen) < 0) {
		snprintf(err, errlen, "cannot listen on %s: bad address", text);
		return -EINVAL;
	}
	/* Created now (not at bind) so that SO_REUSEPORT goes on first:
	 * outgoing links dial from this port too (see link_dial). */
	rc = uv_tcp_init_ex(n->loop, &li->tcp,
			    a->family == 6 ? AF_INET6 : AF_INET);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", text,
			 uv_strerror(rc));
		return rc;
	}
	n->open_handles++;
	n->nlisten++;
	li->n = n;
	li->tcp.data = li;
	li->open = true;
	/* SO_REUSEPORT would let a second daemon share a busy port: check
	 * that nobody listens there first. */
	if (a->port != 0)
		rc = p2p_nat_sock_port_free((const struct sockaddr *)&ss, slen);
	if (rc == 0)
		rc = uv_fileno((uv_handle_t *)&li->tcp, &fd);
	if (rc == 0)
		rc = p2p_nat_sock_reuse(fd);
	/* IPV6ONLY so that 0.0.0.0:P and [::]:P can coexist. */
	if (rc == 0)
		rc = uv_tcp_bind(&li->tcp, (const struct sockaddr *)&ss,
				 a->family == 6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&li->tcp, 128, on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(&li->tcp, (struct sockaddr *)&ss, &len);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", text,
			 uv_strerror(rc));
		return rc;
	}
	node_addr_from_sockaddr(&li->addr, (struct sockaddr *)&ss);
	p2p_addr_format(&li->addr, text, sizeof(text));
	log_info("listening on %s", text);
	return 0;
}

static void apply_limits(struct p2pd_node *n, const struct p2pd_limits *lim)
{
	n->limits = *lim;
	if (!n->limits.max_links)
		n->limits.max_links = NODE_DEF_MAX_LINKS;
	if (!n->limits.handshake_timeout_ms)
		n->limits.handshake_timeout_ms = NODE_DEF_HANDSHAKE_MS;
	if (!n->limits.keepalive_ms)
		n->limits.keepalive_ms = NODE_DEF_KEEPALIVE_MS;
	if (!n->limits.idle_timeout_ms)
		n->limits.idle_timeout_ms = NODE_DEF_IDLE_MS;
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
	rc = peercache_load(&n->cache, path, err, sizeof(err));
	if (rc == -ENOENT)
		return;
	if (rc < 0) {
		log_warnx("ignoring peer cache %s: %s", path, err);
		return;
	}
	if (!use || n->cache.n == 0)
		return;
	log_info("rejoining through %zu cached peers", n->cache.n);
	/* Oldest first so that the newest end up most recently added. */
	for (size_t i = n->cache.n; i-- > 0;)
		p2p_overlay_add_contact(n->ov, node_now(n), &n->cache.e[i].id,
					&n->cache.e[i].addr);
}

static void dial_bootstrap(struct p2pd_node *n)
{
	char text[P2P_ADDR_TEXT_MAX];
	struct link *l;
	int err;

	for (size_t i = 0; i < n->nboot; i++) {
		l = link_dial(n, &n->boot[i], NULL, LP_OVERLAY, &err);
		if (l) {
			l->boot = true;
			continue;
		}
		p2p_addr_format(&n->boot[i], text, sizeof(text));
		log_warnx("bootstrap %s: %s", text, uv_strerror(err));
	}
}

static void join(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	n->nboot = cfg->nbootstrap;
	memcpy(n->boot, cfg->bootstrap, cfg->nbootstrap * sizeof(n->boot[0]));
	load_cache(n, cfg->nbootstrap == 0);
	dial_bootstrap(n);
	n->rejoin_ms = NODE_REJOIN_MIN_MS;
	n->rejoin_at = node_now(n) + n->rejoin_ms;
}

/*
 * Alone (no link at all, nothing being dialled): try the bootstrap
 * addresses or the cached peers again, backing off, so that a node started
 * before its bootstrap peer, or cut off for a while, joins by itself.
 */
static void maybe_rejoin(struct p2pd_node *n, uint64_t now)
{
	if (n->links) {
		n->rejoin_ms = NODE_REJOIN_MIN_MS;
		n->rejoin_at = now + n->rejoin_ms;
		return;
	}
	if (now < n->rejoin_at || (n->nboot == 0 && n->cache.n == 0))
		return;
	n->rejoin_ms = n->rejoin_ms * 2 > NODE_REJOIN_MAX_MS
			   ? NODE_REJOIN_MAX_MS
			   : n->rejoin_ms * 2;
	n->rejoin_at = now + n->rejoin_ms;
	log_debug("no links: joining again");
	n->bootstrapped = false; /* look ourselves up again once linked */
	if (n->nboot > 0) {
		dial_bootstrap(n);
		return;
	}
	for (size_t i = n->cache.n; i-- > 0;)
		p2p_overlay_add_contact(n->ov, now, &n->cache.e[i].id,
					&n->cache.e[i].addr);
}

static int node_init(struct p2pd_node *n, uv_loop_t *loop,
		     const struct p2pd_config *cfg,
		     const struct p2p_identity *ident)
{
	struct p2p_overlay_config oc = {
	    .self = ident->id,
	    .server = false,
	    .random = ov_random,
	    .log = ov_log,
	    .ctx = n,
	};

	n->loop = loop;
	n->ident = *ident;
	p2p_peerid_to_text(&ident->id, n->id_text);
	apply_limits(n, &cfg->limits);
	snprintf(n->state_dir, sizeof(n->state_dir), "%s", cfg->state_dir);
	n->services = calloc(P2PD_MAX_SERVICES, sizeof(*n->services));
	n->ov = p2p_overlay_new(&oc);
	n->nat = p2p_nat_new();
	if (!n->services || !n->ov || !n->nat)
		return -ENOMEM;
	p2pd_node_set_services(n, cfg);
	peercache_init(&n->cache);
	uv_timer_init(loop, &n->ov_timer);
	uv_timer_init(loop, &n->tick);
	n->ov_timer.data = n->tick.data = n;
	n->open_handles += 2;
	punch_init(n);
	n->start_ms = uv_now(loop);
	return 0;
}

static void close_all(struct p2pd_node *n)
{
	n->stopping = true;
	for (size_t i = 0; i < n->nlisten; i++) {
		if (n->listeners[i].open) {
			n->listeners[i].open = false;
			uv_close((uv_handle_t *)&n->listeners[i].tcp,
				 on_listener_closed);
		}
	}
	node_pending_fail_all(n);
	punch_close_all(n);
	/* Links already waiting for a peer's EOF are not waited for. */
	for (struct link *l = n->links; l; l = l->next) {
		link_close(l, 0, "shutting down");
		link_destroy(l);
	}
	if (!uv_is_closing((uv_handle_t *)&n->tick)) {
		uv_close((uv_handle_t *)&n->ov_timer, on_handle_closed);
		uv_close((uv_handle_t *)&n->tick, on_handle_closed);
	}
}

static void set_flag(void *arg)
{
	*(bool *)arg = true;
}

int p2pd_node_start(uv_loop_t *loop, const struct p2pd_config *cfg,
		    const struct p2p_identity *ident, struct p2pd_node **out,
		    char *err, size_t errlen)
{
	struct p2pd_node *n = calloc(1, sizeof(*n));
	int rc;

	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = node_init(n, loop, cfg, ident);
	if (rc < 0) {
		p2p_overlay_free(n->ov);
		p2p_nat_free(n->nat);
		free(n->services);
		free(n);
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	for (size_t i = 0; i < cfg->nlisten && rc == 0; i++)
		rc = listen_one(n, &cfg->listen[i], err, errlen);
	if (rc < 0) {
		/* Handles are freed by their close callbacks: let them run. */
		bool freed = false;
		n->done = set_flag;
		n->done_arg = &freed;
		close_all(n);
		while (!freed && uv_run(loop, UV_RUN_NOWAIT))
			;
		return rc;
	}
	uv_timer_start(&n->tick, on_tick, NODE_TICK_MS, NODE_TICK_MS);
	join(n, cfg);
	node_drain(n);
	*out = n;
	return 0;
}

void p2pd_node_stop(struct p2pd_node *n, void (*done)(void *arg), void *arg)
{
	n->done = done;
	n->done_arg = arg;
	if (n->cache.dirty)
		save_cache(n);
	close_all(n);
}

void p2pd_node_set_services(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	n->nservices = cfg->nservices;
	memcpy(n->services, cfg->services,
	       cfg->nservices * sizeof(cfg->services[0]));
}

size_t p2pd_node_peer_count(const struct p2pd_node *n)
{
	size_t c = 0;

	for (const struct link *l = n->links; l; l = l->next)
		if (l->state == LINK_UP && l->hello_rx &&
		    l->purpose == LP_OVERLAY)
			c++;
	return c;
}
