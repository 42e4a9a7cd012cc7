/*
 * Bad-input probes against the overlay port, and the raw TCP baseline.
 * Each probe does one thing and says by its exit code what happened, so a
 * test can assert on it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "pl.h"

#define PROBE_CONNECT_MS 5000
#define PROBE_CLOSE_MS 10000 /* default wait for the daemon to close */
#define GARBAGE_BYTES 65536
#define GARBAGE_CHUNK 4096

/* Connect within PROBE_CONNECT_MS; fd or -errno. */
static int probe_connect(const char *text)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, soerr = 0;
	socklen_t el = sizeof(soerr);
	struct pollfd p;

	if (pl_sockaddr(text, &a, &ss, &sl) < 0)
		return -EINVAL;
	if ((fd = pl_tcp_connect(&ss, sl)) < 0)
		return fd;
	p = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&p, 1, PROBE_CONNECT_MS) != 1) {
		close(fd);
		return -ETIMEDOUT;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
	if (soerr) {
		close(fd);
		return -soerr;
	}
	return fd;
}

/* Milliseconds until the peer closed fd (EOF or reset), or -1 after max_ms. */
static long wait_closed(int fd, long max_ms)
{
	long long t0 = pl_now_us(), end = t0 + max_ms * 1000LL;
	char buf[4096];

	for (;;) {
		long long left = end - pl_now_us();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)(left / 1000) + 1) <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return (long)((pl_now_us() - t0) / 1000);
	}
}

static int report_close(const char *what, int fd, long max_ms)
{
	long ms = wait_closed(fd, max_ms);

	close(fd);
	if (ms < 0) {
		printf("%s: daemon did not close within %ld ms\n", what,
		       max_ms);
		return PL_FAIL;
	}
	printf("%s: daemon closed after %ld ms\n", what, ms);
	return PL_OK;
}

static int connect_or_report(const char *what, const char *addr)
{
	int fd = probe_connect(addr);

	if (fd == -EINVAL)
		return -PL_USAGE;
	if (fd < 0) {
		fprintf(stderr, "%s: cannot connect to %s: %s\n", what, addr,
			strerror(-fd));
		return -PL_IO;
	}
	return fd;
}

int pl_cmd_garbage(int argc, char **argv)
{
	long max_ms = pl_opt(argc, argv, "--max-ms", PROBE_CLOSE_MS);
	uint8_t buf[GARBAGE_CHUNK];
	int fd;

	if (argc < 2 || max_ms <= 0)
		return PL_USAGE;
	if ((fd = connect_or_report("garbage", argv[1])) < 0)
		return -fd;
	for (size_t sent = 0; sent < GARBAGE_BYTES; sent += sizeof(buf)) {
		randombytes_buf(buf, sizeof(buf));
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0)
			break; /* already closed on us: fine */
	}
	return report_close("garbage", fd, max_ms);
}

int pl_cmd_oversize(int argc, char **argv)
{
	long max_ms = pl_opt(argc, argv, "--max-ms", PROBE_CLOSE_MS);
	static const uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};
	int fd;

	if (argc < 2 || max_ms <= 0)
		return PL_USAGE;
	if ((fd = connect_or_report("oversize", argv[1])) < 0)
		return -fd;
	if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) < 0) {
		close(fd);
		printf("oversize: daemon closed before the header was sent\n");
		return PL_OK;
	}
	return report_close("oversize", fd, max_ms);
}

int pl_cmd_slowloris(int argc, char **argv)
{
	long max_ms = pl_opt(argc, argv, "--max-ms", 30000);
	int fd;

	if (argc < 2 || max_ms <= 0)
		return PL_USAGE;
	if ((fd = connect_or_report("slowloris", argv[1])) < 0)
		return -fd;
	/* One byte of a frame header, then nothing. */
	if (send(fd, "\0", 1, MSG_NOSIGNAL) < 0) {
		close(fd);
		return PL_IO;
	}
	return report_close("slowloris", fd, max_ms);
}

int pl_cmd_wrongkey(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct p2p_peerid expect;
	struct pl_link l;
	int rc;

	if (argc < 3 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0 ||
	    p2p_peerid_from_text(&expect, argv[2], strlen(argv[2])) < 0)
		return PL_USAGE;
	if (pl_link_dial(&l, &a, &ss, sl, &expect) < 0) {
		pl_link_free(&l);
		return PL_IO;
	}
	while (l.state != PL_DEAD && l.state != PL_UP &&
	       pl_now_us() - l.t0_us < PROBE_CLOSE_MS * 1000LL) {
		struct pollfd p = {.fd = l.fd, .events = pl_link_events(&l)};
		if (poll(&p, 1, 100) > 0)
			pl_link_io(&l, p.revents);
	}
	if (l.state == PL_UP) {
		printf("wrongkey: handshake accepted: the peer is %s\n",
		       argv[2]);
		rc = PL_FAIL;
	} else if (l.err == -EKEYREJECTED) {
		printf("wrongkey: rejected: the peer is not %s\n", argv[2]);
		rc = PL_OK;
	} else if (l.state == PL_CONNECTING || l.err == -ECONNREFUSED) {
		printf("wrongkey: cannot connect: %s\n", strerror(-l.err));
		rc = PL_IO;
	} else {
		printf("wrongkey: handshake failed otherwise: %s\n",
		       l.err ? strerror(-l.err) : "closed by peer or timeout");
		rc = PL_PROTO;
	}
	pl_link_free(&l);
	return rc;
}

/* Drive l for ms (or until it dies); false when it died. */
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

/* Dial addr (any peer) and wait for its HELLO; on failure say so as
 * what and free l. 0 or -1. */
static int link_up(struct pl_link *l, const struct p2p_addr *a,
		   const struct sockaddr_storage *ss, socklen_t sl,
		   const char *what)
{
	if (pl_link_dial(l, a, ss, sl, NULL) < 0) {
		pl_link_free(l);
		return -1;
	}
	while (l->state != PL_DEAD && !(l->state == PL_UP && l->got_hello) &&
	       pl_now_us() - l->t0_us < PROBE_CLOSE_MS * 1000LL)
		pump(l, 100);
	if (l->state != PL_UP || !l->got_hello) {
		printf("%s: no link: %s\n", what,
		       l->err ? strerror(-l->err) : "timeout");
		pl_link_free(l);
		return -1;
	}
	return 0;
}

/* Keep the queue short: write (and read the daemon's answers) until it
 * is empty. */
static bool drain_out(struct pl_link *l)
{
	long long end = pl_now_us() + PROBE_CLOSE_MS * 1000LL;

	while (l->state != PL_DEAD && l->outlen > 0 && pl_now_us() < end) {
		struct pollfd p = {.fd = l->fd, .events = pl_link_events(l)};
		if (poll(&p, 1, 20) > 0)
			pl_link_io(l, p.revents);
	}
	return l->state != PL_DEAD;
}

int pl_cmd_relayflood(int argc, char **argv)
{
	static const uint8_t empty_data[] = {
	    P2P_PROTO_VERSION, P2P_MSG_RELAY_DATA, 0, 0, 0, 1};
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link l;
	long n = pl_opt(argc, argv, "--count", 1000);
	int rc;

	if (argc < 2 || n < 1 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	if (link_up(&l, &a, &ss, sl, "relayflood") < 0)
		return PL_IO;
	/* We are the initiator: our circuit IDs are odd. */
	for (long i = 0; i < n && l.state != PL_DEAD; i++) {
		struct p2p_msg m = {.type = P2P_MSG_RELAY_OPEN};
		m.u.relay.circ = (uint32_t)(8 * i + 1);
		m.u.relay.code = P2P_RELAY_F_INCOMING;
		randombytes_buf(m.u.relay.peer.b, P2P_ID_LEN);
		pl_link_send(&l, &m);
		m.u.relay.circ = (uint32_t)(8 * i + 3);
		m.u.relay.code = 0;
		pl_link_send(&l, &m);
		m.type = P2P_MSG_RELAY_DATA;
		m.u.relay.circ = (uint32_t)(8 * i + 5);
		m.u.relay.data = (const uint8_t *)"frame";
		m.u.relay.len = 5;
		pl_link_send(&l, &m);
		m.type = P2P_MSG_RELAY_CLOSE;
		m.u.relay.circ = (uint32_t)(8 * i + 7);
		m.u.relay.reason = "x";
		m.u.relay.len = 1;
		pl_link_send(&l, &m);
		if (l.outlen > PL_OUT_MAX / 2)
			drain_out(&l);
	}
	drain_out(&l);
	pump(&l, 1500); /* the daemon answers; its relayed ends time out */
	if (l.state == PL_DEAD) {
		printf("relayflood: the daemon closed the link during the "
		       "flood: %s\n",
		       l.err ? strerror(-l.err) : "closed");
		pl_link_free(&l);
		return PL_FAIL;
	}
	pl_link_send_plain(&l, empty_data, sizeof(empty_data));
	pump(&l, PROBE_CLOSE_MS);
	if (l.state == PL_DEAD) {
		printf("relayflood: %ld x 4 relay messages taken; closed after "
		       "an empty RELAY_DATA\n",
		       n);
		rc = PL_OK;
	} else {
		printf("relayflood: an empty RELAY_DATA did not close the "
		       "link\n");
		rc = PL_FAIL;
	}
	pl_link_free(&l);
	return rc;
}

/* harden9: FIND_NODE as fast as the link takes them for --seconds S,
 * counting the NODES replies (issue 9: a 62-byte request earns an
 * 800-byte reply). */
int pl_cmd_findflood(int argc, char **argv)
{
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link l;
	long secs = pl_opt(argc, argv, "--seconds", 3);
	long long t0, end;
	long sent = 0;

	if (argc < 2 || secs < 1 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	if (link_up(&l, &a, &ss, sl, "findflood") < 0)
		return PL_IO;
	t0 = pl_now_us();
	end = t0 + secs * 1000000LL;
	while (l.state != PL_DEAD && pl_now_us() < end) {
		struct p2p_msg m = {.type = P2P_MSG_FIND_NODE};
		for (int i = 0; i < 64 && l.outlen < PL_OUT_MAX / 2; i++) {
			m.u.find_node.txid = (uint32_t)++sent;
			randombytes_buf(m.u.find_node.target.b, P2P_ID_LEN);
			pl_link_send(&l, &m);
		}
		pump(&l, 1);
	}
	pump(&l, 500); /* replies still on their way */
	printf("findflood: sent=%ld nodes=%u seconds=%.3f%s\n", sent,
	       l.nodes_rx, (double)(pl_now_us() - t0) / 1e6,
	       l.state == PL_DEAD ? " (closed by the daemon)" : "");
	pl_link_free(&l);
	return PL_OK;
}
