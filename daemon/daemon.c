/*
 * The wiring: the one place that shows how the daemon's services are put
 * together (daemon/README.md has the picture). Calls go down the layers
 *
 *   commands -> tunnels -> reach -> punch/relay -> ovl -> link -> hub
 *
 * and everything that flows up goes through what is registered here with
 * the hub: message handlers by type, overlay applications, link
 * observers (in the order they are told), clocks and after-input hooks.
 * Starting and stopping walk the same list, down and up.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "cmd_link.h"
#include "cmd_node.h"
#include "daemon.h"
#include "lan.h"
#include "natdepth.h"
#include "link.h"
#include "listen.h"
#include "log.h"
#include "names.h"
#include "node.h"
#include "ovl.h"
#include "portmap.h"
#include "progress.h"
#include "punch.h"
#include "reach.h"
#include "relay.h"
#include "tunnel.h"

#define DAEMON_COMMANDS_MAX 32

struct ctl_command p2pd_node_commands[DAEMON_COMMANDS_MAX];
size_t p2pd_node_ncommands;

static void add_commands(const struct ctl_command *c, size_t nc)
{
	for (size_t i = 0; i < nc && p2pd_node_ncommands < DAEMON_COMMANDS_MAX;
	     i++)
		p2pd_node_commands[p2pd_node_ncommands++] = c[i];
}

/* Messages by type, each to the one module that owns it. The link itself
 * owns HELLO, PING, PONG (which it also hands to ping) and GOAWAY. */
static int wire_messages(struct p2pd_node *n)
{
	int rc = 0;

	rc |= node_on_msg(n, P2P_MSG_FIND_NODE, 0, ovl_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_NODES, 0, ovl_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_ROUTED, 0, ovl_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_DIALBACK, 0, ovl_on_dialback, n);
	/* Before HELLO: a dial-back link says DIALBACK_OK and no HELLO;
	 * ovl_on_dialback_ok checks the link (not on relayed ones). */
	rc |= node_on_msg(n, P2P_MSG_DIALBACK_OK, NODE_MSG_BEFORE_HELLO,
			  ovl_on_dialback_ok, n);
	rc |= node_on_msg(n, P2P_MSG_PONG, NODE_MSG_ON_RELAYED,
			  cmd_node_on_pong, n);
	for (uint8_t t = P2P_MSG_STREAM_OPEN; t <= P2P_MSG_STREAM_RESET; t++)
		rc |= node_on_msg(n, t, NODE_MSG_ON_RELAYED, tunnel_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_RELAY_OPEN, 0, relay_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_RELAY_DATA, 0, relay_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_RELAY_CLOSE, 0, relay_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_RELAY_CREDIT, 0, relay_on_msg, n);
	rc |= node_on_msg(n, P2P_MSG_RELAY_PASS, 0, relay_on_msg, n);
	return rc;
}

/* Overlay applications (routed messages) and their routing failures. */
static int wire_apps(struct p2pd_node *n)
{
	int rc = 0;

	rc |=
	    node_on_app(n, P2P_APP_NAT, punch_on_app, punch_on_route_failed, n);
	rc |= node_on_app(n, P2P_APP_PING, cmd_node_on_app,
			  cmd_node_on_route_failed, n);
	rc |= node_on_app(n, P2P_APP_PONG, cmd_node_on_app,
			  cmd_node_on_route_failed, n);
	return rc;
}

/*
 * Link observers, in this order: punch marks a link to the peer of a
 * running punch as direct before the overlay decides what an inbound
 * link proves and who keeps a duplicate; reach and the waiting commands
 * see an up link after that; relay and tunnels clean up when a link goes.
 */
/* An agreed punch: the progress lines, and reach (a relay need not wait
 * for a punch that can hardly work). */
static void on_punch_scheduled(void *n, const struct p2p_peerid *peer,
			       enum p2p_nat_type peer_nat, bool primer,
			       size_t ncand, bool v6)
{
	progress_punch_scheduled(n, peer, peer_nat, primer);
	reach_punch_scheduled(n, peer, peer_nat, primer, ncand, v6);
}

static int wire_links(struct p2pd_node *n)
{
	int rc = 0;

	rc |= node_observe_links(n, &punch_link_hooks, n);
	rc |= node_observe_links(n, &ovl_link_hooks, n);
	rc |= node_observe_links(n, &relay_link_hooks, n);
	rc |= node_observe_links(n, &reach_link_hooks, n);
	rc |= node_observe_links(n, &cmd_node_link_hooks, n);
	rc |= node_observe_links(n, &tunnel_link_hooks, n);
	node_set_hello(n, ovl_fill_hello, n);
	rc |= progress_observe(n, tunnel_on_progress, n);
	punch_on_scheduled(n, on_punch_scheduled, n);
	punch_on_dial(n, reach_punch_dial, n);
	return rc;
}

/* Deadlines, and the work done after each input (links reaped first, so
 * that what follows sees them gone). */
static int wire_time(struct p2pd_node *n)
{
	int rc = 0;

	rc |= node_clock(n, link_next, link_expire, n);
	rc |= node_clock(n, ovl_next, ovl_expire, n);
	rc |= node_clock(n, punch_next, punch_expire, n);
	rc |= node_clock(n, reach_next, reach_expire, n);
	rc |= node_clock(n, relay_next, relay_expire, n);
	rc |= node_clock(n, tunnel_next, tunnel_expire, n);
	rc |= node_clock(n, cmd_node_next, cmd_node_expire, n);
	rc |= node_clock(n, lan_next, lan_expire, n);
	rc |= node_clock(n, portmap_next, portmap_expire, n);
	rc |= node_clock(n, natdepth_next, natdepth_expire, n);
	rc |= node_after(n, link_after, n);
	rc |= node_after(n, ovl_after, n);
	rc |= node_after(n, reach_after, n);
	/* Last: records queued by any hook leave before the loop waits. */
	rc |= node_after(n, link_flush, n);
	return rc;
}

/* Petnames from the state dir: a corrupt file is a warning, never a
 * refusal to start (SPEC section 9). */
static int names_start(struct p2pd_node *n)
{
	char path[PATH_MAX + 16], err[256] = "";
	int rc;

	n->names = names_new();
	if (!n->names)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s", n->state_dir, NAMES_FILE);
	rc = names_load(n->names, path, err, sizeof(err));
	if (rc < 0 && rc != -ENOENT)
		log_warnx("%s: %s: no names until one is added (which "
			  "rewrites the file)",
			  path, err[0] ? err : strerror(-rc));
	return 0;
}

static void free_services(struct p2pd_node *n)
{
	names_free(n->names);
	lan_free(n);
	portmap_free(n);
	natdepth_free(n);
	progress_free(n);
	cmd_node_free(n);
	tunnel_free(n);
	reach_free(n);
	relay_free(n);
	punch_free(n);
	ovl_free(n);
	link_module_free(n);
	admit_free(n->admit);
	free(n->services);
	sodium_memzero(&n->ident, sizeof(n->ident));
	free(n);
}

static int init_services(struct p2pd_node *n, uv_loop_t *loop,
			 const struct p2pd_config *cfg,
			 const struct p2p_identity *ident)
{
	int rc = node_init(n, loop, cfg, ident);

	if (rc == 0) /* unauthenticated connections' budget (admit.h) */
		rc = (n->admit = admit_new()) ? 0 : -ENOMEM;
	if (rc == 0)
		rc = link_module_init(n);
	if (rc == 0)
		rc = progress_module_init(n);
	if (rc == 0)
		rc = ovl_init(n, cfg);
	if (rc == 0)
		rc = punch_module_init(n, cfg->dial_me);
	if (rc == 0)
		rc = relay_module_init(n);
	if (rc == 0)
		rc = reach_module_init(n);
	if (rc == 0)
		rc = tunnel_module_init(n);
	if (rc == 0)
		rc = cmd_node_init(n);
	if (rc == 0)
		rc = portmap_module_init(n, cfg);
	if (rc == 0)
		rc = natdepth_module_init(n);
	if (rc == 0)
		rc = names_start(n);
	if (rc == 0 &&
	    (wire_messages(n) || wire_apps(n) || wire_links(n) || wire_time(n)))
		rc = -ENOSPC;
	return rc;
}

struct stopped {
	void (*done)(void *);
	void *arg;
	struct p2pd_node *n;
};

static void on_all_closed(void *arg)
{
	struct stopped *s = arg;
	void (*done)(void *) = s->done;
	void *darg = s->arg;

	free_services(s->n);
	free(s);
	if (done)
		done(darg);
}

/* Down the layers: requests are answered, then links and handles go. */
static void close_all(struct p2pd_node *n, void (*done)(void *), void *arg)
{
	struct stopped *s = calloc(1, sizeof(*s));

	n->stopping = true;
	cmd_node_stop(n);
	lan_stop(n);
	tunnel_stop(n);
	reach_stop(n);
	punch_stop(n);
	listen_stop_all(n);
	link_close_all(n);
	if (!s) {
		/* Nothing to free with later: leak the node, finish. */
		node_close(n, done, arg);
		return;
	}
	s->done = done;
	s->arg = arg;
	s->n = n;
	node_close(n, on_all_closed, s);
}

static void set_flag(void *arg)
{
	*(bool *)arg = true;
}

int p2pd_node_start(uv_loop_t *loop, const struct p2pd_config *cfg,
		    const struct p2p_identity *ident, struct p2pd_node **out,
		    char *err, size_t errlen)
{
	struct p2pd_node *n = calloc(1, sizeof(*n));
	int rc;

	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p2pd_node_ncommands = 0;
	add_commands(cmd_node_commands, cmd_node_ncommands);
	add_commands(cmd_link_commands, cmd_link_ncommands);
	add_commands(tunnel_commands, tunnel_ncommands);
	add_commands(cmd_names_commands, cmd_names_ncommands);
	add_commands(cmd_metrics_commands, cmd_metrics_ncommands);
	rc = init_services(n, loop, cfg, ident);
	for (size_t i = 0; i < cfg->nlisten && rc == 0; i++) {
		rc = listen_start(n, &cfg->listen[i], err, errlen);
		if (rc == -EAFNOSUPPORT) {
			/* SPEC 9: a warning; only no working address fails. */
			log_warnx("%s", err);
			err[0] = '\0';
			rc = 0;
		}
	}
	if (rc == 0 && cfg->nlisten > 0 && n->nlisten == 0) {
		snprintf(err, errlen,
			 "no listen address works on this host (use -l "
			 "ADDR:PORT, or \"listen\": [] for a node that does "
			 "not listen)");
		rc = -EADDRNOTAVAIL;
	}
	if (rc < 0) {
		/* Handles are freed by their close callbacks: let them run. */
		bool freed = false;
		if (!err[0])
			snprintf(err, errlen, "cannot start: %s",
				 strerror(-rc));
		if (n->links) {
			close_all(n, set_flag, &freed);
			while (!freed && uv_run(loop, UV_RUN_NOWAIT))
				;
		} else {
			free_services(n);
		}
		return rc;
	}
	tunnel_restore(n, cfg);
	ovl_join(n, cfg);
	/* LAN peers are dialled like bootstrap peers, once listening. */
	if (lan_start(n, cfg->lan_discovery) < 0)
		log_warnx("LAN discovery: out of memory; running on without "
			  "it");
	node_settle(n);
	*out = n;
	return 0;
}

void p2pd_node_stop(struct p2pd_node *n, void (*done)(void *arg), void *arg)
{
	ovl_stop(n);
	portmap_stop(n); /* the gateway's mapping deleted */
	close_all(n, done, arg);
}

/* The config file's services anew; those made by expose stay (and win
 * over a config service of the same name). */
void p2pd_node_set_services(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	size_t k = 0;

	for (size_t i = 0; i < n->nservices; i++)
		if (n->services[i].runtime)
			n->services[k++] = n->services[i];
	for (size_t i = 0; i < cfg->nservices && k < P2PD_MAX_SERVICES; i++) {
		size_t j;
		for (j = 0; j < k; j++)
			if (!strcmp(n->services[j].name, cfg->services[i].name))
				break;
		if (j == k)
			n->services[k++] = cfg->services[i];
	}
	n->nservices = k;
}

size_t p2pd_node_peer_count(struct p2pd_node *n)
{
	return link_count_up(n);
}

void p2pd_node_status_line(struct p2pd_node *n, char *out, size_t len)
{
	size_t np = link_count_up(n);

	snprintf(out, len, "%zu peer%s, NAT %s, DHT %s", np, np == 1 ? "" : "s",
		 p2p_nat_type_name(p2p_nat_type(ovl_nat(n))),
		 p2p_overlay_is_server(ovl_overlay(n)) ? "server" : "client");
}

void p2pd_node_listen_text(struct p2pd_node *n, char *out, size_t len)
{
	char addr[P2P_ADDR_TEXT_MAX];
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n->nlisten && used < len; i++) {
		p2p_addr_format(&n->listeners[i].addr, addr, sizeof(addr));
		used += (size_t)snprintf(out + used, len - used, "%s%s",
					 i ? " " : "", addr);
	}
}
