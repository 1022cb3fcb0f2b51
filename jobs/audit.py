"""The audit trail of what removed data (purges, erasures): one MongoDB document and one log line per action.

A record says when, what (the action and the store), under which rule and how many items; never which
person (no ids, no pseudonyms, no values). The `audit` collection is append-only: nothing in the
pipeline updates or deletes it, and no retention purge touches it (docs/privacy.md).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from pymongo.database import Database

log = structlog.get_logger()

COLLECTION = "audit"


@dataclass(frozen=True)
class AuditRecord:
    action: str  # "purge" or "erase"
    store: str  # e.g. "mongodb:aggregates", "cassandra:profiles"
    count: int  # items removed
    rule: dict[str, Any]  # what decided it, e.g. {"retention": "90d", "cutoff": ...}
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["_id"] = doc.pop("id")
        return doc


def write(db: Database, record: AuditRecord) -> AuditRecord:
    """Insert the record and log it (the log line also when MongoDB then fails: it is raised after)."""
    log.info("audit.record", audit_id=record.id, action=record.action, store=record.store, count=record.count,
             at=record.at.isoformat(), **{f"rule_{k}": _plain(v) for k, v in record.rule.items()})
    db[COLLECTION].insert_one(record.document())
    return record


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value
