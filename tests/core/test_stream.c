/*
 * The tunnel stream core (core/stream.c): window accounting, half-close
 * in each direction, resets, and the peer's protocol violations. Events
 * are fed by hand; no sockets.
 */
#include <criterion/criterion.h>

#include "core/stream.h"

static struct stream open_stream(void)
{
	struct stream s;

	stream_init(&s, 7);
	cr_assert_eq(stream_on_open(&s, STREAM_WINDOW), 0);
	return s;
}

/* The next full chunk after done bytes of one window. */
static size_t chunk(size_t done)
{
	return STREAM_WINDOW - done < STREAM_CHUNK ? STREAM_WINDOW - done
						   : STREAM_CHUNK;
}

Test(stream, ids_do_not_collide)
{
	for (uint32_t c = 1; c < 100; c++) {
		uint32_t mine = stream_id_make(c, true);
		uint32_t theirs = stream_id_make(c, false);
		cr_assert_neq(mine, theirs);
		/* The other end sees us as the peer with we_dialled false. */
		cr_assert(stream_id_from_peer(mine, false));
		cr_assert(!stream_id_from_peer(mine, true));
		cr_assert(stream_id_from_peer(theirs, true));
	}
}

Test(stream, no_reading_before_open)
{
	struct stream s;

	stream_init(&s, 1);
	cr_assert_eq(stream_read_budget(&s), 0);
	cr_assert_eq(stream_on_open(&s, 1000), 0);
	cr_assert_eq(stream_read_budget(&s), 1000);
	/* A second ACCEPT is a protocol error. */
	cr_assert_eq(stream_on_open(&s, 1000),
		     STREAM_ACT_SEND_RESET | STREAM_ACT_ABORT);
	cr_assert_eq(s.reset_code, STREAM_RST_PROTOCOL);
	cr_assert_eq(s.state, STREAM_DONE);
}

Test(stream, send_credit_runs_out_and_comes_back)
{
	struct stream s = open_stream();
	size_t sent = 0;

	while (stream_read_budget(&s) > 0) {
		size_t k = stream_read_budget(&s);
		cr_assert_leq(k, STREAM_CHUNK);
		cr_assert_eq(stream_on_local_read(&s, k), 0);
		sent += k;
	}
	cr_assert_eq(sent, STREAM_WINDOW, "stop exactly at the window");
	/* Reading more than the budget is refused. */
	cr_assert_neq(stream_on_local_read(&s, 1) & STREAM_ACT_SEND_RESET, 0);

	s = open_stream();
	for (sent = 0; sent < STREAM_WINDOW; sent += STREAM_CHUNK)
		cr_assert_eq(stream_on_local_read(&s, chunk(sent)), 0);
	cr_assert_eq(stream_read_budget(&s), 0);
	cr_assert_eq(stream_on_window(&s, 100), 0);
	cr_assert_eq(stream_read_budget(&s), 100);
}

Test(stream, link_backpressure_pauses_reading)
{
	struct stream s = open_stream();

	stream_set_link_blocked(&s, true);
	cr_assert_eq(stream_read_budget(&s), 0);
	stream_set_link_blocked(&s, false);
	cr_assert_eq(stream_read_budget(&s), STREAM_CHUNK);
}

Test(stream, credit_returned_only_for_bytes_written_locally)
{
	struct stream s = open_stream();

	/* The peer fills our whole window. */
	for (size_t got = 0; got < STREAM_WINDOW; got += STREAM_CHUNK)
		cr_assert_eq(stream_on_data(&s, chunk(got)), 0);
	cr_assert_eq(s.queued, STREAM_WINDOW);
	/* One byte more than granted: reset. */
	struct stream over = s;
	cr_assert_eq(stream_on_data(&over, 1),
		     STREAM_ACT_SEND_RESET | STREAM_ACT_ABORT);
	cr_assert_eq(over.reset_code, STREAM_RST_PROTOCOL);
	/* A stalled local reader: no credit goes back at all. */
	cr_assert_eq(s.recv_avail, 0);
	/* Small writes are batched. */
	cr_assert_eq(stream_on_local_written(&s, STREAM_CREDIT_BATCH - 1, NULL),
		     0);
	cr_assert_eq(stream_on_local_written(&s, 1, NULL),
		     STREAM_ACT_SEND_WINDOW);
	cr_assert_eq(s.credit_out, STREAM_CREDIT_BATCH);
	cr_assert_eq(s.recv_avail, STREAM_CREDIT_BATCH);
	cr_assert_eq(s.queued, STREAM_WINDOW - STREAM_CREDIT_BATCH);
	/* Never more credit out than bytes taken: buffered <= window. */
	cr_assert_leq(s.queued + s.recv_avail, STREAM_WINDOW);
}

Test(stream, local_eof_sends_fin_once_and_stops_reading)
{
	struct stream s = open_stream();

	cr_assert_eq(stream_on_local_eof(&s), STREAM_ACT_SEND_FIN);
	cr_assert_eq(stream_read_budget(&s), 0);
	cr_assert_eq(stream_on_local_eof(&s), 0);
	/* The other direction still flows. */
	cr_assert_eq(stream_on_data(&s, 10), 0);
	cr_assert_eq(stream_on_local_written(&s, 10, NULL), 0);
	cr_assert_eq(s.state, STREAM_OPEN);
}

Test(stream, remote_fin_waits_for_queued_bytes)
{
	struct stream s = open_stream();

	cr_assert_eq(stream_on_data(&s, 100), 0);
	cr_assert_eq(stream_on_fin(&s), 0, "100 bytes still to write");
	cr_assert_eq(stream_on_local_written(&s, 60, NULL), 0);
	cr_assert_eq(stream_on_local_written(&s, 40, NULL),
		     STREAM_ACT_SHUTDOWN);
	/* Data after FIN is a protocol error. */
	struct stream after = s;
	cr_assert_neq(stream_on_data(&after, 1) & STREAM_ACT_SEND_RESET, 0);
	/* We can still send after the peer's FIN (half-close). */
	cr_assert_gt(stream_read_budget(&s), 0);
	cr_assert_eq(stream_on_local_shutdown(&s), 0);
	cr_assert_eq(s.state, STREAM_OPEN);
	cr_assert_eq(stream_on_local_eof(&s),
		     STREAM_ACT_SEND_FIN | STREAM_ACT_CLOSE);
	cr_assert_eq(s.state, STREAM_DONE);
}

Test(stream, fin_with_nothing_queued_shuts_down_at_once)
{
	struct stream s = open_stream();

	cr_assert_eq(stream_on_local_eof(&s), STREAM_ACT_SEND_FIN);
	cr_assert_eq(stream_on_fin(&s), STREAM_ACT_SHUTDOWN);
	cr_assert_eq(stream_on_fin(&s) & STREAM_ACT_SEND_RESET,
		     STREAM_ACT_SEND_RESET, "a second FIN is an error");

	s = open_stream();
	cr_assert_eq(stream_on_local_eof(&s), STREAM_ACT_SEND_FIN);
	cr_assert_eq(stream_on_fin(&s), STREAM_ACT_SHUTDOWN);
	cr_assert_eq(stream_on_local_shutdown(&s), STREAM_ACT_CLOSE);
}

Test(stream, resets)
{
	struct stream s = open_stream();

	cr_assert_eq(stream_on_reset(&s), STREAM_ACT_ABORT);
	cr_assert_eq(s.state, STREAM_DONE);
	cr_assert_eq(stream_on_reset(&s), 0, "once");
	cr_assert_eq(stream_abort(&s, STREAM_RST_ABORT), 0, "already gone");

	s = open_stream();
	cr_assert_eq(stream_on_local_error(&s),
		     STREAM_ACT_SEND_RESET | STREAM_ACT_ABORT);
	cr_assert_eq(s.reset_code, STREAM_RST_ABORT);
	/* Nothing more comes out of a reset stream. */
	cr_assert_eq(stream_read_budget(&s), 0);
	cr_assert_eq(stream_on_local_written(&s, 10, NULL), 0);

	s = open_stream();
	cr_assert_eq(stream_abort(&s, STREAM_RST_TIMEOUT),
		     STREAM_ACT_SEND_RESET | STREAM_ACT_ABORT);
	cr_assert_eq(s.reset_code, STREAM_RST_TIMEOUT);
}

Test(stream, window_overflow_is_a_peer_error)
{
	struct stream s = open_stream();

	cr_assert_neq(
	    stream_on_window(&s, STREAM_CREDIT_MAX) & STREAM_ACT_SEND_RESET, 0);
	s = open_stream();
	struct stream opening;
	stream_init(&opening, 3);
	cr_assert_neq(stream_on_window(&opening, 10) & STREAM_ACT_SEND_RESET, 0,
		      "WINDOW before ACCEPT");
	stream_init(&opening, 5);
	cr_assert_neq(stream_on_open(&opening, STREAM_CREDIT_MAX + 1) &
			  STREAM_ACT_SEND_RESET,
		      0);
}

Test(stream, reset_codes_map_to_control_errors)
{
	cr_assert_str_eq(stream_reset_error(STREAM_RST_NO_SERVICE),
			 "unknown_service");
	cr_assert_str_eq(stream_reset_error(STREAM_RST_DENIED),
			 "access_denied");
	cr_assert_str_eq(stream_reset_error(STREAM_RST_UNREACHABLE),
			 "peer_unreachable");
	cr_assert_str_eq(stream_reset_error(STREAM_RST_TIMEOUT), "timeout");
	cr_assert_str_eq(stream_reset_error(99), "peer_unreachable");
}

/* ---- window auto-tuning, with fake time ---- */

#define MS 1000u /* fake time is in microseconds */

/*
 * One round trip: the sender spends all the credit it holds (it got
 * every batch we returned one RTT ago), the reader takes each chunk gap
 * after the last, then the next batch of credit needs an RTT. Returns
 * the SEND_WINDOW actions; checks that credit never exceeds the window.
 */
static unsigned round_trip(struct stream *s, uint64_t *now, uint64_t rtt,
			   uint64_t gap, struct stream_budget *link,
			   struct stream_budget *daemon)
{
	struct stream_env env = {.rtt_us = rtt, .link = link, .daemon = daemon};
	uint64_t credit = s->recv_avail;
	unsigned acts = 0;

	while (credit > 0) {
		size_t k =
		    credit < STREAM_CHUNK ? (size_t)credit : STREAM_CHUNK;
		int act;

		cr_assert_eq(stream_on_data(s, k), 0);
		*now += gap;
		env.now_us = *now;
		act = stream_on_local_written(s, k, &env);
		cr_assert_eq(act & ~STREAM_ACT_SEND_WINDOW, 0);
		acts += act != 0;
		credit -= k;
		/* What the peer may send plus what we hold is the window. */
		cr_assert_eq(s->recv_avail + s->queued + s->consumed,
			     s->window);
		cr_assert_leq(s->window, STREAM_WINDOW_MAX);
	}
	*now += rtt;
	return acts;
}

Test(stream, window_grows_for_a_fast_reader_at_high_rtt)
{
	struct stream s = open_stream();
	uint64_t now = 1000 * MS;
	uint32_t last = s.window;
	int rounds = 0;

	/* 100 ms RTT, a reader taking 60 KiB every 100 us (600 MB/s): the
	 * window is the limit; it doubles about once per round trip, like
	 * slow start, until STREAM_WINDOW_MAX, and stays there. */
	while (s.window < STREAM_WINDOW_MAX && rounds < 20) {
		round_trip(&s, &now, 100 * MS, 100, NULL, NULL);
		cr_assert_geq(s.window, last, "never shrinks");
		cr_assert_leq(s.window, 4 * last,
			      "at most two doublings a round");
		last = s.window;
		rounds++;
	}
	cr_assert_eq(s.window, STREAM_WINDOW_MAX, "reached the cap");
	cr_assert_leq(rounds, 8, "in %d round trips", rounds);
	for (int i = 0; i < 5; i++)
		round_trip(&s, &now, 100 * MS, 100, NULL, NULL);
	cr_assert_eq(s.window, STREAM_WINDOW_MAX, "and no further");
	cr_assert_leq(s.window, STREAM_CREDIT_MAX, "old peers accept it");
}

Test(stream, window_stays_for_a_slow_reader)
{
	struct stream s = open_stream();
	uint64_t now = 1000 * MS;

	/* 50 ms RTT, a reader taking 60 KiB every 100 ms (600 KB/s, a BDP
	 * of 30 KB): half a window takes 200 ms, far over one RTT. */
	for (int i = 0; i < 10; i++)
		round_trip(&s, &now, 50 * MS, 100 * MS, NULL, NULL);
	cr_assert_eq(s.window, STREAM_WINDOW);
	/* A stalled reader: no credit, no growth, at most the window. */
	while (s.recv_avail > 0) {
		size_t k = s.recv_avail < STREAM_CHUNK ? (size_t)s.recv_avail
						       : STREAM_CHUNK;
		cr_assert_eq(stream_on_data(&s, k), 0);
	}
	cr_assert_eq(s.queued + s.consumed, STREAM_WINDOW);
	cr_assert_eq(s.window, STREAM_WINDOW);
}

Test(stream, fast_path_window_covers_the_rtt_floor)
{
	struct stream s = open_stream();
	uint64_t now = 1000 * MS;
	/* What a reader taking 60 KiB every 100 us (614 MB/s) takes in
	 * STREAM_RTT_FLOOR_US. */
	uint64_t floor_bytes =
	    (uint64_t)STREAM_CHUNK * STREAM_RTT_FLOOR_US / 100;
	uint32_t settled;

	/* Loopback-like: 50 us RTT. Measured, the reader would set the pace
	 * at 256 KiB (BDP 30 KB); but the credit loop also waits for the
	 * processes on it to be scheduled, so the window grows until it
	 * covers the floor (2 floors' share, doubling steps), and stops. */
	for (int i = 0; i < 20; i++)
		round_trip(&s, &now, 50, 100, NULL, NULL);
	cr_assert_gt(s.window, STREAM_WINDOW, "window %u", s.window);
	cr_assert_geq(s.window, 2 * floor_bytes, "window %u", s.window);
	cr_assert_leq(s.window, 4 * floor_bytes, "window %u", s.window);
	settled = s.window;
	for (int i = 0; i < 10; i++)
		round_trip(&s, &now, 50, 100, NULL, NULL);
	cr_assert_eq(s.window, settled, "and no further");
}

Test(stream, no_growth_on_a_fast_path_for_a_slow_reader_or_without_rtt)
{
	struct stream s = open_stream();
	uint64_t now = 1000 * MS;

	/* 50 us RTT, a reader taking 60 KiB every 10 ms (6 MB/s): half a
	 * window takes 20 ms, over the floor too. */
	for (int i = 0; i < 10; i++)
		round_trip(&s, &now, 50, 10 * MS, NULL, NULL);
	cr_assert_eq(s.window, STREAM_WINDOW);
	/* No RTT measured yet: no growth however fast. */
	s = open_stream();
	for (int i = 0; i < 10; i++)
		round_trip(&s, &now, 0, 1, NULL, NULL);
	cr_assert_eq(s.window, STREAM_WINDOW);
}

Test(stream, window_settles_near_the_bandwidth_delay_product)
{
	struct stream s = open_stream();
	uint64_t now = 1000 * MS, bdp;

	/* 50 ms RTT, 60 KiB per ms (60 MiB/s): BDP 3 MiB. The window grows
	 * past it and stops within 4x (2 RTTs' share, doubling steps). */
	bdp = 50 * STREAM_CHUNK;
	for (int i = 0; i < 30; i++)
		round_trip(&s, &now, 50 * MS, 1 * MS, NULL, NULL);
	cr_assert_geq(s.window, bdp, "window %u", s.window);
	cr_assert_leq(s.window, 4 * bdp, "window %u", s.window);
}

Test(stream, credit_is_batched_by_a_quarter_of_the_window)
{
	struct stream s = open_stream();
	uint64_t now = 1000 * MS;
	uint64_t before;
	unsigned acts = 0;

	/* 256 KiB window: at most one credit message per 64 KiB taken. */
	acts = round_trip(&s, &now, 100 * MS, 100 * MS, NULL, NULL);
	cr_assert_leq(acts, s.bytes_in / STREAM_CREDIT_BATCH);
	cr_assert_gt(acts, 0);
	while (s.window < STREAM_WINDOW_MAX)
		round_trip(&s, &now, 100 * MS, 100, NULL, NULL);
	/* 16 MiB window: one per 4 MiB (a fixed 64 KiB batch: 64 of them). */
	before = s.bytes_in;
	acts = 0;
	for (int i = 0; i < 4; i++)
		acts += round_trip(&s, &now, 100 * MS, 100, NULL, NULL);
	cr_assert_leq(acts, (s.bytes_in - before) / (STREAM_WINDOW_MAX / 4),
		      "%u credit messages", acts);
	cr_assert_gt(acts, 0);
}

Test(stream, growth_is_charged_to_budgets_and_refused_without_room)
{
	struct stream s = open_stream(), t;
	struct stream_budget link = {.max = STREAM_BUDGET_LINK};
	struct stream_budget daemon = {.max = 3 * STREAM_WINDOW};
	uint64_t now = 1000 * MS;

	/* The daemon's budget has room for 3 x 256 KiB of growth: the
	 * window goes 256K -> 512K -> 1M and stops there. */
	for (int i = 0; i < 10; i++)
		round_trip(&s, &now, 100 * MS, 100, &link, &daemon);
	cr_assert_eq(s.window, 4 * STREAM_WINDOW);
	cr_assert_eq(daemon.used, 3 * STREAM_WINDOW);
	cr_assert_eq(link.used, 3 * STREAM_WINDOW);
	/* A second fast stream finds the daemon's budget spent. */
	t = open_stream();
	for (int i = 0; i < 10; i++)
		round_trip(&t, &now, 100 * MS, 100, &link, &daemon);
	cr_assert_eq(t.window, STREAM_WINDOW, "refused: no room");
	/* Room in the daemon, none in the link: refused too. */
	struct stream_budget full = {.used = 5, .max = 5};
	struct stream_budget lots = {.max = STREAM_BUDGET_DAEMON};
	t = open_stream();
	for (int i = 0; i < 10; i++)
		round_trip(&t, &now, 100 * MS, 100, &full, &lots);
	cr_assert_eq(t.window, STREAM_WINDOW);
	cr_assert_eq(lots.used, 0, "nothing charged");
	/* Partial room: the window takes what there is. */
	struct stream_budget some = {.max = 100000};
	t = open_stream();
	for (int i = 0; i < 10; i++)
		round_trip(&t, &now, 100 * MS, 100, &some, NULL);
	cr_assert_eq(t.window, STREAM_WINDOW + 100000);
	cr_assert_eq(some.used, 100000);
}

Test(stream, relayed_link_windows_stay_under_the_relay_queue)
{
	/* The glue counts a relayed link's whole windows against
	 * STREAM_RELAY_WINDOWS (1 MiB): one stream alone grows to exactly
	 * that, far under RELAY_WQ_MAX (2 MiB) where a relay cuts. */
	struct stream s = open_stream(), t;
	struct stream_budget relayed = {.used = STREAM_WINDOW,
					.max = STREAM_RELAY_WINDOWS};
	uint64_t now = 1000 * MS;

	for (int i = 0; i < 20; i++)
		round_trip(&s, &now, 100 * MS, 100, &relayed, NULL);
	cr_assert_eq(s.window, STREAM_RELAY_WINDOWS);
	cr_assert_eq(relayed.used, STREAM_RELAY_WINDOWS);
	/* Four base windows already fill it: nothing grows. */
	relayed.used = 4 * STREAM_WINDOW;
	t = open_stream();
	for (int i = 0; i < 20; i++)
		round_trip(&t, &now, 100 * MS, 100, &relayed, NULL);
	cr_assert_eq(t.window, STREAM_WINDOW);
}

/* ---- base windows (issue 10): what peers' streams announce ---- */

Test(stream, base_windows_are_full_while_the_budget_has_room_then_floor)
{
	struct stream_budget b = {.max = STREAM_BUDGET_BASE};
	uint32_t full = STREAM_BUDGET_BASE / STREAM_WINDOW;

	for (uint32_t i = 0; i < full; i++)
		cr_assert_eq(stream_base_window(&b), STREAM_WINDOW, "#%u", i);
	cr_assert_eq(b.used, STREAM_BUDGET_BASE);
	/* Spent: every further stream gets the floor, still charged. */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(stream_base_window(&b), STREAM_WINDOW_FLOOR);
	cr_assert_eq(b.used, STREAM_BUDGET_BASE + 3 * STREAM_WINDOW_FLOOR);
	/* No budget (streams we open): always a full window. */
	cr_assert_eq(stream_base_window(NULL), STREAM_WINDOW);
}

Test(stream, base_window_takes_the_room_left_but_not_under_the_floor)
{
	struct stream_budget b = {.max = STREAM_WINDOW + 100000};
	struct stream_budget c = {.max = STREAM_WINDOW + 1000};

	cr_assert_eq(stream_base_window(&b), STREAM_WINDOW);
	cr_assert_eq(stream_base_window(&b), 100000, "what room is left");
	cr_assert_eq(b.used, b.max);
	cr_assert_eq(stream_base_window(&b), STREAM_WINDOW_FLOOR);
	/* Room under the floor: the floor. */
	cr_assert_eq(stream_base_window(&c), STREAM_WINDOW);
	cr_assert_eq(stream_base_window(&c), STREAM_WINDOW_FLOOR);
}

Test(stream, base_windows_of_all_peer_streams_stay_within_the_stated_bound)
{
	/* 768 streams (TUN_MAX - TUN_LOCAL_RESERVE), some closing and
	 * others opening in between: the live base windows never add up to
	 * more than STREAM_BUDGET_BASE + FLOOR x (768 - 64), the figure
	 * core/stream.h states (60 MiB; 192 MiB at 256 KiB each). */
	enum { N = 768 };
	static struct stream s[N];
	struct stream_budget b = {.max = STREAM_BUDGET_BASE};
	uint64_t bound =
	    STREAM_BUDGET_BASE + (uint64_t)STREAM_WINDOW_FLOOR *
				     (N - STREAM_BUDGET_BASE / STREAM_WINDOW);
	uint64_t sum = 0;

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			stream_init_window(&s[i], (uint32_t)i,
					   stream_base_window(&b));
		sum = 0;
		for (int i = 0; i < N; i++)
			sum += s[i].window;
		cr_assert_eq(sum, b.used, "the budget counts them all");
		cr_assert_leq(sum, bound, "%llu over %llu",
			      (unsigned long long)sum,
			      (unsigned long long)bound);
		/* Every other one closes (odd ones early, others late). */
		for (int i = round % 2; i < N; i += 2)
			stream_release(&s[i], &b, NULL);
		for (int i = 1 - round % 2; i < N; i += 2)
			stream_release(&s[i], &b, NULL);
		cr_assert_eq(b.used, 0, "all of it came back");
	}
	cr_assert_eq(sum, bound, "the bound is reached, not loose");
}

Test(stream, init_window_keeps_within_floor_and_full)
{
	struct stream s;

	stream_init_window(&s, 3, 1);
	cr_assert_eq(s.window, STREAM_WINDOW_FLOOR);
	cr_assert_eq(s.recv_avail, STREAM_WINDOW_FLOOR);
	stream_init_window(&s, 3, 10 * STREAM_WINDOW);
	cr_assert_eq(s.window, STREAM_WINDOW);
	stream_init(&s, 3);
	cr_assert_eq(s.window, STREAM_WINDOW);
	cr_assert_eq(s.base, STREAM_WINDOW);
}

Test(stream, floor_window_holds_the_peer_to_it_and_grows_when_fast)
{
	struct stream s;
	struct stream_budget base = {.used = STREAM_BUDGET_BASE,
				     .max = STREAM_BUDGET_BASE};
	struct stream_budget daemon = {.max = STREAM_BUDGET_DAEMON};
	uint64_t now = 1000 * MS;
	uint32_t w = stream_base_window(&base);

	stream_init_window(&s, 9, w);
	cr_assert_eq(stream_on_open(&s, STREAM_WINDOW), 0);
	cr_assert_eq(s.window, STREAM_WINDOW_FLOOR);
	/* A stalled reader: the peer may send the floor and not a byte
	 * more. */
	cr_assert_eq(stream_on_data(&s, STREAM_WINDOW_FLOOR), 0);
	cr_assert_eq(stream_on_data(&s, 1),
		     STREAM_ACT_SEND_RESET | STREAM_ACT_ABORT);
	cr_assert_eq(s.reset_code, STREAM_RST_PROTOCOL);

	/* A fast reader at 100 ms RTT: it grows past a full window, the
	 * growth above its base charged to the growth budget. */
	stream_init_window(&s, 11, w);
	cr_assert_eq(stream_on_open(&s, STREAM_WINDOW), 0);
	for (int i = 0; i < 6; i++)
		round_trip(&s, &now, 100 * MS, 100, NULL, &daemon);
	cr_assert_gt(s.window, STREAM_WINDOW, "window %u", s.window);
	cr_assert_eq(daemon.used, s.window - STREAM_WINDOW_FLOOR);
	/* Gone: its base and its growth both come back, once. */
	stream_release(&s, &base, &daemon);
	cr_assert_eq(base.used, STREAM_BUDGET_BASE);
	cr_assert_eq(daemon.used, 0);
	stream_release(&s, &base, &daemon);
	cr_assert_eq(base.used, STREAM_BUDGET_BASE);
}
