/*
 * p2pload: load generator and protocol probe for p2pd. A small table of
 * subcommands (WireGuard's wg(8) shape); see usage() for each.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "pl.h"

#define HS_TIMEOUT_US (10 * 1000000LL) /* one handshake, connect included */
#define POLL_MS 200

struct subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct subcmd subcmds[] = {
    {"handshakes", pl_cmd_handshakes,
     "ADDR:PORT [--count N] [--concurrency C]  complete N authenticated "
     "handshakes, print the rate"},
    {"hold", pl_cmd_hold,
     "ADDR:PORT [--count N]  hold N authenticated links (fresh identities) "
     "until killed"},
    {"status", pl_cmd_status,
     "SOCKET [--clients C] [--seconds S] [--reconnect]  control clients "
     "looping status (--reconnect: one connection per request)"},
    {"echo-baseline", pl_cmd_echo_baseline,
     "[--clients C] [--seconds S] [--reconnect]  the same loop against an "
     "in-process "
     "Unix echo server"},
    {"tcp-baseline", pl_cmd_tcp_baseline,
     "[ADDR:PORT] [--count N] [--concurrency C]  raw TCP connect/accept "
     "rate (in-process server without ADDR)"},
    {"garbage", pl_cmd_garbage,
     "ADDR:PORT  send random bytes; exit 0 once the daemon closes"},
    {"oversize", pl_cmd_oversize,
     "ADDR:PORT  send frame length 0xFFFFFFFF; exit 0 once the daemon "
     "closes"},
    {"wrongkey", pl_cmd_wrongkey,
     "ADDR:PORT EXPECTED_ID  handshake expecting EXPECTED_ID: exit 0 "
     "rejected (-EKEYREJECTED), 1 accepted, 3 I/O, 4 other failure"},
    {"slowloris", pl_cmd_slowloris,
     "ADDR:PORT [--max-ms M]  send 1 byte and wait; report when the daemon "
     "closed (exit 0), exit 1 if not within M ms"},
    {"relayflood", pl_cmd_relayflood,
     "ADDR:PORT [--count N]  open N relay circuits to us, ask N relays to "
     "nobody, send N RELAY_DATA and RELAY_CLOSE for unknown circuits, then "
     "an empty RELAY_DATA: exit 0 once the daemon closes the link, 1 if "
     "it does not, 3 I/O"},
    {"routedforge", pl_cmd_routedforge,
     "ADDR:PORT [--seconds S]  as a server link: send routed PINGs \"from\" "
     "a victim next to our ID, answer routed PINGs passing through us with "
     "forged PONGs; print the victim, then how many PONGs were reflected "
     "to it and how many we forged"},
    {"badaddrs", pl_cmd_badaddrs,
     "ADDR:PORT --port P [--control Q] [--seconds S]  a server link "
     "claiming 0.0.0.0:P "
     "in HELLO, answering FIND_NODE with contacts at 0.0.0.0, ::, "
     "224.0.0.1 and 255.255.255.255 (port P), and 127.0.0.1:Q"},
    {"dialbackok", pl_cmd_dialbackok,
     "ADDR:PORT [--seconds S]  listen there as a server; answer each "
     "DIALBACK with DIALBACK_OK on the link it came over"},
    {"routefail", pl_cmd_routefail,
     "ADDR:PORT [--seconds S]  two links, one a server: routed messages "
     "for a victim next to its ID are kept, and a ROUTE_FAIL for each is "
     "sent over the other link"},
    {"noread", pl_cmd_noread,
     "ADDR:PORT [--seconds S]  send PING and FIND_NODE as fast as the link "
     "takes them without reading, then read and count the replies"},
    {"relaycapture", pl_cmd_relaycapture,
     "ADDR:PORT [--ids K] [--count N] [--hold-ms M]  one host, K "
     "identities: ask the node to relay N circuits between our own IDs, "
     "never handshake on them; print how many it accepted, refused (by "
     "reason) and, holding M ms, closed and how long after their open"},
    {"badpayload", pl_cmd_badpayload,
     "ADDR:PORT [--links L] [--count N]  over L authenticated links in "
     "turn, N random or truncated relay messages and routed NAT (punch) "
     "payloads each, then a malformed relay message; exit 0 if every "
     "link came up, 3 if one did not"},
    {"findflood", pl_cmd_findflood,
     "ADDR:PORT [--seconds S]  send FIND_NODE as fast as the link takes "
     "them; print how many NODES came back"},
    {"punchflood", pl_cmd_punchflood,
     "ADDR:PORT [--ids K] [--count N] [--target IP:PORT] [--seen IP:PORT] "
     "[--replay R] [--wait-ms W] [--nat T] [--v1]  from K fresh identities "
     "(links), send N signed PUNCH_REQUESTs naming 8 ports of the target "
     "(default 127.0.0.1:PORT+1) as candidates, claiming NAT type T (0-4 as "
     "in nat/nat.h; default 1, none); --replay: send the first one again R "
     "times (new routed msgid, same signed bytes); print the answers by "
     "kind; --v1: the layout before issue 9 (for before/after figures)"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: p2pload COMMAND ARGS [--from IP] "
		     "[--claim-subnets] [--spread]\n");
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		fprintf(out, "  %s %s\n", subcmds[i].name, subcmds[i].usage);
}

long pl_opt(int argc, char **argv, const char *name, long dflt)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name)) {
			char *end;
			long v = strtol(argv[i + 1], &end, 10);
			return (*end || v < 0) ? -1 : v;
		}
	return dflt;
}

bool pl_flag(int argc, char **argv, const char *name)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

/* Is the link done (successfully or not), or out of time? */
static int hs_finished(struct pl_link *l, long long now)
{
	if (l->state == PL_UP && l->got_hello)
		return 1;
	if (l->state == PL_DEAD || now - l->t0_us > HS_TIMEOUT_US)
		return -1;
	return 0;
}

int pl_cmd_handshakes(int argc, char **argv)
{
	long count = pl_opt(argc, argv, "--count", 1000);
	long conc = pl_opt(argc, argv, "--concurrency", 16);
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	long started = 0, ok = 0, failed = 0, active = 0;
	struct pl_link *links;
	struct pollfd *fds;
	long long t0;

	if (argc < 2 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0 || count <= 0 ||
	    conc <= 0)
		return PL_USAGE;
	links = calloc((size_t)conc, sizeof(*links));
	fds = calloc((size_t)conc, sizeof(*fds));
	for (long i = 0; i < conc; i++)
		links[i].state = PL_DEAD, links[i].fd = -1;
	t0 = pl_now_us();
	while ((ok + failed < count) && !stop) {
		for (long i = 0; i < conc; i++) {
			struct pl_link *l = &links[i];
			if (l->sess || started >= count)
				continue;
			started++;
			if (pl_link_dial(l, &a, &ss, sl, NULL) < 0) {
				failed++;
				pl_link_free(l);
				continue;
			}
			active++;
		}
		for (long i = 0; i < conc; i++) {
			fds[i].fd = links[i].sess ? links[i].fd : -1;
			fds[i].events = pl_link_events(&links[i]);
		}
		if (poll(fds, (nfds_t)conc, POLL_MS) < 0 && errno != EINTR)
			break;
		for (long i = 0; i < conc; i++) {
			struct pl_link *l = &links[i];
			int r;
			if (!l->sess)
				continue;
			pl_link_io(l, fds[i].revents);
			if (!(r = hs_finished(l, pl_now_us())))
				continue;
			if (r > 0)
				ok++;
			else if (failed++ < 3)
				fprintf(stderr, "handshake failed: %s\n",
					l->err ? strerror(-l->err)
					       : "closed by peer");
			pl_link_free(l);
			active--;
		}
	}
	double secs = (double)(pl_now_us() - t0) / 1e6;
	printf("handshakes: ok=%ld failed=%ld seconds=%.3f rate=%.1f/s\n", ok,
	       failed, secs, secs > 0 ? (double)ok / secs : 0.0);
	for (long i = 0; i < conc; i++)
		pl_link_free(&links[i]);
	free(links);
	free(fds);
	return failed ? PL_FAIL : PL_OK;
}

/* Handshakes in flight at once: a daemon admits a bounded number of
 * unauthenticated connections (daemon/admit.h), as it should. */
#define HOLD_DIALING 32

int pl_cmd_hold(int argc, char **argv)
{
	long count = pl_opt(argc, argv, "--count", 100);
	struct p2p_addr a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct pl_link *links;
	struct pollfd *fds;
	long up = 0, dead = 0, next = 0;
	int reported = 0;

	if (argc < 2 || pl_sockaddr(argv[1], &a, &ss, &sl) < 0 || count <= 0)
		return PL_USAGE;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	links = calloc((size_t)count, sizeof(*links));
	fds = calloc((size_t)count, sizeof(*fds));
	for (long i = 0; i < count; i++)
		links[i].state = PL_DEAD, links[i].fd = -1;
	while (!stop) {
		/* Dial more while fewer than HOLD_DIALING handshake. */
		while (next < count && next - up - dead < HOLD_DIALING) {
			if (pl_link_dial(&links[next], &a, &ss, sl, NULL) < 0) {
				links[next].state = PL_DEAD;
				dead++;
			}
			next++;
		}
		for (long i = 0; i < count; i++) {
			fds[i].fd = i >= next || links[i].state == PL_DEAD
					? -1
					: links[i].fd;
			fds[i].events = pl_link_events(&links[i]);
		}
		if (poll(fds, (nfds_t)count, POLL_MS) < 0 && errno != EINTR)
			break;
		up = dead = 0;
		for (long i = 0; i < next; i++) {
			struct pl_link *l = &links[i];
			enum pl_state before = l->state;
			pl_link_io(l, fds[i].revents);
			if (l->state == PL_DEAD && before != PL_DEAD)
				fprintf(stderr, "hold: link %ld closed: %s\n",
					i,
					l->err ? strerror(-l->err)
					       : "closed by peer");
			up += l->state == PL_UP && l->got_hello;
			dead += l->state == PL_DEAD;
		}
		if (!reported && next == count && up + dead == count) {
			printf("holding %ld links (%ld failed)\n", up, dead);
			fflush(stdout);
			reported = 1;
		}
	}
	for (long i = 0; i < count; i++)
		pl_link_free(&links[i]);
	free(links);
	free(fds);
	return PL_OK;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "p2pload: libsodium failed to start\n");
		return PL_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? PL_USAGE : PL_OK;
	}
	/* harden9: global options (pl.h), anywhere after the command. */
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--claim-subnets"))
			pl_claim_subnets = true;
		if (!strcmp(argv[i], "--spread"))
			pl_spread = true;
		if (!strcmp(argv[i], "--from") &&
		    (i + 1 >= argc ||
		     p2p_addr_parse(&pl_from, argv[i + 1], true) < 0)) {
			fprintf(stderr, "p2pload: --from: expected an IP\n");
			return PL_USAGE;
		}
	}
	for (size_t i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
		if (!strcmp(argv[1], subcmds[i].name)) {
			int rc = subcmds[i].fn(argc - 1, argv + 1);
			if (rc == PL_USAGE)
				fprintf(stderr, "usage: p2pload %s %s\n",
					subcmds[i].name, subcmds[i].usage);
			return rc;
		}
	fprintf(stderr, "p2pload: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return PL_USAGE;
}
