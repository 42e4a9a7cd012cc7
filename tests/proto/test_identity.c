/* identity.key: save, load, mode checks, malformed files, no clobbering. */
#include <criterion/criterion.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "proto/identity.h"

/*
 * Some tests expect a fault on guarded memory; ASan would turn it into a
 * report and exit(1) instead of the signal criterion waits for.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_segv=0:handle_sigbus=0";
}

static char dir[64];
static char path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/p2pd-test-identity-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/identity.key", dir);
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[400];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

static void fixed_identity(struct p2p_identity *id, uint8_t v)
{
	uint8_t seed[32];

	memset(seed, v, sizeof(seed));
	p2p_identity_from_seed(id, seed);
}

static void write_file(const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void read_file(char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f);
	*len = fread(buf, 1, cap, f);
	fclose(f);
}

static int count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

TestSuite(identity, .init = setup, .fini = teardown);

Test(identity, save_load_round_trip)
{
	struct p2p_identity a, b;
	struct stat st;
	char err[256];

	p2p_identity_generate(&a);
	cr_assert_eq(p2p_identity_save(&a, path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(p2p_identity_load(&b, path, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(memcmp(a.pk, b.pk, 32), 0);
	cr_assert_eq(memcmp(a.sk, b.sk, 64), 0);
	cr_assert(p2p_peerid_equal(&a.id, &b.id));
	cr_assert_eq(count_entries(), 1, "temporary file left behind");
}

Test(identity, file_format_known_answer)
{
	struct p2p_identity a;
	char buf[300], want[300], hex[129];
	size_t len;

	fixed_identity(&a, 7);
	cr_assert_eq(p2p_identity_save(&a, path), 0);
	read_file(buf, sizeof(buf), &len);
	sodium_bin2hex(hex, sizeof(hex), a.sk, 64);
	snprintf(want, sizeof(want), "p2pd-ed25519-v1 %s\n", hex);
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(buf, want, len), 0);
}

Test(identity, generate_is_random_and_consistent)
{
	struct p2p_identity a, b, c;

	p2p_identity_generate(&a);
	p2p_identity_generate(&b);
	cr_assert_neq(memcmp(a.pk, b.pk, 32), 0);
	p2p_identity_from_seed(&c, a.sk); /* sk starts with the seed */
	cr_assert_eq(memcmp(a.pk, c.pk, 32), 0);
	cr_assert(p2p_peerid_equal(&a.id, &c.id));
}

Test(identity, never_overwrites)
{
	struct p2p_identity a, b, c;

	fixed_identity(&a, 1);
	fixed_identity(&b, 2);
	cr_assert_eq(p2p_identity_save(&a, path), 0);
	cr_assert_eq(p2p_identity_save(&b, path), -EEXIST);
	cr_assert_eq(p2p_identity_load(&c, path, NULL, 0), 0);
	cr_assert_eq(memcmp(c.pk, a.pk, 32), 0);
	/* Any existing file, even garbage, is left alone. */
	write_file("x", 1, 0600);
	cr_assert_eq(p2p_identity_save(&b, path), -EEXIST);
	cr_assert_eq(count_entries(), 1);
}

static void expect_mode_refused(mode_t mode)
{
	struct p2p_identity a, b;
	char err[512], modestr[8];

	fixed_identity(&a, 3);
	cr_assert_eq(p2p_identity_save(&a, path), 0);
	cr_assert_eq(chmod(path, mode), 0);
	cr_assert_eq(p2p_identity_load(&b, path, err, sizeof(err)), -EPERM);
	snprintf(modestr, sizeof(modestr), "%04o", (unsigned int)mode);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, modestr), "%s", err);
	cr_assert_not_null(strstr(err, "chmod 600"), "%s", err);
}

Test(identity, mode_0640_refused)
{
	expect_mode_refused(0640);
}

Test(identity, mode_0604_refused)
{
	expect_mode_refused(0604);
}

Test(identity, mode_0620_refused)
{
	expect_mode_refused(0620);
}

Test(identity, mode_0400_accepted)
{
	struct p2p_identity a, b;

	fixed_identity(&a, 4);
	cr_assert_eq(p2p_identity_save(&a, path), 0);
	cr_assert_eq(chmod(path, 0400), 0);
	cr_assert_eq(p2p_identity_load(&b, path, NULL, 0), 0);
}

Test(identity, missing_file)
{
	struct p2p_identity b;
	char err[256];

	cr_assert_eq(p2p_identity_load(&b, path, err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, path));
}

static void expect_malformed(const char *text, size_t len)
{
	struct p2p_identity b;
	char err[512];

	write_file(text, len, 0600);
	cr_assert_eq(p2p_identity_load(&b, path, err, sizeof(err)), -EPROTO,
		     "accepted: %.*s", (int)len, text);
	cr_assert_not_null(strstr(err, path));
	cr_assert_not_null(strstr(err, "malformed"));
}

Test(identity, malformed_refused)
{
	struct p2p_identity a, other;
	char good[300], bad[300], hex[129];
	size_t len;

	fixed_identity(&a, 5);
	sodium_bin2hex(hex, sizeof(hex), a.sk, 64);
	len = (size_t)snprintf(good, sizeof(good), "p2pd-ed25519-v1 %s\n", hex);

	expect_malformed("", 0);
	expect_malformed(good, len - 1); /* no newline */
	expect_malformed(good, len - 2); /* short */
	memcpy(bad, good, len);
	bad[len] = '\n';
	expect_malformed(bad, len + 1); /* trailing byte */
	memcpy(bad, good, len);
	bad[0] = 'P';
	expect_malformed(bad, len); /* magic */
	memcpy(bad, good, len);
	bad[20] = 'A'; /* uppercase hex */
	expect_malformed(bad, len);
	memcpy(bad, good, len);
	bad[30] = 'g';
	expect_malformed(bad, len);
	/* Public half not matching the seed. */
	fixed_identity(&other, 6);
	uint8_t mixed[64];
	memcpy(mixed, a.sk, 32);
	memcpy(mixed + 32, other.pk, 32);
	sodium_bin2hex(hex, sizeof(hex), mixed, 64);
	len = (size_t)snprintf(bad, sizeof(bad), "p2pd-ed25519-v1 %s\n", hex);
	expect_malformed(bad, len);
	/* A big file is refused without reading it all. */
	static char big[100000];
	memset(big, 'a', sizeof(big));
	expect_malformed(big, sizeof(big));
}

Test(identity, directory_refused)
{
	struct p2p_identity b;

	cr_assert_eq(mkdir(path, 0700), 0);
	cr_assert_lt(p2p_identity_load(&b, path, NULL, 0), 0);
}

Test(identity, wipe_clears_secret)
{
	struct p2p_identity a;
	static const uint8_t zero[64];

	fixed_identity(&a, 9);
	cr_assert_neq(memcmp(a.sk, zero, 64), 0);
	p2p_identity_wipe(&a);
	/* sodium_free zeroes the key before unmapping it. */
	cr_assert_null(a.sk);
	p2p_identity_wipe(&a); /* twice is harmless */
}

/*
 * issue 9: the secret key lives in libsodium guarded memory: read-only
 * (a stray write faults instead of changing the key) with guard pages
 * (an overrun faults instead of reading the key or what follows it).
 */
Test(identity, secret_key_is_read_only, .signal = SIGSEGV)
{
	struct p2p_identity a;
	volatile uint8_t *k;

	fixed_identity(&a, 9);
	k = (volatile uint8_t *)a.sk;
	k[0] ^= 1;
}

Test(identity, secret_key_is_followed_by_a_guard_page, .signal = SIGSEGV)
{
	struct p2p_identity a;
	const volatile uint8_t *k;
	uint8_t x = 0;

	fixed_identity(&a, 9);
	k = (const volatile uint8_t *)a.sk;
	for (size_t i = 64; i < 64 + 4096; i++)
		x ^= k[i];
	cr_log_info("read past the key: %u", x);
}

/* A copy of the struct refers to the same key; there is one copy of it. */
Test(identity, struct_copy_shares_the_key)
{
	struct p2p_identity a, b;

	fixed_identity(&a, 9);
	b = a;
	cr_assert_eq(b.sk, a.sk);
	p2p_identity_wipe(&a);
}

/*
 * issue 9: an identity.key owned by another user is refused even with
 * mode 0600: whoever owns it can replace our key (needs root to set up).
 */
Test(identity, other_owner_refused)
{
	struct p2p_identity a, b;
	char err[512];

	if (geteuid() != 0)
		cr_skip_test("needs root to chown the key file");
	fixed_identity(&a, 3);
	cr_assert_eq(p2p_identity_save(&a, path), 0);
	cr_assert_eq(chown(path, 65534, 65534), 0);
	cr_expect_eq(p2p_identity_load(&b, path, err, sizeof(err)), -EPERM);
	cr_expect(strstr(err, path) != NULL && strstr(err, "owned by") != NULL,
		  "%s", err);
	p2p_identity_wipe(&a);
}

Test(identity, save_into_missing_dir_fails)
{
	struct p2p_identity a;
	char p[200];

	fixed_identity(&a, 1);
	snprintf(p, sizeof(p), "%s/nodir/identity.key", dir);
	cr_assert_eq(p2p_identity_save(&a, p), -ENOENT);
}
