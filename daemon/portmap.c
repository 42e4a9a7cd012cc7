/*
 * Port mapping glue (portmap.h): one socket to the gateway, the core's
 * actions carried out, the mapping handed to the overlay.
 */
#include <errno.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ovl.h"
#include "portmap.h"
#include "portmap_upnp.h"

struct pm_sock {
	uv_udp_t udp;
	struct p2pd_node *n;
	uint8_t buf[P2P_PCP_MAX + 4]; /* + 4: an oversize answer shows */
};

struct portmap {
	bool enabled;
	struct p2p_pmap *core;
	struct pm_sock *sock; /* NULL: no gateway, or closed */
	uint8_t gw[4];	      /* the gateway the socket is connected to */
	struct p2p_addr client;
	uint64_t check_at;
	uint64_t badlog_at; /* bad answers: one log line per interval */
	/* UPnP-IGD, once PCP and NAT-PMP have failed (portmap_upnp.h). */
	bool stopped;	  /* portmap_stop ran: nothing more is asked */
	bool upnp_busy;	  /* a round is in the thread pool */
	bool upnp_mapped; /* upnp holds the mapping below */
	uint64_t upnp_at; /* next round (renewal or retry); MAX: none */
	uint64_t upnp_expires;
	struct pm_upnp_result upnp;
	struct p2p_addr shown; /* the mapping the overlay was last told */
};

#define PORTMAP_BADLOG_MS 60000

static void pm_random(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	randombytes_buf(buf, len);
}

/*
 * The default IPv4 route's gateway: /proc/net/route lines with
 * destination and mask 0, flags UP and GATEWAY, the lowest metric. The
 * kernel prints the address as the 32-bit value in host order, so its
 * bytes in memory are the address in network order. 0 or -ENOENT.
 */
static int default_gateway(uint8_t gw[4])
{
	FILE *f = fopen(PORTMAP_ROUTE_FILE, "re");
	char line[256];
	unsigned best = UINT32_MAX;
	int rc = -ENOENT;

	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char ifname[32];
		unsigned dst, g, flags, refcnt, use, metric, mask;
		if (sscanf(line, "%31s %x %x %x %u %u %u %x", ifname, &dst, &g,
			   &flags, &refcnt, &use, &metric, &mask) != 8)
			continue; /* the header line */
		if (dst != 0 || mask != 0 || g == 0 ||
		    (flags & (RTF_UP | RTF_GATEWAY)) !=
			(RTF_UP | RTF_GATEWAY) ||
		    metric >= best)
			continue;
		uint32_t v = g;
		memcpy(gw, &v, 4);
		best = metric;
		rc = 0;
	}
	fclose(f);
	return rc;
}

static void run(struct p2pd_node *n);

/* The mapping in force: PCP or NAT-PMP's, else UPnP's. */
static void effective(const struct portmap *pm, struct p2p_pmap_status *st)
{
	memset(st, 0, sizeof(*st));
	if (pm->core)
		p2p_pmap_status(pm->core, st);
	if (st->protocol == P2P_PMAP_NONE && pm->upnp_mapped) {
		st->protocol = P2P_PMAP_UPNP;
		st->external = pm->upnp.external;
		st->expires = pm->upnp_expires;
	}
}

/* Tell the overlay and the log when the mapping in force changed. */
static void apply_status(struct p2pd_node *n)
{
	struct p2p_pmap_status st;
	char a[P2P_ADDR_TEXT_MAX];

	if (n->stopping || n->pmap->stopped)
		return;
	effective(n->pmap, &st);
	if (p2p_addr_equal(&st.external, &n->pmap->shown))
		return;
	n->pmap->shown = st.external;
	if (st.protocol == P2P_PMAP_NONE) {
		log_info("port mapping: none");
		ovl_set_mapped(n, NULL);
		return;
	}
	p2p_addr_format(&st.external, a, sizeof(a));
	log_info("port mapping (%s): %s, for %llu s",
		 p2p_pmap_proto_name(st.protocol), a,
		 (unsigned long long)((st.expires - node_now(n)) / 1000));
	ovl_set_mapped(n, &st.external);
}

static void on_upnp(struct p2pd_node *n, const struct pm_upnp_result *r)
{
	struct portmap *pm = n->pmap;
	uint64_t now = node_now(n);

	pm->upnp_busy = false;
	if (r->rc == 0) {
		pm->upnp = *r;
		pm->upnp_mapped = true;
		pm->upnp_expires = now + (uint64_t)r->lease_s * 1000;
		pm->upnp_at = now + (uint64_t)r->lease_s * 500;
	} else {
		if (r->rc == -EPROTO)
			log_info(
			    "port mapping: the UPnP gateway refused (error "
			    "%d)",
			    r->upnp_error);
		else
			log_debug("port mapping: UPnP: %s", strerror(-r->rc));
		pm->upnp_mapped = false;
		pm->upnp_at = now + P2P_PMAP_RETRY_MS;
	}
	apply_status(n);
}

/* UPnP when PCP and NAT-PMP have failed, and its renewals. */
static void upnp_due(struct p2pd_node *n, uint64_t now)
{
	struct portmap *pm = n->pmap;
	struct p2p_pmap_status st;
	int rc;

	if (pm->upnp_mapped && now >= pm->upnp_expires) {
		pm->upnp_mapped = false;
		apply_status(n);
	}
	if (pm->upnp_busy || !pm->sock || !pm_upnp_available())
		return;
	p2p_pmap_status(pm->core, &st);
	if (!st.failed && !pm->upnp_mapped) {
		pm->upnp_at = UINT64_MAX; /* PCP or NAT-PMP asking, or held */
		return;
	}
	if (pm->upnp_at == UINT64_MAX)
		pm->upnp_at = now; /* they just failed */
	if (now < pm->upnp_at)
		return;
	rc = pm_upnp_map(n, node_listen_port(n, 4), on_upnp);
	if (rc < 0) {
		log_warnx("port mapping: UPnP: %s", strerror(-rc));
		pm->upnp_at = now + P2P_PMAP_RETRY_MS;
		return;
	}
	pm->upnp_busy = true;
}

static void run(struct p2pd_node *n)
{
	struct portmap *pm = n->pmap;
	struct p2p_pmap_action a;

	while (p2p_pmap_poll(pm->core, &a)) {
		if (a.type == P2P_PMAP_CHANGED) {
			apply_status(n);
			continue;
		}
		if (!pm->sock || a.len == 0)
			continue;
		uv_buf_t b = uv_buf_init((char *)a.buf, (unsigned)a.len);
		int rc = uv_udp_try_send(&pm->sock->udp, &b, 1, NULL);
		if (rc == UV_ECONNREFUSED)
			p2p_pmap_unreachable(pm->core, node_now(n));
		else if (rc < 0)
			log_debug("port mapping: send: %s", uv_strerror(rc));
	}
	if (!n->stopping && !pm->stopped)
		upnp_due(n, node_now(n));
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct pm_sock *s = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)s->buf, sizeof(s->buf));
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf,
		    const struct sockaddr *from, unsigned flags)
{
	struct pm_sock *s = u->data;
	struct p2pd_node *n = s->n;
	uint64_t now = node_now(n);
	int rc;

	(void)buf;
	(void)from; /* connected: only the gateway's port gets through */
	(void)flags;
	if (n->stopping || !n->pmap || n->pmap->sock != s)
		return;
	if (nread == UV_ECONNREFUSED) {
		/* ICMP port unreachable: no server for this protocol. */
		p2p_pmap_unreachable(n->pmap->core, now);
	} else if (nread > 0) {
		rc = p2p_pmap_input(n->pmap->core, now, s->buf, (size_t)nread);
		if (rc < 0 && rc != -ENOENT && now >= n->pmap->badlog_at) {
			n->pmap->badlog_at = now + PORTMAP_BADLOG_MS;
			log_warnx("port mapping: bad answer from the gateway "
				  "(%zd bytes): %s",
				  nread, p2p_strerror(rc));
		}
	}
	run(n);
}

static void on_sock_closed(uv_handle_t *h)
{
	struct pm_sock *s = h->data;

	node_handle_closed(s->n);
	free(s);
}

static void close_sock(struct p2pd_node *n)
{
	struct pm_sock *s = n->pmap->sock;

	if (!s)
		return;
	n->pmap->sock = NULL;
	uv_close((uv_handle_t *)&s->udp, on_sock_closed);
}

/* A socket connected to gw:5351, and our address towards it. */
static int open_sock(struct p2pd_node *n, const uint8_t gw[4],
		     struct p2p_addr *client)
{
	struct pm_sock *s = calloc(1, sizeof(*s));
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons(P2P_PMAP_PORT)};
	struct sockaddr_in me;
	int len = sizeof(me), rc;

	if (!s)
		return -ENOMEM;
	s->n = n;
	if ((rc = uv_udp_init(n->loop, &s->udp)) < 0) {
		free(s);
		return rc;
	}
	node_handle_opened(n);
	s->udp.data = s;
	n->pmap->sock = s;
	memcpy(&to.sin_addr, gw, 4);
	rc = uv_udp_connect(&s->udp, (const struct sockaddr *)&to);
	if (rc == 0)
		rc = uv_udp_getsockname(&s->udp, (struct sockaddr *)&me, &len);
	if (rc == 0)
		rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
	if (rc < 0) {
		close_sock(n);
		return rc;
	}
	memset(client, 0, sizeof(*client));
	client->family = 4;
	memcpy(client->ip, &me.sin_addr, 4);
	return 0;
}

/* At start and every PORTMAP_ROUTE_CHECK_MS: a new gateway or a new
 * address of ours towards it starts the mapping over. */
static void check_route(struct p2pd_node *n, uint64_t now)
{
	struct portmap *pm = n->pmap;
	struct p2p_addr client;
	char a[P2P_ADDR_TEXT_MAX];
	uint8_t gw[4];
	int rc;

	pm->check_at = now + PORTMAP_ROUTE_CHECK_MS;
	if (default_gateway(gw) < 0) {
		if (pm->sock) {
			log_info("port mapping: no default route");
			close_sock(n);
			pm->upnp_mapped = false;
			pm->upnp_at = UINT64_MAX;
			p2p_pmap_reset(pm->core);
			apply_status(n);
		}
		return;
	}
	if (pm->sock && !memcmp(gw, pm->gw, 4)) {
		/* Same gateway: has our address towards it changed? */
		struct sockaddr_in me;
		int len = sizeof(me);
		if (uv_udp_getsockname(&pm->sock->udp, (struct sockaddr *)&me,
				       &len) == 0 &&
		    !memcmp(&me.sin_addr, pm->client.ip, 4))
			return;
	}
	close_sock(n);
	pm->upnp_mapped = false; /* another gateway: its IGD is gone too */
	pm->upnp_at = UINT64_MAX;
	if ((rc = open_sock(n, gw, &client)) < 0) {
		log_warnx("port mapping: socket to the gateway: %s",
			  uv_strerror(rc));
		return;
	}
	memcpy(pm->gw, gw, 4);
	pm->client = client;
	client.port = 0;
	struct p2p_addr g = {.family = 4, .port = P2P_PMAP_PORT};
	memcpy(g.ip, gw, 4);
	p2p_addr_format(&g, a, sizeof(a));
	log_debug("port mapping: asking the gateway %s", a);
	p2p_pmap_start(pm->core, now, &client);
}

int portmap_module_init(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	struct portmap *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return -ENOMEM;
	n->pmap = pm;
	pm->enabled = cfg->port_mapping;
	pm->check_at = UINT64_MAX;
	pm->upnp_at = UINT64_MAX;
	return 0;
}

/* The listen port is known once the listeners are up: the first expire
 * makes the core. */
static bool ready(struct p2pd_node *n)
{
	struct portmap *pm = n->pmap;
	uint16_t port;

	if (pm->core)
		return true;
	port = node_listen_port(n, 4);
	if (!pm->enabled || port == 0) {
		pm->enabled = false;
		return false;
	}
	struct p2p_pmap_config c = {.internal_port = port, .random = pm_random};
	pm->core = p2p_pmap_new(&c);
	if (!pm->core) {
		pm->enabled = false;
		return false;
	}
	pm->check_at = 0;
	return true;
}

uint64_t portmap_next(void *arg)
{
	struct p2pd_node *n = arg;
	struct portmap *pm = n->pmap;
	uint64_t t;

	if (!pm || !pm->enabled || n->stopping || pm->stopped)
		return UINT64_MAX;
	if (!pm->core)
		return 0; /* ready() at the first expire */
	t = p2p_pmap_next(pm->core);
	if (pm->upnp_at < t && !pm->upnp_busy)
		t = pm->upnp_at;
	if (pm->upnp_mapped && pm->upnp_expires < t)
		t = pm->upnp_expires;
	return pm->check_at < t ? pm->check_at : t;
}

void portmap_expire(void *arg, uint64_t now)
{
	struct p2pd_node *n = arg;
	struct portmap *pm = n->pmap;

	if (!pm || !ready(n))
		return;
	if (now >= pm->check_at)
		check_route(n, now);
	if (p2p_pmap_next(pm->core) <= now)
		p2p_pmap_expire(pm->core, now);
	run(n);
}

void portmap_stop(struct p2pd_node *n)
{
	struct portmap *pm = n->pmap;

	if (!pm)
		return;
	pm->stopped = true;
	if (pm->core) {
		p2p_pmap_stop(pm->core, node_now(n));
		run(n); /* the delete goes out before the socket closes */
	}
	if (pm->upnp_mapped) {
		/* Bounded: a vanished gateway held the exit ~6 s before. */
		if (pm_upnp_unmap_bounded(&pm->upnp, node_listen_port(n, 4),
					  PM_UPNP_UNMAP_MS) == -ETIMEDOUT)
			log_info("port mapping: the UPnP gateway did not "
				 "answer the delete within %u ms",
				 PM_UPNP_UNMAP_MS);
		pm->upnp_mapped = false;
	}
	close_sock(n);
}

void portmap_free(struct p2pd_node *n)
{
	struct portmap *pm = n->pmap;

	if (!pm)
		return;
	p2p_pmap_free(pm->core);
	free(pm);
	n->pmap = NULL;
}

void portmap_status(const struct p2pd_node *n, struct p2p_pmap_status *st)
{
	memset(st, 0, sizeof(*st));
	if (n->pmap)
		effective(n->pmap, st);
}
