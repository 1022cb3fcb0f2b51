"""Cassandra profiles: idempotent schema, point lookups of stored versions, upserts with the Kafka timestamp.

Every write carries `USING TIMESTAMP <Kafka timestamp in µs>` and sets every column, so for each user
the newest record wins cell by cell and as a whole, whatever order writes arrive in: replaying an old
record never overwrites a newer one. Every write also carries its own TTL, counted from the record's
Kafka timestamp: retention + TTL_MARGIN_SECONDS. The stream's expiry (jobs/stream/expiry.py) removes a
profile when its retention has passed and subtracts it; the TTL is only a backstop for a stream that is
stopped for longer than the margin, and a rewrite of the same record (replay) never extends it. Reads
and writes use LOCAL_QUORUM so a lookup sees every earlier batch's writes also with replication factor > 1.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from cassandra import ConsistencyLevel, InvalidRequest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import RoundRobinPolicy
from cassandra.query import BatchStatement, BatchType, BoundStatement, SimpleStatement

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.erasure import lookup
from userpipeline.jobs.stream.deltas import Profile, Stored

log = structlog.get_logger()

TABLE = "profiles"
MAX_TTL_SECONDS = 630_720_000  # Cassandra's limit: 20 years
# The backstop TTL ends this long after the retention: the stream's expiry removes (and subtracts) a
# profile within a minute of its retention, so the TTL only acts when the stream is stopped this long.
TTL_MARGIN_SECONDS = 86_400
EXPIRED_PAGE = 5000
CONCURRENCY = 32
LOOKUP_CHUNK = 100  # user ids per `IN` lookup: far fewer round trips than one query per user
# Rows per UNLOGGED batch: ~4x the throughput of single inserts; 10 typical rows measure ~7 KB in
# Cassandra (a warning over its 5 KiB batch_size_warn_threshold, far below the 50 KiB fail threshold).
# Each row keeps its own USING TIMESTAMP. A batch also closes at BATCH_BYTES of serialized values, so
# unusually long rows go in smaller batches or alone; a batch Cassandra still refuses is split.
BATCH_ROWS = 10
BATCH_BYTES = 5 * 1024
# A row Cassandra refuses (InvalidRequest) on its own is tried this often before it counts as refused.
ROW_ATTEMPTS = 3
ROW_RETRY_SECONDS = 0.5
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

# Each column's purpose: docs/privacy.md. Personal data only as keyed HMACs (or not at all, when
# spec.privacy.pseudonymize does not list the field); the age is computed before storing.
COLUMNS = {
    "user_id": "text", "gender": "text", "nat": "text", "age": "int", "api_age": "int",
    "email_domain": "text", "email_hmac": "text", "phone_hmac": "text", "cell_hmac": "text",
    "address_hmac": "text", "name_hmac": "text", "dob_hmac": "text", "hmac_key_id": "text",
    "registered": "timestamp", "event_time": "timestamp", "source_partition": "int", "source_offset": "bigint",
}
# Columns of earlier versions that held plaintext: dropped from an existing table (with their data).
PLAINTEXT_COLUMNS = ("full_name", "dob")
VERSION_COLUMNS = ("user_id", "gender", "nat", "age", "email_domain", "event_time", "source_partition", "source_offset")


def epoch_ms(value: datetime) -> int:
    """The driver returns timestamps as naive UTC datetimes."""
    return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000


@dataclass(frozen=True)
class Refused:
    """A row Cassandra (or the driver, encoding it) still refused after ROW_ATTEMPTS, alone.

    `error` is the type and message (Cassandra's say what is wrong, e.g. a key or batch size, not the
    value); it goes to the dead-letter record only, logs get the type."""

    profile: Profile
    error: str


@dataclass
class WriteResult:
    written: int = 0
    refused: list[Refused] = field(default_factory=list)


def estimated_bytes(bound: BoundStatement) -> int:
    """The serialized size of a bound row, plus some overhead."""
    return 64 + sum(len(v) for v in bound.values if isinstance(v, (bytes, bytearray)))


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error)[:300]}"


class ProfileStore:
    def __init__(self, endpoints: Endpoints, ttl_seconds: int, hmac_key_id: str):
        if not _IDENTIFIER.match(endpoints.cassandra_keyspace):
            raise ValueError(f"keyspace {endpoints.cassandra_keyspace!r} is not a plain CQL identifier (a-z, 0-9, _)")
        self.keyspace = endpoints.cassandra_keyspace
        self.manage_table_options = endpoints.manage_table_options
        self.replication = endpoints.cassandra_replication
        self.ttl_seconds = min(ttl_seconds, MAX_TTL_SECONDS)  # the profile retention
        self.hmac_key_id = hmac_key_id
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), consistency_level=ConsistencyLevel.LOCAL_QUORUM,
                                   request_timeout=30)
        self.cluster = endpoints.cassandra_cluster(connect_timeout=10, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        self.session: Session = self.cluster.connect()
        self.ensure_schema()
        table = f"{self.keyspace}.{TABLE}"
        self._select = self.session.prepare(f"SELECT {', '.join(VERSION_COLUMNS)} FROM {table} WHERE user_id IN ?")
        self._insert = self.session.prepare(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) USING TIMESTAMP ? AND TTL ?")
        self._delete = self.session.prepare(f"DELETE FROM {table} USING TIMESTAMP ? WHERE user_id = ?")
        self._table = table

    def ensure_schema(self) -> None:
        """Create keyspace and table if missing; bring the table's TTL to the retention policy, unless another
        owner has the table options (Endpoints.manage_table_options false: the operator on Kubernetes)."""
        columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
        self.session.execute(f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = {self.replication}")
        self.session.execute(
            f"CREATE TABLE IF NOT EXISTS {self.keyspace}.{TABLE} ({columns}, PRIMARY KEY (user_id)) "
            f"WITH default_time_to_live = {self.ttl_seconds}")
        self._migrate_columns()
        lookup.ensure_email_index(self.session, self.keyspace)  # erasure by email without a scan (jobs/erasure/lookup.py)
        if not self.manage_table_options:
            return
        row = self.session.execute(
            "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
            (self.keyspace, TABLE)).one()
        if row is not None and row.default_time_to_live != self.ttl_seconds:
            self.session.execute(f"ALTER TABLE {self.keyspace}.{TABLE} WITH default_time_to_live = {self.ttl_seconds}")
            log.info("stream.cassandra_ttl_changed", keyspace=self.keyspace, ttl_seconds=self.ttl_seconds)

    def _migrate_columns(self) -> None:
        """Bring a table of an earlier version to COLUMNS: add the missing ones, drop the plaintext ones."""
        rows = self.session.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = %s",
            (self.keyspace, TABLE))
        existing = {row.column_name for row in rows}
        table = f"{self.keyspace}.{TABLE}"
        for name in COLUMNS.keys() - existing:
            self.session.execute(f"ALTER TABLE {table} ADD {name} {COLUMNS[name]}")
            log.info("stream.cassandra_column_added", keyspace=self.keyspace, column=name)
        for name in existing & set(PLAINTEXT_COLUMNS):
            self.session.execute(f"ALTER TABLE {table} DROP {name}")
            log.info("stream.cassandra_plaintext_column_dropped", keyspace=self.keyspace, column=name)

    def versions(self, user_ids: Sequence[str]) -> dict[str, Stored]:
        """The stored version of each given user that exists: primary-key lookups, LOOKUP_CHUNK users at a time."""
        chunks = [(list(user_ids[i:i + LOOKUP_CHUNK]),) for i in range(0, len(user_ids), LOOKUP_CHUNK)]
        results = execute_concurrent_with_args(self.session, self._select, chunks, concurrency=CONCURRENCY,
                                               raise_on_first_error=True)
        stored: dict[str, Stored] = {}
        for result in results:
            for row in result.result_or_exc:
                stored[row.user_id] = Stored(row.user_id, row.gender, row.nat, row.age, row.email_domain,
                                             epoch_ms(row.event_time), row.source_partition, row.source_offset)
        return stored

    def delete(self, versions: Sequence[tuple[str, int]]) -> None:
        """Delete (user id, event time ms) versions, each `USING TIMESTAMP` of its own write: the version and
        any older one go, a newer version of the user (written meanwhile) stays. Idempotent."""
        if versions:
            execute_concurrent_with_args(self.session, self._delete, [(ms * 1000, uid) for uid, ms in versions],
                                         concurrency=CONCURRENCY, raise_on_first_error=True)

    def expired(self, cutoff_ms: int, limit: int) -> list[tuple[Stored, str | None]]:
        """Up to `limit` stored versions whose Kafka timestamp is at or before `cutoff_ms`, with their email hash
        (to leave out people in the erasure ledger). One paged scan of the table."""
        statement = SimpleStatement(
            f"SELECT {', '.join(VERSION_COLUMNS)}, email_hmac FROM {self._table} WHERE event_time <= %s ALLOW FILTERING",
            fetch_size=EXPIRED_PAGE)
        found: list[tuple[Stored, str | None]] = []
        for row in self.session.execute(statement, (cutoff_ms,)):
            found.append((Stored(row.user_id, row.gender, row.nat, row.age, row.email_domain, epoch_ms(row.event_time),
                                 row.source_partition, row.source_offset), row.email_hmac))
            if len(found) >= limit:
                break
        return found

    def ttl_for(self, event_time_ms: int, now: float | None = None) -> int:
        """Seconds from now until the record's Kafka timestamp + retention + TTL_MARGIN_SECONDS, and never less
        than the margin: the stream stores no record past its retention (deltas.plan_batch), but a batch resumed
        late may write one close to it, and the expiry, not the TTL, must be what removes it (and subtracts it)."""
        now = time.time() if now is None else now
        ends = event_time_ms / 1000 + self.ttl_seconds + TTL_MARGIN_SECONDS
        return max(TTL_MARGIN_SECONDS, min(MAX_TTL_SECONDS, int(ends - now) + 1))

    def write(self, profiles: Sequence[Profile]) -> WriteResult:
        """Upsert the rows; a row Cassandra refuses (InvalidRequest, alone, ROW_ATTEMPTS times) is returned as
        refused instead of failing the batch. Any other error (timeouts, unavailable nodes) raises."""
        result = WriteResult()
        rows: list[tuple[Profile, BoundStatement]] = []
        for profile in profiles:
            try:
                rows.append((profile, self._insert.bind(self._values(profile))))
            except (TypeError, ValueError) as exc:  # the driver cannot encode a value: no attempt can succeed
                result.refused.append(Refused(profile, describe(exc)))
        pending = _groups(rows)
        while pending:
            pending = self._write_groups(pending, result)
        return result

    def _write_groups(self, groups: list[list[tuple[Profile, BoundStatement]]], result: WriteResult) -> list:
        """Write the groups at once; returns the halves of the groups Cassandra refused, to try again."""
        outcomes = execute_concurrent(self.session, [(_statement(group), ()) for group in groups],
                                      concurrency=CONCURRENCY, raise_on_first_error=False)
        retry: list[list[tuple[Profile, BoundStatement]]] = []
        for group, (ok, outcome) in zip(groups, outcomes):
            if ok:
                result.written += len(group)
            elif not isinstance(outcome, InvalidRequest):
                raise outcome
            elif len(group) > 1:  # e.g. "Batch too large": each half on its own
                log.warning("stream.cassandra_batch_split", rows=len(group), error=type(outcome).__name__)
                retry += [group[:len(group) // 2], group[len(group) // 2:]]
            else:
                self._write_alone(group[0], result, outcome)
        return retry

    def _write_alone(self, row: tuple[Profile, BoundStatement], result: WriteResult, error: InvalidRequest) -> None:
        """A row refused alone once: ROW_ATTEMPTS - 1 more tries, then it counts as refused."""
        for attempt in range(2, ROW_ATTEMPTS + 1):
            time.sleep(ROW_RETRY_SECONDS * (attempt - 1))
            try:
                self.session.execute(row[1])
                result.written += 1
                return
            except InvalidRequest as exc:
                error = exc
        log.warning("stream.cassandra_row_refused", attempts=ROW_ATTEMPTS, error=type(error).__name__)
        result.refused.append(Refused(row[0], describe(error)))

    def _values(self, p: Profile) -> tuple:
        return (p.user_id, p.gender, p.nat, p.age, p.api_age, p.email_domain, p.email_hmac, p.phone_hmac,
                p.cell_hmac, p.address_hmac, p.name_hmac, p.dob_hmac, self.hmac_key_id, p.registered_ms,
                p.event_time_ms, p.source_partition, p.source_offset, p.event_time_ms * 1000, self.ttl_for(p.event_time_ms))

    def close(self) -> None:
        self.cluster.shutdown()


def _groups(rows: list[tuple[Profile, BoundStatement]]) -> list[list[tuple[Profile, BoundStatement]]]:
    """Consecutive rows in groups of at most BATCH_ROWS rows and BATCH_BYTES (a longer row alone)."""
    groups: list[list[tuple[Profile, BoundStatement]]] = []
    size = 0
    for row in rows:
        row_bytes = estimated_bytes(row[1])
        if not groups or len(groups[-1]) >= BATCH_ROWS or size + row_bytes > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row_bytes
    return groups


def _statement(group: list[tuple[Profile, BoundStatement]]):
    if len(group) == 1:  # a single row needs no batch, and Cassandra checks no batch size for it
        return group[0][1]
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for _, bound in group:
        batch.add(bound)
    return batch
