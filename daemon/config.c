/*
 * Configuration: defaults, then the JSON file (-c), then flags. Every error
 * is one line naming what is wrong; nothing is half applied because the
 * caller exits on error (and SIGHUP reloads into a scratch copy).
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "config_file.h"
#include "control.h"
#include "log.h"

#define DEFAULT_MAX_LINKS 256
#define DEFAULT_MAX_CTL_CLIENTS 64
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define DEFAULT_KEEPALIVE_MS 25000
#define DEFAULT_IDLE_TIMEOUT_MS 75000

#ifndef P2PD_VERSION
#define P2PD_VERSION "unknown"
#endif

static const char usage_text[] =
    "usage: p2pd [-n] [-c FILE] [-l ADDR:PORT]... [-b ADDR:PORT]... "
    "[-s PATH] [-d DIR]\n"
    "            [--log-level error|warn|info|debug] [--version] "
    "[--help]\n"
    "  -c, --config FILE          JSON config file\n"
    "  -l, --listen ADDR:PORT     overlay listen address, repeatable\n"
    "  -b, --bootstrap ADDR:PORT  a peer to join through, repeatable\n"
    "  -s, --control PATH         control socket\n"
    "  -d, --state-dir DIR        identity and peer cache\n"
    "      --log-level LEVEL      error, warn, info or debug\n"
    "  -n                         check the configuration and exit\n"
    "      --show-id              print the state directory's peer ID and "
    "exit\n"
    "      --version              print the version and exit\n"
    "      --help                 print this help and exit\n";

#define USAGE_HINT " (see 'p2pd --help')"

int cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int cfg_set_path(char *dst, size_t dstlen, const char *src, const char *what,
		 char *err, size_t errlen)
{
	size_t n = strlen(src);

	if (n == 0)
		return cfg_err(err, errlen, "%s must not be empty", what);
	if (n >= dstlen)
		return cfg_err(err, errlen, "%s \"%s\" is too long (max %zu)",
			       what, src, dstlen - 1);
	memcpy(dst, src, n + 1);
	return 0;
}

static int user_defaults(struct p2pd_config *c, char *err, size_t errlen)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	const char *st = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char buf[PATH_MAX + 32];

	/* XDG says relative values are invalid and must be ignored. */
	if (rt != NULL && rt[0] == '/')
		snprintf(buf, sizeof(buf), "%s/p2pd/p2pd.sock", rt);
	else
		snprintf(buf, sizeof(buf), "/tmp/p2pd-%u/p2pd.sock",
			 (unsigned)getuid());
	if (cfg_set_path(c->control, sizeof(c->control), buf,
			 "default control path", err, errlen) < 0)
		return -EINVAL;

	if (st != NULL && st[0] == '/') {
		snprintf(buf, sizeof(buf), "%s/p2pd", st);
	} else {
		if (home == NULL || home[0] != '/') {
			struct passwd *pw = getpwuid(getuid());
			home = pw != NULL ? pw->pw_dir : NULL;
		}
		if (home == NULL || home[0] != '/')
			return cfg_err(err, errlen,
				       "no home directory for the default "
				       "state directory: use -d DIR");
		snprintf(buf, sizeof(buf), "%s/.local/state/p2pd", home);
	}
	return cfg_set_path(c->state_dir, sizeof(c->state_dir), buf,
			    "default state directory", err, errlen);
}

static int set_defaults(struct p2pd_config *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->log_level = LOG_LVL_INFO;
	c->limits.max_links = DEFAULT_MAX_LINKS;
	c->limits.max_ctl_clients = DEFAULT_MAX_CTL_CLIENTS;
	c->limits.handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
	c->limits.keepalive_ms = DEFAULT_KEEPALIVE_MS;
	c->limits.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
	c->limits.ctl_idle_timeout_ms = CTL_IDLE_TIMEOUT_MS;
	c->port_mapping = true;
	c->keepalive_adapt = true;
	c->dial_me = true;
	strcpy(c->control_group, CTL_GROUP_DEFAULT);
	c->lan_discovery = true;

	/* Both families: a v6-only socket next to the v4 one (node's job). */
	c->nlisten = 2;
	c->listen[0].family = 4;
	c->listen[0].port = P2PD_DEFAULT_PORT;
	c->listen[1].family = 6;
	c->listen[1].port = P2PD_DEFAULT_PORT;

	if (geteuid() == 0) {
		strcpy(c->control, "/run/p2pd/p2pd.sock");
		strcpy(c->state_dir, "/var/lib/p2pd");
		return 0;
	}
	return user_defaults(c, err, errlen);
}

int cfg_parse_addr_list(struct p2p_addr *out, size_t *n, size_t max,
			const char *const *texts, size_t ntexts,
			const char *what, char *err, size_t errlen)
{
	if (ntexts > max)
		return cfg_err(err, errlen, "too many %s addresses (max %zu)",
			       what, max);
	for (size_t i = 0; i < ntexts; i++)
		if (p2p_addr_parse(&out[i], texts[i], false) < 0 ||
		    out[i].port == 0)
			return cfg_err(err, errlen,
				       "bad %s address \"%s\" (want "
				       "IPV4:PORT or [IPV6]:PORT)",
				       what, texts[i]);
	*n = ntexts;
	return 0;
}

int cfg_parse_bootstrap(struct p2pd_config *c, const char *const *texts,
			size_t ntexts, const char *what, char *err,
			size_t errlen)
{
	char host[P2P_HOST_NAME_MAX + 1];
	uint16_t port;

	if (ntexts > P2PD_MAX_BOOTSTRAP)
		return cfg_err(err, errlen, "too many %s addresses (max %d)",
			       what, P2PD_MAX_BOOTSTRAP);
	c->nbootstrap = c->nbootstrap_names = 0;
	for (size_t i = 0; i < ntexts; i++) {
		struct p2p_addr *a = &c->bootstrap[c->nbootstrap];
		if (p2p_addr_parse(a, texts[i], false) == 0 && a->port != 0) {
			c->nbootstrap++;
			continue;
		}
		if (p2p_host_port_parse(texts[i], host, &port) < 0)
			return cfg_err(err, errlen,
				       "bad %s address \"%s\" (want "
				       "IPV4:PORT, [IPV6]:PORT or HOST:PORT)",
				       what, texts[i]);
		snprintf(c->bootstrap_names[c->nbootstrap_names++],
			 sizeof(c->bootstrap_names[0]), "%s", texts[i]);
	}
	return 0;
}

/* Flags as given, applied after the file so that they win. */
struct flags {
	const char *config;
	const char *listen[P2PD_MAX_LISTEN + 1];
	size_t nlisten;
	const char *bootstrap[P2PD_MAX_BOOTSTRAP + 1];
	size_t nbootstrap;
	const char *control;
	const char *state_dir;
	const char *log_level;
	bool check_only;
	bool show_id;
};

enum { OPT_LOG_LEVEL = 256, OPT_VERSION, OPT_HELP, OPT_SHOW_ID };

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, 'l'},
    {"bootstrap", required_argument, NULL, 'b'},
    {"control", required_argument, NULL, 's'},
    {"state-dir", required_argument, NULL, 'd'},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {"show-id", no_argument, NULL, OPT_SHOW_ID},
    {NULL, 0, NULL, 0},
};

static int bad_option(int opt, char **argv, char *err, size_t errlen)
{
	const char *arg = argv[optind - 1];

	if (opt == ':')
		return cfg_err(err, errlen,
			       "option \"%s\" needs an argument" USAGE_HINT,
			       arg);
	if (optopt != 0 && optopt < 256)
		return cfg_err(err, errlen, "unknown option \"-%c\"" USAGE_HINT,
			       optopt);
	return cfg_err(err, errlen, "unknown option \"%s\"" USAGE_HINT, arg);
}

static int add_repeat(const char **list, size_t *n, size_t max, const char *arg)
{
	/* Keep one past max so the range check below reports "too many". */
	if (*n > max)
		return 0;
	list[(*n)++] = arg;
	return 0;
}

/* 0 to go on, 1 when --help/--version printed, -EINVAL on a bad flag. */
static int parse_flags(struct flags *f, int argc, char **argv, char *err,
		       size_t errlen)
{
	int opt;

	memset(f, 0, sizeof(*f));
	optind = 0; /* glibc: full re-initialisation, tests parse many times */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:l:b:s:d:n", long_opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'c':
			f->config = optarg;
			break;
		case 'l':
			add_repeat(f->listen, &f->nlisten, P2PD_MAX_LISTEN,
				   optarg);
			break;
		case 'b':
			add_repeat(f->bootstrap, &f->nbootstrap,
				   P2PD_MAX_BOOTSTRAP, optarg);
			break;
		case 's':
			f->control = optarg;
			break;
		case 'd':
			f->state_dir = optarg;
			break;
		case 'n':
			f->check_only = true;
			break;
		case OPT_LOG_LEVEL:
			f->log_level = optarg;
			break;
		case OPT_SHOW_ID:
			f->show_id = true;
			break;
		case OPT_VERSION:
			printf("p2pd %s\n", P2PD_VERSION);
			return 1;
		case OPT_HELP:
			fputs(usage_text, stdout);
			return 1;
		default:
			return bad_option(opt, argv, err, errlen);
		}
	}
	if (optind < argc)
		return cfg_err(err, errlen,
			       "unexpected argument \"%s\"" USAGE_HINT,
			       argv[optind]);
	return 0;
}

static int apply_flags(struct p2pd_config *c, const struct flags *f, char *err,
		       size_t errlen)
{
	int lvl;

	if (f->nlisten > 0 &&
	    cfg_parse_addr_list(c->listen, &c->nlisten, P2PD_MAX_LISTEN,
				f->listen, f->nlisten, "--listen", err,
				errlen) < 0)
		return -EINVAL;
	if (f->nbootstrap > 0 &&
	    cfg_parse_bootstrap(c, f->bootstrap, f->nbootstrap, "--bootstrap",
				err, errlen) < 0)
		return -EINVAL;
	if (f->control != NULL &&
	    cfg_set_path(c->control, sizeof(c->control), f->control,
			 "--control path", err, errlen) < 0)
		return -EINVAL;
	if (f->state_dir != NULL &&
	    cfg_set_path(c->state_dir, sizeof(c->state_dir), f->state_dir,
			 "--state-dir", err, errlen) < 0)
		return -EINVAL;
	if (f->log_level != NULL) {
		lvl = log_level_parse(f->log_level);
		if (lvl < 0)
			return cfg_err(err, errlen,
				       "bad --log-level \"%s\" (want error, "
				       "warn, info or debug)",
				       f->log_level);
		c->log_level = lvl;
	}
	c->check_only = f->check_only;
	c->show_id = f->show_id;
	return 0;
}

int p2pd_config_load(struct p2pd_config *c, int argc, char **argv, char *err,
		     size_t errlen)
{
	struct flags f;
	int r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	r = parse_flags(&f, argc, argv, err, errlen);
	if (r != 0)
		return r;
	if (set_defaults(c, err, errlen) < 0)
		return -EINVAL;
	if (f.config != NULL) {
		if (cfg_set_path(c->config_path, sizeof(c->config_path),
				 f.config, "--config path", err, errlen) < 0)
			return -EINVAL;
		if (cfg_file_load(c, c->config_path, err, errlen) < 0)
			return -EINVAL;
	}
	if (apply_flags(c, &f, err, errlen) < 0)
		return -EINVAL;
	if (c->check_only) {
		printf("configuration OK\n");
		return 1;
	}
	return 0;
}

int p2pd_config_reload_services(struct p2pd_config *c, char *err, size_t errlen)
{
	struct p2pd_config *tmp;
	int r;

	if (c->config_path[0] == '\0')
		return 0; /* services only ever come from the file */
	/* A scratch copy: a bad file leaves the running services alone. */
	tmp = malloc(sizeof(*tmp));
	if (tmp == NULL) {
		cfg_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*tmp = *c;
	tmp->nservices = 0;
	memset(tmp->services, 0, sizeof(tmp->services));
	r = cfg_file_load(tmp, c->config_path, err, errlen);
	if (r == 0) {
		c->nservices = tmp->nservices;
		memcpy(c->services, tmp->services, sizeof(c->services));
	}
	free(tmp);
	return r;
}
