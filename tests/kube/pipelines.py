"""Helpers for UserPipeline tests: build, read and wait for pipelines; wire a namespace to the stores."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import yaml

from kube.resources import condition, events_for, wait_for
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.spec import API_VERSION, KIND, UserPipeline, UserPipelineSpec


@dataclass(frozen=True)
class Stores:
    namespace: str
    keyspace: str
    database: str


def create_profiles_table(cassandra, keyspace: str) -> None:
    session = cassandra.session()
    try:
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
                        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE IF NOT EXISTS {keyspace}.profiles (user_id text PRIMARY KEY, full_name text)")
    finally:
        session.cluster.shutdown()


def store_secrets(kube: Kube, namespace: str, cassandra_contact: str, keyspace: str, mongo_uri: str,
                  database: str) -> None:
    def secret(name: str, data: dict[str, str]) -> dict:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque", "data": encoded}

    kube.apply(secret("userpipeline-cassandra", {"hosts": cassandra_contact, "keyspace": keyspace}))
    kube.apply(secret("userpipeline-mongo", {"uri": mongo_uri, "database": database}))


def pipeline(name: str, namespace: str, spec: dict | None = None) -> dict:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": spec or {}}


def get_pipeline(kube: Kube, name: str, namespace: str) -> dict | None:
    return kube.get(API_VERSION, KIND, name, namespace)


def _patch_status(kube: Kube, api_version: str, kind: str, name: str, ns: str, status: dict) -> None:
    if kube.get(api_version, kind, name, ns) is not None:
        kube.patch_merge(api_version, kind, name, ns, {"status": status}, "status")


WORKING = {
    ("apps/v1", "Deployment"): {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1},
    ("kafka.strimzi.io/v1", "KafkaTopic"): {"conditions": [{"type": "Ready", "status": "True"}]},
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"): {"applicationState": {"state": "RUNNING"}, "driverInfo": {}},
}
NOT_WORKING = {
    ("apps/v1", "Deployment"): {"replicas": 1, "readyReplicas": 0, "availableReplicas": 0, "updatedReplicas": 1},
    ("kafka.strimzi.io/v1", "KafkaTopic"): {"conditions": [{"type": "Ready", "status": "False", "reason": "Broken"}]},
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"): {"applicationState": {"state": "FAILED",
                                                                                "errorMessage": "driver OOMKilled"},
                                                           "driverInfo": {}},
}


def set_working(kube: Kube, ns: str, name: str, suffix: str, kind: str, working: bool = True) -> None:
    """Play an upstream controller: report one child working (or not), as an admin patching its status."""
    api_version = next(a for a, k, s in CHILDREN if k == kind and s == suffix)
    status = (WORKING if working else NOT_WORKING)[(api_version, kind)]
    _patch_status(kube, api_version, kind, f"{name}-{suffix}", ns, status)


def play_platform(kube: Kube, ns: str, name: str) -> None:
    """What the kubelet, Strimzi and the Spark Operator would report: every child working."""
    for api_version, kind, suffix in CHILDREN:
        if (api_version, kind) in WORKING:
            obj = kube.get(api_version, kind, f"{name}-{suffix}", ns)
            if obj is not None and (obj.get("status") or {}) != WORKING[(api_version, kind)]:
                set_working(kube, ns, name, suffix, kind)


def wait_ready(kube: Kube, name: str, namespace: str, generation: int | None = None, timeout: float = 60,
               play: bool = True) -> dict:
    """Poll until Ready=True for the current (or given) generation; returns the UserPipeline.
    With `play`, the children are reported working meanwhile, as the upstream controllers would."""

    def ready() -> dict | None:
        if play:
            play_platform(kube, namespace, name)
        obj = get_pipeline(kube, name, namespace)
        if not obj:
            return None
        wanted = generation or obj["metadata"]["generation"]
        cond = condition(obj, "Ready")
        ok = cond.get("status") == "True" and obj.get("status", {}).get("observedGeneration") == wanted
        return obj if ok else None

    try:
        return wait_for(ready, timeout, what=f"{namespace}/{name} Ready")
    except AssertionError as exc:
        status = (get_pipeline(kube, name, namespace) or {}).get("status")
        raise AssertionError(f"{exc}\nstatus: {status}") from None


CHILDREN = [
    ("v1", "ConfigMap", "config"),
    ("v1", "ServiceAccount", "producer"),
    ("rbac.authorization.k8s.io/v1", "Role", "producer"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "producer"),
    ("apps/v1", "Deployment", "producer"),
    ("kafka.strimzi.io/v1", "KafkaTopic", "raw"),
    ("kafka.strimzi.io/v1", "KafkaTopic", "dlq"),
    ("v1", "PersistentVolumeClaim", "checkpoints"),
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication", "stream"),
    ("batch/v1", "CronJob", "purge"),
    ("apps/v1", "Deployment", "dashboard"),
    ("v1", "Service", "dashboard"),
    ("networking.k8s.io/v1", "Ingress", "dashboard"),
]
PARTS = ["Producer", "Topics", "StreamJob", "PurgeJob", "Dashboard", "CassandraTTL", "MongoDB"]
DAY = 86400


def child(kube: Kube, ns: str, name: str, suffix: str, kind: str) -> dict:
    api_version = next(a for a, k, s in CHILDREN if k == kind and s == suffix)
    obj = kube.get(api_version, kind, f"{name}-{suffix}", ns)
    assert obj is not None, f"{kind} {name}-{suffix} missing"
    return obj


def configured_spec(kube: Kube, ns: str, name: str) -> UserPipelineSpec:
    text = child(kube, ns, name, "config", "ConfigMap")["data"]["pipeline.yaml"]
    return UserPipeline.model_validate(yaml.safe_load(text)).spec


def cassandra_ttl(cassandra, keyspace: str) -> int:
    session = cassandra.session()
    try:
        return session.execute("SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s "
                               "AND table_name = 'profiles'", (keyspace,)).one().default_time_to_live
    finally:
        session.cluster.shutdown()


def mongo_retention(mongo, database: str) -> dict | None:
    with mongo.client() as client:
        return client[database]["settings"].find_one({"_id": "retention"})


def patch_spec(kube: Kube, ns: str, name: str, spec: dict) -> int:
    stored = kube.patch_merge(API_VERSION, KIND, name, ns, {"spec": spec})
    return stored["metadata"]["generation"]


def reasons(kube: Kube, ns: str, name: str) -> list[str]:
    return [e["reason"] for e in events_for(kube, ns, name)]


def wait_event(kube: Kube, ns: str, name: str, reason: str, contains: str = "", timeout: float = 30) -> list[dict]:
    """Events are posted asynchronously after the status: poll until one with `reason` (and text) is there."""
    def found() -> list[dict] | None:
        posted = events_for(kube, ns, name)
        hit = any(e["reason"] == reason and contains in e["message"] for e in posted)
        return posted if hit else None

    return wait_for(found, timeout, what=f"event {reason} {contains!r} on {ns}/{name}")
