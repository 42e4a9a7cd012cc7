#!/usr/bin/env python3
"""Issue 12 for people: names (SPEC section 9), runtime changes that
persist, and what is going on (peers, tunnels, metrics)."""
import json
import os
import re
import stat
import subprocess

from p2ptest import Cluster, Runner, check, check_eq, wait_for
import p2ptest
from test_cli import complete

T = Runner("test_ux")


def pair(c):
    d0 = c.daemon("d0").start()
    d1 = c.daemon("d1", bootstrap=[d0]).start()
    wait_for(lambda: d0.id in d1.peer_ids(), 15, what="link d1->d0")
    return d0, d1


@T.test
def names_add_use_list_remove():
    with Cluster() as c:
        d0, d1 = pair(c)
        r = d1.ctl("name", "add", "alice", d0.id)
        check_eq((r.returncode, r.stderr), (0, ""), "name add")
        r = d1.ctl("names")
        check_eq(r.stdout.split(), ["NAME", "ID", "alice", d0.id], "names table")
        check_eq(d1.req({"cmd": "names"})["names"], [{"name": "alice", "peer": d0.id}], "names reply")
        for ref in ("alice", "alice.p2p", d0.id + ".p2p"):
            r = d1.ctl("ping", ref)
            check_eq(r.returncode, 0, "ping %s (stderr %r)" % (ref, r.stderr))
            j = d1.req({"cmd": "connect", "peer": ref})
            check_eq((j["ok"], j["peer"]), (True, d0.id), "connect %s" % ref)
        check_eq(complete("-s", d1.sock, "ping", "al"), ["alice"], "completion of a name")
        check_eq(complete("-s", d1.sock, "name", "rm", ""), ["alice"], "completion of name rm")
        # tables show the name; the JSON keeps the ID and adds the name
        r = d1.ctl("peers")
        check(re.search(r"^alice\s+127\.0\.0\.1:", r.stdout, re.M), "peers table: %r", r.stdout)
        p = [p for p in d1.req({"cmd": "peers"})["peers"] if p["id"] == d0.id]
        check_eq(p[0].get("name"), "alice", "peers[].name")
        # kept in the state dir, mode 0600, and back after a restart
        path = os.path.join(d1.state, "names.json")
        check_eq(stat.S_IMODE(os.stat(path).st_mode), 0o600, "names.json mode")
        check_eq(json.load(open(path)), {"alice": d0.id}, "names.json")
        check_eq(d1.stop(), 0, "d1 exit")
        d1.start()
        check_eq(d1.ctl("names").stdout.split()[2:], ["alice", d0.id], "names after restart")
        # a changed name, then removed for good
        d1.ctl("name", "add", "alice", d1.id)
        check_eq(d1.req({"cmd": "names"})["names"], [{"name": "alice", "peer": d1.id}], "renamed")
        r = d1.ctl("name", "rm", "alice")
        check_eq((r.returncode, r.stderr), (0, ""), "name rm")
        r = d1.ctl("ping", "alice")
        check_eq((r.returncode, r.stderr.strip()),
                 (1, "p2pctl: invalid_peer_id: peer: no peer named 'alice' (see p2pctl names)"), "ping a removed name")
        check_eq(json.load(open(path)), {}, "names.json after rm")
        r = d1.ctl("name", "rm", "alice")
        check_eq(r.returncode, 1, "rm of an unknown name")


@T.test
def name_syntax():
    with Cluster() as c:
        d = c.daemon().start()
        for bad in ("Alice", "2x", "-x", "a" * 33, "a.b", ""):
            r = d.ctl("name", "add", bad, d.id)
            check_eq(r.returncode, 2, "p2pctl name add %r" % bad)
            j = d.req({"cmd": "name_add", "name": bad, "peer": d.id})
            check_eq((j["ok"], j["error"]), (False, "bad_request"), "daemon name_add %r" % bad)
        for bad in ("xyz", d.id[:-1]):
            r = d.ctl("name", "add", "x", bad)
            check_eq(r.returncode, 2, "name add x %r" % bad)
            j = d.req({"cmd": "name_add", "name": "x", "peer": bad})
            check_eq(j.get("error"), "invalid_peer_id", "daemon name_add x %r" % bad)
        check_eq(d.ctl("name", "list").returncode, 2, "name list")
        check_eq(d.ctl("name", "add", "x").returncode, 2, "name add without ID")
        check_eq(d.req({"cmd": "names"})["names"], [], "nothing added")


@T.test
def corrupt_names_file_is_a_warning():
    with Cluster() as c:
        d = c.daemon()
        os.makedirs(d.state, mode=0o700)
        with open(os.path.join(d.state, "names.json"), "w") as f:
            f.write('{"alice": 12')
        d.start()
        check_eq(d.req({"cmd": "names"})["names"], [], "names")
        check("names.json" in open(d.log).read(), "the log names the file")


@T.test
def show_id():
    with Cluster() as c:
        d = c.daemon()
        r = subprocess.run([p2ptest.P2PD, "-d", d.state, "--show-id"], capture_output=True, text=True)
        check_eq(r.returncode, 1, "--show-id without an identity")
        check("no identity" in r.stderr, "message: %r", r.stderr)
        check(not os.path.exists(d.state), "--show-id created the state dir")
        d.start()
        r = subprocess.run([p2ptest.P2PD, "-d", d.state, "--show-id"], capture_output=True, text=True)
        check_eq((r.returncode, r.stdout, r.stderr), (0, d.id + "\n", ""), "--show-id")


if __name__ == "__main__":
    T.run()
