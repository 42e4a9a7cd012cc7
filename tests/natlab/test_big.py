#!/usr/bin/env python3
"""The 100-server overlay (issue 8): relays chosen on purpose and routed
signalling at a size where two NATed clients share no server.

Lab: 100 public servers s000-s099 (one namespace and /24 each), one-way
delay 2-8 ms each (pathemu), and NATed clients, each behind its own
router with 10-25 ms one way and 1% loss on some:

  h-pp1, h-pp2          port-preserving
  h-ei1, h-ei2          endpoint-independent
  h-rnd1 .. h-rnd4      endpoint-dependent (fully random ports)

A client keeps its overlay links to the servers nearest its own ID (20 of
the 100), so two clients whose IDs differ early share none of them, and a
relay that both reach exists only because the requester picks one of the
target's servers on purpose (a lookup of the target's ID names them) and
dials it.

Asserted:
  - every server is a DHT server, every client a client whose servers are
    among the 30 servers nearest its ID (by XOR) and include the 8
    nearest;
  - the pairs used below share no server (chosen among the clients so;
    the ed pairs from up to 6 clients, started until two share none);
  - a routed ping between two such predictable clients goes over the
    overlay (path "relay": no link between them);
  - `connect` between them punches (routed signalling across the
    overlay); the link becomes direct on both ends, and 64 KB through
    `pipe` come back with the same SHA-256;
  - two endpoint-dependent pairs: `connect` answers path/method relay, the
    relayed link's `via` is one of the target's own servers, among the 5
    nearest its ID (those the requester asks first), and not one the
    requester held a client link to; 256 KB through `pipe` come back with
    the same SHA-256; 13 s later (past the overlay's idle close of the
    lookup's links, one of which the circuit runs on) the relayed links are
    still up and 64 KB more come back intact.
"""
import base64
import hashlib
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

import natlab  # noqa: E402
import p2ptest  # noqa: E402
from p2ptest import check, check_eq, wait_for  # noqa: E402
from test_natlab import World, run_lab  # noqa: E402
import test_natlab  # noqa: E402
from test_punch import ECHO, ECHO_PORT, connect, echo_listening, peer_entry  # noqa: E402

SERVERS = 100
SERVER_DELAYS = (2, 4, 6, 8)  # ms one way, a quarter of the servers each
NEAREST = 30  # a client's servers are among this many nearest its ID
MIN_SERVERS = 8  # ... and it holds at least this many
ED_MAX = 6  # endpoint-dependent clients started at most
PP_MAX = 4  # port-preserving clients started at most (h-pp1, h-pp2 and more)
LOOKUP_LINK_IDLE_S = 10  # overlay/internal.h OV_LINK_IDLE_MS
NEAR_ASKED = 5  # core/reach.h P2P_REACH_NEAR_MAX: the target's servers asked first
BOOT_WAVE = 20  # servers started at once, bootstrapping through earlier ones
LIMITS = {"limits": {"handshake_timeout_ms": 5000, "keepalive_ms": 5000,
                     "idle_timeout_ms": 30000}}
CLIENTS = {  # host -> (kind, one-way delay ms, loss)
    "h-pp1": ("pp", 10, 0.01),
    "h-pp2": ("pp", 20, 0.0),
    "h-ei1": ("ei", 15, 0.0),
    "h-ei2": ("ei", 25, 0.01),
    "h-rnd1": ("random", 10, 0.0),
    "h-rnd2": ("random", 20, 0.01),
    "h-rnd3": ("random", 15, 0.0),
    "h-rnd4": ("random", 10, 0.0),
}
FIGURES = []


def idint(text):
    """A peer ID's text (base32, 52 characters) as an integer: XOR of two
    is their distance."""
    return int.from_bytes(base64.b32decode(text.upper() + "===="), "big")


def servers_of(w, h):
    """The servers h holds overlay links to (IDs)."""
    sids = w.server_ids
    return {p["id"] for p in w.d[h].req({"cmd": "peers"})["peers"]
            if p["id"] in sids and p.get("link") == "overlay"}


def start_client(w, h, kind, delay, loss):
    lab = w.lab
    w.routers[h] = lab.nat("r" + h[1:], kind, delay_ms=delay, loss=loss)
    lab.host(h, w.routers[h])
    boot = w.rng.sample(w.servers, 3)
    w.daemon(h, lab.nodes[h], boot).start()
    lab.popen(lab.nodes[h], ["python3", "-c", ECHO])


def settle_client(w, h):
    d = w.d[h]
    wait_for(lambda: d.status()["nat"]["type"] != "unknown", 60, what="%s classified" % h)
    wait_for(lambda: len(servers_of(w, h)) >= MIN_SERVERS, 60,
             what="%s linked to %d servers" % (h, MIN_SERVERS))
    wait_for(lambda: echo_listening(w.lab, h), 15, what="%s echo service" % h)
    check_eq(d.ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0,
             "expose on %s" % h)


def build(c, lab):
    test_natlab.LIMITS = LIMITS
    natlab.raise_gc_thresh()
    w = World(c, lab)
    w.rng = random.Random(8)
    w.kept = {}
    names = ["s%03d" % i for i in range(SERVERS)]
    pubs = lab.publics(names)
    q = len(pubs) // len(SERVER_DELAYS)
    for i, delay in enumerate(SERVER_DELAYS):
        lab.paths(pubs[i * q:(i + 1) * q] if i + 1 < len(SERVER_DELAYS) else pubs[i * q:],
                  delay, jitter_ms=1)
    t0 = time.monotonic()
    first = [w.daemon(names[i], pubs[i], [w.d[n] for n in names[:i]]).start() for i in range(3)]
    w.servers = list(first)
    rest = names[3:]
    for k in range(0, len(rest), BOOT_WAVE):
        wave = [w.daemon(n, lab.nodes[n], w.rng.sample(w.servers, 3)) for n in rest[k:k + BOOT_WAVE]]
        for d in wave:
            d.start(wait=False)
        for d in wave:
            d.wait_ready(30)
        w.servers += wave
    # s000 dialled nobody: one outgoing link tells it its own address.
    check(w.d["s000"].req({"cmd": "bootstrap", "addr": w.d["s002"].addr}, timeout=30).get("ok"),
          "s000 bootstrap through s002")
    for d in w.servers:
        wait_for(lambda: d.status()["dht"]["mode"] == "server", 90,
                 what="%s to become a DHT server" % d.name)
    w.server_ids = {d.id for d in w.servers}
    FIGURES.append("%d servers up and DHT servers after %.1f s" % (SERVERS, time.monotonic() - t0))
    t0 = time.monotonic()
    for h, (kind, delay, loss) in CLIENTS.items():
        start_client(w, h, kind, delay, loss)
    for h in CLIENTS:
        settle_client(w, h)
    FIGURES.append("%d clients classified and linked after %.1f s" % (
        len(CLIENTS), time.monotonic() - t0))
    return w


def nearest_servers(w, h, k):
    me = idint(w.d[h].id)
    return set(sorted(w.server_ids, key=lambda s: idint(s) ^ me)[:k])


def disjoint_pair(w, hosts):
    """Two of hosts (in order) whose kept servers share nothing, or None."""
    sets = {h: w.kept[h] if h in w.kept else kept_servers(w, h) for h in hosts}
    for i, a in enumerate(hosts):
        for b in hosts[i + 1:]:
            if not sets[a] & sets[b]:
                return a, b, sets[a], sets[b]
    return None


def kept_servers(w, h):
    """The servers h keeps links to, once the links its join's lookups
    opened have closed (idle 10 s): those nearest its ID, no others.
    Remembered in w.kept: later lookups (a connect) open more links for a
    while, and a relay's circuit holds one."""
    near, nearest = nearest_servers(w, h, NEAREST), nearest_servers(w, h, MIN_SERVERS)

    def kept():
        mine = servers_of(w, h)
        return mine if mine <= near and nearest <= mine else None
    try:
        w.kept[h] = wait_for(kept, 40, what="%s to keep only servers near its ID" % h)
    except AssertionError:
        why_not_kept(w, h, servers_of(w, h), near, nearest)
        raise
    finally:
        mine = servers_of(w, h)
        print("  %-7s nat %-21s servers %d, %d of them among the %d nearest its ID, "
              "%d of the %d nearest" % (h, w.d[h].status()["nat"]["type"], len(mine),
                                        len(mine & near), NEAREST, len(mine & nearest),
                                        MIN_SERVERS))
    return w.kept[h]


def why_not_kept(w, h, mine, near, nearest):
    """The evidence a flaky kept_servers failure needs (it failed in CI and
    not in 13 runs here): for each near server h lacks and each far one it
    holds, its rank by distance and what h's and that server's logs say of
    each other (the overlay's debug lines name failed entries, unanswered
    FIND_NODEs and lost kept links)."""
    names = {d.id: d for d in w.servers}
    me = idint(w.d[h].id)
    order = sorted(w.server_ids, key=lambda s: idint(s) ^ me)
    for sid in sorted(nearest - mine, key=order.index) + sorted(mine - near, key=order.index):
        d = names[sid]
        print("  %s: %s, rank %d by distance to %s" % (
            d.name, "missing" if sid in nearest else "held but far", order.index(sid), h))
        for who, text, other in ((h, w.d[h].log_text(), sid), (d.name, d.log_text(), w.d[h].id)):
            lines = [ln for ln in text.splitlines() if other in ln]
            print("    %s's log on it (%d lines, last 12):" % (who, len(lines)))
            for ln in lines[-12:]:
                print("      " + ln)


def test_servers_and_clients(w):
    for d in w.servers[::10]:
        st = d.status()
        check_eq((st["nat"]["type"], st["dht"]["mode"]), ("none", "server"), d.name)
    for h in CLIENTS:
        check_eq(w.d[h].status()["dht"]["mode"], "client", "%s dht.mode" % h)
        kept_servers(w, h)


def pipe_hash(a, b, n):
    data = os.urandom(n)
    p = subprocess.run([p2ptest.P2PCTL, "-s", a.sock, "pipe", b.id, "echo"], input=data,
                       capture_output=True, timeout=90)
    check_eq(p.returncode, 0, "pipe %s -> %s (stderr %r)" % (a.name, b.name, p.stderr))
    check_eq(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(data).hexdigest(),
             "SHA-256 of what came back through %s -> %s" % (a.name, b.name))


def test_routed_signalling_punch(w):
    """Two predictable clients with no server in common: a routed ping,
    then a punched link, signalled across the overlay."""
    # IDs are random: the four predictable clients may all share servers
    # (one CI run here: each kept 20-22 of the 100, every pair shared one).
    # More port-preserving ones are started until two share none.
    while True:
        hosts = [h for h in w.d if h.startswith("h-pp") or h.startswith("h-ei")]
        pair = disjoint_pair(w, hosts)
        npp = len([h for h in hosts if h.startswith("h-pp")])
        if pair is not None or npp >= PP_MAX:
            break
        h = "h-pp%d" % (npp + 1)
        print("  starting %s: no two predictable clients without a common server" % h)
        start_client(w, h, "pp", 10, 0.0)
        settle_client(w, h)
        kept_servers(w, h)
    check(pair is not None, "no two predictable clients without a common server")
    x, y, sx, sy = pair
    check(not sx & sy, "%s and %s share servers", x, y)
    print("  %s (%d servers) and %s (%d servers): none shared" % (x, len(sx), y, len(sy)))
    a, b = w.d[x], w.d[y]
    check(peer_entry(a, b.id) is None, "%s already linked to %s" % (x, y))
    r = a.req({"cmd": "ping", "peer": b.id}, timeout=30)
    print("  ping %s -> %s: %r" % (x, y, r))
    check(r.get("ok") is True, "routed ping %s -> %s: %r", x, y, r)
    check_eq(r.get("path"), "relay", "ping path (routed over the overlay)")
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs) %s" % (
        x, y, r.returncode, r.stdout.strip(), took, r.stderr.strip()), flush=True)
    check_eq(r.returncode, 0, "connect %s -> %s (stderr %r)" % (x, y, r.stderr))
    check(j.get("method") in ("punch", "relay"), "method %r" % j.get("method"))
    wait_for(lambda: (peer_entry(a, b.id) or {}).get("link") == "direct", 20,
             what="a direct link %s -> %s" % (x, y))
    wait_for(lambda: (peer_entry(b, a.id) or {}).get("link") == "direct", 10,
             what="a direct link %s -> %s" % (y, x))
    FIGURES.append("%s -> %s: %s/%s in %.0f ms (host rtt %d ms)" % (
        x, y, j.get("path"), j.get("method"), took * 1000,
        w.lab.rtt_ms(w.lab.nodes[x], w.lab.nodes[y])))
    pipe_hash(a, b, 64 * 1024)


def ed_pairs(w, want):
    """want pairs of endpoint-dependent clients, each pair without a common
    server; more clients are started (up to ED_MAX) until there are."""
    pairs = []
    while True:
        hosts = [h for h in w.d if h.startswith("h-rnd")]
        used = set()
        pairs = []
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                if len(pairs) < want and (a, b) not in used and \
                        not w.kept[a] & w.kept[b]:
                    pairs.append((a, b))
                    used.add((a, b))
        if len(pairs) >= want or len(hosts) >= ED_MAX:
            return pairs
        h = "h-rnd%d" % (len(hosts) + 1)
        print("  starting %s: too few endpoint-dependent pairs without a common server" % h)
        start_client(w, h, "random", 10, 0.0)
        settle_client(w, h)
        kept_servers(w, h)


def test_relayed_through_the_targets_server(w):
    pairs = ed_pairs(w, 2)
    check(len(pairs) == 2, "endpoint-dependent pairs without a common server: %r", pairs)
    for x, y in pairs:
        a, b = w.d[x], w.d[y]
        sx, sy = w.kept[x], w.kept[y]
        check(not sx & sy, "%s and %s share servers", x, y)
        r, j, took = connect(a, b)
        print("  connect %s -> %s: exit %d %s (%.2fs) %s" % (
            x, y, r.returncode, r.stdout.strip(), took, r.stderr.strip()), flush=True)
        check_eq(r.returncode, 0, "connect %s -> %s (stderr %r)" % (x, y, r.stderr))
        check_eq((j.get("path"), j.get("method")), ("relay", "relay"),
                 "connect %s -> %s" % (x, y))
        e = peer_entry(a, b.id)
        check(e is not None and e.get("link") == "relay", "%s's link to %s: %r", x, y, e)
        via = e.get("via")
        names = {d.id: d.name for d in w.servers}
        dialled = ("reach: dialling %s " % via) in a.log_text()
        print("  relayed via %s: one of %s's %d servers: %s; one of %s's: %s; %s dialled it "
              "to relay: %s" % (names.get(via, via), y, len(sy), via in sy, x, via in sx, x,
                                dialled))
        check(via in sy, "the relay %s is not one of the target's servers", names.get(via, via))
        # Asked on purpose: the target's nearest servers come first.
        check(via in nearest_servers(w, y, NEAR_ASKED), "the relay %s is not among the %d "
              "servers nearest the target's ID", names.get(via, via), NEAR_ASKED)
        check(via not in sx, "the relay is one of the requester's own servers")
        FIGURES.append("%s -> %s: relay via %s in %.0f ms (host rtt %d ms)" % (
            x, y, names.get(via, via), took * 1000,
            w.lab.rtt_ms(w.lab.nodes[x], w.lab.nodes[y])))
        pipe_hash(a, b, 256 * 1024)
    # The requester's link to the relay was opened by its lookup, which the
    # overlay closes after 10 s without overlay traffic (RELAY_DATA is not
    # that): a circuit on it must keep it.
    time.sleep(LOOKUP_LINK_IDLE_S + 3)
    for x, y in pairs:
        a, b = w.d[x], w.d[y]
        e = peer_entry(a, b.id)
        check(e is not None and e.get("link") == "relay",
              "%s's relayed link to %s after %d s: %r", x, y, LOOKUP_LINK_IDLE_S + 3, e)
        pipe_hash(a, b, 64 * 1024)


TESTS = [test_servers_and_clients, test_routed_signalling_punch,
         test_relayed_through_the_targets_server]


def main():
    run_lab("p2pbig-", build, TESTS, tail=20, figures=FIGURES)


if __name__ == "__main__":
    main()
