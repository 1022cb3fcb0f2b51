"""Operator restarts and store outages: the state converges, nothing is done twice."""

from __future__ import annotations

from collections import Counter

from kube.pipelines import (
    CHILDREN,
    DAY,
    Stores,
    cassandra_ttl,
    configured_spec,
    create_profiles_table,
    get_pipeline,
    patch_spec,
    pipeline,
    store_secrets,
    wait_event,
    wait_ready,
)
from kube.resources import condition, events_for, wait_for
from userpipeline.operator.kube.client import Kube


def versions(kube: Kube, ns: str, name: str) -> dict[str, str]:
    return {f"{kind}/{suffix}": kube.get(api, kind, f"{name}-{suffix}", ns)["metadata"]["resourceVersion"]
            for api, kind, suffix in CHILDREN}


def event_counts(kube: Kube, ns: str, name: str) -> Counter:
    return Counter(e["reason"] for e in events_for(kube, ns, name))


def test_restart_mid_reconcile_converges_without_duplicate_actions(admin: Kube, operator, namespace: str,
                                                                   cassandra, mongo) -> None:
    # The reconcile is left unfinished: the store Secrets are missing, so kopf keeps retrying it.
    admin.create(pipeline("crash", namespace))
    wait_for(lambda: condition(get_pipeline(admin, "crash", namespace), "MongoDB").get("reason") ==
             "SecretMissing", what="a reconcile in retry")
    wait_event(admin, namespace, "crash", "MongoDBFailed")  # the first pass's Events are out
    operator.kill()
    try:
        generation = patch_spec(admin, namespace, "crash", {"producer": {"ratePerSecond": 77}})
        keyspace = f"ks_crash_{namespace[-8:]}"
        create_profiles_table(cassandra, keyspace)
        store_secrets(admin, namespace, cassandra.contact, keyspace, mongo.uri, f"db_crash_{namespace[-8:]}")
    finally:
        operator.start()
    obj = wait_ready(admin, "crash", namespace, generation)
    assert configured_spec(admin, namespace, "crash").producer.rate_per_second == 77
    assert obj["status"]["effective"]["ratePerSecond"] == 77
    wait_event(admin, namespace, "crash", "MongoDBRecovered")  # the last Event of that pass
    counts = event_counts(admin, namespace, "crash")
    assert counts["ProducerUpdated"] == 2, counts  # created, then the rate change: once each
    assert counts["TopicsUpdated"] == counts["StreamJobUpdated"] == counts["PurgeJobUpdated"] == 1, counts
    assert counts["CassandraTTLUpdated"] == counts["DashboardUpdated"] == 1, counts

    # A plain restart re-runs the resume handler: it must change nothing and post nothing.
    before, last = versions(admin, namespace, "crash"), obj["status"]["lastReconcileTime"]
    operator.stop()
    operator.start()
    wait_for(lambda: get_pipeline(admin, "crash", namespace)["status"]["lastReconcileTime"] != last,
             30, what="the resume reconcile")
    assert versions(admin, namespace, "crash") == before
    assert condition(get_pipeline(admin, "crash", namespace), "Ready")["status"] == "True"
    # Events are posted in order: once the next change's Event is out, any from the resume would be too.
    patch_spec(admin, namespace, "crash", {"producer": {"ratePerSecond": 78}})
    wait_event(admin, namespace, "crash", "ProducerUpdated", "rate 78 records/s")
    assert event_counts(admin, namespace, "crash") == counts + Counter({"ProducerUpdated": 1})


def test_cassandra_outage_shows_in_conditions_and_recovers(admin: Kube, operator, stores: Stores, cassandra) -> None:
    ns = stores.namespace
    admin.create(pipeline("cass", ns, {"retention": {"profiles": "10d"}}))
    wait_ready(admin, "cass", ns)
    cassandra.stop()
    try:
        patch_spec(admin, ns, "cass", {"retention": {"profiles": "5d"}, "producer": {"ratePerSecond": 33}})

        def unreachable_but_rate_applied() -> dict | None:
            obj = get_pipeline(admin, "cass", ns)
            down = condition(obj, "CassandraTTL").get("reason") == "Unreachable"
            return obj if down and obj["status"]["effective"]["ratePerSecond"] == 33 else None

        down = wait_for(unreachable_but_rate_applied, 60, what="CassandraTTL Unreachable while the rest goes ahead")
        assert condition(down, "Ready")["status"] == "False"
        assert "CassandraTTL: Unreachable" in condition(down, "Ready")["message"]
        assert all(condition(down, part)["status"] == "True"
                   for part in ("Producer", "Topics", "StreamJob", "PurgeJob", "Dashboard", "MongoDB"))
        assert down["status"]["effective"]["profilesTtlSeconds"] == 10 * DAY  # still what is in force
        assert configured_spec(admin, ns, "cass").producer.rate_per_second == 33
        wait_event(admin, ns, "cass", "CassandraTTLFailed", "Unreachable")
    finally:
        cassandra.start()
    healed = wait_ready(admin, "cass", ns, timeout=120)
    assert healed["status"]["effective"]["profilesTtlSeconds"] == 5 * DAY
    assert cassandra_ttl(cassandra, stores.keyspace) == 5 * DAY
    wait_event(admin, ns, "cass", "CassandraTTLRecovered")
    assert event_counts(admin, ns, "cass")["CassandraTTLFailed"] == 1  # retries post no new warnings


def test_mongo_outage_shows_in_conditions_and_recovers(admin: Kube, operator, stores: Stores, mongo) -> None:
    ns = stores.namespace
    admin.create(pipeline("mongo", ns))
    wait_ready(admin, "mongo", ns)
    mongo.stop()
    try:
        down = wait_for(lambda: (obj := get_pipeline(admin, "mongo", ns)) and
                        condition(obj, "MongoDB").get("reason") == "Unreachable" and obj,
                        60, what="MongoDB Unreachable (found by the read-back, no spec change needed)")
        assert condition(down, "Ready")["status"] == "False"
        assert "MongoDB: Unreachable" in condition(down, "Ready")["message"]
        assert condition(down, "CassandraTTL")["status"] == "True"
        assert "password" not in condition(down, "MongoDB")["message"]
    finally:
        mongo.start()
    wait_ready(admin, "mongo", ns, timeout=60)
    wait_event(admin, ns, "mongo", "MongoDBRecovered")
    assert event_counts(admin, ns, "mongo")["MongoDBFailed"] == 1
