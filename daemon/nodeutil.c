#include "nodeutil.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int node_addr_to_sockaddr(const struct p2p_addr *a, struct sockaddr_storage *ss,
			  socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		memcpy(&s4->sin_addr, a->ip, 4);
		*len = sizeof(*s4);
		return 0;
	}
	if (a->family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		memcpy(&s6->sin6_addr, a->ip, 16);
		*len = sizeof(*s6);
		return 0;
	}
	return -EINVAL;
}

int node_addr_from_sockaddr(struct p2p_addr *a, const struct sockaddr *sa)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		a->family = 4;
		memcpy(a->ip, &s4->sin_addr, 4);
		a->port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
						     0, 0, 0, 0, 0xff, 0xff};
		/* A v4-mapped peer is an IPv4 peer as far as anyone cares. */
		if (!memcmp(&s6->sin6_addr, v4mapped, 12)) {
			a->family = 4;
			memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
		} else {
			a->family = 6;
			memcpy(a->ip, &s6->sin6_addr, 16);
		}
		a->port = ntohs(s6->sin6_port);
		return 0;
	}
	return -EINVAL;
}

bool node_addr_is_unspec(const struct p2p_addr *a)
{
	static const uint8_t zero[16];
	if (a->family == 4)
		return !memcmp(a->ip, zero, 4);
	if (a->family == 6)
		return !memcmp(a->ip, zero, 16);
	return false;
}

bool node_dup_keep_new(const struct p2p_peerid *self,
		       const struct p2p_peerid *peer, bool existing_outbound,
		       bool new_outbound)
{
	if (existing_outbound == new_outbound)
		return false; /* same initiator: keep the older link */
	/* The outbound link was initiated by us, the inbound one by peer. */
	bool self_lower = memcmp(self->b, peer->b, P2P_ID_LEN) < 0;
	bool keep_outbound = self_lower;
	return new_outbound == keep_outbound;
}

static bool same_ip(const struct p2p_addr *a, const struct p2p_addr *b)
{
	return a->family == b->family &&
	       !memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16);
}

static bool usable(const struct p2p_addr *a)
{
	return (a->family == 4 || a->family == 6) && a->port != 0;
}

int node_hello_dial_addr(const struct p2p_addr *addrs, size_t naddrs,
			 const struct p2p_addr *remote, struct p2p_addr *out)
{
	const struct p2p_addr *best = NULL;
	int best_rank = 0;

	for (size_t i = 0; i < naddrs; i++) {
		const struct p2p_addr *a = &addrs[i];
		int rank;
		if (!usable(a))
			continue;
		if (same_ip(a, remote))
			rank = 4;
		else if (a->family == remote->family && node_addr_is_unspec(a))
			rank = 3;
		else if (a->family == remote->family)
			rank = 2;
		else if (!node_addr_is_unspec(a))
			rank = 1;
		else
			continue; /* wildcard of another family: no IP to use */
		if (rank > best_rank) {
			best = a;
			best_rank = rank;
		}
	}
	if (!best)
		return -ENOENT;
	*out = *best;
	if (node_addr_is_unspec(out))
		memcpy(out->ip, remote->ip, sizeof(out->ip));
	return 0;
}

bool node_service_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > P2P_SERVICE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool hostname_ok(const char *h, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return false;
	}
	return true;
}

bool node_target_ok(const char *target)
{
	struct p2p_addr a;
	if (p2p_addr_parse(&a, target, false) == 0)
		return a.port != 0;
	const char *colon = strrchr(target, ':');
	if (!colon || !hostname_ok(target, (size_t)(colon - target)))
		return false;
	const char *p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		return false;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return false;
	long port = strtol(p, NULL, 10);
	return port >= 1 && port <= 65535;
}

/*
 * Who may use a service, always said (SPEC section 9): a list of peer IDs
 * (empty: nobody) or "any". An absent "allow" used to mean every peer,
 * which opened services to the whole network by omission.
 */
static int parse_allow(json_t *allow, struct p2pd_service *svc, char *msg,
		       size_t msglen)
{
	size_t i;
	json_t *v;

	if (json_is_string(allow) && !strcmp(json_string_value(allow), "any")) {
		svc->allow_any = true;
		return 0;
	}
	if (!json_is_array(allow)) {
		snprintf(msg, msglen,
			 "allow: expected an array of peer IDs, or \"any\" "
			 "for every peer");
		return -EINVAL;
	}
	if (json_array_size(allow) > P2PD_MAX_ALLOW) {
		snprintf(msg, msglen, "allow: more than %d peer IDs",
			 P2PD_MAX_ALLOW);
		return -EINVAL;
	}
	svc->allow_any = false;
	json_array_foreach(allow, i, v)
	{
		if (!json_is_string(v)) {
			snprintf(msg, msglen,
				 "allow: expected peer ID strings");
			return -EINVAL;
		}
		if (p2p_peerid_from_text(&svc->allow[i], json_string_value(v),
					 json_string_length(v)) < 0) {
			snprintf(msg, msglen, "allow: invalid peer ID '%.60s'",
				 json_string_value(v));
			return -EBADR;
		}
	}
	svc->nallow = json_array_size(allow);
	return 0;
}

int node_service_from_args(json_t *args, struct p2pd_service *svc, char *msg,
			   size_t msglen)
{
	json_t *name = json_object_get(args, "service");
	json_t *target = json_object_get(args, "target");

	memset(svc, 0, sizeof(*svc));
	if (!json_is_string(name)) {
		snprintf(msg, msglen, "service: expected a string");
		return -EINVAL;
	}
	if (!node_service_name_ok(json_string_value(name))) {
		snprintf(msg, msglen,
			 "service: 1 to %d characters of A-Z a-z 0-9 . _ -",
			 P2P_SERVICE_NAME_MAX);
		return -EINVAL;
	}
	if (!json_is_string(target)) {
		snprintf(msg, msglen, "target: expected a string HOST:PORT");
		return -EINVAL;
	}
	const char *t = json_string_value(target);
	if (strlen(t) >= sizeof(svc->target) || !node_target_ok(t)) {
		snprintf(msg, msglen, "target: '%.100s' is not HOST:PORT", t);
		return -EINVAL;
	}
	snprintf(svc->name, sizeof(svc->name), "%s", json_string_value(name));
	snprintf(svc->target, sizeof(svc->target), "%s", t);
	if (p2p_addr_parse(&svc->target_addr, t, false) < 0)
		memset(&svc->target_addr, 0, sizeof(svc->target_addr));
	return parse_allow(json_object_get(args, "allow"), svc, msg, msglen);
}

json_t *node_service_to_json(const struct p2pd_service *svc)
{
	json_t *allow;
	char id[P2P_ID_TEXT_LEN + 1];

	if (svc->allow_any) {
		allow = json_string("any");
	} else {
		allow = json_array();
		for (size_t i = 0; i < svc->nallow; i++) {
			p2p_peerid_to_text(&svc->allow[i], id);
			json_array_append_new(allow, json_string(id));
		}
	}
	return json_pack("{s:s, s:s, s:o}", "service", svc->name, "target",
			 svc->target, "allow", allow);
}
