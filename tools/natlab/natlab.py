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

Teardown: down() runs from finally, atexit and SIGTERM/SIGINT; it kills the
lab's processes by PID, then every process still inside its namespaces
(ip netns pids), and deletes the namespaces (their veths and bridges go
with them). Conntrack is flushed in every router namespace when it is
created and by flush().
"""
import atexit
import os
import re
import signal
import subprocess
import sys
import time

KINDS = ("pp", "ei", "random")
FILTERS = ("rst", "drop")
EI_XOR = 0x4000  # ei kind: external port = internal port ^ EI_XOR
PREFIX_RE = re.compile(r"^natlab(\d+)([xu])(\d+)-")  # u: `natlab up`, kept
PUBLIC_NETS = ("203.0.113", "198.51.100", "192.0.2")

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
    """A namespace: a public host, a router or a LAN host."""

    def __init__(self, lab, name, role):
        self.lab = lab
        self.name = name
        self.role = role
        self.ns = "%s-%s" % (lab.prefix, name)
        self.ip = None  # the address others reach it at (public) or its LAN address
        self.gw = None

    def run(self, *argv, **kw):
        return sh("ip", "netns", "exec", self.ns, *argv, **kw)

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
        self.hosts = 0

    @property
    def external_ip(self):
        """The address the internet sees (the outermost router's WAN)."""
        r = self
        while r.upstream is not None:
            r = r.upstream
        return r.public_ip


class Lab:
    def __init__(self, keep=False):
        _counter[0] += 1
        self.prefix = "natlab%d%s%d" % (os.getpid(), "u" if keep else "x", _counter[0])
        self.keep = keep  # `natlab up`: leave it running when we exit
        self.nodes = {}
        self.procs = []
        self.npublic = 0
        self.nrouters = 0
        self.closed = False
        _labs.append(self)
        _install_handlers()
        self.inet = self._ns("inet", "inet")
        self.inet.run("sysctl", "-qw", "net.ipv4.ip_forward=1")

    # -- building --------------------------------------------------------
    def _ns(self, name, role, node=None):
        if name in self.nodes:
            raise ValueError("duplicate lab name %r" % name)
        node = node or Node(self, name, role)
        sh("ip", "netns", "add", node.ns)
        self.nodes[name] = node
        node.run("ip", "link", "set", "lo", "up")
        for k in ("all", "default"):
            node.run("sysctl", "-qw", "net.ipv4.conf.%s.rp_filter=0" % k)
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

    def _attach_lan(self, router, node):
        router.hosts += 1
        ip = "%s.%d" % (router.lan_net, 9 + router.hosts)
        ifname = ("l-" + node.name)[:15]
        self._veth(router, ifname, node, "wan0" if isinstance(node, Router) else "eth0")
        router.run("ip", "link", "set", ifname, "master", "lan")
        dev = "wan0" if isinstance(node, Router) else "eth0"
        node.run("ip", "addr", "add", ip + "/24", "dev", dev)
        node.run("ip", "route", "add", "default", "via", router.lan_ip)
        return ip

    def public(self, name):
        """A host on the internet with its own public /24."""
        node = self._ns(name, "public")
        k = self.npublic
        self.npublic += 1
        net = PUBLIC_NETS[k] if k < len(PUBLIC_NETS) else "198.18.%d" % k
        node.ip = self._attach_inet(node, net)
        return node

    def nat(self, name, kind="pp", filtering="rst", upstream=None):
        """A NAT router with an empty LAN; upstream: another Router (double NAT)."""
        if kind not in KINDS:
            raise ValueError("NAT kind %r not in %s" % (kind, KINDS))
        if filtering not in FILTERS:
            raise ValueError("filtering %r not in %s" % (filtering, FILTERS))
        self.nrouters += 1
        r = self._ns(name, "router", Router(self, name, kind, filtering, self.nrouters))
        r.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        r.run("ip", "link", "add", "lan", "type", "bridge")
        r.run("ip", "link", "set", "lan", "up")
        r.run("ip", "addr", "add", r.lan_ip + "/24", "dev", "lan")
        if upstream is None:
            r.public_ip = self._attach_inet(r, "198.19.%d" % r.index)
        else:
            r.upstream = upstream
            r.public_ip = self._attach_lan(upstream, r)
        r.ip = r.public_ip
        self._nft(r)
        self.flush_router(r)
        return r

    def _nft(self, r):
        if r.kind == "pp":
            nat = 'oifname "wan0" masquerade'
        elif r.kind == "random":
            nat = 'oifname "wan0" masquerade fully-random'
        else:
            nat = ('oifname "wan0" meta l4proto tcp snat ip to %s : tcp sport ^ %d\n'
                   '    oifname "wan0" masquerade' % (r.public_ip, EI_XOR))
        if r.filtering == "rst":
            unsolicited = 'iifname "wan0" meta l4proto tcp ct state new reject with tcp reset'
        else:
            unsolicited = 'iifname "wan0" ct state new drop'
        rules = """
table ip natlab {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    %s
  }
  chain input {
    type filter hook input priority filter; policy accept;
    %s
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    %s
  }
}
""" % (nat, unsolicited, unsolicited)
        r2 = subprocess.run(["ip", "netns", "exec", r.ns, "nft", "-f", "-"], input=rules,
                            capture_output=True, text=True, timeout=30)
        if r2.returncode != 0:
            raise RuntimeError("nft in %s: %s" % (r.ns, r2.stderr.strip()))

    def host(self, name, router):
        """A host on router's LAN."""
        node = self._ns(name, "host")
        node.router = router
        node.ip = self._attach_lan(router, node)
        return node

    # -- using -----------------------------------------------------------
    def flush_router(self, r):
        r.run("conntrack", "-F", check=False)  # exit 1 when the table is empty

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
            elif n.role == "host":
                extra = " behind=%s" % n.router.name
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
        remove_namespaces([n.ns for n in self.nodes.values()])
        if self in _labs:
            _labs.remove(self)


def remove_namespaces(names):
    """Kill what still runs inside each namespace (by PID), then delete it."""
    for ns in names:
        r = sh("ip", "netns", "pids", ns, check=False)
        for pid in (r.stdout or "").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for ns in names:
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
