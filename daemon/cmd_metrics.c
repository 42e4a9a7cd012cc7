/*
 * metrics (SPEC section 9): the node's counters in the Prometheus text
 * exposition format (version 0.0.4), in the reply's "text" field, so that
 * `p2pctl metrics` can feed node_exporter's textfile collector or a
 * scrape proxy as it is.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "bufq.h"
#include "cmd_node.h"
#include "link.h"
#include "nat/punch_sess.h"
#include "ovl.h"
#include "punch.h"
#include "reach.h"
#include "relay.h"
#include "tunnel.h"

static void metric(FILE *f, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	fprintf(f, "# HELP p2pd_%s %s\n# TYPE p2pd_%s %s\np2pd_%s %llu\n", name,
		help, name, type, name, (unsigned long long)v);
}

static void links_by_kind(FILE *f, struct p2pd_node *n)
{
	static const char *const kinds[] = {"overlay", "direct", "relay"};
	uint64_t count[3] = {0};

	for (struct link *l = link_first(n); l; l = link_next_of(l))
		if (link_is_up(l) && (unsigned)link_kind(l) < 3)
			count[link_kind(l)]++;
	fprintf(f, "# HELP p2pd_links Links up, by kind.\n"
		   "# TYPE p2pd_links gauge\n");
	for (size_t i = 0; i < 3; i++)
		fprintf(f, "p2pd_links{kind=\"%s\"} %llu\n", kinds[i],
			(unsigned long long)count[i]);
}

/* Issue 9: punch requests refused, by reason, and connection attempts. */
static void punch_metrics(FILE *f, struct p2pd_node *n)
{
	const struct p2p_psess_stats *p = punch_stats(n);
	const struct {
		const char *reason;
		uint64_t v;
	} r[] = {{"stale", p->stale},
		 {"replayed", p->replayed},
		 {"limited", p->limited},
		 {"busy", p->busy},
		 {"implausible", p->implausible}};

	fprintf(f, "# HELP p2pd_punch_refused_total Hole punch requests "
		   "refused, by reason.\n"
		   "# TYPE p2pd_punch_refused_total counter\n");
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		fprintf(f, "p2pd_punch_refused_total{reason=\"%s\"} %llu\n",
			r[i].reason, (unsigned long long)r[i].v);
	metric(f, "punch_candidates_dropped_total", "counter",
	       "Peer candidates dropped as implausible.", p->dropped);
	metric(f, "punch_connects_total", "counter",
	       "Hole punch connection attempts started.", p->connects);
	metric(f, "punch_connects_deferred_total", "counter",
	       "Hole punch connection attempts held back by a budget.",
	       p->deferred);
	metric(f, "punch_dial_me_total", "counter",
	       "Hole punch requests answered \"dial me\" (we are a server).",
	       p->dialable);
	metric(f, "punch_stale_syns_dropped_total", "counter",
	       "SYNs of punch peers at our listener, unanswered, dropped to "
	       "free a prime's four-tuple.",
	       punch_stale_syns(n));
	metric(f, "punch_upgrade_retries_total", "counter",
	       "Hole punches asked again for a relayed pair after its punch "
	       "failed.",
	       reach_stats(n)->upgrade_retries);
	metric(f, "punch_upgrades_total", "counter",
	       "Relayed pairs that got a direct link later.",
	       reach_stats(n)->upgrades);
}

/* Issue 10: what the data path holds, against its budgets. */
static void mem_metrics(FILE *f, struct p2pd_node *n)
{
	const struct bufpool *p = link_bufpool(n);
	struct tunnel_mem m;

	tunnel_mem(n, &m);
	metric(f, "tunnel_buffered_bytes", "gauge",
	       "Bytes received for local sockets, not yet taken by them.",
	       m.buffered);
	metric(f, "tunnel_windows_bytes", "gauge",
	       "Receive windows granted to peers on open tunnels.", m.windows);
	metric(f, "tunnel_window_growth_bytes", "gauge",
	       "Window growth charged to the daemon's budget.", m.grown);
	metric(f, "tunnel_window_growth_budget_bytes", "gauge",
	       "The daemon's budget of window growth.", STREAM_BUDGET_DAEMON);
	metric(f, "tunnel_window_base_bytes", "gauge",
	       "Base windows of tunnels peers opened, charged to the daemon's "
	       "base budget.",
	       m.base);
	metric(f, "tunnel_window_base_budget_bytes", "gauge",
	       "The daemon's budget of base windows for tunnels peers open "
	       "(beyond it they open with a smaller window).",
	       STREAM_BUDGET_BASE);
	metric(f, "tunnels_small_window", "gauge",
	       "Tunnels peers opened with less than a full window, the base "
	       "budget being spent.",
	       m.base_small);
	fprintf(f,
		"# HELP p2pd_buffer_chunks Pooled %u-byte buffer chunks: in "
		"use by links and tunnels, or kept free for reuse.\n"
		"# TYPE p2pd_buffer_chunks gauge\n"
		"p2pd_buffer_chunks{state=\"used\"} %llu\n"
		"p2pd_buffer_chunks{state=\"free\"} %llu\n",
		BUFQ_CHUNK, (unsigned long long)p->live,
		(unsigned long long)p->nfree);
}

static void write_metrics(FILE *f, struct p2pd_node *n)
{
	const struct node_stats *s = &n->stats;
	struct p2p_overlay_stats os;
	struct relay_stats rs;

	p2p_overlay_get_stats(ovl_overlay(n), &os);
	relay_get_stats(n, &rs);
	fprintf(f,
		"# HELP p2pd_info This daemon: version, NAT type, DHT mode.\n"
		"# TYPE p2pd_info gauge\n"
		"p2pd_info{version=\"%s\",nat=\"%s\",dht=\"%s\"} 1\n",
		P2PD_VERSION, p2p_nat_type_name(p2p_nat_type(ovl_nat(n))),
		p2p_overlay_is_server(ovl_overlay(n)) ? "server" : "client");
	metric(f, "uptime_seconds", "gauge", "Seconds since the start.",
	       (node_now(n) - n->start_ms) / 1000);
	metric(f, "peers", "gauge", "Peers with a link up.", link_count_up(n));
	metric(f, "keepalive_milliseconds", "gauge",
	       "PING interval on links (lowered when the NAT forgets idle "
	       "mappings sooner).",
	       ovl_keepalive_ms(n, NULL));
	links_by_kind(f, n);
	metric(f, "link_received_bytes_total", "counter",
	       "Bytes read on links (records and framing).", s->bytes_in);
	metric(f, "link_sent_bytes_total", "counter",
	       "Bytes written on links (records and framing).", s->bytes_out);
	metric(f, "dht_table_size", "gauge", "Routing table entries.",
	       os.table_size);
	metric(f, "lookups_total", "counter", "Overlay lookups started.",
	       os.lookups_started);
	metric(f, "routed_sent_total", "counter", "Routed messages sent.",
	       os.routed_sent);
	metric(f, "routed_delivered_total", "counter",
	       "Routed messages delivered to us.", os.routed_delivered);
	metric(f, "routed_forwarded_total", "counter",
	       "Routed messages passed on.", os.routed_forwarded);
	metric(f, "routed_dropped_total", "counter", "Routed messages dropped.",
	       os.routed_dropped);
	metric(f, "tunnels", "gauge", "Tunnels open or opening.",
	       tunnel_count(n));
	metric(f, "tunnels_blocked", "gauge",
	       "Tunnels not reading their local socket: the link's queue is "
	       "full, or a relayed link's circuit is out of credit.",
	       tunnel_blocked(n));
	mem_metrics(f, n);
	metric(f, "services", "gauge", "Services offered.", n->nservices);
	metric(f, "relay_circuits", "gauge", "Circuits we relay now.",
	       rs.circuits);
	metric(f, "relay_circuits_opened_total", "counter",
	       "Circuits we agreed to relay.", rs.opened);
	metric(f, "relay_bytes_total", "counter", "Bytes we relayed.",
	       rs.bytes);
	punch_metrics(f, n);
	metric(f, "relay_circuits_refused_total", "counter",
	       "Circuit requests refused over a limit.", rs.refused);
	fprintf(f,
		"# HELP p2pd_relay_circuits_closed_total Circuits we closed: "
		"no handshake in time, idle, over a byte budget, queue full "
		"(an end without credit), an end over its credit.\n"
		"# TYPE p2pd_relay_circuits_closed_total counter\n"
		"p2pd_relay_circuits_closed_total{reason=\"handshake\"} %llu\n"
		"p2pd_relay_circuits_closed_total{reason=\"idle\"} %llu\n"
		"p2pd_relay_circuits_closed_total{reason=\"budget\"} %llu\n"
		"p2pd_relay_circuits_closed_total{reason=\"queue\"} %llu\n"
		"p2pd_relay_circuits_closed_total{reason=\"credit\"} %llu\n",
		(unsigned long long)rs.closed_hs,
		(unsigned long long)rs.closed_idle,
		(unsigned long long)rs.closed_budget,
		(unsigned long long)rs.closed_queue,
		(unsigned long long)rs.closed_credit);
	metric(f, "relay_credit_sent_total", "counter",
	       "RELAY_CREDIT messages sent to circuit ends.", rs.credit_sent);
	metric(f, "relay_paced_total", "counter",
	       "Times a circuit's credit was held back for a full byte budget "
	       "(the circuit slows to the budget's rate).",
	       rs.paced);
	metric(f, "relay_frames_cut_total", "counter",
	       "Relayed links' frames that came cut across pass frames.",
	       s->relay_frames_cut);
	metric(f, "relay_records_placed_total", "counter",
	       "Relayed links' records sealed in place behind a pass frame.",
	       s->relay_records_placed);
	metric(f, "relay_records_copied_total", "counter",
	       "Relayed links' records copied from a scratch buffer.",
	       s->relay_records_copied);
	metric(f, "bad_frames_total", "counter", "Malformed frames.",
	       s->bad_frames);
	metric(f, "bad_messages_total", "counter", "Malformed messages.",
	       s->bad_msgs);
	metric(f, "unknown_messages_total", "counter",
	       "Messages of unknown type.", s->unknown_msgs);
	metric(f, "handshakes_failed_total", "counter", "Failed handshakes.",
	       s->hs_failed);
	metric(f, "links_refused_total", "counter",
	       "Links refused over the limits.", s->links_refused);
}

static void cmd_metrics(void *ctx, struct ctl_req *req, json_t *args)
{
	struct p2pd_node *n = ctx;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f) {
		ctl_reply_error(req, "internal", "out of memory");
		return;
	}
	write_metrics(f, n);
	if (fclose(f) != 0 || !text) {
		free(text);
		ctl_reply_error(req, "internal", "out of memory");
		return;
	}
	ctl_reply_ok(req, json_pack("{s:s%}", "text", text, len));
	free(text);
}

const struct ctl_command cmd_metrics_commands[] = {
    {"metrics", cmd_metrics},
};
const size_t cmd_metrics_ncommands =
    sizeof(cmd_metrics_commands) / sizeof(cmd_metrics_commands[0]);
