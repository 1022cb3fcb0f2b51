"""Profile expiry, exact: the stream removes each profile when its retention has passed and subtracts it once.

A profile expires `spec.retention.profiles` after the Kafka timestamp of its stored version (its
`event_time`): a deterministic instant that a re-send of the same record or a replay cannot move. The
stream's process runs `Expiry.run` on a timer (every `interval_seconds`: a hundredth of the retention,
1 s to 1 h), under the same lock as the micro-batches, so expiry and batches never interleave: a batch's
deltas are always computed against a table no expiry is changing, and the other way round. One run:

0. Complete any expiry journal an earlier run left unfinished (steps 4-6 are idempotent). Skip the run
   while a micro-batch journal is unfinished (a batch that failed and stopped the query resumes against
   the table it journaled).
1. Mark the run in flight (`pipeline_health/inFlight`, as a batch does, so `userpipeline erase` waits for
   it) and read the erasure ledger: rows of people in it are left to the erasure.
2. Select up to `MAX_ROWS` stored versions with `event_time <= now - retention` (one scan of the table).
3. Insert `expiry_journal/<run id>` with those versions and their contribution, negated, BEFORE deleting.
4. Delete each version `USING TIMESTAMP` of its own write (a newer version stays; none can be written
   meanwhile: the lock), 5. apply the deltas, each document guarded by `appliedExpiry != <run id>`,
   6. write the audit record (id = run id, once), mark the journal done, clear the in-flight mark.

A crash after step 3 leaves the journal unfinished: the stream completes it when it starts (in
`BatchProcessor.bind`, before any batch) or at the next run. Nothing else deletes the rows meanwhile:
the Cassandra TTL ends TTL_MARGIN_SECONDS later (sinks/cassandra.py). A record that arrives already
expired is never stored (deltas.plan_batch), so the rows and the aggregates agree at every step.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict

import structlog
from pymongo import UpdateOne

from userpipeline.jobs import audit
from userpipeline.jobs.stream.deltas import Delta, Stored, dimension_keys, subtract
from userpipeline.jobs.stream.sinks.cassandra import TABLE, ProfileStore
from userpipeline.jobs.stream.sinks.mongo import AggregateStore

log = structlog.get_logger()

COLLECTION = "expiry_journal"
MAX_ROWS = 20_000  # per run; more are left to the next run
FIRST_RUN_SECONDS = 5.0


def interval_seconds(retention_seconds: int) -> float:
    """A hundredth of the retention, 1 s to 1 h: a profile outlives its retention by at most 1 % (each run
    scans the table, so not more often than needed)."""
    return min(3600.0, max(1.0, retention_seconds / 100))


def contribution(rows: list[Stored]) -> list[Delta]:
    """The rows' contribution to each aggregate document, negated."""
    added = [Delta(dim, key, 1, row.age) for row in rows for dim, key in dimension_keys(row)]
    return subtract([], added)


class Expiry:
    def __init__(self, profiles: ProfileStore, aggregates: AggregateStore, retention_seconds: int,
                 is_erased: Callable[[], Callable[[str, str | None], bool]], retention_text: str = ""):
        self.profiles = profiles
        self.aggregates = aggregates
        self.retention_seconds = retention_seconds
        self.retention_text = retention_text or f"{retention_seconds}s"
        self.is_erased = is_erased  # loads the ledger; returns a test of (user id, email hash)
        self.journal = aggregates.aggregates.database[COLLECTION]

    def complete_unfinished(self) -> int:
        done = 0
        for doc in list(self.journal.find({"done": False})):
            log.info("expiry.resumed", run_id=doc["_id"])
            self._complete(doc)
            done += 1
        return done

    def run(self, now_ms: int | None = None) -> int:
        """One expiry run (the caller holds the batch lock); returns the number of profiles removed."""
        self.complete_unfinished()
        if self.aggregates.unfinished_journals():
            log.info("expiry.skipped", reason="a micro-batch is unfinished")
            return 0
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff_ms = now_ms - self.retention_seconds * 1000
        run_id = uuid.uuid4().hex
        token = f"expiry:{run_id}"
        self.aggregates.mark_in_flight(token)
        try:
            erased = self.is_erased()
            rows = [row for row, email in self.profiles.expired(cutoff_ms, MAX_ROWS) if not erased(row.user_id, email)]
            if not rows:
                return 0
            doc = {"_id": run_id, "at": dt.datetime.now(dt.timezone.utc), "cutoffMs": cutoff_ms, "rows": len(rows),
                   "versions": [f"{row.event_time_ms}:{row.user_id}" for row in rows],
                   "deltas": [asdict(d) for d in contribution(rows)], "done": False}
            self.journal.insert_one(doc)
            self._complete(doc)
            return len(rows)
        finally:
            self.aggregates.clear_in_flight(token)

    def _complete(self, doc: dict) -> None:
        run_id = doc["_id"]
        versions = [(text.split(":", 1)[1], int(text.split(":", 1)[0])) for text in doc["versions"]]
        self.profiles.delete(versions)
        deltas = [Delta(**d) for d in doc["deltas"]]
        now = dt.datetime.now(dt.timezone.utc)
        if deltas:
            self.aggregates.aggregates.bulk_write([
                UpdateOne({"_id": d.doc_id, "appliedExpiry": {"$ne": run_id}}, {
                    "$inc": {"count": d.count, "ageSum": d.age_sum}, "$set": {"appliedExpiry": run_id, "updatedAt": now}})
                for d in deltas], ordered=True)
        db = self.journal.database
        at = doc["at"] if doc["at"].tzinfo else doc["at"].replace(tzinfo=dt.timezone.utc)
        if db[audit.COLLECTION].find_one({"_id": run_id}, {"_id": 1}) is None:  # once, also when resumed
            cutoff = dt.datetime.fromtimestamp(doc["cutoffMs"] / 1000, dt.timezone.utc)
            audit.write(db, audit.AuditRecord(
                action="expire", store=f"cassandra:{TABLE}", count=doc["rows"], at=at, id=run_id,
                rule={"retention": self.retention_text, "cutoff": cutoff, "field": "event_time (Kafka timestamp)",
                      "aggregatesAdjusted": len(deltas)}))
        self.journal.update_one({"_id": run_id}, {"$set": {"done": True, "aggregatesAdjusted": len(deltas)},
                                                  "$unset": {"versions": "", "deltas": ""}})
        log.info("expiry.done", run_id=run_id, profiles_removed=doc["rows"], aggregates_adjusted=len(deltas))


class ExpiryTimer:
    """Runs `Expiry.run` every `interval` seconds under `lock` (the batch lock) until stopped."""

    def __init__(self, expiry: Expiry, lock: threading.Lock, interval: float):
        self.expiry, self.lock, self.interval = expiry, lock, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="userpipeline-expiry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        wait = min(self.interval, FIRST_RUN_SECONDS)  # soon after a start: a stream restarted often still expires
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                with self.lock:
                    if self._stop.is_set():
                        return
                    if self.expiry.run() >= MAX_ROWS:  # more are waiting: again soon (batches run in between)
                        wait = FIRST_RUN_SECONDS
            except Exception as exc:  # noqa: BLE001 - the next run retries; the journal keeps it exact
                log.warning("expiry.failed", error=type(exc).__name__, detail=str(exc)[:200])

    def stop(self) -> None:
        self._stop.set()
        with self.lock:  # a run in progress finishes first
            pass
        self._thread.join(timeout=30)
