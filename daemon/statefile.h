/*
 * Small files of the state dir (peers.json, names.json, runtime.json):
 * read without following links or blocking on a FIFO, written atomically
 * (a fresh mkostemp file, mode 0600, fsync, rename, fsync of the
 * directory).
 */
#ifndef P2PD_STATEFILE_H
#define P2PD_STATEFILE_H

#include <jansson.h>
#include <stddef.h>

#define STATEFILE_MAX (1024 * 1024) /* larger files are malformed */

/*
 * The whole file at path, at most max bytes, into *text (malloc'd,
 * NUL-terminated, *len bytes before the NUL). 0, -EPROTO with err set
 * (not a regular file, too large), or -errno with err set (-ENOENT when
 * absent, -ELOOP for a symbolic link).
 */
int statefile_load_text(const char *path, size_t max, char **text, size_t *len,
			char *err, size_t errlen);

/* text and a '\n' to path atomically. 0 or -errno. */
int statefile_save_text(const char *path, const char *text);

/*
 * The JSON document at path into *out (a new reference). 0, -ENOENT when
 * absent, -EPROTO with err set (not a regular file, too large, not JSON),
 * or -errno (-ELOOP for a symbolic link).
 */
int statefile_read(const char *path, json_t **out, char *err, size_t errlen);

/* Write doc (indented, '\n' ended) to path atomically. 0 or -errno. */
int statefile_write(const char *path, const json_t *doc);

#endif
