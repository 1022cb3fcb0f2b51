"""Classification in Spark (no services): the contract's reasons, ages to the day, addresses, pseudonyms."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone

from pyspark.sql import DataFrame, SparkSession

from userpipeline.jobs.producer.sanitize import to_message
from userpipeline.jobs.producer.synthetic import STORED, SyntheticSource, edge_records
from userpipeline.jobs.stream import transform
from userpipeline.jobs.stream.pseudonymize import Pseudonymizer
from userpipeline.jobs.stream.sinks.deadletter import dead_letters

from stream.streamkit import leaked

TODAY = date(2025, 6, 15)
PSEUDONYMIZER = Pseudonymizer(b"unit-test-key", "unit-1")
KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
WHEN = datetime(2025, 6, 15, 12, 0, tzinfo=timezone.utc)


def kafka_frame(spark: SparkSession, values: list[bytes | None]) -> DataFrame:
    rows = [(None, value, "users.raw", 0, offset, WHEN) for offset, value in enumerate(values)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def outcome(row) -> str:
    return row.reason or (STORED if row.status == transform.VALID else row.status)


def classify(spark: SparkSession, values: list[bytes | None], as_of: date = TODAY, minimum_age: int = 18) -> list:
    frame = transform.classify(kafka_frame(spark, values), as_of, minimum_age, PSEUDONYMIZER)
    return sorted(frame.collect(), key=lambda row: row.source_offset)


def user(**changes) -> dict:
    base = json.loads(to_message(SyntheticSource(seed=3).record(0).payload).value)
    return {**base, **changes}


def test_edge_records_get_their_expected_outcome(spark):
    records = edge_records(TODAY)
    rows = classify(spark, [to_message(r.payload).value for r in records])
    assert {r.name: outcome(row) for r, row in zip(records, rows)} == {r.name: r.expected for r in records}
    by_name = {r.name: row for r, row in zip(records, rows)}
    assert by_name["age_18_today"].age == 18 and by_name["age_120"].age == 120
    assert by_name["name_emoji"].name_hmac == PSEUDONYMIZER.digest("name", "Zoë 🦄 Smith 👩‍💻")
    assert by_name["name_greek"].name_hmac == PSEUDONYMIZER.digest("name", "Αλέξανδρος Παπαδόπουλος")
    assert by_name["age_18_today"].dob_hmac == PSEUDONYMIZER.digest("dob", date(TODAY.year - 18, 6, 15).isoformat())


def test_synthetic_broken_records_get_the_generators_reason(spark):
    records = list(SyntheticSource(seed=11, broken_ratio=0.25, minor_ratio=0.1, today=TODAY).records(0, 400))
    rows = classify(spark, [to_message(r.payload).value for r in records])
    mismatches = [(r.index, r.expected, outcome(row), row.detail) for r, row in zip(records, rows) if outcome(row) != r.expected]
    assert mismatches == []
    assert {r.expected for r in records} >= {"malformed_json", "not_an_object", "missing_id", "missing_dob",
                                              "invalid_dob", "wrong_type", "oversized", "filtered", STORED}


ODD_VALUES = [
    (None, "malformed_json"),
    (b"", "malformed_json"),
    (b"\xff\xfe{\"a\": 1}", "malformed_json"),
    (b"null", "not_an_object"),
    (b"42", "not_an_object"),
    (json.dumps(user(login={"uuid": 12345})).encode(), "wrong_type"),
    (json.dumps(user(email={"a": 1})).encode(), "wrong_type"),
    (json.dumps(user(dob={"date": 631152000, "age": 30})).encode(), "wrong_type"),
    (json.dumps(user(login={"uuid": "   "})).encode(), "missing_id"),
    (json.dumps(user(login={"uuid": "\t"})).encode(), "missing_id"),
    (json.dumps(user(login={"uuid": "user-42"})).encode(), "invalid_id"),
    (json.dumps(user(login={"uuid": "6a8c4e1e-3f7b-4c2d-9e0a-1b2c3d4e5f6a\n"})).encode(), "invalid_id"),
    (json.dumps(user(login={"uuid": " 6a8c4e1e-3f7b-4c2d-9e0a-1b2c3d4e5f6a"})).encode(), "invalid_id"),
    (json.dumps(user(login={"uuid": "6a8c4e1e3f7b4c2d9e0a1b2c3d4e5f6a"})).encode(), "invalid_id"),
    (json.dumps(user(login={"uuid": "x" * 70_000})).encode(), "invalid_id"),
    (json.dumps(user(name={"title": "Ms", "first": "A" * 60_000, "last": "Lee"})).encode(), "field_too_long"),
    (json.dumps(user(email="a" * 250 + "@example.com")).encode(), "field_too_long"),
    (json.dumps(user(nat="FRANCE-METRO")).encode(), "field_too_long"),
    (json.dumps(user(dob={"date": "2025-02-29T00:00:00Z", "age": 1})).encode(), "invalid_dob"),
]


def test_odd_values_are_rejected_with_a_reason(spark):
    rows = classify(spark, [value for value, _ in ODD_VALUES])
    assert [(row.status, row.reason) for row in rows] == [(transform.REJECTED, reason) for _, reason in ODD_VALUES]


def test_the_stream_computes_ages_on_the_records_kafka_date_and_names_the_user_of_a_minor_or_late_rejection(spark):
    """Ages from the record alone (a replay months later computes the same); a minor or a record rejected after its
    id passed still names its user (its newer version removes the stored one), one rejected before does not."""
    leap = user(dob={"date": "2008-02-29T23:59:59.999Z", "age": 18})
    future = json.dumps({**leap, "dob": {"date": "2999-01-01T00:00:00Z", "age": 1}}).encode()
    no_id = json.dumps({**leap, "login": {"uuid": "not-a-uuid"}}).encode()
    stamps = [datetime(2026, 2, 28, 23, 59, tzinfo=timezone.utc), datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)]
    values = [(json.dumps(leap).encode(), stamps[0]), (json.dumps(leap).encode(), stamps[1]), (future, WHEN), (no_id, WHEN)]
    rows = [(None, value, "users.raw", 0, offset, when) for offset, (value, when) in enumerate(values)]
    frame = transform.classify(spark.createDataFrame(rows, KAFKA_SCHEMA), transform.record_date(), 18, PSEUDONYMIZER)
    minor, adult, late, early = sorted(frame.collect(), key=lambda row: row.source_offset)
    uid = leap["login"]["uuid"].lower()
    assert (minor.status, minor.user_id, minor.age, minor.email_hmac) == (transform.FILTERED, uid, None, None)
    assert (adult.status, adult.user_id, adult.age) == (transform.VALID, uid, 18)
    assert (late.reason, late.user_id, early.reason, early.user_id) == ("invalid_dob", uid, "invalid_id", None)


def test_age_counts_the_birthday_itself_including_29_february(spark):
    leap = json.dumps(user(dob={"date": "2008-02-29T23:59:59.999Z", "age": 18})).encode()
    assert [row.status for row in classify(spark, [leap], as_of=date(2026, 2, 28))] == [transform.FILTERED]
    [row] = classify(spark, [leap], as_of=date(2026, 3, 1))
    assert (row.status, row.age, row.api_age) == (transform.VALID, 18, 18)
    [young] = classify(spark, [leap], as_of=date(2026, 2, 28), minimum_age=0)
    assert (young.status, young.age) == (transform.VALID, 17)


def test_postcode_number_and_string_give_the_same_address_pseudonym(spark):
    base = user()
    as_int = {**base, "location": {**base["location"], "postcode": 75001}}
    as_str = {**base, "location": {**base["location"], "postcode": "75001"}}
    rows = classify(spark, [json.dumps(as_int).encode(), json.dumps(as_str).encode()])
    loc = base["location"]
    address = f"{loc['street']['number']} {loc['street']['name']}, {loc['city']}, {loc['state']}, 75001, {loc['country']}"
    assert rows[0].address_hmac == rows[1].address_hmac == PSEUDONYMIZER.digest("address", address)


def test_profile_columns_hold_pseudonyms_and_no_plaintext(spark):
    base = user(email="Ann.Lee@Example.COM")
    bad_utf8 = json.dumps(user(name={"title": "Mr", "first": "Jo#", "last": "Li"})).encode().replace(b"#", b"\xff")
    row, odd = classify(spark, [json.dumps(base).encode(), bad_utf8])
    assert odd.status == transform.VALID and odd.name_hmac == PSEUDONYMIZER.digest("name", "Jo\ufffd Li")
    assert row.email_domain == "example.com"
    assert row.email_hmac == PSEUDONYMIZER.digest("email", "ann.lee@example.com")
    assert row.phone_hmac == PSEUDONYMIZER.digest("phone", base["phone"])
    assert row.cell_hmac == PSEUDONYMIZER.digest("cell", base["cell"])
    assert row.name_hmac == PSEUDONYMIZER.digest("name", f"{base['name']['first']} {base['name']['last']}")
    assert row.dob_hmac == PSEUDONYMIZER.digest("dob", base["dob"]["date"][:10])
    text = json.dumps(row.asDict(), default=str)
    assert base["phone"] not in text and base["cell"] not in text and "Ann.Lee" not in text
    assert base["name"]["last"] not in text and base["dob"]["date"][:10] not in text


def test_fields_privacy_does_not_list_are_not_stored(spark):
    only_email = Pseudonymizer(b"unit-test-key", "unit-1", ("email",))
    [row] = transform.classify(kafka_frame(spark, [json.dumps(user()).encode()]), TODAY, 18, only_email).collect()
    assert row.email_hmac is not None and row.age is not None
    assert (row.phone_hmac, row.cell_hmac, row.address_hmac, row.name_hmac, row.dob_hmac) == (None,) * 5


def test_dead_letter_record_has_the_contract_shape(spark):
    big = b'{"x": "' + b"a" * (70 * 1024) + b'"'
    frame = transform.classify(kafka_frame(spark, [big, b"[1]"]), TODAY, 18, PSEUDONYMIZER)
    records = sorted((json.loads(row.value) for row in dead_letters(frame, PSEUDONYMIZER).collect()),
                     key=lambda r: r["source"]["offset"])
    assert [r["reason"] for r in records] == ["malformed_json", "not_an_object"]
    assert records[0]["source"] == {"topic": "users.raw", "partition": 0, "offset": 0, "timestamp": int(WHEN.timestamp() * 1000)}
    assert records[0]["payloadBytes"] == len(big) and records[0]["payloadHmac"] == PSEUDONYMIZER.fingerprint(big)
    assert records[0]["payload"]["format"] == "text" and records[0]["payload"]["characters"] == len(big)
    assert "aaaa" not in json.dumps(records[0])
    assert records[1]["payload"] == {"format": "json", "shape": {"array": 1, "items": ["number:1"]}}
    assert set(records[1]) == {"reason", "detail", "source", "payload", "payloadBytes", "payloadHmac", "hmacKeyId"}


def test_dead_letters_keep_the_structure_and_no_personal_value(spark):
    """Every broken kind of the generator: reasons kept, no plaintext email, phone, cell, name, street or id."""
    records = [r for r in SyntheticSource(seed=5, broken_ratio=0.5, minor_ratio=0.0, today=TODAY).records(0, 300)
               if r.expected not in (STORED, "filtered")]
    values = [to_message(r.payload).value for r in records]
    frame = transform.classify(kafka_frame(spark, values), TODAY, 18, PSEUDONYMIZER)
    letters = [json.loads(row.value) for row in dead_letters(frame, PSEUDONYMIZER).collect()]
    assert sorted(d["reason"] for d in letters) == sorted(r.expected for r in records)
    text = json.dumps(letters, ensure_ascii=False)
    needles = set()
    for value in values:
        needles |= personal_values(value.decode("utf-8", errors="replace"))
    assert len(needles) > 100 and leaked(text, needles) == set()
    by_offset = {d["source"]["offset"]: d for d in letters}
    for offset, r in enumerate(records):
        payload = by_offset[offset]["payload"]
        if isinstance(r.payload, dict) and r.expected != "oversized":
            assert payload["format"] == "json" and "login" in payload["shape"]
            assert payload["pseudonyms"]["email_hmac"] == PSEUDONYMIZER.digest("email", r.payload["email"])


def test_the_key_is_in_no_query_plan(spark):
    frame = transform.classify(kafka_frame(spark, [b"not json", json.dumps(user()).encode()]), TODAY, 18, PSEUDONYMIZER)
    letters = dead_letters(frame, PSEUDONYMIZER)
    plans = [df._jdf.queryExecution().toString() for df in (frame, letters)]
    assert all("unit-test-key" not in plan and "udf" in plan.lower() for plan in plans)


def personal_values(text: str) -> set[str]:
    """Emails, phones, names, streets and ids in a raw value, found by pattern (the value may not be JSON)."""
    found = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text))
    for key in ("phone", "cell", "first", "last", "name", "value", "city"):
        found |= {v for v in re.findall(rf'"{key}": ?"([^"]{{4,200}})"', text) if v.strip()}
    return found


def test_too_long_fields_are_named_with_their_length_never_their_value(spark):
    long_city = {**user()["location"], "city": "Ville" * 100}
    rows = classify(spark, [json.dumps(user(name={"title": "Ms", "first": "Zed" * 20_000, "last": "Lee"})).encode(),
                            json.dumps(user(location=long_city)).encode()])
    assert [row.detail for row in rows] == ["name.first has 60000 characters, over the limit of 256",
                                            "location.city has 500 characters, over the limit of 256"]


def test_a_uuid_at_the_limits_is_valid_and_stored_in_lower_case(spark):
    limits = {**user(), "name": {"title": "T" * 64, "first": "F" * 256, "last": "L" * 256},
              "login": {"uuid": "6A8C4E1E-3F7B-4C2D-9E0A-1B2C3D4E5F6A"}}
    [row] = classify(spark, [json.dumps(limits).encode()])
    assert (row.status, row.user_id) == (transform.VALID, "6a8c4e1e-3f7b-4c2d-9e0a-1b2c3d4e5f6a")
