#!/usr/bin/env python3
"""p2pd and p2pctl from the command line (SPEC sections 3, 4, 5)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

from p2ptest import Cluster, Runner, check, check_eq, wait_for, ctl_request
import p2ptest

T = Runner("test_cli")
BAD_IDS = [
    "xyz",                    # a name's syntax: the daemon knows none
    "xyz.p2p",
    "a" * 51,
    "a" * 53,
    "A" * 52,                 # uppercase
    "a" * 51 + "b",           # non-zero unused low bits in the last char
    "a" * 50 + "1a",          # '1' is not base32
    "a" * 52 + " ",
]
# Shaped like a name (SPEC section 9), so only the daemon can say it is
# unknown: p2pctl passes them on and exits 1, not 2.
NAME_LIKE = {"xyz", "xyz.p2p"}


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
        for args in (["ping"], ["ping", "a", "b"], ["frobnicate"], ["ping", "x_y"],
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
        # who may use it is never implicit (SPEC section 9): usage error, exit 2
        r = d0.ctl("expose", "open", "127.0.0.1:9090")
        check_eq(r.returncode, 2, "expose without --allow or --allow-any (stderr %r)" % r.stderr)
        check("--allow-any" in r.stderr, "the usage error names --allow-any: %r" % r.stderr)
        r = d0.ctl("expose", "open", "127.0.0.1:9090", "--allow-any", "--allow", d1.id)
        check_eq(r.returncode, 2, "--allow-any with --allow (stderr %r)" % r.stderr)
        r = d0.req({"cmd": "expose", "service": "open", "target": "127.0.0.1:9090"})
        check_eq(r.get("error"), "bad_request", "control request without allow")
        check_eq([x["service"] for x in d0.req({"cmd": "services"})["services"]], ["web"],
                 "nothing exposed by the refusals")
        check_eq(d0.ctl("expose", "open", "127.0.0.1:9090", "--allow-any").returncode, 0, "expose --allow-any")
        s = d0.req({"cmd": "services"})["services"]
        byname = {x["service"]: x for x in s}
        check_eq(set(byname), {"web", "open"}, "services")
        check_eq(byname["web"]["target"], "127.0.0.1:8080", "web target")
        check_eq(byname["web"].get("allow"), [d1.id], "web allow list")
        check_eq(byname["open"].get("allow"), "any", "open service's allow")
        out = d0.ctl("services").stdout
        row = [ln for ln in out.splitlines() if ln.startswith("open ")]
        check(row and "ANY PEER" in row[0], "services does not mark the open service: %r", out)
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
            check_eq(r.returncode, 1 if bad in NAME_LIKE else 2, "p2pctl ping %r exit" % bad)
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
        check_eq(d0.ctl("forward", "8080", "Bad!", "web").returncode, 2, "p2pctl forward bad ID")
        r = d0.ctl("unforward", "1")
        check_eq(r.returncode, 1, "unforward of nothing")
        check("no forward" in r.stderr, "unforward message %r", r.stderr)
        # Our own ID: there is no link to ourselves; pipe exits 1 and says why.
        r = d0.ctl("pipe", d0.id, "echo", input="x")
        check_eq(r.returncode, 1, "pipe exit")
        check("peer_unreachable" in r.stderr and "own peer ID" in r.stderr, "pipe stderr names the error: %r", r.stderr)
        r = d0.ctl("connect", d0.id)
        check_eq(r.returncode, 1, "connect to ourselves")


# ---- p2pctl's command line conventions (issue 12 items 3 and 9) ----

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def p2pctl(*args, env=None, user=None, input=None, timeout=30):
    argv = (user or []) + [p2ptest.P2PCTL] + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("P2PD_CONTROL", "XDG_RUNTIME_DIR")}
    env.update(extra)
    return env


@T.test
def p2pctl_option_forms():
    with Cluster() as c:
        d = c.daemon().start()
        forms = (["-s", d.sock, "id"], ["-s" + d.sock, "id"], ["--socket=" + d.sock, "id"],
                 ["--socket", d.sock, "id"], ["id", "-s", d.sock], ["id", "--socket=" + d.sock],
                 ["-s/nonexistent", "-s", d.sock, "id"],  # the last one wins, as getopt goes
                 ["-t", "5", "-s", d.sock, "id"], ["-t5", "--timeout=5", "-s", d.sock, "--", "id"])
        for args in forms:
            r = p2pctl(*args, env=clean_env())
            check_eq((r.returncode, r.stdout, r.stderr), (0, d.id + "\n", ""), "p2pctl %r" % (args,))
        for args in (["-js", d.sock, "status"], ["-s", d.sock, "status", "-j"], ["-s", d.sock, "status", "--json"]):
            r = p2pctl(*args)
            check(r.returncode == 0 and json.loads(r.stdout)["id"] == d.id, "p2pctl %r: %r", args, r)
        # after "--" a dash is an argument: the ID check sees it, not getopt
        r = p2pctl("-s", d.sock, "ping", "--", "-x")
        check_eq(r.returncode, 2, "ping -- -x exit")
        check("invalid_peer_id" in r.stderr, "ping -- -x: %r", r.stderr)
        r = p2pctl("-s", d.sock, "ping", "-x")
        check_eq((r.returncode, r.stderr.splitlines()[0]), (2, "p2pctl: unknown option '-x'"), "ping -x")
        for args, msg in ((["-s"], "option '-s' needs a value"), (["status", "--socket"], "option '--socket' needs a value"),
                          (["-t", "0", "status"], "bad timeout '0' (seconds)"), (["--bogus", "status"], "unknown option '--bogus'")):
            r = p2pctl(*args)
            check_eq((r.returncode, r.stderr.splitlines()[0]), (2, "p2pctl: " + msg), "p2pctl %r" % (args,))
        # expose's own option in each form
        for i, (args, n) in enumerate(((["--allow", d.id], 1), (["--allow=" + d.id], 1),
                                       (["--allow", d.id, "--allow=" + d.id], 2))):
            name = "svc%d" % i
            r = p2pctl("-s", d.sock, "expose", name, "127.0.0.1:1", *args)
            check_eq(r.returncode, 0, "expose %r (stderr %r)" % (args, r.stderr))
            svc = [x for x in d.req({"cmd": "services"})["services"] if x["service"] == name]
            check_eq(svc[0]["allow"], [d.id] * n, "allow of %r" % (args,))


@T.test
def versions_agree():
    with Cluster() as c:
        d = c.daemon().start()
        version = d.req({"cmd": "status"})["version"]
        for args in (["--version"], ["-V"], ["status", "--version"]):
            r = p2pctl(*args)
            check_eq((r.returncode, r.stdout, r.stderr), (0, "p2pctl %s\n" % version, ""), "p2pctl %r" % (args,))
        for flag in ("--version", "-V"):
            r = run_p2pd([flag])
            check_eq((r.returncode, r.stdout), (0, "p2pd %s\n" % version), "p2pd %s" % flag)


@T.test
def help_shows_defaults():
    xdg = "/run/user/4242"
    r = p2pctl("--help", env=clean_env(XDG_RUNTIME_DIR=xdg), user=NOBODY)
    check_eq(r.returncode, 0, "p2pctl --help exit")
    lines = [l.strip() for l in r.stdout.splitlines()]
    i = lines.index(xdg + "/p2pd/p2pd.sock")
    check_eq(lines[i + 1], "/run/p2pd/p2pd.sock", "the system socket follows the user's in --help")
    r = p2pctl("--help", env=clean_env(P2PD_CONTROL="/x/ctl.sock"))
    check("$P2PD_CONTROL, now /x/ctl.sock" in r.stdout, "--help with $P2PD_CONTROL: %r", r.stdout)
    r = p2pctl("-h")
    check(r.returncode == 0 and r.stdout.startswith("usage: p2pctl"), "p2pctl -h: %r", r)
    for flag in ("-h", "--help"):
        r = run_p2pd([flag])
        check_eq(r.returncode, 0, "p2pd %s exit" % flag)
        out = r.stdout
        for want in ("usage: p2pd", "-h, -V", "control socket             /run/p2pd/p2pd.sock",
                     "state directory            /var/lib/p2pd", "listen                     0.0.0.0:4242 [::]:4242",
                     "/p2pd/p2pd.json"):
            check(want in out, "p2pd %s lacks %r:\n%s", flag, want, out)
    # as a user the defaults are the user's own
    env = clean_env(XDG_RUNTIME_DIR=xdg, XDG_STATE_HOME="/home/x/.state", HOME="/home/x")
    r = subprocess.run(NOBODY + [p2ptest.P2PD, "-h"], capture_output=True, text=True, timeout=10, env=env)
    check(xdg + "/p2pd/p2pd.sock" in r.stdout and "/home/x/.state/p2pd" in r.stdout, "p2pd -h as a user: %r", r.stdout)
    # "-c -h": -h is the file's name there, not a flag
    r = run_p2pd(["-c", "-h"])
    check_eq(r.returncode, 1, "p2pd -c -h exit")


def daemon_error(d, req):
    j = d.req(req)
    check(j.get("ok") is False, "daemon accepted %r: %r", req, j)
    return "p2pctl: %s: %s" % (j["error"], j["message"])


@T.test
def validation_matches_the_daemon():
    """p2pctl rejects exactly what the daemon rejects, in the daemon's words."""
    with Cluster() as c:
        d = c.daemon().start()
        for bad in BAD_IDS + ["", "a" * 51 + "r"]:
            r = d.ctl("lookup", bad)
            check_eq((r.returncode, r.stderr.strip()),
                     (1 if bad in NAME_LIKE else 2, daemon_error(d, {"cmd": "lookup", "peer": bad})),
                     "lookup %r" % bad)
        for good in ("a" * 52, "a" * 51 + "q", "7" * 51 + "q"):
            check_eq(d.req({"cmd": "lookup", "peer": good})["ok"], True, "daemon lookup %r" % good)
            r = d.ctl("lookup", good)
            check_eq(r.returncode, 0, "p2pctl lookup %r (stderr %r)" % (good, r.stderr))
        for bad in ("1.2.3.4", "1.2.3.4:0", "1.2.3.4:65536", "::1:5", "[::1]", "300.1.1.1:5", "1.2.3.4:5x", "[::1]:5]"):
            r = d.ctl("bootstrap", bad)
            check_eq((r.returncode, r.stderr.strip()), (2, daemon_error(d, {"cmd": "bootstrap", "addr": bad})),
                     "bootstrap %r" % bad)
        for bad in ("x", "::1:5", "1.2.3.4:65536", "300.1.1.1:5", "-1", "[::1:5", "1.2.3.4:"):
            r = d.ctl("forward", "--", bad, d.id, "web")
            want = daemon_error(d, {"cmd": "forward", "listen": bad, "peer": d.id, "service": "web"})
            check_eq((r.returncode, r.stderr.strip()), (2, want), "forward %r" % bad)
        r = d.ctl("expose", "x", "127.0.0.1:1", "--allow", "nope")
        want = daemon_error(d, {"cmd": "expose", "service": "x", "target": "127.0.0.1:1", "allow": ["nope"]})
        check_eq((r.returncode, r.stderr.strip()), (2, want), "expose --allow nope")


class StubDaemon:
    """A control socket that answers status with a fixed id: enough to see
    which socket p2pctl chose."""

    def __init__(self, path, ident, mode=0o666):
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        self.path, self.ident = path, ident
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        os.chmod(path, mode)
        self.srv.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(json.dumps({"ok": True, "id": self.ident}).encode() + b"\n")

    def close(self, unlink=True):
        # shutdown first: a close alone leaves accept() in the other thread
        # holding the socket open, and it would go on answering
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()
        if unlink:
            os.unlink(self.path)


def user_tmp():
    d = tempfile.mkdtemp(prefix="p2pctl-xdg-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


@T.test
def socket_search_order():
    """No -s: the user's own socket, then /run/p2pd/p2pd.sock (SPEC 9)."""
    if os.geteuid() != 0 or os.path.exists("/run/p2pd"):
        check(os.environ.get("CI") != "true", "socket_search_order needs root and no /run/p2pd")
        print("skip socket_search_order: needs root and no /run/p2pd on this machine")
        return
    xdg = user_tmp()
    env = clean_env(XDG_RUNTIME_DIR=xdg)
    own, system = os.path.join(xdg, "p2pd", "p2pd.sock"), "/run/p2pd/p2pd.sock"
    stubs = []
    try:
        stubs.append(StubDaemon(system, "system"))
        stubs.append(StubDaemon(own, "own"))
        r = p2pctl("id", env=env, user=NOBODY)
        check_eq((r.returncode, r.stdout), (0, "own\n"), "the user's own daemon first (%r)" % r.stderr)
        stubs.pop().close(unlink=False)  # a stale socket file: ECONNREFUSED
        r = p2pctl("id", env=env, user=NOBODY)
        check_eq((r.returncode, r.stdout), (0, "system\n"), "then the system daemon (%r)" % r.stderr)
        os.unlink(own)
        r = p2pctl("id", env=env, user=NOBODY)
        check_eq((r.returncode, r.stdout), (0, "system\n"), "no own socket at all")
        for args, e in ((["-s", own], env), ([], dict(env, P2PD_CONTROL=own))):
            r = p2pctl(*(args + ["id"]), env=e, user=NOBODY)
            check_eq(r.returncode, 3, "a named socket is the only one tried (%r)" % args)
        stubs.pop().close()
        r = p2pctl("id", env=env, user=NOBODY)
        check_eq(r.returncode, 3, "exit with no daemon")
        check_eq(r.stderr.splitlines(),
                 ["p2pctl: cannot connect to %s: No such file or directory" % own,
                  "p2pctl: cannot connect to %s: No such file or directory (is p2pd running?)" % system],
                 "both paths, in order")
        # as root the user's own socket is the system one: one path
        r = p2pctl("id", env=env)
        check_eq(len(r.stderr.splitlines()), 1, "root tries one path: %r" % r.stderr)
    finally:
        for st in stubs:
            st.close()
        shutil.rmtree(xdg, ignore_errors=True)
        shutil.rmtree("/run/p2pd", ignore_errors=True)


@T.test
def permission_denied_names_the_group():
    if os.geteuid() != 0:
        check(os.environ.get("CI") != "true", "needs root")
        print("skip permission_denied_names_the_group: needs root")
        return
    with Cluster() as c:
        d = c.daemon().start()
        # the daemon's real socket, in a directory nobody may not enter
        r = p2pctl("-s", d.sock, "status", user=NOBODY)
        check_eq(r.returncode, 3, "exit when permission is denied")
        lines = r.stderr.splitlines()
        check_eq(lines[0], "p2pctl: cannot connect to %s: Permission denied" % d.sock, "first line")
        check("group p2pd" in r.stderr and "sudo usermod -aG p2pd $USER" in r.stderr and
              "log in again" in r.stderr, "no group advice: %r", r.stderr)
    tmp = user_tmp()
    try:
        # a socket we can see, group-owned by "daemon": that group is named
        path = os.path.join(tmp, "ctl.sock")
        st = StubDaemon(path, "x", mode=0o660)
        os.chown(path, 0, 1)
        r = p2pctl("-s", path, "id", user=NOBODY)
        check(r.returncode == 3 and "sudo usermod -aG daemon $USER" in r.stderr, "group of the socket: %r", r)
        r = p2pctl("-s", path, "id", user=["setpriv", "--reuid=65534", "--regid=65534", "--groups=1"])
        check_eq((r.returncode, r.stdout), (0, "x\n"), "a member of the group gets in")
        st.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stream_server():
    """127.0.0.1:PORT that sends bytes to every client until it goes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            def pour(conn=conn):
                try:
                    while True:
                        conn.sendall(b"x" * 65536)
                except OSError:
                    conn.close()
            threading.Thread(target=pour, daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return srv


@T.test
def pipe_into_a_closed_pipe_exits_quietly():
    with Cluster() as c:
        d0 = c.daemon().start()
        d1 = c.daemon(bootstrap=[d0]).start()
        wait_for(lambda: d0.id in d1.peer_ids(), 15, what="link d1->d0")
        srv = stream_server()
        try:
            check_eq(d0.ctl("expose", "pour", "127.0.0.1:%d" % srv.getsockname()[1], "--allow-any").returncode, 0, "expose")
            # like "p2pctl pipe ... | head -c 100000": the reader stops, p2pctl must too
            p = subprocess.Popen([p2ptest.P2PCTL, "-s", d1.sock, "pipe", d0.id, "pour"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            got = p.stdout.read(100000)
            p.stdout.close()
            try:
                rc = p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                raise AssertionError("p2pctl pipe kept running after its reader went")
            err = p.stderr.read().decode()
            p.stdin.close()
            p.stderr.close()
            check_eq(len(got), 100000, "bytes read before closing")
            check_eq((rc, err), (0, ""), "exit status and stderr")
            check(d1.alive() and d0.alive(), "a daemon died")
        finally:
            srv.close()


def complete(*words, env=None):
    """What _p2pctl offers for the last of words (bash, no bash-completion)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "p2pctl", "p2pctl.bash")
    prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
            'COMP_WORDBREAKS=$\' \\t\\n"\\\'><=;|&(:\'; _p2pctl; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "--norc", "-c", prog, "bash", script, p2ptest.P2PCTL] + list(words),
                       capture_output=True, text=True, timeout=30, env=env)
    check_eq(r.stderr, "", "completion stderr")
    return [w for w in r.stdout.splitlines() if w]


@T.test
def bash_completion():
    with Cluster() as c:
        d0 = c.daemon().start()
        d1 = c.daemon(bootstrap=[d0]).start()
        wait_for(lambda: d0.id in d1.peer_ids(), 15, what="link d1->d0")
        check_eq(complete("st"), ["status"], "a command")
        check_eq(complete("un"), ["unexpose", "unforward"], "commands")
        check_eq(complete("help", "fo"), ["forward", "forwards"], "help's argument")
        check_eq(complete("--so"), ["--socket="], "an option")
        check_eq(complete("expose", "x", "127.0.0.1:1", "--allow"), ["--allow", "--allow-any"],
                 "expose's options")
        check_eq(d1.ctl("expose", "web", "127.0.0.1:80", "--allow-any").returncode, 0, "expose web")
        check_eq(d1.ctl("expose", "wiki", "127.0.0.1:81", "--allow-any").returncode, 0, "expose wiki")
        check_eq(complete("-s", d1.sock, "unexpose", "w"), ["web", "wiki"], "service names from the daemon")
        check_eq(complete("--socket", "=", d1.sock, "unexpose", "we"), ["web"], "--socket=PATH in pieces")
        check_eq(complete("-s", d1.sock, "ping", ""), [d0.id], "peer IDs from the daemon")
        check_eq(complete("-s", d1.sock, "expose", "x", "127.0.0.1", ":", "1", "--allow", d0.id[:5]), [d0.id],
                 "--allow's ID")
        r = d1.ctl("--json", "forward", "0", d0.id, "web")
        port = json.loads(r.stdout)["listen"].split(":")[1]
        check_eq(complete("-s", d1.sock, "unforward", "127.0.0.1", ":", ""), [port], "forwards, after the ':'")
        check_eq(complete("-s", os.path.join(c.tmp, "none.sock"), "ping", ""), [], "no daemon, nothing offered")


if __name__ == "__main__":
    T.run()
