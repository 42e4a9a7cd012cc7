/* Address text forms and classification; pure libc, no sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addr.h"

#define ADDR_TEXT_IN_MAX 64 /* longer input cannot be a valid address */
#define PORT_DIGITS_MAX 5

/* Decimal 1..65535, digits only: no sign, no spaces, no trailing bytes. */
static int parse_port(const char *s, uint16_t *port)
{
	size_t n = strlen(s);
	unsigned long v = 0;

	if (n == 0 || n > PORT_DIGITS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int parse_ip(struct p2p_addr *a, const char *ip, int family)
{
	uint8_t buf[16] = {0};

	if (inet_pton(family == 4 ? AF_INET : AF_INET6, ip, buf) != 1)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->family = (uint8_t)family;
	memcpy(a->ip, buf, family == 4 ? 4 : 16);
	return 0;
}

static int parse_bracketed(struct p2p_addr *a, char *s, bool allow_no_port)
{
	char *close = strchr(s, ']');
	uint16_t port = 0;
	int err;

	if (close == NULL)
		return -EINVAL;
	*close = '\0';
	if (close[1] == ':') {
		err = parse_port(close + 2, &port);
		if (err)
			return err;
	} else if (close[1] != '\0' || !allow_no_port) {
		return -EINVAL;
	}
	err = parse_ip(a, s + 1, 6);
	if (err)
		return err;
	a->port = port;
	return 0;
}

int p2p_addr_parse(struct p2p_addr *a, const char *text, bool allow_no_port)
{
	char s[ADDR_TEXT_IN_MAX + 1];
	char *colon;
	uint16_t port = 0;
	int err;

	if (a == NULL || text == NULL || strlen(text) > ADDR_TEXT_IN_MAX)
		return -EINVAL;
	strcpy(s, text);
	if (s[0] == '[')
		return parse_bracketed(a, s, allow_no_port);
	colon = strchr(s, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		/* Bare IPv6 cannot carry a port: that needs brackets. */
		return allow_no_port ? parse_ip(a, s, 6) : -EINVAL;
	}
	if (colon == NULL) {
		if (!allow_no_port)
			return -EINVAL;
	} else {
		*colon = '\0';
		err = parse_port(colon + 1, &port);
		if (err)
			return err;
	}
	err = parse_ip(a, s, 4);
	if (err)
		return err;
	a->port = port;
	return 0;
}

void p2p_addr_format(const struct p2p_addr *a, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];

	if (outlen == 0)
		return;
	if (a->family == 4) {
		inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, a->port);
	} else if (a->family == 6) {
		inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, a->port);
	} else {
		snprintf(out, outlen, "none");
	}
}

static size_t ip_len(uint8_t family)
{
	return family == 4 ? 4 : family == 6 ? 16 : 0;
}

bool p2p_addr_equal(const struct p2p_addr *a, const struct p2p_addr *b)
{
	return a->family == b->family && a->port == b->port &&
	       memcmp(a->ip, b->ip, ip_len(a->family)) == 0;
}

static bool v4_private(const uint8_t *ip)
{
	return ip[0] == 127 || ip[0] == 10 ||
	       (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
	       (ip[0] == 192 && ip[1] == 168) ||
	       (ip[0] == 169 && ip[1] == 254) ||
	       (ip[0] == 100 && (ip[1] & 0xc0) == 64);
}

static bool v6_private(const uint8_t *ip)
{
	static const uint8_t loopback[16] = {[15] = 1};

	return memcmp(ip, loopback, 16) == 0 ||
	       (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) || /* fe80::/10 */
	       (ip[0] & 0xfe) == 0xfc;			    /* fc00::/7 */
}

bool p2p_addr_is_private(const struct p2p_addr *a)
{
	if (a->family == 4)
		return v4_private(a->ip);
	if (a->family == 6)
		return v6_private(a->ip);
	return false;
}

uint64_t p2p_addr_subnet(const struct p2p_addr *a)
{
	uint64_t key = (uint64_t)a->family << 56;
	size_t n = a->family == 4 ? 3 : a->family == 6 ? 6 : 0;

	for (size_t i = 0; i < n; i++)
		key |= (uint64_t)a->ip[i] << (8 * (n - 1 - i));
	return key;
}

int p2p_addr_parse_listen(struct p2p_addr *a, const char *s)
{
	char host[P2P_ADDR_TEXT_MAX];
	const char *colon = strrchr(s, ':'), *port = colon ? colon + 1 : s;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	unsigned long v;

	if (!*port || strlen(port) > 5 ||
	    strspn(port, "0123456789") != strlen(port))
		return -EINVAL;
	v = strtoul(port, NULL, 10);
	if (v > 65535 || hl >= sizeof(host))
		return -EINVAL;
	if (colon && s[0] != '[' && memchr(s, ':', hl))
		return -EINVAL;
	memcpy(host, colon ? s : "127.0.0.1", colon ? hl : 10);
	host[colon ? hl : 9] = '\0';
	if (p2p_addr_parse(a, host, true) < 0)
		return -EINVAL;
	a->port = (uint16_t)v;
	return 0;
}

int p2p_host_port_parse(const char *s, char *host, uint16_t *port)
{
	const char *colon = strrchr(s, ':'), *label;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	unsigned long v;
	bool digits = true;

	if (!colon || hl == 0 || hl > P2P_HOST_NAME_MAX || !colon[1] ||
	    strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return -EINVAL;
	v = strtoul(colon + 1, NULL, 10);
	if (v < 1 || v > 65535)
		return -EINVAL;
	label = s;
	for (const char *p = s; p <= colon; p++) {
		if (p == colon || *p == '.') {
			size_t ll = (size_t)(p - label);
			if (ll == 0 || ll > 63 || label[0] == '-' ||
			    p[-1] == '-')
				return -EINVAL;
			if (p == colon && digits)
				return -EINVAL; /* 300.1.1.1: not a name */
			label = p + 1;
			digits = true;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			return -EINVAL;
		if (*p < '0' || *p > '9')
			digits = false;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (uint16_t)v;
	return 0;
}
