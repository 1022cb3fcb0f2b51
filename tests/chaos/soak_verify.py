"""The chaos soak's verdict, computed from the stores and the topics independently of the pipeline's code.

- every acknowledged valid user is in Cassandra exactly once, as its latest version (latest Kafka
  timestamp, the first offset on a tie), and nothing else is;
- every broken record (the producer's and the injected ones) is in the dead-letter topic with its reason
  (found by its position in the raw topic: dead letters carry no payload text, only its structure);
- the aggregates in MongoDB equal a recompute over Cassandra;
- the stream's health counters add up to what the raw and dead-letter topics hold.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from soak_inject import Injected
from userpipeline.jobs.producer.synthetic import FILTERED, STORED, SyntheticSource

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BANDS = ((25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))


@dataclass(frozen=True)
class RawRecord:
    key: str | None
    partition: int
    offset: int
    timestamp: int
    markers: frozenset[str] = frozenset()  # the UUIDs in the value: how a broken record is recognised


def raw_record(message: Any) -> RawRecord:
    value = (message.value() or b"").decode("utf-8", errors="replace")
    return RawRecord(message.key().decode() if message.key() else None, message.partition(), message.offset(),
                     message.timestamp()[1], frozenset(UUID_TEXT.findall(value)))


@dataclass
class Verdict:
    raw_records: int = 0
    expected_stored: int = 0
    stored: int = 0
    rejected: int = 0
    filtered: int = 0
    lost: list[str] = field(default_factory=list)  # valid users missing from Cassandra
    stale: list[str] = field(default_factory=list)  # stored, but not as the latest version
    unexpected: list[str] = field(default_factory=list)  # stored though they must not be
    missing_letters: list[str] = field(default_factory=list)  # broken records not dead-lettered
    wrong_reasons: list[str] = field(default_factory=list)
    aggregate_mismatches: list[str] = field(default_factory=list)
    health_mismatches: list[str] = field(default_factory=list)

    @property
    def failures(self) -> dict[str, list[str]]:
        return {name: items for name, items in (
            ("lost", self.lost), ("stale version", self.stale), ("unexpected", self.unexpected),
            ("not dead-lettered", self.missing_letters), ("wrong reason", self.wrong_reasons),
            ("aggregates", self.aggregate_mismatches), ("health counters", self.health_mismatches)) if items}

    @property
    def ok(self) -> bool:
        return not self.failures


def read_topic(bootstrap: str, topic: str, timeout: float = 120) -> list[Any]:
    """Every message of `topic`, from its beginning to its current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        positions = {p: 0 for p in partitions}
        messages, deadline = [], time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1):
                if msg.error() is None:
                    messages.append(msg)
                    positions[msg.partition()] = msg.offset() + 1
        if any(positions[p] < ends[p] for p in partitions):
            raise RuntimeError(f"could not read {topic} to its end within {timeout:.0f}s")
        return messages
    finally:
        consumer.close()


def producer_expectations(source: SyntheticSource, sent: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """What the producer's records 0..sent-1 must become: {user id: STORED|FILTERED|reason}, [(marker, reason)]."""
    by_key: dict[str, str] = {}
    broken: list[tuple[str, str]] = []
    for record in source.records(0, sent):
        if record.expected in (STORED, FILTERED):
            by_key[record.marker] = record.expected
        else:
            broken.append((UUID_TEXT.search(record.marker).group(0), record.expected))
            if isinstance(record.payload, dict) and isinstance((record.payload.get("login") or {}).get("uuid"), str):
                by_key[record.payload["login"]["uuid"]] = record.expected
    return by_key, broken


def latest_versions(raw: Iterable[RawRecord], stored_keys: set[str]) -> dict[str, RawRecord]:
    """The version each valid user must have at rest: the latest Kafka timestamp, the first offset on a tie."""
    latest: dict[str, RawRecord] = {}
    for record in raw:
        if record.key not in stored_keys:
            continue
        current = latest.get(record.key)
        if current is None or (record.timestamp, -record.partition, -record.offset) > (
                current.timestamp, -current.partition, -current.offset):
            latest[record.key] = record
    return latest


def band(age: int) -> str:
    return "0-17" if age < 18 else next((name for upper, name in BANDS if age < upper), "65+")


def recompute(rows: Iterable[Any]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        gender = row.gender if row.gender in ("female", "male") else "unknown"
        for doc in ("total:all", f"nationality:{row.nat or 'unknown'}", f"gender:{gender}", f"ageBand:{band(row.age)}",
                    f"emailDomain:{row.email_domain or 'unknown'}"):
            totals[doc][0] += 1
            totals[doc][1] += row.age
    return {doc: (count, age_sum) for doc, (count, age_sum) in totals.items()}


class Verifier:
    def __init__(self, platform: Any, topic: str, source: SyntheticSource, producer_sent: int,
                 injected: list[Injected]):
        self.platform = platform
        self.topic = topic
        self.source = source
        self.producer_sent = producer_sent
        self.injected = injected
        self.verdict = Verdict()

    def run(self) -> Verdict:
        bootstrap = self.platform.kafka.bootstrap
        raw = [raw_record(m) for m in read_topic(bootstrap, self.topic)]
        letters = [json.loads(m.value()) for m in read_topic(bootstrap, f"{self.topic}.dlq")]
        expected, broken = producer_expectations(self.source, self.producer_sent)
        expected.update({item.marker: item.expected for item in self.injected})
        broken += [(item.marker, item.expected) for item in self.injected if item.expected != STORED]
        rows = self._profiles()
        self.verdict.raw_records = len(raw)
        self._check_profiles(raw, expected, rows)
        self._check_dead_letters(raw, letters, broken)
        self._check_aggregates(rows)
        self._check_health(raw, expected, letters)
        return self.verdict

    def _profiles(self) -> dict[str, Any]:
        session = self.platform.cassandra.session()
        try:
            query = ("SELECT user_id, nat, gender, age, email_domain, event_time, source_partition, source_offset "
                     "FROM userpipeline.profiles")
            rows = list(session.execute(query))
        finally:
            session.cluster.shutdown()
        ids = Counter(row.user_id for row in rows)
        self.verdict.unexpected += [f"{uid} stored {n} times" for uid, n in ids.items() if n > 1]
        return {row.user_id: row for row in rows}

    def _check_profiles(self, raw: list[RawRecord], expected: dict[str, str], rows: dict[str, Any]) -> None:
        stored_keys = {key for key, outcome in expected.items() if outcome == STORED}
        latest = latest_versions(raw, stored_keys)
        self.verdict.expected_stored, self.verdict.stored = len(stored_keys), len(rows)
        for key in sorted(stored_keys):
            row = rows.get(key)
            if row is None:
                self.verdict.lost.append(key)
            elif key in latest and (row.source_partition, row.source_offset) != (latest[key].partition, latest[key].offset):
                self.verdict.stale.append(f"{key}: stored offset {row.source_partition}/{row.source_offset}, latest "
                                          f"{latest[key].partition}/{latest[key].offset}")
        for key in set(rows) - stored_keys:
            reason = expected.get(key)
            self.verdict.unexpected.append(f"{key} stored (expected {reason or 'never published'})")

    def _check_dead_letters(self, raw: list[RawRecord], letters: list[dict], broken: list[tuple[str, str]]) -> None:
        reason_at = {(d["source"]["partition"], d["source"]["offset"]): d["reason"] for d in letters}
        reasons_of: dict[str, set[str]] = defaultdict(set)
        for record in raw:
            reason = reason_at.get((record.partition, record.offset))
            if reason is not None:
                for marker in record.markers:
                    reasons_of[marker].add(reason)
        for marker, reason in broken:
            found = reasons_of.get(marker)
            if not found:
                self.verdict.missing_letters.append(f"{marker} ({reason})")
            elif found != {reason}:
                self.verdict.wrong_reasons.append(f"{marker}: expected {reason}, found {sorted(found)}")

    def _check_aggregates(self, rows: dict[str, Any]) -> None:
        with self.platform.ferretdb.client() as client:
            stored = {d["_id"]: (d["count"], d["ageSum"]) for d in client.userpipeline.aggregates.find()
                      if d.get("count") or d.get("ageSum")}
        again = recompute(rows.values())
        for doc in sorted(set(stored) | set(again)):
            if stored.get(doc) != again.get(doc):
                self.verdict.aggregate_mismatches.append(f"{doc}: mongo {stored.get(doc)}, cassandra {again.get(doc)}")

    def _check_health(self, raw: list[RawRecord], expected: dict[str, str], letters: list[dict]) -> None:
        with self.platform.ferretdb.client() as client:
            health = client.userpipeline.pipeline_health.find_one({"_id": "stream"}) or {}
        sources = {(d["source"]["partition"], d["source"]["offset"]) for d in letters}
        outcomes = Counter(expected.get(r.key, "rejected") if r.key else "rejected" for r in raw)
        filtered = outcomes[FILTERED]
        self.verdict.rejected, self.verdict.filtered = len(sources), filtered
        checks = {"processed": (health.get("processed"), len(raw)),
                  "rejected": (health.get("rejected"), len(sources)),
                  "filtered": (health.get("filtered"), filtered)}
        for name, (have, want) in checks.items():
            if have != want:
                self.verdict.health_mismatches.append(f"{name}: health says {have}, the topics say {want}")
        valid = health.get("processed", 0) - health.get("rejected", 0) - health.get("filtered", 0)
        if valid < self.verdict.stored:
            self.verdict.health_mismatches.append(f"{valid} valid records processed but {self.verdict.stored} users stored")
