#!/usr/bin/env python3
"""The README's front door, tools/demo, run whole as a user runs it: the
loopback tour, then tools/natlab/punch-demo's NAT lab. It failed unnoticed
from 10bdbf0 on (carol, with two servers, could not learn that her NAT is
endpoint-dependent once that took three networks), so CI runs it.

    test_demo.py P2PD P2PCTL P2PLOAD    (root; the build of P2PD is used)

Asserted: exit status 0, and what each part is there to show: the
tunnel's echo on loopback, the refused tunnel, the forwarded bytes,
alice's and bob's NAT types, bob's direct punched link, carol's
endpoint-dependent NAT type, her relayed link and the echo through it,
and every daemon stopped with status 0.
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(TOP, "tools", "natlab"))
import natlab  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: test_demo.py P2PD [P2PCTL P2PLOAD]")
    natlab.require_lab()
    build = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1])))
    env = dict(os.environ, P2PD_DEMO_BUILD=build)
    r = subprocess.run(["bash", os.path.join(TOP, "tools", "demo")], env=env,
                       capture_output=True, text=True, timeout=200)
    out = r.stdout + r.stderr
    wants = [
        ("the loopback tunnel's echo", r"^hello through the tunnel$"),
        ("bob's tunnel refused", r"\(exit status 1\)"),
        ("the forward's bytes", r"got 100000 identical bytes back: True"),
        ("alice's NAT type", r"nat:\s+port-preserving"),
        ("bob's NAT type", r"nat:\s+endpoint-independent"),
        ("bob's punched link", r"direct link \(punch\)"),
        ("the echo over the punched link", r"^hello from behind two NATs$"),
        ("carol's NAT type", r"nat:\s+endpoint-dependent"),
        ("carol's relayed link", r"relay link \("),
        ("the echo through the relay", r"^hello through a relay$"),
        ("the lab removed", r"Removed the lab's daemons and namespaces"),
    ]
    missing = [what for what, rx in wants if not re.search(rx, out, re.M)]
    stopped = re.search(r"pid:exit status ([0-9: ]+)\)", out)
    codes = stopped.group(1).split() if stopped else []
    bad = [c for c in codes if not c.endswith(":0")]
    ok = r.returncode == 0 and not missing and codes and not bad
    if not ok:
        print(out)
        print("FAIL: exit status %d; missing: %s; daemons' exit statuses %s"
              % (r.returncode, ", ".join(missing) or "none", codes or "not printed"))
        return 1
    print("ok   tools/demo: %d checks, daemons stopped %s" % (len(wants), " ".join(codes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
