/*
 * UPnP-IGD rounds in the thread pool (portmap_upnp.h). The worker touches
 * nothing but its job; the result goes to the loop in after_work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "portmap_upnp.h"

#ifdef HAVE_MINIUPNPC
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>

struct job {
	uv_work_t w;
	struct p2pd_node *n;
	uint16_t port;
	pm_upnp_cb cb;
	struct pm_upnp_result r;
};

bool pm_upnp_available(void)
{
	return true;
}

static void snport(char *out, size_t len, unsigned v)
{
	snprintf(out, len, "%u", v);
}

/* Blocking: discovery, the IGD, the mapping, the external address. */
static void work(uv_work_t *w)
{
	struct job *j = w->data;
	struct pm_upnp_result *r = &j->r;
	struct UPNPDev *devs;
	struct UPNPUrls urls;
	struct IGDdatas data;
	char port[8], lease[12], ext[40];
	int err = 0, igd, rc;

	r->rc = -ENOENT;
	devs = upnpDiscover(PM_UPNP_DISCOVER_MS, NULL, NULL, 0, 0, 2, &err);
	if (!devs)
		return;
	memset(&urls, 0, sizeof(urls));
	igd = UPNP_GetValidIGD(devs, &urls, &data, r->lan, sizeof(r->lan));
	freeUPNPDevlist(devs);
	if (igd != 1) { /* 1: a connected IGD */
		if (igd)
			FreeUPNPUrls(&urls);
		return;
	}
	snprintf(r->control, sizeof(r->control), "%s", urls.controlURL);
	snprintf(r->service, sizeof(r->service), "%s", data.first.servicetype);
	FreeUPNPUrls(&urls);
	snport(port, sizeof(port), j->port);
	snport(lease, sizeof(lease), PM_UPNP_LEASE_S);
	rc = UPNP_AddPortMapping(r->control, r->service, port, port, r->lan,
				 "p2pd", "TCP", NULL, lease);
	if (rc != UPNPCOMMAND_SUCCESS) {
		r->rc = -EPROTO;
		r->upnp_error = rc;
		return;
	}
	ext[0] = '\0';
	if (UPNP_GetExternalIPAddress(r->control, r->service, ext) !=
		UPNPCOMMAND_SUCCESS ||
	    p2p_addr_parse(&r->external, ext, true) < 0 ||
	    r->external.family != 4) {
		/* A mapping at an address we cannot name is no use. */
		UPNP_DeletePortMapping(r->control, r->service, port, "TCP",
				       NULL);
		r->rc = -EADDRNOTAVAIL;
		return;
	}
	r->external.port = j->port;
	r->lease_s = PM_UPNP_LEASE_S;
	r->rc = 0;
}

static void after(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct p2pd_node *n = j->n;

	if (status < 0 && j->r.rc == 0)
		j->r.rc = status;
	if (n->stopping) {
		if (j->r.rc == 0)
			pm_upnp_unmap_sync(&j->r, j->port);
	} else {
		j->cb(n, &j->r);
	}
	free(j);
	node_handle_closed(n);
}

int pm_upnp_map(struct p2pd_node *n, uint16_t port, pm_upnp_cb cb)
{
	struct job *j = calloc(1, sizeof(*j));
	int rc;

	if (!j)
		return -ENOMEM;
	j->n = n;
	j->port = port;
	j->cb = cb;
	j->w.data = j;
	rc = uv_queue_work(n->loop, &j->w, work, after);
	if (rc < 0) {
		free(j);
		return rc;
	}
	node_handle_opened(n);
	return 0;
}

void pm_upnp_unmap_sync(const struct pm_upnp_result *r, uint16_t port)
{
	char p[8];

	snport(p, sizeof(p), port);
	UPNP_DeletePortMapping(r->control, r->service, p, "TCP", NULL);
}

#else /* built without libminiupnpc */

bool pm_upnp_available(void)
{
	return false;
}

int pm_upnp_map(struct p2pd_node *n, uint16_t port, pm_upnp_cb cb)
{
	(void)n;
	(void)port;
	(void)cb;
	return -ENOTSUP;
}

void pm_upnp_unmap_sync(const struct pm_upnp_result *r, uint16_t port)
{
	(void)r;
	(void)port;
}

#endif
