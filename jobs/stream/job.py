"""The streaming job: Kafka raw topic -> classify -> Cassandra profiles + MongoDB aggregates + dead letters.

Spark holds no state of its own: the query is stateless (one projection per micro-batch inside
`foreachBatch`), so its checkpoint holds only Kafka offsets and batch ids, never record contents.
Exactness comes from how each micro-batch writes, described in `BatchProcessor`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path

import structlog
from pyspark import StorageLevel
from pyspark.sql import functions as F
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.stream import deltas, expiry, transform
from userpipeline.jobs.stream.lag import LagProbe
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.schema import KAFKA_COLUMNS
from userpipeline.jobs.stream.sinks import deadletter
from userpipeline.jobs.stream.sinks.cassandra import ProfileStore, Refused, describe
from userpipeline.jobs.stream.sinks.mongo import AggregateStore, BatchCounts, Health, Journal, SinkRejection
from userpipeline.operator.spec.durations import parse_duration
from userpipeline.operator.spec.model import UserPipelineSpec

log = structlog.get_logger()

QUERY_NAME = "userpipeline-stream"
BATCH_ATTEMPTS = 8
# More refused rows than this share of a batch's writes (and more than one) is not about the records
# (a table or a setting is wrong): the batch fails, and the health document says so, instead of
# dead-lettering everything.
MAX_REFUSED_SHARE = 0.1


class SinkRefusesBatch(RuntimeError):
    """Cassandra refuses too many rows of a batch for them to be the records' fault."""


@dataclass(frozen=True)
class StreamSettings:
    topic: str
    minimum_age: int
    max_records_per_batch: int
    trigger_seconds: int
    profile_ttl_seconds: int  # the profile retention (expiry.py; the Cassandra TTL is a backstop after it)
    pseudonymize: tuple[str, ...]
    checkpoint: str
    fail_on_data_loss: bool = True

    @property
    def dead_letter_topic(self) -> str:
        return deadletter.dead_letter_topic(self.topic)

    @classmethod
    def from_spec(cls, spec: UserPipelineSpec, checkpoint: str | Path, fail_on_data_loss: bool = True) -> StreamSettings:
        return cls(
            topic=spec.topic.name,
            minimum_age=spec.privacy.minimum_age,
            max_records_per_batch=spec.stream.max_records_per_batch,
            trigger_seconds=parse_duration(spec.stream.trigger_interval),
            profile_ttl_seconds=parse_duration(spec.retention.profiles),
            pseudonymize=tuple(field.value for field in spec.privacy.pseudonymize),
            checkpoint=str(checkpoint),
            fail_on_data_loss=fail_on_data_loss,
        )


# Settings the job picks when whoever launched it (spark-submit, the SparkApplication's sparkConf) did not.
SQL_DEFAULTS = {"spark.sql.shuffle.partitions": "2"}


def build_session(master: str | None, jars: list[str], driver_memory: str = "1g", local_dir: str | None = None) -> SparkSession:
    """A SparkSession for the job; `master`/`jars` None leave them to spark-submit."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers must import userpipeline too
    builder = (SparkSession.builder.appName(QUERY_NAME)
               .config("spark.driver.memory", driver_memory)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.variant.allowDuplicateKeys", "true")
               .config("spark.sql.streaming.stopGracefullyOnShutdown", "true"))
    if master:
        builder = builder.master(master)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    if local_dir:
        builder = builder.config("spark.local.dir", local_dir)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    apply_sql_defaults(spark)
    return spark


def apply_sql_defaults(spark: SparkSession) -> None:
    """SQL_DEFAULTS, except what the launcher set: a builder setting would override the spec's sparkConf."""
    launched = spark.sparkContext.getConf()
    for key, value in SQL_DEFAULTS.items():
        if not launched.contains(key):
            spark.conf.set(key, value)


def read_raw(spark: SparkSession, bootstrap: str, settings: StreamSettings) -> DataFrame:
    return (spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", settings.topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(settings.max_records_per_batch))
            .option("failOnDataLoss", str(settings.fail_on_data_loss).lower())
            .load()
            .select(*KAFKA_COLUMNS))


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def now_ms() -> int:
    return int(time.time() * 1000)


def unseen(batch: DataFrame, high_water: dict[int, int]) -> DataFrame:
    """The batch without the records an earlier batch already counted (offset at or below its partition's mark)."""
    for partition, offset in sorted(high_water.items()):
        batch = batch.where(~((F.col("partition") == partition) & (F.col("offset") <= offset)))
    return batch


class BatchProcessor:
    """The `foreachBatch` function: one micro-batch, written so that crashes and replays leave exact numbers.

    Invariant: after every committed batch, each `aggregates` document equals the GROUP BY of its
    dimension over Cassandra's `profiles`. Spark runs batch B only after B-1 is committed, and after a
    crash re-runs the uncommitted batch with the same id and the same offsets. Batch B (token
    T = "<query id>:<B>"; the query id is kept in the checkpoint, so a new checkpoint never reuses a
    token) runs these steps:

    0. Mark T in flight (`pipeline_health/inFlight`, for `userpipeline erase`). If the journal
       `batch_journal/T` says done, return: everything below already happened. Complete any expiry
       run left unfinished (expiry.py). Leave out the records at or below the high-water mark of their
       partition (`pipeline_health.highWater`, read once and kept in the journal): an earlier batch
       counted them, so a replay after a lost checkpoint stores, counts and dead-letters nothing twice.
    1. Classify the batch (ages on each record's Kafka date); leave out the valid records of people
       in the erasure ledger (read once per batch; a resumed batch leaves out the records its journal
       lists instead, counted as `erased`); keep each user's latest record; read the stored versions of those users
       (Cassandra primary-key lookups: cost proportional to the batch, not to the table). Compute
       the deltas (old contribution out, new one in, for records newer than the stored version) and
       the rows to write; a user whose newest record is a minor, rejected with a valid id, or already
       past the retention (asOfMs - retention) loses its stored version (deleted, subtracted). If no
       journal exists, insert `{_id: T, asOf, asOfMs, highWater, deltas, counts}` BEFORE any
       other write; if one exists, its deltas, counts, `asOfMs` and marks win (ages come from the
       records' own dates, so a re-run after midnight computes the same rows).
    2. Unless the journal says `writesDone`: delete the removed versions (`USING TIMESTAMP` of each
       version: idempotent) and upsert the rows into Cassandra `USING TIMESTAMP` of the
       record (too large batches are split). Rows Cassandra still refuses alone are `sink_rejected`:
       their contribution (computed against their stored version, which they did not replace) is
       subtracted from the journal's deltas and they move from `valid` to `rejected` in its counts;
       the journal takes the corrected deltas and counts with `writesDone` in one update.
    3. If the batch rejected records and the journal does not say so, send the dead letters, then
       record it (a crash in between re-sends them: dead letters are at least once).
    4. Apply each journal delta with `{_id, appliedBatch: {$ne: T}}` -> `$inc` + `$set appliedBatch: T`.
    5. Add the counts to `pipeline_health` under the same `$ne: T` guard, with the new high-water
       marks; 6. mark the journal done and clear the in-flight mark.

    Why a crash anywhere converges: before the journal exists nothing was written, and the re-run
    starts afresh. Once it exists, the deltas are fixed: they were computed from Cassandra as it
    stood after B-1, the state the invariant is about, and re-computing them later would be wrong
    (Cassandra may hold part of B). Step 4's guard applies each document's delta exactly once over
    all runs: no later batch can have moved `appliedBatch` past T, because none starts before B is
    committed. Step 2 is idempotent: a re-run finds each row either still at its old version (so it
    is written, as planned) or already at this very record (written again, unchanged), and a record
    that lost to a newer stored version loses again. A refused row was never written, so its stored
    version is still the one the journal's deltas were computed against, on every run; a row refused
    now but stored by an earlier run counts as written. Steps 4 and 5 are guarded. So after any
    run that reaches step 6, aggregates and Cassandra both reflect exactly batches <= B, and the
    invariant holds. Documents are only touched by `$inc`, never recomputed, so the cost of a batch
    does not grow with the data already stored.

    Choices: the guard is `$ne: T`, not `lastBatch < B`, because a new checkpoint starts again at
    batch 0, which a `<` guard would refuse forever; with `$ne` a fresh checkpoint simply replays the
    topic, and replayed records are not newer than what is stored, so they add nothing. Missing
    documents are first created with `$setOnInsert` (count 0) and the guarded `$inc` runs without
    upsert, so no DuplicateKeyError handling is needed (FerretDB has no transactions). Expiry runs
    between batches under `lock` (expiry.py), never while a batch journal is unfinished. Limit: a
    checkpoint deleted while a batch was half done leaves that batch inexact (logged at start).

    The whole batch is retried (tenacity, ~90 s in all) on errors of Kafka, Cassandra or MongoDB, which
    is safe for the reasons above; after that the query stops, and a restart resumes at this batch.
    Every failed attempt records `failing: {since, batchId, error}` in `pipeline_health` (kept across
    restarts while the same batch fails, removed by the next success), so health.assess can say
    `stalled` while the batch cannot.
    """

    def __init__(self, settings: StreamSettings, endpoints: Endpoints, pseudonymizer: Pseudonymizer,
                 profiles: ProfileStore, aggregates: AggregateStore):
        self.settings = settings
        self.endpoints = endpoints
        self.pseudonymizer = pseudonymizer
        self.profiles = profiles
        self.aggregates = aggregates
        self.lag = LagProbe(endpoints.kafka_bootstrap, settings.topic)
        self.lock = threading.Lock()  # one micro-batch or expiry run at a time
        self.expiry = expiry.Expiry(profiles, aggregates, settings.profile_ttl_seconds, self._erased_test)
        self._query_id: str | None = None
        self._expiry_timer: expiry.ExpiryTimer | None = None
        self._bound = threading.Event()

    def start_expiry(self) -> None:
        self._expiry_timer = expiry.ExpiryTimer(self.expiry, self.lock,
                                                expiry.interval_seconds(self.settings.profile_ttl_seconds))
        self._expiry_timer.start()

    def close(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.stop()
        self.profiles.close()
        self.aggregates.close()

    def bind(self, query: StreamingQuery) -> None:
        self._query_id = str(query.id)
        for token in self.aggregates.unfinished_journals():
            if not token.startswith(f"{self._query_id}:"):
                log.error("stream.unfinished_batch_of_another_checkpoint", token=token,
                          hint="its deltas may be half applied: recompute the aggregates from Cassandra")
        self._bound.set()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        if not self._bound.wait(timeout=60):
            raise RuntimeError("the streaming query did not report its id within 60 s")
        retrying = Retrying(stop=stop_after_attempt(BATCH_ATTEMPTS), wait=wait_exponential(multiplier=1, max=30),
                            reraise=True, before_sleep=self._retrying)
        try:
            with self.lock:
                retrying(self.process, batch, batch_id)
        except Exception as exc:
            self._record_failure(batch_id, exc)
            log.error("stream.batch_failed", batch=batch_id, attempts=BATCH_ATTEMPTS, error=type(exc).__name__,
                      hint="the query stops; a restart resumes at this batch")
            raise
        self._quietly(self.aggregates.clear_failure)

    def _retrying(self, state: RetryCallState) -> None:
        error = state.outcome.exception()
        log.warning("stream.batch_retry", attempt=state.attempt_number, error=type(error).__name__)
        self._record_failure(state.args[1], error)

    def _record_failure(self, batch_id: int, error: BaseException) -> None:
        self._quietly(self.aggregates.record_failure, batch_id, describe(error))

    @staticmethod
    def _quietly(action, *args) -> None:
        """A health write must not replace the batch's own error (MongoDB may be what fails)."""
        try:
            action(*args)
        except Exception as exc:
            log.warning("stream.health_write_failed", error=type(exc).__name__)

    def process(self, batch: DataFrame, batch_id: int) -> None:
        clock = _StepClock()
        token = f"{self._query_id}:{batch_id}"
        self.aggregates.mark_in_flight(token)  # before the erasure ledger is read (see `_process`)
        journal = self.aggregates.find_journal(token)
        if journal is not None and journal.done:
            log.info("stream.batch_already_done", batch=batch_id)
            self.aggregates.clear_in_flight(token)
            return
        if journal is not None:
            log.info("stream.batch_resumed", batch=batch_id, as_of=journal.as_of.isoformat(),
                     writes_done=journal.writes_done, dead_letters_sent=journal.dlq_done)
        else:
            self.expiry.complete_unfinished()  # a crashed expiry run, before this batch reads the table
        as_of = journal.as_of if journal else utc_today()
        as_of_ms = journal.as_of_ms if journal and journal.as_of_ms else now_ms()
        topic = journal.topic if journal else f"{self.settings.topic}/{self.lag.topic_id()}"
        high_water = journal.high_water if journal else self.aggregates.high_water(topic)
        batch = unseen(batch, high_water)
        # In memory only (never spilled to disk): the dead-letter write reuses it instead of re-reading Kafka.
        classified = transform.classify(batch, transform.record_date(), self.settings.minimum_age,
                                        self.pseudonymizer).persist(StorageLevel.MEMORY_ONLY)
        try:
            self._process(batch, classified, token, batch_id, as_of, journal, clock, as_of_ms, high_water, topic)
        finally:
            classified.unpersist()

    def _process(self, batch: DataFrame, classified: DataFrame, token: str, batch_id: int, as_of: date,
                 journal: Journal | None, clock: _StepClock, as_of_ms: int, high_water: dict[int, int],
                 topic: str) -> None:
        rows = classified.select("status", *transform.PROFILE_COLUMNS, *transform.ERASURE_COLUMNS).collect()
        valid = [deltas.Profile(**{c: row[c] for c in transform.PROFILE_COLUMNS}) for row in rows if row.status == transform.VALID]
        removals = [deltas.Removal(row.user_id, row.event_time_ms, row.source_partition, row.source_offset)
                    for row in rows if row.status != transform.VALID and row.user_id is not None]
        left_out = set(journal.erased) if journal else self._erased(rows, removals)
        valid = [p for p in valid if (p.source_partition, p.source_offset) not in left_out]
        removals = [r for r in removals if (r.source_partition, r.source_offset) not in left_out]
        latest = deltas.latest_per_user(valid)
        clock.lap("classify")
        users = sorted({p.user_id for p in latest} | {r.user_id for r in removals})
        plan = deltas.plan_batch(latest, self.profiles.versions(users), removals,
                                 as_of_ms - self.settings.profile_ttl_seconds * 1000)
        cutoff_ms = as_of_ms - self.settings.profile_ttl_seconds * 1000
        counts = _count(rows, len(valid), sum(1 for p in valid if p.event_time_ms <= cutoff_ms))
        clock.lap("lookup")
        if journal is None:
            journal = self.aggregates.create_journal(Journal(token, batch_id, as_of, plan.deltas, counts,
                                                             erased=tuple(sorted(left_out)), as_of_ms=as_of_ms,
                                                             high_water=high_water, topic=topic))
            if journal.as_of != as_of:  # another run of this batch journaled first, on another day: redo with its date
                raise RuntimeError(f"batch {batch_id} was journaled for {journal.as_of} by another run; retrying")
            if set(journal.erased) != left_out:  # ... or before an erasure: redo with its choice
                raise RuntimeError(f"batch {batch_id} was journaled by another run with other erased records; retrying")
        written = 0
        if not journal.writes_done:
            self.profiles.delete([(stored.user_id, stored.event_time_ms) for stored in plan.deletes])
            journal, written = self._write_profiles(journal, plan.writes)
        clock.lap("cassandra")
        if journal.counts.rejected and not journal.dlq_done:
            self._send_dead_letters(batch, classified, journal)
            self.aggregates.mark_dead_letters_sent(token)
        clock.lap("dead_letters")
        self.aggregates.apply(journal)
        clock.lap("aggregates")
        for row in rows:
            self.lag.observe(row.source_partition, row.source_offset)
        newest_ms = max((row.event_time_ms for row in rows), default=None)
        freshness = round(time.time() - newest_ms / 1000, 3) if newest_ms is not None else None
        health = Health(len(rows), clock.total(), self.lag.lag(), freshness)
        seen: dict[int, int] = {}
        for row in rows:
            seen[row.source_partition] = max(row.source_offset, seen.get(row.source_partition, -1))
        self.aggregates.record_health(journal, health, seen, journal.topic)
        self.aggregates.finish(token)
        self.aggregates.clear_in_flight(token)
        clock.lap("health")
        log.info("stream.batch", batch=batch_id, records=counts.records, rejected=journal.counts.rejected,
                 filtered=counts.filtered, erased=journal.counts.erased, expired=journal.counts.expired,
                 removed=len(plan.deletes), written=written, sink_rejected=len(journal.sink_rejected),
                 deltas=len(journal.deltas), seconds=round(clock.total(), 2), lag=health.lag_records, steps=clock.laps)

    def _erased_test(self):
        """The erasure ledger as a test of (user id, email hash), for the expiry run."""
        erased, keys = self.aggregates.erased(), [key for _, key in self.pseudonymizer.ring]
        return lambda user_id, email_hmac: bool(erased) and erased.covers(keys, user_id, (email_hmac,))

    def _erased(self, rows: list, removals: list[deltas.Removal] = ()) -> set[tuple[int, int]]:
        """(partition, offset) of the valid records whose user id or email hash is in the erasure ledger, under
        any key of the ring (jobs/erasure/ledger.py), and of the removals (deltas.Removal) whose user id is: the
        erasure deletes and subtracts those people itself.

        Read once per new batch, after `mark_in_flight`: an erasure that wrote the ledger before this read is
        seen here; one that wrote it after sees this batch in flight and waits for it (jobs/erasure/erase.py).
        A resumed batch does not read it: its journal says which records it left out."""
        erased = self.aggregates.erased()
        if not erased:
            return set()
        keys = [key for _, key in self.pseudonymizer.ring]
        return ({(r.source_partition, r.source_offset) for r in rows if r.status == transform.VALID
                 and erased.covers(keys, r.user_id, (r.email_hmac, *(r.email_hmac_retired or ())))}
                | {(r.source_partition, r.source_offset) for r in removals if erased.covers(keys, r.user_id, ())})

    def _write_profiles(self, journal: Journal, writes: list[deltas.Profile]) -> tuple[Journal, int]:
        """Step 2: write the rows; take the refused ones out of the journal's deltas and counts."""
        result = self.profiles.write(writes)
        refused, removed = self._refusals(result.refused)
        if len(refused) > max(1, MAX_REFUSED_SHARE * len(writes)):
            raise SinkRefusesBatch(
                f"Cassandra refused {len(refused)} of {len(writes)} rows of batch {journal.batch_id} "
                f"(first: {refused[0].error}); check the profiles table and Cassandra's settings")
        counts = journal.counts
        journal = replace(
            journal, deltas=deltas.subtract(journal.deltas, removed), writes_done=True,
            counts=replace(counts, rejected=counts.rejected + len(refused), valid=counts.valid - len(refused)),
            sink_rejected=tuple(SinkRejection(r.profile.source_partition, r.profile.source_offset,
                                              f"Cassandra refused the row: {r.error}") for r in refused))
        self.aggregates.record_writes(journal)
        if refused:
            log.warning("stream.sink_rejected", batch=journal.batch_id, records=len(refused))
        return journal, result.written

    def _refusals(self, refused: list[Refused]) -> tuple[list[Refused], list[deltas.Delta]]:
        """The refusals that stand, and their contributions: each against its stored (never replaced) version.

        A row refused now that Cassandra holds already (an earlier run of the batch wrote it) is not refused."""
        if not refused:
            return [], []
        stored = self.profiles.versions([r.profile.user_id for r in refused])
        standing = [r for r in refused if not deltas.same_record(r.profile, stored.get(r.profile.user_id))]
        removed = [d for r in standing for d in deltas.plan_batch([r.profile], stored).deltas]
        return standing, removed

    def _send_dead_letters(self, batch: DataFrame, classified: DataFrame, journal: Journal) -> None:
        letters = deadletter.dead_letters(classified, self.pseudonymizer)
        if journal.sink_rejected:
            letters = letters.unionByName(deadletter.sink_rejected_letters(
                batch, [(r.partition, r.offset, r.detail) for r in journal.sink_rejected], self.pseudonymizer))
        deadletter.send(letters, self.endpoints.kafka_bootstrap, self.settings.dead_letter_topic)


class _StepClock:
    """Seconds spent per step of a batch, for the batch log line."""

    def __init__(self) -> None:
        self.started = self._last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps[step] = round(now - self._last, 2)
        self._last = now

    def total(self) -> float:
        return time.monotonic() - self.started


def _count(rows: list, kept: int, expired: int = 0) -> BatchCounts:
    """`kept`: the valid records left once the erased people's are taken out; `expired`: those of them
    already past the retention (counted as expired, not valid)."""
    statuses = [row.status for row in rows]
    valid = statuses.count(transform.VALID)
    return BatchCounts(records=len(rows), rejected=statuses.count(transform.REJECTED),
                       filtered=statuses.count(transform.FILTERED), valid=kept - expired, erased=valid - kept,
                       expired=expired)


def start(spark: SparkSession, settings: StreamSettings, endpoints: Endpoints,
          profile_store: type[ProfileStore] = ProfileStore) -> tuple[StreamingQuery, BatchProcessor]:
    """Connect the stores (creating schema as needed) and start the query; the caller awaits or stops it."""
    pseudonymizer = Pseudonymizer.from_endpoints(endpoints, settings.pseudonymize)
    profiles = profile_store(endpoints, settings.profile_ttl_seconds, pseudonymizer.key_id)
    aggregates = AggregateStore(endpoints)
    processor = BatchProcessor(settings, endpoints, pseudonymizer, profiles, aggregates)
    query = (read_raw(spark, endpoints.kafka_bootstrap, settings).writeStream
             .queryName(QUERY_NAME)
             .foreachBatch(processor)
             .option("checkpointLocation", settings.checkpoint)
             .trigger(processingTime=f"{settings.trigger_seconds} seconds")
             .start())
    processor.bind(query)
    processor.start_expiry()
    log.info("stream.started", topic=settings.topic, checkpoint=settings.checkpoint, query_id=str(query.id),
             max_records_per_batch=settings.max_records_per_batch, trigger_seconds=settings.trigger_seconds)
    return query, processor
