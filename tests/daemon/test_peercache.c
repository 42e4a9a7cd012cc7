#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/peercache.h"

static struct p2p_peerid mkid(uint8_t b)
{
	struct p2p_peerid id;
	memset(id.b, b, sizeof(id.b));
	return id;
}

static struct p2p_addr mkaddr(uint8_t last, uint16_t port)
{
	struct p2p_addr a = {.family = 4, .ip = {10, 0, 0, last}, .port = port};
	return a;
}

Test(peercache, add_newest_first_and_moves_up)
{
	struct peercache pc;
	struct p2p_peerid a = mkid(1), b = mkid(2);
	struct p2p_addr aa = mkaddr(1, 100), ab = mkaddr(2, 200);

	peercache_init(&pc);
	cr_assert(!pc.dirty);
	peercache_add(&pc, &a, &aa);
	peercache_add(&pc, &b, &ab);
	cr_assert_eq(pc.n, 2);
	cr_assert(p2p_peerid_equal(&pc.e[0].id, &b));
	cr_assert(pc.dirty);
	peercache_add(&pc, &a, &aa);
	cr_assert_eq(pc.n, 2, "re-adding must not duplicate");
	cr_assert(p2p_peerid_equal(&pc.e[0].id, &a));
	cr_assert(p2p_peerid_equal(&pc.e[1].id, &b));
	pc.dirty = false;
	peercache_add(&pc, &a, &aa);
	cr_assert(!pc.dirty, "no change, not dirty");
	struct p2p_addr moved = mkaddr(9, 999);
	peercache_add(&pc, &a, &moved);
	cr_assert(pc.dirty);
	cr_assert(p2p_addr_equal(&pc.e[0].addr, &moved));
}

Test(peercache, capped_oldest_drops)
{
	struct peercache pc;

	peercache_init(&pc);
	for (int i = 0; i < PEERCACHE_MAX + 5; i++) {
		struct p2p_peerid id = mkid((uint8_t)(i + 1));
		struct p2p_addr a = mkaddr(1, 1000);
		a.ip[2] = (uint8_t)i; /* a /24 each: under the subnet cap */
		peercache_add(&pc, &id, &a);
	}
	cr_assert_eq(pc.n, PEERCACHE_MAX);
	struct p2p_peerid newest = mkid(PEERCACHE_MAX + 5);
	struct p2p_peerid oldest_kept = mkid(6);
	cr_assert(p2p_peerid_equal(&pc.e[0].id, &newest));
	cr_assert(p2p_peerid_equal(&pc.e[PEERCACHE_MAX - 1].id, &oldest_kept));
}

Test(peercache, dump_parse_roundtrip)
{
	struct peercache pc, back;
	char err[128];

	peercache_init(&pc);
	struct p2p_peerid a = mkid(7);
	struct p2p_addr aa = {
	    .family = 6, .ip = {0xfd, 0, [15] = 1}, .port = 4242};
	peercache_add(&pc, &a, &aa);
	struct p2p_peerid b = mkid(8);
	struct p2p_addr ab = mkaddr(3, 1);
	peercache_add(&pc, &b, &ab);
	char *text = peercache_dump(&pc);
	cr_assert_not_null(text);
	cr_assert_eq(
	    peercache_parse(&back, text, strlen(text), err, sizeof(err)), 0,
	    "%s", err);
	free(text);
	cr_assert_eq(back.n, 2);
	cr_assert(p2p_peerid_equal(&back.e[0].id, &b));
	cr_assert(p2p_addr_equal(&back.e[0].addr, &ab));
	cr_assert(p2p_peerid_equal(&back.e[1].id, &a));
	cr_assert(p2p_addr_equal(&back.e[1].addr, &aa));
}

static void expect_malformed(const char *text)
{
	struct peercache pc;
	char err[128] = "";

	pc.n = 99;
	cr_assert_eq(peercache_parse(&pc, text, strlen(text), err, sizeof(err)),
		     -EPROTO, "accepted: %s", text);
	cr_assert_eq(pc.n, 0);
	cr_assert_neq(err[0], '\0', "no reason for: %s", text);
}

Test(peercache, malformed_rejected)
{
	char id[P2P_ID_TEXT_LEN + 1], buf[256];
	struct p2p_peerid x = mkid(5);

	p2p_peerid_to_text(&x, id);
	expect_malformed("");
	expect_malformed("{");
	expect_malformed("{}");
	expect_malformed("[1]");
	expect_malformed("[{\"id\": \"abc\", \"addr\": \"1.2.3.4:5\"}]");
	snprintf(buf, sizeof(buf), "[{\"id\": \"%s\", \"addr\": \"1.2.3.4\"}]",
		 id);
	expect_malformed(buf);
	snprintf(buf, sizeof(buf), "[{\"id\": \"%s\", \"addr\": \"nope:5\"}]",
		 id);
	expect_malformed(buf);
	snprintf(buf, sizeof(buf), "[{\"id\": \"%s\"}]", id);
	expect_malformed(buf);
	snprintf(buf, sizeof(buf),
		 "[{\"id\": \"%s\", \"addr\": \"1.2.3.4:5\"}, {\"id\": 3}]",
		 id);
	expect_malformed(buf);
}

Test(peercache, save_load_file)
{
	char dir[] = "/tmp/pctestXXXXXX", path[256], tmp[300], err[128];
	struct peercache pc, back;
	struct stat st;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/peers.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	cr_assert_eq(peercache_load(&back, path, err, sizeof(err)), -ENOENT);

	peercache_init(&pc);
	struct p2p_peerid a = mkid(0x42);
	struct p2p_addr aa = mkaddr(4, 4242);
	peercache_add(&pc, &a, &aa);
	cr_assert_eq(peercache_save(&pc, path), 0);
	cr_assert(!pc.dirty);
	cr_assert_eq(stat(tmp, &st), -1, "temporary file left behind");
	cr_assert_eq(peercache_load(&back, path, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(back.n, 1);
	cr_assert(p2p_peerid_equal(&back.e[0].id, &a));

	FILE *f = fopen(path, "w");
	fputs("[{\"id\": garbage", f);
	fclose(f);
	cr_assert_eq(peercache_load(&back, path, err, sizeof(err)), -EPROTO);
	cr_assert_eq(back.n, 0);
	unlink(path);
	rmdir(dir);
}

/*
 * issue 9: whoever can write into the state directory plants
 * peers.json.tmp -> some other file; the daemon (often root) must not
 * write through the link.
 */
Test(peercache, save_ignores_planted_symlink)
{
	char dir[] = "/tmp/pctestXXXXXX", path[256], tmp[300], victim[300];
	char buf[64] = "";
	struct peercache pc;
	struct stat st;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/peers.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	f = fopen(victim, "w");
	fputs("precious\n", f);
	fclose(f);
	cr_assert_eq(symlink(victim, tmp), 0);

	peercache_init(&pc);
	struct p2p_peerid a = mkid(0x42);
	struct p2p_addr aa = mkaddr(4, 4242);
	peercache_add(&pc, &a, &aa);
	cr_assert_eq(peercache_save(&pc, path), 0);

	f = fopen(victim, "r");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	cr_expect_str_eq(buf, "precious\n", "the link target was written");
	cr_assert_eq(lstat(path, &st), 0);
	cr_expect(S_ISREG(st.st_mode), "peers.json is a regular file");
	cr_expect_eq(st.st_mode & 0777, 0600);
	unlink(tmp);
	unlink(path);
	unlink(victim);
	rmdir(dir);
}

/* A peers.json that is a link (or a FIFO) is refused, never followed. */
Test(peercache, load_refuses_symlink_and_fifo, .timeout = 10)
{
	char dir[] = "/tmp/pctestXXXXXX", path[256], target[300], err[128];
	struct peercache pc;
	struct p2p_peerid a = mkid(0x42);
	struct p2p_addr aa = mkaddr(4, 4242);

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/peers.json", dir);
	snprintf(target, sizeof(target), "%s/real.json", dir);
	peercache_init(&pc);
	peercache_add(&pc, &a, &aa);
	cr_assert_eq(peercache_save(&pc, target), 0);
	cr_assert_eq(symlink(target, path), 0);
	cr_expect_lt(peercache_load(&pc, path, err, sizeof(err)), 0);
	cr_expect_eq(pc.n, 0);
	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	/* Opening a FIFO for reading would block until a writer comes. */
	cr_expect_lt(peercache_load(&pc, path, err, sizeof(err)), 0);
	unlink(path);
	unlink(target);
	rmdir(dir);
}

/* issue 9: one host (one /24) cannot fill the cache, and peers seen again
 * and again outlast a crowd of new identities. */
Test(peercache, subnet_cap_and_long_lived_kept)
{
	struct peercache pc;

	peercache_init(&pc);
	/* An honest peer linked three times (restarts, relinks). */
	struct p2p_peerid honest = mkid(200);
	struct p2p_addr ha = {.family = 4, .ip = {192, 0, 2, 1}, .port = 7};
	for (int i = 0; i < 3; i++) {
		peercache_add(&pc, &honest, &ha);
		pc.e[0].addr.port = (uint16_t)(7 + i + 1); /* force a change */
	}
	/* 60 Sybil identities, all of one /24. */
	for (int i = 0; i < 60; i++) {
		struct p2p_peerid id = mkid((uint8_t)(i + 1));
		struct p2p_addr a = mkaddr((uint8_t)i, 1000);
		peercache_add(&pc, &id, &a);
	}
	cr_assert_eq(pc.n, 1 + PEERCACHE_SUBNET_MAX);
	/* 100 more from 100 /24s: the cache fills, the honest one stays. */
	for (int i = 0; i < 100; i++) {
		struct p2p_peerid id = mkid((uint8_t)(100 + i));
		id.b[1] = 0x55;
		struct p2p_addr a = mkaddr(1, 1000);
		a.ip[1] = 1, a.ip[2] = (uint8_t)i;
		peercache_add(&pc, &id, &a);
	}
	cr_assert_eq(pc.n, PEERCACHE_MAX);
	bool kept = false;
	for (size_t i = 0; i < pc.n; i++)
		kept |=
		    p2p_peerid_equal(&pc.e[i].id, &honest) && pc.seen[i] == 3;
	cr_assert(kept, "the peer seen three times is kept");
	/* Loopback 127.0.0.0/24 is exempt (tests on one host). */
	peercache_init(&pc);
	for (int i = 0; i < 10; i++) {
		struct p2p_peerid id = mkid((uint8_t)(i + 1));
		struct p2p_addr a = {.family = 4, .ip = {127, 0, 0, 1}};
		a.port = (uint16_t)(1000 + i);
		peercache_add(&pc, &id, &a);
	}
	cr_assert_eq(pc.n, 10);
}

Test(peercache, parse_keeps_diversity_and_seen)
{
	struct peercache pc;
	char err[128], text[4096];
	size_t off = 0;
	char id[P2P_ID_TEXT_LEN + 1];

	off += (size_t)snprintf(text + off, sizeof(text) - off, "[");
	for (int i = 0; i < 10; i++) {
		struct p2p_peerid p = mkid((uint8_t)(i + 1));
		p2p_peerid_to_text(&p, id);
		off += (size_t)snprintf(text + off, sizeof(text) - off,
					"%s{\"id\": \"%s\", \"addr\": "
					"\"10.9.9.%d:4000\", \"seen\": %d}",
					i ? "," : "", id, i + 1, i + 1);
	}
	snprintf(text + off, sizeof(text) - off, "]");
	cr_assert_eq(peercache_parse(&pc, text, strlen(text), err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(pc.n, PEERCACHE_SUBNET_MAX);
	cr_assert_eq(pc.seen[1], 2);
}
