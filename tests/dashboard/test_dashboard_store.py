"""The read-only store against a real FerretDB, and the background reader the page refreshes from."""

from __future__ import annotations

import pytest
from dashboard.dashboard_data import group, health_document, write
from dashboard.dashboard_support import wait_for

from userpipeline.dashboard.store import AggregateStore, Group, Snapshot, SnapshotPoller, StoreUnavailable
from userpipeline.operator.local.services.ports import free_port


def test_snapshot_reads_the_contract_documents(store_db, mongo) -> None:
    write(store_db, [group("total", "all", 12, 480), group("nationality", "FR", 12, 480), group("gender", "male", 0, 0)],
          health_document(14, rejected=2))
    store = AggregateStore(mongo.uri, store_db.name)
    snap = store.snapshot()
    assert snap.groups == {"total": [Group("all", 12, 480)], "nationality": [Group("FR", 12, 480)]}
    assert snap.health and snap.health["processed"] == 14 and snap.updated_at is not None
    assert store.ping() is None
    store.close()


def test_empty_database_is_an_empty_snapshot(store_db, mongo) -> None:
    assert AggregateStore(mongo.uri, store_db.name).snapshot().empty


def test_unreachable_server_fails_fast_with_a_reason() -> None:
    store = AggregateStore(f"mongodb://127.0.0.1:{free_port()}/", "userpipeline", timeout_ms=300)
    with pytest.raises(StoreUnavailable, match="ServerSelectionTimeoutError"):
        store.snapshot()
    assert store.ping()


def test_only_the_top_email_domains_of_at_least_k_users_are_read(store_db, mongo) -> None:
    domains = [group("emailDomain", f"d{i}.com", 100 - i, 0) for i in range(30)] + [group("emailDomain", "me.net", 2, 40)]
    write(store_db, [group("gender", "male", 5, 150), *domains], None)
    snap = AggregateStore(mongo.uri, store_db.name).snapshot(top_domains=3, k=5)
    assert [g.key for g in snap.dimension("emailDomain")] == ["d0.com", "d1.com", "d2.com"]
    assert snap.dimension("gender") == [Group("male", 5, 150)]


class FakeStore:
    """Answers with the snapshot (or error) currently set, and counts the reads."""

    def __init__(self) -> None:
        self.answer: Snapshot | StoreUnavailable = Snapshot({"total": [Group("all", 1, 30)]})
        self.reads = 0

    def snapshot(self, top_domains: int = 10, k: int = 1) -> Snapshot:
        self.reads += 1
        if isinstance(self.answer, StoreUnavailable):
            raise self.answer
        return self.answer


def test_the_poller_reads_in_the_background_and_a_refresh_takes_the_latest_read() -> None:
    store = FakeStore()
    poller = SnapshotPoller(store, interval=0.05)
    try:
        first = poller.latest()  # nothing read yet: read in the caller
        assert first.snapshot == store.answer and first.error is None and store.reads >= 1
        newer = Snapshot({"total": [Group("all", 2, 70)]})
        store.answer = newer
        assert wait_for(lambda: poller.latest().snapshot == newer, 10, "the background read of the new snapshot")
        store.answer = StoreUnavailable("ServerSelectionTimeoutError: refused")
        down = wait_for(lambda: poller.latest().error and poller.latest(), 10, "the failed read")
        assert down.snapshot is None and "refused" in down.error
    finally:
        poller.close()


def test_a_reader_that_fell_behind_is_not_trusted() -> None:
    now = [0.0]
    store = FakeStore()
    poller = SnapshotPoller(store, interval=3600, stale_after=10, clock=lambda: now[0])
    try:
        poller.latest()
        reads = store.reads
        now[0] = 5.0
        poller.latest()
        assert store.reads == reads, "a recent reading is reused"
        now[0] = 11.0
        store.answer = newer = Snapshot({"total": [Group("all", 3, 90)]})
        assert poller.latest().snapshot == newer and store.reads == reads + 1, "a stale reading is replaced in the caller"
    finally:
        poller.close()
