#!/usr/bin/env python3
"""25 daemons on loopback form one overlay (issue 4).

Each daemon listens on 127.0.0.1 (the overlay exempts loopback from its
per-subnet limits) and bootstraps through 1-2 random earlier ones.
After settling every daemon looks up every other ID over its control
socket. A client-only daemon (no listener) is then pinged by a daemon that
holds no direct link to it, so the ping has to be routed.
"""
import random
import threading
import time

from p2ptest import Cluster, Runner, check, check_eq, wait_for, ctl_request

T = Runner("test_overlay")
N = 25
SETTLE_S = 5


def build(c, rng):
    ds = []
    for i in range(N):
        boot = rng.sample(ds, min(len(ds), rng.choice((1, 2)))) if ds else []
        ds.append(c.daemon("n%02d" % i, bootstrap=boot).start())
    return ds


def lookup_all(ds):
    """Every daemon looks up every other ID; returns the failures."""
    failures = []
    lock = threading.Lock()

    def worker(d):
        for o in ds:
            if o is d:
                continue
            try:
                r = ctl_request(d.sock, {"cmd": "lookup", "peer": o.id}, timeout=40)
                ok = r.get("ok") is True and r.get("found") is True
            except Exception as e:  # a dead daemon or a timeout is a failure too
                r, ok = repr(e), False
            if not ok:
                with lock:
                    if isinstance(r, dict) and "closest" in r:
                        r = dict(r, closest=len(r["closest"]))
                    failures.append((d.name, o.name, r))
    th = [threading.Thread(target=worker, args=(d,)) for d in ds]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return failures


@T.test
def every_daemon_finds_every_other():
    rng = random.Random(int(time.time()))
    with Cluster() as c:
        ds = build(c, rng)
        time.sleep(SETTLE_S)
        t0 = time.monotonic()
        failures = lookup_all(ds)
        if failures:  # one more round after a longer settle, then it counts
            time.sleep(SETTLE_S)
            failures = lookup_all(ds)
        print("  %d lookups, %d failed, %.1fs" % (N * (N - 1), len(failures), time.monotonic() - t0))
        for f in failures[:10]:
            print("  lookup from %s of %s: %r" % f)
        check_eq(len(failures), 0, "failed lookups")
        for d in ds:
            check(d.alive(), "%s died", d.name)
        closest = ctl_request(ds[0].sock, {"cmd": "lookup", "peer": ds[1].id})["closest"]
        check(any(x["id"] == ds[1].id for x in closest), "lookup's closest lacks the target")


@T.test
def routed_ping_reaches_a_client_only_daemon():
    rng = random.Random(int(time.time()) + 1)
    with Cluster() as c:
        ds = build(c, rng)
        cl = c.daemon("client", listen=False, config={"listen": []},
                      bootstrap=rng.sample(ds, 2)).start()
        st = cl.req({"cmd": "status"})
        check_eq(st["listen"], [], "client-only daemon's listen addresses")
        wait_for(lambda: st["id"] and len(cl.peer_ids()) >= 1, 15, what="client to link")
        # A second client-only daemon can neither dial the first nor be
        # dialled by it: its ping must travel over the overlay.
        cl2 = c.daemon("client2", listen=False, config={"listen": []},
                       bootstrap=rng.sample(ds, 2)).start()
        wait_for(lambda: len(cl2.peer_ids()) >= 1, 15, what="client2 to link")
        time.sleep(SETTLE_S)
        pingers = [d for d in ds if cl.id not in d.peer_ids()][:1] + [cl2]
        for pinger in pingers:
            check(cl.id not in pinger.peer_ids(), "%s holds a direct link to the client", pinger.name)
            r = pinger.req({"cmd": "ping", "peer": cl.id}, timeout=40)
            check(r.get("ok") is True, "routed ping from %s to the client: %r", pinger.name, r)
            check(isinstance(r.get("rtt_ms"), (int, float)), "ping reply %r", r)
            out = pinger.ctl("ping", cl.id)
            check_eq(out.returncode, 0, "p2pctl ping from %s to the client (%s)" % (pinger.name, out.stderr))
        check_eq(cl.id in cl2.peer_ids(), False, "client2 linked to client directly")


if __name__ == "__main__":
    T.run()
