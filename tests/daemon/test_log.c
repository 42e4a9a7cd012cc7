/* daemon/log.c: level names, rate limit, line format, journald prefixes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"

/* Point stderr at a fresh temp file; returns its fd for reading back. */
static int capture_stderr(void)
{
	char tmpl[] = "/tmp/p2pd-logtest-XXXXXX";
	int fd = mkstemp(tmpl);

	cr_assert(fd >= 0);
	unlink(tmpl);
	cr_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	return fd;
}

static char *read_back(int fd)
{
	static char buf[8192];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	cr_assert(n >= 0);
	buf[n] = '\0';
	return buf;
}

static void set_journal_stream(int fd)
{
	struct stat st;
	char v[64];

	cr_assert(fstat(fd, &st) == 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

Test(log, level_parse)
{
	cr_expect_eq(log_level_parse("error"), LOG_LVL_ERROR);
	cr_expect_eq(log_level_parse("warn"), LOG_LVL_WARN);
	cr_expect_eq(log_level_parse("info"), LOG_LVL_INFO);
	cr_expect_eq(log_level_parse("debug"), LOG_LVL_DEBUG);
	cr_expect_eq(log_level_parse("INFO"), -EINVAL);
	cr_expect_eq(log_level_parse("warning"), -EINVAL);
	cr_expect_eq(log_level_parse(""), -EINVAL);
	cr_expect_eq(log_level_parse("info "), -EINVAL);
	cr_expect_eq(log_level_parse(NULL), -EINVAL);
}

Test(log, ratelimit)
{
	uint64_t last = 0, other = 0;

	cr_expect_eq(log_ratelimit(&last, 0, 1000), 1, "first line passes");
	cr_expect_eq(log_ratelimit(&last, 1, 1000), 0);
	cr_expect_eq(log_ratelimit(&last, 999, 1000), 0);
	cr_expect_eq(log_ratelimit(&other, 500, 1000), 1,
		     "each stamp is independent");
	cr_expect_eq(log_ratelimit(&last, 1000, 1000), 1, "interval passed");
	cr_expect_eq(log_ratelimit(&last, 1500, 1000), 0);
	cr_expect_eq(log_ratelimit(&last, 2000, 1000), 1);
	/* A clock that jumps back must not mute the line forever. */
	cr_expect_eq(log_ratelimit(&last, 10, 1000), 1);
	cr_expect_eq(log_ratelimit(&last, 20, 1000), 0);
}

Test(log, plain_format_and_level_filter)
{
	int fd = capture_stderr();
	char want[256];
	regex_t re;

	unsetenv("JOURNAL_STREAM");
	log_init(LOG_LVL_INFO);
	log_info("hello %d", 5);
	log_debug("hidden debug line");
	log_set_level(LOG_LVL_DEBUG);
	log_debug("now shown");

	char *out = read_back(fd);
	snprintf(want, sizeof(want),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
		 "\\.[0-9]{3}Z p2pd\\[%d\\]: info: hello 5\n"
		 "[0-9T:.Z-]+ p2pd\\[%d\\]: debug: now shown\n$",
		 (int)getpid(), (int)getpid());
	cr_assert(regcomp(&re, want, REG_EXTENDED) == 0);
	cr_expect(regexec(&re, out, 0, NULL, 0) == 0, "got: %s", out);
	cr_expect(strstr(out, "hidden") == NULL);
	regfree(&re);
}

Test(log, warn_appends_errno_and_flattens_newlines)
{
	int fd = capture_stderr();

	unsetenv("JOURNAL_STREAM");
	log_init(LOG_LVL_WARN);
	errno = ENOENT;
	log_warn("open %s", "x");
	cr_expect_eq(errno, ENOENT, "logging keeps errno");
	log_warnx("two\nlines");
	log_info("below the level");

	char *out = read_back(fd);
	cr_expect(strstr(out, ": warn: open x: No such file or directory\n"),
		  "got: %s", out);
	cr_expect(strstr(out, ": warn: two lines\n"), "got: %s", out);
	cr_expect(strstr(out, "below") == NULL);
}

Test(log, journald_prefix_when_stream_matches)
{
	int fd = capture_stderr();

	set_journal_stream(fd);
	log_init(LOG_LVL_DEBUG);
	log_error("e %s", "1");
	log_warnx("w");
	log_info("i");
	log_debug("d");
	cr_expect_str_eq(read_back(fd), "<3>e 1\n<4>w\n<6>i\n<7>d\n");
}

Test(log, journald_ignored_when_stderr_redirected)
{
	int other = capture_stderr();
	int fd = capture_stderr();

	/* The variable describes a different file: stderr was redirected. */
	set_journal_stream(other);
	log_init(LOG_LVL_INFO);
	log_info("x");
	char *out = read_back(fd);
	cr_expect(out[0] != '<', "got: %s", out);
	cr_expect(strstr(out, "p2pd[") != NULL, "got: %s", out);

	setenv("JOURNAL_STREAM", "garbage", 1);
	log_init(LOG_LVL_INFO);
	log_info("y");
	cr_expect(strstr(read_back(fd), "<6>y") == NULL);
}
