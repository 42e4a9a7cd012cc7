#!/usr/bin/env python3
"""Bad input on the control socket and on the overlay port (SPEC 5, 7)."""
import base64
import json
import os
import socket
import time

from p2ptest import Cluster, Runner, check, check_eq, p2pload

T = Runner("test_badinput")
HS_TIMEOUT_MS = 1000


def random_id():
    return base64.b32encode(os.urandom(32)).decode().lower().rstrip("=")


class Conn:
    """A raw control connection that reads reply lines."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def req(self, obj):
        self.send((json.dumps(obj) + "\n").encode())
        return self.line()

    def closed(self, timeout=5):
        """True once the daemon closed this connection (draining replies)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def serving(d):
    """The daemon still answers control requests and completes handshakes."""
    check(d.alive(), "daemon died")
    check_eq(d.req({"cmd": "status"}, timeout=5)["id"], d.id, "status after bad input")
    r = p2pload("handshakes", d.addr, "--count", "1", timeout=30)
    check_eq(r.returncode, 0, "a fresh handshake after bad input (%s%s)" % (r.stdout, r.stderr))


def one_daemon(c, **kw):
    return c.daemon(config={"limits": {"handshake_timeout_ms": HS_TIMEOUT_MS}}, **kw).start()


def expect_error(conn, raw, code, what):
    conn.send(raw)
    r = conn.line()
    check_eq((r.get("ok"), r.get("error")), (False, code), what)
    check(isinstance(r.get("message"), str) and r["message"], "%s: no message: %r", what, r)
    # the same connection stays usable
    check(conn.req({"cmd": "status"}).get("ok") is True, "%s: connection unusable afterwards", what)


# --- control socket -------------------------------------------------------

@T.test
def ctl_garbage_bytes():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        junk = bytes(b for b in os.urandom(4096) if b not in (10, 13))
        expect_error(conn, junk + b"\n", "bad_request", "random bytes")
        expect_error(conn, b"\xff\xfe\x00\x01 \xc3\x28\n", "bad_request", "invalid UTF-8")
        conn.close()
        serving(d)


@T.test
def ctl_invalid_json():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        for raw in (b'{"cmd":', b'{"cmd": "status",}', b"{'cmd': 'status'}", b'{"cmd":"status"} x',
                    b'{"cmd":"status","cmd":"peers"}'):
            expect_error(conn, raw + b"\n", "bad_request", "invalid JSON %r" % raw)
        conn.close()
        serving(d)


@T.test
def ctl_json_not_an_object():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        for raw in (b"[1,2]", b'"status"', b"42", b"null", b"true", b'[{"cmd":"status"}]'):
            expect_error(conn, raw + b"\n", "bad_request", "non-object %r" % raw)
        conn.close()
        serving(d)


@T.test
def ctl_one_mib_line_closes_that_connection_only():
    with Cluster() as c:
        d = one_daemon(c)
        other = Conn(d.sock)
        check(other.req({"cmd": "status"})["ok"], "other client before")
        big = Conn(d.sock)
        try:
            big.send(b'{"cmd":"status","pad":"' + b"x" * (1 << 20) + b'"}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still writing: fine
        check(big.closed(10), "1 MiB line: connection still open")
        big.close()
        check(other.req({"cmd": "status"})["ok"], "other client after the 1 MiB line")
        other.close()
        serving(d)


@T.test
def ctl_line_just_under_64k_is_answered():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        pad = "x" * (60 * 1024)
        r = conn.req({"cmd": "status", "pad": pad})
        check(r.get("ok") is True or r.get("error") == "bad_request", "60 KiB line: %r", r)
        check(conn.req({"cmd": "status"})["ok"], "connection after a 60 KiB line")
        conn.close()


@T.test
def ctl_unknown_commands():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        for name in ("frobnicate", "STATUS", "", "status ", "x" * 1000):
            expect_error(conn, (json.dumps({"cmd": name}) + "\n").encode(), "unknown_command",
                         "unknown command %r" % name[:20])
        expect_error(conn, b'{"nocmd": 1}\n', "bad_request", "request without cmd")
        conn.close()
        serving(d)


@T.test
def ctl_wrong_argument_types():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        cases = [
            ({"cmd": 5}, ("bad_request",)),
            ({"cmd": ["status"]}, ("bad_request",)),
            ({"cmd": "ping"}, ("bad_request", "invalid_peer_id")),
            ({"cmd": "ping", "peer": 5}, ("bad_request", "invalid_peer_id")),
            ({"cmd": "lookup", "peer": None}, ("bad_request", "invalid_peer_id")),
            ({"cmd": "lookup", "peer": {"id": "x"}}, ("bad_request", "invalid_peer_id")),
            ({"cmd": "bootstrap", "addr": []}, ("bad_request",)),
            ({"cmd": "bootstrap", "addr": "not an address"}, ("bad_request",)),
            ({"cmd": "expose", "service": 1, "target": "127.0.0.1:22", "allow": "any"}, ("bad_request",)),
            ({"cmd": "expose", "service": "s", "target": 22, "allow": "any"}, ("bad_request",)),
            ({"cmd": "expose", "service": "s", "target": "127.0.0.1:22", "allow": "x"},
             ("bad_request", "invalid_peer_id")),
            ({"cmd": "expose", "service": "", "target": "127.0.0.1:22", "allow": "any"}, ("bad_request",)),
            ({"cmd": "expose", "service": "s" * 300, "target": "127.0.0.1:22", "allow": "any"}, ("bad_request",)),
            ({"cmd": "unexpose", "service": False}, ("bad_request",)),
        ]
        for req, codes in cases:
            r = conn.req(req)
            check(r.get("ok") is False and r.get("error") in codes,
                  "request %s: expected error in %r, seen %r", json.dumps(req)[:80], codes, r)
        check_eq(d.req({"cmd": "services"})["services"], [], "services after bad exposes")
        conn.close()
        serving(d)


@T.test
def ctl_tag_echo_split_and_pipelined_lines():
    with Cluster() as c:
        d = one_daemon(c)
        conn = Conn(d.sock)
        r = conn.req({"cmd": "status", "tag": "t-1"})
        check_eq(r.get("tag"), "t-1", "tag echoed on success")
        r = conn.req({"cmd": "nope", "tag": 7})
        check_eq((r.get("error"), r.get("tag")), ("unknown_command", 7), "tag echoed on error")
        # one request split over several writes
        for part in (b'{"cmd":', b'"status"', b"}\n"):
            conn.send(part)
            time.sleep(0.05)
        check(conn.line().get("ok") is True, "request split across writes")
        # three requests in one write get three replies in order
        conn.send(b'{"cmd":"status","tag":1}\n{"cmd":"bad","tag":2}\n{"cmd":"peers","tag":3}\n')
        tags = [conn.line().get("tag") for _ in range(3)]
        check_eq(tags, [1, 2, 3], "pipelined reply order")
        conn.close()


@T.test
def ctl_abandoned_and_many_clients():
    with Cluster() as c:
        d = one_daemon(c)
        for _ in range(20):  # half a request, then gone
            x = Conn(d.sock)
            x.send(b'{"cmd":"stat')
            x.close()
        many = []
        try:
            for _ in range(200):
                many.append(Conn(d.sock))
        except OSError:
            pass
        answered = busy = 0
        for m in many:
            try:
                r = m.req({"cmd": "status"})
                answered += r.get("ok") is True
                busy += r.get("error") == "busy"
            except (EOFError, OSError):
                busy += 1  # refused: closed after a busy line
        for m in many:
            m.close()
        check(answered > 0, "none of %d clients answered", len(many))
        serving(d)


# --- overlay port ---------------------------------------------------------

@T.test
def overlay_random_bytes():
    with Cluster() as c:
        d = one_daemon(c)
        for _ in range(3):
            r = p2pload("garbage", d.addr, "--max-ms", "5000")
            check_eq(r.returncode, 0, "garbage probe (%s%s)" % (r.stdout, r.stderr))
        serving(d)


@T.test
def overlay_oversize_frame_length():
    with Cluster() as c:
        d = one_daemon(c)
        r = p2pload("oversize", d.addr, "--max-ms", "5000")
        check_eq(r.returncode, 0, "oversize probe (%s%s)" % (r.stdout, r.stderr))
        serving(d)


@T.test
def overlay_handshake_with_wrong_expected_key():
    with Cluster() as c:
        d = one_daemon(c)
        r = p2pload("wrongkey", d.addr, random_id())
        check_eq(r.returncode, 0, "handshake expecting another ID must be rejected (%s%s)" % (r.stdout, r.stderr))
        r = p2pload("wrongkey", d.addr, d.id)
        check_eq(r.returncode, 1, "control: expecting the right ID must succeed (%s%s)" % (r.stdout, r.stderr))
        serving(d)


@T.test
def overlay_slowloris_closed_in_bounded_time():
    with Cluster() as c:
        d = one_daemon(c)
        r = p2pload("slowloris", d.addr, "--max-ms", "10000")
        check_eq(r.returncode, 0, "slowloris probe (%s%s)" % (r.stdout, r.stderr))
        ms = int(r.stdout.split("after")[1].split()[0])
        check(HS_TIMEOUT_MS * 0.5 <= ms <= HS_TIMEOUT_MS + 1500,
              "closed after %d ms with handshake_timeout_ms=%d", ms, HS_TIMEOUT_MS)
        serving(d)


@T.test
def overlay_relay_flood():
    """A peer opens 2000 circuits to us, asks 2000 relays to nobody, and
    sends data and closes for 2000 unknown circuits each: the daemon stays
    up, holds at most RELAY_CIRC_PER_LINK (16) relayed ends at a time,
    refuses the rest, ignores unknown circuits, and closes the link on a
    malformed (empty) RELAY_DATA."""
    with Cluster() as c:
        d = one_daemon(c)
        r = p2pload("relayflood", d.addr, "--count", "2000", timeout=120)
        check_eq(r.returncode, 0, "relayflood probe (%s%s)" % (r.stdout, r.stderr))
        st = d.req({"cmd": "status"})
        check(st["counters"]["links_refused"] >= 2000 - 16, "refused %r" % st["counters"])
        check(st["counters"]["bad_msgs"] >= 1, "empty RELAY_DATA not counted: %r" % st["counters"])
        check(st["relay"]["unknown_circuit"] >= 4000, "relay %r" % st["relay"])
        check_eq(st["relay"]["circuits"], 0, "circuits relayed for nobody")
        from p2ptest import wait_for
        # The 16 relayed ends that were accepted time out unanswered.
        wait_for(lambda: d.req({"cmd": "status"})["peers"] == 0, 10, what="no links left")
        serving(d)


@T.test
def overlay_many_probes_then_real_peer():
    with Cluster() as c:
        d = one_daemon(c)
        for probe in ("garbage", "oversize", "garbage", "oversize"):
            check_eq(p2pload(probe, d.addr, "--max-ms", "5000").returncode, 0, probe)
        d2 = c.daemon(bootstrap=[d]).start()
        from p2ptest import wait_for
        wait_for(lambda: d.id in d2.peer_ids(), 15, what="a real peer links after the probes")
        serving(d)


if __name__ == "__main__":
    T.run()
