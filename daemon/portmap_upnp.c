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
#include <pthread.h>
#include <time.h>

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
		if (j->r.rc == 0 &&
		    pm_upnp_unmap_bounded(&j->r, j->port, PM_UPNP_UNMAP_MS) ==
			-ETIMEDOUT)
			log_info("port mapping: the UPnP gateway did not "
				 "answer the delete within %u ms",
				 PM_UPNP_UNMAP_MS);
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

/*
 * The delete at exit. libminiupnpc's SOAP call blocks, for ~6 s when the
 * gateway has vanished without a trace (connect: SO_SNDTIMEO 3 s, then a
 * 3 s select), which held SIGTERM's exit that long. So it runs in a
 * detached thread of its own and the loop waits PM_UPNP_UNMAP_MS for it:
 * an IGD on the LAN answers in milliseconds; one that does not is left
 * behind (the lease expires; the process exits with the thread). The
 * thread touches nothing but its job; the last of the two to let go of
 * the job frees it.
 */
struct unmap {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int refs;
	char port[8];
	char control[PM_UPNP_URL_MAX];
	char service[PM_UPNP_URL_MAX];
};

static void unmap_release(struct unmap *u)
{
	bool last;

	pthread_mutex_lock(&u->mu);
	last = --u->refs == 0;
	pthread_mutex_unlock(&u->mu);
	if (last) {
		pthread_cond_destroy(&u->cv);
		pthread_mutex_destroy(&u->mu);
		free(u);
	}
}

static void *unmap_thread(void *arg)
{
	struct unmap *u = arg;

	UPNP_DeletePortMapping(u->control, u->service, u->port, "TCP", NULL);
	pthread_mutex_lock(&u->mu);
	u->done = true;
	pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
	unmap_release(u);
	return NULL;
}

int pm_upnp_unmap_bounded(const struct pm_upnp_result *r, uint16_t port,
			  unsigned ms)
{
	struct unmap *u = calloc(1, sizeof(*u));
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t t;
	struct timespec end;
	int rc = 0;

	if (!u)
		return -ENOMEM;
	snport(u->port, sizeof(u->port), port);
	snprintf(u->control, sizeof(u->control), "%s", r->control);
	snprintf(u->service, sizeof(u->service), "%s", r->service);
	u->refs = 2;
	pthread_mutex_init(&u->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &ta, unmap_thread, u) != 0) {
		pthread_attr_destroy(&ta);
		pthread_cond_destroy(&u->cv);
		pthread_mutex_destroy(&u->mu);
		free(u);
		return -EAGAIN;
	}
	pthread_attr_destroy(&ta);
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&u->mu);
	while (!u->done && rc == 0)
		rc = pthread_cond_timedwait(&u->cv, &u->mu, &end);
	rc = u->done ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&u->mu);
	unmap_release(u);
	return rc;
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

int pm_upnp_unmap_bounded(const struct pm_upnp_result *r, uint16_t port,
			  unsigned ms)
{
	(void)r;
	(void)port;
	(void)ms;
	return -ENOTSUP;
}

#endif
