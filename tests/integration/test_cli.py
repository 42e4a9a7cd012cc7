#!/usr/bin/env python3
"""p2pd and p2pctl from the command line (SPEC sections 3, 4, 5)."""
import json
import os
import re
import signal
import socket
import subprocess
import threading

from p2ptest import Cluster, Runner, check, check_eq, wait_for, ctl_request
import p2ptest

T = Runner("test_cli")
BAD_IDS = [
    "xyz",
    "a" * 51,
    "a" * 53,
    "A" * 52,                 # uppercase
    "a" * 51 + "b",           # non-zero unused low bits in the last char
    "a" * 50 + "1a",          # '1' is not base32
    "a" * 52 + " ",
]


def three(c):
    d0 = c.daemon("d0").start()
    d1 = c.daemon("d1", bootstrap=[d0]).start()
    d2 = c.daemon("d2", bootstrap=[d0, d1]).start()
    ds = [d0, d1, d2]
    for d in ds:
        others = {o.id for o in ds if o is not d}
        wait_for(lambda: others <= d.peer_ids(), 20, what="%s to link to the other two" % d.name)
    return ds


@T.test
def three_daemons_see_each_other():
    with Cluster() as c:
        ds = three(c)
        for d in ds:
            r = d.ctl("peers")
            check_eq(r.returncode, 0, "p2pctl peers exit")
            lines = r.stdout.splitlines()
            check(lines and lines[0].split()[:5] == ["ID", "ADDR", "DIR", "LINK", "RTT"],
                  "peers header: %r", r.stdout)
            for o in ds:
                if o is not d:
                    check(o.id in r.stdout, "%s's peers table lacks %s:\n%s", d.name, o.name, r.stdout)
            st = d.req({"cmd": "status"})
            check(st["peers"] >= 2, "status.peers = %r", st["peers"])


@T.test
def id_matches_status():
    with Cluster() as c:
        d = c.daemon().start()
        r = d.ctl("id")
        check_eq(r.returncode, 0, "p2pctl id exit")
        check_eq(r.stdout, d.req({"cmd": "status"})["id"] + "\n", "p2pctl id output")
        check(re.fullmatch(r"[a-z2-7]{52}", d.id), "id is not 52 base32 chars: %r", d.id)


@T.test
def ping_prints_rtt():
    with Cluster() as c:
        d0 = c.daemon().start()
        d1 = c.daemon(bootstrap=[d0]).start()
        wait_for(lambda: d0.id in d1.peer_ids(), 15, what="link d1->d0")
        r = d1.ctl("ping", d0.id)
        check_eq(r.returncode, 0, "p2pctl ping exit (stderr %r)" % r.stderr)
        check(re.search(r"rtt [0-9.]+ ms", r.stdout), "ping output: %r", r.stdout)
        j = d1.req({"cmd": "ping", "peer": d0.id})
        check(j["ok"] and isinstance(j["rtt_ms"], (int, float)) and j["rtt_ms"] >= 0, "ping reply %r", j)
        # the wire form is short: at most 6 significant digits, not 17
        raw = d1.ctl("--json", "ping", d0.id).stdout
        num = re.search(r'"rtt_ms":\s*([0-9.eE+-]+)', raw)
        check(num and len(num.group(1).replace(".", "").lstrip("0")) <= 6, "rtt_ms on the wire: %r", raw)


@T.test
def identity_survives_restart():
    with Cluster() as c:
        d = c.daemon().start()
        first = d.id
        check_eq(d.stop(), 0, "exit code after SIGTERM")
        key = os.path.join(d.state, "identity.key")
        check_eq(os.stat(key).st_mode & 0o777, 0o600, "identity.key mode")
        d.start()
        check_eq(d.id, first, "id after restart")


@T.test
def peer_cache_rejoin():
    with Cluster() as c:
        d0 = c.daemon().start()
        d1 = c.daemon(bootstrap=[d0]).start()
        wait_for(lambda: d0.id in d1.peer_ids(), 15, what="link d1->d0")
        check_eq(d1.stop(), 0, "d1 exit code")
        check(os.path.exists(os.path.join(d1.state, "peers.json")), "no peers.json written")
        d1.start(bootstrap=[])
        wait_for(lambda: d0.id in d1.peer_ids(), 20, what="d1 to rejoin d0 from its peer cache")


@T.test
def second_daemon_on_same_socket_refused():
    with Cluster() as c:
        d0 = c.daemon().start()
        d1 = c.daemon()
        d1.sock = d0.sock
        d1.start(wait=False)
        try:
            rc = d1.proc.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError("second p2pd on the same socket kept running")
        check_eq(rc, 1, "second daemon exit code")
        log = d1.log_tail()
        check(d0.sock in log or "in use" in log.lower() or "running" in log.lower(),
              "message does not say why: %r", log)
        check(d0.req({"cmd": "status"})["id"] == d0.id, "first daemon no longer answers")
        check(d0.alive(), "first daemon died")


@T.test
def sigterm_and_sigint_exit_0():
    with Cluster() as c:
        d = c.daemon().start()
        check_eq(d.stop(signal.SIGTERM), 0, "exit code after SIGTERM")
        check(not os.path.exists(d.sock), "control socket left behind after SIGTERM")
        d.start()
        check_eq(d.stop(signal.SIGINT), 0, "exit code after SIGINT")


def run_p2pd(args, timeout=10):
    return subprocess.run([p2ptest.P2PD] + args, capture_output=True, text=True, timeout=timeout)


@T.test
def bad_flag_exits_1_writes_nothing():
    with Cluster() as c:
        state = os.path.join(c.tmp, "state")
        r = run_p2pd(["--bogus-flag", "-d", state, "-s", os.path.join(c.tmp, "s.sock")])
        check_eq(r.returncode, 1, "exit code for a bad flag")
        check("bogus-flag" in r.stderr, "message does not name the flag: %r", r.stderr)
        check(not os.path.exists(state) or not os.listdir(state), "state dir written: %r",
              os.listdir(state) if os.path.exists(state) else None)
        r = run_p2pd(["-l", "not-an-address", "-d", state, "-s", os.path.join(c.tmp, "s.sock")])
        check_eq(r.returncode, 1, "exit code for a bad listen address")
        check("not-an-address" in r.stderr, "message does not name the value: %r", r.stderr)


@T.test
def unknown_config_key_exits_1_writes_nothing():
    with Cluster() as c:
        state = os.path.join(c.tmp, "state")
        cfg = os.path.join(c.tmp, "p2pd.json")
        with open(cfg, "w") as f:
            json.dump({"listen": ["127.0.0.1:%d" % p2ptest.free_port()], "frobnicate": True}, f)
        r = run_p2pd(["-c", cfg, "-d", state, "-s", os.path.join(c.tmp, "s.sock")])
        check_eq(r.returncode, 1, "exit code for an unknown config key")
        check("frobnicate" in r.stderr, "message does not name the key: %r", r.stderr)
        check(not os.path.exists(state) or not os.listdir(state), "state dir written")
        check(not os.path.exists(os.path.join(c.tmp, "s.sock")), "control socket created")


@T.test
def world_readable_identity_refused():
    with Cluster() as c:
        d = c.daemon().start()
        first = d.id
        check_eq(d.stop(), 0, "exit code")
        key = os.path.join(d.state, "identity.key")
        before = open(key).read()
        os.chmod(key, 0o644)
        d.start(wait=False)
        rc = d.proc.wait(10)
        check_eq(rc, 1, "exit code with a world-readable identity.key")
        check("identity.key" in d.log_tail(), "message does not name identity.key: %r", d.log_tail())
        check_eq(open(key).read(), before, "identity.key content")
        os.chmod(key, 0o600)
        d.start()
        check_eq(d.id, first, "id after fixing the mode")


@T.test
def p2pctl_exit_codes():
    with Cluster() as c:
        d = c.daemon().start()
        check_eq(d.ctl("status").returncode, 0, "status exit")
        r = d.ctl("unexpose", "nosuchservice")
        check_eq(r.returncode, 1, "daemon error exit")
        check(r.stderr.startswith("p2pctl: unknown_service: "), "error message: %r", r.stderr)
        for args in (["ping"], ["ping", "a", "b"], ["frobnicate"], ["ping", "xyz"],
                     ["expose", "web"], ["--no-such-option", "status"], ["forward", "x", "y", "z"]):
            r = d.ctl(*args)
            check_eq(r.returncode, 2, "usage exit for %r (stderr %r)" % (args, r.stderr))
            check(r.stderr.startswith("p2pctl: "), "usage message for %r: %r", args, r.stderr)
        r = subprocess.run([p2ptest.P2PCTL, "-s", os.path.join(c.tmp, "nope.sock"), "status"],
                           capture_output=True, text=True, timeout=10)
        check_eq(r.returncode, 3, "exit when the daemon is not running")
        check("cannot connect" in r.stderr and "is p2pd running?" in r.stderr, "message: %r", r.stderr)
        env = dict(os.environ, P2PD_CONTROL=d.sock)
        r = subprocess.run([p2ptest.P2PCTL, "id"], capture_output=True, text=True, timeout=10, env=env)
        check_eq((r.returncode, r.stdout.strip()), (0, d.id), "p2pctl id via $P2PD_CONTROL")


@T.test
def p2pctl_help():
    r = subprocess.run([p2ptest.P2PCTL, "--help"], capture_output=True, text=True, timeout=10)
    check_eq(r.returncode, 0, "--help exit")
    for cmd in ("id", "status", "peers", "lookup", "connect", "ping", "bootstrap", "expose",
                "unexpose", "services", "forward", "unforward", "forwards", "pipe"):
        check(re.search(r"^  %s\b" % cmd, r.stdout, re.M), "--help lacks %s", cmd)
        h = subprocess.run([p2ptest.P2PCTL, "help", cmd], capture_output=True, text=True, timeout=10)
        check(h.returncode == 0 and h.stdout.startswith("usage: p2pctl %s" % cmd), "help %s: %r", cmd, h.stdout)
        h = subprocess.run([p2ptest.P2PCTL, cmd, "--help"], capture_output=True, text=True, timeout=10)
        check(h.returncode == 0 and h.stdout.startswith("usage: p2pctl %s" % cmd), "%s --help: %r", cmd, h.stdout)


@T.test
def json_output_is_the_daemons_object():
    with Cluster() as c:
        d = c.daemon().start()
        for cmd in ("status", "peers", "services"):
            r = d.ctl("--json", cmd)
            check_eq(r.returncode, 0, "--json %s exit" % cmd)
            got = json.loads(r.stdout)  # exactly one JSON document
            direct = d.req({"cmd": cmd})
            got.pop("uptime_s", None)
            direct.pop("uptime_s", None)
            check_eq(got, direct, "--json %s object" % cmd)
        st = json.loads(d.ctl("status", "--json").stdout)
        for k in ("id", "version", "uptime_s", "listen", "nat", "peers", "dht"):
            check(k in st, "status lacks %s: %r", k, st)
        check(st["nat"]["type"] in ("none", "port-preserving", "endpoint-independent",
                                    "endpoint-dependent", "unknown"), "nat.type %r", st["nat"])
        check(st["dht"]["mode"] in ("server", "client"), "dht.mode %r", st["dht"])
        r = d.ctl("--json", "unexpose", "nothing")
        check_eq(r.returncode, 1, "--json error exit")
        j = json.loads(r.stdout)
        check(j["ok"] is False and j["error"] == "unknown_service", "--json error object %r", j)


@T.test
def expose_services_roundtrip():
    with Cluster() as c:
        d0 = c.daemon().start()
        d1 = c.daemon().start()
        r = d0.ctl("expose", "web", "127.0.0.1:8080", "--allow", d1.id)
        check_eq(r.returncode, 0, "expose exit (stderr %r)" % r.stderr)
        check_eq(d0.ctl("expose", "open", "127.0.0.1:9090").returncode, 0, "expose without --allow")
        s = d0.req({"cmd": "services"})["services"]
        byname = {x["service"]: x for x in s}
        check_eq(set(byname), {"web", "open"}, "services")
        check_eq(byname["web"]["target"], "127.0.0.1:8080", "web target")
        check_eq(byname["web"].get("allow"), [d1.id], "web allow list")
        check(not byname["open"].get("allow"), "open service has an allow list: %r", byname["open"])
        out = d0.ctl("services").stdout
        check(out.splitlines()[0].split() == ["SERVICE", "TARGET", "ALLOW"], "services header %r", out)
        check("web" in out and d1.id in out and "127.0.0.1:8080" in out, "services table %r", out)
        check_eq(d0.ctl("unexpose", "web").returncode, 0, "unexpose exit")
        check_eq({x["service"] for x in d0.req({"cmd": "services"})["services"]}, {"open"}, "after unexpose")
        check_eq(d0.ctl("unexpose", "web").returncode, 1, "second unexpose exit")
        r = d0.ctl("expose", "bad", "127.0.0.1:1", "--allow", "nope")
        check_eq(r.returncode, 2, "expose with a bad --allow ID")
        j = d0.req({"cmd": "expose", "service": "x", "target": "127.0.0.1:1", "allow": ["bad"]})
        check_eq(j.get("error"), "invalid_peer_id", "daemon's answer to a bad allow ID")


@T.test
def invalid_peer_ids_rejected():
    with Cluster() as c:
        d = c.daemon().start()
        for bad in BAD_IDS:
            r = d.ctl("ping", bad)
            check_eq(r.returncode, 2, "p2pctl ping %r exit" % bad)
            check("invalid_peer_id" in r.stderr, "p2pctl message for %r: %r", bad, r.stderr)
            for cmd in ("ping", "lookup"):
                j = d.req({"cmd": cmd, "peer": bad})
                check_eq((j.get("ok"), j.get("error")), (False, "invalid_peer_id"), "%s %r" % (cmd, bad))
        check_eq(d.req({"cmd": "status"})["id"], d.id, "still answering")


@T.test
def tunnel_commands_arguments():
    """open, connect, forward, unforward and forwards exist (SPEC section
    5) and check their arguments; p2pctl's syntax errors exit 2, the
    daemon's answers exit 1. Tunnels themselves: test_tunnel.py."""
    with Cluster() as c:
        d0 = c.daemon().start()
        for cmd in ("connect", "forward", "unforward", "open"):
            r = d0.req({"cmd": cmd})
            check_eq((r.get("ok"), r.get("error")), (False, "bad_request"), "%s without arguments" % cmd)
        for cmd in ("connect", "open", "forward"):
            r = d0.req({"cmd": cmd, "peer": "x" * 52, "service": "s", "listen": "0"})
            check_eq(r.get("error"), "invalid_peer_id", "%s with a bad ID" % cmd)
        r = d0.req({"cmd": "forward", "listen": "nope", "peer": d0.id, "service": "s"})
        check_eq(r.get("error"), "bad_request", "forward with a bad listen address")
        r = d0.req({"cmd": "open", "peer": d0.id, "service": "bad name"})
        check_eq(r.get("error"), "bad_request", "open with a bad service name")
        check_eq(d0.req({"cmd": "forwards"}), {"ok": True, "forwards": []}, "no forwards")
        other = "a" * 52  # a valid ID nobody has: forwarding needs no link yet
        r = d0.req({"cmd": "forward", "listen": "::1:5", "peer": other, "service": "s"})
        check_eq(r.get("error"), "bad_request", "IPv6 without brackets")
        r = d0.req({"cmd": "forward", "listen": "0", "peer": d0.id, "service": "s"})
        check_eq(r.get("error"), "peer_unreachable", "forward to our own ID")
        try:
            t = socket.socket(socket.AF_INET6)
            t.bind(("::1", 0))
            t.close()
            v6 = True
        except OSError:
            v6 = False
        if v6:
            r = d0.req({"cmd": "forward", "listen": "[::1]:0", "peer": other, "service": "s"})
            check(r.get("ok") and re.fullmatch(r"\[::1\]:[1-9][0-9]*", r["listen"]), "IPv6 forward %r", r)
            check_eq(d0.req({"cmd": "forwards"})["forwards"], [{"listen": r["listen"], "peer": other, "service": "s"}],
                     "forwards with IPv6")
            check_eq(d0.ctl("unforward", r["listen"]).returncode, 0, "unforward IPv6")
            check_eq(d0.req({"cmd": "forwards"})["forwards"], [], "forwards after IPv6 unforward")
        check_eq(d0.ctl("forwards").stdout.split(), ["LISTEN", "PEER", "SERVICE"], "forwards table header")
        check_eq(d0.ctl("forward", "not-a-port", d0.id, "web").returncode, 2, "p2pctl forward bad address")
        check_eq(d0.ctl("forward", "8080", "bad", "web").returncode, 2, "p2pctl forward bad ID")
        r = d0.ctl("unforward", "1")
        check_eq(r.returncode, 1, "unforward of nothing")
        check("no forward" in r.stderr, "unforward message %r", r.stderr)
        # Our own ID: there is no link to ourselves; pipe exits 1 and says why.
        r = d0.ctl("pipe", d0.id, "echo", input="x")
        check_eq(r.returncode, 1, "pipe exit")
        check("peer_unreachable" in r.stderr and "own peer ID" in r.stderr, "pipe stderr names the error: %r", r.stderr)
        r = d0.ctl("connect", d0.id)
        check_eq(r.returncode, 1, "connect to ourselves")


if __name__ == "__main__":
    T.run()
