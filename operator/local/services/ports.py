"""Port checks: pick free ports for tests, refuse taken ones with a clear message."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port below the kernel's ephemeral range: a port the kernel handed out (bind to 0) can be taken
    by any outgoing connection before the service that was meant to get it binds it; these cannot."""
    top = ephemeral_start()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(LOWEST, top) if top > LOWEST else rng.randrange(1024, 65536)
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {top}: stop what holds them or widen {EPHEMERAL_RANGE}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
