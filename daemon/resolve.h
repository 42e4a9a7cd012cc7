/*
 * Host names without blocking the loop (SPEC section 9: bootstrap
 * entries may be host names, every address of the name is tried):
 * uv_getaddrinfo on libuv's thread pool. The node counts a lookup as an
 * open handle, so it is never freed under one; while it is stopping the
 * answer is dropped.
 */
#ifndef P2PD_RESOLVE_H
#define P2PD_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "proto/addr.h"

#define RESOLVE_ADDRS_MAX 16 /* addresses of one name we try */

/* Once per resolve_start that returned 0, never inside it: err 0 and
 * 1..RESOLVE_ADDRS_MAX addresses (valid for the call; port set), or a
 * libuv error. token is the caller's, handed back. */
typedef void (*resolve_fn)(struct p2pd_node *n, uint64_t token,
			   const struct p2p_addr *addrs, size_t naddrs,
			   int err);

/* host_port: "HOST:PORT" as p2p_host_port_parse takes it. 0 or -errno. */
int resolve_start(struct p2pd_node *n, const char *host_port, resolve_fn done,
		  uint64_t token);

#endif
