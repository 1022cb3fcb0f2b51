"""Read-only access to the two MongoDB collections the dashboard shows (see docs/data-contract.md).

Only `aggregates` and `pipeline_health` are read: no profile and no identifier of a person is ever
fetched. Every call is bounded by a short server-selection timeout so the page can say quickly that
MongoDB is unreachable instead of hanging.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from pymongo import MongoClient
from pymongo.errors import PyMongoError

BOUNDED_DIMENSIONS = ("total", "nationality", "gender", "ageBand")  # a few hundred keys at most
DIMENSIONS = (*BOUNDED_DIMENSIONS, "emailDomain")
FIELDS = {"_id": 0, "dimension": 1, "key": 1, "count": 1, "ageSum": 1, "updatedAt": 1}


class StoreUnavailable(RuntimeError):
    """MongoDB could not be read; the message says why (no credentials in it)."""


@dataclass(frozen=True)
class Group:
    key: str
    count: int
    age_sum: int

    @property
    def average_age(self) -> float | None:
        return self.age_sum / self.count if self.count else None


@dataclass(frozen=True)
class Snapshot:
    groups: dict[str, list[Group]] = field(default_factory=dict)
    health: dict[str, Any] | None = None
    updated_at: datetime | None = None

    @property
    def empty(self) -> bool:
        return not any(self.groups.values()) and self.health is None

    def dimension(self, name: str) -> list[Group]:
        return self.groups.get(name, [])


def as_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def snapshot_from_documents(aggregates: list[dict[str, Any]], health: dict[str, Any] | None) -> Snapshot:
    """Build a Snapshot from raw documents; skips zero counts and unknown dimensions."""
    groups: dict[str, list[Group]] = defaultdict(list)
    stamps: list[datetime] = []
    for doc in aggregates:
        count = int(doc.get("count") or 0)
        if doc.get("dimension") not in DIMENSIONS or count <= 0:
            continue
        groups[doc["dimension"]].append(Group(str(doc.get("key", "")), count, int(doc.get("ageSum") or 0)))
        if stamp := as_utc(doc.get("updatedAt")):
            stamps.append(stamp)
    if health and (stamp := as_utc(health.get("lastBatchAt"))):
        stamps.append(stamp)
    return Snapshot(dict(groups), health, max(stamps, default=None))


def _describe(error: PyMongoError) -> str:
    # Keep the cause; drop pymongo's timeout settings and topology dump.
    text = str(error).split(" (configured timeouts")[0].split(", Timeout:")[0].split(" Topology Description")[0]
    return f"{type(error).__name__}: {text[:300]}"


class AggregateStore:
    """A lazily connected, read-only view of the aggregates database."""

    def __init__(self, uri: str, database: str, timeout_ms: int = 1500) -> None:
        self._client: MongoClient[dict[str, Any]] = MongoClient(
            uri,
            connect=False,
            appname="userpipeline-dashboard",
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms * 2,
        )
        self._db = self._client[database]

    def snapshot(self, top_domains: int = 10, k: int = 1) -> Snapshot:
        """All groups of the bounded dimensions, but only the `top_domains` biggest email domains of at
        least `k` users: their number grows with the data, and a refresh must not."""
        aggregates = self._db["aggregates"]
        try:
            docs = list(aggregates.find({"dimension": {"$in": list(BOUNDED_DIMENSIONS)}, "count": {"$gt": 0}}, FIELDS))
            docs += aggregates.find({"dimension": "emailDomain", "count": {"$gte": max(k, 1)}}, FIELDS).sort(
                [("count", -1), ("key", 1)]).limit(top_domains)
            health = self._db["pipeline_health"].find_one({"_id": "stream"}, {"_id": 0})
        except PyMongoError as error:
            raise StoreUnavailable(_describe(error)) from error
        return snapshot_from_documents(docs, health)

    def ping(self) -> str | None:
        """None when MongoDB answers, else what is wrong."""
        try:
            self._client.admin.command("ping")
        except PyMongoError as error:
            return _describe(error)
        return None

    def close(self) -> None:
        self._client.close()


# -- reads off the request path ------------------------------------------------------------------


class SnapshotSource(Protocol):
    def snapshot(self, top_domains: int = 10, k: int = 1) -> Snapshot: ...


@dataclass(frozen=True)
class Reading:
    """One read of the store: a snapshot, or why there is none; `at` is when the read finished."""

    snapshot: Snapshot | None
    error: str | None
    at: datetime
    monotonic: float


class SnapshotPoller:
    """Reads the store every `interval` seconds in a background thread; a page refresh takes the latest read.

    A read costs what the store costs (FerretDB scans the whole `aggregates` collection, so it grows with
    the number of email domains), but no page refresh waits for it, and N open pages cost one read per
    interval per worker instead of N. The first refresh of a process, and any refresh after the reader fell
    behind by `stale_after` seconds (a hung or dead thread), reads in the request instead: never older data
    than that is shown as current.
    """

    def __init__(self, store: SnapshotSource, interval: float, *, top_domains: int = 10, k: int = 1,
                 stale_after: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._interval = interval
        self._args = (top_domains, k)
        self._stale_after = stale_after if stale_after is not None else 3 * interval + 5
        self._clock = clock
        self._latest: Reading | None = None
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def read(self) -> Reading:
        """Read the store now (one reader at a time) and keep the result."""
        with self._read_lock:
            try:
                snapshot, error = self._store.snapshot(*self._args), None
            except StoreUnavailable as exc:
                snapshot, error = None, str(exc)
            reading = Reading(snapshot, error, datetime.now(timezone.utc), self._clock())
            self._latest = reading
            return reading

    def latest(self) -> Reading:
        """The newest reading; read in the caller when there is none yet or the reader fell behind."""
        self._ensure_thread()
        reading = self._latest
        if reading is None or self._clock() - reading.monotonic > self._stale_after:
            return self.read()
        return reading

    def _ensure_thread(self) -> None:
        # Started lazily and per process: a thread does not survive a fork (gunicorn workers).
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="dashboard-snapshot-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.read()

    def close(self) -> None:
        self._stop.set()
