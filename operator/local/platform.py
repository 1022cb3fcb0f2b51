"""The local platform: every process of the pipeline under one state directory.

`.userpipeline/` (or --state-dir) holds one home per service (kafka/, cassandra/, ferretdb/, and the
pipeline's own processes), plus `secrets/` (the HMAC keys, mode 0600: `hmac.key` the active one,
`retired/<key id>.key` the earlier ones, see `rotate_key`) and `spec.yaml` (a copy of the UserPipeline
the processes were started with, when `up -f` was used).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.stream.health import STALL_SECONDS, StreamHealth, assess
from userpipeline.jobs.stream.pseudonymize import key_id_of
from userpipeline.operator.local.apps import AppService, DashboardApp, ProducerApp, ReconcilerApp, StreamApp
from userpipeline.operator.local.supervisor import SupervisorService
from userpipeline.operator.local.services import (
    CassandraService,
    FerretDBService,
    KafkaService,
    Service,
    ServiceStatus,
)

INFRASTRUCTURE = (KafkaService, CassandraService, FerretDBService)


@dataclass(frozen=True)
class Rotation:
    """What a key rotation did (key ids only)."""

    retired_id: str
    active_id: str
    retired_ids: tuple[str, ...]


def _write_private(path: Path, text: str) -> None:
    """Create a file only its owner can read (its folder too), failing if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def default_state_dir() -> Path:
    return Path(os.environ.get("USERPIPELINE_STATE_DIR", ".userpipeline"))


class LocalPlatform:
    def __init__(self, state_dir: Path | None = None, ports: dict[str, dict[str, int]] | None = None):
        self.state_dir = Path(state_dir or default_state_dir()).resolve()
        ports = ports or {}
        self._ports = ports
        self.kafka = KafkaService(self.state_dir / "kafka", ports.get("kafka"))
        self.cassandra = CassandraService(self.state_dir / "cassandra", ports.get("cassandra"))
        self.ferretdb = FerretDBService(self.state_dir / "ferretdb", ports.get("ferretdb"))
        self.infrastructure: list[Service] = [self.kafka, self.cassandra, self.ferretdb]
        self.supervisor = SupervisorService(self.state_dir / "supervisor", self.state_dir)

    def endpoints(self) -> Endpoints:
        return Endpoints(
            kafka_bootstrap=self.kafka.bootstrap,
            cassandra_hosts=self.cassandra.contact,
            mongo_uri=SecretStr(self.ferretdb.uri),
            hmac_key=SecretStr(key := self.hmac_key()),
            hmac_key_id=key_id_of(key.encode()),
            hmac_retired_keys=SecretStr(json.dumps(retired)) if (retired := self.retired_keys()) else None,
        )

    @property
    def _secrets(self) -> Path:
        return self.state_dir / "secrets"

    def hmac_key(self) -> str:
        """The active pseudonymisation key of this state directory, generated once and kept private."""
        path = self._secrets / "hmac.key"
        if not path.exists():
            _write_private(path, secrets.token_hex(32))
        return path.read_text().strip()

    def retired_keys(self) -> dict[str, str]:
        """The earlier keys, by key id: still matched (erasure, ledger), never used to write."""
        folder = self._secrets / "retired"
        if not folder.is_dir():
            return {}
        return {path.stem: path.read_text().strip() for path in sorted(folder.glob("*.key"))}

    def rotate_key(self) -> Rotation:
        """Make a new active key; the old one joins the retired keys (under its id), so what it made stays matchable.

        The new key is written first under a temporary name, so a crash leaves either the old ring or the new one."""
        old = self.hmac_key()
        old_id = key_id_of(old.encode())
        retired = self._secrets / "retired" / f"{old_id}.key"
        if not retired.exists():
            _write_private(retired, old)
        new = secrets.token_hex(32)
        staged = self._secrets / "hmac.key.new"
        staged.unlink(missing_ok=True)
        _write_private(staged, new)
        os.replace(staged, self._secrets / "hmac.key")
        return Rotation(old_id, key_id_of(new.encode()), tuple(self.retired_keys()))

    # -- the pipeline's own processes, once a UserPipeline file was given -----------------------
    @property
    def _pipeline_file(self) -> Path:
        return self.state_dir / "pipeline.json"

    def spec_path(self) -> Path | None:
        try:
            return Path(json.loads(self._pipeline_file.read_text())["spec"])
        except (OSError, ValueError, KeyError):
            return None

    def use_spec(self, spec_path: Path) -> None:
        """Run the pipeline from this UserPipeline file from now on (validated first)."""
        from userpipeline.operator.spec import load_userpipeline

        spec_path = Path(spec_path).resolve()
        load_userpipeline(spec_path)
        previous = self.spec_path()
        if previous is not None and previous != spec_path:
            for app in self.apps():
                app.stop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._pipeline_file.write_text(json.dumps({"spec": str(spec_path)}))

    def apps(self) -> list[AppService]:
        spec = self.spec_path()
        if spec is None:
            return []
        endpoints = self.endpoints()
        return [cls(self.state_dir / cls.name, spec, endpoints, self._ports.get(cls.name))
                for cls in (ProducerApp, StreamApp, ReconcilerApp, DashboardApp)]

    def services(self) -> list[Service]:
        return [*self.infrastructure, *self.apps()]

    def by_name(self, name: str) -> Service:
        for service in self.services():
            if service.name == name:
                return service
        raise KeyError(f"no service named {name!r}; choose from {', '.join(s.name for s in self.services())}")

    def up(self, progress: Callable[[str], None] | None = None, supervise: bool = True) -> dict[str, float]:
        """Start what is not running (restarting crashed services), wait for health; seconds per service.

        The supervisor pauses meanwhile (both would start the same services) and, with `supervise`,
        runs again afterwards to restart whatever dies later.
        """
        self.supervisor.stop()
        services = self.services()
        for service in services:
            if service.pid() is None:
                service.check_ports()
        timings = {}
        for service in services:
            if progress:
                progress(f"starting {service.name}")
            timings[service.name] = _timed(lambda s=service: s.start(progress=progress))
        if supervise:
            timings[self.supervisor.name] = _timed(lambda: self.supervisor.start(progress=progress))
        return timings

    def down(self, progress: Callable[[str], None] | None = None) -> None:
        for service in [self.supervisor, *reversed(self.services())]:
            if progress:
                progress(f"stopping {service.name}")
            service.stop()

    def status(self) -> list[ServiceStatus]:
        """Every service; the supervisor too when it runs (started by `up`, absent with `--no-supervise`)."""
        supervisor = [self.supervisor] if self.supervisor.pid() is not None else []
        return [service.status() for service in [*self.services(), *supervisor]]

    def restarts(self) -> dict[str, int]:
        """How many times the supervisor restarted each service (kept across supervisor restarts)."""
        return self.supervisor.restarts()

    def health_document(self) -> dict | None:
        """The stream's `pipeline_health` document; None when FerretDB does not answer (or has none yet: {})."""
        try:
            with self.ferretdb.client(serverSelectionTimeoutMS=1000) as client:
                return client[self.endpoints().mongo_database]["pipeline_health"].find_one({"_id": "stream"}) or {}
        except Exception:  # noqa: BLE001 - status must show what it can, whatever the store does
            return None

    def stream_health(self, stall_seconds: float = STALL_SECONDS) -> StreamHealth | None:
        """The verdict on the stream from its health document; None without a pipeline or a reachable FerretDB."""
        if self.spec_path() is None:
            return None
        doc = self.health_document()
        return None if doc is None else assess(doc, stall_seconds=stall_seconds)

    def progress(self) -> dict[str, object]:
        """Records produced (producer's progress file) and processed/rejected/lag (stream's health document)."""
        if self.spec_path() is None:
            return {}
        numbers: dict[str, object] = {}
        producer = next(app for app in self.apps() if isinstance(app, ProducerApp))
        numbers.update({k: v for k, v in producer.progress().items()
                        if k in ("produced", "acked", "failed", "outstanding", "secondsWithoutAcks")})
        health = self.health_document() or {}
        for key in ("processed", "rejected", "filtered", "lagRecords", "freshnessSeconds", "recordsPerSecond"):
            if key in health:
                numbers[key] = health[key]
        return numbers


def _timed(fn: Callable[[], None]) -> float:
    import time

    started = time.monotonic()
    fn()
    return time.monotonic() - started
