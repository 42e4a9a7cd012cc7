/* daemon/control.c: the line protocol, bounds and per-client isolation. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctl_harness.h"

static struct ctl_server *srv;
static struct ctl_req *held; /* a request the "later" handler keeps */
static uv_stream_t *taken;   /* the stream "open" took over */
static char *taken_rest;
static size_t taken_restlen;
static char taken_rx[256];
static size_t taken_rxlen;

static void cmd_echo(void *ctx, struct ctl_req *req, json_t *args)
{
	ctl_reply_ok(req, json_pack("{s:O}", "args", args));
}

static void cmd_later(void *ctx, struct ctl_req *req, json_t *args)
{
	cr_assert(held == NULL);
	held = req;
}

static void cmd_fail(void *ctx, struct ctl_req *req, json_t *args)
{
	ctl_reply_error(req, "internal", "failed on purpose %d", 42);
}

/* 64 KiB per reply: a client that never reads fills CTL_OUT_MAX fast. */
static void cmd_big(void *ctx, struct ctl_req *req, json_t *args)
{
	static char blob[64 * 1024];

	memset(blob, 'x', sizeof(blob) - 1);
	ctl_reply_ok(req, json_pack("{s:s}", "blob", blob));
}

static void cmd_open(void *ctx, struct ctl_req *req, json_t *args)
{
	taken = ctl_req_take_stream(req, json_pack("{s:b}", "stream", 1),
				    &taken_rest, &taken_restlen);
}

static const struct ctl_command cmds[] = {
    {"echo", cmd_echo}, {"later", cmd_later}, {"fail", cmd_fail},
    {"big", cmd_big},	{"open", cmd_open},
};

/* The default idle timeout (10 s): long enough not to interfere. */
static const struct ctl_options opt = {.max_clients = 4, .group = ""};

static void setup(void)
{
	char err[256];

	tc_setup();
	held = NULL;
	taken = NULL;
	cr_assert_eq(ctl_server_start(&tc_loop, tc_path, cmds, 5, NULL, &opt,
				      &srv, err, sizeof(err)),
		     0, "%s", err);
}

static void teardown(void)
{
	ctl_server_close(srv);
	srv = NULL;
	tc_teardown();
	free(taken_rest);
	taken_rest = NULL;
}

TestSuite(control, .init = setup, .fini = teardown);

Test(control, echo_with_tag)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	tc_send_str(
	    c, "{\"cmd\":\"echo\",\"x\":\"\\u00e9\",\"tag\":{\"t\":[1,2]}}\n");
	r = tc_reply(c);
	cr_assert(tc_is_ok(r));
	json_t *want = json_pack("{s:[i,i]}", "t", 1, 2);
	cr_expect(json_equal(json_object_get(r, "tag"), want));
	cr_expect_str_eq(
	    json_string_value(json_object_get(json_object_get(r, "args"), "x")),
	    "\xc3\xa9");
	json_decref(want);
	json_decref(r);
	/* Lines are compact, one per reply, "ok" first. */
	tc_send_str(c, "{\"cmd\":\"echo\",\"tag\":5}\n");
	cr_assert(tc_wait_bytes(c, 10));
	cr_expect(strncmp(c->rx, "{\"ok\":true,", 11) == 0, "%.40s", c->rx);
	json_decref(tc_reply(c));
	tc_free(c);
}

Test(control, malformed_lines_keep_connection)
{
	static const char *bad[] = {
	    "not json\n",
	    "[1,2]\n",
	    "{\"cmd\":5}\n",
	    "{\"nocmd\":1}\n",
	    "\"str\"\n",
	    "{\"cmd\":\"echo\"\n",
	    "{\"cmd\":\"a\",\"cmd\":\"b\"}\n",
	    "{\"cmd\":\"\xff\"}\n",
	};
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tc_send_str(c, bad[i]);
		r = tc_reply(c);
		cr_assert(r != NULL, "no reply to %s", bad[i]);
		cr_expect(json_is_false(json_object_get(r, "ok")));
		cr_expect_str_eq(tc_error(r), "bad_request", "line %s", bad[i]);
		cr_expect(json_is_string(json_object_get(r, "message")));
		json_decref(r);
	}
	tc_send_str(c, "{\"tag\":\"t1\"}\n");
	r = tc_reply(c);
	cr_expect_str_eq(tc_error(r), "bad_request");
	cr_expect_str_eq(json_string_value(json_object_get(r, "tag")), "t1",
			 "tag echoed on errors too");
	json_decref(r);
	tc_send_str(c, "{\"cmd\":\"echo\"}\n");
	r = tc_reply(c);
	cr_expect(tc_is_ok(r), "still usable");
	json_decref(r);
	tc_free(c);
}

Test(control, unknown_command_and_handler_error)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	tc_send_str(c, "{\"cmd\":\"frobnicate\",\"tag\":1}\n");
	r = tc_reply(c);
	cr_expect_str_eq(tc_error(r), "unknown_command");
	cr_expect(strstr(json_string_value(json_object_get(r, "message")),
			 "frobnicate") != NULL);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 1);
	json_decref(r);
	tc_send_str(c, "{\"cmd\":\"fail\"}\n");
	r = tc_reply(c);
	cr_expect_str_eq(tc_error(r), "internal");
	cr_expect_str_eq(json_string_value(json_object_get(r, "message")),
			 "failed on purpose 42");
	cr_expect(json_object_get(r, "tag") == NULL);
	json_decref(r);
	tc_free(c);
}

Test(control, empty_lines_and_crlf)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	tc_send_str(c, "\n\r\n  \n{\"cmd\":\"echo\",\"tag\":1}\r\n\n"
		       "{\"cmd\":\"echo\",\"tag\":2}\n");
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 1);
	json_decref(r);
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 2);
	json_decref(r);
	tc_pump_for(20);
	cr_expect_eq(c->len, 0, "blank lines got no reply");
	tc_free(c);
}

Test(control, pipelined_requests_answered_in_order)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	tc_send_str(c, "{\"cmd\":\"echo\",\"tag\":1}\n"
		       "{\"cmd\":\"later\",\"tag\":2}\n"
		       "{\"cmd\":\"echo\",\"tag\":3}\n");
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 1);
	json_decref(r);
	tc_pump_for(20);
	cr_assert(held != NULL);
	cr_expect_eq(c->len, 0, "request 3 waits for request 2");
	cr_expect(!ctl_req_orphaned(held));
	ctl_reply_ok(held, json_pack("{s:i}", "answer", 42));
	held = NULL;
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 2);
	cr_expect_eq(json_integer_value(json_object_get(r, "answer")), 42);
	json_decref(r);
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 3);
	json_decref(r);
	tc_free(c);
}

Test(control, async_reply_after_server_close_is_dropped)
{
	struct tc_client *c = tc_connect(NULL);

	tc_send_str(c, "{\"cmd\":\"later\"}\n");
	tc_pump_for(20);
	cr_assert(held != NULL);
	ctl_server_close(srv);
	srv = NULL;
	cr_expect(ctl_req_orphaned(held));
	ctl_reply_ok(held, json_pack("{s:i}", "late", 1));
	held = NULL;
	cr_expect(tc_wait_eof(c));
	tc_free(c);
}

Test(control, exact_max_line_accepted)
{
	struct tc_client *c = tc_connect(NULL);
	const char *head = "{\"cmd\":\"echo\",\"p\":\"";
	size_t n = CTL_LINE_MAX;
	char *line = malloc(n + 1);
	json_t *r;

	memset(line, 'a', n);
	memcpy(line, head, strlen(head));
	memcpy(line + n - 2, "\"}", 2);
	line[n] = '\n';
	cr_assert_eq(tc_send(c, line, n + 1), 0);
	r = tc_reply(c);
	cr_expect(tc_is_ok(r), "a line of exactly CTL_LINE_MAX bytes is fine");
	json_decref(r);
	free(line);
	tc_free(c);
}

Test(control, huge_line_closes_only_that_client)
{
	struct tc_client *a = tc_connect(NULL), *b = tc_connect(NULL);
	size_t n = 1024 * 1024;
	char *big = malloc(n);
	json_t *r;

	memset(big, 'z', n);
	int sr = tc_send(a, big, n);
	cr_expect(sr == 0 || sr == -EPIPE || sr == -ECONNRESET, "send %d", sr);
	cr_expect(tc_wait_eof(a), "the server closed the long line's client");
	/* Its last words, when they made it, say why. */
	if (a->len > 0)
		cr_expect(memmem(a->rx, a->len, "line too long", 13) != NULL);

	tc_send_str(b, "{\"cmd\":\"echo\",\"tag\":\"b\"}\n");
	r = tc_reply(b);
	cr_expect(tc_is_ok(r), "the other client is unaffected");
	json_decref(r);
	free(big);
	tc_free(a);
	tc_free(b);
}

Test(control, line_just_over_max_rejected)
{
	struct tc_client *c = tc_connect(NULL);
	size_t n = CTL_LINE_MAX + 3;
	char *line = malloc(n);
	json_t *r;

	memset(line, ' ', n);
	line[n - 1] = '\n';
	tc_send(c, line, n);
	r = tc_reply(c);
	cr_expect_str_eq(tc_error(r), "bad_request");
	cr_expect(strstr(json_string_value(json_object_get(r, "message")),
			 "line too long") != NULL);
	json_decref(r);
	cr_expect(tc_wait_eof(c));
	free(line);
	tc_free(c);
}

Test(control, client_that_never_reads_is_dropped)
{
	struct tc_client *slow = tc_connect(NULL), *other = tc_connect(NULL);
	char req[] = "{\"cmd\":\"big\"}\n";
	json_t *r;
	int sent = 0;

	/* Ask for 64 MiB of replies and read none of them. */
	for (int i = 0; i < 1024; i++) {
		if (send(slow->fd, req, strlen(req), MSG_NOSIGNAL) !=
		    (ssize_t)strlen(req))
			break;
		sent++;
		tc_pump();
	}
	cr_expect(sent > 0);
	tc_send_str(other, "{\"cmd\":\"echo\"}\n");
	r = tc_reply(other);
	cr_expect(tc_is_ok(r), "others are served while one client stalls");
	json_decref(r);
	cr_expect(tc_wait_eof(slow), "the stalled client was dropped");
	tc_free(slow);
	tc_free(other);
}

Test(control, too_many_clients_get_busy)
{
	struct tc_client *c[4], *extra;
	json_t *r;

	for (int i = 0; i < 4; i++)
		c[i] = tc_connect(NULL);
	extra = tc_connect(NULL);
	r = tc_reply(extra);
	cr_expect_str_eq(tc_error(r), "busy");
	json_decref(r);
	cr_expect(tc_wait_eof(extra));
	tc_free(extra);
	for (int i = 0; i < 4; i++) {
		tc_send_str(c[i], "{\"cmd\":\"echo\"}\n");
		r = tc_reply(c[i]);
		cr_expect(tc_is_ok(r));
		json_decref(r);
	}
	/* A slot frees when a client leaves. */
	tc_free(c[0]);
	extra = tc_connect(NULL);
	tc_send_str(extra, "{\"cmd\":\"echo\"}\n");
	r = tc_reply(extra);
	cr_expect(tc_is_ok(r));
	json_decref(r);
	tc_free(extra);
	for (int i = 1; i < 4; i++)
		tc_free(c[i]);
}

Test(control, half_closed_client_still_gets_replies)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	/* Like `echo ... | socat - UNIX:...`: send, then shut down writing. */
	tc_send_str(
	    c, "{\"cmd\":\"echo\",\"tag\":1}\n{\"cmd\":\"echo\",\"tag\":2}");
	shutdown(c->fd, SHUT_WR);
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 1);
	json_decref(r);
	r = tc_reply(c);
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 2,
		     "a last line without newline still counts");
	json_decref(r);
	cr_expect(tc_wait_eof(c));
	tc_free(c);
}

static void on_taken_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	*buf = uv_buf_init(taken_rx + taken_rxlen,
			   (unsigned)(sizeof(taken_rx) - taken_rxlen));
}

static void on_taken_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0)
		taken_rxlen += (size_t)n;
}

static void on_taken_closed(uv_handle_t *h)
{
	free(h);
}

static void on_taken_write(uv_write_t *w, int status)
{
	cr_expect_eq(status, 0);
}

Test(control, open_hands_over_the_stream)
{
	struct tc_client *c = tc_connect(NULL);
	uv_write_t w;
	uv_buf_t b = uv_buf_init("pong", 4);
	json_t *r;

	tc_send_str(c, "{\"cmd\":\"open\",\"tag\":9}\nRAW1");
	tc_pump_for(20);
	cr_assert(taken != NULL);
	r = tc_reply(c);
	cr_assert(r != NULL, "eof %d len %zu: %.*s", c->eof, c->len,
		  (int)c->len, c->rx);
	cr_expect(json_is_true(json_object_get(r, "stream")));
	cr_expect_eq(json_integer_value(json_object_get(r, "tag")), 9);
	json_decref(r);
	cr_assert_eq(taken_restlen, 4);
	cr_expect(memcmp(taken_rest, "RAW1", 4) == 0);

	/* From now on the socket carries raw bytes both ways. */
	cr_assert(uv_write(&w, taken, &b, 1, on_taken_write) == 0);
	cr_assert(tc_wait_bytes(c, 4));
	cr_expect(memcmp(c->rx, "pong", 4) == 0);
	taken_rxlen = 0;
	cr_assert(uv_read_start(taken, on_taken_alloc, on_taken_read) == 0);
	tc_send_str(c, "{\"cmd\":\"echo\"}\n");
	tc_pump_for(20);
	cr_expect_eq(taken_rxlen, 15, "not parsed as a request any more");
	cr_expect(c->len == 4, "and no reply came back");
	uv_close((uv_handle_t *)taken, on_taken_closed);
	tc_free(c);
}

Test(control, async_open_keeps_later_bytes)
{
	struct tc_client *c = tc_connect(NULL);
	char *rest;
	size_t restlen;

	tc_send_str(c, "{\"cmd\":\"later\"}\n");
	tc_pump_for(10);
	tc_send_str(c, "early bytes\n");
	tc_pump_for(20);
	cr_assert(held != NULL);
	taken = ctl_req_take_stream(held, NULL, &rest, &restlen);
	held = NULL;
	cr_assert(taken != NULL);
	json_t *r = tc_reply(c);
	cr_expect(tc_is_ok(r));
	json_decref(r);
	/* The bytes are either handed back or still in the socket. */
	taken_rxlen = 0;
	if (restlen > 0) {
		memcpy(taken_rx, rest, restlen);
		taken_rxlen = restlen;
	}
	free(rest);
	cr_assert(uv_read_start(taken, on_taken_alloc, on_taken_read) == 0);
	tc_pump_for(20);
	cr_expect_eq(taken_rxlen, 12);
	cr_expect(memcmp(taken_rx, "early bytes\n", 12) == 0);
	uv_close((uv_handle_t *)taken, on_taken_closed);
	tc_free(c);
}

/*
 * issue 9: the idle timeout. A short one here (the daemon's is 10 s); the
 * suite's own server replaces the one of the "control" suite.
 */
#define IDLE_MS 200

static void setup_idle(void)
{
	static const struct ctl_options idle_opt = {
	    .max_clients = 4, .idle_timeout_ms = IDLE_MS, .group = ""};
	char err[256];

	tc_setup();
	held = NULL;
	taken = NULL;
	cr_assert_eq(ctl_server_start(&tc_loop, tc_path, cmds, 5, NULL,
				      &idle_opt, &srv, err, sizeof(err)),
		     0, "%s", err);
}

TestSuite(ctlidle, .init = setup_idle, .fini = teardown, .timeout = 30);

/* Still open: nothing to read and no EOF, without blocking. */
static bool still_open(struct tc_client *c)
{
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);

	return n < 0 && errno == EAGAIN;
}

Test(ctlidle, silent_and_half_line_clients_closed)
{
	struct tc_client *silent = tc_connect(NULL), *half = tc_connect(NULL);
	json_t *r;

	tc_send_str(half, "{\"cmd\":\"ec");
	tc_pump_for(IDLE_MS / 2);
	cr_expect(still_open(silent) && still_open(half), "closed too early");
	r = tc_reply(silent);
	cr_expect_str_eq(tc_error(r), "timeout");
	json_decref(r);
	cr_expect(tc_wait_eof(silent));
	cr_expect(tc_wait_eof(half), "a half-sent request is idle too");
	tc_free(silent);
	tc_free(half);
}

/* Trickling bytes of a line never completed does not keep it open. */
Test(ctlidle, trickle_does_not_extend)
{
	struct tc_client *c = tc_connect(NULL);
	int sent = 0;

	for (; sent < 4 * IDLE_MS / 20 && still_open(c); sent++) {
		tc_send_str(c, " ");
		tc_pump_for(20);
	}
	cr_expect_lt(sent, 2 * IDLE_MS / 20, "open after %d ms of trickle",
		     sent * 20);
	tc_free(c);
}

/* Each answered request starts the timeout again. */
Test(ctlidle, active_client_kept)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	for (int i = 0; i < 6; i++) {
		tc_pump_for(IDLE_MS / 2);
		tc_send_str(c, "{\"cmd\":\"echo\"}\n");
		r = tc_reply(c);
		cr_expect(tc_is_ok(r), "request %d", i);
		json_decref(r);
	}
	tc_free(c);
}

/* A request the daemon is still answering is not the client idling. */
Test(ctlidle, pending_request_not_idle)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	tc_send_str(c, "{\"cmd\":\"later\"}\n");
	tc_pump_for(3 * IDLE_MS);
	cr_assert(held != NULL);
	cr_expect(still_open(c), "closed while its reply was pending");
	ctl_reply_ok(held, NULL);
	held = NULL;
	r = tc_reply(c);
	cr_expect(tc_is_ok(r));
	json_decref(r);
	cr_expect(tc_wait_eof(c), "idle again after the reply");
	tc_free(c);
}

/* An "open" stream (p2pctl pipe) is not a control client any more. */
Test(ctlidle, open_stream_not_timed_out)
{
	struct tc_client *c = tc_connect(NULL);
	json_t *r;

	tc_send_str(c, "{\"cmd\":\"open\"}\n");
	tc_pump_for(20);
	cr_assert(taken != NULL);
	r = tc_reply(c);
	cr_expect(tc_is_ok(r));
	json_decref(r);
	tc_pump_for(3 * IDLE_MS);
	cr_expect(still_open(c), "the stream was closed as idle");
	uv_close((uv_handle_t *)taken, on_taken_closed);
	tc_free(c);
}

/*
 * With every slot held by idle clients a newcomer is served: the client
 * idle the longest (past the grace second) gives up its slot.
 */
Test(control, full_server_evicts_longest_idle)
{
	struct tc_client *c[4], *extra;
	json_t *r;

	for (int i = 0; i < 4; i++) {
		c[i] = tc_connect(NULL);
		tc_pump_for(10);
	}
	tc_pump_for(1100);
	extra = tc_connect(NULL);
	tc_send_str(extra, "{\"cmd\":\"echo\"}\n");
	r = tc_reply(extra);
	cr_expect(tc_is_ok(r), "the newcomer is served");
	json_decref(r);
	r = tc_reply(c[0]);
	cr_expect_str_eq(tc_error(r), "timeout", "the oldest idle one goes");
	json_decref(r);
	cr_expect(tc_wait_eof(c[0]));
	for (int i = 1; i < 4; i++)
		cr_expect(still_open(c[i]), "client %d kept", i);
	tc_free(extra);
	for (int i = 0; i < 4; i++)
		tc_free(c[i]);
}
