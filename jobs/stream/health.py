"""Is the stream keeping up? One rule over the `pipeline_health` document, for every reader:
`userpipeline status`, the dashboard and the operator's `StreamJob` condition.

A stuck stream cannot report itself, so the verdict is made by the reader from what the stream last
wrote: when the last batch completed, the lag it saw, and whether its current batch keeps failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

OK, WAITING, STALLED = "ok", "waiting", "stalled"
# No completed batch for this long while records wait counts as stalled.
STALL_SECONDS = 120.0


@dataclass(frozen=True)
class StreamHealth:
    state: str  # OK | WAITING (no batch has completed yet) | STALLED
    reason: str  # one sentence a person can act on; empty when OK

    @property
    def stalled(self) -> bool:
        return self.state == STALLED


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def assess(doc: Mapping[str, Any] | None, now: datetime | None = None,
           stall_seconds: float = STALL_SECONDS) -> StreamHealth:
    """The verdict on the stream from its health document (None: the stream never completed a batch)."""
    now = now or datetime.now(timezone.utc)
    if not doc:
        return StreamHealth(WAITING, "no batch has completed yet")
    failing = doc.get("failing") or {}
    failing_since = _aware(failing.get("since"))
    if failing_since is not None and (now - failing_since).total_seconds() >= stall_seconds:
        return StreamHealth(STALLED, f"batch {failing.get('batchId')} keeps failing since {failing_since:%H:%M:%S} UTC: "
                                     f"{failing.get('error', 'unknown error')}")
    last = _aware(doc.get("lastBatchAt"))
    lag = doc.get("lagRecords") or 0
    if last is not None and lag > 0 and (now - last).total_seconds() >= stall_seconds:
        return StreamHealth(STALLED, f"no batch completed for {(now - last).total_seconds():.0f}s "
                                     f"while {lag} records wait in Kafka")
    return StreamHealth(OK, "")
