/*
 * Argument checks and request builders for every p2pctl command. Checks
 * here are syntax only (the daemon decides the rest), so that a typo is a
 * usage error (exit 2) without a round trip.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "print.h"
#include "proto/addr.h"
#include "proto/peerid.h"
#include "proto/petname.h"

#define LISTEN_TEXT_MAX (P2P_ADDR_TEXT_MAX + 8)

/*
 * Messages are the daemon's own words for the same mistake ("CODE: text",
 * as p2pctl prints a daemon error), so a user sees one story whichever side
 * caught it; tests/integration/test_cli.py compares the two.
 */
static int usage_err(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

/* proto's decoder, the one the daemon uses: the two cannot disagree. */
int check_peer_id(const char *s)
{
	struct p2p_peerid id;

	return p2p_peerid_from_text(&id, s, strlen(s));
}

/* An ID or a name, either may end in ".p2p" (the daemon knows names). */
int check_peer_ref(const char *s)
{
	char name[P2P_NAME_MAX + 1];
	struct p2p_peerid id;

	return p2p_peer_ref_parse(s, strlen(s), &id, name) < 0 ? -EINVAL : 0;
}

/*
 * "[ADDR:]PORT" for forward/unforward, by proto's parser, the daemon's
 * own; "localhost" means 127.0.0.1 too. The text to send goes to out.
 */
static int check_listen(const char *s, char *out, size_t outlen)
{
	char buf[LISTEN_TEXT_MAX];
	struct p2p_addr a;

	if (!strncmp(s, "localhost:", 10)) {
		snprintf(buf, sizeof(buf), "127.0.0.1:%s", s + 10);
		s = buf;
	}
	if (strlen(s) >= LISTEN_TEXT_MAX || p2p_addr_parse_listen(&a, s) < 0)
		return -EINVAL;
	snprintf(out, outlen, "%s%s", strchr(s, ':') ? "" : "127.0.0.1:", s);
	return 0;
}

static int put_peer(json_t *req, const char *key, const char *id, char *err,
		    size_t errlen)
{
	if (check_peer_ref(id) < 0)
		return usage_err(err, errlen,
				 "invalid_peer_id: peer: not a peer ID (52 "
				 "base32 characters) or a name");
	json_object_set_new(req, key, json_string(id));
	return 0;
}

/* Service names and targets: the daemon alone judges them (host names
 * allowed), so they go out as given. */
static int put_service(json_t *req, const char *name, char *err, size_t errlen)
{
	json_object_set_new(req, "service", json_string(name));
	return 0;
}

static int put_listen(json_t *req, const char *s, char *err, size_t errlen)
{
	char text[LISTEN_TEXT_MAX];

	if (check_listen(s, text, sizeof(text)) < 0)
		return usage_err(err, errlen,
				 "bad_request: listen: expected [ADDR:]PORT "
				 "(IPv6 as [ADDR]:PORT)");
	json_object_set_new(req, "listen", json_string(text));
	return 0;
}

static int build_none(int argc, char **argv, json_t *req, char *err,
		      size_t errlen)
{
	return 0;
}

/* The control protocol has no "id": it is status's id field. */
static int build_id(int argc, char **argv, json_t *req, char *err,
		    size_t errlen)
{
	json_object_set_new(req, "cmd", json_string("status"));
	return 0;
}

static int build_peer(int argc, char **argv, json_t *req, char *err,
		      size_t errlen)
{
	return put_peer(req, "peer", argv[0], err, errlen);
}

/* ID, then ("count", N) from -c/--count. */
static int build_ping(int argc, char **argv, json_t *req, char *err,
		      size_t errlen)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		char *end;
		long v = strtol(argv[i + 1], &end, 10);
		if (*end || end == argv[i + 1] || v < 1 ||
		    v > CMD_PING_COUNT_MAX)
			return usage_err(err, errlen,
					 "bad_request: count: expected 1 to "
					 "100000 pings");
		json_object_set_new(req, CTL_COUNT_KEY, json_integer(v));
	}
	return put_peer(req, "peer", argv[0], err, errlen);
}

static int build_bootstrap(int argc, char **argv, json_t *req, char *err,
			   size_t errlen)
{
	char host[P2P_HOST_NAME_MAX + 1];
	struct p2p_addr a;
	uint16_t port;

	if ((p2p_addr_parse(&a, argv[0], false) < 0 || a.port == 0) &&
	    p2p_host_port_parse(argv[0], host, &port) < 0)
		return usage_err(err, errlen,
				 "bad_request: addr: expected ADDR:PORT or "
				 "HOST:PORT (IPv6 as [ADDR]:PORT)");
	json_object_set_new(req, "addr", json_string(argv[0]));
	return 0;
}

/*
 * argv: NAME HOST:PORT, then the options: ("allow", ID) pairs and
 * "allow-any". Who may use the service is never left implicit (SPEC
 * section 9): one of --allow ID... or --allow-any, not both.
 */
static int build_expose(int argc, char **argv, json_t *req, char *err,
			size_t errlen)
{
	json_t *allow = json_array();
	bool any = false;
	char msg[160];

	put_service(req, argv[0], err, errlen);
	json_object_set_new(req, "target", json_string(argv[1]));
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "allow-any")) {
			any = true;
			continue;
		}
		if (i + 1 >= argc || check_peer_id(argv[i + 1]) < 0) {
			json_decref(allow);
			snprintf(msg, sizeof(msg),
				 "invalid_peer_id: allow: invalid peer ID "
				 "'%.60s'",
				 i + 1 < argc ? argv[i + 1] : "");
			return usage_err(err, errlen, msg);
		}
		json_array_append_new(allow, json_string(argv[++i]));
	}
	if (any == (json_array_size(allow) > 0)) {
		json_decref(allow);
		return usage_err(err, errlen,
				 any ? "bad_request: --allow-any and --allow "
				       "exclude each other"
				     : "bad_request: say who may use the "
				       "service: --allow ID (repeatable) or "
				       "--allow-any (every peer)");
	}
	if (any) {
		json_decref(allow);
		json_object_set_new(req, "allow", json_string("any"));
	} else {
		json_object_set_new(req, "allow", allow);
	}
	return 0;
}

static int build_service(int argc, char **argv, json_t *req, char *err,
			 size_t errlen)
{
	return put_service(req, argv[0], err, errlen);
}

static int build_forward(int argc, char **argv, json_t *req, char *err,
			 size_t errlen)
{
	int rc;

	if ((rc = put_listen(req, argv[0], err, errlen)) < 0 ||
	    (rc = put_peer(req, "peer", argv[1], err, errlen)) < 0)
		return rc;
	return put_service(req, argv[2], err, errlen);
}

static int build_unforward(int argc, char **argv, json_t *req, char *err,
			   size_t errlen)
{
	return put_listen(req, argv[0], err, errlen);
}

static int build_pipe(int argc, char **argv, json_t *req, char *err,
		      size_t errlen)
{
	int rc;

	/* pipe is "open" on the wire */
	json_object_set_new(req, "cmd", json_string("open"));
	if ((rc = put_peer(req, "peer", argv[0], err, errlen)) < 0)
		return rc;
	return put_service(req, argv[1], err, errlen);
}

/* name add NAME ID | name rm NAME */
static int build_name(int argc, char **argv, json_t *req, char *err,
		      size_t errlen)
{
	int add = !strcmp(argv[0], "add");

	if ((!add && strcmp(argv[0], "rm")) || argc != (add ? 3 : 2))
		return usage_err(err, errlen,
				 "usage: p2pctl name add NAME ID | name rm "
				 "NAME");
	if (!p2p_name_valid(argv[1], strlen(argv[1])))
		return usage_err(err, errlen,
				 "bad_request: name: expected 1 to 32 of a-z "
				 "0-9 -, starting with a letter");
	json_object_set_new(req, "cmd",
			    json_string(add ? "name_add" : "name_rm"));
	json_object_set_new(req, "name", json_string(argv[1]));
	if (!add)
		return 0;
	if (check_peer_id(argv[2]) < 0)
		return usage_err(err, errlen,
				 "invalid_peer_id: peer: not a peer ID (52 "
				 "base32 characters)");
	json_object_set_new(req, "peer", json_string(argv[2]));
	return 0;
}

static const struct option ping_opts[] = {
    {"count", required_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

/* --allow-any has no short form: a value no character has. */
#define OPT_ALLOW_ANY 0x100

static const struct option expose_opts[] = {
    {"allow", required_argument, NULL, 'a'},
    {"allow-any", no_argument, NULL, OPT_ALLOW_ANY},
    {NULL, 0, NULL, 0},
};

/* Kept here rather than in print.c: one small command, one place. */
static void print_disconnect(json_t *r)
{
	json_t *c = json_object_get(r, "closed");

	printf("%s: %lld link(s) closed\n",
	       json_string_value(json_object_get(r, "peer"))
		   ? json_string_value(json_object_get(r, "peer"))
		   : "?",
	       (long long)json_integer_value(c));
}

const struct ctl_cmd ctl_cmds[] = {
    {"id", "", "print this daemon's peer ID, alone on a line", NULL, 0, 0,
     CMD_TIMEOUT_MS, build_id, print_id, NULL, NULL},
    {"status", "",
     "identity, listen addresses, NAT type, port mapping, peers, DHT mode",
     NULL, 0, 0, CMD_TIMEOUT_MS, build_none, print_status, NULL, NULL},
    {"peers", "", "current links",
     "Columns: peer ID (its name when it has one), address, direction\n"
     "(in/out), link kind (overlay/direct/relay), round-trip time, bytes\n"
     "in and out, the link's age, and for a relayed link the relay.",
     0, 0, CMD_TIMEOUT_MS, build_none, print_peers, NULL, NULL},
    {"lookup", "ID", "closest known peers to ID",
     "Runs an overlay lookup for ID and lists the closest peers found.", 1, 1,
     CMD_TIMEOUT_NET_MS, build_peer, print_lookup, NULL, NULL},
    {"connect", "ID",
     "make a link; says how (direct/relay, "
     "existing/dial/punch/relay)",
     NULL, 1, 1, CMD_TIMEOUT_LONG_MS, build_peer, print_connect, NULL, NULL},
    {"disconnect", "ID", "close every link to ID (its tunnels are reset)", NULL,
     1, 1, CMD_TIMEOUT_MS, build_peer, print_disconnect, NULL, NULL},
    {"ping", "[-c N] ID", "round trip over the best link",
     "Over a link to ID when there is one (direct, or relayed: then the\n"
     "relay is named), else routed through the overlay. -c N: N pings, a\n"
     "second apart, one line each; exit 0 when any was answered.",
     1, 1, CMD_TIMEOUT_NET_MS, build_ping, print_ping, "c:", ping_opts},
    {"bootstrap", "ADDR:PORT|HOST:PORT", "join through one more peer now",
     "A host name is resolved by the daemon, and each of its addresses\n"
     "tried in turn until one answers.",
     1, 1, CMD_TIMEOUT_NET_MS, build_bootstrap, print_bootstrap, NULL, NULL},
    {"expose", "NAME HOST:PORT --allow ID... | --allow-any",
     "offer a local TCP service",
     "Peers reach HOST:PORT as service NAME: with --allow, only the listed\n"
     "peer IDs; with --allow-any, every peer. One of them is\n"
     "required.",
     2, 2, CMD_TIMEOUT_MS, build_expose, print_expose, NULL, expose_opts},
    {"unexpose", "NAME", "stop offering a service", NULL, 1, 1, CMD_TIMEOUT_MS,
     build_service, print_unexpose, NULL, NULL},
    {"services", "", "what this daemon offers", NULL, 0, 0, CMD_TIMEOUT_MS,
     build_none, print_services, NULL, NULL},
    {"forward", "[ADDR:]PORT ID NAME",
     "listen locally; each connection becomes a tunnel",
     "A bare PORT listens on 127.0.0.1; port 0 picks a free one.", 3, 3,
     CMD_TIMEOUT_MS, build_forward, print_forward, NULL, NULL},
    {"unforward", "[ADDR:]PORT", "stop a forward", NULL, 1, 1, CMD_TIMEOUT_MS,
     build_unforward, print_unforward, NULL, NULL},
    {"forwards", "", "current forwards", NULL, 0, 0, CMD_TIMEOUT_MS, build_none,
     print_forwards, NULL, NULL},
    {"pipe", "ID NAME",
     "stdin/stdout to the remote service (ssh "
     "ProxyCommand)",
     "Example: ssh -o ProxyCommand='p2pctl pipe %h ssh' <peer-id>\n"
     "EOF on stdin half-closes; output continues until the remote closes.",
     2, 2, CMD_TIMEOUT_LONG_MS, build_pipe, NULL, NULL, NULL},
    {"name", "add NAME ID | rm NAME", "give a peer ID a name, or take it away",
     "NAME: 1 to 32 of a-z 0-9 -, starting with a letter. Wherever an ID\n"
     "is taken, NAME and NAME.p2p are taken too (ssh alice.p2p with\n"
     "ProxyCommand='p2pctl pipe %h ssh'). Kept by the daemon in its state "
     "dir.",
     2, 3, CMD_TIMEOUT_MS, build_name, NULL, NULL, NULL},
    {"names", "", "the names this daemon knows", NULL, 0, 0, CMD_TIMEOUT_MS,
     build_none, print_names, NULL, NULL},
    {"tunnels", "", "open tunnels",
     "Columns: peer, service, direction (out: we opened it; in: a peer\n"
     "opened one of our services), link kind, bytes in and out, age, state.",
     0, 0, CMD_TIMEOUT_MS, build_none, print_tunnels, NULL, NULL},
    {"metrics", "", "counters in the Prometheus text format", NULL, 0, 0,
     CMD_TIMEOUT_MS, build_none, print_metrics, NULL, NULL},
};
const size_t ctl_ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]);

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t i = 0; i < ctl_ncmds; i++)
		if (!strcmp(ctl_cmds[i].name, name))
			return &ctl_cmds[i];
	return NULL;
}
