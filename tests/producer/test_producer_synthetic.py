"""The synthetic generator: determinism, the API 1.4 shape and quirks, ratios, broken and edge records."""

import json
import re
from collections import Counter
from datetime import date, timedelta

import pytest

from producer.kit import contract_reason
from userpipeline.jobs.producer.sanitize import CREDENTIALS, to_message
from userpipeline.jobs.producer.synthetic import (
    FILTERED,
    REASON_CYCLE,
    REASONS,
    STORED,
    SyntheticSource,
    age_on,
    edge_records,
    expected_outcome,
    parse_api_date,
)
from userpipeline.jobs.producer.synthetic_data import NATS

TODAY = date(2026, 3, 1)
API_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TOP_KEYS = ["gender", "name", "location", "email", "login", "dob", "registered", "phone", "cell", "id", "picture", "nat"]
NULL_ID_NATS = {"IR", "NZ", "TR", "UA"}


@pytest.fixture(scope="module")
def valid_users():
    source = SyntheticSource(seed=11, minor_ratio=0.1, today=TODAY)
    return [r.payload for r in source.records(0, 3000)]


def test_same_seed_same_records_and_resumable_at_any_index():
    a = SyntheticSource(seed=5, broken_ratio=0.1, today=TODAY)
    b = SyntheticSource(seed=5, broken_ratio=0.1, today=TODAY)
    assert list(a.records(0, 60)) == list(b.records(0, 60))
    assert list(a.records(40, 60)) == [b.record(i) for i in range(40, 60)]
    other = SyntheticSource(seed=6, broken_ratio=0.1, today=TODAY)
    assert {r.marker for r in a.records(0, 60)}.isdisjoint(r.marker for r in other.records(0, 60))


def test_the_next_day_gives_the_same_users_and_ages():
    today, tomorrow = SyntheticSource(seed=3, today=TODAY), SyntheticSource(seed=3, today=TODAY + timedelta(days=1))
    for i in range(200):
        a, b = today.record(i), tomorrow.record(i)
        assert (a.marker, a.age, a.expected) == (b.marker, b.age, b.expected)


def test_users_have_the_exact_api_shape(valid_users):
    for user in valid_users:
        assert list(user) == TOP_KEYS
        assert set(user["name"]) == {"title", "first", "last"}
        loc = user["location"]
        assert list(loc) == ["street", "city", "state", "country", "postcode", "coordinates", "timezone"]
        assert isinstance(loc["street"]["number"], int) and isinstance(loc["street"]["name"], str)
        assert isinstance(loc["postcode"], (int, str))
        assert all(isinstance(v, str) and re.fullmatch(r"-?\d+\.\d{4}", v) for v in loc["coordinates"].values())
        assert set(loc["timezone"]) == {"offset", "description"}
        assert list(user["login"]) == ["uuid", "username", "password", "salt", "md5", "sha1", "sha256"]
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", user["login"]["uuid"])
        assert len(user["login"]["md5"]) == 32 and len(user["login"]["sha256"]) == 64
        for key in ("dob", "registered"):
            assert API_DATE.match(user[key]["date"]) and isinstance(user[key]["age"], int)
        assert user["dob"]["age"] == age_on(parse_api_date(user["dob"]["date"]), TODAY)
        assert parse_api_date(user["registered"]["date"]) < TODAY
        assert set(user["id"]) == {"name", "value"}
        assert (user["id"]["value"] is None) == (user["nat"] in NULL_ID_NATS)
        assert user["picture"]["large"].startswith("https://randomuser.me/api/portraits/")
        assert user["email"].isascii() and user["email"].count("@") == 1
        assert user["gender"] in ("male", "female")


def test_real_quirks_are_all_present(valid_users):
    postcodes = Counter(type(u["location"]["postcode"]).__name__ for u in valid_users)
    assert postcodes["int"] > 0 and postcodes["str"] > 0
    assert any(u["id"]["value"] is None for u in valid_users)
    assert {u["nat"] for u in valid_users} == set(NATS) and len(NATS) == 21
    names = " ".join(u["name"]["first"] + u["name"]["last"] for u in valid_users)
    assert re.search("[\u0400-\u04ff]", names), "Cyrillic names (UA)"
    assert re.search("[\u0600-\u06ff]", names), "Persian/Arabic script names (IR)"
    assert re.search("[À-ž]", names), "accented Latin names"


def test_email_domains_are_spread_and_skewed(valid_users):
    domains = Counter(u["email"].split("@")[1].lower() for u in valid_users)
    assert len(domains) == 15
    (top, top_count), *_ = domains.most_common()
    assert top == "gmail.com" and top_count > 2 * sorted(domains.values())[len(domains) // 2]
    assert any(u["email"].split("@")[1] != u["email"].split("@")[1].lower() for u in valid_users)


def test_minor_share_follows_the_ratio():
    records = list(SyntheticSource(seed=1, minor_ratio=0.2, today=TODAY).records(0, 2000))
    minors = [r for r in records if r.expected == FILTERED]
    assert abs(len(minors) - 400) <= 1
    assert all(r.age < 18 for r in minors) and all(r.age >= 18 for r in records if r.expected == STORED)
    assert not any(r.expected == FILTERED for r in SyntheticSource(seed=1, minor_ratio=0, today=TODAY).records(0, 500))


def test_broken_share_is_exact_and_covers_every_reason():
    records = list(SyntheticSource(seed=2, broken_ratio=0.05, minor_ratio=0.05, today=TODAY).records(0, 2000))
    broken = [r for r in records if r.expected in REASONS]
    assert len(broken) == 100
    assert set(Counter(r.expected for r in broken)) == set(REASONS)
    assert len(REASON_CYCLE) == 50 and set(REASON_CYCLE) == set(REASONS)
    assert Counter(REASON_CYCLE)["oversized"] == 1 and REASON_CYCLE.index("oversized") < 5


def test_each_broken_record_breaks_the_contract_for_its_reason_only():
    source = SyntheticSource(seed=9, broken_ratio=0.5, minor_ratio=0.1, today=TODAY)
    seen = Counter()
    for record in source.records(0, 400):
        value = to_message(record.payload).value
        assert contract_reason(value, TODAY) == (record.expected if record.expected in REASONS else None), record.index
        assert record.marker in value[:4096].decode("utf-8", "replace"), "the marker identifies the record"
        assert not any(f'"{c}"'.encode() in value for c in CREDENTIALS)
        seen[record.expected] += 1
    assert set(REASONS) <= set(seen)


def test_expected_outcome_follows_the_minimum_age():
    source = SyntheticSource(seed=4, minor_ratio=0.3, broken_ratio=0.1, today=TODAY)
    for record in source.records(0, 300):
        if record.age is None:
            assert expected_outcome(record, 0) == record.expected
        else:
            assert expected_outcome(record, 0) == STORED
            assert expected_outcome(record, 30) == (STORED if record.age >= 30 else FILTERED)


def test_resent_users_reuse_earlier_ids():
    source = SyntheticSource(seed=8, resend_ratio=0.2, today=TODAY)
    records = list(source.records(0, 500))
    ids = Counter(r.payload["login"]["uuid"] for r in records)
    assert 50 < sum(n - 1 for n in ids.values()) < 150


def test_edge_records_cover_the_issue_list_with_their_outcomes():
    edges = {e.name: e for e in edge_records(TODAY)}
    assert {"age_18_today", "age_18_tomorrow", "age_17", "age_120", "postcode_int", "postcode_string", "id_value_null",
            "name_greek", "name_cyrillic", "name_arabic", "name_cjk", "name_emoji", "oversized_5mb", "json_array"} <= set(edges)
    ages = {name: age_on(parse_api_date(edges[name].payload["dob"]["date"]), TODAY)
            for name in ("age_18_today", "age_18_tomorrow", "age_17", "age_120")}
    assert ages == {"age_18_today": 18, "age_18_tomorrow": 17, "age_17": 17, "age_120": 120}
    assert isinstance(edges["postcode_int"].payload["location"]["postcode"], int)
    assert isinstance(edges["postcode_string"].payload["location"]["postcode"], str)
    assert edges["id_value_null"].payload["id"]["value"] is None
    assert "🦄" in edges["name_emoji"].payload["name"]["first"]
    assert len(to_message(edges["oversized_5mb"].payload).value) >= 5 * 1024 * 1024
    assert isinstance(json.loads(edges["json_array"].payload), list)
    for edge in edges.values():
        value = to_message(edge.payload).value
        reason = contract_reason(value, TODAY)
        assert reason == (edge.expected if edge.expected not in (STORED, FILTERED) else None), edge.name
        assert edge.marker in value[:4096].decode()


def test_edge_birthday_boundary_on_a_leap_day():
    edges = {e.name: e for e in edge_records(date(2028, 2, 29))}
    born = parse_api_date(edges["age_18_today"].payload["dob"]["date"])
    assert age_on(born, date(2028, 2, 29)) == 18
    tomorrow = parse_api_date(edges["age_18_tomorrow"].payload["dob"]["date"])
    assert age_on(tomorrow, date(2028, 2, 29)) == 17 and age_on(tomorrow, date(2028, 3, 1)) == 18


def test_lean_records_give_the_same_messages_for_less_work():
    source = SyntheticSource(seed=12, minor_ratio=0.1, broken_ratio=0.1, resend_ratio=0.1, today=TODAY)
    for index in range(3000):
        whole, lean = source.record(index), source.record(index, lean=True)
        assert (lean.marker, lean.expected, lean.age) == (whole.marker, whole.expected, whole.age)
        assert to_message(lean.payload) == to_message(whole.payload), index
        if isinstance(lean.payload, dict) and lean.expected in (STORED, FILTERED):
            assert not {"id", "picture"} & set(lean.payload) and list(lean.payload["login"]) == ["uuid"]
