/*
 * The JSON config file (SPEC section 6). Every key is known; anything else
 * is an error naming the key with its full dotted path, and every type
 * error names the key and the type it wants.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config_file.h"
#include "log.h"
#include "proto/petname.h"

#define CFG_LIMIT_MAX 100000000u /* no limit or timeout needs more */

struct cfg_ctx {
	struct p2pd_config *c;
	const char *path;
	char *err;
	size_t errlen;
};

static int ferr(const struct cfg_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ferr(const struct cfg_ctx *x, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cfg_err(x->err, x->errlen, "config %s: %s", x->path, msg);
}

static int want_string(const struct cfg_ctx *x, const char *key, json_t *v,
		       const char **out)
{
	if (!json_is_string(v))
		return ferr(x, "\"%s\" must be a string", key);
	*out = json_string_value(v);
	return 0;
}

/* An array of strings, at most max entries, into texts. */
static int want_strings(const struct cfg_ctx *x, const char *key, json_t *v,
			const char **texts, size_t max, size_t *n)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return ferr(x, "\"%s\" must be an array of strings", key);
	if (json_array_size(v) > max)
		return ferr(x, "\"%s\" has too many entries (max %zu)", key,
			    max);
	json_array_foreach(v, i, e)
	{
		if (!json_is_string(e))
			return ferr(x, "\"%s\" must be an array of strings",
				    key);
		texts[i] = json_string_value(e);
	}
	*n = json_array_size(v);
	return 0;
}

static int key_addrs(const struct cfg_ctx *x, const char *key, json_t *v,
		     struct p2p_addr *out, size_t *nout, size_t max)
{
	const char *texts[P2PD_MAX_BOOTSTRAP];
	char msg[256];
	size_t n = 0;

	if (want_strings(x, key, v, texts, max, &n) < 0)
		return -EINVAL;
	if (cfg_parse_addr_list(out, nout, max, texts, n, key, msg,
				sizeof(msg)) < 0)
		return ferr(x, "%s", msg);
	return 0;
}

static int key_bootstrap(const struct cfg_ctx *x, json_t *v)
{
	const char *texts[P2PD_MAX_BOOTSTRAP];
	char msg[384];
	size_t n = 0;

	if (want_strings(x, "bootstrap", v, texts, P2PD_MAX_BOOTSTRAP, &n) < 0)
		return -EINVAL;
	if (cfg_parse_bootstrap(x->c, texts, n, "bootstrap", msg, sizeof(msg)) <
	    0)
		return ferr(x, "%s", msg);
	return 0;
}

static int key_path(const struct cfg_ctx *x, const char *key, json_t *v,
		    char *dst, size_t dstlen)
{
	const char *s = NULL;
	char msg[256];
	char what[64];

	if (want_string(x, key, v, &s) < 0)
		return -EINVAL;
	snprintf(what, sizeof(what), "\"%s\"", key);
	if (cfg_set_path(dst, dstlen, s, what, msg, sizeof(msg)) < 0)
		return ferr(x, "%s", msg);
	return 0;
}

static int key_limit(const struct cfg_ctx *x, const char *key, json_t *v,
		     unsigned *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return ferr(x, "\"limits.%s\" must be an integer", key);
	n = json_integer_value(v);
	if (n < 1 || n > (json_int_t)CFG_LIMIT_MAX)
		return ferr(x, "\"limits.%s\" must be between 1 and %u", key,
			    CFG_LIMIT_MAX);
	*out = (unsigned)n;
	return 0;
}

static int key_limits(const struct cfg_ctx *x, json_t *v)
{
	struct p2pd_limits *l = &x->c->limits;
	const char *key;
	json_t *e;
	int r;

	if (!json_is_object(v))
		return ferr(x, "\"limits\" must be an object");
	json_object_foreach(v, key, e)
	{
		if (strcmp(key, "max_links") == 0)
			r = key_limit(x, key, e, &l->max_links);
		else if (strcmp(key, "max_ctl_clients") == 0)
			r = key_limit(x, key, e, &l->max_ctl_clients);
		else if (strcmp(key, "handshake_timeout_ms") == 0)
			r = key_limit(x, key, e, &l->handshake_timeout_ms);
		else if (strcmp(key, "keepalive_ms") == 0)
			r = key_limit(x, key, e, &l->keepalive_ms);
		else if (strcmp(key, "idle_timeout_ms") == 0)
			r = key_limit(x, key, e, &l->idle_timeout_ms);
		else if (strcmp(key, "ctl_idle_timeout_ms") == 0)
			r = key_limit(x, key, e, &l->ctl_idle_timeout_ms);
		else
			r = ferr(x, "unknown key \"limits.%s\"", key);
		if (r < 0)
			return r;
	}
	/* Keepalives must arrive before the peer gives the link up. */
	if (l->keepalive_ms >= l->idle_timeout_ms)
		return ferr(x,
			    "\"limits.keepalive_ms\" (%u) must be below "
			    "\"limits.idle_timeout_ms\" (%u)",
			    l->keepalive_ms, l->idle_timeout_ms);
	return 0;
}

static int valid_service_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > P2P_SERVICE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return 0;
	}
	return 1;
}

/* "HOST:PORT" with a numeric port 1..65535 and a plausible host. */
static int valid_target(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || colon == s || colon[1] == '\0')
		return 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end != '\0' || port < 1 || port > 65535 ||
	    colon[1] < '0' || colon[1] > '9')
		return 0;
	for (const char *p = s; p < colon; p++)
		if (*p <= ' ' || *p == '/' || *p == '@' || *p == '\x7f')
			return 0;
	if (s[0] == '[')
		return colon[-1] == ']' && colon - s > 2;
	/* An IPv6 address needs brackets to carry a port. */
	return memchr(s, ':', (size_t)(colon - s)) == NULL;
}

static int service_allow(const struct cfg_ctx *x, struct p2pd_service *svc,
			 json_t *v)
{
	size_t i;
	json_t *e;

	if (json_is_string(v) && !strcmp(json_string_value(v), "any")) {
		svc->allow_any = true;
		return 0;
	}
	if (!json_is_array(v))
		return ferr(x,
			    "\"services.%s.allow\" must be an array of "
			    "peer IDs, or \"any\"",
			    svc->name);
	if (json_array_size(v) > P2PD_MAX_ALLOW)
		return ferr(x,
			    "service \"%s\": too many allow entries "
			    "(max %d)",
			    svc->name, P2PD_MAX_ALLOW);
	svc->allow_any = false;
	json_array_foreach(v, i, e)
	{
		const char *id = json_string_value(e);
		if (id == NULL)
			return ferr(x,
				    "\"services.%s.allow\" must be an "
				    "array of strings",
				    svc->name);
		if (p2p_peerid_from_text(&svc->allow[i], id, strlen(id)) < 0)
			return ferr(x,
				    "service \"%s\": invalid peer ID "
				    "\"%.60s\" in allow",
				    svc->name, id);
	}
	svc->nallow = json_array_size(v);
	return 0;
}

static int service_target(const struct cfg_ctx *x, struct p2pd_service *svc,
			  json_t *v)
{
	const char *t = json_string_value(v);

	if (t == NULL)
		return ferr(x, "\"services.%s.target\" must be a string",
			    svc->name);
	if (strlen(t) >= sizeof(svc->target) || !valid_target(t))
		return ferr(x,
			    "service \"%s\": bad target \"%.60s\" (want "
			    "HOST:PORT)",
			    svc->name, t);
	strcpy(svc->target, t);
	if (p2p_addr_parse(&svc->target_addr, t, false) < 0)
		memset(&svc->target_addr, 0, sizeof(svc->target_addr));
	return 0;
}

static int key_service(const struct cfg_ctx *x, const char *name, json_t *v,
		       struct p2pd_service *svc)
{
	bool have_target = false, have_allow = false;
	const char *key;
	json_t *e;
	int r;

	if (!valid_service_name(name))
		return ferr(x,
			    "bad service name \"%.70s\" (1 to %d of "
			    "A-Z a-z 0-9 . _ -)",
			    name, P2P_SERVICE_NAME_MAX);
	memset(svc, 0, sizeof(*svc));
	strcpy(svc->name, name);
	if (!json_is_object(v))
		return ferr(x, "\"services.%s\" must be an object", name);
	json_object_foreach(v, key, e)
	{
		if (strcmp(key, "target") == 0) {
			r = service_target(x, svc, e);
			have_target = true;
		} else if (strcmp(key, "allow") == 0) {
			r = service_allow(x, svc, e);
			have_allow = true;
		} else {
			r = ferr(x, "unknown key \"services.%s.%s\"", name,
				 key);
		}
		if (r < 0)
			return r;
	}
	if (!have_target)
		return ferr(x, "service \"%s\" has no \"target\"", name);
	/* Never open to every peer by omission (SPEC section 9). */
	if (!have_allow)
		return ferr(x,
			    "service \"%s\" has no \"allow\" (a list of "
			    "peer IDs, or \"any\" for every peer)",
			    name);
	return 0;
}

static int key_services(const struct cfg_ctx *x, json_t *v)
{
	struct p2pd_config *c = x->c;
	const char *name;
	json_t *e;

	if (!json_is_object(v))
		return ferr(x, "\"services\" must be an object");
	if (json_object_size(v) > P2PD_MAX_SERVICES)
		return ferr(x, "too many services (max %d)", P2PD_MAX_SERVICES);
	c->nservices = 0;
	json_object_foreach(v, name, e)
	{
		if (key_service(x, name, e, &c->services[c->nservices]) < 0)
			return -EINVAL;
		c->nservices++;
	}
	return 0;
}

/* One {"listen", "peer", "service"} of "forwards". */
static int key_forward(const struct cfg_ctx *x, size_t i, json_t *v,
		       struct p2pd_forward *f)
{
	json_t *listen = json_object_get(v, "listen");
	json_t *peer = json_object_get(v, "peer");
	json_t *svc = json_object_get(v, "service");
	char name[P2P_NAME_MAX + 1];
	struct p2p_peerid id;

	if (!json_is_object(v) || json_object_size(v) != 3 ||
	    !json_is_string(listen) || !json_is_string(peer) ||
	    !json_is_string(svc))
		return ferr(x,
			    "\"forwards[%zu]\" must be {\"listen\": ..., "
			    "\"peer\": ..., \"service\": ...}",
			    i);
	if (p2p_addr_parse_listen(&f->listen, json_string_value(listen)) < 0)
		return ferr(x,
			    "\"forwards[%zu].listen\": bad \"%.60s\" (want "
			    "[ADDR:]PORT, IPv6 as [ADDR]:PORT)",
			    i, json_string_value(listen));
	if (json_string_length(peer) >= sizeof(f->peer) ||
	    p2p_peer_ref_parse(json_string_value(peer),
			       json_string_length(peer), &id, name) < 0)
		return ferr(x,
			    "\"forwards[%zu].peer\": \"%.60s\" is not a "
			    "peer ID or a name",
			    i, json_string_value(peer));
	if (!valid_service_name(json_string_value(svc)))
		return ferr(x,
			    "\"forwards[%zu].service\": bad service name "
			    "\"%.60s\"",
			    i, json_string_value(svc));
	strcpy(f->peer, json_string_value(peer));
	strcpy(f->service, json_string_value(svc));
	return 0;
}

static int key_forwards(const struct cfg_ctx *x, json_t *v)
{
	struct p2pd_config *c = x->c;
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return ferr(x, "\"forwards\" must be an array");
	if (json_array_size(v) > P2PD_MAX_FORWARDS)
		return ferr(x, "too many forwards (max %d)", P2PD_MAX_FORWARDS);
	json_array_foreach(v, i, e)
	{
		if (key_forward(x, i, e, &c->forwards[i]) < 0)
			return -EINVAL;
	}
	c->nforwards = json_array_size(v);
	return 0;
}

static int key_log_level(const struct cfg_ctx *x, json_t *v)
{
	const char *s = NULL;
	int lvl;

	if (want_string(x, "log_level", v, &s) < 0)
		return -EINVAL;
	lvl = log_level_parse(s);
	if (lvl < 0)
		return ferr(x,
			    "bad \"log_level\" \"%.40s\" (want error, warn, "
			    "info or debug)",
			    s);
	x->c->log_level = lvl;
	return 0;
}

/* A name to look up, never used in a path or a command: length only. */
static int key_control_group(const struct cfg_ctx *x, json_t *v)
{
	const char *s = NULL;

	if (want_string(x, "control_group", v, &s) < 0)
		return -EINVAL;
	if (strlen(s) >= sizeof(x->c->control_group))
		return ferr(x, "\"control_group\" is longer than %zu bytes",
			    sizeof(x->c->control_group) - 1);
	strcpy(x->c->control_group, s);
	return 0;
}

static int key_bool(const struct cfg_ctx *x, const char *key, json_t *v,
		    bool *out)
{
	if (!json_is_boolean(v))
		return ferr(x, "\"%s\" must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

static int apply_key(const struct cfg_ctx *x, const char *key, json_t *v)
{
	struct p2pd_config *c = x->c;

	if (strcmp(key, "listen") == 0)
		return key_addrs(x, key, v, c->listen, &c->nlisten,
				 P2PD_MAX_LISTEN);
	if (strcmp(key, "bootstrap") == 0)
		return key_bootstrap(x, v);
	if (strcmp(key, "control") == 0)
		return key_path(x, key, v, c->control, sizeof(c->control));
	if (strcmp(key, "control_group") == 0)
		return key_control_group(x, v);
	if (strcmp(key, "state_dir") == 0)
		return key_path(x, key, v, c->state_dir, sizeof(c->state_dir));
	if (strcmp(key, "log_level") == 0)
		return key_log_level(x, v);
	if (strcmp(key, "services") == 0)
		return key_services(x, v);
	if (strcmp(key, "forwards") == 0)
		return key_forwards(x, v);
	if (strcmp(key, "limits") == 0)
		return key_limits(x, v);
	if (strcmp(key, "lan_discovery") == 0)
		return key_bool(x, key, v, &c->lan_discovery);
	if (strcmp(key, "port_mapping") == 0)
		return key_bool(x, key, v, &c->port_mapping);
	if (strcmp(key, "keepalive_adapt") == 0)
		return key_bool(x, key, v, &c->keepalive_adapt);
	if (strcmp(key, "dial_me") == 0)
		return key_bool(x, key, v, &c->dial_me);
	return ferr(x, "unknown key \"%s\"", key);
}

int cfg_file_load(struct p2pd_config *c, const char *path, char *err,
		  size_t errlen)
{
	struct cfg_ctx x = {c, path, err, errlen};
	json_error_t je;
	const char *key;
	json_t *root, *v;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (f == NULL)
		return ferr(&x, "%s", strerror(errno));
	root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	if (root == NULL)
		return ferr(&x, "line %d:%d: %s", je.line, je.column, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return ferr(&x, "must be a JSON object");
	}
	json_object_foreach(root, key, v)
	{
		r = apply_key(&x, key, v);
		if (r < 0)
			break;
	}
	json_decref(root);
	return r < 0 ? -EINVAL : 0;
}
