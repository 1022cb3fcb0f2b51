"""A service is a long-running local process with its own home directory.

Layout of a service home (e.g. `.userpipeline/kafka/`): `data/` (kept across restarts), `conf/`
(regenerated at each start), `service.log` and `service.json` (pid and ports of the last start).
Processes run in their own session, so they outlive the `userpipeline up` that started them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil
import structlog

from userpipeline.operator.local.services.ports import port_is_free

log = structlog.get_logger()


def read_json(path: Path) -> dict:
    """A small JSON file another process writes; {} while it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class ServiceError(RuntimeError):
    """A service could not be started or stopped; the message says what to do."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    ports: dict[str, int]
    running: bool
    healthy: bool
    rss_bytes: int | None

    @property
    def state(self) -> str:
        if self.healthy:
            return "healthy"
        return "starting/unhealthy" if self.running else "down"


class Service(ABC):
    name: ClassVar[str]
    default_ports: ClassVar[dict[str, int]]
    start_timeout: ClassVar[float] = 120.0

    def __init__(self, home: Path, ports: dict[str, int] | None = None):
        self.home = Path(home).resolve()
        self.data_dir = self.home / "data"
        self.conf_dir = self.home / "conf"
        self.log_file = self.home / "service.log"
        self.state_file = self.home / "service.json"
        self._proc: subprocess.Popen | None = None
        saved = self._read_state().get("ports", {})
        self.ports: dict[str, int] = {**self.default_ports, **saved, **(ports or {})}

    # -- what each service defines ----------------------------------------------------------
    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the service in the foreground."""

    @abstractmethod
    def check_health(self) -> bool:
        """True when the service answers real requests; must not raise."""

    def prepare(self) -> None:
        """Write configuration and initialise storage; idempotent."""

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    host: ClassVar[str] = "127.0.0.1"

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return next(iter(self.ports.values()))

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float | None = None, progress: Callable[[str], None] | None = None) -> None:
        """Start the service unless it already runs, then wait until it is healthy."""
        if self.pid() is None:
            self.check_ports()
            for folder in (self.data_dir, self.conf_dir):
                folder.mkdir(parents=True, exist_ok=True)
            self.prepare()
            self._spawn()
        self.wait_healthy(timeout or self.start_timeout, progress)

    def check_ports(self) -> None:
        for role, port in self.ports.items():
            if not port_is_free(port):
                raise ServiceError(
                    f"{self.name}: port {port} ({role}) is taken by another process; stop that process "
                    f"or pick another port (e.g. `userpipeline up --{self.name}-port N`)"
                )

    def _spawn(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                self.command(), cwd=self.home, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.environment(), start_new_session=True,
            )
        self._write_state({"pid": self._proc.pid, "ports": self.ports, "started_at": time.time()})
        log.info("service.spawned", service=self.name, pid=self._proc.pid, ports=self.ports)

    def wait_healthy(self, timeout: float, progress: Callable[[str], None] | None = None) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise ServiceError(self._exit_message())
            if self.check_health():
                return time.monotonic() - started
            if progress:
                progress(f"waiting for {self.name} ({time.monotonic() - started:.0f}s)")
            time.sleep(0.5)
        raise ServiceError(f"{self.name} did not become healthy within {timeout:.0f}s; see {self.log_file}")

    def _exit_message(self) -> str:
        """One line: what failed, the log's own reason, what to do, where the log is."""
        code = self._proc.poll() if self._proc else None
        tail = self.log_tail(200)
        errors = [line.strip() for line in tail.splitlines() if "ERROR" in line or "Exception" in line or "fatal" in line.lower()]
        reason = f": {errors[-1][:300]}" if errors else ""
        return f"{self.name} exited during start-up (exit code {code}){reason}. {self.failure_hint(tail)} Log: {self.log_file}"

    def failure_hint(self, log_text: str) -> str:
        """A sentence telling the user what to do, from the service's own log."""
        return f"If its data is corrupt, `userpipeline reset {self.name}` clears {self.data_dir} (data loss)."

    def stop(self, timeout: float = 60.0) -> None:
        """Stop gracefully (SIGTERM), then SIGKILL after the timeout; the data stays."""
        pid = self.pid()
        if pid is None:
            return
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            log.warning("service.kill_after_timeout", service=self.name, pid=pid, timeout=timeout)
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 10)
        log.info("service.stopped", service=self.name, pid=pid)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        pid = self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 10)

    def restart(self, timeout: float | None = None) -> None:
        self.stop()
        self.start(timeout)

    def _signal(self, pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() != pid:
                return True
            time.sleep(0.1)
        return False

    # -- state ------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of our running process, or None (zombies and reused pids count as gone)."""
        if self._proc is not None and self._proc.poll() is not None:
            return None
        pid = self._read_state().get("pid")
        if not pid:
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or str(self.home) not in " ".join(proc.cmdline() + [proc.cwd()]):
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return pid

    def status(self) -> ServiceStatus:
        pid = self.pid()
        rss = None
        if pid is not None:
            try:
                proc = psutil.Process(pid)
                # The whole tree: a JVM started by a Python driver (Spark) counts too.
                rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            except psutil.NoSuchProcess:
                pid = None
        return ServiceStatus(self.name, pid, dict(self.ports), pid is not None,
                             pid is not None and self.check_health(), rss)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file.exists():
            return "(no log yet)"
        with open(self.log_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _read_state(self) -> dict:
        return read_json(self.state_file)

    def _write_state(self, state: dict) -> None:
        self.state_file.write_text(json.dumps(state))
