/*
 * The state directory holds the identity key and files the daemon rewrites
 * (peers.json). Whoever can create names in it can plant a link where we
 * are about to write, or swap in a key of their own, so it must belong to
 * the user p2pd runs as and be writable by nobody else. The directory
 * itself may be a symbolic link: systemd's DynamicUser makes
 * /var/lib/p2pd one (to /var/lib/private/p2pd).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

int p2pd_state_dir_check(const char *dir, char *err, size_t errlen)
{
	unsigned int mode;
	struct stat st;
	int r;

	if (stat(dir, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot use state directory %s: %s", dir,
			 strerror(-r));
		return r;
	}
	mode = (unsigned int)(st.st_mode & 07777);
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state directory %s is not a directory",
			 dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "state directory %s is owned by uid %u, not by uid %u "
			 "that runs p2pd: refusing to use it",
			 dir, (unsigned int)st.st_uid, (unsigned int)geteuid());
		return -EPERM;
	}
	/* Even with the sticky bit others could create names in it. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen,
			 "state directory %s has mode %04o and is writable by "
			 "group or others; fix with: chmod 700 %s",
			 dir, mode, dir);
		return -EPERM;
	}
	return 0;
}
