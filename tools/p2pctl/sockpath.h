/*
 * Which control socket p2pctl talks to (SPEC section 9): -s, else
 * $P2PD_CONTROL, else the user's own daemon, then the system one. Only the
 * implicit search falls through to a second socket: a path the user named
 * is the only one tried, so a typo is never hidden by another daemon.
 */
#ifndef P2PCTL_SOCKPATH_H
#define P2PCTL_SOCKPATH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "client.h"

#define CTL_SYSTEM_SOCKET "/run/p2pd/p2pd.sock"
#define CTL_SYSTEM_GROUP "p2pd" /* packaging's sysusers.d group */
#define CTL_MAX_CANDIDATES 2

struct ctl_target {
	size_t n;
	char path[CTL_MAX_CANDIDATES][PATH_MAX];
	bool named;		     /* from -s or $P2PD_CONTROL */
	int err[CTL_MAX_CANDIDATES]; /* what connecting to each gave */
	size_t used;		     /* the one connected, or the worst */
};

/* The socket p2pd uses by default for this user (SPEC section 3). */
void ctl_user_path(char *out, size_t outlen);

/* Candidates from opt_path (-s, or NULL) and the environment. */
void ctl_target_init(struct ctl_target *t, const char *opt_path);

/*
 * Connect c to the first candidate that answers: 0 with t->used its index.
 * Else the most telling -errno (-EACCES over -ECONNREFUSED over the rest),
 * t->used naming the candidate that gave it.
 */
int ctl_target_connect(struct ctl_target *t, struct ctl_conn *c);

/*
 * After a failed ctl_target_connect, say on stderr why: one line per
 * candidate tried and, for a permission error, which group to join and how.
 */
void ctl_target_explain(const struct ctl_target *t);

#endif
