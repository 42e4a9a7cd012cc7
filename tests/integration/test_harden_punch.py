#!/usr/bin/env python3
"""Hole punch requests (issue 9, "Punch flood / blind SSRF"), each attack
run against a real daemon on loopback by `p2pload punchflood`: links from
fresh identities of its own, over which it routes signed PUNCH_REQUESTs to
the daemon and counts the daemon's answers (REPLY, or FAIL by reason).

- A forged request naming 8 loopback ports as its candidates makes the
  daemon connect nowhere: a listener we hold on those ports accepts
  nothing, and the request is answered FAIL "implausible" (before the
  fix: a REPLY, then connections to all 8 ports for 8 s).
- A flood from one identity is held to the per-ID bucket; requests from
  several identities on one IP to the per-IP bucket.
- Throwaway identities from one host asking for sessions that dial nothing
  (an endpoint-dependent requester with LAN candidates only) hold at most
  P2P_PSESS_PER_NET of the daemon's session slots.
- A replayed request (the same signed bytes in a new routed message) gets
  no answer, and `p2pctl metrics` counts it as replayed.

- A daemon peers can dial (a DHT server, as every daemon on loopback is)
  answers "dial me" and holds no session at all: the forged request
  connects nowhere and its answer says so (issue 8). The other tests run
  the daemon under attack with dial_me false, so that it punches as a
  NATed node does: the limits guard that node.

Limits from nat/punch_sess.h.
"""
import re
import select
import socket
import threading
import time

from p2ptest import Cluster, Runner, check, check_eq, p2pload, wait_for

T = Runner("test_harden_punch")
P2P_PUNCH_CAND_MAX = 8       # nat/punch.h
P2P_PSESS_ID_BURST = 4       # nat/punch_sess.h
P2P_PSESS_IP_BURST = 8
P2P_PSESS_PER_NET = 2
P2P_NAT_ENDPOINT_DEPENDENT = 4  # nat/nat.h
# A replier's first SYNs (primes) leave as it answers, the next ones after
# P2P_PUNCH_RETRY_MS or P2P_PUNCH_PRIME_HOLD_MS (1.5 s): connections, if
# any, come within this.
WATCH_S = 4.0
PUNCHER = {"dial_me": False}  # a node that punches (see above)


class Listeners:
    """8 listening sockets on consecutive loopback ports; counts every
    connection accepted on any of them."""

    def __init__(self):
        self.socks = []
        for base in range(47300, 60000, 97):
            try:
                for p in range(base, base + P2P_PUNCH_CAND_MAX):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", p))
                    s.listen(64)
                    self.socks.append(s)
                self.base = base
                break
            except OSError:
                for s in self.socks:
                    s.close()
                self.socks = []
        check(self.socks, "no 8 free consecutive ports")
        self.accepted = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    @property
    def target(self):
        return "127.0.0.1:%d" % self.base

    def run(self):
        while not self.stop.is_set():
            r, _, _ = select.select(self.socks, [], [], 0.1)
            for s in r:
                try:
                    c, _ = s.accept()
                    c.close()
                    self.accepted += 1
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.t.join(2)
        for s in self.socks:
            s.close()


def flood(daemon, *args):
    r = p2pload("punchflood", daemon.addr, *args, timeout=120)
    m = re.search(r"ids=(\d+) sent=(\d+) reply=(\d+) limited=(\d+) busy=(\d+) "
                  r"implausible=(\d+) other_fail=(\d+) bad=(\d+) unanswered=(\d+)",
                  r.stdout)
    check(m is not None and r.returncode == 0, "p2pload punchflood: rc %d %r %r",
          r.returncode, r.stdout, r.stderr)
    keys = ("ids", "sent", "reply", "limited", "busy", "implausible", "other_fail",
            "bad", "unanswered")
    out = dict(zip(keys, (int(x) for x in m.groups())))
    print("  %s" % r.stdout.strip())
    return out


def refused(daemon):
    text = daemon.req({"cmd": "metrics"})["text"]
    return {k: int(v) for k, v in
            re.findall(r'p2pd_punch_refused_total\{reason="(\w+)"\} (\d+)', text)}


def connects(daemon):
    text = daemon.req({"cmd": "metrics"})["text"]
    m = re.search(r"^p2pd_punch_connects_total (\d+)$", text, re.M)
    return int(m.group(1))


@T.test
def forged_loopback_request_connects_nowhere():
    with Cluster() as c:
        a = c.daemon("a", config=PUNCHER).start()
        lis = Listeners()
        try:
            # The counter counts: one connection of our own.
            socket.create_connection(("127.0.0.1", lis.base + 3), 2).close()
            wait_for(lambda: lis.accepted == 1, 5, what="our own connection counted")
            lis.accepted = 0
            r = flood(a, "--count", "1", "--target", lis.target)
            time.sleep(WATCH_S)
            check_eq(r["implausible"], 1, "FAIL implausible answers")
            check_eq(r["reply"], 0, "REPLY answers")
            check_eq(lis.accepted, 0, "connections to the forged candidates")
            check_eq(connects(a), 0, "punch connection attempts")
            # Claiming to be seen at the target changes nothing.
            r = flood(a, "--count", "1", "--target", lis.target, "--seen", lis.target)
            time.sleep(1)
            check_eq(r["reply"], 0, "REPLY answers")
            check_eq(lis.accepted, 0, "connections to the forged candidates")
        finally:
            lis.close()
        check(a.alive(), "a survived")


@T.test
def dialable_daemon_says_dial_me_and_connects_nowhere():
    with Cluster() as c:
        a = c.daemon("a").start()
        lis = Listeners()
        try:
            r = flood(a, "--count", "1", "--target", lis.target)
            time.sleep(WATCH_S)
            check_eq(r["reply"], 1, "REPLY (dial me) answers")
            check_eq(r["implausible"], 0, "FAIL implausible answers")
            check_eq(lis.accepted, 0, "connections to the forged candidates")
            check_eq(connects(a), 0, "punch connection attempts")
            text = a.req({"cmd": "metrics"})["text"]
            m = re.search(r"^p2pd_punch_dial_me_total (\d+)$", text, re.M)
            check(m is not None and int(m.group(1)) == 1,
                  "metrics count the dial-me answer: %r", m and m.group(0))
        finally:
            lis.close()
        check(a.alive(), "a survived")


@T.test
def flood_from_one_identity_is_held_to_its_bucket():
    with Cluster() as c:
        a = c.daemon("a", config=PUNCHER).start()
        lis = Listeners()
        try:
            r = flood(a, "--count", "40", "--target", lis.target)
            time.sleep(1)
            past = r["reply"] + r["implausible"] + r["busy"]
            # One more may pass per refill while the flood runs.
            check(past <= P2P_PSESS_ID_BURST + 1, "%d of 40 requests passed the limits", past)
            check(r["limited"] >= 40 - P2P_PSESS_ID_BURST - 1, "%d refused as limited",
                  r["limited"])
            check_eq(r["unanswered"], 0, "requests without an answer")
            check_eq(lis.accepted, 0, "connections to the forged candidates")
            check_eq(refused(a)["limited"], r["limited"], "limited in metrics")
        finally:
            lis.close()


@T.test
def identities_on_one_ip_share_its_bucket():
    with Cluster() as c:
        a = c.daemon("a", config=PUNCHER).start()
        r = flood(a, "--ids", "16", "--count", "16")
        past = r["reply"] + r["implausible"] + r["busy"]
        check(past <= P2P_PSESS_IP_BURST + 1, "%d of 16 identities passed the limits", past)
        check(r["limited"] >= 16 - P2P_PSESS_IP_BURST - 1, "%d refused as limited",
              r["limited"])


@T.test
def one_host_holds_few_session_slots():
    """Requests that make a session but dial nothing (an endpoint-dependent
    requester offering LAN addresses of another network: we would wait for
    its SYNs for 8 s). Before the fix 8 of them held every slot."""
    with Cluster() as c:
        a = c.daemon("a", config=PUNCHER).start()
        r = flood(a, "--ids", "6", "--count", "6", "--nat", P2P_NAT_ENDPOINT_DEPENDENT,
                  "--target", "10.9.9.9:4000")
        check_eq(r["reply"], P2P_PSESS_PER_NET, "sessions granted to one host")
        check_eq(r["limited"], 6 - P2P_PSESS_PER_NET, "refused as limited")
        check_eq(connects(a), 0, "punch connection attempts")


@T.test
def replayed_request_is_refused():
    with Cluster() as c:
        a = c.daemon("a", config=PUNCHER).start()
        r = flood(a, "--count", "1", "--replay", "3", "--nat", P2P_NAT_ENDPOINT_DEPENDENT,
                  "--target", "10.9.9.9:4000")
        # The first is answered (a session that waits for our SYNs); its
        # three replays are not.
        check_eq(r["reply"], 1, "the original request answered")
        check_eq(r["unanswered"], 3, "replays without an answer")
        check_eq(refused(a)["replayed"], 3, "replayed in metrics")


if __name__ == "__main__":
    T.run()
