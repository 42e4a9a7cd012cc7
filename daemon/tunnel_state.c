/*
 * Runtime changes that persist (issue 12): services made by expose and
 * forwards made by forward, in STATE_DIR/runtime.json
 *
 *   {"services": [{"service", "target", "allow": [IDs] or "any"}],
 *    "forwards": [{"listen", "peer", "service"}]}
 *
 * (the control protocol's own shapes), written after every change and
 * put back at start, after the config file's. A corrupt file is a
 * warning, never a refusal to start.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "names.h"
#include "nodeutil.h"
#include "statefile.h"
#include "tunnel_int.h"

static void runtime_path(const struct p2pd_node *n, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", n->state_dir, TUN_RUNTIME_FILE);
}

int tun_runtime_save(struct p2pd_node *n)
{
	json_t *svcs = json_array(), *fwds = json_array(), *root;
	char path[PATH_MAX + 16], a[P2P_ADDR_TEXT_MAX], id[P2P_ID_TEXT_LEN + 1];
	struct fwd *f, *order[TUN_MAX_FORWARDS];
	size_t nf = 0;
	int rc;

	for (size_t i = 0; i < n->nservices; i++)
		if (n->services[i].runtime)
			json_array_append_new(
			    svcs, node_service_to_json(&n->services[i]));
	/* The list is newest first: write oldest first. */
	for (f = n->tun->fwds; f && nf < TUN_MAX_FORWARDS; f = f->next)
		if (f->runtime && !f->closing)
			order[nf++] = f;
	while (nf-- > 0) {
		f = order[nf];
		p2p_addr_format(&f->listen, a, sizeof(a));
		p2p_peerid_to_text(&f->peer, id);
		json_array_append_new(fwds, json_pack("{s:s, s:s, s:s}",
						      "listen", a, "peer", id,
						      "service", f->service));
	}
	root = json_pack("{s:o, s:o}", "services", svcs, "forwards", fwds);
	if (!root)
		return -ENOMEM;
	runtime_path(n, path, sizeof(path));
	rc = statefile_write(path, root);
	json_decref(root);
	if (rc < 0)
		log_warnx("cannot write %s: %s: runtime changes will not "
			  "survive a restart",
			  path, strerror(-rc));
	return rc;
}

/* Put svc in the table, replacing one of the same name. */
static void service_put(struct p2pd_node *n, const struct p2pd_service *svc)
{
	size_t i;

	for (i = 0; i < n->nservices; i++)
		if (!strcmp(n->services[i].name, svc->name))
			break;
	if (i == P2PD_MAX_SERVICES) {
		log_warnx("runtime service %s: already %d services", svc->name,
			  P2PD_MAX_SERVICES);
		return;
	}
	n->services[i] = *svc;
	if (i == n->nservices)
		n->nservices++;
}

static void restore_forward(struct p2pd_node *n, const char *what,
			    const char *listen, const char *peer,
			    const char *service, bool runtime)
{
	struct p2p_peerid id;
	struct p2p_addr a;
	char msg[256];
	int rc;

	if (!listen || p2p_addr_parse_listen(&a, listen) < 0 || !peer ||
	    !service || !node_service_name_ok(service)) {
		log_warnx("%s: a forward that is not {listen, peer, service}: "
			  "skipped",
			  what);
		return;
	}
	rc = names_resolve(n->names, peer, strlen(peer), &id);
	if (rc < 0) {
		log_warnx("%s: forward %s: %s '%.60s': skipped", what, listen,
			  rc == -ENOENT ? "no peer named" : "not a peer ID",
			  peer);
		return;
	}
	if (tun_fwd_add(n, &a, &id, service, runtime, msg, sizeof(msg)) < 0)
		log_warnx("%s: forward %s: %s", what, listen, msg);
}

static void restore_runtime(struct p2pd_node *n)
{
	char path[PATH_MAX + 16], err[256] = "", msg[256];
	json_t *root, *v;
	size_t i;
	int rc;

	runtime_path(n, path, sizeof(path));
	rc = statefile_read(path, &root, err, sizeof(err));
	if (rc == -ENOENT)
		return;
	if (rc == 0 && !json_is_object(root)) {
		snprintf(err, sizeof(err), "expected an object");
		json_decref(root);
		rc = -EPROTO;
	}
	if (rc < 0) {
		log_warnx("%s: %s: no runtime services or forwards (the "
			  "next change rewrites it)",
			  path, err[0] ? err : strerror(-rc));
		return;
	}
	json_array_foreach(json_object_get(root, "services"), i, v)
	{
		struct p2pd_service svc;
		/* Written by a daemon before "allow" had to be said: null
		 * meant every peer, and the user asked for it then. */
		if (json_is_object(v) &&
		    json_is_null(json_object_get(v, "allow")))
			json_object_set_new(v, "allow", json_string("any"));
		if (node_service_from_args(v, &svc, msg, sizeof(msg)) < 0) {
			log_warnx("%s: services[%zu]: %s: skipped", path, i,
				  msg);
			continue;
		}
		svc.runtime = true;
		service_put(n, &svc);
	}
	json_array_foreach(json_object_get(root, "forwards"), i, v)
	    restore_forward(
		n, path, json_string_value(json_object_get(v, "listen")),
		json_string_value(json_object_get(v, "peer")),
		json_string_value(json_object_get(v, "service")), true);
	json_decref(root);
}

void tunnel_restore(struct p2pd_node *n, const struct p2pd_config *cfg)
{
	char listen[P2P_ADDR_TEXT_MAX];

	for (size_t i = 0; i < cfg->nforwards; i++) {
		p2p_addr_format(&cfg->forwards[i].listen, listen,
				sizeof(listen));
		restore_forward(n, "config", listen, cfg->forwards[i].peer,
				cfg->forwards[i].service, false);
	}
	restore_runtime(n);
}
