/*
 * p2pctl: talk to p2pd over its control socket (SPEC sections 4 and 5).
 * One request line, one reply line; "pipe" then carries raw bytes.
 *
 * Exit status: 0 ok, 1 the daemon answered an error (or timed out),
 * 2 usage error, 3 the daemon cannot be reached.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "commands.h"

enum { EXIT_OK = 0, EXIT_DAEMON = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

struct opts {
	char path[PATH_MAX];
	int json;
	int timeout_ms; /* 0: the command's own */
};

static void usage(FILE *out)
{
	fprintf(out, "usage: p2pctl [-s PATH] [--json] [-t SECONDS] COMMAND "
		     "[ARGS]\n\n"
		     "  -s, --socket PATH  control socket (default: "
		     "$P2PD_CONTROL, else p2pd's default)\n"
		     "  -j, --json         print the daemon's JSON reply "
		     "unchanged\n"
		     "  -t, --timeout SEC  how long to wait for the reply\n"
		     "  -h, --help         this text; 'p2pctl help COMMAND' "
		     "for one command\n\ncommands:\n");
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
	return EXIT_USAGE;
}

/*
 * Take one global option at argv[*i] if there is one. Returns 1 when
 * taken, 0 when argv[*i] is not ours, -1 on a usage error.
 */
static int take_option(struct opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
		o->json = 1;
		return 1;
	}
	if (!strcmp(a, "-s") || !strcmp(a, "--socket") ||
	    !strcmp(a, "--control") || !strcmp(a, "-t") ||
	    !strcmp(a, "--timeout")) {
		if (*i + 1 >= argc) {
			usage_error("option '%s' needs a value", a);
			return -1;
		}
		(*i)++;
		if (a[1] == 't' || !strcmp(a, "--timeout")) {
			char *end;
			long v = strtol(argv[*i], &end, 10);
			if (*end || v <= 0 || v > 86400) {
				usage_error("bad timeout '%s'", argv[*i]);
				return -1;
			}
			o->timeout_ms = (int)v * 1000;
		} else if (strlen(argv[*i]) >= sizeof(o->path)) {
			usage_error("socket path too long: %s", argv[*i]);
			return -1;
		} else {
			strcpy(o->path, argv[*i]);
		}
		return 1;
	}
	return 0;
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

static int run(const struct ctl_cmd *c, const struct opts *o, json_t *req)
{
	struct ctl_conn conn;
	char *line = json_dumps(req, JSON_COMPACT);
	int timeout = o->timeout_ms ? o->timeout_ms : c->timeout_ms;
	int err, rc;

	if (!line)
		return EXIT_DAEMON;
	if ((err = ctl_connect(&conn, o->path)) < 0) {
		fprintf(stderr,
			"p2pctl: cannot connect to %s: %s (is p2pd running?)\n",
			o->path, strerror(-err));
		free(line);
		return EXIT_UNREACHABLE;
	}
	err = ctl_request(&conn, line, timeout);
	free(line);
	if (err == -ETIMEDOUT) {
		fprintf(stderr, "p2pctl: timeout: no reply from %s in %d s\n",
			o->path, timeout / 1000);
		rc = EXIT_DAEMON;
	} else if (err < 0) {
		fprintf(stderr, "p2pctl: %s: %s\n", o->path,
			err == -ECONNRESET ? "the daemon closed the connection"
					   : strerror(-err));
		rc = EXIT_DAEMON;
	} else {
		rc = show_reply(c, o, &conn);
		if (rc == EXIT_OK && !strcmp(c->name, "pipe") &&
		    (err = ctl_pipe(&conn)) < 0) {
			fprintf(stderr, "p2pctl: pipe: %s\n", strerror(-err));
			rc = EXIT_DAEMON;
		}
	}
	ctl_close(&conn);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	const struct ctl_cmd *c;
	char *args[argc + 1], err[512];
	int i, nargs = 0, r;
	const char *env = getenv("P2PD_CONTROL");
	json_t *req;

	signal(SIGPIPE, SIG_IGN);
	if (env && *env && strlen(env) < sizeof(o.path))
		strcpy(o.path, env);
	else
		ctl_default_path(o.path, sizeof(o.path));

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return EXIT_OK;
		}
		if ((r = take_option(&o, argc, argv, &i)) < 0)
			return EXIT_USAGE;
		if (r == 0)
			return usage_error("unknown option '%s'", argv[i]);
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		if (i + 1 >= argc) {
			usage(stdout);
			return EXIT_OK;
		}
		if (!(c = ctl_cmd_find(argv[i + 1])))
			return usage_error("unknown command '%s'", argv[i + 1]);
		cmd_help(c, stdout);
		return EXIT_OK;
	}
	if (!(c = ctl_cmd_find(argv[i])))
		return usage_error("unknown command '%s'", argv[i]);

	/* Global options may follow the command too ("p2pctl peers --json"). */
	for (i++; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cmd_help(c, stdout);
			return EXIT_OK;
		}
		if ((r = take_option(&o, argc, argv, &i)) < 0)
			return EXIT_USAGE;
		if (r == 0)
			args[nargs++] = argv[i];
	}
	args[nargs] = NULL;
	if (nargs < c->min || (c->max >= 0 && nargs > c->max)) {
		fprintf(stderr, "p2pctl: %s: wrong number of arguments\n",
			c->name);
		fprintf(stderr, "usage: p2pctl %s %s\n", c->name, c->args);
		return EXIT_USAGE;
	}
	req = json_pack("{ss}", "cmd", c->name);
	if (c->build(nargs, args, req, err, sizeof(err)) < 0) {
		fprintf(stderr, "p2pctl: %s: %s\n", c->name, err);
		json_decref(req);
		return EXIT_USAGE;
	}
	r = run(c, &o, req);
	json_decref(req);
	return r;
}
