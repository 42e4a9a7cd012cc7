#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "statefile.h"

int statefile_load_text(const char *path, size_t max, char **text, size_t *len,
			char *err, size_t errlen)
{
	/* Never through a link, and never blocked on a FIFO someone put in
	 * its place: both are refused as not a regular file. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	char *buf;
	ssize_t got;
	size_t n = 0;
	int rc;

	*text = NULL;
	*len = 0;
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s",
			 rc == -ELOOP ? "a symbolic link" : strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max) {
		snprintf(err, errlen, "not a regular file under %zu bytes",
			 max);
		close(fd);
		return -EPROTO;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (n < (size_t)st.st_size &&
	       (got = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
		n += (size_t)got;
	close(fd);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

int statefile_read(const char *path, json_t **out, char *err, size_t errlen)
{
	json_error_t je;
	char *buf;
	size_t len;
	int rc =
	    statefile_load_text(path, STATEFILE_MAX, &buf, &len, err, errlen);

	*out = NULL;
	if (rc < 0)
		return rc;
	*out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!*out) {
		snprintf(err, errlen, "line %d: %s", je.line, je.text);
		return -EPROTO;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd, rc = 0;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * The temporary file gets a fresh random name, created with O_EXCL by
 * mkostemp: a name planted in advance (a link to another file) is never
 * opened, so we cannot be made to write through it.
 */
int statefile_save_text(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0)
		return -errno;
	rc = write_all(fd, text, strlen(text));
	if (rc == 0)
		rc = write_all(fd, "\n", 1);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	/* Without this a crash can lose the rename (and the old file). */
	return sync_dir_of(path);
}

int statefile_write(const char *path, const json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	int rc;

	if (!text)
		return -ENOMEM;
	rc = statefile_save_text(path, text);
	free(text);
	return rc;
}
