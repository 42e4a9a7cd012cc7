/*
 * One client-side link, driven by poll(): TCP connect, the initiator's
 * three-frame handshake, then records. We send HELLO once established and
 * answer what a quiet peer must answer (PING with PONG, FIND_NODE with an
 * empty NODES) so the daemon keeps us as a live link.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "overlay/overlay.h"
#include "pl.h"
#include "proto/identity.h"

long long pl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int pl_sockaddr(const char *text, struct p2p_addr *a,
		struct sockaddr_storage *ss, socklen_t *sslen)
{
	memset(ss, 0, sizeof(*ss));
	if (p2p_addr_parse(a, text, false) < 0 || a->port == 0)
		return -EINVAL;
	if (a->family == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		memcpy(&s4->sin_addr, a->ip, 4);
		*sslen = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		memcpy(&s6->sin6_addr, a->ip, 16);
		*sslen = sizeof(*s6);
	}
	return 0;
}

struct p2p_addr pl_from;
bool pl_claim_subnets;
bool pl_spread;
static uint32_t spread_next;

/* harden9: --from, the source address of every connect. */
static int bind_from(int fd)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};

	if (pl_spread) {
		/* 127.64.0.0/10, the /24 changing fastest: per-subnet
		 * limits do not bind either. */
		uint32_t k = spread_next++;
		s4.sin_addr.s_addr =
		    htonl(0x7f000000u | (64u + ((k >> 16) & 0x3f)) << 16 |
			  (k & 0xff) << 8 | (1u + ((k >> 8) & 0xff) % 254));
		return bind(fd, (struct sockaddr *)&s4, sizeof(s4));
	}
	if (pl_from.family == 4) {
		memcpy(&s4.sin_addr, pl_from.ip, 4);
		return bind(fd, (struct sockaddr *)&s4, sizeof(s4));
	}
	if (pl_from.family == 6) {
		memcpy(&s6.sin6_addr, pl_from.ip, 16);
		return bind(fd, (struct sockaddr *)&s6, sizeof(s6));
	}
	return 0;
}

int pl_tcp_connect(const struct sockaddr_storage *ss, socklen_t sslen)
{
	int one = 1;
	int fd = socket(ss->ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind_from(fd) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (connect(fd, (const struct sockaddr *)ss, sslen) < 0 &&
	    errno != EINPROGRESS) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void die(struct pl_link *l, int err)
{
	if (l->state != PL_DEAD && l->err == 0)
		l->err = err;
	l->state = PL_DEAD;
}

static void queue(struct pl_link *l, const uint8_t *p, size_t len)
{
	if (l->outlen + len > PL_OUT_MAX) {
		die(l, -ENOBUFS);
		return;
	}
	if (l->outlen + len > l->outcap) {
		size_t ncap = l->outcap ? l->outcap * 2 : 4096;
		while (ncap < l->outlen + len)
			ncap *= 2;
		uint8_t *n = realloc(l->out, ncap);
		if (!n) {
			die(l, -ENOMEM);
			return;
		}
		l->out = n;
		l->outcap = ncap;
	}
	memcpy(l->out + l->outlen, p, len);
	l->outlen += len;
}

static void send_msg(struct pl_link *l, const struct p2p_msg *m)
{
	uint8_t plain[1024], rec[1024 + P2P_RECORD_OVERHEAD];
	size_t plen, rlen;
	int err;

	if ((err = p2p_msg_encode(m, plain, sizeof(plain), &plen)) < 0 ||
	    (err = p2p_session_seal(l->sess, plain, plen, rec, sizeof(rec),
				    &rlen)) < 0) {
		die(l, err);
		return;
	}
	queue(l, rec, rlen);
}

void pl_link_send(struct pl_link *l, const struct p2p_msg *m)
{
	send_msg(l, m);
}

void pl_link_send_plain(struct pl_link *l, const uint8_t *plain, size_t len)
{
	uint8_t rec[1024 + P2P_RECORD_OVERHEAD];
	size_t rlen;
	int err =
	    p2p_session_seal(l->sess, plain, len, rec, sizeof(rec), &rlen);

	if (err < 0) {
		die(l, err);
		return;
	}
	queue(l, rec, rlen);
}

int pl_link_dial(struct pl_link *l, const struct p2p_addr *a,
		 const struct sockaddr_storage *ss, socklen_t sslen,
		 const struct p2p_peerid *expect)
{
	uint8_t f1[P2P_HS_MAX];
	size_t f1len;
	int err;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->remote = *a;
	l->t0_us = pl_now_us();
	p2p_identity_generate(&l->ident);
	l->sess = p2p_session_new(&l->ident, true, expect);
	l->fr = p2p_framer_new(0);
	if (!l->sess || !l->fr)
		return -ENOMEM;
	if ((err = p2p_session_start(l->sess, f1, sizeof(f1), &f1len)) < 0)
		return err;
	queue(l, f1, f1len);
	if ((l->fd = pl_tcp_connect(ss, sslen)) < 0)
		return l->fd;
	l->state = PL_CONNECTING;
	return 0;
}

int pl_link_accept(struct pl_link *l, int fd, const struct p2p_addr *remote)
{
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->remote = *remote;
	l->t0_us = pl_now_us();
	p2p_identity_generate(&l->ident);
	l->sess = p2p_session_new(&l->ident, false, NULL);
	l->fr = p2p_framer_new(0);
	if (!l->sess || !l->fr)
		return -ENOMEM;
	l->state = PL_HANDSHAKE;
	return 0;
}

short pl_link_events(const struct pl_link *l)
{
	if (l->state == PL_DEAD)
		return 0;
	if (l->state == PL_CONNECTING || l->outlen > 0)
		return POLLIN | POLLOUT;
	return POLLIN;
}

static void on_established(struct pl_link *l)
{
	struct p2p_msg m = {.type = P2P_MSG_HELLO};

	static unsigned sybil; /* harden9: --claim-subnets */

	l->state = PL_UP;
	m.u.hello.observed = l->remote; /* how we see the daemon */
	if (l->say_server)
		m.u.hello.flags = P2P_HELLO_SERVER;
	if (l->claim.family)
		m.u.hello.addrs[m.u.hello.naddrs++] = l->claim;
	if (pl_claim_subnets) {
		struct p2p_addr *c = &m.u.hello.addrs[m.u.hello.naddrs++];
		sybil++;
		m.u.hello.flags = P2P_HELLO_SERVER;
		c->family = 4;
		c->ip[0] = 10, c->ip[1] = (uint8_t)getpid(); /* per process */
		c->ip[2] = (uint8_t)sybil, c->ip[3] = 1;
		c->port = l->remote.port;
	}
	send_msg(l, &m);
}

static void on_record(struct pl_link *l, const uint8_t *body, size_t len)
{
	uint8_t plain[P2P_MSG_MAX];
	size_t plen;
	struct p2p_msg m, r = {0};

	if (p2p_session_open(l->sess, body, len, plain, sizeof(plain), &plen) <
		0 ||
	    p2p_msg_decode(&m, plain, plen) < 0) {
		die(l, -EBADMSG);
		return;
	}
	if (m.type == P2P_MSG_HELLO) {
		l->got_hello = true;
	} else if (m.type == P2P_MSG_PING) {
		r.type = P2P_MSG_PONG;
		r.u.ping.nonce = m.u.ping.nonce;
		send_msg(l, &r);
		l->pongs++;
	} else if (m.type == P2P_MSG_FIND_NODE) {
		r.type = P2P_MSG_NODES;
		r.u.nodes.txid = m.u.find_node.txid;
		for (size_t i = 0; i < l->nnodes && i < P2P_MAX_NODES; i++)
			r.u.nodes.nodes[r.u.nodes.count++] = l->nodes[i];
		send_msg(l, &r);
	} else if (m.type == P2P_MSG_NODES) {
		l->nodes_rx++;
	} else if (m.type == P2P_MSG_ROUTED && l->on_nat &&
		   m.u.routed.app == P2P_APP_NAT) {
		l->on_nat(l, &m);
	} else if (m.type == P2P_MSG_GOAWAY) {
		die(l, -ECONNABORTED);
	} else if (l->on_msg) {
		l->on_msg(l, &m);
	}
}

static void on_frame(struct pl_link *l, const uint8_t *body, size_t len)
{
	uint8_t out[P2P_HS_MAX];
	size_t outlen = 0;
	int r;

	if (l->state == PL_UP) {
		on_record(l, body, len);
		return;
	}
	r = p2p_session_handshake(l->sess, body, len, out, sizeof(out),
				  &outlen);
	if (r < 0) {
		die(l, r);
		return;
	}
	if (outlen)
		queue(l, out, outlen);
	if (r == 1)
		on_established(l);
}

static void do_read(struct pl_link *l)
{
	uint8_t buf[PL_READ_CHUNK];
	ssize_t n = read(l->fd, buf, sizeof(buf));
	size_t off = 0;

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			die(l, -errno);
		return;
	}
	if (n == 0) {
		die(l, 0);
		return;
	}
	while (off < (size_t)n && l->state != PL_DEAD) {
		const uint8_t *body;
		size_t blen;
		ssize_t used =
		    p2p_framer_feed(l->fr, buf + off, (size_t)n - off);
		if (used < 0) {
			die(l, (int)used);
			return;
		}
		off += (size_t)used;
		while (l->state != PL_DEAD &&
		       p2p_framer_frame(l->fr, &body, &blen))
			on_frame(l, body, blen);
	}
}

static void do_write(struct pl_link *l)
{
	ssize_t n = send(l->fd, l->out, l->outlen, MSG_NOSIGNAL);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			die(l, -errno);
		return;
	}
	memmove(l->out, l->out + n, l->outlen - (size_t)n);
	l->outlen -= (size_t)n;
}

void pl_link_io(struct pl_link *l, short revents)
{
	if (l->state == PL_DEAD || !revents)
		return;
	if (l->state == PL_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return;
		getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			die(l, -soerr);
			return;
		}
		l->state = PL_HANDSHAKE;
	}
	if ((revents & POLLOUT) && l->outlen)
		do_write(l);
	if (l->state != PL_DEAD && (revents & (POLLIN | POLLERR | POLLHUP)))
		do_read(l);
	/* Replies produced by this read go out now rather than next round. */
	if (l->state != PL_DEAD && l->outlen)
		do_write(l);
}

void pl_link_free(struct pl_link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	p2p_session_free(l->sess);
	p2p_framer_free(l->fr);
	p2p_identity_wipe(&l->ident);
	free(l->out);
	l->sess = NULL;
	l->fr = NULL;
	l->out = NULL;
}
