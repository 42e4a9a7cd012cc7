#!/usr/bin/env python3
"""TCP hole punching between real daemons behind real NATs (tools/natlab).

Three public bootstrap servers (s1-s3) and NATed DHT clients, each behind
its own router unless said otherwise, all listening on 0.0.0.0:4242 and
dialling from it:

  h-pp1, h-pp2   port-preserving (masquerade)
  h-ei1, h-ei2   endpoint-independent, external port = port ^ 0x4000
  h-rnd1, h-rnd2 endpoint-dependent (masquerade fully-random)
  h-a, h-b       two hosts behind one port-preserving NAT
  h-drop         port-preserving, unsolicited SYNs dropped (not reset)
  h-dbl          port-preserving behind port-preserving (double NAT)

Every other router answers unsolicited inbound SYNs with a reset. A client is not
dialable, so `connect` from one client to another has to punch: the
request and reply travel routed over the servers, then both sides connect
from 4242 to each other's predicted endpoints at one moment.

Asserted (over p2pctl and the control socket):
  - pp<->pp, pp<->ei, ei<->ei, the two hosts behind one NAT (through
    their LAN addresses), drop-filtering pp<->ei and double NAT<->pp
    (which of the two primes is decided by the IDs; behind the double
    NAT the first prime, TTL 2, dies before the outer NAT and the punch
    takes a second one, TTL 3, about 1.5 s): connect answers path "direct", method "punch";
    `peers` on both sides lists the other as link "direct" at the other's
    router address (LAN address for h-a/h-b), not via a server; a second
    connect answers "existing"; 100 KB through a pipe to an echo service
    exposed on the other side come back intact;
  - random<->pp cannot be punched: the random side's SYNs leave from a
    port nobody can predict, so the pp side cannot send the SYN that would
    open its own router's conntrack for it, and its router resets the
    random side's SYN as unsolicited; and the pp side's SYNs cannot aim at
    a mapping the random router has not made. Once the schedule has run
    out the link is relayed through a server: connect answers path
    "relay", method "relay" (the relay is asked while the punch runs and
    answers once a short grace for the punch is over), and the log says,
    by the end of the schedule, that punching failed and names
    endpoint-dependent;
  - random<->random cannot be punched at all ("both sides behind
    endpoint-dependent NATs", no schedule runs) and is relayed at once.
  For both relayed pairs: `peers` lists link "relay" on both ends, the
    servers carry one more circuit, a second connect answers "existing",
    100 KB through a pipe to the echo service come back intact, the servers
    forwarded more than twice that (the data, both ways, as end-to-end
    records), and no server's log holds the payload's marker;
  - teardown: h-rnd1 stops; the servers' circuits go back to 0 and h-rnd2
    and h-pp2 drop their relayed links to it.
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

import natlab  # noqa: E402
import p2ptest  # noqa: E402
from p2ptest import Cluster, check, check_eq, wait_for  # noqa: E402
from test_natlab import PORT, LabDaemon, World, nat_type, run_lab  # noqa: E402

ECHO_PORT = 7777
ECHO = r"""
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d))
s.listen(16)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
""" % ECHO_PORT

HOSTS = {  # host -> (router, kind, expected nat.type)
    "h-pp1": ("r-pp1", "pp", "port-preserving"),
    "h-pp2": ("r-pp2", "pp", "port-preserving"),
    "h-ei1": ("r-ei1", "ei", "endpoint-independent"),
    "h-ei2": ("r-ei2", "ei", "endpoint-independent"),
    "h-rnd1": ("r-rnd1", "random", "endpoint-dependent"),
    "h-rnd2": ("r-rnd2", "random", "endpoint-dependent"),
}
# Bound for a failing punch: signalling, start offset, the 8 s schedule.
FAIL_BOUND_S = 20
FIGURES = []


def build(c, lab):
    w = World(c, lab)
    pubs = [lab.public(n) for n in ("s1", "s2", "s3")]
    for h, (r, kind, _) in HOSTS.items():
        w.routers[h] = lab.nat(r, kind, "rst")
        lab.host(h, w.routers[h])
    w.routers["h-drop"] = lab.nat("r-drop", "pp", "drop")
    lab.host("h-drop", w.routers["h-drop"])
    outer = lab.nat("r-outer", "pp", "rst")
    w.routers["h-dbl"] = lab.nat("r-inner", "pp", "rst", upstream=outer)
    lab.host("h-dbl", w.routers["h-dbl"])
    shared = lab.nat("r-shared", "pp", "rst")
    w.routers["h-a"] = w.routers["h-b"] = shared
    lab.host("h-a", shared)
    lab.host("h-b", shared)
    s1 = w.daemon("s1", pubs[0]).start()
    s2 = w.daemon("s2", pubs[1], [s1]).start()
    s3 = w.daemon("s3", pubs[2], [s1, s2]).start()
    wait_for(lambda: len(s1.peer_ids()) >= 2, 15, what="s1 to hear of s2 and s3")
    servers = [s1, s2, s3]
    for h in list(HOSTS) + ["h-a", "h-b", "h-drop", "h-dbl"]:
        w.daemon(h, lab.nodes[h], servers).start()
    for h, (_, _, want) in HOSTS.items():
        wait_for(lambda: nat_type(w.d[h]) == want, 30, what="%s nat.type %s" % (h, want))
    for h in ("h-a", "h-b", "h-drop", "h-dbl"):
        wait_for(lambda: nat_type(w.d[h]) != "unknown", 30, what="%s classified" % h)
    for h in list(HOSTS) + ["h-a", "h-b", "h-drop", "h-dbl"]:
        wait_for(lambda: w.d[h].status()["peers"] >= 3, 30, what="%s linked to the servers" % h)
        check_eq(w.d[h].status()["dht"]["mode"], "client", "%s dht.mode" % h)
        lab.popen(lab.nodes[h], ["python3", "-c", ECHO])
    for h in list(HOSTS) + ["h-a", "h-b", "h-drop", "h-dbl"]:
        wait_for(lambda: echo_listening(lab, h), 15, what="%s echo service" % h)
    return w


def echo_listening(lab, h):
    """The echo service in h's namespace accepts connections (python
    starts in tens of ms, more on a busy machine: tests must not race it)."""
    r = subprocess.run(["ip", "netns", "exec", lab.nodes[h].ns, "python3", "-c",
                        "import socket; socket.create_connection(('127.0.0.1', %d), 1)"
                        % ECHO_PORT], capture_output=True, timeout=10)
    return r.returncode == 0


def peer_entry(d, peer_id):
    for p in d.req({"cmd": "peers"})["peers"]:
        if p["id"] == peer_id:
            return p
    return None


def connect(a, b):
    """p2pctl -v: the progress lines come on stderr (issue 12 item 6)."""
    t0 = time.monotonic()
    r = a.ctl("-v", "--json", "connect", b.id, timeout=60)
    took = time.monotonic() - t0
    try:
        j = json.loads(r.stdout) if r.stdout.strip() else {}
    except ValueError:
        j = {}
    return r, j, took


def pipe_echo(a, b, data, timeout=60):
    """data through `p2pctl pipe` from a to the echo service b exposes:
    the finished p2pctl run and how long it took (s)."""
    t0 = time.monotonic()
    p = subprocess.run([p2ptest.P2PCTL, "-s", a.sock, "pipe", b.id, "echo"], input=data,
                       capture_output=True, timeout=timeout)
    return p, time.monotonic() - t0


def punched(w, x, y, via, reply_may_trail=False):
    """x connects to y: a punch; then the link and a tunnel over it.
    reply_may_trail: on one LAN the peer's prime is a plain connection to
    our listener, and the link (up one round trip after it, the peer's
    HELLO with frame 2) may beat the peer's REPLY, which comes the long
    way round through the overlay: then no progress line names its NAT."""
    a, b = w.d[x], w.d[y]
    check(b.id not in a.peer_ids(), "%s already linked to %s" % (x, y))
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs) %s" % (x, y, r.returncode, r.stdout.strip(),
                                                         took, r.stderr.strip()))
    check_eq(r.returncode, 0, "connect %s -> %s exit (stderr %r)" % (x, y, r.stderr))
    check_eq((j.get("peer"), j.get("path"), j.get("method")), (b.id, "direct", "punch"),
             "connect %s -> %s" % (x, y))
    punch_progress_names_both_nats(a, b, r.stderr, reply_may_trail)
    # Both ends hold a direct link at the other's (router or LAN) address.
    pa = peer_entry(a, b.id)
    pb = wait_for(lambda: peer_entry(b, a.id), 5, what="%s to list %s" % (y, x))
    check(pa is not None, "%s lists no link to %s" % (x, y))
    check_eq(pa["link"], "direct", "%s's link to %s" % (x, y))
    check_eq(pb["link"], "direct", "%s's link to %s" % (y, x))
    want_b = via(w, y)
    want_a = via(w, x)
    check_eq(pa["addr"].rsplit(":", 1)[0], want_b, "%s sees %s at" % (x, y))
    check_eq(pb["addr"].rsplit(":", 1)[0], want_a, "%s sees %s at" % (y, x))
    j2 = a.req({"cmd": "connect", "peer": b.id})
    check_eq(j2.get("method"), "existing", "second connect %s -> %s" % (x, y))
    # A tunnel over the punched link.
    check_eq(b.ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0, "expose on %s" % y)
    data = os.urandom(100 * 1024)
    p, t_pipe = pipe_echo(a, b, data)
    check_eq(p.returncode, 0, "pipe %s -> %s (stderr %r)" % (x, y, p.stderr))
    check_eq(len(p.stdout), len(data), "bytes back through %s -> %s" % (x, y))
    check(p.stdout == data, "100 KB came back different")
    # Still the same direct link: the tunnel did not take another way.
    check_eq(peer_entry(a, b.id)["link"], "direct", "link after the tunnel")
    FIGURES.append("%s -> %s: punch %.0f ms (daemon says %.0f ms), 100 KB echo %.0f ms" % (
        x, y, took * 1000, j["ms"], t_pipe * 1000))


def punch_progress_names_both_nats(a, b, stderr, reply_may_trail=False):
    """Issue 12 item 6: a punch's progress names the peer's NAT type (from
    its punch reply), not only ours."""
    lines = [l for l in stderr.splitlines() if l.startswith("p2pctl: punching with ")]
    want = "p2pctl: punching with %s: its NAT: %s, ours: %s; connecting now" % (
        b.id, nat_type(b), nat_type(a))
    if reply_may_trail and not lines:
        return
    check(len(lines) == 1 and lines[0].startswith(want),
          "punch progress %r, want one line starting %r" % (stderr, want))


def router_ip(w, h):
    return w.routers[h].external_ip


def lan_ip(w, h):
    return w.lab.nodes[h].ip


def test_pp_pp(w):
    punched(w, "h-pp1", "h-pp2", router_ip)


def test_pp_ei(w):
    punched(w, "h-ei1", "h-pp1", router_ip)


def test_ei_ei(w):
    punched(w, "h-ei2", "h-ei1", router_ip)


def test_same_nat_lan(w):
    punched(w, "h-a", "h-b", lan_ip, reply_may_trail=True)


def test_drop_filtering(w):
    punched(w, "h-drop", "h-ei2", router_ip)


def test_double_nat(w):
    punched(w, "h-dbl", "h-pp2", router_ip)


# A socket in the replier's namespace that holds the four-tuple (listen
# port, the requester's candidate) in SYN_SENT, as a stale attempt of ours
# would: its SYN gets TTL 1 and dies at its own router (no conntrack entry
# is made for it), and IP_MINTTL 2 keeps the "time exceeded" that comes
# back (quoting TTL 1) from killing it, as for a prime (nat/punch.h).
HOLDER = r"""
import socket, sys, time
IP_MINTTL = 21
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, IP_MINTTL, 2)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.setblocking(False)
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
except BlockingIOError:
    pass
time.sleep(300)
"""
HELD = "four-tuple in use"
UPGRADE_BOUND_S = 45  # 8 s punch, 3 s, 8 s punch, 6 s, 8 s punch, slack


def metric(d, name):
    text = d.req({"cmd": "metrics"})["text"]
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def test_held_four_tuple_then_upgrade(w):
    """The replier's only way to the requester's candidate is held
    by a socket that is no link. Its primes wait out each hold instead of
    retrying connect() every 150 ms (43 tries in 8 s in one CI run); the
    pair is relayed, the requester asks for its punch again after the
    punch failed (an upgrade retry), and once the holder is gone a retry
    makes the link direct."""
    x, y = "h-pp2", "h-ei2"
    a, b = w.d[x], w.d[y]
    check(peer_entry(a, b.id) is None, "%s already linked to %s" % (x, y))
    circ0, _ = relay_status(w)
    cand = w.routers[x].external_ip
    holder = w.lab.popen(w.lab.nodes[y], ["python3", "-c", HOLDER, natlab_port(),
                                          cand, natlab_port()])
    try:
        time.sleep(0.5)
        check(holder.poll() is None, "the holder exited (%s)" % holder.returncode)
        held0 = b.log_text().count(HELD)
        r, j, took = connect(a, b)
        print("  connect %s -> %s: exit %d %s (%.2fs)" % (x, y, r.returncode,
                                                         r.stdout.strip(), took))
        check_eq(r.returncode, 0, "connect %s -> %s exit (stderr %r)" % (x, y, r.stderr))
        check_eq(j.get("path"), "relay", "connect %s -> %s path" % (x, y))
        # The first punch fails; its retry is asked (the holder stays).
        wait_for(lambda: "punching again" in a.log_text(), FAIL_BOUND_S,
                 what="%s to punch again" % x)
        held = b.log_text().count(HELD) - held0
        # Each prime waits out its hold (1.5 s) over the 8 s schedule: at
        # most 6 a punch, two punches by now; the old loop made ~50.
        check(1 <= held <= 14, "%s: %d connects found the four-tuple in use" % (y, held))
        # The log names the holder as the kernel sees it (sock_diag).
        check("four-tuple in use by a socket that is no link (SYN_SENT)" in b.log_text(),
              "%s's log does not name the holder" % y)
        check((metric(a, "p2pd_punch_upgrade_retries_total") or 0) >= 1,
              "upgrade retries in %s's metrics" % x)
    finally:
        holder.kill()
        holder.wait()
    # A retry now finds the way free: the pair goes direct.
    wait_for(lambda: (peer_entry(a, b.id) or {}).get("link") == "direct", UPGRADE_BOUND_S,
             what="%s's link to %s to be upgraded to direct" % (x, y))
    check((metric(a, "p2pd_punch_upgrades_total") or 0) >= 1, "upgrades in %s's metrics" % x)
    # The relayed link nobody uses goes (the later relay tests count circuits).
    wait_for(lambda: relay_status(w)[0] == circ0, 15, what="the relayed circuit to close")
    FIGURES.append("%s -> %s with a held four-tuple: relayed in %.0f ms, %d held connects, "
                   "direct after an upgrade retry" % (x, y, took * 1000, held))


# A SYN at the daemon's listener that seems to come from the peer's
# candidate (argv 1:2; a socket bound there with IP_TRANSPARENT, to the
# daemon's own address argv 3:4): its SYN-ACK goes out towards the
# candidate and nobody answers it. The socket is closed at once, which
# sends nothing from SYN_SENT, so only the listener's half is left.
STALE_SYN = r"""
import socket, sys, time
IP_TRANSPARENT = 19
s = socket.socket()
s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the daemon's port
s.bind((sys.argv[1], int(sys.argv[2])))
s.setblocking(False)
try:
    s.connect((sys.argv[3], int(sys.argv[4])))
except BlockingIOError:
    pass
time.sleep(0.2)
s.close()
"""
STALE = "dropped the peer's SYN at our listener"


def test_stale_syn_at_the_listener_is_dropped(w):
    """The replier's listener holds a SYN from the requester's candidate
    whose SYN-ACK nobody answers (as one that came in just as an attempt
    gave up, its SYN-ACKs dying at our NAT): the four-tuple its primes
    need. Waiting it out would take a minute of SYN-ACK retransmits, the
    whole punch and its retries; the replier drops it instead and the
    punch goes direct as usual."""
    x, y = "h-pp1", "h-ei2"
    a, b = w.d[x], w.d[y]
    check(peer_entry(a, b.id) is None, "%s already linked to %s" % (x, y))
    cand = w.routers[x].external_ip
    stale0 = b.log_text().count(STALE)
    maker = w.lab.popen(w.lab.nodes[y], ["python3", "-c", STALE_SYN, cand, natlab_port(),
                                         w.lab.nodes[y].ip, natlab_port()])
    check_eq(maker.wait(10), 0, "the stale SYN's maker")
    # Its SYN-ACK goes out again after a second: stale from then on.
    time.sleep(1.5)
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs)" % (x, y, r.returncode, r.stdout.strip(), took))
    check_eq(r.returncode, 0, "connect %s -> %s exit (stderr %r)" % (x, y, r.stderr))
    # The relay may answer first (the dropped SYN cost the first prime
    # its turn); the punch makes the link direct then, well before the
    # stale SYN would have gone by itself (a minute): without the drop
    # every prime of the punch and of its two retries finds the
    # four-tuple in use.
    t0 = time.monotonic()
    wait_for(lambda: (peer_entry(a, b.id) or {}).get("link") == "direct", UPGRADE_BOUND_S,
             what="%s's link to %s to be direct" % (x, y))
    direct = took + time.monotonic() - t0
    check(b.log_text().count(STALE) > stale0, "%s's log says nothing of the stale SYN" % y)
    check((metric(b, "p2pd_punch_stale_syns_dropped_total") or 0) >= 1,
          "stale SYNs dropped in %s's metrics" % y)
    FIGURES.append("%s -> %s with a stale SYN at %s's listener: %s/%s in %.0f ms, "
                   "direct after %.1f s" % (x, y, y, j.get("path"), j.get("method"),
                                            took * 1000, direct))


def natlab_port():
    return str(PORT)


def relay_status(w):
    """Circuits and forwarded bytes summed over the three servers."""
    circ = nbytes = 0
    for name in ("s1", "s2", "s3"):
        r = w.d[name].status()["relay"]
        circ += r["circuits"]
        nbytes += r["bytes"]
    return circ, nbytes


def relayed(w, x, y, bound, words):
    """Punching cannot work: x reaches y over a circuit through a server."""
    a, b = w.d[x], w.d[y]
    circ0, bytes0 = relay_status(w)
    r, j, took = connect(a, b)
    print("  connect %s -> %s: exit %d %s (%.2fs) %s" % (x, y, r.returncode, r.stdout.strip(),
                                                         took, r.stderr.strip()))
    check_eq(r.returncode, 0, "connect %s -> %s exit (stderr %r)" % (x, y, r.stderr))
    check_eq((j.get("peer"), j.get("path"), j.get("method")), (b.id, "relay", "relay"),
             "connect %s -> %s" % (x, y))
    check(took < bound, "%s -> %s took %.1fs, bound %ds" % (x, y, took, bound))
    # Why there was no direct link is in x's log (relays are asked while
    # the punch runs, so its verdict may come after the relayed link).
    for word in words:
        wait_for(lambda: word in a.log_text(), FAIL_BOUND_S,
                 what="%r in %s's log" % (word, x))
    pa = peer_entry(a, b.id)
    pb = wait_for(lambda: peer_entry(b, a.id), 5, what="%s to list %s" % (y, x))
    check(pa is not None, "%s lists no link to %s" % (x, y))
    check_eq(pa["link"], "relay", "%s's link to %s" % (x, y))
    check_eq(pb["link"], "relay", "%s's link to %s" % (y, x))
    check_eq(relay_status(w)[0], circ0 + 1, "circuits on the servers")
    j2 = a.req({"cmd": "connect", "peer": b.id})
    check_eq((j2.get("path"), j2.get("method")), ("relay", "existing"),
             "second connect %s -> %s" % (x, y))
    check_eq(b.ctl("expose", "echo", "127.0.0.1:%d" % ECHO_PORT, "--allow-any").returncode, 0, "expose on %s" % y)
    marker = b"RELAY-PLAINTEXT-MARKER"
    data = (marker + os.urandom(1000)) * 100
    p, t_pipe = pipe_echo(a, b, data)
    check_eq(p.returncode, 0, "pipe %s -> %s (stderr %r)" % (x, y, p.stderr))
    check_eq(len(p.stdout), len(data), "bytes back through %s -> %s" % (x, y))
    check(p.stdout == data, "100 KB came back different")
    # The servers forwarded it all, both ways, as records: every record
    # of the end-to-end session adds a frame header and an AEAD tag, so a
    # relay that carried the plaintext would show no more than the data.
    _, bytes1 = relay_status(w)
    check(bytes1 - bytes0 > 2 * len(data), "relayed %d bytes for 2 x %d" % (
        bytes1 - bytes0, len(data)))
    for name in ("s1", "s2", "s3"):
        check(marker.decode() not in w.d[name].log_text(), "marker in %s's log" % name)
    check_eq(peer_entry(a, b.id)["link"], "relay", "link after the tunnel")
    # Throughput, for the figures: 8 MB each way through the relay.
    big = os.urandom(8 << 20)
    p, t_big = pipe_echo(a, b, big, timeout=120)
    check(p.returncode == 0 and p.stdout == big, "8 MB through the relay came back different")
    FIGURES.append("%s -> %s: relay %.0f ms (daemon says %.0f ms), 100 KB echo %.0f ms, "
                   "%d bytes relayed; 8 MB echo %.0f ms (%.1f MB/s each way)" % (
                       x, y, took * 1000, j["ms"], t_pipe * 1000, bytes1 - bytes0,
                       t_big * 1000, 8 / t_big))


def test_random_pp_relayed(w):
    relayed(w, "h-rnd1", "h-pp2", FAIL_BOUND_S + 5,
            ["failed after", "endpoint-dependent"])


def test_random_random_relayed(w):
    relayed(w, "h-rnd2", "h-rnd1", 12,
            ["both sides behind endpoint-dependent NATs"])


def test_relay_teardown(w):
    """A relayed end stops: the relay's circuit goes, the other end learns."""
    a, b = w.d["h-rnd2"], w.d["h-rnd1"]
    check(peer_entry(a, b.id) is not None, "h-rnd2 has no link to h-rnd1")
    circ0, _ = relay_status(w)
    check(circ0 >= 1, "no circuit on the servers")
    check_eq(b.stop(), 0, "h-rnd1's exit code")
    # h-rnd1 held both circuits (from h-rnd2 and to h-pp2).
    wait_for(lambda: relay_status(w)[0] == 0, 10, what="the servers' circuits to go")
    wait_for(lambda: peer_entry(a, b.id) is None, 5, what="h-rnd2 to drop its relayed link")
    wait_for(lambda: peer_entry(w.d["h-pp2"], b.id) is None, 5,
             what="h-pp2 to drop its relayed link")


TESTS = [test_pp_pp, test_pp_ei, test_ei_ei, test_same_nat_lan, test_drop_filtering,
         test_double_nat, test_held_four_tuple_then_upgrade,
         test_stale_syn_at_the_listener_is_dropped, test_random_pp_relayed,
         test_random_random_relayed, test_relay_teardown]


def main():
    # h-rnd1 is stopped on purpose by test_relay_teardown
    run_lab("p2ppunch-", build, TESTS, stopped={"h-rnd1"}, tail=25, figures=FIGURES)


if __name__ == "__main__":
    main()
