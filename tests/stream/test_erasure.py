"""Right to erasure against real Kafka, Cassandra, FerretDB and the stream in this process's SparkSession.

`userpipeline erase` (the command, as a person runs it) deletes 100 people; neither re-sending them nor
replaying the whole raw topic with a new checkpoint brings any of them back, and the aggregates stay
equal to a recompute over Cassandra throughout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import uuid

from dataclasses import asdict

import pytest
from pydantic import SecretStr
from pymongo import MongoClient

from userpipeline.jobs.erasure import ledger
from userpipeline.jobs.erasure.erase import COLLECTION, Eraser, Profiles, Request, removed
from userpipeline.jobs.producer.synthetic import STORED, SyntheticSource, make_user, utc_today
from userpipeline.jobs.stream import deltas, job
from userpipeline.jobs.stream.deltas import Profile
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.sinks.cassandra import ProfileStore
from userpipeline.jobs.stream.sinks.mongo import HEALTH, AggregateStore, BatchCounts, Journal

from stream.streamkit import (
    assert_exact, cassandra_profiles, create_topics, expected_groups, isolated, latest_valid, leaked, mongo_aggregates,
    mongo_text, publish, recompute_from_cassandra, unique, wait_until, write_spec,
)

pytestmark = pytest.mark.slow


def erase_command(spec_path, endpoints, *args: str) -> str:
    env = {**os.environ, **endpoints.to_env()}
    result = subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", "erase", "-f", str(spec_path), *args],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def closure(stored: dict[str, str], user_ids: set[str], emails: set[str]) -> set[str]:
    """The stored users (id -> lower-case email) sharing an id or an email with the request, transitively."""
    user_ids, emails = set(user_ids), {e.lower() for e in emails}
    while True:
        found = {uid for uid, email in stored.items() if uid in user_ids or email in emails}
        more = {stored[uid] for uid in found} - emails
        if found <= user_ids and not more:
            return found
        user_ids |= found
        emails |= more


def receipt_numbers(text: str) -> tuple[int, int]:
    match = re.search(r"erasure receipt [0-9a-f]{32} at .*: (\d+) subjects, (\d+) profiles deleted", " ".join(text.split()))
    assert match, text
    return int(match.group(1)), int(match.group(2))


class Stream:
    def __init__(self, spark, endpoints, settings):
        self.query, self.processor = job.start(spark, settings, endpoints)

    def process_all(self) -> None:
        self.query.processAllAvailable()
        assert self.query.exception() is None

    def stop(self) -> None:
        self.query.stop()
        self.processor.close()


def test_erase_100_people_then_resends_and_a_replay_bring_none_back(spark, endpoints, cassandra, tmp_path):
    name = unique("erase")
    topic, ep = name.replace("_", "-"), isolated(endpoints, name)
    spec_path = tmp_path / "pipeline.yaml"
    spec = write_spec(spec_path, topic, max_records=2000)
    create_topics(ep.kafka_bootstrap, spec)
    source = SyntheticSource(seed=11, broken_ratio=0.02, minor_ratio=0.03)
    sent = publish(ep.kafka_bootstrap, topic, [(r.payload, r.expected, r.age) for r in source.records(0, 2000)])
    stream = Stream(spark, ep, job.StreamSettings.from_spec(spec, tmp_path / "checkpoint"))
    session, client = cassandra.session(), MongoClient(ep.mongo_uri.get_secret_value())
    db = client[name]
    try:
        stream.process_all()
        assert_exact(cassandra_profiles(session, name), db, sent)

        latest = latest_valid(sent)
        chosen = random.Random(3).sample(sorted(latest), 100)
        by_email, by_id = chosen[:50], chosen[50:]
        emails = {uid: latest[uid].user["email"] for uid in chosen}
        stored = {uid: s.user["email"].strip().lower() for uid, s in latest.items()}

        # Half by email (from a file), half by user id (flags): each run deletes everyone sharing an id or an email.
        subjects = tmp_path / "subjects.txt"
        subjects.write_text("# erasure requests\n" + "\n".join(emails[uid] for uid in by_email) + "\n")
        first = closure(stored, set(), {emails[uid] for uid in by_email})
        receipt = erase_command(spec_path, ep, "--from-file", str(subjects))
        assert receipt_numbers(receipt) == (50, len(first))
        rest = {uid: email for uid, email in stored.items() if uid not in first}
        second = closure(rest, set(by_id) - first, set())
        receipt2 = erase_command(spec_path, ep, *[arg for uid in by_id for arg in ("--user-id", uid.upper())])
        assert receipt_numbers(receipt2) == (50, len(second))
        erased = first | second
        assert set(chosen) <= erased

        survivors = {uid: s for uid, s in latest.items() if uid not in erased}
        profiles = cassandra_profiles(session, name)
        assert set(profiles) == set(survivors)
        assert mongo_aggregates(db) == recompute_from_cassandra(profiles) == expected_groups(survivors)

        # The ledger, the receipts and the audit hold keyed hashes and numbers, never an email or a user id.
        plaintext = {latest[uid].user["email"] for uid in erased} | erased | {uid.upper() for uid in erased}
        assert leaked(mongo_text(db), plaintext) == set()
        assert leaked(receipt + receipt2, plaintext) == set()
        entries = list(db[ledger.COLLECTION].find())
        key = Pseudonymizer.from_endpoints(ep).key
        assert {e["hash"] for e in entries if e["kind"] == ledger.USER_ID} == {ledger.user_digest(key, u) for u in erased}
        assert {e["keyId"] for e in entries} == {ep.hmac_key_id}
        assert "key id test-1" in receipt
        audits = sorted((d["action"], d["count"]) for d in db["audit"].find())
        assert audits == sorted([("erase", len(first)), ("erase", len(second))])
        assert db[COLLECTION].count_documents({"done": True}) == 2

        # Re-sent: 20 erased users as they were, 10 with new details, 5 new ids with an erased email.
        rng, today = random.Random(4), utc_today()
        again = [(latest[uid].payload, STORED, latest[uid].age) for uid in chosen[:10] + chosen[50:60]]
        again += [(make_user(rng, uid, 40, today), STORED, 40) for uid in chosen[20:25] + chosen[70:75]]
        for uid in chosen[30:35]:
            user = make_user(rng, str(uuid.UUID(int=rng.getrandbits(128), version=4)), 30, today)
            again.append(({**user, "email": emails[uid].upper()}, STORED, 30))
        publish(ep.kafka_bootstrap, topic, again)
        stream.process_all()
        profiles = cassandra_profiles(session, name)
        assert set(profiles) == set(survivors)
        assert mongo_aggregates(db) == recompute_from_cassandra(profiles) == expected_groups(survivors)
        assert db[HEALTH].find_one({"_id": "stream"})["erased"] == len(again)

        # The checkpoint is lost: a new query replays the whole raw topic.
        stream.stop()
        shutil.rmtree(tmp_path / "checkpoint")
        stream = Stream(spark, ep, job.StreamSettings.from_spec(spec, tmp_path / "checkpoint"))
        stream.process_all()
        profiles = cassandra_profiles(session, name)
        assert set(profiles) == set(survivors)
        assert mongo_aggregates(db) == recompute_from_cassandra(profiles) == expected_groups(survivors)
        # Counted once: the replayed offsets are below the high-water marks (docs/data-contract.md, issue 11).
        assert db[HEALTH].find_one({"_id": "stream"})["erased"] == len(again)
    finally:
        stream.stop()
        session.cluster.shutdown()
        client.close()


def test_erase_waits_for_the_batch_in_flight_and_a_crashed_erasure_is_completed_once(endpoints, cassandra):
    """Without Spark: a batch marked in flight holds the deletion back; an erasure that crashed after subtracting
    (journal not done) is completed by the next run without subtracting again."""
    name = unique("erasewait")
    ep = isolated(endpoints, name)
    pseudonymizer = Pseudonymizer.from_endpoints(ep)
    store, aggregates = ProfileStore(ep, 3600, pseudonymizer.key_id), AggregateStore(ep)
    profiles = Profiles(ep, pseudonymizer)
    users = [str(uuid.uuid4()) for _ in range(3)]
    rows = [Profile(uid, "female", "FR", 30 + i, None, "mail.example", pseudonymizer.digest("email", f"p{i}@mail.example"),
                    None, None, None, None, None, None, 1_700_000_000_000 + i, 0, i) for i, uid in enumerate(users)]
    try:
        assert store.write(rows).written == 3
        aggregates.apply(Journal("q:0", 0, utc_today(), deltas.plan_batch(rows, {}).deltas, BatchCounts()))
        db = aggregates.client[name]

        aggregates.mark_in_flight("q:1")
        eraser = Eraser(db, profiles, pseudonymizer, wait_seconds=60)
        result: list = []
        worker = threading.Thread(target=lambda: result.append(eraser.erase(Request(user_ids=(users[0],)))))
        worker.start()
        wait_until(lambda: db[ledger.COLLECTION].count_documents({}) >= 1, 30, "the ledger entry")
        worker.join(1.0)
        assert worker.is_alive() and set(store.versions(users)) == set(users), "deleted while a batch was in flight"
        aggregates.clear_in_flight("q:1")
        worker.join(30)
        assert result and result[0].rows_deleted == 1
        assert set(store.versions(users)) == set(users[1:])
        total = lambda: db["aggregates"].find_one({"_id": "total:all"})["count"]  # noqa: E731
        assert total() == 2

        # A crash after step 5 subtracted but before the journal was done: the next run completes it, once.
        hashes = {ledger.user_digest(pseudonymizer.key, users[1])}
        journal_deltas = removed(profiles.matching(hashes, set()))
        db[COLLECTION].insert_one({"_id": "crashed", "at": dt.datetime.now(dt.timezone.utc), "keyId": pseudonymizer.key_id,
                                   "subjects": 1, "userHashes": sorted(hashes), "emailHashes": [], "rows": 1,
                                   "deltas": [asdict(d) for d in journal_deltas], "done": False})
        eraser._apply("crashed", journal_deltas)
        assert total() == 1
        receipt = eraser.erase(Request(user_ids=(users[1],)))  # completes "crashed" first, then finds nothing left
        assert receipt.rows_deleted == 0
        assert set(store.versions(users)) == {users[2]} and total() == 1
        assert db[COLLECTION].find_one({"_id": "crashed"})["done"] is True
        assert db["audit"].count_documents({"_id": "crashed"}) == 1
    finally:
        profiles.close()
        store.close()
        aggregates.close()


def test_erase_command_says_what_to_do_with_a_bad_request(tmp_path):
    spec_path = tmp_path / "p.yaml"
    spec_path.write_text("apiVersion: userpipeline.io/v1alpha1\nkind: UserPipeline\nmetadata: {name: p}\n")
    requests = tmp_path / "requests.txt"
    requests.write_text("a.person@mail.example\nnot-an-id\n")
    env = {**os.environ, "USERPIPELINE_HMAC_KEY": "k" * 32}
    for args, says in ((["--user-id", "12345"], "is not a UUID"), (["--from-file", str(requests)], "line 2"), ([], "nobody")):
        result = subprocess.run([sys.executable, "-m", "userpipeline.operator.cli", "erase", "-f", str(spec_path), *args],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert says in result.stderr and "a.person" not in result.stderr + result.stdout


def test_key_rotation_new_records_use_the_new_key_and_erasure_finds_every_key_id(spark, endpoints, cassandra, tmp_path):
    """Records before a rotation keep the old key's HMACs and id, later ones get the new key's; erasure by email
    and by user id finds rows of both key ids through the index (no scan), and the stream keeps the erased people
    out under the new key, also by an email the ledger knows only under the old one (issue 11)."""
    name = unique("rotate")
    topic = name.replace("_", "-")
    old_ep = isolated(endpoints, name).model_copy(update={"hmac_key": SecretStr("old-key-" + "a" * 32), "hmac_key_id": ""})
    old = Pseudonymizer.from_endpoints(old_ep)
    new_ep = old_ep.model_copy(update={"hmac_key": SecretStr("new-key-" + "b" * 32),
                                       "hmac_retired_keys": SecretStr(json.dumps({old.key_id: "old-key-" + "a" * 32}))})
    new = Pseudonymizer.from_endpoints(new_ep)
    assert new.key_id != old.key_id and [key_id for key_id, _ in new.ring] == [new.key_id, old.key_id]
    spec = write_spec(tmp_path / "pipeline.yaml", topic, max_records=2000)
    settings = job.StreamSettings.from_spec(spec, tmp_path / "checkpoint")
    create_topics(old_ep.kafka_bootstrap, spec)
    rng, today = random.Random(12), utc_today()

    def users(count: int, start: int) -> list[tuple]:
        made = []
        for i in range(start, start + count):
            user = make_user(rng, str(uuid.UUID(int=rng.getrandbits(128), version=4)), 20 + i % 60, today)
            made.append(({**user, "email": f"person{i}@mail{i % 7}.example"}, STORED, 20 + i % 60))
        return made

    first = users(200, 0)
    sent = publish(old_ep.kafka_bootstrap, topic, first)
    stream = Stream(spark, old_ep, settings)
    session, client = cassandra.session(), MongoClient(new_ep.mongo_uri.get_secret_value())
    db = client[name]
    profiles_store = None
    try:
        stream.process_all()
        stream.stop()
        changed = [({**user, "nat": "NZ"}, STORED, age) for user, _, age in first[:20]]  # re-sent after the rotation
        sent += publish(new_ep.kafka_bootstrap, topic, users(200, 200) + changed)
        stream = Stream(spark, new_ep, settings)
        stream.process_all()
        latest = latest_valid(sent)
        profiles = cassandra_profiles(session, name)
        assert_exact(profiles, db, sent)
        key_of = {uid: row.hmac_key_id for uid, row in profiles.items()}
        old_rows = {uid for uid, key_id in key_of.items() if key_id == old.key_id}
        assert len(old_rows) == 180 and set(key_of.values()) == {old.key_id, new.key_id}
        for uid in sorted(profiles)[:50]:
            made_by = old if uid in old_rows else new
            assert profiles[uid].email_hmac == made_by.digest("email", latest[uid].user["email"])

        # One request: 3 emails of old rows, 3 of new ones, 3 user ids of old rows.
        new_rows = sorted(set(profiles) - old_rows)
        by_email, by_id = sorted(old_rows)[:3] + new_rows[:3], sorted(old_rows)[3:6]
        profiles_store = Profiles(new_ep, new)
        receipt = Eraser(db, profiles_store, new).erase(Request(
            user_ids=tuple(by_id), emails=tuple(latest[uid].user["email"].upper() for uid in by_email)))
        assert (receipt.rows_deleted, profiles_store.scans) == (9, 0)
        assert receipt.key_ids == (new.key_id, old.key_id) and f"key ids {new.key_id}, {old.key_id}" in receipt.text()
        erased = set(by_email) | set(by_id)
        survivors = {uid: s for uid, s in latest.items() if uid not in erased}
        profiles = cassandra_profiles(session, name)
        assert set(profiles) == set(survivors)
        assert mongo_aggregates(db) == recompute_from_cassandra(profiles) == expected_groups(survivors)
        assert {e["keyId"] for e in db[ledger.COLLECTION].find()} == {new.key_id, old.key_id}

        # Re-sent under the new key: every erased person as they were, and new ids with the emails of the people
        # erased by user id (their email hashes came from old rows: the ledger has them under the old key only).
        again = [(latest[uid].payload, STORED, latest[uid].age) for uid in sorted(erased)]
        again += [({**user, "email": latest[uid].user["email"]}, STORED, age)
                  for (user, _, age), uid in zip(users(3, 400), by_id)]
        publish(new_ep.kafka_bootstrap, topic, again)
        stream.process_all()
        profiles = cassandra_profiles(session, name)
        assert set(profiles) == set(survivors)
        assert mongo_aggregates(db) == recompute_from_cassandra(profiles)
        assert db[HEALTH].find_one({"_id": "stream"})["erased"] == len(again)
    finally:
        stream.stop()
        if profiles_store is not None:
            profiles_store.close()
        session.cluster.shutdown()
        client.close()
