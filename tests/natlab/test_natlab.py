#!/usr/bin/env python3
"""Real p2pd daemons in the NAT lab (tools/natlab).

Three public bootstrap servers (s1-s3, each on its own /24 so that they
are three different observers) and NATed daemons, one per NAT kind:

  h-pp      port-preserving (masquerade)             -> port-preserving
  h-ei      endpoint-independent, port ^ 0x4000      -> endpoint-independent
  h-random  masquerade fully-random                  -> endpoint-dependent
  h-drop    port-preserving, unsolicited SYN dropped -> port-preserving
            (filtering does not change the mapping; the servers'
            dial-backs time out instead of being refused)
  h-double  port-preserving behind port-preserving   -> port-preserving
            (both keep the port, so end to end the port is kept; the
            external address is the outer router's)
  h-a, h-b  two daemons behind one port-preserving NAT, same listen port:
            h-a (first) keeps it -> port-preserving; h-b's connections
            to the same servers must be moved to other ports: the kernel
            picks them -> endpoint-independent (one replacement port for
            every server, what this kernel did in every run here) or
            endpoint-dependent; both are accepted

Every daemon listens on 0.0.0.0:4242 and dials from that port. Asserted
over the control sockets: public nodes are nat.type "none" and DHT servers;
NATed nodes are DHT clients although they asked for dial-backs (which the
servers' logs show failing: reset, or a timeout behind the dropping NAT),
their nat.type matches their NAT and nat.external shows the router's public
IP. A ping from one NATed client to a client behind another NAT is routed
through the servers (path "relay"), and a lookup of a client answers as the
overlay defines it (see lookup_of_a_client).
"""
import faulthandler
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

import natlab  # noqa: E402
import p2ptest  # noqa: E402
from p2ptest import Cluster, Daemon, check, check_eq, wait_for  # noqa: E402

PORT = 4242
# Short handshake timeout: a dial-back into the dropping NAT gives up in 3 s.
LIMITS = {"limits": {"handshake_timeout_ms": 3000}}
KIND_OF = {  # host -> (router kind, filtering, expected nat.type)
    "h-pp": ("pp", "rst", "port-preserving"),
    "h-ei": ("ei", "rst", "endpoint-independent"),
    "h-random": ("random", "rst", "endpoint-dependent"),
    "h-drop": ("pp", "drop", "port-preserving"),
}


class LabDaemon(Daemon):
    """A daemon inside a lab namespace, listening on 0.0.0.0:PORT."""

    def __init__(self, cluster, name, node, **kw):
        # LIMITS, read when made (test_paths swaps it); lan_discovery is
        # off (p2ptest.Daemon's default) so that hosts behind one router
        # do not link over their LAN before a test punches: a test that
        # wants LAN discovery passes lan=True.
        kw.setdefault("portmap", True)  # the gateway is a lab router
        super().__init__(cluster, name, host=node.ip, port=PORT, config=LIMITS, **kw)
        self.node = node

    def argv(self, bootstrap=None):
        a = super().argv(bootstrap)
        a[a.index("-l") + 1] = "0.0.0.0:%d" % PORT
        # `ip netns exec` execs p2pd: the PID Cluster signals is p2pd's.
        return ["ip", "netns", "exec", self.node.ns] + a

    def status(self):
        return self.req({"cmd": "status"})

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


def nat_type(d):
    return d.status()["nat"]["type"]


class World:
    def __init__(self, c, lab):
        self.c, self.lab = c, lab
        self.d = {}
        self.routers = {}

    def daemon(self, name, node, boot=(), **kw):
        d = LabDaemon(self.c, name, node, bootstrap=boot, **kw)
        self.c.daemons.append(d)
        self.d[name] = d
        return d


def build(c, lab):
    w = World(c, lab)
    pubs = [lab.public(n) for n in ("s1", "s2", "s3")]
    for h, (kind, filt, _) in KIND_OF.items():
        w.routers[h] = lab.nat("r" + h[1:], kind, filt)
        lab.host(h, w.routers[h])
    outer = lab.nat("r-outer", "pp")
    w.routers["h-double"] = lab.nat("r-inner", "pp", upstream=outer)
    lab.host("h-double", w.routers["h-double"])
    shared = lab.nat("r-shared", "pp")
    w.routers["h-a"] = w.routers["h-b"] = shared
    lab.host("h-a", shared)
    lab.host("h-b", shared)

    s1 = w.daemon("s1", pubs[0]).start()
    s2 = w.daemon("s2", pubs[1], [s1]).start()
    s3 = w.daemon("s3", pubs[2], [s1, s2]).start()
    # s1 is the first node: it dialled nobody, so it has no observation of
    # its own address. One outgoing link gives it one (a `bootstrap`
    # through a peer it already holds dials from a fresh port).
    wait_for(lambda: len(s1.peer_ids()) >= 2, 15, what="s1 to hear of s2 and s3")
    r = s1.req({"cmd": "bootstrap", "addr": s3.addr}, timeout=20)
    check(r.get("ok") is True, "s1 bootstrap through s3: %r", r)
    servers = [s1, s2, s3]
    for h in list(KIND_OF) + ["h-double", "h-a"]:
        w.daemon(h, lab.nodes[h], servers).start()
    # h-b only once h-a's mappings exist: the NAT then has to move h-b.
    wait_for(lambda: nat_type(w.d["h-a"]) == "port-preserving", 20,
             what="h-a to classify its NAT")
    w.daemon("h-b", lab.nodes["h-b"], servers).start()
    return w


def test_public_nodes(w):
    for n in ("s1", "s2", "s3"):
        st = wait_for(lambda: (lambda s: s if s["nat"]["type"] == "none"
                               and s["dht"]["mode"] == "server" else None)(w.d[n].status()),
                      20, what="%s: nat none, server" % n)
        print("  %s: nat %s external %s dht %s" % (n, st["nat"]["type"], st["nat"]["external"],
                                                  st["dht"]["mode"]))
        # The IP is the node's own; the port is whichever its outgoing
        # links left from (s1's only outgoing link went to a peer that
        # already held a link to its listen port: same four-tuple, so
        # the dial fell back to an ephemeral port).
        check(st["nat"]["external"][0].startswith(w.d[n].node.ip + ":"),
              "%s external %r is its own address", n, st["nat"]["external"])


def settled_type(d, want, timeout=20):
    """Wait for want; then the type must stay put for a while."""
    try:
        wait_for(lambda: nat_type(d) == want, timeout, what="%s nat.type %s" % (d.name, want))
    except AssertionError:
        pass
    return nat_type(d)


def dialback_failures(w, router_ip):
    """Lines of the servers' logs about dial-backs to router_ip that failed."""
    lines = []
    for n in ("s1", "s2", "s3"):
        for line in w.d[n].log_text().splitlines():
            if router_ip + ":" in line and ("dial " in line or "handshake timeout" in line):
                lines.append("%s: %s" % (n, line.strip()))
    return lines


def test_nated_nodes(w):
    expect = {h: t for h, (_, _, t) in KIND_OF.items()}
    # Two port-preserving NATs in a row still preserve the port end to end.
    expect["h-double"] = "port-preserving"
    expect["h-a"] = "port-preserving"
    seen = {}
    for h, want in expect.items():
        seen[h] = settled_type(w.d[h], want)
    # h-b: same listen port, same servers, behind the NAT h-a already
    # holds those mappings on: masquerade must give h-b other ports. Which
    # ones is the kernel's choice (a port per connection, or the same
    # replacement port for every server): endpoint-dependent or
    # endpoint-independent, never port-preserving or none.
    seen["h-b"] = wait_for(lambda: (lambda t: t if t in ("endpoint-dependent",
                                                           "endpoint-independent") else None)(
        nat_type(w.d["h-b"])), 20, what="h-b to classify its NAT")
    # Mapping holds for the rest of the test, through dial-back attempts.
    time.sleep(4)
    for h in expect:
        seen[h] = nat_type(w.d[h])
    for h in sorted(seen):
        st = w.d[h].status()
        print("  %-8s nat %-21s external %s dht %s peers %d" % (
            h, st["nat"]["type"], st["nat"]["external"], st["dht"]["mode"], st["peers"]))
    for h, want in expect.items():
        check_eq(seen[h], want, "%s nat.type" % h)
    check(seen["h-b"] in ("endpoint-dependent", "endpoint-independent"),
          "h-b nat.type %r", seen["h-b"])
    # What the servers see of each NATed node's links: the router's
    # public IP, and for the listen port the mapping of the router's kind.
    mapped = {"pp": {PORT}, "ei": {PORT ^ natlab.EI_XOR}}
    for h in seen:
        ports = set()
        for s in ("s1", "s2", "s3"):
            for p in w.d[s].req({"cmd": "peers"})["peers"]:
                if p["id"] == w.d[h].id:
                    ip, port = p["addr"].rsplit(":", 1)
                    check_eq(ip, w.routers[h].external_ip, "%s seen by %s" % (h, s))
                    ports.add(int(port))
        print("  %-8s seen by the servers from ports %s" % (h, sorted(ports)))
        want = mapped.get(w.routers[h].kind) if h != "h-b" else None
        if want:
            check(want & ports, "%s: servers see ports %r, want one of %r", h, ports, want)
        elif w.routers[h].kind == "random":
            check(len(ports) >= 2, "%s: one port for every server %r", h, ports)
    for h in seen:
        st = w.d[h].status()
        ext_ip = w.routers[h].external_ip
        check(st["nat"]["external"] and st["nat"]["external"][0].startswith(ext_ip + ":"),
              "%s nat.external %r, router %s", h, st["nat"]["external"], ext_ip)
        check_eq(st["dht"]["mode"], "client", "%s dht.mode" % h)
        check(st["peers"] >= 3, "%s links to the servers: %d", h, st["peers"])


def test_dialbacks_failed(w):
    """The servers did try to dial the NATed nodes back, and failed."""
    # h-a and h-b share the router's IP and the listen port, so their
    # dial-backs go to the same address: the log cannot tell them apart.
    # Seven clients joined within a second and a server dials back at
    # most 4 per second: requests it dropped are asked again 5 s later.
    # The dropping NAT makes the dial-back wait for the handshake timeout.
    for h in list(KIND_OF) + ["h-double", "h-a", "h-b"]:
        ip = w.routers[h].external_ip
        lines = wait_for(lambda: dialback_failures(w, ip), 20,
                         what="a failed dial-back to %s (%s)" % (h, ip))
        print("  %s: %s" % (h, lines[0][:140]))
        if KIND_OF.get(h, ("", "rst"))[1] == "drop":
            check(any("handshake timeout" in x for x in lines), "drop: dial-back times out")
        else:
            check(any("refused" in x for x in lines), "rst: dial-back refused: %r", lines)
        check_eq(w.d[h].status()["dht"]["mode"], "client", "%s after its dial-backs" % h)


def test_routed_ping_between_nated_clients(w):
    pairs = [("h-pp", "h-ei"), ("h-random", "h-double"), ("h-drop", "h-pp")]
    for a, b in pairs:
        da, db = w.d[a], w.d[b]
        check(db.id not in da.peer_ids(), "%s holds a direct link to %s", a, b)
        t0 = time.monotonic()
        r = da.req({"cmd": "ping", "peer": db.id}, timeout=20)
        print("  ping %s -> %s: %r (%.2fs)" % (a, b, r, time.monotonic() - t0))
        check(r.get("ok") is True, "routed ping %s -> %s: %r", a, b, r)
        check_eq(r.get("path"), "relay", "ping path %s -> %s" % (a, b))
        check(isinstance(r.get("rtt_ms"), (int, float)), "rtt_ms in %r", r)


def test_lookup_of_a_client(w):
    """Clients are in nobody's routing table: a lookup of a client's ID
    does not find it, and answers with the servers nearest to that ID (the
    ones holding its links, through which a routed message reaches it)."""
    servers = {w.d[n].id for n in ("s1", "s2", "s3")}
    for src, dst in (("h-ei", "h-random"), ("s1", "h-pp")):
        r = w.d[src].req({"cmd": "lookup", "peer": w.d[dst].id}, timeout=40)
        ids = [x["id"] for x in r.get("closest", [])]
        print("  lookup %s from %s: found %s, closest %d (servers %d)" % (
            dst, src, r.get("found"), len(ids), len(set(ids) & servers)))
        check(r.get("ok") is True, "lookup %r", r)
        check_eq(r.get("found"), False, "a client is not found by lookup")
        check(ids and set(ids) <= servers, "closest are servers only: %r", ids)
        check(w.d[dst].id not in ids, "the client in closest")


def test_lookup_of_a_server_from_a_client(w):
    r = w.d["h-random"].req({"cmd": "lookup", "peer": w.d["s2"].id}, timeout=40)
    check(r.get("ok") is True and r.get("found") is True, "lookup of s2 from h-random: %r", r)
    addrs = {x["id"]: x["addr"] for x in r["closest"]}
    check_eq(addrs.get(w.d["s2"].id), "%s:%d" % (w.d["s2"].node.ip, PORT), "s2's address")


def test_public_burst_all_become_servers(w):
    """Six public nodes join at once: more dial-back requests than the
    servers serve per second. Each must still become a server (requests a
    server dropped are asked again), and see no NAT."""
    servers = [w.d[n] for n in ("s1", "s2", "s3")]
    joiners = [w.daemon("p%d" % i, w.lab.public("p%d" % i), servers) for i in range(1, 7)]
    t0 = time.monotonic()
    for d in joiners:
        d.start(wait=False)
    for d in joiners:
        d.wait_ready()
    for d in joiners:
        wait_for(lambda: d.status()["dht"]["mode"] == "server", 30,
                 what="%s to learn it is reachable" % d.name)
        print("  %s server after %.1fs" % (d.name, time.monotonic() - t0))
    for d in joiners:
        st = d.status()
        check_eq(st["nat"]["type"], "none", "%s nat.type" % d.name)
        check(st["nat"]["external"][0].startswith(d.node.ip + ":"), "%s external %r",
              d.name, st["nat"]["external"])


TESTS = [test_public_nodes, test_nated_nodes, test_dialbacks_failed,
         test_routed_ping_between_nated_clients, test_lookup_of_a_client,
         test_lookup_of_a_server_from_a_client, test_public_burst_all_become_servers]


def run_lab(prefix, build, tests, stopped=(), tail=15, figures=(), ipv6=False):
    """Build one lab and its daemons with build(cluster, lab), run each test
    on it (P2PTEST_ONLY=substring picks some), check that every daemon but
    those named in stopped is still alive, tear everything down, print
    figures and a summary, and exit 0 or 1. Shared by the natlab tests."""
    natlab.require_lab()
    p2ptest.init()
    # NATLAB_TRACEBACK_S=N: every N s, print every Python thread's stack to
    # stderr (for a run that hangs: where the harness waits).
    every = float(os.environ.get("NATLAB_TRACEBACK_S") or 0)
    if every > 0:
        faulthandler.dump_traceback_later(every, repeat=True)
    only = os.environ.get("P2PTEST_ONLY")
    passed = failed = 0
    t_all = time.monotonic()
    lab = natlab.Lab(ipv6=ipv6)
    try:
        with Cluster(prefix=prefix) as c:
            t0 = time.monotonic()
            w = build(c, lab)
            print("lab and %d daemons up in %.1fs" % (len(w.d), time.monotonic() - t0), flush=True)
            for fn in tests:
                if only and only not in fn.__name__:
                    continue
                t0 = time.monotonic()
                try:
                    fn(w)
                    passed += 1
                    print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
                except Exception:
                    failed += 1
                    print("FAIL %s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
                    traceback.print_exc(file=sys.stdout)
            for d in w.d.values():
                if d.name not in stopped:
                    check(d.alive(), "%s died", d.name)
            if failed:
                for d in c.daemons:  # Cluster prints tails only on an exception
                    print("--- %s log tail:\n%s" % (d.name, d.log_tail(tail)))
                # P2PTEST_KEEP=1: the whole logs outlive the run (the
                # tails above rarely reach back to what led to a flake).
                if os.environ.get("P2PTEST_KEEP"):
                    keep = tempfile.mkdtemp(prefix=prefix + "logs-", dir="/tmp")
                    for d in c.daemons:
                        shutil.copy(d.log, os.path.join(keep, d.name + ".log"))
                    print("daemon logs kept in %s" % keep)
    finally:
        lab.down()
    for f in figures:
        print("  figure: " + f)
    print("%d passed, %d failed (%.1fs)" % (passed, failed, time.monotonic() - t_all), flush=True)
    sys.exit(1 if failed else 0)


def main():
    run_lab("p2pnat-", build, TESTS)


if __name__ == "__main__":
    main()
