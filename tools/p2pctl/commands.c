/*
 * Argument checks and request builders for every p2pctl command. Checks
 * here are syntax only (the daemon decides the rest), so that a typo is a
 * usage error (exit 2) without a round trip.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "print.h"

#define PEER_ID_TEXT_LEN 52
#define SERVICE_NAME_MAX 63
#define ADDR_TEXT_MAX 64

static int usage_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -EINVAL;
}

/*
 * 52 characters of RFC 4648 base32 (lowercase); 256 bits fill 51.2 of
 * them, so the last one carries 4 zero bits: only 'a' or 'q' fit there.
 */
int check_peer_id(const char *s)
{
	size_t len = strlen(s);

	if (len != PEER_ID_TEXT_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '2' && s[i] <= '7')))
			return -EINVAL;
	return (s[len - 1] == 'a' || s[len - 1] == 'q') ? 0 : -EINVAL;
}

int check_port(const char *s)
{
	char *end;
	long v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5)
		return -EINVAL;
	v = strtol(s, &end, 10);
	return (v >= 0 && v <= 65535) ? (int)v : -EINVAL;
}

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host and port. With numeric, the
 * host must be an IPv4/IPv6 literal (or "localhost", sent as 127.0.0.1).
 * The canonical "host:port" text goes to out.
 */
static int check_hostport(const char *s, int numeric, char *out, size_t outlen)
{
	char host[ADDR_TEXT_MAX];
	const char *colon = strrchr(s, ':');
	size_t hl;
	int v6 = 0;
	unsigned char tmp[16];

	if (!colon || colon == s || check_port(colon + 1) < 0)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return -EINVAL;
		s++;
		hl -= 2;
		v6 = 1;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (v6 && inet_pton(AF_INET6, host, tmp) != 1)
		return -EINVAL;
	if (!v6 && strchr(host, ':'))
		return -EINVAL; /* IPv6 needs brackets */
	if (!v6 && !strcmp(host, "localhost") && numeric)
		strcpy(host, "127.0.0.1");
	if (!v6 && numeric && inet_pton(AF_INET, host, tmp) != 1)
		return -EINVAL;
	snprintf(out, outlen, v6 ? "[%s]:%s" : "%s:%s", host, colon + 1);
	return 0;
}

static int check_service(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > SERVICE_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return -EINVAL;
	return 0;
}

static int put_peer(json_t *req, const char *key, const char *id, char *err,
		    size_t errlen)
{
	if (check_peer_id(id) < 0)
		return usage_err(err, errlen,
				 "invalid_peer_id: '%s' is not a peer ID "
				 "(52 base32 characters)",
				 id);
	json_object_set_new(req, key, json_string(id));
	return 0;
}

static int put_service(json_t *req, const char *name, char *err, size_t errlen)
{
	if (check_service(name) < 0)
		return usage_err(err, errlen,
				 "invalid service name '%s' (1-63 bytes, no "
				 "blanks)",
				 name);
	json_object_set_new(req, "service", json_string(name));
	return 0;
}

/* "[ADDR:]PORT": a bare port listens on 127.0.0.1. */
static int put_listen(json_t *req, const char *s, char *err, size_t errlen)
{
	char text[ADDR_TEXT_MAX + 8];

	if (check_port(s) >= 0)
		snprintf(text, sizeof(text), "127.0.0.1:%s", s);
	else if (check_hostport(s, 1, text, sizeof(text)) < 0)
		return usage_err(err, errlen,
				 "invalid listen address '%s' (want "
				 "[ADDR:]PORT)",
				 s);
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
	char text[ADDR_TEXT_MAX + 8];

	if (check_hostport(argv[0], 0, text, sizeof(text)) < 0)
		return usage_err(err, errlen,
				 "invalid address '%s' (want ADDR:PORT)",
				 argv[0]);
	json_object_set_new(req, "addr", json_string(text));
	return 0;
}

static int build_expose(int argc, char **argv, json_t *req, char *err,
			size_t errlen)
{
	char text[ADDR_TEXT_MAX + 8];
	json_t *allow = NULL;
	int rc;

	if ((rc = put_service(req, argv[0], err, errlen)) < 0)
		return rc;
	if (check_hostport(argv[1], 0, text, sizeof(text)) < 0)
		return usage_err(err, errlen,
				 "invalid target '%s' (want HOST:PORT)",
				 argv[1]);
	json_object_set_new(req, "target", json_string(text));
	for (int i = 2; i < argc; i++) {
		const char *id = argv[i];
		if (!strcmp(argv[i], "--allow") && i + 1 < argc)
			id = argv[++i];
		else if (!strncmp(argv[i], "--allow=", 8))
			id = argv[i] + 8;
		else
			return usage_err(err, errlen,
					 "unexpected argument '%s' (want "
					 "--allow ID)",
					 argv[i]);
		if (check_peer_id(id) < 0)
			return usage_err(err, errlen,
					 "invalid_peer_id: '%s' is not a peer "
					 "ID (52 base32 characters)",
					 id);
		if (!allow)
			allow = json_array();
		json_array_append_new(allow, json_string(id));
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

const struct ctl_cmd ctl_cmds[] = {
    {"id", "", "print this daemon's peer ID, alone on a line", NULL, 0, 0,
     CMD_TIMEOUT_MS, build_id, print_id},
    {"status", "", "identity, listen addresses, NAT type, peers, DHT mode",
     NULL, 0, 0, CMD_TIMEOUT_MS, build_none, print_status},
    {"peers", "", "current links",
     "Columns: peer ID, address, direction (in/out), link kind\n"
     "(overlay/direct/relay) and round-trip time.",
     0, 0, CMD_TIMEOUT_MS, build_none, print_peers},
    {"lookup", "ID", "closest known peers to ID",
     "Runs an overlay lookup for ID and lists the closest peers found.", 1, 1,
     CMD_TIMEOUT_NET_MS, build_peer, print_lookup},
    {"connect", "ID",
     "make a link; says how (direct/relay, "
     "existing/dial/punch/relay)",
     NULL, 1, 1, CMD_TIMEOUT_LONG_MS, build_peer, print_connect},
    {"ping", "ID", "round trip over the best link", NULL, 1, 1,
     CMD_TIMEOUT_NET_MS, build_peer, print_ping},
    {"bootstrap", "ADDR:PORT", "join through one more peer now", NULL, 1, 1,
     CMD_TIMEOUT_NET_MS, build_bootstrap, print_bootstrap},
    {"expose", "NAME HOST:PORT [--allow ID]...", "offer a local TCP service",
     "Peers reach HOST:PORT as service NAME. Without --allow any peer may;\n"
     "with it, only the listed peer IDs.",
     2, -1, CMD_TIMEOUT_MS, build_expose, print_expose},
    {"unexpose", "NAME", "stop offering a service", NULL, 1, 1, CMD_TIMEOUT_MS,
     build_service, print_unexpose},
    {"services", "", "what this daemon offers", NULL, 0, 0, CMD_TIMEOUT_MS,
     build_none, print_services},
    {"forward", "[ADDR:]PORT ID NAME",
     "listen locally; each connection becomes a tunnel",
     "A bare PORT listens on 127.0.0.1; port 0 picks a free one.", 3, 3,
     CMD_TIMEOUT_MS, build_forward, print_forward},
    {"unforward", "[ADDR:]PORT", "stop a forward", NULL, 1, 1, CMD_TIMEOUT_MS,
     build_unforward, print_unforward},
    {"forwards", "", "current forwards", NULL, 0, 0, CMD_TIMEOUT_MS, build_none,
     print_forwards},
    {"pipe", "ID NAME",
     "stdin/stdout to the remote service (ssh "
     "ProxyCommand)",
     "Example: ssh -o ProxyCommand='p2pctl pipe %h ssh' <peer-id>\n"
     "EOF on stdin half-closes; output continues until the remote closes.",
     2, 2, CMD_TIMEOUT_LONG_MS, build_pipe, NULL},
};
const size_t ctl_ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]);

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t i = 0; i < ctl_ncmds; i++)
		if (!strcmp(ctl_cmds[i].name, name))
			return &ctl_cmds[i];
	return NULL;
}
