/*
 * Long-term identity and identity.key. The file is small and fixed-size, so
 * it is read whole and parsed exactly; anything else is refused rather than
 * guessed at. Saving never replaces an existing key: the key is written to
 * a fresh temporary file in the same directory and hard-linked into place,
 * and link(2) fails if the name exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "proto/identity.h"

#define ID_FILE_MAGIC "p2pd-ed25519-v1 "
#define ID_MAGIC_LEN (sizeof(ID_FILE_MAGIC) - 1)
#define ID_HEX_LEN (2 * crypto_sign_SECRETKEYBYTES)
#define ID_FILE_LEN (ID_MAGIC_LEN + ID_HEX_LEN + 1) /* with the "\n" */
#define ID_PATH_MAX 4096

int p2p_identity_from_seed(struct p2p_identity *ident, const uint8_t seed[32])
{
	uint8_t *sk = NULL;

	/* sodium_malloc needs the page size that sodium_init looks up. */
	if (sodium_init() >= 0)
		sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
	if (sk == NULL) {
		memset(ident, 0, sizeof(*ident));
		return -ENOMEM;
	}
	crypto_sign_seed_keypair(ident->pk, sk, seed);
	p2p_peerid_from_pk(&ident->id, ident->pk);
	/* Nothing writes the key again until sodium_free wipes it. */
	sodium_mprotect_readonly(sk);
	ident->sk = sk;
	return 0;
}

int p2p_identity_generate(struct p2p_identity *ident)
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	int rc;

	randombytes_buf(seed, sizeof(seed));
	rc = p2p_identity_from_seed(ident, seed);
	sodium_memzero(seed, sizeof(seed));
	return rc;
}

void p2p_identity_wipe(struct p2p_identity *ident)
{
	/* sodium_free makes the pages writable, zeroes them, unmaps. */
	sodium_free((void *)ident->sk);
	ident->sk = NULL;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* uppercase too: one canonical form */
}

/* Parse the exact file contents into sk; -EPROTO on any deviation. */
static int parse_key(uint8_t sk[64], const char *buf, size_t len)
{
	const char *hex = buf + ID_MAGIC_LEN;

	if (len != ID_FILE_LEN || memcmp(buf, ID_FILE_MAGIC, ID_MAGIC_LEN) ||
	    buf[ID_FILE_LEN - 1] != '\n')
		return -EPROTO;
	for (size_t i = 0; i < crypto_sign_SECRETKEYBYTES; i++) {
		int hi = hex_nibble(hex[2 * i]),
		    lo = hex_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EPROTO;
		sk[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int say(char *err, size_t errlen, int code, const char *fmt,
	       const char *path, unsigned int mode)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, fmt, path, mode, path);
	return code;
}

/* Open and check type and mode before reading a single byte. */
static int open_checked(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0) {
		int e = errno;

		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
				 "cannot open identity file %s: %s", path,
				 strerror(e));
		return -e;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return say(
		    err, errlen, -EPROTO,
		    "identity file %s is not a regular file (mode %04o); "
		    "remove %s or point the state directory elsewhere",
		    path, (unsigned int)(st.st_mode & 07777));
	}
	/* Its owner could replace it with a key of their choosing. */
	if (st.st_uid != geteuid()) {
		close(fd);
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
				 "identity file %s is owned by uid %u, not by "
				 "uid %u that runs p2pd: refusing to use it",
				 path, (unsigned int)st.st_uid,
				 (unsigned int)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 077) {
		close(fd);
		return say(err, errlen, -EPERM,
			   "identity file %s has mode %04o and is accessible "
			   "by group or others; fix with: chmod 600 %s",
			   path, (unsigned int)(st.st_mode & 07777));
	}
	return fd;
}

/* Read up to cap bytes; returns the count or a negative errno. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
	size_t have = 0;

	while (have < cap) {
		ssize_t n = read(fd, buf + have, cap - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		have += (size_t)n;
	}
	return (ssize_t)have;
}

static int check_pair(struct p2p_identity *ident, const uint8_t sk[64])
{
	struct p2p_identity derived;

	/* The public half must be what the seed gives, or the file lies. */
	if (p2p_identity_from_seed(&derived, sk) < 0)
		return -ENOMEM;
	if (sodium_memcmp(derived.pk, sk + 32, 32) != 0) {
		p2p_identity_wipe(&derived);
		return -EPROTO;
	}
	*ident = derived; /* moves the one reference to the key */
	return 0;
}

int p2p_identity_load(struct p2p_identity *ident, const char *path, char *err,
		      size_t errlen)
{
	char buf[ID_FILE_LEN + 1]; /* one extra byte to notice trailing data */
	uint8_t sk[64];
	ssize_t n;
	int fd, rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	fd = open_checked(path, err, errlen);
	if (fd < 0)
		return fd;
	n = read_all(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
				 "cannot read identity file %s: %s", path,
				 strerror((int)-n));
		return (int)n;
	}
	rc = parse_key(sk, buf, (size_t)n);
	if (rc == 0)
		rc = check_pair(ident, sk);
	if (rc == -ENOMEM && err != NULL && errlen > 0)
		snprintf(err, errlen, "no memory for the key of %s", path);
	else if (rc < 0 && err != NULL && errlen > 0)
		snprintf(err, errlen,
			 "identity file %s is malformed (expected one line "
			 "\"%s<128 hex digits>\" with a matching key pair); "
			 "move it away to create a new identity",
			 path, ID_FILE_MAGIC);
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void format_key(char out[ID_FILE_LEN], const uint8_t sk[64])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out + ID_MAGIC_LEN;

	memcpy(out, ID_FILE_MAGIC, ID_MAGIC_LEN);
	for (size_t i = 0; i < crypto_sign_SECRETKEYBYTES; i++) {
		*p++ = hex[sk[i] >> 4];
		*p++ = hex[sk[i] & 15];
	}
	*p = '\n';
}

/* Make the new name durable: fsync the directory holding path. */
static void sync_dir(const char *path)
{
	char copy[ID_PATH_MAX];
	int fd;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Write the key into the already created tmp file and link it to path. */
static int write_and_link(int fd, const char *tmp, const char *path,
			  const uint8_t sk[64])
{
	char buf[ID_FILE_LEN];
	int rc;

	format_key(buf, sk);
	rc = fchmod(fd, 0600) < 0 ? -errno : 0;
	if (rc == 0)
		rc = write_all(fd, buf, sizeof(buf));
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	sodium_memzero(buf, sizeof(buf));
	/* link(2) never replaces: an existing key gives EEXIST. */
	if (rc == 0 && link(tmp, path) < 0)
		rc = -errno;
	return rc;
}

int p2p_identity_save(const struct p2p_identity *ident, const char *path)
{
	char tmp[ID_PATH_MAX];
	int fd, rc;

	if (path == NULL || path[0] == '\0')
		return -EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* Fail early and leave no temp file when the key already exists. */
	if (access(path, F_OK) == 0)
		return -EEXIST;
	fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
	if (fd < 0)
		return -errno;
	rc = write_and_link(fd, tmp, path, ident->sk);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	unlink(tmp);
	if (rc == 0)
		sync_dir(path);
	return rc;
}
