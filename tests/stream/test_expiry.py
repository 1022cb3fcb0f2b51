"""Exact when data leaves or comes back (issue 11): expiry, a replay after a lost checkpoint, and which version
of a user wins when the newest one is a minor or rejected. Real Kafka, Cassandra, FerretDB; the stream runs
in this process's SparkSession.
"""

from __future__ import annotations

import random
import shutil
import time
import uuid
from contextlib import nullcontext
from collections import Counter
from dataclasses import asdict
from typing import Any

import pytest
from pymongo import MongoClient, UpdateOne

from userpipeline.jobs.producer.synthetic import FILTERED, STORED, SyntheticSource, make_user, utc_today
from userpipeline.jobs.stream import deltas, job
from userpipeline.jobs.stream.deltas import Profile
from userpipeline.jobs.stream.expiry import COLLECTION, Expiry, contribution
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.sinks.cassandra import ProfileStore
from userpipeline.jobs.stream.sinks.mongo import HEALTH, AggregateStore, BatchCounts, Journal
from userpipeline.jobs.stream.validate import ID_REASONS

from stream.streamkit import (
    Sent, cassandra_profiles, consume_all, create_topics, expected_groups, isolated, latest_valid,
    mongo_aggregates, publish, recompute_from_cassandra, unique, wait_until, write_spec,
)

pytestmark = pytest.mark.slow

COUNTERS = ("processed", "rejected", "filtered", "erased", "expired")


class Stream:
    def __init__(self, spark, endpoints, settings):
        self.query, self.processor = job.start(spark, settings, endpoints)

    def process_all(self) -> None:
        self.query.processAllAvailable()
        assert self.query.exception() is None

    def stop(self) -> None:
        self.query.stop()
        self.processor.close()


def synthetic(source: SyntheticSource, start: int, stop: int) -> list[tuple]:
    return [(r.payload, r.expected, r.age) for r in source.records(start, stop)]


def exact(session, db, name: str, stream: Stream | None = None) -> dict[str, Any]:
    """Cassandra's profiles, once the aggregates equal a recompute over them. Read between two batches or expiry
    runs of `stream` (its lock): within one, the two stores are a step apart by design."""
    with stream.processor.lock if stream else nullcontext():
        profiles = cassandra_profiles(session, name)
        aggregates = mongo_aggregates(db)
    assert aggregates == recompute_from_cassandra(profiles)
    return profiles


def test_an_expiry_run_removes_exactly_the_expired_rows_once_and_a_crashed_run_is_completed(endpoints, cassandra):
    """Without Spark: rows past the retention go and are subtracted once; a person in the erasure ledger is left
    to the erasure; a run that crashed after subtracting is completed without subtracting again."""
    name = unique("expiryrun")
    ep = isolated(endpoints, name)
    key_id = Pseudonymizer.from_endpoints(ep).key_id
    store, aggregates = ProfileStore(ep, 300, key_id), AggregateStore(ep)
    session = cassandra.session()
    now = int(time.time() * 1000)
    users = [str(uuid.uuid4()) for _ in range(6)]
    # Written 10, 8, 6, 4, 2 and 0 minutes ago; the retention is 5 minutes.
    rows = [Profile(uid, ("male", "female")[i % 2], ("FR", "DE")[i % 2], 20 + 7 * i, None, "mail.example", None, None, None,
                    None, None, None, None, now - (10 - 2 * i) * 60_000, 0, i) for i, uid in enumerate(users)]
    try:
        assert store.write(rows).written == 6
        aggregates.apply(Journal("q:0", 0, utc_today(), deltas.plan_batch(rows, {}).deltas, BatchCounts()))
        db = aggregates.client[name]
        exact(session, db, name)

        expiry = Expiry(store, aggregates, 300, lambda: lambda uid, email: uid == users[0])  # users[0]: being erased
        assert expiry.run(now) == 2
        assert set(exact(session, db, name)) == {users[0], *users[3:]}
        assert expiry.run(now) == 0
        [record] = db["audit"].find({"action": "expire"})
        assert (record["store"], record["count"]) == ("cassandra:profiles", 2)

        # A run that crashed after subtracting users[3], before deleting it and marking its journal done.
        doc = {"_id": "crashed", "at": record["at"], "cutoffMs": now, "rows": 1, "done": False,
               "versions": [f"{rows[3].event_time_ms}:{users[3]}"],
               "deltas": [asdict(d) for d in contribution(list(store.versions([users[3]]).values()))]}
        db[COLLECTION].insert_one(doc)
        db["aggregates"].bulk_write([UpdateOne({"_id": f"{d['dimension']}:{d['key']}"}, {
            "$inc": {"count": d["count"], "ageSum": d["age_sum"]}, "$set": {"appliedExpiry": "crashed"}})
            for d in doc["deltas"]])
        assert expiry.run(now) == 0  # completes "crashed" first: the row goes, nothing is subtracted twice
        assert set(exact(session, db, name)) == {users[0], users[4], users[5]}
        assert db[COLLECTION].find_one({"_id": "crashed"})["done"] is True
        assert db["audit"].count_documents({"action": "expire"}) == 2
    finally:
        session.cluster.shutdown()
        store.close()
        aggregates.close()


RETENTION_SECONDS = 45
SLACK_SECONDS = 10  # an expiry run every second: a profile may outlive its retention by this much here


def after_broker_clock(sent: list[Sent]) -> None:
    """Return once the clock passed the newest of `sent`: the next record gets a later broker timestamp."""
    newest = max(s.timestamp_ms for s in sent)
    wait_until(lambda: time.time() * 1000 > newest, 5, "the broker's clock to pass the records sent")


def check_expiry(session, db, name: str, stream: Stream, sent: list[Sent]) -> dict[str, Any]:
    """Between two batches or expiry runs: the aggregates equal a recompute over Cassandra, every latest valid
    version within its retention is stored, and none past it by more than the slack."""
    with stream.processor.lock:
        now = time.time() * 1000
        profiles = cassandra_profiles(session, name)
        aggregates = mongo_aggregates(db)
    assert aggregates == recompute_from_cassandra(profiles)
    latest = latest_valid(sent)
    assert set(profiles) <= set(latest)
    live = {uid for uid, s in latest.items() if s.timestamp_ms > now - RETENTION_SECONDS * 1000}
    assert live <= set(profiles), "a profile within its retention is missing"
    overdue = {uid for uid, s in latest.items() if s.timestamp_ms <= now - (RETENTION_SECONDS + SLACK_SECONDS) * 1000}
    assert not overdue & set(profiles), "a profile past its retention is still stored"
    assert all(profiles[uid].source_offset == latest[uid].offset for uid in profiles)
    return profiles


def test_after_the_retention_exactly_the_expired_profiles_are_gone_and_a_resent_user_counts_once(spark, endpoints,
                                                                                                  cassandra, tmp_path):
    """Profiles expire `retention.profiles` after their (broker) Kafka timestamp, by the clock: the checks hold
    however fast the machine is (a record the stream reaches only after its retention is counted as expired and
    never stored)."""
    name = unique("expiry")
    topic, ep = name.replace("_", "-"), isolated(endpoints, name)
    spec = write_spec(tmp_path / "pipeline.yaml", topic, profiles_retention=f"{RETENTION_SECONDS}s")
    create_topics(ep.kafka_bootstrap, spec)
    source = SyntheticSource(seed=21, broken_ratio=0.02, minor_ratio=0.05)
    stream = Stream(spark, ep, job.StreamSettings.from_spec(spec, tmp_path / "checkpoint"))
    session, client = cassandra.session(), MongoClient(ep.mongo_uri.get_secret_value())
    db = client[name]
    try:
        sent = publish(ep.kafka_bootstrap, topic, synthetic(source, 0, 1))
        stream.process_all()  # a cold Spark worker's first batch is slow: before the records that must expire
        sent += publish(ep.kafka_bootstrap, topic, synthetic(source, 1, 300))
        stream.process_all()
        latest_old = latest_valid(sent)
        stored_old = set(check_expiry(session, db, name, stream, sent))
        assert stored_old
        assert db[HEALTH].find_one({"_id": "stream"})["expired"] == len(latest_old) - len(stored_old)

        # Half a retention later: 20 of them get a newer version, and 100 new users arrive.
        started = min(s.timestamp_ms for s in sent[1:])
        wait_until(lambda: time.time() * 1000 > started + RETENTION_SECONDS * 500, RETENTION_SECONDS, "half a retention")
        renewed = sorted(stored_old)[:20]
        rng, today = random.Random(6), utc_today()
        records = [(make_user(rng, uid, 40, today), STORED, 40) for uid in renewed] + synthetic(source, 300, 400)
        sent += publish(ep.kafka_bootstrap, topic, records)
        stream.process_all()
        check_expiry(session, db, name, stream, sent)

        expiring = stored_old - set(renewed)
        wait_until(lambda: not expiring & set(cassandra_profiles(session, name)), RETENTION_SECONDS + 60,
                   "the expired profiles to go")
        check_expiry(session, db, name, stream, sent)
        assert sum(d["count"] for d in db["audit"].find({"action": "expire"})) >= len(expiring)

        # 10 expired users re-sent as they were: each counts once.
        back = [latest_old[uid] for uid in sorted(expiring)[:10]]
        sent += publish(ep.kafka_bootstrap, topic, [(s.payload, STORED, s.age) for s in back])
        stream.process_all()
        profiles = check_expiry(session, db, name, stream, sent)
        assert {s.user["login"]["uuid"] for s in back} <= set(profiles)
        assert db[HEALTH].find_one({"_id": "stream"})["processed"] == len(sent)
    finally:
        stream.stop()
        session.cluster.shutdown()
        client.close()


def rank(s: Sent) -> tuple:
    """Newest first by Kafka timestamp; on a tie a valid record beats a minor or a rejected one, then the first
    offset wins (docs/data-contract.md)."""
    return s.timestamp_ms, s.expected == STORED, -s.partition, -s.offset


def newest_wins(sent: list[Sent]) -> dict[str, Sent]:
    """The users whose newest record naming them (valid, minor, or rejected after its id passed) is valid."""
    newest: dict[str, Sent] = {}
    for s in sent:
        if not isinstance(s.payload, dict) or s.expected in ID_REASONS:
            continue
        uid = s.user["login"]["uuid"]
        current = newest.get(uid)
        if current is None or rank(s) > rank(current):
            newest[uid] = s
    return {uid: s for uid, s in newest.items() if s.expected == STORED}


def stored_state(session, db, name: str, topic: str, bootstrap: str) -> tuple:
    rows = {r.user_id: r._asdict() for r in session.execute(f"SELECT * FROM {name}.profiles")}
    stamps = {r.user_id: (r.w, r.t)
              for r in session.execute(f"SELECT user_id, writetime(nat) AS w, ttl(nat) AS t FROM {name}.profiles")}
    health = db[HEALTH].find_one({"_id": "stream"})
    return rows, stamps, mongo_aggregates(db), {c: health[c] for c in COUNTERS}, len(consume_all(bootstrap, f"{topic}.dlq"))


def test_a_newer_minor_or_rejected_version_removes_the_user_and_a_replay_changes_nothing(spark, endpoints, cassandra,
                                                                                           tmp_path):
    name = unique("replay")
    topic, ep = name.replace("_", "-"), isolated(endpoints, name)
    spec = write_spec(tmp_path / "pipeline.yaml", topic)
    create_topics(ep.kafka_bootstrap, spec)
    source = SyntheticSource(seed=31, broken_ratio=0.03, minor_ratio=0.05)
    first = publish(ep.kafka_bootstrap, topic, synthetic(source, 0, 300))
    ids = sorted(latest_valid(first))
    rng, today = random.Random(8), utc_today()

    def minor(uid: str) -> tuple:
        return make_user(rng, uid, 15, today), FILTERED, 15

    def rejected(uid: str) -> tuple:
        user = make_user(rng, uid, 30, today)
        return {**user, "dob": {**user["dob"], "date": "2999-01-01T00:00:00.000Z"}}, "invalid_dob", None

    # In the same batch as the first versions: 5 users become minors.
    same_batch = [minor(uid) for uid in ids[:5]]
    after_broker_clock(first)  # the raw topic uses broker time: each newer version gets a later timestamp
    sent = first + publish(ep.kafka_bootstrap, topic, same_batch)
    stream = Stream(spark, ep, job.StreamSettings.from_spec(spec, tmp_path / "checkpoint"))
    session, client = cassandra.session(), MongoClient(ep.mongo_uri.get_secret_value())
    db = client[name]
    try:
        stream.process_all()
        # In later batches: 10 more become minors, 5 are rejected (a date of birth in the future), 5 move on
        # (a newer valid version), and 3 of the minors come back as adults.
        later = [minor(uid) for uid in ids[5:15]] + [rejected(uid) for uid in ids[15:20]]
        later += [(make_user(rng, uid, 50, today), STORED, 50) for uid in ids[20:25]]
        after_broker_clock(sent)
        sent += publish(ep.kafka_bootstrap, topic, later)
        stream.process_all()
        back = [(make_user(rng, uid, 33, today), STORED, 33) for uid in ids[:3]]
        after_broker_clock(sent)
        sent += publish(ep.kafka_bootstrap, topic, back)
        stream.process_all()

        expected = newest_wins(sent)
        assert set(expected) == set(ids) - set(ids[3:20])
        profiles = exact(session, db, name, stream)
        assert set(profiles) == set(expected)
        assert mongo_aggregates(db) == expected_groups(expected)
        outcomes = Counter(s.expected for s in sent)
        health = db[HEALTH].find_one({"_id": "stream"})
        assert (health["processed"], health["filtered"], health["rejected"]) == (
            len(sent), outcomes[FILTERED], len(sent) - outcomes[STORED] - outcomes[FILTERED])
        before = stored_state(session, db, name, topic, ep.kafka_bootstrap)
        assert before[4] == health["rejected"]

        # The checkpoint is lost: a new query reads the whole raw topic again.
        stream.stop()
        shutil.rmtree(tmp_path / "checkpoint")
        stream = Stream(spark, ep, job.StreamSettings.from_spec(spec, tmp_path / "checkpoint"))
        stream.process_all()
        rows, stamps, aggregates, counters, letters = stored_state(session, db, name, topic, ep.kafka_bootstrap)
        assert (rows, aggregates, counters, letters) == (before[0], before[2], before[3], before[4])
        assert {uid: w for uid, (w, _) in stamps.items()} == {uid: w for uid, (w, _) in before[1].items()}
        assert all(ttl <= before[1][uid][1] for uid, (_, ttl) in stamps.items()), "a replay extended a TTL"
    finally:
        stream.stop()
        session.cluster.shutdown()
        client.close()
