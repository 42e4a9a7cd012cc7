/*
 * Tunnel stream state machine and window accounting (see stream.h). Pure:
 * no sockets, no allocation; time and the RTT come in (struct stream_env).
 */
#include <string.h>

#include "core/stream.h"

void stream_init_window(struct stream *s, uint32_t id, uint32_t window)
{
	if (window < STREAM_WINDOW_FLOOR)
		window = STREAM_WINDOW_FLOOR;
	if (window > STREAM_WINDOW)
		window = STREAM_WINDOW;
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->state = STREAM_OPENING;
	s->recv_avail = window;
	s->window = window;
	s->base = window;
}

void stream_init(struct stream *s, uint32_t id)
{
	stream_init_window(s, id, STREAM_WINDOW);
}

uint32_t stream_base_window(struct stream_budget *b)
{
	uint64_t w = STREAM_WINDOW;

	if (!b)
		return STREAM_WINDOW;
	if (b->used + w > b->max)
		w = b->used < b->max ? b->max - b->used : 0;
	if (w < STREAM_WINDOW_FLOOR)
		w = STREAM_WINDOW_FLOOR;
	b->used += w;
	return (uint32_t)w;
}

/* b->used less v, never below 0 (a glue's slip must not wrap it). */
static void give_back(struct stream_budget *b, uint64_t v)
{
	if (b)
		b->used -= v < b->used ? v : b->used;
}

void stream_release(struct stream *s, struct stream_budget *base,
		    struct stream_budget *grown)
{
	give_back(base, s->base);
	give_back(grown, s->window - s->base);
	s->window = s->base = 0;
}

uint32_t stream_id_make(uint32_t counter, bool we_dialled)
{
	return (counter << 1) | (we_dialled ? 1u : 0u);
}

bool stream_id_from_peer(uint32_t id, bool we_dialled)
{
	/* The peer dialled when we did not: its IDs are odd then. */
	return (id & 1u) == (we_dialled ? 0u : 1u);
}

static int fail(struct stream *s, uint8_t code)
{
	if (s->state == STREAM_DONE)
		return 0;
	s->state = STREAM_DONE;
	s->reset_code = code;
	return STREAM_ACT_SEND_RESET | STREAM_ACT_ABORT;
}

/* Both directions closed: the stream is over. */
static int maybe_done(struct stream *s)
{
	if (s->state == STREAM_OPEN && s->fin_sent && s->shut_done) {
		s->state = STREAM_DONE;
		return STREAM_ACT_CLOSE;
	}
	return 0;
}

/* Every byte before the peer's FIN is written: half-close locally. */
static int maybe_shutdown(struct stream *s)
{
	if (s->fin_recv && s->queued == 0 && !s->shut) {
		s->shut = true;
		return STREAM_ACT_SHUTDOWN;
	}
	return 0;
}

int stream_on_open(struct stream *s, uint32_t window)
{
	if (s->state != STREAM_OPENING || window > STREAM_CREDIT_MAX)
		return fail(s, STREAM_RST_PROTOCOL);
	s->state = STREAM_OPEN;
	s->send_credit = window;
	return 0;
}

size_t stream_read_budget(const struct stream *s)
{
	if (s->state != STREAM_OPEN || s->fin_sent || s->link_blocked)
		return 0;
	return s->send_credit < STREAM_CHUNK ? (size_t)s->send_credit
					     : STREAM_CHUNK;
}

int stream_on_local_read(struct stream *s, size_t len)
{
	if (len > stream_read_budget(s))
		return fail(s, STREAM_RST_ABORT); /* the glue's bug */
	s->send_credit -= len;
	s->bytes_out += len;
	return 0;
}

int stream_on_local_eof(struct stream *s)
{
	if (s->state != STREAM_OPEN || s->fin_sent)
		return 0;
	s->fin_sent = true;
	return STREAM_ACT_SEND_FIN | maybe_done(s);
}

int stream_on_local_error(struct stream *s)
{
	return fail(s, STREAM_RST_ABORT);
}

static uint64_t room(const struct stream_budget *b)
{
	if (!b)
		return UINT64_MAX;
	return b->used < b->max ? b->max - b->used : 0;
}

/*
 * An epoch of at least half a window ended at env->now_us: double the
 * window if the epoch was short (see stream.h), within STREAM_WINDOW_MAX
 * and the budgets' room. Returns the growth, charged to the budgets.
 */
static uint32_t grow(struct stream *s, const struct stream_env *env)
{
	uint64_t elapsed, add, rtt;

	if (!env || env->rtt_us == 0 || s->window >= STREAM_WINDOW_MAX)
		return 0;
	rtt = env->rtt_us > STREAM_RTT_FLOOR_US ? env->rtt_us
						: STREAM_RTT_FLOOR_US;
	elapsed = env->now_us - s->epoch_us;
	/* elapsed / rtt < GROW_RTTS * bytes / window, without division. */
	if (elapsed * s->window >= STREAM_GROW_RTTS * rtt * s->epoch_bytes)
		return 0;
	add = s->window;
	if (add > STREAM_WINDOW_MAX - s->window)
		add = STREAM_WINDOW_MAX - s->window;
	if (add > room(env->link))
		add = room(env->link);
	if (add > room(env->daemon))
		add = room(env->daemon);
	if (env->link)
		env->link->used += add;
	if (env->daemon)
		env->daemon->used += add;
	s->window += (uint32_t)add;
	return (uint32_t)add;
}

/* Credit goes back in batches: a quarter of the window consumed. */
static int return_credit(struct stream *s, const struct stream_env *env)
{
	uint64_t credit;

	if (s->consumed < s->window / STREAM_CREDIT_DIV)
		return 0;
	credit = s->consumed;
	if (env && s->epoch_us == 0) { /* the first batch starts an epoch */
		s->epoch_us = env->now_us;
		s->epoch_bytes = 0;
	} else if (env && s->epoch_bytes >= s->window / 2) {
		credit += grow(s, env);
		s->epoch_us = env->now_us;
		s->epoch_bytes = 0;
	}
	s->credit_out = (uint32_t)credit;
	s->recv_avail += credit;
	s->consumed = 0;
	return STREAM_ACT_SEND_WINDOW;
}

int stream_on_local_written(struct stream *s, size_t len,
			    const struct stream_env *env)
{
	int act = 0;

	if (s->state != STREAM_OPEN)
		return 0;
	if (len > s->queued)
		return fail(s, STREAM_RST_ABORT);
	s->queued -= len;
	s->consumed += len;
	if (s->epoch_us)
		s->epoch_bytes += len;
	/* No credit after FIN: the peer will not send again. */
	if (!s->fin_recv)
		act |= return_credit(s, env);
	return act | maybe_shutdown(s);
}

int stream_on_local_shutdown(struct stream *s)
{
	if (s->state != STREAM_OPEN)
		return 0;
	s->shut_done = true;
	return maybe_done(s);
}

int stream_on_data(struct stream *s, size_t len)
{
	if (s->state != STREAM_OPEN || s->fin_recv || len > s->recv_avail)
		return fail(s, STREAM_RST_PROTOCOL);
	s->recv_avail -= len;
	s->queued += len;
	s->bytes_in += len;
	return 0;
}

int stream_on_window(struct stream *s, uint32_t credit)
{
	if (s->state != STREAM_OPEN ||
	    s->send_credit + credit > STREAM_CREDIT_MAX)
		return fail(s, STREAM_RST_PROTOCOL);
	s->send_credit += credit;
	return 0;
}

int stream_on_fin(struct stream *s)
{
	if (s->state != STREAM_OPEN || s->fin_recv)
		return fail(s, STREAM_RST_PROTOCOL);
	s->fin_recv = true;
	return maybe_shutdown(s);
}

int stream_on_reset(struct stream *s)
{
	if (s->state == STREAM_DONE)
		return 0;
	s->state = STREAM_DONE;
	return STREAM_ACT_ABORT;
}

int stream_abort(struct stream *s, uint8_t code)
{
	return fail(s, code);
}

void stream_set_link_blocked(struct stream *s, bool blocked)
{
	s->link_blocked = blocked;
}

const char *stream_reset_error(uint8_t code)
{
	switch (code) {
	case STREAM_RST_NO_SERVICE:
		return "unknown_service";
	case STREAM_RST_DENIED:
		return "access_denied";
	case STREAM_RST_BUSY:
		return "busy";
	case STREAM_RST_TIMEOUT:
		return "timeout";
	default:
		return "peer_unreachable";
	}
}

const char *stream_reset_name(uint8_t code)
{
	switch (code) {
	case STREAM_RST_ABORT:
		return "aborted";
	case STREAM_RST_NO_SERVICE:
		return "no such service";
	case STREAM_RST_DENIED:
		return "access denied";
	case STREAM_RST_UNREACHABLE:
		return "service target unreachable";
	case STREAM_RST_PROTOCOL:
		return "protocol error";
	case STREAM_RST_BUSY:
		return "too many streams";
	case STREAM_RST_SHUTDOWN:
		return "peer shutting down";
	case STREAM_RST_TIMEOUT:
		return "timed out";
	}
	return "reset";
}

/* The core is sans-I/O: libuv must not creep in, even through a header. */
#ifdef UV_VERSION_MAJOR
#error "core/ must not include libuv"
#endif
