"""Read-only access to the two MongoDB collections the dashboard shows (see docs/data-contract.md).

Only `aggregates` and `pipeline_health` are read: no profile and no identifier of a person is ever
fetched. Every call is bounded by a short server-selection timeout so the page can say quickly that
MongoDB is unreachable instead of hanging.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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
