"""The operator, running as the chart's ServiceAccount, makes the API server and the stores match the spec."""

from __future__ import annotations

from kube.pipelines import (
    CHILDREN,
    DAY,
    PARTS,
    Stores,
    cassandra_ttl,
    child,
    configured_spec,
    get_pipeline,
    mongo_retention,
    patch_spec,
    pipeline,
    reasons,
    wait_event,
    wait_ready,
)
from kube.resources import condition, new_namespace, wait_for
from userpipeline.jobs.producer.publisher import MAX_MESSAGE_BYTES
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.spec import API_VERSION, KIND, UserPipelineSpec

SPEC = {
    "producer": {"ratePerSecond": 120},
    "topic": {"partitions": 6, "retention": "2d"},
    "retention": {"profiles": "10d", "aggregates": "60d", "deadLetter": "3d", "purgeSchedule": "30 4 * * *"},
    "stream": {"executors": 2},
}


def test_children_match_the_spec_and_are_owned(admin: Kube, operator, stores: Stores, cassandra, mongo) -> None:
    ns = stores.namespace
    created = admin.create(pipeline("users", ns, SPEC))
    obj = wait_ready(admin, "users", ns)

    owner = {"apiVersion": API_VERSION, "kind": KIND, "name": "users", "uid": created["metadata"]["uid"],
             "controller": True, "blockOwnerDeletion": True}
    for api_version, kind, suffix in CHILDREN:
        found = admin.get(api_version, kind, f"users-{suffix}", ns)
        assert found is not None, f"{kind} users-{suffix} missing"
        assert found["metadata"]["ownerReferences"] == [owner], kind
        assert found["metadata"]["labels"]["app.kubernetes.io/instance"] == "users"

    assert configured_spec(admin, ns, "users") == UserPipelineSpec.model_validate(SPEC)
    raw, dlq = child(admin, ns, "users", "raw", "KafkaTopic"), child(admin, ns, "users", "dlq", "KafkaTopic")
    assert raw["metadata"]["labels"]["strimzi.io/cluster"] == "userpipeline"
    assert raw["spec"] == {"topicName": "users.raw", "partitions": 6, "replicas": 1,
                           "config": {"retention.ms": 2 * DAY * 1000, "cleanup.policy": "delete",
                                      "max.message.bytes": MAX_MESSAGE_BYTES,
                                      "message.timestamp.type": "LogAppendTime"}}
    assert dlq["spec"]["topicName"] == "users.raw.dlq" and dlq["spec"]["config"]["retention.ms"] == 3 * DAY * 1000
    spark = child(admin, ns, "users", "stream", "SparkApplication")["spec"]
    assert (spark["type"], spark["mode"], spark["executor"]["instances"]) == ("Python", "cluster", 2)
    assert {"name": "users-config", "path": "/etc/userpipeline"} in spark["driver"]["configMaps"]
    assert spark["volumes"] == [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": "users-checkpoints"}}]
    claim = child(admin, ns, "users", "checkpoints", "PersistentVolumeClaim")["spec"]
    assert claim["resources"]["requests"]["storage"] == "1Gi"
    assert child(admin, ns, "users", "purge", "CronJob")["spec"]["schedule"] == "30 4 * * *"
    pod = child(admin, ns, "users", "producer", "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["producer"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"

    status = obj["status"]
    assert status["observedGeneration"] == 1 and status["lastReconcileTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True", **{p: "True" for p in PARTS}}
    assert all(c["observedGeneration"] == 1 and c["reason"] and c["message"] for c in status["conditions"])
    effective = status["effective"]
    assert (effective["ratePerSecond"], effective["topicRetentionMs"], effective["deadLetterRetentionMs"]) == \
        (120, 2 * DAY * 1000, 3 * DAY * 1000)
    assert (effective["profilesTtlSeconds"], effective["aggregatesRetentionSeconds"]) == (10 * DAY, 60 * DAY)

    assert cassandra_ttl(cassandra, stores.keyspace) == 10 * DAY
    assert mongo_retention(mongo, stores.database)["aggregatesSeconds"] == 60 * DAY
    posted = wait_for(lambda: set(reasons(admin, ns, "users")) >= {f"{p}Updated" for p in PARTS} and
                      reasons(admin, ns, "users"), what="one Updated event per part")
    assert not [r for r in posted if r.endswith("Failed")]


def test_rate_change_reaches_the_config_without_a_rollout(admin: Kube, operator, stores: Stores) -> None:
    ns = stores.namespace
    admin.create(pipeline("rate", ns))
    wait_ready(admin, "rate", ns)
    deployment_version = child(admin, ns, "rate", "producer", "Deployment")["metadata"]["resourceVersion"]
    spark_version = child(admin, ns, "rate", "stream", "SparkApplication")["metadata"]["resourceVersion"]

    generation = patch_spec(admin, ns, "rate", {"producer": {"ratePerSecond": 200, "paused": True}})
    obj = wait_ready(admin, "rate", ns, generation)
    assert configured_spec(admin, ns, "rate").producer.rate_per_second == 200
    assert configured_spec(admin, ns, "rate").producer.paused is True
    assert obj["status"]["effective"]["ratePerSecond"] == 200 and obj["status"]["effective"]["paused"] is True
    # Neither the producer nor the streaming job is restarted for a rate change.
    assert child(admin, ns, "rate", "producer", "Deployment")["metadata"]["resourceVersion"] == deployment_version
    assert child(admin, ns, "rate", "stream", "SparkApplication")["metadata"]["resourceVersion"] == spark_version
    wait_event(admin, ns, "rate", "ProducerUpdated", "rate 200 records/s, paused")


def test_retention_change_reaches_topics_cassandra_mongo_and_purge(admin: Kube, operator, stores: Stores,
                                                                   cassandra, mongo) -> None:
    ns = stores.namespace
    admin.create(pipeline("keep", ns))
    wait_ready(admin, "keep", ns)
    generation = patch_spec(admin, ns, "keep", {
        "topic": {"retention": "36h"},
        "retention": {"profiles": "1d", "aggregates": "2d", "deadLetter": "12h", "purgeSchedule": "*/15 * * * *"}})
    obj = wait_ready(admin, "keep", ns, generation)

    assert child(admin, ns, "keep", "raw", "KafkaTopic")["spec"]["config"]["retention.ms"] == 36 * 3600 * 1000
    assert child(admin, ns, "keep", "dlq", "KafkaTopic")["spec"]["config"]["retention.ms"] == 12 * 3600 * 1000
    assert child(admin, ns, "keep", "purge", "CronJob")["spec"]["schedule"] == "*/15 * * * *"
    assert cassandra_ttl(cassandra, stores.keyspace) == DAY
    assert configured_spec(admin, ns, "keep").retention.aggregates == "2d"
    assert mongo_retention(mongo, stores.database)["aggregatesSeconds"] == 2 * DAY
    effective = obj["status"]["effective"]
    assert (effective["profilesTtlSeconds"], effective["aggregatesRetentionSeconds"]) == (DAY, 2 * DAY)
    wait_event(admin, ns, "keep", "CassandraTTLUpdated", f"{30 * DAY}s -> {DAY}s")


def test_pipelines_in_several_namespaces_coexist(admin: Kube, operator, cassandra, mongo) -> None:
    from kube.pipelines import create_profiles_table, store_secrets

    placed = []
    for index, rate in enumerate((10, 20, 30)):
        ns = new_namespace(admin, "multi")
        create_profiles_table(cassandra, f"ks_multi_{ns[-8:]}")
        store_secrets(admin, ns, cassandra.contact, f"ks_multi_{ns[-8:]}", mongo.uri, f"db_multi_{ns[-8:]}")
        spec = {"producer": {"ratePerSecond": rate}, "retention": {"profiles": f"{index + 1}d"}}
        admin.create(pipeline("users", ns, spec))
        placed.append((ns, "users", rate, index + 1))
    # Two pipelines in one namespace, with the same store settings: distinct children.
    second = {"producer": {"ratePerSecond": 11}, "retention": {"profiles": "1d"}}
    admin.create(pipeline("users-b", placed[0][0], second))
    placed.append((placed[0][0], "users-b", 11, 1))

    for ns, name, rate, _ in placed:
        obj = wait_ready(admin, name, ns)
        assert obj["status"]["effective"]["ratePerSecond"] == rate
        assert configured_spec(admin, ns, name).producer.rate_per_second == rate
    for ns, _, _, days in placed[:3]:
        assert cassandra_ttl(cassandra, f"ks_multi_{ns[-8:]}") == days * DAY


def test_delete_needs_no_operator_and_leaves_only_owned_children(admin: Kube, operator, stores: Stores) -> None:
    ns = stores.namespace
    uid = admin.create(pipeline("gone", ns))["metadata"]["uid"]
    obj = wait_ready(admin, "gone", ns)
    assert not obj["metadata"].get("finalizers")  # nothing blocks a deletion while the operator is down

    operator.stop()
    try:
        admin.delete(API_VERSION, KIND, "gone", ns)
        wait_for(lambda: get_pipeline(admin, "gone", ns) is None, 30, what="the UserPipeline to be gone")
    finally:
        operator.start()
    # No garbage collector runs here: what is left must all be owned by the deleted pipeline.
    for api_version, kind, suffix in CHILDREN:
        leftover = admin.get(api_version, kind, f"gone-{suffix}", ns)
        assert leftover is None or leftover["metadata"]["ownerReferences"][0]["uid"] == uid


def test_status_reports_a_missing_secret_and_heals_when_it_appears(admin: Kube, operator, namespace: str,
                                                                   cassandra, mongo) -> None:
    from kube.pipelines import create_profiles_table, store_secrets

    admin.create(pipeline("early", namespace))
    waiting = wait_for(lambda: condition(get_pipeline(admin, "early", namespace), "CassandraTTL").get("reason") ==
                       "SecretMissing" and get_pipeline(admin, "early", namespace), what="SecretMissing")
    assert condition(waiting, "Ready")["status"] == "False"
    assert child(admin, namespace, "early", "producer", "Deployment")  # the other parts went ahead
    assert "userpipeline-cassandra not found" in condition(waiting, "CassandraTTL")["message"]

    keyspace = f"ks_early_{namespace[-8:]}"
    create_profiles_table(cassandra, keyspace)
    store_secrets(admin, namespace, cassandra.contact, keyspace, mongo.uri, f"db_early_{namespace[-8:]}")
    wait_ready(admin, "early", namespace)
    posted = wait_event(admin, namespace, "early", "CassandraTTLRecovered")
    assert "CassandraTTLFailed" in [e["reason"] for e in posted]
