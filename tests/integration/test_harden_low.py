#!/usr/bin/env python3
"""Hardening against peers (issue 9, the Low items), each attack run
against a real daemon.

- Routed messages' source: an attacker linked as a server sends routed
  PINGs "from" a victim next to its own ID (so the daemon's PONG, if any,
  comes back through it): no PONG is reflected. It answers a routed PING
  that it is asked to pass on with a PONG "from" the destination echoing
  the nonce: `ping` does not report success.
- Forged ROUTE_FAIL: the attacker's server link keeps a routed ping for the
  victim, and its second link (off the ping's path) sends a ROUTE_FAIL
  naming it: the ping is not failed by it (it times out).
- Write-queue memory: a peer that sends PINGs and FIND_NODEs as fast as
  its link takes them and never reads earns at most the rate limits'
  worth of replies (P2P_LINKFSM_PONG_RATE, P2P_FIND_RATE, after their
  bursts), the daemon's RSS stays bounded, and another peer's ping and
  bootstrap keep working meanwhile.
- Addresses told by peers: a server link whose HELLO claims 0.0.0.0:P and
  whose NODES replies list 0.0.0.0, ::, multicast and broadcast contacts
  at P gets no dial to P (on Linux 0.0.0.0 and :: reach this host, where
  a listener counts), while a loopback contact at Q (plausible between
  loopback peers) is dialled: the NODES were acted on.
- DIALBACK_OK: a server that a node dialled answers the node's DIALBACK
  with DIALBACK_OK (the right nonce) on that same link, after HELLO, not
  on a dial-back link: the node stays a client.
"""
import re
import socket
import subprocess
import threading
import time

import p2ptest
from p2ptest import Cluster, Runner, check, check_eq, wait_for

T = Runner("test_harden_low")
PONG_RATE, PONG_BURST = 10, 20     # core/linkfsm.h
FIND_RATE, FIND_BURST = 20, 50     # overlay/overlay.h
RSS_GROWTH_MAX_KIB = 16 * 1024     # what the attack may add to the daemon


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@T.test
def routed_ping_pong_cannot_be_forged():
    with Cluster() as c:
        a = c.daemon("a").start()
        p = subprocess.Popen([p2ptest.P2PLOAD, "routedforge", a.addr, "--seconds", "8"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = p.stdout.readline()
            m = re.search(r"victim=(\S+)", first)
            check(m is not None, "p2pload routedforge: %r", first)
            victim = m.group(1)
            r = a.req({"cmd": "ping", "peer": victim}, timeout=30)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        m = re.search(r"reflected=(\d+) forged_pongs=(\d+)", out)
        check(m is not None, "p2pload routedforge: %r %r", out, err)
        reflected, forged = int(m.group(1)), int(m.group(2))
        print("  reflected PONGs: %d; forged PONGs sent: %d; ping: %s"
              % (reflected, forged, r.get("error") or "ok"))
        check(forged >= 1, "the ping never passed through the attacker: %r", r)
        check(r.get("ok") is not True, "a forged PONG made ping succeed: %r", r)
        check(reflected == 0, "%d PONGs reflected to the victim", reflected)
        check(a.alive(), "a survived")


@T.test
def route_fail_only_from_the_path():
    with Cluster() as c:
        a = c.daemon("a").start()
        p = subprocess.Popen([p2ptest.P2PLOAD, "routefail", a.addr, "--seconds", "8"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = p.stdout.readline()
            m = re.search(r"victim=(\S+)", first)
            check(m is not None, "p2pload routefail: %r", first)
            r = a.req({"cmd": "ping", "peer": m.group(1)}, timeout=30)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        m = re.search(r"forged=(\d+)", out)
        check(m is not None, "p2pload routefail: %r %r", out, err)
        print("  forged ROUTE_FAILs: %s; ping: %s" % (m.group(1), r.get("error") or "ok"))
        check(int(m.group(1)) >= 1, "the ping never reached the attacker: %r", r)
        check_eq(r.get("error"), "timeout", "ping's failure (a forged ROUTE_FAIL gives peer_unreachable)")


@T.test
def peer_that_never_reads():
    with Cluster() as c:
        a = c.daemon("a").start()
        b = c.daemon("b", bootstrap=[a]).start()
        wait_for(lambda: a.id in b.peer_ids(), 15, what="b links to a")
        base = rss_kib(a.proc.pid)
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(a.proc.pid))
                time.sleep(0.1)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        secs = 6
        p = subprocess.Popen([p2ptest.P2PLOAD, "noread", a.addr, "--seconds", str(secs)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2)
            # other peers keep working while it runs
            r = b.req({"cmd": "ping", "peer": a.id}, timeout=20)
            check(r.get("ok") is True, "b's ping during the attack: %r", r)
            n = c.daemon("n").start()
            r = n.req({"cmd": "bootstrap", "addr": a.addr}, timeout=20)
            check(r.get("ok") is True, "a new peer's bootstrap during the attack: %r", r)
            out, err = p.communicate(timeout=60)
        finally:
            stop.set()
            if p.poll() is None:
                p.kill()
                p.wait()
        t.join()
        m = re.search(r"pings=(\d+) finds=(\d+) pongs=(\d+) nodes=(\d+) stalled_ms=(\d+) bytes=(\d+)", out)
        check(m is not None, "p2pload noread: %r %r", out, err)
        pings, finds, pongs, nodes, stalled, sent = (int(x) for x in m.groups())
        grown = peak[0] - base
        print("  sent %d PINGs and %d FIND_NODEs (%.1f MB) without reading; got %d PONGs, %d NODES; "
              "longest stall %d ms; a's RSS %d KiB -> peak %d KiB (+%d)%s"
              % (pings, finds, sent / 1e6, pongs, nodes, stalled, base, peak[0], grown,
                 " closed" if "closed" in out else ""))
        check(pings > 10 * (PONG_BURST + PONG_RATE * (secs + 2)), "too few PINGs sent to mean anything: %d", pings)
        check(pongs <= PONG_BURST + PONG_RATE * (secs + 2), "%d PONGs for %d PINGs", pongs, pings)
        check(nodes <= FIND_BURST + FIND_RATE * (secs + 2), "%d NODES for %d FIND_NODEs", nodes, finds)
        check(grown <= RSS_GROWTH_MAX_KIB, "a's RSS grew by %d KiB", grown)
        check(a.alive(), "a survived")
        r = b.req({"cmd": "ping", "peer": a.id}, timeout=20)
        check(r.get("ok") is True, "b's ping after the attack: %r", r)


class Counter:
    """A TCP listener that counts the connections it accepts."""

    def __init__(self, host, family=socket.AF_INET):
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.s.bind((host, 0))
        self.s.listen(64)
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.n = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.s.accept()
                self.n += 1
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.t.join()
        self.s.close()


@T.test
def told_addresses_filtered():
    with Cluster() as c:
        a = c.daemon("a").start()
        bad = Counter("::", socket.AF_INET6)   # 0.0.0.0:P and [::]:P land here
        good = Counter("127.0.0.1")
        try:
            r = p2ptest.p2pload("badaddrs", a.addr, "--port", bad.port, "--control", good.port,
                                "--seconds", "5", timeout=60)
            check("finds=" in r.stdout, "p2pload badaddrs: %r %r", r.stdout, r.stderr)
            time.sleep(0.5)
        finally:
            bad.close()
            good.close()
        print("  dials to the told unspecified/multicast/broadcast addresses: %d; "
              "to the loopback contact: %d" % (bad.n, good.n))
        check(good.n >= 1, "the NODES reply was never acted on (no dial to the loopback contact)")
        check_eq(bad.n, 0, "dials to 0.0.0.0/:: told by a peer")
        check(a.alive(), "a survived")


@T.test
def dialback_ok_only_on_the_dial_back():
    with Cluster() as c:
        port = p2ptest.free_port()
        p = subprocess.Popen([p2ptest.P2PLOAD, "dialbackok", "127.0.0.1:%d" % port, "--seconds", "8"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            check("listening" in p.stdout.readline(), "p2pload dialbackok did not listen")
            # d dials the attacker and nobody dials d: only a DIALBACK_OK
            # could make it a server.
            d = c.daemon("d", bootstrap=["127.0.0.1:%d" % port]).start()
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        m = re.search(r"asks=(\d+) oks=(\d+)", out)
        check(m is not None, "p2pload dialbackok: %r %r", out, err)
        asks, oks = int(m.group(1)), int(m.group(2))
        st = d.status() if hasattr(d, "status") else d.req({"cmd": "status"})
        print("  DIALBACKs asked of the attacker: %d; DIALBACK_OKs it sent on that link: %d; "
              "d's dht mode: %s" % (asks, oks, st["dht"]["mode"]))
        check(asks >= 1, "d never asked the attacker for a dial-back: %r", out)
        check_eq(st["dht"]["mode"], "client", "d's dht mode after forged DIALBACK_OKs")
        check(d.alive(), "d survived")


if __name__ == "__main__":
    T.run()
