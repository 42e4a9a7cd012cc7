/*
 * pathemu: one-way path delay, jitter and loss for the NAT lab.
 *
 * This kernel has no netem, but the iptables NFQUEUE target works: every
 * packet a rule sends to queue N waits in the kernel until a user-space
 * program issues its verdict. pathemu binds one or more queues, holds each
 * packet for the configured delay (plus jitter) and then accepts it, or
 * drops a share of them at once (loss). Verdicts are issued by packet id,
 * so they may be out of the kernel's order; pathemu keeps them in order per
 * queue anyway (see line_push) so jitter never reorders a TCP flow.
 *
 *   pathemu -q NUM [-q NUM ...] [-d MS] [-j MS] [-l FRACTION] [-s SEED] [-n]
 *
 * It prints "ready" on stdout once every queue is bound (rules sending
 * packets to an unbound queue drop them, so add them after that), counters
 * on stderr at exit and on SIGUSR1, and exits 0 on SIGTERM/SIGINT after
 * accepting every packet it still holds. -n checks the arguments and exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/* Queues one process serves: a site link has two (egress and ingress). */
#define PATHEMU_QUEUES_MAX 4
/* Packets held per queue. A full queue drops new packets (counted as
 * overflow) instead of growing: memory stays bounded whatever the load. */
#define PATHEMU_HELD_MAX 4096
/* The kernel's own per-queue limit, above ours so that ours is the one
 * that bites; the margin covers packets read but not yet counted. */
#define PATHEMU_KERNEL_QLEN (PATHEMU_HELD_MAX + 1024)
/* Netlink receive buffer: metadata-only messages are a few hundred bytes,
 * so this holds thousands of them if we fall behind for a moment. */
#define PATHEMU_RCVBUF (8 * 1024 * 1024)
/* Upper bounds for the arguments: a lab path, not a satellite. */
#define PATHEMU_DELAY_MAX_MS 10000
#define PATHEMU_JITTER_MAX_MS 10000
#define PATHEMU_RECV_BUF 65536

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL

struct held {
	uint32_t id;
	uint64_t due; /* CLOCK_MONOTONIC, ns */
};

struct stats {
	uint64_t seen, passed, lost, overflow, verdict_err;
};

/* One queue: a FIFO of held packets, due times never decreasing. */
struct emu;
struct line {
	struct emu *emu;
	uint16_t num;
	struct nfq_q_handle *qh;
	struct held ring[PATHEMU_HELD_MAX];
	unsigned head, count;
	uint64_t last_due;
	struct stats st;
};

struct emu {
	uint64_t delay_ns, jitter_ns;
	double loss;
	uint64_t rng;
	int stopping; /* accept at once: we are exiting */
	struct line lines[PATHEMU_QUEUES_MAX];
	int nlines;
	uint64_t recv_err;
};

static volatile sig_atomic_t got_stop, got_usr1;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: reproducible with -s, plenty for loss and jitter. */
static uint64_t rng_next(struct emu *e)
{
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1). */
static double rng_unit(struct emu *e)
{
	return (double)(rng_next(e) >> 11) / (double)(1ULL << 53);
}

/* The delay for one packet: delay + uniform jitter in [-jitter, +jitter],
 * never below zero. */
static uint64_t packet_delay(struct emu *e)
{
	int64_t d = (int64_t)e->delay_ns;

	if (e->jitter_ns > 0) {
		uint64_t span = 2 * e->jitter_ns + 1;
		d += (int64_t)(rng_next(e) % span) - (int64_t)e->jitter_ns;
	}
	return d < 0 ? 0 : (uint64_t)d;
}

static void verdict(struct line *l, uint32_t id, uint32_t v)
{
	if (nfq_set_verdict(l->qh, id, v, 0, NULL) < 0)
		l->st.verdict_err++;
}

/* Hold a packet. Its due time is never earlier than the previous one's on
 * this queue: a real link is a FIFO, and reordering a TCP flow by jitter
 * would look like loss to the sender (dup ACKs, spurious retransmits). */
static int line_push(struct line *l, uint32_t id, uint64_t due)
{
	if (l->count == PATHEMU_HELD_MAX)
		return -1;
	if (due < l->last_due)
		due = l->last_due;
	l->last_due = due;
	l->ring[(l->head + l->count) % PATHEMU_HELD_MAX] =
	    (struct held){.id = id, .due = due};
	l->count++;
	return 0;
}

/* Accept every held packet due by now (all of them when now is
 * UINT64_MAX). */
static void line_release(struct line *l, uint64_t now)
{
	while (l->count > 0 && l->ring[l->head].due <= now) {
		verdict(l, l->ring[l->head].id, NF_ACCEPT);
		l->st.passed++;
		l->head = (l->head + 1) % PATHEMU_HELD_MAX;
		l->count--;
	}
}

/* One packet from the kernel: drop it (loss, or a full queue) or hold it. */
static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg,
		     struct nfq_data *nfa, void *data)
{
	struct line *l = data;
	struct emu *e = l->emu;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
	uint32_t id;

	(void)qh;
	(void)msg;
	if (ph == NULL)
		return 0;
	id = ntohl(ph->packet_id);
	l->st.seen++;
	if (e->stopping) {
		verdict(l, id, NF_ACCEPT);
		l->st.passed++;
	} else if (e->loss > 0 && rng_unit(e) < e->loss) {
		verdict(l, id, NF_DROP);
		l->st.lost++;
	} else if (line_push(l, id, now_ns() + packet_delay(e)) < 0) {
		verdict(l, id, NF_DROP);
		l->st.overflow++;
	}
	return 0;
}

static void print_stats(const struct emu *e)
{
	for (int i = 0; i < e->nlines; i++) {
		const struct line *l = &e->lines[i];
		fprintf(stderr,
			"pathemu: queue %u: seen %" PRIu64 " passed %" PRIu64
			" lost %" PRIu64 " overflow %" PRIu64 " held %u"
			" verdict_errors %" PRIu64 "\n",
			l->num, l->st.seen, l->st.passed, l->st.lost,
			l->st.overflow, l->count, l->st.verdict_err);
	}
	if (e->recv_err > 0)
		fprintf(stderr, "pathemu: receive errors %" PRIu64 "\n",
			e->recv_err);
}

/* The earliest due time over all queues, UINT64_MAX when nothing is held. */
static uint64_t next_due(const struct emu *e)
{
	uint64_t due = UINT64_MAX;

	for (int i = 0; i < e->nlines; i++) {
		const struct line *l = &e->lines[i];
		if (l->count > 0 && l->ring[l->head].due < due)
			due = l->ring[l->head].due;
	}
	return due;
}

/* Read every message waiting on the socket without blocking. */
static void drain(struct emu *e, struct nfq_handle *h, int fd)
{
	static char buf[PATHEMU_RECV_BUF] __attribute__((aligned));

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			/* ENOBUFS: the kernel lost notifications while we
			 * were slow; their packets wait in the kernel until
			 * the queue goes. Counted, not fatal. */
			e->recv_err++;
			return;
		}
		nfq_handle_packet(h, buf, (int)n);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: pathemu -q NUM [-q NUM ...] [-d DELAY_MS] "
		"[-j JITTER_MS] [-l LOSS] [-s SEED] [-n]\n"
		"  LOSS is a fraction of packets, 0 to 1 (0.03 = 3%%)\n");
	exit(2);
}

static long parse_num(const char *s, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < 0 || v > max) {
		fprintf(stderr, "pathemu: bad %s %s (0 to %ld)\n", what, s,
			max);
		exit(2);
	}
	return v;
}

static void parse_args(struct emu *e, int argc, char **argv, int *check)
{
	uint64_t seed = 0;
	char *end;
	int c;

	while ((c = getopt(argc, argv, "q:d:j:l:s:n")) != -1) {
		switch (c) {
		case 'q':
			if (e->nlines == PATHEMU_QUEUES_MAX) {
				fprintf(stderr, "pathemu: at most %d queues\n",
					PATHEMU_QUEUES_MAX);
				exit(2);
			}
			e->lines[e->nlines].emu = e;
			e->lines[e->nlines++].num =
			    (uint16_t)parse_num(optarg, UINT16_MAX, "queue");
			break;
		case 'd':
			e->delay_ns =
			    (uint64_t)parse_num(optarg, PATHEMU_DELAY_MAX_MS,
						"delay") *
			    NS_PER_MS;
			break;
		case 'j':
			e->jitter_ns =
			    (uint64_t)parse_num(optarg, PATHEMU_JITTER_MAX_MS,
						"jitter") *
			    NS_PER_MS;
			break;
		case 'l':
			errno = 0;
			e->loss = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || end == optarg ||
			    !(e->loss >= 0 && e->loss <= 1)) {
				fprintf(stderr,
					"pathemu: bad loss %s (a fraction, 0 "
					"to 1)\n",
					optarg);
				exit(2);
			}
			break;
		case 's':
			seed = (uint64_t)parse_num(optarg, LONG_MAX, "seed");
			break;
		case 'n':
			*check = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || e->nlines == 0)
		usage();
	for (int i = 0; i < e->nlines; i++)
		for (int j = 0; j < i; j++)
			if (e->lines[i].num == e->lines[j].num) {
				fprintf(stderr, "pathemu: queue %u twice\n",
					e->lines[i].num);
				exit(2);
			}
	/* xorshift needs a non-zero state. */
	e->rng = seed != 0 ? seed : (now_ns() ^ ((uint64_t)getpid() << 32));
	if (e->rng == 0)
		e->rng = 1;
}

static void bind_queues(struct emu *e, struct nfq_handle *h)
{
	for (int i = 0; i < e->nlines; i++) {
		struct line *l = &e->lines[i];

		l->qh = nfq_create_queue(h, l->num, on_packet, l);
		if (l->qh == NULL) {
			/* EBUSY or EEXIST-like failures mostly mean another
			 * program holds the queue in this namespace. */
			fprintf(stderr,
				"pathemu: cannot bind NFQUEUE %u: %s (is "
				"another program bound to it in this network "
				"namespace? are we root?)\n",
				l->num, strerror(errno));
			exit(1);
		}
		/* Metadata only: we never look at the payload. */
		if (nfq_set_mode(l->qh, NFQNL_COPY_META, 0) < 0 ||
		    nfq_set_queue_maxlen(l->qh, PATHEMU_KERNEL_QLEN) < 0) {
			fprintf(stderr,
				"pathemu: cannot configure NFQUEUE %u: %s\n",
				l->num, strerror(errno));
			exit(1);
		}
	}
}

/* Wait for packets or the next due time; signals wake us (ppoll unblocks
 * them only while waiting, so none is lost between a check and the wait). */
static void wait_once(struct emu *e, int fd, const sigset_t *waitmask)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct timespec ts, *tsp = NULL;
	uint64_t due = next_due(e), now = now_ns();

	if (due != UINT64_MAX) {
		uint64_t left = due > now ? due - now : 0;
		ts.tv_sec = (time_t)(left / NS_PER_S);
		ts.tv_nsec = (long)(left % NS_PER_S);
		tsp = &ts;
	}
	if (ppoll(&pfd, 1, tsp, waitmask) < 0 && errno != EINTR) {
		perror("pathemu: ppoll");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	static struct emu e; /* large (the rings): not on the stack */
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block, waitmask;
	struct nfq_handle *h;
	int check = 0, fd;

	parse_args(&e, argc, argv, &check);
	if (check)
		return 0;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGUSR1);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	h = nfq_open();
	if (h == NULL) {
		fprintf(stderr, "pathemu: nfq_open: %s (needs root)\n",
			strerror(errno));
		return 1;
	}
	bind_queues(&e, h);
	fd = nfq_fd(h);
	nfnl_rcvbufsiz(nfq_nfnlh(h), PATHEMU_RCVBUF);
	printf("ready\n");
	fflush(stdout);

	while (!got_stop) {
		wait_once(&e, fd, &waitmask);
		drain(&e, h, fd);
		uint64_t now = now_ns();
		for (int i = 0; i < e.nlines; i++)
			line_release(&e.lines[i], now);
		if (got_usr1) {
			got_usr1 = 0;
			print_stats(&e);
		}
	}

	/* Nothing we hold may be lost by our exit: accept it all, and what
	 * is still in the socket too. */
	e.stopping = 1;
	for (int i = 0; i < e.nlines; i++)
		line_release(&e.lines[i], UINT64_MAX);
	drain(&e, h, fd);
	print_stats(&e);
	for (int i = 0; i < e.nlines; i++)
		nfq_destroy_queue(e.lines[i].qh);
	nfq_close(h);
	return 0;
}
