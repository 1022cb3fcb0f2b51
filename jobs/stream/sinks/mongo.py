"""MongoDB side of a micro-batch: the batch journal, guarded aggregate deltas and the health document.

Only single-document updates with `$inc`/`$set`/`$setOnInsert`, `$ne` filters and `_id` lookups:
what both MongoDB and FerretDB (no transactions) accept. Every write is guarded by the batch token
(`<query id>:<batch id>`), so applying the same batch twice changes nothing; see job.py for why the
whole sequence is exact under crashes and replays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from pymongo import MongoClient, UpdateOne
from pymongo.errors import DuplicateKeyError

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.erasure import ledger
from userpipeline.jobs.stream.deltas import Delta

AGGREGATES, HEALTH, JOURNAL = "aggregates", "pipeline_health", "batch_journal"
HEALTH_ID = "stream"
IN_FLIGHT_ID = "inFlight"  # in pipeline_health: the batch being processed, for erase


@dataclass(frozen=True)
class BatchCounts:
    records: int = 0
    rejected: int = 0
    filtered: int = 0
    valid: int = 0
    erased: int = 0  # valid records of people in the erasure ledger: neither stored nor counted
    expired: int = 0  # valid records already past the profile retention when they arrived: not stored


@dataclass(frozen=True)
class SinkRejection:
    """A valid record Cassandra refused: dead-lettered as `sink_rejected`, its aggregates not applied."""

    partition: int
    offset: int
    detail: str


@dataclass(frozen=True)
class Journal:
    """What a batch decided before it changed anything: re-runs of the batch reuse it as is.

    `writes_done` is set once the Cassandra writes were tried, together with the deltas and counts
    corrected for the rows Cassandra refused (`sink_rejected`)."""

    token: str
    batch_id: int
    as_of: date
    deltas: list[Delta]
    counts: BatchCounts
    dlq_done: bool = False
    done: bool = False
    writes_done: bool = False
    sink_rejected: tuple[SinkRejection, ...] = ()
    # (partition, offset) of the valid records left out because their person is in the erasure ledger:
    # a resumed batch leaves out exactly these, whatever the ledger holds by then.
    erased: tuple[tuple[int, int], ...] = ()
    # The batch's clock (ms since the epoch): records at or before asOfMs - retention arrive expired.
    as_of_ms: int = 0
    # The highest offset per partition counted before this batch: records at or below it were processed
    # by an earlier batch (a replay after a lost checkpoint) and are skipped entirely. `topic` is
    # "<name>/<topic id>" (AggregateStore.high_water).
    high_water: dict[int, int] = field(default_factory=dict)
    topic: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.token, "batchId": self.batch_id, "asOf": self.as_of.isoformat(), "asOfMs": self.as_of_ms,
                "highWater": {str(p): o for p, o in self.high_water.items()}, "topic": self.topic,
                "deltas": [asdict(d) for d in self.deltas], "counts": asdict(self.counts),
                "dlqDone": self.dlq_done, "done": self.done, "writesDone": self.writes_done,
                "sinkRejected": [asdict(r) for r in self.sink_rejected], "erased": [f"{p}:{o}" for p, o in self.erased],
                "createdAt": _now()}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Journal:
        return cls(doc["_id"], doc["batchId"], date.fromisoformat(doc["asOf"]), [Delta(**d) for d in doc["deltas"]],
                   BatchCounts(**doc["counts"]), doc.get("dlqDone", False), doc.get("done", False),
                   doc.get("writesDone", False), tuple(SinkRejection(**r) for r in doc.get("sinkRejected") or ()),
                   tuple(_position(e) for e in doc.get("erased") or ()), doc.get("asOfMs", 0),
                   {int(p): o for p, o in (doc.get("highWater") or {}).items()}, doc.get("topic", ""))


def _position(text: str) -> tuple[int, int]:
    """`"<partition>:<offset>"`: FerretDB stores no nested arrays."""
    partition, offset = text.split(":")
    return int(partition), int(offset)


@dataclass(frozen=True)
class Health:
    batch_records: int
    batch_seconds: float
    lag_records: int | None
    freshness_seconds: float | None


def _now() -> datetime:
    return datetime.now(timezone.utc)


class AggregateStore:
    def __init__(self, endpoints: Endpoints):
        self.client: MongoClient = MongoClient(endpoints.mongo_uri.get_secret_value(), tz_aware=True,
                                               serverSelectionTimeoutMS=10_000)
        db = self.client[endpoints.mongo_database]
        self.aggregates, self.health, self.journal = db[AGGREGATES], db[HEALTH], db[JOURNAL]
        self.ledger = db[ledger.COLLECTION]

    def mark_in_flight(self, token: str) -> None:
        """Document `inFlight` `{token, since}`, written before the batch reads the erasure ledger: `userpipeline
        erase` writes the ledger first and then waits for a batch it sees in flight, so either the batch sees
        the ledger entry or the erasure sees the batch (and deletes only after the batch finished)."""
        self.health.update_one({"_id": IN_FLIGHT_ID}, {"$set": {"token": token, "since": _now()}}, upsert=True)

    def clear_in_flight(self, token: str) -> None:
        self.health.delete_one({"_id": IN_FLIGHT_ID, "token": token})

    def erased(self) -> ledger.Erased:
        return ledger.Erased.load(self.ledger)

    def high_water(self, topic: str) -> dict[int, int]:
        """The highest offset per partition of the raw topic that a finished batch counted; `topic` is
        "<name>/<topic id>": marks of another topic (or of a deleted one of the same name) do not count."""
        doc = (self.health.find_one({"_id": HEALTH_ID}, {"highWater": 1}) or {}).get("highWater") or {}
        if doc.get("topic") != topic:
            return {}
        return {int(p): o for p, o in (doc.get("offsets") or {}).items()}

    def unfinished_journals(self) -> list[str]:
        return [doc["_id"] for doc in self.journal.find({"done": False}, {"_id": 1})]

    def find_journal(self, token: str) -> Journal | None:
        doc = self.journal.find_one({"_id": token})
        return Journal.from_doc(doc) if doc else None

    def create_journal(self, journal: Journal) -> Journal:
        try:
            self.journal.insert_one(journal.to_doc())
        except DuplicateKeyError:  # another attempt got there first: its decisions stand
            existing = self.find_journal(journal.token)
            assert existing is not None
            return existing
        return journal

    def record_writes(self, journal: Journal) -> None:
        """The Cassandra writes were tried: keep the corrected deltas and counts, in one document update."""
        self.journal.update_one({"_id": journal.token}, {"$set": {
            "deltas": [asdict(d) for d in journal.deltas], "counts": asdict(journal.counts),
            "sinkRejected": [asdict(r) for r in journal.sink_rejected], "writesDone": True}})

    def mark_dead_letters_sent(self, token: str) -> None:
        self.journal.update_one({"_id": token}, {"$set": {"dlqDone": True}})

    def apply(self, journal: Journal) -> None:
        """Apply each delta unless this batch already did: the `appliedBatch` guard makes it once per document."""
        if not journal.deltas:
            return
        now = _now()
        ops: list[UpdateOne] = []
        for delta in journal.deltas:
            # `updatedAt` now, before the guarded $inc: the purge deletes only empty documents not updated
            # within the aggregate retention, so it cannot delete this one in between.
            ops.append(UpdateOne({"_id": delta.doc_id}, {"$setOnInsert": {
                "dimension": delta.dimension, "key": delta.key, "count": 0, "ageSum": 0}, "$set": {"updatedAt": now}},
                upsert=True))
            ops.append(UpdateOne({"_id": delta.doc_id, "appliedBatch": {"$ne": journal.token}}, {
                "$inc": {"count": delta.count, "ageSum": delta.age_sum},
                "$set": {"lastBatch": journal.batch_id, "appliedBatch": journal.token, "updatedAt": now}}))
        self.aggregates.bulk_write(ops, ordered=True)

    def record_health(self, journal: Journal, health: Health, seen: dict[int, int] | None = None,
                      topic: str | None = None) -> None:
        """Add the batch's counts once; `seen` (highest offset per partition in the batch) raises the high-water marks."""
        counts = journal.counts
        now = _now()
        high_water = dict(journal.high_water)
        for partition, offset in (seen or {}).items():
            high_water[partition] = max(offset, high_water.get(partition, -1))
        self.health.bulk_write([
            UpdateOne({"_id": HEALTH_ID}, {"$setOnInsert": {"processed": 0, "rejected": 0, "filtered": 0, "erased": 0,
                                                            "expired": 0}}, upsert=True),
            UpdateOne({"_id": HEALTH_ID, "appliedBatch": {"$ne": journal.token}}, {
                "$inc": {"processed": counts.records, "rejected": counts.rejected, "filtered": counts.filtered,
                         "erased": counts.erased, "expired": counts.expired},
                "$set": {
                    "appliedBatch": journal.token, "lastBatchId": journal.batch_id, "lastBatchAt": now,
                    "batchRecords": health.batch_records, "batchSeconds": round(health.batch_seconds, 3),
                    "recordsPerSecond": round(health.batch_records / health.batch_seconds, 1) if health.batch_seconds > 0 else None,
                    "lagRecords": health.lag_records, "freshnessSeconds": health.freshness_seconds,
                    **({"highWater": {"topic": topic, "offsets": {str(p): o for p, o in sorted(high_water.items())}}}
                       if topic else {}),
                }}),
        ], ordered=True)

    def record_failure(self, batch_id: int, error: str) -> None:
        """`failing: {since, batchId, error}` while a batch keeps failing; `since` stays from its first failure."""
        now = _now()
        kept = self.health.update_one({"_id": HEALTH_ID, "failing.batchId": batch_id},
                                      {"$set": {"failing.error": error, "failing.lastAt": now}})
        if kept.matched_count == 0:
            self.health.update_one({"_id": HEALTH_ID}, {"$set": {"failing": {
                "since": now, "lastAt": now, "batchId": batch_id, "error": error}}}, upsert=True)

    def clear_failure(self) -> None:
        self.health.update_one({"_id": HEALTH_ID, "failing": {"$exists": True}}, {"$unset": {"failing": ""}})

    def finish(self, token: str) -> None:
        """Mark the batch done; older journal entries are no longer needed (Spark re-runs only the last batch)."""
        self.journal.update_one({"_id": token}, {"$set": {"done": True}})
        self.journal.delete_many({"_id": {"$ne": token}})

    def close(self) -> None:
        self.client.close()
