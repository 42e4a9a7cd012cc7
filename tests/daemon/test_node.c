/*
 * The hub (daemon/node.c): the clocks' minimum and expiry, the after-input
 * pass, the registries' limits, message and app dispatch, the order of
 * link observers, and the close of its handles. A real libuv loop, no
 * sockets, no links: struct link pointers are opaque tokens here.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/node.h"

static uv_loop_t LOOP;
static struct p2pd_node *N;
static struct p2pd_config *CFG;

static void setup(void)
{
	struct p2p_identity ident;

	memset(&ident, 0, sizeof(ident));
	cr_assert_eq(uv_loop_init(&LOOP), 0);
	N = calloc(1, sizeof(*N));
	CFG = calloc(1, sizeof(*CFG));
	cr_assert(N && CFG);
	cr_assert_eq(node_init(N, &LOOP, CFG, &ident), 0);
}

static bool closed;

static void on_closed(void *arg)
{
	cr_assert_eq(arg, N);
	closed = true;
}

static void teardown(void)
{
	closed = false;
	node_close(N, on_closed, N);
	cr_assert_eq(uv_run(&LOOP, UV_RUN_DEFAULT), 0);
	cr_assert(closed, "done once the hub's handles are closed");
	cr_assert_eq(uv_loop_close(&LOOP), 0);
	free(N->services);
	free(N);
	free(CFG);
}

TestSuite(node, .init = setup, .fini = teardown);

Test(node, init_fills_default_limits)
{
	cr_assert_eq(N->limits.max_links, NODE_DEF_MAX_LINKS);
	cr_assert_eq(N->limits.handshake_timeout_ms, NODE_DEF_HANDSHAKE_MS);
	cr_assert_eq(N->limits.keepalive_ms, NODE_DEF_KEEPALIVE_MS);
	cr_assert_eq(N->limits.idle_timeout_ms, NODE_DEF_IDLE_MS);
	cr_assert_eq(N->open_handles, 2);
	cr_assert_eq(N->timer_at, UINT64_MAX);
}

/* ---- clocks ---- */

struct clk {
	uint64_t at;	/* next() */
	unsigned fired; /* expire() calls */
	uint64_t now;	/* the last expire's now */
};

static uint64_t clk_next(void *arg)
{
	return ((struct clk *)arg)->at;
}

static void clk_expire(void *arg, uint64_t now)
{
	struct clk *c = arg;

	c->fired++;
	c->now = now;
	c->at = UINT64_MAX; /* done until re-armed */
}

Test(node, next_deadline_is_the_minimum)
{
	struct clk a = {.at = 500}, b = {.at = 200}, c = {.at = UINT64_MAX};

	cr_assert_eq(node_next_deadline(N), UINT64_MAX, "no clocks");
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &c), 0);
	cr_assert_eq(node_next_deadline(N), UINT64_MAX, "none armed");
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &a), 0);
	cr_assert_eq(node_next_deadline(N), 500);
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &b), 0);
	cr_assert_eq(node_next_deadline(N), 200);
	b.at = 800;
	cr_assert_eq(node_next_deadline(N), 500, "next() is asked each time");
	b.at = 0;
	cr_assert_eq(node_next_deadline(N), 0);
}

Test(node, expire_runs_only_due_clocks)
{
	struct clk a = {.at = 500}, b = {.at = 200}, c = {.at = UINT64_MAX};
	struct clk d = {.at = 300};

	cr_assert_eq(node_clock(N, clk_next, clk_expire, &a), 0);
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &b), 0);
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &c), 0);
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &d), 0);
	node_expire(N, 199);
	cr_assert_eq(a.fired + b.fired + c.fired + d.fired, 0);
	/* At the deadline exactly: due. */
	node_expire(N, 300);
	cr_assert_eq(b.fired, 1);
	cr_assert_eq(b.now, 300);
	cr_assert_eq(d.fired, 1);
	cr_assert_eq(a.fired, 0);
	cr_assert_eq(c.fired, 0);
	cr_assert_eq(node_next_deadline(N), 500);
	node_expire(N, 10000);
	cr_assert_eq(a.fired, 1);
	cr_assert_eq(b.fired, 1, "expired clocks are not run again");
	cr_assert_eq(c.fired, 0, "UINT64_MAX never fires");
	cr_assert_eq(node_next_deadline(N), UINT64_MAX);
}

Test(node, settle_arms_the_timer_and_the_loop_fires_it)
{
	struct clk a = {.at = UINT64_MAX};

	cr_assert_eq(node_clock(N, clk_next, clk_expire, &a), 0);
	node_settle(N);
	cr_assert_eq(N->timer_at, UINT64_MAX);
	cr_assert_not(uv_is_active((uv_handle_t *)&N->timer));
	a.at = node_now(N) + 5;
	node_settle(N);
	cr_assert_eq(N->timer_at, a.at);
	cr_assert(uv_is_active((uv_handle_t *)&N->timer));
	/* The loop runs until the timer fired (nothing else keeps it). */
	uv_run(&LOOP, UV_RUN_DEFAULT);
	cr_assert_eq(a.fired, 1);
	cr_assert_geq(a.now, node_now(N) - 1000);
	cr_assert_eq(N->timer_at, UINT64_MAX);
}

/* ---- the after-input pass ---- */

struct hook {
	unsigned left;	   /* reports work this many more times */
	unsigned calls;	   /* calls in all */
	struct hook *wake; /* gives it work once, at the first call */
	unsigned order[16];
};

static unsigned seq;

static bool hook_fn(void *arg)
{
	struct hook *h = arg;

	h->order[h->calls++ % 16] = ++seq;
	node_settle(N); /* re-entered: a no-op */
	if (h->wake) {
		/* Work done here that gives an earlier hook work. */
		h->wake->left++;
		h->wake = NULL;
		return true;
	}
	if (!h->left)
		return false;
	h->left--;
	return true;
}

Test(node, settle_repeats_until_no_hook_works)
{
	struct hook a = {.left = 0}, b = {.left = 3};

	cr_assert_eq(node_after(N, hook_fn, &a), 0);
	cr_assert_eq(node_after(N, hook_fn, &b), 0);
	seq = 0;
	node_settle(N);
	/* b works three times: four passes, the last one idle, a first in
	 * each. */
	cr_assert_eq(a.calls, 4);
	cr_assert_eq(b.calls, 4);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_eq(a.order[i], 2 * i + 1);
		cr_assert_eq(b.order[i], 2 * i + 2);
	}
	cr_assert_not(N->in_after);
	/* Nothing to do: one pass. */
	node_settle(N);
	cr_assert_eq(a.calls, 5);
	cr_assert_eq(b.calls, 5);
}

Test(node, work_for_an_earlier_hook_gets_another_pass)
{
	struct hook a = {.left = 0}, b = {.left = 0};

	/* b, second, gives a work (and says it worked): a runs again in
	 * another pass. */
	b.wake = &a;
	cr_assert_eq(node_after(N, hook_fn, &a), 0);
	cr_assert_eq(node_after(N, hook_fn, &b), 0);
	node_settle(N);
	cr_assert_eq(a.calls, 3, "passes: a idle, a works, a idle");
	cr_assert_eq(b.calls, 3);
	cr_assert_eq(a.left, 0);
}

/* ---- registries ---- */

static void msg_fn(void *arg, struct link *l, const struct p2p_msg *m)
{
}

static void msg_fn2(void *arg, struct link *l, const struct p2p_msg *m)
{
}

static bool after_idle(void *arg)
{
	return false;
}

static const struct node_link_hooks no_hooks;

Test(node, registries_have_limits)
{
	struct clk c = {.at = UINT64_MAX};
	int x;

	for (int i = 0; i < NODE_CLOCKS_MAX; i++)
		cr_assert_eq(node_clock(N, clk_next, clk_expire, &c), 0);
	cr_assert_eq(node_clock(N, clk_next, clk_expire, &c), -ENOSPC);
	cr_assert_eq(N->nclocks, NODE_CLOCKS_MAX);
	for (int i = 0; i < NODE_AFTER_MAX; i++)
		cr_assert_eq(node_after(N, after_idle, NULL), 0);
	cr_assert_eq(node_after(N, after_idle, NULL), -ENOSPC);
	for (int i = 0; i < NODE_APPS_MAX; i++)
		cr_assert_eq(node_on_app(N, (uint8_t)i, NULL, NULL, NULL), 0);
	cr_assert_eq(node_on_app(N, 99, NULL, NULL, NULL), -ENOSPC);
	for (int i = 0; i < NODE_OBSERVERS_MAX; i++)
		cr_assert_eq(node_observe_links(N, &no_hooks, NULL), 0);
	cr_assert_eq(node_observe_links(N, &no_hooks, NULL), -ENOSPC);
	/* One handler per message type. */
	cr_assert_eq(node_on_msg(N, P2P_MSG_RELAY_OPEN, 0, msg_fn, &x), 0);
	cr_assert_eq(node_on_msg(N, P2P_MSG_RELAY_OPEN, 0, msg_fn2, &x),
		     -EEXIST);
	cr_assert_eq(node_on_msg(N, 255, 0, msg_fn2, &x), 0);
	cr_assert_eq(node_on_msg(N, 0, 0, msg_fn2, &x), 0);
}

Test(node, message_handlers_by_type_with_flags)
{
	const struct node_msg_handler *h;
	int x, y;

	cr_assert_null(node_msg_handler(N, P2P_MSG_HELLO));
	cr_assert_eq(
	    node_on_msg(N, P2P_MSG_HELLO, NODE_MSG_BEFORE_HELLO, msg_fn, &x),
	    0);
	cr_assert_eq(node_on_msg(N, P2P_MSG_RELAY_DATA, NODE_MSG_ON_RELAYED,
				 msg_fn2, &y),
		     0);
	h = node_msg_handler(N, P2P_MSG_HELLO);
	cr_assert_not_null(h);
	cr_assert_eq(h->fn, msg_fn);
	cr_assert_eq(h->arg, &x);
	cr_assert_eq(h->flags, NODE_MSG_BEFORE_HELLO);
	h = node_msg_handler(N, P2P_MSG_RELAY_DATA);
	cr_assert_eq(h->fn, msg_fn2);
	cr_assert_eq(h->arg, &y);
	cr_assert_eq(h->flags, NODE_MSG_ON_RELAYED);
	cr_assert_null(node_msg_handler(N, P2P_MSG_RELAY_CLOSE));
}

/* ---- overlay apps ---- */

static unsigned delivered[2], failed[2];
static uint64_t failed_id;

static void app_deliver(void *arg, const struct p2p_ov_action *a)
{
	delivered[*(int *)arg]++;
}

static void app_failed(void *arg, uint64_t msgid)
{
	failed[*(int *)arg]++;
	failed_id = msgid;
}

Test(node, apps_are_dispatched_by_number)
{
	static int zero = 0, one = 1;
	struct p2p_ov_action a;

	memset(&a, 0, sizeof(a));
	memset(delivered, 0, sizeof(delivered));
	memset(failed, 0, sizeof(failed));
	a.app = 7;
	cr_assert_not(node_app_deliver(N, &a), "no app 7 yet");
	cr_assert_eq(node_on_app(N, 7, app_deliver, app_failed, &zero), 0);
	cr_assert_eq(node_on_app(N, 9, app_deliver, NULL, &one), 0);
	cr_assert_eq(node_on_app(N, 11, NULL, app_failed, &one), 0);
	cr_assert(node_app_deliver(N, &a));
	cr_assert_eq(delivered[0], 1);
	cr_assert_eq(delivered[1], 0);
	a.app = 9;
	cr_assert(node_app_deliver(N, &a));
	cr_assert_eq(delivered[1], 1);
	a.app = 11;
	cr_assert_not(node_app_deliver(N, &a), "app 11 takes no delivery");
	a.app = 8;
	cr_assert_not(node_app_deliver(N, &a));
	cr_assert(node_app_failed(N, 7, 42));
	cr_assert_eq(failed[0], 1);
	cr_assert_eq(failed_id, 42);
	cr_assert_not(node_app_failed(N, 9, 43), "app 9 has no failed");
	cr_assert(node_app_failed(N, 11, 44));
	cr_assert_eq(failed[1], 1);
	cr_assert_eq(failed_id, 44);
	cr_assert_not(node_app_failed(N, 8, 45));
}

/* ---- link observers ---- */

static char trace[64];
static size_t ntrace;
static struct link *seen_link;

static void note(void *arg, struct link *l, char what)
{
	cr_assert_lt(ntrace + 2, sizeof(trace));
	seen_link = l;
	trace[ntrace++] = *(const char *)arg;
	trace[ntrace++] = what;
	trace[ntrace] = 0;
}

static void ob_connected(void *arg, struct link *l)
{
	note(arg, l, 'c');
}

static void ob_established(void *arg, struct link *l)
{
	note(arg, l, 'e');
}

static void ob_up(void *arg, struct link *l, bool first)
{
	note(arg, l, first ? 'U' : 'u');
}

static void ob_gone(void *arg, struct link *l, const char *why)
{
	cr_assert_str_eq(why, "test");
	note(arg, l, 'g');
}

static void ob_writable(void *arg, struct link *l)
{
	note(arg, l, 'w');
}

static const struct node_link_hooks all_hooks = {
    .connected = ob_connected,
    .established = ob_established,
    .up = ob_up,
    .gone = ob_gone,
    .writable = ob_writable,
};

static const struct node_link_hooks gone_only = {.gone = ob_gone};

Test(node, observers_in_registration_order)
{
	static char fake_link;
	struct link *l = (struct link *)&fake_link;

	ntrace = 0;
	trace[0] = 0;
	cr_assert_eq(node_observe_links(N, &all_hooks, "A"), 0);
	cr_assert_eq(node_observe_links(N, &gone_only, "B"), 0);
	cr_assert_eq(node_observe_links(N, &all_hooks, "C"), 0);
	node_emit_connected(N, l);
	node_emit_established(N, l);
	node_emit_up(N, l, true);
	node_emit_up(N, l, false);
	node_emit_writable(N, l);
	node_emit_gone(N, l, "test");
	cr_assert_str_eq(trace, "AcCcAeCeAUCUAuCuAwCwAgBgCg");
	cr_assert_eq(seen_link, l);
}

/* ---- hello, helpers ---- */

static void fill_hello(void *arg, const struct link *l, struct p2p_msg *m)
{
	cr_assert_eq(m->type, P2P_MSG_HELLO);
	m->u.hello.flags = 1;
	(*(int *)arg)++;
}

Test(node, hello_is_filled_by_its_hook)
{
	struct p2p_msg m;
	int calls = 0;

	memset(&m, 0xff, sizeof(m));
	node_fill_hello(N, NULL, &m);
	cr_assert_eq(m.type, P2P_MSG_HELLO);
	cr_assert_eq(m.u.hello.flags, 0, "zeroed without a hook");
	node_set_hello(N, fill_hello, &calls);
	node_fill_hello(N, NULL, &m);
	cr_assert_eq(calls, 1);
	cr_assert_eq(m.u.hello.flags, 1);
}

Test(node, listen_port_by_family)
{
	cr_assert_eq(node_listen_port(N, 4), 0);
	N->nlisten = 2;
	N->listeners[0].addr.family = 6;
	N->listeners[0].addr.port = 4001;
	N->listeners[1].addr.family = 4;
	N->listeners[1].addr.port = 4002;
	cr_assert_eq(node_listen_port(N, 4), 4002);
	cr_assert_eq(node_listen_port(N, 6), 4001);
	N->nlisten = 0;
}

Test(node, bad_input_is_logged_once_per_address_and_interval)
{
	struct p2p_addr a = {.family = 4, .port = 1};

	a.ip[3] = 1;
	cr_assert(node_bad_input_log(N, &a), "the first line");
	cr_assert_not(node_bad_input_log(N, &a), "the same IP: quiet");
	a.port = 2;
	cr_assert_not(node_bad_input_log(N, &a), "another port: the same IP");
	/* Its slot's stamp is one interval old: a line again. */
	for (size_t i = 0; i < NODE_BADLOG_SLOTS; i++)
		if (N->badlog[i])
			N->badlog[i] -= NODE_BADLOG_MS;
	cr_assert(node_bad_input_log(N, &a));
}

Test(node, handles_counted_until_close)
{
	node_handle_opened(N);
	cr_assert_eq(N->open_handles, 3);
	node_handle_closed(N);
	cr_assert_eq(N->open_handles, 2);
}
