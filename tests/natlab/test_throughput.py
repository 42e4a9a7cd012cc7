#!/usr/bin/env python3
"""Tunnels across emulated paths (issue 10): the CI version of
tools/bench/bench-paths. It checks bytes, not speed (speed targets are
benchmark figures, printed here for the log only):

  direct_tunnel_across_delay_and_loss
      16 MiB through one tunnel stream between two namespaces 40 ms apart
      with 0.1% loss: every byte arrives, in order (SHA-256 at the sink),
      and both daemons live. The receive window the sink's daemon reached
      is printed (auto-tuning grows it with the bandwidth-delay product).
  relayed_tunnel_keeps_its_circuit
      16 MiB over a relayed link (the sink's daemon has no listener, so
      the link goes through a relay) across 40 ms: every byte arrives,
      the relay still holds the circuit afterwards and cut nothing. With
      per-circuit credit (issue 10) the relayed window is no longer
      capped at STREAM_RELAY_WINDOWS (1 MiB): it grows with the
      bandwidth-delay product as a direct one does (printed), while the
      relay holds the sender to RELAY_CREDIT instead of cutting.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "bench"))

import natlab  # noqa: E402
import p2ptest  # noqa: E402
import pathbench  # noqa: E402
from p2ptest import Runner, check, check_eq  # noqa: E402

T = Runner("test_throughput")
MIB = 1024 * 1024
NBYTES = 16 * MIB
RTT_MS = 40
STREAM_WINDOW = 256 * 1024  # core/stream.h


@T.test
def direct_tunnel_across_delay_and_loss():
    p = pathbench.Path(RTT_MS, 0.001, hashing=True)
    try:
        r = p.tunnel(p2ptest.P2PD, "t", nbytes=NBYTES)
    finally:
        p.down()
    print("  %d ms, 0.1%% loss: %.0f Mbit/s, window %s, %.1f writes/MiB at the sink's daemon"
          % (RTT_MS, r.get("mbit", 0), r.get("window"), r.get("writes_per_mib", 0)))
    check_eq((r.get("sent"), r.get("recv")), (NBYTES, NBYTES), "bytes sent and received")
    check(r["intact"], "the sink's SHA-256 matches the sender's: %r", r)
    check(r["alive"], "both daemons still running")
    check(r.get("window") is not None and r["window"] >= STREAM_WINDOW,
          "the sink's daemon reports its window: %r", r.get("window"))


@T.test
def relayed_tunnel_keeps_its_circuit():
    r = pathbench.relayed(p2ptest.P2PD, RTT_MS, NBYTES)
    print("  relayed, %d ms: %.0f Mbit/s, window %s, links %s, circuits %s"
          % (RTT_MS, r.get("mbit", 0), r.get("window"), r.get("links"), r.get("circuits")))
    check_eq((r.get("sent"), r.get("recv")), (NBYTES, NBYTES), "bytes sent and received")
    check(r["intact"], "the sink's SHA-256 matches the sender's: %r", r)
    check_eq(r["links"], ["relay"], "the tunnel's link kind")
    check_eq(r["circuits"], 1, "circuits on the relay after the transfer")
    check("queue is over" not in r["relay_log"], "the relay cut a circuit:\n%s", r["relay_log"])
    check("beyond its credit" not in r["relay_log"], "an end overran its credit:\n%s", r["relay_log"])
    check(r["window"] is not None and r["window"] >= STREAM_WINDOW,
          "the sink's daemon reports its window: %r", r.get("window"))


if __name__ == "__main__":
    natlab.require_lab()
    if not natlab.find_pathemu():
        if os.environ.get("CI") == "true":
            print("FAIL: CI=true and no pathemu (libnetfilter-queue-dev)", flush=True)
            sys.exit(1)
        print("SKIP: no pathemu (needs libnetfilter-queue-dev)", flush=True)
        sys.exit(77)
    T.run()
