#!/usr/bin/env python3
"""A plaintext TCP hop for tools/bench: the floor under a relay's cost.

  hop.py LISTEN_PORT TARGET_PORT

Listens on 127.0.0.1:LISTEN_PORT; each connection it accepts is joined to
a new connection to 127.0.0.1:TARGET_PORT, and the bytes go both ways by
splice(2) through a pipe: the kernel moves the pages, nothing is copied
through user space, nothing is parsed. No relay can do less per byte
than this on the same host (it still has the extra TCP hop). Its sockets
are on cubic, as p2pd's in-host sockets are (daemon/tcpopt.h), so that
pacing timers do not count against it. Runs until killed.
"""
import fcntl
import os
import socket
import sys
import threading

PIPE = 1 << 20  # a splice moves up to this much per call


def cubic(s):
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic")
    except OSError:
        pass  # not allowed here: the host's own


def pump(src, dst):
    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE)
        except (OSError, AttributeError):
            pass
        while True:
            n = os.splice(src.fileno(), w, PIPE)
            if n == 0:
                break
            while n > 0:
                n -= os.splice(r, dst.fileno(), n)
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn, target):
    out = socket.socket()
    cubic(out)
    try:
        out.connect(("127.0.0.1", target))
    except OSError:
        conn.close()
        return
    t = threading.Thread(target=pump, args=(out, conn), daemon=True)
    t.start()
    pump(conn, out)
    t.join()
    conn.close()
    out.close()


def main():
    port, target = int(sys.argv[1]), int(sys.argv[2])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    cubic(ls)  # accepted sockets inherit it
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve, args=(conn, target), daemon=True).start()


if __name__ == "__main__":
    main()
