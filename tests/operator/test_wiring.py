"""One rule for the store settings: every pod gets exactly what the operator itself uses."""

from __future__ import annotations

import base64
import json

from kube.chart import render_operator
from kube.pipelines import Stores, child, pipeline, wait_ready
from userpipeline.jobs.endpoints import Endpoints
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.kube.wiring import Setting, StoreWiring


def kubelet_env(kube: Kube, namespace: str, env: list[dict]) -> dict[str, str]:
    """A container's environment as the kubelet builds it (values and Secret keys; optional keys may be absent)."""
    result = {}
    for var in env:
        if var["name"].startswith("USERPIPELINE_HMAC_"):
            continue  # the key, not a store setting (the test namespaces hold no HMAC Secret)
        if "value" in var:
            result[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        data = (kube.get("v1", "Secret", ref["name"], namespace) or {}).get("data") or {}
        if ref["key"] in data:
            result[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
        else:
            assert ref.get("optional"), f"{var['name']}: Secret {ref['name']} lacks {ref['key']}"
    return result


def store_fields(endpoints: Endpoints, prefix: str) -> dict:
    return {k: v for k, v in endpoints.model_dump().items() if k.startswith(prefix)}


def test_every_pod_gets_what_the_operator_uses(admin: Kube, operator, stores: Stores) -> None:
    ns = stores.namespace
    admin.create(pipeline("wired", ns))
    wait_ready(admin, "wired", ns)
    used = StoreWiring().endpoints(admin, ns)  # what the operator's parts connect with
    spark = child(admin, ns, "wired", "stream", "SparkApplication")["spec"]
    purge = child(admin, ns, "wired", "purge", "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    dashboard = child(admin, ns, "wired", "dashboard", "Deployment")["spec"]["template"]["spec"]
    producer = child(admin, ns, "wired", "producer", "Deployment")["spec"]["template"]["spec"]
    pods = {"driver": spark["driver"]["env"], "executor": spark["executor"]["env"],
            "purge": purge["containers"][0]["env"], "dashboard": dashboard["containers"][0]["env"],
            "producer": producer["containers"][0]["env"]}
    for pod, env in pods.items():
        seen = Endpoints.from_env(kubelet_env(admin, ns, env))
        if pod != "producer":
            assert store_fields(seen, "mongo") == store_fields(used, "mongo"), pod
        if pod in ("driver", "executor", "purge"):
            assert store_fields(seen, "cassandra") == store_fields(used, "cassandra"), pod
            assert seen.manage_table_options is False, pod
        if pod in ("driver", "executor", "producer"):
            assert seen.manage_topics is False, pod  # the KafkaTopics own the topics
    assert used.cassandra_keyspace == stores.keyspace and used.mongo_database == stores.database


def test_chart_style_wiring_hosts_without_port_and_named_keys(admin: Kube, namespace: str) -> None:
    """K8ssandra's `<cluster>-superuser` and MCK's connection-string Secret, read as they are made."""
    def secret(name: str, data: dict[str, str]) -> None:
        admin.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                     "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})

    secret("up-superuser", {"username": "up-superuser", "password": "s3cret"})
    secret("up-mongodb-admin-userpipeline", {"connectionString.standard": "mongodb://u:p@up-mongodb-svc:27017/admin"})
    wiring = StoreWiring(
        cassandra_hosts=Setting(value="up-dc1-service,cass-b:9043"),
        cassandra_keyspace=Setting(value="pipeline_ks"),
        cassandra_username=Setting(secret="up-superuser", key="username"),
        cassandra_password=Setting(secret="up-superuser", key="password"),
        mongo_uri=Setting(secret="up-mongodb-admin-userpipeline", key="connectionString.standard"),
        mongo_database=Setting(value="userpipeline"))
    used = wiring.endpoints(admin, namespace)
    assert used.cassandra_contact_points() == [("up-dc1-service", 9042), ("cass-b", 9043)]
    assert (used.cassandra_username, used.cassandra_password.get_secret_value()) == ("up-superuser", "s3cret")
    assert used.mongo_uri.get_secret_value().startswith("mongodb://u:p@up-mongodb-svc")
    assert Endpoints.from_env(kubelet_env(admin, namespace, wiring.env())) == used


def test_the_chart_gives_the_operator_its_wiring_and_exactly_those_secrets() -> None:
    docs = render_operator("up", "upl")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    wiring = StoreWiring.model_validate(json.loads(env["USERPIPELINE_OPERATOR_STORES"]))
    assert wiring.cassandra_hosts == Setting(value="up-userpipeline-dc1-service")
    assert wiring.cassandra_password == Setting(secret="up-userpipeline-superuser", key="password")
    assert wiring.mongo_uri == Setting(secret="up-userpipeline-mongodb-admin-userpipeline",
                                       key="connectionString.standard")
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    secret_rule = next(r for r in role["rules"] if r["resources"] == ["secrets"])
    assert secret_rule["resourceNames"] == wiring.secrets()


def test_external_stores_reach_the_operator_with_only_their_secrets() -> None:
    docs = render_operator("up", "upl", chart_values={
        "kafka": {"external": {"bootstrap": "kafka-a:19092,kafka-b:19092"}},
        "cassandra": {"external": {"hosts": "cass-a,cass-b:9043"}},  # no Secret: no authentication
        "mongodb": {"external": {"secretName": "mongo-conn"}}})
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["USERPIPELINE_OPERATOR_KAFKA_BOOTSTRAP"], env["USERPIPELINE_OPERATOR_TOPICS_VIA"]) == \
        ("kafka-a:19092,kafka-b:19092", "admin")
    wiring = StoreWiring.model_validate(json.loads(env["USERPIPELINE_OPERATOR_STORES"]))
    assert wiring.cassandra_hosts == Setting(value="cass-a,cass-b:9043")
    assert (wiring.cassandra_username, wiring.cassandra_password) == (Setting(value=""), Setting(value=""))
    assert wiring.mongo_uri == Setting(secret="mongo-conn", key="uri")
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    secret_rule = next(r for r in role["rules"] if r["resources"] == ["secrets"])
    assert secret_rule["resourceNames"] == ["mongo-conn"]

    all_values = render_operator("up", "upl", {"storesOverride": {
        name: {"value": "x"} for name in ("cassandra_hosts", "cassandra_keyspace", "cassandra_username",
                                          "cassandra_password", "mongo_uri", "mongo_database")}})
    role = next(d for d in all_values if d["kind"] == "ClusterRole")
    assert not [r for r in role["rules"] if "secrets" in r["resources"]]  # never a rule without resourceNames


def test_watched_namespaces_get_role_bindings_not_a_cluster_binding() -> None:
    docs = render_operator("up", "upl", {"watchNamespaces": ["team-a", "team-b"]})
    bindings = {(d["kind"], d["metadata"].get("namespace")) for d in docs if d["kind"].endswith("Binding")}
    assert bindings == {("RoleBinding", "team-a"), ("RoleBinding", "team-b"), ("RoleBinding", "upl")}
    args = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == \
        ["--namespace=team-a", "--namespace=team-b", "--namespace=upl"]
