"""Starting node processes inside the node's network namespace, and stopping them (and what they left: pod
processes in the node's cgroups, containerd shims) strictly by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from node.host import hierarchies

log = structlog.get_logger("node-processes")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def spawn(name: str, argv: list[str], netns: Path | None, logs: Path, env: dict | None = None) -> Proc:
    """Start argv (inside the namespace `netns` if given) in its own session, output to logs/<name>.log."""
    log_path = logs / f"{name}.log"
    prefix = ["nsenter", f"--net={netns}", "--"] if netns else []
    with open(log_path, "ab") as out:
        popen = subprocess.Popen([*prefix, *argv], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=logs, start_new_session=True, env=env)
    return Proc(name, popen, log_path)


def stop(proc: Proc, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps."""
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(grace)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(10)
    log.debug("stopped", name=proc.name, pid=proc.pid, code=proc.popen.returncode)


def cgroup_pids(name: str) -> set[int]:
    """Every pid in <hierarchy>/<name>/** of every v1 hierarchy: the pods' processes."""
    pids: set[int] = set()
    for hierarchy in hierarchies():
        top = hierarchy / name
        if not top.exists():
            continue
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                pass
    return pids


def pids_with_arg(needle: str) -> set[int]:
    """Processes whose command line contains `needle` (e.g. containerd shims that name our socket)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.add(int(entry.name))
    return found - {os.getpid()}


def kill_pids(pids: set[int], timeout: float = 10) -> set[int]:
    """SIGKILL every pid and wait until they are gone; returns the survivors."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        if alive:
            time.sleep(0.1)
    return alive


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process for good."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead; its parent (a shim we also kill) reaps it or init does
