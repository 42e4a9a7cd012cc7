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
	cr_assert_eq(stream_on_local_written(&s, STREAM_CREDIT_BATCH - 1), 0);
	cr_assert_eq(stream_on_local_written(&s, 1), STREAM_ACT_SEND_WINDOW);
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
	cr_assert_eq(stream_on_local_written(&s, 10), 0);
	cr_assert_eq(s.state, STREAM_OPEN);
}

Test(stream, remote_fin_waits_for_queued_bytes)
{
	struct stream s = open_stream();

	cr_assert_eq(stream_on_data(&s, 100), 0);
	cr_assert_eq(stream_on_fin(&s), 0, "100 bytes still to write");
	cr_assert_eq(stream_on_local_written(&s, 60), 0);
	cr_assert_eq(stream_on_local_written(&s, 40), STREAM_ACT_SHUTDOWN);
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
	cr_assert_eq(stream_on_local_written(&s, 10), 0);

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
