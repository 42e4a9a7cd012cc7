/*
 * Internal to config.c and config_file.c: the JSON config file reader and
 * the small helpers both sides share.
 */
#ifndef P2PD_CONFIG_FILE_H
#define P2PD_CONFIG_FILE_H

#include <stddef.h>

#include "config.h"

/* Apply the keys of the JSON file at path onto c. 0 or -EINVAL + err. */
int cfg_file_load(struct p2pd_config *c, const char *path, char *err,
		  size_t errlen);

/* Write a message into err and return -EINVAL. */
int cfg_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copy a non-empty string that fits dstlen, else -EINVAL naming what. */
int cfg_set_path(char *dst, size_t dstlen, const char *src, const char *what,
		 char *err, size_t errlen);

/* Parse ntexts "ADDR:PORT" strings (port required) into out. */
int cfg_parse_addr_list(struct p2p_addr *out, size_t *n, size_t max,
			const char *const *texts, size_t ntexts,
			const char *what, char *err, size_t errlen);

/* Bootstrap entries: ADDR:PORT into c->bootstrap, HOST:PORT into
 * c->bootstrap_names (replacing both). 0 or -EINVAL naming what. */
int cfg_parse_bootstrap(struct p2pd_config *c, const char *const *texts,
			size_t ntexts, const char *what, char *err,
			size_t errlen);

#endif
