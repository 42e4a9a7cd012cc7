/*
 * Getting the control socket path ready: its directory, and whatever is
 * already there. A socket nobody accepts on is what a crashed p2pd leaves
 * behind and is replaced; one that answers belongs to a running p2pd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_int.h"

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
