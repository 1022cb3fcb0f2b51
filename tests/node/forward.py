"""A TCP forwarder between the host's network namespace and the node's, without any host interface, route or
iptables rule: the tests (in the host's) reach the API server (in the node's), and the node's pods can reach a
service the harness runs on the host's loopback.

Run as a process: `python forward.py LISTEN_NS LISTEN_HOST LISTEN_PORT CONNECT_NS CONNECT_HOST CONNECT_PORT`,
each namespace a /proc/<pid>/ns/net path or `host`; port 0 picks a free one. It binds its listening socket in
LISTEN_NS, prints the port, then moves to CONNECT_NS (a socket stays in the namespace it was made in), so every
connection it opens lands there.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


HOST_NS = os.open("/proc/self/ns/net", os.O_RDONLY)  # opened before any move: the way back


def join_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = HOST_NS if path == "host" else os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        if fd != HOST_NS:
            os.close(fd)


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        conn, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def main() -> None:
    listen_ns, listen_host, listen_port, connect_ns, connect_host, connect_port = sys.argv[1:7]
    join_netns(listen_ns)  # single-threaded so far: the whole process moves
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((listen_host, int(listen_port)))
    listener.listen(64)
    join_netns(connect_ns)
    print(listener.getsockname()[1], flush=True)
    serve(listener, (connect_host, int(connect_port)))


if __name__ == "__main__":
    main()
