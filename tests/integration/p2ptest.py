"""Helpers for the p2pd integration tests (python3 stdlib only).

Daemons run on loopback with free ports, each with its own temp state dir
and control socket; every process we start is killed BY PID in finally
blocks (Cluster.__exit__), never by name.

Usage: test_x.py P2PD P2PCTL P2PLOAD  (or env P2PD, P2PCTL, P2PLOAD)
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def tool_paths():
    args = sys.argv[1:]
    names = ("P2PD", "P2PCTL", "P2PLOAD")
    paths = []
    for i, n in enumerate(names):
        p = args[i] if i < len(args) else os.environ.get(n)
        if not p or not os.access(p, os.X_OK):
            sys.exit("usage: %s P2PD P2PCTL P2PLOAD (missing %s)" % (sys.argv[0], n))
        paths.append(os.path.abspath(p))
    return paths


P2PD, P2PCTL, P2PLOAD = None, None, None


def init():
    global P2PD, P2PCTL, P2PLOAD
    P2PD, P2PCTL, P2PLOAD = tool_paths()


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, interval=0.1, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


class CtlError(Exception):
    pass


def ctl_request(path, obj, timeout=30.0, raw=None):
    """One request line, one reply object, on a fresh connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(raw if raw is not None else (json.dumps(obj) + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise CtlError("connection closed without a reply")
            buf += d
        return json.loads(buf.split(b"\n", 1)[0])
    finally:
        s.close()


class Daemon:
    def __init__(self, cluster, name, host="127.0.0.1", port=None, bootstrap=(),
                 config=None, listen=True, extra=(), lan=False, portmap=False):
        self.cluster = cluster
        self.name = name
        self.host = host
        self.port = port or free_port(host)
        self.dir = os.path.join(cluster.tmp, name)
        self.state = os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "ctl.sock")
        self.log = os.path.join(self.dir, "p2pd.log")
        self.bootstrap = list(bootstrap)
        self.listen = listen
        self.config = config
        # LAN discovery (multicast beacons) is off unless a test turns it
        # on: many daemons on one host would all link to each other
        # through it, whatever the test means to bootstrap.
        self.lan = lan
        # Port mapping is off too: a daemon on the test host must not ask
        # the host's real gateway for mappings (lab daemons, whose gateway
        # is a lab router, have it on).
        self.portmap = portmap
        self.extra = list(extra)
        self.proc = None
        self.id = None
        os.makedirs(self.dir, exist_ok=True)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def argv(self, bootstrap=None):
        a = [P2PD, "-s", self.sock, "-d", self.state, "--log-level", "debug"]
        config = dict(self.config or {})
        config.setdefault("lan_discovery", self.lan)
        config.setdefault("port_mapping", self.portmap)
        cfg = os.path.join(self.dir, "config.json")
        with open(cfg, "w") as f:
            json.dump(config, f)
        a += ["-c", cfg]
        if self.listen:
            a += ["-l", self.addr]
        for b in (self.bootstrap if bootstrap is None else bootstrap):
            a += ["-b", b if isinstance(b, str) else b.addr]
        return a + self.extra

    def start(self, bootstrap=None, wait=True):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv(bootstrap), stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        self.cluster.procs.append(self.proc)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %d:\n%s" % (self.name, self.proc.returncode, self.log_tail()))
            try:
                r = ctl_request(self.sock, {"cmd": "status"}, timeout=2)
                return r if r.get("ok") else None
            except (OSError, CtlError, ValueError):
                return None
        st = wait_for(ready, timeout, what="%s control socket" % self.name)
        self.id = st["id"]
        return st

    def req(self, obj, timeout=30.0):
        return ctl_request(self.sock, obj, timeout)

    def ctl(self, *args, timeout=90, input=None):
        return subprocess.run([P2PCTL, "-s", self.sock] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=timeout, input=input)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal by PID; returns the exit code (kills -9 after timeout)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s did not exit within %ds of signal %d" % (self.name, timeout, sig))
        return self.proc.returncode

    def peer_ids(self):
        r = self.req({"cmd": "peers"})
        return {p["id"] for p in r.get("peers", [])}

    def log_tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


class Cluster:
    """Context manager owning a temp dir and every process started in it."""

    def __init__(self, prefix="p2pit-"):
        self.tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.procs = []
        self.daemons = []

    def daemon(self, name=None, **kw):
        d = Daemon(self, name or "d%d" % len(self.daemons), **kw)
        self.daemons.append(d)
        return d

    def relayed_pair(self):
        """A relay a, f with no listener linked only to a, then e linked
        to a: e's link to f can only be relayed by a. f joins first, so
        that its join does not find (and dial) e. Returns (a, f, e)."""
        a = self.daemon("a").start()
        f = self.daemon("f", bootstrap=[a], listen=False, config={"listen": []}).start()
        wait_for(lambda: a.id in f.peer_ids(), 15, what="f linked to a")
        e = self.daemon("e", bootstrap=[a]).start()
        wait_for(lambda: a.id in e.peer_ids(), 15, what="e linked to a")
        return a, f, e

    def popen(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def __enter__(self):
        return self

    SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

    def _stop_daemons(self):
        """SIGTERM every live daemon; list problems (exit code, sanitizer)."""
        problems = []
        for d in self.daemons:
            if d.alive():
                try:
                    rc = d.stop()
                    if rc != 0:
                        problems.append("%s exited %d after SIGTERM" % (d.name, rc))
                except AssertionError as e:
                    problems.append(str(e))
            try:
                with open(d.log, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if any(m in text for m in self.SANITIZER_MARKS):
                problems.append("%s: sanitizer report in its log" % d.name)
        return problems

    def __exit__(self, *exc):
        problems = self._stop_daemons()
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
        if exc[0] is not None or problems:
            for d in self.daemons:
                print("--- %s log tail (%s):\n%s" % (d.name, d.addr, d.log_tail()))
        if (exc[0] is not None or problems) and os.environ.get("P2PTEST_KEEP"):
            print("keeping %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems and exc[0] is None:
            raise AssertionError("; ".join(problems))
        return False


def p2pload(*args, timeout=60):
    return subprocess.run([P2PLOAD] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout)


def header_define(path, name):
    """A constant of the tree's headers, e.g. (256u * 1024) -> 262144,
    (1ull << 30) -> 1073741824."""
    with open(os.path.join(HERE, "..", "..", path)) as f:
        for line in f:
            parts = line.split(None, 2)
            if parts[:2] == ["#define", name]:
                expr = re.sub(r"(\d)[uUlL]+\b", r"\1", parts[2].split("/*")[0])
                return int(eval(expr, {"__builtins__": {}}))
    raise AssertionError("%s not in %s" % (name, path))


def metrics(d):
    """The daemon's Prometheus text as {name{labels}: value}."""
    out = {}
    for line in d.req({"cmd": "metrics"})["text"].splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def check(cond, msg, *fmt):
    if not cond:
        raise AssertionError(msg % fmt if fmt else msg)


def check_eq(seen, expected, what):
    if seen != expected:
        raise AssertionError("%s: expected %r, seen %r" % (what, expected, seen))


class Runner:
    """Runs test functions, one line each, then 'N passed, N failed'."""

    def __init__(self, name):
        self.name = name
        self.tests = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run(self):
        init()
        only = os.environ.get("P2PTEST_ONLY")
        passed = failed = 0
        for fn in self.tests:
            if only and only not in fn.__name__:
                continue
            t0 = time.monotonic()
            try:
                fn()
                passed += 1
                print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
                traceback.print_exc(file=sys.stdout)
        print("%d passed, %d failed" % (passed, failed), flush=True)
        sys.exit(1 if failed else 0)
