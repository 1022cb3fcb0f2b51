"""Delete aggregate documents not updated within `spec.retention.aggregates`; every run writes an audit record.

Profiles expire in Cassandra through the table's TTL and raw/dead-letter records through the topics'
`retention.ms`; MongoDB has no TTL index that works on both MongoDB and FerretDB, so this job deletes
expired aggregates explicitly. It is idempotent and cheap: one indexed-or-not range delete per collection
over small collections of aggregate documents, never over profiles. Each run, also one that deletes
nothing, leaves an audit record (jobs/audit.py): when, what, under which retention, how many.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from pymongo.database import Database

from userpipeline.jobs import audit
from userpipeline.operator.spec import UserPipelineSpec, parse_duration

log = structlog.get_logger()

AGGREGATES = "aggregates"
JOURNAL = "batch_journal"


@dataclass(frozen=True)
class PurgeResult:
    cutoff: dt.datetime
    aggregates_deleted: int
    audit_id: str


def purge(db: Database, spec: UserPipelineSpec, now: dt.datetime | None = None) -> PurgeResult:
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - dt.timedelta(seconds=parse_duration(spec.retention.aggregates))
    deleted = db[AGGREGATES].delete_many({"updatedAt": {"$lt": cutoff}}).deleted_count
    log.info("purge.done", cutoff=cutoff.isoformat(), aggregates_deleted=deleted)
    record = audit.write(db, audit.AuditRecord(
        action="purge", store=f"mongodb:{AGGREGATES}", count=deleted, at=now,
        rule={"retention": spec.retention.aggregates, "cutoff": cutoff, "field": "updatedAt"}))
    return PurgeResult(cutoff, deleted, record.id)
