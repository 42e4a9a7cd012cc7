"""NAT lab: Linux network namespaces with real netfilter NAT (python3 stdlib).

    lab = Lab()                         # prefix natlab<PID>x<N>
    try:
        s1 = lab.public("s1")           # a public host
        r = lab.nat("r1", "ei")         # a NAT router (kinds: KINDS)
        h = lab.host("h1", r)           # a host on its LAN
        lab.popen(h, ["p2pd", ...])     # processes killed by PID at down()
    finally:
        lab.down()

Topology. "inet" is a routing namespace (the internet): every public host
and every router's WAN hangs off it on its own /24 (documentation and
benchmark ranges: 203.0.113/24, 198.51.100/24, 192.0.2/24, then
198.18.N/24 for public hosts and 198.19.N/24 for router WANs; the overlay
limits entries per /24, so every public address gets its own). A router
owns a bridge "lan" with 10.N.0.1/24; its hosts are 10.N.0.10, .11, ...
A router whose upstream is another router sits on that router's LAN
(double NAT). Veth pairs are created directly inside the lab's
namespaces: nothing is added to the host's own namespace.

NAT kinds (nft, table "natlab" in the router's namespace):
  pp      port-preserving: masquerade (keeps the source port when free)
  ei      endpoint-independent, port-changing: snat to the WAN IP with
          port = source port ^ 0x4000 (the same external port for every
          destination, never the internal one)
  random  endpoint-dependent: masquerade fully-random
Filtering of unsolicited inbound on the WAN (any kind): "rst" (a new TCP
connection is answered with a reset, Linux's own behaviour made explicit)
or "drop" (silently dropped: the dialler times out).

Mapping expiry. timeouts= sets the router's conntrack timeouts (per
namespace), but an expired TCP entry alone does not break an idle flow:
with nf_conntrack_tcp_loose=1 (the default, per namespace too) the flow's
next outbound packet is picked up mid-stream as a new connection, and a
pp or ei NAT maps it to the same port again, so the mapping silently
comes back (and the far end's packet that arrives first is refused with a
reset, which a router with a path loses; see the known limit below).
nat(..., remap=True) makes it a home router whose forgotten mapping is
gone: a TCP packet conntrack sees first that is not a SYN gets a new
random port, and the far end resets the flow. A reboot (conntrack -F) of
a remap or random router breaks every TCP flow through it the same way.

Port mapping (portmap= on nat()): "miniupnpd" runs Debian's miniupnpd
(nftables flavour; NAT-PMP and PCP on, UPnP off) in the router's
namespace, allowing its LAN's ports 1024-65535; "upnp" the same with
UPnP-IGD on and NAT-PMP/PCP off (port 5351 unreachable); "deny" runs it with
a deny rule for everything (it answers PCP and NAT-PMP, and refuses); None
runs nothing (port 5351 unreachable). Every router counts the UDP packets sent to its port
5351 (lab.portmap_packets(r)). miniupnpd's log is its stderr, in the lab's
logdir; its /dev/console is /dev/null (see _miniupnpd: with no syslog
daemon it would also write every line to the machine's console). miniupnpd refuses to map while its WAN
address is private or reserved, and every documentation range is, so such a
router's WAN comes from PORTMAP_WAN_NET instead of 198.19/16.

Paths (delay, jitter, loss). This kernel has no netem, so a site's link
gets a pathemu process (tools/natlab/pathemu.c, NFQUEUE) in the site's own
namespace: mangle POSTROUTING -o <uplink> to queue 0 and PREROUTING -i
<uplink> to queue 1 (queue numbers are per namespace). Both directions
of the link carry the site's one-way delay, so between two sites
one way = delay(a) + delay(b) and the round trip is twice that
(lab.rtt_ms(a, b)). Jitter is uniform in +-jitter per packet but never
reorders a direction (FIFO); loss drops that share of the packets in each
direction. No --queue-bypass: a dead emulator black-holes its link, which
fails tests loudly instead of silently removing the delay
(lab.check_paths() says which one died).
Known limit: a TCP reset or ICMP error that a router generates itself (the
"rst" filtering, the IPv6 firewall's "rst" and "icmp") is lost when that
router's WAN has a path (seen for IPv4 and IPv6 alike: the reject's
packet is queued on the way out and never arrives), so unsolicited SYNs
then time out as with "drop". Give such sites their delay on the host's
link (host(..., delay_ms=...)) when the resets matter.

    s1 = lab.public("s1", delay_ms=40, jitter_ms=5, loss=0.01)
    r = lab.nat("r1", "ei", delay_ms=60, timeouts={"udp_timeout": 10})
    h = lab.host("h1", r)
    lab.rtt_ms(h, s1)                   # 200
    lab.reboot(r)                       # conntrack -F: mappings forgotten
    inner = lab.nat("r2", "pp", upstream=r, hops=3)  # 3 routers between

Bigger labs: lab.publics(names, ...) builds many public hosts with a few
batched `ip -batch` calls; big(lab, servers=100) builds an overlay-sized
lab (see there).

IPv6 (Lab(ipv6=True); without it nothing of IPv6 is configured). inet
also routes the documentation prefix 2001:db8::/32, one /48 per site so
that the overlay's per-/48 limits see distinct networks: public host k
(from 0) is 2001:db8:(0x100+k)::2 on a /64 shared with inet (::1);
router N has its WAN at 2001:db8:(0x200+N)::2 and its LAN, a routed /64,
is 2001:db8:(0x200+N):1::/64 (the router ::1, hosts ::10, ::11, ...). No
NAT66: hosts have global addresses, and the router runs a stateful
firewall (table ip6 natlab6): outbound and established/related pass,
invalid inbound is dropped, and new inbound from the WAN is, by its
ipv6_filter ("rst", "drop" or "icmp": reject with a TCP reset, drop
silently, reject with ICMPv6 administratively prohibited). A host made
with host(..., ipv4=False) has no IPv4 address but loopback (an
IPv6-only site). DAD is off in every namespace (addresses usable at once)
and pathemu queues IPv6 on the same link too (ip6tables mangle rules).
Double NAT and hop chains stay IPv4-only.

    lab = Lab(ipv6=True)
    s1 = lab.public("s1")               # s1.ip6 == "2001:db8:100::2"
    r = lab.nat("r1", "random", ipv6_filter="drop")
    h = lab.host("h1", r)               # h.ip (10.1.0.10), h.ip6 (2001:db8:201:1::10)
    h6 = lab.host("h6", r, ipv4=False)  # h6.ip is None

Teardown: down() runs from finally, atexit and SIGTERM/SIGINT; it kills the
lab's processes by PID, then every process still inside its namespaces
(ip netns pids), and deletes the namespaces (their veths and bridges go
with them). Conntrack is flushed in every router namespace when it is
created and by flush().
"""
import atexit
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

KINDS = ("pp", "ei", "random")
FILTERS = ("rst", "drop")
FILTERS6 = ("rst", "drop", "icmp")  # a router's IPv6 firewall (module doc)
V6_PREFIX = "2001:db8"  # documentation prefix: inet routes one /48 per site
V6_PUBLIC_BASE = 0x100  # public host k: 2001:db8:(0x100+k)::/48
V6_ROUTER_BASE = 0x200  # router N: 2001:db8:(0x200+N)::/48
EI_XOR = 0x4000  # ei kind: external port = internal port ^ EI_XOR
PREFIX_RE = re.compile(r"^natlab(\d+)([xu])(\d+)-")  # u: `natlab up`, kept
PUBLIC_NETS = ("203.0.113", "198.51.100", "192.0.2")
PUBLIC_MAX = 256  # public hosts: the 3 above, then 198.18.3-255
HOPS_MAX = 8  # routing namespaces between an inner router and its upstream
# pathemu's queues in a site's namespace (NFQUEUE numbers are per netns).
QUEUE_EGRESS = 0
QUEUE_INGRESS = 1
DELAY_MAX_MS = 10000  # pathemu's own bound
READY_TIMEOUT = 10  # s for a pathemu to bind its queues
PARALLEL_IP = 8  # `ip -batch` processes run at once while building
# Root-namespace neighbour table sizes for big labs (NOTES.md: the table is
# shared by every namespace; the default 1024 overflows past ~100 hosts).
GC_THRESH = (8192, 32768, 65536)
# WANs of port-mapping routers: 100.128.N/24. miniupnpd 2.3.1 will not map
# on a private or reserved WAN address (RFC 1918, 100.64/10, every
# documentation and benchmark range) and has no option to allow one, so
# these get ordinary unicast space: 100.128/16 is the first block above the
# shared range 100.64/10, easy to tell apart in a log. It exists only
# inside the lab's namespaces (inet routes it between them, nothing routes
# it out of them), so nobody's real addresses are reached.
PORTMAP_WAN_NET = "100.128"
PORTMAPS = (None, "miniupnpd", "deny", "upnp")
SSDP_PORT = 1900
PMAP_PORT = 5351
CLONE_NEWNET = 0x40000000

_labs = []
_counter = [0]


def sh(*argv, check=True, capture=True, timeout=30):
    """Run one command (argv, no shell); raise with its stderr on failure."""
    r = subprocess.run([str(a) for a in argv], capture_output=capture, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(map(str, argv)), r.returncode,
                                                 (r.stderr or "").strip()))
    return r


def sh_input(argv, text, timeout=60):
    """Run argv with text on stdin; raise with its stderr on failure."""
    r = subprocess.run([str(a) for a in argv], input=text, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(map(str, argv)), r.returncode,
                                                 (r.stderr or "").strip()))
    return r


def ip_batch(ns, lines):
    """One `ip [-n ns] -batch -` for many commands (ns None: the root)."""
    if lines:
        sh_input(["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"], "\n".join(lines) + "\n")


def ip_batches(jobs):
    """Many (ns, lines) batches, PARALLEL_IP at a time."""
    running = []

    def reap(p, ns):
        err = p.stderr.read()  # ip writes little: no deadlock on a full pipe
        p.stderr.close()
        p.wait(60)
        if p.returncode != 0:
            raise RuntimeError("ip -n %s -batch: exit %d: %s" % (ns, p.returncode, err.strip()))

    for ns, lines in jobs:
        if len(running) >= PARALLEL_IP:
            reap(*running.pop(0))
        p = subprocess.Popen(["ip", "-n", ns, "-batch", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        p.stdin.write("\n".join(lines) + "\n")
        p.stdin.close()
        running.append((p, ns))
    for p, ns in running:
        reap(p, ns)


# Writes sysctls in many namespaces from one process: setns(2) into each
# (by its /run/netns file) and write /proc/sys, which follows the caller's
# network namespace. One process instead of one `ip netns exec` per value.
SYSCTL_HELPER = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for ns, kv in json.load(sys.stdin):
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, %d) != 0:
        e = ctypes.get_errno()
        sys.exit("setns %%s: %%s" %% (ns, os.strerror(e)))
    os.close(fd)
    for k, v in kv:
        with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
            f.write(str(v))
""" % CLONE_NEWNET


def sysctls(items):
    """items: [(ns, [(key, value), ...])]; written by one helper process."""
    if items:
        sh_input([sys.executable, "-c", SYSCTL_HELPER], json.dumps(items))


def find_pathemu():
    """NATLAB_PATHEMU, else build*/tools/natlab/pathemu in the tree, else PATH."""
    p = os.environ.get("NATLAB_PATHEMU")
    if p:
        return p
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    for b in sorted(os.listdir(top)):
        c = os.path.join(top, b, "tools", "natlab", "pathemu")
        if b.startswith("build") and os.access(c, os.X_OK):
            return os.path.abspath(c)
    return shutil.which("pathemu")


def have_root():
    return os.geteuid() == 0


def can_create_netns():
    """Whether this process can create (and delete) a network namespace."""
    if not have_root():
        return False
    name = "natlab%dx-probe" % os.getpid()
    try:
        r = sh("ip", "netns", "add", name, check=False)
        if r.returncode != 0:
            return False
        sh("ip", "netns", "del", name, check=False)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


class Node:
    """A namespace: a public host, a router, a LAN host or a routing hop."""

    def __init__(self, lab, name, role):
        self.lab = lab
        self.name = name
        self.role = role
        self.ns = "%s-%s" % (lab.prefix, name)
        self.ip = None  # the address others reach it at (public) or its LAN address
        self.ip6 = None  # its global IPv6 address (labs with ipv6=True)
        self.gw = None
        self.uplink = "eth0" if role == "host" else "wan0"  # the link path() shapes
        self.parent = None  # the next node up towards inet (None: attached to inet)
        self.delay_ms = 0
        self.jitter_ms = 0
        self.loss = 0.0
        self.emu = None  # its pathemu process, if path() was called

    def run(self, *argv, **kw):
        return sh("ip", "netns", "exec", self.ns, *argv, **kw)

    def chain(self):
        """This node and every node above it whose uplink leads to inet."""
        n, out = self, []
        while n is not None:
            out.append(n)
            n = n.parent
        return out

    def __repr__(self):
        return "<%s %s %s>" % (self.role, self.name, self.ip)


class Router(Node):
    def __init__(self, lab, name, kind, filtering, index):
        super().__init__(lab, name, "router")
        self.kind = kind
        self.filtering = filtering
        self.index = index
        self.lan_net = "10.%d.0" % index
        self.lan_ip = self.lan_net + ".1"
        self.public_ip = None  # the WAN address (for double NAT: on the upstream LAN)
        self.upstream = None
        self.hops = []  # routing namespaces between it and its upstream, inner first
        self.hosts = 0
        self.portmap = None  # None, "miniupnpd" or "deny"
        self.upnpd = None  # its miniupnpd process
        self.ipv6_filter = None  # FILTERS6 when its LAN has IPv6
        self.lan6 = None  # its LAN's /64 prefix ("2001:db8:201:1:")
        self.remap = False  # nat(remap=True): a forgotten TCP mapping never comes back

    @property
    def external_ip(self):
        """The address the internet sees (the outermost router's WAN)."""
        r = self
        while r.upstream is not None:
            r = r.upstream
        return r.public_ip


class Lab:
    def __init__(self, keep=False, pathemu=None, ipv6=False):
        _counter[0] += 1
        self.prefix = "natlab%d%s%d" % (os.getpid(), "u" if keep else "x", _counter[0])
        self.keep = keep  # `natlab up`: leave it running when we exit
        self.nodes = {}
        self.procs = []
        self.npublic = 0
        self.nrouters = 0
        self.nlinks = 0  # 172.16.N/24 transit nets between hops
        self.pathemu = pathemu
        self.logdir = None  # pathemu logs, made when the first starts
        self.closed = False
        self.ipv6 = ipv6
        _labs.append(self)
        _install_handlers()
        self.inet = self._ns("inet", "inet")
        self.inet.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        if ipv6:
            sysctls([(self.inet.ns, [("net.ipv6.conf.all.forwarding", 1)])])

    # -- building --------------------------------------------------------
    def _add_namespaces(self, nodes):
        """Create the namespaces of nodes (one `ip -batch`), rp_filter off."""
        for n in nodes:
            if n.name in self.nodes:
                raise ValueError("duplicate lab name %r" % n.name)
        ip_batch(None, ["netns add %s" % n.ns for n in nodes])
        for n in nodes:
            self.nodes[n.name] = n
        v6 = [("net.ipv6.conf.all.accept_dad", 0), ("net.ipv6.conf.default.accept_dad", 0)]
        sysctls([(n.ns, [("net.ipv4.conf.all.rp_filter", 0),
                         ("net.ipv4.conf.default.rp_filter", 0)] + (v6 if self.ipv6 else []))
                 for n in nodes])

    def _ns(self, name, role, node=None):
        node = node or Node(self, name, role)
        self._add_namespaces([node])
        ip_batch(node.ns, ["link set lo up"])
        return node

    def _veth(self, a, a_if, b, b_if):
        """A veth pair from namespace a (a_if) to namespace b (b_if)."""
        sh("ip", "-n", a.ns, "link", "add", a_if, "type", "veth", "peer", "name", b_if,
           "netns", b.ns)
        sh("ip", "-n", a.ns, "link", "set", a_if, "up")
        sh("ip", "-n", b.ns, "link", "set", b_if, "up")

    def _attach_inet(self, node, net):
        ifname = ("i-" + node.name)[:15]
        self._veth(self.inet, ifname, node, "wan0")
        self.inet.run("ip", "addr", "add", net + ".1/24", "dev", ifname)
        node.run("ip", "addr", "add", net + ".2/24", "dev", "wan0")
        node.run("ip", "route", "add", "default", "via", net + ".1")
        return net + ".2"

    def _attach_lan(self, router, node, ipv4=True):
        router.hosts += 1
        ip = "%s.%d" % (router.lan_net, 9 + router.hosts)
        ifname = ("l-" + node.name)[:15]
        dev = node.uplink
        self._veth(router, ifname, node, dev)
        router.run("ip", "link", "set", ifname, "master", "lan")
        node.parent = router
        if not ipv4:
            return None
        node.run("ip", "addr", "add", ip + "/24", "dev", dev)
        node.run("ip", "route", "add", "default", "via", router.lan_ip)
        return ip

    def _router6(self, r, filtering):
        """IPv6 on an inet-attached router: its WAN /64 shared with inet,
        its /48 routed to it, a routed LAN /64, forwarding on, and the
        stateful firewall of table ip6 natlab6 (module doc)."""
        net6 = "%s:%x:" % (V6_PREFIX, V6_ROUTER_BASE + r.index)
        r.ip6 = net6 + ":2"
        r.lan6 = net6 + "1:"
        r.ipv6_filter = filtering
        sysctls([(r.ns, [("net.ipv6.conf.all.forwarding", 1)])])
        ip_batch(r.ns, ["addr add %s:2/64 dev wan0 nodad" % net6,
                        "route add ::/0 via %s:1" % net6,
                        "addr add %s:1/64 dev lan nodad" % r.lan6])
        ip_batch(self.inet.ns, ["addr add %s:1/64 dev %s nodad" % (net6, ("i-" + r.name)[:15]),
                                "route add %s:/48 via %s:2" % (net6, net6)])
        new = {"rst": 'meta l4proto tcp ct state new reject with tcp reset\n'
                      '    iifname "wan0" ct state new drop',
               "drop": 'ct state new drop',
               "icmp": 'ct state new reject with icmpv6 type admin-prohibited'}[filtering]
        rules = """
table ip6 natlab6 {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    iifname "wan0" ct state invalid drop
    iifname "wan0" %s
  }
}
""" % new
        r2 = subprocess.run(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules,
                            capture_output=True, text=True, timeout=30)
        if r2.returncode != 0:
            raise RuntimeError("nft in %s: %s" % (r.ns, r2.stderr.strip()))

    def publics(self, names, delay_ms=0, jitter_ms=0, loss=0.0):
        """Many public hosts at once, each with its own /24 (batched: a few
        processes for all of them, not a dozen each). delay_ms, jitter_ms
        and loss: as path(), for every one of them."""
        names = list(names)
        if self.npublic + len(names) > PUBLIC_MAX:
            raise ValueError("at most %d public hosts" % PUBLIC_MAX)
        nodes = [Node(self, n, "public") for n in names]
        ifnames = [("i-" + n.name)[:15] for n in nodes]
        if len(set(ifnames)) != len(ifnames):
            raise ValueError("public names must differ in their first 13 characters")
        self._add_namespaces(nodes)
        jobs, inet_lines = [], []
        for node, ifname in zip(nodes, ifnames):
            k = self.npublic
            self.npublic += 1
            net = PUBLIC_NETS[k] if k < len(PUBLIC_NETS) else "198.18.%d" % k
            node.ip = net + ".2"
            # The veth is made from the node's side with its peer put straight
            # into inet; a default route on a link still down is accepted.
            lines = ["link set lo up",
                     "link add wan0 type veth peer name %s netns %s" % (ifname, self.inet.ns),
                     "addr add %s.2/24 dev wan0" % net,
                     "link set wan0 up",
                     "route add default via %s.1" % net]
            inet_lines += ["addr add %s.1/24 dev %s" % (net, ifname),
                           "link set %s up" % ifname]
            if self.ipv6:
                net6 = "%s:%x:" % (V6_PREFIX, V6_PUBLIC_BASE + k)
                node.ip6 = net6 + ":2"
                lines[3:3] = ["addr add %s:2/64 dev wan0 nodad" % net6]
                lines.append("route add ::/0 via %s:1" % net6)
                inet_lines.append("addr add %s:1/64 dev %s nodad" % (net6, ifname))
            jobs.append((node.ns, lines))
        ip_batches(jobs)
        ip_batch(self.inet.ns, inet_lines)
        if delay_ms or jitter_ms or loss:
            self.paths(nodes, delay_ms, jitter_ms, loss)
        return nodes

    def public(self, name, delay_ms=0, jitter_ms=0, loss=0.0):
        """A host on the internet with its own public /24; delay_ms,
        jitter_ms, loss: its link's path (see path())."""
        return self.publics([name], delay_ms, jitter_ms, loss)[0]

    def nat(self, name, kind="pp", filtering="rst", upstream=None, delay_ms=0, jitter_ms=0,
            loss=0.0, hops=0, timeouts=None, portmap=None, portmap_lifetime=None,
            ipv6_filter="drop", remap=False):
        """A NAT router with an empty LAN; upstream: another Router (double
        NAT), hops: that many routing namespaces between the two (a carrier
        NAT several hops away). delay_ms, jitter_ms, loss: its WAN link's
        path (see path()); timeouts: conntrack timeouts (see set_timeouts());
        portmap: a port-mapping server (PORTMAPS, module doc), with mappings
        of at most portmap_lifetime s (PCP) when given; ipv6_filter (labs
        with ipv6=True, routers attached to inet): what its IPv6 firewall
        does with new inbound connections (FILTERS6, module doc); remap:
        a TCP mapping the router forgot (timeout, reboot) does not come
        back (module doc, "Mapping expiry")."""
        if kind not in KINDS:
            raise ValueError("NAT kind %r not in %s" % (kind, KINDS))
        if filtering not in FILTERS:
            raise ValueError("filtering %r not in %s" % (filtering, FILTERS))
        if hops and upstream is None:
            raise ValueError("hops need an upstream router")
        if not 0 <= hops <= HOPS_MAX:
            raise ValueError("hops: 0 to %d" % HOPS_MAX)
        if portmap not in PORTMAPS:
            raise ValueError("portmap %r not in %s" % (portmap, PORTMAPS))
        if portmap and upstream is not None:
            raise ValueError("portmap: only on a router attached to inet")
        if self.ipv6 and ipv6_filter not in FILTERS6:
            raise ValueError("ipv6_filter %r not in %s" % (ipv6_filter, FILTERS6))
        self.nrouters += 1
        r = self._ns(name, "router", Router(self, name, kind, filtering, self.nrouters))
        r.portmap = portmap
        r.remap = remap
        r.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        r.run("ip", "link", "add", "lan", "type", "bridge")
        r.run("ip", "link", "set", "lan", "up")
        r.run("ip", "addr", "add", r.lan_ip + "/24", "dev", "lan")
        if upstream is None and portmap:
            r.public_ip = self._attach_inet(r, "%s.%d" % (PORTMAP_WAN_NET, r.index))
        elif upstream is None:
            r.public_ip = self._attach_inet(r, "198.19.%d" % r.index)
        else:
            r.upstream = upstream
            if hops:
                r.public_ip = self._hop_chain(r, upstream, hops)
            else:
                r.public_ip = self._attach_lan(upstream, r)
        r.ip = r.public_ip
        if self.ipv6 and upstream is None:
            self._router6(r, ipv6_filter)
        self._nft(r)
        if portmap:
            self._miniupnpd(r, portmap_lifetime)
        if timeouts:
            self.set_timeouts(r, **timeouts)
        self.flush_router(r)
        if delay_ms or jitter_ms or loss:
            self.path(r, delay_ms, jitter_ms, loss)
        return r

    def _hop_chain(self, r, upstream, hops):
        """hops routing namespaces from upstream's LAN down to r's WAN:
        upstream -lan- hop[n-1] -- ... -- hop[0] -- r, each link its own
        172.16.N/24 (.1 the upper end, .2 the lower). Returns r's WAN IP.
        Every node above a transit net routes it down the chain."""
        chain = [Node(self, "%s-h%d" % (r.name, i + 1), "hop") for i in range(hops)]
        for h in reversed(chain):  # the outermost first: it joins upstream's LAN
            self._ns(h.name, "hop", h)
            h.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        r.hops = chain
        top = chain[-1]
        top.ip = self._attach_lan(upstream, top)
        # Walk down: each lower node hangs off the one above on a new net.
        above, above_dev = top, "dn0"
        lower = list(reversed(chain[:-1])) + [r]
        nets = []
        for node in lower:
            self.nlinks += 1
            if self.nlinks > 255:
                raise ValueError("too many transit nets")
            net = "172.16.%d" % self.nlinks
            dev = "wan0"
            self._veth(above, above_dev, node, dev)
            above.run("ip", "addr", "add", net + ".1/24", "dev", above_dev)
            node.run("ip", "addr", "add", net + ".2/24", "dev", dev)
            node.run("ip", "route", "add", "default", "via", net + ".1")
            node.parent = above
            if node is not r:
                node.ip = net + ".2"
            above.down_ip = net + ".1"  # the source of its ICMP errors towards r
            nets.append((above, net))
            above = node
        # Routes to every transit net for the nodes above it (the upstream
        # router reaches them all through the top hop's LAN address).
        for i, (owner, net) in enumerate(nets):
            for j in range(i):
                upper, upper_net = nets[j]
                upper.run("ip", "route", "add", net + ".0/24", "via",
                          "%s.2" % upper_net)
            upstream.run("ip", "route", "add", net + ".0/24", "via", top.ip)
        return nets[-1][1] + ".2"

    def _nft(self, r):
        if r.kind == "pp":
            nat = 'oifname "wan0" masquerade'
        elif r.kind == "random":
            nat = 'oifname "wan0" masquerade fully-random'
        else:
            nat = ('oifname "wan0" meta l4proto tcp snat ip to %s : tcp sport ^ %d\n'
                   '    oifname "wan0" masquerade' % (r.public_ip, EI_XOR))
        if r.remap:
            # The first packet conntrack sees of a TCP connection that is
            # not a SYN is the mid-stream packet of a mapping it forgot
            # (loose pickup): a new random port, never the old one.
            nat = 'oifname "wan0" tcp flags & syn == 0 masquerade fully-random\n    ' + nat
        if r.filtering == "rst":
            unsolicited = 'iifname "wan0" meta l4proto tcp ct state new reject with tcp reset'
        else:
            unsolicited = 'iifname "wan0" ct state new drop'
        # A port forward (miniupnpd's dnat) is solicited: it passes, as on
        # a home router.
        forward = 'ct status dnat accept\n    ' + unsolicited
        rules = """
table ip natlab {
  counter pmap {
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    %s
  }
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport %d counter name "pmap"
    %s
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    %s
  }
}
""" % (nat, PMAP_PORT, unsolicited, forward)
        r2 = subprocess.run(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules,
                            capture_output=True, text=True, timeout=30)
        if r2.returncode != 0:
            raise RuntimeError("nft in %s: %s" % (r.ns, r2.stderr.strip()))

    def _miniupnpd(self, r, lifetime):
        """miniupnpd in r's namespace: its nft chains made as its
        nft_init.sh makes them (table inet miniupnpd; the forward chain
        accepts, natlab's own chain filters), a config in the lab's
        directory, the process killed by PID at down()."""
        if shutil.which("miniupnpd") is None:
            raise RuntimeError("miniupnpd not installed (tools/deps installs it)")
        rules = """
table inet miniupnpd {
  chain forward {
    type filter hook forward priority 0; policy accept;
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
"""
        p = subprocess.run(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("nft in %s: %s" % (r.ns, p.stderr.strip()))
        d = self._logdir()
        rule = ("deny 0-65535 0.0.0.0/0 0-65535" if r.portmap == "deny"
                else "allow 1024-65535 %s.0/24 1024-65535" % r.lan_net)
        upnp = r.portmap == "upnp"
        conf = ["ext_ifname=wan0", "listening_ip=lan", "http_port=0",
                "enable_natpmp=%s" % ("no" if upnp else "yes"),
                "enable_upnp=%s" % ("yes" if upnp else "no"), "secure_mode=yes",
                "system_uptime=yes", "upnp_table_name=miniupnpd",
                "upnp_nat_table_name=miniupnpd",
                "lease_file=%s/upnp-%s.leases" % (d, r.name),
                "uuid=3d3cec3a-8cf0-11e0-98ee-%012x" % r.index,
                rule, "deny 0-65535 0.0.0.0/0 0-65535"]
        if lifetime:
            # miniupnpd wants min < max: every request gets max.
            conf += ["min_lifetime=1", "max_lifetime=%d" % lifetime]
        path = os.path.join(d, "upnp-%s.conf" % r.name)
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        log = open(os.path.join(d, "upnp-%s.log" % r.name), "w")
        # miniupnpd opens syslog with LOG_CONS (and, for -d, LOG_PERROR:
        # every line also goes to stderr, its log file here). With no
        # /dev/log (no syslog daemon, as on the test machines) glibc then
        # writes every line to /dev/console as well: on a VM that is a
        # serial port, ~2 ms of kernel time per line. A refusal walks every
        # external port and logs one line each (65535 per PCP request),
        # minutes of serial output that pinned a CPU in the UART interrupt:
        # soft lockups, RCU stalls, and every `ip netns exec`, nft and
        # netns teardown blocked in synchronize_rcu (natlab-portmap hung).
        # So /dev/console is /dev/null for it, in the private mount
        # namespace `ip netns exec` makes (/ is rslave there: nothing
        # propagates back to the host); exec keeps the PID.
        r.upnpd = self.popen(r, ["sh", "-c", 'mount --bind /dev/null /dev/console && exec "$@"',
                                 "miniupnpd", "miniupnpd", "-d", "-f", path, "-P",
                                 os.path.join(d, "upnp-%s.pid" % r.name)],
                             stdout=log, stderr=subprocess.STDOUT)
        log.close()
        # Ready when its PCP/NAT-PMP (or SSDP) socket is bound.
        port = SSDP_PORT if upnp else PMAP_PORT
        deadline = time.time() + READY_TIMEOUT
        while time.time() < deadline:
            out = r.run("ss", "-Hulnp", "sport = :%d" % port, check=False).stdout
            if "miniupnpd" in (out or ""):
                return
            if r.upnpd.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("miniupnpd in %s did not start: %s" % (r.name, self.upnpd_log(r)))

    def _logdir(self):
        if self.logdir is None:
            self.logdir = tempfile.mkdtemp(prefix=self.prefix + "-")
        return self.logdir

    def upnpd_log(self, r):
        """What r's miniupnpd printed so far."""
        try:
            with open(os.path.join(self._logdir(), "upnp-%s.log" % r.name)) as f:
                return f.read()
        except OSError:
            return ""

    def portmap_packets(self, r):
        """UDP packets r received for port 5351 (PCP, NAT-PMP) so far."""
        out = r.run("nft", "list", "counter", "ip", "natlab", "pmap").stdout
        m = re.search(r"packets (\d+)", out)
        return int(m.group(1)) if m else 0

    def portmap_rules(self, r):
        """The port forwards r's miniupnpd holds (its nft dnat rules)."""
        out = r.run("nft", "list", "chain", "inet", "miniupnpd", "prerouting_miniupnpd",
                    check=False).stdout or ""
        return [line.strip() for line in out.splitlines() if "dnat" in line]

    def host(self, name, router, delay_ms=0, jitter_ms=0, loss=0.0, ipv4=True, ipv6=True):
        """A host on router's LAN; delay_ms, jitter_ms, loss: its LAN link's
        path (see path()), on top of its routers' WAN links. In a lab with
        IPv6 it gets an address of the router's LAN /64 too (node.ip6);
        ipv4=False leaves it without IPv4 (an IPv6-only site), ipv6=False
        without IPv6 (an IPv4-only host on a dual-stack LAN)."""
        if not ipv4 and (router.lan6 is None or not ipv6):
            raise ValueError("ipv4=False needs a router with IPv6 and ipv6=True")
        node = self._ns(name, "host")
        node.router = router
        node.ip = self._attach_lan(router, node, ipv4)
        if router.lan6 is not None and ipv6:
            node.ip6 = "%s:%x" % (router.lan6, 0x10 + router.hosts - 1)
            ip_batch(node.ns, ["addr add %s/64 dev %s nodad" % (node.ip6, node.uplink),
                               "route add ::/0 via %s:1" % router.lan6])
        if delay_ms or jitter_ms or loss:
            self.path(node, delay_ms, jitter_ms, loss)
        return node

    # -- paths -----------------------------------------------------------
    def path(self, node, delay_ms, jitter_ms=0, loss=0.0):
        """Give node's uplink (wan0, or eth0 for a LAN host) a one-way delay
        (ms) with +-jitter_ms per packet and a loss share (0 to 1), in both
        directions: a pathemu process in node's namespace, NFQUEUE rules
        on the uplink. Once per node."""
        self.paths([node], delay_ms, jitter_ms, loss)

    def paths(self, nodes, delay_ms, jitter_ms=0, loss=0.0):
        """path() for many nodes: the emulators start together, then every
        node's rules go in with one iptables-restore each."""
        for v, what, top in ((delay_ms, "delay_ms", DELAY_MAX_MS),
                             (jitter_ms, "jitter_ms", DELAY_MAX_MS)):
            if not (isinstance(v, int) and 0 <= v <= top):
                raise ValueError("%s: an int from 0 to %d, not %r" % (what, top, v))
        if not 0 <= loss <= 1:
            raise ValueError("loss is a share of packets, 0 to 1, not %r" % loss)
        for n in nodes:
            if n.emu is not None:
                raise ValueError("%s already has a path" % n.name)
        emu = self.pathemu or find_pathemu()
        if not emu:
            raise RuntimeError("pathemu not found: build it (meson; needs libnetfilter-queue-dev"
                               " from tools/deps) or set NATLAB_PATHEMU")
        if self.logdir is None:
            self.logdir = tempfile.mkdtemp(prefix=self.prefix + "-")
        started = []
        for n in nodes:
            log = open(os.path.join(self.logdir, "pathemu-%s.log" % n.name), "w")
            p = self.popen(n, [emu, "-q", QUEUE_EGRESS, "-q", QUEUE_INGRESS, "-d", delay_ms,
                               "-j", jitter_ms, "-l", "%.6f" % loss],
                           stdout=subprocess.PIPE, stderr=log, text=True)
            log.close()
            started.append((n, p))
        for n, p in started:
            if p.stdout.readline().strip() != "ready":
                p.wait(READY_TIMEOUT)
                raise RuntimeError("pathemu in %s did not start: %s" % (n.name, self.emu_log(n, p)))
            n.emu = p
            n.delay_ms, n.jitter_ms, n.loss = delay_ms, jitter_ms, loss
        for n in nodes:
            rules = ("*mangle\n"
                     "-A POSTROUTING -o %s -j NFQUEUE --queue-num %d\n"
                     "-A PREROUTING -i %s -j NFQUEUE --queue-num %d\n"
                     "COMMIT\n" % (n.uplink, QUEUE_EGRESS, n.uplink, QUEUE_INGRESS))
            sh_input(["ip", "netns", "exec", n.ns, "iptables-restore", "--noflush"], rules)
            if self.ipv6:  # the same delay for IPv6 on the same link
                sh_input(["ip", "netns", "exec", n.ns, "ip6tables-restore", "--noflush"], rules)

    def emu_log(self, node, p=None):
        p = p or node.emu
        try:
            with open(os.path.join(self.logdir, "pathemu-%s.log" % node.name)) as f:
                return f.read().strip()
        except OSError as e:
            return str(e)

    def path_stats(self, node):
        """pathemu's counters for node: {queue: {"seen", "passed", "lost",
        "overflow", "held", ...}} (SIGUSR1 makes it print them)."""
        os.kill(node.emu.pid, signal.SIGUSR1)
        want = {QUEUE_EGRESS, QUEUE_INGRESS}
        for _ in range(50):
            time.sleep(0.05)
            stats = {}
            for line in self.emu_log(node).splitlines():
                w = line.replace(":", "").split()
                if len(w) > 2 and w[0] == "pathemu" and w[1] == "queue":
                    stats[int(w[2])] = {w[i]: int(w[i + 1]) for i in range(3, len(w) - 1, 2)}
            if set(stats) == want:
                return stats
        raise RuntimeError("no counters from pathemu in %s: %s" % (node.name, self.emu_log(node)))

    def check_paths(self):
        """Raise if any emulator has exited (its link would be black-holed)."""
        dead = ["%s (exit %s: %s)" % (n.name, n.emu.returncode, self.emu_log(n))
                for n in self.nodes.values() if n.emu is not None and n.emu.poll() is not None]
        if dead:
            raise RuntimeError("pathemu exited: " + "; ".join(dead))

    def one_way_ms(self, a, b):
        """The configured one-way delay from a to b (without jitter): the
        delays of every link between them (links above where their chains
        to inet meet are not crossed)."""
        ca, cb = a.chain(), b.chain()
        return sum(n.delay_ms for n in ca if n not in cb) + \
            sum(n.delay_ms for n in cb if n not in ca)

    def rtt_ms(self, a, b):
        """The configured round trip between a and b (twice one_way_ms)."""
        return 2 * self.one_way_ms(a, b)

    # -- using -----------------------------------------------------------
    def flush_router(self, r):
        r.run("conntrack", "-F", check=False)  # exit 1 when the table is empty

    def reboot(self, r):
        """The router forgets every mapping, as a NAT reboot does (conntrack
        -F in its namespace; nft rules and addresses stay). Established flows
        through it are re-mapped on their next packet: a port-changing NAT
        gives them a new external port, so the far end resets them."""
        self.flush_router(r)

    def set_timeouts(self, r, **timeouts):
        """Conntrack timeouts (s) in r's namespace, i.e. how long the NAT
        keeps an idle mapping; keys are the sysctl names after
        net.netfilter.nf_conntrack_ (per network namespace on this kernel),
        e.g. udp_timeout=10, udp_timeout_stream=10,
        tcp_timeout_established=30. An unknown key raises."""
        items = []
        for k, v in timeouts.items():
            if not (isinstance(v, int) and v > 0):
                raise ValueError("timeout %s: a positive int (s), not %r" % (k, v))
            key = "net.netfilter.nf_conntrack_" + k
            items.append((key, v))
        known = set(self.timeouts(r))
        bad = [k for k, _ in items if k not in known]
        if bad:
            raise ValueError("unknown conntrack sysctls %s" % bad)
        sysctls([(r.ns, items)])

    def timeouts(self, r):
        """{sysctl name: seconds} for every conntrack timeout in r's namespace."""
        out = r.run("sysctl", "-a", "-r", r"^net\.netfilter\.nf_conntrack_.*timeout").stdout
        vals = {}
        for line in out.splitlines():
            k, _, v = line.partition(" = ")
            if v.strip().isdigit():
                vals[k.strip()] = int(v)
        return vals

    def flush(self):
        """conntrack -F in every router namespace (before reusing a lab)."""
        for n in self.nodes.values():
            if isinstance(n, Router):
                self.flush_router(n)

    def popen(self, node, argv, **kw):
        """Start argv inside node's namespace; killed by PID at down()."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", node.ns] + [str(a) for a in argv], **kw)
        self.procs.append(p)  # `ip netns exec` execs argv: p.pid is argv's PID
        return p

    def describe(self):
        lines = ["lab %s" % self.prefix]
        for n in self.nodes.values():
            extra = ""
            if isinstance(n, Router):
                extra = " kind=%s filtering=%s lan=%s.0/24 external=%s" % (
                    n.kind, n.filtering, n.lan_net, n.external_ip)
                if n.upstream is not None:
                    extra += " upstream=%s" % n.upstream.name
                if n.ipv6_filter is not None:
                    extra += " ipv6_filter=%s" % n.ipv6_filter
            elif n.role == "host":
                extra = " behind=%s" % n.router.name
            elif n.role == "hop":
                extra = " above=%s" % (n.parent.name if n.parent else "inet")
            if n.emu is not None:
                extra += " delay=%dms jitter=%dms loss=%g" % (n.delay_ms, n.jitter_ms, n.loss)
            if n.ip6 is not None:
                extra += " ip6=%s" % n.ip6
            lines.append("  %-8s %-7s ns=%s ip=%s%s" % (n.name, n.role, n.ns, n.ip, extra))
        return "\n".join(lines)

    # -- teardown --------------------------------------------------------
    def down(self):
        if self.closed:
            return
        self.closed = True
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        remove_namespaces([n.ns for n in self.nodes.values()])
        if self.logdir is not None:
            shutil.rmtree(self.logdir, ignore_errors=True)
        if self in _labs:
            _labs.remove(self)


def netns_pids(names):
    """{namespace: [pid, ...]} for the processes inside each of names: one
    pass over /proc comparing network namespace inodes (what `ip netns pids`
    does, once for all instead of once per namespace)."""
    inode = {}
    for ns in names:
        try:
            inode[os.stat("/run/netns/" + ns).st_ino] = ns
        except OSError:
            pass
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ino = os.stat("/proc/%s/ns/net" % d).st_ino
        except OSError:
            continue
        if ino in inode:
            out.setdefault(inode[ino], []).append(int(d))
    return out


def remove_namespaces(names):
    """Kill what still runs inside each namespace (by PID), then delete them
    (one `ip -force -batch` for all; the stragglers one by one)."""
    for pids in netns_pids(names).values():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if not names:
        return
    subprocess.run(["ip", "-force", "-batch", "-"], input="".join("netns del %s\n" % ns
                                                                  for ns in names),
                   capture_output=True, text=True, timeout=120)
    left = set(netns_list())
    for ns in names:
        if ns not in left:
            continue
        for _ in range(50):
            r = sh("ip", "netns", "del", ns, check=False)
            if r.returncode == 0 or ns not in netns_list():
                break
            time.sleep(0.1)


def netns_list():
    r = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in (r.stdout or "").splitlines() if line.strip()]


def list_labs():
    """{prefix: [namespaces]} for every lab namespace on this machine."""
    labs = {}
    for ns in netns_list():
        m = PREFIX_RE.match(ns)
        if m:
            labs.setdefault(ns[:m.end() - 1], []).append(ns)
    return labs


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale(all_labs=False, prefix=None, kept=False):
    """Delete labs whose creating process is gone, but not the ones `natlab
    up` left for a human unless kept; or every lab; or the one named."""
    gone = []
    for pfx, names in list_labs().items():
        m = PREFIX_RE.match(pfx + "-")
        pid, mark = int(m.group(1)), m.group(2)
        if prefix is not None and pfx != prefix:
            continue
        if prefix is None and not all_labs:
            if mark == "u" and not kept:
                continue
            if mark == "x" and pid_alive(pid) and pid != os.getpid():
                continue
        remove_namespaces(names)
        gone.append(pfx)
    return gone


def _down_all():
    for lab in list(_labs):
        if not lab.keep:
            lab.down()


_handlers = [False]


def _on_signal(sig, frame):
    _down_all()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _install_handlers():
    if _handlers[0]:
        return
    _handlers[0] = True
    atexit.register(_down_all)
    try:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, _on_signal)
    except ValueError:  # not the main thread: atexit and finally still run
        pass


# -- observers and probes used by the self-test ---------------------------
OBSERVER = r"""
import socket, sys, threading
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
print("ready", flush=True)
def serve(c, a):
    try:
        c.sendall(("%s %d\n" % a).encode())
    finally:
        c.close()
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"""

PROBE = r"""
import json, socket, sys
port = int(sys.argv[1])
out, socks = [], []
for target in sys.argv[2:]:
    ip, p = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port))
    s.settimeout(5)
    s.connect((ip, int(p)))
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(100)
        if not d:
            break
        buf += d
    seen_ip, seen_port = buf.decode().split()
    out.append({"observer": target, "local": s.getsockname()[1],
                "ip": seen_ip, "port": int(seen_port)})
    socks.append(s)  # kept open: both mappings live at once
print(json.dumps(out))
"""

SYN = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[3]))
t0 = time.monotonic()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    r = "connected"
except ConnectionRefusedError:
    r = "rst"
except socket.timeout:
    r = "timeout"
except OSError as e:
    r = "error %s" % e
print(json.dumps({"result": r, "s": time.monotonic() - t0}))
"""


def start_observer(lab, node, port):
    p = lab.popen(node, [sys.executable, "-c", OBSERVER, str(port)],
                  stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError("observer on %s did not start" % node.name)
    return p


def probe(node, local_port, observers):
    """Connect from one local port to each observer; what each one saw."""
    import json
    r = node.run(sys.executable, "-c", PROBE, str(local_port),
                 *["%s:%d" % o for o in observers])
    return json.loads(r.stdout)


def syn(node, ip, port, timeout=2.0):
    """An unsolicited connect: 'rst', 'timeout' or 'connected'."""
    import json
    r = node.run(sys.executable, "-c", SYN, ip, str(port), str(timeout))
    return json.loads(r.stdout)["result"]


UDP_OBSERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(2048)
    s.sendto(("%s %d" % a).encode(), a)
"""

UDP_PROBE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[4]))
s.sendto(b"?", (sys.argv[2], int(sys.argv[3])))
try:
    print(s.recv(100).decode())
except socket.timeout:
    print("timeout")
"""

CONNECT_TIMES = r"""
import json, socket, sys, time
out = []
for _ in range(int(sys.argv[3])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    t0 = time.monotonic()
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
    except ConnectionRefusedError:
        pass  # a reset is a round trip too
    out.append((time.monotonic() - t0) * 1000)
    s.close()
    time.sleep(0.05)
print(json.dumps(out))
"""

# A UDP traceroute: one socket per TTL, errors read from the error queue
# (IP_RECVERR), the offender's address from the extended error. The target
# port is closed, so the last hop answers port-unreachable.
TRACE = r"""
import json, select, socket, struct, sys
IP_RECVERR, MSG_ERRQUEUE = 11, 0x2000
ip, port, max_ttl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for ttl in range(1, max_ttl + 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
    s.setsockopt(socket.SOL_IP, socket.IP_TTL, ttl)
    s.sendto(b"ttl", (ip, port))
    p = select.poll()
    p.register(s, select.POLLERR | select.POLLIN)
    hop = None
    if p.poll(2000):
        try:
            _, anc, _, _ = s.recvmsg(512, 512, MSG_ERRQUEUE)
            for lvl, typ, data in anc:
                if lvl == socket.SOL_IP and typ == IP_RECVERR:
                    errno_, origin, itype, code = struct.unpack("=IBBB", data[:7])
                    who = socket.inet_ntoa(data[20:24])
                    hop = {"ip": who, "type": itype, "code": code}
        except BlockingIOError:
            pass
    out.append(hop)
    s.close()
    if hop is not None and hop["type"] == 3:
        break
print(json.dumps(out))
"""

# Connect from many namespaces to many addresses in one process (setns into
# each namespace before making its sockets): a reset or an accept both prove
# the round trip; only a timeout or an ICMP error means unreachable. A
# namespace's connects run at once (non-blocking), so with path delays the
# whole check takes one slow round trip per namespace, not one per pair.
REACH = r"""
import ctypes, errno, json, os, select, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
timeout = float(sys.argv[1])
res = []
for ns, targets in json.load(sys.stdin):
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, %d) != 0:
        sys.exit("setns %%s failed" %% ns)
    os.close(fd)
    pending = {}
    for ip, port in targets:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((ip, port))
        pending[s.fileno()] = (s, ip, port)
    p = select.poll()
    for f in pending:
        p.register(f, select.POLLOUT)
    end = time.monotonic() + timeout
    while pending and time.monotonic() < end:
        for f, ev in p.poll(100):
            s, ip, port = pending.pop(f)
            p.unregister(f)
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e not in (0, errno.ECONNREFUSED):
                res.append([ns, ip, port, os.strerror(e)])
            s.close()
    for s, ip, port in pending.values():
        res.append([ns, ip, port, "timeout"])
        s.close()
print(json.dumps(res))
""" % CLONE_NEWNET


def start_udp_observer(lab, node, port):
    """A UDP server on node answering each datagram with "IP PORT" seen."""
    p = lab.popen(node, [sys.executable, "-c", UDP_OBSERVER, str(port)],
                  stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError("UDP observer on %s did not start" % node.name)
    return p


def udp_probe(node, local_port, ip, port, timeout=2.0):
    """One datagram from node's local_port to a UDP observer: (ip, port) it
    saw, or None on timeout. The same local port reuses the NAT mapping."""
    r = node.run(sys.executable, "-c", UDP_PROBE, str(local_port), ip, str(port),
                 str(timeout)).stdout.strip()
    if r == "timeout":
        return None
    seen_ip, seen_port = r.split()
    return seen_ip, int(seen_port)


def connect_times(node, ip, port, count=5):
    """count TCP connects from node to ip:port, each one's time in ms
    (connect() returns after one round trip: SYN out, SYN-ACK or RST back)."""
    return json.loads(node.run(sys.executable, "-c", CONNECT_TIMES, ip, str(port),
                               str(count), timeout=60).stdout)


def trace(node, ip, port=33434, max_ttl=12):
    """UDP traceroute from node: per TTL from 1, {"ip": who answered,
    "type": ICMP type (11 time exceeded, 3 unreachable: the end)} or None."""
    return json.loads(node.run(sys.executable, "-c", TRACE, ip, str(port), str(max_ttl),
                               timeout=60).stdout)


def unreachable(pairs, timeout=5.0):
    """pairs: [(node, [(ip, port), ...])]; [ns, ip, port, why] for each
    target that did not answer a TCP connect (reset or accept) within
    timeout s, from one process."""
    items = [(n.ns, [list(t) for t in targets]) for n, targets in pairs]
    return json.loads(sh_input([sys.executable, "-c", REACH, str(timeout)], json.dumps(items),
                               timeout=600).stdout)


def raise_gc_thresh():
    """Root-namespace neighbour table sizes up to GC_THRESH (never down):
    the table is shared by every namespace (NOTES.md)."""
    for i, v in enumerate(GC_THRESH, 1):
        path = "/proc/sys/net/ipv4/neigh/default/gc_thresh%d" % i
        with open(path) as f:
            cur = int(f.read())
        if cur < v:
            with open(path, "w") as f:
                f.write(str(v))


def big(lab, servers=100, delay_ms=None, jitter_ms=0, loss=0.0, seed=1):
    """An overlay-sized lab: servers public hosts s000, s001, ... (one
    namespace and /24 each) and one NATed host of every kind: h-pp, h-ei,
    h-random, h-drop (pp, drop filtering), h-double (pp behind pp), h-cgn
    (pp behind a carrier pp NAT two routing hops away) and h-a, h-b behind
    one pp NAT. delay_ms: None, an int, or (lo, hi) for a per-site one-way
    delay drawn with seed, on every server and every WAN-facing router.
    Returns {"servers": [...], "hosts": {name: node}}."""
    raise_gc_thresh()
    rng = random.Random(seed)

    def d():
        if delay_ms is None:
            return 0
        if isinstance(delay_ms, int):
            return delay_ms
        return rng.randint(*delay_ms)

    pubs = lab.publics(["s%03d" % i for i in range(servers)])
    if delay_ms is not None or jitter_ms or loss:
        for n in pubs:
            lab.path(n, d(), jitter_ms, loss)
    hosts = {}
    for kind in KINDS:
        hosts["h-" + kind] = lab.host("h-" + kind, lab.nat("r-" + kind, kind, delay_ms=d(),
                                                            jitter_ms=jitter_ms, loss=loss))
    hosts["h-drop"] = lab.host("h-drop", lab.nat("r-drop", "pp", "drop", delay_ms=d(),
                                                  jitter_ms=jitter_ms, loss=loss))
    outer = lab.nat("r-outer", "pp", delay_ms=d(), jitter_ms=jitter_ms, loss=loss)
    hosts["h-double"] = lab.host("h-double", lab.nat("r-inner", "pp", upstream=outer))
    cgn = lab.nat("r-cgn", "pp", delay_ms=d(), jitter_ms=jitter_ms, loss=loss)
    hosts["h-cgn"] = lab.host("h-cgn", lab.nat("r-home", "pp", upstream=cgn, hops=2))
    shared = lab.nat("r-shared", "pp", delay_ms=d(), jitter_ms=jitter_ms, loss=loss)
    hosts["h-a"] = lab.host("h-a", shared)
    hosts["h-b"] = lab.host("h-b", shared)
    return {"servers": pubs, "hosts": hosts}


def demo(lab):
    """The lab `natlab up` builds: every kind once."""
    s1, s2 = lab.public("s1"), lab.public("s2")
    lab.public("s3")
    for kind in KINDS:
        lab.host("h-" + kind, lab.nat("r-" + kind, kind))
    lab.host("h-drop", lab.nat("r-drop", "pp", "drop"))
    outer = lab.nat("r-outer", "pp")
    lab.host("h-double", lab.nat("r-inner", "pp", upstream=outer))
    shared = lab.nat("r-shared", "pp")
    lab.host("h-a", shared)
    lab.host("h-b", shared)
    if lab.ipv6:  # the inner router of the double NAT has no IPv6
        lab.host("h-v6", lab.nat("r-v6", "pp", ipv6_filter="rst"), ipv4=False)
    return lab


def require_lab():
    """For tests: exit 77 (skipped) without root, unless CI=true, where the
    NAT lab must run: then fail loudly. Also removes stale labs."""
    ci = os.environ.get("CI") == "true"
    why = None
    if not have_root():
        why = "not root (the NAT lab needs network namespaces, nft and conntrack)"
    elif not can_create_netns():
        why = "cannot create a network namespace here"
    if why is None:
        remove_stale()
        return
    if ci:
        print("FAIL: CI=true and %s; in CI the NAT lab must run, not skip" % why, flush=True)
        sys.exit(1)
    print("SKIP: %s" % why, flush=True)
    sys.exit(77)
