"""Helpers for the stream's end-to-end tests: publish, read back, recompute, scan for plaintext.

The expected results are computed here from what was published, independently of the job's code:
the latest version of each user (Kafka timestamp, then the first offset) among the valid records.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from userpipeline.jobs.endpoints import Endpoints
from userpipeline.jobs.producer.publisher import ensure_topics, producer_config
from userpipeline.jobs.producer.sanitize import to_message
from userpipeline.jobs.producer.synthetic import FILTERED, STORED
from userpipeline.operator.spec.model import UserPipelineSpec, load_userpipeline
from harness.polling import wait_for as wait_until  # noqa: F401 - used by the stream tests

BANDS = ((18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def isolated(endpoints: Endpoints, name: str) -> Endpoints:
    """The shared services, with a keyspace and a database of the test's own."""
    return endpoints.model_copy(update={"cassandra_keyspace": name, "mongo_database": name})


def write_spec(path: Path, topic: str, *, max_records: int = 5000, trigger: str = "1s", minimum_age: int = 18,
               profiles_retention: str | None = None) -> UserPipelineSpec:
    doc = {"apiVersion": "userpipeline.io/v1alpha1", "kind": "UserPipeline", "metadata": {"name": "stream-test"},
           "spec": {"topic": {"name": topic, "partitions": 3},
                    "stream": {"triggerInterval": trigger, "maxRecordsPerBatch": max_records},
                    "privacy": {"minimumAge": minimum_age}}}
    if profiles_retention is not None:
        doc["spec"]["retention"] = {"profiles": profiles_retention}
    path.write_text(yaml.safe_dump(doc))
    spec = load_userpipeline(path).spec
    return spec


def create_topics(bootstrap: str, spec: UserPipelineSpec) -> None:
    ensure_topics(bootstrap, spec)


@dataclass(frozen=True)
class Sent:
    """One published record and what the stream must make of it."""

    payload: dict[str, Any] | bytes
    expected: str  # STORED, "filtered" or a dead-letter reason
    age: int | None
    key: bytes | None
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def user(self) -> dict[str, Any]:
        assert isinstance(self.payload, dict)
        return self.payload


def publish(bootstrap: str, topic: str, records: Iterable[tuple[dict[str, Any] | bytes, str, int | None]],
            timestamps_ms: list[int] | None = None) -> list[Sent]:
    """Publish (payload, expected, age) records as the producer would; returns them with their Kafka position.

    `timestamps_ms` sets each record's CreateTime (default: now); the raw topics use broker time
    (LogAppendTime), so the broker replaces it and `Sent.timestamp_ms` is the broker's.
    """
    producer = Producer(producer_config(bootstrap, **{"client.id": "stream-tests"}))
    sent: list[Sent | None] = []
    errors: list[str] = []

    def delivered(index: int, payload: Any, expected: str, age: int | None, key: bytes | None) -> Callable:
        def callback(err, msg) -> None:
            if err is not None:
                errors.append(err.str())
                return
            sent[index] = Sent(payload, expected, age, key, msg.partition(), msg.offset(), msg.timestamp()[1])
        return callback

    for index, (payload, expected, age) in enumerate(records):
        message = to_message(payload)
        sent.append(None)
        extra = {"timestamp": timestamps_ms[index]} if timestamps_ms is not None else {}
        while True:
            try:
                producer.produce(topic, message.value, message.key,
                                 on_delivery=delivered(index, payload, expected, age, message.key), **extra)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0 and not errors, f"publishing failed: {errors[:3]}"
    assert all(s is not None for s in sent)
    return [s for s in sent if s is not None]


def consume_all(bootstrap: str, topic: str, timeout: float = 60) -> list[Any]:
    """Every message of `topic` from the beginning to its current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages, deadline = [], time.monotonic() + timeout
        positions = {p: 0 for p in partitions}
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1):
                if msg.error() is None:
                    messages.append(msg)
                    positions[msg.partition()] = msg.offset() + 1
        assert all(positions[p] >= ends[p] for p in partitions), f"could not read {topic} to its end"
        return messages
    finally:
        consumer.close()


# --- what must be stored -------------------------------------------------------------------------


def latest_valid(sent: Iterable[Sent]) -> dict[str, Sent]:
    latest: dict[str, Sent] = {}
    for s in sent:
        if s.expected != STORED:
            continue
        uid = s.user["login"]["uuid"]
        current = latest.get(uid)
        if current is None or (s.timestamp_ms, -s.partition, -s.offset) > (current.timestamp_ms, -current.partition, -current.offset):
            latest[uid] = s
    return latest


def band(age: int) -> str:
    return next((name for upper, name in BANDS if age < upper), "65+")


def group(users: Iterable[tuple[str | None, str | None, int, str | None]]) -> dict[str, tuple[int, int]]:
    """(nat, gender, age, email domain) per user -> {doc id: (count, ageSum)}, as the contract defines them."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for nat, gender, age, domain in users:
        gender = gender if gender in ("female", "male") else "unknown"
        for doc in ("total:all", f"nationality:{nat or 'unknown'}", f"gender:{gender}", f"ageBand:{band(age)}",
                    f"emailDomain:{domain or 'unknown'}"):
            totals[doc][0] += 1
            totals[doc][1] += age
    return {doc: (count, age_sum) for doc, (count, age_sum) in totals.items()}


def expected_groups(latest: dict[str, Sent]) -> dict[str, tuple[int, int]]:
    return group((s.user["nat"], s.user["gender"], s.age, s.user["email"].split("@")[1].lower()) for s in latest.values())


def cassandra_profiles(session, keyspace: str) -> dict[str, Any]:
    return {row.user_id: row for row in session.execute(f"SELECT * FROM {keyspace}.profiles")}


def recompute_from_cassandra(profiles: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return group((r.nat, r.gender, r.age, r.email_domain) for r in profiles.values())


def mongo_aggregates(db) -> dict[str, tuple[int, int]]:
    return {d["_id"]: (d["count"], d["ageSum"]) for d in db["aggregates"].find() if d["count"] or d["ageSum"]}


# --- the acceptance checks -----------------------------------------------------------------------


def assert_exact(profiles: dict[str, Any], db, sent: list[Sent]) -> None:
    """Cassandra holds exactly the latest valid version of each user; the aggregates equal both recomputes."""
    latest = latest_valid(sent)
    assert set(profiles) == set(latest)
    wrong = [uid for uid, s in latest.items()
             if (profiles[uid].nat, profiles[uid].age, profiles[uid].source_offset) != (s.user["nat"], s.age, s.offset)]
    assert wrong == []
    aggregates = mongo_aggregates(db)
    assert aggregates == recompute_from_cassandra(profiles)
    assert aggregates == expected_groups(latest)


def assert_dead_letters(bootstrap: str, topic: str, sent: list[Sent]) -> int:
    """Exactly the broken records are dead-lettered, with their reason, and no dead letter holds a plaintext
    email, phone or cell of any published record; returns the number of DLQ messages (more than the broken
    records only if a crashed batch re-sent some: at least once)."""
    broken = {(s.partition, s.offset): s.expected for s in sent if s.expected not in (STORED, FILTERED)}
    messages = consume_all(bootstrap, f"{topic}.dlq")
    letters = [json.loads(m.value()) for m in messages]
    assert {(d["source"]["partition"], d["source"]["offset"]): d["reason"] for d in letters} == broken
    assert all(d["source"]["topic"] == topic and d["payloadBytes"] > 0 and d["payloadHmac"] for d in letters)
    text = "\n".join(m.value().decode("utf-8", errors="replace") for m in messages)
    assert leaked(text, contact_values(sent)) == set(), "plaintext emails or phones in dead letters"
    return len(letters)


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def contact_values(sent: Iterable[Sent]) -> set[str]:
    """The emails, phones and cells of the published records (found by pattern in values that are not JSON)."""
    values: set[str] = set()
    for s in sent:
        if isinstance(s.payload, dict):
            values |= {v for v in (s.payload.get(k) for k in ("email", "phone", "cell")) if isinstance(v, str) and v}
        else:
            values |= set(EMAIL.findall(s.payload.decode("utf-8", errors="replace")))
    return values


def assert_health(db, sent: list[Sent]) -> None:
    health = db["pipeline_health"].find_one({"_id": "stream"})
    outcomes = Counter(s.expected for s in sent)
    assert health["processed"] == len(sent)
    assert health["filtered"] == outcomes[FILTERED]
    assert health["rejected"] == len(sent) - outcomes[STORED] - outcomes[FILTERED]
    assert health["lagRecords"] == 0 and health["freshnessSeconds"] is not None


# --- plaintext scan ------------------------------------------------------------------------------


def leaked(text: str, needles: set[str]) -> set[str]:
    """The needles that occur in `text` as whole tokens (not inside a longer word, e.g. digits inside a hex HMAC),
    in any letter case.

    Fast for many needles and long texts: a needle can only start where an alphanumeric run of the text starts
    (less its own leading punctuation, e.g. the "(" of a phone), so only those positions are looked up, by the
    needle's first few characters."""
    if not needles:
        return set()
    text = text.lower()
    lowered: dict[str, set[str]] = defaultdict(set)
    for needle in needles:
        lowered[needle.lower()].add(needle)
    heads = {needle: next((i for i, ch in enumerate(needle) if ch.isalnum()), None) for needle in lowered}
    width = max(1, min(8, *(len(n) - h for n, h in heads.items() if h is not None)))
    buckets: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for needle, head in heads.items():
        if head is not None:
            buckets[needle[head:head + width]].append((needle, head))
    found: set[str] = set()
    for match in _RUN.finditer(text):
        at = match.start()
        for needle, head in buckets.get(text[at:at + width], ()):
            start = at - head
            if start >= 0 and text.startswith(needle, start) and _isolated(text, start, start + len(needle)):
                found |= lowered[needle]
    return found


_RUN = re.compile(r"[^\W_]+")


def _isolated(text: str, start: int, end: int) -> bool:
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())


PERSONAL = ("email", "phone", "cell", "street address", "full name", "date of birth", "national id")


def personal_values(sent: Iterable[Sent]) -> dict[str, set[str]]:
    """Per kind of personal data, the plaintext values of the published users (as the source had them, before
    the producer dropped what no purpose needs): what no store, topic but the raw one, checkpoint or log may hold."""
    values: dict[str, set[str]] = {kind: set() for kind in PERSONAL}

    def text(value: Any) -> str | None:
        return value.strip() if isinstance(value, str) and value.strip() else None

    for s in sent:
        user = s.payload
        if not isinstance(user, dict):
            continue
        for kind in ("email", "phone", "cell"):
            if (value := text(user.get(kind))) is not None:
                values[kind].add(value)
        name = user.get("name") if isinstance(user.get("name"), dict) else {}
        if (first := text(name.get("first"))) and (last := text(name.get("last"))):
            values["full name"].add(f"{first} {last}")
        location = user.get("location") if isinstance(user.get("location"), dict) else {}
        street = location.get("street") if isinstance(location.get("street"), dict) else {}
        if street.get("number") is not None and (street_name := text(street.get("name"))):
            values["street address"].add(f"{street['number']} {street_name}")
        dob = user.get("dob") if isinstance(user.get("dob"), dict) else {}
        if (born := text(dob.get("date"))) is not None:
            values["date of birth"].add(born)
        national = user.get("id") if isinstance(user.get("id"), dict) else {}
        if (value := text(national.get("value"))) is not None:
            values["national id"].add(value)
    return values


def files_text(*roots: Path) -> str:
    """The text of every file under the given folders (or of the given files)."""
    parts = []
    for root in map(Path, roots):
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def topics_text(bootstrap: str, exclude: set[str], timeout: float = 120) -> str:
    """Every message of the topics of this pipeline but `exclude` (its raw input) and of Kafka's own topics (`__*`),
    each line starting with its topic's name. Other tests' topics on the shared broker are not this pipeline's."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("scanner"), "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        prefixes = tuple(f"{name}." for name in exclude)
        chosen = sorted(t for t in metadata if t not in exclude and (t.startswith(prefixes) or t.startswith("__")))
        pending = {(t, p) for t in chosen for p in metadata[t].partitions}
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(pending)])
        lines, deadline = list(chosen), time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard((msg.topic(), msg.partition()))
                    continue
                lines.append(f"{msg.topic()} {(msg.key() or b'').decode('utf-8', 'replace')} "
                             f"{(msg.value() or b'').decode('utf-8', 'replace')}")
        assert not pending, f"could not read {sorted(pending)[:3]} to the end"
        return "\n".join(lines)
    finally:
        consumer.close()


def mongo_text(db) -> str:
    return "\n".join(json.dumps(doc, default=str, ensure_ascii=False)
                     for name in db.list_collection_names() for doc in db[name].find())


def cassandra_text(profiles: dict[str, Any]) -> str:
    return "\n".join(json.dumps(row._asdict(), default=str, ensure_ascii=False) for row in profiles.values())


