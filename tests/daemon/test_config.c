/* daemon/config.c + config_file.c: defaults, flags, file keys, errors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "proto/identity.h"

static struct p2pd_config *cfg;
static char err[512];
static char cfg_path[64];

static void setup(void)
{
	cfg = calloc(1, sizeof(*cfg));
	cr_assert(cfg != NULL);
	err[0] = '\0';
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/p2pd-cfgtest-%d.json",
		 (int)getpid());
	cr_assert(sodium_init() >= 0);
}

static void teardown(void)
{
	unlink(cfg_path);
	free(cfg);
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_file(const char *fmt, ...)
{
	FILE *f = fopen(cfg_path, "w");
	va_list ap;

	cr_assert(f != NULL);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* Load with argv given as a NULL-terminated list after "p2pd". */
static int load(const char *first, ...)
{
	char *argv[32] = {"p2pd"};
	int argc = 1;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return p2pd_config_load(cfg, argc, argv, err, sizeof(err));
}

static int load_file(const char *json)
{
	write_file("%s", json);
	return load("-c", cfg_path, NULL);
}

static void peer_text(uint8_t seed_byte, char out[P2P_ID_TEXT_LEN + 1])
{
	struct p2p_identity id;
	uint8_t seed[32];

	memset(seed, seed_byte, sizeof(seed));
	p2p_identity_from_seed(&id, seed);
	p2p_peerid_to_text(&id.id, out);
}

static void expect_addr(const struct p2p_addr *a, const char *text)
{
	char buf[P2P_ADDR_TEXT_MAX];

	p2p_addr_format(a, buf, sizeof(buf));
	cr_expect_str_eq(buf, text);
}

#define expect_err(r, needle)                                                  \
	do {                                                                   \
		cr_expect_eq((r), -EINVAL);                                    \
		cr_expect(strstr(err, (needle)) != NULL,                       \
			  "error \"%s\" lacks \"%s\"", err, (needle));         \
	} while (0)

Test(config, defaults_as_root)
{
	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(load(NULL), 0, "%s", err);
	cr_expect_str_eq(cfg->control, "/run/p2pd/p2pd.sock");
	cr_expect_str_eq(cfg->state_dir, "/var/lib/p2pd");
	cr_expect_str_eq(cfg->config_path, "");
	cr_assert_eq(cfg->nlisten, 2);
	cr_expect_eq(cfg->listen[0].family, 4);
	cr_expect_eq(cfg->listen[1].family, 6);
	expect_addr(&cfg->listen[0], "0.0.0.0:4242");
	expect_addr(&cfg->listen[1], "[::]:4242");
	cr_expect_eq(cfg->nbootstrap, 0);
	cr_expect_eq(cfg->nservices, 0);
	cr_expect_eq(cfg->log_level, LOG_LVL_INFO);
	cr_expect_eq(cfg->limits.max_links, 256);
	cr_expect_eq(cfg->limits.max_ctl_clients, 64);
	cr_expect_eq(cfg->limits.handshake_timeout_ms, 5000);
	cr_expect_eq(cfg->limits.keepalive_ms, 25000);
	cr_expect_eq(cfg->limits.idle_timeout_ms, 75000);
	cr_expect(!cfg->check_only);
}

/* Become an ordinary user for the rest of this (forked) test. */
static void become_user(void)
{
	if (geteuid() == 0)
		cr_assert(setuid(65534) == 0);
}

Test(config, defaults_as_user_from_xdg)
{
	become_user();
	setenv("XDG_RUNTIME_DIR", "/run/user/4711", 1);
	setenv("XDG_STATE_HOME", "/home/u/.st", 1);
	cr_assert_eq(load(NULL), 0, "%s", err);
	cr_expect_str_eq(cfg->control, "/run/user/4711/p2pd/p2pd.sock");
	cr_expect_str_eq(cfg->state_dir, "/home/u/.st/p2pd");
	cr_expect_eq(cfg->nlisten, 2);
}

Test(config, defaults_as_user_without_xdg)
{
	char want[64];

	become_user();
	unsetenv("XDG_RUNTIME_DIR");
	setenv("XDG_STATE_HOME", "relative/ignored", 1);
	setenv("HOME", "/home/bob", 1);
	cr_assert_eq(load(NULL), 0, "%s", err);
	snprintf(want, sizeof(want), "/tmp/p2pd-%u/p2pd.sock",
		 (unsigned)getuid());
	cr_expect_str_eq(cfg->control, want);
	cr_expect_str_eq(cfg->state_dir, "/home/bob/.local/state/p2pd");
}

Test(config, every_flag_short)
{
	write_file("{}");
	cr_assert_eq(load("-c", cfg_path, "-l", "127.0.0.1:5000", "-l",
			  "[::1]:5001", "-b", "10.0.0.1:4242", "-b",
			  "[2001:db8::1]:4243", "-s", "/tmp/x/ctl.sock", "-d",
			  "/tmp/x/state", NULL),
		     0, "%s", err);
	cr_expect_str_eq(cfg->config_path, cfg_path);
	cr_assert_eq(cfg->nlisten, 2);
	expect_addr(&cfg->listen[0], "127.0.0.1:5000");
	expect_addr(&cfg->listen[1], "[::1]:5001");
	cr_assert_eq(cfg->nbootstrap, 2);
	expect_addr(&cfg->bootstrap[0], "10.0.0.1:4242");
	expect_addr(&cfg->bootstrap[1], "[2001:db8::1]:4243");
	cr_expect_str_eq(cfg->control, "/tmp/x/ctl.sock");
	cr_expect_str_eq(cfg->state_dir, "/tmp/x/state");
}

Test(config, every_flag_long)
{
	write_file("{}");
	cr_assert_eq(load("--config", cfg_path, "--listen", "1.2.3.4:9",
			  "--bootstrap=5.6.7.8:10", "--control", "/tmp/c.sock",
			  "--state-dir", "/tmp/st", "--log-level", "debug",
			  NULL),
		     0, "%s", err);
	cr_assert_eq(cfg->nlisten, 1);
	expect_addr(&cfg->listen[0], "1.2.3.4:9");
	cr_assert_eq(cfg->nbootstrap, 1);
	expect_addr(&cfg->bootstrap[0], "5.6.7.8:10");
	cr_expect_str_eq(cfg->control, "/tmp/c.sock");
	cr_expect_str_eq(cfg->state_dir, "/tmp/st");
	cr_expect_eq(cfg->log_level, LOG_LVL_DEBUG);
}

Test(config, check_only_prints_ok, .init = cr_redirect_stdout)
{
	write_file("{\"log_level\": \"warn\"}");
	cr_expect_eq(load("-n", "-c", cfg_path, NULL), 1);
	cr_expect(cfg->check_only);
	cr_expect_eq(cfg->log_level, LOG_LVL_WARN);
	fflush(stdout);
	cr_expect_stdout_eq_str("configuration OK\n");
}

Test(config, check_only_fails_on_bad_file, .init = cr_redirect_stdout)
{
	write_file("{\"listne\": []}");
	expect_err(load("-n", "-c", cfg_path, NULL), "unknown key");
	fflush(stdout);
	cr_expect_stdout_eq_str("");
}

Test(config, version_and_help, .init = cr_redirect_stdout)
{
	cr_expect_eq(load("--version", NULL), 1);
	cr_expect_eq(load("--help", NULL), 1);
	fflush(stdout);
	cr_expect_stdout_neq_str("");
}

Test(config, bad_flags)
{
	expect_err(load("--bogus", NULL), "\"--bogus\"");
	cr_expect(strstr(err, "p2pd --help") != NULL, "%s", err);
	cr_expect(strchr(err, '\n') == NULL, "one line: %s", err);
	expect_err(load("-x", NULL), "\"-x\"");
	expect_err(load("-l", NULL), "needs an argument");
	expect_err(load("stray", NULL), "unexpected argument \"stray\"");
	expect_err(load("--log-level", "loud", NULL), "--log-level \"loud\"");
	expect_err(load("-s", "", NULL), "must not be empty");
}

Test(config, bad_addresses)
{
	expect_err(load("-l", "1.2.3.4", NULL),
		   "bad --listen address \"1.2.3.4\"");
	expect_err(load("-l", "example.org:1", NULL), "bad --listen address");
	expect_err(load("-l", "1.2.3.4:0", NULL), "bad --listen address");
	expect_err(load("-b", "[::1]:99999", NULL), "bad --bootstrap address");
	expect_err(load("-b", "::1:80", NULL), "bad --bootstrap address");
	expect_err(load("-l", "1.1.1.1:1", "-l", "1.1.1.1:2", "-l", "1.1.1.1:3",
			"-l", "1.1.1.1:4", "-l", "1.1.1.1:5", "-l", "1.1.1.1:6",
			"-l", "1.1.1.1:7", "-l", "1.1.1.1:8", "-l", "1.1.1.1:9",
			NULL),
		   "too many --listen addresses");
}

Test(config, long_control_path_rejected)
{
	char longp[200];

	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	expect_err(load("-s", longp, NULL), "too long");
}

Test(config, file_keys)
{
	char a[P2P_ID_TEXT_LEN + 1], b[P2P_ID_TEXT_LEN + 1];
	struct p2p_peerid ida;

	peer_text(1, a);
	peer_text(2, b);
	cr_assert(p2p_peerid_from_text(&ida, a, strlen(a)) == 0);
	write_file(
	    "{\"listen\": [\"127.0.0.1:7000\"],\n"
	    " \"bootstrap\": [\"10.1.1.1:4242\", \"[fe80::1]:1\"],\n"
	    " \"control\": \"/tmp/f.sock\", \"state_dir\": \"/tmp/fs\",\n"
	    " \"log_level\": \"error\",\n"
	    " \"services\": {\"ssh\": {\"target\": \"127.0.0.1:22\", "
	    "\"allow\": [\"%s\", \"%s\"]},\n"
	    "   \"web\": {\"target\": \"localhost:8080\", \"allow\": "
	    "\"any\"}},\n"
	    " \"limits\": {\"max_links\": 10, \"max_ctl_clients\": 3,\n"
	    "   \"handshake_timeout_ms\": 100, \"keepalive_ms\": 200,\n"
	    "   \"idle_timeout_ms\": 900, \"ctl_idle_timeout_ms\": 1500},\n"
	    " \"control_group\": \"ops\"}",
	    a, b);
	cr_assert_eq(load("-c", cfg_path, NULL), 0, "%s", err);
	cr_assert_eq(cfg->nlisten, 1);
	expect_addr(&cfg->listen[0], "127.0.0.1:7000");
	cr_assert_eq(cfg->nbootstrap, 2);
	expect_addr(&cfg->bootstrap[1], "[fe80::1]:1");
	cr_expect_str_eq(cfg->control, "/tmp/f.sock");
	cr_expect_str_eq(cfg->state_dir, "/tmp/fs");
	cr_expect_eq(cfg->log_level, LOG_LVL_ERROR);
	cr_assert_eq(cfg->nservices, 2);
	cr_expect_str_eq(cfg->services[0].name, "ssh");
	cr_expect_str_eq(cfg->services[0].target, "127.0.0.1:22");
	expect_addr(&cfg->services[0].target_addr, "127.0.0.1:22");
	cr_expect(!cfg->services[0].allow_any);
	cr_assert_eq(cfg->services[0].nallow, 2);
	cr_expect(p2p_peerid_equal(&cfg->services[0].allow[0], &ida));
	cr_expect_str_eq(cfg->services[1].name, "web");
	cr_expect_str_eq(cfg->services[1].target, "localhost:8080");
	cr_expect_eq(cfg->services[1].target_addr.family, 0,
		     "a host name is not resolved here");
	cr_expect(cfg->services[1].allow_any);
	cr_expect_eq(cfg->limits.max_links, 10);
	cr_expect_eq(cfg->limits.max_ctl_clients, 3);
	cr_expect_eq(cfg->limits.handshake_timeout_ms, 100);
	cr_expect_eq(cfg->limits.keepalive_ms, 200);
	cr_expect_eq(cfg->limits.idle_timeout_ms, 900);
	cr_expect_eq(cfg->limits.ctl_idle_timeout_ms, 1500);
	cr_expect_str_eq(cfg->control_group, "ops");
}

/* issue 9 / issue 12 item 3: the control socket's idle timeout and group. */
Test(config, control_defaults_and_bad_group)
{
	char big[200];

	cr_assert_eq(load("-d", "/tmp/x", NULL), 0, "%s", err);
	cr_expect_eq(cfg->limits.ctl_idle_timeout_ms, 10000);
	cr_expect_str_eq(cfg->control_group, "p2pd");
	memset(big, 'g', 100);
	big[100] = '\0';
	expect_err(load_file("{\"control_group\": 5}"),
		   "\"control_group\" must be a string");
	char json[300];
	snprintf(json, sizeof(json), "{\"control_group\": \"%s\"}", big);
	expect_err(load_file(json), "\"control_group\" is longer than 63");
	expect_err(load_file("{\"limits\": {\"ctl_idle_timeout_ms\": 0}}"),
		   "\"limits.ctl_idle_timeout_ms\" must be between");
}

Test(config, empty_listen_is_client_only)
{
	cr_assert_eq(load_file("{\"listen\": []}"), 0, "%s", err);
	cr_expect_eq(cfg->nlisten, 0);
}

Test(config, unknown_keys_named)
{
	char want[128];

	expect_err(load_file("{\"listne\": []}"), "unknown key \"listne\"");
	snprintf(want, sizeof(want), "config %s: unknown key", cfg_path);
	cr_expect(strstr(err, want) == err, "%s", err);
	expect_err(load_file("{\"limits\": {\"max_link\": 1}}"),
		   "unknown key \"limits.max_link\"");
	expect_err(load_file("{\"services\": {\"s\": {\"target\": \"a:1\", "
			     "\"alow\": []}}}"),
		   "unknown key \"services.s.alow\"");
}

Test(config, wrong_types_named)
{
	expect_err(load_file("{\"listen\": \"1.2.3.4:5\"}"),
		   "\"listen\" must be an array of strings");
	expect_err(load_file("{\"bootstrap\": [1]}"),
		   "\"bootstrap\" must be an array of strings");
	expect_err(load_file("{\"control\": 5}"),
		   "\"control\" must be a string");
	expect_err(load_file("{\"state_dir\": null}"),
		   "\"state_dir\" must be a string");
	expect_err(load_file("{\"log_level\": true}"),
		   "\"log_level\" must be a string");
	expect_err(load_file("{\"services\": []}"),
		   "\"services\" must be an object");
	expect_err(load_file("{\"services\": {\"a\": \"1.2.3.4:5\"}}"),
		   "\"services.a\" must be an object");
	expect_err(load_file("{\"services\": {\"a\": {\"target\": 22}}}"),
		   "\"services.a.target\" must be a string");
	expect_err(load_file("{\"services\": {\"a\": {\"target\": \"h:1\", "
			     "\"allow\": \"x\"}}}"),
		   "\"services.a.allow\" must be an array of peer IDs, or "
		   "\"any\"");
	/* open to every peer only when the file says so (SPEC section 9) */
	expect_err(load_file("{\"services\": {\"a\": {\"target\": \"h:1\"}}}"),
		   "service \"a\" has no \"allow\"");
	expect_err(load_file("{\"limits\": []}"),
		   "\"limits\" must be an object");
	expect_err(load_file("{\"limits\": {\"max_links\": \"5\"}}"),
		   "\"limits.max_links\" must be an integer");
	expect_err(load_file("{\"limits\": {\"max_links\": 1.5}}"),
		   "\"limits.max_links\" must be an integer");
	expect_err(load_file("{\"limits\": {\"max_links\": 0}}"),
		   "\"limits.max_links\" must be between");
	expect_err(load_file("{\"limits\": {\"keepalive_ms\": 80000}}"),
		   "must be below");
	expect_err(load_file("[1, 2]"), "must be a JSON object");
	expect_err(load_file("{\"log_level\": \"chatty\"}"),
		   "bad \"log_level\" \"chatty\"");
}

Test(config, syntax_errors_give_position)
{
	expect_err(load_file("{\n  \"listen\": [\n    \"1.2.3.4:5\",,\n]}"),
		   "line 3:");
	expect_err(load_file("{\"control\": \"a\", \"control\": \"b\"}"),
		   "duplicate");
	expect_err(load_file(""), "line ");
	expect_err(load("-c", "/nonexistent/p2pd.json", NULL),
		   "config /nonexistent/p2pd.json: No such file or directory");
}

Test(config, bad_addresses_in_file)
{
	expect_err(load_file("{\"listen\": [\"1.2.3.4\"]}"),
		   "bad listen address \"1.2.3.4\"");
	expect_err(load_file("{\"bootstrap\": [\"[::1]:0\"]}"),
		   "bad bootstrap address");
}

Test(config, bad_services)
{
	char a[P2P_ID_TEXT_LEN + 1];

	peer_text(3, a);
	expect_err(load_file("{\"services\": {\"ssh\": {\"target\": \"h:22\", "
			     "\"allow\": [\"notapeerid\"]}}}"),
		   "service \"ssh\": invalid peer ID \"notapeerid\"");
	/* Upper case is not the text form. */
	for (char *p = a; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	write_file("{\"services\": {\"web\": {\"target\": \"h:1\", "
		   "\"allow\": [\"%s\"]}}}",
		   a);
	expect_err(load("-c", cfg_path, NULL),
		   "service \"web\": invalid peer ID");
	expect_err(
	    load_file("{\"services\": {\"a b\": {\"target\": \"h:1\"}}}"),
	    "bad service name \"a b\"");
	expect_err(load_file("{\"services\": {\"\": {\"target\": \"h:1\"}}}"),
		   "bad service name");
	expect_err(load_file("{\"services\": {\"ssh\": {}}}"),
		   "service \"ssh\" has no \"target\"");
	expect_err(load_file("{\"services\": {\"ssh\": {\"target\": \"h\"}}}"),
		   "service \"ssh\": bad target \"h\"");
	expect_err(
	    load_file("{\"services\": {\"ssh\": {\"target\": \"h:0\"}}}"),
	    "bad target");
	expect_err(
	    load_file("{\"services\": {\"ssh\": {\"target\": \"::1:22\"}}}"),
	    "bad target");
	cr_expect_eq(load_file("{\"services\": {\"A-z_0.9\": {\"target\": "
			       "\"[::1]:22\", \"allow\": []}}}"),
		     0, "%s", err);
	cr_expect(!cfg->services[0].allow_any, "empty allow: nobody");
	cr_expect_eq(cfg->services[0].nallow, 0);
	expect_addr(&cfg->services[0].target_addr, "[::1]:22");
}

Test(config, flags_override_file)
{
	write_file("{\"listen\": [\"127.0.0.1:7000\", \"127.0.0.1:7001\"], "
		   "\"bootstrap\": [\"10.0.0.1:1\"], \"control\": \"/tmp/f\", "
		   "\"state_dir\": \"/tmp/fs\", \"log_level\": \"error\"}");
	cr_assert_eq(load("-c", cfg_path, "-l", "127.0.0.2:8000", "-b",
			  "10.0.0.2:2", "-s", "/tmp/flag.sock", "-d",
			  "/tmp/flagstate", "--log-level", "debug", NULL),
		     0, "%s", err);
	cr_assert_eq(cfg->nlisten, 1, "-l replaces the file's list");
	expect_addr(&cfg->listen[0], "127.0.0.2:8000");
	cr_assert_eq(cfg->nbootstrap, 1);
	expect_addr(&cfg->bootstrap[0], "10.0.0.2:2");
	cr_expect_str_eq(cfg->control, "/tmp/flag.sock");
	cr_expect_str_eq(cfg->state_dir, "/tmp/flagstate");
	cr_expect_eq(cfg->log_level, LOG_LVL_DEBUG);

	/* Flag order does not matter: -l before -c still wins. */
	cr_assert_eq(load("-l", "127.0.0.3:1", "-c", cfg_path, NULL), 0);
	cr_assert_eq(cfg->nlisten, 1);
	expect_addr(&cfg->listen[0], "127.0.0.3:1");
	cr_expect_eq(cfg->nbootstrap, 1, "the file's bootstrap stays");
}

Test(config, reload_services)
{
	write_file(
	    "{\"listen\": [\"127.0.0.1:7000\"], \"services\": "
	    "{\"a\": {\"target\": \"127.0.0.1:1\", \"allow\": \"any\"}}}");
	cr_assert_eq(load("-c", cfg_path, "-l", "127.0.0.1:9", NULL), 0);
	cr_assert_eq(cfg->nservices, 1);

	write_file("{\"listen\": [\"127.0.0.1:7777\"], \"services\": "
		   "{\"b\": {\"target\": \"127.0.0.1:2\", \"allow\": \"any\"}, "
		   "\"c\": {\"target\": \"127.0.0.1:3\", \"allow\": []}}}");
	cr_assert_eq(p2pd_config_reload_services(cfg, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(cfg->nservices, 2);
	cr_expect_str_eq(cfg->services[0].name, "b");
	cr_expect_str_eq(cfg->services[1].name, "c");
	expect_addr(&cfg->listen[0], "127.0.0.1:9");

	write_file("{\"services\": {\"d\": {\"target\": \"nope\"}}}");
	expect_err(p2pd_config_reload_services(cfg, err, sizeof(err)),
		   "bad target");
	cr_expect_eq(cfg->nservices, 2, "a bad file changes nothing");
	cr_expect_str_eq(cfg->services[0].name, "b");

	write_file("{}");
	cr_assert_eq(p2pd_config_reload_services(cfg, err, sizeof(err)), 0);
	cr_expect_eq(cfg->nservices, 0);
}

/* issue 12 item 1: LAN discovery is on unless the file says false. */
Test(config, lan_discovery_default_and_off)
{
	cr_assert_eq(load("-d", "/tmp/x", NULL), 0, "%s", err);
	cr_expect(cfg->lan_discovery);
	cr_assert_eq(load_file("{\"lan_discovery\": false}"), 0, "%s", err);
	cr_expect(!cfg->lan_discovery);
	cr_assert_eq(load_file("{\"lan_discovery\": true}"), 0, "%s", err);
	cr_expect(cfg->lan_discovery);
	expect_err(load_file("{\"lan_discovery\": 0}"),
		   "\"lan_discovery\" must be true or false");
	expect_err(load_file("{\"lan_discovery\": \"no\"}"),
		   "\"lan_discovery\" must be true or false");
}

/* SPEC section 9: port_mapping defaults to true; only a boolean goes. */
Test(config, port_mapping)
{
	cr_assert_eq(load_file("{}"), 0);
	cr_expect(cfg->port_mapping);
	cr_assert_eq(load_file("{\"port_mapping\": false}"), 0);
	cr_expect(!cfg->port_mapping);
	cr_assert_eq(load_file("{\"port_mapping\": true}"), 0);
	cr_expect(cfg->port_mapping);
	expect_err(load_file("{\"port_mapping\": 0}"),
		   "\"port_mapping\" must be true or false");
	expect_err(load_file("{\"port_mapping\": \"no\"}"),
		   "\"port_mapping\" must be true or false");
}

/* Issue 8: keepalive_adapt defaults to true; only a boolean goes. */
Test(config, keepalive_adapt)
{
	cr_assert_eq(load_file("{}"), 0);
	cr_expect(cfg->keepalive_adapt);
	cr_assert_eq(load_file("{\"keepalive_adapt\": false}"), 0);
	cr_expect(!cfg->keepalive_adapt);
	expect_err(load_file("{\"keepalive_adapt\": 1}"),
		   "\"keepalive_adapt\" must be true or false");
}
