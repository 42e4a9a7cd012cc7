"""Tunnel throughput across emulated paths (issue 10): two p2pd in NAT lab
namespaces (tools/natlab), a path with delay and loss between them
(pathemu: no netem on this kernel), and in the same lab, the same sender
and sink over raw TCP, through socat and through ssh -L for comparison.
Root only.

Used by tools/bench/bench-paths (the figures) and by
tests/natlab/test_throughput.py (a short run that checks the bytes, not the
speed). Every process is started through the lab and killed by PID when
the lab goes down.

Topology of one path: public hosts "a" (the sink's side: its p2pd exposes
the sink) with the path's one-way delay and loss on its link, and "b" (the
sender's side: its p2pd forwards a local port to a's service), so the
round trip between them is 2 x delay. ssh -L: sshd on a, ssh on b
forwarding a local port of b to a's sink, as the tunnel does. relayed(): "r" relays between a and
"f", daemons without listeners, so a's link to f is a relay circuit.

CPU: every transfer through a forwarding process also gets "cpu", the CPU
seconds per GiB (at the sink) that those processes spent between a sample
just before the sender starts and one just after it is done, so that the
idle wakeups of the setup and of the delayed path outside the transfer do
not count: both p2pd daemons (three when relayed), ssh plus sshd and its
per-connection children, socat and its forked child. "cpu_parts" splits it
per process group. The namespaces share the PID namespace, so /proc sees
them all.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "natlab"))

import natlab  # noqa: E402

MIB = 1024 * 1024
GIB = 1024 * MIB
PORT = 4242  # p2pd's listen port in every namespace
SINK_PORT = 5001
SOCAT_PORT = 5002
# ssh -L: sshd's port on a and ssh's forwarded port on b. Fixed: each lab's
# namespaces are new, so nothing else listens there.
SSHD_PORT = 5022
SSH_PORT = 5003
SSHD = "/usr/sbin/sshd"  # absolute: sshd re-executes itself per connection
LISTEN_SECS = 15  # for sshd and ssh -L to listen: key exchange and auth take well under 1 s
# For socat's per-connection child to exit and be reaped once the sender is
# done (it exits as soon as both directions saw EOF, socat's parent reaps it
# at once); its CPU is then in the parent's cutime/cstime.
REAP_SECS = 5

# The sink: counts (and with "1", hashes) what each connection sends and
# answers "bytes seconds sha256" at EOF; seconds from first byte to EOF.
SINK = r"""
import hashlib, socket, sys, time
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1])))
ls.listen(16)
print("ready", flush=True)
hashing = sys.argv[2] == "1"
buf = bytearray(1 << 20)
while True:
    c, _ = ls.accept()
    n, t0, h = 0, None, hashlib.sha256()
    try:
        while True:
            k = c.recv_into(buf)
            if not k:
                break
            if t0 is None:
                t0 = time.monotonic()
            n += k
            if hashing:
                h.update(memoryview(buf)[:k])
        dt = time.monotonic() - t0 if t0 else 0.0
        c.sendall(("%d %.6f %s\n" % (n, dt, h.hexdigest() if hashing else "-")).encode())
    except OSError:
        pass
    c.close()
"""

# The sender: seconds of data (or nbytes, whichever is given), slices of an
# 8 MiB random buffer at shifting offsets (reordered or repeated bytes
# change the hash), then EOF; prints JSON with the sink's answer.
SEND = r"""
import hashlib, json, os, socket, sys, time
host, port, secs, nbytes, hashing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
data = os.urandom(8 << 20)
view = memoryview(data)
s = socket.create_connection((host, port), timeout=120)
h, n, i, t0 = hashlib.sha256(), 0, 0, time.monotonic()
while (nbytes and n < nbytes) or (not nbytes and time.monotonic() - t0 < secs):
    off = (i * 1234577) % (7 << 20)
    k = 1 << 20 if not nbytes else min(1 << 20, nbytes - n)
    chunk = view[off:off + k]
    s.sendall(chunk)
    if hashing:
        h.update(chunk)
    n += k
    i += 1
s.shutdown(socket.SHUT_WR)
got = b""
while not got.endswith(b"\n"):
    d = s.recv(256)
    if not d:
        break
    got += d
wall = time.monotonic() - t0
w = got.decode().split()
out = {"sent": n, "wall": wall}
if len(w) == 3:
    out.update(recv=int(w[0]), secs=float(w[1]))
    out["intact"] = int(w[0]) == n and (not hashing or w[2] == h.hexdigest())
print(json.dumps(out), flush=True)
"""


def ctl(sock, obj, timeout=30):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall((json.dumps(obj) + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            d = s.recv(65536)
            if not d:
                raise OSError("control socket closed")
            buf += d
        return json.loads(buf.split(b"\n")[0])
    finally:
        s.close()


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = pred()
        if r:
            return r
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


def have_ssh():
    """openssh-server and the client: the ssh -L column needs both."""
    return os.path.exists(SSHD) and all(shutil.which(x) for x in ("ssh", "ssh-keygen"))


def descendants(root):
    """root and every process below it (sshd forks a child per connection,
    which forks its privilege-separated child), from /proc's parent PIDs."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def stat_ticks(pid):
    """utime, stime, cutime, cstime of pid in clock ticks from
    /proc/PID/stat; None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return [int(x) for x in st[11:15]]
    except (OSError, IndexError, ValueError):
        return None


def cpu_secs(pids):
    """utime + stime of the live pids, plus cutime + cstime (the children
    each has reaped: socat's per-connection child), in seconds."""
    return sum(sum(stat_ticks(pid) or ()) for pid in pids) / os.sysconf("SC_CLK_TCK")


def user_sys(pid):
    """(user, sys) CPU seconds of pid so far; (0, 0) once it is gone."""
    t = stat_ticks(pid) or (0, 0)
    return (t[0] / os.sysconf("SC_CLK_TCK"), t[1] / os.sysconf("SC_CLK_TCK"))


def cpu_sample(groups):
    """{name: CPU seconds so far} for groups {name: function giving pids}."""
    return {k: cpu_secs(f()) for k, f in groups.items()}


def add_cpu(res, c0, c1):
    """res (a sender's result) gains cpu, the CPU seconds per GiB the sink
    counted of all groups between samples c0 and c1, and cpu_parts, each
    group's; None when nothing arrived."""
    gib = res.get("recv", 0) / GIB
    if not gib:
        res["cpu"] = None
        return res
    res["cpu_parts"] = {k: (c1[k] - c0[k]) / gib for k in c0}
    res["cpu"] = sum(res["cpu_parts"].values())
    return res


def wait_reaped(root, timeout=REAP_SECS):
    """Until root has no child left (its children's CPU is then in root's
    cutime/cstime); quietly gives up after timeout."""
    end = time.monotonic() + timeout
    while len(descendants(root)) > 1 and time.monotonic() < end:
        time.sleep(0.05)


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tail(path, n=10):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


def wait_listen(node, port, proc, what, log):
    """Until something listens on TCP port in node's namespace (ss: no
    connection made, so nothing is forwarded to the sink); a clear error if
    proc exits first or nothing listens within LISTEN_SECS."""
    end = time.monotonic() + LISTEN_SECS
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited (%d): %s" % (what, proc.returncode, tail(log)))
        if node.run("ss", "-Hltn", "sport = :%d" % port, check=False).stdout.strip():
            return
        time.sleep(0.1)
    raise RuntimeError("%s did not listen on port %d within %d s: %s"
                       % (what, port, LISTEN_SECS, tail(log)))


class LabP2pd:
    """A p2pd inside a lab namespace; its control socket is a file, so it
    is reached from here. listen False: no listener (relayed only)."""

    def __init__(self, lab, node, p2pd, tmp, name, listen=True, boot=()):
        self.lab, self.node = lab, node
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "ctl.sock")
        self.addr = "%s:%d" % (node.ip, PORT)
        cfg = os.path.join(self.dir, "p2pd.json")
        with open(cfg, "w") as f:
            # links only as the bench makes them; no gateway requests
            cfg_obj = {"lan_discovery": False, "port_mapping": False}
            if not listen:
                cfg_obj["listen"] = []
            json.dump(cfg_obj, f)
        argv = [p2pd, "-c", cfg, "-s", self.sock, "-d", os.path.join(self.dir, "state"),
                "--log-level", "warn"]
        if listen:
            argv += ["-l", "0.0.0.0:%d" % PORT]
        for b in boot:
            argv += ["-b", b.addr]
        self.logf = os.path.join(self.dir, "log")
        with open(self.logf, "w") as log:
            self.proc = lab.popen(node, argv, stdout=log, stderr=log)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("p2pd %s exited: %s" % (name, self.log_tail()))
            try:
                return ctl(self.sock, {"cmd": "status"}, 2).get("ok")
            except (OSError, ValueError):
                return False
        wait_for(up, 15, "p2pd %s" % name)
        self.id = ctl(self.sock, {"cmd": "status"})["id"]

    def req(self, obj, timeout=30):
        return ctl(self.sock, obj, timeout)

    def log_tail(self, n=20):
        try:
            with open(self.logf, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def writes(self):
        """Write system calls so far (/proc/PID/io syscw)."""
        with open("/proc/%d/io" % self.proc.pid) as f:
            for line in f:
                if line.startswith("syscw:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sink(lab, node, hashing):
    p = lab.popen(node, [sys.executable, "-c", SINK, SINK_PORT, "1" if hashing else "0"],
                  stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        raise RuntimeError("sink did not start")
    return p


def send(lab, node, host, port, secs=0.0, nbytes=0, hashing=False, timeout=300,
         watch=None, every=0.25):
    """The sender in node's namespace towards host:port: its JSON result,
    with mbit (the sink's throughput) when the sink answered. watch, when
    given, is called every `every` seconds while the sender runs (a poll
    of the daemons the bytes go through)."""
    p = lab.popen(node, [sys.executable, "-c", SEND, host, port, secs, nbytes,
                         "1" if hashing else "0"], stdout=subprocess.PIPE, text=True)
    end = time.monotonic() + timeout
    while watch and p.poll() is None and time.monotonic() < end:
        watch()
        time.sleep(every)
    out, _ = p.communicate(timeout=max(1, end - time.monotonic()))
    try:
        r = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        r = {"sent": 0, "intact": False}
    r.setdefault("intact", False)
    if r.get("secs"):
        r["mbit"] = r["recv"] * 8 / r["secs"] / 1e6
    return r


class Path:
    """One lab: a and b with rtt_ms between them and loss on a's link."""

    def __init__(self, rtt_ms, loss=0.0, hashing=False, pathemu=None):
        if rtt_ms % 2:
            raise ValueError("rtt_ms: an even number (2 x a's one-way delay)")
        self.lab = natlab.Lab(pathemu=pathemu)
        self.tmp = tempfile.mkdtemp(prefix="p2pbench-")
        self.rtt_ms, self.loss = rtt_ms, loss
        self.hashing = hashing
        try:
            self.a = self.lab.public("a", delay_ms=rtt_ms // 2, loss=loss)
            self.b = self.lab.public("b")
            self.sink = start_sink(self.lab, self.a, hashing)
        except BaseException:
            self.down()
            raise

    def down(self):
        self.lab.down()
        subprocess.run(["rm", "-rf", self.tmp], check=False)

    def raw(self, secs=0.0, nbytes=0):
        return send(self.lab, self.b, self.a.ip, SINK_PORT, secs, nbytes, self.hashing)

    def socat(self, secs=0.0, nbytes=0):
        """Through socat on a (plaintext relay into the sink): None without
        socat. cpu: socat's listener and its forked child (reaped, in the
        listener's cutime, by the second sample)."""
        exe = natlab.shutil.which("socat")
        if not exe:
            return None
        p = self.lab.popen(self.a, [exe, "TCP-LISTEN:%d,reuseaddr,fork" % SOCAT_PORT,
                                    "TCP:127.0.0.1:%d" % SINK_PORT],
                           stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        groups = {"socat": lambda: descendants(p.pid)}
        try:
            c0 = cpu_sample(groups)
            res = send(self.lab, self.b, self.a.ip, SOCAT_PORT, secs, nbytes, self.hashing)
            wait_reaped(p.pid)
            return add_cpu(res, c0, cpu_sample(groups))
        finally:
            p.kill()
            p.wait()

    def ssh(self, secs=0.0, nbytes=0):
        """Through ssh -L (None without openssh): sshd on a with a host key,
        a user key and a config of its own in a temp dir, listening on a's
        address only; ssh -N -L on b forwarding b's 127.0.0.1:SSH_PORT to
        the sink; the same sender as raw(). The ssh client, sshd and its
        per-connection children are killed by PID when done (and by the
        lab's down(), also on INT/TERM: they run in its namespaces). A
        setup failure is returned as {"error": why}, counted as broken.
        cpu: ssh, and sshd with its per-connection children (the session
        is still up at the second sample)."""
        if not have_ssh():
            return None
        d = tempfile.mkdtemp(prefix="ssh-", dir=self.tmp)
        for k in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            os.path.join(d, k)], check=True, stdin=subprocess.DEVNULL)
        shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized_keys"))
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("Port %d\nListenAddress %s\nHostKey %s/host\nPidFile %s/pid\n"
                    "AuthorizedKeysFile %s/authorized_keys\nStrictModes no\nUsePAM no\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\n"
                    "PrintMotd no\nUseDNS no\n" % (SSHD_PORT, self.a.ip, d, d, d))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        slog, clog = os.path.join(d, "sshd.log"), os.path.join(d, "ssh.log")
        with open(slog, "w") as f:
            sshd = self.lab.popen(self.a, [SSHD, "-D", "-e", "-f", cfg], stdout=f, stderr=f)
        cli = None
        try:
            wait_listen(self.a, SSHD_PORT, sshd, "sshd", slog)
            with open(clog, "w") as f:
                cli = self.lab.popen(self.b, [
                    "ssh", "-F", "/dev/null", "-N", "-i", os.path.join(d, "user"),
                    "-p", SSHD_PORT, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
                    "-L", "127.0.0.1:%d:127.0.0.1:%d" % (SSH_PORT, SINK_PORT),
                    "root@%s" % self.a.ip], stdout=f, stderr=f)
            wait_listen(self.b, SSH_PORT, cli, "ssh -L", clog)
            groups = {"ssh": lambda: descendants(cli.pid), "sshd": lambda: descendants(sshd.pid)}
            c0 = cpu_sample(groups)
            res = send(self.lab, self.b, "127.0.0.1", SSH_PORT, secs, nbytes, self.hashing)
            return add_cpu(res, c0, cpu_sample(groups))
        except RuntimeError as e:
            return {"sent": 0, "intact": False, "error": str(e)}
        finally:
            if cli is not None:
                kill_pids([cli.pid])
                cli.wait()
            kill_pids(descendants(sshd.pid))  # the listener and its children
            sshd.wait()

    def tunnel(self, p2pd, name, secs=0.0, nbytes=0):
        """Through a forward of b's p2pd to a's (binary p2pd). Returns the
        sender's result plus window (a's receive window at the end, when
        the daemon reports it), writes (a's p2pd write calls per MiB) and
        cpu (both daemons; the window polls below are in it, a few cheap
        control requests a second)."""
        da = LabP2pd(self.lab, self.a, p2pd, self.tmp, name + "-a")
        db = LabP2pd(self.lab, self.b, p2pd, self.tmp, name + "-b", boot=[da])
        try:
            wait_for(lambda: da.id in [p["id"] for p in db.req({"cmd": "peers"})["peers"]],
                     20, "b's link to a")
            r = da.req({"cmd": "expose", "service": "sink",
                        "target": "127.0.0.1:%d" % SINK_PORT, "allow": "any"})
            if not r.get("ok"):
                raise RuntimeError("expose: %r" % r)
            fw = db.req({"cmd": "forward", "listen": "127.0.0.1:0", "peer": da.id,
                         "service": "sink"})
            if not fw.get("ok"):
                raise RuntimeError("forward: %r" % fw)
            fport = int(fw["listen"].rsplit(":", 1)[1])
            w0 = da.writes()
            windows = []
            groups = {"sink's p2pd": lambda: [da.proc.pid], "sender's p2pd": lambda: [db.proc.pid]}
            c0 = cpu_sample(groups)

            def watch():
                for t in da.req({"cmd": "tunnels"}).get("tunnels", []):
                    if "window" in t:
                        windows.append(t["window"])
            res = send(self.lab, self.b, "127.0.0.1", fport, secs, nbytes, self.hashing,
                       watch=watch)
            add_cpu(res, c0, cpu_sample(groups))
            res["writes_per_mib"] = (da.writes() - w0) / max(res.get("recv", 0) / MIB, 1e-9)
            res["window"] = max(windows) if windows else None
            res["alive"] = da.proc.poll() is None and db.proc.poll() is None
            return res
        finally:
            db.stop()
            da.stop()


def relayed(p2pd, rtt_ms, nbytes, pathemu=None):
    """A tunnel over a relayed link across rtt_ms: a sends nbytes to the
    sink of f; neither has a listener (so neither dials the other, hole
    punching has no port to work with, and a's link to f goes through the
    relay r, the one daemon they both link to).
    Returns the sender's result with the largest window f granted, the
    link kinds f's tunnels showed, the relay's circuits at the end, cpu
    (the three daemons, relay included) and raw: the same bytes over raw
    TCP from a to f's sink."""
    lab = natlab.Lab(pathemu=pathemu)
    tmp = tempfile.mkdtemp(prefix="p2pbench-")
    try:
        # The delay on the sink's link only, so that the data enters the
        # delayed namespace, as in Path: data LEAVING a namespace through
        # pathemu crawled here (raw TCP at 2-4 Mbit/s across 40 ms).
        a = lab.public("a")
        f = lab.public("f", delay_ms=rtt_ms // 2)
        r = lab.public("r")
        start_sink(lab, f, True)
        dr = LabP2pd(lab, r, p2pd, tmp, "r")
        da = LabP2pd(lab, a, p2pd, tmp, "a", listen=False, boot=[dr])
        df = LabP2pd(lab, f, p2pd, tmp, "f", listen=False, boot=[dr])
        # r's own view too: an initiator's link is up when the responder's
        # HELLO comes with frame 2, half a round trip before the responder
        # has frame 3, and r relays only to a peer it holds.
        wait_for(lambda: dr.id in [p["id"] for p in df.req({"cmd": "peers"})["peers"]] and
                 dr.id in [p["id"] for p in da.req({"cmd": "peers"})["peers"]] and
                 {da.id, df.id} <= {p["id"] for p in dr.req({"cmd": "peers"})["peers"]}, 20,
                 "a and f linked to r")
        df.req({"cmd": "expose", "service": "sink", "target": "127.0.0.1:%d" % SINK_PORT, "allow": "any"})
        j = da.req({"cmd": "connect", "peer": df.id}, timeout=90)
        if j.get("path") != "relay":
            raise RuntimeError("a's link to f is not relayed: %r" % j)
        fw = da.req({"cmd": "forward", "listen": "127.0.0.1:0", "peer": df.id,
                     "service": "sink"})
        fport = int(fw["listen"].rsplit(":", 1)[1])
        groups = {"sender's p2pd": lambda: [da.proc.pid], "relay": lambda: [dr.proc.pid],
                  "sink's p2pd": lambda: [df.proc.pid]}
        c0 = cpu_sample(groups)
        windows, kinds = [], set()

        def watch():
            for t in df.req({"cmd": "tunnels"}).get("tunnels", []):
                if "window" in t:
                    windows.append(t["window"])
                kinds.add(t.get("link"))
        res = send(lab, a, "127.0.0.1", fport, nbytes=nbytes, hashing=True, watch=watch, every=0.1)
        add_cpu(res, c0, cpu_sample(groups))
        res["window"] = max(windows) if windows else None
        res["links"] = sorted(k for k in kinds if k)
        res["circuits"] = dr.req({"cmd": "status"})["relay"]["circuits"]
        res["relay_log"] = dr.log_tail()
        res["raw"] = send(lab, a, f.ip, SINK_PORT, nbytes=nbytes, hashing=True)
        return res
    finally:
        lab.down()
        subprocess.run(["rm", "-rf", tmp], check=False)
