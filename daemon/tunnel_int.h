/*
 * Internals shared by tunnel.c, tunnel_link.c and tunnel_cmd.c.
 */
#ifndef P2PD_TUNNEL_INT_H
#define P2PD_TUNNEL_INT_H

#include "node_int.h"
#include "tunnel.h"

struct tun_waiter;

/* A host-name lookup for a service target; outlives its tunnel if need
 * be (libuv calls back even when cancelled). */
struct tun_resolve {
	uv_getaddrinfo_t req;
	struct tun *t; /* NULL once the tunnel is gone */
};

/*
 * Called once: l is an up link to the peer (code NULL), or l is NULL and
 * code/msg say why there is none. dialled: the link was made for this.
 */
typedef void (*tun_link_fn)(struct p2pd_node *n, struct tun_waiter *w,
			    struct link *l, bool dialled, const char *code,
			    const char *msg);

struct tun_waiter {
	struct tun_waiter *next;
	struct tun_dial *d; /* NULL when not waiting */
	tun_link_fn done;
};

enum dial_state {
	DIAL_LOOKUP,  /* overlay lookup of the peer's address */
	DIAL_CONNECT, /* link dialled, waiting for its HELLO */
	DIAL_PUNCH,   /* hole punching (punch.c), waiting for its HELLO */
	DIAL_RELAY,   /* a relayed link (relay.c), waiting for its HELLO */
};

/* Getting a link to one peer; every waiter for that peer shares it. */
struct tun_dial {
	struct tun_dial *next;
	struct p2p_peerid peer;
	enum dial_state state;
	uint64_t lookup_id;
	struct link *link;
	uint64_t deadline;
	struct tun_waiter *waiters;
	char why[200]; /* DIAL_RELAY: why there is no direct link */
	unsigned ntried;
	struct p2p_peerid tried[RELAY_TRIES]; /* relays asked */
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
	struct link *link; /* NULL once the link is gone */
	struct p2p_peerid peer;
	char service[P2P_SERVICE_NAME_MAX + 1];
	struct ctl_req *req; /* TUN_OPEN until ACCEPT/RESET */
	struct tun_waiter w; /* waiting for a link */
	uv_stream_t *h;	     /* the local socket, NULL until there is one */
	bool h_malloced;     /* the control pipe: freed in the close cb */
	bool reading;
	bool closing;
	bool counted_blocked;	     /* counted in tunnels.blocked */
	uv_tcp_t tcp;		     /* TUN_FWD, TUN_TARGET */
	uv_connect_t conn;	     /* TUN_TARGET */
	struct tun_resolve *resolve; /* TUN_TARGET: host name lookup */
	uv_shutdown_t shut;
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
/* The stream is open both ways (rest: bytes to send first). */
void tun_opened(struct tun *t, uint32_t window, const char *rest,
		size_t restlen);

/* tunnel_target.c: STREAM_OPEN from the peer of l. */
void tun_on_open_msg(struct p2pd_node *n, struct link *l,
		     const struct p2p_msg *m);

/* tunnel_link.c */
/* Start getting a link to peer for w; w->done may run before this
 * returns. */
void tun_link_get(struct p2pd_node *n, const struct p2p_peerid *peer,
		  struct tun_waiter *w);
/* Stop waiting (w->done is not called). */
void tun_link_cancel(struct p2pd_node *n, struct tun_waiter *w);
/* A link went away: dials waiting for its HELLO fail (or use another). */
void tun_dials_link_gone(struct p2pd_node *n, struct link *l, const char *why);
void tun_dials_expire(struct p2pd_node *n, uint64_t now);
void tun_dials_fail_all(struct p2pd_node *n, const char *code, const char *msg);
/* punch.c gave up on peer: its dial fails with msg. */
void tun_dials_punch_failed(struct p2pd_node *n, const struct p2p_peerid *peer,
			    const char *msg);

/* tunnel_cmd.c */
void tun_fwds_close_all(struct p2pd_node *n);

#endif
