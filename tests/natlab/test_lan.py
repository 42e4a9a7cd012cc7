#!/usr/bin/env python3
"""LAN discovery between real daemons on one LAN of the NAT lab (issue 12
item 1; daemon/lan.c, core/lan.c, proto/beacon.c).

One port-preserving router, five hosts on its LAN, no bootstrap peer and
no server anywhere:

  h-a, h-b     p2pd with lan_discovery true
  h-off        p2pd with lan_discovery false
  h-forge      no p2pd: sends beacons made by tests/natlab/lanbeacon.py
  h-flood      no p2pd: the same, ten at once

Asserted:
  - h-a and h-b link to each other within LINK_BOUND_S of starting h-b's
    process (h-b's first beacon at its start reaches h-a, which dials),
    with nothing configured: `peers` on each lists the other at its LAN
    address (10.x.0.y:4242), and each has exactly one peer;
  - h-off opens no socket but its listener and control socket (no UDP
    socket at all), receives beacons of both h-a and h-b on its host
    (seen by a listener joined to the group) and still has no peer, and
    neither h-a nor h-b lists it;
  - beacons made outside p2pd: one with a flipped signature bit, one
    signed 10 minutes in the past, one 10 minutes in the future, then a
    good one, each advertising its own TCP port on h-forge: h-a and h-b
    connect to the good one's port only (datagrams from one sender are
    handled in order, so by the time the good one is dialled the others
    would have been), and their logs say the beacon from h-forge was
    ignored;
  - rate limit per source: ten good beacons from h-flood at once, then
    one more 2.2 s later: each daemon dials the first four
    (P2P_LAN_SRC_BURST) and the late one (one token per 2 s), never the
    other six.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

from p2ptest import check, check_eq, wait_for  # noqa: E402
from test_natlab import World, run_lab  # noqa: E402

LANBEACON = os.path.join(HERE, "lanbeacon.py")
LINK_BOUND_S = 5
T = {}


def build(c, lab):
    w = World(c, lab)
    r = lab.nat("r-lan", "pp", "rst")
    for h in ("h-a", "h-b", "h-off", "h-forge", "h-flood"):
        lab.host(h, r)
    w.daemon("h-off", lab.nodes["h-off"]).start()
    w.daemon("h-a", lab.nodes["h-a"], lan=True).start()
    T["b_started"] = time.monotonic()  # before its process starts
    w.daemon("h-b", lab.nodes["h-b"], lan=True).start()
    return w


def helper(w, host, *args, timeout=40):
    r = subprocess.run(["ip", "netns", "exec", w.lab.nodes[host].ns, sys.executable,
                        LANBEACON] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    check_eq(r.returncode, 0, "lanbeacon %s: %s" % (args[0], r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def peers(d):
    return {p["id"]: p for p in d.req({"cmd": "peers"})["peers"]}


def lan_links_without_configuration(w):
    a, b = w.d["h-a"], w.d["h-b"]
    wait_for(lambda: b.id in peers(a) and a.id in peers(b),
             max(0.1, LINK_BOUND_S - (time.monotonic() - T["b_started"])),
             what="h-a and h-b linked through LAN discovery")
    print("  linked %.2fs after h-b's start" % (time.monotonic() - T["b_started"]))
    pa, pb = peers(a), peers(b)
    check_eq(sorted(pa), [b.id], "h-a's peers")
    check_eq(sorted(pb), [a.id], "h-b's peers")
    check(pa[b.id]["addr"].startswith(w.lab.nodes["h-b"].ip + ":"),
          "h-a sees h-b at its LAN address: %r", pa[b.id])
    check(pb[a.id]["addr"].startswith(w.lab.nodes["h-a"].ip + ":"),
          "h-b sees h-a at its LAN address: %r", pb[a.id])
    check("LAN discovery: found" in a.log_text() + b.log_text(), "log says who was found")


def lan_off_opens_nothing_and_links_nobody(w):
    off, a, b = w.d["h-off"], w.d["h-a"], w.d["h-b"]
    ss = subprocess.run(
        ["ip", "netns", "exec", w.lab.nodes["h-off"].ns, "ss", "-uanp"],
        capture_output=True, text=True, check=True).stdout
    # No LAN discovery socket (port 4243, or a multicast group); port
    # mapping's sockets to the gateway (UDP 5351, SSDP) are another feature.
    lan = [l for l in ss.splitlines() if "p2pd" in l and
           (":4243 " in l or "239.255.42.43" in l or "ff02::4242:4243" in l)]
    check(not lan, "h-off has a LAN discovery socket:\n%s", ss)
    # Beacons of both reach h-off's host (they repeat every 12-18 s).
    want = {w.lab.nodes["h-a"].ip, w.lab.nodes["h-b"].ip}
    seen = set()
    while not want <= seen:
        got = helper(w, "h-off", "listen", 40, 1)["sources"]
        check(got, "no beacon reached h-off's host in 40 s (seen %r)", seen)
        seen |= set(got)
    check_eq(peers(off), {}, "h-off's peers after beacons of h-a and h-b arrived")
    check(off.id not in peers(a) and off.id not in peers(b), "h-a or h-b linked to h-off")
    check("LAN discovery" not in off.log_text(), "h-off logs LAN discovery")


def forged_beacons_ignored(w):
    a, b = w.d["h-a"], w.d["h-b"]
    ips = [w.lab.nodes["h-a"].ip, w.lab.nodes["h-b"].ip]
    r = helper(w, "h-forge", "send", "badsig:9001", "stale:9002", "future:9003", "good:9004",
               "--want=9004", "--from=" + ",".join(ips), "--wait=10")
    check_eq(r["ports"], {"9004": sorted(ips)}, "ports h-a and h-b connected to")
    forge = w.lab.nodes["h-forge"].ip
    for d in (a, b):
        check("LAN discovery: beacon from %s:" % forge in d.log_text(),
              "%s logs the ignored beacon from h-forge", d.name)


def beacons_rate_limited_per_source(w):
    ips = [w.lab.nodes["h-a"].ip, w.lab.nodes["h-b"].ip]
    specs = ["good:%d" % (9101 + i) for i in range(10)]
    specs[-1] += ":2200"
    specs.append("good:9111")
    r = helper(w, "h-flood", "send", *specs, "--want=9111", "--from=" + ",".join(ips),
               "--wait=15", "--grace=1")
    want = {str(p): sorted(ips) for p in (9101, 9102, 9103, 9104, 9111)}
    check_eq(r["ports"], want, "ports h-a and h-b connected to")


TESTS = [lan_links_without_configuration, lan_off_opens_nothing_and_links_nobody,
         forged_beacons_ignored, beacons_rate_limited_per_source]


def main():
    run_lab("p2plan-", build, TESTS)


if __name__ == "__main__":
    main()
