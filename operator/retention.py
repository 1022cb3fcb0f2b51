"""Apply a retention policy to the stores through their own drivers; shared by the Kubernetes operator
and the local reconciler. Each function is idempotent and returns a description of what it changed
(None when the store already matched)."""

from __future__ import annotations

import datetime as dt

from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from pymongo.database import Database

PROFILES_TABLE = "profiles"
SETTINGS_COLLECTION = "settings"
RETENTION_DOCUMENT = "retention"


class TableMissing(LookupError):
    """The profiles table does not exist yet (the streaming job creates it on its first start)."""


def apply_profile_ttl(session: Session, keyspace: str, seconds: int) -> str | None:
    row = session.execute(
        "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
        (keyspace, PROFILES_TABLE),
    ).one()
    if row is None:
        raise TableMissing(f"{keyspace}.{PROFILES_TABLE} does not exist yet; the streaming job creates it")
    if row.default_time_to_live == seconds:
        return None
    session.execute(f'ALTER TABLE "{keyspace}".{PROFILES_TABLE} WITH default_time_to_live = {int(seconds)}')
    return f"Cassandra {keyspace}.{PROFILES_TABLE} default_time_to_live {row.default_time_to_live}s -> {seconds}s"


def apply_aggregate_retention(db: Database, seconds: int, updated_by: str) -> str | None:
    settings = db[SETTINGS_COLLECTION]
    current = (settings.find_one({"_id": RETENTION_DOCUMENT}) or {}).get("aggregatesSeconds")
    if current == seconds:
        return None
    settings.update_one({"_id": RETENTION_DOCUMENT}, {"$set": {
        "aggregatesSeconds": seconds, "updatedAt": dt.datetime.now(dt.timezone.utc), "updatedBy": updated_by}},
        upsert=True)
    return f"MongoDB {db.name}.{SETTINGS_COLLECTION} aggregatesSeconds {current} -> {seconds}"


def apply_topic_retention(admin: AdminClient, topic: str, milliseconds: int, timeout: float = 10) -> str | None:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(timeout=timeout)
    current = described.get("retention.ms")
    if current is not None and current.value == str(milliseconds):
        return None
    entry = ConfigEntry("retention.ms", str(milliseconds), incremental_operation=AlterConfigOpType.SET)
    change = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([change])[change].result(timeout=timeout)
    return f"Kafka topic {topic} retention.ms {current.value if current else None} -> {milliseconds}"
