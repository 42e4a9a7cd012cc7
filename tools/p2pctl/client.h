/*
 * p2pctl's side of the control protocol (SPEC section 5): one Unix stream
 * connection, one request line out, one reply line back, with a deadline.
 * Plain POSIX sockets and poll(); no event loop is needed for one request.
 */
#ifndef P2PCTL_CLIENT_H
#define P2PCTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_REPLY_MAX (16 * 1024 * 1024) /* a reply line we accept */

struct ctl_conn {
	int fd;
	char *buf;  /* bytes read so far (reply line plus anything after) */
	size_t len; /* valid bytes in buf */
	size_t cap;
	size_t linelen; /* length of the reply line once read, '\n' excluded */
	bool have_line; /* buf starts with that line */
	long long deadline; /* of the request in progress (monotonic ms) */
};

/* Connect to path. 0 or -errno (-ENAMETOOLONG for a path over sun_path). */
int ctl_connect(struct ctl_conn *c, const char *path);

/*
 * Send line (a '\n' is appended) and read one reply line within timeout_ms.
 * 0 with the line in c->buf[0..linelen) NUL terminated; -ETIMEDOUT;
 * -ECONNRESET when the daemon closed before a whole line; -EMSGSIZE over
 * CTL_REPLY_MAX; another -errno from the socket.
 */
int ctl_request(struct ctl_conn *c, const char *line, int timeout_ms);

/*
 * The next line of the same request (after a progress line), by the same
 * deadline; returns as ctl_request does. The previous line is dropped.
 */
int ctl_next_line(struct ctl_conn *c);

/*
 * After the ok line of "open": copy stdin to the socket and the socket to
 * stdout until the remote side closes. EOF on stdin only shuts down our
 * sending side. Bytes that followed the reply line in c->buf go out first.
 * 0 or -errno.
 */
int ctl_pipe(struct ctl_conn *c);

void ctl_close(struct ctl_conn *c);

#endif
