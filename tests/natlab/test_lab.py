#!/usr/bin/env python3
"""Self-test of the NAT lab (tools/natlab): it proves the lab's NATs behave
as their kind says before test_natlab.py judges the daemon by them.

For each kind a host connects from one local port (SO_REUSEADDR and
SO_REUSEPORT, both connections open at once) to two or three public
observers that answer with the address they saw; an unsolicited SYN from
a public host to the router tells the filtering (reset or silence).

Paths (pathemu on NFQUEUE): TCP connect times between sites against the
configured round trip, jitter, loss over a fixed number of datagrams.
Routers: conntrack timeouts set in the router's namespace and seen to
expire a mapping (UDP; TCP only with remap=True, else the mapping comes
back on the next packet), a reboot (conntrack -F) that forgets one, a double NAT
several routing hops behind its outer NAT (traced hop by hop). And the big
lab: 100 public servers and NATed hosts, every pair reachable, teardown
leaving nothing.
"""
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

import natlab  # noqa: E402
from natlab import Lab, probe, start_observer, start_udp_observer, syn, udp_probe  # noqa: E402
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


# -- paths -------------------------------------------------------------------
# Slack for a connect time over the configured round trip: process wake-ups
# and pathemu's own scheduling on a loaded 2-core machine (measured 1-5 ms).
RTT_SLACK_MS = 40


def need_pathemu():
    check(natlab.find_pathemu() is not None,
          "pathemu not built (libnetfilter-queue-dev from tools/deps, then meson)")


@T.test
def delay_gives_the_configured_round_trip():
    need_pathemu()
    lab = Lab()
    try:
        s1 = lab.public("s1", delay_ms=30)
        s2 = lab.public("s2", delay_ms=20)
        s3 = lab.public("s3")  # no path: its link adds nothing
        r = lab.nat("r", "pp", delay_ms=25)
        h = lab.host("h", r)
        for n in (s1, s2, s3):
            start_observer(lab, n, OBS_PORT)
        cases = [(s1, s2, 100), (h, s1, 110), (h, s2, 90), (h, s3, 50), (s3, s1, 60)]
        for a, b, want in cases:
            check_eq(lab.rtt_ms(a, b), want, "configured RTT %s-%s" % (a.name, b.name))
            t = natlab.connect_times(a, b.ip, OBS_PORT, 5)
            print("  %s -> %s: RTT %d ms configured, connects %s ms" % (
                a.name, b.name, want, " ".join("%.1f" % x for x in t)))
            check(min(t) >= want - 1, "connect faster than the configured RTT %d: %r", want, t)
            check(statistics.median(t) <= want + RTT_SLACK_MS,
                  "connect much slower than the configured RTT %d: %r", want, t)
        lab.check_paths()
        st = lab.path_stats(s1)
        check(st[natlab.QUEUE_EGRESS]["passed"] >= 10 and st[natlab.QUEUE_INGRESS]["passed"] >= 10,
              "s1's emulator saw both directions: %r", st)
    finally:
        lab.down()


@T.test
def jitter_varies_but_stays_in_bounds():
    need_pathemu()
    lab = Lab()
    try:
        s1 = lab.public("s1", delay_ms=30, jitter_ms=10)
        s2 = lab.public("s2", delay_ms=20, jitter_ms=10)
        start_observer(lab, s2, OBS_PORT)
        t = natlab.connect_times(s1, s2.ip, OBS_PORT, 12)
        print("  RTT 100 +- 4 x 10 ms: %s" % " ".join("%.1f" % x for x in t))
        # Four link crossings per round trip, each +-10 ms.
        check(min(t) >= 100 - 40 - 1, "faster than delay - jitter allows: %r", t)
        check(max(t) <= 100 + 40 + RTT_SLACK_MS, "slower than delay + jitter allows: %r", t)
        check(max(t) - min(t) >= 3, "jitter not applied: connect times all alike: %r", t)
    finally:
        lab.down()


LOSS_PACKETS = 2000
LOSS_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b"%d" % i, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.0003)  # paced: no queue or socket buffer drops of our own
"""
@T.test
def loss_drops_about_the_configured_share():
    need_pathemu()
    lab = Lab()
    try:
        s1 = lab.public("s1", delay_ms=5, loss=0.03)
        s2 = lab.public("s2")
        recv = lab.popen(s2, [sys.executable, "-c", LOSS_RECV_COUNT, str(OBS_PORT)],
                         stdout=subprocess.PIPE, text=True)
        check_eq(recv.stdout.readline().strip(), "ready", "receiver")
        s1.run(sys.executable, "-c", LOSS_SEND, s2.ip, str(OBS_PORT), str(LOSS_PACKETS),
               timeout=60)
        got = int(recv.stdout.readline())
        lost = LOSS_PACKETS - got
        emu = lab.path_stats(s1)[natlab.QUEUE_EGRESS]
        print("  %d datagrams at 3%% loss: %d lost end to end, pathemu dropped %d" % (
            LOSS_PACKETS, lost, emu["lost"]))
        # Binomial(2000, 0.03): mean 60, sd 7.6; these bounds are > 4 sd out,
        # and 0 (no loss applied) or 20% are far outside them.
        check(25 <= lost <= 110, "lost %d of %d, want about 60", lost, LOSS_PACKETS)
        check(emu["lost"] <= lost, "more lost by pathemu than end to end? %r", emu)
        check(lost - emu["lost"] <= 5, "lost beyond pathemu's drops: %d vs %r", lost, emu)
    finally:
        lab.down()


LOSS_RECV_COUNT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# SO_RCVBUFFORCE (33; root): above rmem_max, so a burst is not dropped here.
s.setsockopt(socket.SOL_SOCKET, 33, 1 << 24)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
seen = set()
s.settimeout(30)
try:
    while True:
        d, a = s.recvfrom(100)
        seen.add(int(d))
        s.settimeout(1.5)  # the sender paces: 1.5 s of silence is the end
except socket.timeout:
    pass
print(len(seen), flush=True)
"""


PATHEMU_HELD_MAX = 4096  # tools/natlab/pathemu.c
FLOOD = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# Held packets count against the sender's buffer until their verdict:
# SO_SNDBUFFORCE (32; root) so the flood does not block on it.
s.setsockopt(socket.SOL_SOCKET, 32, 1 << 26)
for i in range(int(sys.argv[3])):
    s.sendto(b"%d" % i, (sys.argv[1], int(sys.argv[2])))
"""


@T.test
def pathemu_caps_what_it_holds_and_lets_go_on_sigterm():
    need_pathemu()
    lab = Lab()
    try:
        s1 = lab.public("s1", delay_ms=8000)
        s2 = lab.public("s2")
        recv = lab.popen(s2, [sys.executable, "-c", LOSS_RECV_COUNT, str(OBS_PORT)],
                         stdout=subprocess.PIPE, text=True)
        check_eq(recv.stdout.readline().strip(), "ready", "receiver")
        n = PATHEMU_HELD_MAX + 900
        s1.run(sys.executable, "-c", FLOOD, s2.ip, str(OBS_PORT), str(n))
        st = lab.path_stats(s1)[natlab.QUEUE_EGRESS]
        print("  %d datagrams into an 8 s delay: %r" % (n, st))
        check_eq(st["held"], PATHEMU_HELD_MAX, "held packets capped")
        check_eq(st["overflow"], st["seen"] - PATHEMU_HELD_MAX, "the rest dropped")
        check(st["seen"] >= n, "pathemu saw the flood: %r", st)
        t0 = time.monotonic()
        os.kill(s1.emu.pid, signal.SIGTERM)
        check_eq(s1.emu.wait(5), 0, "pathemu exit status on SIGTERM")
        got = int(recv.stdout.readline())
        took = time.monotonic() - t0
        print("  SIGTERM: %d delivered in %.1fs (the delay was 8 s)" % (got, took))
        check_eq(got, PATHEMU_HELD_MAX, "held packets accepted at exit")
        check(took < 6, "held packets waited for their delay: %.1fs", took)
        try:
            lab.check_paths()
            raise AssertionError("check_paths() did not notice the dead pathemu")
        except RuntimeError as e:
            check("s1" in str(e), "check_paths names the link: %s", e)
    finally:
        lab.down()


# -- routers -----------------------------------------------------------------
@T.test
def conntrack_timeout_expires_a_mapping():
    lab = Lab()
    try:
        s1 = lab.public("s1")
        start_udp_observer(lab, s1, OBS_PORT)
        r = lab.nat("r", "random", timeouts={"udp_timeout": 2, "udp_timeout_stream": 2,
                                             "tcp_timeout_established": 30})
        h = lab.host("h", r)
        t = lab.timeouts(r)
        check_eq(t["net.netfilter.nf_conntrack_udp_timeout"], 2, "udp timeout in the router")
        check_eq(t["net.netfilter.nf_conntrack_tcp_timeout_established"], 30,
                 "tcp established timeout in the router")
        root = natlab.sh("sysctl", "-n", "net.netfilter.nf_conntrack_tcp_timeout_established")
        check(int(root.stdout) != 30, "the root namespace's timeout changed too")
        first = udp_probe(h, PORT, s1.ip, OBS_PORT)
        again = udp_probe(h, PORT, s1.ip, OBS_PORT)
        check_eq(again, first, "mapping kept within the timeout")
        time.sleep(3.5)
        later = udp_probe(h, PORT, s1.ip, OBS_PORT)
        print("  udp mapping %s, again %s, after 3.5 s idle %s" % (first, again, later))
        check(later is not None and later[1] != first[1],
              "mapping not expired after the 2 s timeout: %r then %r", first, later)
    finally:
        lab.down()


@T.test
def reboot_forgets_mappings():
    lab = Lab()
    try:
        s1 = lab.public("s1")
        start_udp_observer(lab, s1, OBS_PORT)
        echo = lab.popen(s1, [sys.executable, "-c", TCP_ECHO, str(OBS_PORT)],
                         stdout=subprocess.PIPE, text=True)
        check_eq(echo.stdout.readline().strip(), "ready", "echo server")
        r = lab.nat("r", "random")
        h = lab.host("h", r)
        first = udp_probe(h, PORT, s1.ip, OBS_PORT)
        check_eq(udp_probe(h, PORT, s1.ip, OBS_PORT), first, "mapping before the reboot")
        # An established TCP flow through the NAT: open before, used after.
        flow = lab.popen(h, [sys.executable, "-c", TCP_FLOW, s1.ip, str(OBS_PORT)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        before = flow.stdout.readline().strip()
        check(before.startswith("seen "), "flow up: %r", before)
        lab.reboot(r)
        flow.stdin.write("go\n")
        flow.stdin.flush()
        after = flow.stdout.readline().strip()
        later = udp_probe(h, PORT, s1.ip, OBS_PORT)
        print("  udp %s -> %s after reboot; tcp flow: %s, then %s" % (first, later, before, after))
        check(later is not None and later[1] != first[1], "udp mapping survived the reboot")
        check(after.startswith("broken"), "the TCP flow survived the NAT reboot: %r", after)
    finally:
        lab.down()


TCP_ECHO = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
def echo(c):
    while True:
        d = c.recv(1000)
        if not d:
            return
        c.sendall(d)
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
"""

# Holds one TCP connection to TCP_ECHO: echoes once, waits for a line on
# stdin, then sends again and says whether the connection still works (a
# flow the NAT re-maps to another port is reset by the far end).
TCP_FLOW = r"""
import socket, sys
s = socket.socket()
s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(b"one")
print("seen %r" % s.recv(100), flush=True)
sys.stdin.readline()
try:
    s.sendall(b"two")
    d = s.recv(100)
    print("broken eof" if not d else "alive %r" % d, flush=True)
except OSError as e:
    print("broken %s" % e, flush=True)
"""


@T.test
def tcp_mapping_expiry_comes_back_unless_remap():
    """An idle TCP flow outlives its conntrack entry through a NAT that
    keeps the port: the next outbound packet is picked up mid-stream
    (nf_conntrack_tcp_loose=1, per namespace) and masquerade picks the
    same free port, so the mapping comes back unseen. With remap=True the
    router gives that packet a new port and the far end resets the flow."""
    lab = Lab()
    try:
        s1 = lab.public("s1")
        echo = lab.popen(s1, [sys.executable, "-c", TCP_ECHO, str(OBS_PORT)],
                         stdout=subprocess.PIPE, text=True)
        check_eq(echo.stdout.readline().strip(), "ready", "echo server")
        got = {}
        for kind, remap in (("pp", False), ("ei", False), ("pp", True), ("ei", True)):
            r = lab.nat("r%s%d" % (kind, remap), kind, remap=remap,
                        timeouts={"tcp_timeout_established": 2})
            loose = r.run("sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose").stdout
            check_eq(loose.strip(), "1", "tcp_loose in the router's namespace")
            h = lab.host("h%s%d" % (kind, remap), r)
            flow = lab.popen(h, [sys.executable, "-c", TCP_FLOW, s1.ip, str(OBS_PORT)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            check(flow.stdout.readline().startswith("seen "), "%s flow up" % kind)
            got[(kind, remap)] = flow
        time.sleep(3.5)  # idle past the 2 s timeout
        for (kind, remap), flow in got.items():
            flow.stdin.write("go\n")
            flow.stdin.flush()
            after = flow.stdout.readline().strip()
            print("  %s remap=%s: after 3.5 s idle %s" % (kind, remap, after))
            if remap:
                check(after.startswith("broken"), "%s remap: flow survived expiry: %r",
                      kind, after)
            else:
                check(after.startswith("alive"), "%s: mapping did not come back: %r",
                      kind, after)
    finally:
        lab.down()


@T.test
def double_nat_several_hops_behind():
    hops = 3
    lab = Lab()
    try:
        s1 = lab.public("s1")
        start_observer(lab, s1, OBS_PORT)
        outer = lab.nat("outer", "pp")
        far = lab.nat("far", "pp", upstream=outer, hops=hops)
        near = lab.nat("near", "pp", upstream=outer)  # the usual double NAT
        hf, hn = lab.host("hf", far), lab.host("hn", near)
        check_eq(len(far.hops), hops, "routing namespaces between far and outer")
        seen = probe(hf, PORT, [(s1.ip, OBS_PORT)])[0]
        check_eq((seen["ip"], seen["port"]), (outer.public_ip, PORT), "seen through 2 NATs")
        inet_gw = outer.public_ip.rsplit(".", 1)[0] + ".1"
        got = [h and h["ip"] for h in natlab.trace(hf, s1.ip)]
        want = ([far.lan_ip] + [h.down_ip for h in far.hops] +
                [outer.lan_ip, inet_gw, s1.ip])
        print("  far: %s" % got)
        check_eq(got, want, "hops from a host behind the far inner NAT")
        # A prime with TTL 2 (the NAT is the second hop) dies before the
        # outer NAT; it takes hops + 2 to get through it.
        check(got[1] != outer.lan_ip and got[hops + 1] == outer.lan_ip,
              "outer NAT is hop %d: %r", hops + 2, got)
        got = [h and h["ip"] for h in natlab.trace(hn, s1.ip)]
        print("  near: %s" % got)
        check_eq(got, [near.lan_ip, outer.lan_ip, inet_gw, s1.ip],
                 "hops from a host behind the near inner NAT")
    finally:
        lab.down()


# The big lab in CI: as many servers as the overlay tests use (issue 8).
BIG_SERVERS = int(os.environ.get("NATLAB_BIG_SERVERS", "100"))


@T.test
def big_lab_every_pair_reaches():
    lab = Lab()
    try:
        t0 = time.monotonic()
        w = natlab.big(lab, servers=BIG_SERVERS)
        built = time.monotonic() - t0
        pubs, hosts = w["servers"], w["hosts"]
        nets = {p.ip.rsplit(".", 1)[0] for p in pubs}
        check_eq(len(nets), BIG_SERVERS, "distinct /24s")
        names = natlab.list_labs().get(lab.prefix, [])
        check(len(names) >= BIG_SERVERS + 20, "namespaces up: %d", len(names))
        t0 = time.monotonic()
        # Every server to every other (port 9 is closed: a reset proves the
        # round trip) and every NATed host to every server.
        pairs = [(a, [(b.ip, 9) for b in pubs if b is not a]) for a in pubs]
        pairs += [(h, [(b.ip, 9) for b in pubs]) for h in hosts.values()]
        bad = natlab.unreachable(pairs)
        n = sum(len(t) for _, t in pairs)
        print("  %d servers + %d NATed hosts (%d namespaces) built in %.1fs; %d connects in %.1fs"
              % (len(pubs), len(hosts), len(names), built, n, time.monotonic() - t0))
        check_eq(bad[:10], [], "unreachable pairs (of %d)" % n)
    finally:
        t0 = time.monotonic()
        lab.down()
        print("  torn down in %.1fs" % (time.monotonic() - t0))
    check_eq(natlab.list_labs().get(lab.prefix), None, "namespaces left after down()")


if __name__ == "__main__":
    natlab.require_lab()
    T.run()
