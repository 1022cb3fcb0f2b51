"""The local counterpart of the Kubernetes operator: keeps the stores in line with the UserPipeline file.

    python -m userpipeline.operator.local.reconciler --spec FILE

At start and within a second of every valid edit of the file it applies the retention policy: raw and
dead-letter topics' `retention.ms`, Cassandra's profile TTL and MongoDB's aggregate retention; it runs
the purge on `retention.purgeSchedule`. Each part reports into `status.json` beside its log, like the
operator's status conditions; a failing part is retried on the next tick while the others still apply.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path
from typing import Annotated

import structlog
import typer
from cassandra.cluster import Cluster, Session
from confluent_kafka.admin import AdminClient
from croniter import croniter
from pymongo import MongoClient

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.logs import configure_logging
from userpipeline.jobs.producer.spec_watch import SpecWatcher
from userpipeline.jobs.purge.purge import purge
from userpipeline.operator.retention import apply_aggregate_retention, apply_profile_ttl, apply_topic_retention
from userpipeline.operator.spec import UserPipeline, parse_duration

log = structlog.get_logger()
RETRY_SECONDS = 5.0


class Reconciler:
    def __init__(self, spec_path: Path, endpoints: Endpoints, status_file: Path):
        self.watcher = SpecWatcher(spec_path)
        self.endpoints = endpoints
        self.status_file = status_file
        self.admin = AdminClient({"bootstrap.servers": endpoints.kafka_bootstrap, "log_level": 0})
        self.mongo = MongoClient(endpoints.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=3000)
        self._cluster: Cluster | None = None
        self._cassandra: Session | None = None
        self.conditions: dict[str, dict] = {}
        self.next_purge = self._next_purge(self.watcher.current)

    def _session(self) -> Session:
        if self._cassandra is None:
            self._cluster = self.endpoints.cassandra_cluster(connect_timeout=5)
            self._cassandra = self._cluster.connect()
        return self._cassandra

    def _next_purge(self, pipeline: UserPipeline) -> dt.datetime:
        now = dt.datetime.now(dt.timezone.utc)
        return croniter(pipeline.spec.retention.purge_schedule, now).get_next(dt.datetime)

    def parts(self, pipeline: UserPipeline) -> dict:
        spec, name = pipeline.spec, pipeline.metadata.name
        return {
            "TopicRetention": lambda: [
                apply_topic_retention(self.admin, spec.topic.name, parse_duration(spec.topic.retention) * 1000),
                apply_topic_retention(self.admin, f"{spec.topic.name}.dlq",
                                      parse_duration(spec.retention.dead_letter) * 1000)],
            "CassandraTTL": lambda: [apply_profile_ttl(self._session(), self.endpoints.cassandra_keyspace,
                                                       parse_duration(spec.retention.profiles))],
            "MongoRetention": lambda: [apply_aggregate_retention(self.mongo[self.endpoints.mongo_database],
                                                                 parse_duration(spec.retention.aggregates),
                                                                 f"local/{name}")],
        }

    def reconcile(self, pipeline: UserPipeline) -> bool:
        """Apply every part; True when all succeeded."""
        for condition, apply in self.parts(pipeline).items():
            try:
                changes = [c for c in apply() if c]
            except Exception as exc:  # noqa: BLE001 - any store problem becomes a condition, retried
                self.conditions[condition] = {"status": "False", "reason": type(exc).__name__,
                                              "message": str(exc).splitlines()[0][:300] if str(exc) else ""}
                log.warning("reconciler.part_failed", part=condition, reason=type(exc).__name__)
                continue
            for change in changes:
                log.info("reconciler.changed", part=condition, change=change)
            self.conditions[condition] = {"status": "True", "reason": "Applied", "message": "; ".join(changes)}
        self._write_status(pipeline)
        return all(c["status"] == "True" for c in self.conditions.values())

    def _write_status(self, pipeline: UserPipeline) -> None:
        ready = all(c["status"] == "True" for c in self.conditions.values())
        status = {"observedSpec": pipeline.spec.model_dump(by_alias=True, mode="json"), "ready": ready,
                  "conditions": self.conditions, "nextPurge": self.next_purge.isoformat(),
                  "lastReconcileTime": dt.datetime.now(dt.timezone.utc).isoformat()}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(status, indent=2))
        tmp.replace(self.status_file)

    def maybe_purge(self, pipeline: UserPipeline) -> None:
        if dt.datetime.now(dt.timezone.utc) < self.next_purge:
            return
        try:
            purge(self.mongo[self.endpoints.mongo_database], pipeline.spec)
        except Exception as exc:  # noqa: BLE001 - retried at the next schedule
            log.warning("reconciler.purge_failed", reason=type(exc).__name__)
        self.next_purge = self._next_purge(pipeline)

    def run(self, stop: list[bool]) -> None:
        pipeline = self.watcher.current
        healthy = self.reconcile(pipeline)
        last = time.monotonic()
        while not stop:
            time.sleep(0.2)
            changed = self.watcher.poll()
            if changed is not None:
                pipeline = changed
                self.next_purge = self._next_purge(pipeline)
                log.info("reconciler.spec_changed", name=pipeline.metadata.name)
            if changed is not None or (not healthy and time.monotonic() - last > RETRY_SECONDS):
                healthy, last = self.reconcile(pipeline), time.monotonic()
            self.maybe_purge(pipeline)


def main(
    spec: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="UserPipeline YAML file.")],
    status_file: Annotated[Path, typer.Option(help="Where to write the status (conditions).")] = Path("status.json"),
) -> None:
    configure_logging()
    reconciler = Reconciler(spec, Endpoints.from_env(), status_file)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        reconciler.run(stop)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    typer.run(main)
