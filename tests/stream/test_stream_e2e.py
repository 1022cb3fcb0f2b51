"""The streaming job against real Kafka, Cassandra and FerretDB, in this process's SparkSession.

Each test has its own topic, keyspace and database. The exactness checks compare three things that
are computed independently: what was published (the expected latest version of every user), what
Cassandra holds, and the MongoDB aggregates.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import timedelta

import pytest
from cassandra import OperationTimedOut

from userpipeline.dashboard.store import snapshot_from_documents
from userpipeline.dashboard.viewmodel import build_view
from userpipeline.jobs.producer.synthetic import STORED, SyntheticSource, edge_records, make_user, utc_today
from userpipeline.jobs.stream import job
from userpipeline.jobs.stream.health import STALL_SECONDS, assess
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.sinks.cassandra import TABLE, ProfileStore

from stream.streamkit import (
    assert_dead_letters, assert_exact, assert_health, cassandra_profiles, consume_all, create_topics, isolated, latest_valid,
    publish, unique, wait_until, write_spec,
)

pytestmark = pytest.mark.slow


class Run:
    """One job run in the test's SparkSession, with the test's own topic, keyspace and database."""

    def __init__(self, spark, endpoints, tmp_path, *, max_records: int = 5000):
        self.name = unique("stream")
        self.topic = self.name.replace("_", "-")
        self.spec = write_spec(tmp_path / "pipeline.yaml", self.topic, max_records=max_records)
        self.endpoints = isolated(endpoints, self.name)
        self.settings = job.StreamSettings.from_spec(self.spec, tmp_path / "checkpoint")
        create_topics(self.endpoints.kafka_bootstrap, self.spec)
        self.spark = spark
        self.query = self.processor = None

    def start(self, profile_store: type[ProfileStore] = ProfileStore) -> None:
        self.query, self.processor = job.start(self.spark, self.settings, self.endpoints, profile_store)

    def process_all(self) -> None:
        self.query.processAllAvailable()
        assert self.query.exception() is None

    def stop(self) -> None:
        if self.query is not None:
            self.query.stop()
            self.processor.close()

    @property
    def db(self):
        return self.processor.aggregates.client[self.name]

    def profiles(self, cassandra) -> dict:
        session = cassandra.session()
        try:
            return cassandra_profiles(session, self.name)
        finally:
            session.cluster.shutdown()


@pytest.fixture
def run(spark, endpoints, tmp_path):
    runs: list[Run] = []

    def make(**kwargs) -> Run:
        runs.append(Run(spark, endpoints, tmp_path, **kwargs))
        return runs[-1]

    yield make
    for r in runs:
        r.stop()


def synthetic(source: SyntheticSource, start: int, stop: int) -> list[tuple]:
    return [(r.payload, r.expected, r.age) for r in source.records(start, stop)]


def test_20k_records_with_broken_ones_then_resends_and_old_replays(run, cassandra):
    r = run(max_records=5000)
    source = SyntheticSource(seed=7, broken_ratio=0.05, minor_ratio=0.05)
    sent = publish(r.endpoints.kafka_bootstrap, r.topic, synthetic(source, 0, 20_000))
    r.start()
    r.process_all()
    assert_exact(r.profiles(cassandra), r.db, sent)
    assert_dead_letters(r.endpoints.kafka_bootstrap, r.topic, sent)
    assert_health(r.db, sent)

    # The same users again: 400 with new fields (nationality, gender, email, age all change); then first
    # versions re-sent with their original timestamps as CreateTime, 100 of the changed users and 100 others.
    # The raw topic uses broker time (LogAppendTime): the re-sends are the newest versions and win.
    stored = [s for s in sent if s.expected == STORED][:600]
    rng, today = random.Random(5), utc_today()
    changed = []
    for s in stored[:400]:
        age = rng.randint(18, 90)
        changed.append((make_user(rng, s.user["login"]["uuid"], age, today), STORED, age))
    sent += publish(r.endpoints.kafka_bootstrap, r.topic, changed)
    newest = max(s.timestamp_ms for s in sent)
    wait_until(lambda: time.time() * 1000 > newest, 5, "the broker's clock to pass the changed versions")
    replayed = stored[:100] + stored[400:500]
    resent = publish(r.endpoints.kafka_bootstrap, r.topic, [(s.payload, STORED, s.age) for s in replayed],
                     timestamps_ms=[s.timestamp_ms for s in replayed])
    sent += resent
    assert all(s.timestamp_ms > newest for s in resent), "the broker stamps the records, not the producer"
    r.process_all()
    profiles = r.profiles(cassandra)
    assert_exact(profiles, r.db, sent)
    assert all(profiles[s.user["login"]["uuid"]].source_offset == s.offset for s in resent)
    assert_health(r.db, sent)

    session = cassandra.session()
    try:
        ttl = session.execute("SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
                              (r.name, TABLE)).one().default_time_to_live
        uid = stored[300].user["login"]["uuid"]
        written = session.execute(f"SELECT writetime(nat) AS w FROM {r.name}.profiles WHERE user_id = %s", (uid,)).one().w
    finally:
        session.cluster.shutdown()
    assert ttl == 30 * 86400
    assert written == latest_valid(sent)[uid].timestamp_ms * 1000


def test_a_producer_clock_ahead_does_not_make_a_record_win(run, cassandra):
    """The raw topic uses broker time: a record whose CreateTime is a year ahead is stamped on arrival, so a
    later record of the same user still wins (issue 11)."""
    r = run()
    rng, today = random.Random(11), utc_today()
    ahead = int(time.time() * 1000) + 365 * 86_400_000
    first = valid_users(rng, 3)
    sent = publish(r.endpoints.kafka_bootstrap, r.topic, first, timestamps_ms=[ahead] * len(first))
    assert all(s.timestamp_ms < ahead for s in sent), "the broker stamps the records, not the producer"
    newest = max(s.timestamp_ms for s in sent)
    wait_until(lambda: time.time() * 1000 > newest, 5, "the broker's clock to pass the first versions")
    later = [(make_user(rng, user["login"]["uuid"], age, today), STORED, age)
             for (user, _, _), age in zip(first, (30, 40, 50))]
    sent += publish(r.endpoints.kafka_bootstrap, r.topic, later)
    r.start()
    r.process_all()
    profiles = r.profiles(cassandra)
    assert sorted(p.age for p in profiles.values()) == [30, 40, 50]
    assert_exact(profiles, r.db, sent)


def test_edge_records(run, cassandra):
    r = run()
    today = utc_today()
    records = edge_records(today)
    sent = publish(r.endpoints.kafka_bootstrap, r.topic, [(e.payload, e.expected, None) for e in records])
    r.start()
    r.process_all()
    assert utc_today() == today, "the day changed during the test; rerun it"
    profiles = r.profiles(cassandra)
    stored = {e.name: e for e in records if e.expected == STORED}
    assert set(profiles) == {e.marker for e in stored.values()}
    by_name = {name: profiles[e.marker] for name, e in stored.items()}
    assert by_name["age_18_today"].age == 18 and by_name["age_120"].age == 120
    pseudonyms = Pseudonymizer.from_endpoints(r.endpoints)
    for name in ("name_greek", "name_cyrillic", "name_arabic", "name_cjk", "name_emoji"):
        user = stored[name].payload
        assert by_name[name].name_hmac == pseudonyms.digest("name", f"{user['name']['first']} {user['name']['last']}")
        assert by_name[name].dob_hmac == pseudonyms.digest("dob", user["dob"]["date"][:10])
    assert_dead_letters(r.endpoints.kafka_bootstrap, r.topic, sent)
    health = r.db["pipeline_health"].find_one({"_id": "stream"})
    assert (health["processed"], health["rejected"], health["filtered"]) == (len(records), 2, 2)


def test_kafka_restart_mid_run(run, cassandra, kafka):
    r = run(max_records=2000)
    source = SyntheticSource(seed=8, broken_ratio=0.05, minor_ratio=0.05)
    sent = publish(r.endpoints.kafka_bootstrap, r.topic, synthetic(source, 0, 20_000))
    r.start()
    health = r.db["pipeline_health"]
    wait_until(lambda: (health.find_one({"_id": "stream"}) or {}).get("processed", 0) >= 4000, 300, "the first batches")
    kafka.restart()
    wait_until(lambda: (health.find_one({"_id": "stream"}) or {}).get("processed", 0) >= len(sent)
               or r.query.exception() is not None, 600, "all records after the Kafka restart")
    assert r.query.exception() is None
    r.process_all()
    assert_exact(r.profiles(cassandra), r.db, sent)
    assert_dead_letters(r.endpoints.kafka_bootstrap, r.topic, sent)
    assert_health(r.db, sent)


class FaultyProfiles(ProfileStore):
    """The real Cassandra sink, with two faults the test switches on: rows it cannot encode (the driver refuses
    them, as it would a value it cannot serialise) and a Cassandra that does not answer at all."""

    refuse: set[str] = set()
    unreachable = False

    def write(self, profiles):
        if type(self).unreachable:
            raise OperationTimedOut("injected by the test: Cassandra does not answer")
        return super().write(profiles)

    def _values(self, p):
        if p.user_id in type(self).refuse:
            raise ValueError("injected by the test: the driver cannot encode this row")
        return super()._values(p)


def valid_users(rng: random.Random, count: int) -> list[tuple]:
    today, users = utc_today(), []
    for _ in range(count):
        age = rng.randint(18, 90)
        users.append((make_user(rng, str(uuid.UUID(int=rng.getrandbits(128), version=4)), age, today), STORED, age))
    return users


def broken(rng: random.Random, reason: str, change) -> tuple:
    user = valid_users(rng, 1)[0][0]
    change(user)
    return user, reason, None


def test_no_record_stops_the_stream_and_a_failing_batch_is_visible(run, cassandra):
    r = run()
    rng = random.Random(10)
    faults = type("Faults", (FaultyProfiles,), {"refuse": set(), "unreachable": False})
    refused = valid_users(rng, 1)[0]
    faults.refuse.add(refused[0]["login"]["uuid"])
    records = [
        *valid_users(rng, 5),
        broken(rng, "field_too_long", lambda u: u["name"].update(first="A" * 60_000)),  # the record
        *valid_users(rng, 5),
        broken(rng, "missing_id", lambda u: u["login"].update(uuid="\t")),
        broken(rng, "invalid_id", lambda u: u["login"].update(uuid="user-42")),
        (refused[0], "sink_rejected", refused[2]),
    ]
    sent = publish(r.endpoints.kafka_bootstrap, r.topic, records)
    r.start(faults)
    r.process_all()
    assert_exact(r.profiles(cassandra), r.db, sent)  # the ten valid users, their aggregates without the refused one
    assert_dead_letters(r.endpoints.kafka_bootstrap, r.topic, sent)
    assert_health(r.db, sent)
    details = {json.loads(m.value())["reason"]: json.loads(m.value())["detail"]
               for m in consume_all(r.endpoints.kafka_bootstrap, f"{r.topic}.dlq")}
    assert details["field_too_long"] == "name.first has 60000 characters, over the limit of 256"
    assert details["sink_rejected"].startswith("Cassandra refused the row: ValueError")

    sent += publish(r.endpoints.kafka_bootstrap, r.topic, valid_users(rng, 5))  # later records flow
    r.process_all()
    assert_exact(r.profiles(cassandra), r.db, sent)

    faults.unreachable = True
    sent += publish(r.endpoints.kafka_bootstrap, r.topic, valid_users(rng, 3))
    health = r.db["pipeline_health"]
    wait_until(lambda: "failing" in health.find_one({"_id": "stream"}), 120, "the failing batch in the health document")
    doc = health.find_one({"_id": "stream"})
    failing = doc["failing"]
    assert "OperationTimedOut" in failing["error"] and failing["batchId"] > doc["lastBatchId"]
    assert not assess(doc, now=failing["since"] + timedelta(seconds=1)).stalled
    later = failing["since"] + timedelta(seconds=STALL_SECONDS)
    verdict = assess(doc, now=later)
    assert verdict.stalled and f"batch {failing['batchId']} keeps failing" in verdict.reason
    view = build_view(snapshot_from_documents([], doc), None, k=1, top_domains=10, refresh_s=5, now=later, database=r.name)
    assert view.status == "stalled" and verdict.reason in view.message

    faults.unreachable = False
    wait_until(lambda: "failing" not in health.find_one({"_id": "stream"}), 120, "the batch to succeed after the fault")
    r.process_all()
    assert_exact(r.profiles(cassandra), r.db, sent)
    assert_health(r.db, sent)
