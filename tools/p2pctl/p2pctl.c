/*
 * p2pctl: talk to p2pd over its control socket (SPEC sections 4, 5, 9).
 * One request line, one reply line; "pipe" then carries raw bytes.
 *
 * Exit status: 0 ok, 1 the daemon answered an error (or timed out),
 * 2 usage error, 3 the daemon cannot be reached.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "sockpath.h"

#ifndef P2PD_VERSION
#define P2PD_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_DAEMON = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };
enum { PARSE_GO = 0, PARSE_DONE = 1, PARSE_USAGE = -1 };

#define GLOBAL_SHORTOPTS "s:jt:vhV"
#define MAX_OPTS 32
#define TIMEOUT_MAX_S 86400
#define PING_INTERVAL_MS 1000 /* between the pings of ping -c N */

struct opts {
	const char *socket; /* -s, or NULL: search (sockpath.h) */
	int json;
	int verbose;	/* -v: progress on stderr even when not a tty */
	int timeout_ms; /* 0: the command's own */
};

static const struct option global_opts[] = {
    {"socket", required_argument, NULL, 's'},
    {"control", required_argument, NULL, 's'}, /* p2pd's name for it */
    {"json", no_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, 't'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
};
#define NGLOBAL (sizeof(global_opts) / sizeof(global_opts[0]))

static void usage_socket(FILE *out)
{
	const char *env = getenv("P2PD_CONTROL");
	struct ctl_target t;

	if (env && *env) {
		fprintf(out,
			"                       default: $P2PD_CONTROL, "
			"now %s\n",
			env);
		return;
	}
	ctl_target_init(&t, NULL);
	fprintf(out, "                       default: $P2PD_CONTROL if set, "
		     "else the first that answers of\n");
	for (size_t i = 0; i < t.n; i++)
		fprintf(out, "                         %s\n", t.path[i]);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: p2pctl [OPTIONS] COMMAND [ARGS]\n\n"
		     "options (before or after the command; '--' ends "
		     "them):\n"
		     "  -s, --socket=PATH    control socket\n");
	usage_socket(out);
	fprintf(out, "  -j, --json           print the daemon's JSON reply "
		     "unchanged\n"
		     "  -t, --timeout=SEC    how long to wait for the reply "
		     "(default: 30 s,\n"
		     "                       60 s for network questions, 120 "
		     "s for connect/pipe)\n"
		     "  -v, --verbose        show what connect, pipe, ping and "
		     "bootstrap are doing\n"
		     "                       (on stderr; the default when it "
		     "is a terminal)\n"
		     "  -h, --help           this text; 'p2pctl help COMMAND' "
		     "for one command\n"
		     "  -V, --version        print the version\n\n"
		     "commands:\n");
	for (size_t i = 0; i < ctl_ncmds; i++) {
		char syn[80];
		snprintf(syn, sizeof(syn), "%s %s", ctl_cmds[i].name,
			 ctl_cmds[i].args);
		fprintf(out, "  %-38s %s\n", syn, ctl_cmds[i].summary);
	}
	fprintf(out, "\nexit status: 0 ok, 1 daemon error, 2 usage, 3 daemon "
		     "not reachable\n");
}

static void cmd_help(const struct ctl_cmd *c, FILE *out)
{
	fprintf(out, "usage: p2pctl %s %s\n\n%s\n", c->name, c->args,
		c->summary);
	if (c->help)
		fprintf(out, "%s\n", c->help);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "p2pctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'p2pctl --help'.\n");
	return PARSE_USAGE;
}

/* getopt's ':' and '?' answers as one message. */
static int bad_option(int opt, char **argv)
{
	const char *arg = argv[optind - 1];
	char s[3] = {'-', (char)optopt, '\0'};

	/* optopt holds the letter of a short option, and for a long one
	 * its val, which is no help: name it as typed. */
	if (!strncmp(arg, "--", 2) || !optopt)
		return usage_error(opt == ':' ? "option '%s' needs a value"
					      : "unknown option '%s'",
				   arg);
	return usage_error(opt == ':' ? "option '%s' needs a value"
				      : "unknown option '%s'",
			   s);
}

/* One global option. PARSE_GO, or PARSE_DONE after --help/--version. */
static int take_global(struct opts *o, int opt, const struct ctl_cmd *c)
{
	char *end;
	long v;

	switch (opt) {
	case 's':
		o->socket = optarg;
		return PARSE_GO;
	case 'j':
		o->json = 1;
		return PARSE_GO;
	case 'v':
		o->verbose = 1;
		return PARSE_GO;
	case 't':
		v = strtol(optarg, &end, 10);
		if (*end || end == optarg || v <= 0 || v > TIMEOUT_MAX_S)
			return usage_error("bad timeout '%s' (seconds)",
					   optarg);
		o->timeout_ms = (int)v * 1000;
		return PARSE_GO;
	case 'h':
		if (c)
			cmd_help(c, stdout);
		else
			usage(stdout);
		return PARSE_DONE;
	case 'V':
		printf("p2pctl %s\n", P2PD_VERSION);
		return PARSE_DONE;
	}
	return PARSE_USAGE;
}

/* Options before the command; stops at the first non-option ("+"). */
static int parse_head(struct opts *o, int argc, char **argv)
{
	int opt, r;

	optind = 0; /* glibc: full re-initialisation */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:" GLOBAL_SHORTOPTS,
				  global_opts, NULL)) != -1) {
		if (opt == '?' || opt == ':')
			return bad_option(opt, argv);
		if ((r = take_global(o, opt, NULL)) != PARSE_GO)
			return r;
	}
	return PARSE_GO;
}

/*
 * Options and arguments after the command. The command's own options are
 * handed to its builder after the positional arguments, as name and
 * value; global ones may appear here too ("p2pctl peers --json").
 */
static int parse_tail(struct opts *o, const struct ctl_cmd *c, int argc,
		      char **argv, char **args, int *nargs, int *npos)
{
	struct option all[MAX_OPTS + 1] = {{0}};
	char shortopts[64];
	char *optv[MAX_OPTS * 2];
	size_t n = NGLOBAL;
	int opt, r, nopt = 0;

	memcpy(all, global_opts, sizeof(global_opts));
	for (const struct option *lo = c->opts; lo && lo->name; lo++)
		if (n < MAX_OPTS)
			all[n++] = *lo;
	snprintf(shortopts, sizeof(shortopts), ":" GLOBAL_SHORTOPTS "%s",
		 c->shortopts ? c->shortopts : "");
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, all, NULL)) != -1) {
		const struct option *lo = c->opts;
		if (opt == '?' || opt == ':')
			return bad_option(opt, argv);
		while (lo && lo->name && lo->val != opt)
			lo++;
		if (!lo || !lo->name) {
			if ((r = take_global(o, opt, c)) != PARSE_GO)
				return r;
			continue;
		}
		if (nopt + 2 > MAX_OPTS * 2)
			return usage_error("too many options%s", "");
		optv[nopt++] = (char *)lo->name;
		if (lo->has_arg)
			optv[nopt++] = optarg;
	}
	*npos = 0;
	for (int i = optind; i < argc; i++)
		args[(*npos)++] = argv[i];
	memcpy(args + *npos, optv, (size_t)nopt * sizeof(char *));
	*nargs = *npos + nopt;
	args[*nargs] = NULL;
	return PARSE_GO;
}

/* Print the reply. Returns the exit status. */
static int show_reply(const struct ctl_cmd *c, const struct opts *o,
		      struct ctl_conn *conn)
{
	json_error_t jerr;
	json_t *r = json_loadb(conn->buf, conn->linelen, 0, &jerr);
	int rc = EXIT_OK;

	if (!json_is_object(r) || !json_is_boolean(json_object_get(r, "ok"))) {
		fprintf(stderr, "p2pctl: internal: malformed reply from the "
				"daemon\n");
		json_decref(r);
		return EXIT_DAEMON;
	}
	if (o->json)
		printf("%s\n", conn->buf); /* the daemon's object, unchanged */
	if (!json_is_true(json_object_get(r, "ok"))) {
		const char *code =
		    json_string_value(json_object_get(r, "error"));
		const char *msg =
		    json_string_value(json_object_get(r, "message"));
		fprintf(stderr, "p2pctl: %s: %s\n", code ? code : "error",
			msg ? msg : "(no message)");
		rc = EXIT_DAEMON;
	} else if (!o->json && c->print) {
		c->print(r);
	}
	json_decref(r);
	return rc;
}

/* Commands whose answer can take seconds: they may send progress. */
static int slow(const struct ctl_cmd *c)
{
	return !strcmp(c->name, "connect") || !strcmp(c->name, "pipe") ||
	       !strcmp(c->name, "ping") || !strcmp(c->name, "bootstrap");
}

/* A progress line (SPEC section 9): shown on stderr, and 1; else 0. */
static int progress_line(const struct ctl_conn *conn)
{
	json_t *r = json_loadb(conn->buf, conn->linelen, 0, NULL);
	const char *detail = json_string_value(json_object_get(r, "detail"));
	int is = json_is_string(json_object_get(r, "progress")) &&
		 !json_object_get(r, "ok");

	if (is)
		fprintf(stderr, "p2pctl: %s\n", detail ? detail : "...");
	json_decref(r);
	return is;
}

static int exchange(const struct ctl_cmd *c, const struct opts *o,
		    struct ctl_conn *conn, const char *path, const char *line)
{
	int timeout = o->timeout_ms ? o->timeout_ms : c->timeout_ms;
	int err = ctl_request(conn, line, timeout), rc;

	while (err == 0 && progress_line(conn))
		err = ctl_next_line(conn);
	if (err == -ETIMEDOUT) {
		fprintf(stderr, "p2pctl: timeout: no reply from %s in %d s\n",
			path, timeout / 1000);
		return EXIT_DAEMON;
	}
	if (err < 0) {
		fprintf(stderr, "p2pctl: %s: %s\n", path,
			err == -ECONNRESET ? "the daemon closed the connection"
					   : strerror(-err));
		return EXIT_DAEMON;
	}
	rc = show_reply(c, o, conn);
	if (rc == EXIT_OK && !strcmp(c->name, "pipe") &&
	    (err = ctl_pipe(conn)) < 0) {
		fprintf(stderr, "p2pctl: pipe: %s\n",
			err == -ECONNRESET ? "the tunnel was reset (its link "
					     "went, or the peer reset it)"
					   : strerror(-err));
		rc = EXIT_DAEMON;
	}
	return rc;
}

/*
 * count > 1 (ping -c N): that many requests on the one connection, a
 * second apart, one line each; 0 when any was answered (as ping(8)).
 */
static int run(const struct ctl_cmd *c, const struct opts *o, json_t *req)
{
	json_t *cnt = json_object_get(req, CTL_COUNT_KEY);
	long count = json_is_integer(cnt) ? (long)json_integer_value(cnt) : 1;
	struct ctl_target t;
	struct ctl_conn conn;
	char *line;
	int rc = EXIT_DAEMON;

	json_object_del(req, CTL_COUNT_KEY);
	if (slow(c) && (o->verbose || isatty(STDERR_FILENO)))
		json_object_set_new(req, "progress", json_true());
	line = json_dumps(req, JSON_COMPACT);
	if (!line)
		return EXIT_DAEMON;
	ctl_target_init(&t, o->socket);
	if (ctl_target_connect(&t, &conn) < 0) {
		ctl_target_explain(&t);
		free(line);
		return EXIT_UNREACHABLE;
	}
	for (long i = 0, r = EXIT_OK; i < count; i++) {
		if (i > 0) {
			fflush(stdout);
			usleep(PING_INTERVAL_MS * 1000);
		}
		/* After a failure (a timeout, say) the late answer may still
		 * come: a fresh connection keeps the next one apart. */
		if (r != EXIT_OK) {
			ctl_close(&conn);
			if (ctl_target_connect(&t, &conn) < 0) {
				ctl_target_explain(&t);
				break;
			}
		}
		r = exchange(c, o, &conn, t.path[t.used], line);
		if (count == 1 || r == EXIT_OK)
			rc = r;
	}
	free(line);
	ctl_close(&conn);
	return rc;
}

/* "p2pctl help [COMMAND]" */
static int help(int argc, char **argv)
{
	const struct ctl_cmd *c;

	if (argc < 1) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!(c = ctl_cmd_find(argv[0]))) {
		usage_error("unknown command '%s'", argv[0]);
		return EXIT_USAGE;
	}
	cmd_help(c, stdout);
	return EXIT_OK;
}

static int parse_exit(int r)
{
	return r == PARSE_DONE ? EXIT_OK : EXIT_USAGE;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	const struct ctl_cmd *c;
	char *args[argc + MAX_OPTS * 2 + 1], err[512];
	int r, nargs = 0, npos = 0, cmdi;
	json_t *req;

	/* Writes to a reader that went away fail with EPIPE instead; pipe.c
	 * treats that as the end, not an error. */
	signal(SIGPIPE, SIG_IGN);
	if ((r = parse_head(&o, argc, argv)) != PARSE_GO)
		return parse_exit(r);
	if ((cmdi = optind) >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[cmdi], "help"))
		return help(argc - cmdi - 1, argv + cmdi + 1);
	if (!(c = ctl_cmd_find(argv[cmdi])))
		return parse_exit(
		    usage_error("unknown command '%s'", argv[cmdi]));
	/* The tail, with the command word standing in for argv[0]. */
	r = parse_tail(&o, c, argc - cmdi, argv + cmdi, args, &nargs, &npos);
	if (r != PARSE_GO)
		return parse_exit(r);
	if (npos < c->min || (c->max >= 0 && npos > c->max)) {
		fprintf(stderr, "p2pctl: %s: wrong number of arguments\n",
			c->name);
		fprintf(stderr, "usage: p2pctl %s %s\n", c->name, c->args);
		return EXIT_USAGE;
	}
	req = json_pack("{ss}", "cmd", c->name);
	if (c->build(nargs, args, req, err, sizeof(err)) < 0) {
		fprintf(stderr, "p2pctl: %s\n", err);
		json_decref(req);
		return EXIT_USAGE;
	}
	r = run(c, &o, req);
	json_decref(req);
	return r;
}
