#!/usr/bin/env python3
"""IPv6 hole punching between real daemons (tools/natlab, Lab(ipv6=True)).

Three dual-stack public servers (s1-s3) and sites whose routers do IPv4
NAT as in test_punch and give their LAN a routed IPv6 /64 behind a
stateful firewall (no NAT66; new inbound dropped, reset or rejected with
ICMPv6, by router):

  h-rnd1, h-rnd2  dual-stack, IPv4 behind endpoint-dependent (random)
                  NATs, IPv6 firewalls that drop: only IPv6 can be direct
  h-v6a, h-v6b    IPv6-only (no IPv4 address), firewalls that drop / reset
  h-ds1, h-ds2    dual-stack, IPv4 behind port-preserving NATs (punchable
                  too), IPv6 firewalls that reset / reject with ICMPv6:
                  both families work, the race is IPv6's (head start)
  h-ds3, h-ds4    dual-stack as h-ds1/2 (firewalls that drop), but inet
                  drops IPv6 between their two /48s: the race falls back
                  to IPv4
  h-v4            IPv4 only (behind a port-preserving NAT): no family in
                  common with the IPv6-only hosts

Every host's LAN link carries SITE_DELAY_MS each way, the servers'
SERVER_DELAY_MS. The delay is on the host's link, not the router's WAN:
a reset or ICMP error that the router itself generates (its reject) was
lost whenever the router's WAN went through pathemu (both families; see
tools/natlab/natlab.py, Paths), which would turn "rst" into "drop". Dual-stack daemons listen on 0.0.0.0:4242 and [::]:4242
and bootstrap over IPv4; IPv6-only ones listen on [::]:4242 and bootstrap
over IPv6.

Asserted:
  - status: nat.external lists each host's global IPv6 address (once),
    next to its IPv4 NAT's external address on dual-stack hosts; nat.type
    stays the IPv4 NAT's (an IPv6-only host's is "none": no translation),
    and every host is a DHT client (the servers' dial-backs are refused);
  - the firewalls: an unsolicited TCP connect from s1 to each host's
    global IPv6 address fails as its router's filter says (reset:
    refused; drop: timeout; icmp: unreachable/permission error);
  - each pair connects: path "direct", method "punch", family 6; `peers`
    on both ends lists the other as a direct link at its global IPv6
    address; 100 KB through `p2pctl pipe` to an echo service come back
    with the same SHA-256;
  - behind the random NATs only IPv6 was offered; the dual-stack pair
    raced candidates of both families, IPv6 first;
  - with IPv6 cut between h-ds3 and h-ds4, the same race (IPv6 first)
    ends on IPv4: family 4, direct, at the routers' addresses, data intact;
  - IPv6-only to IPv4-only has no direct path: relayed at once (no wait
    for a punch that cannot work), data intact.
"""
import hashlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "natlab"))

from p2ptest import check, check_eq, wait_for  # noqa: E402
from test_natlab import PORT, LabDaemon, World, run_lab  # noqa: E402
# peer_entry and wait_for: tools/bench/connect-matrix uses them from here.
from test_punch import (ECHO, ECHO_PORT, connect, echo_listening, peer_entry,  # noqa: E402,F401
                        pipe_echo)

SITE_DELAY_MS = 20  # one way, per site router
SERVER_DELAY_MS = 10
# host -> (router kind (IPv4), IPv6 filter, IPv4 on the host)
SITES = {
    "h-rnd1": ("random", "drop", True),
    "h-rnd2": ("random", "drop", True),
    "h-v6a": ("pp", "drop", False),
    "h-v6b": ("pp", "rst", False),
    "h-ds1": ("pp", "rst", True),
    "h-ds2": ("pp", "icmp", True),
    "h-ds3": ("pp", "drop", True),
    "h-ds4": ("pp", "drop", True),
    "h-v4": ("pp", "drop", True),
}
V4_ONLY = {"h-v4"}  # hosts without IPv6
CUT6 = ("h-ds3", "h-ds4")  # inet drops IPv6 between these two sites
FIGURES = []


class V6Daemon(LabDaemon):
    """Listens on [::]:PORT, and on 0.0.0.0:PORT when the host has IPv4."""

    def __init__(self, cluster, name, node, **kw):
        super().__init__(cluster, name, node, **kw)
        self.v4 = node.ip is not None
        if not self.v4:
            self.host = "[%s]" % node.ip6

    @property
    def addr6(self):
        return "[%s]:%d" % (self.node.ip6, PORT)

    def argv(self, bootstrap=None):
        a = super().argv(bootstrap)
        i = a.index("-l")
        a[i + 1] = "[::]:%d" % PORT
        if self.v4:
            a[i:i] = ["-l", "0.0.0.0:%d" % PORT]
        return a


def build(c, lab):
    w = World(c, lab)
    pubs = [lab.public(n, delay_ms=SERVER_DELAY_MS) for n in ("s1", "s2", "s3")]
    for h, (kind, filt, v4) in SITES.items():
        w.routers[h] = lab.nat("r" + h[1:], kind, "rst", ipv6_filter=filt)
        lab.host(h, w.routers[h], ipv4=v4, ipv6=h not in V4_ONLY, delay_ms=SITE_DELAY_MS)
    a, b = ("%s/48" % w.routers[h].ip6[:-1] for h in CUT6)
    cut = """
table ip6 cut6 {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip6 saddr %s ip6 daddr %s drop
    ip6 saddr %s ip6 daddr %s drop
  }
}
""" % (a, b, b, a)
    r = subprocess.run(["ip", "netns", "exec", lab.inet.ns, "nft", "-f", "-"], input=cut,
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "nft in inet: %s" % r.stderr)

    def daemon(name, node, boot=()):
        d = V6Daemon(w.c, name, node, bootstrap=boot)
        w.c.daemons.append(d)
        w.d[name] = d
        return d.start()

    s1 = daemon("s1", pubs[0])
    s2 = daemon("s2", pubs[1], [s1])
    s3 = daemon("s3", pubs[2], [s1, s2])
    wait_for(lambda: len(s1.peer_ids()) >= 2, 15, what="s1 to hear of s2 and s3")
    r = s1.req({"cmd": "bootstrap", "addr": s3.addr}, timeout=20)
    check(r.get("ok") is True, "s1 bootstrap through s3: %r", r)
    servers = [s1, s2, s3]
    for h, (_, _, v4) in SITES.items():
        boot = servers if v4 else [s.addr6 for s in servers]
        daemon(h, lab.nodes[h], boot)
    for h in SITES:
        wait_for(lambda: w.d[h].status()["peers"] >= 3, 30,
                 what="%s linked to the servers" % h)
        lab.popen(lab.nodes[h], ["python3", "-c", ECHO])
    for h in SITES:
        wait_for(lambda: echo_listening(lab, h), 15, what="%s echo service" % h)
    return w


def unsolicited(node, ip6, timeout=2.0):
    """A TCP connect from node to [ip6]:PORT: "ok", "refused", "timeout" or
    another error's name."""
    code = ("import socket, errno\n"
            "s = socket.socket(socket.AF_INET6); s.settimeout(%r)\n"
            "try:\n"
            "    s.connect((%r, %d)); print('ok')\n"
            "except socket.timeout: print('timeout')\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except OSError as e: print(errno.errorcode.get(e.errno, str(e)))\n"
            % (timeout, ip6, PORT))
    return node.run("python3", "-c", code, timeout=timeout + 10).stdout.strip()


def test_status_lists_global_v6(w):
    want_type = {"random": "endpoint-dependent", "pp": "port-preserving"}
    for h, (kind, _, v4) in SITES.items():
        if h in V4_ONLY:
            continue
        st = w.d[h].status()
        ext = st["nat"]["external"]
        check_eq(ext.count(w.d[h].addr6), 1, "%s's nat.external %r lists its IPv6" % (h, ext))
        if v4:
            check(any(e.startswith(w.routers[h].external_ip + ":") for e in ext),
                  "%s's nat.external %r lacks its router's IPv4" % (h, ext))
            wait_for(lambda: w.d[h].status()["nat"]["type"] == want_type[kind], 20,
                     what="%s nat.type %s" % (h, want_type[kind]))
        else:
            check_eq(st["nat"]["type"], "none", "%s's nat.type" % h)
        check_eq(st["dht"]["mode"], "client", "%s's dht.mode" % h)


def test_firewalls(w):
    """New inbound IPv6 is refused as each router's filter says."""
    want = {"rst": ("refused",), "drop": ("timeout",),
            "icmp": ("EACCES", "EHOSTUNREACH", "ENETUNREACH", "EPERM")}
    s1 = w.lab.nodes["s1"]
    for h, (_, filt, _) in SITES.items():
        if h in V4_ONLY:
            continue
        got = unsolicited(s1, w.lab.nodes[h].ip6)
        check(got in want[filt], "s1 -> %s (%s): %s, want one of %s" % (h, filt, got, want[filt]))


def direct_entry(d, peer_id):
    """d's `peers` entry for a direct link to peer_id, or None."""
    for p in d.req({"cmd": "peers"})["peers"]:
        if p["id"] == peer_id and p["link"] == "direct":
            return p
    return None


def punched6(w, x, y, family=6):
    """x connects to y: punched over family, then 100 KB through a tunnel."""
    a, b = w.d[x], w.d[y]
    check(b.id not in a.peer_ids(), "%s already linked to %s" % (x, y))
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs)" % (x, y, r.returncode, r.stdout.strip(), took))
    check_eq(r.returncode, 0, "connect %s -> %s exit (stderr %r)" % (x, y, r.stderr))
    check_eq((j.get("peer"), j.get("path"), j.get("method"), j.get("family")),
             (b.id, "direct", "punch", family), "connect %s -> %s" % (x, y))
    # A relayed link asked for while the punch ran may be listed for a
    # moment beside the direct one (it is closed once the direct one is up).
    pa = wait_for(lambda: direct_entry(a, b.id), 5, what="%s to list %s as direct" % (x, y))
    pb = wait_for(lambda: direct_entry(b, a.id), 5, what="%s to list %s as direct" % (y, x))
    if family == 6:
        check_eq(pa["addr"], b.addr6, "%s sees %s at" % (x, y))
        check_eq(pb["addr"], a.addr6, "%s sees %s at" % (y, x))
    else:
        check_eq(pa["addr"].rsplit(":", 1)[0], w.routers[y].external_ip,
                 "%s sees %s at" % (x, y))
        check_eq(pb["addr"].rsplit(":", 1)[0], w.routers[x].external_ip,
                 "%s sees %s at" % (y, x))
    check_eq(b.ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0,
             "expose on %s" % y)
    data = os.urandom(100 * 1024)
    p, t_pipe = pipe_echo(a, b, data)
    check_eq(p.returncode, 0, "pipe %s -> %s (stderr %r)" % (x, y, p.stderr))
    check_eq(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(data).hexdigest(),
             "SHA-256 of the 100 KB back through %s -> %s" % (x, y))
    check(direct_entry(a, b.id) is not None, "no direct link after the tunnel")
    rtt = w.lab.rtt_ms(w.lab.nodes[x], w.lab.nodes[y])
    FIGURES.append("%s -> %s: family %d punch %.0f ms = %.1f host RTTs (daemon says %.0f ms), "
                   "100 KB echo %.0f ms" % (x, y, family, took * 1000, took * 1000 / rtt, j["ms"],
                                            t_pipe * 1000))


def test_only_v6_direct(w):
    """(a) both IPv4 NATs endpoint-dependent: IPv6 is the only direct way."""
    punched6(w, "h-rnd1", "h-rnd2")


def test_v6_only_sites(w):
    """(b) IPv6-only to IPv6-only, firewalls that drop and reset."""
    punched6(w, "h-v6a", "h-v6b")


def candidates_logged(d, peer):
    """The candidates d's log names for its punch with peer (the
    "candidates [...]" of the schedule line), as a list of strings."""
    for line in d.log_text().splitlines():
        if "punch %s: peer " % peer.id in line and "candidates [" in line:
            return line.split("candidates [", 1)[1].split("], ", 1)[0].split()
    return None


def test_dual_stack_race(w):
    """(c) both families punchable: both raced, IPv6 won (its head start)."""
    punched6(w, "h-ds1", "h-ds2")
    a, b = w.d["h-ds1"], w.d["h-ds2"]
    cands = candidates_logged(a, b)
    check(cands is not None, "no schedule line in h-ds1's log")
    check(any(c.startswith("[") for c in cands) and any(not c.startswith("[") for c in cands),
          "h-ds1 raced %r: want candidates of both families" % cands)
    check_eq(cands[0], b.addr6, "h-ds1's first candidate")


def test_only_v6_candidates_behind_random_nats(w):
    """(a) again: behind endpoint-dependent NATs only IPv6 was offered."""
    cands = candidates_logged(w.d["h-rnd1"], w.d["h-rnd2"])
    check(cands is not None, "no schedule line in h-rnd1's log")
    check_eq(cands, [w.d["h-rnd2"].addr6], "h-rnd1's candidates")


def test_v6_cut_falls_back_to_v4(w):
    """(c') the race with a dead IPv6 path: IPv4 wins after its head start."""
    punched6(w, "h-ds3", "h-ds4", family=4)
    cands = candidates_logged(w.d["h-ds3"], w.d["h-ds4"])
    check(cands is not None and cands[0] == w.d["h-ds4"].addr6,
          "h-ds3 raced %r: want IPv6 first" % cands)


# Below the 2 s a relay waits for a likely punch (P2P_REACH_PUNCH_GRACE_MS):
# with no family in common the punch is unlikely and the relay not held.
NO_COMMON_FAMILY_BOUND_S = 1.5


def test_no_common_family_is_relayed(w):
    """IPv6-only to IPv4-only: relayed at once, through a dual-stack server."""
    a, b = w.d["h-v6a"], w.d["h-v4"]
    r, j, took = connect(a, b)
    print("  connect h-v6a -> h-v4: exit %d %s (%.2fs)" % (r.returncode, r.stdout.strip(), took))
    check_eq(r.returncode, 0, "connect exit (stderr %r)" % r.stderr)
    check_eq((j.get("path"), j.get("method"), j.get("family")), ("relay", "relay", 6),
             "connect h-v6a -> h-v4")
    check(took < NO_COMMON_FAMILY_BOUND_S, "relayed after %.1f s" % took)
    check_eq(b.ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0,
             "expose on h-v4")
    data = os.urandom(100 * 1024)
    p, _ = pipe_echo(a, b, data)
    check_eq(p.returncode, 0, "pipe (stderr %r)" % p.stderr)
    check_eq(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(data).hexdigest(),
             "SHA-256 of the 100 KB back through the relay")
    FIGURES.append("h-v6a -> h-v4: relay %.0f ms (no family in common)" % (took * 1000))


TESTS = [test_status_lists_global_v6, test_firewalls, test_only_v6_direct, test_only_v6_candidates_behind_random_nats,
         test_v6_only_sites, test_dual_stack_race, test_v6_cut_falls_back_to_v4,
         test_no_common_family_is_relayed]


def main():
    run_lab("p2pv6-", build, TESTS, tail=40, figures=FIGURES, ipv6=True)


if __name__ == "__main__":
    main()
