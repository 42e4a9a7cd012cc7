#!/usr/bin/env python3
"""Primes past NATs that are not the first hops (issue 8; daemon/natdepth.c,
nat/depth.c, the punch core's prime_ttl).

A home router behind a carrier NAT two routing hops away (h-cgn: its own
router, two transit routers, the carrier's router, then the internet: the
first public hop is the fifth), and a port-preserving host h-pp, 20 ms of
path delay each. Three public servers.

and a host behind an endpoint-dependent NAT (h-rnd).

Asserted:
  - each daemon measures its NAT depth with TTL-limited UDP probes towards
    a server and logs it: TTL 5 for h-cgn (the lab's own count of its
    routers), TTL 2 for h-pp;
  - h-pp connects to h-cgn: h-cgn answers the punch request and primes
    with TTL 5, which opens the carrier NAT's mapping too (TTL 2 and 3,
    the defaults, die inside the carrier's network and leave it closed,
    so h-pp's SYNs were reset there and the pair was relayed), and the
    answer is a direct, punched link; 100 KB through `pipe` to an echo
    service on h-cgn come back with the same SHA-256;
  - a public node (the server farthest from h-rnd's ID) connects to h-rnd (their overlay link closed
    first): h-rnd, endpoint-dependent, dials it outright on its punch
    request (full TTL, no prime), and the answer is direct, not a relay.
"""
import base64
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

from p2ptest import check, check_eq, wait_for  # noqa: E402
from test_natlab import World, nat_type, run_lab  # noqa: E402
from test_punch import (ECHO, ECHO_PORT, connect, echo_listening, peer_entry,  # noqa: E402
                        pipe_echo)

TRANSIT_HOPS = 2


def build(c, lab):
    w = World(c, lab)
    pubs = [lab.public(n, delay_ms=10) for n in ("s1", "s2", "s3")]
    cgn = lab.nat("r-cgn", "pp", "rst", delay_ms=20)
    w.routers["h-cgn"] = lab.nat("r-home", "pp", "rst", upstream=cgn, hops=TRANSIT_HOPS)
    lab.host("h-cgn", w.routers["h-cgn"])
    w.routers["h-pp"] = lab.nat("r-pp", "pp", "rst", delay_ms=20)
    lab.host("h-pp", w.routers["h-pp"])
    w.routers["h-rnd"] = lab.nat("r-rnd", "random", "rst", delay_ms=20)
    lab.host("h-rnd", w.routers["h-rnd"])
    s1 = w.daemon("s1", pubs[0]).start()
    s2 = w.daemon("s2", pubs[1], [s1]).start()
    s3 = w.daemon("s3", pubs[2], [s1, s2]).start()
    wait_for(lambda: len(s1.peer_ids()) >= 2, 20, what="s1 to hear of s2 and s3")
    for h in ("h-cgn", "h-pp", "h-rnd"):
        w.daemon(h, lab.nodes[h], [s1, s2, s3]).start()
    lab.popen(lab.nodes["h-cgn"], ["python3", "-c", ECHO])
    return w


def depth_of(d):
    m = None
    for m in re.finditer(r"NAT depth: primes go with TTL (\d+)", d.log_text()):
        pass
    return int(m.group(1)) if m else None


def test_depth_measured(w):
    # h-cgn's own router, the transit routers, the carrier's router: the
    # next one is public.
    want = 1 + TRANSIT_HOPS + 1 + 1
    got = wait_for(lambda: depth_of(w.d["h-cgn"]), 30, what="h-cgn's NAT depth")
    check_eq(got, want, "h-cgn's primes' TTL")
    got = wait_for(lambda: depth_of(w.d["h-pp"]), 30, what="h-pp's NAT depth")
    check_eq(got, 2, "h-pp's primes' TTL")


def test_punch_through_the_carrier_nat(w):
    a, b = w.d["h-pp"], w.d["h-cgn"]
    wait_for(lambda: depth_of(b), 30, what="h-cgn's NAT depth")
    wait_for(lambda: echo_listening(w.lab, "h-cgn"), 15, what="h-cgn echo service")
    check_eq(b.ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0,
             "expose on h-cgn")
    r, j, took = connect(a, b)
    print("  connect h-pp -> h-cgn: exit %d %s (%.2fs)" % (r.returncode, r.stdout.strip(), took),
          flush=True)
    check_eq(r.returncode, 0, "connect (stderr %r)" % r.stderr)
    check_eq((j.get("path"), j.get("method")), ("direct", "punch"), "h-pp -> h-cgn")
    # h-cgn's side is up once frame 3 is in, half a round trip later.
    wait_for(lambda: re.search(r"punch \S+: connected from .* \(replier", b.log_text()), 5,
             what="h-cgn's side of the punch")
    data = os.urandom(100 * 1024)
    p, _ = pipe_echo(a, b, data, timeout=30)
    check_eq(p.returncode, 0, "pipe through the punched link")
    check_eq(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(data).hexdigest(),
             "echo through the punched link")


def xor_distance(x, y):
    """Kademlia distance between two peer IDs (base32 text)."""
    dec = [base64.b32decode(i.upper() + "=" * (-len(i) % 8)) for i in (x, y)]
    return int.from_bytes(bytes(p ^ q for p, q in zip(*dec)), "big")


def test_public_to_dependent_is_dialled_back(w):
    """A public node (a server) wants a link to a host behind an endpoint-
    dependent NAT: no prime can help (the NAT picks a new port for every
    destination), but the host can dial the server, and does so on its punch
    request: a direct link, not a relay."""
    b = w.d["h-rnd"]
    # The request is routed over the overlay; once its own link to h-rnd
    # is closed, the server nearest h-rnd's ID has no node closer to route
    # through, so the farther of s2 and s3 asks (never the nearest of the
    # three). Not s1: the first node dialled nobody, so it never saw its
    # own address and its NAT type stays unknown.
    a = max((w.d[n] for n in ("s2", "s3")), key=lambda d: xor_distance(d.id, b.id))
    wait_for(lambda: nat_type(a) == "none", 30, what="%s classified" % a.name)
    wait_for(lambda: nat_type(b) == "endpoint-dependent", 30, what="h-rnd classified")
    if peer_entry(a, b.id) is not None:
        check_eq(a.ctl("disconnect", b.id).returncode, 0, "%s disconnect h-rnd" % a.name)
    wait_for(lambda: peer_entry(a, b.id) is None and peer_entry(b, a.id) is None, 10,
             what="%s and h-rnd unlinked" % a.name)
    r, j, took = connect(a, b)
    print("  connect %s -> h-rnd: exit %d %s (%.2fs)" % (
        a.name, r.returncode, r.stdout.strip(), took), flush=True)
    check_eq(r.returncode, 0, "connect (stderr %r)" % r.stderr)
    check_eq((j.get("path"), j.get("method")), ("direct", "punch"), "%s -> h-rnd" % a.name)
    check(peer_entry(a, b.id)["link"] == "direct", "%s's link to h-rnd" % a.name)


TESTS = [test_depth_measured, test_punch_through_the_carrier_nat,
         test_public_to_dependent_is_dialled_back]


def main():
    run_lab("p2pdepth-", build, TESTS)


if __name__ == "__main__":
    main()
