/*
 * Control socket server (SPEC section 5): a Unix stream socket, one JSON
 * object per line each way. Requests are dispatched by "cmd" to a table of
 * handlers; every request gets exactly one reply, possibly later (lookups,
 * pings). "tag" is echoed on the reply. Lines over 64 KiB close the client.
 */
#ifndef P2PD_CONTROL_H
#define P2PD_CONTROL_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#define CTL_LINE_MAX (64 * 1024)
#define CTL_OUT_MAX                                                            \
	(1024 * 1024) /* queued reply bytes before we drop a client */
/*
 * A client with no request in progress that sends no complete line for
 * this long is closed (bytes of an unfinished line do not count), so idle
 * connections cannot hold the max_clients slots. A request the daemon is
 * still answering (a lookup, a connect) does not count as idle, and an
 * "open" stream (p2pctl pipe) is no longer a control client at all.
 */
#define CTL_IDLE_TIMEOUT_MS 10000
/* Group whose members may use the socket (SPEC 5, issue 12 item 3). */
#define CTL_GROUP_DEFAULT "p2pd"
#define CTL_GROUP_NAME_MAX 64

struct ctl_server;
struct ctl_req;

/* args is the whole request object (borrowed: incref to keep it). */
typedef void (*ctl_handler_fn)(void *ctx, struct ctl_req *req, json_t *args);

struct ctl_command {
	const char *name;
	ctl_handler_fn fn;
};

struct ctl_options {
	unsigned max_clients;	  /* control connections at once */
	unsigned idle_timeout_ms; /* 0: CTL_IDLE_TIMEOUT_MS */
	/*
	 * Group given the socket when it exists: NULL means
	 * CTL_GROUP_DEFAULT, "" none (the daemon's own group).
	 */
	const char *group;
};

/*
 * Listen on path (mode 0660, group opt->group when it exists). A stale
 * socket file (nobody accepting) is replaced; a live one gives
 * -EADDRINUSE and a message in err. Clients are checked with SO_PEERCRED:
 * root, the daemon's uid and members of the socket's group are served,
 * anyone else gets access_denied. When every slot is taken, a newcomer
 * takes the slot of the client idle the longest, if any is idle.
 */
int ctl_server_start(uv_loop_t *loop, const char *path,
		     const struct ctl_command *cmds, size_t ncmds, void *ctx,
		     const struct ctl_options *opt, struct ctl_server **out,
		     char *err, size_t errlen);
/* Close the listener and every client; unlinks the socket file. */
void ctl_server_close(struct ctl_server *s);

/* Reply {"ok": true, ...fields}. fields is stolen (may be NULL). */
void ctl_reply_ok(struct ctl_req *req, json_t *fields);
/* Reply {"ok": false, "error": code, "message": ...}. */
void ctl_reply_error(struct ctl_req *req, const char *code, const char *fmt,
		     ...) __attribute__((format(printf, 3, 4)));

/*
 * A line before the reply, for a request that asked with "progress": true
 * (SPEC section 9): {"progress": stage, "detail": detail} with the tag.
 * Dropped when the client has gone.
 */
void ctl_req_progress(struct ctl_req *req, const char *stage,
		      const char *detail);

/* True when the client has gone; the reply will be dropped. */
int ctl_req_orphaned(const struct ctl_req *req);

/*
 * For "open": send the ok line, then hand the client's stream to the
 * caller, who owns it from then on (the server forgets the client). Bytes
 * the client sent after the request line are returned in *rest (malloc'd,
 * caller frees) so none are lost. NULL if the client has gone.
 * The stream is a malloc'd uv_pipe_t with reading stopped and data NULL:
 * close it with uv_close() and free() it in the close callback.
 */
uv_stream_t *ctl_req_take_stream(struct ctl_req *req, json_t *fields,
				 char **rest, size_t *restlen);

#endif
