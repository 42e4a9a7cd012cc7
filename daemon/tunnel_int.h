/*
 * Internals shared by tunnel.c, tunnel_target.c and tunnel_cmd.c.
 */
#ifndef P2PD_TUNNEL_INT_H
#define P2PD_TUNNEL_INT_H

#include "bufq.h"
#include "reach.h"
#include "tunnel.h"

struct tun;
struct fwd;
struct connect_req;

/* Records of one link read a tunnel writes to its local socket in one
 * writev (a 256 KiB read chunk holds 4 full records; more small ones go
 * in more writes). 16 bytes each in every tunnel. */
#define TUN_PEND_MAX 8

struct tunnels {
	struct tun *list; /* every tunnel not yet closed */
	size_t count;
	struct fwd *fwds;
	struct connect_req *connects; /* connect requests waiting for reach */
	uint32_t next_id;
	unsigned blocked;     /* tunnels waiting for a link's queue to drain */
	struct tun *pend;     /* tunnels with npend > 0 */
	uint64_t refused_log; /* rate limit of refusal log lines */
	uint64_t peer_log[TUN_PEER_LOG_SLOTS]; /* by hash of the peer ID */
	struct stream_budget grown; /* windows' growth, STREAM_BUDGET_DAEMON */
	struct stream_budget base;  /* TUN_TARGET base windows, ..._BASE */
	uint8_t rbuf[STREAM_CHUNK];
};

/* A host-name lookup for a service target; outlives its tunnel if need
 * be (libuv calls back even when cancelled). */
struct tun_resolve {
	uv_getaddrinfo_t req;
	struct tun *t; /* NULL once the tunnel is gone */
};

enum tun_kind {
	TUN_OPEN,   /* a control client's "open": its socket is the stream */
	TUN_FWD,    /* a connection accepted by a forward */
	TUN_TARGET, /* peer opened it: our connection to the service */
};

struct tun {
	struct tun *next;
	struct p2pd_node *n;
	enum tun_kind kind;
	struct stream s;
	uint32_t link; /* its link's ID, 0 once the link is gone */
	struct p2p_peerid peer;
	char service[P2P_SERVICE_NAME_MAX + 1];
	struct ctl_req *req;   /* TUN_OPEN until ACCEPT/RESET */
	struct reach_waiter w; /* waiting for a link */
	uv_stream_t *h;	       /* the local socket, NULL until there is one */
	bool h_malloced;       /* the control pipe: freed in the close cb */
	bool reading;
	bool closing;
	bool counted_blocked;	     /* counted in tunnels.blocked */
	bool progress;		     /* TUN_OPEN: req asked for progress */
	uv_tcp_t tcp;		     /* TUN_FWD, TUN_TARGET */
	uv_connect_t conn;	     /* TUN_TARGET */
	struct tun_resolve *resolve; /* TUN_TARGET: host name lookup */
	uv_shutdown_t shut;
	/* Bytes for the local socket it did not take at once (bufq.h),
	 * one uv_write at a time. */
	struct bufq wq;
	uv_write_t wreq;
	/* STREAM_DATA still in its link's read chunk, for one writev when
	 * the read is done (tunnel.c, local_write); on tunnels.pend. */
	uv_buf_t pend[TUN_PEND_MAX];
	unsigned npend;
	struct tun *pend_next;
	bool reserved;	   /* on_alloc set a record aside on the link */
	uint64_t deadline; /* OPENING: give up then */
	uint32_t peer_window;
	uint64_t t0_hr;
};

/* A local listener whose connections become tunnels. */
struct fwd {
	struct fwd *next;
	struct p2pd_node *n;
	uv_tcp_t tcp;
	struct p2p_addr listen;
	struct p2p_peerid peer;
	char service[P2P_SERVICE_NAME_MAX + 1];
	bool closing;
	bool runtime; /* made by the forward command: in runtime.json */
};

/* tunnel.c */
struct tun *tun_new(struct p2pd_node *n, enum tun_kind kind);
void tun_close(struct tun *t, bool abort);
void tun_free_unlisted(struct tun *t);
void tun_start_open(struct p2pd_node *n, struct tun *t, struct link *l);
void tun_fail_open(struct tun *t, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tun_on_handle_closed(uv_handle_t *h);
void tun_send_msg(struct tun *t, struct p2p_msg *m);
/* STREAM_RESET for stream id on l (NULL: nothing to do). */
void tun_send_reset_id(struct link *l, uint32_t id, uint8_t code,
		       const char *reason);
size_t tun_link_streams(struct p2pd_node *n, const struct link *l);
struct tun *tun_find(struct p2pd_node *n, const struct link *l, uint32_t id);
/* The tunnel's link while it is usable, else NULL. */
struct link *tun_link(const struct tun *t);
/* The stream is open both ways (rest: bytes to send first). */
void tun_opened(struct tun *t, uint32_t window, const char *rest,
		size_t restlen);

/* tunnel_target.c: STREAM_OPEN from the peer of l. */
void tun_on_open_msg(struct p2pd_node *n, struct link *l,
		     const struct p2p_msg *m);

/* tunnel_cmd.c */
void tun_fwds_close_all(struct p2pd_node *n);
/*
 * A forward listener: 0 with the actual address's text in err, or -errno
 * with a message in err: -ELOOP (our own ID), -ENOSPC (too many), -EEXIST
 * (already there), -ENOMEM, or libuv's bind/listen error.
 */
int tun_fwd_add(struct p2pd_node *n, const struct p2p_addr *a,
		const struct p2p_peerid *id, const char *service, bool runtime,
		char *err, size_t errlen);

#endif
