"""The read-only store against a real FerretDB."""

from __future__ import annotations

import pytest
from dashboard.dashboard_data import group, health_document, write

from userpipeline.dashboard.store import AggregateStore, Group, StoreUnavailable
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
