#!/usr/bin/env python3
"""Tunnel pool capture (issue 9): one allowed peer opening tunnels as fast
as it can (300 connections into its forward) gets at most TUN_MAX_PER_PEER
of ours (its memory budget, TUN_PEER_MEM / STREAM_WINDOW), and our own
clients can still open tunnels meanwhile. Peers together (issue 10): their
streams' windows come out of the daemon's base budget, the floor beyond."""
import json
import os
import socket
import subprocess
import threading
import time

import p2ptest
from p2ptest import Cluster, Runner, check, check_eq, header_define, metrics, wait_for

T = Runner("test_harden_tunnel")
TUN_MAX_PER_PEER = 64  # daemon/tunnel.h: 16 MiB / 256 KiB


class Sink:
    """A TCP service that accepts and holds every connection (counted)."""

    def __init__(self, echo=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.echo = echo
        threading.Thread(target=self.loop, daemon=True).start()

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.echo:
                threading.Thread(target=self.run_echo, args=(c,), daemon=True).start()

    def run_echo(self, c):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@T.test
def one_peer_cannot_take_the_tunnel_pool():
    with Cluster() as c:
        a = c.daemon("a").start()
        b = c.daemon("b", bootstrap=[a]).start()
        wait_for(lambda: a.id in b.peer_ids() and b.id in a.peer_ids(), 15, what="a and b linked")
        sink, echo = Sink(), Sink(echo=True)
        clients = []
        try:
            check_eq(a.ctl("expose", "sink", sink.target, "--allow", b.id).returncode, 0, "expose")
            check_eq(b.ctl("expose", "echo", echo.target, "--allow", a.id).returncode, 0, "expose")
            r = b.ctl("--json", "forward", "0", a.id, "sink")
            check_eq(r.returncode, 0, "forward (stderr %r)" % r.stderr)
            host, port = json.loads(r.stdout)["listen"].rsplit(":", 1)
            for _ in range(300):
                try:  # refused ones are reset, maybe before connect returns
                    clients.append(socket.create_connection((host, int(port)), timeout=10))
                except OSError:
                    pass
            time.sleep(3)
            held = len(sink.conns)
            # Our own client on a: a tunnel to b's echo service.
            r = subprocess.run([p2ptest.P2PCTL, "-s", a.sock, "pipe", b.id, "echo"],
                               input=b"local client", capture_output=True, timeout=30)
            print("  one peer holds %d of a's tunnels (300 asked); a's own pipe: exit %d"
                  % (held, r.returncode))
            check(held <= TUN_MAX_PER_PEER, "one peer holds %d tunnels", held)
            check_eq((r.returncode, r.stdout), (0, b"local client"), "a's own pipe")
        finally:
            for s in clients:
                s.close()
            sink.close()
            echo.close()


def echo_through(s, size):
    """size bytes sent on s (a thread) and read back: the echo's stream
    moved them both ways under its flow control."""
    data = os.urandom(size)
    threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
    got = bytearray()
    while len(got) < size:
        d = s.recv(65536)
        if not d:
            break
        got += d
    return bytes(got) == data


@T.test
def peers_together_get_windows_from_the_base_budget():
    """Two peers open 40 tunnels each into our echo service: the first
    STREAM_BUDGET_BASE / STREAM_WINDOW (64) get a full window, the other
    16 the floor (metrics and the tunnels command say so); a floor stream
    still carries 4x its window both ways; our own tunnel to a peer gets
    a full window uncharged; every byte of the budget comes back when
    they close."""
    window = header_define("core/stream.h", "STREAM_WINDOW")
    floor = header_define("core/stream.h", "STREAM_WINDOW_FLOOR")
    budget = header_define("core/stream.h", "STREAM_BUDGET_BASE")
    full, per = budget // window, 40
    with Cluster() as c:
        a = c.daemon("a").start()
        b = c.daemon("b", bootstrap=[a]).start()
        d = c.daemon("d", bootstrap=[a]).start()
        wait_for(lambda: {b.id, d.id} <= set(a.peer_ids()), 15, what="b and d linked to a")
        echo, bsink = Sink(echo=True), Sink(echo=True)
        clients = []
        try:
            check_eq(a.ctl("expose", "echo", echo.target, "--allow-any").returncode, 0, "expose")
            for x in (b, d):
                r = x.ctl("--json", "forward", "0", a.id, "echo")
                check_eq(r.returncode, 0, "forward (stderr %r)" % r.stderr)
                host, port = json.loads(r.stdout)["listen"].rsplit(":", 1)
                for _ in range(per):
                    clients.append(socket.create_connection((host, int(port)), timeout=30))
                    # One at a time: admitted in this order.
                    check(echo_through(clients[-1], 1), "tunnel %d echoes", len(clients))
            m = metrics(a)
            ins = [t for t in a.req({"cmd": "tunnels"})["tunnels"] if t["dir"] == "in"]
            small = [t for t in ins if t["window"] < window]
            print("  %d tunnels in, %d with a %d KiB window; base %.2f MiB of %.0f MiB"
                  % (len(ins), len(small), floor // 1024, m["p2pd_tunnel_window_base_bytes"] / 1048576,
                     m["p2pd_tunnel_window_base_budget_bytes"] / 1048576))
            check_eq(len(ins), 2 * per, "tunnels in")
            check_eq(m["p2pd_tunnel_window_base_bytes"], full * window + (2 * per - full) * floor, "base bytes")
            check_eq(m["p2pd_tunnels_small_window"], 2 * per - full, "small windows")
            check_eq(sorted(t["window"] for t in small), [floor] * (2 * per - full), "floor windows")
            # The last ones got the floor: each moves 4 windows' worth.
            for i, s in enumerate(clients[-(2 * per - full):]):
                check(echo_through(s, 4 * floor), "floor stream %d echoes %d bytes", i, 4 * floor)
            # Our own tunnel (a opens to b): a full window, not charged.
            check_eq(b.ctl("expose", "echo", bsink.target, "--allow", a.id).returncode, 0, "expose on b")
            r = a.ctl("--json", "forward", "0", b.id, "echo")
            check_eq(r.returncode, 0, "forward on a (stderr %r)" % r.stderr)
            host, port = json.loads(r.stdout)["listen"].rsplit(":", 1)
            own = socket.create_connection((host, int(port)), timeout=30)
            clients.append(own)
            check(echo_through(own, 1), "a's own tunnel echoes")
            outs = [t for t in a.req({"cmd": "tunnels"})["tunnels"] if t["dir"] == "out"]
            check_eq([t["window"] for t in outs], [window], "a's own tunnel's window")
            check_eq(metrics(a)["p2pd_tunnel_window_base_bytes"], m["p2pd_tunnel_window_base_bytes"],
                     "base bytes with a's own tunnel")
            for s in clients:
                s.close()
            wait_for(lambda: metrics(a)["p2pd_tunnels"] == 0, 30, what="tunnels closed")
            m = metrics(a)
            check_eq((m["p2pd_tunnel_window_base_bytes"], m["p2pd_tunnels_small_window"]), (0, 0),
                     "budget back")
        finally:
            for s in clients:
                s.close()
            echo.close()
            bsink.close()


if __name__ == "__main__":
    T.run()
