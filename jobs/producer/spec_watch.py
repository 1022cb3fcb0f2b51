"""Notices changes of the UserPipeline YAML file by polling (mtime, size, then content), without threads."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from userpipeline.operator.spec.model import UserPipeline, load_userpipeline

log = structlog.get_logger()


class SpecWatcher:
    def __init__(self, path: Path, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.interval = interval
        self._clock = clock
        self._checked = clock()
        self._stat = self._stat_of()
        self._digest = self._digest_of()
        self.current: UserPipeline = load_userpipeline(self.path)

    def _stat_of(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _digest_of(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return ""

    def poll(self) -> UserPipeline | None:
        """The new pipeline when the file changed to a valid one since the last call, else None."""
        now = self._clock()
        if now - self._checked < self.interval:
            return None
        self._checked = now
        stat = self._stat_of()
        if stat == self._stat:
            return None
        self._stat = stat
        digest = self._digest_of()
        if digest == self._digest:
            return None
        self._digest = digest
        try:
            pipeline = load_userpipeline(self.path)
        except Exception as exc:  # noqa: BLE001 - any bad edit must keep the producer running
            log.error("producer.spec_invalid_kept_previous", path=str(self.path), error=str(exc).splitlines()[0],
                      hint="fix the YAML; the producer keeps the last valid spec")
            return None
        self.current = pipeline
        return pipeline
