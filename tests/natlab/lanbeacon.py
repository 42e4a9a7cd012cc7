#!/usr/bin/env python3
"""LAN discovery beacons from outside p2pd (proto/beacon.h), for the NAT
lab's test_lan: made and signed here with libsodium through ctypes, so
the test does not trust p2pd's own encoder.

  lanbeacon.py listen SECONDS N
      join the group, print {"sources": [IP, ...]} once N beacons came
      (or SECONDS passed)
  lanbeacon.py send SPEC...
      each SPEC is KIND:PORT[:PAUSE_MS] with KIND good (fresh, signed by a
      new key), badsig (a flipped signature bit), stale (signed, 10 min
      old), future (signed, 10 min ahead); PAUSE_MS: sleep after it. A TCP
      listener on each PORT records who connects; printed as
      {"ports": {PORT: [IP, ...]}} once every port in --want=P,P has a
      connection from each of --from=IP,IP (or --wait seconds passed),
      plus --grace seconds more.
"""
import ctypes
import ctypes.util
import json
import os
import select
import socket
import struct
import sys
import time

GROUP4, PORT = "239.255.42.43", 4243
CTX = b"p2pd-lan-beacon-v1"

sodium = ctypes.CDLL(ctypes.util.find_library("sodium"))
assert sodium.sodium_init() >= 0


def beacon(port4, time_ms, flip=False):
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
    assert sodium.crypto_sign_seed_keypair(pk, sk, os.urandom(32)) == 0
    body = b"p2pB" + bytes([1, 0]) + struct.pack(">HHQ", port4, 0, time_ms) + pk.raw
    sig = ctypes.create_string_buffer(64)
    m = CTX + body
    assert sodium.crypto_sign_detached(sig, None, m, ctypes.c_ulonglong(len(m)), sk) == 0
    s = bytearray(sig.raw)
    if flip:
        s[10] ^= 1
    return body + bytes(s)


def listen(secs, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", PORT))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(GROUP4) + socket.inet_aton("0.0.0.0"))
    end, out = time.monotonic() + secs, []
    while len(out) < n and time.monotonic() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.monotonic()))
        if r:
            data, (ip, _) = s.recvfrom(2048)
            if len(data) == 114 and data[:4] == b"p2pB":
                out.append(ip)
    print(json.dumps({"sources": out}), flush=True)


def send(args):
    opts = {"want": "", "from": "", "wait": "10", "grace": "0.5"}
    specs = []
    for a in args:
        if a.startswith("--"):
            k, v = a[2:].split("=", 1)
            opts[k] = v
        else:
            specs.append(a.split(":"))
    want = [int(p) for p in opts["want"].split(",") if p]
    want_from = [ip for ip in opts["from"].split(",") if ip]
    lsocks = {}
    for spec in specs:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", int(spec[1])))
        ls.listen(16)
        lsocks[ls] = int(spec[1])
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    now = int(time.time() * 1000)
    for spec in specs:
        kind, port = spec[0], int(spec[1])
        t = {"stale": now - 600000, "future": now + 600000}.get(kind, int(time.time() * 1000))
        tx.sendto(beacon(port, t, flip=(kind == "badsig")), (GROUP4, PORT))
        if len(spec) > 2:
            time.sleep(int(spec[2]) / 1000.0)
    got = {p: set() for p in lsocks.values()}

    def done():
        return all(ip in got[p] for p in want for ip in want_from)

    end = time.monotonic() + float(opts["wait"])
    grace_end = None
    while True:
        t = time.monotonic()
        if grace_end is None and (done() or t >= end):
            grace_end = t + float(opts["grace"])
        if grace_end is not None and t >= grace_end:
            break
        r, _, _ = select.select(list(lsocks), [], [], 0.05)
        for ls in r:
            c, (ip, _) = ls.accept()
            got[lsocks[ls]].add(ip)
            c.close()
    print(json.dumps({"ports": {str(p): sorted(v) for p, v in got.items() if v}}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "listen":
        listen(float(sys.argv[2]), int(sys.argv[3]))
    else:
        send(sys.argv[2:])
