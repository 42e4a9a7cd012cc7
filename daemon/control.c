/*
 * Control socket server. Each client has a bounded input buffer and a
 * bounded output queue; one request per client is in flight at a time, so
 * replies come back in request order and the bytes after an "open" line are
 * never mistaken for requests. While a request waits for an asynchronous
 * reply we stop reading that client (the kernel buffers, the client blocks),
 * which is also what hands an "open" stream over intact.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "control_int.h"
#include "log.h"

/* Room for one line of CTL_LINE_MAX bytes plus its "\r\n". */
#define CTL_IN_CAP (CTL_LINE_MAX + 2)
#define CTL_BACKLOG 64
/*
 * A newcomer takes an idle client's slot only once that client has had
 * this long to send its first line: a burst of clients (a script running
 * p2pctl in parallel) must not push each other out before they speak.
 */
#define CTL_EVICT_GRACE_MS 1000
/* The idle sweep runs every timeout / 4, within these bounds. */
#define CTL_SWEEP_MIN_MS 10
#define CTL_SWEEP_MAX_MS 1000
/* One "refused" line per interval: any local user can trigger it. */
#define CTL_REFUSED_LOG_MS 10000

static void client_process(struct ctl_client *c);

static void client_read_stop(struct ctl_client *c)
{
	uv_read_stop((uv_stream_t *)c->pipe);
	c->reading = false;
}

static void srv_unref(struct ctl_server *s)
{
	if (--s->refs == 0)
		free(s);
}

/* A client's memory goes once its handle is closed and no write is out. */
static void client_maybe_free(struct ctl_client *c)
{
	if (c->handle_gone && c->nwrites == 0 && !c->in_process) {
		free(c->in);
		free(c);
	}
}

static void client_orphan_pending(struct ctl_client *c)
{
	if (c->pending != NULL) {
		c->pending->client = NULL;
		c->pending = NULL;
	}
}

static void client_unlink(struct ctl_client *c)
{
	struct ctl_server *s = c->srv;

	if (c->srv == NULL)
		return;
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	if (c->counted)
		s->nclients--;
	c->srv = NULL;
	srv_unref(s);
}

static void on_client_closed(uv_handle_t *h)
{
	struct ctl_client *c = h->data;

	free(h);
	c->handle_gone = true;
	client_maybe_free(c);
}

void ctl_client_close(struct ctl_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	client_orphan_pending(c);
	client_unlink(c);
	uv_close((uv_handle_t *)c->pipe, on_client_closed);
}

uv_stream_t *ctl_client_detach(struct ctl_client *c)
{
	uv_stream_t *st = (uv_stream_t *)c->pipe;

	uv_read_stop(st);
	st->data = NULL;
	c->detached = true;
	c->handle_gone = true; /* the new owner closes and frees it */
	c->pipe = NULL;
	client_unlink(c);
	client_maybe_free(c);
	return st;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct ctl_client *c = req->data;

	free(req);
	c->nwrites--;
	if (!c->closing)
		ctl_client_close(c);
	else
		client_maybe_free(c);
}

/* Close once every queued reply has been written. */
void ctl_client_close_after_writes(struct ctl_client *c)
{
	uv_shutdown_t *req;

	if (c->closing || c->shutting_down)
		return;
	c->shutting_down = true;
	/* The sweep closes it for good if the writes never drain. */
	if (c->srv != NULL)
		c->idle_since = uv_now(c->srv->loop);
	client_read_stop(c);
	req = malloc(sizeof(*req));
	if (req == NULL) {
		ctl_client_close(c);
		return;
	}
	req->data = c;
	if (uv_shutdown(req, (uv_stream_t *)c->pipe, on_shutdown) < 0) {
		free(req);
		ctl_client_close(c);
		return;
	}
	c->nwrites++;
}

struct ctl_write {
	uv_write_t req;
	struct ctl_client *c;
	size_t len;
	char data[];
};

static void on_write(uv_write_t *req, int status)
{
	struct ctl_write *w = (struct ctl_write *)req;
	struct ctl_client *c = w->c;

	c->out_bytes -= w->len;
	c->nwrites--;
	free(w);
	if (status < 0 && !c->closing && !c->detached)
		ctl_client_close(c);
	client_maybe_free(c);
}

/* Queue one reply line; a client that lets CTL_OUT_MAX pile up is dropped. */
void ctl_client_send(struct ctl_client *c, json_t *obj)
{
	/* 6 significant digits: rtt_ms to the microsecond, not 17 digits */
	size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER |
		       JSON_REAL_PRECISION(6);
	size_t len = json_dumpb(obj, NULL, 0, flags);
	struct ctl_write *w;
	uv_buf_t buf;

	if (c->closing || c->shutting_down)
		return;
	if (len == 0 || c->out_bytes + len + 1 > CTL_OUT_MAX) {
		ctl_client_close(c);
		return;
	}
	w = malloc(sizeof(*w) + len + 1);
	if (w == NULL) {
		ctl_client_close(c);
		return;
	}
	json_dumpb(obj, w->data, len, flags);
	w->data[len] = '\n';
	w->len = len + 1;
	w->c = c;
	buf = uv_buf_init(w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)c->pipe, &buf, 1, on_write) < 0) {
		free(w);
		ctl_client_close(c);
		return;
	}
	c->out_bytes += w->len;
	c->nwrites++;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct ctl_client *c = h->data;

	/* A full buffer is caught as "line too long" before we read again. */
	*buf = uv_buf_init(c->in + c->inlen, (unsigned)(CTL_IN_CAP - c->inlen));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct ctl_client *c = st->data;

	if (n == UV_EOF) {
		c->eof = true;
		client_read_stop(c);
		client_process(c);
		return;
	}
	if (n < 0) {
		ctl_client_close(c);
		return;
	}
	c->inlen += (size_t)n;
	client_process(c);
}

static void client_reply_too_long(struct ctl_client *c)
{
	struct ctl_req *req = ctl_req_new(c, NULL);

	c->inlen = c->inoff = 0; /* nothing more is read from this client */
	if (req == NULL) {
		ctl_client_close(c);
		return;
	}
	c->pending = req;
	ctl_reply_error(req, "bad_request", "line too long (max %d bytes)",
			CTL_LINE_MAX);
	ctl_client_close_after_writes(c);
}

/* Take one complete line off the input; false when there is none. */
static bool client_next_line(struct ctl_client *c, char **line, size_t *len)
{
	char *nl = memchr(c->in + c->inoff, '\n', c->inlen - c->inoff);

	if (nl == NULL) {
		/* At EOF an unterminated last line still counts. */
		if (!c->eof || c->inoff == c->inlen)
			return false;
		nl = c->in + c->inlen;
	}
	*line = c->in + c->inoff;
	*len = (size_t)(nl - *line);
	c->inoff += *len + (nl < c->in + c->inlen ? 1 : 0);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return true;
}

/* Move the unread tail to the front so the next read has room. */
static void client_compact(struct ctl_client *c)
{
	if (c->inoff == 0)
		return;
	memmove(c->in, c->in + c->inoff, c->inlen - c->inoff);
	c->inlen -= c->inoff;
	c->inoff = 0;
}

static bool client_stopped(const struct ctl_client *c)
{
	return c->closing || c->shutting_down || c->detached;
}

static void client_process(struct ctl_client *c)
{
	char *line;
	size_t len;

	if (c->in_process)
		return; /* a synchronous reply inside a handler */
	c->in_process = true;
	while (!client_stopped(c) && c->pending == NULL) {
		if (!client_next_line(c, &line, &len)) {
			client_compact(c);
			if (c->inlen > CTL_LINE_MAX)
				client_reply_too_long(c);
			break;
		}
		if (len > CTL_LINE_MAX) {
			client_reply_too_long(c);
			break;
		}
		ctl_dispatch_line(c, line, len);
	}
	c->in_process = false;
	if (c->detached) {
		client_maybe_free(c);
		return;
	}
	if (client_stopped(c))
		return;
	client_compact(c);
	if (c->pending != NULL) {
		client_read_stop(c);
	} else if (c->eof) {
		ctl_client_close_after_writes(c);
	} else if (!c->reading) {
		/* uv_read_start refuses (EALREADY) when already reading. */
		if (uv_read_start((uv_stream_t *)c->pipe, on_alloc, on_read) <
		    0)
			ctl_client_close(c);
		else
			c->reading = true;
	}
}

/* Called when a request was answered: go on with the next line. */
void ctl_client_request_done(struct ctl_client *c)
{
	c->pending = NULL;
	if (c->srv != NULL)
		c->idle_since = uv_now(c->srv->loop);
	client_process(c);
}

/* One error line the client did not ask for, then close. */
static void client_say_and_close(struct ctl_client *c, const char *code,
				 const char *msg)
{
	json_t *o;

	/* A client that has not read what we sent will not read this. */
	if (c->shutting_down || c->out_bytes > 0) {
		ctl_client_close(c);
		return;
	}
	o = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "message",
		      msg);
	if (o != NULL)
		ctl_client_send(c, o);
	json_decref(o);
	ctl_client_close_after_writes(c);
}

/* The daemon owes it nothing: no request is being answered. */
static bool client_idle(const struct ctl_client *c)
{
	return !c->closing && !c->detached && !c->in_process &&
	       c->pending == NULL;
}

static void on_sweep(uv_timer_t *t)
{
	struct ctl_server *s = t->data;
	uint64_t now = uv_now(s->loop);
	struct ctl_client *c, *next;

	for (c = s->clients; c != NULL; c = next) {
		next = c->next; /* closing c unlinks it */
		if (client_idle(c) && now - c->idle_since >= s->idle_timeout_ms)
			client_say_and_close(c, "timeout",
					     "idle too long: closing");
	}
}

/*
 * Every slot is taken: free the one of the client idle the longest, if
 * one has been idle for CTL_EVICT_GRACE_MS. True when a slot was freed.
 */
static bool evict_idlest(struct ctl_server *s)
{
	uint64_t now = uv_now(s->loop);
	struct ctl_client *best = NULL;

	for (struct ctl_client *c = s->clients; c != NULL; c = c->next)
		if (c->counted && client_idle(c) &&
		    (best == NULL || c->idle_since < best->idle_since))
			best = c;
	if (best == NULL || now - best->idle_since < CTL_EVICT_GRACE_MS)
		return false;
	/* Its slot is free now, not once its last line has drained. */
	best->counted = false;
	s->nclients--;
	client_say_and_close(
	    best, "timeout",
	    "idle while every control slot was taken: closing");
	return true;
}

static void reject_busy(struct ctl_client *c)
{
	client_say_and_close(c, "busy", "too many control clients");
}

/* SO_PEERCRED: false (and the client told, or closed) when refused. */
static bool client_admit(struct ctl_server *s, struct ctl_client *c)
{
	char msg[160];
	uid_t uid = 0;
	uv_os_fd_t fd;
	int r;

	r = uv_fileno((uv_handle_t *)c->pipe, &fd);
	if (r == 0)
		r = ctl_peer_allowed(fd, s->uid, s->gid, &uid);
	if (r < 0) {
		log_warnx("control client: cannot tell who it is: %s",
			  strerror(-r));
		ctl_client_close(c);
		return false;
	}
	if (r > 0)
		return true;
	if (log_ratelimit(&s->refused_logged, uv_now(s->loop),
			  CTL_REFUSED_LOG_MS))
		log_warnx("control client of uid %u refused: not root, uid %u "
			  "or in gid %u",
			  (unsigned int)uid, (unsigned int)s->uid,
			  (unsigned int)s->gid);
	snprintf(msg, sizeof(msg),
		 "uid %u may not use this control socket: only root, uid %u "
		 "and members of gid %u may",
		 (unsigned int)uid, (unsigned int)s->uid, (unsigned int)s->gid);
	client_say_and_close(c, "access_denied", msg);
	return false;
}

static void on_connection(uv_stream_t *ls, int status)
{
	struct ctl_server *s = ls->data;
	struct ctl_client *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c != NULL)
		c->pipe = malloc(sizeof(*c->pipe));
	if (c != NULL && c->pipe != NULL)
		c->in = malloc(CTL_IN_CAP);
	if (c == NULL || c->pipe == NULL || c->in == NULL ||
	    uv_pipe_init(s->loop, c->pipe, 0) < 0) {
		if (c != NULL) {
			free(c->pipe);
			free(c->in);
		}
		free(c);
		return; /* the connection waits in the backlog */
	}
	c->pipe->data = c;
	c->srv = s;
	s->refs++;
	c->next = s->clients;
	if (c->next != NULL)
		c->next->pprev = &c->next;
	c->pprev = &s->clients;
	s->clients = c;
	if (uv_accept(ls, (uv_stream_t *)c->pipe) < 0) {
		ctl_client_close(c);
		return;
	}
	c->idle_since = uv_now(s->loop);
	/* Refused users never take a slot nor push anyone out. */
	if (!client_admit(s, c))
		return;
	if (s->nclients >= s->max_clients && !evict_idlest(s)) {
		reject_busy(c);
		return;
	}
	c->counted = true;
	s->nclients++;
	client_process(c);
}

static void on_listener_closed(uv_handle_t *h)
{
	srv_unref(h->data);
}

static void on_sweep_closed(uv_handle_t *h)
{
	srv_unref(h->data);
}

void ctl_server_close(struct ctl_server *s)
{
	if (s == NULL || s->closing)
		return;
	s->closing = true;
	while (s->clients != NULL)
		ctl_client_close(s->clients);
	unlink(s->path);
	uv_close((uv_handle_t *)&s->sweep, on_sweep_closed);
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

/*
 * Bind with a umask so the socket is never wider than 0660, then give it
 * its mode and group.
 */
static int ctl_bind_listen(struct ctl_server *s, const char *group, char *err,
			   size_t errlen)
{
	mode_t old = umask(0117);
	int r = uv_pipe_bind(&s->listener, s->path);

	umask(old);
	if (r < 0) {
		snprintf(err, errlen, "cannot bind control socket %s: %s",
			 s->path, uv_strerror(r));
		return r;
	}
	r = ctl_socket_perms(s->path, group, &s->gid, err, errlen);
	if (r < 0) {
		unlink(s->path);
		return r;
	}
	r = uv_listen((uv_stream_t *)&s->listener, CTL_BACKLOG, on_connection);
	if (r < 0) {
		snprintf(err, errlen, "cannot listen on control socket %s: %s",
			 s->path, uv_strerror(r));
		unlink(s->path);
	}
	return r;
}

static void start_sweep(struct ctl_server *s)
{
	uint64_t every = s->idle_timeout_ms / 4;

	if (every < CTL_SWEEP_MIN_MS)
		every = CTL_SWEEP_MIN_MS;
	if (every > CTL_SWEEP_MAX_MS)
		every = CTL_SWEEP_MAX_MS;
	uv_timer_init(s->loop, &s->sweep); /* cannot fail */
	s->sweep.data = s;
	s->refs++;
	uv_timer_start(&s->sweep, on_sweep, every, every);
}

int ctl_server_start(uv_loop_t *loop, const char *path,
		     const struct ctl_command *cmds, size_t ncmds, void *ctx,
		     const struct ctl_options *opt, struct ctl_server **out,
		     char *err, size_t errlen)
{
	struct ctl_server *s;
	int r;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->loop = loop;
	s->cmds = cmds;
	s->ncmds = ncmds;
	s->ctx = ctx;
	s->max_clients = opt->max_clients;
	s->idle_timeout_ms =
	    opt->idle_timeout_ms ? opt->idle_timeout_ms : CTL_IDLE_TIMEOUT_MS;
	s->uid = geteuid();
	s->refs = 1; /* the listener */
	r = ctl_prepare_path(path, err, errlen);
	if (r < 0) {
		free(s);
		return r;
	}
	strcpy(s->path, path); /* length checked above */
	r = uv_pipe_init(loop, &s->listener, 0);
	if (r < 0) {
		snprintf(err, errlen, "control socket: %s", uv_strerror(r));
		free(s);
		return r;
	}
	s->listener.data = s;
	r = ctl_bind_listen(s,
			    opt->group != NULL ? opt->group : CTL_GROUP_DEFAULT,
			    err, errlen);
	if (r < 0) {
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return r;
	}
	start_sweep(s);
	*out = s;
	return 0;
}
