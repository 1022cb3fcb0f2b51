"""Cassandra profiles: idempotent schema, point lookups of stored versions, upserts with the Kafka timestamp.

Every write carries `USING TIMESTAMP <Kafka timestamp in µs>` and sets every column, so for each user
the newest record wins cell by cell and as a whole, whatever order writes arrive in: replaying an old
record never overwrites a newer one. Reads and writes use LOCAL_QUORUM so a lookup sees every earlier
batch's writes also with replication factor > 1.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import datetime

import structlog
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import RoundRobinPolicy
from cassandra.query import BatchStatement, BatchType

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.stream.deltas import Profile, Stored

log = structlog.get_logger()

TABLE = "profiles"
MAX_TTL_SECONDS = 630_720_000  # Cassandra's limit: 20 years
CONCURRENCY = 32
LOOKUP_CHUNK = 100  # user ids per `IN` lookup: far fewer round trips than one query per user
# Rows per UNLOGGED batch: ~4x the throughput of single inserts, and 10 rows (~4.5 KB) stay under
# Cassandra's 5 KiB batch_size_warn_threshold. Each row keeps its own USING TIMESTAMP.
BATCH_ROWS = 10
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

COLUMNS = {
    "user_id": "text", "full_name": "text", "gender": "text", "nat": "text", "age": "int", "api_age": "int",
    "dob": "date", "email_domain": "text", "email_hmac": "text", "phone_hmac": "text", "cell_hmac": "text",
    "address_hmac": "text", "hmac_key_id": "text", "registered": "timestamp", "event_time": "timestamp",
    "source_partition": "int", "source_offset": "bigint",
}
VERSION_COLUMNS = ("user_id", "gender", "nat", "age", "email_domain", "event_time", "source_partition", "source_offset")


def epoch_ms(value: datetime) -> int:
    """The driver returns timestamps as naive UTC datetimes."""
    return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000


class ProfileStore:
    def __init__(self, endpoints: Endpoints, ttl_seconds: int, hmac_key_id: str):
        if not _IDENTIFIER.match(endpoints.cassandra_keyspace):
            raise ValueError(f"keyspace {endpoints.cassandra_keyspace!r} is not a plain CQL identifier (a-z, 0-9, _)")
        self.keyspace = endpoints.cassandra_keyspace
        self.replication = endpoints.cassandra_replication
        self.ttl_seconds = min(ttl_seconds, MAX_TTL_SECONDS)
        self.hmac_key_id = hmac_key_id
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), consistency_level=ConsistencyLevel.LOCAL_QUORUM,
                                   request_timeout=30)
        self.cluster = endpoints.cassandra_cluster(connect_timeout=10, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        self.session: Session = self.cluster.connect()
        self.ensure_schema()
        table = f"{self.keyspace}.{TABLE}"
        self._select = self.session.prepare(f"SELECT {', '.join(VERSION_COLUMNS)} FROM {table} WHERE user_id IN ?")
        self._insert = self.session.prepare(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) USING TIMESTAMP ?")

    def ensure_schema(self) -> None:
        """Create keyspace and table if missing; bring the table's TTL to the retention policy."""
        columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
        self.session.execute(f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = {self.replication}")
        self.session.execute(
            f"CREATE TABLE IF NOT EXISTS {self.keyspace}.{TABLE} ({columns}, PRIMARY KEY (user_id)) "
            f"WITH default_time_to_live = {self.ttl_seconds}")
        row = self.session.execute(
            "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
            (self.keyspace, TABLE)).one()
        if row is not None and row.default_time_to_live != self.ttl_seconds:
            self.session.execute(f"ALTER TABLE {self.keyspace}.{TABLE} WITH default_time_to_live = {self.ttl_seconds}")
            log.info("stream.cassandra_ttl_changed", keyspace=self.keyspace, ttl_seconds=self.ttl_seconds)

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

    def write(self, profiles: Sequence[Profile]) -> int:
        batches = []
        for start in range(0, len(profiles), BATCH_ROWS):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for profile in profiles[start:start + BATCH_ROWS]:
                batch.add(self._insert, self._values(profile))
            batches.append((batch, ()))
        execute_concurrent(self.session, batches, concurrency=CONCURRENCY, raise_on_first_error=True)
        return len(profiles)

    def _values(self, p: Profile) -> tuple:
        return (p.user_id, p.full_name, p.gender, p.nat, p.age, p.api_age, p.dob, p.email_domain, p.email_hmac,
                p.phone_hmac, p.cell_hmac, p.address_hmac, self.hmac_key_id, p.registered_ms, p.event_time_ms,
                p.source_partition, p.source_offset, p.event_time_ms * 1000)

    def close(self) -> None:
        self.cluster.shutdown()
