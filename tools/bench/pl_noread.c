/*
 * p2pload noread (issue 9, write-queue memory): a peer that sends requests
 * that earn replies (PING, FIND_NODE) as fast as the link takes them and
 * never reads, for S seconds; then it reads what the daemon had for it
 * (until quiet for 1 s, at most 5 s).
 * Prints "noread: pings=P finds=F pongs=Q nodes=N stalled_ms=T bytes=B"
 * (stalled_ms: the longest time the daemon did not take our bytes, i.e.
 * stopped reading us; bytes: what we sent).
 */
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/socket.h>

#include "pl.h"

struct noread {
	unsigned pongs;
};

static void on_msg(struct pl_link *l, const struct p2p_msg *m)
{
	struct noread *x = l->ctx;

	if (m->type == P2P_MSG_PONG)
		x->pongs++;
}

int pl_cmd_noread(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link l;
	struct noread x = {0};
	long secs = pl_opt(argc, argv, "--seconds", 5);
	long long end, last_take, stalled = 0, quiet;
	unsigned long pings = 0, finds = 0;
	unsigned long long bytes = 0;
	int small = 4096;

	if (argc < 2 || secs < 1 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	if (pl_link_dial(&l, &a, &ss, sl, NULL) < 0) {
		pl_link_free(&l);
		return PL_IO;
	}
	l.on_msg = on_msg;
	l.ctx = &x;
	end = pl_now_us() + 5000000LL;
	while (l.state != PL_DEAD && !(l.state == PL_UP && l.got_hello) &&
	       pl_now_us() < end) {
		struct pollfd p = {.fd = l.fd, .events = pl_link_events(&l)};
		if (poll(&p, 1, 20) > 0)
			pl_link_io(&l, p.revents);
	}
	if (l.state != PL_UP || !l.got_hello) {
		printf("noread: no link\n");
		pl_link_free(&l);
		return PL_IO;
	}
	/* Our receive buffer small: the daemon's replies stay with it. */
	setsockopt(l.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	end = pl_now_us() + secs * 1000000LL;
	last_take = pl_now_us();
	while (l.state != PL_DEAD && pl_now_us() < end) {
		struct pollfd p = {.fd = l.fd, .events = POLLOUT};
		size_t before;

		while (l.outlen < PL_OUT_MAX / 2) {
			struct p2p_msg m = {.type = P2P_MSG_PING};
			randombytes_buf(&m.u.ping.nonce,
					sizeof(m.u.ping.nonce));
			pl_link_send(&l, &m);
			pings++;
			m = (struct p2p_msg){.type = P2P_MSG_FIND_NODE};
			m.u.find_node.txid = (uint32_t)++finds;
			randombytes_buf(m.u.find_node.target.b, P2P_ID_LEN);
			pl_link_send(&l, &m);
		}
		before = l.outlen;
		/* Write only: POLLOUT alone never reads. */
		if (poll(&p, 1, 20) > 0 && (p.revents & POLLOUT))
			pl_link_io(&l, POLLOUT);
		if (l.outlen < before) {
			bytes += before - l.outlen;
			last_take = pl_now_us();
		} else if (pl_now_us() - last_take > stalled) {
			stalled = pl_now_us() - last_take;
		}
		if (p.revents & (POLLERR | POLLHUP))
			break;
	}
	/* Now read what the daemon kept for us, until it is quiet. */
	quiet = pl_now_us();
	end = quiet + 5000000LL; /* a daemon with no limits never goes quiet */
	while (l.state != PL_DEAD && pl_now_us() - quiet < 1000000LL &&
	       pl_now_us() < end) {
		struct pollfd p = {.fd = l.fd, .events = POLLIN};
		if (poll(&p, 1, 50) > 0) {
			pl_link_io(&l, p.revents);
			quiet = pl_now_us();
		}
	}
	printf("noread: pings=%lu finds=%lu pongs=%u nodes=%u stalled_ms=%lld "
	       "bytes=%llu%s\n",
	       pings, finds, x.pongs, l.nodes_rx, stalled / 1000, bytes,
	       l.state == PL_DEAD ? " (closed by the daemon)" : "");
	pl_link_free(&l);
	return PL_OK;
}
