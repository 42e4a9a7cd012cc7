/* Address parsing, formatting, classification and subnet keys. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "proto/addr.h"

static struct p2p_addr parse_ok(const char *text, bool no_port)
{
	struct p2p_addr a;

	cr_assert_eq(p2p_addr_parse(&a, text, no_port), 0, "%s", text);
	return a;
}

static void round_trip(const char *text)
{
	struct p2p_addr a = parse_ok(text, false);
	char out[P2P_ADDR_TEXT_MAX];

	p2p_addr_format(&a, out, sizeof(out));
	cr_assert_str_eq(out, text);
}

Test(addr, parse_ipv4)
{
	struct p2p_addr a = parse_ok("1.2.3.4:5", false);
	static const uint8_t rest[12] = {0};

	cr_assert_eq(a.family, 4);
	cr_assert_eq(a.port, 5);
	cr_assert_eq(a.ip[0], 1);
	cr_assert_eq(a.ip[3], 4);
	cr_assert_eq(memcmp(a.ip + 4, rest, 12), 0);
}

Test(addr, parse_ipv6)
{
	struct p2p_addr a = parse_ok("[::1]:65535", false);

	cr_assert_eq(a.family, 6);
	cr_assert_eq(a.port, 65535);
	cr_assert_eq(a.ip[15], 1);
	cr_assert_eq(a.ip[0], 0);
}

Test(addr, round_trips)
{
	round_trip("1.2.3.4:5");
	round_trip("255.255.255.255:65535");
	round_trip("[::1]:1");
	round_trip("[2001:db8::7]:4242");
	round_trip("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

Test(addr, longest_text_fits)
{
	struct p2p_addr a;
	char out[P2P_ADDR_TEXT_MAX];

	memset(&a, 0, sizeof(a));
	a.family = 6;
	memset(a.ip, 0xff, 16);
	a.port = 65535;
	p2p_addr_format(&a, out, sizeof(out));
	cr_assert_lt(strlen(out), sizeof(out));
	cr_assert_str_eq(out,
			 "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

Test(addr, no_port_allowed)
{
	struct p2p_addr a = parse_ok("10.0.0.1", true);

	cr_assert_eq(a.family, 4);
	cr_assert_eq(a.port, 0);
	a = parse_ok("::1", true);
	cr_assert_eq(a.family, 6);
	a = parse_ok("[fe80::1]", true);
	cr_assert_eq(a.family, 6);
	a = parse_ok("10.0.0.1:80", true);
	cr_assert_eq(a.port, 80);
}

Test(addr, rejects_garbage)
{
	static const char *const bad[] = {
	    "",
	    "1.2.3.4",
	    "::1",
	    "[::1]",
	    "1.2.3.4:0",
	    "1.2.3.4:65536",
	    "1.2.3.4:99999999999",
	    "1.2.3.4:",
	    "1.2.3.4:+5",
	    "1.2.3.4:-5",
	    "1.2.3.4: 5",
	    "1.2.3.4:5 ",
	    "1.2.3.4:5x",
	    " 1.2.3.4:5",
	    "1.2.3:5",
	    "1.2.3.4.5:5",
	    "256.1.1.1:5",
	    "[::1]:0",
	    "[::1]5",
	    "[::1:5",
	    "::1]:5",
	    "[1.2.3.4]:5",
	    "[::1]:5:6",
	    "[::g]:5",
	    "host:5",
	    "localhost",
	    "[fe80::1%eth0]:5",
	    "1.2.3.4:5:6",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct p2p_addr a;

		cr_assert_eq(p2p_addr_parse(&a, bad[i], false), -EINVAL, "'%s'",
			     bad[i]);
	}
	struct p2p_addr a;
	cr_assert_eq(p2p_addr_parse(&a, NULL, true), -EINVAL);
	cr_assert_eq(p2p_addr_parse(&a, "1.2.3.4:", true), -EINVAL);
	cr_assert_eq(p2p_addr_parse(&a, "[::1]x", true), -EINVAL);
	char longtext[200];
	memset(longtext, '1', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	cr_assert_eq(p2p_addr_parse(&a, longtext, true), -EINVAL);
}

Test(addr, equal)
{
	struct p2p_addr a = parse_ok("1.2.3.4:5", false);
	struct p2p_addr b = parse_ok("1.2.3.4:5", false);
	struct p2p_addr c = parse_ok("1.2.3.4:6", false);
	struct p2p_addr d = parse_ok("1.2.3.5:5", false);
	struct p2p_addr e = parse_ok("[::102:304]:5", false);

	cr_assert(p2p_addr_equal(&a, &b));
	cr_assert_not(p2p_addr_equal(&a, &c));
	cr_assert_not(p2p_addr_equal(&a, &d));
	cr_assert_not(p2p_addr_equal(&a, &e));
}

static bool priv(const char *text)
{
	struct p2p_addr a = parse_ok(text, true);

	return p2p_addr_is_private(&a);
}

Test(addr, is_private)
{
	static const char *const yes[] = {
	    "127.0.0.1",  "127.255.1.1",  "10.0.0.0",	 "10.255.255.255",
	    "172.16.0.1", "172.31.255.1", "192.168.1.1", "169.254.3.3",
	    "100.64.0.1", "100.127.1.1",  "::1",	 "fe80::1",
	    "febf::1",	  "fc00::1",	  "fdff::1",
	};
	static const char *const no[] = {
	    "1.1.1.1",	   "172.15.0.1", "172.32.0.1",	"192.169.0.1",
	    "169.253.0.1", "100.63.0.1", "100.128.0.1", "11.0.0.1",
	    "2001:db8::1", "fec0::1",	 "fe00::1",	"::2",
	    "8.8.8.8",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		cr_assert(priv(yes[i]), "%s", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_assert_not(priv(no[i]), "%s", no[i]);
	struct p2p_addr none = {0};
	cr_assert_not(p2p_addr_is_private(&none));
}

static uint64_t subnet(const char *text)
{
	struct p2p_addr a = parse_ok(text, true);

	return p2p_addr_subnet(&a);
}

Test(addr, subnet)
{
	cr_assert_eq(subnet("1.2.3.4"), subnet("1.2.3.200"));
	cr_assert_neq(subnet("1.2.3.4"), subnet("1.2.4.4"));
	cr_assert_neq(subnet("1.2.3.4"), subnet("2.2.3.4"));
	cr_assert_eq(subnet("2001:db8:1::1"), subnet("2001:db8:1:ffff::9"));
	cr_assert_neq(subnet("2001:db8:1::1"), subnet("2001:db8:2::1"));
	/* Same leading bytes in different families must not collide. */
	cr_assert_neq(subnet("1.2.3.4"), subnet("102:300::"));
	cr_assert_neq(subnet("0.0.0.1"), subnet("::1"));
	cr_assert_eq(subnet("1.2.3.4"), (4ULL << 56) | 0x010203);
}

Test(addr, host_port)
{
	char host[P2P_HOST_NAME_MAX + 1];
	uint16_t port;

	cr_assert_eq(p2p_host_port_parse("seed.example.org:4242", host, &port),
		     0);
	cr_assert_str_eq(host, "seed.example.org");
	cr_assert_eq(port, 4242);
	cr_assert_eq(p2p_host_port_parse("localhost:1", host, &port), 0);
	cr_assert_eq(p2p_host_port_parse("a-1.b2:65535", host, &port), 0);
	static const char *const bad[] = {
	    "localhost",  "localhost:",	 "localhost:0", "localhost:65536",
	    ":80",	  "-a.b:1",	 "a-.b:1",	"a..b:1",
	    "a.b.:1",	  "300.1.1.1:5", "1.2.3.4:5",	"[::1]:5",
	    "::1:5",	  "x_y:1",	 "x y:1",	"a.b:1x",
	    "a.b:123456",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(p2p_host_port_parse(bad[i], host, &port), -EINVAL,
			     "%s", bad[i]);
}

Test(addr, listen)
{
	struct p2p_addr a;
	char t[P2P_ADDR_TEXT_MAX];

	cr_assert_eq(p2p_addr_parse_listen(&a, "8080"), 0);
	p2p_addr_format(&a, t, sizeof(t));
	cr_assert_str_eq(t, "127.0.0.1:8080");
	cr_assert_eq(p2p_addr_parse_listen(&a, "[::1]:0"), 0);
	cr_assert_eq(p2p_addr_parse_listen(&a, "0.0.0.0:65535"), 0);
	static const char *const bad[] = {"",	      "x",	   "::1:5",
					  "65536",    "-1",	   "[::1:5",
					  "1.2.3.4:", "1.2.3.4:5x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(p2p_addr_parse_listen(&a, bad[i]), -EINVAL, "%s",
			     bad[i]);
}
