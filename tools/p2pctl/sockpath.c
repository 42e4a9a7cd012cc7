/*
 * Control socket search and the messages that say why none answered.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sockpath.h"

#define MAX_GROUPS 256

/* Mirrors p2pd's defaults (daemon/config.c): keep the two in step. */
void ctl_user_path(char *out, size_t outlen)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		snprintf(out, outlen, "%s", CTL_SYSTEM_SOCKET);
	else if (xdg && xdg[0] == '/') /* XDG: relative values are invalid */
		snprintf(out, outlen, "%s/p2pd/p2pd.sock", xdg);
	else
		snprintf(out, outlen, "/tmp/p2pd-%u/p2pd.sock",
			 (unsigned)getuid());
}

static void add(struct ctl_target *t, const char *path)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->path[i], path))
			return;
	snprintf(t->path[t->n++], sizeof(t->path[0]), "%s", path);
}

void ctl_target_init(struct ctl_target *t, const char *opt_path)
{
	const char *env = getenv("P2PD_CONTROL");
	char own[PATH_MAX];

	memset(t, 0, sizeof(*t));
	if (opt_path || (env && *env)) {
		t->named = true;
		add(t, opt_path ? opt_path : env);
		return;
	}
	ctl_user_path(own, sizeof(own));
	add(t, own);
	add(t, CTL_SYSTEM_SOCKET);
}

/* Higher is more useful to the user when every candidate failed. */
static int telling(int err)
{
	if (err == -EACCES || err == -EPERM)
		return 3;
	if (err == -ECONNREFUSED)
		return 2; /* a stale socket: a daemon was there */
	return err == -ENOENT ? 0 : 1;
}

int ctl_target_connect(struct ctl_target *t, struct ctl_conn *c)
{
	t->used = 0;
	for (size_t i = 0; i < t->n; i++) {
		t->err[i] = ctl_connect(c, t->path[i]);
		if (t->err[i] == 0) {
			t->used = i;
			return 0;
		}
		if (telling(t->err[i]) > telling(t->err[t->used]))
			t->used = i;
	}
	return t->err[t->used];
}

/* Is this process's user listed in group gid, without the login showing
 * it yet? Then logging in again is all that is missing. */
static bool member_not_active(const struct group *g)
{
	gid_t groups[MAX_GROUPS];
	struct passwd *pw = getpwuid(getuid());
	int n = getgroups(MAX_GROUPS, groups);
	bool listed = false;

	for (char **m = g->gr_mem; pw && m && *m; m++)
		if (!strcmp(*m, pw->pw_name))
			listed = true;
	if (!listed || getegid() == g->gr_gid)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == g->gr_gid)
			return false;
	return true;
}

/*
 * The group that may use path: its group owner when we can see it and it
 * is not root's; else the packaged group, which is what a system daemon
 * installed from the package runs with.
 */
static const char *socket_group(const char *path)
{
	struct stat st;
	struct group *g;

	if (stat(path, &st) == 0 && st.st_gid != 0 &&
	    (g = getgrgid(st.st_gid)) != NULL)
		return g->gr_name;
	return CTL_SYSTEM_GROUP;
}

static void explain_access(const char *path)
{
	const char *name = socket_group(path);
	struct group *g = getgrnam(name);

	if (g && member_not_active(g)) {
		fprintf(stderr,
			"p2pctl: you are in group %s, but this login is not "
			"yet: log in again (or run 'newgrp %s')\n",
			name, name);
		return;
	}
	fprintf(stderr,
		"p2pctl: only members of group %s may use this socket: run\n"
		"  sudo usermod -aG %s $USER\n"
		"then log in again (or run p2pctl as root)\n",
		name, name);
}

void ctl_target_explain(const struct ctl_target *t)
{
	int err = t->err[t->used];

	if (err == -EACCES || err == -EPERM) {
		fprintf(stderr, "p2pctl: cannot connect to %s: %s\n",
			t->path[t->used], strerror(-err));
		explain_access(t->path[t->used]);
		return;
	}
	for (size_t i = 0; i < t->n; i++)
		fprintf(stderr, "p2pctl: cannot connect to %s: %s%s\n",
			t->path[i], strerror(-t->err[i]),
			i + 1 == t->n ? " (is p2pd running?)" : "");
}
