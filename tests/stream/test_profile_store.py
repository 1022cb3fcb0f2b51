"""The Cassandra sink against a real Cassandra: writes too large for one batch are split, a row Cassandra
refuses on its own comes back as refused (the others are written), and table options are left alone
when another owner has them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from userpipeline.jobs.stream.deltas import Profile
from userpipeline.jobs.stream.sinks import cassandra as sink
from userpipeline.jobs.stream.sinks.cassandra import ProfileStore

from stream.streamkit import isolated, unique

pytestmark = pytest.mark.slow

DAY = 86_400


def profile(index: int, **changes) -> Profile:
    base = Profile(f"00000000-0000-4000-8000-{index:012d}", "female", "FR", 30, 30, "example.com", "e" * 64, "p" * 64,
                   "c" * 64, "a" * 64, "n" * 64, "d" * 64, None, 1_700_000_000_000 + index, 0, index)
    return replace(base, **changes)


@pytest.fixture
def store(endpoints):
    opened: list[ProfileStore] = []

    def make(ttl: int = 30 * DAY, **changes) -> ProfileStore:
        ep = isolated(endpoints, unique("sink")).model_copy(update=changes)
        opened.append(ProfileStore(ep, ttl, "test-1"))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


def stored_names(store: ProfileStore) -> dict[str, int]:
    rows = store.session.execute(f"SELECT user_id, name_hmac FROM {store.keyspace}.profiles")
    return {row.user_id: len(row.name_hmac) for row in rows}


def test_a_batch_cassandra_finds_too_large_is_split_until_every_row_is_written(store, monkeypatch):
    monkeypatch.setattr(sink, "BATCH_BYTES", 10 << 20)  # one batch of 10 rows, as before the fix
    s = store()
    rounds = []
    write_groups = s._write_groups
    monkeypatch.setattr(s, "_write_groups", lambda groups, result: rounds.append(len(groups)) or write_groups(groups, result))
    rows = [profile(0, name_hmac="A" * 60_000)] + [profile(i) for i in range(1, 10)]
    result = s.write(rows)
    assert (result.written, result.refused) == (10, [])
    assert rounds[:2] == [1, 2]  # Cassandra refused the one batch ("Batch too large"): it was split in two
    assert stored_names(s)[rows[0].user_id] == 60_000 and len(stored_names(s)) == 10


def test_a_long_row_goes_alone_and_a_refused_row_leaves_the_others_written(store):
    s = store()
    refused = profile(5, user_id="k" * 70_000)  # longer than Cassandra's 64 KiB partition key: refused by the server
    rows = [profile(i) for i in range(5)] + [refused, profile(6, name_hmac="B" * 60_000)] + [profile(i) for i in range(7, 12)]
    result = s.write(rows)
    assert result.written == 11 and [r.profile for r in result.refused] == [refused]
    assert result.refused[0].error.startswith("InvalidRequest") and "k" * 100 not in result.refused[0].error
    assert set(stored_names(s)) == {p.user_id for p in rows} - {refused.user_id}


def test_table_options_are_left_to_their_owner(store):
    owned = store(ttl=30 * DAY)
    keyspace = owned.keyspace
    endpoints_copy = {"cassandra_keyspace": keyspace, "mongo_database": keyspace}
    store(ttl=7 * DAY, manage_table_options=False, **endpoints_copy)
    assert ttl_of(owned) == 30 * DAY
    store(ttl=7 * DAY, **endpoints_copy)
    assert ttl_of(owned) == 7 * DAY


def ttl_of(s: ProfileStore) -> int:
    return s.session.execute("SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s "
                             "AND table_name = 'profiles'", (s.keyspace,)).one().default_time_to_live


def test_a_table_of_an_earlier_version_loses_its_plaintext_columns(store, cassandra):
    name = unique("legacy")
    session = cassandra.session()
    try:
        session.execute(f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
        session.execute(f"CREATE TABLE {name}.profiles (user_id text PRIMARY KEY, full_name text, dob date, nat text)")
        session.execute(f"INSERT INTO {name}.profiles (user_id, full_name, dob, nat) VALUES ('u1', 'Ann Lee', '1990-01-01', 'FR')")
    finally:
        session.cluster.shutdown()
    s = store(cassandra_keyspace=name, mongo_database=name)
    columns = {row.column_name for row in s.session.execute(
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = 'profiles'", (name,))}
    assert columns == set(sink.COLUMNS)
    assert s.write([profile(1)]).written == 1
    assert "Ann Lee" not in str(list(s.session.execute(f"SELECT * FROM {name}.profiles")))
