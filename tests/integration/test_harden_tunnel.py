#!/usr/bin/env python3
"""Tunnel pool capture (issue 9): one allowed peer opening tunnels as fast
as it can (300 connections into its forward) gets at most TUN_MAX_PER_PEER
of ours (its memory budget, TUN_PEER_MEM / STREAM_WINDOW), and our own
clients can still open tunnels meanwhile."""
import json
import socket
import subprocess
import threading
import time

import p2ptest
from p2ptest import Cluster, Runner, check, check_eq, wait_for

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


if __name__ == "__main__":
    T.run()
