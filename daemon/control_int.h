/*
 * Internal to the control server (control.c, control_req.c,
 * control_listen.c): the server, client and request objects.
 */
#ifndef P2PD_CONTROL_INT_H
#define P2PD_CONTROL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "control.h"

struct ctl_client;

struct ctl_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	uv_timer_t sweep; /* closes idle clients */
	const struct ctl_command *cmds;
	size_t ncmds;
	void *ctx;
	unsigned max_clients;
	unsigned idle_timeout_ms;
	unsigned nclients; /* counted (not busy-rejected) clients */
	unsigned refs;	   /* listener, sweep timer, clients still linked */
	uid_t uid;	   /* ours: always served, as is root */
	gid_t gid;	   /* the socket file's group: its members are served */
	uint64_t refused_logged; /* log_ratelimit state */
	bool closing;
	struct ctl_client *clients; /* every open client */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct ctl_client {
	struct ctl_server *srv; /* NULL once closed or handed over */
	struct ctl_client *next, **pprev;
	uv_pipe_t *pipe;	 /* malloc'd: "open" hands it to the node */
	char *in;		 /* CTL_LINE_MAX + 2 bytes */
	size_t inlen, inoff;	 /* bytes held; start of the unread part */
	size_t out_bytes;	 /* queued reply bytes */
	unsigned nwrites;	 /* write/shutdown requests in flight */
	struct ctl_req *pending; /* the request awaiting its reply */
	uint64_t idle_since;	 /* uv_now when it last had a request done */
	bool counted;		 /* counts against max_clients */
	bool in_process;
	bool reading; /* uv_read_start in effect */
	bool eof;
	bool shutting_down; /* closing after the queued replies */
	bool closing;	    /* uv_close called */
	bool handle_gone;   /* pipe closed or no longer ours */
	bool detached;	    /* pipe handed over by ctl_req_take_stream */
};

struct ctl_req {
	struct ctl_client *client; /* NULL when orphaned */
	json_t *tag;		   /* echoed; NULL when absent */
};

/* control.c */
void ctl_client_send(struct ctl_client *c, json_t *obj);
void ctl_client_close(struct ctl_client *c);
void ctl_client_close_after_writes(struct ctl_client *c);
void ctl_client_request_done(struct ctl_client *c);
/* Forget the client and return its pipe, which the caller now owns. */
uv_stream_t *ctl_client_detach(struct ctl_client *c);

/* control_req.c */
struct ctl_req *ctl_req_new(struct ctl_client *c, json_t *tag);
void ctl_dispatch_line(struct ctl_client *c, const char *line, size_t len);

/*
 * control_listen.c: make path ready to bind: create its directory (0755),
 * replace a stale socket, refuse a live one (-EADDRINUSE) or a file that
 * is not a socket (-EEXIST). 0 or -errno with a message in err.
 */
int ctl_prepare_path(const char *path, char *err, size_t errlen);

/*
 * control_listen.c: after bind, give the socket file mode 0660 and, when
 * group names an existing group (and not ""), that group; *gid is the
 * file's group afterwards. A group we cannot use is a warning, not an
 * error: the socket is then the daemon's alone (and root's).
 */
int ctl_socket_perms(const char *path, const char *group, gid_t *gid, char *err,
		     size_t errlen);

/*
 * control_listen.c: whether the peer on fd may use the socket (root, our
 * uid, or a member of gid); logs its uid and pid at debug. 1 yes, 0 no
 * (*uid says who), -errno when the kernel cannot tell.
 */
int ctl_peer_allowed(int fd, uid_t self, gid_t gid, uid_t *uid);

#endif
