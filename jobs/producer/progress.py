"""What the producer tells the outside world: a progress file, an acked-keys log, Prometheus metrics.

The progress file (JSON, replaced atomically) is what `userpipeline status` shows and what a restarted
synthetic producer resumes from: `nextIndex` is the lowest record index not yet acknowledged.
The acked log has one line per acknowledged record, `<index>\\t<key>` (key empty when null), written
with one system call per line so it survives a SIGKILL; keys are uuids, never personal data.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from prometheus_client import Counter, Gauge

PRODUCED = Counter("userpipeline_producer_records_produced", "Records handed to the Kafka client")
ACKED = Counter("userpipeline_producer_records_acked", "Records acknowledged by Kafka (acks=all)")
FAILED = Counter("userpipeline_producer_records_failed", "Records Kafka did not acknowledge")
API_FAILURES = Counter("userpipeline_producer_api_failures", "randomuser API batches that failed after all retries")
RATE = Gauge("userpipeline_producer_rate_per_second", "Configured publishing rate")
PAUSED = Gauge("userpipeline_producer_paused", "1 while spec.producer.paused is true")
OUTSTANDING = Gauge("userpipeline_producer_outstanding", "Records sent but not yet acknowledged")


@dataclass
class Progress:
    source: str = "synthetic"
    seed: int | None = None
    produced: int = 0
    acked: int = 0
    failed: int = 0
    nextIndex: int = 0  # noqa: N815 - JSON field name
    outstanding: int = 0  # handed to the Kafka client, not yet acknowledged
    oldestUnackedSeconds: float = 0.0  # noqa: N815
    secondsWithoutAcks: float = 0.0  # noqa: N815 - records wait and no delivery report came for this long
    clientRecoveries: int = 0  # noqa: N815 - times a silent Kafka client was replaced
    ratePerSecond: float = 0.0  # noqa: N815
    paused: bool = False
    state: str = "starting"
    updatedAt: str = field(default_factory=lambda: _now())  # noqa: N815

    @classmethod
    def load(cls, path: Path | None) -> Progress | None:
        if path is None or not path.exists():
            return None
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        self.updatedAt = _now()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Watermark:
    """Lowest index not yet acknowledged, given acknowledgements in any order."""

    def __init__(self, start: int):
        self.next = start
        self._ahead: set[int] = set()

    def ack(self, index: int) -> None:
        if index < self.next:
            return
        self._ahead.add(index)
        while self.next in self._ahead:
            self._ahead.remove(self.next)
            self.next += 1


class AckLog:
    def __init__(self, path: Path | None):
        self._file: IO[str] | None = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115

    def write(self, index: int, key: bytes | None) -> None:
        if self._file is not None:
            self._file.write(f"{index}\t{key.decode() if key else ''}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_ack_log(path: Path) -> list[tuple[int, str | None]]:
    """(index, key or None) per line of an acked log; a half-written last line is ignored."""
    entries = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        index, sep, key = line.partition("\t")
        if sep and index.isdigit():
            entries.append((int(index), key or None))
    return entries
