/* daemon/control_listen.c: the socket file, its mode and what was there. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_harness.h"

static void cmd_echo(void *ctx, struct ctl_req *req, json_t *args)
{
	ctl_reply_ok(req, NULL);
}

static const struct ctl_command cmds[] = {{"echo", cmd_echo}};
static char err[512];

TestSuite(ctlsock, .init = tc_setup, .fini = tc_teardown);

static int start(const char *path, struct ctl_server **s)
{
	err[0] = '\0';
	struct ctl_options opt = {.max_clients = 8, .group = ""};

	return ctl_server_start(&tc_loop, path, cmds, 1, NULL, &opt, s, err,
				sizeof(err));
}

static void expect_works(const char *path)
{
	struct tc_client *c = tc_connect(path);
	json_t *r;

	tc_send_str(c, "{\"cmd\":\"echo\"}\n");
	r = tc_reply(c);
	cr_expect(tc_is_ok(r));
	json_decref(r);
	tc_free(c);
}

Test(ctlsock, mode_0660_whatever_the_umask)
{
	mode_t masks[] = {0, 077, 022};
	struct ctl_server *s;
	struct stat st;

	for (size_t i = 0; i < 3; i++) {
		mode_t old = umask(masks[i]);
		cr_assert_eq(start(tc_path, &s), 0, "%s", err);
		umask(old);
		cr_assert(stat(tc_path, &st) == 0);
		cr_expect(S_ISSOCK(st.st_mode));
		cr_expect_eq(st.st_mode & 07777, 0660, "umask %o gave %o",
			     masks[i], st.st_mode & 07777);
		expect_works(tc_path);
		ctl_server_close(s);
		cr_expect(access(tc_path, F_OK) != 0, "close unlinks");
		tc_pump_for(5);
	}
}

Test(ctlsock, creates_parent_directory)
{
	char path[200], dir[100];
	struct ctl_server *s;
	struct stat st;
	mode_t old = umask(022);

	snprintf(dir, sizeof(dir), "%s/run/p2pd", tc_dir);
	snprintf(path, sizeof(path), "%s/p2pd.sock", dir);
	cr_assert_eq(start(path, &s), 0, "%s", err);
	umask(old);
	cr_assert(stat(dir, &st) == 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_mode & 0777, 0755);
	expect_works(path);
	ctl_server_close(s);
}

Test(ctlsock, stale_socket_replaced)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct ctl_server *s;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	/* What a crashed daemon leaves: a bound socket nobody listens on. */
	strcpy(sun.sun_path, tc_path);
	cr_assert(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	close(fd);
	cr_assert(access(tc_path, F_OK) == 0);
	cr_assert_eq(start(tc_path, &s), 0, "%s", err);
	expect_works(tc_path);
	ctl_server_close(s);
}

Test(ctlsock, live_socket_refused)
{
	struct ctl_server *s1, *s2 = NULL;
	char want[200];

	cr_assert_eq(start(tc_path, &s1), 0, "%s", err);
	cr_expect_eq(start(tc_path, &s2), -EADDRINUSE);
	cr_expect(s2 == NULL);
	snprintf(want, sizeof(want), "another p2pd is already running on %s",
		 tc_path);
	cr_expect_str_eq(err, want);
	/* The first server is untouched. */
	expect_works(tc_path);
	ctl_server_close(s1);
}

Test(ctlsock, not_a_socket_refused)
{
	struct ctl_server *s = NULL;
	struct stat st;
	int fd = open(tc_path, O_CREAT | O_WRONLY, 0600);

	cr_assert(fd >= 0);
	cr_assert(write(fd, "keep", 4) == 4);
	close(fd);
	cr_expect_eq(start(tc_path, &s), -EEXIST);
	cr_expect(strstr(err, "not a socket") != NULL, "%s", err);
	cr_assert(stat(tc_path, &st) == 0);
	cr_expect(S_ISREG(st.st_mode) && st.st_size == 4, "file untouched");
}

Test(ctlsock, path_too_long)
{
	char path[200];
	struct ctl_server *s = NULL;

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	cr_expect_eq(start(path, &s), -ENAMETOOLONG);
	cr_expect(strstr(err, "longer than") != NULL, "%s", err);
}

Test(ctlsock, unwritable_directory_reports)
{
	struct ctl_server *s = NULL;
	char path[108];

	snprintf(path, sizeof(path), "%s/file/ctl.sock", tc_dir);
	char file[100];
	snprintf(file, sizeof(file), "%s/file", tc_dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	cr_expect_lt(start(path, &s), 0);
	cr_expect(strstr(err, "Not a directory") != NULL, "%s", err);
}

static int start_group(const char *group, struct ctl_server **s)
{
	struct ctl_options opt = {.max_clients = 8, .group = group};

	err[0] = '\0';
	return ctl_server_start(&tc_loop, tc_path, cmds, 1, NULL, &opt, s, err,
				sizeof(err));
}

/*
 * issue 12 item 3: when the group exists the socket is given to it (mode
 * 0660); a group that does not exist leaves the daemon's own. "users" is
 * an existing group on Debian that stands in for p2pd here.
 */
Test(ctlsock, socket_given_to_the_group)
{
	struct group *g = getgrnam("users");
	struct ctl_server *s;
	struct stat st;

	if (geteuid() != 0 || g == NULL)
		cr_skip_test("needs root and a group \"users\"");
	cr_assert_eq(start_group("users", &s), 0, "%s", err);
	cr_assert_eq(stat(tc_path, &st), 0);
	cr_expect_eq(st.st_gid, g->gr_gid);
	cr_expect_eq(st.st_mode & 07777, 0660);
	expect_works(tc_path);
	ctl_server_close(s);
	tc_pump();
	cr_assert_eq(start_group("no-such-group-p2pd", &s), 0, "%s", err);
	cr_assert_eq(stat(tc_path, &st), 0);
	cr_expect_eq(st.st_gid, getegid());
	cr_expect_eq(st.st_mode & 07777, 0660);
	ctl_server_close(s);
}

/*
 * As uid 65534 with the given groups: connect, send echo, return the
 * first reply line's "error" (or "ok", or "closed").
 */
static const char *as_nobody(const gid_t *groups, size_t ngroups)
{
	static char result[64];
	int p[2], st;
	pid_t pid;
	ssize_t n;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		char buf[512] = "";
		const char *out = "closed";
		int fd;

		if (setgroups(ngroups, groups) < 0 || setgid(65534) < 0 ||
		    setuid(65534) < 0)
			_exit(2);
		strcpy(sun.sun_path, tc_path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			out = "connect failed";
		else if (send(fd, "{\"cmd\":\"echo\"}\n", 15, MSG_NOSIGNAL),
			 read(fd, buf, sizeof(buf) - 1) > 0)
			out = strstr(buf, "access_denied") ? "access_denied"
			      : strstr(buf, "\"ok\":true") ? "ok"
							   : buf;
		n = write(p[1], out, strlen(out));
		_exit(n > 0 ? 0 : 3);
	}
	close(p[1]);
	while (waitpid(pid, &st, WNOHANG) == 0)
		tc_pump_for(10);
	n = read(p[0], result, sizeof(result) - 1);
	close(p[0]);
	result[n > 0 ? n : 0] = '\0';
	return result;
}

/*
 * issue 9: SO_PEERCRED. Even where the file system lets another user in
 * (a careless chmod), only root, the daemon's uid and members of the
 * socket's group are served.
 */
Test(ctlsock, other_uid_refused_unless_in_group)
{
	struct ctl_server *s;
	struct stat st;
	gid_t g;

	if (geteuid() != 0)
		cr_skip_test("needs root to run a client as another uid");
	cr_assert_eq(start_group("", &s), 0, "%s", err);
	cr_assert_eq(chmod(tc_dir, 0711), 0);
	cr_assert_eq(chmod(tc_path, 0666), 0);
	cr_assert_eq(stat(tc_path, &st), 0);
	g = st.st_gid;
	cr_expect_str_eq(as_nobody(NULL, 0), "access_denied");
	cr_expect_str_eq(as_nobody(&g, 1), "ok", "a member of the group");
	expect_works(tc_path);
	ctl_server_close(s);
}
