/*
 * "p2pctl pipe": after the ok line the control connection is the byte
 * stream to the remote service. Two one-way pumps share one poll() loop:
 * stdin -> socket and socket -> stdout. EOF on stdin half-closes the
 * socket (shutdown SHUT_WR) and we keep copying the other way until the
 * remote side closes, which is what ssh's ProxyCommand expects.
 *
 * stdin/stdout stay blocking (they may be shared with other processes), so
 * we only touch them after poll() says they are ready, and write at most
 * PIPE_BUF bytes to stdout at a time.
 *
 * The control protocol has no in-band error after the ok line, but the
 * two ends of a tunnel close differently: when the remote side ends its
 * stream the daemon half-closes our socket (shutdown) and still takes
 * what we send; when the tunnel is reset (its link died, a NAT forgot
 * it, the peer reset it) the daemon closes the socket outright. On a
 * Unix socket the second is a hang-up (POLLHUP) while we have not shut
 * down our own side: that is reported as an error, not a clean end.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"

#define PUMP_BUF 65536
#define STDOUT_CHUNK 4096 /* PIPE_BUF: a write after POLLOUT never blocks */

struct pump {
	int in, out;
	bool in_sock, out_sock;
	char buf[PUMP_BUF];
	size_t off, len;
	bool eof; /* nothing more will be read from in */
};

static int pump_read(struct pump *p)
{
	ssize_t n = p->in_sock ? recv(p->in, p->buf, sizeof(p->buf), 0)
			       : read(p->in, p->buf, sizeof(p->buf));

	if (n < 0)
		return (errno == EINTR || errno == EAGAIN) ? 0 : -errno;
	if (n == 0)
		p->eof = true;
	p->off = 0;
	p->len = (size_t)n;
	return 0;
}

static int pump_write(struct pump *p)
{
	size_t want = p->len;
	ssize_t n;

	if (!p->out_sock && want > STDOUT_CHUNK)
		want = STDOUT_CHUNK;
	n = p->out_sock ? send(p->out, p->buf + p->off, want, MSG_NOSIGNAL)
			: write(p->out, p->buf + p->off, want);
	if (n < 0)
		return (errno == EINTR || errno == EAGAIN) ? 0 : -errno;
	p->off += (size_t)n;
	p->len -= (size_t)n;
	return 0;
}

/* What this pump waits for: readable input when empty, writable output
 * otherwise. */
static void pump_want(const struct pump *p, struct pollfd *in,
		      struct pollfd *out)
{
	if (p->len == 0 && !p->eof)
		in->events |= POLLIN;
	if (p->len > 0)
		out->events |= POLLOUT;
}

static int pump_step(struct pump *p, const struct pollfd *in,
		     const struct pollfd *out)
{
	if (p->len > 0 &&
	    (out->revents & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)))
		return pump_write(p);
	if (p->len == 0 && !p->eof &&
	    (in->revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)))
		return pump_read(p);
	return 0;
}

static struct pump up, down; /* 128 KiB: static, not on the stack */

int ctl_pipe(struct ctl_conn *c)
{
	size_t rest = c->len - c->linelen - 1;
	bool shut = false;

	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	up = (struct pump){.in = 0, .out = c->fd, .out_sock = true};
	down = (struct pump){.in = c->fd, .out = 1, .in_sock = true};
	/* Bytes the daemon sent right after the ok line belong to the stream.
	 */
	memcpy(down.buf, c->buf + c->linelen + 1, rest);
	down.len = rest;

	for (;;) {
		struct pollfd fds[3] = {{.fd = 0}, {.fd = c->fd}, {.fd = 1}};
		int err;

		if (up.eof && up.len == 0 && !shut) {
			shutdown(c->fd, SHUT_WR);
			shut = true;
		}
		if (down.eof && down.len == 0)
			return 0;
		pump_want(&up, &fds[0], &fds[1]);
		pump_want(&down, &fds[1], &fds[2]);
		/* POLLHUP is reported even unasked: park idle fds, or we spin.
		 */
		for (int i = 0; i < 3; i++)
			if (!fds[i].events)
				fds[i].fd = -1;
		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		err = pump_step(&up, &fds[0], &fds[1]);
		if (err == -EPIPE || err == -ECONNRESET) {
			/* The remote stopped reading; still drain what it
			 * sends. */
			up.eof = true;
			up.len = 0;
		} else if (err < 0) {
			return err;
		}
		/* Our reader went away (ssh exited, "| head" had enough):
		 * that ends the pipe as EOF would, quietly; closing the
		 * socket then closes the tunnel. */
		if ((err = pump_step(&down, &fds[1], &fds[2])) == -EPIPE)
			return 0;
		if (err < 0)
			return err;
		if (down.eof && !shut && (fds[1].revents & POLLHUP))
			return -ECONNRESET; /* the tunnel was reset */
	}
}
