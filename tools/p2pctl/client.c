/*
 * Control socket client: connect, one request, one reply; and the byte
 * pump behind "p2pctl pipe".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define READ_CHUNK 65536

int ctl_connect(struct ctl_conn *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		close(c->fd);
		c->fd = -1;
		return err;
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Wait until fd is readable or the deadline passes. */
static int wait_readable(int fd, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
	}
}

static int grow(struct ctl_conn *c)
{
	size_t ncap = c->cap ? c->cap * 2 : READ_CHUNK;
	char *nb;

	if (ncap > CTL_REPLY_MAX + READ_CHUNK)
		return -EMSGSIZE;
	nb = realloc(c->buf, ncap + 1);
	if (!nb)
		return -ENOMEM;
	c->buf = nb;
	c->cap = ncap;
	return 0;
}

/* Forget the line read last (the buffer keeps what followed it). */
static void drop_line(struct ctl_conn *c)
{
	size_t used = c->linelen + 1;

	if (!c->have_line)
		return;
	memmove(c->buf, c->buf + used, c->len - used);
	c->len -= used;
	c->have_line = false;
}

int ctl_request(struct ctl_conn *c, const char *line, int timeout_ms)
{
	size_t len = strlen(line);
	char *req = malloc(len + 2);
	int err;

	/* One write: the request goes out as one line, newline included. */
	if (!req)
		return -ENOMEM;
	memcpy(req, line, len);
	memcpy(req + len, "\n", 2);
	err = write_all(c->fd, req, len + 1);
	free(req);
	if (err < 0)
		return err;
	drop_line(c);
	c->deadline = now_ms() + timeout_ms;
	return ctl_next_line(c);
}

int ctl_next_line(struct ctl_conn *c)
{
	size_t scanned = 0;
	int err;

	drop_line(c);
	for (;;) {
		char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n',
						     c->len - scanned)
					    : NULL;
		ssize_t n;

		if (nl) {
			c->linelen = (size_t)(nl - c->buf);
			*nl = '\0';
			c->have_line = true;
			return 0;
		}
		scanned = c->len;
		if (c->len > CTL_REPLY_MAX)
			return -EMSGSIZE;
		if (c->cap - c->len < READ_CHUNK / 2 && (err = grow(c)) < 0)
			return err;
		if ((err = wait_readable(c->fd, c->deadline)) < 0)
			return err;
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		c->len += (size_t)n;
	}
}

void ctl_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}
