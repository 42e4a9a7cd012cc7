/* The p2pd binary: exit codes, identity handling, sd_notify, signals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P2PD_BIN
#error "P2PD_BIN must name the built p2pd"
#endif

static char dir[64], cfg[128], ctl[128], state[128], log_path[128];
static char notify_name[64];
static int notify_fd = -1;

static void setup(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;

	strcpy(dir, "/tmp/p2pd-maintest-XXXXXX");
	cr_assert(mkdtemp(dir) != NULL);
	snprintf(cfg, sizeof(cfg), "%s/p2pd.json", dir);
	snprintf(ctl, sizeof(ctl), "%s/run/ctl.sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	/* An abstract notify socket, as systemd would give. */
	snprintf(notify_name, sizeof(notify_name), "@p2pd-maintest-%d",
		 (int)getpid());
	notify_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	strcpy(sun.sun_path + 1, notify_name + 1);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			  strlen(notify_name));
	cr_assert(bind(notify_fd, (struct sockaddr *)&sun, len) == 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(notify_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void teardown(void)
{
	char cmd[128];

	close(notify_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect(system(cmd) == 0);
}

TestSuite(p2pd, .init = setup, .fini = teardown, .timeout = 60);

static void write_config(const char *json)
{
	FILE *f = fopen(cfg, "w");

	cr_assert(f != NULL);
	fputs(json, f);
	fclose(f);
}

/* Start p2pd with args (NULL-terminated); stderr goes to log_path. */
static pid_t spawn(const char *first, ...)
{
	char *argv[32] = {P2PD_BIN};
	int argc = 1;
	va_list ap;
	pid_t pid;

	va_start(ap, first);
	for (const char *a = first; a != NULL; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		dup2(fd, 1);
		setenv("NOTIFY_SOCKET", notify_name, 1);
		unsetenv("JOURNAL_STREAM");
		execv(P2PD_BIN, argv);
		_exit(127);
	}
	return pid;
}

/* Exit status, or -1 when it did not exit within 10 s. */
static int wait_exit(pid_t pid)
{
	int st;

	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static char *log_text(void)
{
	static char buf[16384];
	int fd = open(log_path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Next notify datagram containing needle, within 10 s. */
static bool got_notify(const char *needle)
{
	char buf[1024];

	for (;;) {
		ssize_t n = recv(notify_fd, buf, sizeof(buf) - 1, 0);
		if (n < 0)
			return false;
		buf[n] = '\0';
		if (strstr(buf, needle) != NULL)
			return true;
	}
}

/* One request line over the control socket; reply in out. */
static bool control(const char *req, char *out, size_t outlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	size_t len = 0;

	strcpy(sun.sun_path, ctl);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return false;
	}
	while (len < outlen - 1) {
		ssize_t n = read(fd, out + len, outlen - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(out, '\n', len))
			break;
	}
	out[len] = '\0';
	close(fd);
	return len > 0;
}

Test(p2pd, bad_flag_exits_1_writing_nothing)
{
	cr_expect_eq(wait_exit(spawn("--frobnicate", "-d", state, NULL)), 1);
	cr_expect(strstr(log_text(), "p2pd: unknown option \"--frobnicate\"") !=
		      NULL,
		  "%s", log_text());
	cr_expect(access(state, F_OK) != 0, "no state directory created");
}

Test(p2pd, short_help_and_version_exit_0_writing_nothing)
{
	cr_expect_eq(wait_exit(spawn("-V", "-d", state, NULL)), 0);
	cr_expect(strncmp(log_text(), "p2pd ", 5) == 0, "%s", log_text());
	unlink(log_path);
	cr_expect_eq(wait_exit(spawn("-d", state, "-h", NULL)), 0);
	cr_expect(strstr(log_text(), "usage: p2pd") != NULL, "%s", log_text());
	cr_expect(access(state, F_OK) != 0, "no state directory created");
}

/* --help ends with the defaults this user gets, from config.c itself. */
Test(p2pd, help_shows_defaults)
{
	cr_expect_eq(wait_exit(spawn("--help", NULL)), 0);
	cr_expect(strstr(log_text(), "defaults (for this user):") != NULL, "%s",
		  log_text());
	cr_expect(strstr(log_text(), "listen                     "
				     "0.0.0.0:4242 [::]:4242") != NULL,
		  "%s", log_text());
	cr_expect(strstr(log_text(), "control socket") != NULL);
	cr_expect(strstr(log_text(), "state directory") != NULL);
}

/* "-c -h": -h is the file's name there; it does not exist. */
Test(p2pd, help_flag_as_an_option_argument_is_a_value)
{
	cr_expect_eq(wait_exit(spawn("-c", "-h", "-d", state, NULL)), 1);
	cr_expect(strstr(log_text(), "usage") == NULL, "%s", log_text());
}

Test(p2pd, check_config)
{
	write_config("{\"listen\": []}");
	cr_expect_eq(wait_exit(spawn("-n", "-c", cfg, "-d", state, NULL)), 0);
	cr_expect(strstr(log_text(), "configuration OK") != NULL);
	cr_expect(access(state, F_OK) != 0);
	write_config("{\"listne\": []}");
	cr_expect_eq(wait_exit(spawn("-n", "-c", cfg, NULL)), 1);
	cr_expect(strstr(log_text(), "unknown key \"listne\"") != NULL);
}

Test(p2pd, start_notify_stop)
{
	char idpath[160], reply[4096];
	struct stat st;
	pid_t pid;

	write_config("{\"listen\": []}");
	pid = spawn("-c", cfg, "-s", ctl, "-d", state, NULL);
	cr_assert(got_notify("READY=1"), "%s", log_text());
	snprintf(idpath, sizeof(idpath), "%s/identity.key", state);
	cr_assert(stat(idpath, &st) == 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert(stat(state, &st) == 0);
	cr_expect_eq(st.st_mode & 0777, 0700);
	cr_assert(stat(ctl, &st) == 0);
	cr_expect(S_ISSOCK(st.st_mode));
	cr_expect_eq(st.st_mode & 0777, 0660);
	cr_expect(control("{\"cmd\":\"status\",\"tag\":\"s\"}\n", reply,
			  sizeof(reply)));
	cr_expect(strstr(reply, "\"ok\":true") != NULL, "%s", reply);
	cr_expect(strstr(reply, "\"tag\":\"s\"") != NULL, "%s", reply);
	cr_expect(strstr(log_text(), "created identity ") != NULL);
	cr_expect(strstr(log_text(), "control on ") != NULL);

	/* A second daemon on the same control socket refuses to start. */
	cr_expect_eq(wait_exit(spawn("-c", cfg, "-s", ctl, "-d", state, NULL)),
		     1);
	cr_expect(strstr(log_text(), "another p2pd is already running") != NULL,
		  "%s", log_text());

	kill(pid, SIGTERM);
	cr_expect(got_notify("STOPPING=1"));
	cr_expect_eq(wait_exit(pid), 0, "%s", log_text());
	cr_expect(access(ctl, F_OK) != 0, "socket removed");

	/* The same identity next time. */
	char before[4096];
	strcpy(before, strstr(log_text(), "created identity ") + 17);
	*strchr(before, '\n') = '\0';
	pid = spawn("-c", cfg, "-s", ctl, "-d", state, NULL);
	cr_assert(got_notify("READY=1"));
	kill(pid, SIGINT);
	cr_expect_eq(wait_exit(pid), 0);
	char *first = strstr(log_text(), "created identity ");
	cr_expect(strstr(first + 1, "created identity ") == NULL,
		  "the key was reused, not created again");
	cr_expect(strstr(log_text(), before) != NULL);
}

Test(p2pd, bad_identity_refused_and_kept)
{
	char idpath[160], buf[64];
	int fd;

	cr_assert(mkdir(state, 0700) == 0);
	snprintf(idpath, sizeof(idpath), "%s/identity.key", state);
	fd = open(idpath, O_CREAT | O_WRONLY, 0600);
	cr_assert(write(fd, "garbage\n", 8) == 8);
	close(fd);
	write_config("{\"listen\": []}");
	cr_expect_eq(wait_exit(spawn("-c", cfg, "-s", ctl, "-d", state, NULL)),
		     1);
	fd = open(idpath, O_RDONLY);
	cr_assert_eq(read(fd, buf, sizeof(buf)), 8, "never overwritten");
	close(fd);
	cr_expect(strstr(log_text(), "identity.key") != NULL, "%s", log_text());

	/* Readable by others: refused too. */
	chmod(idpath, 0644);
	cr_expect_eq(wait_exit(spawn("-c", cfg, "-s", ctl, "-d", state, NULL)),
		     1);
}

/*
 * issue 9: a state dir others can write into lets them plant links and
 * keys; one owned by another user lets that user do the same. Both are
 * refused with one line naming the directory, and nothing is written.
 */
Test(p2pd, unsafe_state_dir_refused)
{
	static const mode_t modes[] = {0777, 0770, 0730, 0702, 01777};
	char idpath[160], *line;

	write_config("{\"listen\": []}");
	snprintf(idpath, sizeof(idpath), "%s/identity.key", state);
	cr_assert(mkdir(state, 0700) == 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		cr_assert(chmod(state, modes[i]) == 0);
		cr_expect_eq(
		    wait_exit(spawn("-c", cfg, "-s", ctl, "-d", state, NULL)),
		    1, "mode %o: %s", modes[i], log_text());
		cr_expect(access(idpath, F_OK) != 0, "mode %o: key written",
			  modes[i]);
	}
	line = strstr(log_text(), state);
	cr_expect(line != NULL && strstr(line, "writable") != NULL, "%s",
		  log_text());
	if (geteuid() != 0)
		return; /* chown needs root */
	cr_assert(chmod(state, 0700) == 0);
	cr_assert(chown(state, 65534, 65534) == 0);
	cr_expect_eq(wait_exit(spawn("-c", cfg, "-s", ctl, "-d", state, NULL)),
		     1, "%s", log_text());
	cr_expect(strstr(log_text(), "owned by uid 65534") != NULL, "%s",
		  log_text());
	cr_expect(access(idpath, F_OK) != 0, "key written");
}

Test(p2pd, sighup_reloads_services)
{
	char reply[4096];
	pid_t pid;

	write_config("{\"listen\": [], \"services\": {\"one\": "
		     "{\"target\": \"127.0.0.1:1\", \"allow\": \"any\"}}}");
	pid = spawn("-c", cfg, "-s", ctl, "-d", state, NULL);
	cr_assert(got_notify("READY=1"), "%s", log_text());
	cr_assert(control("{\"cmd\":\"services\"}\n", reply, sizeof(reply)));
	cr_expect(strstr(reply, "\"one\"") != NULL, "%s", reply);

	write_config("{\"listen\": [], \"services\": {\"two\": "
		     "{\"target\": \"127.0.0.1:2\", \"allow\": \"any\"}}}");
	kill(pid, SIGHUP);
	usleep(300000);
	cr_assert(control("{\"cmd\":\"services\"}\n", reply, sizeof(reply)));
	cr_expect(strstr(reply, "\"two\"") != NULL, "%s", reply);
	cr_expect(strstr(reply, "\"one\"") == NULL, "%s", reply);

	/* A broken file is reported and changes nothing. */
	write_config("{\"listen\": [], \"services\": 5}");
	kill(pid, SIGHUP);
	usleep(300000);
	cr_assert(control("{\"cmd\":\"services\"}\n", reply, sizeof(reply)));
	cr_expect(strstr(reply, "\"two\"") != NULL, "%s", reply);
	cr_expect(strstr(log_text(), "reload failed") != NULL);

	kill(pid, SIGTERM);
	cr_expect_eq(wait_exit(pid), 0);
}
