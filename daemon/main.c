/*
 * p2pd: configuration, identity, then the node and the control socket on
 * one libuv loop. Signals: TERM/INT stop cleanly (exit 0), HUP reloads the
 * services from the config file.
 */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <uv.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "daemon.h"
#include "proto/error.h"
#include "proto/identity.h"
#include "sdnotify.h"

#define STATUS_INTERVAL_MS 5000
#define MALLOC_CHECK_MS 5000 /* the heap check (on_heap_check) */
#define MAX_ARGS 256

#ifndef P2PD_SYSCONFDIR
#define P2PD_SYSCONFDIR "/etc"
#endif

struct daemon {
	uv_loop_t loop;
	struct p2pd_config *cfg;
	struct p2p_identity ident;
	struct p2pd_node *node;
	struct ctl_server *ctl;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t status_timer, watchdog_timer, heap_timer;
	int stopping;
};

/* mkdir -p: parents 0755, the directory itself with mode. */
static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int load_identity(struct daemon *d)
{
	char path[PATH_MAX + 16], err[256] = "", idtext[P2P_ID_TEXT_LEN + 1];
	int r;

	r = mkdir_p(d->cfg->state_dir, 0700);
	if (r < 0) {
		log_error("cannot create state directory %s: %s",
			  d->cfg->state_dir, strerror(-r));
		return r;
	}
	r = p2pd_state_dir_check(d->cfg->state_dir, err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		return r;
	}
	snprintf(path, sizeof(path), "%s/identity.key", d->cfg->state_dir);
	r = p2p_identity_load(&d->ident, path, err, sizeof(err));
	if (r == 0)
		return 0;
	if (r != -ENOENT) {
		/* Never overwrite: a broken key needs a human. */
		if (err[0] != '\0')
			log_error("%s", err); /* names the file already */
		else
			log_error("%s: %s", path, p2p_strerror(r));
		return r;
	}
	r = p2p_identity_generate(&d->ident);
	if (r == 0)
		r = p2p_identity_save(&d->ident, path);
	if (r < 0) {
		log_error("cannot save identity %s: %s", path, p2p_strerror(r));
		return r;
	}
	p2p_peerid_to_text(&d->ident.id, idtext);
	log_info("created identity %s", idtext);
	return 0;
}

/* --show-id: the ID of the state dir's identity; creates nothing. */
static int show_id(const struct p2pd_config *c)
{
	char path[PATH_MAX + 16], err[256] = "", idtext[P2P_ID_TEXT_LEN + 1];
	struct p2p_identity ident;
	int r;

	snprintf(path, sizeof(path), "%s/identity.key", c->state_dir);
	r = p2p_identity_load(&ident, path, err, sizeof(err));
	if (r == -ENOENT) {
		fprintf(stderr,
			"p2pd: no identity in %s yet (p2pd makes one "
			"when it first starts)\n",
			c->state_dir);
		return r;
	}
	if (r < 0) {
		fprintf(stderr, "p2pd: %s\n", err[0] ? err : p2p_strerror(r));
		return r;
	}
	p2p_peerid_to_text(&ident.id, idtext);
	printf("%s\n", idtext);
	p2p_identity_wipe(&ident);
	return 0;
}

static void close_if_open(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_node_stopped(void *arg)
{
	struct daemon *d = arg;

	d->node = NULL;
	/* Our own signal and timer handles: then uv_run returns. */
	uv_walk(&d->loop, close_if_open, NULL);
}

static void daemon_stop(struct daemon *d, const char *why)
{
	if (d->stopping) {
		log_info("%s: already stopping", why);
		return;
	}
	d->stopping = 1;
	log_info("%s: stopping", why);
	p2pd_notifyf("STOPPING=1");
	ctl_server_close(d->ctl);
	d->ctl = NULL;
	if (d->node != NULL)
		p2pd_node_stop(d->node, on_node_stopped, d);
	else
		on_node_stopped(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	char err[512];

	if (signum != SIGHUP) {
		daemon_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
		return;
	}
	if (d->stopping)
		return;
	if (p2pd_config_reload_services(d->cfg, err, sizeof(err)) < 0) {
		log_warnx("reload failed, services unchanged: %s", err);
		return;
	}
	p2pd_node_set_services(d->node, d->cfg);
	log_info("SIGHUP: %zu services", d->cfg->nservices);
}

static void on_status(uv_timer_t *t)
{
	struct daemon *d = t->data;
	char line[128];

	p2pd_node_status_line(d->node, line, sizeof(line));
	p2pd_notifyf("STATUS=%s", line);
}

static void on_watchdog(uv_timer_t *t)
{
	p2pd_notifyf("WATCHDOG=1");
}

static void start_signal(struct daemon *d, uv_signal_t *h, int signum)
{
	uv_signal_init(&d->loop, h);
	h->data = d;
	uv_signal_start(h, on_signal, signum);
}

static void on_heap_check(uv_timer_t *t);

static void start_timers(struct daemon *d)
{
	uint64_t wd = p2pd_watchdog_usec();

	uv_timer_init(&d->loop, &d->status_timer);
	d->status_timer.data = d;
	uv_timer_start(&d->status_timer, on_status, STATUS_INTERVAL_MS,
		       STATUS_INTERVAL_MS);
	uv_unref((uv_handle_t *)&d->status_timer);
	uv_timer_init(&d->loop, &d->heap_timer);
	uv_timer_start(&d->heap_timer, on_heap_check, MALLOC_CHECK_MS,
		       MALLOC_CHECK_MS);
	uv_unref((uv_handle_t *)&d->heap_timer);
	if (wd == 0)
		return;
	uv_timer_init(&d->loop, &d->watchdog_timer);
	d->watchdog_timer.data = d;
	/* Half the interval, as sd_watchdog_enabled(3) recommends. */
	uv_timer_start(&d->watchdog_timer, on_watchdog, wd / 2000 + 1,
		       wd / 2000 + 1);
	uv_unref((uv_handle_t *)&d->watchdog_timer);
}

static void log_started(struct daemon *d)
{
	char listen[P2PD_MAX_LISTEN * P2P_ADDR_TEXT_MAX + 8];
	char idtext[P2P_ID_TEXT_LEN + 1];

	p2pd_node_listen_text(d->node, listen, sizeof(listen));
	p2p_peerid_to_text(&d->ident.id, idtext);
	log_info("listening on %s, control on %s, peer id %s",
		 listen[0] ? listen : "(nothing: client only)", d->cfg->control,
		 idtext);
}

static int daemon_start(struct daemon *d)
{
	struct ctl_options ctl_opt = {
	    .max_clients = d->cfg->limits.max_ctl_clients,
	    .idle_timeout_ms = d->cfg->limits.ctl_idle_timeout_ms,
	    .group = d->cfg->control_group,
	};
	char err[512] = "";
	int r;

	r = p2pd_node_start(&d->loop, d->cfg, &d->ident, &d->node, err,
			    sizeof(err));
	if (r < 0) {
		log_error("%s", err[0] ? err : p2p_strerror(r));
		return r;
	}
	r = ctl_server_start(&d->loop, d->cfg->control, p2pd_node_commands,
			     p2pd_node_ncommands, d->node, &ctl_opt, &d->ctl,
			     err, sizeof(err));
	if (r < 0) {
		log_error("%s", err);
		d->stopping = 1;
		p2pd_node_stop(d->node, on_node_stopped, d);
		return r;
	}
	start_signal(d, &d->sig_term, SIGTERM);
	start_signal(d, &d->sig_int, SIGINT);
	start_signal(d, &d->sig_hup, SIGHUP);
	start_timers(d);
	log_started(d);
	p2pd_node_status_line(d->node, err, sizeof(err));
	p2pd_notifyf("READY=1\nSTATUS=%s", err);
	return 0;
}

static struct p2pd_config config; /* large: keep it off the stack */

/* config.c's own --help or --version text: one copy of the usage. */
static void config_says(const char *flag)
{
	char *argv[] = {"p2pd", (char *)flag, NULL}, err[16];

	p2pd_config_load(&config, 2, argv, err, sizeof(err));
}

/* --help goes on with the defaults this user would get, from config.c. */
static void print_defaults(void)
{
	char *argv[] = {"p2pd", NULL}, err[512], addr[P2P_ADDR_TEXT_MAX];

	printf("  -h, -V                     the same as --help, --version\n"
	       "\ndefaults (for this user):\n");
	if (p2pd_config_load(&config, 1, argv, err, sizeof(err)) < 0) {
		printf("  (none: %s)\n", err);
		return;
	}
	printf("  config file                none (the system service: "
	       "%s/p2pd/p2pd.json)\n",
	       P2PD_SYSCONFDIR);
	printf("  control socket             %s\n", config.control);
	printf("  state directory            %s\n", config.state_dir);
	printf("  listen                    ");
	for (size_t i = 0; i < config.nlisten; i++) {
		p2p_addr_format(&config.listen[i], addr, sizeof(addr));
		printf(" %s", addr);
	}
	printf("\n");
}

/*
 * -h and -V, which config.c's option table lacks. Scanned on a copy of
 * argv (getopt permutes it) with the same argument-taking options, so
 * "-c -h" still names a file called "-h"; anything else is left to
 * config.c. Returns 1 when it printed and p2pd should exit 0.
 */
static int help_or_version(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"listen", required_argument, NULL, 'l'},
	    {"bootstrap", required_argument, NULL, 'b'},
	    {"control", required_argument, NULL, 's'},
	    {"state-dir", required_argument, NULL, 'd'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	char *copy[MAX_ARGS + 1];
	int n = argc < MAX_ARGS ? argc : MAX_ARGS, opt, found = 0;

	memcpy(copy, argv, (size_t)n * sizeof(char *));
	copy[n] = NULL;
	optind = 0;
	opterr = 0;
	while (!found &&
	       (opt = getopt_long(n, copy, ":c:l:b:s:d:nhV", opts, NULL)) != -1)
		if (opt == 'h' || opt == 'V')
			found = opt;
	optind = 0;
	if (found == 'V')
		config_says("--version");
	if (found == 'h') {
		config_says("--help");
		print_defaults();
	}
	return found != 0;
}

/*
 * Records are allocated and freed by the thousand per second. glibc gives
 * the top of the heap back to the kernel whenever more than 128 KiB lies
 * free there, and tunes its mmap threshold as it goes: under load that is
 * a trim and fresh page faults (and TLB shootdowns) on every burst, which
 * cost about half the tunnel throughput on loopback. Keep up to
 * MALLOC_KEEP_BYTES free in the heap instead; an idle daemon stays small.
 */
#define MALLOC_KEEP_BYTES (8 << 20)
#define MALLOC_MMAP_BYTES (1 << 20)

static void tune_malloc(void)
{
	mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP_BYTES);
	mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES);
}

/*
 * The top is not all: pooled chunks (bufq.h) freed after a burst, say 16
 * streams whose reader stopped with their windows full (tens of MiB),
 * lie between blocks still in use, and glibc gives such pages back only
 * when asked (RSS stayed 34 MiB up after those streams closed), and even
 * the top keeps MALLOC_KEEP_BYTES. Every MALLOC_CHECK_MS, when more than
 * MALLOC_CHECK_FREE lie free in the heap, malloc_trim() returns the free
 * pages: at most one trim per check, never one per free, so a burst pays
 * a few page faults per check at most, and a daemon that went quiet is
 * back near its idle size within one check. Pages once given back still
 * count as free in mallinfo2(): the check trims again while they stay
 * free (cheap: nothing resident to drop; an idle daemon with 100 peers
 * made 6 madvise calls per check), and logs only when RSS went down.
 */
#define MALLOC_CHECK_FREE (1 << 20) /* less is not worth a trim */

static void on_heap_check(uv_timer_t *t)
{
	struct mallinfo2 mi = mallinfo2();
	size_t before = 0, after = 0;

	(void)t;
	if (mi.fordblks <= MALLOC_CHECK_FREE)
		return;
	(void)uv_resident_set_memory(&before);
	malloc_trim(0);
	(void)uv_resident_set_memory(&after);
	if (after < before)
		log_debug("heap: %zu KiB free, RSS %zu -> %zu KiB",
			  mi.fordblks / 1024, before / 1024, after / 1024);
}

int main(int argc, char **argv)
{
	struct daemon d = {.cfg = &config};
	char err[512];
	int r, rc = 0;

	signal(SIGPIPE, SIG_IGN);
	tune_malloc();
	log_init(LOG_LVL_INFO);
	if (help_or_version(argc, argv))
		return 0;
	r = p2pd_config_load(&config, argc, argv, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "p2pd: %s\n", err);
		return 1;
	}
	if (r == 1)
		return 0;
	log_set_level(config.log_level);
	if (sodium_init() < 0)
		fatalx("libsodium failed to initialise");
	if (config.show_id)
		return show_id(&config) < 0 ? 1 : 0;
	if (load_identity(&d) < 0)
		return 1;
	r = uv_loop_init(&d.loop);
	if (r < 0)
		fatalx("uv_loop_init: %s", uv_strerror(r));
	if (daemon_start(&d) < 0)
		rc = 1;
	uv_run(&d.loop, UV_RUN_DEFAULT);
	/* Anything left (a failed start) is closed before the loop goes. */
	uv_walk(&d.loop, close_if_open, NULL);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d.loop) != 0)
		log_warnx("event loop closed with handles still open");
	p2p_identity_wipe(&d.ident);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
