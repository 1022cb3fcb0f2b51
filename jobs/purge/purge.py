"""Delete empty aggregate documents not updated within `spec.retention.aggregates`; every run writes an audit record.

Profiles expire through the stream (jobs/stream/expiry.py), which subtracts each one from the aggregates
as it deletes it, so an aggregate document always counts exactly the profiles stored now: deleting one
that still counts someone would make the aggregates wrong. What is left to purge are the groups nobody
is in any more (`count` and `ageSum` 0) that no batch, expiry or erasure touched within the aggregate
retention. The stream sets `updatedAt` before it adds to a document (sinks/mongo.py), so a purge never
deletes a document between a batch's upsert and its guarded `$inc`. Raw and dead-letter records expire
through the topics' `retention.ms`. Idempotent and cheap (one delete over the small `aggregates`
collection); each run, also one that deletes nothing, leaves an audit record (jobs/audit.py).
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
    deleted = db[AGGREGATES].delete_many({"count": 0, "ageSum": 0, "updatedAt": {"$lt": cutoff}}).deleted_count
    log.info("purge.done", cutoff=cutoff.isoformat(), aggregates_deleted=deleted)
    record = audit.write(db, audit.AuditRecord(
        action="purge", store=f"mongodb:{AGGREGATES}", count=deleted, at=now,
        rule={"retention": spec.retention.aggregates, "cutoff": cutoff, "field": "updatedAt", "condition": "count 0"}))
    return PurgeResult(cutoff, deleted, record.id)
