/*
 * Control-socket load: C client threads, each on its own connection,
 * looping one request line / one reply line for S seconds. The same loop
 * against an in-process Unix echo server (one thread, epoll, like the
 * daemon's single loop) is the baseline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pl.h"

#define CTL_LINE_BUF 65536
#define ECHO_MAX_CLIENTS 64
#define CLIENTS_MAX 256
#define STATUS_REQ "{\"cmd\":\"status\"}\n"

struct client {
	pthread_t th;
	const char *path;
	bool check_ok;
	bool reconnect;	  /* a new connection per request */
	long interval_us; /* pause between requests (a latency probe) */
	long long until_us;
	long long *lat; /* microseconds per request */
	size_t n, cap;
	long errors;
};

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read until '\n'; the buffer carries no leftovers (one request in flight). */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		if (buf[len - 1] == '\n') {
			buf[len] = '\0';
			return (int)len;
		}
	}
	return -1;
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	char *buf = malloc(CTL_LINE_BUF);
	int fd = -1;

	while (buf && pl_now_us() < c->until_us) {
		long long t0 = pl_now_us();
		if (fd < 0 && (fd = unix_connect(c->path)) < 0) {
			c->errors++;
			break;
		}
		if (write(fd, STATUS_REQ, strlen(STATUS_REQ)) < 0 ||
		    read_line(fd, buf, CTL_LINE_BUF) < 0) {
			c->errors++;
			break;
		}
		if (c->check_ok && !strstr(buf, "\"ok\":true") &&
		    !strstr(buf, "\"ok\": true"))
			c->errors++;
		if (c->reconnect) {
			close(fd);
			fd = -1;
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 4096;
			c->lat = realloc(c->lat, c->cap * sizeof(*c->lat));
		}
		c->lat[c->n++] = pl_now_us() - t0;
		if (c->interval_us)
			usleep((useconds_t)c->interval_us);
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* Run the clients against path and print one result line. */
static int run_clients(const char *label, const char *path, long nclients,
		       long seconds, bool check_ok, bool reconnect,
		       long interval_ms)
{
	struct client *cs = calloc((size_t)nclients, sizeof(*cs));
	long long *all, t0 = pl_now_us();
	size_t total = 0, k = 0;
	long errors = 0;

	for (long i = 0; i < nclients; i++) {
		cs[i] = (struct client){.path = path,
					.check_ok = check_ok,
					.reconnect = reconnect,
					.interval_us = interval_ms * 1000,
					.until_us = t0 + seconds * 1000000LL};
		pthread_create(&cs[i].th, NULL, client_main, &cs[i]);
	}
	for (long i = 0; i < nclients; i++) {
		pthread_join(cs[i].th, NULL);
		total += cs[i].n;
		errors += cs[i].errors;
	}
	double secs = (double)(pl_now_us() - t0) / 1e6;
	all = malloc((total + 1) * sizeof(*all));
	for (long i = 0; i < nclients; i++) {
		memcpy(all + k, cs[i].lat, cs[i].n * sizeof(*all));
		k += cs[i].n;
		free(cs[i].lat);
	}
	qsort(all, total, sizeof(*all), cmp_ll);
	printf("%s%s: clients=%ld seconds=%.2f requests=%zu errors=%ld "
	       "rate=%.0f/s p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
	       label, reconnect ? " (reconnect)" : "", nclients, secs, total,
	       errors, (double)total / secs, total ? all[total / 2] / 1e3 : 0.0,
	       total ? all[total * 99 / 100] / 1e3 : 0.0,
	       total ? all[total - 1] / 1e3 : 0.0);
	free(all);
	free(cs);
	return (errors || !total) ? PL_FAIL : PL_OK;
}

static bool ctl_args(int argc, long *clients, long *seconds, char **argv)
{
	*clients = pl_opt(argc, argv, "--clients", 8);
	*seconds = pl_opt(argc, argv, "--seconds", 5);
	return *clients > 0 && *clients <= CLIENTS_MAX && *seconds > 0;
}

int pl_cmd_status(int argc, char **argv)
{
	long clients, seconds;

	if (argc < 2 || argv[1][0] == '-' ||
	    !ctl_args(argc, &clients, &seconds, argv))
		return PL_USAGE;
	return run_clients("status", argv[1], clients, seconds, true,
			   pl_flag(argc, argv, "--reconnect"),
			   pl_opt(argc, argv, "--interval-ms", 0));
}

struct echo_server {
	int lfd, ep;
	volatile int stop;
};

static void echo_serve_one(struct echo_server *s, int fd)
{
	char buf[CTL_LINE_BUF];
	ssize_t n = read(fd, buf, sizeof(buf));

	/* Clients send one line and wait, so one read is one line. */
	if (n <= 0 || write(fd, buf, (size_t)n) != n) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
	}
}

static void *echo_main(void *arg)
{
	struct echo_server *s = arg;
	struct epoll_event evs[ECHO_MAX_CLIENTS];

	while (!s->stop) {
		int n = epoll_wait(s->ep, evs, ECHO_MAX_CLIENTS, 100);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == s->lfd) {
				struct epoll_event ev = {.events = EPOLLIN};
				int c =
				    accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
				if (c < 0)
					continue;
				ev.data.fd = c;
				epoll_ctl(s->ep, EPOLL_CTL_ADD, c, &ev);
			} else {
				echo_serve_one(s, fd);
			}
		}
	}
	return NULL;
}

int pl_cmd_echo_baseline(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct echo_server s = {0};
	struct epoll_event ev = {.events = EPOLLIN};
	long clients, seconds;
	pthread_t th;
	int rc;

	if (!ctl_args(argc, &clients, &seconds, argv))
		return PL_USAGE;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/p2pload-echo-%d.sock",
		 (int)getpid());
	unlink(sa.sun_path);
	s.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s.lfd, 128) < 0) {
		perror("p2pload: echo server");
		return PL_IO;
	}
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = s.lfd;
	epoll_ctl(s.ep, EPOLL_CTL_ADD, s.lfd, &ev);
	pthread_create(&th, NULL, echo_main, &s);
	rc = run_clients("echo-baseline", sa.sun_path, clients, seconds, false,
			 pl_flag(argc, argv, "--reconnect"), 0);
	s.stop = 1;
	pthread_join(th, NULL);
	close(s.ep);
	close(s.lfd);
	unlink(sa.sun_path);
	return rc;
}
