"""Delete aggregate documents not updated within `spec.retention.aggregates`, and old batch journals.

Profiles expire in Cassandra through the table's TTL and raw/dead-letter records through the topics'
`retention.ms`; MongoDB has no TTL index that works on both MongoDB and FerretDB, so this job deletes
expired aggregates explicitly. It is idempotent and cheap: one indexed-or-not range delete per collection
over small collections of aggregate documents, never over profiles.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from pymongo.database import Database

from userpipeline.operator.spec import UserPipelineSpec, parse_duration

log = structlog.get_logger()

AGGREGATES = "aggregates"
JOURNAL = "batch_journal"


@dataclass(frozen=True)
class PurgeResult:
    cutoff: dt.datetime
    aggregates_deleted: int


def purge(db: Database, spec: UserPipelineSpec, now: dt.datetime | None = None) -> PurgeResult:
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - dt.timedelta(seconds=parse_duration(spec.retention.aggregates))
    deleted = db[AGGREGATES].delete_many({"updatedAt": {"$lt": cutoff}}).deleted_count
    log.info("purge.done", cutoff=cutoff.isoformat(), aggregates_deleted=deleted)
    return PurgeResult(cutoff, deleted)
