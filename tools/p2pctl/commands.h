/*
 * The p2pctl command table (SPEC section 4): per command its argument
 * syntax, help text, how long to wait for the reply, how to turn argv into
 * a request object and how to show the reply to people.
 */
#ifndef P2PCTL_COMMANDS_H
#define P2PCTL_COMMANDS_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>

#define CMD_TIMEOUT_MS 30000	   /* local questions */
#define CMD_TIMEOUT_NET_MS 60000   /* lookups, pings, bootstrap */
#define CMD_TIMEOUT_LONG_MS 120000 /* connect may hole-punch and retry */
#define CMD_PING_COUNT_MAX 100000
/* A request key for p2pctl itself, removed before sending: how many
 * times to send the request (ping -c N). */
#define CTL_COUNT_KEY "_count"

struct ctl_cmd {
	const char *name;
	const char *args;    /* argument synopsis */
	const char *summary; /* one line */
	const char *help;    /* more lines, or NULL */
	int min, max;	     /* positional arguments; max -1: no limit */
	int timeout_ms;
	/*
	 * Check argv and fill req (already holding "cmd"). argv holds the
	 * positional arguments, then each of the command's options as
	 * "--NAME" (or "-C" when it has no long name) and its value. 0, or
	 * -EINVAL with "CODE: text" in err (a usage error: exit 2).
	 */
	int (*build)(int argc, char **argv, json_t *req, char *err,
		     size_t errlen);
	void (*print)(json_t *reply); /* NULL: print nothing */
	/* The command's own options, after it on the line; their letters
	 * must not be global ones (s j t v h V). */
	const char *shortopts;
	const struct option *opts; /* NULL-terminated, or NULL */
};

extern const struct ctl_cmd ctl_cmds[];
extern const size_t ctl_ncmds;

const struct ctl_cmd *ctl_cmd_find(const char *name);

/* 0 when s is a peer ID (proto's decoder), else -EINVAL. */
int check_peer_id(const char *s);
/* 0 when s is an ID or a name, either maybe ending in ".p2p". */
int check_peer_ref(const char *s);

#endif
