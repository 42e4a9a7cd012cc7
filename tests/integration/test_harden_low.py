#!/usr/bin/env python3
"""Hardening against peers (issue 9, the Low items), each attack run
against a real daemon.

- Routed messages' source: an attacker linked as a server sends routed
  PINGs "from" a victim next to its own ID (so the daemon's PONG, if any,
  comes back through it): no PONG is reflected. It answers a routed PING
  that it is asked to pass on with a PONG "from" the destination echoing
  the nonce: `ping` does not report success.
"""
import re
import subprocess
import time

import p2ptest
from p2ptest import Cluster, Runner, check, wait_for

T = Runner("test_harden_low")


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


if __name__ == "__main__":
    T.run()
