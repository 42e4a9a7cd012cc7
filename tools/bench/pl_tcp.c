/*
 * Baseline for the handshake rate: raw TCP connect/accept on loopback, no
 * crypto. In-process, an accept thread answers every connection with one
 * byte and closes, so a client counts a connection only after the server
 * saw it (a round trip, like a handshake's).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl.h"

#define TCP_TIMEOUT_US (5 * 1000000LL)

struct acceptor {
	int lfd;
	volatile int stop;
};

static void *accept_main(void *arg)
{
	struct acceptor *a = arg;

	while (!a->stop) {
		int c = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		if (write(c, "x", 1) < 0) {
			/* the client went first; nothing to do */
		}
		close(c);
	}
	return NULL;
}

static int start_acceptor(struct acceptor *a, char *addr, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->lfd < 0 ||
	    bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(a->lfd, 1024) < 0 ||
	    getsockname(a->lfd, (struct sockaddr *)&sa, &sl) < 0)
		return -errno;
	snprintf(addr, len, "127.0.0.1:%u", ntohs(sa.sin_port));
	return 0;
}

struct slot {
	int fd;
	long long t0;
};

/* One step of a slot after poll; 1 done, -1 failed, 0 pending. */
static int slot_step(struct slot *s, short revents, bool in_process)
{
	char b[16];

	if (pl_now_us() - s->t0 > TCP_TIMEOUT_US)
		return -1;
	if (!revents)
		return 0;
	if (!in_process) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		return soerr ? -1 : 1;
	}
	ssize_t n = read(s->fd, b, sizeof(b));
	if (n > 0)
		return 1;
	return (n < 0 && errno == EAGAIN) ? 0 : -1;
}

int pl_cmd_tcp_baseline(int argc, char **argv)
{
	long count = pl_opt(argc, argv, "--count", 5000);
	long conc = pl_opt(argc, argv, "--concurrency", 16);
	bool in_process = argc < 2 || argv[1][0] == '-';
	struct acceptor acc = {.lfd = -1};
	char addr[64];
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	pthread_t th;
	struct slot *slots;
	struct pollfd *fds;
	long started = 0, ok = 0, failed = 0;
	long long t0;

	if (count <= 0 || conc <= 0)
		return PL_USAGE;
	if (in_process && start_acceptor(&acc, addr, sizeof(addr)) < 0) {
		perror("p2pload: tcp-baseline listener");
		return PL_IO;
	}
	if (pl_sockaddr(in_process ? addr : argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	if (in_process)
		pthread_create(&th, NULL, accept_main, &acc);
	slots = calloc((size_t)conc, sizeof(*slots));
	fds = calloc((size_t)conc, sizeof(*fds));
	for (long i = 0; i < conc; i++)
		slots[i].fd = -1;
	t0 = pl_now_us();
	while (ok + failed < count) {
		for (long i = 0; i < conc; i++) {
			if (slots[i].fd >= 0 || started >= count)
				continue;
			started++;
			slots[i].t0 = pl_now_us();
			if ((slots[i].fd = pl_tcp_connect(&ss, sl)) < 0) {
				slots[i].fd = -1;
				failed++;
			}
		}
		for (long i = 0; i < conc; i++) {
			fds[i].fd = slots[i].fd;
			fds[i].events = in_process ? POLLIN : POLLOUT;
		}
		poll(fds, (nfds_t)conc, 100);
		for (long i = 0; i < conc; i++) {
			int r;
			if (slots[i].fd < 0)
				continue;
			if (!(r = slot_step(&slots[i], fds[i].revents,
					    in_process)))
				continue;
			r > 0 ? ok++ : failed++;
			close(slots[i].fd);
			slots[i].fd = -1;
		}
	}
	double secs = (double)(pl_now_us() - t0) / 1e6;
	printf("tcp-baseline: ok=%ld failed=%ld seconds=%.3f rate=%.1f/s\n", ok,
	       failed, secs, secs > 0 ? (double)ok / secs : 0.0);
	if (in_process) {
		acc.stop = 1;
		/* wake the blocking accept() */
		int fd = pl_tcp_connect(&ss, sl);
		pthread_join(th, NULL);
		if (fd >= 0)
			close(fd);
		close(acc.lfd);
	}
	free(slots);
	free(fds);
	return failed ? PL_FAIL : PL_OK;
}
