"""A TCP forwarder from the host's loopback into the node's network namespace, so that the tests (in the host
namespace) reach the API server (in the node's) without any host interface, route or iptables rule.

Run as a process: `python forward.py NETNS_PATH TARGET_HOST TARGET_PORT`. It listens on 127.0.0.1 (a free
port, printed on stdout) in the host namespace, then joins the node's namespace (the listening socket stays
in the host's), so every connection it opens lands inside the node.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def join_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
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
    netns, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    join_netns(netns)  # single-threaded so far: the whole process moves
    print(listener.getsockname()[1], flush=True)
    serve(listener, (host, port))


if __name__ == "__main__":
    main()
