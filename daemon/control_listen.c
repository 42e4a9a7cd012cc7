/*
 * Getting the control socket path ready: its directory, and whatever is
 * already there. A socket nobody accepts on is what a crashed p2pd leaves
 * behind and is replaced; one that answers belongs to a running p2pd.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_int.h"
#include "log.h"

/* getgrnam_r buffer: doubled from the first size up to the last. */
#define CTL_GRBUF_START 4096
#define CTL_GRBUF_MAX (1024 * 1024)
/* Supplementary groups read without allocating (SO_PEERGROUPS). */
#define CTL_PEER_GROUPS_INLINE 64

/* mkdir -p of path's directory part. */
static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	int r;

	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	r = -errno;
	snprintf(err, errlen, "cannot create directory %s: %s", dir,
		 strerror(-r));
	return r;
}

/* 1 when something accepts on path, 0 when refused, -errno otherwise. */
static int socket_alive(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, r;

	strcpy(sun.sun_path, path);
	/* Non-blocking: a live server with a full backlog must not hang us. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (r == 0 || errno == EAGAIN || errno == EINPROGRESS)
		r = 1;
	else if (errno == ECONNREFUSED)
		r = 0;
	else
		r = -errno;
	close(fd);
	return r;
}

int ctl_prepare_path(const char *path, char *err, size_t errlen)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	struct stat st;
	int r;

	if (path[0] == '\0' || strlen(path) > max) {
		snprintf(err, errlen,
			 "control socket path \"%s\" is empty or longer than "
			 "%zu bytes",
			 path, max);
		return -ENAMETOOLONG;
	}
	r = make_parent(path, err, errlen);
	if (r < 0)
		return r;
	if (lstat(path, &st) < 0) {
		r = -errno;
		if (r == -ENOENT)
			return 0;
		snprintf(err, errlen, "cannot use control socket %s: %s", path,
			 strerror(-r));
		return r;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
			 "%s exists and is not a socket: refusing "
			 "to replace it",
			 path);
		return -EEXIST;
	}
	r = socket_alive(path);
	if (r > 0) {
		snprintf(err, errlen, "another p2pd is already running on %s",
			 path);
		return -EADDRINUSE;
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot check control socket %s: %s",
			 path, strerror(-r));
		return r;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path,
			 strerror(-r));
		return r;
	}
	return 0;
}

/* gid of group name: 0 found, -ENOENT when there is none, -errno. */
static int group_gid(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	size_t cap = CTL_GRBUF_START;
	char *buf = NULL;
	int e;

	for (;;) {
		char *nb = realloc(buf, cap);

		if (nb == NULL) {
			free(buf);
			return -ENOMEM;
		}
		buf = nb;
		e = getgrnam_r(name, &gr, buf, cap, &res);
		if (e != ERANGE || cap >= CTL_GRBUF_MAX)
			break;
		cap *= 2;
	}
	if (res != NULL)
		*gid = gr.gr_gid;
	free(buf);
	if (res != NULL)
		return 0;
	return e == 0 ? -ENOENT : -e;
}

int ctl_socket_perms(const char *path, const char *group, gid_t *gid, char *err,
		     size_t errlen)
{
	struct stat st;
	gid_t want;
	int r;

	if (chmod(path, 0660) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot chmod control socket %s: %s",
			 path, strerror(-r));
		return r;
	}
	if (group != NULL && group[0] != '\0') {
		r = group_gid(group, &want);
		if (r == 0 && chown(path, (uid_t)-1, want) < 0)
			r = -errno;
		/* No such group is the normal case outside a package. */
		if (r < 0 && r != -ENOENT)
			log_warnx("control socket %s: cannot give it to group "
				  "%s (%s); only root and uid %u can use it",
				  path, group, strerror(-r),
				  (unsigned int)geteuid());
	}
	if (stat(path, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat control socket %s: %s", path,
			 strerror(-r));
		return r;
	}
	*gid = st.st_gid;
	return 0;
}

/* Whether gid is among the peer's supplementary groups: 1, 0, -errno. */
static int peer_in_group(int fd, gid_t gid)
{
	gid_t inline_groups[CTL_PEER_GROUPS_INLINE], *g = inline_groups;
	socklen_t len = sizeof(inline_groups);
	int r = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		if (errno != ERANGE)
			return -errno;
		/* len now says how much the list needs. */
		g = malloc(len);
		if (g == NULL)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0)
			r = -errno;
	}
	for (size_t i = 0; r == 0 && i < len / sizeof(gid_t); i++)
		if (g[i] == gid)
			r = 1;
	if (g != inline_groups)
		free(g);
	return r;
}

int ctl_peer_allowed(int fd, uid_t self, gid_t gid, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	*uid = cred.uid;
	log_debug("control client pid %ld uid %u gid %u", (long)cred.pid,
		  (unsigned int)cred.uid, (unsigned int)cred.gid);
	if (cred.uid == 0 || cred.uid == self || cred.gid == gid)
		return 1;
	return peer_in_group(fd, gid);
}
