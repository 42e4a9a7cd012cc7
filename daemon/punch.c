/*
 * TCP hole punching (SPEC section 7 "NAT traversal"): the libuv glue of
 * the sans-I/O cores nat/punch_sess.h (per-peer signalling sessions) and
 * nat/punch.h (the schedule each session runs).
 *
 * The requester (a tunnel or `connect` wants a link to a peer that cannot
 * be dialled) routes a signed PUNCH_REQUEST with its candidates to the
 * peer over the overlay (app P2P_APP_NAT); the peer answers PUNCH_REPLY
 * with its own candidates, or PUNCH_FAIL with a reason (both sides
 * endpoint-dependent, busy, not listening, over a limit, no plausible
 * candidate: the checks of issue 9, all in the session core, which this
 * file hands our wall clock, public addresses and the address of any
 * link we hold to the source with every input). Both then run the
 * schedule: the peer primes as soon as the REQUEST arrives, the requester
 * connects as soon as the REPLY does (nat/punch.h, the timing comment),
 * each from its listen port to every candidate of the other, again and
 * again through resets and timeouts, for P2P_PUNCH_TOTAL_MS. Every attempt is
 * an ordinary outbound link (link_punch) whose handshake expects the peer's ID;
 * the SYNs meet in the NATs as one TCP simultaneous open (both ends initiators:
 * the lower ID keeps that role, see link.c on_hs_frame), or one side's SYN
 * reaches the other's listener. The first link to HELLO wins and the
 * other attempts are closed. Punched links are kind LINK_DIRECT (shown as
 * link "direct"; `connect` answers method "punch").
 *
 * This file feeds the table its inputs (our local facts with each), then
 * drains its actions (drain()): it encodes, signs and routes payloads,
 * opens and closes attempt links, and tells the requester of a failure.
 * The table names attempts by (peer, index); the map below turns them
 * into link IDs, so nothing here points into a link.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "nat/punch.h"
#include "nat/punch_sess.h"
#include "natdepth.h"
#include "nodeutil.h"
#include "ovl.h"
#include "punch.h"

/* One attempt link of a session. */
struct attempt {
	struct p2p_peerid peer;
	size_t idx;
	uint32_t link; /* 0: slot free */
};

/* The routed signalling round trip to a peer, measured by our last
 * REQUEST -> REPLY exchange with it (logged: the connect matrix reads
 * it). */
struct sigrtt {
	struct p2p_peerid peer;
	uint64_t sent;	/* REQUEST routed at (0: no exchange running) */
	int64_t rtt_ms; /* < 0 unknown */
	uint64_t used;	/* for replacement: the oldest goes */
};

/* Whom to tell when our punch towards a peer fails. */
struct waiter {
	struct p2p_peerid peer;
	punch_failed_fn failed; /* NULL: slot free */
	void *arg;
};

/* An attempt we closed: its socket goes at the end of this loop turn
 * (link_after), so a connect() to the same candidate in the same turn
 * (a restarted schedule) finds the four-tuple still in use. */
struct closed {
	struct p2p_addr addr;
	uint64_t at; /* node_now() when closed */
};

struct punches {
	struct p2p_psess_table *tab;
	struct attempt att[P2P_PSESS_MAX * P2P_PUNCH_CAND_MAX];
	struct closed closed[P2P_PUNCH_CAND_MAX]; /* the newest, in turn */
	size_t nclosed;
	struct waiter w[P2P_PSESS_MAX];
	struct sigrtt rtt[PUNCH_RTT_CACHE];
	/* punch_start: the failure of the REQUEST it just queued. */
	const struct p2p_peerid *starting;
	int start_err;
	/* on_up: "to/from ADDR" of the link whose HELLO ends the punch. */
	char up[P2P_ADDR_TEXT_MAX + 8];
	punch_scheduled_fn scheduled; /* punch_on_scheduled */
	void *scheduled_arg;
	punch_dial_fn dial; /* punch_on_dial */
	void *dial_arg;
	bool dial_me;	     /* config dial_me */
	uint64_t stale_syns; /* SYNs at our listener dropped (do_connect) */
};

int punch_module_init(struct p2pd_node *n, bool dial_me)
{
	n->punch = calloc(1, sizeof(*n->punch));
	if (!n->punch)
		return -ENOMEM;
	n->punch->dial_me = dial_me;
	n->punch->tab = p2p_psess_new(&n->ident.id);
	if (!n->punch->tab) {
		free(n->punch);
		n->punch = NULL;
		return -ENOMEM;
	}
	return 0;
}

void punch_on_scheduled(struct p2pd_node *n, punch_scheduled_fn fn, void *arg)
{
	n->punch->scheduled = fn;
	n->punch->scheduled_arg = arg;
}

void punch_on_dial(struct p2pd_node *n, punch_dial_fn fn, void *arg)
{
	n->punch->dial = fn;
	n->punch->dial_arg = arg;
}

static void id_text(const struct p2p_peerid *peer,
		    char out[P2P_ID_TEXT_LEN + 1])
{
	p2p_peerid_to_text(peer, out);
}

/* ---- attempts and waiters ---- */

static struct attempt *att_find(struct p2pd_node *n,
				const struct p2p_peerid *peer, size_t idx)
{
	for (size_t i = 0; i < sizeof(n->punch->att) / sizeof(n->punch->att[0]);
	     i++) {
		struct attempt *a = &n->punch->att[i];
		if (a->link && a->idx == idx &&
		    p2p_peerid_equal(&a->peer, peer))
			return a;
	}
	return NULL;
}

static struct attempt *att_by_link(struct p2pd_node *n, uint32_t id)
{
	for (size_t i = 0; i < sizeof(n->punch->att) / sizeof(n->punch->att[0]);
	     i++)
		if (id && n->punch->att[i].link == id)
			return &n->punch->att[i];
	return NULL;
}

static void att_add(struct p2pd_node *n, const struct p2p_peerid *peer,
		    size_t idx, uint32_t link)
{
	struct attempt *a = att_find(n, peer, idx);

	for (size_t i = 0;
	     !a && i < sizeof(n->punch->att) / sizeof(n->punch->att[0]); i++)
		if (!n->punch->att[i].link)
			a = &n->punch->att[i];
	if (!a)
		return; /* cannot happen: sized for every attempt */
	a->peer = *peer;
	a->idx = idx;
	a->link = link;
}

/* Forget attempt (peer, idx); close its link unless its handshake is done
 * (a link that handshook is the peer's, whatever the punch thinks). */
static void att_drop(struct p2pd_node *n, const struct p2p_peerid *peer,
		     size_t idx, bool close)
{
	struct attempt *a = att_find(n, peer, idx);
	struct link *l;

	if (!a)
		return;
	l = link_get(n, a->link);
	a->link = 0;
	if (close && l && !link_established(l)) {
		struct closed *c =
		    &n->punch->closed[n->punch->nclosed++ % P2P_PUNCH_CAND_MAX];
		c->addr = *link_remote(l);
		c->at = node_now(n);
		link_abort(l, "punch attempt closed");
	}
}

/* Whether we closed an attempt to addr in this loop turn (its socket
 * still holds the four-tuple until the turn ends). */
static bool just_closed(struct p2pd_node *n, const struct p2p_addr *addr)
{
	for (size_t i = 0; i < P2P_PUNCH_CAND_MAX; i++)
		if (n->punch->closed[i].at == node_now(n) &&
		    p2p_addr_equal(&n->punch->closed[i].addr, addr))
			return true;
	return false;
}

static struct waiter *waiter_find(struct p2pd_node *n,
				  const struct p2p_peerid *peer)
{
	for (size_t i = 0; i < P2P_PSESS_MAX; i++)
		if (n->punch->w[i].failed &&
		    p2p_peerid_equal(&n->punch->w[i].peer, peer))
			return &n->punch->w[i];
	return NULL;
}

static int waiter_set(struct p2pd_node *n, const struct p2p_peerid *peer,
		      punch_failed_fn failed, void *arg)
{
	struct waiter *w = waiter_find(n, peer);

	for (size_t i = 0; !w && i < P2P_PSESS_MAX; i++)
		if (!n->punch->w[i].failed)
			w = &n->punch->w[i];
	if (!w)
		return -EBUSY;
	w->peer = *peer;
	w->failed = failed;
	w->arg = arg;
	return 0;
}

/* ---- measured round trips ---- */

static struct sigrtt *rtt_slot(struct p2pd_node *n,
			       const struct p2p_peerid *peer, bool make);

int64_t punch_sig_rtt(struct p2pd_node *n, const struct p2p_peerid *peer)
{
	struct sigrtt *c = rtt_slot(n, peer, false);

	return c ? c->rtt_ms : -1;
}

static struct sigrtt *rtt_slot(struct p2pd_node *n,
			       const struct p2p_peerid *peer, bool make)
{
	struct sigrtt *old = &n->punch->rtt[0];

	for (size_t i = 0; i < PUNCH_RTT_CACHE; i++) {
		struct sigrtt *c = &n->punch->rtt[i];
		if (c->used && p2p_peerid_equal(&c->peer, peer))
			return c;
		if (c->used < old->used)
			old = c;
	}
	if (!make)
		return NULL;
	memset(old, 0, sizeof(*old));
	old->peer = *peer;
	old->rtt_ms = -1;
	old->used = 1;
	return old;
}

/* The slowest round trip of our overlay links (< 0: none measured). */

/* ---- our local facts ---- */

/* Our own addresses: the local side of our links (what the routes pick). */
static size_t lan_addrs(struct p2pd_node *n, struct p2p_addr *out, size_t max)
{
	size_t c = 0;

	for (struct link *l = link_first(n); l && c < max;
	     l = link_next_of(l)) {
		struct p2p_addr a = *link_local(l);
		bool seen = false;
		if (!link_established(l) || link_kind(l) == LINK_DIRECT ||
		    a.family != 4)
			continue;
		a.port = 0;
		for (size_t i = 0; i < c; i++)
			if (p2p_addr_equal(&out[i], &a))
				seen = true;
		if (!seen)
			out[c++] = a;
	}
	return c;
}

/* Any global unicast destination (2000::/3): only routed, never sent to. */
#define PUNCH_V6_PROBE_DST                                                     \
	{                                                                      \
		0x20, [15] = 1                                                 \
	}

static bool global6(const struct p2p_addr *a)
{
	return a->family == 6 && !p2p_addr_is_private(a) && a->ip[0] != 0x00 &&
	       a->ip[0] != 0xff;
}

/*
 * The source address the kernel picks for IPv6 towards the internet
 * (RFC 6724 selection: with temporary "privacy" addresses, one of those):
 * a connected UDP socket sends nothing. Our punching SYNs leave the [::]
 * listen port from that address, and a stateful firewall on either side
 * only lets the peer's SYN in for the very address pair our SYN used, so
 * that is the one address worth offering. 0 or -errno (-ENETUNREACH: no
 * IPv6 route).
 */
static int v6_source(struct p2p_addr *out)
{
	struct sockaddr_in6 dst = {.sin6_family = AF_INET6,
				   .sin6_port = htons(9),
				   .sin6_addr.s6_addr = PUNCH_V6_PROBE_DST};
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0)
		rc = node_addr_from_sockaddr(out, (struct sockaddr *)&ss);
	return rc;
}

/*
 * Issue 11: our global IPv6 addresses (not from our links: a dual-stack
 * node may hold only IPv4 links and still have a direct IPv6 path to a
 * peer). Without NAT66 the address is the endpoint a peer connects to:
 * the kernel's source address towards the internet when there is one
 * (v6_source), else every global address of the interfaces (no default
 * route: a peer on a routed neighbour network may still be reached);
 * scoped (link-local), ULA, loopback and other non-global addresses are
 * left out (p2p_punch_predict checks again).
 */
static size_t global6_addrs(struct p2p_addr *out, size_t max)
{
	struct ifaddrs *ifs, *i;
	size_t c = 0;

	if (max > 0 && v6_source(&out[0]) == 0 && global6(&out[0])) {
		out[0].port = 0;
		return 1;
	}
	if (getifaddrs(&ifs) < 0)
		return 0;
	for (i = ifs; i && c < max; i = i->ifa_next) {
		struct p2p_addr a;
		bool dup = false;
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6 ||
		    node_addr_from_sockaddr(&a, i->ifa_addr) < 0 ||
		    !global6(&a))
			continue;
		for (size_t j = 0; j < c; j++)
			dup = dup || p2p_addr_equal(&out[j], &a);
		if (!dup)
			out[c++] = a;
	}
	freeifaddrs(ifs);
	return c;
}

size_t punch_global6(struct p2pd_node *n, struct p2p_addr *out, size_t max)
{
	uint16_t port = node_listen_port(n, 6);
	size_t c = port ? global6_addrs(out, max) : 0;

	for (size_t i = 0; i < c; i++)
		out[i].port = port;
	return c;
}

/* The facts of one input; lan, cand and pub point into the arrays. */
struct facts {
	struct p2p_psess_local me;
	struct p2p_addr lan[PUNCH_LAN_MAX];
	struct p2p_addr global6[PUNCH_GLOBAL6_MAX];
	struct p2p_addr cand[P2P_PUNCH_CAND_MAX];
	struct p2p_addr ext[P2P_NAT_EXTERNAL_MAX];
};

/* The wall clock, Unix ms: the signed time of what we send and the
 * freshness of what we get (issue 9: replays). The daemon owns clocks;
 * the core is handed this with every input. */
static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Issue 8: the gateway's port mapping (PCP, NAT-PMP, UPnP) is a way in
 * that no prediction shows (an endpoint-dependent NAT maps each of our
 * links elsewhere): offered first among our IPv4 candidates, after the
 * IPv6 ones (they need no NAT), the last one dropped if need be. */
static size_t with_mapping(struct p2p_addr *cand, size_t n,
			   const struct p2p_addr *map)
{
	size_t at = 0;

	for (size_t i = 0; i < n; i++)
		if (p2p_addr_equal(&cand[i], map))
			return n;
	while (at < n && cand[at].family == 6)
		at++;
	if (at == P2P_PUNCH_CAND_MAX)
		return n;
	if (n == P2P_PUNCH_CAND_MAX)
		n--;
	memmove(&cand[at + 1], &cand[at], (n - at) * sizeof(cand[0]));
	cand[at] = *map;
	return n + 1;
}

/*
 * Our facts for an input about peer. Issue 9: src_link is the far end of
 * an authenticated TCP link we hold to peer (the address we observed it
 * at, better than anything it claims; see nat/punch_sess.h for what is
 * used when there is none); seen, what we send as our observed public
 * address, is the mapping of our listen port that overlay peers reported,
 * else the newest external address they reported.
 */
static const struct p2p_psess_local *
facts(struct p2pd_node *n, const struct p2p_peerid *peer, struct facts *f)
{
	const struct p2p_nat *nat = ovl_nat(n);
	struct p2p_addr pmap;
	struct p2p_punch_local in = {.type = p2p_nat_type(nat),
				     .listen_port = node_listen_port(n, 4)};
	struct link *l = link_find_up(n, peer, LINK_KINDS_TCP);

	memset(f, 0, sizeof(*f));
	f->me.nat = in.type;
	f->me.listen4 = in.listen_port;
	f->me.listen6 = node_listen_port(n, 6);
	f->me.nlan = lan_addrs(n, f->lan, PUNCH_LAN_MAX);
	f->me.lan = f->lan;
	in.nexternal = p2p_nat_external(nat, f->ext, P2P_NAT_EXTERNAL_MAX);
	in.external = f->ext;
	in.nlan = f->me.nlan;
	in.lan = f->lan;
	if (f->me.listen6)
		in.nglobal6 = global6_addrs(f->global6, PUNCH_GLOBAL6_MAX);
	/* No global IPv6 address: no IPv6 path to punch (a [::] listener on
	 * a host with IPv6 on loopback only would dial the peer's IPv6
	 * candidates in vain, "network unreachable", for the whole schedule).
	 */
	if (in.nglobal6 == 0)
		f->me.listen6 = 0;
	in.listen6 = f->me.listen6;
	in.global6 = f->global6;
	if (p2p_nat_mapped(nat, 4, in.listen_port, &in.mapped) < 0)
		in.mapped.family = 0;
	f->me.ncand = p2p_punch_predict(&in, f->cand, P2P_PUNCH_CAND_MAX);
	f->me.cand = f->cand;
	f->me.dialable = ovl_dialable(n, &pmap) && n->punch->dial_me;
	if (pmap.family)
		f->me.ncand = with_mapping(f->cand, f->me.ncand, &pmap);
	f->me.wall_ms = wall_ms();
	f->me.pub = f->ext;
	f->me.npub = in.nexternal;
	f->me.prime_ttl = natdepth_ttl(n);
	if (in.mapped.family)
		f->me.seen = in.mapped;
	else if (in.nexternal > 0)
		f->me.seen = f->ext[0];
	if (f->me.seen.family && f->me.seen.port == 0)
		f->me.seen.port = in.listen_port;
	if (l)
		f->me.src_link = *link_remote(l);
	return &f->me;
}

/* ---- the table's actions ---- */

static void do_send(struct p2pd_node *n, const struct p2p_psess_action *a,
		    const char *id)
{
	uint8_t buf[P2P_PUNCH_PAYLOAD_MAX];
	uint64_t msgid = 0;
	size_t len;
	int rc;

	rc = p2p_punch_encode(&a->sig, &n->ident, &a->peer, buf, sizeof(buf),
			      &len);
	if (rc == 0)
		rc = ovl_route(n, &a->peer, P2P_APP_NAT, buf, len, &msgid);
	if (rc < 0)
		log_debug("punch %s: cannot route: %s", id, p2p_strerror(rc));
	if (rc == 0 && a->sig.type == P2P_PUNCH_REQUEST) {
		struct sigrtt *c = rtt_slot(n, &a->peer, true);
		c->sent = node_now(n);
		c->used = node_now(n) + 1;
		log_info("punch %s: requested (we are %s, %zu candidates)", id,
			 p2p_nat_type_name(a->sig.nat), a->sig.ncand);
	}
	p2p_psess_sent(n->punch->tab, node_now(n), a, rc, msgid);
}

static void do_scheduled(struct p2pd_node *n, const struct p2p_psess_action *a,
			 const char *id)
{
	char list[P2P_PUNCH_CAND_MAX * P2P_ADDR_TEXT_MAX] = "", at[64];
	struct sigrtt *c = rtt_slot(n, &a->peer, false);
	char rtt[48] = "";

	/* Our REQUEST's REPLY: the signalling path's round trip. */
	if (c && c->sent) {
		c->rtt_ms = (int64_t)(node_now(n) - c->sent);
		c->sent = 0;
		snprintf(rtt, sizeof(rtt), ", signalling rtt %lld ms",
			 (long long)c->rtt_ms);
	}

	for (size_t i = 0; i < a->ncand; i++) {
		p2p_addr_format(&a->cand[i], at, sizeof(at));
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%s%s", i > 0 ? " " : "", at);
	}
	log_info("punch %s: peer %s, candidates [%s], %s now%s", id,
		 p2p_nat_type_name(a->peer_nat), list,
		 a->primer ? "priming" : "connecting", rtt);
	/* An IPv6 path is likely only when the schedule dials IPv6 and we
	 * have a global IPv6 address of our own (listening on [::] alone
	 * makes no path: a host without IPv6 would wait for a punch that
	 * cannot work, instead of taking a relay at once). */
	if (n->punch->scheduled) {
		struct p2p_addr g6[PUNCH_GLOBAL6_MAX];
		bool v6 = p2p_punch_has_v6(a->cand, a->ncand) &&
			  punch_global6(n, g6, PUNCH_GLOBAL6_MAX) > 0;
		n->punch->scheduled(n->punch->scheduled_arg, &a->peer,
				    a->peer_nat, a->primer, a->ncand, v6);
	}
}

/*
 * The link of ours on the four-tuple (our listen port, addr) that a
 * connect() from the listen port found in use, if it is one we may take
 * for the attempt: a connection to addr that no other peer's handshake
 * has claimed (our own earlier attempt, still connecting; the peer's SYN
 * that reached our listener from that very candidate: the punched
 * connection itself, in its handshake).
 */
static struct link *holder(struct p2pd_node *n, const struct p2p_addr *addr,
			   const struct p2p_peerid *peer)
{
	uint16_t port = node_listen_port(n, addr->family);

	for (struct link *l = link_first(n); l; l = link_next_of(l)) {
		const struct p2p_peerid *who =
		    link_hello_rx(l) ? link_peer(l) : link_expect(l);
		/* A connecting link has no local address yet: only a punch
		 * attempt of ours (direct from its start) left from the
		 * listen port; a plain dial is someone else's. */
		bool connecting = link_outbound(l) &&
				  link_local(l)->port == 0 &&
				  link_kind(l) == LINK_DIRECT;
		if (link_kind(l) == LINK_RELAY ||
		    !p2p_addr_equal(link_remote(l), addr) ||
		    (link_local(l)->port != port && !connecting))
			continue;
		if (!who || p2p_peerid_equal(who, peer))
			return l;
	}
	return NULL;
}

/* What holds (our listen port, addr) when no link does, for the log:
 * the kernel's word for it (nat.h p2p_nat_sock_tuple_state). */
static const char *holder_text(struct p2pd_node *n, const struct p2p_addr *addr)
{
	static char text[96];
	struct sockaddr_storage ss;
	socklen_t len;
	int st = -EINVAL;

	if (node_addr_to_sockaddr(addr, &ss, &len) == 0)
		st = p2p_nat_sock_tuple_state(node_listen_port(n, addr->family),
					      (struct sockaddr *)&ss);
	if (st == TCP_SYN_RECV)
		return "the peer's SYN at our listener, not yet accepted";
	if (st == TCP_TIME_WAIT || st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 ||
	    st == TCP_CLOSING || st == TCP_LAST_ACK || st == TCP_CLOSE_WAIT)
		snprintf(text, sizeof(text),
			 "an earlier connection in %s (up to a minute)",
			 p2p_nat_tcp_state_name(st));
	else if (st >= 0)
		snprintf(text, sizeof(text), "a socket that is no link (%s)",
			 p2p_nat_tcp_state_name(st));
	else
		snprintf(text, sizeof(text),
			 "a socket gone meanwhile or unseen (%s)",
			 p2p_strerror(st));
	return text;
}

/*
 * A SYN of the peer's at our listener, from the candidate, whose SYN-ACK
 * went unanswered at least once, holds the four-tuple that our primes
 * need (nat.h p2p_nat_sock_drop_stale_syn says how it comes about; a
 * natlab-paths run saw one hold it for over 20 s, a whole punch and its
 * upgrade retries). Aborted, it frees the four-tuple: our prime goes out,
 * our NAT maps it, and the peer's next SYN gets in. 0 when dropped; else
 * -errno (always under the systemd unit, which grants neither
 * CAP_NET_ADMIN nor AF_NETLINK: there the SYN is waited out).
 */
static int drop_stale_syn(struct p2pd_node *n, const struct p2p_addr *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (node_addr_to_sockaddr(addr, &ss, &len) < 0)
		return -EINVAL;
	return p2p_nat_sock_drop_stale_syn(node_listen_port(n, addr->family),
					   (struct sockaddr *)&ss);
}

/* connect() to a->addr found the four-tuple in use (EADDRNOTAVAIL): a
 * connection of ours to that candidate (l, holder()'s answer) is the
 * attempt, else the kernel holds it (TIME_WAIT, a SYN at our listener not
 * yet accepted): wait for the attempt's hold instead of connecting again
 * every P2P_PUNCH_RETRY_MS. */
static void connect_held(struct p2pd_node *n, const struct p2p_psess_action *a,
			 const char *id, const char *at, struct link *l)
{
	struct p2p_psess_table *t = n->punch->tab;

	if (l && link_hello_rx(l)) {
		log_info("punch %s: %s is a link to the peer already", id, at);
		snprintf(n->punch->up, sizeof(n->punch->up), "%s %s",
			 link_outbound(l) ? "to" : "from", at);
		att_add(n, &a->peer, a->idx, link_id(l));
		p2p_psess_link_hello(t, node_now(n), &a->peer, a->idx);
		return;
	}
	if (l) {
		log_info("punch %s: %s: taking the %s connection on that "
			 "four-tuple as the attempt",
			 id, at,
			 link_outbound(l) ? "earlier outbound"
					  : "peer's inbound");
		att_add(n, &a->peer, a->idx, link_id(l));
		if (link_local(l)->port != 0)
			p2p_psess_attempt_connected(t, node_now(n), &a->peer,
						    a->idx);
		return;
	}
	if (just_closed(n, &a->addr)) {
		/* Our own attempt, closed a moment ago (a restart): free
		 * once this turn ends, so the usual short retry. */
		log_debug("punch %s: connect %s: our closed attempt's socket "
			  "goes at the end of this turn",
			  id, at);
		p2p_psess_attempt_failed(t, node_now(n), &a->peer, a->idx,
					 false);
		return;
	}
	log_info("punch %s: connect %s: four-tuple in use by %s: next try "
		 "after the attempt's hold",
		 id, at, holder_text(n, &a->addr));
	p2p_psess_attempt_held(t, node_now(n), &a->peer, a->idx);
}

static void do_connect(struct p2pd_node *n, const struct p2p_psess_action *a,
		       const char *id)
{
	char at[P2P_ADDR_TEXT_MAX];
	int err;
	struct link *held = NULL;
	struct link *l =
	    link_punch(n, &a->addr, &a->peer, a->ttl, a->lead, &err);
	bool in_use = !l && (err == UV_EADDRNOTAVAIL || err == UV_EADDRINUSE);

	/* No link of ours holds the four-tuple (connect_held), but a SYN
	 * of the peer's that nobody answers may: dropped, it frees the
	 * four-tuple for this very prime (its TTL, its turn). A failed
	 * connect makes no link, so held stays the answer after it. */
	if (in_use)
		held = holder(n, &a->addr, &a->peer);
	if (in_use && !held && drop_stale_syn(n, &a->addr) == 0) {
		p2p_addr_format(&a->addr, at, sizeof(at));
		log_info("punch %s: connect %s: dropped the peer's SYN at our "
			 "listener, unanswered for a second or more: "
			 "connecting again",
			 id, at);
		n->punch->stale_syns++;
		l = link_punch(n, &a->addr, &a->peer, a->ttl, a->lead, &err);
	}
	if (!l) {
		p2p_addr_format(&a->addr, at, sizeof(at));
		if (err == UV_EADDRNOTAVAIL || err == UV_EADDRINUSE) {
			connect_held(n, a, id, at, held);
			return;
		}
		log_debug("punch %s: connect %s: %s", id, at, uv_strerror(err));
		p2p_psess_attempt_failed(n->punch->tab, node_now(n), &a->peer,
					 a->idx, false);
		return;
	}
	att_add(n, &a->peer, a->idx, link_id(l));
}

static void do_failed(struct p2pd_node *n, const struct p2p_psess_action *a,
		      const char *id)
{
	struct waiter *w = a->requester ? waiter_find(n, &a->peer) : NULL;
	punch_failed_fn failed = w ? w->failed : NULL;
	void *arg = w ? w->arg : NULL;

	log_info("punch %s: %s", id, a->log);
	if (w)
		w->failed = NULL;
	/* Our own REQUEST could not go out: punch_start says so. */
	if (n->punch->starting && a->err < 0 &&
	    p2p_peerid_equal(n->punch->starting, &a->peer)) {
		n->punch->start_err = a->err;
		return;
	}
	if (failed)
		failed(arg, &a->peer, a->reason, a->msg);
}

/* The peer is a server: it answered "dial me" (nat/punch.h). Whoever
 * waits for the punch now waits for the dial instead. */
static void do_dial(struct p2pd_node *n, const struct p2p_psess_action *a,
		    const char *id)
{
	struct waiter *w = a->requester ? waiter_find(n, &a->peer) : NULL;
	struct sigrtt *c = rtt_slot(n, &a->peer, false);
	char at[P2P_ADDR_TEXT_MAX];

	if (c && c->sent) {
		c->rtt_ms = (int64_t)(node_now(n) - c->sent);
		c->sent = 0;
	}
	p2p_addr_format(&a->addr, at, sizeof(at));
	log_info("punch %s: the peer is dialable at %s: dialling it", id, at);
	if (w)
		w->failed = NULL;
	if (a->requester && n->punch->dial)
		n->punch->dial(n->punch->dial_arg, &a->peer, &a->addr);
}

/* Carry out every action the table has for us. */
static void drain(struct p2pd_node *n)
{
	struct p2p_psess_action a;
	char id[P2P_ID_TEXT_LEN + 1];

	while (p2p_psess_poll(n->punch->tab, &a)) {
		id_text(&a.peer, id);
		switch (a.type) {
		case P2P_PSESS_SEND:
			do_send(n, &a, id);
			break;
		case P2P_PSESS_SCHEDULED:
			do_scheduled(n, &a, id);
			break;
		case P2P_PSESS_CONNECT:
			do_connect(n, &a, id);
			break;
		case P2P_PSESS_ABORT:
			att_drop(n, &a.peer, a.idx, true);
			break;
		case P2P_PSESS_SUCCESS:
			log_info("punch %s: connected %s in %llu ms (%s, %u "
				 "attempts)",
				 id, n->punch->up, (unsigned long long)a.ms,
				 a.requester ? "requester" : "replier",
				 a.attempts);
			if (a.idx != P2P_PSESS_NONE)
				att_drop(n, &a.peer, a.idx, false);
			if (a.requester) {
				struct waiter *w = waiter_find(n, &a.peer);
				if (w)
					w->failed = NULL;
			}
			break;
		case P2P_PSESS_FAILED:
			do_failed(n, &a, id);
			break;
		case P2P_PSESS_DIAL:
			do_dial(n, &a, id);
			break;
		}
	}
}

/* ---- inputs ---- */

int punch_start(struct p2pd_node *n, const struct p2p_peerid *peer,
		const char *context, punch_failed_fn failed, void *arg)
{
	struct facts f;
	uint64_t nonce;
	int rc;

	randombytes_buf(&nonce, sizeof(nonce));
	rc = p2p_psess_start(n->punch->tab, node_now(n), peer, context, nonce,
			     facts(n, peer, &f));
	if (rc == -EAGAIN)
		rc = -EBUSY; /* ended a moment ago: its end is on the way */
	if (rc < 0)
		return rc;
	if (waiter_set(n, peer, failed, arg) < 0)
		return -EBUSY; /* cannot happen: one per session */
	n->punch->starting = peer;
	n->punch->start_err = 0;
	drain(n);
	n->punch->starting = NULL;
	return n->punch->start_err;
}

/* Issue 9: say why a REQUEST was refused (debug: a peer triggers it, and
 * the counters are in `p2pctl metrics`). */
static void log_refusal(struct p2pd_node *n, const struct p2p_peerid *src,
			const struct p2p_psess_stats *b)
{
	const struct p2p_psess_stats *a = p2p_psess_stats(n->punch->tab);
	char id[P2P_ID_TEXT_LEN + 1];
	const char *why = a->stale > b->stale	      ? "stale or future time"
			  : a->replayed > b->replayed ? "replayed nonce"
			  : a->limited > b->limited   ? "over a rate limit"
			  : a->busy > b->busy	      ? "no session slot"
			  : a->implausible > b->implausible
			      ? "no plausible candidate"
			      : NULL;

	if (!why)
		return;
	id_text(src, id);
	log_debug("punch %s: request refused: %s", id, why);
}

void punch_on_app(void *arg, const struct p2p_ov_action *a)
{
	struct p2pd_node *n = arg;
	struct p2p_psess_stats before;
	struct p2p_punch_sig s;
	struct p2p_peerid src = a->peer;
	struct facts f;
	int rc;

	/* a->data lives in the overlay: decoded before we call into it. */
	rc = p2p_punch_decode(&s, a->data, a->len, &src, &n->ident.id);
	if (rc < 0) {
		char id[P2P_ID_TEXT_LEN + 1];
		id_text(&src, id);
		n->stats.bad_msgs++;
		log_debug("punch message from %s dropped: %s", id,
			  p2p_strerror(rc));
		return;
	}
	if (n->stopping)
		return;
	before = *p2p_psess_stats(n->punch->tab);
	p2p_psess_on_sig(n->punch->tab, node_now(n), &src, &s,
			 facts(n, &src, &f));
	log_refusal(n, &src, &before);
	drain(n);
}

void punch_on_route_failed(void *arg, uint64_t msgid)
{
	struct p2pd_node *n = arg;

	if (p2p_psess_route_failed(n->punch->tab, node_now(n), msgid))
		drain(n);
}

/* ---- links ---- */

static void on_connected(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;
	struct attempt *a = att_by_link(n, link_id(l));

	if (!a)
		return;
	p2p_psess_attempt_connected(n->punch->tab, node_now(n), &a->peer,
				    a->idx);
	drain(n);
}

/* A link to the peer of a running punch is the punch's: through one of
 * our attempts, or the peer's SYN reached our listener. Marked before the
 * overlay decides what an inbound link proves (ovl.c on_established). */
static void on_established(void *arg, struct link *l)
{
	struct p2pd_node *n = arg;

	if (link_kind(l) != LINK_RELAY && !link_outbound(l) &&
	    p2p_psess_running(n->punch->tab, link_peer(l)))
		link_set_kind(l, LINK_DIRECT);
}

static void on_up(void *arg, struct link *l, bool first)
{
	struct p2pd_node *n = arg;
	struct attempt *att;
	char a[P2P_ADDR_TEXT_MAX];
	size_t idx = P2P_PSESS_NONE;

	if (!first || link_kind(l) == LINK_RELAY ||
	    !p2p_psess_running(n->punch->tab, link_peer(l)))
		return;
	/* Our attempts are direct from their start (link_punch); a plain
	 * dial of ours (the address a lookup found while an early punch
	 * ran, core/reach.h) stays a dial, and ends the punch all the same.
	 * An inbound link is the peer's SYN reaching our listener. */
	if (!link_outbound(l))
		link_set_kind(l, LINK_DIRECT);
	att = att_by_link(n, link_id(l));
	if (att && p2p_peerid_equal(&att->peer, link_peer(l))) {
		idx = att->idx;
		att->link = 0;
	}
	p2p_addr_format(link_remote(l), a, sizeof(a));
	snprintf(n->punch->up, sizeof(n->punch->up), "%s %s",
		 link_outbound(l) ? "to" : "from", a);
	p2p_psess_link_hello(n->punch->tab, node_now(n), link_peer(l), idx);
	drain(n);
}

static void on_gone(void *arg, struct link *l, const char *why)
{
	struct p2pd_node *n = arg;
	struct attempt *a = att_by_link(n, link_id(l));
	struct p2p_peerid peer;
	size_t idx;
	bool refused;

	if (!a)
		return;
	peer = a->peer;
	idx = a->idx;
	a->link = 0;
	refused = why && !strcmp(why, uv_strerror(UV_ECONNREFUSED));
	p2p_psess_attempt_failed(n->punch->tab, node_now(n), &peer, idx,
				 refused);
	drain(n);
}

const struct node_link_hooks punch_link_hooks = {
    .connected = on_connected,
    .established = on_established,
    .up = on_up,
    .gone = on_gone,
};

/* ---- time ---- */

uint64_t punch_stale_syns(struct p2pd_node *n)
{
	return n->punch->stale_syns;
}

const struct p2p_psess_stats *punch_stats(struct p2pd_node *n)
{
	return p2p_psess_stats(n->punch->tab);
}

uint64_t punch_next(void *arg)
{
	struct p2pd_node *n = arg;

	return p2p_psess_next_timer(n->punch->tab);
}

void punch_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;

	p2p_psess_tick(n->punch->tab, now);
	drain(n);
}

void punch_stop(struct p2pd_node *n)
{
	if (!n->punch)
		return;
	p2p_psess_stop(n->punch->tab);
	drain(n); /* the ABORT of every attempt in flight */
	memset(n->punch->w, 0, sizeof(n->punch->w));
}

void punch_free(struct p2pd_node *n)
{
	if (!n->punch)
		return;
	punch_stop(n);
	p2p_psess_free(n->punch->tab);
	free(n->punch);
	n->punch = NULL;
}
