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

#define LISTEN_TEXT_MAX (P2P_ADDR_TEXT_MAX + 8)
#define PORT_DIGITS_MAX 5

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

/*
 * "[ADDR:]PORT" for forward/unforward, checked as the daemon's
 * parse_listen does (port 0..65535 in digits, host by p2p_addr_parse, IPv6
 * only in brackets); a bare port or "localhost" mean 127.0.0.1. The
 * canonical text goes to out.
 */
static int check_listen(const char *s, char *out, size_t outlen)
{
	char host[P2P_ADDR_TEXT_MAX];
	const char *colon = strrchr(s, ':'), *port = colon ? colon + 1 : s;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	struct p2p_addr a;

	if (!*port || strlen(port) > PORT_DIGITS_MAX ||
	    strspn(port, "0123456789") != strlen(port) ||
	    strtoul(port, NULL, 10) > 65535 || hl >= sizeof(host))
		return -EINVAL;
	if (colon && s[0] != '[' && memchr(s, ':', hl))
		return -EINVAL; /* "::1:5" is not [::1]:5 */
	snprintf(host, sizeof(host), "%.*s", (int)hl, s);
	if (!colon || !strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (p2p_addr_parse(&a, host, true) < 0)
		return -EINVAL;
	snprintf(out, outlen, "%s:%s", host, port);
	return 0;
}

static int put_peer(json_t *req, const char *key, const char *id, char *err,
		    size_t errlen)
{
	if (check_peer_id(id) < 0)
		return usage_err(err, errlen,
				 "invalid_peer_id: peer: not a peer ID (52 "
				 "base32 characters)");
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

static int build_bootstrap(int argc, char **argv, json_t *req, char *err,
			   size_t errlen)
{
	struct p2p_addr a;

	if (p2p_addr_parse(&a, argv[0], false) < 0 || a.port == 0)
		return usage_err(err, errlen,
				 "bad_request: addr: expected ADDR:PORT (IPv6 "
				 "as [ADDR]:PORT)");
	json_object_set_new(req, "addr", json_string(argv[0]));
	return 0;
}

/* argv: NAME HOST:PORT, then ("allow", ID) pairs from the options. */
static int build_expose(int argc, char **argv, json_t *req, char *err,
			size_t errlen)
{
	json_t *allow = NULL;
	char msg[160];

	put_service(req, argv[0], err, errlen);
	json_object_set_new(req, "target", json_string(argv[1]));
	for (int i = 2; i + 1 < argc; i += 2) {
		if (check_peer_id(argv[i + 1]) < 0) {
			json_decref(allow);
			snprintf(msg, sizeof(msg),
				 "invalid_peer_id: allow: invalid peer ID "
				 "'%.60s'",
				 argv[i + 1]);
			return usage_err(err, errlen, msg);
		}
		if (!allow)
			allow = json_array();
		json_array_append_new(allow, json_string(argv[i + 1]));
	}
	if (allow)
		json_object_set_new(req, "allow", allow);
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

static const struct option expose_opts[] = {
    {"allow", required_argument, NULL, 'a'},
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
    {"status", "", "identity, listen addresses, NAT type, peers, DHT mode",
     NULL, 0, 0, CMD_TIMEOUT_MS, build_none, print_status, NULL, NULL},
    {"peers", "", "current links",
     "Columns: peer ID, address, direction (in/out), link kind\n"
     "(overlay/direct/relay) and round-trip time.",
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
    {"ping", "ID", "round trip over the best link", NULL, 1, 1,
     CMD_TIMEOUT_NET_MS, build_peer, print_ping, NULL, NULL},
    {"bootstrap", "ADDR:PORT", "join through one more peer now", NULL, 1, 1,
     CMD_TIMEOUT_NET_MS, build_bootstrap, print_bootstrap, NULL, NULL},
    {"expose", "NAME HOST:PORT [--allow ID]...", "offer a local TCP service",
     "Peers reach HOST:PORT as service NAME. Without --allow any peer may;\n"
     "with it, only the listed peer IDs.",
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
};
const size_t ctl_ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]);

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t i = 0; i < ctl_ncmds; i++)
		if (!strcmp(ctl_cmds[i].name, name))
			return &ctl_cmds[i];
	return NULL;
}
