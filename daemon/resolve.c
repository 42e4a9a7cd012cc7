#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeutil.h"
#include "resolve.h"

struct resolve {
	uv_getaddrinfo_t req;
	struct p2pd_node *n;
	resolve_fn done;
	uint64_t token;
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct resolve *r = req->data;
	struct p2pd_node *n = r->n;
	struct p2p_addr addrs[RESOLVE_ADDRS_MAX];
	size_t na = 0;

	for (struct addrinfo *ai = res; ai && na < RESOLVE_ADDRS_MAX;
	     ai = ai->ai_next)
		if (node_addr_from_sockaddr(&addrs[na], ai->ai_addr) == 0)
			na++;
	uv_freeaddrinfo(res);
	if (!n->stopping)
		r->done(n, r->token, addrs, na,
			status < 0 ? status
			: na	   ? 0
				   : UV_EAI_NONAME);
	free(r);
	node_handle_closed(n); /* last: it may finish the shutdown */
}

int resolve_start(struct p2pd_node *n, const char *host_port, resolve_fn done,
		  uint64_t token)
{
	/* No AI_ADDRCONFIG: a host with loopback only would get nothing,
	 * and a dial of a family we lack just fails. */
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	char host[P2P_HOST_NAME_MAX + 1], port[8];
	struct resolve *r;
	uint16_t p;
	int rc;

	if (p2p_host_port_parse(host_port, host, &p) < 0)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", (unsigned)p);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->n = n;
	r->done = done;
	r->token = token;
	r->req.data = r;
	rc = uv_getaddrinfo(n->loop, &r->req, on_resolved, host, port, &hints);
	if (rc < 0) {
		free(r);
		return rc;
	}
	node_handle_opened(n);
	return 0;
}
