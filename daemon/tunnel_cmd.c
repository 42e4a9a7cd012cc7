/*
 * Tunnel control commands (SPEC section 5): open, connect, forward,
 * unforward, forwards; and the forward listeners, whose every accepted
 * connection becomes a tunnel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "args.h"
#include "nodeutil.h"
#include "tcpopt.h"
#include "tunnel_int.h"

static int arg_service(struct ctl_req *req, json_t *args, char *out,
		       size_t outlen)
{
	json_t *v = json_object_get(args, "service");

	if (!json_is_string(v) || !node_service_name_ok(json_string_value(v))) {
		ctl_reply_error(req, "bad_request",
				"service: expected a name of 1 to %d "
				"characters [A-Za-z0-9._-]",
				P2P_SERVICE_NAME_MAX);
		return -EINVAL;
	}
	snprintf(out, outlen, "%s", json_string_value(v));
	return 0;
}

static struct tun *tun_of(struct reach_waiter *w)
{
	return (struct tun *)((char *)w - offsetof(struct tun, w));
}

/* open and forwarded connections: a link is there, or is not. */
static void tun_link_ready(struct p2pd_node *n, struct reach_waiter *w,
			   struct link *l, bool dialled, const char *code,
			   const char *msg)
{
	struct tun *t = tun_of(w);

	if (!l) {
		tun_fail_open(t, code, "%s", msg);
		return;
	}
	tun_start_open(n, t, l);
}

/* ---- open ---- */

static void tunnel_cmd_open(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_peerid id;
	char service[P2P_SERVICE_NAME_MAX + 1];
	struct tun *t;

	if (node_arg_peer(req, args, n->names, &id) < 0 ||
	    arg_service(req, args, service, sizeof(service)) < 0)
		return;
	t = tun_new(n, TUN_OPEN);
	if (!t) {
		ctl_reply_error(req, "busy", "already %d tunnels", TUN_MAX);
		return;
	}
	t->req = req;
	t->progress = json_is_true(json_object_get(args, "progress"));
	t->peer = id;
	memcpy(t->service, service, sizeof(service));
	t->w.done = tun_link_ready;
	reach_get(n, &id, &t->w);
}

/* ---- connect ---- */

struct connect_req {
	struct reach_waiter w; /* first: the waiter is the request */
	struct connect_req *next;
	struct ctl_req *req;
	struct p2p_peerid peer;
	uint64_t t0_hr;
	bool progress;
};

/* A step of reaching peer: to the requests that asked for progress. */
void tunnel_on_progress(void *arg, const struct p2p_peerid *peer,
			const char *stage, const char *detail)
{
	struct p2pd_node *n = arg;

	for (struct connect_req *c = n->tun->connects; c; c = c->next)
		if (c->progress && p2p_peerid_equal(&c->peer, peer))
			ctl_req_progress(c->req, stage, detail);
	for (struct tun *t = n->tun->list; t; t = t->next)
		if (t->kind == TUN_OPEN && t->req && t->progress &&
		    p2p_peerid_equal(&t->peer, peer))
			ctl_req_progress(t->req, stage, detail);
}

static void connect_done(struct p2pd_node *n, struct reach_waiter *w,
			 struct link *l, bool dialled, const char *code,
			 const char *msg)
{
	struct connect_req *c = (struct connect_req *)w;
	char id[P2P_ID_TEXT_LEN + 1];

	for (struct connect_req **pp = &n->tun->connects; *pp;
	     pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}

	if (!l) {
		ctl_reply_error(c->req, code, "%s", msg);
	} else {
		p2p_peerid_to_text(&c->peer, id);
		ctl_reply_ok(
		    c->req,
		    json_pack("{s:s, s:s, s:s, s:f, s:i}", "peer", id, "path",
			      link_kind(l) == LINK_RELAY ? "relay" : "direct",
			      "method",
			      !dialled			    ? "existing"
			      : link_kind(l) == LINK_RELAY  ? "relay"
			      : link_kind(l) == LINK_DIRECT ? "punch"
							    : "dial",
			      "ms", (double)(uv_hrtime() - c->t0_hr) / 1e6,
			      /* SPEC 9 (issue 11): the IP family the link
			       * runs over (a relayed one: to its relay). */
			      "family", (int)link_remote(l)->family));
	}
	free(c);
}

/*
 * The waiting connect requests are not listed anywhere else: the dial
 * they wait on always finishes (HELLO, failure, deadline or shutdown).
 */
static void tunnel_cmd_connect(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct connect_req *c;
	struct p2p_peerid id;

	if (node_arg_peer(req, args, n->names, &id) < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		ctl_reply_error(req, "internal", "out of memory");
		return;
	}
	c->req = req;
	c->peer = id;
	c->t0_hr = uv_hrtime();
	c->progress = json_is_true(json_object_get(args, "progress"));
	c->next = n->tun->connects;
	n->tun->connects = c;
	c->w.done = connect_done;
	reach_get(n, &id, &c->w);
}

/* ---- forwards ---- */

static void on_fwd_closed(uv_handle_t *h)
{
	struct fwd *f = h->data;
	struct p2pd_node *n = f->n;

	free(f);
	node_handle_closed(n);
}

static void fwd_close(struct p2pd_node *n, struct fwd *f)
{
	for (struct fwd **pp = &n->tun->fwds; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	f->closing = true;
	uv_close((uv_handle_t *)&f->tcp, on_fwd_closed);
}

void tun_fwds_close_all(struct p2pd_node *n)
{
	while (n->tun->fwds)
		fwd_close(n, n->tun->fwds);
}

static void on_refused_closed(uv_handle_t *h)
{
	free(h);
}

/* Accept and drop a connection we cannot serve. */
static void refuse_connection(uv_stream_t *s)
{
	uv_tcp_t *c = malloc(sizeof(*c));

	if (!c || uv_tcp_init(s->loop, c) < 0) {
		free(c);
		return;
	}
	uv_accept(s, (uv_stream_t *)c);
	uv_close((uv_handle_t *)c, on_refused_closed);
}

static void on_fwd_connection(uv_stream_t *s, int status)
{
	struct fwd *f = s->data;
	struct p2pd_node *n = f->n;
	struct tun *t;

	if (status < 0 || f->closing || n->stopping)
		return;
	t = tun_new(n, TUN_FWD);
	if (!t || uv_tcp_init(n->loop, &t->tcp) < 0) {
		if (t)
			tun_close(t, false);
		log_warnx("forward: too many tunnels, connection refused");
		refuse_connection(s);
		return;
	}
	node_handle_opened(n);
	t->tcp.data = t;
	t->h = (uv_stream_t *)&t->tcp;
	t->peer = f->peer;
	memcpy(t->service, f->service, sizeof(t->service));
	if (uv_accept(s, t->h) < 0) {
		tun_close(t, false);
		return;
	}
	uv_tcp_nodelay(&t->tcp, 1);
	t->w.done = tun_link_ready;
	reach_get(n, &t->peer, &t->w);
}

static json_t *listen_arg(struct ctl_req *req, json_t *args, struct p2p_addr *a)
{
	json_t *v = json_object_get(args, "listen");

	if (!json_is_string(v) ||
	    p2p_addr_parse_listen(a, json_string_value(v)) < 0) {
		ctl_reply_error(req, "bad_request",
				"listen: expected [ADDR:]PORT (IPv6 as "
				"[ADDR]:PORT)");
		return NULL;
	}
	return v;
}

static struct fwd *fwd_find(struct p2pd_node *n, const struct p2p_addr *a)
{
	for (struct fwd *f = n->tun->fwds; f; f = f->next)
		if (p2p_addr_equal(&f->listen, a))
			return f;
	return NULL;
}

static int fwd_listen(struct p2pd_node *n, struct fwd *f,
		      const struct p2p_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	int len = sizeof(ss), rc;

	if (node_addr_to_sockaddr(a, &ss, &slen) < 0)
		return -EINVAL;
	rc = uv_tcp_bind(&f->tcp, (struct sockaddr *)&ss,
			 a->family == 6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0) {
		tcpopt_before_listen(&f->tcp);
		rc = uv_listen((uv_stream_t *)&f->tcp, 128, on_fwd_connection);
	}
	if (rc == 0)
		rc = uv_tcp_getsockname(&f->tcp, (struct sockaddr *)&ss, &len);
	if (rc == 0)
		rc =
		    node_addr_from_sockaddr(&f->listen, (struct sockaddr *)&ss);
	return rc;
}

int tun_fwd_add(struct p2pd_node *n, const struct p2p_addr *a,
		const struct p2p_peerid *id, const char *service, bool runtime,
		char *err, size_t errlen)
{
	char text[P2P_ADDR_TEXT_MAX];
	struct fwd *f;
	size_t count = 0;
	int rc;

	p2p_addr_format(a, text, sizeof(text));
	if (p2p_peerid_equal(id, &n->ident.id)) {
		snprintf(err, errlen, "that is this daemon's own peer ID");
		return -ELOOP;
	}
	for (f = n->tun->fwds; f; f = f->next)
		count++;
	if (count >= TUN_MAX_FORWARDS) {
		snprintf(err, errlen, "already %d forwards", TUN_MAX_FORWARDS);
		return -ENOSPC;
	}
	if (a->port != 0 && fwd_find(n, a)) {
		snprintf(err, errlen, "already forwarding there");
		return -EEXIST;
	}
	f = calloc(1, sizeof(*f));
	if (!f || uv_tcp_init(n->loop, &f->tcp) < 0) {
		free(f);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	node_handle_opened(n);
	f->n = n;
	f->tcp.data = f;
	f->peer = *id;
	f->runtime = runtime;
	snprintf(f->service, sizeof(f->service), "%s", service);
	f->next = n->tun->fwds;
	n->tun->fwds = f;
	rc = fwd_listen(n, f, a);
	if (rc < 0) {
		fwd_close(n, f);
		snprintf(err, errlen, "cannot listen on %s: %s", text,
			 uv_strerror(rc));
		return rc;
	}
	p2p_addr_format(&f->listen, text, sizeof(text));
	p2p_peerid_to_text(id, err); /* err holds an ID's text at least */
	log_info("forward %s to service %s of %.12s...", text, service, err);
	snprintf(err, errlen, "%s", text);
	return 0;
}

static void tunnel_cmd_forward(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	char service[P2P_SERVICE_NAME_MAX + 1], msg[256];
	struct p2p_peerid id;
	struct p2p_addr a;
	int rc;

	if (!listen_arg(req, args, &a) ||
	    node_arg_peer(req, args, n->names, &id) < 0 ||
	    arg_service(req, args, service, sizeof(service)) < 0)
		return;
	rc = tun_fwd_add(n, &a, &id, service, true, msg, sizeof(msg));
	if (rc < 0) {
		ctl_reply_error(req,
				rc == -ELOOP	? "peer_unreachable"
				: rc == -ENOSPC ? "busy"
				: rc == -ENOMEM ? "internal"
						: "bad_request",
				"%s", msg);
		return;
	}
	tun_runtime_save(n);
	ctl_reply_ok(req, json_pack("{s:s}", "listen", msg));
}

static void tunnel_cmd_unforward(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	struct p2p_addr a;
	struct fwd *f;
	char text[P2P_ADDR_TEXT_MAX];
	bool runtime;

	if (!listen_arg(req, args, &a))
		return;
	f = fwd_find(n, &a);
	p2p_addr_format(&a, text, sizeof(text));
	if (!f) {
		ctl_reply_error(req, "bad_request", "no forward on %s", text);
		return;
	}
	/* Tunnels it accepted go on until they close. */
	runtime = f->runtime;
	fwd_close(n, f);
	if (runtime)
		tun_runtime_save(n);
	log_info("forward %s removed%s", text,
		 runtime ? "" : " (the config file's: back at the next start)");
	ctl_reply_ok(req, NULL);
}

static void tunnel_cmd_forwards(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *arr = json_array();
	char a[P2P_ADDR_TEXT_MAX], id[P2P_ID_TEXT_LEN + 1];

	for (struct fwd *f = n->tun->fwds; f; f = f->next) {
		p2p_addr_format(&f->listen, a, sizeof(a));
		p2p_peerid_to_text(&f->peer, id);
		json_t *o = json_pack("{s:s, s:s, s:s}", "listen", a, "peer",
				      id, "service", f->service);
		const char *name = names_of(n->names, &f->peer);
		if (name)
			json_object_set_new(o, "name", json_string(name));
		json_array_append_new(arr, o);
	}
	ctl_reply_ok(req, json_pack("{s:o}", "forwards", arr));
}

/* ---- tunnels ---- */

static const char *tun_state(const struct tun *t)
{
	if (t->closing || t->s.state == STREAM_DONE)
		return "closing";
	if (t->s.state == STREAM_OPEN)
		return "open";
	return t->link ? "opening" : "connecting";
}

/* What an open tunnel's sending side waits for, or NULL: its link's
 * queue to drain (a relayed link's: its circuit's credit too), or the
 * peer's window (the reader at the far end is behind). */
static const char *tun_waiting(const struct tun *t)
{
	if (t->closing || t->s.state != STREAM_OPEN || t->s.fin_sent)
		return NULL;
	if (t->counted_blocked)
		return "link";
	return t->s.send_credit == 0 ? "window" : NULL;
}

static json_t *tun_json(struct p2pd_node *n, const struct tun *t)
{
	static const char *const kinds[] = {
	    [LINK_OVERLAY] = "overlay",
	    [LINK_DIRECT] = "direct",
	    [LINK_RELAY] = "relay",
	};
	static const char *const via[] = {
	    [TUN_OPEN] = "open",
	    [TUN_FWD] = "forward",
	    [TUN_TARGET] = "service",
	};
	struct link *l = tun_link(t);
	char id[P2P_ID_TEXT_LEN + 1];
	const char *name = names_of(n->names, &t->peer);
	const char *waiting = tun_waiting(t);
	json_t *o;

	p2p_peerid_to_text(&t->peer, id);
	o = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s, s:s}", "peer",
		      id, "service", t->service, "dir",
		      t->kind == TUN_TARGET ? "in" : "out", "link",
		      l ? json_string(kinds[link_kind(l)]) : json_null(),
		      "bytes_in", (json_int_t)t->s.bytes_in, "bytes_out",
		      (json_int_t)t->s.bytes_out, "age_s",
		      (json_int_t)((uv_hrtime() - t->t0_hr) / 1000000000u),
		      "state", tun_state(t), "by", via[t->kind]);
	if (name)
		json_object_set_new(o, "name", json_string(name));
	if (waiting)
		json_object_set_new(o, "waiting", json_string(waiting));
	/* Our receive window (auto-tuned), once the stream has one. */
	if (t->s.window)
		json_object_set_new(o, "window",
				    json_integer((json_int_t)t->s.window));
	return o;
}

static void tunnel_cmd_tunnels(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	json_t *arr = json_array();

	for (struct tun *t = n->tun->list; t; t = t->next)
		json_array_append_new(arr, tun_json(n, t));
	ctl_reply_ok(req, json_pack("{s:o}", "tunnels", arr));
}

size_t tunnel_count(struct p2pd_node *n)
{
	return n->tun->count;
}

size_t tunnel_blocked(struct p2pd_node *n)
{
	return n->tun->blocked;
}

void tunnel_mem(struct p2pd_node *n, struct tunnel_mem *m)
{
	m->buffered = m->windows = m->base_small = 0;
	m->grown = n->tun->grown.used;
	m->base = n->tun->base.used;
	for (const struct tun *t = n->tun->list; t; t = t->next) {
		m->buffered += bufq_len(&t->wq);
		if (t->s.state == STREAM_OPEN)
			m->windows += t->s.window;
		if (t->kind == TUN_TARGET && t->s.base < STREAM_WINDOW)
			m->base_small++;
	}
}

const struct ctl_command tunnel_commands[] = {
    {"open", tunnel_cmd_open},	       {"connect", tunnel_cmd_connect},
    {"forward", tunnel_cmd_forward},   {"unforward", tunnel_cmd_unforward},
    {"forwards", tunnel_cmd_forwards}, {"tunnels", tunnel_cmd_tunnels},
};
const size_t tunnel_ncommands =
    sizeof(tunnel_commands) / sizeof(tunnel_commands[0]);
