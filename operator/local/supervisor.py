"""Keeps every local service up without a manual `userpipeline up`: the supervisor process.

    python -m userpipeline.operator.local.supervisor --state-dir .userpipeline

`userpipeline up` starts it (unless `--no-supervise`); `userpipeline down` stops it first. Every
`interval` seconds it looks for services whose process is gone (a crash, an OOM kill, a SIGKILL) and
starts them again in dependency order (Kafka, Cassandra, FerretDB, then the pipeline's own processes),
waiting between attempts for a service that keeps failing (exponential backoff, at most `max_backoff`).
Each restart is logged and counted in `restarts.json`, which `userpipeline status` shows.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated

import psutil
import structlog
import typer

from userpipeline.jobs.logs import configure_logging
from userpipeline.operator.local.services.base import Service, ServiceError, ServiceStatus, read_json

log = structlog.get_logger()


@dataclass
class Record:
    """What the supervisor did to one service."""

    restarts: int = 0
    failures: int = 0  # restart attempts that did not bring it back
    lastRestartAt: float | None = None  # noqa: N815 - JSON field names
    lastError: str | None = None  # noqa: N815
    nextAttemptAt: float = 0.0  # noqa: N815


@dataclass
class Ledger:
    services: dict[str, Record] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        raw = read_json(path).get("services", {})
        return cls({name: Record(**values) for name, values in raw.items()})

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"services": {k: asdict(v) for k, v in self.services.items()}, "at": time.time()}))
        os.replace(tmp, path)


class SupervisorService(Service):
    """The supervisor as a local service (its own home, log and pid) so `up`, `down` and `status` handle it."""

    name = "supervisor"
    default_ports: dict[str, int] = {}

    def __init__(self, home: Path, state_dir: Path):
        super().__init__(home)
        self.state_dir = Path(state_dir).resolve()

    @property
    def ledger_file(self) -> Path:
        return self.data_dir / "restarts.json"

    def command(self) -> list[str]:
        return [sys.executable, "-P", "-m", "userpipeline.operator.local.supervisor", "--state-dir", str(self.state_dir)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONSAFEPATH": "1", "USERPIPELINE_LOG_FORMAT": "json"}

    def check_health(self) -> bool:
        return self.pid() is not None and self.ledger_file.exists()

    def restarts(self) -> dict[str, int]:
        return {name: record.restarts for name, record in Ledger.load(self.ledger_file).services.items()}

    def status(self) -> ServiceStatus:
        """Its own memory only: the services it restarted are its children but not part of it."""
        status = super().status()
        try:
            return replace(status, rss_bytes=psutil.Process(status.pid).memory_info().rss) if status.pid else status
        except psutil.NoSuchProcess:
            return status


class Supervisor:
    def __init__(self, state_dir: Path, interval: float = 2.0, max_backoff: float = 60.0):
        from userpipeline.operator.local.platform import LocalPlatform

        self.platform = LocalPlatform(state_dir)
        self.ledger_file = self.platform.supervisor.ledger_file
        self.ledger = Ledger.load(self.ledger_file)
        self.interval = interval
        self.max_backoff = max_backoff
        self.stopping = threading.Event()

    def run(self) -> None:
        self.ledger_file.parent.mkdir(parents=True, exist_ok=True)
        self.ledger.write(self.ledger_file)
        log.info("supervisor.started", state_dir=str(self.platform.state_dir), interval=self.interval)
        while not self.stopping.is_set():
            self.tick()
            self.stopping.wait(self.interval)
        log.info("supervisor.stopped")

    def tick(self) -> None:
        """Restart, in dependency order, every service whose process is gone and whose backoff has passed."""
        _reap_children()
        for service in self.platform.services():
            if self.stopping.is_set():
                return
            if service.pid() is None:
                self._revive(service, self.ledger.services.setdefault(service.name, Record()))
        self.ledger.write(self.ledger_file)

    def _revive(self, service: Service, record: Record) -> None:
        now = time.time()
        if now < record.nextAttemptAt:
            return
        log.warning("supervisor.service_down", service=service.name, restarts=record.restarts)
        try:
            service.start()
        except ServiceError as exc:
            if service.pid() is not None:  # it runs but is slow to answer (a loaded machine): started all the same
                log.warning("supervisor.restart_slow", service=service.name, error=str(exc)[:300])
                self._restarted(service, record, now)
                return
            record.failures += 1
            record.lastError = str(exc)[:500]
            backoff = min(self.max_backoff, 2.0 ** record.failures)
            record.nextAttemptAt = time.time() + backoff
            log.error("supervisor.restart_failed", service=service.name, error=record.lastError, retry_in_seconds=backoff,
                      hint=f"see `userpipeline logs {service.name}`")
            return
        self._restarted(service, record, now)

    def _restarted(self, service: Service, record: Record, began: float) -> None:
        record.restarts += 1
        record.failures = 0
        record.lastError = None
        record.lastRestartAt = time.time()
        record.nextAttemptAt = 0.0
        self.ledger.write(self.ledger_file)
        log.warning("supervisor.service_restarted", service=service.name, restarts=record.restarts,
                    seconds=round(time.time() - began, 1))


def _reap_children() -> None:
    """Collect the exit status of services this process started and that died: no zombies pile up."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


app = typer.Typer(add_completion=False, help="Restart local userpipeline services that died.")


@app.command()
def main(
    state_dir: Annotated[Path, typer.Option(help="The state directory of `userpipeline up`.")],
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between two checks.")] = 2.0,
    max_backoff: Annotated[float, typer.Option(min=1, help="Longest wait between two attempts on a failing service.")] = 60.0,
) -> None:
    configure_logging()
    supervisor = Supervisor(state_dir, interval, max_backoff)

    def stop(signum: int, _frame: object) -> None:
        log.info("supervisor.stop_requested", signal=signal.Signals(signum).name)
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.run()


if __name__ == "__main__":
    app()
