#!/usr/bin/env python3
"""Connecting over real paths (issue 8): the NAT pairings of test_punch.py
with path delay, jitter and loss on every site (tools/natlab pathemu),
10-150 ms one way per site and 0-3% loss.

Sites (router WAN link: one-way delay ms, loss):

  s1, s2, s3     public servers, 10/15/20 ms, jitter 2 ms
  h-pp1  pp   30 ms 1%      h-pp2  pp  120 ms 2%
  h-ei1  ei   60 ms 3%      h-ei2  ei  150 ms
  h-rnd1 rnd  50 ms 1%      h-rnd2 rnd  90 ms
  h-drop pp, unsolicited SYNs dropped, 80 ms 1%
  h-dbl  pp behind pp (double NAT), the outer 40 ms
  h-a, h-b  behind one pp NAT, 20 ms
  h-ka   pp, 40 ms, conntrack keeps an idle TCP mapping 8 s only and a
         forgotten one does not come back (remap); its daemon's keepalive
         is 3 s

Asserted:
  - every punchable pairing (pp-pp, ei-pp, ei-ei, the two hosts behind one
    NAT, drop-ei; double NAT-pp gets a link, direct or relayed: its punch
    still fails now and then with delays) gets a direct link: `connect` answers
    punch, or it answers relay (relays are asked in parallel and serve
    when the punch is slow) and the direct link follows in the background;
    then 200 KB through `pipe` to an echo service come back with the same
    SHA-256, over the direct link (the servers relay none of it);
  - rnd-pp and rnd-rnd are relayed, promptly (never after the whole punch
    schedule), and 200 KB come back intact;
  - the slowest pair (ei2-pp2, ~540 ms host round trip): whichever link
    came first, later tunnels take the direct one;
  - `disconnect` then `connect` again: a fresh link (not "existing");
  - mapping expiry: h-ka's router forgets idle mappings after 8 s; its
    links to the servers stay up across 20 s (keepalive below the NAT
    timeout), and a routed connect to it still works;
  - NAT reboot (conntrack flush of h-rnd1's router) while a relayed tunnel
    to h-rnd1 is open: the tunnel's pipe ends with exit 1 and "the tunnel
    was reset" (no hang);
    h-rnd1's overlay links re-form and `connect` to it works again.
Figures: per pairing the connect time as a multiple of the pair's host
round trip and of the signalling round trip the daemon measured.
"""
import hashlib
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

import p2ptest  # noqa: E402
from p2ptest import check, check_eq, wait_for  # noqa: E402
from test_natlab import World, nat_type, run_lab  # noqa: E402
import test_natlab  # noqa: E402
from test_punch import (ECHO, ECHO_PORT, connect, echo_listening,  # noqa: E402
                        peer_entry, relay_status)

# Delays and loss make handshakes slower; keepalive short so that a NAT
# reboot is noticed within seconds.
LIMITS = {"limits": {"handshake_timeout_ms": 6000, "keepalive_ms": 5000,
                     "idle_timeout_ms": 30000}}
KA_LIMITS = {"limits": {"handshake_timeout_ms": 6000, "keepalive_ms": 3000,
                        "idle_timeout_ms": 30000}}
KA_TIMEOUT_S = 8

SITES = {  # host -> (kind, filtering, delay ms, loss)
    "h-pp1": ("pp", "rst", 30, 0.01),
    "h-pp2": ("pp", "rst", 120, 0.02),
    "h-ei1": ("ei", "rst", 60, 0.03),
    "h-ei2": ("ei", "rst", 150, 0.0),
    "h-rnd1": ("random", "rst", 50, 0.01),
    "h-rnd2": ("random", "rst", 90, 0.0),
    "h-drop": ("pp", "drop", 80, 0.01),
}
SERVERS = (("s1", 10), ("s2", 15), ("s3", 20))
CLIENTS = list(SITES) + ["h-dbl", "h-a", "h-b", "h-ka"]
FIGURES = []
DATA_LEN = 200 * 1024


# tools/bench/connect-matrix only (build(portmap=True)): an
# endpoint-dependent NAT whose router runs miniupnpd, 50 ms; its host's
# daemon maps its listen port (issue 11's port-mapping rows).
MAP_SITE = ("h-map", "random", 50)


def build(c, lab, portmap=False):
    test_natlab.LIMITS = LIMITS  # every LabDaemon gets these limits
    w = World(c, lab)
    clients = list(CLIENTS)
    pubs = [lab.public(n, delay_ms=d, jitter_ms=2) for n, d in SERVERS]
    for h, (kind, filt, delay, loss) in SITES.items():
        w.routers[h] = lab.nat("r" + h[1:], kind, filt, delay_ms=delay, loss=loss)
        lab.host(h, w.routers[h])
    outer = lab.nat("r-outer", "pp", "rst", delay_ms=40)
    w.routers["h-dbl"] = lab.nat("r-inner", "pp", "rst", upstream=outer)
    lab.host("h-dbl", w.routers["h-dbl"])
    shared = lab.nat("r-shared", "pp", "rst", delay_ms=20)
    w.routers["h-a"] = w.routers["h-b"] = shared
    lab.host("h-a", shared)
    lab.host("h-b", shared)
    # remap: an expired mapping does not come back on our next packet
    # (natlab.py, "Mapping expiry"); without it no link could drop here.
    # The servers' own 5 s keepalive (LIMITS) refreshes it too: h-ka's
    # learning from expiry is natlab-keepalive's.
    w.routers["h-ka"] = lab.nat("r-ka", "pp", "rst", delay_ms=40, remap=True,
                                timeouts={"tcp_timeout_established": KA_TIMEOUT_S})
    lab.host("h-ka", w.routers["h-ka"])
    if portmap:
        h, kind, delay = MAP_SITE
        w.routers[h] = lab.nat("r" + h[1:], kind, "rst", delay_ms=delay,
                               portmap="miniupnpd")
        lab.host(h, w.routers[h])
        clients.append(h)
    s1 = w.daemon("s1", pubs[0]).start()
    s2 = w.daemon("s2", pubs[1], [s1]).start()
    s3 = w.daemon("s3", pubs[2], [s1, s2]).start()
    wait_for(lambda: len(s1.peer_ids()) >= 2, 20, what="s1 to hear of s2 and s3")
    servers = [s1, s2, s3]
    for h in clients:
        d = w.daemon(h, lab.nodes[h], servers)
        if h == "h-ka":
            d.config = KA_LIMITS
        d.start()
    for h in clients:
        wait_for(lambda: nat_type(w.d[h]) != "unknown", 45, what="%s classified" % h)
        wait_for(lambda: w.d[h].status()["peers"] >= 3, 45, what="%s linked to the servers" % h)
        lab.popen(lab.nodes[h], ["python3", "-c", ECHO])
    for h in clients:
        wait_for(lambda: echo_listening(lab, h), 15, what="%s echo service" % h)
        check_eq(w.d[h].ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0,
                 "expose on %s" % h)
    return w


def host_rtt(w, x, y):
    return w.lab.rtt_ms(w.lab.nodes[x], w.lab.nodes[y])


def sig_rtt(d, peer_id):
    """The signalling round trip d's last punch with peer_id measured."""
    m = None
    for m in re.finditer(r"punch %s: peer .* signalling rtt (\d+) ms" % peer_id, d.log_text()):
        pass
    return int(m.group(1)) if m else None


def pipe_hash(a, b, data, timeout=90):
    p = subprocess.run([p2ptest.P2PCTL, "-s", a.sock, "pipe", b.id, "echo"], input=data,
                       capture_output=True, timeout=timeout)
    check_eq(p.returncode, 0, "pipe %s -> %s (stderr %r)" % (a.name, b.name, p.stderr))
    check_eq(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(data).hexdigest(),
             "SHA-256 of what came back through %s -> %s" % (a.name, b.name))


def figure(w, x, y, j, took):
    a, b = w.d[x], w.d[y]
    rtt = max(host_rtt(w, x, y), 1)  # behind one NAT: the LAN's
    srtt = sig_rtt(a, b.id)
    FIGURES.append("%s -> %s: %s/%s %.0f ms = %.1f host rtt (%d ms)%s" % (
        x, y, j.get("path"), j.get("method"), took * 1000, took * 1000 / rtt, rtt,
        ", %.1f signalling rtt (%d ms)" % (took * 1000 / srtt, srtt) if srtt else ""))


def fresh(w, x, y):
    a, b = w.d[x], w.d[y]
    if peer_entry(a, b.id) is not None:
        a.ctl("disconnect", b.id)
        wait_for(lambda: peer_entry(a, b.id) is None and peer_entry(b, a.id) is None, 10,
                 what="%s and %s unlinked" % (x, y))


def punched(w, x, y, direct=True):
    """x connects to y over delayed paths: a direct link, now or soon
    (direct=False: a link, direct if the punch managed it)."""
    a, b = w.d[x], w.d[y]
    fresh(w, x, y)
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs) %s" % (
        x, y, r.returncode, r.stdout.strip(), took, r.stderr.strip()), flush=True)
    check_eq(r.returncode, 0, "connect %s -> %s (stderr %r)" % (x, y, r.stderr))
    check(j.get("method") in ("punch", "relay"), "method %r" % j.get("method"))
    figure(w, x, y, j, took)
    if os.environ.get("P2PTEST_VERBOSE"):
        for d, other in ((a, b), (b, a)):
            for line in d.log_text().splitlines():
                if ("punch %s" % other.id) in line or "relay" in line:
                    print("    %s: %s" % (d.name, line))
    if not direct:
        pipe_hash(a, b, os.urandom(DATA_LEN))
        FIGURES.append("%s -> %s: link after the tunnel %s" % (
            x, y, (peer_entry(a, b.id) or {}).get("link")))
        return
    # Relayed first (the punch was slower than the grace): upgraded later.
    wait_for(lambda: (peer_entry(a, b.id) or {}).get("link") == "direct", 20,
             what="a direct link %s -> %s" % (x, y))
    wait_for(lambda: (peer_entry(b, a.id) or {}).get("link") == "direct", 10,
             what="a direct link %s -> %s" % (y, x))
    _, bytes0 = relay_status(w)
    pipe_hash(a, b, os.urandom(DATA_LEN))
    _, bytes1 = relay_status(w)
    check(bytes1 - bytes0 < DATA_LEN, "the tunnel went through a relay (%d bytes relayed)"
          % (bytes1 - bytes0))


# Not asserted direct either: a punch leaves from the listen port to the
# peer's listen port, always the same four-tuple, and after an earlier link
# between the two closed that tuple may still be in TIME_WAIT on one side
# ("connect ...: address not available" in the log), so a repeated punch
# can fail where the first worked. Seen in CI runs; issue 8 is open on it.
def test_pp_pp(w):
    punched(w, "h-pp1", "h-pp2", direct=False)


def test_ei_pp(w):
    punched(w, "h-ei1", "h-pp1", direct=False)


def test_ei_ei(w):
    punched(w, "h-ei2", "h-ei1")


def test_same_nat_lan(w):
    punched(w, "h-a", "h-b")


def test_drop_filtering(w):
    punched(w, "h-drop", "h-ei2")


def test_double_nat(w):
    # Not asserted direct: with delays the punch through two NATs still
    # fails now and then (the TTL of the primes; issue 8 is open on it).
    punched(w, "h-dbl", "h-pp2", direct=False)


def relayed(w, x, y, bound):
    a, b = w.d[x], w.d[y]
    fresh(w, x, y)
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs) %s" % (
        x, y, r.returncode, r.stdout.strip(), took, r.stderr.strip()), flush=True)
    check_eq(r.returncode, 0, "connect %s -> %s (stderr %r)" % (x, y, r.stderr))
    check_eq((j.get("path"), j.get("method")), ("relay", "relay"), "connect %s -> %s" % (x, y))
    check(took < bound, "%s -> %s relayed after %.1f s, bound %d s" % (x, y, took, bound))
    figure(w, x, y, j, took)
    pipe_hash(a, b, os.urandom(DATA_LEN))


def test_rnd_pp_relayed_promptly(w):
    # Never the whole punch schedule (8 s): the relay was asked alongside.
    relayed(w, "h-rnd1", "h-pp1", 6)


def test_rnd_rnd_relayed(w):
    relayed(w, "h-rnd2", "h-rnd1", 6)


def test_slow_pair_later_tunnels_direct(w):
    """ei2 (150 ms) to pp2 (120 ms): whatever answered first, once the
    direct link is up new tunnels use it."""
    a, b = w.d["h-ei2"], w.d["h-pp2"]
    fresh(w, "h-ei2", "h-pp2")
    t0 = time.monotonic()
    p = subprocess.run([p2ptest.P2PCTL, "-s", a.sock, "pipe", b.id, "echo"], input=b"first\n",
                       capture_output=True, timeout=60)
    first = time.monotonic() - t0
    check_eq((p.returncode, p.stdout), (0, b"first\n"), "first tunnel")
    wait_for(lambda: (peer_entry(a, b.id) or {}).get("link") == "direct", 20,
             what="the direct link h-ei2 -> h-pp2")
    _, bytes0 = relay_status(w)
    pipe_hash(a, b, os.urandom(DATA_LEN))
    _, bytes1 = relay_status(w)
    check(bytes1 - bytes0 < DATA_LEN, "a later tunnel went through a relay")
    FIGURES.append("h-ei2 -> h-pp2: first tunnel's echo after %.0f ms = %.1f host rtt" % (
        first * 1000, first * 1000 / host_rtt(w, "h-ei2", "h-pp2")))


def test_disconnect_then_fresh_connect(w):
    a, b = w.d["h-pp1"], w.d["h-pp2"]
    if peer_entry(a, b.id) is None:
        check_eq(connect(a, b)[0].returncode, 0, "connect")
    r = a.ctl("--json", "disconnect", b.id)
    check_eq(r.returncode, 0, "disconnect (stderr %r)" % r.stderr)
    wait_for(lambda: peer_entry(a, b.id) is None and peer_entry(b, a.id) is None, 10,
             what="both ends unlinked")
    r, j, took = connect(a, b)
    check_eq(r.returncode, 0, "connect again")
    check(j.get("method") in ("punch", "relay"), "a fresh link, not %r" % j.get("method"))


def test_mapping_expiry_keepalive(w):
    """h-ka's NAT forgets a mapping idle for 8 s; the keepalive (3 s)
    keeps its overlay links, so nothing drops and it stays reachable."""
    ka = w.d["h-ka"]
    before = {p["id"] for p in ka.req({"cmd": "peers"})["peers"]}
    downs0 = ka.log_text().count("link down")
    time.sleep(2.5 * KA_TIMEOUT_S)
    after = {p["id"] for p in ka.req({"cmd": "peers"})["peers"]}
    check(before <= after, "links lost across the NAT timeout: %s" % (before - after))
    check_eq(ka.log_text().count("link down"), downs0, "links that went down")
    r, j, _ = connect(w.d["h-pp1"], ka)
    check_eq(r.returncode, 0, "connect to h-ka after the NAT timeout (stderr %r)" % r.stderr)


def test_nat_reboot(w):
    """r-rnd1 forgets its mappings while a relayed tunnel to h-rnd1 is
    open: the tunnel ends with an error, links re-form, connect works."""
    a, b = w.d["h-rnd2"], w.d["h-rnd1"]
    lab = w.lab
    if peer_entry(a, b.id) is None:
        check_eq(connect(a, b)[0].returncode, 0, "connect before the reboot")
    p = subprocess.Popen([p2ptest.P2PCTL, "-s", a.sock, "pipe", b.id, "echo"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"before\n")
    p.stdin.flush()
    check_eq(p.stdout.readline(), b"before\n", "echo before the reboot")
    lab.reboot(w.routers["h-rnd1"])
    t0 = time.monotonic()
    # Bytes towards h-rnd1 now meet a NAT that knows no mapping.
    try:
        for _ in range(20):
            p.stdin.write(b"after\n" * 100)
            p.stdin.flush()
            time.sleep(0.5)
            if p.poll() is not None:
                break
    except BrokenPipeError:
        pass
    try:
        rc = p.wait(timeout=45)  # bounded by the idle timeout (30 s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise AssertionError("the tunnel's pipe hangs after the NAT reboot")
    took = time.monotonic() - t0
    # The tunnel is reset when its link goes: the daemon closes the
    # control socket outright (no half-close), and `pipe`, whose stdin is
    # still open, says so and exits 1.
    err = p.stderr.read().decode(errors="replace")
    check_eq(rc, 1, "the broken tunnel's pipe exit code (stderr %r)" % err)
    check("tunnel was reset" in err, "pipe's message: %r" % err)
    FIGURES.append("NAT reboot: broken tunnel's pipe ended (exit %d) after %.1f s" % (rc, took))
    wait_for(lambda: b.status()["peers"] >= 3, 60, what="h-rnd1's links to re-form")
    r, j, _ = connect(a, b)
    check_eq(r.returncode, 0, "connect after the reboot (stderr %r)" % r.stderr)
    pipe_hash(a, b, os.urandom(32 * 1024))
    FIGURES.append("NAT reboot: connect again %s/%s in %.0f ms" % (
        j.get("path"), j.get("method"), j.get("ms", 0)))


TESTS = [test_pp_pp, test_ei_pp, test_ei_ei, test_same_nat_lan, test_drop_filtering,
         test_double_nat, test_rnd_pp_relayed_promptly, test_rnd_rnd_relayed,
         test_slow_pair_later_tunnels_direct, test_disconnect_then_fresh_connect,
         test_mapping_expiry_keepalive, test_nat_reboot]


def main():
    run_lab("p2ppath-", build, TESTS, tail=30, figures=FIGURES)


if __name__ == "__main__":
    main()
