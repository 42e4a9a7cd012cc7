/*
 * One tunnel stream's state machine and flow control, without I/O: the
 * daemon's glue (tunnel.c) reports events (bytes read from or written to
 * the local socket, STREAM_* messages from the peer) and carries out the
 * actions each event returns (a bit set of STREAM_ACT_*). Whether the
 * local socket should be read is asked with stream_read_budget(), so the
 * glue never needs a "start/stop reading" action of its own.
 *
 * Flow control is credit based, per stream and per direction. Each side
 * grants the other a window at OPEN/ACCEPT (STREAM_WINDOW, or less under
 * the base budget below; a sender takes whatever it is granted, as every
 * version has done); the sender spends credit as it sends DATA and stops
 * reading its local socket at zero; the receiver returns credit
 * (STREAM_WINDOW messages) only for bytes its local socket has taken, so
 * a stalled reader holds at most its window in the receiving daemon and
 * stalls only its own stream. Credit goes back in batches of a quarter
 * of the window (one message per quarter, not one per record).
 *
 * Window auto-tuning (as quic-go and go-yamux do it): a fixed window caps
 * a stream at one window per round trip (256 KiB at 50 ms: 42 Mbit/s).
 * The receiver times epochs of at least half a window of consumed bytes;
 * when an epoch went by in less than STREAM_GROW_RTTS round trips' share
 * (elapsed < STREAM_GROW_RTTS * rtt * bytes / window), the window, not
 * the local reader, limits the rate, and the window doubles (the extra
 * credit goes out with the batch that noticed). It stops at
 * STREAM_WINDOW_MAX, or earlier when a budget has no room: growth is
 * charged to the link's and the daemon's struct stream_budget (the glue
 * decides what they count, and gives the growth back when the stream
 * goes). A slow reader never grows its window. Windows never shrink.
 *
 * The RTT growth uses is at least STREAM_RTT_FLOOR_US (1 ms). Credit
 * goes round a loop of processes (the receiving daemon, maybe a relay,
 * the sender; their sockets' readers), and on a busy host each of them
 * waits for a CPU before it moves the bytes on: on loopback that wait,
 * not the wire's 50-400 us, decides how much must be in flight. Without
 * the floor a loopback stream's window depended on the link's last ping:
 * a direct tunnel went from about 880 to about 550 MiB/s halfway through
 * a bench run, and a relayed one was held at 256 KiB (tools/bench/bench,
 * README). A stream at R bytes/s then settles between 2 and 4 x R x 1 ms
 * (2 MiB at 600 MB/s); a reader slower than that does not grow it.
 *
 * Base windows (issue 10): the window a stream announces at its open is
 * what its peer can make us hold before anything reads, and the streams
 * peers open to our services are as many as peers choose (up to TUN_MAX -
 * TUN_LOCAL_RESERVE = 768, daemon/tunnel.h). So their base windows come
 * out of one daemon-wide budget, STREAM_BUDGET_BASE (stream_base_window):
 * STREAM_WINDOW while it has room, then what room is left, then
 * STREAM_WINDOW_FLOOR. A stream opened small grows like any other when
 * it proves fast, its growth above its base charged to the growth
 * budgets. Streams we open get STREAM_WINDOW without a charge: our own
 * clients choose how many (at most TUN_MAX), and a peer opening many must
 * not shrink the windows of our own tunnels. What streams peers open can
 * pin is then at most
 *   STREAM_BUDGET_BASE + STREAM_WINDOW_FLOOR x (768 - 64)
 *     + STREAM_BUDGET_DAEMON = 16 + 44 + 64 = 124 MiB
 * (64 = STREAM_BUDGET_BASE / STREAM_WINDOW streams take the budget whole,
 * every other one its floor; growth is the daemon's budget), where a
 * STREAM_WINDOW each made it 768 x 256 KiB + 64 MiB = 256 MiB.
 *
 * Closing: EOF on the local socket sends FIN (one direction); a FIN from
 * the peer half-closes the local socket once every byte before it is
 * written. The stream is done when both directions are closed. A RESET
 * either way aborts both directions at once.
 */
#ifndef P2P_CORE_STREAM_H
#define P2P_CORE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAM_WINDOW (256u * 1024) /* credit granted at the open */
#define STREAM_CHUNK (60u * 1024)   /* data bytes in one STREAM_DATA */
/* Credit goes back once window / STREAM_CREDIT_DIV is consumed. */
#define STREAM_CREDIT_DIV 4
#define STREAM_CREDIT_BATCH (STREAM_WINDOW / STREAM_CREDIT_DIV) /* at open */
#define STREAM_CREDIT_MAX (64u * 1024 * 1024) /* more is a peer error */
/* Auto-tuning (see above). STREAM_WINDOW_MAX stays well under
 * STREAM_CREDIT_MAX, which older peers enforce on the credit they hold. */
#define STREAM_WINDOW_MAX (16u * 1024 * 1024)
#define STREAM_GROW_RTTS 2 /* grow while an epoch is under this share */
/* The least RTT growth assumes (see above): on a busy host the processes
 * on a credit loop wait for a CPU about this long, however short the
 * wire. */
#define STREAM_RTT_FLOOR_US 1000

/* Budgets of window growth (bytes above a stream's base window) the
 * daemon's glue charges: all streams of one link, all streams of the
 * daemon. With STREAM_BUDGET_BASE below this bounds what peers can pin. */
#define STREAM_BUDGET_LINK (32u * 1024 * 1024)
#define STREAM_BUDGET_DAEMON (64u * 1024 * 1024)
/* Base windows of the streams peers open, all peers together (see
 * above): 64 full windows, a busy peer's TUN_MAX_PER_PEER. */
#define STREAM_BUDGET_BASE (16u * 1024 * 1024)
/* The smallest window a stream announces: the stream still moves 64 KiB
 * a round trip (5 Mbit/s at 100 ms) and grows from there, and it is no
 * less than the bytes a control client may send behind its "open" line
 * (under CTL_LINE_MAX), which an opener sends at once and aborts on when
 * the window is smaller (every version does). */
#define STREAM_WINDOW_FLOOR (64u * 1024)
/* A link relayed by a relay that keeps no per-circuit credit (an older
 * daemon): the WHOLE windows of its streams together, since such a relay
 * cuts a circuit once RELAY_WQ_MAX (2 MiB, core/circuit.h) is queued
 * towards one link, and everything in flight on the relayed link may end
 * up in that queue when the relay's onward path is the slower. Half of
 * it leaves room for framing, the overlay and other circuits. A relay
 * that keeps credit (RELAY_CREDIT) holds the sender back instead, and
 * its relayed links get the budgets of direct ones. */
#define STREAM_RELAY_WINDOWS (1u * 1024 * 1024)

/* STREAM_RESET codes (u8 on the wire). */
enum stream_reset_code {
	STREAM_RST_ABORT = 1,	    /* a local socket failed or was reset */
	STREAM_RST_NO_SERVICE = 2,  /* no such service exposed */
	STREAM_RST_DENIED = 3,	    /* opener's ID not allowed */
	STREAM_RST_UNREACHABLE = 4, /* the service's target refused or failed */
	STREAM_RST_PROTOCOL = 5,    /* flow control or state violated */
	STREAM_RST_BUSY = 6,	    /* too many streams */
	STREAM_RST_SHUTDOWN = 7,    /* the daemon is stopping */
	STREAM_RST_TIMEOUT = 8,	    /* the open took too long */
};

enum stream_state {
	STREAM_OPENING, /* OPEN sent (opener) / target connecting (acceptor) */
	STREAM_OPEN,	/* data flows */
	STREAM_DONE,	/* both directions closed, or reset: forget it */
};

/* Actions, ORed together in an event's return value. */
#define STREAM_ACT_SEND_WINDOW 0x01 /* send STREAM_WINDOW, credit_out bytes */
#define STREAM_ACT_SEND_FIN 0x02    /* send STREAM_FIN */
#define STREAM_ACT_SHUTDOWN 0x04    /* half-close the local socket */
#define STREAM_ACT_SEND_RESET 0x08  /* send STREAM_RESET, reset_code */
#define STREAM_ACT_CLOSE 0x10	    /* close the local socket gracefully */
#define STREAM_ACT_ABORT 0x20	    /* close the local socket with a reset */

/* What window growth is charged to (see above). used may be over max
 * (base windows the glue counts in): then nothing grows. */
struct stream_budget {
	uint64_t used;
	uint64_t max;
};

/* The world as a window may grow: the glue's clock and its link. */
struct stream_env {
	uint64_t now_us;	    /* monotonic, microseconds, > 0 */
	uint64_t rtt_us;	    /* the link's RTT; 0: unknown, no growth */
	struct stream_budget *link; /* NULL: no limit */
	struct stream_budget *daemon; /* NULL: no limit */
};

struct stream {
	uint32_t id;
	enum stream_state state;
	uint64_t send_credit; /* bytes we may still send */
	uint64_t recv_avail;  /* bytes the peer may still send us */
	uint64_t queued;      /* received, not yet taken by the local socket */
	uint64_t consumed;    /* taken locally, credit not yet returned */
	uint32_t credit_out;  /* SEND_WINDOW: the credit to send */
	uint32_t window;      /* the receive window we grant, grown so far */
	uint32_t base;	      /* ... granted at the open (growth: the rest) */
	uint64_t epoch_us;    /* auto-tuning epoch start (0: none yet) */
	uint64_t epoch_bytes; /* consumed since then */
	uint8_t reset_code;   /* SEND_RESET: the code to send */
	bool link_blocked;    /* the link's write queue is full */
	bool fin_sent;	      /* local EOF passed on */
	bool fin_recv;	      /* peer's FIN arrived */
	bool shut;	      /* SHUTDOWN asked for */
	bool shut_done;	      /* local write side closed */
	uint64_t bytes_in, bytes_out;
};

/* A new stream in STREAM_OPENING that grants the peer STREAM_WINDOW. */
void stream_init(struct stream *s, uint32_t id);
/* ... that grants window, kept within [STREAM_WINDOW_FLOOR, STREAM_WINDOW]
 * (from stream_base_window()). */
void stream_init_window(struct stream *s, uint32_t id, uint32_t window);

/* The window a new stream grants under the base budget b (see above;
 * NULL: no limit): STREAM_WINDOW while b has room for it, the room left
 * when less, never under STREAM_WINDOW_FLOOR. Charged to b. */
uint32_t stream_base_window(struct stream_budget *b);
/* The stream is going: its base window back to base (NULL: it was not
 * charged there) and its growth to grown (NULL: not counted). Once: the
 * window is forgotten (0) after. */
void stream_release(struct stream *s, struct stream_budget *base,
		    struct stream_budget *grown);

/*
 * Stream IDs: the side that dialled the link opens odd IDs, the other side
 * even ones, so both can open streams on one link without colliding.
 * stream_id_make() turns a counter into an ID for our side;
 * stream_id_from_peer() says whether the peer may open id.
 */
uint32_t stream_id_make(uint32_t counter, bool we_dialled);
bool stream_id_from_peer(uint32_t id, bool we_dialled);

/* ACCEPT in (opener) or target connected (acceptor): the peer granted
 * window. 0, or STREAM_ACT_SEND_RESET|ABORT when window is too big or the
 * stream is not opening. */
int stream_on_open(struct stream *s, uint32_t window);

/* How many bytes the local socket may be read for now (0: do not read). */
size_t stream_read_budget(const struct stream *s);

/* len bytes (<= budget) were read locally and go out as STREAM_DATA. */
int stream_on_local_read(struct stream *s, size_t len);
/* EOF on the local socket. */
int stream_on_local_eof(struct stream *s);
/* The local socket failed (read/write error, or reset by its peer). */
int stream_on_local_error(struct stream *s);
/* len bytes of queued data were written to the local socket at env's
 * time (env NULL: no growth). May return SEND_WINDOW with credit_out
 * (the consumed bytes plus any growth of the window). */
int stream_on_local_written(struct stream *s, size_t len,
			    const struct stream_env *env);
/* The half-close asked for by STREAM_ACT_SHUTDOWN completed. */
int stream_on_local_shutdown(struct stream *s);

/* STREAM_DATA of len bytes in; on 0 the caller writes them locally. */
int stream_on_data(struct stream *s, size_t len);
int stream_on_window(struct stream *s, uint32_t credit);
int stream_on_fin(struct stream *s);
/* STREAM_RESET in: abort the local socket. */
int stream_on_reset(struct stream *s);
/* Our side gives up (timeout, shutdown, link lost): code goes out. */
int stream_abort(struct stream *s, uint8_t code);

/* The link's write queue filled up (true) or drained (false). */
void stream_set_link_blocked(struct stream *s, bool blocked);

/* Control-protocol error code for a reset code the opener received. */
const char *stream_reset_error(uint8_t code);
/* Text for logs and error messages. */
const char *stream_reset_name(uint8_t code);

#endif
