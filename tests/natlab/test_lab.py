#!/usr/bin/env python3
"""Self-test of the NAT lab (tools/natlab): it proves the lab's NATs behave
as their kind says before test_natlab.py judges the daemon by them.

For each kind a host connects from one local port (SO_REUSEADDR and
SO_REUSEPORT, both connections open at once) to two or three public
observers that answer with the address they saw; an unsolicited SYN from
a public host to the router tells the filtering (reset or silence).
"""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

import natlab  # noqa: E402
from natlab import Lab, probe, start_observer, syn  # noqa: E402
from p2ptest import Runner, check, check_eq, wait_for  # noqa: E402

T = Runner("test_lab")
PORT = 4242
OBS_PORT = 7000


def observers(lab, n=3):
    hosts = [lab.public("s%d" % i) for i in range(1, n + 1)]
    for h in hosts:
        start_observer(lab, h, OBS_PORT)
    return hosts, [(h.ip, OBS_PORT) for h in hosts]


def lab_with(kind, filtering="rst"):
    lab = Lab()
    pubs, obs = observers(lab)
    r = lab.nat("r", kind, filtering)
    h = lab.host("h", r)
    return lab, pubs, obs, r, h


@T.test
def port_preserving_keeps_the_port():
    lab, pubs, obs, r, h = lab_with("pp")
    try:
        seen = probe(h, PORT, obs[:2])
        print("  pp: %s" % seen)
        for s in seen:
            check_eq(s["ip"], r.public_ip, "external IP")
            check_eq(s["port"], PORT, "external port")
        check_eq(syn(pubs[2], r.public_ip, PORT), "rst", "unsolicited SYN")
    finally:
        lab.down()


@T.test
def endpoint_independent_changes_the_port_once():
    lab, pubs, obs, r, h = lab_with("ei")
    try:
        seen = probe(h, PORT, obs)
        print("  ei: %s" % seen)
        ports = {s["port"] for s in seen}
        check_eq(len(ports), 1, "one external port for every observer")
        check(PORT not in ports, "the port must change: %r", ports)
        check_eq(ports.pop(), PORT ^ natlab.EI_XOR, "mapped port")
        check_eq({s["ip"] for s in seen}, {r.public_ip}, "external IP")
        # The mapped port does not take unsolicited connections either.
        check_eq(syn(pubs[2], r.public_ip, PORT ^ natlab.EI_XOR), "rst",
                 "SYN from an uncontacted host to the mapped port")
        # Another local port maps the same way, to another external port.
        seen2 = probe(h, PORT + 1, obs[:2])
        check_eq({s["port"] for s in seen2}, {(PORT + 1) ^ natlab.EI_XOR}, "second port")
    finally:
        lab.down()


@T.test
def random_gives_a_port_per_destination():
    lab, pubs, obs, r, h = lab_with("random")
    try:
        seen = probe(h, PORT, obs)
        print("  random: %s" % seen)
        ports = [s["port"] for s in seen]
        check(len(set(ports)) >= 2, "fully-random: ports should differ per observer: %r", ports)
        check_eq({s["ip"] for s in seen}, {r.public_ip}, "external IP")
        check_eq(syn(pubs[0], r.public_ip, ports[1]), "rst",
                 "SYN from another observer to a mapped port")
    finally:
        lab.down()


@T.test
def filtering_rst_and_drop():
    for filtering, want in (("rst", "rst"), ("drop", "timeout")):
        lab, pubs, obs, r, h = lab_with("pp", filtering)
        try:
            seen = probe(h, PORT, obs[:1])
            check_eq(seen[0]["port"], PORT, "port kept (%s)" % filtering)
            t0 = time.monotonic()
            got = syn(pubs[2], r.public_ip, PORT, timeout=2.0)
            print("  %s: unsolicited SYN -> %s (%.1fs)" % (filtering, got, time.monotonic() - t0))
            check_eq(got, want, "unsolicited SYN with %s filtering" % filtering)
            # An established mapping still answers its own observer.
            check_eq(probe(h, PORT + 1, obs[1:2])[0]["ip"], r.public_ip, "outbound works")
        finally:
            lab.down()


@T.test
def double_nat_shows_the_outer_address():
    lab = Lab()
    try:
        pubs, obs = observers(lab, 2)
        outer = lab.nat("outer", "pp")
        inner = lab.nat("inner", "pp", upstream=outer)
        h = lab.host("h", inner)
        seen = probe(h, PORT, obs)
        print("  double: %s" % seen)
        check_eq(inner.external_ip, outer.public_ip, "external IP of the inner router")
        for s in seen:
            check_eq(s["ip"], outer.public_ip, "observed IP")
            check_eq(s["port"], PORT, "port kept through both NATs")
        check_eq(syn(pubs[1], outer.public_ip, PORT), "rst", "unsolicited SYN")
    finally:
        lab.down()


@T.test
def two_hosts_behind_one_nat_cannot_both_keep_a_port():
    lab = Lab()
    try:
        pubs, obs = observers(lab, 1)
        r = lab.nat("r", "pp")
        a, b = lab.host("a", r), lab.host("b", r)
        sa = probe(a, PORT, obs)[0]
        sb = probe(b, PORT, obs)[0]
        print("  a: %s  b: %s" % (sa, sb))
        check_eq(sa["port"], PORT, "first host keeps the port")
        check_eq(sb["ip"], r.public_ip, "second host's external IP")
        check(sb["port"] != PORT, "the second host (same port, same observer) is moved: %r", sb)
        # The conntrack entry is what holds the mapping: after a flush the
        # second host gets the port back.
        lab.flush()
        check_eq(probe(b, PORT, obs)[0]["port"], PORT, "port after conntrack -F")
    finally:
        lab.down()


@T.test
def teardown_on_sigterm_leaves_nothing():
    code = ("import sys; sys.path.insert(0, %r); import natlab, time\n"
            "lab = natlab.Lab(); natlab.demo(lab)\n"
            "natlab.start_observer(lab, lab.nodes['s1'], 7000)\n"
            "print(lab.prefix, flush=True); time.sleep(60)\n"
            % os.path.join(HERE, "..", "..", "tools", "natlab"))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        prefix = p.stdout.readline().strip()
        check(prefix.startswith("natlab%d" % p.pid), "prefix carries the PID: %r", prefix)
        names = natlab.list_labs().get(prefix, [])
        check(len(names) >= 10, "lab is up: %r", names)
        os.kill(p.pid, signal.SIGTERM)
        p.wait(20)
        check_eq(natlab.list_labs().get(prefix), None, "namespaces left after SIGTERM")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        natlab.remove_stale()


if __name__ == "__main__":
    natlab.require_lab()
    T.run()
