/*
 * Socket addresses as plain values: what travels in messages, what the
 * overlay stores, what the daemon converts to and from sockaddr.
 */
#ifndef P2P_PROTO_ADDR_H
#define P2P_PROTO_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define P2P_ADDR_TEXT_MAX 48 /* "[ffff:...:ffff]:65535" plus NUL */

struct p2p_addr {
	uint8_t family; /* 4 or 6; 0 means "no address" */
	uint8_t ip[16]; /* IPv4 in the first 4 bytes, rest zero */
	uint16_t port;	/* host byte order */
};

/*
 * Parse "1.2.3.4:567", "[::1]:567". With allow_no_port, "1.2.3.4" and "::1"
 * are accepted too and leave port 0. Returns 0 or -EINVAL.
 */
int p2p_addr_parse(struct p2p_addr *a, const char *text, bool allow_no_port);

/*
 * A local listen address "[ADDR:]PORT" (forwards): a bare port means
 * 127.0.0.1, port 0 is allowed (the kernel picks one), IPv6 only in
 * brackets ("::1:5" is not [::1]:5). 0 or -EINVAL.
 */
int p2p_addr_parse_listen(struct p2p_addr *a, const char *text);

#define P2P_HOST_NAME_MAX 253

/*
 * "HOST:PORT" where HOST is a DNS name (labels of [A-Za-z0-9-], not
 * starting or ending with '-', the last one not all digits, at most
 * P2P_HOST_NAME_MAX) and PORT 1..65535: host (P2P_HOST_NAME_MAX + 1
 * bytes) and *port set. 0 or -EINVAL; numeric addresses are -EINVAL here
 * (p2p_addr_parse takes them).
 */
int p2p_host_port_parse(const char *text, char *host, uint16_t *port);

/* Write "1.2.3.4:567" or "[::1]:567" into out (P2P_ADDR_TEXT_MAX bytes). */
void p2p_addr_format(const struct p2p_addr *a, char *out, size_t outlen);

/* Same IP and port. */
bool p2p_addr_equal(const struct p2p_addr *a, const struct p2p_addr *b);

/* Loopback, RFC 1918, link-local, ULA: addresses only a LAN can reach. */
bool p2p_addr_is_private(const struct p2p_addr *a);

/*
 * Subnet key used for diversity limits: the /24 of an IPv4 address or the
 * /48 of an IPv6 one, family included. Two addresses are in the same subnet
 * when their keys are equal.
 */
uint64_t p2p_addr_subnet(const struct p2p_addr *a);

#endif
