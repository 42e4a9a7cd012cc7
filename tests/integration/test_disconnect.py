#!/usr/bin/env python3
"""`disconnect ID` (SPEC section 9): every link to the peer closes with
GOAWAY, a tunnel on it is reset (its control connection ends, never
hangs), the answer says how many links closed, the peer sees the link go
too, and the next `connect` makes a fresh link. No link to the peer is
peer_unreachable "no link to that peer"; a bad ID is a usage error."""
import hashlib
import json
import os
import socket
import subprocess
import threading
import time

from p2ptest import Cluster, Runner, check, check_eq, wait_for

T = Runner("test_disconnect")


def echo_service():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve(c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv


def open_tunnel(d, peer, service):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(15)
    s.connect(d.sock)
    s.sendall(b'{"cmd":"open","peer":"%s","service":"%s"}\n' % (peer.encode(),
                                                                 service.encode()))
    line = b""
    while not line.endswith(b"\n"):
        ch = s.recv(1)
        check(ch, "control socket closed before the open reply")
        line += ch
    r = json.loads(line)
    check(r.get("ok") is True, "open refused: %r", r)
    return s


def linked(a, b):
    return b.id in a.peer_ids()


@T.test
def test_disconnect_closes_and_resets():
    srv = echo_service()
    try:
        with Cluster("p2pdisc-") as c:
            s = c.daemon("s").start()
            a = c.daemon("a", bootstrap=[s]).start()
            b = c.daemon("b", bootstrap=[s]).start()
            wait_for(lambda: linked(a, s) and linked(b, s), 15, what="a, b joined")
            r = a.ctl("--json", "connect", b.id)
            check_eq(r.returncode, 0, "connect a -> b (%r)" % r.stderr)
            check_eq(b.ctl("expose", "echo", "127.0.0.1:%d" % srv.getsockname()[1],
                           "--allow", a.id).returncode, 0, "expose")
            t = open_tunnel(a, b.id, "echo")
            data = os.urandom(32 * 1024)
            t.sendall(data)
            got = b""
            while len(got) < len(data):
                d = t.recv(65536)
                check(d, "tunnel closed early")
                got += d
            check_eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest(),
                     "echo through the tunnel")
            # Plain output, then the effects.
            r = a.ctl("disconnect", b.id)
            check_eq(r.returncode, 0, "disconnect exit (%r)" % r.stderr)
            check("link(s) closed" in r.stdout, "disconnect says %r" % r.stdout)
            # The tunnel is reset: its socket ends (EOF or reset), no hang.
            t0 = time.monotonic()
            ended = False
            try:
                while time.monotonic() - t0 < 10:
                    if not t.recv(65536):
                        ended = True
                        break
            except ConnectionResetError:
                ended = True
            except socket.timeout:
                pass
            t.close()
            check(ended, "the tunnel's control connection did not end")
            # The peer's side of the link went too (b never dials a).
            wait_for(lambda: not linked(b, a), 10, what="b to drop its link to a")
            # Nothing left: peer_unreachable, exit 1 with the message.
            if not linked(a, b):
                r = a.ctl("disconnect", b.id)
                check_eq(r.returncode, 1, "second disconnect exit")
                check("no link to that peer" in r.stderr, "stderr %r" % r.stderr)
            # A fresh link.
            j = a.req({"cmd": "connect", "peer": b.id})
            check_eq((j.get("ok"), j.get("path")), (True, "direct"), "connect again")
            check(j.get("method") in ("dial", "existing"), "method %r" % j.get("method"))
            j = a.req({"cmd": "disconnect", "peer": b.id})
            check_eq((j.get("ok"), j.get("peer")), (True, b.id), "disconnect (json)")
            check(j.get("closed", 0) >= 1, "closed %r" % j.get("closed"))
    finally:
        srv.close()


def time_wait(port_a, port_b):
    """Sockets in TIME_WAIT between the two ports (either direction)."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True,
                         text=True, check=True).stdout
    ends = {":%d" % port_a, ":%d" % port_b}
    hits = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and {f[-2][f[-2].rfind(":"):], f[-1][f[-1].rfind(":"):]} == ends:
            hits.append(line)
    return hits


@T.test
def test_disconnect_leaves_no_time_wait():
    """A link runs from one listen port to the other; the end that closed
    first would hold that four-tuple in TIME_WAIT for a minute, and the
    next connect() from the listen port to that peer (a punch, a re-dial)
    would fail with "address not available" (on any interface but
    loopback, which the kernel lets reuse it). Both ends reset once the
    GOAWAY has been read, so nothing is left."""
    with Cluster("p2pdisc-") as c:
        a = c.daemon("a").start()
        b = c.daemon("b").start()
        for i in range(3):
            r = a.ctl("bootstrap", b.addr)
            check_eq(r.returncode, 0, "bootstrap a -> b (%r)" % r.stderr)
            wait_for(lambda: linked(a, b) and linked(b, a), 10, what="a and b linked")
            r = a.ctl("disconnect", b.id)
            check_eq(r.returncode, 0, "disconnect (%r)" % r.stderr)
            wait_for(lambda: not linked(a, b) and not linked(b, a), 10,
                     what="both ends to drop the link")
            # The peer resets as soon as it has read GOAWAY; give the
            # kernel a moment to retire the sockets.
            time.sleep(0.3)
            check_eq(time_wait(a.port, b.port), [], "TIME_WAIT after disconnect %d" % i)


@T.test
def test_disconnect_errors():
    with Cluster("p2pdisc-") as c:
        a = c.daemon("a").start()
        other = "a" * 52
        j = a.req({"cmd": "disconnect", "peer": other})
        if j.get("error") != "invalid_peer_id":
            check_eq((j.get("ok"), j.get("error"), j.get("message")),
                     (False, "peer_unreachable", "no link to that peer"),
                     "disconnect of a stranger")
        j = a.req({"cmd": "disconnect", "peer": "nope"})
        check_eq(j.get("error"), "invalid_peer_id", "bad ID")
        # "nope" could be a petname; "no/pe" is neither an ID nor a name.
        r = a.ctl("disconnect", "no/pe")
        check_eq(r.returncode, 2, "p2pctl usage error for a bad ID")
        r = a.ctl("disconnect")
        check_eq(r.returncode, 2, "p2pctl usage error without an ID")


if __name__ == "__main__":
    T.run()
