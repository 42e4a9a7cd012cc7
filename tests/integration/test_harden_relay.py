#!/usr/bin/env python3
"""Relay circuit capture (issue 9), and garbage relay and NAT payloads.

- One host (one IP, 20 identities) asks a relay for 300 circuits between
  its own identities and never handshakes on them: it gets at most
  RELAY_CIRC_PER_IP, the rest are refused with the limit named, an honest
  peer still gets a relayed link through the same relay, and the silent
  circuits are closed RELAY_HS_MS after their open (the relay's count goes
  back down) while the honest one, which carried a handshake, stays;
  when the honest link's far end dies, the relay closes its circuit and
  the near end logs the relay's reason.
- Identities of their own IPs get RELAY_CIRC_PER_PEER each.
- A peer with an authenticated link sends random and truncated relay
  messages and routed NAT (punch) payloads: the daemon stays up, answers
  status, closes only that peer's link on malformed messages and keeps its
  other links.

Attackers come from 127.9.9.x: honest daemons are on 127.0.0.1, and a
different /24 keeps the per-subnet caps from touching them.
"""
import json
import re
import signal
import subprocess
import time

import p2ptest
from p2ptest import Cluster, Runner, check, check_eq, p2pload, wait_for

T = Runner("test_harden_relay")
ATTACKER = "127.9.9.9"
RELAY_CIRC_PER_IP = 32  # core/circuit.h
RELAY_CIRC_PER_PEER = 16
RELAY_HS_MS = 5000      # core/circuit.h


def relay_status(d):
    return d.req({"cmd": "status"})["relay"]


def metric(d, name):
    text = d.req({"cmd": "metrics"})["text"]
    m = re.search(r"^p2pd_%s (\d+)$" % re.escape(name), text, re.M)
    check(m is not None, "metric %s in %r", name, text[:200])
    return int(m.group(1))


@T.test
def one_host_gets_its_share_and_silent_circuits_go():
    with Cluster() as c:
        a, f, e = c.relayed_pair()
        check(f.id not in e.peer_ids(), "e already linked to f")
        hold_ms = RELAY_HS_MS + 4000
        p = subprocess.Popen([p2ptest.P2PLOAD, "relaycapture", a.addr, "--from", ATTACKER,
                              "--ids", "20", "--count", "300", "--hold-ms", str(hold_ms)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = p.stdout.readline()
            m = re.match(r"relaycapture: asked=300 accepted=(\d+) refused=(\d+)", first)
            check(m is not None, "relaycapture: %r %r", first, p.stderr.read() if p.poll() is not None else "")
            accepted, refused = int(m.group(1)), int(m.group(2))
            check(1 <= accepted <= RELAY_CIRC_PER_IP, "one host holds %d circuits", accepted)
            check_eq(accepted + refused, 300, "every request answered")
            held = relay_status(a)
            check(held["circuits"] <= RELAY_CIRC_PER_IP, "relay carries %r", held)
            check(held["refused"] >= 300 - RELAY_CIRC_PER_IP, "refusals counted: %r", held)
            # An honest peer gets a circuit while the attacker holds its share.
            t0 = time.monotonic()
            j = e.req({"cmd": "connect", "peer": f.id}, timeout=60)
            check_eq((j.get("path"), j.get("method")), ("relay", "relay"), "honest connect e->f: %r" % j)
            check_eq(relay_status(a)["circuits"], held["circuits"] + 1, "the honest circuit on a")
            out, err = p.communicate(timeout=hold_ms / 1000 + 30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check_eq(p.returncode, 0, "relaycapture exit (%s%s)" % (out, err))
        check("too many circuits from your address" in first + out,
              "the refusal names the limit: %r" % (first + out))
        m = re.search(r"closed=(\d+) .*freed_ms_min=(\d+) freed_ms_max=(\d+) links_alive=(\d+)", out)
        check(m is not None, "hold line in %r", out)
        closed, fmin, fmax, alive = (int(x) for x in m.groups())
        check_eq(closed, accepted, "every silent circuit closed")
        check(RELAY_HS_MS - 200 <= fmin <= fmax <= RELAY_HS_MS + 2000,
              "freed %d..%d ms after the open", fmin, fmax)
        check("no end-to-end handshake in time" in out, "the close says why: %r" % out)
        check_eq(alive, 20, "the attacker's links stay (only circuits go)")
        # Back down to the honest circuit, which handshook and stays past
        # its own deadline.
        wait_for(lambda: relay_status(a)["circuits"] == 1, 5, what="a's count back down")
        check(time.monotonic() - t0 > RELAY_HS_MS / 1000, "the honest circuit outlived the deadline")
        check_eq(metric(a, "relay_circuits"), 1, "metrics relay_circuits")
        check_eq(relay_status(a)["closed_handshake"], accepted, "closed for no handshake")
        j = e.req({"cmd": "ping", "peer": f.id}, timeout=30)
        check_eq(j.get("path"), "relay", "ping over the relayed link after the deadline: %r" % j)
        # f dies without a word (no GOAWAY over the relayed link): only the
        # relay can tell e, and e's log says what it was told.
        f.stop(signal.SIGKILL)
        wait_for(lambda: f.id not in e.peer_ids(), 15, what="e's relayed link to f gone")
        line = "relayed link to %s: the relay closed its circuit: the other end's link is gone" % f.id
        wait_for(lambda: line in e.log_tail(200), 5, what="e logs why: %r" % line)


@T.test
def one_identity_gets_its_share():
    """4 identities, each from an IP and /24 of its own (--spread), ask
    for 20 circuits each: each gets RELAY_CIRC_PER_PEER, and the refusal
    names the peer ID limit."""
    with Cluster() as c:
        a = c.daemon("a").start()
        r = p2pload("relaycapture", a.addr, "--spread", "--ids", "4", "--count", "80")
        check_eq(r.returncode, 0, "relaycapture (%s%s)" % (r.stdout, r.stderr))
        check("asked=80 accepted=%d refused=%d" % (4 * RELAY_CIRC_PER_PEER, 80 - 4 * RELAY_CIRC_PER_PEER)
              in r.stdout, "per-ID share: %r" % r.stdout)
        check('"relay busy: too many circuits for your peer ID" x %d' % (80 - 4 * RELAY_CIRC_PER_PEER)
              in r.stdout, "the refusal names the limit: %r" % r.stdout)


@T.test
def garbage_relay_and_nat_payloads_over_a_link():
    with Cluster() as c:
        a = c.daemon("a").start()
        b = c.daemon("b", bootstrap=[a]).start()
        wait_for(lambda: b.id in a.peer_ids(), 15, what="b linked to a")
        age0 = {p["id"]: p for p in a.req({"cmd": "peers"})["peers"]}[b.id]["age_s"]
        bad0 = a.req({"cmd": "status"})["counters"]["bad_msgs"]
        t0 = time.monotonic()
        r = p2pload("badpayload", a.addr, "--from", "127.9.9.8", "--links", "10", "--count", "300",
                    timeout=120)
        check_eq(r.returncode, 0, "badpayload (%s%s)" % (r.stdout, r.stderr))
        check("links=10 sent=3000 closed_on_malformed=10 closed_before=0" in r.stdout,
              "every link took 300 messages, then was closed for a malformed one: %r" % r.stdout)
        st = a.req({"cmd": "status"})
        check(st["counters"]["bad_msgs"] >= bad0 + 10, "bad messages counted: %r" % st["counters"])
        check(st["relay"]["unknown_circuit"] > 0, "unknown circuits counted: %r" % st["relay"])
        check_eq(st["relay"]["circuits"], 0, "no circuit relayed for garbage")
        peers = {p["id"]: p for p in a.req({"cmd": "peers"})["peers"]}
        check(b.id in peers, "a kept its link to b")
        check(peers[b.id]["age_s"] >= age0 + int(time.monotonic() - t0) - 1,
              "the same link: %r" % peers[b.id])
        j = b.req({"cmd": "ping", "peer": a.id}, timeout=15)
        check("rtt_ms" in j, "b still pings a: %r" % j)
        check_eq(a.proc.poll(), None, "a is running")


if __name__ == "__main__":
    T.run()
