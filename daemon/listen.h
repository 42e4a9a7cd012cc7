/*
 * The overlay listeners (part of the link layer): their addresses live in
 * the hub (n->listeners), where every layer reads them.
 */
#ifndef P2PD_LISTEN_H
#define P2PD_LISTEN_H

#include "node.h"

/* Listen on a; 0 or -errno with a message in err. -EAFNOSUPPORT: the
 * host lacks a's family (no IPv6, say), and nothing was opened. */
int listen_start(struct p2pd_node *n, const struct p2p_addr *a, char *err,
		 size_t errlen);
void listen_stop_all(struct p2pd_node *n);

#endif
