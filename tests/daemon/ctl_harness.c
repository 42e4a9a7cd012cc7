#include "ctl_harness.h"

#include <criterion/criterion.h>
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

uv_loop_t tc_loop;
char tc_dir[64];
char tc_path[108];

#define TC_WAIT_MS 3000

void tc_setup(void)
{
	strcpy(tc_dir, "/tmp/p2pd-ctltest-XXXXXX");
	cr_assert(mkdtemp(tc_dir) != NULL);
	snprintf(tc_path, sizeof(tc_path), "%s/ctl.sock", tc_dir);
	cr_assert(uv_loop_init(&tc_loop) == 0);
}

void tc_teardown(void)
{
	char cmd[128];

	uv_run(&tc_loop, UV_RUN_DEFAULT);
	cr_expect_eq(uv_loop_close(&tc_loop), 0, "handles left open");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tc_dir);
	cr_expect(system(cmd) == 0);
}

void tc_pump(void)
{
	uv_run(&tc_loop, UV_RUN_NOWAIT);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void tc_pump_for(int ms)
{
	long long end = now_ms() + ms;

	while (now_ms() < end) {
		tc_pump();
		usleep(1000);
	}
}

struct tc_client *tc_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct tc_client *c = calloc(1, sizeof(*c));

	cr_assert(c != NULL);
	c->rx = malloc(TC_RX_CAP);
	cr_assert(c->rx != NULL);
	strcpy(sun.sun_path, path ? path : tc_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(c->fd >= 0);
	cr_assert(connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		  "connect: %s", strerror(errno));
	cr_assert(fcntl(c->fd, F_SETFL, O_NONBLOCK) == 0);
	tc_pump_for(5);
	return c;
}

void tc_free(struct tc_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->rx);
	free(c);
	tc_pump_for(5);
}

/* Read what is there; false when nothing came. */
static bool tc_read_some(struct tc_client *c)
{
	ssize_t n;

	if (c->eof || c->len == TC_RX_CAP)
		return false;
	n = recv(c->fd, c->rx + c->len, TC_RX_CAP - c->len, 0);
	if (n > 0) {
		c->len += (size_t)n;
		return true;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		c->eof = true;
	return false;
}

int tc_send(struct tc_client *c, const void *buf, size_t len)
{
	const char *p = buf;
	long long end = now_ms() + TC_WAIT_MS;

	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ms() > end)
			return -ETIMEDOUT;
		tc_pump();
		/* Keep our receive side drained so the server never stalls. */
		tc_read_some(c);
		usleep(500);
	}
	tc_pump();
	return 0;
}

int tc_send_str(struct tc_client *c, const char *s)
{
	return tc_send(c, s, strlen(s));
}

void tc_consume(struct tc_client *c, size_t n)
{
	memmove(c->rx, c->rx + n, c->len - n);
	c->len -= n;
}

json_t *tc_reply(struct tc_client *c)
{
	long long end = now_ms() + TC_WAIT_MS;
	json_error_t je;
	char *nl;

	while ((nl = memchr(c->rx, '\n', c->len)) == NULL) {
		if (c->eof || now_ms() > end)
			return NULL;
		tc_pump();
		if (!tc_read_some(c))
			usleep(500);
	}
	json_t *r = json_loadb(c->rx, (size_t)(nl - c->rx), 0, &je);
	cr_assert(r != NULL, "reply is not JSON: %.*s", (int)(nl - c->rx),
		  c->rx);
	tc_consume(c, (size_t)(nl - c->rx) + 1);
	return r;
}

bool tc_wait_bytes(struct tc_client *c, size_t n)
{
	long long end = now_ms() + TC_WAIT_MS;

	while (c->len < n && !c->eof && now_ms() < end) {
		tc_pump();
		if (!tc_read_some(c))
			usleep(500);
	}
	return c->len >= n;
}

bool tc_wait_eof(struct tc_client *c)
{
	long long end = now_ms() + TC_WAIT_MS;

	while (!c->eof && now_ms() < end) {
		tc_pump();
		if (c->len > TC_RX_CAP / 2)
			c->len = 0; /* only EOF matters here */
		if (!tc_read_some(c))
			usleep(500);
	}
	return c->eof;
}

bool tc_is_ok(json_t *r)
{
	return r != NULL && json_is_true(json_object_get(r, "ok"));
}

const char *tc_error(json_t *r)
{
	const char *e = json_string_value(json_object_get(r, "error"));
	return e ? e : "";
}
