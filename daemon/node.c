/*
 * The hub (node.h): registries, the one timer and the after-input pass.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node.h"

uint64_t node_now(const struct p2pd_node *n)
{
	return uv_now(n->loop);
}

void node_handle_opened(struct p2pd_node *n)
{
	n->open_handles++;
}

void node_handle_closed(struct p2pd_node *n)
{
	if (--n->open_handles > 0 || !n->stopping)
		return;
	void (*done)(void *) = n->done;
	void *arg = n->done_arg;
	n->done = NULL;
	if (done)
		done(arg);
}

/* ---- registries ---- */

int node_clock(struct p2pd_node *n, node_next_fn next, node_expire_fn expire,
	       void *arg)
{
	if (n->nclocks == NODE_CLOCKS_MAX)
		return -ENOSPC;
	n->clocks[n->nclocks].next = next;
	n->clocks[n->nclocks].expire = expire;
	n->clocks[n->nclocks++].arg = arg;
	return 0;
}

int node_after(struct p2pd_node *n, node_after_fn fn, void *arg)
{
	if (n->nafter == NODE_AFTER_MAX)
		return -ENOSPC;
	n->after[n->nafter].fn = fn;
	n->after[n->nafter++].arg = arg;
	return 0;
}

int node_on_msg(struct p2pd_node *n, uint8_t type, unsigned flags,
		node_msg_fn fn, void *arg)
{
	if (n->msgs[type].fn)
		return -EEXIST;
	n->msgs[type].fn = fn;
	n->msgs[type].arg = arg;
	n->msgs[type].flags = flags;
	return 0;
}

int node_on_app(struct p2pd_node *n, uint8_t app, node_app_fn deliver,
		node_app_failed_fn failed, void *arg)
{
	if (n->napps == NODE_APPS_MAX)
		return -ENOSPC;
	n->apps[n->napps].app = app;
	n->apps[n->napps].deliver = deliver;
	n->apps[n->napps].failed = failed;
	n->apps[n->napps++].arg = arg;
	return 0;
}

int node_observe_links(struct p2pd_node *n, const struct node_link_hooks *h,
		       void *arg)
{
	if (n->nobservers == NODE_OBSERVERS_MAX)
		return -ENOSPC;
	n->observers[n->nobservers].h = h;
	n->observers[n->nobservers++].arg = arg;
	return 0;
}

void node_set_hello(struct p2pd_node *n, node_hello_fn fn, void *arg)
{
	n->hello = fn;
	n->hello_arg = arg;
}

/* ---- dispatch ---- */

const struct node_msg_handler *node_msg_handler(const struct p2pd_node *n,
						uint8_t type)
{
	return n->msgs[type].fn ? &n->msgs[type] : NULL;
}

bool node_app_deliver(struct p2pd_node *n, const struct p2p_ov_action *a)
{
	for (size_t i = 0; i < n->napps; i++) {
		if (n->apps[i].app == a->app && n->apps[i].deliver) {
			n->apps[i].deliver(n->apps[i].arg, a);
			return true;
		}
	}
	return false;
}

bool node_app_failed(struct p2pd_node *n, uint8_t app, uint64_t msgid)
{
	for (size_t i = 0; i < n->napps; i++) {
		if (n->apps[i].app == app && n->apps[i].failed) {
			n->apps[i].failed(n->apps[i].arg, msgid);
			return true;
		}
	}
	return false;
}

/* Observers in the order daemon.c registered them. */
#define EMIT(n, hook, ...)                                                     \
	do {                                                                   \
		for (size_t i_ = 0; i_ < (n)->nobservers; i_++)                \
			if ((n)->observers[i_].h->hook)                        \
				(n)->observers[i_].h->hook(                    \
				    (n)->observers[i_].arg, __VA_ARGS__);      \
	} while (0)

void node_emit_connected(struct p2pd_node *n, struct link *l)
{
	EMIT(n, connected, l);
}

void node_emit_established(struct p2pd_node *n, struct link *l)
{
	EMIT(n, established, l);
}

void node_emit_up(struct p2pd_node *n, struct link *l, bool first)
{
	EMIT(n, up, l, first);
}

void node_emit_gone(struct p2pd_node *n, struct link *l, const char *why)
{
	EMIT(n, gone, l, why);
}

void node_emit_writable(struct p2pd_node *n, struct link *l)
{
	EMIT(n, writable, l);
}

void node_emit_read_done(struct p2pd_node *n, struct link *l)
{
	EMIT(n, read_done, l);
}

void node_fill_hello(struct p2pd_node *n, const struct link *l,
		     struct p2p_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = P2P_MSG_HELLO;
	if (n->hello)
		n->hello(n->hello_arg, l, m);
}

/* ---- time ---- */

uint64_t node_next_deadline(struct p2pd_node *n)
{
	uint64_t t = UINT64_MAX;

	for (size_t i = 0; i < n->nclocks; i++) {
		uint64_t d = n->clocks[i].next(n->clocks[i].arg);
		if (d < t)
			t = d;
	}
	return t;
}

void node_expire(struct p2pd_node *n, uint64_t now)
{
	for (size_t i = 0; i < n->nclocks; i++)
		if (n->clocks[i].next(n->clocks[i].arg) <= now)
			n->clocks[i].expire(n->clocks[i].arg, now);
}

static void on_timer(uv_timer_t *t)
{
	struct p2pd_node *n = t->data;

	n->timer_at = UINT64_MAX;
	node_expire(n, node_now(n));
}

static void rearm(struct p2pd_node *n)
{
	uint64_t t, now = node_now(n);

	if (n->stopping) {
		uv_timer_stop(&n->timer);
		return;
	}
	t = node_next_deadline(n);
	if (t == n->timer_at)
		return;
	n->timer_at = t;
	if (t == UINT64_MAX)
		uv_timer_stop(&n->timer);
	else
		uv_timer_start(&n->timer, on_timer, t > now ? t - now : 0, 0);
}

void node_settle(struct p2pd_node *n)
{
	bool busy = true;

	/* A hook may cause work for an earlier one (a reaped link's gone
	 * event finishes a dial, whose waiter opens a stream): the pass
	 * repeats until no hook has anything left, so nothing waits for
	 * the next input. */
	if (n->in_after)
		return;
	n->in_after = true;
	while (busy) {
		busy = false;
		for (size_t i = 0; i < n->nafter; i++)
			busy |= n->after[i].fn(n->after[i].arg);
	}
	n->in_after = false;
	rearm(n);
}

static void on_prepare(uv_prepare_t *p)
{
	node_settle(p->data);
}

static void on_hub_closed(uv_handle_t *h)
{
	node_handle_closed(h->data);
}

int node_init(struct p2pd_node *n, uv_loop_t *loop,
	      const struct p2pd_config *cfg, const struct p2p_identity *ident)
{
	n->loop = loop;
	n->ident = *ident;
	p2p_peerid_to_text(&ident->id, n->id_text);
	n->limits = cfg->limits;
	if (!n->limits.max_links)
		n->limits.max_links = NODE_DEF_MAX_LINKS;
	if (!n->limits.handshake_timeout_ms)
		n->limits.handshake_timeout_ms = NODE_DEF_HANDSHAKE_MS;
	if (!n->limits.keepalive_ms)
		n->limits.keepalive_ms = NODE_DEF_KEEPALIVE_MS;
	if (!n->limits.idle_timeout_ms)
		n->limits.idle_timeout_ms = NODE_DEF_IDLE_MS;
	snprintf(n->state_dir, sizeof(n->state_dir), "%s", cfg->state_dir);
	n->services = calloc(P2PD_MAX_SERVICES, sizeof(*n->services));
	if (!n->services)
		return -ENOMEM;
	n->nservices = cfg->nservices;
	memcpy(n->services, cfg->services,
	       cfg->nservices * sizeof(cfg->services[0]));
	n->start_ms = uv_now(loop);
	n->timer_at = UINT64_MAX;
	uv_timer_init(loop, &n->timer);
	uv_prepare_init(loop, &n->prepare);
	n->timer.data = n->prepare.data = n;
	n->open_handles += 2;
	/* Runs before every wait for I/O; it must not keep the loop alive. */
	uv_prepare_start(&n->prepare, on_prepare);
	uv_unref((uv_handle_t *)&n->prepare);
	return 0;
}

void node_close(struct p2pd_node *n, void (*done)(void *), void *arg)
{
	n->stopping = true;
	n->done = done;
	n->done_arg = arg;
	if (!uv_is_closing((uv_handle_t *)&n->timer)) {
		uv_close((uv_handle_t *)&n->timer, on_hub_closed);
		uv_close((uv_handle_t *)&n->prepare, on_hub_closed);
	}
}

bool node_bad_input_log(struct p2pd_node *n, const struct p2p_addr *from)
{
	uint32_t h = 2166136261u;

	/* One stamp per hash slot of the remote IP: "per peer" that a peer
	 * cannot dodge by reconnecting from another port. */
	for (size_t i = 0; i < sizeof(from->ip); i++)
		h = (h ^ from->ip[i]) * 16777619u;
	return log_ratelimit(&n->badlog[h % NODE_BADLOG_SLOTS], node_now(n),
			     NODE_BADLOG_MS);
}

uint16_t node_listen_port(const struct p2pd_node *n, uint8_t family)
{
	for (size_t i = 0; i < n->nlisten; i++)
		if (n->listeners[i].addr.family == family)
			return n->listeners[i].addr.port;
	return 0;
}
