/*
 * punchflood (issue 9): signed PUNCH_REQUESTs of our own making against
 * one daemon, over direct links from fresh identities, as a throwaway
 * attacker would send them: every candidate a port of one target of our
 * choice, a flood from one or several identities, a replay of one signed
 * request. The daemon's answers (routed back to us over the same links)
 * are counted by kind; what it connects to is for the caller to count.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "nat/punch.h"
#include "overlay/overlay.h"
#include "pl.h"

#define PF_IDS_MAX 64	  /* --ids */
#define PF_UP_MS 10000	  /* every link up and HELLO'd by then */
#define PF_WAIT_MS 3000	  /* answers after the last request */
#define PF_ROUTE_HOPS 8	  /* hops left on what we route */
#define PF_PAUSE_EVERY 16 /* requests between short pumps */
#define V1_OFFSET_MS 300  /* what v1 daemons sent as their start offset */

static struct {
	unsigned reply, fail[P2P_PUNCH_R_MAX], bad;
} ans;

static void on_nat(struct pl_link *l, const struct p2p_msg *m)
{
	struct p2p_punch_sig s;

	if (p2p_punch_decode(&s, m->u.routed.payload, m->u.routed.len,
			     &m->u.routed.src, &l->ident.id) < 0) {
		ans.bad++;
		return;
	}
	if (s.type == P2P_PUNCH_REPLY)
		ans.reply++;
	else if (s.type == P2P_PUNCH_FAIL)
		ans.fail[s.reason]++;
	else
		ans.bad++;
}

static const char *opt_str(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

static void pump_all(struct pl_link *ls, long k, long long ms)
{
	struct pollfd fds[PF_IDS_MAX];
	long long end = pl_now_us() + ms * 1000LL;

	do {
		for (long i = 0; i < k; i++)
			fds[i] = (struct pollfd){
			    .fd = ls[i].state == PL_DEAD ? -1 : ls[i].fd,
			    .events = pl_link_events(&ls[i])};
		if (poll(fds, (nfds_t)k, 10) > 0)
			for (long i = 0; i < k; i++)
				if (fds[i].revents)
					pl_link_io(&ls[i], fds[i].revents);
	} while (pl_now_us() < end);
}

static bool all_up(const struct pl_link *ls, long k)
{
	for (long i = 0; i < k; i++)
		if (ls[i].state != PL_UP || !ls[i].got_hello)
			return false;
	return true;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The same request in the layout before issue 9 (version 1: no time, no
 * seen address), for before/after figures against a daemon built before
 * it (--v1). Its answers are v1 too: counted as "bad". */
static int request_v1(struct pl_link *l, const struct p2p_punch_sig *s,
		      uint8_t *out, size_t *len)
{
	static const char ctx[] = "p2pd-punch-v1";
	crypto_sign_state st;
	size_t off = 15;

	memset(out, 0, P2P_PUNCH_PAYLOAD_MAX);
	out[0] = 1;
	out[1] = (uint8_t)s->type;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(s->nonce >> (56 - 8 * i));
	out[10] = (uint8_t)s->nat;
	out[12] = V1_OFFSET_MS >> 8; /* v1 daemons agreed on a start offset */
	out[13] = V1_OFFSET_MS & 0xff;
	out[14] = (uint8_t)s->ncand;
	for (size_t i = 0; i < s->ncand; i++, off += P2P_PUNCH_CAND_LEN) {
		out[off] = s->cand[i].family;
		memcpy(out + off + 1, s->cand[i].ip,
		       s->cand[i].family == 4 ? 4 : 16);
		out[off + 17] = (uint8_t)(s->cand[i].port >> 8);
		out[off + 18] = (uint8_t)s->cand[i].port;
	}
	memcpy(out + off, l->ident.pk, P2P_PUNCH_PK_LEN);
	off += P2P_PUNCH_PK_LEN;
	crypto_sign_init(&st);
	crypto_sign_update(&st, (const uint8_t *)ctx, sizeof(ctx) - 1);
	crypto_sign_update(&st, p2p_session_peer(l->sess)->b, P2P_ID_LEN);
	crypto_sign_update(&st, out, off);
	crypto_sign_final_create(&st, out + off, NULL, l->ident.sk);
	*len = off + P2P_PUNCH_SIG_LEN;
	return 0;
}

/* A REQUEST signed by l's identity for the daemon: 8 ports of target,
 * claiming to be seen at seen. */
static bool v1;

static int request(struct pl_link *l, const struct p2p_addr *target,
		   const struct p2p_addr *seen, enum p2p_nat_type nat,
		   uint8_t *out, size_t *len)
{
	struct p2p_punch_sig s = {.type = P2P_PUNCH_REQUEST,
				  .time_ms = wall_ms(),
				  .nat = nat,
				  .seen = *seen,
				  .ncand = P2P_PUNCH_CAND_MAX};

	randombytes_buf(&s.nonce, sizeof(s.nonce));
	for (size_t j = 0; j < s.ncand; j++) {
		s.cand[j] = *target;
		s.cand[j].port = (uint16_t)(target->port + j);
	}
	if (v1)
		return request_v1(l, &s, out, len);
	return p2p_punch_encode(&s, &l->ident, p2p_session_peer(l->sess), out,
				P2P_PUNCH_PAYLOAD_MAX, len);
}

/* Route payload to the daemon (a new msgid each time). */
static void send_routed(struct pl_link *l, const uint8_t *payload, size_t len)
{
	struct p2p_msg m = {.type = P2P_MSG_ROUTED};

	randombytes_buf(&m.u.routed.msgid, sizeof(m.u.routed.msgid));
	m.u.routed.hops = PF_ROUTE_HOPS;
	m.u.routed.src = l->ident.id;
	m.u.routed.dst = *p2p_session_peer(l->sess);
	m.u.routed.app = P2P_APP_NAT;
	m.u.routed.payload = payload;
	m.u.routed.len = len;
	pl_link_send(l, &m);
}

int pl_cmd_punchflood(int argc, char **argv)
{
	struct p2p_addr a, target, seen;
	struct sockaddr_storage ss;
	socklen_t sl;
	long k = pl_opt(argc, argv, "--ids", 1);
	long n = pl_opt(argc, argv, "--count", 1);
	long replay = pl_opt(argc, argv, "--replay", 0);
	long wait = pl_opt(argc, argv, "--wait-ms", PF_WAIT_MS);
	long nat = pl_opt(argc, argv, "--nat", P2P_NAT_NONE);
	const char *t = opt_str(argc, argv, "--target");
	const char *sn = opt_str(argc, argv, "--seen");
	uint8_t first[P2P_PUNCH_PAYLOAD_MAX], buf[P2P_PUNCH_PAYLOAD_MAX];
	size_t firstlen = 0, len;
	struct pl_link *ls;
	long long t0 = pl_now_us();
	unsigned answered;
	long sent = 0;

	if (argc < 2 || k < 1 || k > PF_IDS_MAX || n < 1 || replay < 0 ||
	    wait < 0 || nat < 0 || nat > P2P_NAT_ENDPOINT_DEPENDENT ||
	    pl_sockaddr(argv[1], &a, &ss, &sl) < 0)
		return PL_USAGE;
	v1 = pl_flag(argc, argv, "--v1");
	target = a;
	target.port = (uint16_t)(a.port + 1);
	if (t && p2p_addr_parse(&target, t, false) < 0)
		return PL_USAGE;
	seen = target;
	if (sn && p2p_addr_parse(&seen, sn, false) < 0)
		return PL_USAGE;
	ls = calloc((size_t)k, sizeof(*ls));
	if (!ls)
		return PL_IO;
	for (long i = 0; i < k; i++) {
		ls[i].fd = -1;
		ls[i].state = PL_DEAD;
	}
	/* One link at a time: the daemon admits only a few handshakes at
	 * once from one IP (daemon/admit.h). */
	for (long i = 0; i < k; i++) {
		if (pl_link_dial(&ls[i], &a, &ss, sl, NULL) < 0)
			break;
		ls[i].on_nat = on_nat;
		while (!all_up(ls, i + 1) && ls[i].state != PL_DEAD &&
		       pl_now_us() - t0 < PF_UP_MS * 1000LL)
			pump_all(ls, i + 1, 20);
	}
	if (!all_up(ls, k)) {
		printf("punchflood: not every link came up\n");
		for (long i = 0; i < k; i++)
			pl_link_free(&ls[i]);
		free(ls);
		return PL_IO;
	}
	for (long i = 0; i < n; i++) {
		struct pl_link *l = &ls[i % k];
		if (request(l, &target, &seen, (enum p2p_nat_type)nat, buf,
			    &len) < 0)
			break;
		if (i == 0) {
			memcpy(first, buf, len);
			firstlen = len;
		}
		send_routed(l, buf, len);
		sent++;
		if (i % PF_PAUSE_EVERY == PF_PAUSE_EVERY - 1)
			pump_all(ls, k, 20);
	}
	if (replay > 0) {
		/* Let the first be answered, then send its bytes again. */
		pump_all(ls, k, wait);
		for (long i = 0; i < replay; i++) {
			send_routed(&ls[0], first, firstlen);
			sent++;
		}
	}
	pump_all(ls, k, wait);
	answered = ans.reply + ans.bad;
	for (int r = 0; r < P2P_PUNCH_R_MAX; r++)
		answered += ans.fail[r];
	printf("punchflood: ids=%ld sent=%ld reply=%u limited=%u busy=%u "
	       "implausible=%u other_fail=%u bad=%u unanswered=%ld\n",
	       k, sent, ans.reply, ans.fail[P2P_PUNCH_R_LIMITED],
	       ans.fail[P2P_PUNCH_R_BUSY], ans.fail[P2P_PUNCH_R_IMPLAUSIBLE],
	       answered - ans.reply - ans.bad - ans.fail[P2P_PUNCH_R_LIMITED] -
		   ans.fail[P2P_PUNCH_R_BUSY] -
		   ans.fail[P2P_PUNCH_R_IMPLAUSIBLE],
	       ans.bad, sent - (long)answered);
	for (long i = 0; i < k; i++)
		pl_link_free(&ls[i]);
	free(ls);
	return PL_OK;
}
